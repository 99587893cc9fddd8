//! Group commit on PostgreSQL: the commands a node prepares while a batch is on its way
//! wait for the next one, and cross together, as one transaction, in one round trip.
//!
//! SQLite's writer thread ([`crate::store::sqlite::writer`]) runs the statements itself; here a task sends
//! them: every command waiting (up to [`MAX_BATCH`]), one per request, in the order of
//! their requests (a row lock is taken after the one before it on every node: two batches
//! never wait on each other in a cycle), each command's first statement guarded by the
//! version of its request that was read ([`crate::store::db::postgres_batch`]). When a guard fails,
//! the error names its command: that one is answered "changed meanwhile" (and is prepared
//! again), the others go again without it. Any other error, and nobody can tell which
//! command caused it: each goes again on its own, and gets its own answer. A second command
//! on a request already in the batch waits for the next (it would find the request changed).
//! Nobody is answered before the transaction that carries their change has committed.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::store::db::Statement;
use crate::store::{Kept, Ran, run_postgres};

/// At most this many commands in one batch.
const MAX_BATCH: usize = 64;

/// A command to write: its request, its statements, who waits for the outcome.
struct Job {
    request: String,
    statements: Vec<Statement>,
    /// True when written, false when the request changed since it was read.
    answer: oneshot::Sender<Result<bool, Error>>,
}

/// The handle to a node's PostgreSQL batching task; the task ends with the last handle.
#[derive(Debug, Clone)]
pub(crate) struct PgWriter {
    jobs: mpsc::UnboundedSender<Job>,
}

impl PgWriter {
    /// Starts the task (on the current tokio runtime).
    pub(crate) fn start(kept: Arc<Kept>, pool: AnyPool) -> PgWriter {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(queue, kept, pool));
        PgWriter { jobs }
    }

    /// Writes a command's statements (the first guarded by its request's version) in the
    /// next batch; false, and nothing written, when the request changed since it was read.
    pub(crate) async fn write(
        &self,
        request: &str,
        statements: Vec<Statement>,
    ) -> Result<bool, Error> {
        let (answer, outcome) = oneshot::channel();
        let stopped = || Error::Database(sqlx::Error::PoolClosed);
        self.jobs
            .send(Job {
                request: request.to_owned(),
                statements,
                answer,
            })
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// The task: a batch of the commands waiting, again and again.
async fn run(mut queue: mpsc::UnboundedReceiver<Job>, kept: Arc<Kept>, pool: AnyPool) {
    // Commands on a request already in the batch, for the next one.
    let mut later: VecDeque<Job> = VecDeque::new();
    loop {
        let mut jobs: Vec<Job> = later.drain(..).collect();
        if jobs.is_empty() {
            match queue.recv().await {
                Some(job) => jobs.push(job),
                None => return,
            }
        }
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut requests = HashSet::new();
        let (mut batch, again): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            .partition(|job| requests.insert(job.request.clone()));
        later.extend(again);
        batch.sort_by(|a, b| a.request.cmp(&b.request));
        write(&kept, &pool, batch).await;
    }
}

/// Writes a batch and answers each of its commands.
async fn write(kept: &Kept, pool: &AnyPool, mut batch: Vec<Job>) {
    while !batch.is_empty() {
        let commands: Vec<&[Statement]> = batch.iter().map(|j| j.statements.as_slice()).collect();
        match run_postgres(kept, pool, &commands, true).await {
            Ok(Ran::Done(_)) => {
                for job in batch {
                    let _ = job.answer.send(Ok(true));
                }
                return;
            }
            Ok(Ran::Stale(k)) if k < batch.len() => {
                let job = batch.remove(k);
                let _ = job.answer.send(Ok(false));
            }
            outcome if batch.len() == 1 => {
                let job = batch.remove(0);
                let _ = job.answer.send(outcome.map(|_| false));
            }
            _ => {
                // Which command failed is not known: each on its own.
                for job in batch {
                    let outcome = run_postgres(kept, pool, &[&job.statements], true)
                        .await
                        .map(|ran| matches!(ran, Ran::Done(_)));
                    let _ = job.answer.send(outcome);
                }
                return;
            }
        }
    }
}
