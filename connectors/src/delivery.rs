//! What email and webhook delivery share: how a delivery can fail, and how its outbox row is
//! settled afterwards (sent; retried later with backoff; or a dead letter).

use guichet_engine::Engine;
use guichet_engine::clock::Timestamp;

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
        Err(Failure::Permanent(e)) => {
            engine.outbox_dead(id, attempt, &e).await?;
            report.dead += 1;
        }
        Err(Failure::Transient(e)) if attempt >= policy.max_attempts => {
            engine
                .outbox_dead(
                    id,
                    attempt,
                    &format!("gave up after {attempt} attempts: {e}"),
                )
                .await?;
            report.dead += 1;
        }
        Err(Failure::Transient(e)) => {
            let at = Timestamp(now.0 + policy.delay_ms(id, attempt));
            engine.outbox_retry(id, attempt, at, &e).await?;
            report.retried += 1;
        }
    }
    Ok(())
}
