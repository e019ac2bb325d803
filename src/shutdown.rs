//! A shutdown signal shared by async tasks and blocking threads.
//!
//! `main` triggers it on SIGTERM/SIGINT; every long-running loop checks it (blocking code with
//! [`Shutdown::is_triggered`], async code by awaiting [`Shutdown::wait`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// Cloneable handle: any clone may trigger, every clone observes.
#[derive(Clone, Debug)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    sender: Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
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
        }
    }

    /// Ask every holder to stop. Idempotent.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.sender.send_replace(true);
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
}
