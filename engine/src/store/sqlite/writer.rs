//! The SQLite writer: one thread owns a write connection and runs the engine's command
//! transactions with **group commit**. It takes every command waiting when it is free, runs
//! them one after the other inside one transaction, commits once, durably (WAL,
//! `synchronous=FULL`), and only then answers each caller. Nobody hears that their change
//! happened before it is on disk; under load one disk flush carries many commands.
//!
//! A command that fails (or panics) must leave nothing: the transaction is rolled back and the
//! other commands of the batch run again, without it, in a new one. So a job can be run more
//! than once, each time from the database as it was before the batch. (A savepoint per
//! command did the same with less work on failure, but at a price on every command: SQLite
//! copies each page a savepoint first changes, and with group commit every command changes
//! the same hot pages; failures are rare.)
//!
//! The thread also spares each statement the hand-off between threads that sqlx's SQLite
//! driver makes (a statement there is a message to its worker thread and back): here a whole
//! command runs on the thread that owns the connection.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Waker};

use crate::error::Error;
use crate::store::db::Lite;

/// At most this many commands share one transaction.
const MAX_BATCH: usize = 256;

/// A command waiting for the writer: its work, and its caller to answer.
trait Job: Send {
    /// Runs the work in the current transaction (again, after a rollback: from the state
    /// before the batch); says whether it succeeded. A panic counts as a failure.
    fn run(&mut self, db: &mut Lite<'_>) -> bool;
    /// Answers the caller: the work's outcome once committed, the commit's failure, or the
    /// work's own error.
    fn answer(self: Box<Self>, failure: Option<&Error>);
}

struct Call<W, R> {
    work: W,
    outcome: Option<Result<R, Error>>,
    reply: tokio::sync::oneshot::Sender<Result<R, Error>>,
}

impl<W, R> Job for Call<W, R>
where
    W: FnMut(&mut Lite<'_>) -> Result<R, Error> + Send,
    R: Send,
{
    fn run(&mut self, db: &mut Lite<'_>) -> bool {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| (self.work)(db)))
            .unwrap_or_else(|_| {
                Err(Error::Sqlite(
                    "the write was abandoned: it failed unexpectedly".into(),
                ))
            });
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn answer(self: Box<Self>, failure: Option<&Error>) {
        let _ = self.reply.send(match (self.outcome, failure) {
            (Some(Err(e)), _) => Err(e),
            // The group's commit failed: each write of it fails as it did, by kind.
            (_, Some(Error::SqliteFault(m))) => Err(Error::SqliteFault(m.clone())),
            (_, Some(e)) => Err(Error::Sqlite(e.to_string())),
            (Some(Ok(v)), None) => Ok(v),
            (None, None) => Err(Error::Sqlite("the write was not run".into())),
        });
    }
}

/// Counters of the group commit, for the benchmark.
#[derive(Debug, Default)]
pub struct Counters {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Commands carried by them.
    pub commands: AtomicU64,
}

/// The handle on the writer thread; the thread ends when the last handle is dropped.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    pub(crate) counters: Arc<Counters>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// Runs a future that only awaits the writer's connection, which never waits: it completes
/// at the first poll.
pub(crate) fn ready<T>(f: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r,
        Poll::Pending => Err(Error::Corrupt(
            "a write job waited on something else than its connection".into(),
        )),
    }
}

impl Writer {
    /// Opens the write connection on the (migrated) database file and starts the thread.
    /// `turn` is the process's write turn, shared with the transactions that go through
    /// sqlx: the writer takes it for each transaction.
    pub(crate) fn start(path: &Path, turn: Arc<tokio::sync::Mutex<()>>) -> Result<Writer, Error> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Checkpoints are the checkpointer thread's (below), not the commits'.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;",
        )?;
        conn.set_prepared_statement_cache_capacity(128);
        let checkpointer = Checkpointer::start(path, turn.clone())?;
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let counters = Arc::new(Counters::default());
        let seen = counters.clone();
        std::thread::Builder::new()
            .name("guichet-writer".into())
            .spawn(move || run(&conn, &queue, &turn, &seen, &checkpointer))?;
        Ok(Writer { jobs, counters })
    }

    /// Runs `work` in the next transaction; answers once that transaction is committed (or
    /// with the work's own error, its changes rolled back). `work` may be run more than once
    /// (see the module's comment); only the last run's outcome is answered.
    pub(crate) async fn write<R: Send + 'static>(
        &self,
        work: impl FnMut(&mut Lite<'_>) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, Error> {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<R, Error>>();
        let job = Box::new(Call {
            work,
            outcome: None,
            reply,
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::Sqlite("the writer thread has stopped".into()))?;
        answer.await.map_err(|_| {
            Error::Sqlite("the write was abandoned: the writer thread stopped".into())
        })?
    }
}

/// Copies the WAL's pages back into the database file (a checkpoint) on a thread and a
/// connection of its own, beside the writer, instead of in the commit that crosses SQLite's
/// threshold: the copy and its two disk flushes no longer hold up the commands waiting for
/// the writer. A checkpoint that runs while the writer commits copies what was committed
/// when it began; SQLite starts the WAL file over only once every page in it has been
/// copied back, so when the WAL has grown past [`Checkpointer::RESTART_FRAMES`] the
/// checkpointer takes the process's write turn for a last, short checkpoint.
struct Checkpointer {
    wake: mpsc::SyncSender<()>,
}

impl Checkpointer {
    /// At most one checkpoint per this delay while commits come.
    const EVERY: std::time::Duration = std::time::Duration::from_millis(100);
    /// Frames (pages) in the WAL past which a checkpoint is finished under the write turn.
    const RESTART_FRAMES: i64 = 4096;

    fn start(path: &Path, turn: Arc<tokio::sync::Mutex<()>>) -> Result<Checkpointer, Error> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;")?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("guichet-checkpoint".into())
            .spawn(move || {
                // Ends when the writer, and so the sender, is gone.
                while woken.recv().is_ok() {
                    if let Err(e) = Self::checkpoint(&conn, &turn) {
                        tracing::warn!(error = %e, "WAL checkpoint failed; the next one will try again");
                    }
                    std::thread::sleep(Self::EVERY);
                }
            })?;
        Ok(Checkpointer { wake })
    }

    /// After a commit: a checkpoint is due (at most one waits).
    fn committed(&self) {
        let _ = self.wake.try_send(());
    }

    fn checkpoint(conn: &rusqlite::Connection, turn: &tokio::sync::Mutex<()>) -> Result<(), Error> {
        // (busy, frames in the WAL, frames copied back)
        let passive = |conn: &rusqlite::Connection| {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
        };
        let (_, frames, _) = passive(conn)?;
        if frames > Self::RESTART_FRAMES {
            // Nobody in this process writes meanwhile: this one copies the last frames, and
            // the next transaction starts the WAL over.
            let _turn = turn.blocking_lock();
            passive(conn)?;
        }
        Ok(())
    }
}

/// Runs one of the transaction's own statements (`BEGIN IMMEDIATE`, `COMMIT`), prepared once.
fn run_statement(conn: &rusqlite::Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// The writer's loop: a batch of waiting jobs per transaction.
fn run(
    conn: &rusqlite::Connection,
    queue: &mpsc::Receiver<Box<dyn Job>>,
    turn: &tokio::sync::Mutex<()>,
    counters: &Counters,
    checkpointer: &Checkpointer,
) {
    while let Ok(first) = queue.recv() {
        // The turn first: the commands that arrive while it is taken join this transaction.
        let _turn = turn.blocking_lock();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let failure = loop {
            match transaction(conn, &mut batch) {
                Ok(()) => break None,
                // A job failed: it leaves the batch with its own error, the others run again.
                Err(Failed::Job(i)) => {
                    batch.remove(i).answer(None);
                    if batch.is_empty() {
                        break None;
                    }
                }
                Err(Failed::Transaction(e)) => break Some(e),
            }
        };
        drop(_turn);
        if failure.is_none() && !batch.is_empty() {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters
                .commands
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            checkpointer.committed();
        }
        for job in batch {
            job.answer(failure.as_ref());
        }
    }
}

/// Why a batch's transaction was rolled back.
enum Failed {
    /// The job at this position failed.
    Job(usize),
    /// The transaction itself could not begin or commit.
    Transaction(Error),
}

/// Runs the batch in one transaction and commits it; rolls it back on any failure.
fn transaction(conn: &rusqlite::Connection, batch: &mut [Box<dyn Job>]) -> Result<(), Failed> {
    run_statement(conn, "BEGIN IMMEDIATE").map_err(|e| Failed::Transaction(e.into()))?;
    let mut db = Lite { conn };
    let failed = batch.iter_mut().position(|job| !job.run(&mut db));
    let end = match failed {
        None => run_statement(conn, "COMMIT").map_err(|e| Failed::Transaction(e.into())),
        Some(i) => Err(Failed::Job(i)),
    };
    if end.is_err() {
        let _ = run_statement(conn, "ROLLBACK");
    }
    end
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::future::Future as _;
    use std::sync::Arc;

    use super::Writer;
    use crate::error::Error;
    use crate::store::db::{Db, V};

    fn scratch(name: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("guichet_writer_{name}_{}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .unwrap();
        path
    }

    fn keys(path: &std::path::Path) -> Vec<String> {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut st = conn.prepare("SELECT k FROM t ORDER BY k").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Jobs sent while the writer waits for its turn share one transaction; the one that
    /// fails after writing, and the one that panics, leave nothing, the others are committed
    /// once (they run again after each rollback: a run on top of an earlier one would hit the
    /// primary key), and each caller hears its own outcome.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_jobs_share_a_commit_and_a_failing_one_leaves_nothing() {
        let path = scratch("batch");
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        let writer = Arc::new(Writer::start(&path, turn.clone()).unwrap());
        let held = turn.lock().await;
        let mut calls = Vec::new();
        for i in 0..12 {
            let writer = writer.clone();
            calls.push(Box::pin(async move {
                writer
                    .write(move |db| {
                        crate::store::sqlite::writer::ready(db.exec(
                            "INSERT INTO t (k) VALUES ($1)".into(),
                            &[V::Text(format!("k{i:02}"))],
                        ))?;
                        match i {
                            3 => Err(Error::Conflict("job 3 fails after writing".into())),
                            7 => panic!("job 7 panics after writing"),
                            _ => Ok(i),
                        }
                    })
                    .await
            }));
        }
        // Each call polled once has queued its job (the writer thread waits for the turn):
        // every job is queued before the turn is given, without waiting for it by the clock.
        for call in &mut calls {
            std::future::poll_fn(|cx| {
                assert!(
                    call.as_mut().poll(cx).is_pending(),
                    "answered before its turn"
                );
                std::task::Poll::Ready(())
            })
            .await;
        }
        drop(held);
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await);
        }
        for (i, answer) in answers.iter().enumerate() {
            match i {
                3 => assert!(matches!(answer, Err(Error::Conflict(_))), "{answer:?}"),
                7 => assert!(
                    matches!(answer, Err(Error::Sqlite(m)) if m.contains("abandoned")),
                    "{answer:?}"
                ),
                _ => assert_eq!(answer.as_ref().unwrap(), &i),
            }
        }
        let expected: Vec<String> = (0..12)
            .filter(|i| *i != 3 && *i != 7)
            .map(|i| format!("k{i:02}"))
            .collect();
        assert_eq!(keys(&path), expected);
        let commits = writer
            .counters
            .commits
            .load(std::sync::atomic::Ordering::Relaxed);
        let commands = writer
            .counters
            .commands
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(commands, 10, "the committed commands");
        assert!(commits <= 2, "12 queued jobs took {commits} commits");
    }

    /// A statement error inside a job (here a duplicate key) is that job's failure only.
    #[tokio::test]
    async fn a_failing_statement_fails_its_job_only() {
        let path = scratch("constraint");
        let writer = Writer::start(&path, Arc::default()).unwrap();
        let insert = |k: &'static str| {
            move |db: &mut crate::store::db::Lite<'_>| {
                crate::store::sqlite::writer::ready(
                    db.exec("INSERT INTO t (k) VALUES ($1)".into(), &[V::Text(k.into())]),
                )
            }
        };
        assert_eq!(writer.write(insert("a")).await.unwrap(), 1);
        // A broken constraint is a fault, not "try again".
        assert!(matches!(
            writer.write(insert("a")).await,
            Err(Error::SqliteFault(_))
        ));
        assert_eq!(writer.write(insert("b")).await.unwrap(), 1);
        assert_eq!(keys(&path), ["a", "b"]);
    }
}
