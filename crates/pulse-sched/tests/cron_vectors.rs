//! The scheduling vectors: cron next-fire times across time zones and DST
//! changes, and the parse-time rejections.

use chrono::{TimeZone, Utc};
use pulse_core::clock::WallTime;
use pulse_core::sched::Schedule;
use pulse_sched::{Cron, DstPolicy, SchedError};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> WallTime {
    let secs = Utc
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .unwrap()
        .timestamp();
    WallTime::from_secs(secs as u64)
}

fn in_zone(expr: &str, zone: &str) -> Cron {
    Cron::builder(expr)
        .time_zone(zone)
        .unwrap()
        .build()
        .unwrap()
}

/// Collects every fire time in `[from, to)`.
fn fires(cron: &Cron, from: WallTime, to: WallTime) -> Vec<WallTime> {
    let mut out = Vec::new();
    let mut at = from.saturating_sub(std::time::Duration::from_nanos(1));
    while let Some(next) = cron.next_after(at) {
        if next >= to {
            break;
        }
        out.push(next);
        at = next;
    }
    out
}

#[test]
fn fixed_time_in_spring_gap_fires_after_the_gap() {
    let cron = in_zone("0 30 2 * * *", "America/New_York");
    // 2026-03-08 00:00 EST is 05:00 UTC; 03:00 EDT is 07:00 UTC.
    let next = cron.next_after(utc(2026, 3, 8, 5, 0, 0)).unwrap();
    assert_eq!(next, utc(2026, 3, 8, 7, 0, 0));

    // The day after, 02:30 EDT exists again.
    let after = cron.next_after(next).unwrap();
    assert_eq!(after, utc(2026, 3, 9, 6, 30, 0));
}

#[test]
fn fixed_time_in_repeated_hour_fires_once() {
    let cron = in_zone("0 30 1 * * *", "America/New_York");
    let day = fires(&cron, utc(2026, 11, 1, 4, 0, 0), utc(2026, 11, 2, 4, 0, 0));
    assert_eq!(day, vec![utc(2026, 11, 1, 5, 30, 0)]);
}

#[test]
fn interval_in_repeated_hour_fires_in_both_passes() {
    let cron = in_zone("0 */15 1 * * *", "America/New_York");
    let day = fires(&cron, utc(2026, 11, 1, 4, 0, 0), utc(2026, 11, 2, 4, 0, 0));
    let want: Vec<WallTime> = [
        (5, 0),
        (5, 15),
        (5, 30),
        (5, 45),
        (6, 0),
        (6, 15),
        (6, 30),
        (6, 45),
    ]
    .iter()
    .map(|&(h, m)| utc(2026, 11, 1, h, m, 0))
    .collect();
    assert_eq!(day, want);
}

#[test]
fn thirty_first_of_february_is_rejected() {
    let err = Cron::parse("0 0 0 31 2 *").unwrap_err();
    assert!(matches!(err, SchedError::NeverFires { .. }), "{err}");
    assert!(err.to_string().contains("never fires"));
    assert!(matches!(
        Cron::parse("0 0 8 * * * 1999").unwrap_err(),
        SchedError::NeverFires { .. }
    ));
}

#[test]
fn dom_and_dow_are_ored_by_default() {
    let cron = Cron::parse("0 0 0 1,15 * 5").unwrap();
    // May 2026: Fridays are 1, 8, 15, 22, 29; the 1st and 15th are Fridays
    // too, so add June to see a non-Friday 1st and 15th.
    let got = fires(&cron, utc(2026, 6, 1, 0, 0, 0), utc(2026, 7, 1, 0, 0, 0));
    let want: Vec<WallTime> = [1, 5, 12, 15, 19, 26]
        .iter()
        .map(|&d| utc(2026, 6, d, 0, 0, 0))
        .collect();
    assert_eq!(got, want);

    let and = Cron::builder("0 0 0 1,15 * 5")
        .dom_and_dow(true)
        .build()
        .unwrap();
    let got = fires(&and, utc(2026, 1, 1, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0));
    assert!(got.iter().all(|t| {
        let dt = pulse_sched::cron::local_time(chrono_tz::UTC, *t).unwrap();
        use chrono::{Datelike, Weekday};
        dt.weekday() == Weekday::Fri && (dt.day() == 1 || dt.day() == 15)
    }));
    assert!(!got.is_empty());
}

#[test]
fn seven_is_sunday_with_nth() {
    let cron = Cron::parse("0 0 0 * * 7#2").unwrap();
    // The second Sunday of March 2026 is the 8th.
    assert_eq!(
        cron.next_after(utc(2026, 3, 1, 0, 0, 0)),
        Some(utc(2026, 3, 8, 0, 0, 0))
    );
}

#[test]
fn shanghai_eight_am_is_midnight_utc() {
    let cron = in_zone("0 0 8 * * *", "Asia/Shanghai");
    let got = fires(&cron, utc(2026, 1, 1, 0, 0, 1), utc(2026, 1, 4, 0, 0, 1));
    assert_eq!(
        got,
        vec![
            utc(2026, 1, 2, 0, 0, 0),
            utc(2026, 1, 3, 0, 0, 0),
            utc(2026, 1, 4, 0, 0, 0)
        ]
    );
}

#[test]
fn cairo_interval_skips_the_gap_hour() {
    let cron = in_zone("0 0 */2 * * *", "Africa/Cairo");
    // Local days: 2025-04-24 00:00 EET = 22:00 UTC the day before.
    let before = fires(
        &cron,
        utc(2025, 4, 23, 22, 0, 0),
        utc(2025, 4, 24, 22, 0, 0),
    );
    assert_eq!(before.len(), 12);

    // 2025-04-25 starts at 2025-04-24 22:00 UTC, when 00:00 jumps to 01:00.
    let day = fires(
        &cron,
        utc(2025, 4, 24, 22, 0, 0),
        utc(2025, 4, 25, 21, 0, 0),
    );
    assert_eq!(day.len(), 11);
    assert_eq!(
        day[0],
        utc(2025, 4, 24, 23, 0, 0),
        "02:00 EEST is 23:00 UTC"
    );
    assert_eq!(
        day[10],
        utc(2025, 4, 25, 19, 0, 0),
        "22:00 EEST is 19:00 UTC"
    );

    let after = fires(
        &cron,
        utc(2025, 4, 25, 21, 0, 0),
        utc(2025, 4, 26, 21, 0, 0),
    );
    assert_eq!(after.len(), 12);
}

#[test]
fn policies_can_be_forced() {
    let cron = Cron::builder("0 */30 2 * * *")
        .time_zone("America/New_York")
        .unwrap()
        .dst_policy(DstPolicy::FixedTime)
        .build()
        .unwrap();
    // Both 02:00 and 02:30 fall in the gap and move to 03:00: one run.
    let got = fires(&cron, utc(2026, 3, 8, 5, 0, 0), utc(2026, 3, 8, 12, 0, 0));
    assert_eq!(got, vec![utc(2026, 3, 8, 7, 0, 0)]);

    let cron = Cron::builder("0 30 1 * * *")
        .time_zone("America/New_York")
        .unwrap()
        .dst_policy(DstPolicy::Interval)
        .build()
        .unwrap();
    let got = fires(&cron, utc(2026, 11, 1, 4, 0, 0), utc(2026, 11, 2, 4, 0, 0));
    assert_eq!(
        got,
        vec![utc(2026, 11, 1, 5, 30, 0), utc(2026, 11, 1, 6, 30, 0)]
    );
}

#[test]
fn field_counts_descriptors_and_every() {
    assert!(Cron::parse("*/5 * * * *").is_ok());
    assert!(Cron::parse("*/5 * * * * *").is_ok());
    assert!(Cron::parse("0 0 12 * * * 2030").is_ok());
    assert!(Cron::parse("0 0 L * *").is_ok());
    assert!(Cron::parse("0 0 15W * *").is_ok());
    assert!(Cron::parse("0 0 * * 5L").is_ok());
    for descriptor in [
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ] {
        Cron::parse(descriptor).unwrap();
    }
    assert!(Cron::parse("@hourly").unwrap().is_interval());
    assert!(!Cron::parse("@daily").unwrap().is_interval());

    let every = Cron::parse("@every 1h30m").unwrap();
    assert_eq!(
        every.next_after(utc(2026, 1, 1, 0, 10, 0)),
        Some(utc(2026, 1, 1, 1, 30, 0))
    );
    let every = Cron::parse("@every 250ms").unwrap();
    assert_eq!(
        every.next_after(WallTime::from_millis(1_000)),
        Some(WallTime::from_millis(1_250))
    );
}

#[test]
fn bad_input_names_field_and_position() {
    match Cron::parse("0 25 * * *").unwrap_err() {
        SchedError::InvalidCron {
            field, position, ..
        } => {
            assert_eq!(field, "hour");
            assert_eq!(position, 2);
        }
        other => panic!("unexpected {other}"),
    }
    match Cron::parse("0 0 * * MON#9").unwrap_err() {
        SchedError::InvalidCron { field, .. } => assert_eq!(field, "day of week"),
        other => panic!("unexpected {other}"),
    }
    assert!(matches!(
        Cron::parse("* * *").unwrap_err(),
        SchedError::InvalidCron {
            field: "expression",
            ..
        }
    ));
    assert!(matches!(
        Cron::parse("@every 0s").unwrap_err(),
        SchedError::ZeroInterval { .. }
    ));
    assert!(matches!(
        Cron::parse("@every soon").unwrap_err(),
        SchedError::InvalidCron {
            field: "duration",
            ..
        }
    ));
    assert!(matches!(
        Cron::parse("@fortnightly").unwrap_err(),
        SchedError::InvalidCron { .. }
    ));
    assert!(matches!(
        Cron::builder("* * * * *")
            .time_zone("Mars/Olympus_Mons")
            .unwrap_err(),
        SchedError::UnknownTimeZone { .. }
    ));
}

#[test]
fn early_wake_daily_job_next_is_tomorrow() {
    let cron = Cron::parse("0 50 9 * * *").unwrap();
    // Asked 1.1 s before the slot: the slot is still 09:50:00 today.
    let early = utc(2026, 5, 4, 9, 49, 58).saturating_add(std::time::Duration::from_millis(900));
    assert_eq!(cron.next_after(early), Some(utc(2026, 5, 4, 9, 50, 0)));
    assert_eq!(
        cron.next_after(utc(2026, 5, 4, 9, 50, 0)),
        Some(utc(2026, 5, 5, 9, 50, 0))
    );
}
