//! Configuration of a [`Wal`](crate::Wal).

use crate::WalError;

/// Default for [`WalOptions::max_bytes`]: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// How a [`Wal`](crate::Wal) behaves. Build with [`Default`] and the builder methods:
///
/// ```
/// let opts = logship_wal::WalOptions::default().max_bytes(64 << 20);
/// assert_eq!(opts.max_bytes, 64 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Soft cap on pending (appended, not yet acknowledged) payload bytes.
    ///
    /// Soft: [`Wal::append`](crate::Wal::append) never refuses a batch because of it (a
    /// refused append would be a lost line). It only drives
    /// [`Wal::is_full`](crate::Wal::is_full), which the caller uses for backpressure: stop
    /// reading input while the WAL is full. Must not be 0. Default [`DEFAULT_MAX_BYTES`].
    pub max_bytes: u64,
    /// Memory sled may use for its page cache ([`Wal::open`](crate::Wal::open) only). sled's
    /// own default is 1 GiB; a WAL is written once and read once, so a small cache costs
    /// little speed and keeps the process small. Default [`DEFAULT_CACHE_BYTES`].
    pub cache_bytes: u64,
}

/// Default for [`WalOptions::cache_bytes`]: 16 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 16 * 1024 * 1024;

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            max_bytes: DEFAULT_MAX_BYTES,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

impl WalOptions {
    /// Sets [`WalOptions::max_bytes`].
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets [`WalOptions::cache_bytes`].
    #[must_use]
    pub fn cache_bytes(mut self, cache_bytes: u64) -> Self {
        self.cache_bytes = cache_bytes;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), WalError> {
        if self.max_bytes == 0 {
            return Err(WalError::InvalidOptions(
                "max_bytes must be > 0 (a WAL that is always full accepts nothing)",
            ));
        }
        Ok(())
    }
}
