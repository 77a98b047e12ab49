//! Recurring schedules: when they fire, what each fire makes, and what a fire does when the
//! previous one's job has not ended. `docs/schedules.md` says the rules.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{JobSpec, RetryPolicy};

pub mod fires;

/// What a fire does when the job of an earlier fire of its schedule has not ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The fire's job is not run: it ends `SKIPPED`.
    #[default]
    Skip,
    /// The fire's job waits until the earlier one ends; a further fire meanwhile is skipped.
    BufferOne,
    /// The fire's job runs beside the earlier one.
    AllowAll,
    /// The earlier fire's job is cancelled, and this one runs.
    CancelPrevious,
}

impl Overlap {
    /// Every rule.
    pub const ALL: [Overlap; 4] = [
        Overlap::Skip,
        Overlap::BufferOne,
        Overlap::AllowAll,
        Overlap::CancelPrevious,
    ];

    /// The spelling stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::BufferOne => "buffer_one",
            Overlap::AllowAll => "allow_all",
            Overlap::CancelPrevious => "cancel_previous",
        }
    }

    /// Parses [`Overlap::as_str`]'s spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|overlap| overlap.as_str() == text)
    }
}

/// When a schedule fires: a cron expression in a time zone, or a fixed interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recurrence {
    /// 5 fields (minutes), 6 (with seconds) or a macro such as `@hourly`.
    Cron(String),
    /// Every this long, counted from `start_at` or the schedule's creation.
    Every(Duration),
}

/// The job each fire makes: what a create takes, but its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub spec: JobSpec,
    pub max_retries: i32,
    pub timeout_secs: i32,
    #[serde(default)]
    pub metadata: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<RetryPolicy>,
}

/// A schedule as it is given, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    pub id: Uuid,
    pub name: Option<String>,
    pub recurrence: Recurrence,
    /// An IANA zone name (`UTC` unless given).
    pub timezone: String,
    pub job: JobTemplate,
    pub overlap: Overlap,
    pub catchup_window_secs: i32,
    pub jitter_secs: i32,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub paused: bool,
    pub keep_last: i32,
    /// Its first fire (none: it never fires), computed when it is given.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The name of the API token that created it (kept by a change).
    pub created_by: Option<String>,
}

/// A stored schedule, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Schedule {
    pub id: Uuid,
    pub name: Option<String>,
    /// Exactly one of `cron` and `every`.
    pub cron: Option<String>,
    #[serde(with = "humantime_serde")]
    #[schema(value_type = Option<String>, example = "15m")]
    pub every: Option<Duration>,
    pub timezone: String,
    pub job: JobTemplate,
    pub overlap: Overlap,
    pub catchup_window_secs: i32,
    pub jitter_secs: i32,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub paused: bool,
    pub pause_note: Option<String>,
    pub keep_last: i32,
    /// The next fire not made yet; `null` when none is left.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Fires older than the catch-up window when they were due (the deployment was down, or
    /// the schedule paused), skipped rather than run late.
    pub missed_fires: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The name of the API token that created it; its fires' jobs carry it too.
    pub created_by: Option<String>,
}

impl Schedule {
    /// How it fires.
    pub fn recurrence(&self) -> Recurrence {
        match (&self.cron, self.every) {
            (Some(cron), _) => Recurrence::Cron(cron.clone()),
            (None, Some(every)) => Recurrence::Every(every),
            (None, None) => Recurrence::Every(Duration::MAX),
        }
    }

    /// When its interval counts from (`every` only).
    pub fn anchor(&self) -> DateTime<Utc> {
        self.start_at.unwrap_or(self.created_at)
    }
}

/// The fire a job was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fire {
    pub schedule_id: Uuid,
    /// The nominal fire time, before jitter.
    #[serde(with = "super::timestamp")]
    pub scheduled_for: DateTime<Utc>,
    /// The schedule's overlap rule when the fire was made.
    pub overlap: Overlap,
}
