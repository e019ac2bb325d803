//! A WAL payload from disk must decode or fail, never panic; a decoded chunk's pieces must tile it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logship::agent::chunk::Chunk;

fuzz_target!(|data: &[u8]| {
    if let Ok(chunk) = Chunk::decode(data) {
        let covered: usize = chunk.pieces().map(|p| p.text.len()).sum();
        assert!(covered <= chunk.data.len());
    }
});
