//! The requests a node wrote last, in memory: the next command on one of them starts from
//! its state as this node wrote it instead of reading its row, and the command that ends it
//! derives its facts from the events this node saw instead of reading its history.
//!
//! Memory is never trusted over the database: a command prepared from memory writes on the
//! condition that the request's version is still the one remembered, as every command does.
//! When another node or process changed the request meanwhile, that condition fails, nothing
//! is written, and the command is prepared again from the database. A refusal found on the
//! remembered state is checked the same way, since it may come from a state out of date.
//!
//! A node whose remembered requests are often out of date (several nodes sharing the calls
//! on each request) stops trusting them: each such command would be prepared twice, and on
//! PostgreSQL its failed condition sends its whole batch again. Distrusted, a remembered
//! request is used only once its row's version, read as if nothing were remembered, says it
//! is up to date (which measures how often it is), and trusted again once they mostly are.
//!
//! Bounded: at most [`CAPACITY`] requests (then the memory starts afresh), the events of a
//! request only up to [`EVENTS`] (then its facts are read from its history); a request that
//! ends is forgotten.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::clock::Timestamp;
use crate::core::{Effect, Event, Instance};

/// At most this many requests are remembered.
pub const CAPACITY: usize = 1024;
/// A request's events are remembered up to this many.
pub const EVENTS: usize = 128;
/// Out-of-date measurements are judged over this many remembered requests found.
pub const WINDOW: u64 = 64;

/// A request as this node last wrote it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The definition it runs on (by hash).
    pub(crate) definition: String,
    pub(crate) inst: Instance,
    /// Its row's version, history tip and chain head once written.
    pub(crate) row_version: i64,
    pub(crate) history_seq: i64,
    pub(crate) history_head: String,
    /// Every event of its history, and the deadline of each of its tasks that has one (as
    /// its `tasks` rows say), when this node saw them all.
    pub(crate) seen: Option<Seen>,
}

/// What a request's facts are derived from, kept as its commands append to it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    pub(crate) events: Vec<Event>,
    pub(crate) due: BTreeMap<u32, Timestamp>,
}

impl Seen {
    /// Adds what a transition appends: its events, and the deadlines its saved tasks set or
    /// clear. `None` once over [`EVENTS`].
    pub(crate) fn extend(mut self, events: Vec<Event>, effects: &[Effect]) -> Option<Seen> {
        tasks_due(&mut self.due, effects);
        self.events.extend(events);
        (self.events.len() <= EVENTS).then_some(self)
    }
}

/// Applies the deadlines of the tasks a transition saves, as their rows will say.
pub(crate) fn tasks_due(due: &mut BTreeMap<u32, Timestamp>, effects: &[Effect]) {
    for e in effects {
        if let Effect::TaskSaved(task) = e {
            match task.due_at {
                Some(at) => due.insert(task.seq, at),
                None => due.remove(&task.seq),
            };
        }
    }
}

/// How remembered requests have served, since the node started (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HotStats {
    /// Requests remembered now.
    pub remembered: u64,
    /// Commands prepared from a remembered request (without reading it when trusted, after
    /// reading its version when not).
    pub used: u64,
    /// Remembered requests found changed meanwhile: by a write's condition when trusted
    /// (the command prepared again from the database), by the version read when not.
    pub stale: u64,
    /// Whether remembered requests are used without reading their version.
    pub trusted: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Hot {
    map: Mutex<HashMap<String, Entry>>,
    used: AtomicU64,
    stale: AtomicU64,
    /// Remembered requests found, up to date or not (the window's measure).
    found: AtomicU64,
    distrusted: AtomicBool,
    /// `stale` when the current window began.
    stale_then: AtomicU64,
}

impl Hot {
    /// Takes the request out of memory, if it is there. The caller puts its new state back
    /// once written.
    pub(crate) fn take(&self, id: &str) -> Option<Entry> {
        self.map.lock().ok()?.remove(id)
    }

    /// Whether a remembered request may be used without reading its version.
    pub(crate) fn trusted(&self) -> bool {
        !self.distrusted.load(Ordering::Relaxed)
    }

    /// Remembers a request as just written (unless a later version is remembered already).
    pub(crate) fn put(&self, id: &str, entry: Entry) {
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        if let Some(known) = map.get_mut(id) {
            if known.row_version < entry.row_version {
                *known = entry;
            }
            return;
        }
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(id.to_owned(), entry);
    }

    /// Forgets a request (it ended, or its remembered state proved out of date).
    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(id);
        }
    }

    /// Records a remembered request found up to date or not (`stale`), and whether a
    /// command was prepared from it (`used`). Decides, once a window is full, whether to
    /// trust memory.
    pub(crate) fn found(&self, used: bool, stale: bool) {
        self.used.fetch_add(u64::from(used), Ordering::Relaxed);
        let stale_now =
            self.stale.fetch_add(u64::from(stale), Ordering::Relaxed) + u64::from(stale);
        // The one call that completes a window judges it.
        let found = self.found.fetch_add(1, Ordering::Relaxed) + 1;
        if !found.is_multiple_of(WINDOW) {
            return;
        }
        let stale = stale_now.saturating_sub(self.stale_then.swap(stale_now, Ordering::Relaxed));
        // Out of date more than once in eight: trusted, each such command is prepared twice.
        let distrust = stale * 8 > WINDOW;
        if distrust != self.distrusted.swap(distrust, Ordering::Relaxed) {
            tracing::info!(
                distrust,
                "requests remembered by this node were out of date {stale} times in {WINDOW}: {}",
                if distrust {
                    "another node or process writes them too; their version is read before use"
                } else {
                    "used without reading again"
                }
            );
        }
    }

    pub(crate) fn stats(&self) -> HotStats {
        HotStats {
            remembered: self.map.lock().map_or(0, |m| m.len() as u64),
            used: self.used.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            trusted: self.trusted(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: i64) -> Entry {
        Entry {
            definition: "d".into(),
            inst: Instance::new(Timestamp(0)),
            row_version: version,
            history_seq: version,
            history_head: String::new(),
            seen: None,
        }
    }

    #[test]
    fn a_later_version_is_never_replaced_by_an_earlier_one() {
        let hot = Hot::default();
        hot.put("a", entry(3));
        hot.put("a", entry(2));
        assert_eq!(hot.take("a").map(|e| e.row_version), Some(3));
        assert!(hot.take("a").is_none(), "taking removes");
        hot.put("a", entry(2));
        hot.put("a", entry(4));
        assert_eq!(hot.take("a").map(|e| e.row_version), Some(4));
    }

    #[test]
    fn memory_is_bounded() {
        let hot = Hot::default();
        for n in 0..CAPACITY * 3 {
            hot.put(&n.to_string(), entry(1));
            assert!(hot.stats().remembered as usize <= CAPACITY);
        }
    }

    #[test]
    fn out_of_date_memory_is_distrusted_then_trusted_again() {
        let hot = Hot::default();
        // Out of date every time: distrusted after one window.
        for n in 0..WINDOW {
            assert!(hot.trusted(), "{n}");
            hot.found(true, true);
        }
        assert!(!hot.trusted());
        // Up to date again (one node left), as read: trusted after a window.
        for _ in 0..WINDOW {
            assert!(!hot.trusted());
            hot.found(true, false);
        }
        assert!(hot.trusted());
        // Seldom out of date (one in ten): still trusted; one in seven: not.
        for n in 0..WINDOW * 3 {
            hot.found(true, n % 10 == 0);
        }
        assert!(hot.trusted());
        for n in 0..WINDOW {
            hot.found(true, n % 7 == 0);
        }
        assert!(!hot.trusted());
        assert_eq!(
            (hot.stats().used, hot.stats().stale),
            (WINDOW * 6, WINDOW + 20 + 10)
        );
    }

    #[test]
    fn seen_events_stop_being_kept_past_the_bound() {
        let event = Event {
            at: Timestamp(0),
            actor: crate::core::Actor::System,
            kind: crate::core::EventKind::StepEntered { step: "s".into() },
        };
        let mut seen = Some(Seen::default());
        for _ in 0..EVENTS {
            seen = seen.and_then(|s| s.extend(vec![event.clone()], &[]));
        }
        assert_eq!(seen.as_ref().map(|s| s.events.len()), Some(EVENTS));
        assert!(seen.and_then(|s| s.extend(vec![event], &[])).is_none());
    }
}
