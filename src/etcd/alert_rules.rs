//! Alert rules: the JSON stored under `{prefix}/alerts/rules/{name}` (issue 30), read and
//! checked here once for everyone who handles one — `logship ctl alert`, the console and the
//! evaluator — so that a rule refused by one is refused by all, with the same reason. It sits
//! beside the collect entries ([`super::entries`]) for the same reason they sit here: both
//! are central configuration, and the roles that read them all depend on this module, never
//! the other way round.
//!
//! Three kinds:
//! - `logs`: a `query_string` query counted per window (`[k·window, (k+1)·window)`, windows
//!   tiling time from the epoch, so a line counts in exactly one), grouped by up to two keyword
//!   fields, compared by `condition` (`count > 10`, `count < 5` for "too quiet");
//! - `agent_down`: a host whose registry key is gone for `for`;
//! - `metrics`: an InfluxQL aggregate of host metrics per window compared by `condition`
//!   (`value < 10`).
//!
//! What needs a server to check — that Elasticsearch accepts the query, that a `group_by`
//! field is a keyword, that a receiver exists — is checked by the caller that has one; this
//! module checks everything that needs none. Unknown keys are refused by name.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest rule name.
pub const MAX_NAME: usize = 100;
/// The most `group_by` fields.
pub const MAX_GROUP_BY: usize = 2;
/// The most groups a window may have (`max_groups`'s ceiling).
pub const MAX_GROUPS_LIMIT: usize = 10_000;
/// The most sample lines a notification may carry.
pub const MAX_SAMPLES: usize = 20;
/// The shortest window.
pub const MIN_WINDOW: Duration = Duration::from_secs(10);
/// The longest window.
pub const MAX_WINDOW: Duration = Duration::from_secs(86_400);

/// A rule as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// Counts of matching lines per window.
    Logs(LogsRule),
    /// Hosts whose agent is gone.
    AgentDown(AgentDownRule),
    /// A threshold on host metrics.
    Metrics(MetricsRule),
}

/// What every kind shares: where notifications go and how they read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Notify {
    /// Receiver names (`alertmanager`, or a `[[webhook]]`'s name); empty or absent: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<String>,
    /// Labels added to every notification (Prometheus label names; not `alertname`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The summary template: `{{count}}`, `{{rule}}`, `{{window}}`, `{{group.FIELD}}` (a
    /// `group_by` field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// A `logs` rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsRule {
    /// `query_string` syntax, default field `message` (empty: every line).
    #[serde(default)]
    pub query: String,
    /// Index pattern (absent: the transfer's data indices, as the console searches them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// The window (`"1m"`): at least 10 s, at most a day.
    pub window: String,
    /// `count OP N`.
    pub condition: String,
    /// Keyword fields the count is grouped by (0 to 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// Consecutive windows the condition must hold (default 1).
    #[serde(default = "one", rename = "for")]
    pub for_windows: u32,
    /// Matching lines carried by a notification (default 3).
    #[serde(default = "three")]
    pub samples: usize,
    /// Groups counted per window; the rest count as `other` (default 100).
    #[serde(default = "hundred")]
    pub max_groups: usize,
    /// How long an incomplete window waits for late agents (default `"5m"`).
    #[serde(default = "five_minutes")]
    pub max_delay: String,
    /// Receivers, labels, summary.
    #[serde(flatten)]
    pub notify: Notify,
}

/// An `agent_down` rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDownRule {
    /// How long the registry key must be gone (default `"1m"`).
    #[serde(default = "one_minute", rename = "for")]
    pub for_duration: String,
    /// Receivers, labels, summary.
    #[serde(flatten)]
    pub notify: Notify,
}

/// A `metrics` rule: `SELECT {select} FROM {from} WHERE {where}` per window, per `group_by`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsRule {
    /// The aggregate (`mean(usage_idle)`).
    pub select: String,
    /// The measurement (`cpu`).
    pub from: String,
    /// An extra InfluxQL condition (`cpu = 'cpu-total'`).
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_clause: Option<String>,
    /// The window (`"5m"`).
    pub window: String,
    /// `value OP N`.
    pub condition: String,
    /// Tags the value is grouped by (0 to 2; default none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// Consecutive windows the condition must hold (default 1).
    #[serde(default = "one", rename = "for")]
    pub for_windows: u32,
    /// Receivers, labels, summary.
    #[serde(flatten)]
    pub notify: Notify,
}

fn one() -> u32 {
    1
}
fn three() -> usize {
    3
}
fn hundred() -> usize {
    100
}
fn five_minutes() -> String {
    "5m".into()
}
fn one_minute() -> String {
    "1m".into()
}

/// A comparison of `condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `>`
    Greater,
    /// `>=`
    AtLeast,
    /// `<`
    Less,
    /// `<=`
    AtMost,
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
}

/// `condition` read: what is compared (`count` or `value`), how, with what.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// The comparison.
    pub op: Op,
    /// The threshold.
    pub threshold: f64,
}

impl Condition {
    /// Reads `{subject} OP N` (`count > 10`, `value <= 2.5`).
    pub fn parse(text: &str, subject: &str) -> Result<Condition, String> {
        let bad = || {
            format!(
                "condition {text:?}: expected \"{subject} OP N\" with OP one of > >= < <= == !="
            )
        };
        let rest = text
            .trim()
            .strip_prefix(subject)
            .ok_or_else(bad)?
            .trim_start();
        let (op, number) = [
            (">=", Op::AtLeast),
            ("<=", Op::AtMost),
            ("==", Op::Equal),
            ("!=", Op::NotEqual),
            (">", Op::Greater),
            ("<", Op::Less),
        ]
        .iter()
        .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|n| (*op, n)))
        .ok_or_else(bad)?;
        let threshold: f64 = number.trim().parse().map_err(|_| bad())?;
        if !threshold.is_finite() {
            return Err(bad());
        }
        Ok(Condition { op, threshold })
    }

    /// Whether `value` meets the condition.
    pub fn holds(&self, value: f64) -> bool {
        match self.op {
            Op::Greater => value > self.threshold,
            Op::AtLeast => value >= self.threshold,
            Op::Less => value < self.threshold,
            Op::AtMost => value <= self.threshold,
            Op::Equal => value == self.threshold,
            Op::NotEqual => value != self.threshold,
        }
    }
}

/// Why a rule is refused: the rule's name and the first thing wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {name:?} refused: {reason}")]
pub struct Refused {
    /// The rule's name.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

/// The key where the leading alert evaluator lists its receivers (a JSON array of names), so
/// that `ctl` and the console can refuse a rule naming a receiver that does not exist.
pub fn receivers_key(prefix: &str) -> String {
    format!("{}/alerts/receivers", prefix.trim_end_matches('/'))
}

/// Checks that every receiver `rule` names is among `known` (the evaluator's).
pub fn check_receivers(rule: &Rule, known: &[String]) -> Result<(), String> {
    let notify = match rule {
        Rule::Logs(r) => &r.notify,
        Rule::AgentDown(r) => &r.notify,
        Rule::Metrics(r) => &r.notify,
    };
    match notify.receivers.iter().find(|r| !known.contains(r)) {
        Some(missing) => Err(format!(
            "receivers: {missing:?} is not a receiver of the alert evaluator (it has: {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

/// Checks a rule name: 1 to [`MAX_NAME`] of `A-Z a-z 0-9 . _ -` (it is part of an etcd key and
/// of Alertmanager's `alertname`).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("the name must be 1 to {MAX_NAME} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "the name may hold only letters, digits, '.', '_' and '-', not {c:?}"
        ));
    }
    Ok(())
}

/// A duration of a rule (`window`, `for`, `max_delay`).
fn duration(key: &str, text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{key} {text:?} is not a duration (\"1m\", \"30s\", \"1h\"): {e}"))
}

fn window(text: &str) -> Result<Duration, String> {
    let window = duration("window", text)?;
    if window < MIN_WINDOW || window > MAX_WINDOW {
        return Err(format!(
            "window {text:?} must be between {} and {}",
            humantime::format_duration(MIN_WINDOW),
            humantime::format_duration(MAX_WINDOW)
        ));
    }
    if window.subsec_nanos() != 0 {
        return Err(format!("window {text:?} must be whole seconds"));
    }
    Ok(window)
}

fn group_by(fields: &[String]) -> Result<(), String> {
    if fields.len() > MAX_GROUP_BY {
        return Err(format!("group_by takes at most {MAX_GROUP_BY} fields"));
    }
    if fields.iter().any(|f| f.trim().is_empty()) {
        return Err("group_by: a field name is empty".into());
    }
    if fields.len() == 2 && fields[0] == fields[1] {
        return Err("group_by: the same field twice".into());
    }
    Ok(())
}

fn for_windows(n: u32) -> Result<(), String> {
    if n == 0 || n > 1000 {
        return Err("for: 1 to 1000 consecutive windows".into());
    }
    Ok(())
}

/// Whether `name` is a Prometheus label name.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

impl Notify {
    fn check(&self, group_by: &[String]) -> Result<(), String> {
        if let Some(receiver) = self.receivers.iter().find(|r| r.trim().is_empty()) {
            return Err(format!("receivers: {receiver:?} is not a receiver name"));
        }
        for key in self.labels.keys() {
            if !is_label_name(key) {
                return Err(format!(
                    "labels: {key:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"
                ));
            }
            if key == "alertname" || group_by.iter().any(|g| g == key) {
                return Err(format!(
                    "labels: {key:?} is set by logship (the rule's name, a group_by field)"
                ));
            }
        }
        if let Some(summary) = &self.summary {
            check_template(summary, group_by)?;
        }
        Ok(())
    }
}

/// Checks a summary template: every `{{…}}` is `count`, `rule`, `window` or `group.F` with `F`
/// a `group_by` field.
pub fn check_template(template: &str, group_by: &[String]) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("summary: a {{{{ without }}}} in {template:?}"))?;
        let name = after[..end].trim();
        let known = matches!(name, "count" | "rule" | "window" | "value")
            || name
                .strip_prefix("group.")
                .is_some_and(|field| group_by.iter().any(|g| g == field));
        if !known {
            return Err(format!(
                "summary: {{{{{name}}}}} is not one of {{{{count}}}}, {{{{rule}}}}, {{{{window}}}}, \
                 {{{{value}}}} or {{{{group.FIELD}}}} of a group_by field"
            ));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

impl Rule {
    /// Where its notifications go and how they read.
    pub fn notify(&self) -> &Notify {
        match self {
            Rule::Logs(logs) => &logs.notify,
            Rule::AgentDown(down) => &down.notify,
            Rule::Metrics(metrics) => &metrics.notify,
        }
    }

    /// The kind, as written in the JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::Logs(_) => "logs",
            Rule::AgentDown(_) => "agent_down",
            Rule::Metrics(_) => "metrics",
        }
    }

    /// Reads and checks the JSON of rule `name`; the error names the rule and the reason.
    pub fn parse(name: &str, json: &[u8]) -> Result<Rule, Refused> {
        let refused = |reason: String| Refused {
            name: name.to_string(),
            reason,
        };
        check_name(name).map_err(refused)?;
        let rule: Rule = serde_json::from_slice(json).map_err(|e| refused(e.to_string()))?;
        rule.check().map_err(refused)?;
        Ok(rule)
    }

    /// Everything that can be checked without a server.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Rule::Logs(rule) => {
                window(&rule.window)?;
                Condition::parse(&rule.condition, "count")?;
                group_by(&rule.group_by)?;
                for_windows(rule.for_windows)?;
                if rule.samples > MAX_SAMPLES {
                    return Err(format!("samples: at most {MAX_SAMPLES}"));
                }
                if rule.max_groups == 0 || rule.max_groups > MAX_GROUPS_LIMIT {
                    return Err(format!("max_groups: 1 to {MAX_GROUPS_LIMIT}"));
                }
                let delay = duration("max_delay", &rule.max_delay)?;
                if delay > Duration::from_secs(86_400) {
                    return Err("max_delay: at most a day".into());
                }
                if rule.index.as_ref().is_some_and(|i| i.trim().is_empty()) {
                    return Err("index: empty (leave it out for the transfer's indices)".into());
                }
                rule.notify.check(&rule.group_by)
            }
            Rule::AgentDown(rule) => {
                let wait = duration("for", &rule.for_duration)?;
                if wait < Duration::from_secs(10) {
                    return Err("for: at least 10s (an agent renews its key every 3 s)".into());
                }
                rule.notify.check(&["host".to_string()])
            }
            Rule::Metrics(rule) => {
                window(&rule.window)?;
                Condition::parse(&rule.condition, "value")?;
                group_by(&rule.group_by)?;
                for_windows(rule.for_windows)?;
                if rule.select.trim().is_empty() || rule.from.trim().is_empty() {
                    return Err("select and from: an aggregate and a measurement".into());
                }
                if [&rule.select, &rule.from]
                    .iter()
                    .chain(rule.where_clause.as_ref().iter())
                    .any(|part| part.contains(';'))
                {
                    return Err("select, from and where: one statement (no ';')".into());
                }
                rule.notify.check(&rule.group_by)
            }
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Greater => ">",
            Op::AtLeast => ">=",
            Op::Less => "<",
            Op::AtMost => "<=",
            Op::Equal => "==",
            Op::NotEqual => "!=",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<Rule, String> {
        Rule::parse("errors", value.to_string().as_bytes()).map_err(|e| e.reason)
    }

    #[test]
    fn the_issues_example_reads_with_its_defaults() {
        let rule = parse(json!({"kind": "logs", "query": "ERROR", "index": "shop-*", "window": "1m",
            "condition": "count > 10", "group_by": ["host"], "for": 1, "receivers": ["alertmanager", "ops"],
            "labels": {"team": "shop"}, "summary": "{{count}} errors on {{group.host}}",
            "samples": 3, "max_groups": 100, "max_delay": "5m"}))
        .unwrap();
        let Rule::Logs(logs) = &rule else {
            panic!("{rule:?}")
        };
        assert_eq!(logs.notify.receivers, ["alertmanager", "ops"]);
        let minimal =
            parse(json!({"kind": "logs", "window": "1m", "condition": "count >= 1"})).unwrap();
        let Rule::Logs(minimal) = minimal else {
            panic!()
        };
        assert_eq!(
            (
                minimal.for_windows,
                minimal.samples,
                minimal.max_groups,
                minimal.max_delay.as_str()
            ),
            (1, 3, 100, "5m")
        );
        // Stored and read back, the same rule.
        let stored = serde_json::to_vec(&rule).unwrap();
        assert_eq!(Rule::parse("errors", &stored).unwrap(), rule);
        assert!(parse(json!({"kind": "agent_down"})).is_ok());
        assert!(parse(json!({"kind": "metrics", "select": "mean(usage_idle)", "from": "cpu",
            "where": "cpu = 'cpu-total'", "window": "5m", "condition": "value < 10", "group_by": ["host"]}))
        .is_ok());
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let logs = |extra: serde_json::Value| {
            let mut rule = json!({"kind": "logs", "window": "1m", "condition": "count > 10"});
            for (k, v) in extra.as_object().unwrap() {
                rule[k] = v.clone();
            }
            parse(rule).unwrap_err()
        };
        assert!(parse(json!({"kind": "traces"}))
            .unwrap_err()
            .contains("unknown variant"));
        assert!(logs(json!({"window": "0s"})).contains("between"));
        assert!(logs(json!({"window": "soon"})).contains("not a duration"));
        assert!(logs(json!({"condition": "count ~ 3"})).contains("OP"));
        assert!(logs(json!({"condition": "value > 3"})).contains("count OP N"));
        assert!(logs(json!({"group_by": ["a", "b", "c"]})).contains("at most 2"));
        assert!(logs(json!({"for": 0})).contains("for"));
        assert!(logs(json!({"samples": 50})).contains("samples"));
        assert!(logs(json!({"max_groups": 0})).contains("max_groups"));
        assert!(logs(json!({"receivers": [""]})).contains("receivers"));
        assert!(logs(json!({"labels": {"alertname": "x"}})).contains("set by logship"));
        assert!(logs(json!({"labels": {"9x": "x"}})).contains("label name"));
        assert!(logs(json!({"summary": "{{group.file}} is loud"})).contains("group_by"));
        assert!(logs(json!({"summary": "{{count"})).contains("without"));
        assert!(logs(json!({"bogus": 1})).contains("unknown field"));
        assert!(parse(json!({"kind": "agent_down", "for": "2s"}))
            .unwrap_err()
            .contains("10s"));
        assert!(Rule::parse("a/b", br#"{"kind": "agent_down"}"#)
            .unwrap_err()
            .reason
            .contains("'/'"));
    }

    #[test]
    fn conditions_compare() {
        let more = Condition::parse("count > 10", "count").unwrap();
        assert!(more.holds(11.0) && !more.holds(10.0));
        let quiet = Condition::parse(" count<5 ", "count").unwrap();
        assert!(quiet.holds(0.0) && !quiet.holds(5.0));
        let at_least = Condition::parse("count >= 1", "count").unwrap();
        assert_eq!(at_least.op, Op::AtLeast);
        assert!(at_least.holds(1.0));
        assert!(Condition::parse("value <= 2.5", "value")
            .unwrap()
            .holds(2.5));
        assert!(Condition::parse("count > inf", "count").is_err());
        assert_eq!(Op::NotEqual.to_string(), "!=");
    }
}
