//! External providers (desk models b and c): a `call` step sends a signed webhook from the
//! outbox, and the request waits for the provider's callback.
//!
//! - **Webhook**: `POST` to the provider's URL, JSON body, headers `Guichet-Message-Id` (the
//!   outbox id, the same on every resend: an idempotency key) and `Guichet-Signature:
//!   t=<unix seconds>,v1=<hex HMAC-SHA-256 of "t.body" with the provider's secret>`. 2xx is
//!   delivered; 408, 429, 5xx and network errors are retried like emails; other 4xx are dead
//!   letters.
//! - **Callback**: the provider `POST`s `{"outcome": ..., "fields": {...}}` to the callback URL
//!   given in the webhook (it carries an unguessable token bound to that one call), signed the
//!   same way. [`Webhooks::accept_callback`] checks the token, the signature and its age (a
//!   replay window), then hands the result to the engine, which validates it against the
//!   step's declared outcomes and fields. A callback replayed, forged, or arriving after the
//!   step timed out is refused, and nothing changes.
//!
//! The webhook says which request and step, and which fields and outcomes are expected; it
//! carries no case data (a provider that needs more asks the desk through the API).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use guichet_definitions::model::StepKind;
use guichet_engine::Engine;
use guichet_engine::clock::Timestamp;
use guichet_engine::core::{Command, Effect, Fields, Instance};
use guichet_engine::runtime::outbox::Claimed;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::delivery::{Failure, Report, RetryPolicy};

/// Where a provider receives webhooks, and the secret shared with it.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub url: String,
    pub secret: String,
}

/// How old a signature may be (seconds): older callbacks are refused as replays.
pub const REPLAY_WINDOW_S: i64 = 300;

/// `t=<seconds>,v1=<hex hmac>` over `"{t}.{body}"`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let hex = hex::encode(mac.finalize().into_bytes());
    format!("t={t},v1={hex}")
}

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Unknown, forged, expired or already used callback URL.
    #[error("unknown or already used callback URL")]
    Invalid,
    #[error("bad signature")]
    BadSignature,
    #[error(
        "the signature is older than the replay window ({REPLAY_WINDOW_S} s) or from the future"
    )]
    Stale,
    #[error("the body is not a callback: {0}")]
    Malformed(String),
    /// The step no longer waits (it timed out and took its timeout path).
    #[error("late callback: the step no longer waits for it ({0})")]
    Late(String),
    /// The outcome or a field does not match the step's declaration.
    #[error("{0}")]
    Refused(String),
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackBody {
    outcome: Option<String>,
    #[serde(default)]
    fields: Fields,
}

/// The webhook side of the outbox, and callback acceptance.
#[derive(Debug)]
pub struct Webhooks {
    pub engine: Arc<Engine>,
    pub providers: HashMap<String, ProviderConfig>,
    /// Providers that pull their work through the API (fetch-and-lock) instead of receiving
    /// webhooks: the dispatcher leaves their calls alone.
    pub pull: Vec<String>,
    /// The public address of the web server, for callback URLs.
    pub base_url: String,
    pub policy: RetryPolicy,
    pub timeout: Duration,
}

impl Webhooks {
    /// Claims the due webhooks and posts them.
    pub async fn run_once(&self, limit: i64) -> Result<Report, guichet_engine::Error> {
        let now = self.engine.now();
        let mut report = Report::default();
        for claimed in self
            .engine
            .claim_outbox_of(
                now,
                self.policy.lease_ms,
                limit,
                "webhook",
                guichet_engine::runtime::outbox::Providers::Except(&self.pull),
                guichet_engine::runtime::outbox::Holder::ThisNode,
            )
            .await?
        {
            let result = self.deliver(&claimed).await;
            crate::delivery::settle(
                &self.engine,
                &self.policy,
                (&claimed.id, claimed.attempt),
                result,
                now,
                &mut report,
            )
            .await?;
        }
        Ok(report)
    }

    async fn deliver(&self, m: &Claimed) -> Result<(), Failure> {
        let Effect::CallProvider {
            provider,
            step,
            token,
        } = &m.effect
        else {
            return Err(Failure::Permanent("not a webhook".into()));
        };
        let Some(config) = self.providers.get(provider) else {
            return Err(Failure::Permanent(format!(
                "provider `{provider}` has no URL configured (--provider {provider}=URL and its secret)"
            )));
        };
        let db = |e: guichet_engine::Error| Failure::Transient(format!("database: {e}"));
        let (desk, inst) = self.engine.instance(&m.instance).await.map_err(db)?;
        let process = self.engine.process_of(&m.instance).await.map_err(db)?;
        let Some(step_def) = process.step(step) else {
            return Err(Failure::Permanent(format!(
                "step `{step}` is not in the definition"
            )));
        };
        let timeout_at = inst
            .timers
            .values()
            .find(|t| matches!(t.kind, guichet_engine::core::TimerKind::Timeout { token: k } if k == *token))
            .map(|t| t.due_at);
        // The callback URL lives until the step's timeout (plus a day), or 90 days.
        let expires = Timestamp(
            timeout_at.map_or(self.engine.now().0 + 90 * 86_400_000, |t| t.0 + 86_400_000),
        );
        let secret_token = self
            .engine
            .issue_callback(&m.instance, *token, provider, &m.id, expires)
            .await
            .map_err(db)?;
        let (fields, outcomes) = match &step_def.kind {
            StepKind::Call(c) => (
                c.form
                    .fields
                    .iter()
                    .map(|f| serde_json::json!({"id": f.id, "type": f.ty.as_str(), "required": f.required}))
                    .collect::<Vec<_>>(),
                c.outcomes.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        let body = serde_json::json!({
            "id": m.id,
            "desk": desk,
            "request": m.instance,
            "step": step,
            "provider": provider,
            "callback_url": format!("{}/callbacks/{secret_token}", self.base_url.trim_end_matches('/')),
            "outcomes": outcomes,
            "fields": fields,
            "respond_before": timeout_at.map(|t| t.0),
        })
        .to_string();
        let signature = sign(&config.secret, self.engine.now().0 / 1000, body.as_bytes());
        let (url, id, timeout) = (config.url.clone(), m.id.clone(), self.timeout);
        let status = tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(timeout))
                .http_status_as_error(false)
                .build()
                .into();
            agent
                .post(&url)
                .header("Content-Type", "application/json")
                .header("Guichet-Message-Id", &id)
                .header("Guichet-Signature", &signature)
                .send(body.as_bytes())
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| Failure::Transient(e.to_string()))?
        .map_err(|e| Failure::Transient(format!("POST {}: {e}", config.url)))?;
        match status {
            200..=299 => self
                .engine
                .outbox_sent(
                    &m.id,
                    m.attempt,
                    self.engine.now(),
                    &guichet_engine::runtime::outbox::Sent {
                        message_id: &m.id,
                        recipients: provider,
                        subject: &format!("webhook {step}"),
                        ..Default::default()
                    },
                )
                .await
                .map(|_| ())
                .map_err(db),
            408 | 429 | 500..=599 => Err(Failure::Transient(format!(
                "the provider answered {status}"
            ))),
            _ => Err(Failure::Permanent(format!(
                "the provider refused the webhook with {status}"
            ))),
        }
    }

    /// Accepts a provider's callback: the token from the URL, the `Guichet-Signature` header
    /// and the raw body.
    pub async fn accept_callback(
        &self,
        secret_token: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<Instance, CallbackError> {
        self.accept_callback_with(secret_token, signature, body, &Fields::new())
            .await
    }

    /// [`Webhooks::accept_callback`] with documents: a multipart callback's file parts,
    /// already stored (`sha256`, `name`, `size`, `type`, by field). The signed body must name
    /// each one's SHA-256 in its field (`"fields": {"rapport": {"sha256": "..."}}`), so that
    /// the signature covers the documents too; a file field's value that did not come as a
    /// document is refused (a document is recorded only with its file).
    pub async fn accept_callback_with(
        &self,
        secret_token: &str,
        signature: &str,
        body: &[u8],
        documents: &Fields,
    ) -> Result<Instance, CallbackError> {
        let grant = self
            .engine
            .callback_grant(secret_token)
            .await
            .map_err(|_| CallbackError::Invalid)?;
        let config = self
            .providers
            .get(&grant.provider)
            .ok_or(CallbackError::Invalid)?;
        // The signature: t=..,v1=.. over "t.body", checked in constant time.
        let mut t = None;
        let mut v1 = None;
        for part in signature.split(',') {
            match part.trim().split_once('=') {
                Some(("t", v)) => t = v.parse::<i64>().ok(),
                Some(("v1", v)) => v1 = Some(v.to_owned()),
                _ => {}
            }
        }
        let (Some(t), Some(v1)) = (t, v1) else {
            return Err(CallbackError::BadSignature);
        };
        let expected = hex_decode(&v1).ok_or(CallbackError::BadSignature)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(config.secret.as_bytes())
            .map_err(|e| CallbackError::Internal(e.to_string()))?;
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&expected)
            .map_err(|_| CallbackError::BadSignature)?;
        let now_s = self.engine.now().0 / 1000;
        if (now_s - t).abs() > REPLAY_WINDOW_S {
            return Err(CallbackError::Stale);
        }
        let mut parsed: CallbackBody =
            serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
        self.with_documents(&grant, &mut parsed.fields, documents)
            .await?;
        let result = self
            .engine
            .execute(
                &grant.instance,
                Command::Callback {
                    token: grant.token,
                    provider: grant.provider.clone(),
                    outcome: parsed.outcome,
                    fields: parsed.fields,
                },
            )
            .await;
        match result {
            Ok(inst) => {
                self.engine
                    .spend_callback(secret_token)
                    .await
                    .map_err(|e| CallbackError::Internal(e.to_string()))?;
                Ok(inst)
            }
            Err(guichet_engine::Error::Refused(
                e @ (guichet_engine::core::Error::UnknownToken(_)
                | guichet_engine::core::Error::NotRunning(_)),
            )) => Err(CallbackError::Late(e.to_string())),
            Err(guichet_engine::Error::Refused(e)) if !e.is_internal() => {
                Err(CallbackError::Refused(e.to_string()))
            }
            Err(e) => Err(CallbackError::Internal(e.to_string())),
        }
    }
}

impl Webhooks {
    /// Puts the documents of a callback in its fields, checked against the hashes the signed
    /// body gives them; refuses a file field's value without its document.
    async fn with_documents(
        &self,
        grant: &guichet_engine::runtime::links::CallbackGrant,
        fields: &mut Fields,
        documents: &Fields,
    ) -> Result<(), CallbackError> {
        let internal = |e: guichet_engine::Error| CallbackError::Internal(e.to_string());
        let (_, inst) = self
            .engine
            .instance(&grant.instance)
            .await
            .map_err(internal)?;
        let p = self
            .engine
            .process_of(&grant.instance)
            .await
            .map_err(internal)?;
        let Some(form) = inst
            .tokens
            .get(&grant.token)
            .and_then(|t| p.steps[t.step].form())
        else {
            return Ok(());
        };
        for f in form
            .fields
            .iter()
            .filter(|f| f.ty == guichet_definitions::model::FieldType::File)
        {
            let declared = fields
                .get(&f.id)
                .and_then(|v| v.get("sha256"))
                .and_then(|v| v.as_str());
            match (documents.get(&f.id), declared) {
                (Some(doc), Some(sha))
                    if doc.get("sha256").and_then(|v| v.as_str()) == Some(sha) =>
                {
                    fields.insert(f.id.clone(), doc.clone());
                }
                (Some(_), _) => {
                    return Err(CallbackError::Malformed(format!(
                        "the document `{}` is not the one whose SHA-256 the signed body gives",
                        f.id
                    )));
                }
                (None, _) if fields.contains_key(&f.id) => {
                    return Err(CallbackError::Malformed(format!(
                        "send the document `{}` as a file part of a multipart callback",
                        f.id
                    )));
                }
                (None, _) => {}
            }
        }
        Ok(())
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
