//! What email and webhook delivery share: how a delivery can fail, and how its outbox row is
//! settled afterwards (sent; retried later with backoff; or a dead letter).

use guichet_engine::Engine;
use guichet_engine::clock::Timestamp;
use guichet_engine::runtime::outbox::Outcome;

use std::hash::{Hash as _, Hasher as _};

/// How one delivery failed.
pub(crate) enum Failure {
    /// Worth trying again later (connection refused, timeout, 4xx SMTP, 5xx HTTP).
    Transient(String),
    /// Trying again will not help (5xx SMTP, a refused webhook, nobody to write to).
    Permanent(String),
}

/// Records the result of delivering the claimed message `(id, attempt)` (already marked sent
/// on success) and counts it.
pub(crate) async fn settle(
    engine: &Engine,
    policy: &RetryPolicy,
    (id, attempt): (&str, i64),
    result: Result<(), Failure>,
    now: Timestamp,
    report: &mut Report,
) -> Result<(), guichet_engine::Error> {
    match result {
        Ok(()) => report.sent += 1,
        Err(failure) => {
            let outcome = failed(policy, attempt, id, failure, now, report);
            engine
                .outbox_settle(&[(id.to_owned(), attempt, outcome)], now)
                .await?;
        }
    }
    Ok(())
}

/// What becomes of a delivery of message `id` that failed at its `attempt`: tried again
/// later with backoff, or a dead letter (permanent, or out of attempts); counted, and logged
/// with its cause (one line per failed delivery: the operator sees why, not only how many).
pub(crate) fn failed(
    policy: &RetryPolicy,
    attempt: i64,
    id: &str,
    failure: Failure,
    now: Timestamp,
    report: &mut Report,
) -> Outcome {
    let dead = |report: &mut Report, error: String| {
        report.dead += 1;
        tracing::error!(
            outbox = id,
            attempt,
            error = %error,
            "delivery failed for good: a dead letter (retry it from /admin/outbox or with `guichet mail retry {id}` once its cause is fixed)"
        );
        Outcome::Dead { error }
    };
    match failure {
        Failure::Permanent(error) => dead(report, error),
        Failure::Transient(e) if attempt >= policy.max_attempts => {
            dead(report, format!("gave up after {attempt} attempts: {e}"))
        }
        Failure::Transient(error) => {
            report.retried += 1;
            let delay = policy.delay_ms(id, attempt);
            tracing::warn!(
                outbox = id,
                attempt,
                retry_in_s = delay / 1000,
                error = %error,
                "delivery failed; will retry"
            );
            Outcome::Retry {
                at: Timestamp(now.0 + delay),
                error,
            }
        }
    }
}

/// When to try again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay after the first failure; doubled at each attempt.
    pub base_ms: i64,
    pub max_ms: i64,
    /// Attempts after which a message becomes a dead letter.
    pub max_attempts: i64,
    /// How long a claimed message is held by a dispatcher before another may take it.
    pub lease_ms: i64,
    /// How long a task link stays valid (it dies earlier if the task is done or reassigned).
    pub task_link_ttl_ms: i64,
    /// How long the sponsor's status link stays valid.
    pub status_link_ttl_ms: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_ms: 30_000,
            max_ms: 3_600_000,
            max_attempts: 12,
            lease_ms: 120_000,
            task_link_ttl_ms: 30 * 86_400_000,
            status_link_ttl_ms: 365 * 86_400_000,
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`: exponential, capped, with a jitter of up to
    /// half the delay. The jitter is drawn from the message id and attempt, so it spreads
    /// retries without making runs irreproducible.
    pub fn delay_ms(&self, id: &str, attempt: i64) -> i64 {
        let exp = self
            .base_ms
            .saturating_mul(1i64 << (attempt - 1).clamp(0, 30))
            .min(self.max_ms);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (id, attempt).hash(&mut h);
        let jitter = (h.finish() % 1000) as i64;
        exp / 2 + exp / 2 * jitter / 1000
    }
}

/// What one pass delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub sent: usize,
    pub retried: usize,
    pub dead: usize,
}
