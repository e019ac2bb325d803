//! Delivering one batch to Elasticsearch until every record in it is done.
//!
//! A record is done when Elasticsearch answered 201 (created) or 409 (an earlier delivery of the
//! same `_id` created it), or when its dead-letter document was acknowledged. Only then is it
//! reported to the commit watermark. Everything else is retried with exponential backoff and
//! without limit: 429 and 5xx (per item or for the whole request), connection errors and
//! timeouts, and 401/403 — refused credentials are reported loudly and never counted as
//! delivered. A request refused as a whole with 400 or 413 is split in halves to find the
//! record at fault; that record alone is dead-lettered.
//!
//! Before each attempt, records of partitions revoked meanwhile are dropped: their next owner
//! consumes them again from the committed offset.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::backoff::BackoffPolicy;
use super::batch::Batch;
use super::dlq::{DeadLetter, Rejection};
use super::events::TransferEvents;
use super::watermark::Watermarks;
use crate::es::bulk::write_create;
use crate::es::outcome::{classify_request, ItemOutcome, RequestOutcome};
use crate::es::EsClient;

/// Longest error text carried into a log line.
const MAX_REASON: usize = 300;

/// Everything a bulk task needs; shared by all of them.
pub struct Delivery {
    es: EsClient,
    dlq_index: String,
    marks: Arc<Mutex<Watermarks>>,
    events: Arc<dyn TransferEvents>,
    backoff: BackoffPolicy,
}

/// Locks the watermarks, also after a panic elsewhere (the bookkeeping stays consistent: every
/// method leaves it valid before it could panic).
pub fn lock(marks: &Mutex<Watermarks>) -> std::sync::MutexGuard<'_, Watermarks> {
    marks
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Delivery {
    /// A delivery context.
    pub fn new(
        es: EsClient,
        dlq_index: String,
        marks: Arc<Mutex<Watermarks>>,
        events: Arc<dyn TransferEvents>,
        backoff: BackoffPolicy,
    ) -> Delivery {
        Delivery {
            es,
            dlq_index,
            marks,
            events,
            backoff,
        }
    }

    /// Delivers `batch`: returns once every record in it is done or belongs to a revoked
    /// partition. Never gives up otherwise (the caller bounds it at shutdown).
    pub async fn deliver(&self, batch: Batch) {
        let mut routable = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        for (i, item) in batch.items.iter().enumerate() {
            match &item.index {
                Ok(_) => routable.push(i),
                Err(reason) => rejected.push((
                    i,
                    Rejection {
                        error: reason.clone(),
                        error_type: None,
                        status: None,
                    },
                )),
            }
        }
        if !routable.is_empty() {
            self.index_documents(&batch, routable, &mut rejected).await;
        }
        if !rejected.is_empty() {
            self.dead_letter(&batch, rejected).await;
        }
    }

    async fn index_documents(
        &self,
        batch: &Batch,
        indices: Vec<usize>,
        rejected: &mut Vec<(usize, Rejection)>,
    ) {
        let mut queue = VecDeque::from([indices]);
        let mut backoff = self.backoff.start();
        while let Some(chunk) = queue.pop_front() {
            let mut chunk = chunk;
            self.retain_assigned(batch, &mut chunk, |i| *i);
            if chunk.is_empty() {
                continue;
            }
            let body = batch.body_for(&chunk);
            self.events.bulk_sent(chunk.len(), body.len());
            match self.es.bulk(body, chunk.len()).await {
                Ok(results) => {
                    let mut done = Vec::with_capacity(chunk.len());
                    let mut retry = Vec::new();
                    let (mut created, mut present) = (0u64, 0u64);
                    let mut retry_reason = None;
                    let mut refused = None;
                    for (&i, result) in chunk.iter().zip(&results) {
                        match result.outcome() {
                            ItemOutcome::Created => {
                                created += 1;
                                done.push(i);
                            }
                            ItemOutcome::AlreadyExists => {
                                present += 1;
                                done.push(i);
                            }
                            ItemOutcome::Unauthorized => {
                                refused.get_or_insert_with(|| (result.status, result.error_text()));
                                retry.push(i);
                            }
                            ItemOutcome::Retry => {
                                retry_reason.get_or_insert_with(|| {
                                    format!("status {}: {}", result.status, result.error_text())
                                });
                                retry.push(i);
                            }
                            ItemOutcome::Reject => rejected.push((
                                i,
                                Rejection {
                                    error: result.error_text(),
                                    error_type: result.error_type().map(str::to_string),
                                    status: Some(result.status),
                                },
                            )),
                        }
                    }
                    self.mark_done(batch, &done);
                    self.events.created(created);
                    self.events.already_present(present);
                    if let Some((status, detail)) = refused {
                        self.events.unauthorized(status, &shorten(&detail));
                    }
                    if retry.is_empty() {
                        backoff.reset();
                    } else {
                        let reason = retry_reason.unwrap_or_else(|| "unauthorized".into());
                        self.events.retrying(retry.len() as u64, &shorten(&reason));
                        tokio::time::sleep(backoff.next_delay()).await;
                        queue.push_back(retry);
                    }
                }
                Err(error) => match error.status().map(classify_request) {
                    Some(RequestOutcome::Split) if chunk.len() > 1 => {
                        let second = chunk.split_off(chunk.len() / 2);
                        queue.push_front(second);
                        queue.push_front(chunk);
                    }
                    Some(RequestOutcome::Split) => rejected.push((
                        chunk[0],
                        Rejection {
                            error: error.to_string(),
                            error_type: None,
                            status: error.status(),
                        },
                    )),
                    Some(RequestOutcome::Unauthorized) => {
                        self.events.unauthorized(
                            error.status().unwrap_or(0),
                            &shorten(&error.to_string()),
                        );
                        tokio::time::sleep(backoff.next_delay()).await;
                        queue.push_front(chunk);
                    }
                    _ => {
                        self.events
                            .retrying(chunk.len() as u64, &shorten(&error.to_string()));
                        tokio::time::sleep(backoff.next_delay()).await;
                        queue.push_front(chunk);
                    }
                },
            }
        }
    }

    /// Writes the dead-letter documents of `rejected` until all are acknowledged.
    async fn dead_letter(&self, batch: &Batch, rejected: Vec<(usize, Rejection)>) {
        let now = OffsetDateTime::now_utc();
        let mut pending = rejected;
        let mut backoff = self.backoff.start();
        loop {
            self.retain_assigned(batch, &mut pending, |(i, _)| *i);
            if pending.is_empty() {
                return;
            }
            let mut body = Vec::new();
            for (i, rejection) in &pending {
                let item = &batch.items[*i];
                let letter = DeadLetter::new(
                    batch.payload(*i),
                    rejection,
                    &item.topic,
                    item.partition,
                    item.offset,
                    item.index.as_deref().ok(),
                    &item.id,
                    now,
                );
                // A dead letter holds only strings and numbers: serializing it cannot fail.
                let _ = write_create(&mut body, &self.dlq_index, &item.id, &letter);
            }
            self.events.bulk_sent(pending.len(), body.len());
            let failure = match self.es.bulk(body, pending.len()).await {
                Ok(results) => {
                    let mut done = Vec::new();
                    let mut still = Vec::new();
                    let mut failure = None;
                    for ((i, rejection), result) in pending.into_iter().zip(&results) {
                        if result.outcome().is_done() {
                            done.push((i, rejection));
                        } else {
                            failure.get_or_insert_with(|| {
                                format!("status {}: {}", result.status, result.error_text())
                            });
                            still.push((i, rejection));
                        }
                    }
                    if !done.is_empty() {
                        let indices: Vec<usize> = done.iter().map(|(i, _)| *i).collect();
                        self.mark_done(batch, &indices);
                        let reason = done[0].1.error_type.as_deref().unwrap_or(&done[0].1.error);
                        self.events
                            .dead_lettered(done.len() as u64, &shorten(reason));
                    }
                    pending = still;
                    failure
                }
                Err(error) => Some(error.to_string()),
            };
            if let Some(failure) = failure {
                self.events
                    .dead_letter_failed(pending.len() as u64, &shorten(&failure));
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }

    /// Keeps the entries whose item's partition is still assigned in the epoch it was received
    /// in; `item` tells which item an entry is about.
    fn retain_assigned<T>(&self, batch: &Batch, entries: &mut Vec<T>, item: impl Fn(&T) -> usize) {
        let before = entries.len();
        {
            let marks = lock(&self.marks);
            entries.retain(|entry| {
                let item = &batch.items[item(entry)];
                marks.is_current(&item.topic, item.partition, item.epoch)
            });
        }
        if entries.len() < before {
            self.events.revoked_dropped((before - entries.len()) as u64);
        }
    }

    fn mark_done(&self, batch: &Batch, indices: &[usize]) {
        if indices.is_empty() {
            return;
        }
        let stale = {
            let mut marks = lock(&self.marks);
            indices
                .iter()
                .filter(|&&i| {
                    let item = &batch.items[i];
                    !marks.done(&item.topic, item.partition, item.epoch, item.offset)
                })
                .count()
        };
        if stale > 0 {
            self.events.revoked_dropped(stale as u64);
        }
    }
}

fn shorten(text: &str) -> String {
    if text.len() <= MAX_REASON {
        return text.to_string();
    }
    let mut end = MAX_REASON;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
