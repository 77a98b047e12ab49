//! The chaos suite: real `kairos serve` processes sharing the real PostgreSQL and Kafka, while
//! processes are killed, the broker and the database restart, and instances are stopped; and
//! a standalone process killed and restarted on its data directory.
//!
//! Every job's command appends `<job id> <attempt>` to a log file, so runs are counted
//! outside Kairos. Each scenario prints one row of the table
//! (`scripts/chaos` runs them all and shows it).

mod cancels;
mod cluster;
mod dispatchers;
mod instance;
mod outcome;
mod scenarios;
mod schedules;
mod standalone;
