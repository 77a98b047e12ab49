//! The supervised actors that move jobs from the database to execution and back.
