//! Reads of commands on PostgreSQL, made together: the reads asked for while one query is on
//! its way wait for the next, and go in one query, one round trip (as [`crate::store::postgres::writer`]
//! does for the writes). Each command reads its request's row first, and a command that ends
//! its request reads what its facts are derived from (its history and its tasks' deadlines);
//! under load dozens arrive at once, and a round trip each cost the server and the node more
//! than the read itself. A node has one reader of each kind, each with its connection. What a
//! command then writes is still on the condition that its request's row is as read.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::store::Kept;

/// At most this many requests in one query.
const MAX_BATCH: usize = 128;

/// Reads what there is of `T` for some requests, in one query: what each request has, by
/// request (none for a request that has nothing, or does not exist).
pub(crate) type ReadMany<T> =
    fn(Arc<Kept>, AnyPool, Vec<String>) -> BoxFuture<'static, Result<HashMap<String, T>, Error>>;

/// A read: the request, who waits for what it has.
struct Job<T> {
    request: String,
    answer: oneshot::Sender<Result<Option<T>, Error>>,
}

/// The handle to a node's PostgreSQL reading task of one kind; the task ends with the last
/// handle.
pub(crate) struct PgReader<T> {
    jobs: mpsc::UnboundedSender<Job<T>>,
}

impl<T> Clone for PgReader<T> {
    fn clone(&self) -> Self {
        PgReader {
            jobs: self.jobs.clone(),
        }
    }
}

impl<T> std::fmt::Debug for PgReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReader").finish_non_exhaustive()
    }
}

impl<T: Clone + Send + 'static> PgReader<T> {
    /// Starts the task (on the current tokio runtime).
    pub(crate) fn start(kept: Arc<Kept>, pool: AnyPool, read: ReadMany<T>) -> PgReader<T> {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(queue, kept, pool, read));
        PgReader { jobs }
    }

    /// What a request has, read in the next query; `None` for nothing.
    pub(crate) async fn read(&self, request: &str) -> Result<Option<T>, Error> {
        let (answer, row) = oneshot::channel();
        let stopped = || Error::Database(sqlx::Error::PoolClosed);
        self.jobs
            .send(Job {
                request: request.to_owned(),
                answer,
            })
            .map_err(|_| stopped())?;
        row.await.map_err(|_| stopped())?
    }
}

/// The task: one query for every read waiting, again and again.
async fn run<T: Clone>(
    mut queue: mpsc::UnboundedReceiver<Job<T>>,
    kept: Arc<Kept>,
    pool: AnyPool,
    read: ReadMany<T>,
) {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let requests = jobs.iter().map(|j| j.request.clone()).collect();
        match read(kept.clone(), pool.clone(), requests).await {
            Ok(found) => {
                for job in jobs {
                    // Two reads of one request in a batch: each its copy.
                    let _ = job.answer.send(Ok(found.get(&job.request).cloned()));
                }
            }
            Err(e) => {
                // Each reader gets the error (as the server's trouble: a database error).
                let message = e.to_string();
                for job in jobs {
                    let error = sqlx::Error::Io(std::io::Error::other(message.clone()));
                    let _ = job.answer.send(Err(Error::Database(error)));
                }
            }
        }
    }
}
