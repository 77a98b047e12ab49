//! Kairos, a distributed job scheduler.
//!
//! People create jobs (a command and the time to run it) over the HTTP API; Kairos stores them
//! in PostgreSQL, dispatches those that fall due through Kafka to executors that run each one
//! at its time, and records every result back in PostgreSQL.
//!
//! With neither PostgreSQL nor Kafka configured, the same actors run standalone over an
//! embedded SQLite file and in-process queues.
//!
//! The modules follow that path: [`api`] takes requests, [`store`] keeps the jobs (PostgreSQL
//! or SQLite), [`scheduling`] decides when a job is handed to the executors, [`bus`] carries
//! records between actors (Kafka or in-process queues), [`actors`] do the scheduling work,
//! [`runner`] runs each kind of job, and [`startup`] wires them into one application.

/// The version and the commit Kairos was built from, as `kairos --version` prints them.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KAIROS_COMMIT"),
    ")"
);

pub mod actors;
pub mod api;
pub mod bus;
pub mod client;
pub mod config;
pub mod domain;
pub mod metrics;
pub mod runner;
pub mod scheduling;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod ui;
