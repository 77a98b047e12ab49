//! Kairos, a distributed job scheduler.
//!
//! People create jobs (a command and the time to run it) over the HTTP API; Kairos stores them
//! in PostgreSQL, dispatches those that fall due through Kafka to executors that run each one
//! at its time, and records every result back in PostgreSQL.
//!
//! The modules follow that path: [`api`] takes requests, [`store`] is PostgreSQL, [`bus`] is
//! Kafka, [`actors`] do the scheduling work, and [`startup`] wires them into one application.

pub mod actors;
pub mod api;
pub mod bus;
pub mod config;
pub mod domain;
pub mod metrics;
pub mod runner;
pub mod startup;
pub mod store;
pub mod telemetry;
