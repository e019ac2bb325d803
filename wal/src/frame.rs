//! The on-disk frame of one record, and the codec shared by everything the WAL serializes.
//!
//! A record value in the WAL tree is
//!
//! ```text
//! offset  size  field
//! 0       4     crc32 (IEEE, crc32fast), little endian, over every byte from offset 4 on
//! 4       4     bincode variant tag of `Frame`, u32 little endian (0 = V1)
//! 8       8     V1: payload length, u64 little endian
//! 16      n     V1: payload bytes
//! ```
//!
//! that is `crc32 ++ bincode(Frame::V1 { payload })` with bincode's fixed-int, little-endian
//! encoding ([`codec`]). The crc is checked before anything is decoded, so a flipped bit, a
//! truncated value or garbage is reported as corruption, not misread.
//!
//! A frame longer than [`PIECE_BYTES`] is stored in pieces: the record key holds a
//! `Frame::Pieces { count, len }` head (tag 1, 20 bytes with its crc), and the frame's bytes,
//! cut into `count` pieces, are stored under piece keys (see the `keys` module).
//!
//! `Frame` is a versioned enum in the manner of a serde-tagged state: bincode writes the
//! variant index, so a future `V2` is added *after* `V1` (never reorder or remove variants)
//! and old records keep decoding as `V1`. A build that meets a tag it does not know, in a
//! frame whose crc is intact, reports [`DecodedFrame::Unsupported`] instead of calling the record
//! corrupt: the data is fine, the build is too old.

use std::borrow::Cow;

use bincode::Options;
use serde::{Deserialize, Serialize};

/// Bytes of a V1 frame that are not payload: crc (4), variant tag (4), payload length (8).
pub const FRAME_OVERHEAD: usize = 16;

/// Number of `Frame` variants this build knows; tags at or above it are "newer than us".
const KNOWN_FRAME_TAGS: u32 = 2;

/// Largest value the WAL stores under one sled key. A longer frame is cut into pieces of this
/// size, stored under piece keys, with a small [`Frame::Pieces`] head under the record key.
///
/// Why: sled writes a page (a tree node, or a value) larger than about 128 KiB (a quarter of
/// its 512 KiB segment) as a file of its own under `blobs/`, and in a write-once, delete-soon
/// workload like this one those files were seen to pile up without bound (3 GB on disk for
/// 1 GB written through an 8 MiB WAL). A leaf node holds up to 16 values before it splits, so
/// values of 6 KiB keep every node under that size (16 x 6 = 96 KiB). Measured with
/// `examples/disk_use.rs` (1 GB through the WAL, steady shipping and an outage filling it): at
/// most 3.6x `max_bytes` for 8 MiB, 6 MiB for 1 MiB and 2.1x for 64 MiB, whatever the record
/// size; with 8 KiB pieces (nodes over the blob size) it was 7x to 12x, with 32 KiB 8x to 21x.
/// 4 KiB pieces cost 10% more CPU than 6 KiB for little less space (docs/bench.md).
pub(crate) const PIECE_BYTES: usize = 6 * 1024;

/// Length of an encoded [`Frame::Pieces`] head: crc (4), tag (4), count (4), len (8).
const HEAD_LEN: usize = 20;

/// A record as stored, minus the crc in front.
#[derive(Debug, Serialize, Deserialize)]
enum Frame<'a> {
    /// The first version: the payload, opaque.
    V1 {
        #[serde(with = "bytes")]
        payload: Cow<'a, [u8]>,
    },
    /// The head of a record stored in pieces: `count` values under the record's piece keys
    /// (`b'p'` ++ seq ++ index), which joined in index order are a complete `V1` frame of `len`
    /// bytes, crc included (so the joined bytes are checked like any frame).
    Pieces { count: u32, len: u64 },
}

/// The one bincode configuration the WAL uses: fixed-width little-endian integers (the
/// same bytes as `bincode::serialize`), trailing bytes rejected.
pub(crate) fn codec() -> impl Options + Copy {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
}

/// Encodes `payload` as a complete frame, crc included.
pub(crate) fn encode(payload: &[u8]) -> Result<Vec<u8>, bincode::Error> {
    let mut out = Vec::with_capacity(FRAME_OVERHEAD + payload.len());
    out.extend_from_slice(&[0; 4]);
    codec().serialize_into(
        &mut out,
        &Frame::V1 {
            payload: Cow::Borrowed(payload),
        },
    )?;
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// The frame the WAL stores for a record of `payload` (single-frame layout, crc included):
/// for tests that write stored values themselves (see `Wal::overwrite_stored`, feature
/// `test-support`).
#[cfg(any(test, feature = "test-support"))]
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, crate::WalError> {
    encode(payload).map_err(|source| crate::WalError::Encode {
        op: crate::Op::Raw,
        what: "a frame",
        source,
    })
}

/// Encodes the head of a record stored in `count` pieces that join into a frame of `len` bytes.
pub(crate) fn encode_head(count: u32, len: u64) -> Result<Vec<u8>, bincode::Error> {
    let mut out = Vec::with_capacity(HEAD_LEN);
    out.extend_from_slice(&[0; 4]);
    codec().serialize_into(&mut out, &Frame::Pieces { count, len })?;
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// The piece count of a stored value that is a [`Frame::Pieces`] head (read from its bytes,
/// without the crc check, like [`charge`]).
pub(crate) fn head_pieces(value: &[u8]) -> Option<u32> {
    head_fields(value).map(|(count, _)| count)
}

fn head_fields(value: &[u8]) -> Option<(u32, u64)> {
    if value.len() != HEAD_LEN || value.get(4..8)? != 1u32.to_le_bytes() {
        return None;
    }
    let count = u32::from_le_bytes(value.get(8..12)?.try_into().ok()?);
    let len = u64::from_le_bytes(value.get(12..20)?.try_into().ok()?);
    Some((count, len))
}

/// What a stored record value turned out to be (see [`decode_frame`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodedFrame {
    /// An intact record: its payload, exactly as appended.
    Payload(Vec<u8>),
    /// Damaged (crc mismatch, truncated, undecodable): the reason, for the quarantine and the
    /// operator.
    Corrupt(String),
    /// An intact head of a record stored in pieces (see [`Wal`](crate::Wal)'s storage
    /// layout): the record's `count` piece values, joined, are a frame of `len` bytes, to be
    /// checked with this function again.
    Pieces {
        /// How many piece values.
        count: u32,
        /// Their total length in bytes.
        len: u64,
    },
    /// Intact but written by a newer build (frame variant tag unknown here).
    Unsupported {
        /// The variant tag found.
        tag: u32,
    },
}

/// Checks and decodes one stored record value (the bytes under a record key of the WAL tree,
/// laid out as in the [crate documentation](crate#storage-layout)). Never panics, whatever the
/// bytes; this is what [`Wal::replay`](crate::Wal::replay) and [`Wal::get`](crate::Wal::get)
/// apply to every record, public so that tools and fuzzers can check a value on its own.
pub fn decode_frame(value: &[u8]) -> DecodedFrame {
    let Some((crc_bytes, body)) = value.split_first_chunk::<4>() else {
        return DecodedFrame::Corrupt(format!(
            "truncated frame: {} bytes, shorter than the 4-byte crc",
            value.len()
        ));
    };
    let stored = u32::from_le_bytes(*crc_bytes);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return DecodedFrame::Corrupt(format!(
            "crc mismatch: stored {stored:#010x}, computed {computed:#010x} over {} bytes",
            body.len()
        ));
    }
    if let Some(tag) = body.first_chunk::<4>().map(|t| u32::from_le_bytes(*t)) {
        if tag >= KNOWN_FRAME_TAGS {
            return DecodedFrame::Unsupported { tag };
        }
    }
    // The limit keeps a (crc-colliding) absurd length from allocating more than we hold.
    match codec()
        .with_limit(body.len() as u64)
        .deserialize::<Frame<'_>>(body)
    {
        Ok(Frame::V1 { payload }) => DecodedFrame::Payload(payload.into_owned()),
        Ok(Frame::Pieces { count, len }) => DecodedFrame::Pieces { count, len },
        Err(e) => DecodedFrame::Corrupt(format!("undecodable frame: {e}")),
    }
}

/// The payload bytes a stored value accounts for in the pending counters.
///
/// Read from the value's length alone (no crc, no decoding), so rebuilding the counters at
/// open is cheap and adding at append / subtracting at ack always agree, even for a
/// damaged value.
/// A head (see [`PIECE_BYTES`]) is charged for the frame its pieces hold.
pub(crate) fn charge(value: &[u8]) -> u64 {
    match head_fields(value) {
        Some((_, len)) => len.saturating_sub(FRAME_OVERHEAD as u64),
        None => value.len().saturating_sub(FRAME_OVERHEAD) as u64,
    }
}

/// serde glue writing `[u8]` as one byte string (`serialize_bytes`) instead of a sequence of
/// single bytes. For bincode the bytes on disk are the same (u64 length, then the bytes);
/// only the speed differs.
pub(crate) mod bytes {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::Serializer;

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Cow<'static, [u8]>, D::Error> {
        d.deserialize_byte_buf(ByteBuf).map(Cow::Owned)
    }

    struct ByteBuf;

    impl<'de> Visitor<'de> for ByteBuf {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_as_documented() {
        let f = encode(b"abc").unwrap();
        assert_eq!(f.len(), FRAME_OVERHEAD + 3);
        assert_eq!(&f[4..8], &0u32.to_le_bytes()); // V1
        assert_eq!(&f[8..16], &3u64.to_le_bytes());
        assert_eq!(&f[16..], b"abc");
        assert_eq!(&f[..4], &crc32fast::hash(&f[4..]).to_le_bytes());
        // The same bytes as plain `bincode::serialize` of an owned V1 frame.
        #[derive(Serialize)]
        enum Plain {
            V1 { payload: Vec<u8> },
        }
        let plain = bincode::serialize(&Plain::V1 {
            payload: b"abc".to_vec(),
        })
        .unwrap();
        assert_eq!(&f[4..], &plain[..]);
    }

    #[test]
    fn round_trip_and_charge() {
        for p in [&b""[..], b"x", &[7u8; 100_000]] {
            let f = encode(p).unwrap();
            assert_eq!(decode_frame(&f), DecodedFrame::Payload(p.to_vec()));
            assert_eq!(charge(&f), p.len() as u64);
        }
    }

    #[test]
    fn damage_is_reported_not_misread() {
        let f = encode(b"hello world").unwrap();
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x40;
            assert!(
                matches!(decode_frame(&g), DecodedFrame::Corrupt(_)),
                "flip at {i}"
            );
        }
        for n in 0..f.len() {
            assert!(
                matches!(decode_frame(&f[..n]), DecodedFrame::Corrupt(_)),
                "cut at {n}"
            );
        }
        let mut longer = f.clone();
        longer.push(0);
        assert!(matches!(decode_frame(&longer), DecodedFrame::Corrupt(_)));
    }

    #[test]
    fn intact_frame_with_trailing_bytes_is_corrupt() {
        let mut f = encode(b"abc").unwrap();
        f.push(9);
        let crc = crc32fast::hash(&f[4..]);
        f[..4].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(decode_frame(&f), DecodedFrame::Corrupt(r) if r.contains("undecodable")));
    }

    #[test]
    fn head_round_trips_and_is_charged_for_its_pieces() {
        let head = encode_head(3, 70_000).unwrap();
        assert_eq!(head.len(), HEAD_LEN);
        assert_eq!(
            decode_frame(&head),
            DecodedFrame::Pieces {
                count: 3,
                len: 70_000
            }
        );
        assert_eq!(head_pieces(&head), Some(3));
        assert_eq!(charge(&head), 70_000 - FRAME_OVERHEAD as u64);
        // A V1 frame of the same length is not taken for a head.
        let v1 = encode(&[0u8; HEAD_LEN - FRAME_OVERHEAD]).unwrap();
        assert_eq!(v1.len(), HEAD_LEN);
        assert_eq!(head_pieces(&v1), None);
        assert_eq!(charge(&v1), 4);
    }

    #[test]
    fn newer_frame_version_is_unsupported_not_corrupt() {
        let mut body = 2u32.to_le_bytes().to_vec(); // a future variant
        body.extend_from_slice(b"whatever V2 holds");
        let mut f = crc32fast::hash(&body).to_le_bytes().to_vec();
        f.extend_from_slice(&body);
        assert_eq!(decode_frame(&f), DecodedFrame::Unsupported { tag: 2 });
    }

    #[test]
    fn huge_declared_length_does_not_allocate() {
        let mut body = 0u32.to_le_bytes().to_vec();
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut f = crc32fast::hash(&body).to_le_bytes().to_vec();
        f.extend_from_slice(&body);
        assert!(matches!(decode_frame(&f), DecodedFrame::Corrupt(_)));
    }
}
