//! Kafka: the boundary where jobs leave for the executors and results come back.
//!
//! Inside a process the actors exchange actix messages; only the dispatch of a job and the
//! report of a result cross Kafka, so that scanners, executors and result writers can run in
//! different processes and a record survives the process that produced it.

pub mod kafka;
