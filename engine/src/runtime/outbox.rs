//! The outbox, from the dispatcher's side: claim due messages under a lease, and record how
//! each delivery went. Every change follows [`crate::core::lifecycle::OUTBOX`]; a claim is a
//! compare-and-set on the row, so two dispatchers never send the same message at once, and a
//! dispatcher that died mid-send loses its lease and the message is claimed again.

use serde::Serialize;

use crate::clock::Timestamp;
use crate::core::Effect;
use crate::core::lifecycle::{self, OutboxAction, OutboxLife};
use crate::error::Error;
use crate::runtime::Engine;
use crate::store::db::{Db as _, Row, V};
use crate::store::{in_long_read, in_read};

/// Which providers' messages to claim.
#[derive(Debug, Clone, Copy)]
pub enum Providers<'a> {
    Any,
    Only(&'a str),
    Except(&'a [String]),
}

/// Who holds what is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// This node's dispatchers: claimed again as soon as the node is taken for dead
    /// ([`crate::runtime::nodes`]), or when the lease ends.
    ThisNode,
    /// An external worker's lock (fetch-and-lock): held until it ends, whatever becomes of
    /// the node that gave it.
    Worker,
}

/// A claimed message, ready to deliver.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub instance: String,
    pub kind: String,
    pub effect: Effect,
    /// Deliveries tried so far, this one included.
    pub attempt: i64,
}

/// A claimed row of any kind, before its payload is read.
#[derive(Debug, Clone)]
pub(crate) struct ClaimedRow {
    pub id: String,
    pub instance: Option<String>,
    pub kind: String,
    pub payload: String,
    pub attempt: i64,
}

/// What became of the delivery of a claimed message ([`Engine::outbox_settle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered (or captured): the Message-ID(s), to whom, the rendered subject and text.
    Sent {
        message_id: String,
        recipients: String,
        subject: String,
        body: String,
        /// Only recorded in the database (no SMTP server), not handed to a server.
        captured: bool,
    },
    /// A transient failure: pending again from `at`.
    Retry { at: Timestamp, error: String },
    /// A permanent failure: a dead letter.
    Dead { error: String },
}

/// What a delivery records: the Message-ID(s), to whom, and the rendered subject and text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent<'a> {
    pub message_id: &'a str,
    pub recipients: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// Only recorded in the database (no SMTP server), not handed to a server.
    pub captured: bool,
}

/// A row as administrators see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    /// The request, or none for a message to a person (a daily digest).
    pub instance: Option<String>,
    pub kind: String,
    /// `pending`, `sending`, `sent`, `dead`, or `captured`: sent to no server but recorded
    /// here (when no SMTP server is configured).
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub message_id: Option<String>,
    pub recipients: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
}

fn life(state: &str) -> Result<OutboxLife, Error> {
    Ok(match state {
        "pending" => OutboxLife::Pending,
        "sending" => OutboxLife::Sending,
        "sent" => OutboxLife::Sent,
        "dead" => OutboxLife::Dead,
        other => return Err(Error::Corrupt(format!("outbox state `{other}`"))),
    })
}

fn name(state: OutboxLife) -> &'static str {
    match state {
        OutboxLife::Pending => "pending",
        OutboxLife::Sending => "sending",
        OutboxLife::Sent => "sent",
        OutboxLife::Dead => "dead",
    }
}

/// Whether a fenced update applied; when it did not, the lease was lost to another claim.
fn fenced(id: &str, attempt: i64, rows: u64) -> bool {
    if rows == 0 {
        tracing::warn!(
            message = id,
            attempt,
            "the lease on this message was lost (claimed again meanwhile): nothing recorded"
        );
    }
    rows == 1
}

fn next(from: &str, action: OutboxAction) -> Result<&'static str, Error> {
    let from = life(from)?;
    lifecycle::outbox(from, action).map(name).ok_or_else(|| {
        Error::Conflict(format!(
            "an outbox message cannot {action:?} while {from:?}"
        ))
    })
}

const COLUMNS: &str = "id, instance, kind, state, attempts, next_attempt_at, last_error, created_at, sent_at, message_id, recipients, subject, body, captured";

/// The states a listing can be filtered on ([`Engine::outbox_messages`]).
pub const STATES: &[&str] = &["pending", "sending", "sent", "captured", "dead"];

fn message(r: &Row) -> Result<Message, Error> {
    Ok(Message {
        id: r.text(0)?,
        instance: r.opt_text(1)?,
        kind: r.text(2)?,
        state: match (r.text(3)?, r.int(13)? != 0) {
            (state, true) if state == "sent" => "captured".to_owned(),
            (state, _) => state,
        },
        attempts: r.int(4)?,
        next_attempt_at: r.int(5)?,
        last_error: r.opt_text(6)?,
        created_at: r.int(7)?,
        sent_at: r.opt_int(8)?,
        message_id: r.opt_text(9)?,
        recipients: r.opt_text(10)?,
        subject: r.opt_text(11)?,
        body: r.opt_text(12)?,
    })
}

impl Engine {
    /// Queues one email outside any command (a fresh link someone asked for), due now, under
    /// `message` (a fresh id per request: a new message, hence a new link).
    pub(crate) async fn queue_email(
        &self,
        message: String,
        instance: &str,
        effect: &Effect,
    ) -> Result<(), Error> {
        let now = self.now().0;
        self.write_one(
            "INSERT INTO outbox (id, instance, kind, payload, state, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, 'email', $3, 'pending', 0, $4, $4) ON CONFLICT (id) DO NOTHING",
            vec![
                V::Text(message),
                V::Text(instance.to_owned()),
                V::Text(serde_json::to_string(effect).map_err(|e| Error::Corrupt(e.to_string()))?),
                V::Int(now),
            ],
        )
        .await?;
        Ok(())
    }

    /// Claims up to `limit` messages that are due (pending and due, or sending with an expired
    /// lease), holding each for `lease_ms`.
    /// Only messages of `kind` (`email` or `webhook`) are claimed.
    pub async fn claim_outbox(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: i64,
        kind: &str,
    ) -> Result<Vec<Claimed>, Error> {
        self.claim_outbox_of(now, lease_ms, limit, kind, Providers::Any, Holder::ThisNode)
            .await
    }

    /// [`Engine::claim_outbox`], for some providers only (webhooks).
    pub async fn claim_outbox_of(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: i64,
        kind: &str,
        providers: Providers<'_>,
        holder: Holder,
    ) -> Result<Vec<Claimed>, Error> {
        let rows = self
            .claim_rows(now, lease_ms, limit, kind, providers, holder)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Claimed {
                    instance: r
                        .instance
                        .ok_or_else(|| Error::Corrupt(format!("outbox {} has no request", r.id)))?,
                    effect: serde_json::from_str(&r.payload)
                        .map_err(|e| Error::Corrupt(e.to_string()))?,
                    id: r.id,
                    kind: r.kind,
                    attempt: r.attempt,
                })
            })
            .collect()
    }

    /// Claims due rows of one kind: a compare-and-set per row, so that of two dispatchers
    /// (or nodes) only one wins each row.
    pub(crate) async fn claim_rows(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: i64,
        kind: &str,
        providers: Providers<'_>,
        holder: Holder,
    ) -> Result<Vec<ClaimedRow>, Error> {
        let (filter, names): (String, Vec<&str>) = match providers {
            Providers::Any => (String::new(), Vec::new()),
            Providers::Only(p) => (" AND provider = $4".to_owned(), vec![p]),
            Providers::Except([]) => (String::new(), Vec::new()),
            Providers::Except(list) => {
                let marks: Vec<String> = (0..list.len()).map(|n| format!("${}", n + 4)).collect();
                (
                    format!(
                        " AND (provider IS NULL OR provider NOT IN ({}))",
                        marks.join(", ")
                    ),
                    list.iter().map(String::as_str).collect(),
                )
            }
        };
        // Per state, so that the index (state, next_attempt_at) gives the rows in order and
        // the scan stops at `limit`: with both states in one query the database sorted every
        // due row at each pass, which made working through a backlog quadratic. Messages left
        // `sending` by a dispatcher that died come first: those whose lease ended, and those
        // held by a node whose heartbeat stopped (the few rows `sending` are all read).
        let mut rows = Vec::new();
        for state in ["sending", "pending"] {
            let room = limit - rows.len() as i64;
            if room <= 0 {
                break;
            }
            let mut args = vec![V::Int(now.0), V::Int(room), V::Text(kind.to_owned())];
            args.extend(names.iter().map(|n| V::Text((*n).to_owned())));
            let due = if state == "sending" {
                args.push(V::Int(now.0 - crate::runtime::nodes::STALE_MS));
                format!(
                    "(next_attempt_at <= $1 OR (claimed_by IS NOT NULL AND claimed_by NOT IN \
                     (SELECT id FROM nodes WHERE seen_at >= ${})))",
                    args.len()
                )
            } else {
                "next_attempt_at <= $1".to_owned()
            };
            let sql = format!(
                "SELECT id, instance, kind, payload, state, attempts, next_attempt_at FROM outbox \
                 WHERE state = '{state}' AND {due} AND kind = $3{filter} \
                 ORDER BY next_attempt_at LIMIT $2"
            );
            rows.extend(in_read!(self.store(), |db| db.rows(sql.clone().into(), &args))?);
        }
        // Marked as this node's once it has announced itself (before, a lease alone).
        let held_by =
            (holder == Holder::ThisNode && self.node.announced()).then(|| self.node.id.clone());
        // One compare-and-set per row, all in one write.
        let mut candidates = Vec::with_capacity(rows.len());
        let mut claims = Vec::with_capacity(rows.len());
        for r in rows {
            let id = r.text(0)?;
            let state = r.text(4)?;
            let attempts = r.int(5)?;
            let due = r.int(6)?;
            // A message left `sending` by a dispatcher that died goes back to pending first.
            let from = if state == "sending" {
                next(&state, OutboxAction::LeaseExpired)?
            } else {
                "pending"
            };
            let to = next(from, OutboxAction::Claim)?;
            claims.push((
                "UPDATE outbox SET state = $1, attempts = attempts + 1, next_attempt_at = $2, claimed_by = $6 \
                 WHERE id = $3 AND state = $4 AND next_attempt_at = $5"
                    .into(),
                vec![
                    V::Text(to.to_owned()),
                    V::Int(now.0 + lease_ms),
                    V::Text(id.clone()),
                    V::Text(state),
                    V::Int(due),
                    V::MaybeText(held_by.clone()),
                ],
            ));
            candidates.push(ClaimedRow {
                id,
                instance: r.opt_text(1)?,
                kind: r.text(2)?,
                payload: r.text(3)?,
                attempt: attempts + 1,
            });
        }
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let won = self.write_all(claims).await?;
        // The rows another dispatcher took meanwhile are left to it.
        Ok(candidates
            .into_iter()
            .zip(won)
            .filter(|(_, changed)| *changed == 1)
            .map(|(row, _)| row)
            .collect())
    }

    /// A provider reports the work it fetched and locked (`attempt` is the fencing token it
    /// was given): the call's step moves on, and the message is done. A completion whose lock
    /// was lost (expired, and the work fetched again) is refused and changes nothing.
    pub async fn complete_pulled(
        &self,
        id: &str,
        provider: &str,
        attempt: i64,
        outcome: Option<String>,
        fields: crate::core::Fields,
    ) -> Result<(), Error> {
        let now = self.now();
        let sql = "SELECT instance, payload, state, attempts, next_attempt_at FROM outbox WHERE id = $1 AND provider = $2";
        let key = [V::Text(id.to_owned()), V::Text(provider.to_owned())];
        let row = in_read!(self.store(), |db| db.row(sql.into(), &key))?
            .ok_or_else(|| Error::NotFound(format!("external task {id}")))?;
        let state = row.text(2)?;
        let attempts = row.int(3)?;
        let lease_end = row.int(4)?;
        if state != "sending" || attempts != attempt || lease_end <= now.0 {
            return Err(Error::Conflict(format!(
                "the lock on external task {id} was lost (expired or taken again); fetch it again"
            )));
        }
        let instance = row.text(0)?;
        let payload = row.text(1)?;
        let Effect::CallProvider { token, .. } =
            serde_json::from_str(&payload).map_err(|e| Error::Corrupt(e.to_string()))?
        else {
            return Err(Error::Corrupt(format!("outbox {id} is not a call")));
        };
        let answered = self
            .execute(
                &instance,
                crate::core::Command::Callback {
                    token,
                    provider: provider.to_owned(),
                    outcome,
                    fields,
                },
            )
            .await;
        match answered {
            Ok(_) => {
                let sent = Sent {
                    message_id: id,
                    recipients: provider,
                    ..Sent::default()
                };
                self.outbox_sent(id, attempt, now, &sent).await?;
                Ok(())
            }
            // The call no longer waits (it timed out, or was answered): the work is over.
            Err(Error::Refused(crate::core::Error::UnknownToken(_))) => {
                let sent = Sent {
                    message_id: id,
                    recipients: provider,
                    body: "no longer waited for",
                    ..Sent::default()
                };
                self.outbox_sent(id, attempt, now, &sent).await?;
                Err(Error::Conflict(format!(
                    "request {instance} no longer waits for this work (it timed out or was answered)"
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// Records a delivered (or captured) message. `attempt` is the one the claim returned: a
    /// fencing token, so that a dispatcher whose lease ran out (it was paused, or slow) and
    /// whose message was claimed again records nothing; returns whether it was recorded.
    pub async fn outbox_sent(
        &self,
        id: &str,
        attempt: i64,
        now: Timestamp,
        sent: &Sent<'_>,
    ) -> Result<bool, Error> {
        let outcome = Outcome::Sent {
            message_id: sent.message_id.to_owned(),
            recipients: sent.recipients.to_owned(),
            subject: sent.subject.to_owned(),
            body: sent.body.to_owned(),
            captured: sent.captured,
        };
        self.one_outcome(id, attempt, outcome, now).await
    }

    /// Records a transient failure: the message goes back to pending until `retry_at`
    /// (fenced by `attempt` as [`Engine::outbox_sent`] is).
    pub async fn outbox_retry(
        &self,
        id: &str,
        attempt: i64,
        retry_at: Timestamp,
        error: &str,
    ) -> Result<bool, Error> {
        let outcome = Outcome::Retry {
            at: retry_at,
            error: error.to_owned(),
        };
        self.one_outcome(id, attempt, outcome, self.now()).await
    }

    /// Records a permanent failure: the message becomes a dead letter, shown to
    /// administrators, who may retry it (fenced by `attempt` as [`Engine::outbox_sent`] is).
    pub async fn outbox_dead(&self, id: &str, attempt: i64, error: &str) -> Result<bool, Error> {
        let outcome = Outcome::Dead {
            error: error.to_owned(),
        };
        self.one_outcome(id, attempt, outcome, self.now()).await
    }

    async fn one_outcome(
        &self,
        id: &str,
        attempt: i64,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<bool, Error> {
        let recorded = self
            .outbox_settle(&[(id.to_owned(), attempt, outcome)], now)
            .await?;
        Ok(recorded.first() == Some(&true))
    }

    /// Records what became of several claimed messages (id, attempt, outcome), in one
    /// transaction (a dispatcher's pass: one commit instead of one a message); whether each
    /// was recorded, fenced by its attempt as [`Engine::outbox_sent`] is. `now` is when a
    /// sent message went.
    pub async fn outbox_settle(
        &self,
        settled: &[(String, i64, Outcome)],
        now: Timestamp,
    ) -> Result<Vec<bool>, Error> {
        if settled.is_empty() {
            return Ok(Vec::new());
        }
        let mut statements = Vec::with_capacity(settled.len());
        for (id, attempt, outcome) in settled {
            let (id, attempt) = (V::Text(id.clone()), V::Int(*attempt));
            statements.push(match outcome {
                Outcome::Sent {
                    message_id,
                    recipients,
                    subject,
                    body,
                    captured,
                } => (
                    "UPDATE outbox SET state = $1, sent_at = $2, message_id = $3, recipients = $4, subject = $5, body = $6, last_error = NULL, captured = $9 \
                     WHERE id = $7 AND state = 'sending' AND attempts = $8"
                        .into(),
                    vec![
                        V::Text(next("sending", OutboxAction::Succeed)?.to_owned()),
                        V::Int(now.0),
                        V::Text(message_id.clone()),
                        V::Text(recipients.clone()),
                        V::Text(subject.clone()),
                        V::Text(body.clone()),
                        id,
                        attempt,
                        V::Int(i64::from(*captured)),
                    ],
                ),
                Outcome::Retry { at, error } => (
                    "UPDATE outbox SET state = $1, next_attempt_at = $2, last_error = $3 WHERE id = $4 AND state = 'sending' AND attempts = $5"
                        .into(),
                    vec![
                        V::Text(next("sending", OutboxAction::RetryLater)?.to_owned()),
                        V::Int(at.0),
                        V::Text(error.clone()),
                        id,
                        attempt,
                    ],
                ),
                Outcome::Dead { error } => (
                    "UPDATE outbox SET state = $1, last_error = $2 WHERE id = $3 AND state = 'sending' AND attempts = $4"
                        .into(),
                    vec![
                        V::Text(next("sending", OutboxAction::Fail)?.to_owned()),
                        V::Text(error.clone()),
                        id,
                        attempt,
                    ],
                ),
            });
        }
        let changed = self.write_all(statements).await?;
        Ok(settled
            .iter()
            .zip(changed)
            .map(|((id, attempt, _), rows)| fenced(id, *attempt, rows))
            .collect())
    }

    /// An administrator retries a dead letter: it is due at once, with its Message-ID kept.
    pub async fn outbox_retry_dead(&self, id: &str, now: Timestamp) -> Result<(), Error> {
        let to = next("dead", OutboxAction::Retry)?;
        let n = self
            .write_one(
                "UPDATE outbox SET state = $1, next_attempt_at = $2, attempts = 0 WHERE id = $3 AND state = 'dead'",
                vec![V::Text(to.to_owned()), V::Int(now.0), V::Text(id.to_owned())],
            )
            .await?;
        if n == 0 {
            return Err(Error::NotFound(format!("no dead letter {id}")));
        }
        Ok(())
    }

    /// Messages, newest first, optionally of one state (one of [`STATES`]: `sent` and
    /// `captured` tell mail handed to a server from mail only recorded here).
    pub async fn outbox_messages(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Message>, Error> {
        if let Some(s) = state
            && !STATES.contains(&s)
        {
            return Err(Error::Invalid(format!(
                "unknown state `{s}`: one of {}",
                STATES.join(", ")
            )));
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE ($1 = '' OR state = $1) AND ($3 < 0 OR captured = $3) \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let (state, captured) = match state {
            Some("captured") => ("sent", 1),
            Some("sent") => ("sent", 0),
            Some(s) => (s, -1),
            None => ("", -1),
        };
        let key = [V::Text(state.to_owned()), V::Int(limit), V::Int(captured)];
        let rows = in_long_read!(self.store(), |db| db.rows(sql.into(), &key))?;
        rows.iter().map(message).collect()
    }

    /// One message by id.
    pub async fn outbox_message(&self, id: &str) -> Result<Message, Error> {
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = $1");
        let key = [V::Text(id.to_owned())];
        let row = in_read!(self.store(), |db| db.row(sql.into(), &key))?
            .ok_or_else(|| Error::NotFound(format!("no message {id}")))?;
        message(&row)
    }
}
