//! Retention durations: how long the transfer keeps what it wrote (`elasticsearch.retention`,
//! `elasticsearch.dlq_retention`, `influxdb.retention`).
//!
//! Written as a duration (`"30d"`, `"12h"`, `"2w"`: humantime's units) or `"forever"`. A
//! duration under one hour is refused: it is almost certainly a mistake (`"30m"` for thirty
//! months), and InfluxDB refuses retention policies shorter than an hour too.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The shortest retention accepted.
pub const MIN_RETENTION: Duration = Duration::from_secs(3600);

/// How long data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Deleted once it is this old.
    For(Duration),
    /// Never deleted by logship.
    Forever,
}

impl Retention {
    /// Parses `"forever"` or a duration of at least [`MIN_RETENTION`]; the error says which
    /// form is expected.
    pub fn parse(text: &str) -> Result<Retention, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("forever") {
            return Ok(Retention::Forever);
        }
        let duration = humantime::parse_duration(text).map_err(|e| {
            format!("{text:?} is not a retention (\"30d\", \"12h\", \"2w\" or \"forever\"): {e}")
        })?;
        if duration < MIN_RETENTION {
            return Err(format!(
                "{text:?} is shorter than an hour (write \"forever\" to keep everything)"
            ));
        }
        Ok(Retention::For(duration))
    }

    /// The duration, `None` for forever.
    pub fn duration(self) -> Option<Duration> {
        match self {
            Retention::For(duration) => Some(duration),
            Retention::Forever => None,
        }
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::For(duration) => write!(f, "{}", humantime::format_duration(*duration)),
            Retention::Forever => f.write_str("forever"),
        }
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Retention, D::Error> {
        let text = String::deserialize(deserializer)?;
        Retention::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_forever() {
        assert_eq!(
            Retention::parse("30d"),
            Ok(Retention::For(Duration::from_secs(30 * 86_400)))
        );
        assert_eq!(
            Retention::parse("12h"),
            Ok(Retention::For(Duration::from_secs(12 * 3600)))
        );
        assert_eq!(Retention::parse(" Forever "), Ok(Retention::Forever));
        assert_eq!(Retention::parse("30d").unwrap().to_string(), "30days");
        for bad in ["30", "thirty days", "30m", "", "-1d"] {
            assert!(Retention::parse(bad).is_err(), "{bad}");
        }
    }
}
