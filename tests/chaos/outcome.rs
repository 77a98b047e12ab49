//! What a scenario measured, counted from the database and from the run log its jobs write,
//! and what every scenario must show.

use std::fmt;
use std::time::Duration;

/// Attempts named when a lateness bound fails: the latest ones.
const SLOWEST: i64 = 8;

/// What a scenario measured.
pub struct Outcome {
    pub jobs: usize,
    /// Jobs that did not end SUCCESS.
    pub lost: usize,
    /// Runs beyond the first of a job, counted in the run log.
    pub duplicate_runs: usize,
    /// Runs beyond the first of one (job, attempt): never allowed.
    pub same_attempt_runs: usize,
    /// Jobs whose command ran at least once.
    pub jobs_run: usize,
    /// Attempts recorded LOST (in flight on a killed process).
    pub lost_attempts: usize,
    /// Each job's lateness: its successful attempt's start minus its due time, sorted.
    pub lateness: Vec<Duration>,
    /// The longest time from due to finished among jobs that had to be dispatched again.
    pub recovery: Duration,
    /// The latest successful attempts, described for a failure message: when they were due
    /// and started, under which epoch, after how many lost attempts.
    pub slowest: Vec<String>,
    /// What the scenario did to the processes, and when (kills and restarts).
    pub timeline: Vec<String>,
}

/// The [`SLOWEST`] latest successful attempts in the database `client` reads, one line each
/// (the store keeps no record of the process that ran an ended attempt: set their due times
/// beside the scenario's timeline).
pub async fn slowest_attempts(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT h.job_id::text, h.attempt, h.epoch, h.scheduled_at::text, \
                 h.started_at::text, EXTRACT(EPOCH FROM h.started_at - h.scheduled_at)::float8, \
                 j.lost_attempts \
             FROM job_history h JOIN jobs j ON j.id = h.job_id \
             WHERE h.status = 'SUCCEEDED' \
             ORDER BY h.started_at - h.scheduled_at DESC LIMIT $1",
            &[&SLOWEST],
        )
        .await
        .expect("slowest attempts query")
        .iter()
        .map(|row| {
            format!(
                "job {} attempt {} epoch {}: due {}, started {} ({:.3} s late), {} lost before",
                row.get::<_, String>(0),
                row.get::<_, i32>(1),
                row.get::<_, i64>(2),
                row.get::<_, String>(3),
                row.get::<_, String>(4),
                row.get::<_, f64>(5),
                row.get::<_, i32>(6),
            )
        })
        .collect()
}

impl fmt::Debug for Outcome {
    /// Everything but each job's lateness, which is summed up as p50, p99 and max.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outcome")
            .field("jobs", &self.jobs)
            .field("lost", &self.lost)
            .field("duplicate_runs", &self.duplicate_runs)
            .field("same_attempt_runs", &self.same_attempt_runs)
            .field("jobs_run", &self.jobs_run)
            .field("lost_attempts", &self.lost_attempts)
            .field(
                "lateness p50 / p99 / max",
                &[self.lateness(0.5), self.lateness(0.99), self.lateness(1.0)],
            )
            .field("recovery", &self.recovery)
            .finish_non_exhaustive()
    }
}

impl Outcome {
    /// The `fraction` percentile of the jobs' lateness (nearest rank).
    pub fn lateness(&self, fraction: f64) -> Duration {
        if self.lateness.is_empty() {
            return Duration::ZERO;
        }
        let rank = (fraction * self.lateness.len() as f64).ceil() as usize;
        self.lateness[rank.clamp(1, self.lateness.len()) - 1]
    }

    /// Prints the scenario's row of the chaos table.
    pub fn print_row(&self, scenario: &str) {
        println!(
            "| scenario | jobs | lost | duplicate runs | lost attempts | lateness p50 | p99 | max | recovery time |"
        );
        println!(
            "| {scenario} | {} | {} | {} | {} | {:.3} s | {:.3} s | {:.3} s | {:.2} s |",
            self.jobs,
            self.lost,
            self.duplicate_runs,
            self.lost_attempts,
            self.lateness(0.5).as_secs_f64(),
            self.lateness(0.99).as_secs_f64(),
            self.lateness(1.0).as_secs_f64(),
            self.recovery.as_secs_f64()
        );
    }

    /// Asserts that the jobs' lateness was at most `p99` for 99 % of them and at most `max`
    /// for all; a failure names the latest attempts and what was done to the processes.
    pub fn assert_lateness(&self, p99: Duration, max: Duration) {
        assert!(
            self.lateness(0.99) <= p99 && self.lateness(1.0) <= max,
            "lateness p99 {:?} (bound {p99:?}), max {:?} (bound {max:?}): {self:?}\n\
             the latest attempts:\n  {}\nthe processes:\n  {}",
            self.lateness(0.99),
            self.lateness(1.0),
            self.slowest.join("\n  "),
            self.timeline.join("\n  ")
        );
    }

    /// What every scenario must show: every job ran and succeeded; no attempt ran twice; a
    /// job ran again only after an attempt of it was lost on a killed process.
    pub fn assert_sound(&self) {
        assert_eq!(self.lost, 0, "jobs lost: {self:?}");
        assert_eq!(self.jobs_run, self.jobs, "jobs never run: {self:?}");
        assert_eq!(self.same_attempt_runs, 0, "an attempt ran twice: {self:?}");
        assert!(
            self.duplicate_runs <= self.lost_attempts,
            "re-runs beyond the attempts lost in flight: {self:?}"
        );
    }
}
