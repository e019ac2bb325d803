//! The Elasticsearch sink: log records as documents, written with `_bulk` `create`.
//!
//! An entry is one document (an item of a [`Batch`]). Its outcomes: 201 (created) and 409 (an
//! earlier delivery of the same `_id` created it) are done; 429 and 5xx (per item or for the
//! whole request), connection errors and timeouts, and 401/403 are retried — refused
//! credentials are reported loudly and never counted as delivered. A request refused as a
//! whole with 400 or 413 is split in halves to find the document at fault; that document alone
//! is rejected.
//!
//! A document with parsed fields (`[[parse]]`) that Elasticsearch refuses for good (400: the
//! fields do not fit the index's mapping) is not dead-lettered for that: its fallback form is
//! indexed with the same `_id` and the parsed fields kept as one string (`parsed_raw`, flagged
//! `mapping_conflict`). Only when that is refused too is it dead-lettered: a document in the
//! dead-letter index (`elasticsearch.dlq_index`) holding the record as it came and why.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use time::OffsetDateTime;

use super::{Delivery, Outcome, Outgoing, RecordAt, Route, Sink, Sorted, Written};
use crate::config::index_name::IndexNameTemplate;
use crate::es::bulk::write_create;
use crate::es::outcome::{classify_request, ItemOutcome, RequestOutcome};
use crate::es::SharedEs;
use crate::record::wire::Kind;
use crate::transfer::batch::{Batch, BatchLimits};
use crate::transfer::dlq::{DeadLetter, Origin, Rejection};
use crate::transfer::document::{Documents, KafkaRecord};
use crate::transfer::events::TransferEvents;
use crate::transfer::watermark::{lock, Epoch, Watermarks};

/// Longest error text carried into a log line.
const MAX_REASON: usize = 300;

/// Writes log documents to Elasticsearch.
pub struct EsSink {
    es: SharedEs,
    documents: Arc<Documents>,
    dlq_index: IndexNameTemplate,
    events: Arc<dyn TransferEvents>,
}

/// One document to write: item `item` of its batch, in its own form or in its fallback form.
#[derive(Debug)]
pub struct Document {
    item: usize,
    /// The `_bulk` lines of the fallback form (parsed fields as one string), once chosen.
    fallback: Option<Box<[u8]>>,
}

impl EsSink {
    /// Writes to `es`, documents made by `documents`, dead letters into `dlq_index` (its
    /// time parts rendered from each record's Kafka timestamp: the same record always goes
    /// to the same dead-letter index, so a retried dead letter is a 409, not a second one).
    pub fn new(
        es: SharedEs,
        documents: Arc<Documents>,
        dlq_index: IndexNameTemplate,
        events: Arc<dyn TransferEvents>,
    ) -> EsSink {
        EsSink {
            es,
            documents,
            dlq_index,
            events,
        }
    }

    /// The `_bulk` body of `entries`.
    fn body(batch: &Batch, entries: &[Document]) -> Vec<u8> {
        let size = entries
            .iter()
            .map(|entry| match &entry.fallback {
                Some(lines) => lines.len(),
                None => batch.items[entry.item].lines.len(),
            })
            .sum();
        // Exactly sized: a bulk body is megabytes, and growing it would copy it several times.
        let mut body = Vec::with_capacity(size);
        for entry in entries {
            match &entry.fallback {
                Some(lines) => body.extend_from_slice(lines),
                None => body.extend_from_slice(&batch.body[batch.items[entry.item].lines.clone()]),
            }
        }
        body
    }
}

impl Sink for EsSink {
    type Batch = Batch;
    type Entry = Document;

    fn records(&self, batch: &Batch) -> usize {
        batch.items.len()
    }

    fn record_at<'b>(&self, batch: &'b Batch, item: usize) -> RecordAt<'b> {
        let item = &batch.items[item];
        RecordAt {
            topic: &item.topic,
            partition: item.partition,
            epoch: item.epoch,
            offset: item.offset,
        }
    }

    fn item_of(&self, entry: &Document) -> usize {
        entry.item
    }

    fn entries(&self, batch: &Batch) -> Sorted<Document> {
        let mut routable = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        for (item, record) in batch.items.iter().enumerate() {
            let entry = Document {
                item,
                fallback: None,
            };
            match &record.index {
                Ok(_) => routable.push(entry),
                Err(reason) => rejected.push((
                    entry,
                    Rejection {
                        error: reason.clone(),
                        error_type: None,
                        status: None,
                    },
                )),
            }
        }
        Sorted {
            write: routable,
            dead: rejected,
        }
    }

    async fn write(&self, batch: &Batch, entries: &[Document]) -> Written {
        let body = Self::body(batch, entries);
        self.events.bulk_sent(entries.len(), body.len());
        match self.es.get().bulk(body, entries.len()).await {
            Ok(results) => {
                let (mut created, mut present, mut retried) = (0u64, 0u64, 0u64);
                let mut retry_reason = None;
                let mut refused = None;
                let mut outcomes = Vec::with_capacity(entries.len());
                for result in &results {
                    outcomes.push(match result.outcome() {
                        ItemOutcome::Created => {
                            created += 1;
                            Outcome::Done
                        }
                        ItemOutcome::AlreadyExists => {
                            present += 1;
                            Outcome::Done
                        }
                        ItemOutcome::Unauthorized => {
                            refused.get_or_insert_with(|| (result.status, result.error_text()));
                            retried += 1;
                            Outcome::Retry
                        }
                        ItemOutcome::Retry => {
                            retry_reason.get_or_insert_with(|| {
                                format!("status {}: {}", result.status, result.error_text())
                            });
                            retried += 1;
                            Outcome::Retry
                        }
                        ItemOutcome::Reject => Outcome::Reject(Rejection {
                            error: result.error_text(),
                            error_type: result.error_type().map(str::to_string),
                            status: Some(result.status),
                        }),
                    });
                }
                // An answer without an item for each document: the missing ones again.
                while outcomes.len() < entries.len() {
                    retry_reason.get_or_insert_with(|| {
                        format!(
                            "Elasticsearch answered {} items for {} documents",
                            results.len(),
                            entries.len()
                        )
                    });
                    retried += 1;
                    outcomes.push(Outcome::Retry);
                }
                self.events.created(created);
                self.events.already_present(present);
                if let Some((status, detail)) = refused {
                    self.events.unauthorized(status, &shorten(&detail));
                }
                if retried > 0 {
                    let reason = retry_reason.unwrap_or_else(|| "unauthorized".into());
                    self.events.retrying(retried, &shorten(&reason));
                }
                Written::Each(outcomes)
            }
            Err(error) => match error.status().map(classify_request) {
                Some(RequestOutcome::Split) => Written::Refused(Rejection {
                    error: error.to_string(),
                    error_type: None,
                    status: error.status(),
                }),
                Some(RequestOutcome::Unauthorized) => {
                    self.events
                        .unauthorized(error.status().unwrap_or(0), &shorten(&error.to_string()));
                    Written::Retry
                }
                _ => {
                    self.events
                        .retrying(entries.len() as u64, &shorten(&error.to_string()));
                    Written::Retry
                }
            },
        }
    }

    fn split(&self, _batch: &Batch, _entry: &Document) -> Option<Vec<Document>> {
        // A document is the smallest thing a bulk request holds.
        None
    }

    fn fallbacks(&self, batch: &Batch, rejected: Vec<(Document, Rejection)>) -> Sorted<Document> {
        let (conflicts, mut dead): (Vec<_>, Vec<_>) =
            rejected.into_iter().partition(|(entry, rejection)| {
                entry.fallback.is_none()
                    && rejection.status == Some(400)
                    && batch.items[entry.item].parse.merged
            });
        let Some((_, first)) = conflicts.first() else {
            return Sorted {
                write: Vec::new(),
                dead,
            };
        };
        let reason = shorten(first.error_type.as_deref().unwrap_or(&first.error));
        self.events
            .mapping_conflict(conflicts.len() as u64, &reason);
        let mut again = Vec::with_capacity(conflicts.len());
        for (entry, rejection) in conflicts {
            let item = &batch.items[entry.item];
            let record = KafkaRecord {
                topic: &item.topic,
                partition: item.partition,
                offset: item.offset,
                payload: Some(batch.payload(entry.item)),
                timestamp_ms: item.timestamp_ms,
                current_format: false,
            };
            let why = shorten(&rejection.error);
            let mut lines = Vec::new();
            let prepared = self.documents.prepare_fallback(&record, &why, &mut lines);
            if prepared.index.is_ok() && prepared.id == item.id {
                again.push(Document {
                    item: entry.item,
                    fallback: Some(lines.into_boxed_slice()),
                });
            } else {
                dead.push((entry, rejection));
            }
        }
        Sorted { write: again, dead }
    }

    async fn dead_letter(&self, batch: &Batch, letters: &[(Document, Rejection)]) -> Vec<bool> {
        let now = OffsetDateTime::now_utc();
        let mut body = Vec::new();
        for (entry, rejection) in letters {
            let item = &batch.items[entry.item];
            let letter = DeadLetter::new(
                batch.payload(entry.item),
                rejection,
                Origin {
                    topic: &item.topic,
                    partition: item.partition,
                    offset: item.offset,
                    index: item.index.as_deref().ok(),
                    id: &item.id,
                },
                now,
            );
            // A record without a Kafka timestamp (pre-0.10 message format) is dated by now.
            let dated = item
                .timestamp_ms
                .and_then(|ms| {
                    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
                })
                .unwrap_or(now);
            let index = match self.dlq_index.render("", Some(dated)) {
                Ok(index) => index,
                // Checked at load for every time: not reached; retried, never dropped.
                Err(error) => {
                    self.events
                        .dead_letter_failed(letters.len() as u64, &error.to_string());
                    return vec![false; letters.len()];
                }
            };
            // A dead letter holds only strings and numbers: serializing it cannot fail.
            let _ = write_create(&mut body, &index, &item.id, &letter);
        }
        self.events.bulk_sent(letters.len(), body.len());
        let (acknowledged, failure) = match self.es.get().bulk(body, letters.len()).await {
            Ok(results) => {
                let mut failure = None;
                let acknowledged: Vec<bool> = (0..letters.len())
                    .map(|i| match results.get(i) {
                        Some(result) if result.outcome().is_done() => true,
                        Some(result) => {
                            failure.get_or_insert_with(|| {
                                format!("status {}: {}", result.status, result.error_text())
                            });
                            false
                        }
                        None => {
                            failure.get_or_insert_with(|| "no answer for it".to_string());
                            false
                        }
                    })
                    .collect();
                (acknowledged, failure)
            }
            Err(error) => (vec![false; letters.len()], Some(error.to_string())),
        };
        let done = acknowledged.iter().filter(|&&ok| ok).count();
        if let Some(i) = acknowledged.iter().position(|&ok| ok) {
            let first = &letters[i].1;
            let reason = first.error_type.as_deref().unwrap_or(&first.error);
            self.events.dead_lettered(done as u64, &shorten(reason));
        }
        if let Some(failure) = failure {
            self.events
                .dead_letter_failed((letters.len() - done) as u64, &shorten(&failure));
        }
        acknowledged
    }
}

fn shorten(text: &str) -> String {
    crate::errors::shortened(text, MAX_REASON)
}

/// The log route: records of kind `Lines` become documents (one per line of an NDJSON
/// record) in a `_bulk` batch for [`EsSink`].
pub struct LogRoute {
    batch: Batch,
    documents: Arc<Documents>,
    delivery: Arc<Delivery<EsSink>>,
    marks: Arc<Mutex<Watermarks>>,
    events: Arc<dyn TransferEvents>,
}

impl LogRoute {
    /// Fills batches of documents made by `documents`, delivered by `delivery`.
    pub fn new(
        documents: Arc<Documents>,
        delivery: Arc<Delivery<EsSink>>,
        marks: Arc<Mutex<Watermarks>>,
        events: Arc<dyn TransferEvents>,
    ) -> LogRoute {
        LogRoute {
            batch: Batch::new(),
            documents,
            delivery,
            marks,
            events,
        }
    }
}

impl Route for LogRoute {
    fn takes(&self, kind: Kind) -> bool {
        kind == Kind::Lines
    }

    fn push(
        &mut self,
        record: &KafkaRecord<'_>,
        _key: Option<&[u8]>,
        topic: Arc<str>,
        epoch: Epoch,
    ) {
        let pushed = self.batch.push(record, topic, epoch, &self.documents);
        if pushed.documents > 1 {
            // The offset is outstanding once per document and done once per document.
            let again = pushed.documents - 1;
            lock(&self.marks).received_again(record.topic, record.partition, record.offset, again);
        }
        self.events.received(pushed.documents as u64);
        if pushed.plain {
            self.events
                .plain_record(record.topic, record.partition, record.offset);
        }
        if pushed.parse_errors > 0 || pushed.times_rejected > 0 {
            self.events
                .parse_trouble(pushed.parse_errors as u64, pushed.times_rejected as u64);
        }
    }

    fn push_dead(
        &mut self,
        record: &KafkaRecord<'_>,
        _key: Option<&[u8]>,
        topic: Arc<str>,
        epoch: Epoch,
        reason: &str,
    ) {
        self.batch.push_dead(record, topic, epoch, reason);
        self.events.received(1);
    }

    fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    fn is_full(&self, limits: &BatchLimits) -> bool {
        self.batch.is_full(limits)
    }

    fn deadline(&self, limits: &BatchLimits) -> Option<Instant> {
        self.batch.deadline(limits)
    }

    fn take(&mut self) -> Outgoing {
        let batch = self.batch.take();
        let entries = batch.len();
        Outgoing::of(&self.delivery, batch, entries)
    }
}

#[cfg(test)]
mod tests {
    //! Delivery against a scripted Elasticsearch: a loopback HTTP server whose answers each test
    //! writes, to reach the statuses a healthy test cluster never gives (401, 413, 429, 503).

    use std::sync::atomic::Ordering;

    use std::sync::Mutex;
    use std::time::Duration;

    use serde_json::{json, Value};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::backoff::BackoffPolicy;
    use crate::config::index_name::IndexNameTemplate;
    use crate::es::{EsClient, EsSettings};
    use crate::transfer::document::KafkaRecord;
    use crate::transfer::events::Counters;
    use crate::transfer::sink::Delivery;
    use crate::transfer::watermark::{lock, Watermarks};

    /// One request as the scripted server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        body: String,
        /// The commit point of partition 0 when the request arrived.
        commit_point: Option<i64>,
    }

    /// Answers the n-th request (0-based) given its body.
    type Script = Box<dyn Fn(usize, &str, &Mutex<Watermarks>) -> (u16, String) + Send + Sync>;

    struct Server {
        seen: Mutex<Vec<Seen>>,
        script: Script,
        marks: Arc<Mutex<Watermarks>>,
    }

    async fn serve_connection(mut socket: TcpStream, server: Arc<Server>) {
        let mut buffer = Vec::new();
        loop {
            let header_end = loop {
                if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                match socket.read_buf(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            };
            let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buffer.len() < header_end + length {
                match socket.read_buf(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
            let body =
                String::from_utf8_lossy(&buffer[header_end..header_end + length]).into_owned();
            buffer.drain(..header_end + length);
            let (status, answer) = {
                let mut seen = server.seen.lock().unwrap();
                let n = seen.len();
                seen.push(Seen {
                    body: body.clone(),
                    commit_point: lock(&server.marks).commit_point("t", 0),
                });
                (server.script)(n, &body, &server.marks)
            };
            let response = format!(
                "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            );
            if socket.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    /// The documents (`_id`, source) of a `_bulk` body.
    fn docs(body: &str) -> Vec<(String, Value)> {
        let lines: Vec<&str> = body.lines().collect();
        lines
            .chunks(2)
            .map(|pair| {
                let action: Value = serde_json::from_str(pair[0]).unwrap();
                let id = action["create"]["_id"].as_str().unwrap().to_string();
                (id, serde_json::from_str(pair[1]).unwrap())
            })
            .collect()
    }

    /// A `_bulk` answer with one item per document of `body`, its status chosen by `status`.
    fn answer(body: &str, status: impl Fn(&Value) -> u16) -> String {
        let items: Vec<Value> = docs(body)
            .iter()
            .map(|(_, doc)| {
                let status = status(doc);
                let mut item = json!({"status": status});
                if status >= 300 {
                    let kind = match status {
                        409 => "version_conflict_engine_exception",
                        429 => "es_rejected_execution_exception",
                        400 => "document_parsing_exception",
                        _ => "security_exception",
                    };
                    item["error"] = json!({"type": kind, "reason": "scripted"});
                }
                json!({"create": item})
            })
            .collect();
        json!({"errors": true, "items": items}).to_string()
    }

    struct Run {
        marks: Arc<Mutex<Watermarks>>,
        counters: Arc<Counters>,
        seen: Vec<Seen>,
    }

    /// Delivers `count` records (offsets 0.., alternating partitions 0 and 1 when
    /// `two_partitions`) against a server answering with `script`.
    async fn deliver(count: i64, two_partitions: bool, script: Script) -> Run {
        deliver_parsed(count, two_partitions, false, script).await
    }

    /// With `json`, topic `t` is parsed as JSON and every message is a JSON object whose
    /// `code` is an object at even offsets and a number at odd ones.
    async fn deliver_parsed(count: i64, two_partitions: bool, json: bool, script: Script) -> Run {
        let marks = Arc::new(Mutex::new(Watermarks::new()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = Arc::new(Server {
            seen: Mutex::new(Vec::new()),
            script,
            marks: marks.clone(),
        });
        let accepting = {
            let server = server.clone();
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    tokio::spawn(serve_connection(socket, server.clone()));
                }
            })
        };
        let mut batch = Batch::new();
        let rules = if json {
            toml::from_str::<crate::config::parse::ParseConfig>(
                "topics = [\"t\"]\nformat = \"json\"",
            )
            .map(|rule| vec![rule])
            .unwrap()
        } else {
            Vec::new()
        };
        let documents = Arc::new(Documents::new(
            IndexNameTemplate::parse("{topic}").unwrap(),
            rules,
        ));
        {
            let mut marks = lock(&marks);
            marks.assign("t", 0);
            marks.assign("t", 1);
            for i in 0..count {
                let partition = if two_partitions { (i % 2) as i32 } else { 0 };
                let offset = if two_partitions { i / 2 } else { i };
                let payload = serde_json::to_vec(&json!({
                    "id": format!("id-{i}"),
                    "message": match (json, i) {
                        (true, i) if i % 2 == 0 => format!(r#"{{"code":{{"n":{i}}}}}"#),
                        (true, i) => format!(r#"{{"code":{i}}}"#),
                        (false, 3) => "huge".to_string(),
                        (false, i) => format!("m{i}"),
                    },
                    "offset": i,
                }))
                .unwrap();
                let (topic, epoch) = marks.received("t", partition, offset).unwrap();
                let record = KafkaRecord {
                    topic: "t",
                    partition,
                    offset,
                    payload: Some(&payload),
                    timestamp_ms: Some(0),
                    current_format: false,
                };
                batch.push(&record, topic, epoch, &documents);
            }
        }
        let counters = Arc::new(Counters::default());
        let es = SharedEs::new(
            EsClient::new(&EsSettings::plain(
                &format!("http://127.0.0.1:{port}"),
                Duration::from_secs(5),
            ))
            .unwrap(),
        );
        let delivery = Delivery::new(
            EsSink::new(
                es,
                documents,
                IndexNameTemplate::parse("dlq").unwrap(),
                counters.clone(),
            ),
            marks.clone(),
            counters.clone(),
            BackoffPolicy {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(5),
            },
        );
        tokio::time::timeout(Duration::from_secs(20), delivery.deliver(batch))
            .await
            .expect("delivery finished");
        accepting.abort();
        let seen = server.seen.lock().unwrap().clone();
        Run {
            marks,
            counters,
            seen,
        }
    }

    fn get(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn per_item_overload_is_retried_until_created() {
        let run = deliver(
            6,
            false,
            Box::new(|n, body, _| {
                let status = move |doc: &Value| {
                    let odd = doc["offset"].as_i64().unwrap() % 2 == 1;
                    if n == 0 && odd {
                        429
                    } else if n == 1 && doc["offset"] == 0 {
                        409
                    } else {
                        201
                    }
                };
                (200, answer(body, status))
            }),
        )
        .await;
        assert_eq!(run.seen.len(), 2);
        assert_eq!(
            docs(&run.seen[1].body).len(),
            3,
            "only the 429s are sent again"
        );
        assert_eq!(
            run.seen[1].commit_point,
            Some(1),
            "offset 1 was not done yet"
        );
        assert_eq!(lock(&run.marks).commit_point("t", 0), Some(6));
        assert_eq!(get(&run.counters.created), 6);
        assert_eq!(get(&run.counters.retried), 3);
    }

    #[tokio::test]
    async fn refused_credentials_are_never_counted_as_delivered() {
        let run = deliver(
            4,
            false,
            Box::new(|n, body, _| match n {
                0 | 1 => (
                    401,
                    r#"{"error":{"type":"security_exception"},"status":401}"#.into(),
                ),
                // Per item, too.
                2 => (200, answer(body, |_| 403)),
                _ => (200, answer(body, |_| 201)),
            }),
        )
        .await;
        assert_eq!(run.seen.len(), 4);
        for seen in &run.seen {
            assert_eq!(seen.commit_point, Some(0), "nothing done before the 201s");
            assert_eq!(docs(&seen.body).len(), 4);
        }
        assert_eq!(lock(&run.marks).commit_point("t", 0), Some(4));
        assert_eq!(get(&run.counters.unauthorized), 3);
        assert_eq!(get(&run.counters.created), 4);
    }

    #[tokio::test]
    async fn server_errors_and_unreadable_answers_are_retried() {
        let run = deliver(
            3,
            false,
            Box::new(|n, body, _| match n {
                0 => (503, "{}".into()),
                1 => (200, "not json".into()),
                2 => (200, r#"{"items":[]}"#.into()),
                _ => (200, answer(body, |_| 201)),
            }),
        )
        .await;
        assert_eq!(run.seen.len(), 4);
        assert_eq!(lock(&run.marks).commit_point("t", 0), Some(3));
    }

    #[tokio::test]
    async fn rejected_records_are_done_only_once_dead_lettered() {
        let run = deliver(
            4,
            false,
            Box::new(|n, body, _| match n {
                0 => (
                    200,
                    answer(body, |doc| if doc["offset"] == 2 { 400 } else { 201 }),
                ),
                // The dead-letter write fails once.
                1 => (500, "{}".into()),
                _ => (200, answer(body, |_| 201)),
            }),
        )
        .await;
        assert_eq!(run.seen.len(), 3);
        assert_eq!(
            run.seen[1].commit_point,
            Some(2),
            "offset 2 waits for its dead letter"
        );
        assert_eq!(run.seen[2].commit_point, Some(2));
        let letters = docs(&run.seen[2].body);
        assert_eq!(letters.len(), 1);
        let (id, letter) = &letters[0];
        assert_eq!(id, "id-2");
        assert!(run.seen[2].body.contains(r#""_index":"dlq""#));
        assert!(letter["record"].as_str().unwrap().contains("\"m2\""));
        assert_eq!(letter["error_type"], "document_parsing_exception");
        assert_eq!(letter["status"], 400);
        assert_eq!(lock(&run.marks).commit_point("t", 0), Some(4));
        assert_eq!(get(&run.counters.dead_lettered), 1);
        assert_eq!(get(&run.counters.dead_letter_failed), 1);
    }

    /// A mapping where `code` is a number: objects are refused (400), strings holding the
    /// parsed fields are accepted.
    fn code_is_a_number(body: &str) -> String {
        answer(body, |doc| if doc["code"].is_object() { 400 } else { 201 })
    }

    #[tokio::test]
    async fn parsed_fields_refused_by_the_mapping_are_indexed_again_as_one_string() {
        let run = deliver_parsed(
            4,
            false,
            true,
            Box::new(|_, body, _| (200, code_is_a_number(body))),
        )
        .await;
        assert_eq!(
            run.seen.len(),
            2,
            "one bulk, then one of fallbacks; no dead letter"
        );
        let first = docs(&run.seen[0].body);
        assert_eq!(first.len(), 4);
        assert_eq!(first[1].1["code"], 1, "parsed fields are fields");
        let again = docs(&run.seen[1].body);
        let ids: Vec<&str> = again.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["id-0", "id-2"], "same ids, only the refused ones");
        for (_, doc) in &again {
            assert!(doc.get("code").is_none());
            let raw: Value = serde_json::from_str(doc["parsed_raw"].as_str().unwrap()).unwrap();
            assert!(raw["code"].is_object());
            assert!(doc["mapping_conflict"]
                .as_str()
                .unwrap()
                .contains("document_parsing_exception"));
            assert!(doc["message"].as_str().unwrap().starts_with(r#"{"code""#));
        }
        assert!(!run.seen[1].body.contains(r#""_index":"dlq""#));
        assert_eq!(lock(&run.marks).commit_point("t", 0), Some(4));
        assert_eq!(get(&run.counters.mapping_conflicts), 2);
        assert_eq!(get(&run.counters.dead_lettered), 0);
    }

    #[tokio::test]
    async fn a_fallback_refused_too_is_dead_lettered_and_unparsed_refusals_go_straight_there() {
        let run = deliver_parsed(
            2,
            false,
            true,
            Box::new(|n, body, _| match n {
                0 => (200, code_is_a_number(body)),
                _ if body.contains("parsed_raw") => (200, answer(body, |_| 400)),
                _ => (200, answer(body, |_| 201)),
            }),
        )
        .await;
        assert_eq!(run.seen.len(), 3);
        assert!(run.seen[2].body.contains(r#""_index":"dlq""#));
        assert_eq!(get(&run.counters.dead_lettered), 1);
        assert_eq!(lock(&run.marks).commit_point("t", 0), Some(2));
        // Without parsed fields there is nothing to fall back to (see
        // rejected_records_are_done_only_once_dead_lettered): no second indexing attempt.
        let run = deliver(
            2,
            false,
            Box::new(|n, body, _| (200, answer(body, |_| if n == 0 { 400 } else { 201 }))),
        )
        .await;
        assert_eq!(run.seen.len(), 2);
        assert!(run.seen[1].body.contains(r#""_index":"dlq""#));
        assert_eq!(get(&run.counters.mapping_conflicts), 0);
    }

    #[tokio::test]
    async fn a_request_too_large_is_split_until_the_culprit_is_alone() {
        let run = deliver(
            6,
            false,
            Box::new(|_, body, _| {
                if body.contains("\"huge\"") && !body.contains("\"dlq\"") {
                    (413, "{}".into())
                } else {
                    (200, answer(body, |_| 201))
                }
            }),
        )
        .await;
        let last = run.seen.last().unwrap();
        assert!(last.body.contains(r#""_index":"dlq""#));
        assert_eq!(docs(&last.body)[0].0, "id-3");
        assert_eq!(get(&run.counters.created), 5);
        assert_eq!(get(&run.counters.dead_lettered), 1);
        assert_eq!(lock(&run.marks).commit_point("t", 0), Some(6));
    }

    #[tokio::test]
    async fn records_of_a_revoked_partition_are_dropped_from_retries() {
        let run = deliver(
            6,
            true,
            Box::new(|n, body, marks| match n {
                0 => {
                    // Partition 1 is revoked while the first attempt fails.
                    lock(marks).revoke("t", 1);
                    (503, "{}".into())
                }
                _ => (200, answer(body, |_| 201)),
            }),
        )
        .await;
        assert_eq!(run.seen.len(), 2);
        assert_eq!(docs(&run.seen[0].body).len(), 6);
        let retried = docs(&run.seen[1].body);
        assert_eq!(retried.len(), 3, "only partition 0 is sent again");
        assert!(retried
            .iter()
            .all(|(_, doc)| doc["offset"].as_i64().unwrap() % 2 == 0));
        assert_eq!(get(&run.counters.revoked_dropped), 3);
        assert_eq!(lock(&run.marks).commit_point("t", 0), Some(3));
        assert_eq!(lock(&run.marks).commit_point("t", 1), None);
    }
}
