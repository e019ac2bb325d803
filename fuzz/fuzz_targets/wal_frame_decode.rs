//! A stored WAL record value must decode or be reported damaged, never panic; an intact frame
//! must be exactly the documented layout of its payload (or of a pieces head), and that payload must go on to decode
//! as a chunk or fail, as the agent's shipper does with it.
//!
//! The first input byte chooses whether the crc is fixed up first: random bytes almost never
//! carry a valid crc, so without it the fuzzer would hardly reach the frame decoding behind it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logship::agent::chunk::Chunk;
use logship_wal::{decode_frame, DecodedFrame};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, value)) = data.split_first() else {
        return;
    };
    let mut value = value.to_vec();
    if mode & 1 == 1 && value.len() >= 4 {
        let crc = crc32fast::hash(&value[4..]);
        value[..4].copy_from_slice(&crc.to_le_bytes());
    }
    match decode_frame(&value) {
        DecodedFrame::Payload(payload) => {
            // crc (4) | tag 0 (4) | payload length (8) | payload, nothing else.
            assert_eq!(value.len(), 16 + payload.len());
            assert_eq!(value[..4], crc32fast::hash(&value[4..]).to_le_bytes());
            assert_eq!(value[4..8], 0u32.to_le_bytes());
            assert_eq!(value[8..16], (payload.len() as u64).to_le_bytes());
            assert_eq!(value[16..], payload[..]);
            if let Ok(chunk) = Chunk::decode(&payload) {
                let covered: usize = chunk.pieces().map(|p| p.text.len()).sum();
                assert!(covered <= chunk.data.len());
            }
        }
        DecodedFrame::Pieces { count, len } => {
            // The head of a record stored in pieces: crc (4) | tag 1 (4) | count (4) | len (8).
            assert_eq!(value.len(), 20);
            assert_eq!(value[4..8], 1u32.to_le_bytes());
            assert_eq!(value[8..12], count.to_le_bytes());
            assert_eq!(value[12..20], len.to_le_bytes());
        }
        DecodedFrame::Corrupt(reason) => assert!(!reason.is_empty()),
        DecodedFrame::Unsupported { tag } => assert!(tag >= 2),
    }
});
