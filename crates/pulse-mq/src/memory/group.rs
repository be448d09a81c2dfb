//! One consumer group of one topic: the ready queue, the in-flight table and
//! the per-key ordering rule.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use pulse_core::clock::MonoTime;
use pulse_core::mq::Message;
use tokio::sync::Notify;

/// Hashes the broker's own sequence numbers with one multiplication; they
/// are not attacker-chosen, so SipHash's flood resistance buys nothing here.
#[derive(Clone, Copy, Debug, Default)]
struct SeqHasher(u64);

impl std::hash::Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type SeqMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<SeqHasher>>;

/// A message waiting to be delivered.
#[derive(Debug)]
struct Ready {
    message: Message,
    deliveries: u32,
    not_before: Option<MonoTime>,
}

/// A message handed to a consumer and not yet settled.
#[derive(Debug)]
struct InFlight {
    message: Message,
    deliveries: u32,
    consumer: u64,
    deadline: MonoTime,
}

/// A message taken for delivery.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) seq: u64,
    pub(crate) message: Message,
    pub(crate) attempt: u32,
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    /// Messages waiting, by publish order.
    ready: BTreeMap<u64, Ready>,
    /// Ready messages that must not be delivered before a time, by that time.
    delayed: BTreeSet<(MonoTime, u64)>,
    in_flight: SeqMap<InFlight>,
    /// Visibility deadlines in the order they were set, which is also their
    /// time order because the timeout is the same for every delivery. An
    /// entry whose message was settled or extended since is stale and
    /// skipped, which saves a removal on every ack.
    deadlines: VecDeque<(MonoTime, u64)>,
    /// Keys with a message in flight: no other message of the key is
    /// delivered until it is settled.
    busy_keys: HashSet<String>,
}

/// A consumer group's queue.
#[derive(Debug, Default)]
pub(crate) struct Group {
    state: Mutex<State>,
    pub(crate) notify: Notify,
}

impl Group {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends published messages.
    pub(crate) fn push(&self, messages: impl IntoIterator<Item = Message>) {
        let mut state = self.lock();
        let mut added = 0;
        for message in messages {
            let seq = state.next_seq;
            state.next_seq += 1;
            state.ready.insert(
                seq,
                Ready {
                    message,
                    deliveries: 0,
                    not_before: None,
                },
            );
            added += 1;
        }
        drop(state);
        for _ in 0..added.min(64) {
            self.notify.notify_one();
        }
    }

    /// Takes up to `max` deliverable messages for `consumer` into `out`,
    /// after returning expired in-flight messages to the queue. When none is
    /// deliverable, returns the time at which one may become deliverable.
    pub(crate) fn take(
        &self,
        consumer: u64,
        now: MonoTime,
        visibility: std::time::Duration,
        max: usize,
        out: &mut VecDeque<Taken>,
    ) -> Result<(), Option<MonoTime>> {
        let mut state = self.lock();
        let expired = state.expire(now);
        if expired > 0 {
            tracing::warn!(target: "pulse_mq", expired, "in-memory messages redelivered after the visibility timeout");
        }

        let deadline = now.saturating_add(visibility);
        let before = out.len();
        while out.len() - before < max {
            let Some(seq) = state.next_deliverable(now) else {
                break;
            };
            out.push_back(state.take_one(seq, consumer, deadline));
        }
        if out.len() == before {
            return Err(state.next_wake());
        }
        let more = !state.ready.is_empty();
        drop(state);

        // Chain the wake-up so that a burst is spread over the waiting consumers.
        if more {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// Removes a message for good. Acking a message that timed out and waits
    /// for redelivery removes it too, as a Redis `XACK` would.
    pub(crate) fn ack(&self, seq: u64) {
        let mut state = self.lock();
        if let Some(flight) = state.in_flight.remove(&seq) {
            if let Some(key) = &flight.message.key {
                state.busy_keys.remove(key);
                drop(state);
                self.notify.notify_waiters();
            }
        } else if let Some(ready) = state.ready.remove(&seq) {
            if let Some(not_before) = ready.not_before {
                state.delayed.remove(&(not_before, seq));
            }
        }
    }

    /// Returns an in-flight message to the queue, deliverable at
    /// `not_before`.
    pub(crate) fn nack(&self, seq: u64, not_before: Option<MonoTime>) {
        let mut state = self.lock();
        if state.requeue(seq, not_before) {
            drop(state);
            self.notify.notify_waiters();
        }
    }

    /// Restarts the visibility timeout of an in-flight message.
    pub(crate) fn extend(&self, seq: u64, deadline: MonoTime) {
        let mut state = self.lock();
        let Some(flight) = state.in_flight.get_mut(&seq) else {
            return;
        };
        flight.deadline = deadline;
        state.deadlines.push_back((deadline, seq));
    }

    /// Returns every message in flight to `consumer` to the queue, as a
    /// consumer restart does.
    pub(crate) fn release_consumer(&self, consumer: u64) -> usize {
        let mut state = self.lock();
        let owned: Vec<u64> = state
            .in_flight
            .iter()
            .filter(|(_, flight)| flight.consumer == consumer)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &owned {
            state.requeue(*seq, None);
        }
        drop(state);
        if !owned.is_empty() {
            self.notify.notify_waiters();
        }
        owned.len()
    }

    /// Returns the number of messages not yet acked (ready or in flight).
    pub(crate) fn backlog(&self) -> usize {
        let state = self.lock();
        state.ready.len() + state.in_flight.len()
    }
}

impl State {
    fn take_one(&mut self, seq: u64, consumer: u64, deadline: MonoTime) -> Taken {
        let ready = self
            .ready
            .remove(&seq)
            .expect("seq found in the ready queue");
        if let Some(not_before) = ready.not_before {
            self.delayed.remove(&(not_before, seq));
        }
        if let Some(key) = &ready.message.key {
            self.busy_keys.insert(key.clone());
        }
        let deliveries = ready.deliveries + 1;
        let message = ready.message.clone();
        self.deadlines.push_back((deadline, seq));
        self.in_flight.insert(
            seq,
            InFlight {
                message: ready.message,
                deliveries,
                consumer,
                deadline,
            },
        );
        Taken {
            seq,
            message,
            attempt: deliveries,
        }
    }

    fn requeue(&mut self, seq: u64, not_before: Option<MonoTime>) -> bool {
        let Some(flight) = self.in_flight.remove(&seq) else {
            return false;
        };
        if let Some(key) = &flight.message.key {
            self.busy_keys.remove(key);
        }
        if let Some(at) = not_before {
            self.delayed.insert((at, seq));
        }
        self.ready.insert(
            seq,
            Ready {
                message: flight.message,
                deliveries: flight.deliveries,
                not_before,
            },
        );
        true
    }

    fn is_current(&self, deadline: MonoTime, seq: u64) -> bool {
        self.in_flight
            .get(&seq)
            .is_some_and(|flight| flight.deadline == deadline)
    }

    /// Returns expired in-flight messages to the queue and drops stale
    /// deadline entries from the front, so that the front is the earliest
    /// live deadline.
    fn expire(&mut self, now: MonoTime) -> usize {
        let mut expired = 0;
        while let Some(&(deadline, seq)) = self.deadlines.front() {
            let current = self.is_current(deadline, seq);
            if current && deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if current {
                self.requeue(seq, None);
                expired += 1;
            }
        }
        // Stale entries behind a long-lived delivery would pile up; drop them
        // once they outnumber the live ones.
        if self.deadlines.len() > 2 * self.in_flight.len() + 1024 {
            let in_flight = &self.in_flight;
            self.deadlines.retain(|(deadline, seq)| {
                in_flight.get(seq).is_some_and(|f| f.deadline == *deadline)
            });
        }
        expired
    }

    /// Finds the oldest message that may be delivered now: not delayed, and
    /// with no earlier message of its key in flight or still waiting.
    fn next_deliverable(&self, now: MonoTime) -> Option<u64> {
        let mut blocked: Option<HashSet<&str>> = None;
        for (seq, ready) in &self.ready {
            let key = ready.message.key.as_deref();
            let delayed = ready.not_before.is_some_and(|at| at > now);
            let key_free = match key {
                None => true,
                Some(key) => {
                    !self.busy_keys.contains(key)
                        && !blocked.as_ref().is_some_and(|set| set.contains(key))
                }
            };
            if !delayed && key_free {
                return Some(*seq);
            }
            if let Some(key) = key {
                blocked.get_or_insert_with(HashSet::new).insert(key);
            }
        }
        None
    }

    fn next_wake(&self) -> Option<MonoTime> {
        let deadline = self.deadlines.front().map(|(at, _)| *at);
        let delayed = self.delayed.first().map(|(at, _)| *at);
        match (deadline, delayed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const VISIBILITY: Duration = Duration::from_secs(30);

    /// Takes one message, as a subscription without prefetch would.
    fn take1(
        group: &Group,
        consumer: u64,
        now: MonoTime,
        visibility: Duration,
    ) -> Result<Taken, Option<MonoTime>> {
        let mut out = VecDeque::new();
        group.take(consumer, now, visibility, 1, &mut out)?;
        Ok(out.pop_front().expect("one taken"))
    }

    fn at(ms: u64) -> MonoTime {
        MonoTime::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn key_waits_for_ack() {
        let group = Group::default();
        group.push([
            Message::new("a1", "").with_key("a"),
            Message::new("a2", "").with_key("a"),
            Message::new("b1", "").with_key("b"),
        ]);
        let first = take1(&group, 1, at(0), VISIBILITY).unwrap();
        assert_eq!(first.message.id, "a1");
        let second = take1(&group, 1, at(0), VISIBILITY).unwrap();
        assert_eq!(second.message.id, "b1");
        assert!(take1(&group, 1, at(0), VISIBILITY).is_err());
        group.ack(first.seq);
        assert_eq!(
            take1(&group, 1, at(0), VISIBILITY).unwrap().message.id,
            "a2"
        );
    }

    #[test]
    fn delayed_nack_keeps_key_order() {
        let group = Group::default();
        group.push([
            Message::new("a1", "").with_key("a"),
            Message::new("a2", "").with_key("a"),
        ]);
        let first = take1(&group, 1, at(0), VISIBILITY).unwrap();
        group.nack(first.seq, Some(at(100)));
        assert_eq!(
            take1(&group, 1, at(50), VISIBILITY).unwrap_err(),
            Some(at(100))
        );
        let again = take1(&group, 1, at(100), VISIBILITY).unwrap();
        assert_eq!(again.message.id, "a1");
        assert_eq!(again.attempt, 2);
    }

    #[test]
    fn visibility_timeout_redelivers() {
        let group = Group::default();
        group.push([Message::new("m", "")]);
        let first = take1(&group, 1, at(0), Duration::from_millis(10)).unwrap();
        assert_eq!(first.attempt, 1);
        assert!(take1(&group, 2, at(5), VISIBILITY).is_err());
        let again = take1(&group, 2, at(10), VISIBILITY).unwrap();
        assert_eq!(again.attempt, 2);
        assert_eq!(group.backlog(), 1);
        group.ack(again.seq);
        assert_eq!(group.backlog(), 0);
    }

    #[test]
    fn released_consumer_messages_return() {
        let group = Group::default();
        group.push([Message::new("m1", ""), Message::new("m2", "")]);
        take1(&group, 7, at(0), VISIBILITY).unwrap();
        take1(&group, 8, at(0), VISIBILITY).unwrap();
        assert_eq!(group.release_consumer(7), 1);
        assert_eq!(
            take1(&group, 9, at(0), VISIBILITY).unwrap().message.id,
            "m1"
        );
    }
}
