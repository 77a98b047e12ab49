//! How many connections the API may hold, from the files the process may open.
//!
//! Every connection holds a file descriptor, and so do the database pools, the Kafka clients,
//! the SQLite file, the pipes of every running command and the connections of `http` jobs'
//! calls. A server that accepts connections
//! until `accept` fails with "too many open files" can no longer open anything else either, and
//! stops answering even its probes. So at start-up Kairos raises its soft limit on open files
//! to the hard one, keeps room for what it needs besides connections, and caps the API's
//! connections below the rest. Clients beyond the cap wait in the listen queue, costing no
//! descriptor, until a connection ends (a stalled body ends at `http.body_timeout`).

use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::config::Settings;

/// Descriptors kept for everything but the API's connections and the pools and commands
/// counted apart: the probe listener's connections, Kafka's sockets, the SQLite files, logs.
const RESERVED_FILES: u64 = 128;

/// Descriptors a running command holds in Kairos: its stdout and stderr pipes, and a spare.
const FILES_PER_RUN: u64 = 3;

/// Descriptors an `http` job's call holds: its connection, and one kept idle for reuse.
const FILES_PER_CALL: u64 = 2;

/// The fewest connections the API is given, whatever the limit (below this it could not
/// serve at all).
const MIN_CONNECTIONS: usize = 16;

/// Connections the probe listener holds at once.
pub const PROBE_CONNECTIONS: usize = 64;

/// How long a probe may take to send its request's headers.
pub const PROBE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Raises the soft limit on open files to the hard one, and returns the API's connection cap:
/// `http.max_connections`, lowered to what the limit leaves room for. Logs what it found.
pub fn connections(settings: &Settings) -> usize {
    let files = raise_file_limit();
    let pools = settings.database.pool_size as u64 + 8;
    let runs = settings.executor.max_concurrent_runs as u64 * FILES_PER_RUN
        + settings.runner.http.max_concurrent_calls as u64 * FILES_PER_CALL;
    let reserved = RESERVED_FILES + pools + runs;
    let room = files
        .map(|files| usize::try_from(files.saturating_sub(reserved)).unwrap_or(usize::MAX))
        .unwrap_or(usize::MAX);
    let cap = settings.http.max_connections.min(room).max(MIN_CONNECTIONS);
    if cap < settings.http.max_connections {
        tracing::warn!(
            open_files = files,
            reserved,
            connections = cap,
            "the open-file limit leaves room for fewer connections than http.max_connections; \
             raise the hard limit (ulimit -Hn, LimitNOFILE) to serve more"
        );
    } else {
        tracing::info!(open_files = files, connections = cap, "connection limit");
    }
    cap
}

/// HTTP workers for `connections`: one per core (actix's default), never more than there are
/// connections to share.
pub fn workers(connections: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(connections)
        .max(1)
}

/// Sets the soft limit on open files to the hard one; returns the soft limit then in force
/// (`None` when it cannot be read: no cap from it).
fn raise_file_limit() -> Option<u64> {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-file limit");
            return None;
        }
    };
    if soft >= hard {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            tracing::info!(
                from = soft,
                to = hard,
                "raised the open-file limit to the hard limit"
            );
            Some(hard)
        }
        Err(error) => {
            tracing::warn!(%error, soft, hard, "cannot raise the open-file limit");
            Some(soft)
        }
    }
}
