//! The roster: each deployed desk's latest revision and the administrators, read again at
//! most once per [`DESKS_TTL`](crate::runtime::DESKS_TTL).

use std::collections::BTreeMap;

use guichet_definitions::model::Process;

use crate::clock::Timestamp;
use crate::error::Error;
use crate::indicators::kpi::Desks;
use crate::runtime::Engine;
use crate::store::db::Db;
use crate::store::in_read;

/// [`crate::runtime::DESKS_TTL`] in milliseconds.
const TTL_MS: i64 = crate::runtime::DESKS_TTL.as_millis() as i64;

/// What nearly every page and API call asks of the database, read at most once per
/// [`crate::runtime::DESKS_TTL`]: each desk's latest revision, and who the administrators
/// are.
#[derive(Debug, Default)]
pub(crate) struct Roster {
    /// Each desk's latest revision: its hash and compiled definition, by name.
    latest: BTreeMap<String, (String, std::sync::Arc<Process>)>,
    /// The administrators' emails.
    admins: std::collections::BTreeSet<String>,
}

impl Engine {
    /// The latest compiled definition of each deployed desk, by name (read again at most
    /// once per [`crate::runtime::DESKS_TTL`]).
    pub async fn desks(&self) -> Result<Desks, Error> {
        Ok(self
            .roster()
            .await?
            .latest
            .iter()
            .map(|(name, (_, p))| (name.clone(), p.clone()))
            .collect())
    }

    /// The latest revision of a desk: its hash and compiled definition. A desk another
    /// process deployed since the roster was read is read at once.
    pub(crate) async fn latest(
        &self,
        name: &str,
    ) -> Result<Option<(String, std::sync::Arc<Process>)>, Error> {
        if let Some(found) = self.roster().await?.latest.get(name) {
            return Ok(Some(found.clone()));
        }
        self.forget_roster();
        Ok(self.roster().await?.latest.get(name).cloned())
    }

    /// Whether the account is an administrator (as of at most [`crate::runtime::DESKS_TTL`]
    /// ago, as for roles; at once for a change made through this engine).
    pub async fn is_admin(&self, email: &str) -> Result<bool, Error> {
        Ok(self
            .roster()
            .await?
            .admins
            .contains(&email.trim().to_lowercase()))
    }

    async fn roster(&self) -> Result<std::sync::Arc<Roster>, Error> {
        let now = self.now();
        // Measured on the engine's clock (tests and the simulator move it by hand).
        let fresh = |at: Timestamp| (0..TTL_MS).contains(&(now.0 - at.0));
        let cached = self.roster.read().ok().and_then(|c| c.clone());
        if let Some((at, roster)) = &cached
            && fresh(*at)
        {
            return Ok(roster.clone());
        }
        // One caller reads it again; the others go on with the one they have meanwhile
        // (every page and API call asks for it: under load, all of them at once).
        let _reading = match (self.roster_reading.try_lock(), cached) {
            (Ok(reading), _) => reading,
            (Err(_), Some((_, roster))) => return Ok(roster),
            (Err(_), None) => self.roster_reading.lock().await,
        };
        if let Ok(cached) = self.roster.read()
            && let Some((at, roster)) = cached.as_ref()
            && fresh(*at)
        {
            return Ok(roster.clone());
        }
        let roster = std::sync::Arc::new(self.read_roster().await?);
        if let Ok(mut cached) = self.roster.write() {
            *cached = Some((now, roster.clone()));
        }
        Ok(roster)
    }

    /// Forgets the roster (after a deploy, or a change of administrators).
    pub(crate) fn forget_roster(&self) {
        if let Ok(mut cached) = self.roster.write() {
            *cached = None;
        }
    }

    async fn read_roster(&self) -> Result<Roster, Error> {
        let sql = "SELECT d.name, d.hash FROM definitions d WHERE d.revision = (SELECT MAX(revision) FROM definitions x WHERE x.name = d.name)";
        in_read!(self.store(), |db| async {
            let mut roster = Roster::default();
            for r in db.rows(sql.into(), &[]).await? {
                let hash = r.text(1)?;
                let process = self.process(&mut *db, &hash).await?;
                roster.latest.insert(r.text(0)?, (hash, process));
            }
            for r in db
                .rows("SELECT email FROM users WHERE admin = 1".into(), &[])
                .await?
            {
                roster.admins.insert(r.text(0)?);
            }
            Ok(roster)
        })
    }
}
