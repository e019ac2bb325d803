//! Alerts (issue 30): rules over the indexed lines, the fleet and host metrics, evaluated only
//! on complete windows and notified once per episode.
//!
//! This first step holds the rule contract ([`rule`]): what a rule is and what makes one
//! refused, shared by everything that will read or write one. The evaluator, its state in etcd
//! and the receivers come next.

pub mod rule;
