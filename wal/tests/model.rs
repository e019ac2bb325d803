//! Model-based test of the WAL across clean reopens and crashes.
//!
//! # How a crash is simulated
//!
//! The WAL under test runs in a child process (this test binary re-executed, running the
//! ignored helper test `wal_model_child`), driven over its stdin/stdout. A *crash* is
//! `SIGKILL` of that process while it holds the database open: whatever sled had written
//! to its files stays (as after any process crash, the OS page cache survives), whatever it
//! held in its own buffers is gone, and its background threads stop mid-step. The files are
//! then reopened by a fresh child. This is more faithful than copying the open database's
//! files (the copy races with sled's writer threads, and files copied one after the other
//! are not one instant) and it releases sled's directory lock the way a real crash does.
//! It does not simulate a power loss (losing writes the OS had but had not synced); that
//! case rests on sled's fsync in `Wal::flush`.
//!
//! # What is checked
//!
//! The reference state machine generates operations; the oracle that checks results lives
//! with the system under test ([`Sut`]), because after a crash it must *adopt* what the
//! WAL recovered, which only the system can tell. The oracle keeps the exact contents
//! (pending records by seq, user state) plus one snapshot per mutating operation since the
//! last flush. After every step the WAL must match the oracle exactly (records, state,
//! counters, oldest pending). After a clean reopen (close, i.e. flush and drop) it must
//! match exactly too. After a crash the recovered contents must:
//!
//! - hold every record whose append was flushed and that was not acknowledged before that
//!   flush (durability);
//! - hold nothing that was never appended (and no user state never written);
//! - equal the contents after *some* operation since the last flush, i.e. a prefix of the
//!   unflushed operations survives, each append whole (records with their state). This is
//!   what sled guarantees for its log: batches are atomic and recovery stops at the first
//!   write that did not make it.
//!
//! and seqs handed out after the crash must exceed every seq handed out before it, even
//! those of lost appends. No record may be quarantined (nothing is damaged here).
//!
//! `PROPTEST_CASES` overrides the number of cases (default 20, about 12 s in a debug build).
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;

use logship_wal::{Replayed, Seq, Wal, WalOptions};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------
// The child process: a WAL served over stdin/stdout.

const CHILD_ENV: &str = "LOGSHIP_WAL_MODEL_CHILD_DIR";
const READY: &str = "@@logship-wal-model-child-ready@@";

#[derive(Debug, Serialize, Deserialize)]
enum Cmd {
    Append {
        payloads: Vec<Vec<u8>>,
        state: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    },
    Flush,
    Ack(Vec<Seq>),
    StatePut(Vec<u8>, Option<Vec<u8>>),
    Dump,
    Close,
}

#[derive(Debug, Serialize, Deserialize)]
enum Resp {
    Seqs(Vec<Seq>),
    Done,
    Dump(Dump),
    Err(String),
}

/// Everything observable about the WAL.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Dump {
    records: BTreeMap<Seq, Vec<u8>>,
    quarantined: Vec<(Seq, String)>,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    pending_records: u64,
    pending_bytes: u64,
    oldest_pending: Option<Seq>,
}

fn dump(wal: &Wal) -> Result<Dump, logship_wal::WalError> {
    let mut records = BTreeMap::new();
    let mut quarantined = Vec::new();
    for r in wal.replay() {
        match r? {
            Replayed::Record(e) => {
                records.insert(e.seq, e.payload);
            }
            Replayed::Quarantined { seq, reason } => quarantined.push((seq, reason)),
        }
    }
    Ok(Dump {
        records,
        quarantined,
        state: wal.state_scan_prefix(b"").collect::<Result<_, _>>()?,
        pending_records: wal.pending_records(),
        pending_bytes: wal.pending_bytes(),
        oldest_pending: wal.try_oldest_pending()?,
    })
}

fn serve(wal: Wal, cmd: Cmd) -> Result<Resp, logship_wal::WalError> {
    Ok(match cmd {
        Cmd::Append { payloads, state } => {
            let payloads: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let state: Vec<(&[u8], Option<&[u8]>)> = state
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref()))
                .collect();
            Resp::Seqs(wal.append(&payloads, &state)?)
        }
        Cmd::Flush => wal.flush().map(|()| Resp::Done)?,
        Cmd::Ack(seqs) => wal.ack(&seqs).map(|()| Resp::Done)?,
        Cmd::StatePut(k, v) => wal.state_put(&k, v.as_deref()).map(|()| Resp::Done)?,
        Cmd::Dump => Resp::Dump(dump(&wal)?),
        Cmd::Close => {
            drop(wal);
            Resp::Done
        }
    })
}

fn write_frame(w: &mut impl Write, msg: &impl Serialize) -> std::io::Result<()> {
    let bytes = bincode::serialize(msg).map_err(std::io::Error::other)?;
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(&bytes)?;
    w.flush()
}

fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut buf)?;
    bincode::deserialize(&buf).map_err(std::io::Error::other)
}

/// Not a test: the body of the child process (does nothing unless started by [`Proc`]).
#[test]
#[ignore = "helper process of the model test"]
fn wal_model_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let wal = Wal::open(Path::new(&dir), WalOptions::default()).expect("child: open WAL");
    let mut out = std::io::stdout().lock();
    let mut input = std::io::stdin().lock();
    write!(out, "\n{READY}\n")
        .and_then(|()| out.flush())
        .expect("child: ready");
    loop {
        let Ok(cmd) = read_frame::<Cmd>(&mut input) else {
            std::process::exit(0); // parent went away
        };
        let close = matches!(cmd, Cmd::Close);
        let resp = serve(wal.clone(), cmd).unwrap_or_else(|e| Resp::Err(format!("{e:?}")));
        if close {
            drop(wal);
            write_frame(&mut out, &resp).expect("child: reply");
            std::process::exit(0);
        }
        write_frame(&mut out, &resp).expect("child: reply");
    }
}

/// A running child process holding the WAL open.
struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Proc {
    fn spawn(dir: &Path) -> Proc {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .args([
                "wal_model_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdin = child.stdin.take().expect("child stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("child stdout"));
        let mut line = String::new();
        loop {
            line.clear();
            let n = stdout.read_line(&mut line).expect("read child stdout");
            assert!(
                n > 0,
                "child exited before opening the WAL (see its stderr)"
            );
            if line.trim_end() == READY {
                break;
            }
        }
        Proc {
            child,
            stdin,
            stdout,
        }
    }

    fn call(&mut self, cmd: &Cmd) -> Resp {
        write_frame(&mut self.stdin, cmd).expect("send to child");
        match read_frame(&mut self.stdout).expect("reply from child") {
            Resp::Err(e) => panic!("{cmd:?} failed in the child: {e}"),
            resp => resp,
        }
    }

    /// Flush-and-drop, then wait for the process to end (releasing sled's lock).
    fn close(mut self) {
        assert!(matches!(self.call(&Cmd::Close), Resp::Done));
        let status = self.child.wait().expect("wait for child");
        assert!(status.success(), "child exit: {status}");
    }

    /// `SIGKILL`, whatever the child is doing.
    fn crash(mut self) {
        self.child.kill().expect("kill child");
        self.child.wait().expect("reap child");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The reference state machine: generates operations.

/// A payload to append: its bytes are made from this (and made unique by the oracle).
#[derive(Clone, Debug)]
struct PayloadSpec {
    len: usize,
    fill: u8,
}

#[derive(Clone, Debug)]
enum Transition {
    /// Append records and user state writes (key index, value byte or delete).
    Append {
        payloads: Vec<PayloadSpec>,
        state: Vec<(u8, Option<u8>)>,
    },
    Flush,
    /// Ack records picked among those pending at the time (an index past the end acks a
    /// seq that was never handed out; repeats ack twice).
    Ack(Vec<Index>),
    StatePut(u8, Option<u8>),
    /// Kill the process and reopen.
    Crash,
    /// Close cleanly and reopen.
    Reopen,
}

/// What generation needs to know: whether anything may be pending.
#[derive(Clone, Debug, Default)]
struct RefState {
    /// Records appended and not acked, counted as if nothing were ever lost in a crash
    /// (an upper bound of what is pending).
    may_be_pending: usize,
}

struct WalModel;

fn payload_spec() -> impl Strategy<Value = PayloadSpec> {
    let len = prop_oneof![
        30 => 0..200usize,
        // Now and then a payload big enough for sled to store it as a separate blob file.
        1 => 100_000..300_000usize,
    ];
    (len, any::<u8>()).prop_map(|(len, fill)| PayloadSpec { len, fill })
}

fn state_write() -> impl Strategy<Value = (u8, Option<u8>)> {
    (0..4u8, prop::option::weighted(0.8, any::<u8>()))
}

impl ReferenceStateMachine for WalModel {
    type State = RefState;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<RefState> {
        Just(RefState::default()).boxed()
    }

    fn transitions(state: &RefState) -> BoxedStrategy<Transition> {
        let append = (
            prop::collection::vec(payload_spec(), 0..4),
            prop::collection::vec(state_write(), 0..3),
        )
            .prop_map(|(payloads, state)| Transition::Append { payloads, state });
        let ack = prop::collection::vec(any::<Index>(), 1..4).prop_map(Transition::Ack);
        let ack_weight = if state.may_be_pending > 0 { 4 } else { 0 };
        prop_oneof![
            6 => append,
            2 => Just(Transition::Flush),
            ack_weight => ack,
            1 => state_write().prop_map(|(k, v)| Transition::StatePut(k, v)),
            2 => Just(Transition::Crash),
            1 => Just(Transition::Reopen),
        ]
        .boxed()
    }

    fn preconditions(state: &RefState, t: &Transition) -> bool {
        !matches!(t, Transition::Ack(_)) || state.may_be_pending > 0
    }

    fn apply(mut state: RefState, t: &Transition) -> RefState {
        match t {
            Transition::Append { payloads, .. } => state.may_be_pending += payloads.len(),
            Transition::Ack(picks) => {
                state.may_be_pending = state.may_be_pending.saturating_sub(picks.len())
            }
            _ => {}
        }
        state
    }
}

// ---------------------------------------------------------------------------------------
// The system under test and the oracle.

type Records = BTreeMap<Seq, Arc<[u8]>>;
type State = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Contents {
    records: Records,
    state: State,
}

struct Sut {
    dir: tempfile::TempDir,
    /// The child holding the WAL (in a cell: `check_invariants` only gets `&Sut`).
    proc: RefCell<Option<Proc>>,
    /// What the WAL holds now, exactly.
    now: Contents,
    /// `now` at the last flush (or recovery), then after each mutating operation since.
    since_flush: Vec<Contents>,
    /// Every payload ever appended.
    ever_appended: BTreeSet<Arc<[u8]>>,
    /// Highest seq ever handed out.
    max_seq: Option<Seq>,
    appends: u64,
}

impl Sut {
    fn call(&self, cmd: &Cmd) -> Resp {
        self.proc
            .borrow_mut()
            .as_mut()
            .expect("a child is running")
            .call(cmd)
    }

    fn take_proc(&mut self) -> Proc {
        self.proc.get_mut().take().expect("a child is running")
    }

    fn dump(&self) -> Dump {
        match self.call(&Cmd::Dump) {
            Resp::Dump(d) => d,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn mutated(&mut self) {
        self.since_flush.push(self.now.clone());
    }

    fn flushed(&mut self) {
        self.since_flush = vec![self.now.clone()];
    }

    fn contents_of(d: &Dump) -> Contents {
        Contents {
            records: d
                .records
                .iter()
                .map(|(s, p)| (*s, Arc::from(p.as_slice())))
                .collect(),
            state: d.state.clone(),
        }
    }

    fn check_matches_now(&self, when: &str) {
        let d = self.dump();
        assert!(
            d.quarantined.is_empty(),
            "{when}: quarantined {:?}",
            d.quarantined
        );
        let got = Self::contents_of(&d);
        assert_eq!(got, self.now, "{when}: WAL contents differ from the model");
        assert_eq!(d.pending_records, self.now.records.len() as u64, "{when}");
        let bytes: usize = self.now.records.values().map(|p| p.len()).sum();
        assert_eq!(d.pending_bytes, bytes as u64, "{when}");
        assert_eq!(
            d.oldest_pending,
            self.now.records.keys().next().copied(),
            "{when}"
        );
    }

    fn payload(&mut self, spec: &PayloadSpec) -> Vec<u8> {
        // Unique per append so that a misplaced or invented record cannot pass for another.
        self.appends += 1;
        let mut p = self.appends.to_le_bytes().to_vec();
        p.extend((0..spec.len).map(|i| spec.fill.wrapping_add(i as u8)));
        p
    }

    fn reopen(&mut self) {
        *self.proc.get_mut() = Some(Proc::spawn(self.dir.path()));
    }

    fn after_crash(&mut self) {
        let d = self.dump();
        assert!(
            d.quarantined.is_empty(),
            "crash: quarantined {:?}",
            d.quarantined
        );
        let got = Self::contents_of(&d);
        let durable = &self.since_flush[0];
        for (seq, p) in &durable.records {
            if self.since_flush.iter().all(|c| c.records.contains_key(seq)) {
                assert_eq!(
                    got.records.get(seq),
                    Some(p),
                    "crash lost record {seq}, flushed and never acked"
                );
            }
        }
        for (seq, p) in &got.records {
            assert!(
                self.ever_appended.contains(p),
                "crash invented record {seq}: {p:?}"
            );
        }
        assert!(
            self.since_flush.contains(&got),
            "crash recovered a state that is not a prefix of the operations since the \
             last flush:\n got {got:?}\n candidates {:?}",
            self.since_flush
        );
        assert_eq!(d.pending_records, got.records.len() as u64);
        // Adopt what was recovered: it is on disk now.
        self.now = got;
        self.flushed();
    }
}

impl StateMachineTest for WalModel {
    type SystemUnderTest = Sut;
    type Reference = WalModel;

    fn init_test(_: &RefState) -> Sut {
        let dir = tempfile::tempdir().expect("tempdir");
        let proc = Proc::spawn(dir.path());
        let now = Contents {
            records: Records::new(),
            state: State::new(),
        };
        Sut {
            dir,
            proc: RefCell::new(Some(proc)),
            since_flush: vec![now.clone()],
            now,
            ever_appended: BTreeSet::new(),
            max_seq: None,
            appends: 0,
        }
    }

    fn apply(mut sut: Sut, _: &RefState, t: Transition) -> Sut {
        match t {
            Transition::Append { payloads, state } => {
                let payloads: Vec<Vec<u8>> = payloads.iter().map(|s| sut.payload(s)).collect();
                let state: Vec<(Vec<u8>, Option<Vec<u8>>)> = state
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            format!("key{k}").into_bytes(),
                            v.map(|v| vec![v; usize::from(v % 7) + 1]),
                        )
                    })
                    .collect();
                let cmd = Cmd::Append {
                    payloads: payloads.clone(),
                    state: state.clone(),
                };
                let Resp::Seqs(seqs) = sut.call(&cmd) else {
                    panic!("append: no seqs")
                };
                assert_eq!(seqs.len(), payloads.len());
                for (seq, p) in seqs.iter().zip(payloads) {
                    assert!(
                        sut.max_seq.is_none_or(|m| *seq > m),
                        "seq {seq} not above every earlier seq ({:?})",
                        sut.max_seq
                    );
                    sut.max_seq = Some(*seq);
                    let p: Arc<[u8]> = p.into();
                    sut.ever_appended.insert(p.clone());
                    sut.now.records.insert(*seq, p);
                }
                for (k, v) in state {
                    match v {
                        Some(v) => sut.now.state.insert(k, v),
                        None => sut.now.state.remove(&k),
                    };
                }
                sut.mutated();
            }
            Transition::Flush => {
                sut.call(&Cmd::Flush);
                sut.flushed();
            }
            Transition::Ack(picks) => {
                let pending: Vec<Seq> = sut.now.records.keys().copied().collect();
                let seqs: Vec<Seq> = picks
                    .iter()
                    .map(|i| {
                        pending
                            .get(i.index(pending.len() + 1))
                            .copied()
                            .unwrap_or(u64::MAX - 1)
                    })
                    .collect();
                sut.call(&Cmd::Ack(seqs.clone()));
                // `ack` removes each record on its own (documented): a crash may keep the
                // removal of the first records of the slice and not of the later ones.
                for s in seqs {
                    sut.now.records.remove(&s);
                    sut.mutated();
                }
            }
            Transition::StatePut(k, v) => {
                let k = format!("key{k}").into_bytes();
                let v = v.map(|v| vec![v; 3]);
                sut.call(&Cmd::StatePut(k.clone(), v.clone()));
                match v {
                    Some(v) => sut.now.state.insert(k, v),
                    None => sut.now.state.remove(&k),
                };
                sut.mutated();
            }
            Transition::Crash => {
                sut.take_proc().crash();
                sut.reopen();
                sut.after_crash();
            }
            Transition::Reopen => {
                sut.take_proc().close();
                sut.reopen();
                sut.check_matches_now("after a clean reopen");
                sut.flushed();
            }
        }
        sut
    }

    fn check_invariants(sut: &Sut, _: &RefState) {
        sut.check_matches_now("after a step");
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(20)
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2_000,
        .. ProptestConfig::default()
    })]

    #[test]
    fn wal_matches_model_across_crashes(sequential 1..40 => WalModel);
}
