//! What a Kafka record says about itself in its headers: which kind of content it holds and
//! which version of the format it is written in.
//!
//! Format version 1 (every record the agent writes since it was introduced carries
//! `logship-format: 1`):
//! - a **lines** record (no `logship-kind` header) holds NDJSON: one JSON
//!   [`LineRecord`](super::LineRecord) per line, joined by [`super::ndjson`];
//! - a **metrics** record (`logship-kind: metrics`) holds InfluxDB line protocol
//!   ([`crate::host_metrics`]).
//!
//! A record without `logship-format` was written by an agent older than the header, or by
//! another producer: the transfer reads it as it always did (a value that starts with `{` and
//! holds a newline is tried as NDJSON, anything else is one document). A record of a later
//! version, or of a kind this build does not know, is dead-lettered with the reason, never
//! guessed at.

/// The header naming what a record holds when it is not log lines.
pub const KIND_HEADER: &str = "logship-kind";
/// The header giving the version of the record format.
pub const FORMAT_HEADER: &str = "logship-format";
/// The version of the record format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// [`FORMAT_VERSION`] as the header's value.
const FORMAT_VALUE: &str = "1";
/// A dead-lettered record's header: why it was dead-lettered.
pub const ERROR_HEADER: &str = "logship-error";
/// A dead-lettered record's header: where it came from (`topic/partition/offset`).
pub const SOURCE_HEADER: &str = "logship-source";

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Log lines (NDJSON of line records, or a foreign producer's value).
    Lines,
    /// Host metrics as InfluxDB line protocol.
    Metrics,
}

impl Kind {
    /// The value of [`KIND_HEADER`] for this kind, `None` when the header is left out.
    pub fn header_value(self) -> Option<&'static str> {
        match self {
            Kind::Lines => None,
            Kind::Metrics => Some("metrics"),
        }
    }

    /// The headers a record of this kind is written with, in order.
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Lines => &[(FORMAT_HEADER, FORMAT_VALUE)],
            Kind::Metrics => &[(FORMAT_HEADER, FORMAT_VALUE), (KIND_HEADER, "metrics")],
        }
    }
}

/// What a record's headers say it is, as [`read`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// A record of this build's format: its content follows the contract exactly.
    Current(Kind),
    /// A record without a format header (older agent, another producer).
    Legacy(Kind),
}

impl Envelope {
    /// The kind of content, whatever the version.
    pub fn kind(self) -> Kind {
        match self {
            Envelope::Current(kind) | Envelope::Legacy(kind) => kind,
        }
    }
}

/// Why a record cannot be read by this build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The format header names a version this build does not read.
    #[error("record format {0:?} is not one this transfer reads (it reads up to {FORMAT_VERSION}); upgrade the transfer")]
    Version(String),
    /// The kind header names a kind this build does not know.
    #[error(
        "record kind {0:?} is not one this transfer knows (lines, metrics); upgrade the transfer"
    )]
    Kind(String),
}

/// Reads a record's headers, given as `(key, value)` pairs (a header without a value has
/// `None`). Headers other than logship's are ignored; of a repeated header the last counts.
pub fn read<'a>(
    headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
) -> Result<Envelope, EnvelopeError> {
    let mut kind = Kind::Lines;
    let mut version: Option<&[u8]> = None;
    for (key, value) in headers {
        if key == KIND_HEADER {
            kind = match value {
                Some(b"metrics") => Kind::Metrics,
                other => {
                    return Err(EnvelopeError::Kind(
                        String::from_utf8_lossy(other.unwrap_or_default()).into_owned(),
                    ))
                }
            };
        } else if key == FORMAT_HEADER {
            version = Some(value.unwrap_or_default());
        }
    }
    match version {
        None => Ok(Envelope::Legacy(kind)),
        Some(v) if v == FORMAT_VALUE.as_bytes() => Ok(Envelope::Current(kind)),
        Some(other) => Err(EnvelopeError::Version(
            String::from_utf8_lossy(other).into_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_pairs(pairs: &[(&'static str, &'static str)]) -> Result<Envelope, EnvelopeError> {
        read(pairs.iter().map(|(k, v)| (*k, Some(v.as_bytes()))))
    }

    #[test]
    fn what_is_written_is_read_back_as_current() {
        for kind in [Kind::Lines, Kind::Metrics] {
            assert_eq!(read_pairs(kind.headers()), Ok(Envelope::Current(kind)));
            assert_eq!(
                kind.headers()
                    .iter()
                    .find(|(k, _)| *k == KIND_HEADER)
                    .map(|(_, v)| *v),
                kind.header_value()
            );
        }
    }

    #[test]
    fn a_record_without_a_format_header_is_legacy() {
        assert_eq!(read_pairs(&[]), Ok(Envelope::Legacy(Kind::Lines)));
        assert_eq!(
            read_pairs(&[(KIND_HEADER, "metrics"), ("trace-id", "x")]),
            Ok(Envelope::Legacy(Kind::Metrics))
        );
    }

    #[test]
    fn a_later_version_or_an_unknown_kind_is_refused_with_the_reason() {
        let later = read_pairs(&[(FORMAT_HEADER, "2")]).unwrap_err();
        assert_eq!(later, EnvelopeError::Version("2".into()));
        assert!(later.to_string().contains("reads up to 1"), "{later}");
        let unknown = read_pairs(&[(FORMAT_HEADER, "1"), (KIND_HEADER, "traces")]).unwrap_err();
        assert_eq!(unknown, EnvelopeError::Kind("traces".into()));
        assert_eq!(
            read([(KIND_HEADER, None)]),
            Err(EnvelopeError::Kind(String::new()))
        );
    }
}
