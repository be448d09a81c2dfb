//! The cron parser never panics, and every expression it accepts has a
//! next fire time (an expression that can never fire is rejected as such).

use proptest::prelude::*;
use pulse_core::clock::WallTime;
use pulse_core::sched::Schedule;
use pulse_sched::{Cron, SchedError};

const TOKENS: &[&str] = &[
    "*", "?", "0", "1", "5", "7", "12", "15", "23", "29", "30", "31", "59", "60", "L", "W", "#",
    "/", ",", "-", "+", "MON", "FRI", "JAN", "FEB", "5L", "15W", "LW", "7#2", "FRI#5", "2#6",
    "*/15", "1-5", "10-2", "0/0", "2030", "1999", "@daily", "@every", "1h", "0s", "ms", " ", "",
];

fn field() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 1..4).prop_map(|parts| parts.concat())
}

fn expression() -> impl Strategy<Value = String> {
    prop::collection::vec(field(), 1..8).prop_map(|fields| fields.join(" "))
}

fn check(expr: &str) {
    let after = WallTime::from_secs(1_767_225_600);
    let zones = ["UTC", "America/New_York", "Australia/Lord_Howe"];
    for zone in zones {
        let built = Cron::builder(expr).time_zone(zone).and_then(|b| b.build());
        match built {
            Ok(cron) => {
                let next = cron.next_after(after);
                assert!(
                    next.is_some(),
                    "`{expr}` in {zone} was accepted but has no next fire time"
                );
                assert!(next.unwrap() > after);
            }
            Err(SchedError::NeverFires { .. })
            | Err(SchedError::InvalidCron { .. })
            | Err(SchedError::ZeroInterval { .. }) => {}
            Err(other) => panic!("`{expr}`: unexpected error {other}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(expr in "\\PC{0,40}") {
        check(&expr);
    }

    #[test]
    fn token_soup_never_panics(expr in expression()) {
        check(&expr);
    }

    #[test]
    fn mutated_valid_expressions(base in prop::sample::select(vec![
        "0 30 2 * * *", "*/15 * * * *", "0 0 0 1,15 * 5", "0 0 0 * * 7#2", "0 0 L * *",
        "0 0 12 15W * ?", "0 0 8 * * * 2030", "@every 90s", "@hourly",
    ]), index in 0usize..20, replacement in prop::sample::select(TOKENS)) {
        let fields: Vec<&str> = base.split(' ').collect();
        let mut fields: Vec<String> = fields.into_iter().map(str::to_owned).collect();
        let at = index % fields.len();
        fields[at] = replacement.to_owned();
        check(&fields.join(" "));
    }
}
