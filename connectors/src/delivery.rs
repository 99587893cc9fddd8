//! What email and webhook delivery share: how a delivery can fail, and how its outbox row is
//! settled afterwards (sent; retried later with backoff; or a dead letter).

use guichet_engine::Engine;
use guichet_engine::clock::Timestamp;
use guichet_engine::outbox::Outcome;

use crate::email::{Report, RetryPolicy};

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
/// later with backoff, or a dead letter (permanent, or out of attempts); counted.
pub(crate) fn failed(
    policy: &RetryPolicy,
    attempt: i64,
    id: &str,
    failure: Failure,
    now: Timestamp,
    report: &mut Report,
) -> Outcome {
    match failure {
        Failure::Permanent(error) => {
            report.dead += 1;
            Outcome::Dead { error }
        }
        Failure::Transient(e) if attempt >= policy.max_attempts => {
            report.dead += 1;
            Outcome::Dead {
                error: format!("gave up after {attempt} attempts: {e}"),
            }
        }
        Failure::Transient(error) => {
            report.retried += 1;
            Outcome::Retry {
                at: Timestamp(now.0 + policy.delay_ms(id, attempt)),
                error,
            }
        }
    }
}
