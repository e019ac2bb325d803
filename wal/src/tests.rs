//! Unit tests of the WAL handle (the model-based crash test is `tests/model.rs`).

use std::path::Path;

use super::*;
use crate::keys;

/// Retries `f` while sled reports its directory lock as held: a dropped `Db` releases the lock
/// only when sled's background threads let go of it, a moment after the drop.
fn retry_locked<T, E: std::fmt::Debug>(mut f: impl FnMut() -> Result<T, E>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match f() {
            Ok(value) => return value,
            Err(error)
                if format!("{error:?}").contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(error) => panic!("{error:?}"),
        }
    }
}

fn open(dir: &Path) -> Wal {
    retry_locked(|| Wal::open(dir, WalOptions::default()))
}

fn replay_all(wal: &Wal) -> Vec<Replayed> {
    wal.replay().collect::<Result<_, _>>().unwrap()
}

fn records(wal: &Wal) -> Vec<(Seq, Vec<u8>)> {
    replay_all(wal)
        .into_iter()
        .map(|r| match r {
            Replayed::Record(e) => (e.seq, e.payload),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// Rewrites the stored value of record `seq` through a raw sled handle, WAL closed.
fn tamper(dir: &Path, seq: Seq, f: impl FnOnce(Vec<u8>) -> Vec<u8>) {
    let db = retry_locked(|| sled::open(dir));
    let tree = db.open_tree(TREE_NAME).unwrap();
    let old = tree.get(keys::record(seq)).unwrap().unwrap().to_vec();
    tree.insert(keys::record(seq), f(old)).unwrap();
    db.flush().unwrap();
}

#[test]
fn append_flush_replay_ack() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let a = wal.append(&[b"a", b"bb"], &[]).unwrap();
    let b = wal.append(&[b"ccc"], &[]).unwrap();
    assert_eq!(a.len(), 2);
    assert!(a[0] < a[1] && a[1] < b[0]);
    wal.flush().unwrap();
    assert_eq!(
        records(&wal),
        vec![
            (a[0], b"a".to_vec()),
            (a[1], b"bb".to_vec()),
            (b[0], b"ccc".to_vec())
        ]
    );
    assert_eq!((wal.pending_records(), wal.pending_bytes()), (3, 6));
    assert_eq!(wal.oldest_pending(), Some(a[0]));

    wal.ack(&[a[0], b[0]]).unwrap();
    assert_eq!(records(&wal), vec![(a[1], b"bb".to_vec())]);
    assert_eq!((wal.pending_records(), wal.pending_bytes()), (1, 2));
    assert_eq!(wal.oldest_pending(), Some(a[1]));

    // Unknown and repeated acks change nothing.
    wal.ack(&[a[0], 999_999_999, b[0]]).unwrap();
    assert_eq!((wal.pending_records(), wal.pending_bytes()), (1, 2));
    wal.ack(&[a[1]]).unwrap();
    assert_eq!((wal.pending_records(), wal.pending_bytes()), (0, 0));
    assert_eq!(wal.oldest_pending(), None);
    assert!(records(&wal).is_empty());
    assert!(wal.size_on_disk().unwrap() > 0);
}

#[test]
fn empty_payload_and_empty_append() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    assert!(wal.append(&[], &[]).unwrap().is_empty());
    let s = wal.append(&[b""], &[]).unwrap();
    assert_eq!(records(&wal), vec![(s[0], vec![])]);
    assert_eq!((wal.pending_records(), wal.pending_bytes()), (1, 0));
}

#[test]
fn seq_continues_after_reopen_even_when_all_acked() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let first = wal.append(&[b"x", b"y"], &[]).unwrap();
    wal.ack(&first).unwrap();
    wal.flush().unwrap();
    drop(wal);

    let wal = open(dir.path());
    let second = wal.append(&[b"z"], &[]).unwrap();
    assert!(second[0] > first[1], "{second:?} after {first:?}");
    drop(wal);

    let wal = open(dir.path());
    let third = wal.append(&[b"w"], &[]).unwrap();
    assert!(third[0] > second[0]);
}

#[test]
fn unflushed_seqs_are_not_reused_after_reopen() {
    // Even if the records of an append never reach the disk, their seqs were leased
    // durably first: the next session starts above them.
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let first = wal.append(&[b"x"], &[]).unwrap();
    let more = wal.append(&[&b"y"[..]; 10], &[]).unwrap();
    drop(wal);
    let wal = open(dir.path());
    let next = wal.append(&[b"z"], &[]).unwrap();
    assert!(next[0] > more[9] && more[0] > first[0]);
}

#[test]
fn pending_counters_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let s = wal
        .append(&[&[1u8; 1000][..], &[2u8; 10], &[3u8; 300_000]], &[])
        .unwrap();
    wal.ack(&s[1..2]).unwrap();
    wal.flush().unwrap();
    drop(wal);

    let wal = open(dir.path());
    assert_eq!(wal.pending_records(), 2);
    assert_eq!(wal.pending_bytes(), 301_000);
    assert_eq!(wal.oldest_pending(), Some(s[0]));
    let got = records(&wal);
    assert_eq!(got[1], (s[2], vec![3u8; 300_000]));
}

#[test]
fn is_full_is_a_soft_cap() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default().max_bytes(10)).unwrap();
    assert!(!wal.is_full());
    let s = wal.append(&[b"123456789"], &[]).unwrap();
    assert!(!wal.is_full());
    let t = wal.append(&[b"12"], &[]).unwrap(); // accepted although over the cap
    assert!(wal.is_full());
    wal.ack(&[s[0], t[0]]).unwrap();
    assert!(!wal.is_full());
    assert!(matches!(
        Wal::open(dir.path(), WalOptions::default().max_bytes(0)),
        Err(WalError::InvalidOptions(_))
    ));
}

#[test]
fn state_is_written_with_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    wal.append(&[b"l1"], &[(b"off/a", Some(b"10")), (b"off/b", Some(b"7"))])
        .unwrap();
    wal.append(&[b"l2"], &[(b"off/a", Some(b"20")), (b"off/b", None)])
        .unwrap();
    // State without records is fine too.
    wal.append(&[], &[(b"other", Some(b"x"))]).unwrap();
    wal.state_put(b"off/c", Some(b"5")).unwrap();
    wal.flush().unwrap();
    drop(wal);

    let wal = open(dir.path());
    assert_eq!(wal.state_get(b"off/a").unwrap(), Some(b"20".to_vec()));
    assert_eq!(wal.state_get(b"off/b").unwrap(), None);
    let scanned: Vec<_> = wal
        .state_scan_prefix(b"off/")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        scanned,
        vec![
            (b"off/a".to_vec(), b"20".to_vec()),
            (b"off/c".to_vec(), b"5".to_vec())
        ]
    );
    assert_eq!(wal.state_scan_prefix(b"").count(), 3);
    wal.state_put(b"off/c", None).unwrap();
    assert_eq!(wal.state_get(b"off/c").unwrap(), None);
    // State keys never show up as records and vice versa.
    assert_eq!(records(&wal).len(), 2);
    assert_eq!(wal.pending_records(), 2);
}

#[test]
fn corrupted_record_is_quarantined_once_and_the_rest_replays() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let s = wal
        .append(&[b"good 1", b"will rot", b"good 2"], &[])
        .unwrap();
    wal.flush().unwrap();
    drop(wal);

    let mut original = Vec::new();
    tamper(dir.path(), s[1], |mut v| {
        original = v.clone();
        let n = v.len();
        v[n - 2] ^= 0xff; // flip payload bits
        v
    });

    let wal = open(dir.path());
    assert_eq!(wal.pending_records(), 3); // not known to be bad until replay reads it
    let got = replay_all(&wal);
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0],
        Replayed::Record(Entry {
            seq: s[0],
            payload: b"good 1".to_vec()
        })
    );
    match &got[1] {
        Replayed::Quarantined { seq, reason } => {
            assert_eq!(*seq, s[1]);
            assert!(reason.contains("crc mismatch"), "{reason}");
        }
        other => panic!("expected quarantine, got {other:?}"),
    }
    assert_eq!(
        got[2],
        Replayed::Record(Entry {
            seq: s[2],
            payload: b"good 2".to_vec()
        })
    );
    assert_eq!((wal.pending_records(), wal.pending_bytes()), (2, 12));
    let q = wal.quarantined().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].seq, s[1]);
    assert!(q[0].reason.contains("crc mismatch"));
    assert_ne!(q[0].raw, original);
    assert_eq!(q[0].raw.len(), original.len());
    wal.flush().unwrap();
    drop(wal);

    // Reopen: not reported again, still listed, seqs not reused.
    let wal = open(dir.path());
    assert_eq!(
        records(&wal),
        vec![(s[0], b"good 1".to_vec()), (s[2], b"good 2".to_vec())]
    );
    assert_eq!(wal.quarantined().unwrap(), q);
    assert!(wal.append(&[b"new"], &[]).unwrap()[0] > s[2]);
    assert!(wal.purge_quarantined(s[1]).unwrap());
    assert!(!wal.purge_quarantined(s[1]).unwrap());
    assert!(wal.quarantined().unwrap().is_empty());
}

#[test]
fn truncated_and_garbage_values_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let s = wal
        .append(
            &[
                b"ok",
                b"to truncate",
                b"to empty",
                b"to garbage",
                b"bad len",
            ],
            &[],
        )
        .unwrap();
    wal.flush().unwrap();
    drop(wal);

    tamper(dir.path(), s[1], |v| v[..v.len() - 3].to_vec());
    tamper(dir.path(), s[2], |_| Vec::new());
    tamper(dir.path(), s[3], |_| b"\x01\x02".to_vec());
    // Intact crc, but the frame inside lies about its length.
    tamper(dir.path(), s[4], |v| {
        let mut body = v[4..].to_vec();
        body[4..12].copy_from_slice(&1000u64.to_le_bytes());
        let mut out = crc32fast::hash(&body).to_le_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    });

    let wal = open(dir.path());
    let got = replay_all(&wal);
    assert_eq!(
        got[0],
        Replayed::Record(Entry {
            seq: s[0],
            payload: b"ok".to_vec()
        })
    );
    let reasons: Vec<(Seq, String)> = got[1..]
        .iter()
        .map(|r| match r {
            Replayed::Quarantined { seq, reason } => (*seq, reason.clone()),
            other => panic!("expected quarantine, got {other:?}"),
        })
        .collect();
    assert_eq!(reasons.iter().map(|r| r.0).collect::<Vec<_>>(), s[1..]);
    assert!(reasons[0].1.contains("crc"), "{}", reasons[0].1);
    assert!(reasons[1].1.contains("truncated"), "{}", reasons[1].1);
    assert!(reasons[2].1.contains("truncated"), "{}", reasons[2].1);
    assert!(reasons[3].1.contains("undecodable"), "{}", reasons[3].1);
    assert_eq!((wal.pending_records(), wal.pending_bytes()), (1, 2));
    let q = wal.quarantined().unwrap();
    assert_eq!(q.len(), 4);
    assert_eq!(q[1].raw, Vec::<u8>::new());
    assert_eq!(q[2].raw, b"\x01\x02".to_vec());
    // A second replay in the same session sees only the good record.
    assert_eq!(records(&wal), vec![(s[0], b"ok".to_vec())]);
}

#[test]
fn newer_frame_version_stops_replay_and_stays() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let s = wal.append(&[b"a", b"from the future", b"c"], &[]).unwrap();
    wal.flush().unwrap();
    drop(wal);
    tamper(dir.path(), s[1], |_| {
        let mut body = 2u32.to_le_bytes().to_vec();
        body.extend_from_slice(b"future data");
        let mut out = crc32fast::hash(&body).to_le_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    });

    let wal = open(dir.path());
    let got: Vec<_> = wal.replay().collect();
    assert_eq!(got.len(), 2, "fused after the error: {got:?}");
    assert!(matches!(got[0], Ok(Replayed::Record(_))));
    assert!(matches!(
        got[1],
        Err(WalError::UnsupportedFrame { seq, tag: 2 }) if seq == s[1]
    ));
    assert!(wal.quarantined().unwrap().is_empty());
    assert_eq!(wal.pending_records(), 3);
}

#[test]
fn unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    {
        let db = retry_locked(|| sled::open(dir.path()));
        let tree = db.open_tree(TREE_NAME).unwrap();
        tree.insert(keys::META_FORMAT, &3u32.to_be_bytes()).unwrap();
    }
    // The expected error, once sled's threads have released the directory lock.
    let err = retry_locked(|| match Wal::open(dir.path(), WalOptions::default()) {
        Ok(_) => panic!("a WAL of format 3 was opened"),
        Err(error) if format!("{error:?}").contains("could not acquire lock") => Err(error),
        Err(error) => Ok(error),
    });
    assert!(
        matches!(
            err,
            WalError::UnsupportedFormat {
                found: 3,
                supported: 2
            }
        ),
        "{err}"
    );
}

#[test]
fn second_open_of_a_locked_dir_fails_with_context() {
    let dir = tempfile::tempdir().unwrap();
    let _wal = open(dir.path());
    let err = Wal::open(dir.path(), WalOptions::default()).unwrap_err();
    assert!(matches!(err, WalError::Open { .. }));
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn errors_name_operation_and_seq() {
    let e = WalError::Storage {
        op: Op::Ack,
        seq: Some(42),
        source: sled::Error::Unsupported("x".into()),
    };
    assert_eq!(e.to_string(), "WAL ack failed at seq 42");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn with_db_shares_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    let other = db.open_tree("someone-else").unwrap();
    other.insert(b"k", b"v").unwrap();
    let wal = Wal::with_db(db.clone(), WalOptions::default()).unwrap();
    let s = wal.append(&[b"p"], &[(b"k", Some(b"state"))]).unwrap();
    assert_eq!(records(&wal), vec![(s[0], b"p".to_vec())]);
    assert_eq!(other.get(b"k").unwrap().unwrap(), b"v");
    assert_eq!(other.len(), 1);
}

#[test]
fn concurrent_appenders_get_distinct_increasing_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..50u8 {
                    let s = wal.append(&[&[t, i][..], &[t, i, 0]], &[]).unwrap();
                    assert!(s[0] < s[1]);
                    mine.extend(s);
                    if i % 10 == 0 {
                        wal.flush().unwrap();
                    }
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<Seq> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 400);
    assert_eq!(wal.pending_records(), 400);
    assert_eq!(wal.pending_bytes(), 4 * 50 * 5);
    let replayed: Vec<Seq> = records(&wal).into_iter().map(|r| r.0).collect();
    assert_eq!(replayed, all);
}

#[test]
fn get_pending_seqs_and_quarantine_record() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let seqs = wal.append(&[b"a", b"b", b"c"], &[]).unwrap();
    wal.flush().unwrap();
    assert_eq!(wal.pending_seqs().unwrap(), seqs);
    match wal.get(seqs[1]).unwrap() {
        Some(Replayed::Record(entry)) => assert_eq!(entry.payload, b"b"),
        other => panic!("unexpected {other:?}"),
    }
    wal.ack(&seqs[..1]).unwrap();
    assert!(wal.get(seqs[0]).unwrap().is_none());
    assert_eq!(wal.pending_seqs().unwrap(), seqs[1..].to_vec());

    assert!(wal.quarantine_record(seqs[2], "cannot decode").unwrap());
    assert!(!wal.quarantine_record(seqs[2], "again").unwrap());
    assert!(wal.get(seqs[2]).unwrap().is_none());
    assert_eq!(wal.pending_records(), 1);
    let quarantined = wal.quarantined().unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].seq, seqs[2]);
    assert_eq!(quarantined[0].reason, "cannot decode");
}

#[test]
fn get_quarantines_a_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    let seq = {
        let wal = open(dir.path());
        let seqs = wal.append(&[b"payload"], &[]).unwrap();
        wal.flush().unwrap();
        seqs[0]
    };
    tamper(dir.path(), seq, |mut v| {
        let last = v.len() - 1;
        v[last] ^= 0xff;
        v
    });
    let wal = open(dir.path());
    match wal.get(seq).unwrap() {
        Some(Replayed::Quarantined { seq: s, reason }) => {
            assert_eq!(s, seq);
            assert!(!reason.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(wal.get(seq).unwrap().is_none());
    assert_eq!(wal.quarantined().unwrap().len(), 1);
}

/// Every key of the WAL tree with the given first byte.
fn keys_with_prefix(dir: &Path, prefix: u8) -> Vec<Vec<u8>> {
    let db = retry_locked(|| sled::open(dir));
    let tree = db.open_tree(TREE_NAME).unwrap();
    tree.scan_prefix([prefix])
        .keys()
        .map(|k| k.unwrap().to_vec())
        .collect()
}

/// A payload whose frame needs `n` pieces and a few bytes more.
fn large_payload(n: usize, fill: u8) -> Vec<u8> {
    let mut payload = vec![fill; n * frame::PIECE_BYTES + 5];
    for (i, b) in payload.iter_mut().enumerate() {
        *b = b.wrapping_add((i % 251) as u8);
    }
    payload
}

#[test]
fn large_records_are_stored_in_pieces_read_back_whole_and_acked_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let big = large_payload(5, 1);
    let small = b"small".to_vec();
    {
        let wal = open(dir.path());
        let seqs = wal.append(&[&big, &small, &big[..100]], &[]).unwrap();
        wal.flush().unwrap();
        assert_eq!(wal.pending_bytes(), (big.len() + small.len() + 100) as u64);
        assert!(matches!(wal.get(seqs[0]).unwrap(), Some(Replayed::Record(e)) if e.payload == big));
    }
    // No stored value exceeds a piece; the big record took 6 piece keys.
    assert_eq!(keys_with_prefix(dir.path(), keys::PIECE).len(), 6);
    let wal = open(dir.path());
    assert_eq!(
        wal.pending_bytes(),
        (big.len() + small.len() + 100) as u64,
        "a head is counted for the payload its pieces hold"
    );
    let got = records(&wal);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].1, big);
    assert_eq!(got[1].1, small);
    wal.ack(&[got[0].0]).unwrap();
    wal.flush().unwrap();
    assert_eq!(wal.pending_bytes(), (small.len() + 100) as u64);
    drop(wal);
    assert!(keys_with_prefix(dir.path(), keys::PIECE).is_empty());
}

#[test]
fn orphan_pieces_of_an_interrupted_ack_are_deleted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let big = large_payload(2, 7);
    let seq = {
        let wal = open(dir.path());
        let seqs = wal.append(&[&big, &big], &[]).unwrap();
        wal.flush().unwrap();
        seqs[0]
    };
    {
        // A crash between removing the head and its pieces.
        let db = retry_locked(|| sled::open(dir.path()));
        let tree = db.open_tree(TREE_NAME).unwrap();
        tree.remove(keys::record(seq)).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(keys_with_prefix(dir.path(), keys::PIECE).len(), 6);
    let wal = open(dir.path());
    let got = records(&wal);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, big);
    wal.flush().unwrap();
    drop(wal);
    assert_eq!(keys_with_prefix(dir.path(), keys::PIECE).len(), 3);
}

#[test]
fn a_damaged_or_missing_piece_quarantines_the_record_with_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let big = large_payload(3, 3);
    let seqs = {
        let wal = open(dir.path());
        let seqs = wal.append(&[&big, &big, b"after"], &[]).unwrap();
        wal.flush().unwrap();
        seqs
    };
    {
        let db = retry_locked(|| sled::open(dir.path()));
        let tree = db.open_tree(TREE_NAME).unwrap();
        let mut piece = tree.get(keys::piece(seqs[0], 1)).unwrap().unwrap().to_vec();
        piece[10] ^= 0x40;
        tree.insert(keys::piece(seqs[0], 1), piece).unwrap();
        tree.remove(keys::piece(seqs[1], 2)).unwrap();
        db.flush().unwrap();
    }
    let wal = open(dir.path());
    let replayed = replay_all(&wal);
    assert!(
        matches!(&replayed[0], Replayed::Quarantined { seq, reason } if *seq == seqs[0] && reason.contains("crc")),
        "{replayed:?}"
    );
    assert!(
        matches!(&replayed[1], Replayed::Quarantined { seq, reason } if *seq == seqs[1] && reason.contains("missing")),
        "{replayed:?}"
    );
    assert!(matches!(&replayed[2], Replayed::Record(e) if e.payload == b"after"));
    let quarantined = wal.quarantined().unwrap();
    assert_eq!(quarantined.len(), 2);
    // The joined (damaged) frame is kept: all but the flipped byte of the payload is there.
    assert_eq!(quarantined[0].raw.len(), big.len() + frame::FRAME_OVERHEAD);
    assert_eq!(wal.pending_records(), 1);
    assert_eq!(wal.pending_bytes(), 5);
    wal.flush().unwrap();
    drop(wal);
    assert!(keys_with_prefix(dir.path(), keys::PIECE).is_empty());
}

#[test]
fn a_format_1_wal_is_upgraded_and_its_records_read() {
    let dir = tempfile::tempdir().unwrap();
    let big = large_payload(4, 9);
    {
        // What a version-1 build left: one record value of any size, format 1.
        let db = retry_locked(|| sled::open(dir.path()));
        let tree = db.open_tree(TREE_NAME).unwrap();
        tree.insert(keys::META_FORMAT, &1u32.to_be_bytes()).unwrap();
        tree.insert(keys::record(1), frame::encode(&big).unwrap())
            .unwrap();
        tree.insert(keys::META_SEQ_LEASE, &2u64.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let wal = open(dir.path());
    assert_eq!(records(&wal), vec![(1, big.clone())]);
    assert_eq!(wal.pending_bytes(), big.len() as u64);
    wal.flush().unwrap();
    drop(wal);
    let db = retry_locked(|| sled::open(dir.path()));
    let tree = db.open_tree(TREE_NAME).unwrap();
    assert_eq!(
        tree.get(keys::META_FORMAT).unwrap().unwrap().to_vec(),
        FORMAT_VERSION.to_be_bytes()
    );
}
