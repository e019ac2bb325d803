//! Which collect entries the agent follows, from where (Vector's `PathsProvider`): the static
//! `[[collect]]` entries of the config file, and the entries a host gets from etcd. The reading
//! loop asks every provider between rounds and rebuilds its file discovery from all of their
//! entries (in provider order) whenever one changed.
//!
//! Durability of the central entries: every set of entries accepted from etcd is written to the
//! WAL state under [`CACHE_KEY`] and fsynced before the reader applies it, so an agent that
//! restarts while etcd is unreachable collects exactly what it collected before. A failure to
//! write the cache is reported and costs only the cache, never the entries in force.

use logship_wal::Wal;

use super::discovery::Discovery;
use super::events::AgentEvents;
use crate::config::{CollectEntry, StartPosition};
use crate::etcd::entries::{parse_allowed, CentralEntries};

/// WAL state key of the central entries last accepted (a JSON array, as accepted from etcd).
pub const CACHE_KEY: &[u8] = b"etcd/collect";

/// A source of collect entries.
pub trait PathsProvider: Send {
    /// The provider's entries if they changed since the previous call; the first call always
    /// returns them.
    fn changed(&mut self, events: &dyn AgentEvents) -> Option<Vec<CollectEntry>>;
}

/// The `[[collect]]` entries of the config file: given once, never changed while running
/// (changing them takes a restart).
#[derive(Debug, Clone)]
pub struct StaticPaths {
    entries: Option<Vec<CollectEntry>>,
}

impl StaticPaths {
    /// Provides `entries`.
    pub fn new(entries: Vec<CollectEntry>) -> StaticPaths {
        StaticPaths {
            entries: Some(entries),
        }
    }
}

impl PathsProvider for StaticPaths {
    fn changed(&mut self, _events: &dyn AgentEvents) -> Option<Vec<CollectEntry>> {
        self.entries.take()
    }
}

/// The entries the etcd watcher publishes, kept in the agent's WAL state.
#[derive(Debug)]
pub struct CentralPaths {
    entries: CentralEntries,
    wal: Wal,
    /// The generation of `entries` last returned (`None`: nothing returned yet).
    seen: Option<u64>,
    /// The generation of `entries` that the WAL state holds.
    kept: u64,
}

impl CentralPaths {
    /// Provides what the watcher publishes into `entries`, starting with the entries kept in
    /// `wal` by an earlier run (re-validated against today's `allowed_roots`; entries that no
    /// longer pass are dropped with an error event).
    pub fn load(
        entries: CentralEntries,
        wal: Wal,
        allowed_roots: &[String],
        events: &dyn AgentEvents,
    ) -> CentralPaths {
        match wal.state_get(CACHE_KEY) {
            Ok(Some(cached)) => match parse_allowed(&cached, allowed_roots) {
                Ok(cached) => {
                    events.etcd_cache_loaded(cached.len());
                    entries.publish(cached);
                }
                Err(error) => events.etcd_cache_trouble(&format!(
                    "the etcd entries kept from the last run are no longer valid and are \
                     ignored: {error}"
                )),
            },
            Ok(None) => {}
            Err(error) => events.etcd_cache_trouble(&format!(
                "cannot read the etcd entries kept from the last run: {error}"
            )),
        }
        let kept = entries.generation();
        CentralPaths {
            entries,
            wal,
            seen: None,
            kept,
        }
    }

    /// Writes `entries` to the WAL state and fsyncs it.
    fn keep(&self, entries: &[CollectEntry]) -> Result<(), String> {
        let json = serde_json::to_vec(entries)
            .map_err(|error| format!("cannot encode the etcd entries to keep: {error}"))?;
        self.wal
            .state_put(CACHE_KEY, Some(&json))
            .and_then(|()| self.wal.flush())
            .map_err(|error| format!("cannot keep the etcd entries in the WAL: {error}"))
    }
}

impl PathsProvider for CentralPaths {
    fn changed(&mut self, events: &dyn AgentEvents) -> Option<Vec<CollectEntry>> {
        let seen = self.seen.unwrap_or(u64::MAX);
        let (generation, entries) = self.entries.changed_since(seen)?;
        if generation != self.kept {
            match self.keep(&entries) {
                Ok(()) => self.kept = generation,
                Err(error) => events.etcd_cache_trouble(&error),
            }
        }
        self.seen = Some(generation);
        Some(entries)
    }
}

/// The paths providers, what each provided last, and the discovery built from all of them.
pub(crate) struct Sources {
    providers: Vec<Box<dyn PathsProvider>>,
    provided: Vec<Vec<CollectEntry>>,
    /// The discovery built from every provider's entries.
    pub(crate) discovery: Discovery,
}

impl Sources {
    /// Asks every provider for its entries and builds the discovery.
    pub(crate) fn new(
        mut providers: Vec<Box<dyn PathsProvider>>,
        start_position: StartPosition,
        events: &dyn AgentEvents,
    ) -> Sources {
        let provided: Vec<Vec<CollectEntry>> = providers
            .iter_mut()
            .map(|provider| provider.changed(events).unwrap_or_default())
            .collect();
        let discovery = Discovery::new(&provided.concat(), start_position, events);
        Sources {
            providers,
            provided,
            discovery,
        }
    }

    /// Asks every provider for changes and rebuilds the discovery from all their entries if
    /// one changed; returns whether one did.
    pub(crate) fn refresh(
        &mut self,
        start_position: StartPosition,
        events: &dyn AgentEvents,
    ) -> bool {
        let mut changed = false;
        for (provider, entries) in self.providers.iter_mut().zip(self.provided.iter_mut()) {
            if let Some(new) = provider.changed(events) {
                *entries = new;
                changed = true;
            }
        }
        if !changed {
            return false;
        }
        let all: Vec<CollectEntry> = self.provided.concat();
        events.entries_changed(all.len());
        self.discovery = Discovery::new(&all, start_position, events);
        true
    }
}

#[cfg(test)]
mod tests {
    use logship_wal::WalOptions;

    use super::*;
    use crate::agent::report::Reported;

    fn entry(path: &str) -> CollectEntry {
        CollectEntry {
            path: path.into(),
            topic: "t".into(),
            exclude: vec![],
            start_position: None,
            multiline: None,
            fields: Default::default(),
        }
    }

    #[test]
    fn static_entries_are_given_once() {
        let events = Reported::default();
        let mut paths = StaticPaths::new(vec![entry("/var/log/a.log")]);
        assert_eq!(paths.changed(&events).unwrap().len(), 1);
        assert!(paths.changed(&events).is_none());
    }

    #[test]
    fn central_entries_are_kept_in_the_wal_and_loaded_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let events = Reported::default();
        let roots = vec!["/var/log".to_string()];
        {
            let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
            let central = CentralEntries::default();
            let mut paths = CentralPaths::load(central.clone(), wal, &roots, &events);
            // Nothing kept yet: an empty list, then what the watcher publishes.
            assert_eq!(paths.changed(&events), Some(vec![]));
            assert!(paths.changed(&events).is_none());
            central.publish(vec![entry("/var/log/a.log")]);
            assert_eq!(paths.changed(&events), Some(vec![entry("/var/log/a.log")]));
            assert!(paths.changed(&events).is_none());
        }
        let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
        let mut paths = CentralPaths::load(CentralEntries::default(), wal, &roots, &events);
        assert_eq!(paths.changed(&events), Some(vec![entry("/var/log/a.log")]));
        // Kept entries outside today's allowed roots are dropped.
        drop(paths);
        let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
        let mut paths = CentralPaths::load(
            CentralEntries::default(),
            wal,
            &["/srv".to_string()],
            &events,
        );
        assert_eq!(paths.changed(&events), Some(vec![]));
    }
}
