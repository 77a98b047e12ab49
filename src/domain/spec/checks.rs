//! The checks of each kind's fields, so that every problem names its field.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    HttpSpec, KafkaSpec, Payload, SpecError, SpecFields, default_method, default_success_status,
};

/// The methods an `http` job may use.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// A required text field.
pub(super) fn text(value: Option<Value>, field: &'static str) -> Result<String, SpecError> {
    match value {
        None => Err(SpecError::missing(field, format!("`{field}` is required"))),
        Some(Value::String(text)) if text.contains('\0') => Err(SpecError::invalid(
            field,
            format!("`{field}` must not contain a NUL character"),
        )),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(SpecError::invalid(
            field,
            format!("`{field}` must be a string"),
        )),
    }
}

/// An optional map of header names to values.
fn headers(value: Option<Value>) -> Result<BTreeMap<String, String>, SpecError> {
    let invalid = || SpecError::invalid("headers", "`headers` must be an object of strings");
    match value {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(name, value)| match value {
                Value::String(value) if !name.is_empty() && !value.contains('\0') => {
                    Ok((name, value))
                }
                _ => Err(invalid()),
            })
            .collect(),
        Some(_) => Err(invalid()),
    }
}

pub(super) fn http(fields: SpecFields) -> Result<HttpSpec, SpecError> {
    let url = text(fields.url, "url")?;
    let parsed = url_scheme(&url)?;
    if !matches!(parsed.as_str(), "http" | "https") {
        return Err(SpecError::invalid(
            "url",
            "`url` must be an http:// or https:// URL",
        ));
    }
    let method = match fields.method {
        None => default_method(),
        Some(Value::String(method)) if METHODS.contains(&method.to_uppercase().as_str()) => {
            method.to_uppercase()
        }
        Some(_) => {
            return Err(SpecError::invalid(
                "method",
                format!("`method` must be one of {}", METHODS.join(", ")),
            ));
        }
    };
    let success_status = match fields.success_status {
        None => default_success_status(),
        Some(Value::Array(bounds)) => match bounds.as_slice() {
            [low, high] => match (low.as_u64(), high.as_u64()) {
                (Some(low), Some(high))
                    if (100..=599).contains(&low) && low <= high && high <= 599 =>
                {
                    [low as u16, high as u16]
                }
                _ => return Err(bad_success_status()),
            },
            _ => return Err(bad_success_status()),
        },
        Some(_) => return Err(bad_success_status()),
    };
    Ok(HttpSpec {
        url,
        method,
        headers: headers(fields.headers)?,
        body: fields.body.map(Payload::from_value),
        success_status,
    })
}

/// The scheme of `url`, checked to be a URL with a host.
fn url_scheme(url: &str) -> Result<String, SpecError> {
    let invalid = || SpecError::invalid("url", format!("`url` is not an absolute URL: `{url}`"));
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if scheme.is_empty() || host.is_empty() || url.contains(char::is_whitespace) {
        return Err(invalid());
    }
    Ok(scheme.to_ascii_lowercase())
}

fn bad_success_status() -> SpecError {
    SpecError::invalid(
        "success_status",
        "`success_status` must be [low, high], statuses from 100 to 599, low ≤ high",
    )
}

pub(super) fn kafka(fields: SpecFields) -> Result<KafkaSpec, SpecError> {
    let topic = text(fields.topic, "topic")?;
    let valid = !topic.is_empty()
        && topic.len() <= 249
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(SpecError::invalid(
            "topic",
            "`topic` must be 1 to 249 characters of letters, digits, `.`, `_` and `-`",
        ));
    }
    let key = match fields.key {
        None => None,
        Some(value) => Some(text(Some(value), "key")?),
    };
    let value = match fields.value {
        None => return Err(SpecError::missing("value", "`value` is required")),
        Some(value) => Payload::from_value(value),
    };
    Ok(KafkaSpec {
        topic,
        key,
        value,
        headers: headers(fields.headers)?,
    })
}
