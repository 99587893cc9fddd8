//! The request as people read it ([`crate::core::dossier`]), and what the sponsor does from
//! their follow link: answer a wait, withdraw, ask for a fresh link.

use crate::core::dossier::{self, Audience, Dossier};
use crate::core::{Actor, Command, Fields, Instance, InstanceStatus, Recipient};
use crate::error::Error;
use crate::runtime::{Allowed, Engine};
use crate::store::db::{Db as _, V};
use crate::store::in_read;

/// The email carrying a fresh follow-up link that the sponsor asked for.
pub const FOLLOW_LINK: &str = "lien-suivi";

/// A sponsor gets at most one fresh follow-up link per request in this span (ms): the form
/// that asks for one cannot be used to flood their mailbox.
const FOLLOW_LINK_SPACING_MS: i64 = 10 * 60 * 1000;

impl Engine {
    /// Request `id` as `audience` reads it: its fields, what each step collected, its
    /// timeline, its open tasks and waits, with the desk's texts as written.
    pub async fn dossier(&self, id: &str, audience: Audience) -> Result<Dossier, Error> {
        let (_, inst) = self.instance(id).await?;
        let p = self.process_of(id).await?;
        self.dossier_of(id, &inst, &p, audience).await
    }

    /// [`Engine::dossier`] of a request the caller has read already (its state `inst` and
    /// definition `p`, e.g. translated with `Process::in_language`): reads only its history.
    pub async fn dossier_of(
        &self,
        id: &str,
        inst: &Instance,
        p: &guichet_definitions::model::Process,
        audience: Audience,
    ) -> Result<Dossier, Error> {
        let history: Vec<_> = self
            .history(id)
            .await?
            .into_iter()
            .map(|h| h.event)
            .collect();
        Ok(dossier::build(id, p, inst, &history, audience))
    }

    /// Answers the wait at `step` with `fields`, as `actor`, when `may` allows it of the
    /// request as the answer finds it. Refused unless the request waits at that step now
    /// (answered already, timed out, not reached): an answer is never kept for later. An
    /// answer sent again with the `key` of one taken already is that answer: the request as
    /// it stands, changed in nothing.
    pub async fn answer(
        &self,
        id: &str,
        step: &str,
        fields: Fields,
        actor: Actor,
        key: Option<String>,
        may: &Allowed<'_>,
    ) -> Result<Instance, Error> {
        let p = self.process_of(id).await?;
        let Some(guichet_definitions::model::StepKind::Wait(w)) = p.step(step).map(|s| &s.kind)
        else {
            return Err(Error::NotFound(format!("wait `{step}` in request {id}")));
        };
        let waiting = std::sync::atomic::AtomicBool::new(false);
        let replayed = std::sync::atomic::AtomicBool::new(false);
        let allowed = |p: &guichet_definitions::model::Process, inst: &Instance| {
            if key.as_ref().is_some_and(|k| inst.event_keys.contains(k)) {
                replayed.store(may(p, inst), std::sync::atomic::Ordering::Relaxed);
                return false;
            }
            let at = inst.tokens.values().any(|t| p.steps[t.step].id == step);
            waiting.store(at, std::sync::atomic::Ordering::Relaxed);
            at && may(p, inst)
        };
        let command = Command::Event {
            name: w.event.clone(),
            fields,
            actor,
            key: key.clone(),
        };
        match self.execute_if(id, command, &allowed).await? {
            Some(inst) => Ok(inst),
            None if replayed.load(std::sync::atomic::Ordering::Relaxed) => {
                Ok(self.instance(id).await?.1)
            }
            None if !waiting.load(std::sync::atomic::Ordering::Relaxed) => {
                Err(Error::Conflict(format!(
                    "the request does not wait for `{step}` now (answered already, timed out, or not reached)"
                )))
            }
            None => Err(Error::NotFound(format!("wait `{step}` in request {id}"))),
        }
    }

    /// The whole request withdrawn by `actor` (its open tasks and timers cancelled), when
    /// `may` allows it of the request as the withdrawal finds it.
    pub async fn withdraw(
        &self,
        id: &str,
        actor: Actor,
        reason: &str,
        may: &Allowed<'_>,
    ) -> Result<Instance, Error> {
        let running = std::sync::atomic::AtomicBool::new(true);
        let allowed = |p: &guichet_definitions::model::Process, inst: &Instance| {
            let r = inst.status == InstanceStatus::Running;
            running.store(r, std::sync::atomic::Ordering::Relaxed);
            r && may(p, inst)
        };
        let command = Command::Cancel {
            reason: reason.to_owned(),
            actor,
        };
        match self.execute_if(id, command, &allowed).await? {
            Some(inst) => Ok(inst),
            None if !running.load(std::sync::atomic::Ordering::Relaxed) => {
                Err(Error::Conflict("the request is closed already".to_owned()))
            }
            None => Err(Error::NotFound(format!("request {id}"))),
        }
    }

    /// The request `given` names: its id, or its reference (the id's last eight characters,
    /// in any case), as people quote it.
    pub async fn request_id(&self, given: &str) -> Result<String, Error> {
        let given = given.trim();
        match self.instance(given).await {
            Ok(_) => return Ok(given.to_owned()),
            Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let reference = given.to_lowercase();
        let mut ids = if is_reference(&reference) {
            self.ids_with_reference(&reference).await?
        } else {
            Vec::new()
        };
        match ids.len() {
            1 => Ok(ids.remove(0)),
            0 => Err(Error::NotFound(format!(
                "no request `{given}`: give its id or its 8-character reference (`guichet task list` shows them)"
            ))),
            _ => Err(Error::Invalid(format!(
                "the reference `{given}` names several requests: give the id, one of {}",
                ids.join(", ")
            ))),
        }
    }

    /// The ids ending with `reference` (lower case), at most ten.
    async fn ids_with_reference(&self, reference: &str) -> Result<Vec<String>, Error> {
        let sql = "SELECT id FROM instances WHERE id LIKE $1 ORDER BY id LIMIT 10";
        let key = [V::Text(format!("%{reference}"))];
        let rows = in_read!(self.store(), |db| db.rows(sql.into(), &key))?;
        rows.iter().map(|r| r.text(0)).collect()
    }

    /// A sponsor who lost their link gives the request's reference and their address: when
    /// they are its sponsor, a fresh follow-up link is emailed to them (at most one per
    /// request every ten minutes). The answer is the same either way: nothing tells whether
    /// a reference exists or whose it is.
    pub async fn resend_follow_link(&self, reference: &str, email: &str) -> Result<(), Error> {
        let reference = reference.trim().to_lowercase();
        let email = email.trim();
        if reference.len() != 8
            || !reference
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            || !crate::core::form::may_be_address(email)
        {
            return Ok(());
        }
        let now = self.now().0;
        for id in self.ids_with_reference(&reference).await? {
            let (_, inst) = self.instance(&id).await?;
            let p = self.process_of(&id).await?;
            if !dossier::is_sponsor(&p, &inst, email) {
                continue;
            }
            let recent = "SELECT COUNT(*) FROM outbox WHERE instance = $1 AND id LIKE $2 AND created_at > $3";
            let key = [
                V::Text(id.clone()),
                V::Text(format!("{id}.follow.%")),
                V::Int(now - FOLLOW_LINK_SPACING_MS),
            ];
            let sent = in_read!(self.store(), |db| db.row(recent.into(), &key))?
                .map_or(Ok(0), |r| r.int(0))?;
            if sent > 0 {
                continue;
            }
            let effect = crate::core::Effect::Email {
                template: FOLLOW_LINK.into(),
                to: Recipient::Person(email.to_owned()),
                task: None,
            };
            self.queue_email(format!("{id}.follow.{now}"), &id, &effect)
                .await?;
        }
        Ok(())
    }
}

/// Whether `s` may be a reference: eight characters of an id (letters, digits, hyphens); no
/// `%` or `_`, which `LIKE` would read as wildcards.
fn is_reference(s: &str) -> bool {
    s.chars().count() == 8 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}
