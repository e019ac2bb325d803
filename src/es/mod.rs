//! Elasticsearch for the transfer: index names, index templates, `_bulk` and what its answers
//! mean.
//!
//! - [`index_name`] renders `elasticsearch.index` templates from a record's own time.
//! - [`template`] builds the index templates put at startup (data and dead-letter).
//! - [`bulk`] writes `create` actions and reads per-item answers.
//! - [`outcome`] decides, per item and per request, whether a record is done, retried or
//!   dead-lettered.
//! - [`client`] sends requests and reports what happened, deciding nothing.

pub mod bulk;
pub mod client;
pub mod index_name;
pub mod outcome;
pub mod template;

pub use client::{EsClient, EsError, EsSettings};
