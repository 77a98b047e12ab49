//! Where a consumer group stands in a topic, and the records it has not handled yet.

use std::collections::HashMap;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::clients::client_config;
use crate::bus::{BusError, GroupPosition, PartitionPosition, Record};
use crate::config::KafkaSettings;

/// Reads where `group` stands in `topic`: the committed positions first, then the ends.
pub fn read_position(
    reader: &BaseConsumer,
    group: &str,
    topic: &str,
    timeout: std::time::Duration,
) -> Result<GroupPosition, BusError> {
    let metadata = reader.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|found| found.name() == topic)
        .flat_map(|found| found.partitions().iter().map(|partition| partition.id()))
        .collect();
    if partitions.is_empty() {
        return Err(BusError::NoPartitions(topic.to_owned()));
    }
    let mut wanted = TopicPartitionList::new();
    for partition in &partitions {
        wanted.add_partition(topic, *partition);
    }
    let committed = reader.committed_offsets(wanted, timeout)?;
    let mut position = GroupPosition::default();
    for partition in partitions {
        let (start, end) = reader.fetch_watermarks(topic, partition, timeout)?;
        let committed =
            committed
                .find_partition(topic, partition)
                .and_then(|element| match element.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                });
        position.partitions.insert(
            partition,
            PartitionPosition {
                start,
                end,
                committed,
            },
        );
    }
    tracing::trace!(group, topic, ?position, "consumer group position");
    Ok(position)
}

/// Reads `topic` from each partition's committed position in `position` (its start when the
/// group committed nothing) to its end there, with a consumer of no group, within the
/// request timeout.
pub fn read_between(
    settings: &KafkaSettings,
    topic: &str,
    position: &GroupPosition,
) -> Result<Vec<Record>, BusError> {
    let mut wanted: HashMap<i32, i64> = HashMap::new();
    let mut from = TopicPartitionList::new();
    for (&partition, at) in &position.partitions {
        let start = at.committed.unwrap_or(at.start).max(at.start);
        if start < at.end {
            from.add_partition_offset(topic, partition, Offset::Offset(start))?;
            wanted.insert(partition, at.end);
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let reader: BaseConsumer = client_config(settings)
        .set("group.id", "kairos-unhandled-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    reader.assign(&from)?;
    let deadline = std::time::Instant::now() + settings.request_timeout();
    let mut records = Vec::new();
    while !wanted.is_empty() {
        if std::time::Instant::now() >= deadline {
            return Err(BusError::Timeout(format!(
                "reading what the group has not handled of `{topic}`"
            )));
        }
        match reader.poll(std::time::Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let partition = message.partition();
                let Some(&end) = wanted.get(&partition) else {
                    continue;
                };
                if message.offset() < end {
                    records.push(Record {
                        topic: message.topic().to_owned(),
                        partition,
                        offset: message.offset(),
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().map(<[u8]>::to_vec),
                    });
                }
                if message.offset() + 1 >= end {
                    wanted.remove(&partition);
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                wanted.remove(&partition);
            }
            Some(Err(error)) => return Err(error.into()),
            None => {}
        }
    }
    Ok(records)
}
