//! Which files to collect: the collect entries' globs, evaluated on every rescan.
//!
//! A rescan is the truth; inotify events (through `notify`) only make the next rescan and read
//! happen sooner. Events can be lost (queue overflow, a directory created later), rescans cannot.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use notify::{RecursiveMode, Watcher};

use super::events::AgentEvents;
use super::multiline::Joiner;
use super::tailer::Collected;
use crate::config::{CollectEntry, StartPosition};

impl Candidate {
    /// How the file is collected, for its tailer.
    pub fn collected(&self) -> Collected {
        Collected {
            path: self.path.clone(),
            topic: self.topic.clone(),
            joiner: self.joiner.clone(),
            fields: self.fields.clone(),
        }
    }
}

/// A file that matched a collect entry in the latest scan.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The path it matched under.
    pub path: PathBuf,
    /// The topic of the entry it matched.
    pub topic: String,
    /// Where to start if it has no checkpoint.
    pub start_position: StartPosition,
    /// The entry's `multiline`, compiled.
    pub joiner: Option<Arc<Joiner>>,
    /// The entry's static `fields`.
    pub fields: Arc<Vec<(String, String)>>,
}

struct CompiledEntry {
    entry: CollectEntry,
    excludes: Vec<glob::Pattern>,
    start_position: StartPosition,
    joiner: Option<Arc<Joiner>>,
    fields: Arc<Vec<(String, String)>>,
}

/// Evaluates the collect entries.
pub struct Discovery {
    entries: Vec<CompiledEntry>,
}

impl Discovery {
    /// Compiles the entries (already validated by the config layer; invalid globs are skipped
    /// and reported rather than stopping the agent, and so is a `multiline` that does not
    /// compile: its files are then read line by line).
    pub fn new(
        entries: &[CollectEntry],
        default_start: StartPosition,
        events: &dyn AgentEvents,
    ) -> Discovery {
        let entries = entries
            .iter()
            .map(|entry| CompiledEntry {
                excludes: entry
                    .exclude
                    .iter()
                    .filter_map(|e| glob::Pattern::new(e).ok())
                    .collect(),
                start_position: entry.start_position.unwrap_or(default_start),
                joiner: entry.multiline.as_ref().and_then(|multiline| {
                    Joiner::new(multiline)
                        .map_err(|error| events.invalid_entry(&entry.path, &error.to_string()))
                        .ok()
                        .map(Arc::new)
                }),
                fields: Arc::new(
                    entry
                        .fields
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                entry: entry.clone(),
            })
            .collect();
        Discovery { entries }
    }

    /// Regular files matching any entry, first entry winning when several match one path. An
    /// entry whose glob cannot be used is skipped and reported.
    pub fn scan(&self, events: &dyn AgentEvents) -> Vec<Candidate> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for compiled in &self.entries {
            let paths = match glob::glob(&compiled.entry.path) {
                Ok(paths) => paths,
                Err(error) => {
                    events.invalid_entry(&compiled.entry.path, &error.to_string());
                    continue;
                }
            };
            for path in paths.flatten() {
                if compiled.excludes.iter().any(|e| e.matches_path(&path)) {
                    continue;
                }
                let is_file = std::fs::metadata(&path)
                    .map(|m| m.is_file())
                    .unwrap_or(false);
                if is_file && seen.insert(path.clone()) {
                    out.push(Candidate {
                        path,
                        topic: compiled.entry.topic.clone(),
                        start_position: compiled.start_position,
                        joiner: compiled.joiner.clone(),
                        fields: compiled.fields.clone(),
                    });
                }
            }
        }
        out
    }

    /// How the first entry whose glob matches `path` collects it (excludes ignored: used for
    /// files that matched once and were renamed).
    pub fn collected_for(&self, path: &Path) -> Option<Collected> {
        self.entries
            .iter()
            .find(|c| glob::Pattern::new(&c.entry.path).is_ok_and(|p| p.matches_path(path)))
            .map(|c| Collected {
                path: path.to_path_buf(),
                topic: c.entry.topic.clone(),
                joiner: c.joiner.clone(),
                fields: c.fields.clone(),
            })
    }

    /// Directories worth watching: the longest literal prefix of each glob.
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .entries
            .iter()
            .map(|c| literal_dir(&c.entry.path))
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }
}

/// The deepest directory of `pattern` that contains no glob metacharacter.
fn literal_dir(pattern: &str) -> PathBuf {
    let mut dir = PathBuf::from("/");
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    for (index, part) in parts.iter().enumerate() {
        let last = index + 1 == parts.len();
        if last || part.contains(['*', '?', '[', '{']) {
            break;
        }
        dir.push(part);
    }
    dir
}

/// What an inotify event asks of the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventEffect {
    /// Nothing: someone (often the agent itself) opened, read or closed a file.
    Ignore,
    /// A file grew or was truncated: read now instead of at the next idle timeout.
    Read,
    /// Files may have appeared, gone or been renamed: rescan the globs.
    Rescan,
}

/// Classifies an event. Access events (open, read, close) must never wake the reader: its
/// own `opendir` and reads cause them, and reacting to them made the agent spin on itself.
pub fn event_effect(kind: &notify::EventKind) -> EventEffect {
    use notify::event::ModifyKind;
    use notify::EventKind;
    match kind {
        EventKind::Access(_) => EventEffect::Ignore,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_)) => EventEffect::Read,
        EventKind::Create(_)
        | EventKind::Remove(_)
        | EventKind::Modify(_)
        | EventKind::Any
        | EventKind::Other => EventEffect::Rescan,
    }
}

/// Watches directories with inotify: raises a flag (rescan) when files may have appeared, gone
/// or been renamed, and wakes the reader when one grew (see [`event_effect`]).
pub struct ChangeWatcher {
    watcher: Option<notify::RecommendedWatcher>,
    watched: HashSet<PathBuf>,
    changed: Arc<AtomicBool>,
}

impl ChangeWatcher {
    /// A watcher that sets `changed` and pokes `wake` as [`event_effect`] says (a watcher error
    /// counts as a rescan). If inotify is not available (reported to `events`) the agent still
    /// works from rescans alone.
    pub fn new(wake: SyncSender<()>, events: &dyn AgentEvents) -> ChangeWatcher {
        let changed = Arc::new(AtomicBool::new(true));
        let flag = changed.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let effect = match &event {
                Ok(event) => event_effect(&event.kind),
                Err(_) => EventEffect::Rescan,
            };
            match effect {
                EventEffect::Ignore => return,
                EventEffect::Read => {}
                EventEffect::Rescan => flag.store(true, Ordering::SeqCst),
            }
            let _ = wake.try_send(());
        });
        let watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                events.inotify_unavailable(&error.to_string());
                None
            }
        };
        ChangeWatcher {
            watcher,
            watched: HashSet::new(),
            changed,
        }
    }

    /// Starts watching any of `dirs` not watched yet (directories may appear later); one that
    /// cannot be watched is reported and tried again next time.
    pub fn watch(&mut self, dirs: &[PathBuf], events: &dyn AgentEvents) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for dir in dirs {
            if self.watched.contains(dir) || !Path::new(dir).is_dir() {
                continue;
            }
            match watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(dir.clone());
                }
                Err(error) => events.watch_failed(dir, &error.to_string()),
            }
        }
    }

    /// Whether an event arrived since the last call.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_own_opens_and_reads_neither_rescan_nor_wake() {
        use std::io::Read as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.log");
        std::fs::write(&file, "line\n").unwrap();
        let (wake_tx, wake_rx) = std::sync::mpsc::sync_channel(1);
        let events = crate::agent::report::Reported::default();
        let mut watcher = ChangeWatcher::new(wake_tx, &events);
        watcher.watch(&[dir.path().to_path_buf()], &events);
        let settle = || std::thread::sleep(std::time::Duration::from_millis(300));
        settle();
        watcher.take_changed();
        while wake_rx.try_recv().is_ok() {}

        // What a rescan and a read do: list the directory, open and read the file.
        for _ in 0..3 {
            let _ = std::fs::read_dir(dir.path()).unwrap().count();
            let mut text = String::new();
            std::fs::File::open(&file)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
        }
        settle();
        assert!(
            !watcher.take_changed(),
            "opening and reading asked for a rescan"
        );
        assert!(
            wake_rx.try_recv().is_err(),
            "opening and reading woke the reader"
        );

        // A new file asks for a rescan; growth only wakes the reader.
        std::fs::write(dir.path().join("b.log"), "x\n").unwrap();
        settle();
        assert!(watcher.take_changed());
        while wake_rx.try_recv().is_ok() {}
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"more\n"))
            .unwrap();
        settle();
        assert!(!watcher.take_changed());
        assert!(wake_rx.try_recv().is_ok());
    }

    #[test]
    fn literal_dir_stops_at_first_glob() {
        assert_eq!(
            literal_dir("/var/log/nginx/*.log"),
            PathBuf::from("/var/log/nginx")
        );
        assert_eq!(literal_dir("/var/log/*/x.log"), PathBuf::from("/var/log"));
        assert_eq!(literal_dir("/var/log/app.log"), PathBuf::from("/var/log"));
    }

    #[test]
    fn scan_matches_files_applies_excludes_and_first_entry_wins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        std::fs::write(dir.path().join("a.log"), b"x\n").unwrap();
        std::fs::write(dir.path().join("b.log"), b"x\n").unwrap();
        std::fs::write(dir.path().join("c.gz"), b"x\n").unwrap();
        std::fs::create_dir(dir.path().join("d.log")).unwrap();
        let entries = vec![
            CollectEntry {
                path: format!("{root}/*.log"),
                topic: "first".into(),
                exclude: vec![format!("{root}/b.log")],
                start_position: None,
                multiline: None,
                fields: Default::default(),
            },
            CollectEntry {
                path: format!("{root}/*"),
                topic: "second".into(),
                exclude: vec![],
                start_position: Some(StartPosition::End),
                multiline: None,
                fields: Default::default(),
            },
        ];
        let events = crate::agent::report::Reported::default();
        let found = Discovery::new(&entries, StartPosition::Beginning, &events).scan(&events);
        let names: Vec<(String, String)> = found
            .iter()
            .map(|c| {
                (
                    c.path.file_name().unwrap().to_string_lossy().into_owned(),
                    c.topic.clone(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("a.log".to_string(), "first".to_string()),
                ("b.log".to_string(), "second".to_string()),
                ("c.gz".to_string(), "second".to_string()),
            ]
        );
        assert_eq!(found[1].start_position, StartPosition::End);
    }
}
