//! Integration tests: the real application against the real PostgreSQL and Kafka started by
//! `scripts/services up`, and (the contract suite) against the standalone mode's SQLite and
//! in-process bus as well. Each test gets a store and topics of its own.

#[macro_use]
mod macros;

mod api_input;
mod contract;
mod control;
mod dashboard;
mod exposure;
mod foundation;
mod helpers;
mod kinds;
mod openapi;
mod pipeline;
mod plans;
mod policies;
mod records;
mod recovery;
mod result_writer;
mod roles;
mod schedule_control;
mod schedules;
mod secure_connections;
mod slots;
mod supervision;
