//! The layers a configuration is read from, each kept apart so that every value can say where
//! it came from (`kairos config show`).
//!
//! In order, each overriding the ones before: the defaults compiled into the binary (the text
//! of `config/default.toml`); `default.toml` in `--config-dir` when one is given and holds
//! it; the named file (`--config FILE`, or `<config dir>/<KAIROS_ENV>.toml`), which must
//! exist; then each `KAIROS__…` variable.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{ConfigError, LIST_KEYS, Settings, Sources, environment_overrides};

/// The text of `config/default.toml`, compiled in: Kairos runs from any folder without it.
pub const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The defaults compiled into the binary.
    Default,
    /// A configuration file.
    File(PathBuf),
    /// An environment variable, by name.
    Variable(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Variable(name) => write!(f, "variable {name}"),
        }
    }
}

/// The layers of one configuration, in order.
#[derive(Debug)]
pub struct Layers {
    layers: Vec<(Origin, config::Config)>,
}

impl Layers {
    /// Reads every layer `sources` name.
    ///
    /// # Errors
    /// A file that cannot be read or parsed, a named file that does not exist.
    pub fn read(sources: &Sources) -> Result<Self, ConfigError> {
        let mut layers = vec![(
            Origin::Default,
            config::Config::builder()
                .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
                .build()?,
        )];
        if let Some(directory) = &sources.directory {
            let file = directory.join("default.toml");
            if file.exists() {
                layers.push((Origin::File(file.clone()), read_file(&file)?));
            }
        }
        let named = sources.file.clone().or_else(|| {
            std::env::var("KAIROS_ENV").ok().map(|env| {
                sources
                    .directory
                    .as_deref()
                    .unwrap_or(Path::new("config"))
                    .join(format!("{env}.toml"))
            })
        });
        if let Some(file) = named {
            layers.push((Origin::File(file.clone()), read_file(&file)?));
        }
        let environment = match &sources.environment {
            Some(vars) => vars.clone(),
            None => std::env::vars().collect(),
        };
        for (variable, key, value) in environment_overrides(&environment) {
            let builder = config::Config::builder();
            let builder = if LIST_KEYS.contains(&key.as_str()) {
                let items: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(String::from)
                    .collect();
                builder.set_override(key, items)?
            } else {
                builder.set_override(key, value)?
            };
            layers.push((Origin::Variable(variable), builder.build()?));
        }
        Ok(Self { layers })
    }

    /// All layers merged: what Kairos runs with, before `…_file` secrets and `database.url`
    /// are read.
    ///
    /// # Errors
    /// When the layers cannot be merged.
    pub fn merged(&self) -> Result<config::Config, ConfigError> {
        let builder = self
            .layers
            .iter()
            .fold(config::Config::builder(), |builder, (_, layer)| {
                builder.add_source(layer.clone())
            });
        Ok(builder.build()?)
    }

    /// The typed, checked configuration.
    ///
    /// # Errors
    /// A value of the wrong type, an unknown key, a secret file that cannot be read, or a
    /// value that fails [`Settings::validate`]; the message names the key.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let mut settings: Settings = self.merged()?.try_deserialize()?;
        settings.database.resolve()?;
        settings.kafka.resolve()?;
        settings.runner.kafka.resolve()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The layer that gave the value at `path` (its keys from the top, as `["kafka", "topic",
    /// "jobs"]`) its value: the last one that sets it.
    pub fn origin_of(&self, path: &[&str]) -> &Origin {
        self.layers
            .iter()
            .rev()
            .find(|(_, layer)| sets(layer, path))
            .map_or(&Origin::Default, |(origin, _)| origin)
    }
}

/// Whether `layer` holds a value at `path`.
fn sets(layer: &config::Config, path: &[&str]) -> bool {
    let Ok(mut table) = config::Source::collect(layer) else {
        return false;
    };
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    for key in parents {
        match table.remove(*key).map(|value| value.kind) {
            Some(config::ValueKind::Table(inner)) => table = inner,
            _ => return false,
        }
    }
    table.contains_key(*last)
}

fn read_file(file: &Path) -> Result<config::Config, ConfigError> {
    Ok(config::Config::builder()
        .add_source(config::File::from(file).required(true))
        .build()?)
}
