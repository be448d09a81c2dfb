//! A hierarchical timing wheel: O(1) insert and cancel, expiry in tick
//! order.
//!
//! Six levels of 64 slots each cover 64⁶ ticks (about 2.2 years at 1 ms
//! per tick); a deadline further out sits in the top level and is placed
//! again when its slot comes round. Entries live in one slab (`Vec`) and
//! are linked into their slot by index, so an entry costs its value plus 24
//! bytes and nothing is allocated per insert once the slab has grown.
//!
//! The wheel is a plain data structure: it knows no clock. The scheduler
//! feeds it the current tick.

use std::fmt;

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const NIL: u32 = u32::MAX;

/// The largest distance, in ticks, that the levels can represent.
const MAX_SPAN: u64 = (1 << (SLOT_BITS as u64 * LEVELS as u64)) - 1;

/// Identifies an entry of a [`TimerWheel`], to cancel or look it up.
///
/// A key stays valid until its entry expires or is cancelled; after that it
/// matches nothing, even when the slot is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    index: u32,
    generation: u32,
}

struct Node<T> {
    value: Option<T>,
    when: u64,
    prev: u32,
    next: u32,
    generation: u32,
    level: u8,
    slot: u8,
}

/// A hierarchical timing wheel keyed by tick.
///
/// # Examples
///
/// ```
/// use pulse_sched::wheel::TimerWheel;
///
/// let mut wheel = TimerWheel::new();
/// let a = wheel.insert(10, "a");
/// let b = wheel.insert(5, "b");
/// wheel.insert(7000, "c");
/// assert_eq!(wheel.cancel(a), Some("a"));
///
/// let mut fired = Vec::new();
/// wheel.advance(100, |_, value| fired.push(value));
/// assert_eq!(fired, ["b"]);
///
/// // Tick 7000 sits in a level-2 slot that starts at 4096: the wheel
/// // reports that lower bound, and each advance moves the entry down until
/// // the bound is exact.
/// assert_eq!(wheel.next_deadline(), Some(4096));
/// let mut now = 100;
/// while let Some(next) = wheel.next_deadline() {
///     now = next;
///     wheel.advance(now, |_, value| fired.push(value));
/// }
/// assert_eq!(now, 7000);
/// assert_eq!(fired, ["b", "c"]);
/// assert!(wheel.get(b).is_none());
/// ```
pub struct TimerWheel<T> {
    nodes: Vec<Node<T>>,
    free: u32,
    heads: Box<[[u32; SLOTS]; LEVELS]>,
    occupied: [u64; LEVELS],
    elapsed: u64,
    len: usize,
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("len", &self.len)
            .field("elapsed", &self.elapsed)
            .finish()
    }
}

impl<T> TimerWheel<T> {
    /// Creates an empty wheel at tick 0.
    pub fn new() -> Self {
        TimerWheel {
            nodes: Vec::new(),
            free: NIL,
            heads: Box::new([[NIL; SLOTS]; LEVELS]),
            occupied: [0; LEVELS],
            elapsed: 0,
            len: 0,
        }
    }

    /// Creates an empty wheel with room for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut wheel = Self::new();
        wheel.nodes.reserve(capacity);
        wheel
    }

    /// Returns the number of pending entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns whether no entry is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the tick the wheel has advanced to.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Adds `value` to expire at tick `when`. A tick at or before the
    /// current one expires on the next [`advance`](Self::advance).
    pub fn insert(&mut self, when: u64, value: T) -> TimerKey {
        let index = self.alloc(when, value);
        self.link(index);
        self.len += 1;
        TimerKey {
            index,
            generation: self.nodes[index as usize].generation,
        }
    }

    /// Removes a pending entry and returns its value, or `None` when the key
    /// has expired or was cancelled already.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.node_of(key)?;
        self.unlink(key.index);
        self.len -= 1;
        Some(self.release(key.index))
    }

    /// Returns the value and deadline of a pending entry.
    pub fn get(&self, key: TimerKey) -> Option<(&T, u64)> {
        let node = self.node_of(key)?;
        Some((node.value.as_ref()?, node.when))
    }

    /// Returns the start of the earliest occupied slot: a lower bound on the
    /// next expiry, exact for entries within 64 ticks. O(1): a caller that
    /// sleeps until it and advances gets the entries of a higher level moved
    /// down, and asks again.
    pub fn next_deadline(&self) -> Option<u64> {
        let (level, slot) = self.next_slot()?;
        Some(self.slot_start(level, slot).max(self.elapsed))
    }

    /// Moves the wheel to tick `now` and hands every entry whose deadline is
    /// at or before `now` to `expire`, in deadline order (slot by slot).
    pub fn advance(&mut self, now: u64, mut expire: impl FnMut(TimerKey, T)) {
        while let Some((level, slot)) = self.next_slot() {
            let start = self.slot_start(level, slot);
            if start > now {
                break;
            }
            self.elapsed = self.elapsed.max(start);

            // Take the whole slot, then fire or re-place each entry relative
            // to the new elapsed tick.
            let mut index = std::mem::replace(&mut self.heads[level][slot], NIL);
            self.occupied[level] &= !(1u64 << slot);
            while index != NIL {
                let next = self.nodes[index as usize].next;
                let when = self.nodes[index as usize].when;
                if when <= now {
                    let generation = self.nodes[index as usize].generation;
                    self.len -= 1;
                    let value = self.release(index);
                    expire(TimerKey { index, generation }, value);
                } else {
                    self.link(index);
                }
                index = next;
            }
        }
        self.elapsed = self.elapsed.max(now);
    }

    fn node_of(&self, key: TimerKey) -> Option<&Node<T>> {
        let node = self.nodes.get(key.index as usize)?;
        (node.generation == key.generation && node.value.is_some()).then_some(node)
    }

    fn alloc(&mut self, when: u64, value: T) -> u32 {
        if self.free != NIL {
            let index = self.free;
            let node = &mut self.nodes[index as usize];
            self.free = node.next;
            node.value = Some(value);
            node.when = when;
            return index;
        }
        let index = u32::try_from(self.nodes.len()).expect("more than 4 billion timers");
        self.nodes.push(Node {
            value: Some(value),
            when,
            prev: NIL,
            next: NIL,
            generation: 0,
            level: 0,
            slot: 0,
        });
        index
    }

    fn release(&mut self, index: u32) -> T {
        let free = self.free;
        let node = &mut self.nodes[index as usize];
        node.generation = node.generation.wrapping_add(1);
        node.next = free;
        node.prev = NIL;
        self.free = index;
        node.value.take().expect("released a free node")
    }

    /// Puts a node into the slot that its deadline maps to from `elapsed`.
    fn link(&mut self, index: u32) {
        let when = self.nodes[index as usize].when;
        let placed = when.clamp(self.elapsed, self.elapsed.saturating_add(MAX_SPAN));
        let level = level_for(self.elapsed, placed);
        let slot = ((placed >> (level as u32 * SLOT_BITS)) as usize) & (SLOTS - 1);

        let head = self.heads[level][slot];
        {
            let node = &mut self.nodes[index as usize];
            node.level = level as u8;
            node.slot = slot as u8;
            node.prev = NIL;
            node.next = head;
        }
        if head != NIL {
            self.nodes[head as usize].prev = index;
        }
        self.heads[level][slot] = index;
        self.occupied[level] |= 1u64 << slot;
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next, level, slot) = {
            let node = &self.nodes[index as usize];
            (
                node.prev,
                node.next,
                node.level as usize,
                node.slot as usize,
            )
        };
        if prev == NIL {
            self.heads[level][slot] = next;
            if next == NIL {
                self.occupied[level] &= !(1u64 << slot);
            }
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
    }

    /// Finds the lowest level with an occupied slot at or after the current
    /// position, and that slot.
    fn next_slot(&self) -> Option<(usize, usize)> {
        for level in 0..LEVELS {
            let occupied = self.occupied[level];
            if occupied == 0 {
                continue;
            }
            let position = ((self.elapsed >> (level as u32 * SLOT_BITS)) as usize) & (SLOTS - 1);
            let ahead = occupied & (u64::MAX << position);
            // Entries are placed at or after the current position, so
            // nothing sits behind it; the wrap-around is a safety net.
            let bits = if ahead != 0 { ahead } else { occupied };
            return Some((level, bits.trailing_zeros() as usize));
        }
        None
    }

    fn slot_start(&self, level: usize, slot: usize) -> u64 {
        let slot_bits = level as u32 * SLOT_BITS;
        let level_bits = slot_bits + SLOT_BITS;
        let base = if level_bits >= 64 {
            0
        } else {
            self.elapsed & !((1u64 << level_bits) - 1)
        };
        let start = base + ((slot as u64) << slot_bits);
        // A slot behind the current position belongs to the next rotation.
        if start < self.elapsed & !((1u64 << slot_bits) - 1) && level_bits < 64 {
            start + (1u64 << level_bits)
        } else {
            start
        }
    }
}

/// Returns the level whose slot width separates `elapsed` from `when`.
fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros() as usize;
    (significant / SLOT_BITS as usize).min(LEVELS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_deadline_order() {
        let mut wheel = TimerWheel::new();
        let deadlines = [1u64, 63, 64, 65, 4095, 4096, 300_000, 17_000_000, 5, 0];
        for &when in &deadlines {
            wheel.insert(when, when);
        }
        let mut fired = Vec::new();
        let mut now = 0;
        while !wheel.is_empty() {
            wheel.advance(now, |_, when| {
                assert!(when <= now, "fired {when} early at {now}");
                fired.push((when, now));
            });
            now = wheel.next_deadline().unwrap_or(now).max(now + 1);
        }
        let mut sorted = deadlines.to_vec();
        sorted.sort_unstable();
        assert_eq!(fired.iter().map(|f| f.0).collect::<Vec<_>>(), sorted);
        for (when, at) in fired {
            assert_eq!(when, at, "fired late");
        }
    }

    #[test]
    fn cancel_is_exact_and_keys_do_not_alias() {
        let mut wheel = TimerWheel::new();
        let a = wheel.insert(100, 'a');
        assert_eq!(wheel.cancel(a), Some('a'));
        assert_eq!(wheel.cancel(a), None);
        let b = wheel.insert(100, 'b');
        assert_ne!(a, b);
        assert!(wheel.get(a).is_none());
        assert_eq!(wheel.get(b).map(|(v, w)| (*v, w)), Some(('b', 100)));
        assert_eq!(wheel.len(), 1);
    }

    #[test]
    fn jumps_far_ahead_and_far_deadlines() {
        let mut wheel = TimerWheel::new();
        wheel.insert(u64::MAX / 2, 1);
        wheel.insert(10, 2);
        let mut fired = Vec::new();
        wheel.advance(1_000_000_000, |_, v| fired.push(v));
        assert_eq!(fired, [2]);
        wheel.advance(u64::MAX / 2, |_, v| fired.push(v));
        assert_eq!(fired, [2, 1]);
    }

    #[test]
    fn random_against_sorted_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut wheel = TimerWheel::new();
        let mut reference = std::collections::BTreeMap::new();
        let mut keys = Vec::new();
        let mut now = 0u64;
        for step in 0..20_000u64 {
            match rng.random_range(0..10) {
                0..=5 => {
                    let when = now + rng.random_range(0..200_000);
                    keys.push((wheel.insert(when, step), when, step));
                    reference.insert((when, step), ());
                }
                6 if !keys.is_empty() => {
                    let (key, when, id) = keys.swap_remove(rng.random_range(0..keys.len()));
                    let removed = wheel.cancel(key);
                    assert_eq!(removed.is_some(), reference.remove(&(when, id)).is_some());
                }
                _ => {
                    now += rng.random_range(0..5_000);
                    wheel.advance(now, |_, id| {
                        let when = reference.keys().find(|k| k.1 == id).copied().unwrap();
                        assert!(when.0 <= now);
                        reference.remove(&when);
                    });
                    assert!(reference.keys().all(|k| k.0 > now));
                }
            }
            assert_eq!(wheel.len(), reference.len());
        }
    }
}
