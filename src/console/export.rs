//! `GET /api/export`: every hit of a search, streamed as CSV or NDJSON.
//!
//! No cap: the hits are read through a point in time (PIT) with `search_after`, one page of
//! [`PAGE`] at a time, each page written to the response before the next is asked for — the
//! response body is a stream the HTTP server polls only as fast as the client reads, so the
//! console's memory stays flat in the number of hits. The order is `@timestamp`, then the
//! stream (`file_id`) and `offset`, then `_shard_doc` (the PIT's own tiebreaker, for records
//! that are not lines of a file): every hit exactly once, oldest first, and the PIT keeps the
//! view fixed while the export runs (lines indexed meanwhile are not in it).
//!
//! The PIT is closed when the export ends: at the last page, on an error, and when the client
//! goes away (the stream is dropped: [`Export`]'s `Drop`). Every export is logged as an audit
//! line (target `logship::audit`) with the user, the query, the range, the format, the rows
//! written and how it ended.
//!
//! CSV follows RFC 4180 (every cell quoted, `"` doubled, CRLF between rows), with a header row
//! of the field names. A text cell beginning with `=`, `+`, `-`, `@`, a tab or a carriage
//! return gets a leading `'` so that a spreadsheet shows it as text instead of running it as a
//! formula (OWASP, "CSV injection"). NDJSON writes each document's `_source` as stored.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::auth::Caller;
use super::query::{self, Filter};
use super::{ApiError, Console};
use crate::es::client::{EsClient, EsError};

/// Hits asked per page.
pub const PAGE: usize = 1000;
/// How long Elasticsearch keeps the point in time between two pages.
const KEEP_ALIVE: &str = "2m";
/// Timeout of one page (or of opening and closing the PIT).
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// The CSV columns when `fields` names none.
pub const DEFAULT_FIELDS: [&str; 4] = ["@timestamp", "host", "file", "message"];

/// The formats `format=` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 CSV of the chosen fields.
    Csv,
    /// One `_source` per line.
    Ndjson,
}

impl Format {
    fn parse(text: Option<&str>) -> Result<Format, ApiError> {
        match text.map(str::trim).unwrap_or("csv") {
            "" | "csv" => Ok(Format::Csv),
            "ndjson" => Ok(Format::Ndjson),
            other => Err(ApiError::Bad(format!(
                "format: {other:?} is not csv or ndjson"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

/// Parameters of `/api/export`.
#[derive(Debug, Default, Deserialize)]
pub struct ExportParams {
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    fields: Option<String>,
    format: Option<String>,
}

/// The sort of an export: oldest first, a line's position in its stream next, the PIT's
/// `_shard_doc` last (unique, so `search_after` never skips or repeats a hit).
pub fn sort_oldest_first() -> Value {
    json!([
        {"@timestamp": {"order": "asc", "unmapped_type": "date"}},
        {"file_id": {"order": "asc", "unmapped_type": "keyword"}},
        {"offset": {"order": "asc", "unmapped_type": "long"}},
        {"_shard_doc": "asc"}
    ])
}

/// The body of one page: `query` through the PIT `pit`, after `after`.
pub fn page_body(query: &Value, pit: &str, after: Option<&Value>, first: bool) -> Value {
    let mut body = json!({
        "size": PAGE,
        "query": query,
        "sort": sort_oldest_first(),
        "pit": {"id": pit, "keep_alive": KEEP_ALIVE},
        "track_total_hits": first,
    });
    if let Some(after) = after {
        body["search_after"] = after.clone();
    }
    body
}

/// One page as Elasticsearch answers it, `_source` kept as the bytes it stored.
#[derive(Debug, Deserialize)]
struct PageAnswer {
    pit_id: Option<String>,
    hits: PageHits,
}

#[derive(Debug, Deserialize)]
struct PageHits {
    #[serde(default)]
    total: Option<Value>,
    hits: Vec<PageHit>,
}

#[derive(Debug, Deserialize)]
struct PageHit {
    #[serde(rename = "_source")]
    source: Option<Box<RawValue>>,
    #[serde(default)]
    sort: Value,
}

/// The value of `field` in `source`: a key as written (`"parsed.level"` flattened), or a path
/// through objects (`parsed` → `level`).
pub fn field<'a>(source: &'a Value, field: &str) -> Option<&'a Value> {
    if let Some(value) = source.get(field) {
        return Some(value);
    }
    let (head, rest) = field.split_once('.')?;
    self::field(source.get(head)?, rest)
}

/// Appends `text` as one quoted CSV cell, neutralised when it would start a formula.
pub fn push_cell(out: &mut Vec<u8>, text: &str, neutralise: bool) {
    out.push(b'"');
    if neutralise && text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        out.push(b'\'');
    }
    for byte in text.bytes() {
        if byte == b'"' {
            out.push(b'"');
        }
        out.push(byte);
    }
    out.push(b'"');
}

/// Appends one CSV row (CRLF-terminated) of `fields` of `source`: text as written (and
/// neutralised), numbers and booleans as JSON writes them, objects and arrays as JSON text,
/// nothing for a missing field.
pub fn push_row(out: &mut Vec<u8>, source: &Value, fields: &[String]) {
    for (n, name) in fields.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        match field(source, name) {
            None | Some(Value::Null) => out.extend_from_slice(b"\"\""),
            Some(Value::String(text)) => push_cell(out, text, true),
            Some(Value::Number(number)) => push_cell(out, &number.to_string(), false),
            Some(Value::Bool(flag)) => push_cell(out, if *flag { "true" } else { "false" }, false),
            Some(other) => push_cell(out, &other.to_string(), true),
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The CSV header row: the field names, neutralised as text cells are, except for a leading
/// `@` (`@timestamp`): the names are the exporting user's own `fields=`, not log data, and a
/// header of `'@timestamp` would break every script reading the file by column name.
pub fn header_row(fields: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, name) in fields.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        push_cell(&mut out, name, !name.starts_with('@'));
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The fields of `fields=` (comma-separated), or [`DEFAULT_FIELDS`].
pub(super) fn parse_fields(text: Option<&str>) -> Result<Vec<String>, ApiError> {
    let fields: Vec<String> = text
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    if fields.len() > 100 {
        return Err(ApiError::Bad("fields: at most 100".into()));
    }
    if fields.is_empty() {
        return Ok(DEFAULT_FIELDS.iter().map(|f| f.to_string()).collect());
    }
    Ok(fields)
}

/// An export in progress: the PIT it reads, where it is, what it wrote. Dropped before its
/// end (the client went away), it closes the PIT and logs the audit line all the same.
struct Export {
    es: EsClient,
    pit: Option<String>,
    query: Value,
    after: Option<Value>,
    fields: Vec<String>,
    format: Format,
    rows: u64,
    done: bool,
    audit: Audit,
}

/// Who exported what (the audit line).
struct Audit {
    user: String,
    q: String,
    from: String,
    to: String,
    format: &'static str,
}

impl Export {
    /// The next page's bytes, `Ok(None)` after the last.
    async fn next_page(&mut self) -> Result<Option<Vec<u8>>, EsError> {
        if self.done {
            return Ok(None);
        }
        let Some(pit) = self.pit.clone() else {
            return Ok(None);
        };
        let answer = page(
            &self.es,
            &page_body(&self.query, &pit, self.after.as_ref(), false),
        )
        .await?;
        self.write(answer)
    }

    /// Takes a page's hits: their bytes, the cursor after them, the PIT id (it may change).
    fn write(&mut self, answer: PageAnswer) -> Result<Option<Vec<u8>>, EsError> {
        if let Some(id) = answer.pit_id {
            self.pit = Some(id);
        }
        let hits = answer.hits.hits;
        if hits.len() < PAGE {
            self.done = true;
        }
        let Some(last) = hits.last() else {
            return Ok(Some(Vec::new()));
        };
        self.after = Some(last.sort.clone());
        let mut out = Vec::with_capacity(hits.len() * 256);
        for hit in &hits {
            let Some(source) = &hit.source else { continue };
            match self.format {
                Format::Ndjson => {
                    out.extend_from_slice(source.get().as_bytes());
                    out.push(b'\n');
                }
                Format::Csv => {
                    let value: Value =
                        serde_json::from_str(source.get()).map_err(|e| EsError::Unreadable {
                            what: "an export page".into(),
                            message: e.to_string(),
                        })?;
                    push_row(&mut out, &value, &self.fields);
                }
            }
            self.rows += 1;
        }
        Ok(Some(out))
    }

    fn outcome(&self) -> &'static str {
        if self.done {
            "complete"
        } else {
            "cancelled"
        }
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        let audit = &self.audit;
        tracing::info!(
            target: "logship::audit",
            user = %audit.user,
            q = %audit.q,
            from = %audit.from,
            to = %audit.to,
            format = audit.format,
            rows = self.rows,
            outcome = self.outcome(),
            "export"
        );
        if let Some(pit) = self.pit.take() {
            let es = self.es.clone();
            // Dropped inside the runtime (the server drops the body there); closing is best
            // effort: an unclosed PIT expires by itself after KEEP_ALIVE.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(error) = close_pit(&es, &pit).await {
                        tracing::warn!(%error, "cannot close an export's point in time; it expires by itself");
                    }
                });
            }
        }
    }
}

async fn open_pit(es: &EsClient, indices: &str) -> Result<String, EsError> {
    let path = format!("/{indices}/_pit");
    let (_, answer) = es
        .call(
            Method::Post,
            &path,
            &[
                ("keep_alive", KEEP_ALIVE),
                ("ignore_unavailable", "true"),
                ("allow_partial_search_results", "false"),
            ],
            None,
            PAGE_TIMEOUT,
            false,
        )
        .await?;
    answer["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| EsError::Unreadable {
            what: "opening a point in time".into(),
            message: "no id in the answer".into(),
        })
}

async fn close_pit(es: &EsClient, pit: &str) -> Result<(), EsError> {
    es.call(
        Method::Delete,
        "/_pit",
        &[],
        Some(&json!({ "id": pit })),
        PAGE_TIMEOUT,
        true,
    )
    .await
    .map(drop)
}

async fn page(es: &EsClient, body: &Value) -> Result<PageAnswer, EsError> {
    let (_, answer) = es
        .call(
            Method::Post,
            "/_search",
            &[],
            Some(body),
            PAGE_TIMEOUT,
            false,
        )
        .await?;
    serde_json::from_value(answer).map_err(|e| EsError::Unreadable {
        what: "an export page".into(),
        message: e.to_string(),
    })
}

/// `GET /api/export?q=&from=&to=&fields=&format=csv|ndjson`: see the module docs. The total
/// is in the `X-Total-Count` header (the hits in the PIT when the export began); a bad query
/// is a 400 before anything is streamed; Elasticsearch failing mid-way ends the response early
/// (the client sees a truncated transfer, and the audit line says `cancelled`).
pub(super) async fn export(
    State(console): State<Console>,
    caller: Option<Extension<Caller>>,
    Query(params): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let format = Format::parse(params.format.as_deref())?;
    let fields = parse_fields(params.fields.as_deref())?;
    let filter = Filter::new(params.q, params.from, params.to, OffsetDateTime::now_utc())?;
    let es = console.es.get();
    let query = query::guarded(&json!({"query": filter.query()}), &console.guard)["query"].clone();
    let pit = open_pit(&es, &console.indices.join(",")).await?;
    let mut export = Export {
        es: es.clone(),
        pit: Some(pit.clone()),
        query,
        after: None,
        fields,
        format,
        rows: 0,
        done: false,
        audit: Audit {
            user: caller
                .and_then(|Extension(caller)| caller.user)
                .unwrap_or_else(|| "-".into()),
            q: filter.q.clone(),
            from: filter.from.clone(),
            to: filter.to.clone(),
            format: format.name(),
        },
    };
    // The first page before answering: a bad query is a 400, and the total goes in a header.
    let first = page(&es, &page_body(&export.query, &pit, None, true)).await?;
    let total = first
        .hits
        .total
        .as_ref()
        .and_then(|t| t["value"].as_u64())
        .unwrap_or(0);
    let mut head = match format {
        Format::Csv => header_row(&export.fields),
        Format::Ndjson => Vec::new(),
    };
    head.extend(export.write(first)?.unwrap_or_default());
    let pages = futures::stream::unfold(Some(export), |state| async move {
        let mut export = state?;
        match export.next_page().await {
            Ok(Some(bytes)) => Some((Ok::<_, std::io::Error>(bytes), Some(export))),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, rows = export.rows, "export ended early: Elasticsearch failed");
                Some((Err(std::io::Error::other(error.to_string())), None))
            }
        }
    });
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(head) });
    let stamp = OffsetDateTime::now_utc().unix_timestamp();
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"logship-export-{stamp}.{extension}\""),
            ),
            (
                header::HeaderName::from_static("x-total-count"),
                total.to_string(),
            ),
        ],
        Body::from_stream(futures::StreamExt::chain(body, pages)),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(source: Value, fields: &[&str]) -> String {
        let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        let mut out = Vec::new();
        push_row(&mut out, &source, &fields);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn cells_are_quoted_and_formulas_neutralised() {
        assert_eq!(
            row(json!({"message": "=cmd|' /C calc'!A0"}), &["message"]),
            "\"'=cmd|' /C calc'!A0\"\r\n"
        );
        assert_eq!(row(json!({"m": "@SUM(1+1)"}), &["m"]), "\"'@SUM(1+1)\"\r\n");
        assert_eq!(row(json!({"m": "\tx"}), &["m"]), "\"'\tx\"\r\n");
        assert_eq!(
            row(json!({"m": "say \"hi\", then\r\nleave"}), &["m"]),
            "\"say \"\"hi\"\", then\r\nleave\"\r\n"
        );
        // Numbers are numbers, even negative ones; a missing field is an empty cell.
        assert_eq!(
            row(json!({"n": -5, "b": true}), &["n", "b", "gone"]),
            "\"-5\",\"true\",\"\"\r\n"
        );
        assert_eq!(row(json!({"m": "-1 apples"}), &["m"]), "\"'-1 apples\"\r\n");
    }

    #[test]
    fn fields_are_found_flat_or_nested() {
        let source = json!({"parsed.level": "warn", "parsed": {"user": {"id": 7}}, "a": {"b": 1}});
        assert_eq!(field(&source, "parsed.level"), Some(&json!("warn")));
        assert_eq!(field(&source, "parsed.user.id"), Some(&json!(7)));
        assert_eq!(field(&source, "a.c"), None);
        assert_eq!(
            row(source, &["a"]),
            "\"{\"\"b\"\":1}\"\r\n",
            "objects as JSON text"
        );
    }

    #[test]
    fn the_sort_ends_with_the_pit_tiebreaker_and_pages_carry_the_cursor() {
        let body = page_body(
            &json!({"match_all": {}}),
            "abc",
            Some(&json!([1, "s", 2, 9])),
            false,
        );
        assert_eq!(body["sort"][3], json!({"_shard_doc": "asc"}));
        assert_eq!(body["pit"]["id"], "abc");
        assert_eq!(body["search_after"], json!([1, "s", 2, 9]));
        assert_eq!(body["size"], PAGE);
        assert!(parse_fields(Some(" host, ,message ")).unwrap() == ["host", "message"]);
        assert_eq!(parse_fields(None).unwrap().len(), 4);
        assert!(Format::parse(Some("xml")).is_err());
    }
}
