//! What a job does when it runs: its kind and the fields of that kind.
//!
//! A [`JobSpec`] is one variant per kind, tagged by `kind` in JSON (`{"kind": "shell",
//! "command": "make report"}`). It travels unchanged from the API through the store and the
//! dispatch records to the executor, which hands it to the kind's runner (`crate::runner`).
//! Adding a kind means a variant here (with its checks in [`JobSpec::check`]), a runner, and
//! their tests.

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
}

/// A `shell` job: the command to run with `/bin/sh -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellSpec {
    pub command: String,
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

impl JobSpec {
    /// The fields a spec may have besides `kind`, over every kind (for the API's list of
    /// known fields).
    pub const FIELDS: [&'static str; 1] = ["command"];

    /// The job's kind.
    pub fn kind(&self) -> JobKind {
        match self {
            JobSpec::Shell(_) => JobKind::Shell,
            JobSpec::Noop => JobKind::Noop,
        }
    }

    /// The spec of `kind` from the fields given for it (`None` for an absent one), checked so
    /// that each problem names its field.
    ///
    /// # Errors
    /// [`SpecError`] naming the field missing, not allowed for the kind, or of a wrong value.
    pub fn check(kind: JobKind, command: Option<Value>) -> Result<Self, SpecError> {
        match kind {
            JobKind::Noop => match command {
                None => Ok(JobSpec::Noop),
                Some(_) => Err(SpecError::invalid(
                    "command",
                    "a `noop` job has no `command`",
                )),
            },
            JobKind::Shell => match command {
                None => Err(SpecError::missing("command", "`command` is required")),
                Some(Value::String(command)) if command.trim().is_empty() => {
                    Err(SpecError::invalid("command", "`command` must not be empty"))
                }
                Some(Value::String(command)) if command.contains('\0') => Err(SpecError::invalid(
                    "command",
                    "`command` must not contain a NUL character",
                )),
                Some(Value::String(command)) => Ok(JobSpec::Shell(ShellSpec { command })),
                Some(_) => Err(SpecError::invalid("command", "`command` must be a string")),
            },
        }
    }

    /// The spec stored as a kind and a command (empty for a kind without one), as the stores
    /// keep it.
    pub fn command(&self) -> &str {
        match self {
            JobSpec::Shell(shell) => &shell.command,
            JobSpec::Noop => "",
        }
    }

    /// The spec of a stored row: its kind's name and its command.
    ///
    /// # Errors
    /// The kind's name when no kind is called so.
    pub fn from_stored(kind: &str, command: String) -> Result<Self, String> {
        match JobKind::parse(kind) {
            Some(JobKind::Shell) => Ok(JobSpec::Shell(ShellSpec { command })),
            Some(JobKind::Noop) => Ok(JobSpec::Noop),
            None => Err(kind.to_owned()),
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
        }
        map.end()
    }
}

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
            } else if JobSpec::FIELDS.contains(&key.as_ref()) {
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
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_spec_is_written_tagged_by_its_kind_and_read_back() {
        for (spec, written) in [
            (
                JobSpec::Shell(ShellSpec {
                    command: "make".into(),
                }),
                json!({"kind": "shell", "command": "make"}),
            ),
            (JobSpec::Noop, json!({"kind": "noop", "command": ""})),
        ] {
            assert_eq!(serde_json::to_value(&spec).expect("JSON"), written);
            assert_eq!(
                serde_json::from_value::<JobSpec>(written).expect("read"),
                spec
            );
        }
    }

    /// Records of earlier releases: no `kind` (a shell command), a no-op with an empty
    /// command; and fields a later release may add are ignored.
    #[test]
    fn specs_of_earlier_and_later_releases_are_read() {
        let read: JobSpec =
            serde_json::from_value(json!({"command": "ls", "later": 1})).expect("read");
        assert_eq!(
            read,
            JobSpec::Shell(ShellSpec {
                command: "ls".into()
            })
        );
        let read: JobSpec =
            serde_json::from_value(json!({"kind": "noop", "command": ""})).expect("read");
        assert_eq!(read, JobSpec::Noop);
    }

    #[test]
    fn a_spec_of_no_known_kind_or_a_wrong_field_is_refused_naming_it() {
        let error = serde_json::from_value::<JobSpec>(json!({"kind": "fax"})).expect_err("refused");
        assert!(error.to_string().contains("`fax`"), "{error}");
        let error = JobSpec::check(JobKind::Shell, Some(json!(5))).expect_err("refused");
        assert_eq!((error.field, error.code), ("command", "invalid_field"));
        let error = JobSpec::check(JobKind::Shell, None).expect_err("refused");
        assert_eq!((error.field, error.code), ("command", "missing_field"));
    }
}
