//! Any value read from the etcd collect key must parse or be refused with an error, never panic;
//! an accepted value must only name globs whose literal part lies under an allowed root, with no
//! `..` anywhere (what keeps a writer of etcd from making the agent ship `/etc/shadow`).
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use logship::etcd::entries::{is_allowed, parse_allowed, parse_entries};

const ROOT: &str = "/var/log";

/// What "allowed" must mean, whatever the glob text.
fn check_allowed(glob: &str) {
    let path = Path::new(glob);
    assert!(path.is_absolute(), "{glob:?} allowed but relative");
    assert!(
        path.starts_with(ROOT),
        "{glob:?} allowed but not under {ROOT}"
    );
    assert!(
        !path.components().any(|c| c == Component::ParentDir),
        "{glob:?} allowed but climbs with .."
    );
}

fuzz_target!(|data: &[u8]| {
    let roots = vec![ROOT.to_string()];
    let parsed = parse_entries(data);
    match parse_allowed(data, &roots) {
        Ok(entries) => {
            assert_eq!(parsed.as_ref().ok(), Some(&entries));
            for entry in &entries {
                check_allowed(&entry.path);
            }
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if is_allowed(text, &roots) {
            check_allowed(text);
        }
    }
});
