//! A shutdown signal shared by async tasks and blocking threads.
//!
//! `main` triggers it on SIGTERM/SIGINT; every long-running loop checks it (blocking code with
//! [`Shutdown::is_triggered`] or waits on it with [`Shutdown::wait_timeout`] — woken at once,
//! never polling — async code by awaiting [`Shutdown::wait`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::sync::{lock, wait_timeout};

use tokio::sync::watch;

/// Cloneable handle: any clone may trigger, every clone observes.
#[derive(Clone, Debug)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    sender: Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
    /// Blocking threads wait on this (the `bool` mirrors `flag`).
    blocking: Arc<(Mutex<bool>, Condvar)>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that has not been triggered yet.
    pub fn new() -> Self {
        let (sender, receiver) = watch::channel(false);
        Shutdown {
            flag: Arc::new(AtomicBool::new(false)),
            sender: Arc::new(sender),
            receiver,
            blocking: Arc::new((Mutex::new(false), Condvar::new())),
        }
    }

    /// Ask every holder to stop. Idempotent.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.sender.send_replace(true);
        let (triggered, woken) = &*self.blocking;
        *lock(triggered) = true;
        woken.notify_all();
    }

    /// Blocks the calling thread until shutdown is asked for or `timeout` passed, whichever
    /// comes first; returns whether shutdown was asked for. Woken at once by [`Shutdown::trigger`].
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let (triggered, woken) = &*self.blocking;
        let mut guard = lock(triggered);
        while !*guard {
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                break;
            }
            guard = wait_timeout(woken, guard, left);
        }
        *guard
    }

    /// Blocks the calling thread until shutdown is asked for.
    pub fn wait_blocking(&self) {
        while !self.wait_timeout(Duration::from_secs(3600)) {}
    }

    /// Whether shutdown was asked for (cheap; for blocking loops).
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Completes once shutdown is asked for.
    pub async fn wait(&self) {
        let mut receiver = self.receiver.clone();
        // An error means every sender is gone, which cannot happen while `self` holds one.
        let _ = receiver.wait_for(|triggered| *triggered).await;
    }

    /// Installs SIGTERM and SIGINT handlers that trigger this signal (needs a tokio runtime).
    pub fn trigger_on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            }
            shutdown.trigger();
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_is_seen_by_clones_sync_and_async() {
        let shutdown = Shutdown::new();
        let observer = shutdown.clone();
        assert!(!observer.is_triggered());
        let waiter = tokio::spawn(async move { observer.wait().await });
        shutdown.trigger();
        waiter.await.unwrap();
        assert!(shutdown.is_triggered());
    }

    #[test]
    fn a_blocked_thread_is_woken_by_trigger_not_by_its_timeout() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.wait_timeout(Duration::from_millis(10)));
        let observer = shutdown.clone();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Waits in one-hour slices: only a wake-up ends it within the test's bound.
            observer.wait_blocking();
            let _ = done.send(observer.wait_timeout(Duration::from_secs(3600)));
        });
        shutdown.trigger();
        assert_eq!(finished.recv_timeout(Duration::from_secs(30)), Ok(true));
        assert!(shutdown.wait_timeout(Duration::ZERO));
    }
}
