//! Index name templates: `elasticsearch.index = "{topic}-%Y.%m.%d"`.
//!
//! A template is parsed once at config load ([`IndexNameTemplate::parse`]) and rendered per
//! record. The time parts come from the record's own time (its `@timestamp`, or the Kafka
//! timestamp for records that are not logship JSON), converted to UTC, never from the time of
//! sending: a document's `_id` is unique only within one concrete index, so a record retried
//! across midnight must still land in the same daily index, or it would be indexed twice.
//!
//! `{topic}` is written lowercased, since Elasticsearch index names must be lowercase.

use std::fmt::Write as _;

use time::OffsetDateTime;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Topic,
    Year,
    Month,
    Day,
    Hour,
}

/// A parsed index name template: literal text, `{topic}`, and `%Y %m %d %H` (`%%` is a `%`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexNameTemplate {
    parts: Vec<Part>,
    /// The template as written.
    text: String,
}

/// Why a template text cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `%` was followed by something other than `Y m d H %`.
    #[error("unsupported strftime part %{0} (supported: %Y %m %d %H %%)")]
    UnsupportedTimePart(String),
    /// A `{` that does not start `{topic}`.
    #[error("unsupported placeholder at {0:?} (only {{topic}} is supported)")]
    UnsupportedPlaceholder(String),
    /// The template is empty.
    #[error("the index name template is empty")]
    Empty,
}

/// Why a record's index name cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template has time parts but the record has no usable time.
    #[error("the index name needs the record's time, and it has none usable: {0}")]
    NoTime(String),
    /// The rendered name is not a valid Elasticsearch index name.
    #[error("rendered index name {name:?} is invalid: {reason}")]
    InvalidName {
        /// The rendered name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl IndexNameTemplate {
    /// Parses a template; the error names the offending part.
    pub fn parse(text: &str) -> Result<IndexNameTemplate, TemplateError> {
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            match c {
                '%' => {
                    let mut chars = rest.chars();
                    chars.next();
                    let part = match chars.next() {
                        Some('Y') => Part::Year,
                        Some('m') => Part::Month,
                        Some('d') => Part::Day,
                        Some('H') => Part::Hour,
                        Some('%') => {
                            literal.push('%');
                            rest = &rest[2..];
                            continue;
                        }
                        Some(other) => {
                            return Err(TemplateError::UnsupportedTimePart(other.to_string()))
                        }
                        None => return Err(TemplateError::UnsupportedTimePart(String::new())),
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                    rest = &rest[2..];
                }
                '{' => {
                    if let Some(after) = rest.strip_prefix("{topic}") {
                        if !literal.is_empty() {
                            parts.push(Part::Literal(std::mem::take(&mut literal)));
                        }
                        parts.push(Part::Topic);
                        rest = after;
                    } else {
                        let shown: String = rest.chars().take(12).collect();
                        return Err(TemplateError::UnsupportedPlaceholder(shown));
                    }
                }
                other => {
                    literal.push(other);
                    rest = &rest[other.len_utf8()..];
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(IndexNameTemplate {
            parts,
            text: text.to_string(),
        })
    }

    /// Whether rendering needs the record's time.
    pub fn uses_time(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Year | Part::Month | Part::Day | Part::Hour))
    }

    /// The template as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the template writes the topic.
    pub fn uses_topic(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Topic))
    }

    /// The index name for a record of `topic` with time `time` (UTC is used), validated.
    pub fn render(&self, topic: &str, time: Option<OffsetDateTime>) -> Result<String, RenderError> {
        let utc = time.map(|t| t.to_offset(time::UtcOffset::UTC));
        let mut name = String::with_capacity(64);
        for part in &self.parts {
            let needs_time = || RenderError::NoTime("no timestamp".into());
            // Writing to a String cannot fail.
            let _ = match part {
                Part::Literal(text) => {
                    name.push_str(text);
                    Ok(())
                }
                Part::Topic => {
                    name.extend(topic.chars().map(|c| c.to_ascii_lowercase()));
                    Ok(())
                }
                Part::Year => write!(name, "{:04}", utc.ok_or_else(needs_time)?.year()),
                Part::Month => write!(name, "{:02}", u8::from(utc.ok_or_else(needs_time)?.month())),
                Part::Day => write!(name, "{:02}", utc.ok_or_else(needs_time)?.day()),
                Part::Hour => write!(name, "{:02}", utc.ok_or_else(needs_time)?.hour()),
            };
        }
        check_index_name(&name).map_err(|reason| RenderError::InvalidName {
            name: name.clone(),
            reason,
        })?;
        Ok(name)
    }

    /// Checks that records of `topic` get a valid index name (with a sample time).
    pub fn check_renders(&self, topic: &str) -> Result<(), RenderError> {
        self.render(topic, Some(OffsetDateTime::UNIX_EPOCH))
            .map(|_| ())
    }

    /// The index pattern of `topic`'s indices, for the index template: the topic written out
    /// and every time part replaced by `*` (`{topic}-%Y.%m.%d` → `web_log-*.*.*`, simplified to
    /// `web_log-*`).
    ///
    /// The topic is written out rather than turned into `*`, so the template never matches
    /// indices that are not the transfer's (with `index = "{topic}"` a `*` would match every
    /// index in the cluster, and collide with other templates of the same priority).
    pub fn pattern(&self, topic: &str) -> String {
        let mut pattern = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => pattern.push_str(text),
                Part::Topic => pattern.extend(topic.chars().map(|c| c.to_ascii_lowercase())),
                Part::Year | Part::Month | Part::Day | Part::Hour => pattern.push('*'),
            }
        }
        simplify_pattern(&pattern)
    }

    /// The span of time whose records an index named `name` holds, when the name is exactly
    /// what this template renders for `topic` at some time: the topic written out, every time
    /// part the right number of digits, together a real date (a part used twice must agree).
    /// The span is the finest part's: the hour with `%H`, else the day with `%d`, else the
    /// month, else the year. `None` for any other name, and for templates without `%Y`
    /// (a name without a year names no period that ever ends).
    pub fn period(&self, topic: &str, name: &str) -> Option<Period> {
        let mut rest = name;
        let (mut year, mut month, mut day, mut hour) = (None, None, None, None);
        let take = |slot: &mut Option<u32>, rest: &mut &str, width: usize| -> Option<()> {
            let digits = rest.get(..width)?;
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let value: u32 = digits.parse().ok()?;
            if slot.is_some_and(|seen| seen != value) {
                return None;
            }
            *slot = Some(value);
            *rest = &rest[width..];
            Some(())
        };
        for part in &self.parts {
            match part {
                Part::Literal(text) => rest = rest.strip_prefix(text.as_str())?,
                Part::Topic => {
                    let lower: String = topic.chars().map(|c| c.to_ascii_lowercase()).collect();
                    rest = rest.strip_prefix(lower.as_str())?;
                }
                Part::Year => take(&mut year, &mut rest, 4)?,
                Part::Month => take(&mut month, &mut rest, 2)?,
                Part::Day => take(&mut day, &mut rest, 2)?,
                Part::Hour => take(&mut hour, &mut rest, 2)?,
            }
        }
        if !rest.is_empty() {
            return None;
        }
        let year = i32::try_from(year?).ok()?;
        // A finer part without the coarser ones (`%d` without `%m`) names no single period.
        if (day.is_some() && month.is_none()) || (hour.is_some() && day.is_none()) {
            return None;
        }
        let month_of = |m: u32| time::Month::try_from(u8::try_from(m).ok()?).ok();
        let start_month = month_of(month.unwrap_or(1))?;
        let date =
            time::Date::from_calendar_date(year, start_month, u8::try_from(day.unwrap_or(1)).ok()?)
                .ok()?;
        let start = date
            .with_hms(u8::try_from(hour.unwrap_or(0)).ok()?, 0, 0)
            .ok()?
            .assume_utc();
        let end = if hour.is_some() {
            start + time::Duration::HOUR
        } else if day.is_some() {
            start + time::Duration::DAY
        } else if month.is_some() {
            let (next_year, next_month) = match start_month {
                time::Month::December => (year + 1, time::Month::January),
                other => (year, other.next()),
            };
            time::Date::from_calendar_date(next_year, next_month, 1)
                .ok()?
                .midnight()
                .assume_utc()
        } else {
            time::Date::from_calendar_date(year + 1, time::Month::January, 1)
                .ok()?
                .midnight()
                .assume_utc()
        };
        Some(Period { start, end })
    }

    /// Whether an index named `name` could be one of the data indices of `topics`.
    pub fn could_match(&self, name: &str, topics: &[String]) -> bool {
        topics
            .iter()
            .any(|topic| wildcard_match(&self.pattern(topic), name))
    }
}

/// The span of record times one concrete index holds (see [`IndexNameTemplate::period`]):
/// `[start, end)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// The first instant whose records the index holds.
    pub start: OffsetDateTime,
    /// The first instant after it whose records go elsewhere.
    pub end: OffsetDateTime,
}

/// Collapses `*` followed only by separators and `*`s into one `*` when it ends the pattern
/// (`a-*.*.*` → `a-*`), and merges adjacent `*`s. The result matches a superset of the input.
fn simplify_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        if c == '*' && out.ends_with('*') {
            continue;
        }
        out.push(c);
    }
    if let Some(first_star) = out.find('*') {
        let tail = &out[first_star..];
        if tail.chars().all(|c| matches!(c, '*' | '.' | '-' | '_')) {
            out.truncate(first_star + 1);
        }
    }
    out
}

/// Matches `text` against a pattern whose only special character is `*` (any run of characters).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Checks Elasticsearch's rules for index names; the error says which rule is broken.
pub fn check_index_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name == "." || name == ".." {
        return Err("it cannot be . or ..".into());
    }
    if name.len() > 255 {
        return Err("it is longer than 255 bytes".into());
    }
    if name.starts_with(['-', '_', '+']) {
        return Err("it cannot start with -, _ or +".into());
    }
    if name.chars().any(|c| c.is_uppercase()) {
        return Err("it must be lowercase".into());
    }
    if let Some(c) = name.chars().find(|c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
        )
    }) {
        return Err(format!("it cannot contain {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn renders_topic_and_time_from_the_record_in_utc() {
        let template = IndexNameTemplate::parse("logs-{topic}-%Y.%m.%d-%H").unwrap();
        assert!(template.uses_time());
        let time = datetime!(2026-03-01 01:30 +02:00);
        assert_eq!(
            template.render("web_log", Some(time)).unwrap(),
            "logs-web_log-2026.02.28-23"
        );
    }

    #[test]
    fn topic_only_template_needs_no_time() {
        let template = IndexNameTemplate::parse("{topic}").unwrap();
        assert!(!template.uses_time());
        assert_eq!(template.render("Web_Log", None).unwrap(), "web_log");
        assert_eq!(template.pattern("web_log"), "web_log");
    }

    #[test]
    fn missing_time_and_invalid_names_are_errors() {
        let template = IndexNameTemplate::parse("{topic}-%Y").unwrap();
        assert!(matches!(
            template.render("t", None),
            Err(RenderError::NoTime(_))
        ));
        let template = IndexNameTemplate::parse("_{topic}").unwrap();
        assert!(matches!(
            template.render("t", None),
            Err(RenderError::InvalidName { .. })
        ));
    }

    #[test]
    fn percent_escape_and_parse_errors() {
        let template = IndexNameTemplate::parse("a%%b").unwrap();
        assert_eq!(template.render("t", None).unwrap(), "a%b");
        assert_eq!(
            IndexNameTemplate::parse("x-%j"),
            Err(TemplateError::UnsupportedTimePart("j".into()))
        );
        assert!(matches!(
            IndexNameTemplate::parse("{host}"),
            Err(TemplateError::UnsupportedPlaceholder(_))
        ));
        assert!(IndexNameTemplate::parse("x%").is_err());
        assert_eq!(IndexNameTemplate::parse(""), Err(TemplateError::Empty));
    }

    #[test]
    fn patterns_replace_time_parts_with_a_star() {
        let template = IndexNameTemplate::parse("{topic}-%Y.%m.%d").unwrap();
        assert_eq!(template.pattern("web_log"), "web_log-*");
        let template = IndexNameTemplate::parse("%Y.%m-{topic}").unwrap();
        assert_eq!(template.pattern("a"), "*.*-a");
        for (time, topic) in [
            (datetime!(2026-12-31 23:59 UTC), "web_log"),
            (datetime!(2024-02-29 00:00 UTC), "Other.Topic"),
        ] {
            let name = template.render(topic, Some(time)).unwrap();
            assert!(wildcard_match(&template.pattern(topic), &name), "{name}");
        }
    }

    #[test]
    fn periods_come_only_from_names_the_template_renders() {
        let daily = IndexNameTemplate::parse("{topic}-%Y.%m.%d").unwrap();
        let period = daily.period("Web_Log", "web_log-2020.02.29").unwrap();
        assert_eq!(period.start, datetime!(2020-02-29 00:00 UTC));
        assert_eq!(period.end, datetime!(2020-03-01 00:00 UTC));
        for name in [
            "web_log-2020.02.30",   // no such day
            "web_log-2020.2.29",    // digits missing
            "web_log-2020.02.29x",  // more after it
            "other-2020.02.29",     // another topic
            "web_log-2020.02.29-1", // a rollover's suffix
            "web_log-abcd.02.29",
            "web_log",
        ] {
            assert_eq!(daily.period("web_log", name), None, "{name}");
        }
        let hourly = IndexNameTemplate::parse("logs-{topic}-%Y.%m.%d-%H").unwrap();
        let period = hourly.period("a", "logs-a-2026.12.31-23").unwrap();
        assert_eq!(period.end, datetime!(2027-01-01 00:00 UTC));
        assert_eq!(hourly.period("a", "logs-a-2026.12.31-24"), None);
        let monthly = IndexNameTemplate::parse("{topic}-%Y-%m").unwrap();
        let period = monthly.period("a", "a-2026-12").unwrap();
        assert_eq!(period.end, datetime!(2027-01-01 00:00 UTC));
        let yearly = IndexNameTemplate::parse("{topic}-%Y").unwrap();
        assert_eq!(
            yearly.period("a", "a-2025").unwrap().end,
            datetime!(2026-01-01 00:00 UTC)
        );
        // No year: no period ever ends; a day without its month names no single day.
        assert_eq!(
            IndexNameTemplate::parse("{topic}")
                .unwrap()
                .period("a", "a"),
            None
        );
        let odd = IndexNameTemplate::parse("{topic}-%Y-%d").unwrap();
        assert_eq!(odd.period("a", "a-2025-01"), None);
        // A part written twice must agree.
        let twice = IndexNameTemplate::parse("%Y-{topic}-%Y.%m").unwrap();
        assert!(twice.period("a", "2025-a-2025.01").is_some());
        assert_eq!(twice.period("a", "2025-a-2024.01"), None);
    }

    #[test]
    fn every_rendered_name_has_the_period_of_its_time() {
        let template = IndexNameTemplate::parse("x-{topic}-%Y.%m.%d.%H").unwrap();
        let mut time = datetime!(2023-12-31 22:17 UTC);
        for _ in 0..100 {
            let name = template.render("t", Some(time)).unwrap();
            let period = template.period("t", &name).unwrap();
            assert!(period.start <= time && time < period.end, "{name}");
            time += time::Duration::minutes(37);
        }
    }

    #[test]
    fn wildcard_matching() {
        assert!(wildcard_match("a-*", "a-2026.01.01"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("*.*-a", "2026.01-a"));
        assert!(!wildcard_match("a-*", "b-1"));
        assert!(!wildcard_match("abc", "abcd"));
        assert!(wildcard_match("a*c*e", "abcde"));
    }

    #[test]
    fn index_name_rules() {
        assert!(check_index_name("logship-dlq").is_ok());
        assert!(check_index_name("Upper").is_err());
        assert!(check_index_name("a b").is_err());
        assert!(check_index_name("-a").is_err());
        assert!(check_index_name(&"a".repeat(256)).is_err());
        assert!(check_index_name("a:b").is_err());
    }
}
