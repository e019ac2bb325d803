//! The value stored at `{prefix}/agents/{host}/collect`: a JSON array of collect entries, the
//! same shape as the agent file's `[[collect]]`, parsed and validated here once.
//!
//! Validation is the file's ([`validate_collect_entry`]) plus, on the agent, a root check: the
//! literal part of every glob must lie under one of `etcd.allowed_paths`, so whoever can write
//! to etcd cannot make the agent ship arbitrary files (`/etc/shadow`).

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::{validate_collect_entry, CollectEntry};

/// The collect entries accepted from etcd, as the watcher publishes them (the agent reads them
/// through its paths provider, between reading rounds). Each publication bumps a generation
/// number, so a reader rebuilds its file discovery only when something changed. Starts empty
/// at generation 0.
#[derive(Debug, Clone, Default)]
pub struct CentralEntries {
    inner: Arc<Mutex<(u64, Vec<CollectEntry>)>>,
}

impl CentralEntries {
    /// Replaces the entries (the whole list: an entry left out is no longer collected).
    pub fn publish(&self, entries: Vec<CollectEntry>) {
        let mut guard = crate::sync::lock(&self.inner);
        guard.0 += 1;
        guard.1 = entries;
    }

    /// The entries and their generation, if the generation is not `seen`.
    pub fn changed_since(&self, seen: u64) -> Option<(u64, Vec<CollectEntry>)> {
        let guard = crate::sync::lock(&self.inner);
        (guard.0 != seen).then(|| (guard.0, guard.1.clone()))
    }

    /// The generation of the current entries (0 until the first publication).
    pub fn generation(&self) -> u64 {
        crate::sync::lock(&self.inner).0
    }

    /// The current entries.
    pub fn current(&self) -> Vec<CollectEntry> {
        let guard = crate::sync::lock(&self.inner);
        guard.1.clone()
    }
}

/// Why a value is refused; the message names the entry (by index, and path when known).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntriesError {
    /// Not a JSON array at all.
    #[error("not a JSON array of collect entries: {0}")]
    Json(String),
    /// One entry is malformed or not allowed.
    #[error("entry {index}{}: {reason}", path.as_deref().map(|p| format!(" ({p:?})")).unwrap_or_default())]
    Entry {
        /// Position in the array, from 0.
        index: usize,
        /// The entry's `path`, if it has one.
        path: Option<String>,
        /// What is wrong.
        reason: String,
    },
}

/// Parses and validates a JSON array of entries (what `logship ctl collect set` accepts).
pub fn parse_entries(json: &[u8]) -> Result<Vec<CollectEntry>, EntriesError> {
    let values: Vec<serde_json::Value> =
        serde_json::from_slice(json).map_err(|e| EntriesError::Json(e.to_string()))?;
    let mut entries = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        let path = value
            .get("path")
            .and_then(|p| p.as_str())
            .map(str::to_string);
        let entry: CollectEntry =
            serde_json::from_value(value).map_err(|e| EntriesError::Entry {
                index,
                path: path.clone(),
                reason: e.to_string(),
            })?;
        validate_collect_entry(&entry).map_err(|reason| EntriesError::Entry {
            index,
            path: path.clone(),
            reason,
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

/// [`parse_entries`], then refuses any entry whose glob is not under one of `allowed_roots`
/// (what the agent applies to every value it reads).
pub fn parse_allowed(
    json: &[u8],
    allowed_roots: &[String],
) -> Result<Vec<CollectEntry>, EntriesError> {
    let entries = parse_entries(json)?;
    for (index, entry) in entries.iter().enumerate() {
        if !is_allowed(&entry.path, allowed_roots) {
            return Err(EntriesError::Entry {
                index,
                path: Some(entry.path.clone()),
                reason: format!("outside the allowed paths {allowed_roots:?}"),
            });
        }
    }
    Ok(entries)
}

/// Whether the literal prefix of `glob` (the components before the first one with a glob
/// character) lies under one of `roots`. Any `..` component refuses the glob: it could climb
/// out of a root.
pub fn is_allowed(glob: &str, roots: &[String]) -> bool {
    let literal = literal_prefix(glob);
    let Some(literal) = literal else {
        return false;
    };
    roots
        .iter()
        .any(|root| literal.starts_with(Path::new(root)))
}

/// The components of `glob` before the first glob metacharacter, or `None` when the glob is
/// relative or has a `..` / `.` component.
fn literal_prefix(glob: &str) -> Option<PathBuf> {
    let path = Path::new(glob);
    if !path.is_absolute() {
        return None;
    }
    let mut literal = PathBuf::new();
    let mut globbing = false;
    for component in path.components() {
        match component {
            Component::ParentDir | Component::CurDir => return None,
            Component::Normal(part) if !globbing => {
                if part.to_string_lossy().contains(['*', '?', '[', '{']) {
                    globbing = true;
                } else {
                    literal.push(part);
                }
            }
            Component::RootDir if !globbing => literal.push("/"),
            _ => {}
        }
    }
    Some(literal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Vec<String> {
        vec!["/var/log".to_string()]
    }

    #[test]
    fn good_array_parses_with_optional_fields() {
        let json = br#"[{"path": "/var/log/a/*.log", "topic": "a"},
                        {"path": "/var/log/b.log", "topic": "b", "exclude": ["/var/log/b.gz"], "start_position": "end"}]"#;
        let entries = parse_allowed(json, &roots()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].exclude, vec!["/var/log/b.gz".to_string()]);
        assert!(parse_allowed(b"[]", &roots()).unwrap().is_empty());
    }

    #[test]
    fn multiline_comes_from_etcd_too_and_a_bad_regex_is_refused() {
        let json = br#"[{"path": "/var/log/a.log", "topic": "a", "multiline": "java"},
                        {"path": "/var/log/b.log", "topic": "b", "multiline": {"start": "^\\d", "max_lines": 9}}]"#;
        let entries = parse_entries(json).unwrap();
        assert!(entries.iter().all(|e| e.multiline.is_some()));
        assert_eq!(entries[1].multiline.as_ref().map(|m| m.max_lines), Some(9));
        let bad = br#"[{"path": "/var/log/a.log", "topic": "a", "multiline": {"start": "("}}]"#;
        let error = parse_entries(bad).unwrap_err().to_string();
        assert!(
            error.contains("entry 0") && error.contains("does not compile"),
            "{error}"
        );
    }

    #[test]
    fn malformed_json_and_non_array_are_refused() {
        assert!(matches!(
            parse_entries(b"[{\"path\": "),
            Err(EntriesError::Json(_))
        ));
        assert!(matches!(
            parse_entries(br#"{"path": "/var/log/a", "topic": "a"}"#),
            Err(EntriesError::Json(_))
        ));
    }

    #[test]
    fn bad_entry_is_named_by_index_and_reason() {
        let json = br#"[{"path": "/var/log/a.log", "topic": "a"}, {"path": "/var/log/b.log"}]"#;
        let error = parse_entries(json).unwrap_err().to_string();
        assert!(
            error.contains("entry 1")
                && error.contains("/var/log/b.log")
                && error.contains("topic"),
            "{error}"
        );
        let json = br#"[{"path": "/var/log/a.log", "topic": "a", "colour": "red"}]"#;
        let error = parse_entries(json).unwrap_err().to_string();
        assert!(
            error.contains("entry 0") && error.contains("colour"),
            "{error}"
        );
        let json = br#"[{"path": "logs/a.log", "topic": "a"}]"#;
        let error = parse_entries(json).unwrap_err().to_string();
        assert!(error.contains("absolute"), "{error}");
    }

    #[test]
    fn entries_outside_allowed_roots_are_refused() {
        let json =
            br#"[{"path": "/var/log/a.log", "topic": "a"}, {"path": "/etc/*", "topic": "b"}]"#;
        let error = parse_allowed(json, &roots()).unwrap_err().to_string();
        assert!(
            error.contains("entry 1") && error.contains("outside the allowed paths"),
            "{error}"
        );
    }

    #[test]
    fn root_check_uses_the_literal_prefix_by_component() {
        let roots = roots();
        assert!(is_allowed("/var/log/*.log", &roots));
        assert!(is_allowed("/var/log/nginx/access.log", &roots));
        assert!(is_allowed("/var/log/*/x.log", &roots));
        assert!(!is_allowed("/var/lo*/x.log", &roots));
        assert!(!is_allowed("/var/logs/x.log", &roots));
        assert!(!is_allowed("/var/log/../../etc/passwd", &roots));
        assert!(!is_allowed("/*/log/x.log", &roots));
        assert!(!is_allowed("var/log/x.log", &roots));
    }
}
