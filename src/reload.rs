//! Reload requests: a SIGHUP, or a change to a watched credentials file, bumps one generation
//! number; everything that holds a secret or certificate (the Elasticsearch client, the Kafka
//! producer and consumer, TLS listeners) follows it and re-reads its files.
//!
//! Promise: a reload never makes things worse. A component that cannot read its new files keeps
//! what it has and logs why; nothing queued or unacknowledged is dropped by a switch (see each
//! component). SIGHUP no longer stops a role: without this, its default action would kill it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How long file events are gathered before one reload (editors and `cp` write in steps).
const SETTLE: Duration = Duration::from_millis(500);

/// The shared reload trigger (cheap to clone).
#[derive(Debug, Clone)]
pub struct Reload {
    tx: Arc<watch::Sender<u64>>,
}

impl Default for Reload {
    fn default() -> Self {
        Reload::new()
    }
}

/// What starts a reload, for the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// `kill -HUP`.
    Sighup,
    /// A watched file changed.
    FileChanged,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cause::Sighup => "SIGHUP",
            Cause::FileChanged => "a credentials file changed",
        })
    }
}

/// Keeps a file watch alive; dropping it stops watching.
pub struct FileWatch {
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Reload {
    /// A trigger at generation 0.
    pub fn new() -> Reload {
        Reload {
            tx: Arc::new(watch::channel(0).0),
        }
    }

    /// Asks every follower to reload.
    pub fn trigger(&self, cause: Cause) {
        tracing::info!(%cause, "reloading certificates and credentials");
        self.tx.send_modify(|generation| *generation += 1);
    }

    /// The current generation (blocking followers compare it with the one they applied).
    pub fn generation(&self) -> u64 {
        *self.tx.borrow()
    }

    /// A receiver that wakes on every reload (async followers).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Triggers on every SIGHUP. Needs a tokio runtime; the task lives as long as it.
    pub fn on_sighup(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        let reload = self.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                reload.trigger(Cause::Sighup);
            }
        });
        Ok(())
    }

    /// Triggers when one of `files` is written, replaced or removed (their directories are
    /// watched, so a file replaced by a rename is seen too). Needs a tokio runtime.
    pub fn on_changes(&self, files: Vec<PathBuf>) -> notify::Result<FileWatch> {
        use notify::{RecursiveMode, Watcher as _};
        if files.is_empty() {
            return Ok(FileWatch { _watcher: None });
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let watched: Vec<PathBuf> = files.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if event.kind.is_access() {
                    return;
                }
                if event
                    .paths
                    .iter()
                    .any(|path| watched.iter().any(|file| same_name(path, file)))
                {
                    let _ = tx.send(());
                }
            })?;
        let mut dirs: Vec<&Path> = files.iter().filter_map(|f| f.parent()).collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        let reload = self.clone();
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                tokio::time::sleep(SETTLE).await;
                while rx.try_recv().is_ok() {}
                reload.trigger(Cause::FileChanged);
            }
        });
        Ok(FileWatch {
            _watcher: Some(watcher),
        })
    }
}

impl Reload {
    /// [`Reload::on_changes`], or, when the files cannot be watched, a warning that SIGHUP is
    /// the way to reload (a role does not stop for it).
    pub fn watch_files(&self, files: Vec<PathBuf>) -> Option<FileWatch> {
        match self.on_changes(files) {
            Ok(watch) => Some(watch),
            Err(error) => {
                tracing::warn!(%error, "cannot watch the credentials files: reload them with SIGHUP");
                None
            }
        }
    }
}

/// Whether `event_path` is `file` (compared by directory and name, as events carry the watched
/// directory's spelling).
fn same_name(event_path: &Path, file: &Path) -> bool {
    event_path.file_name() == file.file_name()
        && match (event_path.parent(), file.parent()) {
            (Some(a), Some(b)) => a == b || a.canonicalize().ok() == b.canonicalize().ok(),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_changed_file_triggers_one_reload_and_other_files_none() {
        let dir = tempfile::tempdir().unwrap();
        let watched = dir.path().join("password");
        std::fs::write(&watched, "one").unwrap();
        let reload = Reload::new();
        let mut changes = reload.subscribe();
        let _watch = reload.on_changes(vec![watched.clone()]).unwrap();
        std::fs::write(dir.path().join("unrelated"), "x").unwrap();
        tokio::time::sleep(SETTLE * 3).await;
        assert_eq!(reload.generation(), 0, "another file is ignored");
        // Replaced by a rename, as careful tools do.
        let next = dir.path().join("password.new");
        std::fs::write(&next, "two").unwrap();
        std::fs::rename(&next, &watched).unwrap();
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .expect("a reload within 5 s")
            .unwrap();
        tokio::time::sleep(SETTLE * 2).await;
        assert_eq!(reload.generation(), 1, "one reload for one change");
        reload.trigger(Cause::Sighup);
        assert_eq!(reload.generation(), 2);
    }
}
