//! The last hour of this process's figures, in ten-second slots: runs that succeeded, runs
//! that failed, and the fire lateness of the attempts it started, for the dashboard's charts
//! (`GET /api/v1/stats`). Prometheus keeps the long history; this is what a process can show
//! by itself.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

/// The seconds one slot covers.
pub const SLOT_SECS: i64 = 10;
/// The slots kept: an hour.
pub const SLOTS: usize = 360;
/// Lateness buckets: bucket `i` holds what is below `FIRST_BOUND_MICROS · 2^(i/4)`, so that a
/// quantile read from them is at most 19 % above the figure measured; the last holds the rest.
const BUCKETS: usize = 80;
const FIRST_BOUND_MICROS: f64 = 100.0;

#[derive(Debug, Clone)]
struct Slot {
    /// Seconds since the epoch divided by [`SLOT_SECS`].
    index: i64,
    succeeded: u32,
    failed: u32,
    lateness: [u32; BUCKETS],
}

impl Slot {
    fn new(index: i64) -> Self {
        Self {
            index,
            succeeded: 0,
            failed: 0,
            lateness: [0; BUCKETS],
        }
    }

    /// The upper bound, in milliseconds, of the bucket holding quantile `q` of the lateness.
    fn lateness_quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.lateness.iter().map(|&count| u64::from(count)).sum();
        if total == 0 {
            return None;
        }
        // The rank of the quantile, 1-based: the smallest count that reaches q of the total.
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "counts of one slot are far below 2^52"
        )]
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0_u64;
        for (bucket, &count) in self.lateness.iter().enumerate() {
            seen += u64::from(count);
            if seen >= rank {
                return Some(bucket_bound_micros(bucket) / 1000.0);
            }
        }
        None
    }
}

/// The upper bound of `bucket`, in microseconds.
fn bucket_bound_micros(bucket: usize) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "bucket < 80")]
    let exponent = bucket as f64 / 4.0;
    FIRST_BOUND_MICROS * exponent.exp2()
}

/// The bucket of a lateness of `seconds`.
fn bucket_of(seconds: f64) -> usize {
    let micros = seconds * 1e6;
    if micros.is_nan() || micros < FIRST_BOUND_MICROS {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a finite, positive logarithm, then clamped"
    )]
    let bucket = ((micros / FIRST_BOUND_MICROS).log2() * 4.0).floor() as usize + 1;
    bucket.min(BUCKETS - 1)
}

/// One slot of the series `GET /api/v1/stats` answers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TrendPoint {
    /// The start of the slot.
    pub at: DateTime<Utc>,
    /// Runs that ended `SUCCESS`, per second over the slot.
    pub succeeded_per_sec: f64,
    /// Runs that ended `FAILED` (their retries spent), per second over the slot.
    pub failed_per_sec: f64,
    /// The median lateness of the attempts started in the slot, in milliseconds (to within
    /// 19 %, rounded up); absent when none started.
    pub lateness_p50_ms: Option<f64>,
    /// The 99th percentile of the same.
    pub lateness_p99_ms: Option<f64>,
}

/// The last hour of figures, one slot per ten seconds.
#[derive(Debug, Default)]
pub struct Trends {
    slots: Mutex<VecDeque<Slot>>,
}

impl Trends {
    /// A run ended `SUCCESS`.
    pub fn succeeded(&self) {
        self.with_slot(Utc::now(), |slot| slot.succeeded += 1);
    }

    /// A run ended `FAILED`.
    pub fn failed(&self) {
        self.with_slot(Utc::now(), |slot| slot.failed += 1);
    }

    /// An attempt started at `at`, `seconds` after its time.
    pub fn lateness(&self, at: DateTime<Utc>, seconds: f64) {
        let bucket = bucket_of(seconds);
        self.with_slot(at, |slot| slot.lateness[bucket] += 1);
    }

    fn with_slot(&self, now: DateTime<Utc>, change: impl FnOnce(&mut Slot)) {
        let index = now.timestamp().div_euclid(SLOT_SECS);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.back().is_none_or(|slot| slot.index < index) {
            slots.push_back(Slot::new(index));
            while slots.len() > SLOTS {
                slots.pop_front();
            }
        }
        // A clock stepped back writes into the newest slot.
        if let Some(slot) = slots.back_mut() {
            change(slot);
        }
    }

    /// The hour up to `now`, oldest slot first, every slot present (those without figures
    /// as zeros); the last is the slot in progress.
    pub fn series(&self, now: DateTime<Utc>) -> Vec<TrendPoint> {
        let last = now.timestamp().div_euclid(SLOT_SECS);
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let mut kept = slots.iter().peekable();
        #[allow(clippy::cast_possible_wrap, reason = "SLOTS is 360")]
        let first = last - SLOTS as i64 + 1;
        (first..=last)
            .map(|index| {
                while kept.peek().is_some_and(|slot| slot.index < index) {
                    kept.next();
                }
                let empty = Slot::new(index);
                let slot = match kept.peek() {
                    Some(slot) if slot.index == index => *slot,
                    _ => &empty,
                };
                #[allow(clippy::cast_precision_loss, reason = "small counts")]
                let per_sec = |count: u32| f64::from(count) / SLOT_SECS as f64;
                TrendPoint {
                    at: Utc
                        .timestamp_opt(index * SLOT_SECS, 0)
                        .single()
                        .unwrap_or(now),
                    succeeded_per_sec: per_sec(slot.succeeded),
                    failed_per_sec: per_sec(slot.failed),
                    lateness_p50_ms: slot.lateness_quantile_ms(0.5),
                    lateness_p99_ms: slot.lateness_quantile_ms(0.99),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0)
            .single()
            .expect("a time")
    }

    #[test]
    fn figures_land_in_the_slot_of_their_time_and_an_hour_is_kept() {
        let trends = Trends::default();
        trends.with_slot(at(0), |slot| slot.succeeded += 20);
        trends.with_slot(at(5), |slot| slot.failed += 10);
        trends.with_slot(at(3600), |slot| slot.succeeded += 5);
        let series = trends.series(at(3600));
        assert_eq!(series.len(), SLOTS);
        // The first slot fell out of the hour; the last holds the newest figure.
        assert!(
            series
                .iter()
                .take(SLOTS - 1)
                .all(|point| point.succeeded_per_sec == 0.0)
        );
        assert_eq!(series[SLOTS - 1].succeeded_per_sec, 0.5);
        assert_eq!(series[SLOTS - 1].at, at(3600));

        let series = trends.series(at(10));
        assert_eq!(series[SLOTS - 2].succeeded_per_sec, 2.0);
        assert_eq!(series[SLOTS - 2].failed_per_sec, 1.0);
    }

    #[test]
    fn lateness_quantiles_are_within_a_bucket_above_the_figures() {
        let trends = Trends::default();
        for _ in 0..98 {
            trends.with_slot(at(0), |slot| slot.lateness[bucket_of(0.002)] += 1);
        }
        for _ in 0..2 {
            trends.with_slot(at(0), |slot| slot.lateness[bucket_of(0.5)] += 1);
        }
        let point = &trends.series(at(0))[SLOTS - 1];
        let p50 = point.lateness_p50_ms.expect("a median");
        let p99 = point.lateness_p99_ms.expect("a p99");
        assert!((2.0..2.0 * 1.19).contains(&p50), "p50 {p50}");
        assert!((500.0..500.0 * 1.19).contains(&p99), "p99 {p99}");
        assert_eq!(trends.series(at(20))[SLOTS - 1].lateness_p50_ms, None);
    }

    #[test]
    fn every_lateness_has_a_bucket() {
        assert_eq!(bucket_of(-1.0), 0);
        assert_eq!(bucket_of(f64::NAN), 0);
        assert_eq!(bucket_of(1e9), BUCKETS - 1);
        assert!(bucket_bound_micros(bucket_of(0.010)) > 10_000.0);
    }
}
