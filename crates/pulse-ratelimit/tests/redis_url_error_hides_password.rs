//! A Redis URL that fails to parse is named in the error without its
//! password, whatever shape the typo gives it.
#![cfg(feature = "redis")]

use pulse_ratelimit::Quota;
use pulse_ratelimit::redis::{FailureMode, RedisAlgorithm, RedisLimiter};

const PASSWORD: &str = "hunter2-secret";

#[test]
fn malformed_url_error_hides_password() {
    let quota = Quota::per_second(10).unwrap();
    for url in [
        format!("redis//user:{PASSWORD}@127.0.0.1:6379"),
        format!("user:{PASSWORD}@127.0.0.1:6379"),
        format!("redis://user:{PASSWORD}/x@127.0.0.1:6379"),
        format!("redis://user:{PASSWORD}@[::1:6379/0"),
        format!("http://user:{PASSWORD}@127.0.0.1:6379"),
    ] {
        let result =
            RedisLimiter::builder(quota, RedisAlgorithm::Gcra, FailureMode::Error).url(&url);
        let Err(err) = result else {
            continue;
        };
        assert!(!err.to_string().contains(PASSWORD), "{err}");
        assert!(!format!("{err:?}").contains(PASSWORD), "{err:?}");
    }
}
