//! `multiline` of a collect entry: which consecutive lines of a file form one event.
//!
//! Written as a preset name (`multiline = "java"`) or a table with exactly one of `start`,
//! `continue` or `preset`, and optionally `max_lines`, `max_bytes` and `timeout_ms`
//! (`multiline = { start = '^\d{4}-', max_lines = 200 }`). The same shape is accepted from etcd
//! (JSON: `"multiline": "java"` or `{"start": "..."}`). What each preset joins is documented in
//! `agent::multiline` and docs/config.md.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::MAX_READ_BYTES;

/// A built-in rule set for the stack traces of a runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Java (logback, log4j): the exception line under a log line, `at` frames, `Caused by:`,
    /// `Suppressed:`, `... N more`.
    Java,
    /// Python: a log line and its `Traceback (most recent call last):` up to the final
    /// exception line (chained exceptions included).
    Python,
    /// Go: a `panic:` / `fatal error:` / `SIGQUIT:` line and the goroutine dump after it.
    Go,
}

impl Preset {
    /// The preset called `name`, if there is one.
    pub fn named(name: &str) -> Option<Preset> {
        match name {
            "java" => Some(Preset::Java),
            "python" => Some(Preset::Python),
            "go" => Some(Preset::Go),
            _ => None,
        }
    }
}

/// How lines are joined into events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// A line matching this regex begins an event; the lines after it that do not match belong
    /// to it.
    Start(String),
    /// A line matching this regex continues the event before it.
    Continue(String),
    /// A preset.
    Preset(Preset),
}

/// The `multiline` of a collect entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Multiline {
    /// Which lines are joined.
    #[serde(flatten)]
    pub rule: Rule,
    /// An event reaching this many lines is cut: the next line starts a new event, and both
    /// parts are flagged `split`.
    pub max_lines: usize,
    /// An event that a line would take past this many bytes is cut the same way.
    pub max_bytes: usize,
    /// The last event of a file is closed when the file has not grown for this long (a later
    /// continuation line then starts an event of its own).
    pub timeout_ms: u64,
}

/// Default `max_lines`.
pub const DEFAULT_MAX_LINES: usize = 500;
/// Default `max_bytes`: 1 MiB.
pub const DEFAULT_MAX_BYTES: usize = 1024 * 1024;
/// Default `timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;

impl Multiline {
    /// A preset with the default limits.
    pub fn preset(preset: Preset) -> Multiline {
        Multiline {
            rule: Rule::Preset(preset),
            max_lines: DEFAULT_MAX_LINES,
            max_bytes: DEFAULT_MAX_BYTES,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }

    /// Checks the limits and compiles the regex; the error says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        match &self.rule {
            Rule::Start(pattern) | Rule::Continue(pattern) => {
                regex::bytes::Regex::new(pattern)
                    .map_err(|e| format!("multiline regex {pattern:?} does not compile: {e}"))?;
            }
            Rule::Preset(_) => {}
        }
        if self.max_lines == 0 {
            return Err("multiline.max_lines must be at least 1".into());
        }
        if self.max_bytes < 16 || self.max_bytes > MAX_READ_BYTES {
            return Err(format!(
                "multiline.max_bytes must be between 16 and {MAX_READ_BYTES}"
            ));
        }
        if self.timeout_ms == 0 {
            return Err("multiline.timeout_ms must be at least 1".into());
        }
        Ok(())
    }
}

const FIELDS: &[&str] = &[
    "start",
    "continue",
    "preset",
    "max_lines",
    "max_bytes",
    "timeout_ms",
];

impl<'de> Deserialize<'de> for Multiline {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Multiline, D::Error> {
        deserializer.deserialize_any(MultilineVisitor)
    }
}

struct MultilineVisitor;

fn preset_named<E: de::Error>(name: &str) -> Result<Preset, E> {
    Preset::named(name).ok_or_else(|| {
        E::custom(format!(
            "unknown multiline preset {name:?} (known: \"java\", \"python\", \"go\")"
        ))
    })
}

impl<'de> Visitor<'de> for MultilineVisitor {
    type Value = Multiline;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a preset name (\"java\", \"python\", \"go\") or a table with one of start, continue \
             or preset",
        )
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Multiline, E> {
        preset_named(name).map(Multiline::preset)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Multiline, A::Error> {
        let mut rules: Vec<Rule> = Vec::new();
        let mut multiline = Multiline::preset(Preset::Java);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "start" => rules.push(Rule::Start(map.next_value()?)),
                "continue" => rules.push(Rule::Continue(map.next_value()?)),
                "preset" => {
                    let name: String = map.next_value()?;
                    rules.push(Rule::Preset(preset_named(&name)?));
                }
                "max_lines" => multiline.max_lines = map.next_value()?,
                "max_bytes" => multiline.max_bytes = map.next_value()?,
                "timeout_ms" => multiline.timeout_ms = map.next_value()?,
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        if rules.len() != 1 {
            return Err(de::Error::custom(
                "multiline needs exactly one of start, continue or preset",
            ));
        }
        multiline.rule = rules.remove(0);
        Ok(multiline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Entry {
        multiline: Multiline,
    }

    fn parse(toml_text: &str) -> Result<Multiline, String> {
        toml::from_str::<Entry>(toml_text)
            .map(|e| e.multiline)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_preset_name_or_a_table_with_one_rule() {
        assert_eq!(
            parse(r#"multiline = "python""#),
            Ok(Multiline::preset(Preset::Python))
        );
        let table =
            parse(r#"multiline = { start = '^\d', max_lines = 3, timeout_ms = 50 }"#).unwrap();
        assert_eq!(table.rule, Rule::Start(r"^\d".into()));
        assert_eq!(
            (table.max_lines, table.max_bytes, table.timeout_ms),
            (3, DEFAULT_MAX_BYTES, 50)
        );
        assert_eq!(
            parse(r#"multiline = { preset = "go" }"#).unwrap().rule,
            Rule::Preset(Preset::Go)
        );
        let json: Multiline = serde_json::from_str(r#"{"continue": "^\\s"}"#).unwrap();
        assert_eq!(json.rule, Rule::Continue(r"^\s".into()));
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        let unknown = parse(r#"multiline = "ruby""#).unwrap_err();
        assert!(
            unknown.contains("unknown multiline preset \"ruby\""),
            "{unknown}"
        );
        let two = parse(r#"multiline = { start = "a", continue = "b" }"#).unwrap_err();
        assert!(two.contains("exactly one of"), "{two}");
        let none = parse(r#"multiline = { max_lines = 3 }"#).unwrap_err();
        assert!(none.contains("exactly one of"), "{none}");
        let typo = parse(r#"multiline = { start = "a", max_line = 3 }"#).unwrap_err();
        assert!(typo.contains("max_line"), "{typo}");
        let bad = parse(r#"multiline = { start = "(" }"#)
            .unwrap()
            .check()
            .unwrap_err();
        assert!(bad.contains("does not compile"), "{bad}");
        let zero = parse(r#"multiline = { preset = "java", max_lines = 0 }"#)
            .unwrap()
            .check()
            .unwrap_err();
        assert!(zero.contains("max_lines"), "{zero}");
    }

    #[test]
    fn it_is_written_back_as_a_table_that_reads_the_same() {
        let original = parse(r#"multiline = { continue = '^\s', max_bytes = 4096 }"#).unwrap();
        let json = serde_json::to_string(&original).unwrap();
        assert_eq!(serde_json::from_str::<Multiline>(&json).unwrap(), original);
        let preset = serde_json::to_string(&Multiline::preset(Preset::Java)).unwrap();
        assert_eq!(
            serde_json::from_str::<Multiline>(&preset).unwrap(),
            Multiline::preset(Preset::Java)
        );
    }
}
