//! The nodes serving one database, and this node's background workers.
//!
//! Each node (a `guichet serve` process) writes its row of `nodes` every three seconds (its
//! *heartbeat*). What a node claims from the outbox is marked as held by it, so that when it
//! dies its messages are claimed again as soon as its heartbeat stops (after
//! [`STALE_MS`]), not when their lease ends: and at once when the node restarts on the same
//! host, since it finds its predecessor's process gone ([`Engine::join_nodes`]).
//!
//! The workers (emails, timers, indicators, webhooks) report each pass; readiness says a
//! node is not ready when one has failed for [`FAILING_MS`] without a success between, or
//! has finished no pass for [`STUCK_MS`] ([`Engine::workers_problem`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::error::Error;
use crate::runtime::Engine;
use crate::store::db::{Db as _, V};
use crate::store::in_read;

/// How often a node writes its heartbeat: a commit every three seconds, not every second
/// (each is a durable write beside the commands).
pub const BEAT_EVERY_MS: u64 = 3_000;
/// A node whose heartbeat is older than this (five beats) is taken for dead: what it held
/// is claimed again.
pub const STALE_MS: i64 = 15_000;
/// A worker failing this long, without a pass that succeeded, makes its node not ready.
pub const FAILING_MS: i64 = 60_000;
/// A worker that finished no pass (good or bad) for this long is stuck: not ready.
pub const STUCK_MS: i64 = 15 * 60_000;
/// Rows of nodes unseen for this long are deleted when a node joins.
const FORGOTTEN_MS: i64 = 86_400_000;

/// This process as a node.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) id: String,
    host: String,
    pid: u32,
    started_at: AtomicI64,
    /// When its last heartbeat was written (the engine's clock); 0: never.
    beat_at: AtomicI64,
    workers: Mutex<HashMap<&'static str, Worker>>,
}

/// What a worker's passes were lately.
#[derive(Debug, Clone, Copy)]
struct Worker {
    /// When its last pass ended, good or bad.
    passed_at: i64,
    /// Since when its passes fail, with none succeeding since.
    failing_since: Option<i64>,
}

/// The host this process runs on (empty when it cannot be read).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Whether process `pid` of this host is alive (true when it cannot be told).
fn alive(pid: i64) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Node {
    pub(crate) fn new() -> Node {
        Node {
            id: uuid::Uuid::now_v7().to_string(),
            host: host_name(),
            pid: std::process::id(),
            started_at: AtomicI64::new(0),
            beat_at: AtomicI64::new(0),
            workers: Mutex::default(),
        }
    }

    /// Whether this node has announced itself (its claims are then marked as its own).
    pub(crate) fn announced(&self) -> bool {
        self.beat_at.load(Ordering::Relaxed) > 0
    }
}

impl Engine {
    /// This node's id, as its rows of `nodes` and its claims name it.
    pub fn node_id(&self) -> &str {
        &self.node.id
    }

    /// Writes this node's heartbeat (its row of `nodes`, seen now).
    pub async fn heartbeat(&self) -> Result<(), Error> {
        let now = self.now().0;
        let _ = self
            .node
            .started_at
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.write_one(
            "INSERT INTO nodes (id, host, pid, started_at, seen_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
            vec![
                V::Text(self.node.id.clone()),
                V::Text(self.node.host.clone()),
                V::Int(i64::from(self.node.pid)),
                V::Int(self.node.started_at.load(Ordering::Relaxed)),
                V::Int(now),
            ],
        )
        .await?;
        self.node.beat_at.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Joins the nodes of this database at start-up: writes the first heartbeat, forgets
    /// the nodes of this host whose process is gone (a predecessor killed or crashed: what
    /// it held is claimed again at once) and those unseen for a day. Returns how many
    /// predecessors of this host were found dead.
    pub async fn join_nodes(&self) -> Result<usize, Error> {
        self.heartbeat().await?;
        let now = self.now().0;
        let sql = "SELECT id, pid FROM nodes WHERE host = $1 AND id <> $2";
        let key = [
            V::Text(self.node.host.clone()),
            V::Text(self.node.id.clone()),
        ];
        let rows = in_read!(self.store(), |db| db.rows(sql.into(), &key))?;
        let mut statements = Vec::new();
        for r in &rows {
            if !self.node.host.is_empty() && !alive(r.int(1)?) {
                statements.push((
                    "DELETE FROM nodes WHERE id = $1".into(),
                    vec![V::Text(r.text(0)?)],
                ));
            }
        }
        let dead = statements.len();
        statements.push((
            "DELETE FROM nodes WHERE seen_at < $1".into(),
            vec![V::Int(now - FORGOTTEN_MS)],
        ));
        self.write_all(statements).await?;
        Ok(dead)
    }

    /// Leaves the nodes at a clean stop: what this node still held (a pass abandoned at the
    /// end of its grace) is claimed again at once by the others, or by its successor.
    pub async fn leave_nodes(&self) -> Result<(), Error> {
        self.write_one(
            "DELETE FROM nodes WHERE id = $1",
            vec![V::Text(self.node.id.clone())],
        )
        .await?;
        self.node.beat_at.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// A worker of this node (`email`, `timers`...) reports a pass and whether it succeeded.
    pub fn worker_passed(&self, worker: &'static str, ok: bool) {
        let now = self.now().0;
        let Ok(mut workers) = self.node.workers.lock() else {
            return;
        };
        let w = workers.entry(worker).or_insert(Worker {
            passed_at: now,
            failing_since: None,
        });
        w.passed_at = now;
        w.failing_since = if ok {
            None
        } else {
            Some(w.failing_since.unwrap_or(now))
        };
    }

    /// Why this node's workers are not doing their work, if they are not: one failing
    /// for over [`FAILING_MS`], or one that finished no pass for [`STUCK_MS`].
    pub fn workers_problem(&self) -> Option<String> {
        let now = self.now().0;
        let workers = self.node.workers.lock().ok()?;
        let mut names: Vec<_> = workers.keys().copied().collect();
        names.sort_unstable();
        names.into_iter().find_map(|name| {
            let w = workers[name];
            match w.failing_since {
                Some(since) if now - since > FAILING_MS => Some(format!(
                    "the {name} worker has failed at every pass for {} s (see the log)",
                    (now - since) / 1000
                )),
                _ if now - w.passed_at > STUCK_MS => Some(format!(
                    "the {name} worker has finished no pass for {} s",
                    (now - w.passed_at) / 1000
                )),
                _ => None,
            }
        })
    }

    /// Whether a heartbeat was written in the last `ms` milliseconds.
    pub(crate) fn beat_within(&self, ms: i64) -> bool {
        let at = self.node.beat_at.load(Ordering::Relaxed);
        at > 0 && self.now().0 - at <= ms
    }
}
