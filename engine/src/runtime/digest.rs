//! Daily digests: a person may ask for one email a day listing the tasks waiting for them,
//! instead of an email for every new task and every reminder. Deadline-passed, escalation and
//! reassignment emails still come at once: they ask for action now.
//!
//! The preference is kept per address (a role's members are addresses in the definitions and
//! need no account). Once a day, at a configured hour in Paris time or at the first pass after
//! it, one outbox row is queued per subscriber who has something pending. Its id names the
//! day and the person, so queueing twice (a restart, two nodes) adds nothing, and it becomes
//! the Message-ID. The email is written when it is sent, from the inbox as it is then.

use guichet_definitions::model::Language;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::clock::Timestamp;
use crate::error::Error;
use crate::runtime::Engine;
use crate::runtime::outbox::{Holder, Providers};
use crate::store::db::{Db as _, Statement, V};
use crate::store::in_read;

/// What a person asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preference {
    pub email: String,
    /// One email a day instead of one per new task and reminder.
    pub digest: bool,
    /// The language of the digest.
    pub language: Language,
}

/// The payload of a digest's outbox row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub email: String,
    /// The day in Paris, `YYYY-MM-DD`.
    pub day: String,
}

/// A claimed digest, ready to write and send.
#[derive(Debug, Clone)]
pub struct ClaimedDigest {
    pub id: String,
    pub digest: Digest,
    /// Deliveries tried so far, this one included.
    pub attempt: i64,
}

/// The outbox kind of digests.
pub const KIND: &str = "digest";

/// The stable id of a person's digest of one day.
pub fn digest_id(email: &str, day: &str) -> String {
    let h = hex::encode(&Sha256::digest(email.as_bytes())[..8]);
    format!("digest.{day}.{h}")
}

/// The day a digest sent at `now` is for, if `now` is at or after `hour` o'clock in Paris.
pub fn digest_day(now: Timestamp, hour: u8) -> Option<String> {
    let local = now.in_paris();
    (local.hour() >= hour).then(|| {
        format!(
            "{}-{:02}-{:02}",
            local.year(),
            u8::from(local.month()),
            local.day()
        )
    })
}

impl Engine {
    /// Sets a person's email preference.
    pub async fn set_mail_preference(
        &self,
        email: &str,
        digest: bool,
        lang: Language,
    ) -> Result<Preference, Error> {
        let email = email.trim().to_lowercase();
        if !crate::core::form::may_be_address(&email) {
            return Err(Error::Refused(crate::core::Error::Invalid(vec![
                crate::core::form::FieldError::new(
                    "email",
                    crate::core::form::Problem::NotEmail {
                        value: email.clone(),
                    },
                ),
            ])));
        }
        self.write_one(
            "INSERT INTO mail_preferences (email, digest, language, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (email) DO UPDATE SET digest = $2, language = $3, updated_at = $4",
            vec![
                V::Text(email.clone()),
                V::Int(i64::from(digest)),
                V::Text(lang.code().to_owned()),
                V::Int(self.now().0),
            ],
        )
        .await?;
        Ok(Preference {
            email,
            digest,
            language: lang,
        })
    }

    /// A person's preference: by default, an email per task, in French.
    pub async fn mail_preference(&self, email: &str) -> Result<Preference, Error> {
        let email = email.trim().to_lowercase();
        Ok(self
            .mail_preferences(&[&email])
            .await?
            .remove(&email)
            .unwrap_or(Preference {
                email,
                digest: false,
                language: Language::Fr,
            }))
    }

    /// The mail preferences these people chose, by address in lower case, in one read; those
    /// who chose none are absent (their letters are in the request's or the desk's language).
    pub async fn mail_preferences(
        &self,
        emails: &[&str],
    ) -> Result<std::collections::HashMap<String, Preference>, Error> {
        let lower: Vec<String> = emails.iter().map(|e| e.trim().to_lowercase()).collect();
        let refs: Vec<&str> = lower.iter().map(String::as_str).collect();
        let (sql, keys) = crate::runtime::among(
            "SELECT email, digest, language FROM mail_preferences WHERE email",
            &refs,
        );
        let rows = in_read!(self.store(), |db| db.rows(sql.into(), &keys))?;
        let mut found = std::collections::HashMap::new();
        for r in rows {
            let email = r.text(0)?;
            let preference = Preference {
                email: email.clone(),
                digest: r.int(1)? != 0,
                language: Language::from_code(&r.text(2)?).unwrap_or(Language::Fr),
            };
            found.insert(email, preference);
        }
        Ok(found)
    }

    /// Queues today's digest of every subscriber with something pending, if it is `hour`
    /// o'clock or later in Paris. Returns how many were queued now: each person is considered
    /// once a day, so after the first pass of the day this is one small query.
    pub async fn queue_digests(&self, now: Timestamp, hour: u8) -> Result<usize, Error> {
        let Some(day) = digest_day(now, hour) else {
            return Ok(0);
        };
        let sql = "SELECT email FROM mail_preferences WHERE digest = 1 AND (last_day IS NULL OR last_day < $1) ORDER BY email";
        let key = [V::Text(day.clone())];
        let due = in_read!(self.store(), |db| db.rows(sql.into(), &key))?;
        let mut queued = 0;
        for r in due {
            let email = r.text(0)?;
            let pending = self.inbox(&email, 1).await?.total > 0;
            // The digest and the day it was considered, in one transaction.
            let mut statements: Vec<Statement> = Vec::with_capacity(2);
            if pending {
                let payload = serde_json::to_string(&Digest {
                    email: email.clone(),
                    day: day.clone(),
                })
                .map_err(|e| Error::Corrupt(e.to_string()))?;
                // The id names the person and the day: a second node queueing the same
                // digest adds nothing.
                statements.push((
                    "INSERT INTO outbox (id, instance, kind, payload, state, attempts, next_attempt_at, created_at) \
                     VALUES ($1, NULL, $2, $3, 'pending', 0, $4, $4) ON CONFLICT (id) DO NOTHING"
                        .into(),
                    vec![
                        V::Text(digest_id(&email, &day)),
                        V::Text(KIND.to_owned()),
                        V::Text(payload),
                        V::Int(now.0),
                    ],
                ));
            }
            statements.push((
                "UPDATE mail_preferences SET last_day = $1 WHERE email = $2".into(),
                vec![V::Text(day.clone()), V::Text(email)],
            ));
            let changed = self.write_all(statements).await?;
            if pending {
                queued += usize::try_from(changed[0]).unwrap_or_default();
            }
        }
        Ok(queued)
    }

    /// Claims the due digests, holding each for `lease_ms`.
    pub async fn claim_digests(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedDigest>, Error> {
        let rows = self
            .claim_rows(now, lease_ms, limit, KIND, Providers::Any, Holder::ThisNode)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(ClaimedDigest {
                    digest: serde_json::from_str(&r.payload)
                        .map_err(|e| Error::Corrupt(format!("digest {}: {e}", r.id)))?,
                    id: r.id,
                    attempt: r.attempt,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_starts_at_the_hour_in_paris() {
        // 2026-12-01 06:59 UTC is 07:59 in Paris (winter): not yet at 8; 07:00 UTC is.
        let t = |h: i64, m: i64| Timestamp(1_796_083_200_000 + (h * 60 + m) * 60_000);
        assert_eq!(digest_day(t(6, 59), 8), None);
        assert_eq!(digest_day(t(7, 0), 8).as_deref(), Some("2026-12-01"));
        // 23:30 UTC is already the next day in Paris (00:30), before 8 but after 0.
        assert_eq!(digest_day(t(23, 30), 8), None);
        assert_eq!(digest_day(t(23, 30), 0).as_deref(), Some("2026-12-02"));
        assert_eq!(digest_day(t(22, 59), 0).as_deref(), Some("2026-12-01"));
    }

    #[test]
    fn one_id_per_person_and_day() {
        let a = digest_id("a@x.example", "2026-12-01");
        assert_eq!(a, digest_id("a@x.example", "2026-12-01"));
        assert_ne!(a, digest_id("b@x.example", "2026-12-01"));
        assert_ne!(a, digest_id("a@x.example", "2026-12-02"));
        assert!(a.starts_with("digest.2026-12-01."));
    }
}
