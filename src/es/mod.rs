//! Elasticsearch for the transfer: index templates, `_bulk` and what its answers mean. (Index
//! names are configuration: [`crate::config::index_name`].)
//!
//! - [`template`] builds the index templates put at startup (data and dead-letter).
//! - [`bulk`] writes `create` actions and reads per-item answers.
//! - [`outcome`] decides, per item and per request, whether a record is done, retried or
//!   dead-lettered.
//! - [`disk`] reads the nodes' disks against the disk watermarks.
//! - [`retention`] says which of the transfer's indices expire when.
//! - [`rule_checks`] asks whether an alert rule's query and `group_by` fields are acceptable.
//! - [`client`] sends requests and reports what happened, deciding nothing.

pub(crate) mod bulk;
pub(crate) mod client;
pub mod disk;
pub(crate) mod outcome;
pub mod pin;
pub mod retention;
pub mod rule_checks;
pub(crate) mod template;

pub use client::{EsAuth, EsClient, EsError, EsSettings, SharedEs};
