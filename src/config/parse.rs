//! `[[parse]]` tables of the transfer configuration: how the lines of some topics are parsed
//! into fields before they are indexed.
//!
//! ```toml
//! [[parse]]
//! topics = ["checkout"]
//! format = "json"                       # or { regex = '^(?P<level>\w+) (?P<msg>.*)$' }
//! timestamp = { field = "ts", format = "rfc3339", max_skew_ms = 604800000 }
//! ```
//!
//! Everything is checked while the file is read: the regex compiles and has named groups, the
//! time format is known or a valid strftime pattern. What the transfer does with a rule is in
//! `transfer::parse`; the keys are documented in docs/config.md ("Parsing").

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use time::format_description::OwnedFormatItem;

use super::Millis;

/// One `[[parse]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseConfig {
    /// The topics whose lines this rule parses (each in `kafka.topics`, and in one rule only).
    pub topics: Vec<String>,
    /// How a line becomes fields.
    pub format: Format,
    /// Where the event's own time is, if the line carries one.
    #[serde(default)]
    pub timestamp: Option<TimestampRule>,
}

/// How a line becomes fields.
#[derive(Debug, Clone)]
pub enum Format {
    /// The line is a JSON object; its keys become fields.
    Json,
    /// The named captures of a regex become string fields.
    Regex(NamedRegex),
}

/// A compiled regex with at least one named group.
#[derive(Debug, Clone)]
pub struct NamedRegex {
    /// The regex.
    pub regex: regex::Regex,
    /// Its group names, in order.
    pub names: Vec<String>,
}

impl NamedRegex {
    /// Compiles `pattern`; the error says what is wrong with it.
    pub fn new(pattern: &str) -> Result<NamedRegex, String> {
        let regex = regex::Regex::new(pattern)
            .map_err(|e| format!("format.regex {pattern:?} does not compile: {e}"))?;
        let names: Vec<String> = regex.capture_names().flatten().map(String::from).collect();
        if names.is_empty() {
            return Err(format!(
                "format.regex {pattern:?} has no named group: name what becomes a field, \
                 as in (?P<level>\\w+)"
            ));
        }
        Ok(NamedRegex { regex, names })
    }
}

/// Where the event's own time is and how it is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampRule {
    /// The parsed field holding the time (`a.b` reaches into a JSON object).
    pub field: String,
    /// How the time is written.
    pub format: TimeFormat,
    /// A time further than this from the read time is not trusted: the read time is kept and
    /// the document is flagged `timestamp_error`.
    #[serde(default = "default_max_skew_ms")]
    pub max_skew_ms: Millis,
}

/// Default `max_skew_ms`: 7 days.
pub const DEFAULT_MAX_SKEW_MS: u64 = 7 * 24 * 3600 * 1000;

fn default_max_skew_ms() -> Millis {
    Millis::new(DEFAULT_MAX_SKEW_MS)
}

/// How a time is written.
#[derive(Debug, Clone)]
pub enum TimeFormat {
    /// RFC 3339 (`2026-12-01T09:30:00.123Z`, `2026-12-01T10:30:00+01:00`).
    Rfc3339,
    /// Milliseconds since the epoch, as a JSON number or a string of digits.
    UnixMs,
    /// Seconds since the epoch (fractions allowed), as a JSON number or a string.
    Unix,
    /// A strftime pattern (`%d/%b/%Y:%H:%M:%S %z`), plus `%f` (a fraction of a second, any
    /// digits) and `%3f` / `%6f` / `%9f`; without an offset the time is taken as UTC.
    Strftime {
        /// The pattern as written.
        pattern: String,
        /// The pattern compiled.
        items: OwnedFormatItem,
    },
}

impl TimeFormat {
    /// The format written as `text`; the error says what is wrong.
    pub fn new(text: &str) -> Result<TimeFormat, String> {
        match text {
            "rfc3339" => Ok(TimeFormat::Rfc3339),
            "unix_ms" => Ok(TimeFormat::UnixMs),
            "unix" => Ok(TimeFormat::Unix),
            pattern if pattern.contains('%') => {
                let items =
                    strftime(pattern).map_err(|e| format!("timestamp.format {pattern:?}: {e}"))?;
                Ok(TimeFormat::Strftime {
                    pattern: pattern.to_string(),
                    items,
                })
            }
            other => Err(format!(
                "timestamp.format {other:?} is not \"rfc3339\", \"unix_ms\", \"unix\" or a \
                 strftime pattern (with %)"
            )),
        }
    }
}

/// Compiles a strftime pattern, with `%f` (fractional seconds, any number of digits) and `%3f`,
/// `%6f`, `%9f` (exactly 3, 6, 9 digits) added to what `time` knows.
fn strftime(pattern: &str) -> Result<OwnedFormatItem, String> {
    use time::format_description::{modifier, parse_strftime_owned, Component};
    let compile = |part: &str, items: &mut Vec<OwnedFormatItem>| -> Result<(), String> {
        if !part.is_empty() {
            items.push(parse_strftime_owned(part).map_err(|e| e.to_string())?);
        }
        Ok(())
    };
    let mut items = Vec::new();
    let mut rest = pattern;
    let mut at = 0;
    while let Some(found) = rest[at..].find('%') {
        let start = at + found;
        let directive = &rest[start + 1..];
        let (digits, len) = if directive.starts_with('f') {
            (modifier::SubsecondDigits::OneOrMore, 1)
        } else if directive.starts_with("3f") {
            (modifier::SubsecondDigits::Three, 2)
        } else if directive.starts_with("6f") {
            (modifier::SubsecondDigits::Six, 2)
        } else if directive.starts_with("9f") {
            (modifier::SubsecondDigits::Nine, 2)
        } else {
            // Another directive (`%%` included): skip it whole.
            at = start + 1 + directive.chars().next().map_or(0, char::len_utf8);
            continue;
        };
        compile(&rest[..start], &mut items)?;
        let subsecond = modifier::Subsecond::default().with_digits(digits);
        items.push(OwnedFormatItem::Component(Component::Subsecond(subsecond)));
        rest = &rest[start + 1 + len..];
        at = 0;
    }
    compile(rest, &mut items)?;
    Ok(OwnedFormatItem::Compound(items.into_boxed_slice()))
}

impl<'de> Deserialize<'de> for TimeFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        TimeFormat::new(&text).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FormatVisitor)
    }
}

struct FormatVisitor;

impl<'de> Visitor<'de> for FormatVisitor {
    type Value = Format;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"json\" or a table { regex = \"...\" }")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Format, E> {
        match name {
            "json" => Ok(Format::Json),
            other => Err(E::custom(format!(
                "format {other:?} is not \"json\" or a table {{ regex = \"...\" }}"
            ))),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Format, A::Error> {
        let mut regex = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "regex" => {
                    let pattern: String = map.next_value()?;
                    regex = Some(NamedRegex::new(&pattern).map_err(de::Error::custom)?);
                }
                other => return Err(de::Error::unknown_field(other, &["regex"])),
            }
        }
        regex
            .map(Format::Regex)
            .ok_or_else(|| de::Error::missing_field("regex"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        parse: Vec<ParseConfig>,
    }

    fn read(text: &str) -> Result<Vec<ParseConfig>, String> {
        toml::from_str::<Doc>(text)
            .map(|d| d.parse)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn json_and_regex_rules_with_and_without_time() {
        let rules = read(
            r#"
            [[parse]]
            topics = ["a"]
            format = "json"
            timestamp = { field = "ts", format = "rfc3339" }

            [[parse]]
            topics = ["b", "c"]
            format = { regex = '^(?P<level>\w+) (?P<rest>.*)$' }
            timestamp = { field = "t", format = "%d/%b/%Y:%H:%M:%S %z", max_skew_ms = 1000 }
            "#,
        )
        .unwrap();
        assert!(matches!(rules[0].format, Format::Json));
        let time = rules[0].timestamp.as_ref().unwrap();
        assert!(matches!(time.format, TimeFormat::Rfc3339));
        assert_eq!(time.max_skew_ms, Millis::new(DEFAULT_MAX_SKEW_MS));
        let Format::Regex(regex) = &rules[1].format else {
            panic!("not a regex")
        };
        assert_eq!(regex.names, ["level", "rest"]);
        let time = rules[1].timestamp.as_ref().unwrap();
        assert!(matches!(time.format, TimeFormat::Strftime { .. }));
        assert_eq!(time.max_skew_ms, Millis::new(1000));
        assert!(rules[1].timestamp.is_some());
    }

    #[test]
    fn mistakes_are_refused_with_what_is_wrong() {
        for (text, expected) in [
            (r#"format = "xml""#, "is not \"json\""),
            (r#"format = { regex = "(unclosed" }"#, "does not compile"),
            (r#"format = { regex = '^\w+$' }"#, "no named group"),
            (r#"format = { pattern = "x" }"#, "unknown field"),
            (r#"format = {}"#, "missing field"),
            (
                "format = \"json\"\ntimestamp = { field = \"t\", format = \"iso\" }",
                "is not \"rfc3339\"",
            ),
            (
                "format = \"json\"\ntimestamp = { field = \"t\", format = \"%Q\" }",
                "timestamp.format",
            ),
            (
                "format = \"json\"\ntimestamp = { field = \"t\", format = \"unix\", skew = 1 }",
                "unknown field",
            ),
        ] {
            let error = read(&format!("[[parse]]\ntopics = [\"a\"]\n{text}\n")).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
