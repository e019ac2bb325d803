//! Parsing a document's line into fields (`[[parse]]`), and taking the event's own time.
//!
//! Pure functions of the document and the rule: nothing here depends on the clock, on earlier
//! records or on Elasticsearch, so a replay of a record gives the same document. What they
//! promise:
//!
//! - The line stays as read in `message`; parsed fields are added next to it.
//! - logship's own fields are never overwritten: a parsed key that the document already has
//!   (`id`, `host`, `message`, `@timestamp`, a static field, ...) or that logship may add
//!   ([`RESERVED`]) is kept under `parsed.<key>` instead.
//! - A line that does not parse is indexed as it is, with `parse_error` saying why.
//! - With a `timestamp` rule, `@timestamp` becomes the event's own time when it is within
//!   `max_skew_ms` of the read time; the read time is kept as `event.ingested`. Otherwise the
//!   read time stays and `timestamp_error` says why. The `_id` and the index were chosen before
//!   (from the record alone), so parsing never moves a document.
//! - [`Mode::Fallback`] is the same document with the parsed fields kept as one string,
//!   `parsed_raw`, and `mapping_conflict` saying why: what is indexed when Elasticsearch refused
//!   the parsed fields for the index's mapping.
//! - A JSON line's members are written to the document as the line holds them: strings,
//!   numbers, booleans and null are copied, not decoded and encoded again (half the transfer's
//!   cost of parsing went there); objects and arrays are decoded and written on one line. A key
//!   the line repeats is written once, with its last value, as a JSON decoder would read it.
//!   A number no decoder can hold (`1E400`) makes the line unparsable, as it did when every
//!   value was decoded.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::config::parse::{Format, ParseConfig, TimeFormat, TimestampRule};
use crate::record::field;

/// Why the line did not parse.
pub const PARSE_ERROR: &str = "parse_error";
/// Why the event's own time was not used.
pub const TIMESTAMP_ERROR: &str = "timestamp_error";
/// Parsed keys that collide with the document's own.
pub const PARSED: &str = "parsed";
/// The parsed fields as one JSON string (after a mapping conflict).
pub const PARSED_RAW: &str = "parsed_raw";
/// Why the parsed fields could not be indexed as fields.
pub const MAPPING_CONFLICT: &str = "mapping_conflict";
/// The object holding `ingested` (the read time).
pub const EVENT: &str = "event";
/// `event.ingested`: the read time, when `@timestamp` may be the event's own.
pub const INGESTED: &str = "ingested";

/// Keys logship may put in a document besides the record's own: a parsed key with one of these
/// names goes under `parsed.`.
pub const RESERVED: [&str; 10] = [
    "topic",
    "kafka_partition",
    "kafka_offset",
    PARSE_ERROR,
    TIMESTAMP_ERROR,
    PARSED,
    PARSED_RAW,
    MAPPING_CONFLICT,
    EVENT,
    field::ID,
];

/// How the parsed fields go into the document.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// As fields (the normal case).
    Merge,
    /// As one string `parsed_raw`, with `mapping_conflict` = the given reason.
    Fallback(&'a str),
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Parsed fields were added as fields (a mapping conflict is possible).
    pub merged: bool,
    /// The line did not parse (`parse_error`).
    pub parse_error: bool,
    /// The event's time was missing, unreadable or too far (`timestamp_error`).
    pub time_rejected: bool,
}

/// One parsed field's value: a JSON string, number, boolean or null as the line held it (copied
/// into the document without being decoded and encoded again), a text a regex captured, or a
/// decoded JSON object or array (written again on one line: the bulk body allows no raw
/// newline).
#[derive(Debug, Clone)]
enum FieldValue<'a> {
    /// A JSON value's text, from the line.
    Json(&'a RawValue),
    /// A text, from the line.
    Text(&'a str),
    /// A value decoded from the line.
    Decoded(Value),
}

impl FieldValue<'_> {
    /// The value decoded.
    fn to_value(&self) -> Result<Value, String> {
        match self {
            FieldValue::Json(raw) => serde_json::from_str(raw.get())
                .map_err(|error| format!("{} cannot be read: {error}", raw.get())),
            FieldValue::Text(text) => Ok(Value::String((*text).to_string())),
            FieldValue::Decoded(value) => Ok(value.clone()),
        }
    }
}

impl Serialize for FieldValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldValue::Json(raw) => raw.serialize(serializer),
            FieldValue::Text(text) => serializer.serialize_str(text),
            FieldValue::Decoded(value) => value.serialize(serializer),
        }
    }
}

/// Parsed fields in the line's order, each key once (a repeated key keeps its last value, as
/// a JSON decoder does).
#[derive(Debug, Clone, Default)]
struct Fields<'a>(Vec<(Cow<'a, str>, FieldValue<'a>)>);

impl<'a> Fields<'a> {
    /// Keys at which a linear search for an earlier copy gives way to a hash map.
    const LINEAR: usize = 32;

    fn from_pairs(mut pairs: Vec<(Cow<'a, str>, FieldValue<'a>)>) -> Fields<'a> {
        let repeated = if pairs.len() <= Self::LINEAR {
            (1..pairs.len()).any(|n| pairs[..n].iter().any(|(key, _)| *key == pairs[n].0))
        } else {
            let mut seen = HashSet::with_capacity(pairs.len());
            pairs.iter().any(|(key, _)| !seen.insert(key.as_ref()))
        };
        if repeated {
            let mut last: HashMap<&str, usize> = HashMap::with_capacity(pairs.len());
            for (n, (key, _)) in pairs.iter().enumerate() {
                last.insert(key.as_ref(), n);
            }
            let keep: Vec<bool> = (0..pairs.len())
                .map(|n| last.get(pairs[n].0.as_ref()) == Some(&n))
                .collect();
            let mut kept = keep.into_iter();
            pairs.retain(|_| kept.next().unwrap_or(true));
        }
        Fields(pairs)
    }

    fn get(&self, key: &str) -> Option<&FieldValue<'a>> {
        self.0
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// What [`apply`] gives besides the changes it made to the document: the parsed fields, written
/// after the document's own by [`Parsed::document`].
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    /// What parsing did.
    pub outcome: Outcome,
    /// Fields for the top level (no key the document has or logship may add).
    top: Fields<'a>,
    /// Colliding keys, for `parsed`.
    collisions: Fields<'a>,
}

impl<'a> Parsed<'a> {
    /// The document to index: `doc`'s fields, `message`, then the parsed fields.
    pub fn document<'d>(&'d self, doc: &'d Map<String, Value>, message: &'d Value) -> Document<'d> {
        Document {
            doc,
            message,
            parsed: self,
        }
    }
}

/// A document with its parsed fields, written as one JSON object (see [`Parsed::document`]).
#[derive(Debug)]
pub struct Document<'d> {
    doc: &'d Map<String, Value>,
    message: &'d Value,
    parsed: &'d Parsed<'d>,
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let collisions = !self.parsed.collisions.is_empty();
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.doc {
            // A record's own `message` travels apart; its own `parsed` gives way to ours.
            if key == field::MESSAGE || (collisions && key == PARSED) {
                continue;
            }
            map.serialize_entry(key, value)?;
        }
        map.serialize_entry(field::MESSAGE, self.message)?;
        for (key, value) in &self.parsed.top.0 {
            map.serialize_entry(key, value)?;
        }
        if collisions {
            map.serialize_entry(PARSED, &self.parsed.collisions)?;
        }
        map.end()
    }
}

/// Parses `message` (the document's line, taken out of `doc`) with `rule`, records in `doc`
/// what parsing says about it (`parse_error`, the times, the fallback's `parsed_raw`), and
/// gives the parsed fields to write with it (see the module doc). `read_time` is the
/// document's `@timestamp` before parsing (`None` if it is not RFC 3339: the event's time then
/// cannot be checked and is not used).
pub fn apply<'a>(
    rule: &'a ParseConfig,
    doc: &mut Map<String, Value>,
    message: &'a Value,
    read_time: Option<OffsetDateTime>,
    mode: Mode<'_>,
) -> Parsed<'a> {
    let mut parsed = Parsed::default();
    let fields = match message {
        Value::String(line) => parse_line(&rule.format, line),
        _ => Err("message is not a string".to_string()),
    };
    let fields = match fields {
        Ok(fields) => fields,
        Err(reason) => {
            parsed.outcome.parse_error = true;
            doc.insert(PARSE_ERROR.into(), Value::String(reason));
            if let Some(time) = &rule.timestamp {
                parsed.outcome.time_rejected = true;
                keep_read_time(doc, read_time);
                let why = format!("{}: the line did not parse", time.field);
                doc.insert(TIMESTAMP_ERROR.into(), Value::String(why));
            }
            return parsed;
        }
    };
    let event_time = rule.timestamp.as_ref().map(|time| match read_time {
        Some(read_time) => event_time(time, &fields, read_time),
        None => Err(format!(
            "{}: the record's own @timestamp is not RFC 3339, so this time cannot be checked",
            time.field
        )),
    });
    match mode {
        Mode::Merge => {
            let (mut top, mut collisions) = (Vec::new(), Vec::new());
            for (key, value) in fields.0 {
                let taken = key == field::MESSAGE
                    || doc.contains_key(key.as_ref())
                    || RESERVED.contains(&key.as_ref());
                if taken {
                    collisions.push((key, value));
                } else {
                    top.push((key, value));
                }
            }
            parsed.outcome.merged = !top.is_empty() || !collisions.is_empty();
            parsed.top = Fields(top);
            parsed.collisions = Fields(collisions);
        }
        Mode::Fallback(reason) => {
            let raw = serde_json::to_string(&fields)
                .unwrap_or_else(|error| format!("the parsed fields cannot be written: {error}"));
            doc.insert(PARSED_RAW.into(), Value::String(raw));
            doc.insert(MAPPING_CONFLICT.into(), Value::String(reason.to_string()));
        }
    }
    match event_time {
        None => {}
        Some(Ok(time)) => {
            keep_read_time(doc, read_time);
            doc.insert(field::TIMESTAMP.into(), Value::String(rfc3339(time)));
        }
        Some(Err(reason)) => {
            parsed.outcome.time_rejected = true;
            keep_read_time(doc, read_time);
            doc.insert(TIMESTAMP_ERROR.into(), Value::String(reason));
        }
    }
    parsed
}

/// The fields of `line`, or why there are none.
fn parse_line<'a>(format: &'a Format, line: &'a str) -> Result<Fields<'a>, String> {
    match format {
        Format::Json => match serde_json::from_str::<Object<'a>>(line) {
            Ok(Object(pairs)) => Ok(Fields::from_pairs(pairs)),
            // Say why in a person's terms: decode the line again the slow way.
            Err(error) => Err(match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(_)) => format!("not JSON: {error}"),
                Ok(other) => format!("not a JSON object but {}", kind(&other)),
                Err(error) => format!("not JSON: {error}"),
            }),
        },
        Format::Regex(named) => {
            let captures = named
                .regex
                .captures(line)
                .ok_or_else(|| "does not match format.regex".to_string())?;
            Ok(Fields::from_pairs(
                named
                    .names
                    .iter()
                    .filter_map(|name| {
                        let text = captures.name(name)?.as_str();
                        Some((Cow::Borrowed(name.as_str()), FieldValue::Text(text)))
                    })
                    .collect(),
            ))
        }
    }
}

/// A JSON object's members, keys decoded (borrowed when they hold no escape), values kept as
/// their text.
struct Object<'a>(Vec<(Cow<'a, str>, FieldValue<'a>)>);

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Key(key)) = map.next_key()? {
            let raw: &'de RawValue = map.next_value()?;
            let text = raw.get();
            let value = match text.as_bytes().first() {
                // A container is decoded: its numbers checked as a decoder checks them, its
                // whitespace (newlines, which the bulk body cannot hold) left behind.
                Some(b'{' | b'[') => {
                    FieldValue::Decoded(serde_json::from_str(text).map_err(de::Error::custom)?)
                }
                // A number no decoder can hold is no JSON to pass on.
                Some(b'-' | b'0'..=b'9') if !text.parse::<f64>().is_ok_and(f64::is_finite) => {
                    return Err(de::Error::custom(format_args!(
                        "number out of range: {text}"
                    )));
                }
                _ => FieldValue::Json(raw),
            };
            pairs.push((key, value));
        }
        Ok(Object(pairs))
    }
}

/// An object key, borrowed from the line when it holds no escape.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key.to_string())))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key)))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The event's own time from `parsed`, or why it is not used.
fn event_time(
    rule: &TimestampRule,
    parsed: &Fields<'_>,
    read_time: OffsetDateTime,
) -> Result<OffsetDateTime, String> {
    let name = &rule.field;
    let value = find(parsed, name)
        .map_err(|why| format!("{name}: {why}"))?
        .ok_or_else(|| format!("{name}: no such field"))?;
    let time = read(&rule.format, &value).map_err(|why| format!("{name}: {why}"))?;
    let skew = (time - read_time).unsigned_abs();
    if skew > rule.max_skew_ms.get() {
        return Err(format!(
            "{name}: {} is {} s from the read time, more than max_skew_ms ({} ms)",
            rfc3339(time),
            skew.as_secs(),
            rule.max_skew_ms.get().as_millis()
        ));
    }
    Ok(time)
}

/// The value at `path` in the parsed fields (`a.b` reaches into objects; a key that itself
/// contains dots is found first).
fn find(fields: &Fields<'_>, path: &str) -> Result<Option<Value>, String> {
    if let Some(value) = fields.get(path) {
        return value.to_value().map(Some);
    }
    let Some((head, rest)) = path.split_once('.') else {
        return Ok(None);
    };
    match fields.get(head).map(FieldValue::to_value).transpose()? {
        Some(Value::Object(inner)) => Ok(lookup(&inner, rest).cloned()),
        _ => Ok(None),
    }
}

/// The value at `path` in `fields`, as [`find`] reaches it.
fn lookup<'a>(fields: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = fields.get(path) {
        return Some(value);
    }
    let (head, rest) = path.split_once('.')?;
    match fields.get(head)? {
        Value::Object(inner) => lookup(inner, rest),
        _ => None,
    }
}

/// The time `value` holds in `format`.
fn read(format: &TimeFormat, value: &Value) -> Result<OffsetDateTime, String> {
    let text = match value {
        Value::String(text) => text.as_str(),
        Value::Number(_) if matches!(format, TimeFormat::UnixMs | TimeFormat::Unix) => "",
        other => return Err(format!("{} is not a time", kind(other))),
    };
    match format {
        TimeFormat::Rfc3339 => OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| format!("{text:?} is not RFC 3339: {e}")),
        TimeFormat::UnixMs => from_units(value, text, 1_000_000),
        TimeFormat::Unix => from_units(value, text, 1_000_000_000),
        TimeFormat::Strftime { pattern, items } => OffsetDateTime::parse(text, items)
            .or_else(|_| PrimitiveDateTime::parse(text, items).map(PrimitiveDateTime::assume_utc))
            .map_err(|e| format!("{text:?} does not fit {pattern:?}: {e}")),
    }
}

/// A count of units of `nanos_per_unit` since the epoch, written as a JSON number or as `text`.
fn from_units(value: &Value, text: &str, nanos_per_unit: i128) -> Result<OffsetDateTime, String> {
    let shown = if text.is_empty() {
        value.to_string()
    } else {
        text.to_string()
    };
    let nanos = match value.as_i64().or_else(|| text.trim().parse().ok()) {
        Some(units) => Some(i128::from(units) * nanos_per_unit),
        None => value
            .as_f64()
            .or_else(|| text.trim().parse::<f64>().ok())
            .filter(|units| units.is_finite())
            // Saturating float-to-int conversion; out-of-range values fail below.
            .map(|units| (units * nanos_per_unit as f64) as i128),
    };
    nanos
        .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok())
        .ok_or_else(|| format!("{shown} is not a time since the epoch"))
}

/// Records `read_time` as `event.ingested` (an `event` object of the document is kept and
/// extended; any other `event` value is replaced: the record never has one).
fn keep_read_time(doc: &mut Map<String, Value>, read_time: Option<OffsetDateTime>) {
    let Some(read_time) = read_time else {
        return;
    };
    let ingested = Value::String(rfc3339(read_time));
    match doc.get_mut(EVENT) {
        Some(Value::Object(event)) => {
            event.insert(INGESTED.into(), ingested);
        }
        _ => {
            let mut event = Map::new();
            event.insert(INGESTED.into(), ingested);
            doc.insert(EVENT.into(), Value::Object(event));
        }
    }
}

/// RFC 3339 in UTC; times outside what RFC 3339 can write do not get here (they are beyond the
/// skew of any read time).
fn rfc3339(time: OffsetDateTime) -> String {
    time.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| time.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse::NamedRegex;
    use crate::config::Millis;
    use serde_json::json;

    const READ: &str = "2026-12-01T10:00:00Z";

    fn read_time() -> OffsetDateTime {
        OffsetDateTime::parse(READ, &Rfc3339).unwrap()
    }

    fn doc(message: &str) -> Map<String, Value> {
        let Value::Object(map) = json!({
            "host": "h", "file": "/f", "offset": 7, "message": message, "@timestamp": READ,
            "service": "checkout"
        }) else {
            unreachable!()
        };
        map
    }

    fn rule(format: Format, time: Option<(&str, &str)>) -> ParseConfig {
        ParseConfig {
            topics: vec!["t".into()],
            format,
            timestamp: time.map(|(field, format)| TimestampRule {
                field: field.into(),
                format: TimeFormat::new(format).unwrap(),
                max_skew_ms: Millis::new(crate::config::parse::DEFAULT_MAX_SKEW_MS),
            }),
        }
    }

    /// The document `rule` makes of `line` in `mode`, as written to the bulk body.
    fn written(rule: &ParseConfig, line: &str, mode: Mode<'_>) -> (Value, Outcome) {
        let (text, outcome) = written_text(rule, line, mode);
        (serde_json::from_str(&text).unwrap(), outcome)
    }

    /// [`written`] as the text written (where a repeated key would show).
    fn written_text(rule: &ParseConfig, line: &str, mode: Mode<'_>) -> (String, Outcome) {
        let mut d = doc(line);
        let message = d.remove("message").unwrap();
        let parsed = apply(rule, &mut d, &message, Some(read_time()), mode);
        let text = serde_json::to_string(&parsed.document(&d, &message)).unwrap();
        assert!(!text.contains('\n'), "one line: {text}");
        (text, parsed.outcome)
    }

    fn run(rule: &ParseConfig, line: &str) -> (Value, Outcome) {
        written(rule, line, Mode::Merge)
    }

    #[test]
    fn json_keys_become_fields_and_collisions_go_under_parsed() {
        let line = r#"{"level":"error","user_id":42,"message":"boom","host":"evil","service":"x","id":"i","ctx":{"a":[1]}}"#;
        let (d, outcome) = run(&rule(Format::Json, None), line);
        assert!(outcome.merged && !outcome.parse_error);
        assert_eq!(d["level"], "error");
        assert_eq!(d["user_id"], 42);
        assert_eq!(d["ctx"], json!({"a": [1]}));
        // logship's own fields, static ones and reserved names are untouched.
        assert_eq!(d["message"], line);
        assert_eq!(d["host"], "h");
        assert_eq!(d["service"], "checkout");
        assert_eq!(
            d["parsed"],
            json!({"message": "boom", "host": "evil", "service": "x", "id": "i"})
        );
        assert!(d.get("event").is_none(), "no time rule, no event.ingested");
    }

    #[test]
    fn values_are_written_as_the_line_holds_them_each_key_once_on_one_line() {
        let line = "{\"level\":\"info\",\"n\":123456789012345678901234,\"x\":1.50,\
                    \"level\":\"error\",\"a\\u0062\":\"\\u00e9\\n\",\"ctx\": {\n  \"k\": [1,\r\n 2]\n}}";
        let (d, outcome) = run(&rule(Format::Json, None), line);
        assert!(outcome.merged && !outcome.parse_error);
        let (text, _) = written_text(&rule(Format::Json, None), line, Mode::Merge);
        assert_eq!(d["level"], "error", "the last of a repeated key wins");
        assert_eq!(text.matches("\"level\"").count(), 1, "{text}");
        assert_eq!(d["ab"], "\u{e9}\n");
        assert_eq!(d["ctx"], json!({"k": [1, 2]}));
        assert_eq!(d["message"], line);
        let mut document = doc(line);
        let message = document.remove("message").unwrap();
        let rule = rule(Format::Json, None);
        let parsed = apply(&rule, &mut document, &message, None, Mode::Merge);
        let written = serde_json::to_string(&parsed.document(&document, &message)).unwrap();
        assert!(
            written.contains("\"n\":123456789012345678901234,\"x\":1.50"),
            "numbers go through untouched: {written}"
        );
    }

    #[test]
    fn a_repeated_key_among_many_is_written_once_with_its_last_value() {
        let mut members: Vec<String> = (0..40).map(|n| format!("\"k{n}\":{n}")).collect();
        members.insert(10, "\"k35\":\"first\"".into());
        members.push("\"k3\":\"last\"".into());
        let line = format!("{{{}}}", members.join(","));
        let (d, _) = run(&rule(Format::Json, None), &line);
        let (text, _) = written_text(&rule(Format::Json, None), &line, Mode::Merge);
        assert_eq!(d["k3"], "last");
        assert_eq!(d["k35"], 35);
        assert_eq!(d["k39"], 39);
        for key in ["\"k3\"", "\"k35\""] {
            assert_eq!(text.matches(key).count(), 1, "{text}");
        }
    }

    #[test]
    fn a_record_with_its_own_parsed_field_gets_ours_once() {
        let mut document = doc(r#"{"host":"evil","k":1}"#);
        document.insert("parsed".into(), json!("the record's"));
        let message = document.remove("message").unwrap();
        let rule = rule(Format::Json, None);
        let parsed = apply(&rule, &mut document, &message, None, Mode::Merge);
        let written = serde_json::to_string(&parsed.document(&document, &message)).unwrap();
        assert_eq!(written.matches("\"parsed\"").count(), 1, "{written}");
        let d: Value = serde_json::from_str(&written).unwrap();
        assert_eq!(d["parsed"], json!({"host": "evil"}));
        assert_eq!(d["k"], 1);
    }

    #[test]
    fn lines_that_do_not_parse_are_kept_and_say_why() {
        let json_rule = rule(Format::Json, None);
        for (line, why) in [
            ("plain text", "not JSON"),
            ("[1,2]", "not a JSON object but an array"),
            ("{\"a\":", "not JSON"),
            ("42", "but a number"),
            (r#"{"n":1E400}"#, "number out of range"),
            (r#"{"a":{"n":-1E400}}"#, "number out of range"),
        ] {
            let (d, outcome) = run(&json_rule, line);
            assert!(outcome.parse_error && !outcome.merged);
            assert_eq!(d["message"], line);
            assert!(d["parse_error"].as_str().unwrap().contains(why), "{d}");
        }
        let regex = rule(
            Format::Regex(NamedRegex::new(r"^(?P<level>[A-Z]+) (?P<text>.*)$").unwrap()),
            None,
        );
        let (d, _) = run(&regex, "lowercase start");
        assert_eq!(d["parse_error"], "does not match format.regex");
        let (d, outcome) = run(&regex, "WARN disk at 91%");
        assert!(outcome.merged);
        assert_eq!(d["level"], "WARN");
        assert_eq!(d["text"], "disk at 91%");
    }

    #[test]
    fn an_optional_regex_group_that_did_not_take_part_gives_no_field() {
        let regex = rule(
            Format::Regex(NamedRegex::new(r"^(?P<a>x)?(?P<b>y)$").unwrap()),
            None,
        );
        let (d, _) = run(&regex, "y");
        assert!(d.get("a").is_none());
        assert_eq!(d["b"], "y");
    }

    #[test]
    fn the_event_time_becomes_timestamp_and_the_read_time_is_kept() {
        for (format, value, expected) in [
            (
                "rfc3339",
                json!("2026-11-30T23:15:00.250+01:00"),
                "2026-11-30T22:15:00.25Z",
            ),
            (
                "unix_ms",
                json!(1_764_540_000_123_i64),
                "2025-11-30T22:00:00.123Z",
            ),
            (
                "unix_ms",
                json!("1764540000123"),
                "2025-11-30T22:00:00.123Z",
            ),
            ("unix", json!(1_764_540_000.5), "2025-11-30T22:00:00.5Z"),
            (
                "%d/%b/%Y:%H:%M:%S %z",
                json!("30/Nov/2026:23:15:00 +0100"),
                "2026-11-30T22:15:00Z",
            ),
            (
                "%Y-%m-%d %H:%M:%S",
                json!("2026-11-30 22:15:00"),
                "2026-11-30T22:15:00Z",
            ),
            (
                "%Y-%m-%d %H:%M:%S.%3f",
                json!("2026-11-30 22:15:00.042"),
                "2026-11-30T22:15:00.042Z",
            ),
            (
                "%Y-%m-%dT%H:%M:%S.%f%z",
                json!("2026-11-30T23:15:00.5+0100"),
                "2026-11-30T22:15:00.5Z",
            ),
            ("%s", json!("1796115600"), "2026-12-01T09:00:00Z"),
            (
                "100%% %H:%M %d.%m.%Y",
                json!("100% 22:15 30.11.2026"),
                "2026-11-30T22:15:00Z",
            ),
        ] {
            let mut time_rule = rule(Format::Json, Some(("t", format)));
            if let Some(t) = time_rule.timestamp.as_mut() {
                t.max_skew_ms = Millis::new(400 * 24 * 3600 * 1000);
            }
            let line = json!({"t": value}).to_string();
            let (d, outcome) = run(&time_rule, &line);
            assert!(!outcome.time_rejected, "{format}: {d}");
            assert_eq!(d["@timestamp"], expected, "{format}");
            assert_eq!(d["event"]["ingested"], READ);
            assert_eq!(d["t"], value, "the time field stays");
        }
    }

    #[test]
    fn a_time_too_far_missing_or_unreadable_keeps_the_read_time_and_is_flagged() {
        let time_rule = rule(Format::Json, Some(("ctx.ts", "rfc3339")));
        for (line, why) in [
            (
                r#"{"ctx":{"ts":"2019-01-01T00:00:00Z"}}"#,
                "more than max_skew_ms",
            ),
            (
                r#"{"ctx":{"ts":"2026-12-09T00:00:00Z"}}"#,
                "more than max_skew_ms",
            ),
            (r#"{"ctx":{}}"#, "no such field"),
            (r#"{"ctx":{"ts":"yesterday"}}"#, "is not RFC 3339"),
            (r#"{"ctx":{"ts":12}}"#, "a number is not a time"),
            ("not json", "did not parse"),
        ] {
            let (d, outcome) = run(&time_rule, line);
            assert!(outcome.time_rejected, "{line}");
            assert_eq!(d["@timestamp"], READ, "{line}");
            assert_eq!(d["event"]["ingested"], READ);
            let error = d["timestamp_error"].as_str().unwrap();
            assert!(
                error.starts_with("ctx.ts: ") && error.contains(why),
                "{error}"
            );
        }
        let (d, outcome) = run(&time_rule, r#"{"ctx":{"ts":"2026-11-25T00:00:00Z"}}"#);
        assert!(!outcome.time_rejected);
        assert_eq!(d["@timestamp"], "2026-11-25T00:00:00Z");
    }

    #[test]
    fn a_parsed_event_object_stays_under_parsed_and_event_ingested_is_ours() {
        let time_rule = rule(Format::Json, Some(("t", "unix")));
        let (d, _) = run(&time_rule, r#"{"event":{"kind":"x"},"t":1796115600}"#);
        assert_eq!(d["parsed"]["event"], json!({"kind": "x"}));
        assert_eq!(d["event"], json!({"ingested": READ}));
        assert_eq!(d["@timestamp"], "2026-12-01T09:00:00Z");
    }

    #[test]
    fn fallback_keeps_the_parsed_fields_as_one_string() {
        let time_rule = rule(Format::Json, Some(("t", "rfc3339")));
        let (d, outcome) = written(
            &time_rule,
            r#"{"code":{"a":1},"t":"2026-11-30T00:00:00Z","host":"x"}"#,
            Mode::Fallback("conflict"),
        );
        assert!(!outcome.merged);
        assert!(d.get("code").is_none() && d.get("parsed").is_none());
        let raw: Value = serde_json::from_str(d["parsed_raw"].as_str().unwrap()).unwrap();
        assert_eq!(raw["code"], json!({"a": 1}));
        assert_eq!(raw["host"], "x");
        assert_eq!(d["mapping_conflict"], "conflict");
        assert_eq!(d["@timestamp"], "2026-11-30T00:00:00Z");
        assert_eq!(d["host"], "h");
    }
}
