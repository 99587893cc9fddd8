//! The SQLite writer: one thread owns a write connection and runs the engine's command
//! transactions with **group commit**. It takes every command waiting when it is free, runs
//! each in its own savepoint inside one transaction (a command that fails rolls back alone),
//! commits once, durably (WAL, `synchronous=FULL`), and only then answers each caller. Nobody
//! hears that their change happened before it is on disk; under load one disk flush carries
//! many commands.
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

use crate::db::Lite;
use crate::runtime::Error;

/// At most this many commands share one transaction.
const MAX_BATCH: usize = 256;

/// What a job leaves for after the commit: it answers its caller with the commit's outcome.
type Answer = Box<dyn FnOnce(Option<&Error>) + Send>;
/// A job: runs on the writer's connection (or learns that the transaction could not begin);
/// says whether it succeeded (else its savepoint is rolled back).
type Job = Box<dyn FnOnce(Result<&mut Lite<'_>, &Error>) -> (bool, Answer) + Send>;

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
    jobs: mpsc::Sender<Job>,
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
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; PRAGMA foreign_keys = ON;",
        )?;
        conn.set_prepared_statement_cache_capacity(128);
        let (jobs, queue) = mpsc::channel::<Job>();
        let counters = Arc::new(Counters::default());
        let seen = counters.clone();
        std::thread::Builder::new()
            .name("guichet-writer".into())
            .spawn(move || run(&conn, &queue, &turn, &seen))?;
        Ok(Writer { jobs, counters })
    }

    /// Runs `work` in the next transaction; answers once that transaction is committed (or
    /// with the work's own error, its changes rolled back).
    pub(crate) async fn write<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Lite<'_>) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, Error> {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<R, Error>>();
        let job: Job = Box::new(move |db| match db {
            Err(e) => {
                let _ = reply.send(Err(Error::Sqlite(e.to_string())));
                (false, Box::new(|_| {}))
            }
            Ok(db) => {
                let r = work(db);
                let ok = r.is_ok();
                let answer: Answer = Box::new(move |commit| {
                    let _ = reply.send(match (r, commit) {
                        (Err(e), _) => Err(e),
                        (Ok(_), Some(e)) => Err(Error::Sqlite(e.to_string())),
                        (Ok(v), None) => Ok(v),
                    });
                });
                (ok, answer)
            }
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::Sqlite("the writer thread has stopped".into()))?;
        answer.await.map_err(|_| {
            Error::Sqlite("the write was abandoned: the writer thread stopped".into())
        })?
    }
}

/// The writer's loop: a batch of waiting jobs per transaction.
fn run(
    conn: &rusqlite::Connection,
    queue: &mpsc::Receiver<Job>,
    turn: &tokio::sync::Mutex<()>,
    counters: &Counters,
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
        let n = batch.len() as u64;
        let answers = transaction(conn, batch);
        let (answers, failure) = match answers {
            Ok(answers) => match conn.execute_batch("COMMIT") {
                Ok(()) => (answers, None),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    (answers, Some(Error::from(e)))
                }
            },
            Err((answers, e)) => {
                let _ = conn.execute_batch("ROLLBACK");
                (answers, Some(e))
            }
        };
        drop(_turn);
        if failure.is_none() {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters.commands.fetch_add(n, Ordering::Relaxed);
        }
        for answer in answers {
            answer(failure.as_ref());
        }
    }
}

/// Begins a transaction and runs each job in its savepoint. On a failure of the transaction
/// itself (not of a job), the jobs not yet run are told and every answer gets the error.
#[allow(clippy::type_complexity)]
fn transaction(
    conn: &rusqlite::Connection,
    batch: Vec<Job>,
) -> Result<Vec<Answer>, (Vec<Answer>, Error)> {
    let mut answers = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    let mut broken = conn.execute_batch("BEGIN IMMEDIATE").err().map(Error::from);
    for job in jobs.by_ref() {
        if let Some(e) = &broken {
            answers.push(job(Err(e)).1);
            continue;
        }
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            let e = Error::from(e);
            answers.push(job(Err(&e)).1);
            broken = Some(e);
            continue;
        }
        let mut db = Lite { conn };
        // A job that panics loses its answer (its caller hears that the write was
        // abandoned) and its changes, not the thread.
        let (ok, answer) = match std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(&mut db)))) {
            Ok(r) => r,
            Err(_) => (false, Box::new(|_: Option<&Error>| {}) as Answer),
        };
        answers.push(answer);
        let end = if ok {
            conn.execute_batch("RELEASE job")
        } else {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        if let Err(e) = end {
            broken = Some(Error::from(e));
        }
    }
    match broken {
        None => Ok(answers),
        Some(e) => Err((answers, e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::time::Duration;

    use super::Writer;
    use crate::db::{Db, V};
    use crate::runtime::Error;

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
    /// fails after writing, and the one that panics, leave nothing, the others are committed,
    /// and each caller hears its own outcome.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_jobs_share_a_commit_and_a_failing_one_rolls_back_alone() {
        let path = scratch("batch");
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        let writer = Arc::new(Writer::start(&path, turn.clone()).unwrap());
        let held = turn.lock().await;
        let mut calls = Vec::new();
        for i in 0..12 {
            let writer = writer.clone();
            calls.push(tokio::spawn(async move {
                writer
                    .write(move |db| {
                        crate::writer::ready(db.exec(
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
        // Every job is queued behind the turn.
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
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
        assert_eq!(commands, 12);
        assert!(commits <= 2, "12 queued jobs took {commits} commits");
    }

    /// A statement error inside a job (here a duplicate key) is that job's failure only.
    #[tokio::test]
    async fn a_failing_statement_fails_its_job_only() {
        let path = scratch("constraint");
        let writer = Writer::start(&path, Arc::default()).unwrap();
        let insert = |k: &'static str| {
            move |db: &mut crate::db::Lite<'_>| {
                crate::writer::ready(
                    db.exec("INSERT INTO t (k) VALUES ($1)".into(), &[V::Text(k.into())]),
                )
            }
        };
        assert_eq!(writer.write(insert("a")).await.unwrap(), 1);
        assert!(matches!(
            writer.write(insert("a")).await,
            Err(Error::Sqlite(_))
        ));
        assert_eq!(writer.write(insert("b")).await.unwrap(), 1);
        assert_eq!(keys(&path), ["a", "b"]);
    }
}
