//! What logship tells operators about itself: Prometheus metrics, health and (agent) status,
//! served over HTTP on `metrics_addr`.
//!
//! - [`names`]: every metric's name, unit and help text, in one place;
//! - [`health`]: conditions that make `/health` answer 503 once they last longer than a grace;
//! - [`server`]: the HTTP endpoint (`/metrics`, `/health`, and `/status` where a role has one);
//! - [`throttle`]: repeating log lines thinned out to one per interval.
//!
//! Metrics are recorded through the `metrics` facade from wherever the event happens; without an
//! installed recorder (no `metrics_addr`, unit tests) recording is a no-op. Nothing here touches
//! the data path's durability: a failing endpoint never stops collecting or shipping.

pub(crate) mod health;
pub(crate) mod names;
pub(crate) mod server;
pub(crate) mod throttle;

pub use health::Health;
pub use server::{serve, Endpoint, StatusSource};
pub use throttle::Throttle;
