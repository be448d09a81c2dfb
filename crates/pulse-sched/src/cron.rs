//! Cron expressions in a time zone, with a stated policy for DST changes.
//!
//! Parsing is done by croner; the mapping from local wall times to UTC
//! instants is done here, so that the behaviour in a daylight-saving gap or
//! in a repeated hour is the one documented on [`DstPolicy`] and not an
//! accident of the parser.

use std::fmt;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::CronParser;
use pulse_core::clock::WallTime;
use pulse_core::sched::Schedule;

use crate::error::SchedError;

/// How a cron pattern behaves when the local clock skips or repeats an hour.
///
/// # The default: [`DstPolicy::Auto`]
///
/// A pattern whose minute or hour field starts with `*` (such as `*/15 * * *
/// *` or `0 * * * *`) is an *interval* pattern; any other is a *fixed-time*
/// pattern. This is what cronie does:
///
/// | local clock | fixed-time pattern | interval pattern |
/// | --- | --- | --- |
/// | skips an hour (spring forward) | a run in the gap fires once, at the first instant after the gap | runs in the gap are skipped |
/// | repeats an hour (fall back) | fires once, on the first pass | fires in both passes |
///
/// Examples, all in `America/New_York`:
///
/// - `0 30 2 * * *` on 2026-03-08 (02:00 jumps to 03:00) fires at 03:00 EDT.
/// - `0 30 1 * * *` on 2026-11-01 (01:00–02:00 happens twice) fires once, at
///   05:30 UTC.
/// - `0 */15 1 * * *` on 2026-11-01 fires at 05:00, 05:15, 05:30, 05:45,
///   06:00, 06:15, 06:30 and 06:45 UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DstPolicy {
    /// Interval patterns behave as [`DstPolicy::Interval`], fixed-time
    /// patterns as [`DstPolicy::FixedTime`].
    #[default]
    Auto,
    /// Every pattern behaves as a fixed-time one: a run in a gap moves to the
    /// end of the gap, a run in a repeated hour fires once.
    FixedTime,
    /// Every pattern behaves as an interval one: a run in a gap is skipped, a
    /// run in a repeated hour fires in both passes.
    Interval,
}

/// A cron schedule: a parsed expression, a time zone and a [`DstPolicy`].
///
/// Accepted syntax:
///
/// - 5 fields (`minute hour day-of-month month day-of-week`), 6 fields
///   (seconds first) and 7 fields (seconds first, year last);
/// - `L` (last day of the month, last weekday `5L`), `W` (nearest weekday,
///   `15W`), `#` (nth weekday, `FRI#2`; `7` is Sunday as well as `0`), ranges,
///   steps, lists and names (`MON`, `JAN`);
/// - the descriptors `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
///   `@midnight` and `@hourly`;
/// - `@every <duration>` with a duration such as `90s`, `15m`, `1h30m` or
///   `500ms`. It fires at whole multiples of the duration since the Unix
///   epoch, so every instance of a fleet agrees on the slots.
///
/// Day of month and day of week are ORed when both are restricted, as
/// crontab(5) says (`0 0 1,15 * 5` fires on the 1st, the 15th and every
/// Friday); [`CronBuilder::dom_and_dow`] asks for AND instead.
///
/// An expression that can never fire, such as `0 0 0 31 2 *`, or that has
/// no fire time after the moment it is parsed (a year field in the past),
/// is rejected when parsed with [`SchedError::NeverFires`].
///
/// # Examples
///
/// ```
/// use pulse_core::clock::WallTime;
/// use pulse_core::sched::Schedule;
/// use pulse_sched::Cron;
///
/// // 08:00 in Shanghai is 00:00 UTC.
/// let cron = Cron::builder("0 0 8 * * *").time_zone("Asia/Shanghai")?.build()?;
/// let next = cron.next_after(WallTime::from_secs(1_767_225_600)).unwrap(); // 2026-01-01T00:00Z
/// assert_eq!(next, WallTime::from_secs(1_767_225_600 + 86_400));
/// # Ok::<(), pulse_sched::SchedError>(())
/// ```
#[derive(Clone)]
pub struct Cron {
    expr: String,
    kind: Kind,
    tz: Tz,
    mode: Mode,
}

#[derive(Clone)]
enum Kind {
    Pattern(std::sync::Arc<croner::Cron>),
    Every(u64),
}

/// The DST behaviour after [`DstPolicy::Auto`] is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Fixed,
    Interval,
}

/// Builds a [`Cron`] with a time zone, a [`DstPolicy`] and the day-matching
/// mode.
///
/// # Examples
///
/// ```
/// use pulse_sched::{Cron, DstPolicy};
///
/// let cron = Cron::builder("30 2 * * *")
///     .time_zone("Europe/Berlin")?
///     .dst_policy(DstPolicy::Interval)
///     .build()?;
/// assert_eq!(cron.time_zone().name(), "Europe/Berlin");
/// # Ok::<(), pulse_sched::SchedError>(())
/// ```
#[derive(Clone, Debug)]
pub struct CronBuilder {
    expr: String,
    tz: Tz,
    dst: DstPolicy,
    dom_and_dow: bool,
}

/// Local times that a DST change can shift lie within this distance of the
/// change (the largest shift in the database is a few hours).
const SHIFT_WINDOW_SECS: i64 = 3 * 3600;

/// Upper bound on candidates examined in the slow path near a DST change,
/// enough for a per-second pattern over the window on both sides.
const SLOW_PATH_LIMIT: usize = 8 * SHIFT_WINDOW_SECS as usize;

/// The names of the fields of a 7-field expression, in order.
const FIELD_NAMES: [&str; 7] = [
    "second",
    "minute",
    "hour",
    "day of month",
    "month",
    "day of week",
    "year",
];

impl Cron {
    /// Parses an expression in UTC with the default policies.
    ///
    /// # Errors
    ///
    /// [`SchedError::InvalidCron`] with the field and its position,
    /// [`SchedError::NeverFires`], or [`SchedError::ZeroInterval`] for
    /// `@every 0s`.
    pub fn parse(expr: &str) -> Result<Cron, SchedError> {
        Cron::builder(expr).build()
    }

    /// Starts a builder for `expr`.
    pub fn builder(expr: &str) -> CronBuilder {
        CronBuilder {
            expr: expr.to_owned(),
            tz: Tz::UTC,
            dst: DstPolicy::Auto,
            dom_and_dow: false,
        }
    }

    /// Returns the expression as given.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Returns the time zone.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// Returns whether the pattern is treated as an interval pattern in DST
    /// changes (after [`DstPolicy::Auto`] is resolved).
    pub fn is_interval(&self) -> bool {
        self.mode == Mode::Interval
    }

    fn next_pattern(&self, cron: &croner::Cron, after_nanos: u64) -> Option<i64> {
        let after_secs = i64::try_from(after_nanos / 1_000_000_000).ok()?;
        let after = DateTime::<Utc>::from_timestamp(after_secs, 0)?;
        let off_after = self.offset_at(after_secs)?;

        // Fast path: no DST change near `after` or before the candidate, so
        // local time is UTC plus one fixed offset.
        let naive_after = after.naive_utc() + chrono::Duration::seconds(off_after);
        let first = next_naive(cron, naive_after)?;
        if self.offset_at(after_secs - SHIFT_WINDOW_SECS)? == off_after {
            if let LocalResult::Single(dt) = self.tz.from_local_datetime(&first) {
                if dt.offset().fix().local_minus_utc() as i64 == off_after {
                    return Some(dt.timestamp());
                }
            }
        }

        self.next_near_change(cron, after_secs, naive_after)
    }

    /// Handles the general case: walks local candidates from a little before `after`
    /// and keeps the earliest UTC instant the policy maps them to.
    fn next_near_change(
        &self,
        cron: &croner::Cron,
        after_secs: i64,
        naive_after: NaiveDateTime,
    ) -> Option<i64> {
        let mut best: Option<i64> = None;
        let mut cursor = naive_after - chrono::Duration::seconds(SHIFT_WINDOW_SECS + 1);

        for _ in 0..SLOW_PATH_LIMIT {
            let candidate = next_naive(cron, cursor)?;
            cursor = candidate;
            if let Some(best) = best {
                let best_local = best + self.offset_at(best)?;
                if candidate.and_utc().timestamp() > best_local + SHIFT_WINDOW_SECS {
                    break;
                }
            }
            for instant in self.instants(candidate).into_iter().flatten() {
                if instant > after_secs && best.is_none_or(|b| instant < b) {
                    best = Some(instant);
                }
            }
        }
        best
    }

    /// Maps a local candidate to the UTC instants (seconds) it fires at
    /// under the DST mode: none, one or two.
    fn instants(&self, local: NaiveDateTime) -> [Option<i64>; 2] {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(dt) => [Some(dt.timestamp()), None],
            LocalResult::Ambiguous(first, second) => match self.mode {
                Mode::Fixed => [Some(first.timestamp()), None],
                Mode::Interval => [Some(first.timestamp()), Some(second.timestamp())],
            },
            LocalResult::None => match self.mode {
                Mode::Fixed => [self.gap_end(local), None],
                Mode::Interval => [None, None],
            },
        }
    }

    /// Finds the end of the gap that `local` lies in: the first instant whose
    /// local reading is later than `local`.
    fn gap_end(&self, local: NaiveDateTime) -> Option<i64> {
        let target = local.and_utc().timestamp();
        let mut lo = target - 26 * 3600;
        let mut hi = target + 26 * 3600;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if mid + self.offset_at(mid)? > target {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    }

    /// Returns the UTC offset of the zone at an instant, in seconds.
    fn offset_at(&self, secs: i64) -> Option<i64> {
        let utc = DateTime::<Utc>::from_timestamp(secs, 0)?;
        Some(
            self.tz
                .offset_from_utc_datetime(&utc.naive_utc())
                .fix()
                .local_minus_utc() as i64,
        )
    }
}

/// The next local time strictly after `after` that matches the pattern.
fn next_naive(cron: &croner::Cron, after: NaiveDateTime) -> Option<NaiveDateTime> {
    cron.find_next_occurrence(&after.and_utc(), false)
        .ok()
        .map(|dt| dt.naive_utc())
}

impl Schedule for Cron {
    fn next_after(&self, after: WallTime) -> Option<WallTime> {
        match &self.kind {
            Kind::Every(period) => {
                let slots = after.as_nanos() / period;
                let next = slots.checked_add(1)?.checked_mul(*period)?;
                Some(WallTime::from_nanos(next))
            }
            Kind::Pattern(cron) => {
                let next = self.next_pattern(cron, after.as_nanos())?;
                u64::try_from(next).ok().map(WallTime::from_secs)
            }
        }
    }
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cron")
            .field("expr", &self.expr)
            .field("tz", &self.tz.name())
            .field("mode", &self.mode)
            .finish()
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expr, self.tz.name())
    }
}

impl std::str::FromStr for Cron {
    type Err = SchedError;

    fn from_str(expr: &str) -> Result<Cron, SchedError> {
        Cron::parse(expr)
    }
}

impl CronBuilder {
    /// Sets the time zone by IANA name (`Europe/Berlin`, `UTC`).
    ///
    /// # Errors
    ///
    /// [`SchedError::UnknownTimeZone`] for a name the database does not know.
    pub fn time_zone(mut self, name: &str) -> Result<Self, SchedError> {
        self.tz = name
            .trim()
            .parse::<Tz>()
            .map_err(|_| SchedError::UnknownTimeZone {
                name: name.to_owned(),
            })?;
        Ok(self)
    }

    /// Sets the time zone.
    pub fn tz(mut self, tz: Tz) -> Self {
        self.tz = tz;
        self
    }

    /// Sets the DST policy; [`DstPolicy::Auto`] by default.
    pub fn dst_policy(mut self, policy: DstPolicy) -> Self {
        self.dst = policy;
        self
    }

    /// Matches a day only when both the day of month and the day of week
    /// match, instead of either (the crontab(5) default).
    pub fn dom_and_dow(mut self, and: bool) -> Self {
        self.dom_and_dow = and;
        self
    }

    /// Parses the expression.
    ///
    /// # Errors
    ///
    /// See [`Cron::parse`].
    pub fn build(self) -> Result<Cron, SchedError> {
        let trimmed = self.expr.trim();
        if let Some(rest) = strip_prefix_ignore_case(trimmed, "@every") {
            let period = parse_every(&self.expr, rest)?;
            return Ok(Cron {
                expr: self.expr,
                kind: Kind::Every(period),
                tz: self.tz,
                mode: Mode::Interval,
            });
        }

        let pattern = expand_descriptor(&self.expr, trimmed)?;
        let parser = CronParser::builder().dom_and_dow(self.dom_and_dow).build();
        let cron = parser
            .parse(&pattern)
            .map_err(|err| locate_error(&self.expr, &pattern, &parser, &err.to_string()))?;

        let mode = match self.dst {
            DstPolicy::FixedTime => Mode::Fixed,
            DstPolicy::Interval => Mode::Interval,
            DstPolicy::Auto if is_interval_pattern(&pattern) => Mode::Interval,
            DstPolicy::Auto => Mode::Fixed,
        };
        let cron = Cron {
            expr: self.expr,
            kind: Kind::Pattern(std::sync::Arc::new(cron)),
            tz: self.tz,
            mode,
        };

        // A pattern with no matching date would make every later lookup
        // search to croner's year limit; reject it once, here. A year field
        // that lies wholly in the past never fires again either.
        let now = WallTime::from_system_time(std::time::SystemTime::now());
        if !cron.matches_any_day() || cron.next_after(now).is_none() {
            return Err(SchedError::NeverFires { expr: cron.expr });
        }
        Ok(cron)
    }
}

impl Cron {
    /// Cheap check for day-of-month and month combinations that no year
    /// has (31 February, 31 April), which croner would search for to its
    /// year limit.
    fn matches_any_day(&self) -> bool {
        let Kind::Pattern(cron) = &self.kind else {
            return true;
        };
        // 2024 is a leap year and 2027 a normal one; over eight years every
        // weekday falls on every date, so a day that matches in neither
        // window never matches.
        for year in 2024..2032 {
            for month in 1..=12u32 {
                if !cron.pattern.month_match(month).unwrap_or(false) {
                    continue;
                }
                for day in 1..=31u32 {
                    if chrono::NaiveDate::from_ymd_opt(year, month, day).is_none() {
                        continue;
                    }
                    if cron.pattern.day_match(year, month, day).unwrap_or(false) {
                        return true;
                    }
                }
            }
        }
        false
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Replaces an `@daily`-style descriptor with its pattern; other
/// expressions pass through.
fn expand_descriptor(expr: &str, trimmed: &str) -> Result<String, SchedError> {
    if !trimmed.starts_with('@') {
        return Ok(trimmed.to_owned());
    }
    let pattern = match trimmed.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => {
            return Err(SchedError::InvalidCron {
                expr: expr.to_owned(),
                field: "expression",
                position: expr.find('@').unwrap_or(0),
                reason: "unknown descriptor; use @yearly, @monthly, @weekly, @daily, @hourly or @every <duration>".into(),
            });
        }
    };
    Ok(pattern.to_owned())
}

/// Parses the duration of `@every`: a sequence of `<number><unit>` with
/// units `ms`, `s`, `m`, `h` and `d`.
fn parse_every(expr: &str, rest: &str) -> Result<u64, SchedError> {
    let text = rest.trim();
    let position = expr.len() - expr.trim_start().len() + "@every".len() + 1;
    let bad = |reason: &str| SchedError::InvalidCron {
        expr: expr.to_owned(),
        field: "duration",
        position,
        reason: reason.to_owned(),
    };
    if text.is_empty() {
        return Err(bad(
            "missing duration; write `@every 15m` or `@every 1h30m`",
        ));
    }

    let mut total: u64 = 0;
    let mut chars = text.char_indices().peekable();
    while chars.peek().is_some() {
        let mut digits = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if !c.is_ascii_digit() {
                break;
            }
            digits.push(c);
            chars.next();
        }
        let mut unit = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c.is_ascii_digit() {
                break;
            }
            unit.push(c);
            chars.next();
        }
        let value: u64 = digits
            .parse()
            .map_err(|_| bad("expected a number before each unit, as in `90s`"))?;
        let scale: u64 = match unit.trim() {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return Err(bad("unknown unit; use ms, s, m, h or d")),
        };
        total = value
            .checked_mul(scale)
            .and_then(|nanos| total.checked_add(nanos))
            .ok_or_else(|| bad("duration too large"))?;
    }
    if total < 1_000_000 {
        return Err(SchedError::ZeroInterval {
            context: expr.to_owned(),
        });
    }
    Ok(total)
}

/// Whether the minute or the hour field starts with `*`.
fn is_interval_pattern(pattern: &str) -> bool {
    let fields: Vec<&str> = pattern.split_whitespace().collect();
    let (minute, hour) = if fields.len() == 5 {
        (fields[0], fields[1])
    } else {
        (
            fields.get(1).copied().unwrap_or(""),
            fields.get(2).copied().unwrap_or(""),
        )
    };
    minute.starts_with('*') || hour.starts_with('*')
}

/// Turns croner's message into an error that names the failing field and
/// where it starts in the expression.
fn locate_error(expr: &str, pattern: &str, parser: &CronParser, reason: &str) -> SchedError {
    let spans = field_spans(pattern);
    let count = spans.len();
    let whole = |reason: String| SchedError::InvalidCron {
        expr: expr.to_owned(),
        field: "expression",
        position: 0,
        reason,
    };
    if !(5..=7).contains(&count) {
        return whole(format!(
            "expected 5, 6 or 7 fields separated by spaces, found {count}"
        ));
    }

    // Try each field alone in an otherwise permissive expression: the first
    // that fails is the one to blame.
    let offset = if count == 5 { 1 } else { 0 };
    for (index, &(start, text)) in spans.iter().enumerate() {
        let mut probe = ["*"; 7];
        probe[0] = "0";
        probe[index + offset] = text;
        if parser.parse(&probe.join(" ")).is_err() {
            let base = expr.len() - expr.trim_start().len();
            let position = if pattern == expr.trim() {
                base + start
            } else {
                0
            };
            return SchedError::InvalidCron {
                expr: expr.to_owned(),
                field: FIELD_NAMES[index + offset],
                position,
                reason: format!("`{text}`: {reason}"),
            };
        }
    }
    whole(reason.to_owned())
}

/// Each whitespace-separated field with its byte offset.
fn field_spans(pattern: &str) -> Vec<(usize, &str)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (index, c) in pattern.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, &pattern[s..index]));
                start = None;
            }
            (false, None) => start = Some(index),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, &pattern[s..]));
    }
    spans
}

/// Converts a time to the local wall-clock reading of a zone, for display
/// and tests.
pub fn local_time(tz: Tz, at: WallTime) -> Option<DateTime<Tz>> {
    let secs = i64::try_from(at.as_secs()).ok()?;
    let nanos = (at.as_nanos() % 1_000_000_000) as u32;
    DateTime::<Utc>::from_timestamp(secs, nanos).map(|dt| dt.with_timezone(&tz))
}
