//! The agent's open-files budget.
//!
//! The agent keeps every file it follows open (a renamed or deleted file is drained through its
//! open descriptor), so the soft `RLIMIT_NOFILE` bounds how many files it can follow at once. At
//! start it raises the soft limit to the hard one (as systemd's services and most daemons do;
//! raising the soft limit needs no privilege) and says how many files that allows. The reader
//! opens files only up to [`file_budget`] (the limit less [`RESERVED`] descriptors for the WAL,
//! Kafka and the endpoint); files beyond it, or that cannot be opened for lack of a descriptor,
//! wait for one: they are counted, shown on `/metrics` (`logship_agent_files_waiting`) and
//! logged once per interval, never once per file per retry. While files wait, the reader closes
//! every file read to its end (`FileServer::close_idle`), so that every file gets its turn.

use std::io;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors the agent needs besides the files it follows (sled's files, Kafka and etcd
/// connections, inotify, the HTTP endpoint), kept out of the number of files it can follow.
pub const RESERVED: u64 = 64;

/// Used when the hard limit is unlimited (Linux caps it at `fs.nr_open` anyway).
const UNLIMITED_TARGET: u64 = 1 << 20;

/// The soft open-files limit before and after [`raise_soft_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    /// The soft limit found at start (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit now.
    pub now: Option<u64>,
}

impl OpenFilesLimit {
    /// About how many files the agent can follow at once.
    pub fn files(&self) -> Option<u64> {
        self.now.map(|n| n.saturating_sub(RESERVED))
    }
}

/// Raises the soft open-files limit to the hard limit; returns both values. An error (a
/// platform refusing it) leaves the limit as it was.
pub fn raise_soft_limit() -> io::Result<OpenFilesLimit> {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    let target = limit.maximum.unwrap_or(UNLIMITED_TARGET);
    if before.is_some_and(|soft| soft >= target) {
        return Ok(OpenFilesLimit {
            before,
            now: before,
        });
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        },
    )?;
    Ok(OpenFilesLimit {
        before,
        now: getrlimit(Resource::Nofile).current,
    })
}

/// The soft open-files limit now (`None`: unlimited).
pub fn soft_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// How many files the agent may hold open now: the soft limit less [`RESERVED`] (`None`: no
/// limit). The reader opens no new file beyond it, so the agent never takes the descriptors its
/// WAL, its Kafka connections and its endpoint need.
pub fn file_budget() -> Option<usize> {
    soft_limit().map(|limit| limit.saturating_sub(RESERVED) as usize)
}

/// Whether `error` says the process (or the system) has no descriptor left.
pub fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let limit = raise_soft_limit().unwrap();
        let now = getrlimit(Resource::Nofile);
        assert_eq!(limit.now, now.current);
        if let Some(hard) = now.maximum {
            assert_eq!(now.current, Some(hard));
        }
        assert_eq!(soft_limit(), now.current);
        assert_eq!(limit.files(), limit.now.map(|n| n.saturating_sub(RESERVED)));
    }

    #[test]
    fn out_of_descriptors_is_recognised() {
        assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(!is_out_of_descriptors(&io::Error::from_raw_os_error(
            libc::ENOENT
        )));
    }
}
