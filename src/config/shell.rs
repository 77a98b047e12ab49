//! The settings of `shell` jobs: their environment and folder, whether they may run at all,
//! which commands may be created, and the Unix user they run as.

use std::path::PathBuf;

use serde::Deserialize;

/// What `shell` jobs get, and what they may be.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellSettings {
    /// Variables a command gets beyond the basic ones: `NAME` copies the server's value,
    /// `NAME=value` sets one.
    pub env: Vec<String>,
    /// Where commands run; unset: a fresh folder per attempt, removed afterwards.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Whether `shell` jobs may be created and run.
    pub enabled: bool,
    /// When any is given, a command must match one of these regular expressions whole.
    pub allowed_commands: CommandPatterns,
    /// The Unix user (and its groups) commands run as when Kairos runs as root.
    #[serde(default)]
    pub user: Option<String>,
}

impl ShellSettings {
    /// Why a job may not run `command`, if it may not: the field at fault and the message.
    pub fn refuses(&self, command: &str) -> Option<(&'static str, &'static str, String)> {
        if !self.enabled {
            return Some((
                "kind",
                "kind_disabled",
                "`shell` jobs are turned off here (`runner.shell.enabled`)".to_owned(),
            ));
        }
        if !self.allowed_commands.allows(command) {
            return Some((
                "command",
                "command_not_allowed",
                format!(
                    "`command` matches none of `runner.shell.allowed_commands`: {}",
                    self.allowed_commands.patterns.join(", ")
                ),
            ));
        }
        None
    }
}

/// Regular expressions a command must match whole, one of them (none given: any command).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct CommandPatterns {
    patterns: Vec<String>,
    compiled: Vec<regex::Regex>,
}

impl TryFrom<Vec<String>> for CommandPatterns {
    type Error = String;

    fn try_from(patterns: Vec<String>) -> Result<Self, String> {
        let compiled = patterns
            .iter()
            .map(|pattern| {
                // Checked alone first, so that the anchors below wrap the whole of it.
                regex::Regex::new(pattern)
                    .and_then(|_| regex::Regex::new(&format!(r"\A(?:{pattern})\z")))
                    .map_err(|error| format!("runner.shell.allowed_commands: `{pattern}`: {error}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns, compiled })
    }
}

impl CommandPatterns {
    /// Whether `command` may run: no pattern is given, or one matches it whole.
    pub fn allows(&self, command: &str) -> bool {
        self.compiled.is_empty() || self.compiled.iter().any(|regex| regex.is_match(command))
    }
}
