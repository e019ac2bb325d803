//! Any agent config text must parse and validate or be rejected with an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logship::config::AgentConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = AgentConfig::from_toml(text);
    }
});
