//! The index templates the transfer puts in place at startup.
//!
//! Two composable templates: one for the data indices (patterns derived from
//! `elasticsearch.index` and the configured topics, see
//! [`IndexNameTemplate::pattern`]) and one for the dead-letter index. The data mapping fixes
//! the types the record contract promises — `message` text; `host`, `file`, `file_id`, `topic`
//! keyword; `offset` long; `@timestamp` date; the flags boolean — so that a record whose fields
//! have other types is rejected by Elasticsearch (and dead-lettered) instead of silently creating
//! a mapping that breaks later records. What parsing adds is typed too (`event.ingested` date;
//! `parse_error`, `timestamp_error`, `mapping_conflict`, `parsed_raw` text); parsed fields
//! themselves are mapped dynamically by Elasticsearch from their first values.
//!
//! Template names are derived from the patterns, so transfers with the same configuration put
//! the same template (idempotent) and different configurations do not overwrite each other.

use serde_json::{json, Value};

use super::retention::RetentionRule;
use crate::config::index_name::IndexNameTemplate;

/// A template to put: its name and body.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSpec {
    /// `_index_template` name.
    pub name: String,
    /// The body for `PUT _index_template/<name>`.
    pub body: Value,
}

impl TemplateSpec {
    /// The template with `rule` recorded in its `_meta` (`index`, `topics`, `retention`), so
    /// that whoever reads the template (the console's storage view) knows when the indices it
    /// shapes are deleted. Elasticsearch does nothing with `_meta`.
    pub fn with_retention(mut self, rule: &RetentionRule) -> TemplateSpec {
        if let Some(meta) = self.body.get_mut("_meta").and_then(Value::as_object_mut) {
            meta.extend(rule.to_meta());
        }
        self
    }
}

/// Keywords longer than this are kept in `_source` but not indexed (instead of failing the
/// document).
const KEYWORD_IGNORE_ABOVE: u32 = 8191;

/// Index settings the data template sets; `None` leaves Elasticsearch's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexShape {
    /// `index.number_of_shards`.
    pub shards: Option<u32>,
    /// `index.number_of_replicas`.
    pub replicas: Option<u32>,
}

/// The template for the data indices of `topics`, shaped by `shape`.
pub fn data_template(
    index: &IndexNameTemplate,
    topics: &[String],
    priority: u32,
    shape: IndexShape,
) -> TemplateSpec {
    let mut patterns: Vec<String> = topics.iter().map(|t| index.pattern(t)).collect();
    patterns.sort();
    patterns.dedup();
    let keyword = json!({"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE});
    let body = json!({
        "index_patterns": patterns,
        "priority": priority,
        "template": {
            "mappings": {
                // Strings the mapping does not name (parsed fields, static fields) are keywords,
                // as in Filebeat's template: exact-match filters (`level:error`) at a fraction of
                // the indexing cost of text + keyword; full-text search goes through `message`.
                "dynamic_templates": [
                    {"strings_as_keywords": {
                        "match_mapping_type": "string",
                        "mapping": keyword
                    }}
                ],
                "properties": {
                    "message": {"type": "text"},
                    "host": keyword,
                    "file": keyword,
                    "file_id": keyword,
                    "topic": keyword,
                    "offset": {"type": "long"},
                    "@timestamp": {"type": "date"},
                    "invalid_utf8": {"type": "boolean"},
                    "split": {"type": "boolean"},
                    "partial": {"type": "boolean"},
                    "lines": {"type": "integer"},
                    "kafka_partition": {"type": "integer"},
                    "kafka_offset": {"type": "long"},
                    "event": {"properties": {"ingested": {"type": "date"}}},
                    "parse_error": {"type": "text"},
                    "timestamp_error": {"type": "text"},
                    "mapping_conflict": {"type": "text"},
                    "parsed_raw": {"type": "text"}
                }
            }
        },
        "_meta": {"managed_by": "logship transfer", "kind": "data"}
    });
    let mut body = body;
    let mut settings = serde_json::Map::new();
    if let Some(shards) = shape.shards {
        settings.insert("number_of_shards".into(), json!(shards));
    }
    if let Some(replicas) = shape.replicas {
        settings.insert("number_of_replicas".into(), json!(replicas));
    }
    if !settings.is_empty() {
        body["template"]["settings"] = json!({ "index": settings });
    }
    TemplateSpec {
        name: format!("logship-data-{}", name_hash(&patterns)),
        body,
    }
}

/// The template for the dead-letter indices matching `dlq_pattern` (`dlq_index` with its time
/// parts as `*`; the name itself when undated).
///
/// Its mapping is not dynamic: whatever a rejected record contained, the dead-letter document
/// itself cannot be rejected for its mapping.
pub fn dlq_template(dlq_pattern: &str, priority: u32) -> TemplateSpec {
    let keyword = json!({"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE});
    let body = json!({
        "index_patterns": [dlq_pattern],
        "priority": priority,
        "template": {
            "mappings": {
                "dynamic": false,
                "properties": {
                    "@timestamp": {"type": "date"},
                    "record": {"type": "text", "index": false},
                    "record_base64": {"type": "binary"},
                    "record_bytes": {"type": "long"},
                    "record_truncated": {"type": "boolean"},
                    "error": {"type": "text"},
                    "error_type": keyword,
                    "status": {"type": "integer"},
                    "topic": keyword,
                    "partition": {"type": "integer"},
                    "offset": {"type": "long"},
                    "index": keyword,
                    "id": keyword
                }
            }
        },
        "_meta": {"managed_by": "logship transfer", "kind": "dead-letter"}
    });
    TemplateSpec {
        name: format!("logship-dlq-{}", name_hash(&[dlq_pattern.to_string()])),
        body,
    }
}

fn name_hash(patterns: &[String]) -> String {
    let joined = patterns.join("\n");
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(joined.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_template_covers_every_topic_and_types_the_contract_fields() {
        let index = IndexNameTemplate::parse("{topic}-%Y.%m.%d").unwrap();
        let topics = vec!["b".to_string(), "a".to_string()];
        let spec = data_template(&index, &topics, 200, IndexShape::default());
        assert_eq!(spec.body["index_patterns"], json!(["a-*", "b-*"]));
        let properties = &spec.body["template"]["mappings"]["properties"];
        assert_eq!(properties["offset"]["type"], "long");
        assert_eq!(properties["@timestamp"]["type"], "date");
        assert_eq!(properties["message"]["type"], "text");
        assert_eq!(properties["topic"]["type"], "keyword");
        assert_eq!(
            properties["event"]["properties"]["ingested"]["type"],
            "date"
        );
        let dynamic = &spec.body["template"]["mappings"]["dynamic_templates"][0];
        assert_eq!(dynamic["strings_as_keywords"]["mapping"]["type"], "keyword");
        // Same configuration, same name; another topic list, another name.
        assert_eq!(
            spec.name,
            data_template(&index, &topics, 200, IndexShape::default()).name
        );
        assert_ne!(
            spec.name,
            data_template(&index, &topics[..1], 200, IndexShape::default()).name
        );
    }

    #[test]
    fn shards_and_replicas_go_into_the_settings_only_when_set() {
        let index = IndexNameTemplate::parse("{topic}").unwrap();
        let topics = vec!["a".to_string()];
        let plain = data_template(&index, &topics, 200, IndexShape::default());
        assert!(plain.body["template"].get("settings").is_none());
        let shaped = IndexShape {
            shards: Some(3),
            replicas: Some(0),
        };
        let spec = data_template(&index, &topics, 200, shaped);
        let settings = &spec.body["template"]["settings"]["index"];
        assert_eq!(settings["number_of_shards"], 3);
        assert_eq!(settings["number_of_replicas"], 0);
        let only_replicas = IndexShape {
            shards: None,
            replicas: Some(2),
        };
        let spec = data_template(&index, &topics, 200, only_replicas);
        let settings = &spec.body["template"]["settings"]["index"];
        assert!(settings.get("number_of_shards").is_none());
        assert_eq!(settings["number_of_replicas"], 2);
    }

    #[test]
    fn dlq_template_is_not_dynamic() {
        let spec = dlq_template("logship-dlq", 200);
        assert_eq!(spec.body["index_patterns"], json!(["logship-dlq"]));
        assert_eq!(spec.body["template"]["mappings"]["dynamic"], false);
        assert!(spec.name.starts_with("logship-dlq-"));
    }
}
