//! One policy for poisoned locks, used by every component.
//!
//! A `Mutex` is poisoned when a thread panicked while holding it. logship never panics on a
//! path real input can reach, and every critical section in it leaves its data consistent
//! before anything that could panic (it updates, then notifies), so the data behind a poisoned
//! lock is still right: [`lock`] takes it and carries on. What it never does is skip the work
//! (a push not queued, an acknowledgement not recorded), which would lose or stall lines
//! silently.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Locks `mutex`, also when it is poisoned.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Waits on `condvar` for at most `timeout`, also when the lock is poisoned; returns the guard.
pub fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    match condvar.wait_timeout(guard, timeout) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_poisoned_lock_still_gives_its_data() {
        let shared = Arc::new(Mutex::new(vec![1]));
        let holder = shared.clone();
        let _ = std::thread::spawn(move || {
            let mut data = holder.lock().unwrap();
            data.push(2);
            panic!("poisons the lock");
        })
        .join();
        assert!(shared.is_poisoned());
        lock(&shared).push(3);
        assert_eq!(*lock(&shared), vec![1, 2, 3]);
        let condvar = Condvar::new();
        let guard = wait_timeout(&condvar, lock(&shared), Duration::from_millis(1));
        assert_eq!(guard.len(), 3);
    }
}
