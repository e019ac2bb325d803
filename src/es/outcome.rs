//! What a `_bulk` answer means for each record: done, retry, or dead-letter.
//!
//! The rules (the whole point of this module is that nothing is counted as delivered unless
//! Elasticsearch holds the document):
//!
//! | status                                   | item outcome                               |
//! |------------------------------------------|--------------------------------------------|
//! | 200, 201                                 | [`ItemOutcome::Created`]                   |
//! | 409 (`create` of an existing `_id`)      | [`ItemOutcome::AlreadyExists`] — also done |
//! | 401, 403                                 | [`ItemOutcome::Unauthorized`] — retried, never done |
//! | 404, 408, 429, 5xx, closed/blocked index | [`ItemOutcome::Retry`]                     |
//! | other 4xx (mapping, parsing, bad name)   | [`ItemOutcome::Reject`] — dead-letter      |
//! | anything else                            | [`ItemOutcome::Retry`]                     |
//!
//! A 404 (`index_not_found_exception`: automatic index creation is off) and a closed or
//! read-only index are problems of the cluster, not of the record: dead-lettering every record
//! until an operator notices would empty the data index into the DLQ, so they are retried.

/// What to do with one record after Elasticsearch answered for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemOutcome {
    /// The document was created.
    Created,
    /// A document with this `_id` already exists in this index: an earlier delivery of the same
    /// record. Done.
    AlreadyExists,
    /// Elasticsearch refused our credentials or permissions. Not delivered; retried with backoff
    /// and reported loudly.
    Unauthorized,
    /// A transient problem (overload, unavailable shard, missing or closed index): retried with
    /// backoff.
    Retry,
    /// Elasticsearch will never accept this document as it is: it goes to the dead-letter index.
    Reject,
}

impl ItemOutcome {
    /// Whether the record is delivered (counts toward the commit watermark).
    pub fn is_done(self) -> bool {
        matches!(self, ItemOutcome::Created | ItemOutcome::AlreadyExists)
    }
}

/// Error types Elasticsearch reports with a 4xx status that are nevertheless not the record's
/// fault and go away once the cluster is fixed.
const RETRYABLE_ERROR_TYPES: &[&str] = &[
    "index_closed_exception",
    "cluster_block_exception",
    "index_not_found_exception",
    "es_rejected_execution_exception",
    "circuit_breaking_exception",
    "unavailable_shards_exception",
    "no_shard_available_action_exception",
    "process_cluster_event_timeout_exception",
];

/// Classifies one `_bulk` item from its HTTP status and its `error.type` (if any).
pub fn classify_item(status: u16, error_type: Option<&str>) -> ItemOutcome {
    match status {
        200 | 201 => ItemOutcome::Created,
        409 => ItemOutcome::AlreadyExists,
        401 => ItemOutcome::Unauthorized,
        // A read-only index answers 403 with cluster_block_exception: retry, but it is not an
        // authorization problem.
        403 if error_type == Some("cluster_block_exception") => ItemOutcome::Retry,
        403 => ItemOutcome::Unauthorized,
        404 | 408 | 429 | 500..=599 => ItemOutcome::Retry,
        400..=499 => match error_type {
            Some(kind) if RETRYABLE_ERROR_TYPES.contains(&kind) => ItemOutcome::Retry,
            _ => ItemOutcome::Reject,
        },
        _ => ItemOutcome::Retry,
    }
}

/// What to do with a whole `_bulk` request after its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The request was processed: look at each item.
    Items,
    /// Credentials or permissions refused: retry everything with backoff, loudly.
    Unauthorized,
    /// Transient: retry everything with backoff.
    Retry,
    /// The request as a whole cannot be accepted (too large, or unparseable): split it to find
    /// the item at fault; a single item answered this way is dead-lettered.
    Split,
}

/// Classifies a `_bulk` request from its HTTP status.
pub fn classify_request(status: u16) -> RequestOutcome {
    match status {
        200..=299 => RequestOutcome::Items,
        401 | 403 => RequestOutcome::Unauthorized,
        400 | 413 => RequestOutcome::Split,
        _ => RequestOutcome::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_and_conflict_are_done() {
        assert_eq!(classify_item(201, None), ItemOutcome::Created);
        assert_eq!(classify_item(200, None), ItemOutcome::Created);
        let conflict = classify_item(409, Some("version_conflict_engine_exception"));
        assert_eq!(conflict, ItemOutcome::AlreadyExists);
        assert!(conflict.is_done());
    }

    #[test]
    fn auth_failures_are_never_done() {
        for status in [401, 403] {
            let outcome = classify_item(status, Some("security_exception"));
            assert_eq!(outcome, ItemOutcome::Unauthorized);
            assert!(!outcome.is_done());
        }
        assert_eq!(
            classify_item(403, Some("cluster_block_exception")),
            ItemOutcome::Retry
        );
    }

    #[test]
    fn overload_and_server_errors_are_retried() {
        for status in [429, 500, 502, 503, 504, 408, 404] {
            assert_eq!(classify_item(status, None), ItemOutcome::Retry, "{status}");
        }
        assert_eq!(
            classify_item(429, Some("es_rejected_execution_exception")),
            ItemOutcome::Retry
        );
        assert_eq!(
            classify_item(400, Some("index_closed_exception")),
            ItemOutcome::Retry
        );
    }

    #[test]
    fn record_errors_go_to_the_dead_letter_index() {
        for kind in [
            "document_parsing_exception",
            "mapper_parsing_exception",
            "illegal_argument_exception",
            "invalid_index_name_exception",
        ] {
            let outcome = classify_item(400, Some(kind));
            assert_eq!(outcome, ItemOutcome::Reject, "{kind}");
            assert!(!outcome.is_done());
        }
        assert_eq!(classify_item(400, None), ItemOutcome::Reject);
    }

    #[test]
    fn unexpected_statuses_are_retried_not_dropped() {
        assert_eq!(classify_item(302, None), ItemOutcome::Retry);
        assert_eq!(classify_item(0, None), ItemOutcome::Retry);
    }

    #[test]
    fn request_statuses() {
        assert_eq!(classify_request(200), RequestOutcome::Items);
        assert_eq!(classify_request(401), RequestOutcome::Unauthorized);
        assert_eq!(classify_request(403), RequestOutcome::Unauthorized);
        assert_eq!(classify_request(413), RequestOutcome::Split);
        assert_eq!(classify_request(400), RequestOutcome::Split);
        for status in [404, 429, 500, 503, 301] {
            assert_eq!(classify_request(status), RequestOutcome::Retry, "{status}");
        }
    }
}
