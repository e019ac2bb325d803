//! A `logs` rule's count of one window in Elasticsearch: lines matching its query whose read
//! time is in `[from, to)`, per group. The read time is `event.ingested` where a parse rule
//! moved `@timestamp` to the event's own time, else `@timestamp`: every line has exactly one,
//! so windows that tile time count every line exactly once.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::episodes::{group_key, GroupCount, WindowCounts};
use crate::etcd::alert_rules::LogsRule;

/// The value of a group field a line does not have.
pub const MISSING: &str = "(none)";

/// The query of the lines of `rule` read in `[from_ms, to_ms)`.
pub fn window_query(rule: &LogsRule, from_ms: i64, to_ms: i64) -> Value {
    let range = |field: &str| json!({"range": {field: {"gte": from_ms, "lt": to_ms, "format": "epoch_millis"}}});
    let read_time = json!({"bool": {
        "should": [
            range("event.ingested"),
            {"bool": {
                "must_not": [{"exists": {"field": "event.ingested"}}],
                "filter": [range("@timestamp")]
            }}
        ],
        "minimum_should_match": 1
    }});
    let mut filter = vec![read_time];
    if !rule.query.trim().is_empty() {
        filter.push(json!({"query_string": {"query": rule.query, "default_field": "message"}}));
    }
    json!({"bool": {"filter": filter}})
}

/// The search body: the count, `samples` lines (oldest first), and per group the same.
pub fn search_body(rule: &LogsRule, from_ms: i64, to_ms: i64) -> Value {
    let samples = json!({"top_hits": {
        "size": rule.samples,
        "sort": [{"@timestamp": {"order": "asc", "unmapped_type": "date"}}],
        "_source": ["message"]
    }});
    let mut body = json!({
        "size": if rule.group_by.is_empty() { rule.samples } else { 0 },
        "track_total_hits": true,
        "sort": [{"@timestamp": {"order": "asc", "unmapped_type": "date"}}],
        "_source": ["message"],
        "query": window_query(rule, from_ms, to_ms),
    });
    match rule.group_by.as_slice() {
        [] => {}
        [field] => {
            body["aggs"] = json!({"groups": {
                "terms": {"field": field, "size": rule.max_groups, "missing": MISSING},
                "aggs": {"samples": samples}
            }});
        }
        fields => {
            let terms: Vec<Value> = fields
                .iter()
                .map(|f| json!({"field": f, "missing": MISSING}))
                .collect();
            body["aggs"] = json!({"groups": {
                "multi_terms": {"terms": terms, "size": rule.max_groups},
                "aggs": {"samples": samples}
            }});
        }
    }
    body
}

/// The most of one sample line a notification carries (bytes; longer lines are cut at a
/// character boundary and end with `…`).
pub const SAMPLE_BYTES: usize = 1024;

fn messages(hits: &Value) -> Vec<String> {
    hits["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| h["_source"]["message"].as_str().map(sample))
                .collect()
        })
        .unwrap_or_default()
}

/// `line`, cut to [`SAMPLE_BYTES`].
fn sample(line: &str) -> String {
    if line.len() <= SAMPLE_BYTES {
        return line.to_string();
    }
    crate::errors::shortened(line, SAMPLE_BYTES - '…'.len_utf8())
}

/// An error unless every shard answered in time: a count from part of the data is not a
/// window's count.
pub fn all_shards(answer: &Value, what: &str) -> Result<(), String> {
    let failed = answer["_shards"]["failed"].as_u64().unwrap_or(0);
    if failed > 0 {
        return Err(format!(
            "{what}: {failed} of {} shards failed: {}",
            answer["_shards"]["total"], answer["_shards"]["failures"]
        ));
    }
    if answer["timed_out"].as_bool() == Some(true) {
        return Err(format!("{what}: Elasticsearch timed out"));
    }
    Ok(())
}

/// Reads the answer to [`search_body`]; groups beyond `max_groups` count as one group whose
/// fields are all `other`.
pub fn read_answer(rule: &LogsRule, answer: &Value) -> Result<WindowCounts, String> {
    all_shards(answer, "the count")?;
    let total = answer["hits"]["total"]["value"]
        .as_u64()
        .ok_or_else(|| format!("no hits.total in the answer: {answer}"))?;
    let mut counts = WindowCounts::default();
    if rule.group_by.is_empty() {
        counts.groups.insert(
            String::new(),
            GroupCount {
                fields: BTreeMap::new(),
                count: total,
                value: total as f64,
                samples: messages(&answer["hits"]),
            },
        );
        return Ok(counts);
    }
    let groups = &answer["aggregations"]["groups"];
    if groups.is_null() && total == 0 {
        // No index matched yet: Elasticsearch answers without aggregations.
        return Ok(counts);
    }
    let buckets = groups["buckets"]
        .as_array()
        .ok_or_else(|| format!("no groups in the answer: {answer}"))?;
    for bucket in buckets {
        let values: Vec<String> = match bucket["key"].as_array() {
            Some(keys) => keys.iter().map(key_text).collect(),
            None => vec![key_text(&bucket["key"])],
        };
        let fields: BTreeMap<String, String> = rule.group_by.iter().cloned().zip(values).collect();
        counts.groups.insert(
            group_key(&fields),
            GroupCount {
                count: bucket["doc_count"].as_u64().unwrap_or(0),
                value: bucket["doc_count"].as_u64().unwrap_or(0) as f64,
                samples: messages(&bucket["samples"]["hits"]),
                fields,
            },
        );
    }
    let other = groups["sum_other_doc_count"].as_u64().unwrap_or(0);
    if other > 0 {
        let fields: BTreeMap<String, String> = rule
            .group_by
            .iter()
            .map(|f| (f.clone(), "other".to_string()))
            .collect();
        counts.groups.insert(
            group_key(&fields),
            GroupCount {
                fields,
                count: other,
                value: other as f64,
                samples: Vec::new(),
            },
        );
    }
    Ok(counts)
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::alert_rules::Rule;

    fn logs(json: &str) -> LogsRule {
        match Rule::parse("r", json.as_bytes()).unwrap() {
            Rule::Logs(rule) => rule,
            _ => unreachable!(),
        }
    }

    #[test]
    fn groups_and_the_rest_as_other() {
        let rule = logs(
            r#"{"kind":"logs","query":"ERROR","window":"1m","condition":"count > 1","group_by":["host"],"max_groups":1}"#,
        );
        let body = search_body(&rule, 0, 60_000);
        assert_eq!(body["aggs"]["groups"]["terms"]["size"], 1);
        let answer = json!({"hits": {"total": {"value": 12}, "hits": []},
            "aggregations": {"groups": {"sum_other_doc_count": 2, "buckets": [
                {"key": "web1", "doc_count": 10, "samples": {"hits": {"hits": [
                    {"_source": {"message": "ERROR x"}}]}}}]}}});
        let counts = read_answer(&rule, &answer).unwrap();
        assert_eq!(counts.groups["host=web1"].count, 10);
        assert_eq!(
            counts.groups["host=web1"].samples,
            vec!["ERROR x".to_string()]
        );
        assert_eq!(counts.groups["host=other"].count, 2);
    }

    #[test]
    fn failed_shards_or_a_timeout_are_an_error_and_long_samples_are_cut() {
        let rule =
            logs(r#"{"kind": "logs", "query": "x", "window": "1m", "condition": "count > 1"}"#);
        let partial = json!({"_shards": {"total": 2, "failed": 1, "failures": [{"reason": "x"}]},
                             "hits": {"total": {"value": 3}, "hits": []}});
        assert!(read_answer(&rule, &partial)
            .unwrap_err()
            .contains("1 of 2 shards failed"));
        let late = json!({"timed_out": true, "_shards": {"total": 1, "failed": 0},
                          "hits": {"total": {"value": 3}, "hits": []}});
        assert!(read_answer(&rule, &late).unwrap_err().contains("timed out"));
        let long = "é".repeat(SAMPLE_BYTES);
        let cut = sample(&long);
        assert!(
            cut.len() <= SAMPLE_BYTES && cut.ends_with('…'),
            "{}",
            cut.len()
        );
        assert_eq!(sample("short"), "short");
    }

    #[test]
    fn no_index_yet_is_no_group() {
        let rule =
            logs(r#"{"kind":"logs","window":"1m","condition":"count > 1","group_by":["host"]}"#);
        let answer = json!({"_shards": {"total": 0}, "hits": {"total": {"value": 0}, "hits": []}});
        assert!(read_answer(&rule, &answer).unwrap().groups.is_empty());
        let broken = json!({"hits": {"total": {"value": 3}, "hits": []}});
        assert!(read_answer(&rule, &broken).is_err());
    }

    #[test]
    fn without_group_by_one_group_even_when_empty() {
        let rule = logs(r#"{"kind":"logs","window":"1m","condition":"count < 5"}"#);
        let answer = json!({"hits": {"total": {"value": 0}, "hits": []}});
        let counts = read_answer(&rule, &answer).unwrap();
        assert_eq!(counts.groups[""].count, 0);
        let query = window_query(&rule, 0, 60_000).to_string();
        assert!(query.contains("event.ingested") && query.contains("\"lt\":60000"));
        assert!(
            !query.contains("query_string"),
            "an empty query matches every line"
        );
    }
}
