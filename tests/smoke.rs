//! Smoke tests: each service started by `scripts/services.sh` is real and reachable through the
//! very crates logship uses (rdkafka, elasticsearch, etcd-client). Unique names per run, so the
//! tests can run in parallel and on a machine that ran them before.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{es_url, etcd_endpoint, kafka_brokers, unique};
use elasticsearch::http::transport::Transport;
use elasticsearch::indices::IndicesRefreshParts;
use elasticsearch::{BulkOperation, BulkParts, Elasticsearch, SearchParts};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde_json::{json, Value};

#[tokio::test]
async fn kafka_produces_and_consumes_on_a_fresh_topic() {
    let topic = unique("smoke");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..3 {
        let payload = format!("hello {i}");
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .expect("delivered");
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", unique("smoke-group"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 3 && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(got, vec!["hello 0", "hello 1", "hello 2"]);
}

#[tokio::test]
async fn elasticsearch_bulk_indexes_with_chosen_ids_and_finds_them() {
    let index = unique("smoke");
    let client = Elasticsearch::new(Transport::single_node(&es_url()).expect("transport"));
    let operations: Vec<elasticsearch::BulkOperation<Value>> = vec![
        BulkOperation::create(json!({"message": "first smoke line"}))
            .id("id-one")
            .into(),
        BulkOperation::create(json!({"message": "second smoke line"}))
            .id("id-two")
            .into(),
    ];
    let response = client
        .bulk(BulkParts::Index(&index))
        .body(operations)
        .send()
        .await
        .expect("bulk");
    let body: Value = response.json().await.expect("bulk json");
    assert_eq!(body["errors"], false, "{body}");
    client
        .indices()
        .refresh(IndicesRefreshParts::Index(&[&index]))
        .send()
        .await
        .expect("refresh");
    let found: Value = client
        .search(SearchParts::Index(&[&index]))
        .body(json!({"query": {"match": {"message": "smoke"}}}))
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("search json");
    let mut ids: Vec<&str> = found["hits"]["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .filter_map(|hit| hit["_id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["id-one", "id-two"]);
}

#[tokio::test]
async fn etcd_puts_watches_and_sees_a_change() {
    let key = format!("/logship-smoke/{}", unique("key"));
    let mut client = etcd_client::Client::connect([etcd_endpoint()], None)
        .await
        .expect("connect etcd");
    client.put(key.as_str(), "v1", None).await.expect("put v1");
    let got = client.get(key.as_str(), None).await.expect("get");
    assert_eq!(got.kvs()[0].value(), b"v1");
    let mut stream = client.watch(key.as_str(), None).await.expect("watch");
    client.put(key.as_str(), "v2", None).await.expect("put v2");
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let response = stream.message().await.expect("watch stream").expect("open");
            if let Some(kv) = response.events().iter().find_map(|e| e.kv()) {
                return kv.value().to_vec();
            }
        }
    })
    .await
    .expect("a watch event within 10 s");
    assert_eq!(seen, b"v2");
}
