//! Which of the transfer's indices expire, and when.
//!
//! A [`RetentionRule`] is an index name template, the topics it is rendered for and how long
//! an index is kept. An index belongs to a rule only when its name is exactly what the
//! template renders for one of the topics at some time ([`IndexNameTemplate::period`]): the
//! topic written out, the date parts digits of a real date. It expires once the end of the
//! period its name dates plus the retention has passed — the index of 2026-01-01 (its day ends
//! 2026-01-02 00:00 UTC) with 30 days on 2026-02-01 at 00:00 UTC. Nothing else is ever named for deletion: not an index of another
//! pattern, not a rollover's `-000001`, not an index whose template has no year.
//!
//! The rule travels in the index template's `_meta` ([`RetentionRule::to_meta`]), where the
//! console reads it back to show when each index goes.

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::config::index_name::IndexNameTemplate;
use crate::config::retention::Retention;

/// Indices of one template, for some topics, kept for some time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRule {
    template: IndexNameTemplate,
    topics: Vec<String>,
    keep: Retention,
}

impl RetentionRule {
    /// The indices `template` renders for `topics` (for a template without `{topic}`, one
    /// topic `""`), kept for `keep`.
    pub fn new(template: IndexNameTemplate, topics: Vec<String>, keep: Retention) -> Self {
        RetentionRule {
            template,
            topics,
            keep,
        }
    }

    /// How long the indices are kept.
    pub fn keep(&self) -> Retention {
        self.keep
    }

    /// The index patterns to list when looking for expired indices (none when kept forever
    /// or when the template dates nothing).
    pub fn patterns(&self) -> Vec<String> {
        if self.keep == Retention::Forever || !self.template.uses_time() {
            return Vec::new();
        }
        self.index_patterns()
    }

    /// The patterns of this rule's indices, whatever their retention (to list them).
    pub fn index_patterns(&self) -> Vec<String> {
        let mut patterns: Vec<String> = self
            .topics
            .iter()
            .map(|topic| self.template.pattern(topic))
            .collect();
        patterns.sort();
        patterns.dedup();
        patterns
    }

    /// Whether `name` is one of this rule's indices: dated as the template dates them, or, for
    /// a template without a date, exactly its name for one of the topics.
    pub fn owns(&self, name: &str) -> bool {
        self.topics.iter().any(|topic| {
            if self.template.uses_time() {
                self.template.period(topic, name).is_some()
            } else {
                self.template
                    .render(topic, None)
                    .is_ok_and(|own| own == name)
            }
        })
    }

    /// When index `name` is deleted: the end of the period it dates plus the retention.
    /// `None` when it is not this rule's or kept forever.
    pub fn delete_at(&self, name: &str) -> Option<OffsetDateTime> {
        let keep = self.keep.duration()?;
        let period = self
            .topics
            .iter()
            .find_map(|topic| self.template.period(topic, name))?;
        let keep = time::Duration::try_from(keep).ok()?;
        period.end.checked_add(keep)
    }

    /// The names in `names` this rule deletes at `now`.
    pub fn expired<'a>(&self, names: &'a [String], now: OffsetDateTime) -> Vec<&'a str> {
        names
            .iter()
            .filter(|name| self.delete_at(name).is_some_and(|at| at <= now))
            .map(String::as_str)
            .collect()
    }

    /// The rule as `_meta` keys of an index template: `index` (the template text), `topics`,
    /// `retention` (`"30days"`, `"forever"`).
    pub fn to_meta(&self) -> Map<String, Value> {
        let meta = json!({
            "index": self.template.text(),
            "topics": self.topics,
            "retention": self.keep.to_string(),
        });
        match meta {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// The rule an index template's `_meta` records (see [`RetentionRule::to_meta`]); `None`
    /// when it records none or something unreadable.
    pub fn from_meta(meta: &Value) -> Option<RetentionRule> {
        let template = IndexNameTemplate::parse(meta.get("index")?.as_str()?).ok()?;
        let topics = meta
            .get("topics")?
            .as_array()?
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<Vec<String>>>()?;
        let keep = Retention::parse(meta.get("retention")?.as_str()?).ok()?;
        Some(RetentionRule::new(template, topics, keep))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use time::macros::datetime;

    fn days(n: u64) -> Retention {
        Retention::For(Duration::from_secs(n * 86_400))
    }

    fn rule(keep: Retention) -> RetentionRule {
        RetentionRule::new(
            IndexNameTemplate::parse("{topic}-%Y.%m.%d").unwrap(),
            vec!["web_log".into(), "App".into()],
            keep,
        )
    }

    #[test]
    fn an_index_goes_when_its_day_plus_the_retention_has_passed() {
        let rule = rule(days(30));
        assert_eq!(
            rule.delete_at("web_log-2026.01.01"),
            Some(datetime!(2026-02-01 00:00 UTC))
        );
        let names: Vec<String> = [
            "web_log-2026.01.01",
            "app-2026.01.01",
            "web_log-2026.01.02",
            "other-2020.01.01",
            "web_log-2020.01.01-000001",
            "logship-dlq",
            "web_log-2020.13.01",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            rule.expired(&names, datetime!(2026-02-01 00:00 UTC)),
            ["web_log-2026.01.01", "app-2026.01.01"]
        );
        assert_eq!(
            rule.expired(&names, datetime!(2026-01-31 23:59:59 UTC)),
            Vec::<&str>::new()
        );
        assert_eq!(rule.patterns(), ["app-*", "web_log-*"]);
    }

    #[test]
    fn forever_and_undated_templates_delete_nothing() {
        let forever = rule(Retention::Forever);
        let names = vec!["web_log-1999.01.01".to_string()];
        assert!(forever
            .expired(&names, datetime!(2026-01-01 00:00 UTC))
            .is_empty());
        assert!(forever.patterns().is_empty());
        assert!(forever.owns("web_log-1999.01.01"));
        let undated = RetentionRule::new(
            IndexNameTemplate::parse("logship-dlq").unwrap(),
            vec![String::new()],
            days(1),
        );
        assert!(undated.patterns().is_empty());
        assert!(undated.owns("logship-dlq"));
        assert!(!undated.owns("logship-dlq-2"));
        assert!(undated
            .expired(&["logship-dlq".into()], datetime!(2099-01-01 00:00 UTC))
            .is_empty());
    }

    #[test]
    fn the_rule_travels_in_template_meta() {
        let rule = rule(days(30));
        let meta = Value::Object(rule.to_meta());
        assert_eq!(meta["retention"], "30days");
        assert_eq!(RetentionRule::from_meta(&meta), Some(rule));
        assert_eq!(RetentionRule::from_meta(&json!({"kind": "data"})), None);
    }
}
