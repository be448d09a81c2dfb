//! Per-test PostgreSQL schemas, against the shared PostgreSQL.

use pulse_testkit::pg::TestSchema;
use tokio_postgres::{Client, NoTls};

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn plain_client(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn schema_exists(client: &Client, name: &str) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
            &[&name],
        )
        .await?;
    Ok(row.get::<_, i64>(0) == 1)
}

#[tokio::test]
async fn schema_url_sets_search_path() -> TestResult {
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return Ok(());
    };
    let schema = TestSchema::create(&url).await?;
    let name = schema.name().to_owned();

    // A client built from the URL alone works inside the schema.
    let client = plain_client(schema.url()).await?;
    let search_path: String = client.query_one("SHOW search_path", &[]).await?.get(0);
    assert_eq!(search_path, name);
    client
        .batch_execute("CREATE TABLE jobs (id bigint PRIMARY KEY)")
        .await?;
    let row = client
        .query_one(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'jobs' \
             AND table_schema = $1",
            &[&name],
        )
        .await?;
    assert_eq!(row.get::<_, String>(0), name);

    schema.drop().await?;
    let observer = plain_client(&url).await?;
    assert!(!schema_exists(&observer, &name).await?);
    Ok(())
}

#[tokio::test]
async fn schemas_are_distinct() -> TestResult {
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return Ok(());
    };
    let first = TestSchema::create(&url).await?;
    let second = TestSchema::create(&url).await?;
    assert_ne!(first.name(), second.name());

    first
        .connect()
        .await?
        .batch_execute("CREATE TABLE only_here (id int)")
        .await?;
    let missing = second
        .connect()
        .await?
        .batch_execute("SELECT * FROM only_here")
        .await;
    assert!(missing.is_err());

    first.drop().await?;
    second.drop().await?;
    Ok(())
}

#[tokio::test]
async fn drop_without_call_removes_schema() -> TestResult {
    let Some(url) = pulse_testkit::services::postgres_url() else {
        return Ok(());
    };
    let schema = TestSchema::create(&url).await?;
    let name = schema.name().to_owned();

    drop(schema);
    let observer = plain_client(&url).await?;
    assert!(!schema_exists(&observer, &name).await?);
    Ok(())
}
