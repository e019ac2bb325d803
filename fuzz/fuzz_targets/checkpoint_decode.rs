//! A checkpoint read from disk must decode or fail, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logship::agent::checkpoint::Checkpoint;

fuzz_target!(|data: &[u8]| {
    let _ = Checkpoint::decode(data);
});
