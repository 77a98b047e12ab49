//! The PostgreSQL database: where it is, who connects, and how the connection is protected.
//!
//! The connection is given either key by key (`host`, `port`, `user`, …) or as one
//! `database.url` written as PostgreSQL users write it; [`DatabaseSettings::resolve`] turns the
//! latter into the former, so everything downstream reads the keys.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::secrets::read_secret;

/// How the connection to PostgreSQL is encrypted and checked, as libpq's `sslmode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, plain otherwise; the server is not verified.
    #[default]
    Prefer,
    /// TLS or no connection; the server's certificate is not verified (encryption only).
    Require,
    /// TLS, with the server's certificate verified against `ssl_root_cert` (or the system's
    /// roots) and its name against the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(format!(
                "has sslmode `{other}`; Kairos knows disable, prefer, require and verify-full"
            )),
        }
    }
}

/// The PostgreSQL database holding jobs and their history.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Unset: no PostgreSQL is configured (the standalone mode), unless `url` is.
    #[serde(default)]
    pub host: Option<String>,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// A file holding the password (read at start-up, surrounding whitespace trimmed); it
    /// replaces `password`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    pub name: String,
    /// The whole connection as one URL,
    /// `postgresql://user:password@host:port/name?sslmode=verify-full&sslrootcert=/ca.pem`;
    /// it replaces the keys it names and cannot be combined with `host`.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub ssl_mode: SslMode,
    /// PEM certificates of the authorities that sign the server's certificate, for
    /// `verify-full`; unset, the system's roots.
    #[serde(default)]
    pub ssl_root_cert: Option<PathBuf>,
    pub pool_size: usize,
    pub connect_timeout_ms: u64,
}

// Written by hand so that the password (also inside the URL) never reaches a log.
impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("password_file", &self.password_file)
            .field("name", &self.name)
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .finish()
    }
}

impl DatabaseSettings {
    /// `PostgreSQL at host:port/name`, for logs and errors.
    pub fn location(&self) -> String {
        format!("PostgreSQL at {}:{}/{}", self.host(), self.port, self.name)
    }

    /// The configured host (empty when none is, which validation allows only standalone).
    pub fn host(&self) -> &str {
        self.host.as_deref().unwrap_or_default()
    }

    /// The bound on connecting and on waiting for a pooled connection.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Reads `password_file` and spreads `url` over the keys it names.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key: a file that cannot be read, a URL that cannot
    /// be parsed (the message never repeats the URL, which may hold the password), or `url`
    /// given together with `host`.
    pub(super) fn resolve(&mut self) -> Result<(), ConfigError> {
        if let Some(file) = &self.password_file {
            self.password = read_secret("database.password_file", file)?;
        }
        let Some(url) = self.url.take() else {
            return Ok(());
        };
        if self.host.is_some() {
            return Err(ConfigError::Invalid {
                key: "database.url",
                problem: "cannot be combined with `database.host`: give the connection either \
                          as a URL or key by key"
                    .into(),
            });
        }
        let invalid = |problem: String| ConfigError::Invalid {
            key: "database.url",
            problem,
        };
        let parsed = url::Url::parse(&url).map_err(|error| {
            invalid(format!(
                "is not a URL ({error}); write it as postgresql://user:password@host:port/name"
            ))
        })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(invalid(format!(
                "has scheme `{}`; it must be postgresql:// (or postgres://)",
                parsed.scheme()
            )));
        }
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| invalid("has a %-escape that is not UTF-8".into()))
        };
        self.host = match parsed.host_str() {
            Some(host) if !host.is_empty() => Some(host.trim_matches(['[', ']']).to_owned()),
            _ => return Err(invalid("names no host".into())),
        };
        if let Some(port) = parsed.port() {
            self.port = port;
        }
        if !parsed.username().is_empty() {
            self.user = decode(parsed.username())?;
        }
        if let Some(password) = parsed.password() {
            self.password = decode(password)?;
        }
        let name = parsed.path().trim_start_matches('/');
        if !name.is_empty() {
            self.name = decode(name)?;
        }
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "sslmode" => self.ssl_mode = SslMode::parse(&value).map_err(invalid)?,
                "sslrootcert" => self.ssl_root_cert = Some(PathBuf::from(value.as_ref())),
                "connect_timeout" => {
                    let seconds: u64 = value.parse().map_err(|_| {
                        invalid("has a connect_timeout that is not a number of seconds".into())
                    })?;
                    self.connect_timeout_ms = seconds.saturating_mul(1000);
                }
                other => {
                    return Err(invalid(format!(
                        "has parameter `{other}`; Kairos reads sslmode, sslrootcert and \
                         connect_timeout (the other keys have settings of their own)"
                    )));
                }
            }
        }
        Ok(())
    }
}
