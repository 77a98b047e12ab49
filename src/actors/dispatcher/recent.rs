//! A bounded memory of finished dispatches, which tells a repeated delivery apart.

use std::collections::VecDeque;

use foldhash::HashSet;
use uuid::Uuid;

/// Finished dispatches remembered to recognise repeated deliveries.
const RECENT_CAPACITY: usize = 100_000;

/// A bounded memory of finished dispatches; the oldest are forgotten first.
#[derive(Debug, Default)]
pub(super) struct RecentDispatches {
    order: VecDeque<(Uuid, i64)>,
    members: HashSet<(Uuid, i64)>,
}

impl RecentDispatches {
    pub(super) fn contains(&self, key: &(Uuid, i64)) -> bool {
        self.members.contains(key)
    }

    pub(super) fn insert(&mut self, key: (Uuid, i64)) {
        if self.members.insert(key) {
            self.order.push_back(key);
            if self.order.len() > RECENT_CAPACITY
                && let Some(oldest) = self.order.pop_front()
            {
                self.members.remove(&oldest);
            }
        }
    }
}
