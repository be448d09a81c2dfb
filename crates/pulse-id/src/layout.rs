//! Bit layouts of Snowflake IDs: how many bits go to the timestamp, the
//! worker id and the sequence, and the epoch and tick the timestamp counts
//! from.

use std::time::Duration;

use pulse_core::clock::WallTime;
use pulse_core::error::ConfigError;

/// 2010-11-04T01:42:54.657Z, the epoch of Twitter's Snowflake.
pub const TWITTER_EPOCH_MS: u64 = 1_288_834_974_657;

/// 2014-09-01T00:00:00Z, the epoch Sonyflake uses by default.
pub const SONYFLAKE_EPOCH_MS: u64 = 1_409_529_600_000;

/// How a Snowflake ID divides its 63 bits.
///
/// From the most significant bit down, an ID is a zero sign bit, the
/// timestamp (ticks since the epoch), the worker id and the sequence number
/// within the tick. The three fields take at most 63 bits together, so IDs are
/// positive as `i64` too.
///
/// | preset | timestamp | worker | sequence | tick | lifetime | IDs per tick per worker |
/// | --- | --- | --- | --- | --- | --- | --- |
/// | [`twitter`](Layout::twitter) | 41 bits | 10 bits | 12 bits | 1 ms | 69 years | 4096 |
/// | [`sonyflake`](Layout::sonyflake) | 39 bits | 16 bits | 8 bits | 10 ms | 174 years | 256 |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_id::Layout;
///
/// let layout = Layout::twitter();
/// assert_eq!(layout.max_worker_id(), 1023);
/// assert_eq!(layout.max_sequence(), 4095);
///
/// // A custom layout: no worker bits, 22 sequence bits.
/// let wide = Layout::builder()
///     .timestamp_bits(41)
///     .worker_bits(0)
///     .sequence_bits(22)
///     .tick(Duration::from_millis(1))
///     .build()
///     .unwrap();
/// assert_eq!(wide.max_sequence(), (1 << 22) - 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    timestamp_bits: u8,
    worker_bits: u8,
    sequence_bits: u8,
    epoch_ms: u64,
    tick_ms: u64,
}

/// The parts of a decoded Snowflake ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SnowflakeParts {
    /// Ticks since the layout's epoch.
    pub tick: u64,
    /// The start of the tick, as a wall-clock time.
    pub timestamp: WallTime,
    /// The worker id.
    pub worker_id: u64,
    /// The sequence number within the tick.
    pub sequence: u64,
}

impl Layout {
    /// Returns the Twitter layout: 41 timestamp bits of 1 ms since
    /// 2010-11-04T01:42:54.657Z, 10 worker bits and 12 sequence bits.
    pub const fn twitter() -> Self {
        Layout {
            timestamp_bits: 41,
            worker_bits: 10,
            sequence_bits: 12,
            epoch_ms: TWITTER_EPOCH_MS,
            tick_ms: 1,
        }
    }

    /// Returns a Sonyflake-like layout: 39 timestamp bits of 10 ms since
    /// 2014-09-01T00:00:00Z, 16 worker bits and 8 sequence bits.
    ///
    /// Sonyflake itself puts the sequence before the machine id; this layout
    /// keeps the worker id before the sequence like every layout here, so
    /// the bit positions differ from Sonyflake's while the field sizes match.
    pub const fn sonyflake() -> Self {
        Layout {
            timestamp_bits: 39,
            worker_bits: 16,
            sequence_bits: 8,
            epoch_ms: SONYFLAKE_EPOCH_MS,
            tick_ms: 10,
        }
    }

    /// Starts a custom layout from the Twitter preset.
    pub fn builder() -> LayoutBuilder {
        LayoutBuilder {
            layout: Layout::twitter(),
        }
    }

    /// Returns the timestamp bits.
    pub const fn timestamp_bits(&self) -> u8 {
        self.timestamp_bits
    }

    /// Returns the worker-id bits.
    pub const fn worker_bits(&self) -> u8 {
        self.worker_bits
    }

    /// Returns the sequence bits.
    pub const fn sequence_bits(&self) -> u8 {
        self.sequence_bits
    }

    /// Returns the epoch, in ms since the Unix epoch.
    pub const fn epoch_ms(&self) -> u64 {
        self.epoch_ms
    }

    /// Returns the length of one tick in ms.
    pub const fn tick_ms(&self) -> u64 {
        self.tick_ms
    }

    /// Returns the largest worker id.
    pub const fn max_worker_id(&self) -> u64 {
        mask(self.worker_bits)
    }

    /// Returns the largest sequence number: one tick holds this plus one IDs
    /// per worker.
    pub const fn max_sequence(&self) -> u64 {
        mask(self.sequence_bits)
    }

    /// Returns the largest tick the timestamp bits hold.
    pub const fn max_tick(&self) -> u64 {
        mask(self.timestamp_bits)
    }

    /// Assembles an ID from its parts. Parts wider than their fields are
    /// masked.
    #[inline]
    pub const fn compose(&self, tick: u64, worker_id: u64, sequence: u64) -> u64 {
        let tick = tick & self.max_tick();
        let worker_id = worker_id & self.max_worker_id();
        let sequence = sequence & self.max_sequence();
        (tick << (self.worker_bits + self.sequence_bits))
            | (worker_id << self.sequence_bits)
            | sequence
    }

    /// Splits an ID into its parts.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_id::Layout;
    ///
    /// let layout = Layout::twitter();
    /// let id = layout.compose(1_000, 7, 42);
    /// let parts = layout.decode(id);
    /// assert_eq!((parts.tick, parts.worker_id, parts.sequence), (1_000, 7, 42));
    /// assert_eq!(parts.timestamp.as_millis(), pulse_id::layout::TWITTER_EPOCH_MS + 1_000);
    /// ```
    pub const fn decode(&self, id: u64) -> SnowflakeParts {
        let tick = (id >> (self.worker_bits + self.sequence_bits)) & self.max_tick();
        SnowflakeParts {
            tick,
            timestamp: WallTime::from_millis(self.epoch_ms + tick * self.tick_ms),
            worker_id: (id >> self.sequence_bits) & self.max_worker_id(),
            sequence: id & self.max_sequence(),
        }
    }

    /// Returns the tick that contains the wall-clock millisecond `ms`, or
    /// `None` before the epoch.
    #[inline]
    pub const fn tick_of_ms(&self, ms: u64) -> Option<u64> {
        if ms < self.epoch_ms {
            return None;
        }
        let since = ms - self.epoch_ms;

        // The common 1 ms tick skips the division.
        if self.tick_ms == 1 {
            Some(since)
        } else {
            Some(since / self.tick_ms)
        }
    }

    /// Returns the wall-clock millisecond at which `tick` starts.
    #[inline]
    pub const fn ms_of_tick(&self, tick: u64) -> u64 {
        self.epoch_ms
            .saturating_add(tick.saturating_mul(self.tick_ms))
    }
}

impl Default for Layout {
    fn default() -> Self {
        Layout::twitter()
    }
}

const fn mask(bits: u8) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Builds a custom [`Layout`], starting from the Twitter preset.
#[derive(Clone, Debug)]
pub struct LayoutBuilder {
    layout: Layout,
}

impl LayoutBuilder {
    /// Sets the timestamp bits (20 to 48).
    pub fn timestamp_bits(mut self, bits: u8) -> Self {
        self.layout.timestamp_bits = bits;
        self
    }

    /// Sets the worker-id bits (0 to 16).
    pub fn worker_bits(mut self, bits: u8) -> Self {
        self.layout.worker_bits = bits;
        self
    }

    /// Sets the sequence bits (1 to 32).
    pub fn sequence_bits(mut self, bits: u8) -> Self {
        self.layout.sequence_bits = bits;
        self
    }

    /// Sets the epoch the timestamp counts from.
    pub fn epoch(mut self, epoch: WallTime) -> Self {
        self.layout.epoch_ms = epoch.as_millis();
        self
    }

    /// Sets the length of one tick, a whole number of milliseconds (1 ms to
    /// 1 s).
    pub fn tick(mut self, tick: Duration) -> Self {
        self.layout.tick_ms = u64::try_from(tick.as_millis()).unwrap_or(u64::MAX);
        if Duration::from_millis(self.layout.tick_ms) != tick {
            // A fractional tick is rejected in `build`.
            self.layout.tick_ms = 0;
        }
        self
    }

    /// Checks the layout and returns it.
    pub fn build(self) -> Result<Layout, ConfigError> {
        let layout = self.layout;
        if !(20..=48).contains(&layout.timestamp_bits) {
            return Err(ConfigError::new(
                "timestamp_bits",
                layout.timestamp_bits,
                "use 20 to 48 timestamp bits",
            ));
        }
        if layout.worker_bits > 16 {
            return Err(ConfigError::new(
                "worker_bits",
                layout.worker_bits,
                "use at most 16 worker bits",
            ));
        }
        if !(1..=32).contains(&layout.sequence_bits) {
            return Err(ConfigError::new(
                "sequence_bits",
                layout.sequence_bits,
                "use 1 to 32 sequence bits",
            ));
        }
        let total = u32::from(layout.timestamp_bits)
            + u32::from(layout.worker_bits)
            + u32::from(layout.sequence_bits);
        if total > 63 {
            return Err(ConfigError::new(
                "bit layout",
                format!(
                    "{}+{}+{}={total}",
                    layout.timestamp_bits, layout.worker_bits, layout.sequence_bits
                ),
                "keep timestamp, worker and sequence bits at 63 or fewer in all",
            ));
        }
        if !(1..=1000).contains(&layout.tick_ms) {
            return Err(ConfigError::new(
                "tick",
                format!("{} ms", layout.tick_ms),
                "use a whole number of milliseconds from 1 ms to 1 s",
            ));
        }
        Ok(layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_use_63_bits() {
        for layout in [Layout::twitter(), Layout::sonyflake()] {
            let total = layout.timestamp_bits() + layout.worker_bits() + layout.sequence_bits();
            assert_eq!(total, 63);
        }
    }

    #[test]
    fn compose_decode_round_trip() {
        let layout = Layout::sonyflake();
        let id = layout.compose(123_456, 65_535, 255);
        let parts = layout.decode(id);
        assert_eq!(parts.tick, 123_456);
        assert_eq!(parts.worker_id, 65_535);
        assert_eq!(parts.sequence, 255);
        assert_eq!(parts.timestamp.as_millis(), SONYFLAKE_EPOCH_MS + 1_234_560);
        assert!(i64::try_from(id).is_ok());
    }

    #[test]
    fn builder_rejects_bad_layouts() {
        let too_wide = Layout::builder().sequence_bits(13).build().unwrap_err();
        assert_eq!(too_wide.field(), "bit layout");
        let worker = Layout::builder().worker_bits(17).build().unwrap_err();
        assert_eq!(worker.field(), "worker_bits");
        let tick = Layout::builder()
            .tick(Duration::from_micros(1500))
            .build()
            .unwrap_err();
        assert_eq!(tick.field(), "tick");
    }

    #[test]
    fn tick_of_ms_handles_epoch() {
        let layout = Layout::sonyflake();
        assert_eq!(layout.tick_of_ms(SONYFLAKE_EPOCH_MS - 1), None);
        assert_eq!(layout.tick_of_ms(SONYFLAKE_EPOCH_MS + 19), Some(1));
        assert_eq!(layout.ms_of_tick(2), SONYFLAKE_EPOCH_MS + 20);
    }
}
