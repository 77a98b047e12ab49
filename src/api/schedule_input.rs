//! Reading and checking schedule bodies (a create, a change, a preview), so that every
//! problem is answered with the field it is about.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::job_fields::JobFields;
use super::job_input::{parse_instant, parse_job};
use crate::config::JobSettings;
use crate::domain::schedule::fires::{Fires, TimingError};
use crate::domain::{JobTemplate, NewSchedule, Overlap, Recurrence, Schedule};

mod actions;

pub use actions::{backfill_fires, parse_preview, pause_note};

/// The fields of a schedule.
pub const FIELDS: [&str; 12] = [
    "name",
    "cron",
    "every",
    "timezone",
    "job",
    "overlap",
    "catchup_window_secs",
    "jitter_secs",
    "start_at",
    "end_at",
    "paused",
    "keep_last",
];

const DEFAULT_CATCHUP_SECS: i32 = 60;
const MAX_CATCHUP_SECS: i64 = 7 * 24 * 3600;
const MAX_JITTER_SECS: i64 = 24 * 3600;
const DEFAULT_KEEP_LAST: i32 = 100;
const MAX_KEEP_LAST: i64 = 100_000;
const MAX_NAME_CHARS: usize = 200;

impl From<TimingError> for ApiError {
    fn from(error: TimingError) -> Self {
        ApiError::invalid(error.field, "invalid_field", error.message)
    }
}

/// A schedule body's fields, by name; `null` reads as absent.
pub struct Body(Map<String, Value>);

impl Body {
    /// The body's fields, refusing any that is not a schedule's.
    ///
    /// # Errors
    /// 400 naming the unknown field.
    pub fn new(fields: Map<String, Value>) -> Result<Self, ApiError> {
        if let Some(unknown) = fields.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            return Err(ApiError::invalid(
                unknown,
                "unknown_field",
                format!(
                    "`{unknown}` is not a schedule field; known fields: {}",
                    FIELDS.join(", ")
                ),
            ));
        }
        Ok(Self(
            fields
                .into_iter()
                .filter(|(_, value)| !value.is_null())
                .collect(),
        ))
    }

    fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    fn text(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(field) {
            None => Ok(None),
            Some(Value::String(text)) if !text.contains('\0') => Ok(Some(text)),
            Some(_) => Err(ApiError::invalid(
                field,
                "invalid_field",
                format!("`{field}` must be a string without NUL characters"),
            )),
        }
    }

    fn integer(
        &self,
        field: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i32>, ApiError> {
        match self.0.get(field) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .filter(|n| range.contains(n))
                .and_then(|n| i32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    ApiError::invalid(
                        field,
                        "invalid_field",
                        format!(
                            "`{field}` must be an integer from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    )
                }),
        }
    }

    fn instant(&self, field: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.text(field)?
            .map(|text| {
                parse_instant(text).map_err(|_| {
                    ApiError::invalid(
                        field,
                        "invalid_field",
                        format!("`{field}` must be an RFC 3339 time with an offset"),
                    )
                })
            })
            .transpose()
    }

    fn recurrence(&self) -> Result<Option<Recurrence>, ApiError> {
        match (self.text("cron")?, self.text("every")?) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "every",
                "invalid_field",
                "give `cron` or `every`, not both",
            )),
            (Some(cron), None) => Ok(Some(Recurrence::Cron(cron.to_owned()))),
            (None, Some(every)) => humantime::parse_duration(every)
                .map(|every| Some(Recurrence::Every(every)))
                .map_err(|error| {
                    ApiError::invalid(
                        "every",
                        "invalid_field",
                        format!("`every` must be a duration such as \"10s\" or \"15m\": {error}"),
                    )
                }),
            (None, None) => Ok(None),
        }
    }

    fn overlap(&self) -> Result<Option<Overlap>, ApiError> {
        self.text("overlap")?
            .map(|text| {
                Overlap::parse(text).ok_or_else(|| {
                    let known: Vec<&str> = Overlap::ALL
                        .iter()
                        .map(|overlap| overlap.as_str())
                        .collect();
                    ApiError::invalid(
                        "overlap",
                        "invalid_field",
                        format!("`overlap` must be one of {}", known.join(", ")),
                    )
                })
            })
            .transpose()
    }

    fn name(&self) -> Result<Option<String>, ApiError> {
        match self.text("name")? {
            Some(name) if name.chars().count() > MAX_NAME_CHARS => Err(ApiError::invalid(
                "name",
                "invalid_field",
                format!("`name` must be at most {MAX_NAME_CHARS} characters"),
            )),
            name => Ok(name.map(str::to_owned)),
        }
    }

    fn job(&self, limits: &JobSettings) -> Result<Option<JobTemplate>, ApiError> {
        let Some(value) = self.0.get("job") else {
            return Ok(None);
        };
        let not_object = || {
            ApiError::invalid(
                "job",
                "invalid_field",
                "`job` must be a JSON object: a job's fields without `execute_at`",
            )
        };
        if !value.is_object() {
            return Err(not_object());
        }
        let mut fields: JobFields =
            serde_json::from_value(value.clone()).map_err(|_| not_object())?;
        if fields.execute_at.is_some() {
            return Err(ApiError::invalid(
                "job.execute_at",
                "invalid_field",
                "a schedule's job takes its time from the schedule: leave `execute_at` out",
            ));
        }
        // The template keeps no time; the check of a create wants one.
        fields.execute_at = Some(Value::String("2000-01-01T00:00:00Z".into()));
        let job = parse_job(fields, limits, false).map_err(|mut error| {
            error.field = error.field.map(|field| format!("job.{field}"));
            error
        })?;
        Ok(Some(JobTemplate {
            name: job.job.name,
            spec: job.job.spec,
            max_retries: job.job.max_retries,
            timeout_secs: job.job.timeout_secs,
            metadata: job.job.metadata,
            retry_backoff: job.job.retry_backoff,
        }))
    }

    fn paused(&self) -> Result<Option<bool>, ApiError> {
        match self.0.get("paused") {
            None => Ok(None),
            Some(Value::Bool(paused)) => Ok(Some(*paused)),
            Some(_) => Err(ApiError::invalid(
                "paused",
                "invalid_field",
                "`paused` must be true or false",
            )),
        }
    }
}

/// The first fire of `schedule` at or after `from`, or `None`.
fn first_fire(
    schedule: &NewSchedule,
    from: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let anchor = schedule.start_at.unwrap_or(from);
    let just_before = from - chrono::Duration::microseconds(1);
    let unbounded = Fires::new(&schedule.recurrence, &schedule.timezone, anchor, None, None)?;
    if unbounded.after(just_before).is_none() {
        let field = match schedule.recurrence {
            Recurrence::Cron(_) => "cron",
            Recurrence::Every(_) => "every",
        };
        return Err(ApiError::invalid(
            field,
            "never_fires",
            format!("`{field}` never matches a time from now on"),
        ));
    }
    let fires = Fires::new(
        &schedule.recurrence,
        &schedule.timezone,
        anchor,
        schedule.start_at,
        schedule.end_at,
    )?;
    Ok(fires.after(just_before))
}

fn check_bounds(schedule: &NewSchedule) -> Result<(), ApiError> {
    if let (Some(start), Some(end)) = (schedule.start_at, schedule.end_at)
        && end <= start
    {
        return Err(ApiError::invalid(
            "end_at",
            "invalid_field",
            "`end_at` must be after `start_at`",
        ));
    }
    Ok(())
}

/// Checks a new schedule's body. An `every` schedule without `start_at` counts its interval
/// from now, which becomes its `start_at`, and first fires one interval later.
///
/// # Errors
/// 400 naming the field at fault.
pub fn parse_new(
    body: &Body,
    limits: &JobSettings,
    now: DateTime<Utc>,
) -> Result<NewSchedule, ApiError> {
    let recurrence = body.recurrence()?.ok_or_else(|| {
        ApiError::invalid(
            "cron",
            "missing_field",
            "a schedule needs `cron` (an expression) or `every` (an interval)",
        )
    })?;
    let job = body.job(limits)?.ok_or_else(|| {
        ApiError::invalid(
            "job",
            "missing_field",
            "`job` is required: the job each fire makes",
        )
    })?;
    let mut start_at = body.instant("start_at")?;
    // Counted from its creation, an interval's first fire is one interval later.
    let mut first_from = now;
    if matches!(recurrence, Recurrence::Every(_)) && start_at.is_none() {
        start_at = Some(now);
        first_from = now + chrono::Duration::microseconds(1);
    }
    let mut schedule = NewSchedule {
        id: Uuid::now_v7(),
        name: body.name()?,
        recurrence,
        timezone: body.text("timezone")?.unwrap_or("UTC").to_owned(),
        job,
        overlap: body.overlap()?.unwrap_or_default(),
        catchup_window_secs: body
            .integer("catchup_window_secs", 0..=MAX_CATCHUP_SECS)?
            .unwrap_or(DEFAULT_CATCHUP_SECS),
        jitter_secs: body
            .integer("jitter_secs", 0..=MAX_JITTER_SECS)?
            .unwrap_or(0),
        start_at,
        end_at: body.instant("end_at")?,
        paused: body.paused()?.unwrap_or(false),
        keep_last: body
            .integer("keep_last", 0..=MAX_KEEP_LAST)?
            .unwrap_or(DEFAULT_KEEP_LAST),
        next_fire_at: None,
        created_by: None,
    };
    check_bounds(&schedule)?;
    schedule.next_fire_at = first_fire(&schedule, first_from)?;
    Ok(schedule)
}

/// Applies a change's body to `current`. A new rule, zone or bounds apply from the first fire
/// not made yet: its next fire is the new rule's first at or after the later of now and the
/// fire it was to make next.
///
/// # Errors
/// 400 naming the field at fault (`paused` is changed by `:pause` and `:resume`).
pub fn parse_change(
    body: &Body,
    current: &Schedule,
    limits: &JobSettings,
    now: DateTime<Utc>,
) -> Result<NewSchedule, ApiError> {
    if body.has("paused") {
        return Err(ApiError::invalid(
            "paused",
            "invalid_field",
            "pause and resume a schedule with POST …:pause and …:resume",
        ));
    }
    let recurrence = body.recurrence()?.unwrap_or_else(|| current.recurrence());
    let mut start_at = if body.has("start_at") {
        body.instant("start_at")?
    } else {
        current.start_at
    };
    if matches!(recurrence, Recurrence::Every(_)) && start_at.is_none() {
        start_at = Some(now);
    }
    let mut schedule = NewSchedule {
        id: current.id,
        name: if body.has("name") {
            body.name()?
        } else {
            current.name.clone()
        },
        recurrence,
        timezone: body
            .text("timezone")?
            .map_or_else(|| current.timezone.clone(), str::to_owned),
        job: body.job(limits)?.unwrap_or_else(|| current.job.clone()),
        overlap: body.overlap()?.unwrap_or(current.overlap),
        catchup_window_secs: body
            .integer("catchup_window_secs", 0..=MAX_CATCHUP_SECS)?
            .unwrap_or(current.catchup_window_secs),
        jitter_secs: body
            .integer("jitter_secs", 0..=MAX_JITTER_SECS)?
            .unwrap_or(current.jitter_secs),
        start_at,
        end_at: if body.has("end_at") {
            body.instant("end_at")?
        } else {
            current.end_at
        },
        paused: current.paused,
        keep_last: body
            .integer("keep_last", 0..=MAX_KEEP_LAST)?
            .unwrap_or(current.keep_last),
        next_fire_at: None,
        created_by: current.created_by.clone(),
    };
    check_bounds(&schedule)?;
    let from = current.next_fire_at.map_or(now, |next| next.max(now));
    schedule.next_fire_at = first_fire(&schedule, from)?;
    Ok(schedule)
}
