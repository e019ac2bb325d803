//! Whatever a line holds, parsing it (`[[parse]]`: JSON or a regex, with each time format) must
//! never panic, never change where the document goes nor its `_id`, never touch logship's own
//! fields, and always give one JSON object; the same line always gives the same document, and
//! so does its mapping-conflict fallback.
//!
//! Input: the first byte picks the rule, the rest is the line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logship::config::index_name::IndexNameTemplate;
use logship::config::parse::ParseConfig;
use logship::transfer::document::{Documents, KafkaRecord, Prepared};

const READ: &str = "2026-12-01T10:00:00Z";

const RULES: [&str; 6] = [
    "format = \"json\"",
    "format = \"json\"\ntimestamp = { field = \"ts\", format = \"rfc3339\" }",
    "format = \"json\"\ntimestamp = { field = \"a.ts\", format = \"unix_ms\", max_skew_ms = 1 }",
    "format = \"json\"\ntimestamp = { field = \"ts\", format = \"unix\" }",
    "format = { regex = '^(?P<level>\\w+)?\\s*(?P<ts>\\S+)? (?P<message>.*)$' }\n\
     timestamp = { field = \"ts\", format = \"%d/%b/%Y:%H:%M:%S %z\" }",
    "format = { regex = '(?P<host>h)(?P<t>[0-9-]+ [0-9:]+)' }\n\
     timestamp = { field = \"t\", format = \"%Y-%m-%d %H:%M:%S\" }",
];

fn documents(rule: Option<&str>) -> Documents {
    let Ok(template) = IndexNameTemplate::parse("{topic}-%Y.%m.%d") else {
        panic!("fixed template must parse");
    };
    let rules = match rule {
        None => Vec::new(),
        Some(rule) => match toml::from_str::<ParseConfig>(&format!("topics = [\"t\"]\n{rule}")) {
            Ok(rule) => vec![rule],
            Err(error) => panic!("fixed rule must parse: {error}"),
        },
    };
    Documents::new(template, rules)
}

fn document(prepared: &Prepared, body: &[u8]) -> serde_json::Map<String, serde_json::Value> {
    let Ok(text) = std::str::from_utf8(body) else {
        panic!("bulk lines are UTF-8");
    };
    let lines: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
    assert_eq!(lines.len(), 2, "{prepared:?}: {text:?}");
    let doc = match serde_json::from_str(lines[1]) {
        Ok(serde_json::Value::Object(doc)) => doc,
        other => panic!("document is not a JSON object: {other:?}"),
    };
    match serde_json::from_str::<Keys>(lines[1]) {
        Ok(Keys(keys)) => assert_eq!(keys, doc.len(), "a key written twice: {}", lines[1]),
        Err(error) => panic!("document cannot be read again: {error}"),
    }
    doc
}

/// How many members a JSON object has, repeated keys counted each time (Elasticsearch refuses
/// a document with a repeated key; a decoder into a map would hide it).
struct Keys(usize);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Keys, D::Error> {
        struct Count;
        impl<'de> serde::de::Visitor<'de> for Count {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = 0;
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {
                    keys += 1;
                }
                Ok(Keys(keys))
            }
        }
        deserializer.deserialize_map(Count)
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&pick, line)) = input.split_first() else {
        return;
    };
    let rule = RULES[usize::from(pick) % RULES.len()];
    let line = String::from_utf8_lossy(line);
    let record = serde_json::json!({
        "id": "AAAAAAAAAAAAAAAAAAAAAA", "host": "h", "file": "/f", "file_id": "s", "offset": 9,
        "message": line, "@timestamp": READ, "service": "checkout"
    })
    .to_string();
    for plain in [false, true] {
        let payload = if plain { line.as_bytes() } else { record.as_bytes() };
        let kafka = KafkaRecord {
            topic: "t",
            partition: 0,
            offset: 1,
            payload: Some(payload),
            timestamp_ms: Some(1_796_119_200_000),
            current_format: false,
        };
        let mut unparsed = Vec::new();
        let base = documents(None).prepare(&kafka, &mut unparsed);
        let parser = documents(Some(rule));
        let mut body = Vec::new();
        let prepared = parser.prepare(&kafka, &mut body);
        assert_eq!(prepared.id, base.id, "parsing changed the _id");
        assert_eq!(prepared.index, base.index, "parsing moved the document");
        let mut again = Vec::new();
        assert_eq!(parser.prepare(&kafka, &mut again), prepared);
        assert_eq!(again, body);
        if prepared.index.is_err() {
            continue;
        }
        let before = document(&base, &unparsed);
        let after = document(&prepared, &body);
        for (key, value) in &before {
            if key != "@timestamp" {
                assert_eq!(after.get(key), Some(value), "{key} was changed");
            }
        }
        if after.get("@timestamp") != before.get("@timestamp") {
            assert!(after.get("timestamp_error").is_none());
            assert_eq!(after["event"]["ingested"], before["@timestamp"]);
        }
        assert_eq!(prepared.parse.parse_error, after.contains_key("parse_error"));

        let mut fallback = Vec::new();
        let refused = parser.prepare_fallback(&kafka, "conflict", &mut fallback);
        assert_eq!(refused.id, prepared.id);
        assert_eq!(refused.index, prepared.index);
        let doc = document(&refused, &fallback);
        if prepared.parse.merged {
            assert!(doc["parsed_raw"].is_string());
            assert_eq!(doc["mapping_conflict"], "conflict");
        }
        for (key, value) in &before {
            if key != "@timestamp" {
                assert_eq!(doc.get(key), Some(value), "{key} was changed by the fallback");
            }
        }
    }
});
