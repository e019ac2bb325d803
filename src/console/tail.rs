//! Live tail: new lines matching a query, pushed to browsers as they are indexed.
//!
//! One poller per distinct query, shared by all its clients: 100 clients tailing the same query
//! cost one Elasticsearch search a second, not 100. A poller asks for the lines of the last
//! [`LOOKBACK`] (a line is searchable about a second after it was read, and its `@timestamp` is
//! its read time, so new lines can carry a time a little in the past), and passes on those it
//! has not passed on before. It stops when its last client leaves.
//!
//! Each client has a buffer of [`CLIENT_BUFFER`] events (a `tokio::sync::broadcast` channel): a
//! client that falls that far behind is sent a `dropped` event and disconnected, never buffered
//! without limit. The tail is a view: when more than [`PER_POLL`] lines match within the lookback
//! it shows the newest and says so (`overflow`); the search is what is exact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::broadcast;

use super::query;
use crate::es::client::SharedEs;

/// How far back each poll looks for lines not yet passed on.
pub const LOOKBACK: Duration = Duration::from_secs(30);
/// How often a poller asks Elasticsearch.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Events a client may be behind before it is dropped.
pub const CLIENT_BUFFER: usize = 2000;
/// Lines asked for per poll.
pub const PER_POLL: usize = 1000;

/// What a tail client receives.
#[derive(Debug, Clone)]
pub enum TailEvent {
    /// A new line (the API's hit JSON).
    Line(Arc<Value>),
    /// More lines match in the lookback window than one poll fetches: the tail shows the
    /// newest [`PER_POLL`] and may miss others (`matching` is how many match).
    Overflow {
        /// Lines matching in the window.
        matching: u64,
    },
    /// Elasticsearch could not be asked; the poller keeps trying.
    Error(String),
}

/// The pollers, by query.
pub struct Tails {
    es: SharedEs,
    indices: Arc<Vec<String>>,
    guard: Arc<Value>,
    feeds: Mutex<HashMap<String, broadcast::Sender<TailEvent>>>,
}

impl Tails {
    /// No poller yet; `guard` restricts every poll (see [`query::data_guard`]).
    pub fn new(es: SharedEs, indices: Arc<Vec<String>>, guard: Arc<Value>) -> Tails {
        Tails {
            es,
            indices,
            guard,
            feeds: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<TailEvent>>> {
        // The map holds senders only; a panic elsewhere cannot leave it half-updated.
        crate::sync::lock(&self.feeds)
    }

    /// Subscribes to the lines matching `q` from now on, starting its poller if there is none.
    pub fn subscribe(self: &Arc<Self>, q: &str) -> broadcast::Receiver<TailEvent> {
        let mut feeds = self.lock();
        if let Some(sender) = feeds.get(q) {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(CLIENT_BUFFER);
        feeds.insert(q.to_string(), sender.clone());
        let tails = Arc::clone(self);
        let q = q.to_string();
        tokio::spawn(async move { tails.poll(q, sender).await });
        receiver
    }

    /// The body of one poll: the lines matching `q` since `since_ms`, oldest first.
    pub fn poll_body(q: &str, since_ms: i64) -> Value {
        let text = if q.trim().is_empty() {
            json!({"match_all": {}})
        } else {
            json!({"query_string": {"query": q, "default_field": "message"}})
        };
        json!({
            "size": PER_POLL,
            "track_total_hits": true,
            "query": {"bool": {
                "must": [text],
                "filter": [{"range": {"@timestamp": {"gte": since_ms, "format": "epoch_millis"}}}]
            }},
            "sort": [
                {"@timestamp": {"order": "desc", "unmapped_type": "date"}},
                {"file_id": {"order": "desc", "unmapped_type": "keyword"}},
                {"offset": {"order": "desc", "unmapped_type": "long"}}
            ]
        })
    }

    async fn poll(self: Arc<Self>, q: String, sender: broadcast::Sender<TailEvent>) {
        let lookback = LOOKBACK.as_millis() as i64;
        // Ids passed on (or present at the start), with their time, for the lookback window.
        let mut seen: HashMap<String, i64> = HashMap::new();
        let mut first = true;
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if sender.receiver_count() == 0 {
                let mut feeds = self.lock();
                // A client may have subscribed meanwhile through the map: look again under the lock.
                if sender.receiver_count() == 0 {
                    feeds.remove(&q);
                    return;
                }
            }
            let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
            let since = now_ms - lookback;
            let indices: Vec<&str> = self.indices.iter().map(String::as_str).collect();
            let body = query::guarded(&Self::poll_body(&q, since), &self.guard);
            let answer = match self.es.get().search(&indices, &body).await {
                Ok(answer) => answer,
                Err(error) => {
                    let _ = sender.send(TailEvent::Error(error.to_string()));
                    continue;
                }
            };
            let hits = answer["hits"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = answer["hits"]["total"]["value"].as_u64().unwrap_or(0);
            let mut fresh = Vec::new();
            for hit in &hits {
                let Some(id) = hit["_id"].as_str() else {
                    continue;
                };
                if seen.contains_key(id) {
                    continue;
                }
                let at = hit["sort"][0].as_i64().unwrap_or(now_ms);
                seen.insert(id.to_string(), at);
                fresh.push(hit);
            }
            seen.retain(|_, at| *at >= since);
            if first {
                // Only what arrives after the client came is news.
                first = false;
                continue;
            }
            if total > hits.len() as u64 {
                let _ = sender.send(TailEvent::Overflow { matching: total });
            }
            // Oldest first on the wire.
            for hit in fresh.into_iter().rev() {
                let _ = sender.send(TailEvent::Line(Arc::new(query::hit_json(hit))));
            }
        }
    }
}
