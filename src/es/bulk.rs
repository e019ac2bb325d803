//! The `_bulk` wire format: writing `create` actions and reading the per-item answers.
//!
//! Every document is sent with the `create` action and its deterministic `_id`, so a record
//! delivered twice (replay, rebalance, retry after a timeout) is answered 409 the second time
//! and never overwrites or doubles the first. Items in the answer come in request order, which is
//! how answers are matched back to records.

use serde::{Deserialize, Serialize};

use super::outcome::{classify_item, ItemOutcome};

/// Appends one `create` action line for `index`/`id` and the document `doc` (as one line of
/// JSON) to a `_bulk` body. On error the body is left as it was.
pub fn write_create<T: Serialize + ?Sized>(
    body: &mut Vec<u8>,
    index: &str,
    id: &str,
    doc: &T,
) -> Result<(), serde_json::Error> {
    let start = body.len();
    let result = write_lines(body, index, id, doc);
    if result.is_err() {
        body.truncate(start);
    }
    result
}

fn write_lines<T: Serialize + ?Sized>(
    body: &mut Vec<u8>,
    index: &str,
    id: &str,
    doc: &T,
) -> Result<(), serde_json::Error> {
    body.extend_from_slice(b"{\"create\":{\"_index\":");
    serde_json::to_writer(&mut *body, index)?;
    body.extend_from_slice(b",\"_id\":");
    serde_json::to_writer(&mut *body, id)?;
    body.extend_from_slice(b"}}\n");
    // serde_json writes no raw newline: strings escape it.
    serde_json::to_writer(&mut *body, doc)?;
    body.push(b'\n');
    Ok(())
}

/// Elasticsearch's answer for one item of a `_bulk` request.
#[derive(Debug, Clone, Deserialize)]
pub struct BulkItemResult {
    /// HTTP status of this item.
    pub status: u16,
    /// The error object, when the item failed.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

impl BulkItemResult {
    /// `error.type`, if the item failed.
    pub fn error_type(&self) -> Option<&str> {
        self.error.as_ref()?.get("type")?.as_str()
    }

    /// What this answer means for the record (see [`super::outcome`]).
    pub fn outcome(&self) -> ItemOutcome {
        classify_item(self.status, self.error_type())
    }

    /// A one-line description of the error for logs and the dead-letter index.
    pub fn error_text(&self) -> String {
        match &self.error {
            Some(error) => error.to_string(),
            None => format!("status {}", self.status),
        }
    }
}

#[derive(Deserialize)]
struct BulkAnswer {
    #[serde(default)]
    items: Vec<ItemWrapper>,
}

#[derive(Deserialize)]
struct ItemWrapper {
    #[serde(alias = "index", alias = "update", alias = "delete")]
    create: BulkItemResult,
}

/// Why a `_bulk` answer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BulkParseError {
    /// The body is not the JSON we expect.
    #[error("unreadable _bulk answer: {0}")]
    Json(#[from] serde_json::Error),
    /// The answer does not have one item per document sent.
    #[error("_bulk answer has {got} items for {sent} documents")]
    ItemCount {
        /// Items in the answer.
        got: usize,
        /// Documents sent.
        sent: usize,
    },
}

/// Parses a `_bulk` answer for a request of `sent` documents.
pub fn parse_answer(body: &[u8], sent: usize) -> Result<Vec<BulkItemResult>, BulkParseError> {
    let answer: BulkAnswer = serde_json::from_slice(body)?;
    if answer.items.len() != sent {
        return Err(BulkParseError::ItemCount {
            got: answer.items.len(),
            sent,
        });
    }
    Ok(answer.items.into_iter().map(|item| item.create).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_lines_escape_index_and_id() {
        let mut body = Vec::new();
        let doc = serde_json::json!({"message": "x\ny"});
        write_create(&mut body, "web_log", "a\"b", &doc).unwrap();
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let action: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(action["create"]["_id"], "a\"b");
        assert_eq!(action["create"]["_index"], "web_log");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn answers_are_parsed_in_order_with_outcomes() {
        let answer = br#"{"errors":true,"items":[
            {"create":{"_index":"i","_id":"1","status":201}},
            {"create":{"_index":"i","_id":"2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
            {"create":{"_index":"i","_id":"3","status":400,"error":{"type":"document_parsing_exception","reason":"bad offset"}}},
            {"create":{"_index":"i","_id":"4","status":429,"error":{"type":"es_rejected_execution_exception"}}}
        ]}"#;
        let items = parse_answer(answer, 4).unwrap();
        let outcomes: Vec<ItemOutcome> = items.iter().map(|i| i.outcome()).collect();
        assert_eq!(
            outcomes,
            vec![
                ItemOutcome::Created,
                ItemOutcome::AlreadyExists,
                ItemOutcome::Reject,
                ItemOutcome::Retry
            ]
        );
        assert!(items[2].error_text().contains("bad offset"));
    }

    #[test]
    fn item_count_mismatch_is_an_error() {
        let answer = br#"{"errors":false,"items":[{"create":{"status":201}}]}"#;
        assert!(matches!(
            parse_answer(answer, 2),
            Err(BulkParseError::ItemCount { got: 1, sent: 2 })
        ));
        assert!(parse_answer(b"not json", 1).is_err());
    }
}
