//! The logship WAL (placeholder).
