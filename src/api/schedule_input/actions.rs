//! The bodies of a schedule's actions: a preview, a backfill, a pause.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::Body;
use crate::api::error::ApiError;
use crate::domain::Schedule;
use crate::domain::schedule::fires::Fires;

/// A preview's question: a rule, a zone, from when, how many.
pub struct Preview {
    pub fires: Fires,
    pub from: DateTime<Utc>,
    pub count: usize,
}

/// The largest preview.
const MAX_PREVIEW: i64 = 1000;

/// Checks a preview's body: `cron` or `every`, `timezone`, `from` (default now), `count`
/// (default 10).
///
/// # Errors
/// 400 naming the field at fault.
pub fn parse_preview(fields: Map<String, Value>, now: DateTime<Utc>) -> Result<Preview, ApiError> {
    const PREVIEW_FIELDS: [&str; 5] = ["cron", "every", "timezone", "from", "count"];
    if let Some(unknown) = fields
        .keys()
        .find(|key| !PREVIEW_FIELDS.contains(&key.as_str()))
    {
        return Err(ApiError::invalid(
            unknown,
            "unknown_field",
            format!(
                "`{unknown}` is not a preview field; known fields: {}",
                PREVIEW_FIELDS.join(", ")
            ),
        ));
    }
    let body = Body(
        fields
            .into_iter()
            .filter(|(_, value)| !value.is_null())
            .collect(),
    );
    let recurrence = body
        .recurrence()?
        .ok_or_else(|| ApiError::invalid("cron", "missing_field", "give `cron` or `every`"))?;
    let from = body.instant("from")?.unwrap_or(now);
    let count = body.integer("count", 1..=MAX_PREVIEW)?.unwrap_or(10);
    let fires = Fires::new(
        &recurrence,
        body.text("timezone")?.unwrap_or("UTC"),
        from,
        None,
        None,
    )?;
    Ok(Preview {
        fires,
        from,
        count: usize::try_from(count).unwrap_or(10),
    })
}

/// A backfill's range: `from` and `to`, at most [`MAX_BACKFILL`] fires between them.
pub const MAX_BACKFILL: usize = 1000;

/// The nominal times of `schedule`'s fires from `from` to `to` (both included), at most
/// [`MAX_BACKFILL`].
///
/// # Errors
/// 400 when the range is malformed, in the future, or holds more fires than that.
pub fn backfill_fires(
    fields: Map<String, Value>,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, ApiError> {
    if let Some(unknown) = fields
        .keys()
        .find(|key| !["from", "to"].contains(&key.as_str()))
    {
        return Err(ApiError::invalid(
            unknown,
            "unknown_field",
            format!(
                "`{unknown}` is not a backfill field; the body is {{\"from\": ..., \"to\": ...}}"
            ),
        ));
    }
    let body = Body(fields);
    let from = body
        .instant("from")?
        .ok_or_else(|| ApiError::invalid("from", "missing_field", "`from` is required"))?;
    let to = body
        .instant("to")?
        .ok_or_else(|| ApiError::invalid("to", "missing_field", "`to` is required"))?;
    if to < from || to > now {
        return Err(ApiError::invalid(
            "to",
            "invalid_field",
            "`to` must be after `from` and not in the future",
        ));
    }
    let fires = Fires::new(
        &schedule.recurrence(),
        &schedule.timezone,
        schedule.anchor(),
        schedule.start_at,
        schedule.end_at,
    )?;
    let times: Vec<DateTime<Utc>> = fires
        .upcoming(from, MAX_BACKFILL + 1)
        .into_iter()
        .take_while(|at| *at <= to)
        .collect();
    if times.len() > MAX_BACKFILL {
        return Err(ApiError::invalid(
            "to",
            "backfill_too_large",
            format!("the range holds more than {MAX_BACKFILL} fires; backfill it in parts"),
        ));
    }
    Ok(times)
}

/// How long a paused schedule's note may be.
pub const MAX_NOTE_CHARS: usize = 1000;

/// Reads a pause's optional `{"note": "..."}`.
///
/// # Errors
/// 400 naming the field at fault.
pub fn pause_note(fields: Map<String, Value>) -> Result<Option<String>, ApiError> {
    let mut note = None;
    for (field, value) in fields {
        match (field.as_str(), value) {
            ("note", Value::Null) => {}
            ("note", Value::String(text))
                if text.chars().count() <= MAX_NOTE_CHARS && !text.contains('\0') =>
            {
                note = Some(text)
            }
            ("note", _) => {
                return Err(ApiError::invalid(
                    "note",
                    "invalid_field",
                    format!("`note` must be a string of at most {MAX_NOTE_CHARS} characters"),
                ));
            }
            (other, _) => {
                return Err(ApiError::invalid(
                    other,
                    "unknown_field",
                    format!("`{other}` is not a field of a pause; the body is {{\"note\": ...}}"),
                ));
            }
        }
    }
    Ok(note)
}
