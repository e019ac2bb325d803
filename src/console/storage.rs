//! `GET /api/storage` and the `/storage` page: how much each index holds, when retention
//! deletes it, and each Elasticsearch node's disk against the watermarks.
//!
//! When an index goes is read from the transfer's own index templates: their `_meta` records
//! the `index` template, the topics and the retention ([`crate::es::retention`]), so the
//! console needs no copy of the transfer's configuration. An index no template's rule owns is
//! shown without a date (logship never deletes it).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use elasticsearch::http::Method;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{ApiError, Console};
use crate::config::index_name::wildcard_match;
use crate::es::client::EsClient;
use crate::es::disk::{DiskLevel, NodeDisk, Watermarks};
use crate::es::retention::RetentionRule;
use crate::es::EsError;

/// The retention rules in the transfers' index templates (`logship-data-*`, `logship-dlq-*`).
async fn rules(es: &EsClient) -> Result<Vec<RetentionRule>, EsError> {
    let (status, answer) = es
        .call(
            Method::Get,
            "/_index_template/logship-*",
            &[],
            None,
            es.control_timeout(),
            true,
        )
        .await?;
    if status == 404 {
        return Ok(Vec::new());
    }
    Ok(rules_of(&answer))
}

/// The rules an answer of `GET _index_template/...` records.
pub fn rules_of(answer: &Value) -> Vec<RetentionRule> {
    answer["index_templates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| RetentionRule::from_meta(&t["index_template"]["_meta"]))
        .collect()
}

/// One row of the indices table.
pub fn index_row(row: &Value, rules: &[RetentionRule], now: OffsetDateTime) -> Option<Value> {
    let name = row["index"].as_str()?;
    let number = |key: &str| row[key].as_str().and_then(|v| v.parse::<u64>().ok());
    let created_ms = number("creation.date");
    let created = created_ms
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok());
    let rule = rules.iter().find(|rule| rule.owns(name));
    let delete_at = rule.and_then(|rule| rule.delete_at(name));
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    };
    Some(json!({
        "index": name,
        "docs": number("docs.count"),
        "bytes": number("store.size"),
        "created": created.and_then(rfc3339),
        "age_seconds": created.map(|c| (now - c).whole_seconds().max(0)),
        "retention": rule.map(|rule| rule.keep().to_string()),
        "delete_at": delete_at.and_then(rfc3339),
    }))
}

/// One row of the nodes table: the disk, and the used bytes at each watermark.
pub fn node_row(disk: &NodeDisk, marks: &Watermarks) -> Value {
    let percent = |used: u64| {
        if disk.total == 0 {
            0.0
        } else {
            (used as f64 / disk.total as f64 * 1000.0).round() / 10.0
        }
    };
    let level = marks.level(disk);
    json!({
        "name": disk.name,
        "total": disk.total,
        "used": disk.used(),
        "available": disk.available,
        "used_percent": percent(disk.used()),
        "level": level,
        "low_percent": percent(marks.low.used_limit(disk.total)),
        "high_percent": percent(marks.high.used_limit(disk.total)),
        "flood_stage_percent": percent(marks.flood_stage.used_limit(disk.total)),
        "warning": level >= DiskLevel::High,
    })
}

/// Whether the index `name` is one the storage view lists: matched by a pattern and by none
/// of the exclusions (`-pattern`), as Elasticsearch reads a comma-separated list.
fn listed(patterns: &[String], name: &str) -> bool {
    let (excluded, included): (Vec<&String>, Vec<&String>) =
        patterns.iter().partition(|p| p.starts_with('-'));
    included.iter().any(|p| wildcard_match(p, name))
        && !excluded.iter().any(|p| wildcard_match(&p[1..], name))
}

/// `GET /api/storage`: `{"indices": [...], "nodes": [...], "watermarks_enforced"}`.
pub(super) async fn storage(State(console): State<Console>) -> Result<Response, ApiError> {
    let es = console.es.get();
    let (rules, disks) = tokio::join!(rules(&es), crate::es::disk::read(&es));
    let rules = rules?;
    let (marks, disks) = disks?;
    let mut patterns: Vec<String> = console.indices.iter().cloned().collect();
    patterns.extend(rules.iter().flat_map(RetentionRule::index_patterns));
    patterns.sort();
    patterns.dedup();
    // Every open index is asked for and the rows filtered here: a list of patterns in the
    // path grows past Elasticsearch's 4 KB request line with a few hundred topics, and
    // `_cat/indices` answers 404 for a whole list when one concrete name in it does not exist.
    let (status, rows) = es
        .call(
            Method::Get,
            "/_cat/indices",
            &[
                ("format", "json"),
                ("bytes", "b"),
                ("h", "index,creation.date,docs.count,store.size"),
                ("expand_wildcards", "open"),
            ],
            None,
            es.control_timeout(),
            true,
        )
        .await?;
    let now = OffsetDateTime::now_utc();
    let mut indices: Vec<Value> = if status == 404 {
        Vec::new()
    } else {
        rows.as_array()
            .into_iter()
            .flatten()
            .filter(|row| {
                row["index"]
                    .as_str()
                    .is_some_and(|name| listed(&patterns, name))
            })
            .filter_map(|row| index_row(row, &rules, now))
            .collect()
    };
    indices.sort_by(|a, b| a["index"].as_str().cmp(&b["index"].as_str()));
    let nodes: Vec<Value> = disks.iter().map(|disk| node_row(disk, &marks)).collect();
    Ok(super::json_response(
        StatusCode::OK,
        &json!({"indices": indices, "nodes": nodes, "watermarks_enforced": marks.enforced}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_listed_indices_are_matched_by_a_pattern_and_by_no_exclusion() {
        let patterns: Vec<String> = ["web-*", "logship-*", "-logship-dlq*", "audit"]
            .into_iter()
            .map(String::from)
            .collect();
        assert!(listed(&patterns, "web-2026.01.01"));
        assert!(listed(&patterns, "logship-data"));
        assert!(listed(&patterns, "audit"));
        assert!(!listed(&patterns, "logship-dlq-web"));
        assert!(!listed(&patterns, "audit-2026"));
        assert!(!listed(&patterns, ".kibana"));
    }

    #[test]
    fn an_index_row_says_when_its_rule_deletes_it() {
        let answer = json!({"index_templates": [
            {"name": "logship-data-1", "index_template": {"_meta": {
                "kind": "data", "index": "{topic}-%Y.%m.%d", "topics": ["web"], "retention": "30days"}}},
            {"name": "logship-other", "index_template": {"_meta": {"kind": "data"}}}
        ]});
        let rules = rules_of(&answer);
        assert_eq!(rules.len(), 1);
        let now = datetime!(2026-01-05 00:00 UTC);
        let row = index_row(
            &json!({"index": "web-2026.01.01", "creation.date": "1767225600000",
                    "docs.count": "12", "store.size": "3400"}),
            &rules,
            now,
        )
        .unwrap();
        assert_eq!(row["delete_at"], "2026-02-01T00:00:00Z");
        assert_eq!(row["retention"], "30days");
        assert_eq!(row["docs"], 12);
        assert_eq!(row["age_seconds"], 4 * 86_400);
        let other = index_row(&json!({"index": "mine"}), &rules, now).unwrap();
        assert_eq!(other["delete_at"], Value::Null);
        assert_eq!(other["retention"], Value::Null);
    }

    #[test]
    fn a_node_row_places_the_disk_against_the_watermarks() {
        let disk = NodeDisk {
            name: "es-1".into(),
            total: 1000,
            available: 80,
        };
        let row = node_row(&disk, &Watermarks::default());
        assert_eq!(row["used_percent"], 92.0);
        assert_eq!(row["level"], "high");
        assert_eq!(row["warning"], true);
        assert_eq!(row["high_percent"], 90.0);
    }
}
