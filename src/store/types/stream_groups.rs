//! Consumer groups of a stream, as Redis 7.0 keeps them: per group the
//! last delivered ID, the `entries-read` counter, the pending entries list
//! (PEL: every entry delivered and not yet acknowledged, with its owner,
//! last delivery time and delivery count) and the consumers, each with its
//! own share of the PEL, its seen time and (as Redis 7.2 added) its active
//! time.
//!
//! The group PEL and the consumers' PELs always agree: an ID is in the
//! group PEL with owner `c` exactly when it is in `c`'s PEL. Every change
//! goes through the methods here, which keep both sides together.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::stream::StreamId;

/// A consumer's name, shared by the consumer and its pending entries.
pub type ConsumerName = Arc<[u8]>;

/// One pending entry (Redis's `streamNACK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    pub consumer: ConsumerName,
    /// Unix time in milliseconds of the last delivery.
    pub delivery_time: u64,
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Consumer {
    /// Unix time in milliseconds of its last attempted interaction (a read
    /// or claim, whether or not it got anything).
    pub seen_time: u64,
    /// Unix time in milliseconds of its last successful interaction (an
    /// entry delivered to it by XREADGROUP, or claimed by XCLAIM or
    /// XAUTOCLAIM), as Redis 7.2's `active_time`; `None` (Redis's -1) if it
    /// never had one.
    pub active_time: Option<u64>,
    /// The IDs it owns in the group PEL.
    pub pending: BTreeSet<StreamId>,
}

/// A consumer group.
///
/// ```
/// use larder::store::types::{ConsumerGroup, StreamId};
///
/// let mut group = ConsumerGroup::new(StreamId::MIN, None);
/// group.deliver(StreamId::new(1, 0), b"alice", 100);
/// assert_eq!(group.pel.len(), 1);
/// assert!(group.ack(StreamId::new(1, 0)));
/// assert!(group.consumers[&b"alice"[..]].pending.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroup {
    pub last_delivered: StreamId,
    /// Entries the group has read, when known (Redis's -1 is `None`).
    pub entries_read: Option<u64>,
    pub pel: BTreeMap<StreamId, PendingEntry>,
    pub consumers: BTreeMap<ConsumerName, Consumer>,
}

impl ConsumerGroup {
    pub fn new(last_delivered: StreamId, entries_read: Option<u64>) -> Self {
        ConsumerGroup {
            last_delivered,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// The consumer `name`, created (seen now) if missing; the flag says
    /// whether it was created.
    pub fn consumer_or_create(&mut self, name: &[u8], now_ms: u64) -> (ConsumerName, bool) {
        if let Some((key, _)) = self.consumers.get_key_value(name) {
            return (key.clone(), false);
        }
        let key: ConsumerName = Arc::from(name);
        self.consumers.insert(
            key.clone(),
            Consumer {
                seen_time: now_ms,
                active_time: None,
                pending: BTreeSet::new(),
            },
        );
        (key, true)
    }

    /// Creates the consumer `name`; false if it exists.
    pub fn create_consumer(&mut self, name: &[u8], now_ms: u64) -> bool {
        self.consumer_or_create(name, now_ms).1
    }

    /// Marks the consumer `name` seen now (it must exist).
    pub fn touch_consumer(&mut self, name: &[u8], now_ms: u64) {
        if let Some(consumer) = self.consumers.get_mut(name) {
            consumer.seen_time = now_ms;
        }
    }

    /// Marks the consumer `name` active now (an entry was delivered to it
    /// or claimed by it); it must exist.
    pub fn mark_active(&mut self, name: &[u8], now_ms: u64) {
        if let Some(consumer) = self.consumers.get_mut(name) {
            consumer.active_time = Some(now_ms);
        }
    }

    /// Deletes the consumer `name` and its pending entries; returns how
    /// many it had, `None` if there is no such consumer.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let consumer = self.consumers.remove(name)?;
        for id in &consumer.pending {
            self.pel.remove(id);
        }
        Some(consumer.pending.len())
    }

    /// Sets the pending entry `id` to `entry`, or removes it (`None`),
    /// keeping the owners' PELs in step; false (and nothing changed) if
    /// `entry`'s owner is not a consumer of the group. For the write-behind
    /// journal's replay.
    pub fn set_pending(&mut self, id: StreamId, entry: Option<PendingEntry>) -> bool {
        let entry = match entry {
            Some(mut entry) => {
                // The owner's name as the group shares it.
                let Some((name, _)) = self.consumers.get_key_value(&entry.consumer) else {
                    return false;
                };
                entry.consumer = name.clone();
                Some(entry)
            }
            None => None,
        };
        self.ack(id);
        if let Some(entry) = entry {
            if let Some(owner) = self.consumers.get_mut(&entry.consumer) {
                owner.pending.insert(id);
            }
            self.pel.insert(id, entry);
        }
        true
    }

    /// Acknowledges `id`: removes it from the PELs; false if not pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pel.remove(&id) {
            Some(entry) => {
                if let Some(owner) = self.consumers.get_mut(&entry.consumer) {
                    owner.pending.remove(&id);
                }
                true
            }
            None => false,
        }
    }

    /// XREADGROUP delivered `id` to `consumer` (created if missing): a
    /// new pending entry, or an existing one moved to `consumer` with its
    /// count reset to 1, as Redis does after an XGROUP SETID backwards.
    /// The consumer is active now.
    pub fn deliver(&mut self, id: StreamId, consumer: &[u8], now_ms: u64) {
        let (name, _) = self.consumer_or_create(consumer, now_ms);
        self.mark_active(&name, now_ms);
        if let Some(previous) = self.pel.get(&id).map(|entry| entry.consumer.clone()) {
            if let Some(owner) = self.consumers.get_mut(&previous) {
                owner.pending.remove(&id);
            }
        }
        self.pel.insert(
            id,
            PendingEntry {
                consumer: name.clone(),
                delivery_time: now_ms,
                delivery_count: 1,
            },
        );
        if let Some(owner) = self.consumers.get_mut(&name) {
            owner.pending.insert(id);
        }
    }

    /// Gives the pending entry `id` to `consumer` (which must exist),
    /// delivered at `delivery_time`; `count` sets the delivery count, else
    /// `increment` adds one. Creates the entry if missing (XCLAIM FORCE,
    /// count 1 before the update).
    pub fn claim(
        &mut self,
        id: StreamId,
        consumer: &ConsumerName,
        delivery_time: u64,
        count: Option<u64>,
        increment: bool,
    ) {
        let entry = self.pel.entry(id).or_insert_with(|| PendingEntry {
            consumer: consumer.clone(),
            delivery_time,
            delivery_count: 1,
        });
        if entry.consumer != *consumer {
            if let Some(owner) = self.consumers.get_mut(&entry.consumer) {
                owner.pending.remove(&id);
            }
            entry.consumer = consumer.clone();
        }
        entry.delivery_time = delivery_time;
        match count {
            Some(count) => entry.delivery_count = count,
            None if increment => entry.delivery_count += 1,
            None => {}
        }
        if let Some(owner) = self.consumers.get_mut(consumer) {
            owner.pending.insert(id);
        }
    }

    /// Approximate heap bytes.
    pub fn heap_size(&self) -> usize {
        // BTree slots, amortized: an ID and its pending entry in the
        // group PEL, the ID again in its owner's PEL.
        let per_pending =
            std::mem::size_of::<(StreamId, PendingEntry)>() + std::mem::size_of::<StreamId>() + 16;
        let consumers: usize = self
            .consumers
            .keys()
            .map(|name| name.len() + 16 + std::mem::size_of::<(ConsumerName, Consumer)>() + 16)
            .sum();
        std::mem::size_of::<ConsumerGroup>() + consumers + self.pel.len() * per_pending
    }

    /// Checks that the group PEL and the consumers' PELs agree (tests).
    pub fn is_consistent(&self) -> bool {
        let owned: usize = self.consumers.values().map(|c| c.pending.len()).sum();
        owned == self.pel.len()
            && self.pel.iter().all(|(id, entry)| {
                self.consumers
                    .get(&entry.consumer)
                    .is_some_and(|c| c.pending.contains(id))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::super::stream::{AddId, StreamValue};
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Add,
        Read {
            consumer: u8,
            count: u8,
            noack: bool,
        },
        Ack(usize),
        Claim {
            consumer: u8,
            pick: usize,
            force: bool,
        },
        DeleteConsumer(u8),
        Delete(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Add),
            3 => (0u8..4, 0u8..4, any::<bool>())
                .prop_map(|(consumer, count, noack)| Op::Read { consumer, count, noack }),
            2 => any::<usize>().prop_map(Op::Ack),
            2 => (0u8..4, any::<usize>(), any::<bool>())
                .prop_map(|(consumer, pick, force)| Op::Claim { consumer, pick, force }),
            1 => (0u8..4).prop_map(Op::DeleteConsumer),
            1 => any::<usize>().prop_map(Op::Delete),
        ]
    }

    fn name(consumer: u8) -> Vec<u8> {
        vec![b'c', b'0' + consumer]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// PEL ownership through XREADGROUP, XCLAIM (FORCE), XACK,
        /// DELCONSUMER and XDEL, against a model: every pending ID has one
        /// owner, in the group PEL and in that consumer's PEL.
        #[test]
        fn pel_ownership_matches_model(ops in prop::collection::vec(op(), 1..200)) {
            let mut stream = StreamValue::new();
            stream.create_group(b"g", ConsumerGroup::new(StreamId::MIN, None));
            // id -> (owner, delivery count)
            let mut model: BTreeMap<StreamId, (Vec<u8>, u64)> = BTreeMap::new();
            let mut live: BTreeSet<StreamId> = BTreeSet::new();
            let mut last = StreamId::MIN;
            let mut next_ms = 1;
            let mut all_ids: Vec<StreamId> = Vec::new();
            for op in ops {
                match op {
                    Op::Add => {
                        let id = stream.add(AddId::Exact(StreamId::new(next_ms, 0)), &[b"f", b"v"], 0).unwrap();
                        next_ms += 1;
                        live.insert(id);
                        all_ids.push(id);
                    }
                    Op::Read { consumer, count, noack } => {
                        let mut seen = Vec::new();
                        stream.read_group(b"g", &name(consumer), count as u64, noack, 5, |e| seen.push(e.id)).unwrap();
                        let want: Vec<StreamId> = live
                            .range(last.next().unwrap()..)
                            .take(if count == 0 { usize::MAX } else { count as usize })
                            .copied()
                            .collect();
                        prop_assert_eq!(&seen, &want);
                        if let Some(&top) = want.last() {
                            last = top;
                        }
                        if !noack {
                            for id in want {
                                model.insert(id, (name(consumer), 1));
                            }
                        }
                    }
                    Op::Ack(pick) if !all_ids.is_empty() => {
                        let id = all_ids[pick % all_ids.len()];
                        let group = stream.group_mut(b"g").unwrap();
                        prop_assert_eq!(group.ack(id), model.remove(&id).is_some());
                    }
                    Op::Claim { consumer, pick, force } if !all_ids.is_empty() => {
                        let id = all_ids[pick % all_ids.len()];
                        let exists = stream.entry_exists(id);
                        let group = stream.group_mut(b"g").unwrap();
                        if !exists {
                            group.ack(id);
                            model.remove(&id);
                        } else if group.pel.contains_key(&id) || force {
                            let (owner, _) = group.consumer_or_create(&name(consumer), 5);
                            group.claim(id, &owner, 7, None, true);
                            let count = model.get(&id).map_or(1, |(_, n)| *n) + 1;
                            model.insert(id, (name(consumer), count));
                        }
                    }
                    Op::DeleteConsumer(consumer) => {
                        let owned = model.values().filter(|(owner, _)| *owner == name(consumer)).count();
                        let group = stream.group_mut(b"g").unwrap();
                        let removed = group.delete_consumer(&name(consumer));
                        prop_assert_eq!(removed.unwrap_or(0), owned);
                        model.retain(|_, (owner, _)| *owner != name(consumer));
                    }
                    Op::Delete(pick) if !all_ids.is_empty() => {
                        let id = all_ids[pick % all_ids.len()];
                        stream.delete_ids(&[id]);
                        live.remove(&id);
                    }
                    _ => {}
                }
                let group = stream.group(b"g").unwrap();
                prop_assert!(group.is_consistent());
                prop_assert_eq!(group.last_delivered, last);
                let got: BTreeMap<StreamId, (Vec<u8>, u64)> = group
                    .pel
                    .iter()
                    .map(|(id, e)| (*id, (e.consumer.to_vec(), e.delivery_count)))
                    .collect();
                prop_assert_eq!(&got, &model);
            }
        }
    }
}
