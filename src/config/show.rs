//! `kairos config show`: the effective configuration as TOML, each value followed by where it
//! came from, secrets redacted.

use std::fmt::Write as _;

use config::{Map, Value, ValueKind};

use super::{ConfigError, Layers};

/// Keys whose values are secrets, printed as `<redacted>`.
const SECRET_KEYS: &[&str] = &[
    "database.password",
    "database.url",
    "kafka.sasl_password",
    "runner.http.signing_secret",
    "runner.kafka.sasl_password",
];
/// Tables whose every value may be a secret (librdkafka's keys and passwords).
const SECRET_TABLES: &[&str] = &["kafka.properties", "runner.kafka.properties"];

impl Layers {
    /// The merged configuration as TOML, every value followed by `# <origin>`.
    ///
    /// # Errors
    /// When the layers cannot be merged.
    pub fn show(&self) -> Result<String, ConfigError> {
        let mut out = String::new();
        let merged = config::Source::collect(&self.merged()?)?;
        write_table(self, &mut out, &[], merged);
        Ok(out)
    }
}

/// Writes the values of the table at `path`, then its sub-tables as `[path.sub]` sections.
fn write_table(layers: &Layers, out: &mut String, path: &[&str], table: Map<String, Value>) {
    let mut entries: Vec<(String, Value)> = table.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let (tables, values): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .partition(|(_, value)| matches!(value.kind, ValueKind::Table(_)));
    let dotted = path.join(".");
    if !path.is_empty() {
        let header: Vec<String> = path.iter().map(|key| toml_key(key)).collect();
        let _ = writeln!(out, "\n[{}]", header.join("."));
    }
    for (key, value) in values {
        let full: Vec<&str> = path.iter().copied().chain([key.as_str()]).collect();
        let shown = if SECRET_KEYS.contains(&full.join(".").as_str())
            || SECRET_TABLES.contains(&dotted.as_str())
        {
            "\"<redacted>\"".to_owned()
        } else if full.join(".") == "auth.tokens" {
            // A hashed entry is no secret; a token in plain text is.
            render(&redact_plain_tokens(value))
        } else {
            render(&value)
        };
        let _ = writeln!(
            out,
            "{} = {shown}  # {}",
            toml_key(&key),
            layers.origin_of(&full)
        );
    }
    for (key, value) in tables {
        if let ValueKind::Table(inner) = value.kind {
            let full: Vec<&str> = path.iter().copied().chain([key.as_str()]).collect();
            write_table(layers, out, &full, inner);
        }
    }
}

/// `key` as TOML writes it: bare when it can be, quoted otherwise (`"socket.keepalive.enable"`).
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match bare {
        true => key.to_owned(),
        false => toml::Value::String(key.to_owned()).to_string(),
    }
}

/// A value as inline TOML.
fn render(value: &Value) -> String {
    value
        .clone()
        .try_deserialize::<toml::Value>()
        .map_or_else(|_| format!("\"{value}\""), |value| value.to_string())
}

/// `auth.tokens` with each plain-text token replaced by `<redacted>`.
fn redact_plain_tokens(tokens: Value) -> Value {
    let ValueKind::Array(entries) = tokens.kind else {
        return tokens;
    };
    let entries = entries
        .into_iter()
        .map(|entry| match entry.kind {
            ValueKind::Table(_) => entry,
            _ => Value::new(None, "<redacted>"),
        })
        .collect::<Vec<_>>();
    Value::new(None, entries)
}
