//! API tokens: each acts as one staff account, within its scopes and until it expires or is
//! revoked. A token is `gch_` and 43 characters of which only the SHA-256 is stored; its first
//! 12 characters are its public prefix, shown in listings and used to revoke it.
//!
//! A token's **scopes** bound what it may do whatever its account may: a script that reads
//! figures needs no right to complete tasks, a hospital portal that submits requests none to
//! read them. A call outside the token's scopes is refused before anything is read.

use std::fmt;

use serde::Serialize;

use crate::error::Error;
use crate::runtime::Engine;
use crate::runtime::users::hash;
use crate::store::db::{Db, V};
use crate::store::in_read;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read: desks, requests, tasks, documents, preferences.
    Read,
    /// Submit new requests.
    Submit,
    /// Act on requests and tasks: claim, release, delegate, complete, answer a wait,
    /// withdraw, set preferences, a provider's fetch-and-lock and completion.
    Act,
    /// Deploy definitions (the account must be an administrator too). Never given unless
    /// asked for.
    Deploy,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Submit, Scope::Act, Scope::Deploy];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Submit => "submit",
            Scope::Act => "act",
            Scope::Deploy => "deploy",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Read => 1,
            Scope::Submit => 2,
            Scope::Act => 4,
            Scope::Deploy => 8,
        }
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// Read, submit and act: the default of a new token, and what tokens made before scopes
    /// existed have. `deploy` is given only when asked for.
    pub const ALL: Scopes = Scopes(7);

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn with(self, scope: Scope) -> Scopes {
        Scopes(self.0 | scope.bit())
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Scopes written `read,act` (commas or spaces between them).
    pub fn parse(text: &str) -> Result<Scopes, Error> {
        let mut scopes = Scopes::default();
        for word in text.split([',', ' ']).filter(|w| !w.is_empty()) {
            let scope = Scope::ALL
                .into_iter()
                .find(|s| s.name() == word)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "`{word}` is not a token scope: use read, submit, act or deploy (several with commas)"
                    ))
                })?;
            scopes = scopes.with(scope);
        }
        if scopes.is_empty() {
            return Err(Error::Invalid(
                "a token needs at least one scope: read, submit, act or deploy".into(),
            ));
        }
        Ok(scopes)
    }
}

impl fmt::Display for Scopes {
    /// `read,act`: as [`Scopes::parse`] reads them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.iter().map(Scope::name).collect();
        f.write_str(&names.join(","))
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// How long a new token lasts unless told otherwise.
pub const DEFAULT_DAYS: i64 = 90;

/// What a token is made for: its name in listings, its scopes, and for how many days it
/// lasts (`None`: until revoked).
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scopes: Scopes,
    pub days: Option<i64>,
}

impl NewToken {
    /// A token of every scope for [`DEFAULT_DAYS`].
    pub fn named(name: &str) -> NewToken {
        NewToken {
            name: name.to_owned(),
            scopes: Scopes::ALL,
            days: Some(DEFAULT_DAYS),
        }
    }
}

/// The longest a token may be made to last, in days (ten years).
pub const MAX_DAYS: i64 = 3650;

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub prefix: String,
    pub email: String,
    pub name: String,
    pub scopes: Scopes,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What a presented token may do: the account it acts as, its scopes, its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub email: String,
    pub scopes: Scopes,
    pub expires_at: Option<i64>,
}

/// A presented token, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// Valid now.
    Valid(Grant),
    /// Known, not revoked, but its time is over (when).
    Expired(i64),
    /// Unknown or revoked (not told apart: a caller learns nothing about other tokens).
    Refused,
}

impl Presented {
    /// The account of a valid token.
    pub fn email(&self) -> Option<&str> {
        match self {
            Presented::Valid(grant) => Some(&grant.email),
            _ => None,
        }
    }
}

impl Engine {
    /// Issues an API token acting as a staff account; the token is returned once, only its
    /// hash is kept.
    pub async fn create_api_token(&self, email: &str, name: &str) -> Result<String, Error> {
        self.issue_api_token(email, NewToken::named(name)).await
    }

    /// Issues an API token as [`NewToken`] says.
    pub async fn issue_api_token(&self, email: &str, token: NewToken) -> Result<String, Error> {
        let email = email.trim().to_lowercase();
        let (sql, key) = (
            "SELECT disabled_at FROM users WHERE email = $1",
            [V::Text(email.clone())],
        );
        let Some(row) = in_read!(self.store(), |db| db.row(sql.into(), &key))? else {
            return Err(Error::NotFound(format!(
                "staff account {email} (create it first with `guichet user add`)"
            )));
        };
        if row.opt_int(0)?.is_some() {
            return Err(Error::Invalid(format!(
                "the account {email} is disabled: enable it first (`guichet user enable`)"
            )));
        }
        if token.scopes.is_empty() {
            return Err(Error::Invalid(
                "a token needs at least one scope: read, submit, act or deploy".into(),
            ));
        }
        let now = self.now().0;
        let expires_at = match token.days {
            None => None,
            Some(days @ 1..=MAX_DAYS) => Some(now + days * 86_400_000),
            Some(days) => {
                return Err(Error::Invalid(format!(
                    "a token lasts 1 to {MAX_DAYS} days, not {days}"
                )));
            }
        };
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::Corrupt(format!("no randomness: {e}")))?;
        let secret = format!("gch_{}", crate::runtime::links::b64url(&bytes));
        self.write_one(
            "INSERT INTO api_tokens (token_hash, prefix, email, name, created_at, scopes, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                V::Text(hash(&secret)),
                V::Text(secret[..12].to_owned()),
                V::Text(email),
                V::Text(token.name),
                V::Int(now),
                V::Text(token.scopes.to_string()),
                V::MaybeInt(expires_at),
            ],
        )
        .await?;
        Ok(secret)
    }

    /// Issues an API token for a provider that pulls its work: it acts as the service
    /// account `provider:ID`, which cannot sign in to the pages.
    pub async fn create_provider_token(
        &self,
        provider: &str,
        token: NewToken,
    ) -> Result<String, Error> {
        let account = format!("provider:{provider}");
        let exists = self.user_exists(&account).await?;
        if !exists {
            // "!" is no Argon2 hash: no password ever matches it.
            self.write_one(
                "INSERT INTO users (email, password_hash, admin, created_at) VALUES ($1, '!', 0, $2)",
                vec![V::Text(account.clone()), V::Int(self.now().0)],
            )
            .await?;
        }
        self.issue_api_token(&account, token).await
    }

    /// What a presented API token may do: valid (its account, scopes and expiry), expired,
    /// or refused (unknown or revoked).
    pub async fn api_token(&self, token: &str) -> Result<Presented, Error> {
        if !token.starts_with("gch_") || token.len() > 64 {
            return Ok(Presented::Refused);
        }
        let token_hash = hash(token);
        let now = self.now().0;
        let ttl = i64::try_from(crate::runtime::DESKS_TTL.as_millis()).unwrap_or(i64::MAX);
        let remembered = self.tokens_seen.lock().ok().and_then(|seen| {
            seen.get(&token_hash)
                .filter(|(_, at)| (now - ttl..=now).contains(at))
                .map(|(grant, _)| grant.clone())
        });
        let grant = match remembered {
            Some(grant) => grant,
            None => {
                let key = [V::Text(token_hash.clone())];
                let sql = "SELECT email, last_used_at, scopes, expires_at FROM api_tokens \
                           WHERE token_hash = $1 AND revoked_at IS NULL";
                let row = in_read!(self.store(), |db| db.row(sql.into(), &key))?;
                let Some(row) = row else {
                    return Ok(Presented::Refused);
                };
                let grant = Grant {
                    email: row.text(0)?,
                    scopes: Scopes::parse(&row.text(2)?)?,
                    expires_at: row.opt_int(3)?,
                };
                if let Ok(mut seen) = self.tokens_seen.lock() {
                    if seen.len() >= 10_000 {
                        seen.clear();
                    }
                    seen.insert(token_hash.clone(), (grant.clone(), now));
                }
                // As for sessions: no statement at all unless the last use is a minute old;
                // then only the first caller of this process records it (a burst of calls
                // with a new token made a write each), in the writer's group commit.
                let last_used = row.opt_int(1)?;
                if grant.expires_at.is_none_or(|at| now < at)
                    && last_used.is_none_or(|at| at < now - 60_000)
                    && self.first_touch(&token_hash, now)
                {
                    self.write_one(
                        "UPDATE api_tokens SET last_used_at = $1 WHERE token_hash = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
                        vec![V::Int(now), V::Text(token_hash), V::Int(now - 60_000)],
                    )
                    .await?;
                }
                grant
            }
        };
        Ok(match grant.expires_at {
            Some(at) if at <= now => Presented::Expired(at),
            _ => Presented::Valid(grant),
        })
    }

    /// The API tokens, oldest first.
    pub async fn api_tokens(&self) -> Result<Vec<ApiToken>, Error> {
        let sql = "SELECT prefix, email, name, created_at, last_used_at, revoked_at, scopes, expires_at \
                   FROM api_tokens ORDER BY created_at";
        let rows = in_read!(self.store(), |db| db.rows(sql.into(), &[]))?;
        rows.iter()
            .map(|r| {
                Ok(ApiToken {
                    prefix: r.text(0)?,
                    email: r.text(1)?,
                    name: r.text(2)?,
                    created_at: r.int(3)?,
                    last_used_at: r.opt_int(4)?,
                    revoked_at: r.opt_int(5)?,
                    scopes: Scopes::parse(&r.text(6)?)?,
                    expires_at: r.opt_int(7)?,
                })
            })
            .collect()
    }

    /// Revokes the tokens with this prefix; returns how many. This engine refuses them at
    /// once; other processes within [`crate::runtime::DESKS_TTL`] (as for role changes).
    pub async fn revoke_api_token(&self, prefix: &str) -> Result<u64, Error> {
        let revoked = self
            .write_one(
                "UPDATE api_tokens SET revoked_at = $1 WHERE prefix = $2 AND revoked_at IS NULL",
                vec![V::Int(self.now().0), V::Text(prefix.to_owned())],
            )
            .await?;
        self.forget_tokens();
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::{Scope, Scopes};

    #[test]
    fn scopes_read_back_as_written() {
        for text in ["read", "submit", "act", "read,act", "read,submit,act"] {
            assert_eq!(Scopes::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Scopes::parse("act read").unwrap().to_string(), "read,act");
        let read = Scopes::parse("read").unwrap();
        assert!(read.contains(Scope::Read) && !read.contains(Scope::Act));
        assert_eq!(Scopes::parse("read,submit,act").unwrap(), Scopes::ALL);
        for bad in ["", "write", "read,admin", " , "] {
            assert!(Scopes::parse(bad).is_err(), "{bad}");
        }
    }
}
