//! When a schedule fires, and which fires a pass makes.
//!
//! Cron expressions are parsed and searched by croner, in the schedule's IANA zone
//! (chrono-tz). Across a change of the clocks, cron's long-standing rule applies (cronie,
//! Hangfire's Cronos): a time that does not exist on a spring-forward day fires at the first
//! instant after the gap; a time that occurs twice on a fall-back day fires once, at its first
//! occurrence; an expression that fires every second, minute or hour follows absolute time.
//! [`Fires::after`] also guarantees what the rest of Kairos relies on: each fire is later than
//! the instant it is searched from, so a schedule's fires only move forward.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Offset, Timelike, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::{Cron, JobType};
use uuid::Uuid;

use super::Recurrence;

/// The shortest interval of an `every` schedule.
pub const MIN_EVERY: Duration = Duration::from_secs(1);

/// A schedule's timing that is not acceptable, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TimingError {
    pub field: &'static str,
    pub message: String,
}

impl TimingError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// How a schedule's fires are found.
#[derive(Debug, Clone)]
enum Rule {
    Cron(Box<Cron>),
    Every(chrono::Duration),
}

/// The fires of one schedule: its rule, zone and bounds.
#[derive(Debug, Clone)]
pub struct Fires {
    rule: Rule,
    zone: Tz,
    /// Where an interval counts from.
    anchor: DateTime<Utc>,
    start_at: Option<DateTime<Utc>>,
    end_at: Option<DateTime<Utc>>,
}

/// Parses an IANA zone name.
///
/// # Errors
/// [`TimingError`] on `timezone` for a name the time zone database does not know.
pub fn zone(name: &str) -> Result<Tz, TimingError> {
    Tz::from_str(name).map_err(|_| {
        TimingError::new(
            "timezone",
            format!("`{name}` is not an IANA time zone name (such as `Europe/Berlin` or `UTC`)"),
        )
    })
}

/// Parses a cron expression: 5 fields (minutes), 6 (with seconds), or a macro (`@hourly`).
///
/// # Errors
/// [`TimingError`] on `cron`, saying what is wrong.
pub fn cron(expression: &str) -> Result<Cron, TimingError> {
    let fields = expression.split_whitespace().count();
    if !expression.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
        return Err(TimingError::new(
            "cron",
            format!(
                "`{expression}` has {fields} fields; a cron expression has 5 (minute hour \
                 day-of-month month day-of-week) or 6 (with seconds first)"
            ),
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expression)
        .map_err(|error| TimingError::new("cron", format!("`{expression}`: {error}")))
}

impl Fires {
    /// The fires of `recurrence` in `timezone`, an interval counted from `anchor`, none before
    /// `start_at` or after `end_at`.
    ///
    /// # Errors
    /// [`TimingError`] naming `cron`, `every` or `timezone`.
    pub fn new(
        recurrence: &Recurrence,
        timezone: &str,
        anchor: DateTime<Utc>,
        start_at: Option<DateTime<Utc>>,
        end_at: Option<DateTime<Utc>>,
    ) -> Result<Self, TimingError> {
        let zone = zone(timezone)?;
        let rule = match recurrence {
            Recurrence::Cron(expression) => Rule::Cron(Box::new(cron(expression)?)),
            Recurrence::Every(every) => {
                if *every < MIN_EVERY {
                    return Err(TimingError::new("every", "`every` must be at least 1s"));
                }
                Rule::Every(
                    chrono::Duration::from_std(*every)
                        .map_err(|_| TimingError::new("every", "`every` is too long"))?,
                )
            }
        };
        Ok(Self {
            rule,
            zone,
            anchor,
            start_at,
            end_at,
        })
    }

    /// The first fire strictly after `after`, within the bounds; `None` when none is left.
    pub fn after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = match self.start_at {
            // The first fire may fall on `start_at` itself.
            Some(start) if start > after => start - chrono::Duration::microseconds(1),
            _ => after,
        };
        let next = match &self.rule {
            Rule::Every(every) => {
                let since = after - self.anchor;
                let steps = if since < chrono::Duration::zero() {
                    0
                } else {
                    since.num_microseconds()? / every.num_microseconds()? + 1
                };
                self.anchor + *every * i32::try_from(steps).ok()?
            }
            Rule::Cron(cron) => self.cron_after(cron, after)?,
        };
        match self.end_at {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// The first cron fire strictly after `after`, wrapping two things croner (3.0) does
    /// otherwise across a fall-back's repeated hour:
    ///
    /// - from the second pass of the repeated hour, it may answer an instant of the first
    ///   pass, earlier in absolute time: the search runs again in the offset in force at
    ///   `after`, where no wall-clock time repeats;
    /// - an expression that fires every second, minute or hour skips the second pass: the
    ///   rule is that such expressions follow absolute time, so the second pass is searched
    ///   too, in the offset in force after the change, and its fires come first.
    fn cron_after(&self, cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Fires fall on whole seconds, and croner keeps the fraction it is given.
        let after = after.with_nanosecond(0)?;
        let local = after.with_timezone(&self.zone);
        let mut found = cron
            .find_next_occurrence(&local, false)
            .ok()?
            .with_timezone(&Utc);
        if found <= after {
            let fixed = local.offset().fix();
            found = cron
                .find_next_occurrence(&after.with_timezone(&fixed), false)
                .ok()?
                .with_timezone(&Utc);
            if found <= after {
                return None;
            }
        }
        let before = local.offset().fix();
        let later = found.with_timezone(&self.zone).offset().fix();
        if cron.determine_job_type() == JobType::IntervalWildcard
            && later.local_minus_utc() < before.local_minus_utc()
        {
            // The clocks went back between `after` and the answer: the second pass's fires,
            // read in the offset in force after the change.
            let second = cron
                .find_next_occurrence(&after.with_timezone(&later), false)
                .ok()?
                .with_timezone(&Utc);
            if second > after && second < found {
                return Some(second);
            }
        }
        Some(found)
    }

    /// Up to `count` fires from `from` on (`from` itself included).
    pub fn upcoming(&self, from: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::with_capacity(count);
        let mut after = from - chrono::Duration::microseconds(1);
        while fires.len() < count {
            let Some(next) = self.after(after) else { break };
            fires.push(next);
            after = next;
        }
        fires
    }
}

/// How much later than its nominal time fire `at` of `schedule` starts, with a jitter of up
/// to `jitter_secs`: the same for the same fire on every process and after every restart.
pub fn jitter(schedule: Uuid, at: DateTime<Utc>, jitter_secs: i32) -> chrono::Duration {
    if jitter_secs <= 0 {
        return chrono::Duration::zero();
    }
    // FNV-1a over the schedule's id and the fire's instant: stable across releases, unlike
    // the standard library's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in schedule
        .as_bytes()
        .iter()
        .chain(at.timestamp_micros().to_le_bytes().iter())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let range = u64::try_from(jitter_secs).unwrap_or(0) * 1000 + 1;
    chrono::Duration::milliseconds(i64::try_from(hash % range).unwrap_or(0))
}

/// What a fire pass makes of one schedule's fires due before `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The nominal times of the fires to make now.
    pub make: Vec<DateTime<Utc>>,
    /// Fires skipped by the catch-up rule.
    pub missed: i64,
    /// The schedule's next fire once these are made (`None`: none is left).
    pub next: Option<DateTime<Utc>>,
}

/// Plans the fires from `next` (the schedule's next fire not made) up to `until`, at most
/// `limit` of them. A fire whose time passed more than `late` ago was missed (every process
/// was down, or the schedule paused): of those, the latest within `catchup` of `now` is made,
/// once, and the others are counted missed. So a schedule that comes back after a long outage
/// runs at most one job for what it missed, never a storm.
pub fn plan(
    fires: &Fires,
    next: DateTime<Utc>,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
    late: Duration,
    catchup: Duration,
    limit: usize,
) -> Plan {
    let late_before = now - chrono::Duration::from_std(late).unwrap_or_default();
    let catchup_from = now - chrono::Duration::from_std(catchup).unwrap_or_default();
    let mut plan = Plan {
        make: Vec::new(),
        missed: 0,
        next: Some(next),
    };
    let mut caught_up: Option<DateTime<Utc>> = None;
    let mut at = Some(next);
    while let Some(fire) = at {
        if fire >= until || plan.make.len() >= limit {
            break;
        }
        if fire < late_before {
            // Missed: only the latest within the window is made.
            if fire >= catchup_from {
                if caught_up.replace(fire).is_some() {
                    plan.missed += 1;
                }
            } else {
                plan.missed += 1;
            }
        } else {
            if let Some(caught) = caught_up.take() {
                plan.make.push(caught);
            }
            plan.make.push(fire);
        }
        at = fires.after(fire);
    }
    if let Some(caught) = caught_up {
        plan.make.insert(0, caught);
    }
    plan.make.sort_unstable();
    plan.next = at;
    plan
}

#[cfg(test)]
mod tests;
