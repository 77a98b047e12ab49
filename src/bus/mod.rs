//! The bus: where jobs leave for the executors and results come back.
//!
//! Inside a process the actors exchange actix messages; only the dispatch of a job and the
//! report of a result cross the bus, so that scanners, executors and result writers can run
//! in different processes and a record survives the process that produced it. [`Bus`] has
//! two implementations:
//!
//! - [`kafka`]: Apache Kafka, for the distributed mode;
//! - [`in_process`]: queues in memory, for the standalone mode (one process; what a crash
//!   loses from them is recovered from the store by the leases, as a lost Kafka record is).
//!
//! [`Publisher`] speaks the records Kairos exchanges (dispatches, reports, dead letters) over
//! either.

pub mod in_process;
pub mod kafka;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::TopicSettings;
use crate::domain::{AttemptReport, Dispatch};

/// A failure at the bus boundary.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("Kafka client error: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// A request that failed while the client could not connect, and why it could not (a
    /// refused TLS handshake, failed authentication, an unknown host).
    #[error("Kafka client error: {error} ({reason})")]
    Connection {
        error: rdkafka::error::KafkaError,
        reason: String,
    },
    #[error("creating Kafka topic `{topic}` failed: {code}")]
    CreateTopic {
        topic: String,
        code: rdkafka::types::RDKafkaErrorCode,
    },
    #[error("a blocking Kafka call could not complete: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("cannot encode a record: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("topic `{0}` has no partitions")]
    NoPartitions(String),
    #[error("the in-process bus is closed")]
    Closed,
    #[error("timed out {0}")]
    Timeout(String),
}

/// How soon a published record leaves for the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// At once: a caller waits for this one record (a job created due soon, a dead letter).
    Prompt,
    /// With the records published around it, in one request to the broker: waits up to
    /// `kafka.linger_ms` for them. For records that come in numbers: a batch of dispatches,
    /// the executors' reports.
    Batched,
}

/// A record read from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

impl Record {
    /// Decodes the JSON payload, or says why it cannot.
    ///
    /// # Errors
    /// The reason, in words, for the dead-letter header.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, String> {
        let payload = self
            .payload
            .as_deref()
            .ok_or_else(|| "the record has no payload".to_owned())?;
        serde_json::from_slice(payload).map_err(|error| error.to_string())
    }
}

/// Where a consumer group stands in one partition of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionPosition {
    /// The offset of the oldest record the partition still holds.
    pub start: i64,
    /// The offset the next record appended will get.
    pub end: i64,
    /// The group's committed position: the next record it will read. `None` when the group
    /// has committed nothing on this partition.
    pub committed: Option<i64>,
}

impl PartitionPosition {
    /// Whether the group has handled every record below `end`.
    pub fn handled_below(&self, end: i64) -> bool {
        end <= self.start || self.committed.is_some_and(|committed| committed >= end)
    }
}

/// Where a consumer group stands in a topic, per partition. The committed positions are read
/// before the ends, so a partition whose committed position reaches its end had truly been
/// read to the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPosition {
    pub partitions: HashMap<i32, PartitionPosition>,
}

/// Topics that carry records between processes.
#[async_trait::async_trait]
pub trait Bus: Send + Sync {
    /// Where the bus is, for logs.
    fn location(&self) -> String;

    /// Checks that the bus answers, for the readiness probe.
    async fn ping(&self) -> Result<(), BusError>;

    /// Appends a record to `topic`, sent at `pace`; returns once the bus holds it durably
    /// (for Kafka: once the broker acknowledged it).
    async fn publish(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(&str, &str)],
        pace: Pace,
    ) -> Result<(), BusError>;

    /// Where consumer group `group` stands in `topic`. A bus whose records do not outlive the
    /// process that published them answers with no partitions: whoever published them is
    /// the process asking.
    async fn position(&self, group: &str, topic: &str) -> Result<GroupPosition, BusError>;

    /// Joins consumer group `group` on `topic`. Reading starts where the group left off (at
    /// the beginning for a new group).
    fn subscribe(&self, group: &str, topic: &str) -> Result<Arc<dyn Subscription>, BusError>;

    /// How many partitions `topic` has (1 for a bus of one queue per topic).
    async fn partitions(&self, topic: &str) -> Result<i32, BusError>;

    /// The records of `topic` that consumer group `group` has not handled yet: from its
    /// committed position to the end of each partition as it is now. A bus whose records do
    /// not outlive the process asking has none that another process could have left.
    async fn unhandled(&self, group: &str, topic: &str) -> Result<Vec<Record>, BusError>;
}

/// The partition of the records keyed by `id` (a job's id): the last two bytes of the UUID
/// (random in a UUIDv7) modulo the topic's partitions. Kairos places its records itself, so
/// that the store can tell which partition a job's dispatch went to
/// (`store::postgres::recovery::PARTITION_OF`, the same rule in SQL).
pub fn partition_of(id: uuid::Uuid, partitions: i32) -> i32 {
    let bytes = id.as_bytes();
    let low = i32::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    low % partitions.max(1)
}

/// One consumer's place in a topic.
pub trait Subscription: Send + Sync {
    /// The records, as a stream an actor can own (`ctx.add_stream`). Errors of the bus arrive
    /// as `Err` items; the stream never ends. A new call (after an actor restart) goes on
    /// from where the last stream was.
    fn records(&self) -> BoxStream<'static, Result<Record, BusError>>;

    /// Marks the record at (`partition`, `offset`) and all before it as handled: a consumer
    /// that takes over the partition starts after it.
    ///
    /// # Errors
    /// [`BusError`] when the partition is no longer this consumer's.
    fn acknowledge(&self, partition: i32, offset: i64) -> Result<(), BusError>;

    /// Makes the acknowledgements durable now (at shutdown).
    fn commit(&self);

    /// Takes the records published to the topic and not read yet that only this process's
    /// memory holds (the in-process bus), so that a consumer stopping for good can handle
    /// them before the process exits. A bus that keeps records beyond the process (Kafka)
    /// returns none: they wait there for the next reader.
    fn take_volatile(&self) -> BoxFuture<'static, Vec<Record>>;

    /// Leaves the group, so that others take its partitions at once (at shutdown). Resolves
    /// once the partitions are given up, or after a few seconds if the bus does not answer.
    fn leave(&self) -> BoxFuture<'static, ()>;

    /// The partitions this consumer holds now: none until its group has handed it some, and
    /// none when the group has more members than the topic has partitions.
    fn assignment(&self) -> Vec<i32>;
}

/// Publishes Kairos's records: dispatches, attempt reports and dead letters. Records are JSON
/// and keyed by job id, so all records of a job land on one partition, in order.
#[derive(Clone)]
#[allow(
    missing_debug_implementations,
    reason = "a bus is not Debug; the topics are in the settings"
)]
pub struct Publisher {
    bus: Arc<dyn Bus>,
    topics: TopicSettings,
}

impl Publisher {
    /// A publisher on `bus` for the configured topics.
    pub fn new(bus: Arc<dyn Bus>, topics: TopicSettings) -> Self {
        Self { bus, topics }
    }

    /// Publishes a job for the executors on `kafka.topic.jobs`.
    ///
    /// # Errors
    /// [`BusError`] when the bus does not acknowledge the record.
    pub async fn dispatch(&self, dispatch: &Dispatch, pace: Pace) -> Result<(), BusError> {
        self.send_json(
            &self.topics.jobs,
            &dispatch.job_id.to_string(),
            dispatch,
            pace,
        )
        .await
    }

    /// Publishes an attempt's progress or result on `kafka.topic.updatedJobs`.
    ///
    /// # Errors
    /// [`BusError`] when the bus does not acknowledge the record.
    pub async fn report(&self, report: &AttemptReport) -> Result<(), BusError> {
        self.send_json(
            &self.topics.updated_jobs,
            &report.job_id.to_string(),
            report,
            Pace::Batched,
        )
        .await
    }

    /// Sets `record`, which could not be understood, aside on `<topic>.dlt`, unchanged, with
    /// the reason in a `kairos-error` header; retried every `pause` until acknowledged: a
    /// record is never dropped, even when it cannot be read.
    pub async fn dead_letter_until_acknowledged(
        &self,
        record: &Record,
        reason: &str,
        pause: Duration,
    ) {
        let dead_letter_topic = TopicSettings::dead_letter(&record.topic);
        let headers = [
            ("kairos-error", reason),
            ("kairos-source-topic", record.topic.as_str()),
        ];
        while let Err(error) = self
            .bus
            .publish(
                &dead_letter_topic,
                record.key.as_deref(),
                record.payload.as_deref(),
                &headers,
                Pace::Prompt,
            )
            .await
        {
            tracing::error!(%error, topic = %record.topic, "cannot publish a dead letter; retrying");
            tokio::time::sleep(pause).await;
        }
    }

    async fn send_json(
        &self,
        topic: &str,
        key: &str,
        value: &impl Serialize,
        pace: Pace,
    ) -> Result<(), BusError> {
        let payload = serde_json::to_vec(value)?;
        self.bus
            .publish(topic, Some(key.as_bytes()), Some(&payload), &[], pace)
            .await
    }
}
