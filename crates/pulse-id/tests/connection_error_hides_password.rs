//! Connection errors name the store without its password, for URLs that
//! fail to parse and for PostgreSQL key-value strings.

const PASSWORD: &str = "hunter2-secret";

#[cfg(feature = "redis")]
#[test]
fn malformed_redis_url_error_hides_password() {
    use pulse_id::lease::redis::RedisWorkerLeases;

    for url in [
        format!("redis//user:{PASSWORD}@127.0.0.1:6379"),
        format!("user:{PASSWORD}@127.0.0.1:6379"),
        format!("redis://user:{PASSWORD}/x@127.0.0.1:6379"),
        format!("http://user:{PASSWORD}@127.0.0.1:6379"),
    ] {
        let Err(err) = RedisWorkerLeases::from_url(&url, "workers") else {
            continue;
        };
        assert!(!err.to_string().contains(PASSWORD), "{err}");
        assert!(!format!("{err:?}").contains(PASSWORD), "{err:?}");
    }
}

/// Nothing listens on port 1, so the connection fails at once.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_key_value_error_hides_password() {
    use pulse_id::lease::postgres::PgWorkerLeases;

    let conninfo = format!("host=127.0.0.1 port=1 user=app password={PASSWORD} connect_timeout=2");
    let Err(err) = PgWorkerLeases::connect(&conninfo, "workers").await else {
        panic!("connected to a closed port");
    };
    assert!(!err.to_string().contains(PASSWORD), "{err}");
    assert!(!format!("{err:?}").contains(PASSWORD), "{err:?}");
}
