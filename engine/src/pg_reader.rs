//! The rows of the requests that commands are about, read together on PostgreSQL: the
//! reads asked for while one query is on its way wait for the next, and go in one query, one
//! round trip (as [`crate::pg_writer`] does for the writes). Each command reads its request's
//! row first; under load dozens arrive at once, and a round trip each cost the server and the
//! node more than the read itself. What a command then writes is still on the condition that
//! the row is as read.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use crate::runtime::{CommandRow, Error};
use crate::store::Kept;

/// At most this many requests in one query.
const MAX_BATCH: usize = 128;

/// A read: the request, who waits for its row.
struct Job {
    request: String,
    answer: oneshot::Sender<Result<Option<CommandRow>, Error>>,
}

/// The handle to a node's PostgreSQL reading task; the task ends with the last handle.
#[derive(Debug, Clone)]
pub(crate) struct PgReader {
    jobs: mpsc::UnboundedSender<Job>,
}

impl PgReader {
    /// Starts the task (on the current tokio runtime).
    pub(crate) fn start(kept: Arc<Kept>, pool: AnyPool) -> PgReader {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(queue, kept, pool));
        PgReader { jobs }
    }

    /// A request's row, read in the next query; `None` for no such request.
    pub(crate) async fn read(&self, request: &str) -> Result<Option<CommandRow>, Error> {
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
async fn run(mut queue: mpsc::UnboundedReceiver<Job>, kept: Arc<Kept>, pool: AnyPool) {
    while let Some(first) = queue.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let requests: Vec<&str> = jobs.iter().map(|j| j.request.as_str()).collect();
        match crate::store::read_requests(&kept, &pool, &requests).await {
            Ok(rows) => {
                for job in jobs {
                    // Two reads of one request in a batch: each its copy.
                    let row = rows.get(&job.request).cloned();
                    let _ = job.answer.send(Ok(row));
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

/// Rows by request.
pub(crate) type Rows = HashMap<String, CommandRow>;
