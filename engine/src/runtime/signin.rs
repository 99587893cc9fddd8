//! What keeps sign-in from being the way to bring a node down or to guess a password.
//!
//! Password hashing (Argon2id, tens of milliseconds of CPU and 19 MiB each) runs on tokio's
//! blocking threads, at most [`hashing_slots`] at a time: a flood of logins waits its turn
//! without holding the async workers that serve every other page and `/healthz`.
//!
//! Failed sign-ins are counted per account, in this process: after [`FREE_FAILURES`] in a
//! row, each further attempt must wait, twice as long as the last time (1 s, 2 s, 4 s... up to
//! [`LONGEST_WAIT_MS`], a temporary lockout), and is refused without its password being
//! checked until then. A success, or an hour without failure, clears the count. Counting per
//! node is enough to make guessing slow (several nodes multiply the attempts by their
//! number); it is not stored, so a restart forgets it.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tokio::sync::Semaphore;

use crate::error::Error;

/// Failures in a row allowed before any wait.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait between two attempts on one account: 15 minutes.
pub const LONGEST_WAIT_MS: i64 = 15 * 60 * 1000;
/// A count of failures is forgotten after this long without a new one.
const FORGET_MS: i64 = 60 * 60 * 1000;
/// Accounts tracked at most; beyond, the oldest counts are dropped first.
const TRACKED: usize = 10_000;

/// How many passwords are hashed at once: all cores but one (at least one), so that the
/// async workers always have a core.
pub fn hashing_slots() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .saturating_sub(1)
        .max(1)
}

fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(hashing_slots()))
}

/// Runs `work` (a password hash or check) on a blocking thread, once a hashing slot is free.
pub(crate) async fn off_workers<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    let _slot = slots()
        .acquire()
        .await
        .map_err(|e| Error::Corrupt(format!("the password hashing slots are closed: {e}")))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Corrupt(format!("password hashing failed: {e}")))
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last_ms: i64,
}

impl Failures {
    /// How long after the last failure the next attempt may come.
    fn wait_ms(self) -> i64 {
        match self.count.checked_sub(FREE_FAILURES) {
            None => 0,
            Some(over) => 1000_i64
                .checked_shl(over)
                .unwrap_or(LONGEST_WAIT_MS)
                .min(LONGEST_WAIT_MS),
        }
    }
}

/// Failed sign-ins per account ([module docs](self)).
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, Failures>>,
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        // A poisoned map only holds counts: keep using it.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `account` must still wait before an attempt is checked, if it must (ms).
    pub fn wait(&self, account: &str, now_ms: i64) -> Option<i64> {
        let f = *self.lock().get(account)?;
        let until = f.last_ms + f.wait_ms();
        (now_ms < until).then_some(until - now_ms)
    }

    /// Counts a failed attempt on `account`.
    pub fn failed(&self, account: &str, now_ms: i64) {
        let mut map = self.lock();
        if map.len() >= TRACKED && !map.contains_key(account) {
            map.retain(|_, f| now_ms - f.last_ms < FORGET_MS);
            if map.len() >= TRACKED {
                // Still full of recent failures: the oldest go.
                let mut lasts: Vec<i64> = map.values().map(|f| f.last_ms).collect();
                lasts.sort_unstable();
                let cut = lasts[lasts.len() / 2];
                map.retain(|_, f| f.last_ms > cut);
            }
        }
        let f = map.entry(account.to_owned()).or_insert(Failures {
            count: 0,
            last_ms: now_ms,
        });
        if now_ms - f.last_ms >= FORGET_MS {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last_ms = now_ms;
    }

    /// A successful sign-in on `account` clears its count.
    pub fn succeeded(&self, account: &str) {
        self.lock().remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_beyond_the_free_ones_wait_twice_as_long_each_time() {
        let t = Throttle::default();
        let a = "juriste@hopital.example";
        for i in 0..FREE_FAILURES {
            assert_eq!(t.wait(a, i64::from(i)), None, "attempt {i} is free");
            t.failed(a, i64::from(i));
        }
        // The fifth failure came at 4 ms: the next attempt waits 1 s from it, the one after
        // a sixth failure 2 s.
        assert_eq!(t.wait(a, 5), Some(999));
        assert_eq!(t.wait(a, 1004), None);
        t.failed(a, 1004);
        assert_eq!(t.wait(a, 1004), Some(2000));
        // Another account is not concerned.
        assert_eq!(t.wait("autre@hopital.example", 1004), None);
        // The wait grows to the cap and no further.
        let mut now = 1004;
        for _ in 0..40 {
            now += t.wait(a, now).unwrap_or(0);
            t.failed(a, now);
        }
        assert_eq!(t.wait(a, now), Some(LONGEST_WAIT_MS));
        // A success clears it; so does an hour without failure.
        t.succeeded(a);
        assert_eq!(t.wait(a, now), None);
        for _ in 0..FREE_FAILURES {
            t.failed(a, now);
        }
        assert!(t.wait(a, now).is_some());
        t.failed(a, now + FORGET_MS);
        assert_eq!(t.wait(a, now + FORGET_MS), None, "counting started again");
    }

    #[test]
    fn the_tracked_accounts_stay_bounded() {
        let t = Throttle::default();
        for i in 0..(TRACKED + 10) {
            t.failed(&format!("a{i}@x.example"), i64::try_from(i).unwrap_or(0));
        }
        assert!(t.lock().len() <= TRACKED);
        assert!(
            t.lock()
                .contains_key(&format!("a{}@x.example", TRACKED + 9))
        );
    }

    #[test]
    fn at_least_one_slot_hashes() {
        assert!(hashing_slots() >= 1);
    }
}
