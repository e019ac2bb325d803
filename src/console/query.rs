//! What the console asks Elasticsearch, and how it reads the answers: pure functions from the
//! API's parameters to `_search` bodies and from `_search` answers to the API's JSON.
//!
//! Order of hits: `@timestamp` descending, then `file_id` and `offset` descending. The lines of
//! one read share one `@timestamp`, so the time alone would leave their order (and `search_after`
//! paging) undefined; (stream, offset) makes every sort key unique, so paging never skips or
//! repeats a hit, past 10,000 too.

use base64::Engine as _;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Largest page the API serves.
pub const MAX_SIZE: usize = 500;
/// Page size when none is asked for.
pub const DEFAULT_SIZE: usize = 100;
/// Largest context on either side of a hit.
pub const MAX_CONTEXT: usize = 1000;
/// Buckets of the histogram (Elasticsearch's `auto_date_histogram` picks the interval).
pub const HISTOGRAM_BUCKETS: usize = 60;

/// A request the user got wrong (answered 400 with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// The part of a search shared by hits and histogram: a `query_string` query (empty = all)
/// within a time range. `from`/`to` are RFC 3339 times, `now`, or `now-<n><unit>` (unit `s`,
/// `m`, `h`, `d`, `w`); both bounds are inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `query_string` syntax, default field `message`.
    pub q: String,
    /// Lower bound of `@timestamp`, as given.
    pub from: String,
    /// Upper bound of `@timestamp`, as given.
    pub to: String,
    /// `from` resolved, in milliseconds since the epoch.
    pub from_ms: i64,
    /// `to` resolved, in milliseconds since the epoch.
    pub to_ms: i64,
}

impl Filter {
    /// The filter from the API's parameters (defaults: everything in the last 15 minutes), with
    /// relative times resolved against `now`.
    pub fn new(
        q: Option<String>,
        from: Option<String>,
        to: Option<String>,
        now: OffsetDateTime,
    ) -> Result<Filter, BadRequest> {
        let nonempty =
            |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let from = nonempty(from).unwrap_or_else(|| "now-15m".to_string());
        let to = nonempty(to).unwrap_or_else(|| "now".to_string());
        let from_ms = resolve_time("from", &from, now)?;
        let to_ms = resolve_time("to", &to, now)?;
        if from_ms > to_ms {
            return Err(BadRequest(format!("from ({from}) is after to ({to})")));
        }
        Ok(Filter {
            q: q.unwrap_or_default(),
            from,
            to,
            from_ms,
            to_ms,
        })
    }

    /// The `query` of a `_search` body.
    pub fn query(&self) -> Value {
        let text = if self.q.trim().is_empty() {
            json!({"match_all": {}})
        } else {
            json!({"query_string": {"query": self.q, "default_field": "message"}})
        };
        json!({"bool": {
            "must": [text],
            "filter": [{"range": {"@timestamp": {
                "gte": self.from_ms, "lte": self.to_ms, "format": "epoch_millis"
            }}}]
        }})
    }
}

/// The clause that keeps the dead-letter index out of every search unless it is named: a
/// document passes when it has a `message` (every line the transfer indexes has one; the
/// dead-letter documents have `record` and `error` instead) or when its index is one of the
/// `index_pattern` entries named outright (no wildcard, not an exclusion). So `logship-*` does
/// not search `logship-dlq`, while `web_log-*,logship-dlq` does.
pub fn data_guard(index_pattern: &[String]) -> Value {
    let named: Vec<&str> = index_pattern
        .iter()
        .map(String::as_str)
        .filter(|e| !e.is_empty() && !e.starts_with('-') && !e.contains(['*', '?']))
        .collect();
    let mut should = vec![json!({"exists": {"field": "message"}})];
    if !named.is_empty() {
        should.push(json!({"terms": {"_index": named}}));
    }
    json!({"bool": {"should": should, "minimum_should_match": 1}})
}

/// `body` with its query restricted by `guard` (see [`data_guard`]).
pub fn guarded(body: &Value, guard: &Value) -> Value {
    let mut out = body.clone();
    let query = body
        .get("query")
        .cloned()
        .unwrap_or_else(|| json!({"match_all": {}}));
    out["query"] = json!({"bool": {"must": [query], "filter": [guard]}});
    out
}

/// Milliseconds since the epoch of `value` (RFC 3339, `now` or `now-<n><unit>`).
pub fn resolve_time(name: &str, value: &str, now: OffsetDateTime) -> Result<i64, BadRequest> {
    let bad = || {
        BadRequest(format!(
            "{name}: {value:?} is not a time (use RFC 3339, e.g. 2026-11-30T12:00:00Z, or now, now-15m, now-2h, now-7d)"
        ))
    };
    let millis = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    if let Some(rest) = value.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(millis(now));
        }
        let amount = rest.strip_prefix('-').ok_or_else(bad)?;
        let unit_at = amount.len().checked_sub(1).ok_or_else(bad)?;
        let (number, unit) = amount.split_at(unit_at);
        let n: i64 = number.parse().map_err(|_| bad())?;
        let seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(bad()),
        };
        let span = n.checked_mul(seconds).ok_or_else(bad)?;
        return now
            .checked_sub(time::Duration::seconds(span))
            .map(millis)
            .ok_or_else(bad);
    }
    OffsetDateTime::parse(value, &Rfc3339)
        .map(millis)
        .map_err(|_| bad())
}

/// The order of hits: newest first (the default) or oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Newest first.
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

impl Order {
    /// `desc`, `asc`, or absent (newest first).
    pub fn parse(text: Option<&str>) -> Result<Order, BadRequest> {
        match text.map(str::trim).unwrap_or("") {
            "" | "desc" => Ok(Order::Desc),
            "asc" => Ok(Order::Asc),
            other => Err(BadRequest(format!("order: {other:?} is not desc or asc"))),
        }
    }

    fn word(self) -> &'static str {
        match self {
            Order::Desc => "desc",
            Order::Asc => "asc",
        }
    }
}

/// The sort of hits in `order`, unique per line (see the module docs).
fn sort_by(order: Order) -> Value {
    let word = order.word();
    json!([
        {"@timestamp": {"order": word, "unmapped_type": "date"}},
        {"file_id": {"order": word, "unmapped_type": "keyword"}},
        {"offset": {"order": word, "unmapped_type": "long"}}
    ])
}

/// Encodes the sort values of the last hit of a page as the opaque `after` cursor.
pub fn encode_cursor(sort: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sort.to_string())
}

/// Decodes an `after` cursor given by a client: three sort values, as [`encode_cursor`] made.
pub fn decode_cursor(cursor: &str) -> Result<Value, BadRequest> {
    let bad = || {
        BadRequest(format!(
            "after: {cursor:?} is not a cursor this console gave"
        ))
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    match value.as_array() {
        Some(items) if items.len() == 3 && items.iter().all(|v| v.is_number() || v.is_string()) => {
            Ok(value)
        }
        _ => Err(bad()),
    }
}

/// The `_search` body of one page of hits in `order`. Facets (hosts, files) are asked on the
/// first page only.
pub fn search_body_in(filter: &Filter, size: usize, after: Option<&Value>, order: Order) -> Value {
    let mut body = json!({
        "size": size,
        "track_total_hits": true,
        "query": filter.query(),
        "sort": sort_by(order),
        "highlight": {
            "encoder": "html",
            "pre_tags": ["<mark>"],
            "post_tags": ["</mark>"],
            "fields": {"message": {"number_of_fragments": 0}}
        }
    });
    if let Some(after) = after {
        body["search_after"] = after.clone();
    } else {
        body["aggs"] = json!({
            "hosts": {"terms": {"field": "host", "size": 10}},
            "files": {"terms": {"field": "file", "size": 10}}
        });
    }
    body
}

/// The fields of an answer of `GET {indices}/_mapping`, sorted, each once with its type
/// (objects walked into: `parsed.level`; multi-fields left out): logship's own line fields
/// first, then the others by name.
pub fn mapped_fields(mapping: &Value) -> Vec<Value> {
    fn walk(
        prefix: &str,
        properties: &Value,
        out: &mut std::collections::BTreeMap<String, String>,
    ) {
        let Some(properties) = properties.as_object() else {
            return;
        };
        for (name, spec) in properties {
            let full = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if let Some(inner) = spec.get("properties") {
                walk(&full, inner, out);
            } else if let Some(kind) = spec.get("type").and_then(Value::as_str) {
                out.entry(full).or_insert_with(|| kind.to_string());
            }
        }
    }
    let mut fields = std::collections::BTreeMap::new();
    if let Some(indices) = mapping.as_object() {
        for index in indices.values() {
            walk("", &index["mappings"]["properties"], &mut fields);
        }
    }
    const OWN: [&str; 7] = [
        "@timestamp",
        "host",
        "file",
        "level",
        "message",
        "topic",
        "offset",
    ];
    let mut listed: Vec<(usize, String, String)> = fields
        .into_iter()
        .map(|(name, kind)| {
            let rank = OWN.iter().position(|own| *own == name).unwrap_or(OWN.len());
            (rank, name, kind)
        })
        .collect();
    listed.sort();
    listed
        .into_iter()
        .map(|(_, name, kind)| json!({"name": name, "type": kind}))
        .collect()
}

/// One line as the API gives it: its `_source` fields, plus `id` and `index`, plus
/// `highlight` (HTML, escaped, matches in `<mark>`) when the search matched in the message.
pub fn hit_json(hit: &Value) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), hit["_id"].clone());
    out.insert("index".into(), hit["_index"].clone());
    if let Some(source) = hit["_source"].as_object() {
        for (key, value) in source {
            out.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    if let Some(fragment) = hit["highlight"]["message"][0].as_str() {
        out.insert("highlight".into(), Value::String(fragment.to_string()));
    }
    Value::Object(out)
}

/// The API's answer to a search from Elasticsearch's: `total`, `hits`, `after` (null on the
/// last page), and the facets when asked for.
pub fn search_answer(answer: &Value, size: usize) -> Value {
    let hits = answer["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let after = if hits.len() == size {
        hits.last()
            .map(|hit| Value::String(encode_cursor(&hit["sort"])))
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let mut out = json!({
        "total": answer["hits"]["total"]["value"].as_u64().unwrap_or(0),
        "hits": hits.iter().map(hit_json).collect::<Vec<_>>(),
        "after": after,
        "took_ms": answer["took"].as_u64().unwrap_or(0),
    });
    if let Some(aggs) = answer.get("aggregations") {
        let facet = |name: &str| -> Value {
            aggs[name]["buckets"]
                .as_array()
                .map(|buckets| {
                    buckets
                        .iter()
                        .map(|b| json!({"value": b["key"], "count": b["doc_count"]}))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
                .into()
        };
        out["facets"] = json!({"host": facet("hosts"), "file": facet("files")});
    }
    out
}

/// The body finding one line by id (in every index of the pattern).
pub fn by_id_body(id: &str) -> Value {
    json!({"size": 1, "track_total_hits": false, "query": {"ids": {"values": [id]}}})
}

/// The body of the `n` lines of stream `file_id` just before `offset` and at or after `floor`,
/// nearest first.
///
/// Asked without a floor, Elasticsearch walks the stream from its start up to `offset` (a
/// descending sort does not skip ahead): 150 ms deep in a stream of a million lines. The console
/// asks within a window below `offset` first and widens it only when it holds fewer than `n`
/// lines ([`older_floor`]).
pub fn older_body(file_id: &str, offset: u64, n: usize, floor: u64) -> Value {
    let mut range = json!({"lt": offset});
    if floor > 0 {
        range["gte"] = json!(floor);
    }
    neighbours(file_id, n, range, "desc")
}

/// The body of the `n` lines of stream `file_id` just after `offset`, nearest first.
pub fn newer_body(file_id: &str, offset: u64, n: usize) -> Value {
    neighbours(file_id, n, json!({"gt": offset}), "asc")
}

fn neighbours(file_id: &str, n: usize, range: Value, order: &str) -> Value {
    // No total: counting the matches would visit every line of the stream on that side, while
    // without it Elasticsearch skips the documents that cannot be among the nearest `n`.
    json!({
        "size": n,
        "track_total_hits": false,
        "query": {"bool": {"filter": [
            {"term": {"file_id": file_id}},
            {"range": {"offset": range}}
        ]}},
        "sort": [{"offset": {"order": order}}]
    })
}

/// The floor of the window below `offset` asked in round `round` (0, 1, ...) for `n` older
/// lines: 1 KiB per line wanted, 16 times wider each round, 0 (the stream's start) once the
/// window reaches it. The last round is therefore always complete.
pub fn older_floor(offset: u64, n: usize, round: u32) -> u64 {
    let width = (n.max(1) as u64)
        .saturating_mul(1024)
        .saturating_mul(16u64.saturating_pow(round));
    offset.saturating_sub(width)
}

/// The body asking when stream `file_id` was first and last read at path `file` (the span of
/// its lines there: a renamed stream has lines under both names).
pub fn stream_span_body(file_id: &str, file: &str) -> Value {
    json!({
        "size": 0,
        "track_total_hits": false,
        "query": {"bool": {"filter": [
            {"term": {"file_id": file_id}},
            {"term": {"file": file}}
        ]}},
        "aggs": {
            "first": {"min": {"field": "@timestamp", "format": "strict_date_optional_time_nanos"}},
            "last": {"max": {"field": "@timestamp", "format": "strict_date_optional_time_nanos"}}
        }
    })
}

/// The first and last read time of a stream at a path, from the answer to [`stream_span_body`]
/// (`None` when it has no line there).
pub fn stream_span(answer: &Value) -> Option<(String, String)> {
    let first = answer["aggregations"]["first"]["value_as_string"].as_str()?;
    let last = answer["aggregations"]["last"]["value_as_string"].as_str()?;
    Some((first.to_string(), last.to_string()))
}

/// The body finding the line of another stream at path `file` nearest to `time` on one side:
/// before it (`earlier`: the newest line read at or before `time`) or after it (the oldest read
/// at or after). That line belongs to the stream that held the path just before or after
/// `file_id` did (a copytruncate, or a new file created at the old name).
pub fn neighbour_stream_body(file_id: &str, file: &str, time: &str, earlier: bool) -> Value {
    let (bound, order) = if earlier {
        ("lte", "desc")
    } else {
        ("gte", "asc")
    };
    json!({
        "size": 1,
        "track_total_hits": false,
        "query": {"bool": {
            "filter": [
                {"term": {"file": file}},
                {"range": {"@timestamp": {bound: time}}}
            ],
            "must_not": [{"term": {"file_id": file_id}}]
        }},
        "sort": [
            {"@timestamp": {"order": order, "unmapped_type": "date"}},
            {"offset": {"order": order, "unmapped_type": "long"}}
        ],
        "_source": ["file", "file_id", "offset", "@timestamp", "host", "message"]
    })
}

/// Bucket widths the histogram chooses from, in seconds, with their names.
const INTERVALS: &[(i64, &str)] = &[
    (1, "1s"),
    (5, "5s"),
    (10, "10s"),
    (30, "30s"),
    (60, "1m"),
    (300, "5m"),
    (600, "10m"),
    (1800, "30m"),
    (3600, "1h"),
    (3 * 3600, "3h"),
    (12 * 3600, "12h"),
    (86_400, "1d"),
    (7 * 86_400, "7d"),
    (30 * 86_400, "30d"),
];

/// The smallest bucket width giving at most [`HISTOGRAM_BUCKETS`] whole buckets over the range
/// (plus one partial bucket where the range does not start on a bucket boundary).
pub fn histogram_interval(filter: &Filter) -> (i64, &'static str) {
    let span_s = (filter.to_ms - filter.from_ms).max(0) / 1000;
    INTERVALS
        .iter()
        .copied()
        .find(|(width, _)| span_s / width <= HISTOGRAM_BUCKETS as i64)
        .unwrap_or((30 * 86_400, "30d"))
}

/// The body of the histogram of matches over the filter's range (empty buckets included, so
/// the page draws the whole range).
pub fn histogram_body(filter: &Filter) -> Value {
    let (_, interval) = histogram_interval(filter);
    json!({
        "size": 0,
        "track_total_hits": false,
        "query": filter.query(),
        "aggs": {"histogram": {"date_histogram": {
            "field": "@timestamp",
            "fixed_interval": interval,
            "min_doc_count": 0,
            "extended_bounds": {"min": filter.from_ms, "max": filter.to_ms}
        }}}
    })
}

/// The API's histogram from Elasticsearch's answer.
pub fn histogram_answer(filter: &Filter, answer: &Value) -> Value {
    let (_, interval) = histogram_interval(filter);
    let buckets: Vec<Value> = answer["aggregations"]["histogram"]["buckets"]
        .as_array()
        .map(|buckets| {
            buckets
                .iter()
                .map(|b| json!({"start": b["key_as_string"], "count": b["doc_count"]}))
                .collect()
        })
        .unwrap_or_default();
    json!({"interval": interval, "buckets": buckets})
}

/// A page size from the API's `size` parameter: default [`DEFAULT_SIZE`], at most [`MAX_SIZE`].
pub fn page_size(size: Option<usize>) -> Result<usize, BadRequest> {
    match size {
        None => Ok(DEFAULT_SIZE),
        Some(0) => Err(BadRequest("size must be at least 1".into())),
        Some(n) if n > MAX_SIZE => Err(BadRequest(format!("size must be at most {MAX_SIZE}"))),
        Some(n) => Ok(n),
    }
}

/// The reason Elasticsearch gave for refusing a request (its `error.root_cause[0].reason`,
/// else `error.reason`), from the answer's body; the body itself when it is not that JSON.
pub fn es_reason(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return body.to_string();
    };
    let error = &value["error"];
    let reason = error["root_cause"][0]["reason"]
        .as_str()
        .or_else(|| error["reason"].as_str());
    let caused = error["caused_by"]["reason"]
        .as_str()
        .or_else(|| error["failed_shards"][0]["reason"]["caused_by"]["reason"].as_str());
    match (reason, caused) {
        (Some(reason), Some(caused)) if caused != reason => format!("{reason}: {caused}"),
        (Some(reason), _) => reason.to_string(),
        (None, _) => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_refuses_what_it_did_not_make() {
        let sort = json!([1_700_000_000_000u64, "stream-a", 42]);
        assert_eq!(decode_cursor(&encode_cursor(&sort)).unwrap(), sort);
        for bad in [
            "",
            "!!",
            &encode_cursor(&json!({"a": 1})),
            &encode_cursor(&json!([1, 2])),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn search_body_pages_with_search_after_and_asks_facets_on_the_first_page_only() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let filter =
            Filter::new(Some("level:error".into()), None, Some(String::new()), now).unwrap();
        assert_eq!(filter.from, "now-15m");
        assert_eq!(filter.to, "now");
        assert_eq!(filter.to_ms - filter.from_ms, 15 * 60 * 1000);
        let first = search_body_in(&filter, 10, None, Order::Desc);
        assert!(first.get("aggs").is_some());
        assert!(first.get("search_after").is_none());
        assert_eq!(first["track_total_hits"], true);
        assert_eq!(
            first["query"]["bool"]["must"][0]["query_string"]["query"],
            "level:error"
        );
        let after = json!([1, "s", 2]);
        let next = search_body_in(&filter, 10, Some(&after), Order::Desc);
        assert_eq!(next["search_after"], after);
        assert!(next.get("aggs").is_none());
        let all = Filter::new(None, None, None, now).unwrap();
        assert!(all.query()["bool"]["must"][0].get("match_all").is_some());
    }

    #[test]
    fn answer_gives_a_cursor_only_when_the_page_is_full() {
        let answer = json!({"took": 3, "hits": {"total": {"value": 2}, "hits": [
            {"_id": "a", "_index": "i", "_source": {"message": "x <b>", "offset": 1}, "sort": [2, "s", 1],
             "highlight": {"message": ["x &lt;b&gt; <mark>y</mark>"]}},
            {"_id": "b", "_index": "i", "_source": {"message": "y"}, "sort": [1, "s", 0]}
        ]}, "aggregations": {"hosts": {"buckets": [{"key": "h", "doc_count": 2}]}, "files": {"buckets": []}}});
        let full = search_answer(&answer, 2);
        assert_eq!(full["total"], 2);
        assert_eq!(full["hits"][0]["id"], "a");
        assert_eq!(full["hits"][0]["offset"], 1);
        assert_eq!(full["hits"][0]["highlight"], "x &lt;b&gt; <mark>y</mark>");
        assert_eq!(
            decode_cursor(full["after"].as_str().unwrap()).unwrap(),
            json!([1, "s", 0])
        );
        assert_eq!(full["facets"]["host"][0], json!({"value": "h", "count": 2}));
        assert_eq!(search_answer(&answer, 3)["after"], Value::Null);
    }

    #[test]
    fn fields_come_from_every_index_mapping_own_fields_first() {
        let mapping = json!({
            "a": {"mappings": {"properties": {
                "message": {"type": "text"}, "zeta": {"type": "keyword"},
                "parsed": {"properties": {"level": {"type": "keyword"}, "user": {"properties": {"id": {"type": "long"}}}}},
                "@timestamp": {"type": "date"}
            }}},
            "b": {"mappings": {"properties": {"host": {"type": "keyword"}, "zeta": {"type": "long"}}}}
        });
        let names: Vec<String> = mapped_fields(&mapping)
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "@timestamp",
                "host",
                "message",
                "parsed.level",
                "parsed.user.id",
                "zeta"
            ]
        );
        let filter = Filter::new(None, None, None, OffsetDateTime::now_utc()).unwrap();
        let oldest = search_body_in(&filter, 5, None, Order::parse(Some("asc")).unwrap());
        assert_eq!(oldest["sort"][0]["@timestamp"]["order"], "asc");
        assert!(Order::parse(Some("sideways")).is_err());
    }

    #[test]
    fn page_sizes_and_reasons() {
        assert_eq!(page_size(None), Ok(DEFAULT_SIZE));
        assert_eq!(page_size(Some(MAX_SIZE)), Ok(MAX_SIZE));
        assert!(page_size(Some(MAX_SIZE + 1)).is_err());
        assert!(page_size(Some(0)).is_err());
        let body = r#"{"error":{"root_cause":[{"type":"query_shard_exception","reason":"Failed to parse query [a AND]"}],"reason":"all shards failed","caused_by":{"reason":"Cannot parse 'a AND'"}}}"#;
        assert_eq!(
            es_reason(body),
            "Failed to parse query [a AND]: Cannot parse 'a AND'"
        );
        assert_eq!(es_reason("plain"), "plain");
    }

    #[test]
    fn times_resolve_and_bad_ones_are_refused_by_name() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(resolve_time("to", "now", now), Ok(1_800_000_000_000));
        assert_eq!(
            resolve_time("from", "now-2h", now),
            Ok(1_800_000_000_000 - 7_200_000)
        );
        assert_eq!(
            resolve_time("from", "now-7d", now),
            Ok(1_800_000_000_000 - 604_800_000)
        );
        assert_eq!(
            resolve_time("from", "2027-01-15T08:00:00Z", now),
            Ok(1_800_000_000_000)
        );
        for bad in [
            "yesterday",
            "now-",
            "now-5",
            "now-5y",
            "now+1h",
            "2026-13-01T00:00:00Z",
        ] {
            let error = resolve_time("from", bad, now).unwrap_err();
            assert!(error.0.starts_with("from:"), "{bad}: {error}");
        }
        let reversed = Filter::new(None, Some("now".into()), Some("now-1h".into()), now);
        assert!(reversed.is_err());
    }

    #[test]
    fn histogram_has_at_most_60_buckets_of_a_round_width() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        for (from, want) in [
            ("now-15m", "30s"),
            ("now-1h", "1m"),
            ("now-24h", "30m"),
            ("now-7d", "3h"),
        ] {
            let filter = Filter::new(None, Some(from.into()), None, now).unwrap();
            let (width, name) = histogram_interval(&filter);
            assert_eq!(name, want, "{from}");
            assert!((filter.to_ms - filter.from_ms) / 1000 / width <= HISTOGRAM_BUCKETS as i64);
            let body = histogram_body(&filter);
            assert_eq!(
                body["aggs"]["histogram"]["date_histogram"]["fixed_interval"],
                want
            );
        }
    }

    #[test]
    fn the_dead_letter_index_is_searched_only_when_named() {
        let entries =
            |list: &[&str]| -> Vec<String> { list.iter().map(|s| s.to_string()).collect() };
        let wildcard = data_guard(&entries(&["logship-*", "-logship-old"]));
        assert_eq!(
            wildcard,
            json!({"bool": {"should": [{"exists": {"field": "message"}}], "minimum_should_match": 1}})
        );
        let named = data_guard(&entries(&["web_log-*", "logship-dlq"]));
        assert_eq!(
            named["bool"]["should"][1],
            json!({"terms": {"_index": ["logship-dlq"]}})
        );
        let body = json!({"size": 1, "query": {"ids": {"values": ["x"]}}});
        let out = guarded(&body, &named);
        assert_eq!(out["size"], 1);
        assert_eq!(out["query"]["bool"]["must"][0], body["query"]);
        assert_eq!(out["query"]["bool"]["filter"][0], named);
        assert_eq!(
            guarded(&json!({"size": 0}), &named)["query"]["bool"]["must"][0],
            json!({"match_all": {}})
        );
    }

    #[test]
    fn neighbouring_streams_are_other_streams_at_the_same_path_on_either_side() {
        let span = stream_span_body("s", "/var/log/app.log");
        assert_eq!(
            span["query"]["bool"]["filter"][1]["term"]["file"],
            "/var/log/app.log"
        );
        let answer = json!({"aggregations": {
            "first": {"value": 1.0, "value_as_string": "2026-12-01T00:00:00.000000001Z"},
            "last": {"value": 2.0, "value_as_string": "2026-12-01T00:00:01Z"}
        }});
        assert_eq!(
            stream_span(&answer),
            Some((
                "2026-12-01T00:00:00.000000001Z".to_string(),
                "2026-12-01T00:00:01Z".to_string()
            ))
        );
        let none = json!({"aggregations": {"first": {"value": null}, "last": {"value": null}}});
        assert_eq!(stream_span(&none), None);
        let before = neighbour_stream_body("s", "/f", "T", true);
        assert_eq!(
            before["query"]["bool"]["must_not"][0]["term"]["file_id"],
            "s"
        );
        assert_eq!(
            before["query"]["bool"]["filter"][1]["range"]["@timestamp"]["lte"],
            "T"
        );
        assert_eq!(before["sort"][0]["@timestamp"]["order"], "desc");
        let after = neighbour_stream_body("s", "/f", "T", false);
        assert_eq!(
            after["query"]["bool"]["filter"][1]["range"]["@timestamp"]["gte"],
            "T"
        );
        assert_eq!(after["sort"][0]["@timestamp"]["order"], "asc");
    }

    #[test]
    fn the_window_below_a_hit_widens_until_it_reaches_the_stream_start() {
        assert_eq!(older_floor(1_000_000, 50, 0), 1_000_000 - 51_200);
        assert_eq!(older_floor(1_000_000, 50, 1), 1_000_000 - 819_200);
        assert_eq!(older_floor(1_000_000, 50, 2), 0);
        assert_eq!(older_floor(10, 50, 0), 0);
        assert_eq!(older_floor(u64::MAX, 1, 30), 0, "saturates, never wraps");
        // Any offset is reached within 14 rounds.
        assert_eq!(older_floor(u64::MAX, 0, 14), 0);
    }

    #[test]
    fn neighbours_are_asked_nearest_first_on_the_right_side() {
        let before = older_body("s", 100, 5, 0);
        assert_eq!(
            before["query"]["bool"]["filter"][1]["range"]["offset"],
            json!({"lt": 100})
        );
        assert_eq!(before["sort"][0]["offset"]["order"], "desc");
        let windowed = older_body("s", 100_000, 5, 94_880);
        assert_eq!(
            windowed["query"]["bool"]["filter"][1]["range"]["offset"],
            json!({"lt": 100_000, "gte": 94_880})
        );
        let after = newer_body("s", 100, 5);
        assert_eq!(
            after["query"]["bool"]["filter"][1]["range"]["offset"]["gt"],
            100
        );
        assert_eq!(after["sort"][0]["offset"]["order"], "asc");
    }
}
