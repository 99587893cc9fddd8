//! Email links as capabilities. A link carries a token of 256 bits bound to one request, one
//! task (or none: the sponsor's status link) and one recipient; only its SHA-256 is stored.
//! A token expires, opens its task only while the task is open (checked when it is used: a
//! link recorded after its task closed is dead too), is revoked when its task is reassigned,
//! and can be spent once for an action. Opening a link never acts (mail scanners follow links): the web page
//! shows the task, and acting is a separate request that spends the token.
//!
//! Tokens are derived with HMAC-SHA-256 from a secret the engine generates at first start,
//! the outbox message and the recipient: a resend of the same message carries the same
//! link, so retries do not multiply valid tokens.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::error::Error;
use crate::runtime::Engine;
use crate::store::db::{Db as _, V};
use crate::store::in_read;

/// A link for one recipient of one message ([`Engine::link_for`]): its token (what the
/// email carries; only its hash is stored), what it opens, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub token: String,
    pub instance: String,
    pub task: Option<u32>,
    pub recipient: String,
    pub expires_at: Timestamp,
}

/// What a valid link grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub instance: String,
    pub task: Option<u32>,
    pub recipient: String,
    pub expires_at: Timestamp,
}

/// Why a link does not open. Deliberately one answer for every case (unknown, forged,
/// expired, revoked, used): the page must not tell which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this link is not valid (any more); ask for a fresh one")]
pub struct Invalid;

pub(crate) fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a token.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Engine {
    /// The secret links are derived from, created once per database.
    async fn link_secret(&self) -> Result<Vec<u8>, Error> {
        if let Some(secret) = self.link_secret.get() {
            return Ok(secret.clone());
        }
        let secret = self.read_link_secret().await?;
        Ok(self.link_secret.get_or_init(|| secret).clone())
    }

    async fn read_link_secret(&self) -> Result<Vec<u8>, Error> {
        let sql = "SELECT value FROM settings WHERE key = 'link-secret'";
        if let Some(row) = in_read!(self.store(), |db| db.row(sql.into(), &[]))? {
            return Ok(row.text(0)?.into_bytes());
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::Corrupt(format!("no randomness: {e}")))?;
        // Two first starts at once: the first insert wins, both read it back.
        self.write_one(
            "INSERT INTO settings (key, value) VALUES ('link-secret', $1) ON CONFLICT (key) DO NOTHING",
            vec![V::Text(hex::encode(bytes))],
        )
        .await?;
        let row = in_read!(self.store(), |db| db.row(sql.into(), &[]))?
            .ok_or_else(|| Error::Corrupt("the link secret was not kept".into()))?;
        Ok(row.text(0)?.into_bytes())
    }

    /// The link for one recipient of one outbox message (its token the same on every
    /// resend), not recorded yet: [`Engine::record_links`] records several at once.
    pub async fn link_for(
        &self,
        instance: &str,
        task: Option<u32>,
        recipient: &str,
        message: &str,
        expires_at: Timestamp,
    ) -> Result<Link, Error> {
        let token = self
            .derive(&format!(
                "guichet-link\0{instance}\0{task:?}\0{recipient}\0{message}"
            ))
            .await?;
        Ok(Link {
            token,
            instance: instance.to_owned(),
            task,
            recipient: recipient.to_owned(),
            expires_at,
        })
    }

    /// Records links as valid until their expiry, in one transaction (a link recorded
    /// before is left as it is).
    pub async fn record_links(&self, links: &[Link]) -> Result<(), Error> {
        if links.is_empty() {
            return Ok(());
        }
        let now = self.now().0;
        let statements = links
            .iter()
            .map(|link| {
                (
                    "INSERT INTO links (token_hash, instance, task, recipient, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (token_hash) DO NOTHING"
                        .into(),
                    vec![
                        V::Text(token_hash(&link.token)),
                        V::Text(link.instance.clone()),
                        V::MaybeInt(link.task.map(i64::from)),
                        V::Text(link.recipient.clone()),
                        V::Int(now),
                        V::Int(link.expires_at.0),
                    ],
                )
            })
            .collect();
        self.write_all(statements).await?;
        Ok(())
    }

    /// What a token grants, if it is valid now. Reading never spends it.
    pub async fn verify_link(&self, token: &str) -> Result<Grant, Invalid> {
        self.grant(token, false).await
    }

    /// Spends a token for an action: valid once.
    pub async fn spend_link(&self, token: &str) -> Result<Grant, Invalid> {
        self.grant(token, true).await
    }

    async fn grant(&self, token: &str, spend: bool) -> Result<Grant, Invalid> {
        if token.len() > 100 {
            return Err(Invalid);
        }
        let now = self.now().0;
        let hash = token_hash(token);
        let sql = "SELECT l.instance, l.task, l.recipient, l.expires_at FROM links l \
             WHERE l.token_hash = $1 AND l.revoked_at IS NULL AND l.used_at IS NULL AND l.expires_at > $2 \
             AND (l.task IS NULL OR EXISTS (SELECT 1 FROM tasks t WHERE t.instance = l.instance \
             AND t.seq = l.task AND t.state IN ('open', 'claimed')))";
        let key = [V::Text(hash.clone()), V::Int(now)];
        let row = in_read!(self.store(), |db| db.row(sql.into(), &key))
            .map_err(|_| Invalid)?
            .ok_or(Invalid)?;
        if spend {
            let n = self
                .write_one(
                    "UPDATE links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
                    vec![V::Int(now), V::Text(hash.clone())],
                )
                .await
                .map_err(|_| Invalid)?;
            if n != 1 {
                return Err(Invalid); // spent by a concurrent request
            }
        }
        let task = row.opt_int(1).map_err(|_| Invalid)?;
        Ok(Grant {
            instance: row.text(0).map_err(|_| Invalid)?,
            task: task.and_then(|t| u32::try_from(t).ok()),
            recipient: row.text(2).map_err(|_| Invalid)?,
            expires_at: Timestamp(row.int(3).map_err(|_| Invalid)?),
        })
    }
}

/// What a provider's callback token grants: answering one waiting call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackGrant {
    pub instance: String,
    /// The token (position) of the request that waits at the call step.
    pub token: u32,
    pub provider: String,
}

impl Engine {
    async fn derive(&self, purpose: &str) -> Result<String, Error> {
        let secret = self.link_secret().await?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&secret).map_err(|e| Error::Corrupt(e.to_string()))?;
        mac.update(purpose.as_bytes());
        Ok(b64url(&mac.finalize().into_bytes()))
    }

    /// The callback token for one webhook message (the same on every resend), valid until
    /// `expires_at` or its first accepted use.
    pub async fn issue_callback(
        &self,
        instance: &str,
        token: u32,
        provider: &str,
        message: &str,
        expires_at: Timestamp,
    ) -> Result<String, Error> {
        let secret_token = self
            .derive(&format!(
                "guichet-callback\0{instance}\0{token}\0{provider}\0{message}"
            ))
            .await?;
        self.write_one(
            "INSERT INTO callbacks (token_hash, instance, token, provider, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (token_hash) DO NOTHING",
            vec![
                V::Text(token_hash(&secret_token)),
                V::Text(instance.to_owned()),
                V::Int(i64::from(token)),
                V::Text(provider.to_owned()),
                V::Int(self.now().0),
                V::Int(expires_at.0),
            ],
        )
        .await?;
        Ok(secret_token)
    }

    /// What a callback token grants, if it is valid and unspent.
    pub async fn callback_grant(&self, secret_token: &str) -> Result<CallbackGrant, Invalid> {
        if secret_token.len() > 100 {
            return Err(Invalid);
        }
        let sql = "SELECT instance, token, provider FROM callbacks WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2";
        let key = [V::Text(token_hash(secret_token)), V::Int(self.now().0)];
        let row = in_read!(self.store(), |db| db.row(sql.into(), &key))
            .map_err(|_| Invalid)?
            .ok_or(Invalid)?;
        let token = row.int(1).map_err(|_| Invalid)?;
        Ok(CallbackGrant {
            instance: row.text(0).map_err(|_| Invalid)?,
            token: u32::try_from(token).map_err(|_| Invalid)?,
            provider: row.text(2).map_err(|_| Invalid)?,
        })
    }

    /// Marks a callback token spent (after its callback was accepted).
    pub async fn spend_callback(&self, secret_token: &str) -> Result<(), Error> {
        self.write_one(
            "UPDATE callbacks SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
            vec![V::Int(self.now().0), V::Text(token_hash(secret_token))],
        )
        .await?;
        Ok(())
    }
}

impl Engine {
    /// Someone whose link no longer works asks for a fresh one: when `email` may act on the
    /// open task (its assignee, or a recipient of its role when nobody holds it), a new task
    /// email is queued for them. The answer is the same either way, so the request reveals
    /// nothing about the task or who works on it.
    pub async fn request_fresh_link(
        &self,
        instance: &str,
        task: u32,
        email: &str,
    ) -> Result<(), Error> {
        let Ok((_, inst)) = self.instance(instance).await else {
            return Ok(());
        };
        let Some(t) = inst.tasks.get(&task) else {
            return Ok(());
        };
        let process = self.process_of(instance).await?;
        let allowed = match &t.assignee {
            Some(a) => a.eq_ignore_ascii_case(email),
            None => crate::core::recipients(
                &process,
                &inst,
                &crate::core::Recipient::Role(t.role.clone()),
            )
            .iter()
            .any(|r| r.eq_ignore_ascii_case(email)),
        };
        if !allowed {
            return Ok(());
        }
        let effect = crate::core::Effect::Email {
            template: "tache-assignee".into(),
            to: crate::core::Recipient::Person(email.to_owned()),
            task: Some(task),
        };
        let now = self.now().0;
        // A fresh id per request: a new message, hence a new link.
        self.queue_email(format!("{instance}.fresh.{task}.{now}"), instance, &effect)
            .await?;
        Ok(())
    }
}

impl Engine {
    /// The anti-forgery token of the form a link's page shows: derived from the link's token
    /// with the engine's secret, so another site can neither read nor guess it.
    pub async fn csrf_for(&self, link_token: &str) -> Result<String, Error> {
        self.derive(&format!("guichet-csrf\0{link_token}")).await
    }

    /// A link that no longer works (expired, used, revoked): if it was a task link, its
    /// recipient gets a fresh one, when they may still act on the task. Unknown or forged
    /// tokens do nothing. The caller answers the same in every case.
    pub async fn fresh_link_for(&self, link_token: &str) -> Result<(), Error> {
        if link_token.len() > 100 {
            return Ok(());
        }
        let sql = "SELECT instance, task, recipient FROM links WHERE token_hash = $1";
        let key = [V::Text(token_hash(link_token))];
        let Some(row) = in_read!(self.store(), |db| db.row(sql.into(), &key))? else {
            return Ok(());
        };
        let Some(task) = row.opt_int(1)?.and_then(|t| u32::try_from(t).ok()) else {
            return Ok(());
        };
        let instance = row.text(0)?;
        let recipient = row.text(2)?;
        self.request_fresh_link(&instance, task, &recipient).await
    }
}

/// The statement that revokes every live link of a task that is reassigned, to run in the
/// transaction that reassigns it (a closed task's links need none: see the module's notes).
pub(crate) fn revoke_task_links(
    instance: &str,
    task: u32,
    now: Timestamp,
) -> crate::store::db::Statement {
    use crate::store::db::V;
    (
        "UPDATE links SET revoked_at = $1 WHERE instance = $2 AND task = $3 AND revoked_at IS NULL"
            .into(),
        vec![
            V::Int(now.0),
            V::Text(instance.to_owned()),
            V::Int(i64::from(task)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::b64url;

    #[test]
    fn base64url_without_padding() {
        assert_eq!(b64url(b""), "");
        assert_eq!(b64url(b"f"), "Zg");
        assert_eq!(b64url(b"fo"), "Zm8");
        assert_eq!(b64url(b"foo"), "Zm9v");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(b64url(&[0u8; 32]).len(), 43);
    }
}
