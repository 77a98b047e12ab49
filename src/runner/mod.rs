//! What running a job means. Today a job is a shell command; see [`shell`].

pub mod shell;
