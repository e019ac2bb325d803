//! The dead-letter document: what is kept of a record Elasticsearch will never accept.
//!
//! It holds the original Kafka value (as a string; also as base64 when it is not valid UTF-8,
//! so no byte is lost), the error, and where the record came from (topic, partition, offset,
//! target index, `_id`). Its `_id` is the record's `_id`, written with `create`, so a record
//! dead-lettered twice (after a redelivery) is kept once. A record counts as done only once
//! its dead-letter document is acknowledged.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Original values longer than this are cut in the dead-letter document (flagged
/// `record_truncated`, with the full length in `record_bytes`), so a record rejected for being
/// too large cannot also block its dead-lettering.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Why a record is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The error (Elasticsearch's error object as JSON, or the transfer's own reason).
    pub error: String,
    /// Elasticsearch's `error.type`, if it came from Elasticsearch.
    pub error_type: Option<String>,
    /// The HTTP status, if it came from Elasticsearch.
    pub status: Option<u16>,
}

/// A dead-letter document.
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    /// When the record was dead-lettered.
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// The original value, lossy UTF-8.
    pub record: Cow<'a, str>,
    /// The original value in base64, when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_base64: Option<String>,
    /// Length of the original value in bytes.
    pub record_bytes: usize,
    /// The value was longer than [`MAX_RECORD_BYTES`] and is cut.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub record_truncated: bool,
    /// The error.
    pub error: &'a str,
    /// Elasticsearch's error type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<&'a str>,
    /// HTTP status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Kafka topic.
    pub topic: &'a str,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
    /// The data index the record was meant for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<&'a str>,
    /// The record's `_id`.
    pub id: &'a str,
}

/// Where a dead-lettered record came from and where it was going.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Kafka topic.
    pub topic: &'a str,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
    /// The data index the record was meant for, if one could be named.
    pub index: Option<&'a str>,
    /// The record's `_id`.
    pub id: &'a str,
}

impl<'a> DeadLetter<'a> {
    /// The dead-letter document for a record from `origin`, refused for `rejection`.
    pub fn new(
        payload: &'a [u8],
        rejection: &'a Rejection,
        origin: Origin<'a>,
        now: OffsetDateTime,
    ) -> DeadLetter<'a> {
        let Origin {
            topic,
            partition,
            offset,
            index,
            id,
        } = origin;
        let truncated = payload.len() > MAX_RECORD_BYTES;
        let kept = &payload[..payload.len().min(MAX_RECORD_BYTES)];
        let record = String::from_utf8_lossy(kept);
        let record_base64 = match record {
            Cow::Owned(_) => Some(STANDARD.encode(kept)),
            Cow::Borrowed(_) => None,
        };
        DeadLetter {
            timestamp: now
                .format(&Rfc3339)
                .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string()),
            record,
            record_base64,
            record_bytes: payload.len(),
            record_truncated: truncated,
            error: &rejection.error,
            error_type: rejection.error_type.as_deref(),
            status: rejection.status,
            topic,
            partition,
            offset,
            index,
            id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_record_the_error_and_the_coordinates() {
        let rejection = Rejection {
            error: "{\"type\":\"document_parsing_exception\"}".into(),
            error_type: Some("document_parsing_exception".into()),
            status: Some(400),
        };
        let letter = DeadLetter::new(
            b"{\"offset\":\"x\"}",
            &rejection,
            Origin {
                topic: "t",
                partition: 1,
                offset: 9,
                index: Some("t"),
                id: "id1",
            },
            OffsetDateTime::UNIX_EPOCH,
        );
        let json = serde_json::to_value(&letter).unwrap();
        assert_eq!(json["record"], "{\"offset\":\"x\"}");
        assert!(json.get("record_base64").is_none());
        assert_eq!(json["error_type"], "document_parsing_exception");
        assert_eq!(json["offset"], 9);
        assert_eq!(json["status"], 400);
        assert_eq!(json["@timestamp"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn invalid_utf8_is_kept_in_base64_and_huge_records_are_cut() {
        let rejection = Rejection {
            error: "e".into(),
            error_type: None,
            status: None,
        };
        let letter = DeadLetter::new(
            b"\xff\xfe",
            &rejection,
            Origin {
                topic: "t",
                partition: 0,
                offset: 0,
                index: None,
                id: "i",
            },
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(letter.record_base64.as_deref(), Some("//4="));
        let huge = vec![b'a'; MAX_RECORD_BYTES + 10];
        let letter = DeadLetter::new(
            &huge,
            &rejection,
            Origin {
                topic: "t",
                partition: 0,
                offset: 0,
                index: None,
                id: "i",
            },
            OffsetDateTime::UNIX_EPOCH,
        );
        assert!(letter.record_truncated);
        assert_eq!(letter.record.len(), MAX_RECORD_BYTES);
        assert_eq!(letter.record_bytes, MAX_RECORD_BYTES + 10);
    }
}
