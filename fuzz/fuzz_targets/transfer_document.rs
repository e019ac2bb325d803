//! Whatever a Kafka record's value and timestamp, the transfer must turn it into a document or a
//! dead-letter reason, never panic: when routed, exactly one `create` action for the returned
//! `_id` and index and one JSON object are appended to the bulk body; when not, the body is left
//! as it was. The same record always gives the same result (redelivery must hit the same
//! document). Through a batch, a value of several lines gives one document per line or, when its
//! lines are not all logship records, exactly one, and the body holds an action and a document
//! for each routable one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logship::config::index_name::IndexNameTemplate;
use logship::transfer::batch::Batch;
use logship::transfer::document::{Documents, KafkaRecord};
use logship::transfer::watermark::Watermarks;

fuzz_target!(|input: (bool, bool, Option<i64>, &[u8])| {
    let (dated, tombstone, timestamp_ms, payload) = input;
    let template = if dated { "{topic}-%Y.%m.%d" } else { "{topic}" };
    let Ok(template) = IndexNameTemplate::parse(template) else {
        panic!("fixed template must parse");
    };
    let documents = Documents::new(template, Vec::new());
    let record = KafkaRecord {
        topic: "web_log",
        partition: 3,
        offset: 42,
        payload: (!tombstone).then_some(payload),
        timestamp_ms,
        current_format: false,
    };
    let mut body = b"previous\n".to_vec();
    let prepared = documents.prepare(&record, &mut body);
    assert!(!prepared.id.is_empty());

    let mut again = b"previous\n".to_vec();
    assert_eq!(documents.prepare(&record, &mut again), prepared);
    assert_eq!(again, body);

    let added = &body[b"previous\n".len()..];
    match &prepared.index {
        Err(reason) => {
            assert!(added.is_empty(), "unroutable record wrote to the body");
            assert!(!reason.is_empty());
        }
        Ok(index) => {
            let text = std::str::from_utf8(added).expect("bulk lines are UTF-8");
            let lines: Vec<&str> = text
                .strip_suffix('\n')
                .expect("ends with newline")
                .split('\n')
                .collect();
            assert_eq!(lines.len(), 2, "one action and one document: {text:?}");
            let action: serde_json::Value = serde_json::from_str(lines[0]).expect("action is JSON");
            assert_eq!(action["create"]["_index"].as_str(), Some(index.as_str()));
            assert_eq!(action["create"]["_id"].as_str(), Some(prepared.id.as_str()));
            let doc: serde_json::Value = serde_json::from_str(lines[1]).expect("document is JSON");
            assert!(doc.is_object());
            assert_eq!(doc["topic"], "web_log");
            assert!(doc.get("id").is_none(), "the id is the _id, not a field");
            if prepared.plain {
                let message = String::from_utf8_lossy(record.payload.unwrap_or_default());
                assert_eq!(doc["message"].as_str(), Some(message.as_ref()));
                assert_eq!(prepared.id.len(), 22);
            }
        }
    }

    let mut marks = Watermarks::new();
    let epoch = marks.assign("web_log", 3);
    let mut batch = Batch::new();
    let pushed = batch.push(&record, "web_log".into(), epoch, &documents);
    assert_eq!(pushed.documents, batch.len());
    assert!(pushed.documents >= 1);
    assert!(!pushed.plain || pushed.documents == 1, "a plain value is one document");
    let routable = batch.items.iter().filter(|item| item.index.is_ok()).count();
    assert_eq!(batch.body.iter().filter(|&&b| b == b'\n').count(), 2 * routable);
    let mut again = Batch::new();
    assert_eq!(again.push(&record, "web_log".into(), epoch, &documents), pushed);
    assert_eq!(again.body, batch.body);
});
