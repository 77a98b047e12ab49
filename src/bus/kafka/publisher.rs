//! A producer whose deliveries complete futures, polled by a thread of its own.
//!
//! rdkafka's `FutureProducer` does the same with a thread that polls in calls of 100 ms. A
//! call returns at its deadline, and librdkafka waits in whole milliseconds, so each call
//! spins through its last millisecond: about 1 % of a core for each producer, all the time,
//! sending or not (docs/performance.md). This thread waits in calls of a second, which spins
//! a tenth as much, and ends within a second of the last [`Publisher`] going away.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Message, ToBytes};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

/// How long each of the polling thread's calls waits for deliveries.
const POLL_WAIT: Duration = Duration::from_secs(1);

/// How long a record waits before it is offered again to a full queue.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(100);

/// Where a delivered record was written: its partition and offset.
pub type Delivered = (i32, i64);

/// An idempotent producer's handle; clones share the producer and its polling thread.
#[derive(Clone)]
#[allow(
    missing_debug_implementations,
    reason = "librdkafka's producer has no Debug"
)]
pub struct Publisher {
    producer: Arc<BaseProducer<Acknowledgements>>,
    _polling: Arc<Polling>,
}

/// Hands each delivery report to the future waiting for it.
struct Acknowledgements;

impl ClientContext for Acknowledgements {}

impl rdkafka::producer::ProducerContext for Acknowledgements {
    type DeliveryOpaque = Box<oneshot::Sender<KafkaResult<Delivered>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiting: Self::DeliveryOpaque) {
        let delivered = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((error, _)) => Err(error.clone()),
        };
        // The sender may have stopped waiting (its attempt was cancelled).
        let _ = waiting.send(delivered);
    }
}

/// Stops the polling thread once the last [`Publisher`] is gone.
struct Polling(Arc<AtomicBool>);

impl Drop for Polling {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Publisher {
    /// A producer made from `config`, and its polling thread.
    ///
    /// # Errors
    /// When librdkafka refuses the configuration, or the thread cannot start.
    pub fn create(config: &ClientConfig) -> KafkaResult<Self> {
        let producer: Arc<BaseProducer<Acknowledgements>> =
            Arc::new(config.create_with_context(Acknowledgements)?);
        let stop = Arc::new(AtomicBool::new(false));
        let (polled, stopped) = (Arc::clone(&producer), Arc::clone(&stop));
        // Not joined: the thread lets go of the producer (which then gives up what is still
        // queued) within a second of the last handle, and nothing waits for it.
        std::thread::Builder::new()
            .name("kafka-delivery".to_owned())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    polled.poll(POLL_WAIT);
                }
            })
            .map_err(|error| KafkaError::ClientCreation(error.to_string()))?;
        Ok(Self {
            producer,
            _polling: Arc::new(Polling(stop)),
        })
    }

    /// Sends `record` and waits for the broker's acknowledgement. A full queue is tried again
    /// every 100 ms for up to `queue_timeout`.
    ///
    /// # Errors
    /// The [`KafkaError`] the record was refused or failed with.
    pub async fn send<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: Duration,
    ) -> KafkaResult<Delivered>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let started = Instant::now();
        let (answer, delivered) = oneshot::channel();
        let mut base = BaseRecord::with_opaque_to(record.topic, Box::new(answer));
        base.partition = record.partition;
        base.payload = record.payload;
        base.key = record.key;
        base.timestamp = record.timestamp;
        base.headers = record.headers;
        loop {
            match self.producer.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), refused))
                    if started.elapsed() < queue_timeout =>
                {
                    base = refused;
                    tokio::time::sleep(QUEUE_FULL_WAIT).await;
                }
                Err((error, _)) => return Err(error),
            }
        }
        // The producer outlives every record it holds: it answers each one, if only with the
        // error of a purge. (A channel outside tokio's: tokio's own counts against the task's
        // budget, and a task awaiting thousands of deliveries at once, as the API's and the
        // scanner's do, would be woken again and again for nothing.)
        delivered.await.unwrap_or(Err(KafkaError::Canceled))
    }

    /// The cluster's metadata, for `topic` or every topic. Blocks its thread.
    ///
    /// # Errors
    /// [`KafkaError`] when the cluster does not answer within `timeout`.
    pub fn fetch_metadata(&self, topic: Option<&str>, timeout: Duration) -> KafkaResult<Metadata> {
        self.producer.client().fetch_metadata(topic, timeout)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rdkafka::ClientConfig;

    use super::Publisher;

    /// The threads of this process named like the polling thread.
    fn polling_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .expect("the process's threads")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim() == "kafka-delivery")
            .count()
    }

    /// Waits (up to 10 s) until `count` polling threads run.
    fn wait_for_polling_threads(count: usize, why: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while polling_threads() != count {
            assert!(Instant::now() < deadline, "{why}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn the_polling_thread_ends_with_the_last_handle() {
        // librdkafka connects lazily: no broker is needed to make and drop a producer.
        let publisher =
            Publisher::create(ClientConfig::new().set("bootstrap.servers", "127.0.0.1:9"))
                .expect("a producer");
        let clone = publisher.clone();
        // A thread names itself once it runs.
        wait_for_polling_threads(1, "the polling thread never started");
        drop(publisher);
        // Had the first handle stopped it, the thread would have ended within a second.
        std::thread::sleep(Duration::from_millis(1_500));
        assert_eq!(polling_threads(), 1, "a clone still holds the producer");
        drop(clone);
        wait_for_polling_threads(0, "the polling thread outlived its producer");
    }
}
