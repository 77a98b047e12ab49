//! Integration tests: the real application against the real PostgreSQL and Kafka started by
//! `scripts/services up`. Each test gets a database and topics of its own.

mod api_input;
mod foundation;
mod helpers;
mod pipeline;
mod recovery;
mod supervision;
