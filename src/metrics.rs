//! Prometheus metrics, one registry per running application (so that tests running several
//! applications in one process see only their own figures).
//!
//! The supervision figures (`kairos_actor_*`) are the same numbers `GET /api/v1/admin/actors`
//! shows: both read the gauges and counters kept here.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::actors::ActorKind;
use crate::runner::RunSlots;

mod scrape;
mod trends;
pub use trends::{SLOT_SECS, TrendPoint, Trends};

/// The label of the per-actor-kind metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

impl KindLabel {
    /// The label of `kind`'s metrics.
    pub fn of(kind: ActorKind) -> Self {
        Self {
            kind: kind.as_str(),
        }
    }
}

/// The label of the dead-letter counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
}

/// The label of the per-consumer metrics: `dispatcher` or `result_writer`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabel {
    pub consumer: &'static str,
}

/// The label of the run slots' metrics: `command` or `call`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlotLabel {
    pub slot: &'static str,
}

/// The application's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Actors of each kind currently started.
    pub actors_alive: Family<KindLabel, Gauge>,
    /// Restarts by supervision, per actor kind.
    pub actor_restarts: Family<KindLabel, Counter>,
    /// Executors whose job waits for its time (or for its retry backoff).
    pub executors_waiting: Gauge,
    /// Executors whose command is running.
    pub executors_running: Gauge,
    /// Due dispatches waiting in the dispatcher's queue for an executor
    /// (`executor.max_due_executors`).
    pub dispatches_queued: Gauge,
    /// Reports received by the result writer and not yet committed.
    pub writer_pending: Gauge,
    /// Run slots of each kind taken, and how many there are (read from the slots at each
    /// scrape).
    run_slots_taken: Family<SlotLabel, Gauge>,
    run_slots_limit: Family<SlotLabel, Gauge>,
    slots: Mutex<Option<RunSlots>>,
    /// Bytes of `http.max_body_memory` held by request bodies being read.
    pub body_bytes_held: Gauge,
    pub jobs_created: Counter,
    pub jobs_dispatched: Counter,
    pub jobs_succeeded: Counter,
    pub jobs_failed: Counter,
    /// Jobs cancelled through this process's API.
    pub jobs_cancelled: Counter,
    /// Running attempts this process stopped because their job was cancelled.
    pub attempts_cancelled: Counter,
    pub jobs_retried: Counter,
    /// Schedules' fires made (each a job).
    pub fires_made: Counter,
    /// Fires skipped by the catch-up rule.
    pub fires_missed: Counter,
    /// Fires whose job ended `SKIPPED` by its schedule's overlap rule.
    pub fires_skipped: Counter,
    /// Finished jobs deleted by the retention pass.
    pub jobs_purged: Counter,
    /// Jobs dispatched again after their lease ran out.
    pub jobs_recovered: Counter,
    /// Attempts lost to a crash (their executor or process died while they ran).
    pub attempts_lost: Counter,
    /// Dispatches whose attempt was not started because it was superseded or already started.
    pub dispatches_superseded: Counter,
    /// Duplicate deliveries of a dispatch that were not run again.
    pub dispatches_duplicate: Counter,
    /// Reports the result writer ignored: repeated, behind the stored state, or of an older
    /// dispatch.
    pub reports_ignored: Counter,
    /// Reports the result writer has written, whether they moved their job or were ignored.
    pub reports_written: Counter,
    pub dead_letters: Family<TopicLabel, Counter>,
    /// The process's resident memory, read at each scrape.
    pub resident_memory: Gauge,
    /// Partitions each consumer of this process holds, read at each scrape.
    consumer_partitions: Family<ConsumerLabel, Gauge>,
    consumers: scrape::Consumers,
    /// Seconds between a job's `execute_at` (or retry time) and its command's start.
    pub fire_lateness: Histogram,
    /// Seconds an attempt's command ran.
    pub run_duration: Histogram,
    /// The last hour of outcomes and lateness, for the dashboard.
    pub trends: Trends,
}

impl Metrics {
    /// Creates the registry and every metric in it.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kairos");
        let lateness_buckets = [
            0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let duration_buckets = [
            0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 3600.0,
        ];
        let metrics = Self {
            actors_alive: Family::default(),
            actor_restarts: Family::default(),
            executors_waiting: Gauge::default(),
            executors_running: Gauge::default(),
            dispatches_queued: Gauge::default(),
            run_slots_taken: Family::default(),
            run_slots_limit: Family::default(),
            slots: Mutex::default(),
            writer_pending: Gauge::default(),
            body_bytes_held: Gauge::default(),
            jobs_created: Counter::default(),
            jobs_dispatched: Counter::default(),
            jobs_succeeded: Counter::default(),
            jobs_failed: Counter::default(),
            jobs_cancelled: Counter::default(),
            attempts_cancelled: Counter::default(),
            jobs_retried: Counter::default(),
            fires_made: Counter::default(),
            fires_missed: Counter::default(),
            fires_skipped: Counter::default(),
            jobs_purged: Counter::default(),
            jobs_recovered: Counter::default(),
            attempts_lost: Counter::default(),
            dispatches_superseded: Counter::default(),
            dispatches_duplicate: Counter::default(),
            reports_ignored: Counter::default(),
            reports_written: Counter::default(),
            dead_letters: Family::default(),
            resident_memory: Gauge::default(),
            consumer_partitions: Family::default(),
            consumers: scrape::Consumers::default(),
            fire_lateness: Histogram::new(lateness_buckets),
            run_duration: Histogram::new(duration_buckets),
            trends: Trends::default(),
            registry: Registry::default(),
        };
        registry.register(
            "actor_alive",
            "Actors of each kind currently started",
            metrics.actors_alive.clone(),
        );
        registry.register(
            "actor_restarts",
            "Restarts by supervision, per actor kind",
            metrics.actor_restarts.clone(),
        );
        registry.register(
            "executor_waiting",
            "Jobs whose executor waits for their time or retry",
            metrics.executors_waiting.clone(),
        );
        registry.register(
            "executor_running",
            "Jobs whose command is running",
            metrics.executors_running.clone(),
        );
        registry.register(
            "dispatch_queued",
            "Due dispatches waiting for an executor (executor.max_due_executors)",
            metrics.dispatches_queued.clone(),
        );
        registry.register(
            "run_slots_taken",
            "Run slots taken: commands running (executor.max_concurrent_runs), calls under way \
             (runner.http.max_concurrent_calls)",
            metrics.run_slots_taken.clone(),
        );
        registry.register(
            "run_slots_limit",
            "Run slots of each kind",
            metrics.run_slots_limit.clone(),
        );
        registry.register(
            "http_body_bytes_held",
            "Bytes of http.max_body_memory held by request bodies being read",
            metrics.body_bytes_held.clone(),
        );
        registry.register(
            "result_writer_pending",
            "Reports received and not yet committed",
            metrics.writer_pending.clone(),
        );
        registry.register(
            "jobs_created",
            "Jobs created through the API",
            metrics.jobs_created.clone(),
        );
        registry.register(
            "jobs_dispatched",
            "Jobs claimed and published to the jobs topic",
            metrics.jobs_dispatched.clone(),
        );
        registry.register(
            "jobs_succeeded",
            "Jobs that ended SUCCESS",
            metrics.jobs_succeeded.clone(),
        );
        registry.register(
            "jobs_failed",
            "Jobs that ended FAILED",
            metrics.jobs_failed.clone(),
        );
        registry.register(
            "jobs_cancelled",
            "Jobs cancelled through this process's API",
            metrics.jobs_cancelled.clone(),
        );
        registry.register(
            "attempts_cancelled",
            "Running attempts stopped because their job was cancelled",
            metrics.attempts_cancelled.clone(),
        );
        registry.register(
            "fires_made",
            "Schedules' fires made, each a job",
            metrics.fires_made.clone(),
        );
        registry.register(
            "fires_missed",
            "Schedules' fires skipped by the catch-up rule",
            metrics.fires_missed.clone(),
        );
        registry.register(
            "fires_skipped",
            "Schedules' fires that ended SKIPPED by their overlap rule",
            metrics.fires_skipped.clone(),
        );
        registry.register(
            "jobs_purged",
            "Finished jobs deleted by the retention pass",
            metrics.jobs_purged.clone(),
        );
        registry.register(
            "jobs_retried",
            "Failed attempts followed by a retry",
            metrics.jobs_retried.clone(),
        );
        registry.register(
            "jobs_recovered",
            "Jobs dispatched again after their lease ran out",
            metrics.jobs_recovered.clone(),
        );
        registry.register(
            "attempts_lost",
            "Attempts lost to a crash of their executor or process",
            metrics.attempts_lost.clone(),
        );
        registry.register(
            "dispatches_superseded",
            "Dispatches not run because a newer one exists or the attempt already started",
            metrics.dispatches_superseded.clone(),
        );
        registry.register(
            "dispatches_duplicate",
            "Repeated deliveries of a dispatch, not run again",
            metrics.dispatches_duplicate.clone(),
        );
        registry.register(
            "reports_ignored",
            "Reports that were stale, repeated or of an older dispatch",
            metrics.reports_ignored.clone(),
        );
        registry.register(
            "reports_written",
            "Reports the result writer has committed to the store, applied or ignored",
            metrics.reports_written.clone(),
        );
        registry.register(
            "dead_letters",
            "Malformed records set aside on a dead-letter topic",
            metrics.dead_letters.clone(),
        );
        registry.register(
            "fire_lateness_seconds",
            "Actual start minus scheduled time",
            metrics.fire_lateness.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "How long attempts ran",
            metrics.run_duration.clone(),
        );
        registry.register(
            "resident_memory_bytes",
            "Resident memory of this process",
            metrics.resident_memory.clone(),
        );
        registry.register(
            "consumer_partitions",
            "Partitions of its topic each consumer of this process holds",
            metrics.consumer_partitions.clone(),
        );
        for kind in ActorKind::ALL {
            // Present from the start, so that a scrape shows every kind even before it runs.
            drop(metrics.actors_alive.get_or_create(&KindLabel::of(kind)));
            drop(metrics.actor_restarts.get_or_create(&KindLabel::of(kind)));
        }
        Self {
            registry,
            ..metrics
        }
    }

    /// The metrics in Prometheus's text exposition format.
    pub fn render(&self) -> String {
        self.read_watched();
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
