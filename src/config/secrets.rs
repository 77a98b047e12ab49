//! Secrets read from files (`…_file` keys), as container platforms mount them.

use std::path::Path;

use super::ConfigError;

/// The content of `file`, surrounding whitespace (a trailing newline) trimmed.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `key` and the file, never its content.
pub(super) fn read_secret(key: &'static str, file: &Path) -> Result<String, ConfigError> {
    let invalid = |problem: String| ConfigError::Invalid { key, problem };
    let text = std::fs::read_to_string(file).map_err(|error| {
        invalid(format!(
            "names {}, which cannot be read: {error}",
            file.display()
        ))
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(invalid(format!("names {}, which is empty", file.display())));
    }
    Ok(secret.to_owned())
}
