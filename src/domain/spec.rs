//! What a job does when it runs: its kind and the fields of that kind.
//!
//! A [`JobSpec`] is one variant per kind, tagged by `kind` in JSON (`{"kind": "shell",
//! "command": "make report"}`). It travels unchanged from the API through the store and the
//! dispatch records to the executor, which hands it to the kind's runner (`crate::runner`).
//! Adding a kind means a variant here (its fields, their checks in [`JobSpec::check`] and
//! their JSON in [`Serialize`] and [`SpecVisitor`]), a runner, and their tests.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::JobKind;

/// What a job does when it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSpec {
    /// Runs a command with `/bin/sh -c`.
    Shell(ShellSpec),
    /// Does nothing and succeeds at once: it exercises the whole scheduler (claim, dispatch,
    /// run claim, reports, write-back) without spawning a process, to measure the scheduler.
    Noop,
    /// Calls an HTTP endpoint (a webhook).
    Http(HttpSpec),
    /// Publishes a message to a Kafka topic when the job falls due.
    Kafka(KafkaSpec),
}

/// A `shell` job: the command to run with `/bin/sh -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellSpec {
    pub command: String,
}

/// An `http` job: the request to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpSpec {
    pub url: String,
    /// An HTTP method, upper case (`POST` unless given).
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<Payload>,
    /// The statuses that count as success, inclusive (`[200, 299]` unless given).
    #[serde(default = "default_success_status")]
    pub success_status: [u16; 2],
}

/// A `kafka` job: the message to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaSpec {
    pub topic: String,
    #[serde(default)]
    pub key: Option<String>,
    pub value: Payload,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A body or a message value: text as given, or JSON (sent as its compact text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Payload {
    Text(String),
    Json(Value),
}

impl Payload {
    /// The bytes sent, and whether they are JSON.
    pub fn to_bytes(&self) -> (Vec<u8>, bool) {
        match self {
            Payload::Text(text) => (text.clone().into_bytes(), false),
            Payload::Json(value) => (value.to_string().into_bytes(), true),
        }
    }

    fn from_value(value: Value) -> Self {
        match value {
            Value::String(text) => Payload::Text(text),
            other => Payload::Json(other),
        }
    }
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_success_status() -> [u16; 2] {
    [200, 299]
}

/// A spec that is not acceptable, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    pub field: &'static str,
    /// `missing_field` or `invalid_field`.
    pub code: &'static str,
    pub message: String,
}

impl SpecError {
    fn missing(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code: "missing_field",
            message: message.into(),
        }
    }

    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code: "invalid_field",
            message: message.into(),
        }
    }
}

/// The fields a spec may be given, over every kind, as given (`None` when absent).
#[derive(Debug, Clone, Default)]
pub struct SpecFields {
    pub command: Option<Value>,
    pub url: Option<Value>,
    pub method: Option<Value>,
    pub headers: Option<Value>,
    pub body: Option<Value>,
    pub success_status: Option<Value>,
    pub topic: Option<Value>,
    pub key: Option<Value>,
    pub value: Option<Value>,
}

impl SpecFields {
    /// The names of the fields, in the order of [`SpecFields`].
    pub const NAMES: [&'static str; 9] = [
        "command",
        "url",
        "method",
        "headers",
        "body",
        "success_status",
        "topic",
        "key",
        "value",
    ];

    /// The field called `name`, to fill it.
    pub fn field_mut(&mut self, name: &str) -> Option<&mut Option<Value>> {
        Some(match name {
            "command" => &mut self.command,
            "url" => &mut self.url,
            "method" => &mut self.method,
            "headers" => &mut self.headers,
            "body" => &mut self.body,
            "success_status" => &mut self.success_status,
            "topic" => &mut self.topic,
            "key" => &mut self.key,
            "value" => &mut self.value,
            _ => return None,
        })
    }

    /// The fields given that `allowed` does not list, by name.
    fn given_beyond(&self, allowed: &[&str]) -> Option<&'static str> {
        let given = [
            self.command.is_some(),
            self.url.is_some(),
            self.method.is_some(),
            self.headers.is_some(),
            self.body.is_some(),
            self.success_status.is_some(),
            self.topic.is_some(),
            self.key.is_some(),
            self.value.is_some(),
        ];
        Self::NAMES
            .iter()
            .zip(given)
            .find(|(name, given)| *given && !allowed.contains(name))
            .map(|(name, _)| *name)
    }
}

impl JobSpec {
    /// The job's kind.
    pub fn kind(&self) -> JobKind {
        match self {
            JobSpec::Shell(_) => JobKind::Shell,
            JobSpec::Noop => JobKind::Noop,
            JobSpec::Http(_) => JobKind::Http,
            JobSpec::Kafka(_) => JobKind::Kafka,
        }
    }

    /// The spec of `kind` from the fields given for it, checked so that each problem names its
    /// field. A field of another kind is refused.
    ///
    /// # Errors
    /// [`SpecError`] naming the field missing, not allowed for the kind, or of a wrong value.
    pub fn check(kind: JobKind, fields: SpecFields) -> Result<Self, SpecError> {
        let allowed: &[&str] = match kind {
            JobKind::Shell => &["command"],
            JobKind::Noop => &[],
            JobKind::Http => &["url", "method", "headers", "body", "success_status"],
            JobKind::Kafka => &["topic", "key", "value", "headers"],
        };
        if let Some(field) = fields.given_beyond(allowed) {
            return Err(SpecError::invalid(
                field,
                format!("a `{}` job has no `{field}`", kind.as_str()),
            ));
        }
        match kind {
            JobKind::Noop => Ok(JobSpec::Noop),
            JobKind::Shell => {
                let command = checks::text(fields.command, "command")?;
                if command.trim().is_empty() {
                    return Err(SpecError::invalid("command", "`command` must not be empty"));
                }
                Ok(JobSpec::Shell(ShellSpec { command }))
            }
            JobKind::Http => checks::http(fields).map(JobSpec::Http),
            JobKind::Kafka => checks::kafka(fields).map(JobSpec::Kafka),
        }
    }

    /// The command stored beside the kind (a `shell` job's; empty for the others).
    pub fn command(&self) -> &str {
        match self {
            JobSpec::Shell(shell) => &shell.command,
            JobSpec::Noop | JobSpec::Http(_) | JobSpec::Kafka(_) => "",
        }
    }

    /// The fields stored as JSON beside the kind, for the kinds that keep them there.
    pub fn stored_fields(&self) -> Option<Value> {
        match self {
            JobSpec::Shell(_) | JobSpec::Noop => None,
            JobSpec::Http(http) => serde_json::to_value(http).ok(),
            JobSpec::Kafka(kafka) => serde_json::to_value(kafka).ok(),
        }
    }

    /// The spec of a stored row: its kind's name, its command and its JSON fields.
    ///
    /// # Errors
    /// A description of what is wrong with the row.
    pub fn from_stored(kind: &str, command: String, fields: Option<Value>) -> Result<Self, String> {
        let fields = || {
            fields
                .clone()
                .ok_or_else(|| format!("a `{kind}` job without its fields"))
        };
        match JobKind::parse(kind) {
            Some(JobKind::Shell) => Ok(JobSpec::Shell(ShellSpec { command })),
            Some(JobKind::Noop) => Ok(JobSpec::Noop),
            Some(JobKind::Http) => serde_json::from_value(fields()?)
                .map(JobSpec::Http)
                .map_err(|error| error.to_string()),
            Some(JobKind::Kafka) => serde_json::from_value(fields()?)
                .map(JobSpec::Kafka)
                .map_err(|error| error.to_string()),
            None => Err(format!("no job kind is called `{kind}`")),
        }
    }
}

/// Writes `kind` and the kind's fields. A no-op is written with an empty `command`, as the
/// releases before typed specs wrote it, so that a process of such a release still reads its
/// dispatches during a rolling upgrade (and the API shows what it showed).
impl Serialize for JobSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("kind", self.kind().as_str())?;
        match self {
            JobSpec::Shell(shell) => map.serialize_entry("command", &shell.command)?,
            JobSpec::Noop => map.serialize_entry("command", "")?,
            JobSpec::Http(http) => {
                map.serialize_entry("url", &http.url)?;
                map.serialize_entry("method", &http.method)?;
                map.serialize_entry("headers", &http.headers)?;
                map.serialize_entry("body", &http.body)?;
                map.serialize_entry("success_status", &http.success_status)?;
            }
            JobSpec::Kafka(kafka) => {
                map.serialize_entry("topic", &kafka.topic)?;
                map.serialize_entry("key", &kafka.key)?;
                map.serialize_entry("value", &kafka.value)?;
                map.serialize_entry("headers", &kafka.headers)?;
            }
        }
        map.end()
    }
}

/// The JSON of a spec, for the OpenAPI description: one object per kind, as [`Serialize`]
/// writes it (a `noop` job shows an empty `command`).
impl utoipa::PartialSchema for JobSpec {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, Type};
        let kind = |name: &str| {
            ObjectBuilder::new()
                .property(
                    "kind",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([name])),
                )
                .required("kind")
        };
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let headers = || {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .additional_properties(Some(string()))
        };
        let nullable_string = || {
            ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                Type::String,
                Type::Null,
            ]))
        };
        let shell = kind("shell")
            .property("command", string())
            .required("command");
        let noop = kind("noop").property("command", string());
        let http = kind("http")
            .property("url", string())
            .property("method", string())
            .property("headers", headers())
            .property("body", Object::new())
            .property(
                "success_status",
                utoipa::openapi::schema::ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::Integer))
                    .min_items(Some(2))
                    .max_items(Some(2)),
            )
            .required("url");
        let kafka = kind("kafka")
            .property("topic", string())
            .property("key", nullable_string())
            .property("value", Object::new())
            .property("headers", headers())
            .required("topic");
        OneOfBuilder::new()
            .item(shell)
            .item(noop)
            .item(http)
            .item(kafka)
            .description(Some(
                "What the job does: its `kind` and that kind's fields.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for JobSpec {}

/// Reads a spec from its fields; a `kind` missing reads as `shell`, as records and rows of the
/// releases before kinds existed were written. Fields of no kind are ignored, so that a record
/// of a later release that adds one is still read.
impl<'de> Deserialize<'de> for JobSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(SpecVisitor)
    }
}

struct SpecVisitor;

impl<'de> Visitor<'de> for SpecVisitor {
    type Value = JobSpec;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a job spec: `kind` and the fields of that kind")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<JobSpec, M::Error> {
        let mut kind: Option<String> = None;
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "kind" {
                kind = Some(map.next_value()?);
            } else if SpecFields::NAMES.contains(&key.as_ref()) {
                fields.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        let kind = match kind.as_deref() {
            None => JobKind::Shell,
            Some(name) => JobKind::parse(name)
                .ok_or_else(|| de::Error::custom(format_args!("no job kind is called `{name}`")))?,
        };
        match kind {
            // Records of earlier releases gave a no-op an empty command.
            JobKind::Noop => Ok(JobSpec::Noop),
            JobKind::Shell => match fields.remove("command") {
                Some(Value::String(command)) => Ok(JobSpec::Shell(ShellSpec { command })),
                _ => Err(de::Error::custom("a `shell` spec needs a `command` string")),
            },
            JobKind::Http => serde_json::from_value(Value::Object(fields))
                .map(JobSpec::Http)
                .map_err(de::Error::custom),
            JobKind::Kafka => serde_json::from_value(Value::Object(fields))
                .map(JobSpec::Kafka)
                .map_err(de::Error::custom),
        }
    }
}

mod checks;
#[cfg(test)]
mod tests;
