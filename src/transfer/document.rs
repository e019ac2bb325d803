//! From a Kafka record to an Elasticsearch document: its `_id`, its index and its body.
//!
//! Two kinds of records arrive:
//!
//! - **logship JSON** ([`crate::record::LineRecord`]): a JSON object with a string `id` and a
//!   `message`. The document is the record's own fields (all of them, except `id`, which becomes
//!   the `_id`) plus `topic`. Field values are passed through as they are, not coerced: if they
//!   do not fit the mapping, Elasticsearch rejects the document and it is dead-lettered, rather
//!   than being quietly re-interpreted here. The index time is the record's `@timestamp`.
//! - **anything else** (a plain line written with `kcat -P`, another producer's JSON): indexed
//!   with `message` = the value (lossy UTF-8, flagged `invalid_utf8`), `topic`,
//!   `kafka_partition` and `kafka_offset`. Its `_id` is derived from topic, partition, offset
//!   and Kafka timestamp (the only identity such a record has), and its `@timestamp` is the
//!   Kafka message timestamp, so a redelivery gets the same `_id` in the same daily index.
//!
//! When a `[[parse]]` rule covers the topic, the document's line is parsed into fields after the
//! `_id` and the index are chosen ([`super::parse`]): parsing changes what a document holds,
//! never where it goes, so a replay under other rules lands on the same document.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::parse::{self, Mode};
use crate::config::index_name::IndexNameTemplate;
use crate::config::parse::ParseConfig;
use crate::es::bulk::write_create;
use crate::record::{field, Received};

/// The field the transfer adds to every document: the Kafka topic the record came from.
const TOPIC: &str = "topic";

/// The parts of a consumed Kafka record the transfer uses.
#[derive(Debug, Clone, Copy)]
pub struct KafkaRecord<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Value (`None` for a tombstone).
    pub payload: Option<&'a [u8]>,
    /// Message timestamp in milliseconds since the epoch, if the record has one.
    pub timestamp_ms: Option<i64>,
    /// The record carries this build's format header (`crate::record::wire`): a lines
    /// record's value is NDJSON by contract, not by guess.
    pub current_format: bool,
}

/// What [`Documents::prepare`] made of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The document `_id`.
    pub id: String,
    /// The target index, or why the record cannot go to any index (it is then dead-lettered
    /// without asking Elasticsearch, and nothing was written to the body).
    pub index: Result<String, String>,
    /// The record was not logship JSON.
    pub plain: bool,
    /// What parsing did (all false when no `[[parse]]` rule covers the topic).
    pub parse: parse::Outcome,
}

/// How records become documents: the index name template and the `[[parse]]` rules by topic.
#[derive(Debug)]
pub struct Documents {
    index: IndexNameTemplate,
    rules: Vec<ParseConfig>,
    by_topic: HashMap<String, usize>,
}

impl Documents {
    /// Documents for indices named by `index`, parsed by `rules` (validated by the config: a
    /// topic in two rules takes the first).
    pub fn new(index: IndexNameTemplate, rules: Vec<ParseConfig>) -> Documents {
        let mut by_topic = HashMap::new();
        for (n, rule) in rules.iter().enumerate() {
            for topic in &rule.topics {
                by_topic.entry(topic.clone()).or_insert(n);
            }
        }
        Documents {
            index,
            rules,
            by_topic,
        }
    }

    /// The index name template.
    pub fn index(&self) -> &IndexNameTemplate {
        &self.index
    }

    /// Appends the `create` action and the document for `record` to `body` (unless the record
    /// cannot be routed, see [`Prepared::index`]).
    pub fn prepare(&self, record: &KafkaRecord<'_>, body: &mut Vec<u8>) -> Prepared {
        self.build(record, Mode::Merge, body)
    }

    /// Like [`Documents::prepare`], with the parsed fields kept as one string
    /// ([`Mode::Fallback`]): the document to index after Elasticsearch refused the parsed one
    /// for its mapping (`reason`). Same `_id`, same index.
    pub fn prepare_fallback(
        &self,
        record: &KafkaRecord<'_>,
        reason: &str,
        body: &mut Vec<u8>,
    ) -> Prepared {
        self.build(record, Mode::Fallback(reason), body)
    }

    fn rule(&self, topic: &str) -> Option<&ParseConfig> {
        self.by_topic.get(topic).and_then(|&n| self.rules.get(n))
    }

    fn build(&self, record: &KafkaRecord<'_>, mode: Mode<'_>, body: &mut Vec<u8>) -> Prepared {
        let payload = record.payload.unwrap_or_default();
        let rule = self.rule(record.topic);
        if let Some(received) = Received::parse(payload) {
            // The read time is needed only by a dated index name or a parse rule.
            let time = (self.index.uses_time() || rule.is_some()).then(|| {
                received.read_time().and_then(|text| {
                    OffsetDateTime::parse(text, &Rfc3339)
                        .map_err(|error| format!("@timestamp {text:?} is not RFC 3339: {error}"))
                })
            });
            let index_time = match (&time, self.index.uses_time()) {
                (Some(Ok(time)), true) => Some(*time),
                (Some(Err(reason)), true) => {
                    return Prepared {
                        id: received.id,
                        index: Err(reason.clone()),
                        plain: false,
                        parse: parse::Outcome::default(),
                    }
                }
                _ => None,
            };
            let Received { id, mut fields } = received;
            fields.insert(TOPIC.into(), Value::String(record.topic.to_string()));
            let (index, outcome) = match rule {
                None => (
                    self.write(body, record.topic, index_time, &id, &fields),
                    Default::default(),
                ),
                Some(rule) => {
                    let parse = (rule, time.and_then(Result::ok), mode);
                    self.write_parsed(body, record.topic, index_time, &id, fields, parse)
                }
            };
            return Prepared {
                id,
                index,
                plain: false,
                parse: outcome,
            };
        }

        let id = plain_record_id(
            record.topic,
            record.partition,
            record.offset,
            record.timestamp_ms,
        );
        let time = kafka_time(record.timestamp_ms);
        let message = String::from_utf8_lossy(payload);
        let doc = PlainDocument {
            invalid_utf8: matches!(message, Cow::Owned(_)),
            message,
            topic: record.topic,
            timestamp: time
                .format(&Rfc3339)
                .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string()),
            kafka_partition: record.partition,
            kafka_offset: record.offset,
        };
        let (index, outcome) = match rule {
            None => (
                self.write(body, record.topic, Some(time), &id, &doc),
                Default::default(),
            ),
            Some(rule) => match serde_json::to_value(&doc) {
                Ok(Value::Object(fields)) => {
                    let parse = (rule, Some(time), mode);
                    self.write_parsed(body, record.topic, Some(time), &id, fields, parse)
                }
                Ok(_) | Err(_) => (
                    Err("cannot represent the plain record as a JSON object".to_string()),
                    Default::default(),
                ),
            },
        };
        Prepared {
            id,
            index,
            plain: true,
            parse: outcome,
        }
    }

    /// Parses the `message` of `fields` by `rule` (with the read time and mode of `parse`)
    /// and writes the document with its parsed fields (see [`Documents::write`]).
    fn write_parsed(
        &self,
        body: &mut Vec<u8>,
        topic: &str,
        time: Option<OffsetDateTime>,
        id: &str,
        mut fields: Map<String, Value>,
        (rule, read_time, mode): (&ParseConfig, Option<OffsetDateTime>, Mode<'_>),
    ) -> (Result<String, String>, parse::Outcome) {
        let message = fields.remove(field::MESSAGE).unwrap_or(Value::Null);
        let parsed = parse::apply(rule, &mut fields, &message, read_time, mode);
        let document = parsed.document(&fields, &message);
        (self.write(body, topic, time, id, &document), parsed.outcome)
    }

    /// Renders the index name and writes the action and `doc` to `body`.
    fn write(
        &self,
        body: &mut Vec<u8>,
        topic: &str,
        time: Option<OffsetDateTime>,
        id: &str,
        doc: &impl Serialize,
    ) -> Result<String, String> {
        self.index
            .render(topic, time)
            .map_err(|e| e.to_string())
            .and_then(|name| {
                write_create(body, &name, id, doc)
                    .map(|()| name)
                    .map_err(|e| format!("cannot serialize the document: {e}"))
            })
    }
}

/// The time of a record from its Kafka timestamp; records without one (not produced by any
/// current client) get the epoch, which is still deterministic.
fn kafka_time(timestamp_ms: Option<i64>) -> OffsetDateTime {
    timestamp_ms
        .filter(|ms| *ms >= 0)
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The `_id` of a record that is not logship JSON: XXH3-128 of topic, partition, offset and
/// Kafka timestamp (length-prefixed / fixed-width), unpadded URL-safe base64 (22 characters).
///
/// Every redelivery of the record carries the same four values (the timestamp is stored with the
/// record), so it lands on the same document. The timestamp is in the id because offsets alone
/// repeat after a topic is recreated or moved to a new cluster: with `create`, a new record at
/// an old offset would be answered 409 and never indexed.
pub fn plain_record_id(
    topic: &str,
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
) -> String {
    let mut input = Vec::with_capacity(topic.len() + 28);
    input.extend_from_slice(&(topic.len() as u64).to_le_bytes());
    input.extend_from_slice(topic.as_bytes());
    input.extend_from_slice(&partition.to_le_bytes());
    input.extend_from_slice(&offset.to_le_bytes());
    input.extend_from_slice(&timestamp_ms.unwrap_or(-1).to_le_bytes());
    crate::record::id_of(&input)
}

#[derive(Serialize)]
struct PlainDocument<'a> {
    message: Cow<'a, str>,
    topic: &'a str,
    #[serde(rename = "@timestamp")]
    timestamp: String,
    kafka_partition: i32,
    kafka_offset: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    invalid_utf8: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{line_id, LineRecord};

    fn prepare(
        record: &KafkaRecord<'_>,
        template: &IndexNameTemplate,
        body: &mut Vec<u8>,
    ) -> Prepared {
        Documents::new(template.clone(), Vec::new()).prepare(record, body)
    }

    fn lines(body: &[u8]) -> (Value, Value) {
        let text = std::str::from_utf8(body).unwrap();
        let mut it = text.lines();
        let action = serde_json::from_str(it.next().unwrap()).unwrap();
        let doc = serde_json::from_str(it.next().unwrap()).unwrap();
        assert!(it.next().is_none());
        (action, doc)
    }

    fn record(payload: &[u8]) -> KafkaRecord<'_> {
        KafkaRecord {
            topic: "web_log",
            partition: 2,
            offset: 17,
            payload: Some(payload),
            timestamp_ms: Some(1_767_225_600_123), // 2026-01-01T00:00:00.123Z
            current_format: false,
        }
    }

    #[test]
    fn logship_records_keep_their_fields_and_id_and_index_by_their_own_time() {
        let line = LineRecord {
            fields: Default::default(),
            lines: 1,
            id: line_id("h", "s", 5).into(),
            host: "h".into(),
            file: "/var/log/a.log".into(),
            file_id: "s".into(),
            offset: 5,
            message: "hello".into(),
            timestamp: "2025-12-31T23:59:59+00:00".into(),
            invalid_utf8: false,
            split: true,
            partial: false,
        };
        let json = serde_json::to_vec(&line).unwrap();
        let template = IndexNameTemplate::parse("{topic}-%Y.%m.%d").unwrap();
        let mut body = Vec::new();
        let prepared = prepare(&record(&json), &template, &mut body);
        assert!(!prepared.plain);
        assert_eq!(prepared.id, line.id);
        // The record's time, not the Kafka timestamp (2026-01-01) nor now.
        assert_eq!(prepared.index.as_deref(), Ok("web_log-2025.12.31"));
        let (action, doc) = lines(&body);
        assert_eq!(action["create"]["_id"], line.id.as_ref());
        assert_eq!(doc["message"], "hello");
        assert_eq!(doc["offset"], 5);
        assert_eq!(doc["file_id"], "s");
        assert_eq!(doc["topic"], "web_log");
        assert_eq!(doc["split"], true);
        assert!(doc.get("id").is_none());
    }

    #[test]
    fn wrong_field_types_are_passed_through_for_elasticsearch_to_judge() {
        let json = br#"{"id":"abc","message":"m","offset":"not a number","@timestamp":"2026-01-01T00:00:00Z"}"#;
        let template = IndexNameTemplate::parse("{topic}").unwrap();
        let mut body = Vec::new();
        let prepared = prepare(&record(json), &template, &mut body);
        assert!(!prepared.plain);
        let (_, doc) = lines(&body);
        assert_eq!(doc["offset"], "not a number");
    }

    #[test]
    fn unusable_timestamp_routes_to_the_dead_letter_index_when_the_index_needs_it() {
        let json = br#"{"id":"abc","message":"m","@timestamp":"yesterday"}"#;
        let mut body = Vec::new();
        let dated = IndexNameTemplate::parse("{topic}-%Y").unwrap();
        let prepared = prepare(&record(json), &dated, &mut body);
        assert!(prepared.index.unwrap_err().contains("RFC 3339"));
        assert!(body.is_empty());
        let undated = IndexNameTemplate::parse("{topic}").unwrap();
        assert!(prepare(&record(json), &undated, &mut body).index.is_ok());
    }

    #[test]
    fn plain_lines_get_a_deterministic_id_and_the_kafka_time() {
        let template = IndexNameTemplate::parse("{topic}-%Y.%m.%d").unwrap();
        for payload in [
            &b"GET /index.html 200"[..],
            b"{\"no\":\"id\"}",
            b"[1,2]",
            b"{broken",
        ] {
            let mut body = Vec::new();
            let prepared = prepare(&record(payload), &template, &mut body);
            assert!(prepared.plain);
            assert_eq!(
                prepared.id,
                plain_record_id("web_log", 2, 17, Some(1_767_225_600_123))
            );
            assert_eq!(prepared.index.as_deref(), Ok("web_log-2026.01.01"));
            let (_, doc) = lines(&body);
            assert_eq!(doc["message"], std::str::from_utf8(payload).unwrap());
            assert_eq!(doc["@timestamp"], "2026-01-01T00:00:00.123Z");
            assert_eq!(doc["kafka_offset"], 17);
            assert!(doc.get("invalid_utf8").is_none());
        }
        let mut body = Vec::new();
        prepare(&record(b"caf\xe9"), &template, &mut body);
        let (_, doc) = lines(&body);
        assert_eq!(doc["message"], "caf\u{fffd}");
        assert_eq!(doc["invalid_utf8"], true);
    }

    #[test]
    fn plain_ids_differ_by_each_coordinate() {
        let base = plain_record_id("t", 0, 1, Some(5));
        assert_eq!(base.len(), 22);
        assert_eq!(base, plain_record_id("t", 0, 1, Some(5)));
        assert_ne!(base, plain_record_id("u", 0, 1, Some(5)));
        assert_ne!(base, plain_record_id("t", 1, 1, Some(5)));
        assert_ne!(base, plain_record_id("t", 0, 2, Some(5)));
        // The same offset in a recreated topic is another record.
        assert_ne!(base, plain_record_id("t", 0, 1, Some(6)));
        assert_ne!(base, plain_record_id("t", 0, 1, None));
    }

    #[test]
    fn tombstones_and_missing_timestamps_are_indexed_deterministically() {
        let template = IndexNameTemplate::parse("{topic}-%Y").unwrap();
        let mut body = Vec::new();
        let tombstone = KafkaRecord {
            payload: None,
            timestamp_ms: None,
            current_format: false,
            ..record(b"")
        };
        let prepared = prepare(&tombstone, &template, &mut body);
        assert_eq!(prepared.index.as_deref(), Ok("web_log-1970"));
        let (_, doc) = lines(&body);
        assert_eq!(doc["message"], "");
    }
}
