//! The agent's threads, watched: never a silent zombie.
//!
//! Promises:
//! - a thread that ends with an error (or panics) has its error reported **at once**, by the
//!   thread itself ([`AgentEvents::thread_failed`]), and asks every other thread to stop (it
//!   triggers the shared [`Shutdown`]);
//! - once shutdown is asked for (by a signal or by a failed thread), [`Workers::stop`] waits at
//!   most until a deadline for the threads to end, then runs the final WAL flush on a thread of
//!   its own, bounded by the same deadline. A thread or a flush stuck in the storage layer
//!   (sled blocks forever in a flush when its disk failed) makes the agent return an error
//!   naming it, instead of blocking: the process exits non-zero, and its supervisor restarts it.
//!   Nothing is lost by giving up: whatever was not flushed is read again from the files.
//!
//! For tests, debug builds read `LOGSHIP_TEST_FAULT` (comma-separated `<thread>:<fault>[:<after_ms>]`,
//! thread `reader`, `shipper` or `monitor`, fault `error`, `panic` or `hang`): that thread fails
//! that way after `after_ms` (default 0) instead of doing its work. Release builds never read it.
//!
//! A failed thread also turns `/health` 503 at once (component `agent`, no grace period); the
//! agent's endpoint keeps answering until the process exits.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::sync::Arc;

use anyhow::Context as _;
use logship_wal::Wal;

use super::events::AgentEvents;
use crate::shutdown::Shutdown;

/// How often the watcher looks at its threads while stopping.
const POLL: Duration = Duration::from_millis(20);

/// The agent's threads, started through [`Workers::spawn`].
pub struct Workers {
    threads: Vec<(&'static str, JoinHandle<Result<(), String>>)>,
    events: Arc<dyn AgentEvents>,
}

impl Workers {
    /// No threads yet; their endings are reported to `events`.
    pub fn new(events: Arc<dyn AgentEvents>) -> Workers {
        Workers {
            threads: Vec::new(),
            events,
        }
    }

    /// Starts thread `name` (shown as `logship-<name>`) running `body`. When `body` returns an
    /// error or panics, the thread logs it at once and triggers `shutdown`; when it returns
    /// `Ok`, it triggers `shutdown` only if `stops_agent` (the reader and the shipper: the agent
    /// is pointless without either).
    pub fn spawn(
        &mut self,
        name: &'static str,
        stops_agent: bool,
        shutdown: &Shutdown,
        body: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown = shutdown.clone();
        let events = self.events.clone();
        let handle = std::thread::Builder::new()
            .name(format!("logship-{name}"))
            .spawn(move || {
                let outcome = match catch_unwind(AssertUnwindSafe(|| {
                    inject_fault(name, &shutdown)?;
                    body()
                })) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(format!("{error:#}")),
                    Err(panic) => Err(format!("panicked: {}", panic_message(&panic))),
                };
                match &outcome {
                    Ok(()) if stops_agent && !shutdown.is_triggered() => {
                        events.thread_ended(name);
                        shutdown.trigger();
                    }
                    Ok(()) => {}
                    Err(error) => {
                        events.thread_failed(name, error);
                        shutdown.trigger();
                    }
                }
                outcome
            })
            .with_context(|| format!("cannot start the {name} thread"))?;
        self.threads.push((name, handle));
        Ok(())
    }

    /// Adds a thread started elsewhere (the etcd thread), watched the same way while stopping.
    pub fn adopt(&mut self, name: &'static str, handle: JoinHandle<()>) -> anyhow::Result<()> {
        let handle = std::thread::Builder::new()
            .name(format!("logship-{name}-join"))
            .spawn(move || {
                handle
                    .join()
                    .map_err(|panic| format!("panicked: {}", panic_message(&panic)))
            })
            .with_context(|| format!("cannot watch the {name} thread"))?;
        self.threads.push((name, handle));
        Ok(())
    }

    /// Waits until `shutdown` is triggered, then at most `budget` for every thread to end and
    /// for the final WAL flush. Returns the first thread's error, or why the stop was cut short.
    ///
    /// When this returns an error the WAL handle is deliberately leaked: sled flushes when its
    /// last handle drops, and that flush may block forever on the very failure being reported.
    pub fn stop(self, shutdown: &Shutdown, budget: Duration, wal: Wal) -> anyhow::Result<()> {
        shutdown.wait_blocking();
        let deadline = Instant::now() + budget;
        let mut first_error: Option<anyhow::Error> = None;
        let mut stuck = Vec::new();
        for (name, handle) in self.threads {
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            if !handle.is_finished() {
                stuck.push(name);
                continue;
            }
            let outcome = handle
                .join()
                .unwrap_or_else(|_| Err("panicked while reporting".to_string()));
            if let Err(error) = outcome {
                first_error.get_or_insert_with(|| anyhow::anyhow!("{name} failed: {error}"));
            }
        }
        if !stuck.is_empty() {
            let error = anyhow::anyhow!(
                "thread(s) {} did not stop within {} ms; exiting without them (nothing is lost: \
                 what was not committed is read again from the files at the next start)",
                stuck.join(", "),
                budget.as_millis()
            );
            std::mem::forget(wal);
            return Err(match first_error {
                Some(first) => first.context(error),
                None => error,
            });
        }
        let flushed = bounded_flush(&wal, deadline.saturating_duration_since(Instant::now()));
        match (first_error, flushed) {
            (None, Ok(())) => Ok(()),
            (Some(error), Ok(())) => Err(error),
            (None, Err(flush)) => {
                std::mem::forget(wal);
                Err(flush)
            }
            (Some(error), Err(flush)) => {
                std::mem::forget(wal);
                Err(error.context(format!("{flush:#}")))
            }
        }
    }
}

/// Runs `wal.flush()` on a thread of its own and waits at most `limit` (at least 1 s) for it.
fn bounded_flush(wal: &Wal, limit: Duration) -> anyhow::Result<()> {
    let limit = limit.max(Duration::from_secs(1));
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let flushing = wal.clone();
    std::thread::Builder::new()
        .name("logship-final-flush".into())
        .spawn(move || {
            let result = flushing.flush();
            if result.is_err() {
                // A failed store must not be dropped (its drop flushes again, maybe forever).
                std::mem::forget(flushing);
            }
            let _ = tx.send(result);
        })
        .context("cannot start the final WAL flush")?;
    match rx.recv_timeout(limit) {
        Ok(result) => result.context("final WAL flush failed"),
        Err(_) => Err(anyhow::anyhow!(
            "final WAL flush did not finish within {} ms (the disk may be full or failing)",
            limit.as_millis()
        )),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_string()
    }
}

/// The test-only fault hook (see the module documentation); a no-op in release builds.
fn inject_fault(thread: &str, shutdown: &Shutdown) -> anyhow::Result<()> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    let Ok(specs) = std::env::var("LOGSHIP_TEST_FAULT") else {
        return Ok(());
    };
    let Some(spec) = specs
        .split(',')
        .find(|spec| spec.split(':').next() == Some(thread))
    else {
        return Ok(());
    };
    let mut parts = spec.split(':').skip(1);
    let fault = parts.next().unwrap_or("error");
    let after = parts.next().and_then(|ms| ms.parse().ok()).unwrap_or(0);
    std::thread::sleep(Duration::from_millis(after));
    match fault {
        // The injected panic is the point: it proves a panicking thread is reported at once.
        #[allow(clippy::panic)]
        "panic" => panic!("injected fault: {thread} panics"),
        "hang" => loop {
            // Ignores shutdown on purpose: a thread stuck in a system call.
            let _ = shutdown;
            std::thread::sleep(Duration::from_secs(3600));
        },
        _ => Err(anyhow::anyhow!("injected fault: {thread} fails")),
    }
}
