//! How far the result writers have caught up with the reports on the bus, as the recovery
//! pass needs to know it.
//!
//! A `RUNNING` job whose executor's process died may have its final report already on the
//! bus, acknowledged, but not yet written by a result writer. Taking such a job back would
//! run, a second time, an attempt that finished. So recovery takes a dead process's running
//! jobs back only once every report that process could have published has been written:
//! once the writers' group has read past where the topic ended when the process was already
//! dead.
//!
//! [`WrittenReports`] keeps that instant. Each recovery pass notes the time, then reads the
//! group's position (committed positions first, then the ends of the partitions); the
//! instant is the latest noted time whose ends the committed positions have since reached.
//! Every report published before it has been written (the writers commit a position only
//! once the reports below it are in the store).

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};

use crate::bus::GroupPosition;

/// Positions kept waiting for the writers, at most; the oldest go first.
const MAX_WAITING: usize = 64;

/// The instant before which every report on the bus has been written, as far as known.
#[derive(Debug, Default)]
pub struct WrittenReports {
    /// When each position was read, and the partitions' ends then, oldest first.
    waiting: VecDeque<(DateTime<Utc>, HashMap<i32, i64>)>,
    written_before: Option<DateTime<Utc>>,
}

impl WrittenReports {
    /// Takes in the group's `position`, read after `noted`; returns the instant before which
    /// every report has been written, if one is known.
    pub fn observe(
        &mut self,
        noted: DateTime<Utc>,
        position: &GroupPosition,
    ) -> Option<DateTime<Utc>> {
        let ends = position
            .partitions
            .iter()
            .map(|(partition, at)| (*partition, at.end))
            .collect();
        self.waiting.push_back((noted, ends));
        if self.waiting.len() > MAX_WAITING {
            self.waiting.pop_front();
        }
        let reached = self.waiting.iter().rposition(|(_, ends)| {
            ends.iter().all(|(partition, end)| {
                position
                    .partitions
                    .get(partition)
                    .is_some_and(|now| now.handled_below(*end))
            })
        });
        if let Some(reached) = reached {
            let (noted, _) = self.waiting[reached];
            self.waiting.drain(..=reached);
            self.written_before = Some(noted);
        }
        self.written_before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::PartitionPosition;

    fn position(partitions: &[(i32, i64, Option<i64>)]) -> GroupPosition {
        GroupPosition {
            partitions: partitions
                .iter()
                .map(|&(partition, end, committed)| {
                    (
                        partition,
                        PartitionPosition {
                            start: 0,
                            end,
                            committed,
                        },
                    )
                })
                .collect(),
        }
    }

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).expect("a valid instant")
    }

    #[test]
    fn an_instant_counts_once_the_writers_reach_the_ends_read_after_it() {
        let mut written = WrittenReports::default();
        // Writers behind on partition 1: nothing is known yet.
        assert_eq!(
            written.observe(at(0), &position(&[(0, 10, Some(10)), (1, 5, Some(3))])),
            None
        );
        // They reach the first ends (10, 5) while more reports arrive: the first instant.
        assert_eq!(
            written.observe(at(5), &position(&[(0, 12, Some(11)), (1, 8, Some(5))])),
            Some(at(0))
        );
        // Behind again: the instant stays.
        assert_eq!(
            written.observe(at(10), &position(&[(0, 15, Some(11)), (1, 8, Some(8))])),
            Some(at(0))
        );
        // Caught up with everything: the latest instant.
        assert_eq!(
            written.observe(at(15), &position(&[(0, 15, Some(15)), (1, 8, Some(8))])),
            Some(at(15))
        );
    }

    #[test]
    fn a_partition_without_records_or_commits_is_read_to_its_end() {
        let mut written = WrittenReports::default();
        let empty = PartitionPosition {
            start: 7,
            end: 7,
            committed: None,
        };
        let mut read = position(&[(0, 3, Some(3))]);
        read.partitions.insert(1, empty);
        assert_eq!(written.observe(at(0), &read), Some(at(0)));
        // A partition with records the group never committed on is not.
        let mut written = WrittenReports::default();
        assert_eq!(
            written.observe(at(0), &position(&[(0, 3, Some(3)), (1, 4, None)])),
            None
        );
    }

    #[test]
    fn with_no_partitions_every_instant_counts_at_once() {
        // The in-process bus: its reports do not outlive the process asking.
        let mut written = WrittenReports::default();
        assert_eq!(written.observe(at(0), &position(&[])), Some(at(0)));
        assert_eq!(written.observe(at(5), &position(&[])), Some(at(5)));
    }
}
