//! What the HTTP listeners are bound with: the backlog, TLS, and the errors of binding.

use super::StartupError;
use crate::config::Settings;

/// Connections the kernel queues for the API's listener while every connection Kairos
/// accepts is taken (the kernel caps it at `net.core.somaxconn`). Clients beyond the
/// connection cap wait there rather than being dropped.
pub(super) const LISTEN_BACKLOG: u32 = 2048;

/// The port a server bound (the one the system chose when asked for 0).
pub(super) fn bound_port(addresses: &[std::net::SocketAddr]) -> u16 {
    addresses.first().map_or(0, std::net::SocketAddr::port)
}

/// The TLS configuration of the listeners when `http.tls_cert` and `http.tls_key` are set.
pub(super) fn http_tls(settings: &Settings) -> Result<Option<rustls::ServerConfig>, String> {
    let (Some(cert), Some(key)) = (&settings.http.tls_cert, &settings.http.tls_key) else {
        return Ok(None);
    };
    crate::tls::server(cert, key).map(Some)
}

pub(super) fn listen_error(host: &str, port: u16, source: std::io::Error) -> StartupError {
    StartupError::Listen {
        address: format!("{host}:{port}"),
        source,
    }
}
