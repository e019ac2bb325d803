//! Elasticsearch client side: index templates and `_bulk` with per-item outcomes.
