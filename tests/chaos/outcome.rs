//! What a scenario measured, counted from the database and from the run log its jobs write,
//! and what every scenario must show.

use std::time::Duration;

/// What a scenario measured.
#[derive(Debug)]
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
    /// for all.
    pub fn assert_lateness(&self, p99: Duration, max: Duration) {
        assert!(
            self.lateness(0.99) <= p99 && self.lateness(1.0) <= max,
            "lateness p99 {:?} (bound {p99:?}), max {:?} (bound {max:?}): {self:?}",
            self.lateness(0.99),
            self.lateness(1.0)
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
