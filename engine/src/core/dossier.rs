//! A request as the people working on it read it: the intake's fields with their labels and
//! types, what each later step collected, the timeline in plain terms (who did what, when,
//! with which outcome and comment), the open tasks and the waits for an answer.
//!
//! Built from the state, the definition and the history, all already read: a pure function
//! the pages, the API and the CLI share. Two audiences: staff see everything; the sponsor
//! sees their own data, the steps' outcomes and what is asked of them, never who did what,
//! comments or other steps' data.

use guichet_definitions::model::{FieldType, Form, Process, RoleSource, StepKind};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::core::io::{Actor, Event, EventKind, Recipient};
use crate::core::state::{Fields, Instance, InstanceStatus, Seq, TimerKind};

/// Who reads the dossier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Staff with a role on the desk, administrators: everything.
    Staff,
    /// The sponsor, behind their follow link.
    Sponsor,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dossier {
    pub id: String,
    pub reference: String,
    /// The desk's name and title.
    pub desk: String,
    pub desk_title: String,
    pub title: String,
    /// `running`, `ended` or `cancelled`; with `result` when ended.
    pub status: &'static str,
    pub result: Option<&'static str>,
    #[serde(serialize_with = "Timestamp::serialize_rfc3339")]
    pub started_at: Timestamp,
    #[serde(serialize_with = "Timestamp::serialize_rfc3339_opt")]
    pub ended_at: Option<Timestamp>,
    /// What the sponsor submitted, in the form's order.
    pub intake: Vec<FieldValue>,
    /// What each later step collected (its last completion), in the definition's order.
    pub steps: Vec<StepRecord>,
    pub timeline: Vec<Entry>,
    pub open_tasks: Vec<OpenTask>,
    pub open_waits: Vec<OpenWait>,
}

/// One field's value, with what is needed to show it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct FieldValue {
    pub id: String,
    pub label: String,
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub ty: FieldType,
    /// As validated: text, a number, a boolean (yes-no), a date `YYYY-MM-DD`.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub value: serde_json::Value,
    /// For a choice, the chosen option's label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub option_label: Option<String>,
}

/// What a step collected at its last completion.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: String,
    pub title: String,
    /// How many times it was completed (loops run a step again).
    pub count: u32,
    pub outcome: Option<String>,
    pub outcome_label: Option<String>,
    pub comment: Option<String>,
    pub fields: Vec<FieldValue>,
}

/// What happened, in the terms of the desk.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    Submitted,
    TaskOpened,
    Claimed,
    Released,
    Delegated,
    Escalated,
    Completed,
    DeadlinePassed,
    ProviderCalled,
    ProviderAnswered,
    Waiting,
    Answered,
    TimedOut,
    GateTaken,
    Notified,
    Ended,
    Cancelled,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    #[serde(serialize_with = "Timestamp::serialize_rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    pub kind: EntryKind,
    /// Who did it; `None` for the sponsor's audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// What else the entry names: a role (opened, escalated), a person or role (delegated,
    /// notified), a template (notified), a branch (gate), a result (ended), a reason
    /// (cancelled), a provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenTask {
    pub task: Seq,
    pub step: String,
    pub title: String,
    pub role: String,
    pub role_title: String,
    pub assignee: Option<String>,
    #[serde(serialize_with = "Timestamp::serialize_rfc3339_opt")]
    pub due_at: Option<Timestamp>,
    pub overdue: bool,
}

/// A wait for an answer that is open now.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct OpenWait {
    pub step: String,
    pub title: String,
    pub description: Option<String>,
    pub event: String,
    /// The role that may answer (`None`: staff of the desk).
    pub from: Option<String>,
    /// When the wait times out, if it does.
    #[serde(serialize_with = "Timestamp::serialize_rfc3339_opt")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub until: Option<Timestamp>,
}

/// The dossier of request `id` (of desk `desk`, run by `p`) for `audience`, from its state
/// and its history.
pub fn build(
    id: &str,
    p: &Process,
    inst: &Instance,
    history: &[Event],
    audience: Audience,
) -> Dossier {
    let staff = audience == Audience::Staff;
    let (status, result) = match inst.status {
        InstanceStatus::Running => ("running", None),
        InstanceStatus::Ended(r) => ("ended", Some(r.as_str())),
        InstanceStatus::Cancelled => ("cancelled", None),
    };
    let start = p.start();
    let intake = inst
        .data
        .get(&start.id)
        .map(|d| values(start.form(), &d.fields))
        .unwrap_or_default();
    let sponsor_waits: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| matches!(&s.kind, StepKind::Wait(w) if w.from.as_deref().is_some_and(|r| is_sponsor_role(p, r))))
        .map(|s| s.id.as_str())
        .collect();
    let steps = p
        .steps
        .iter()
        .skip(1)
        .filter(|s| staff || sponsor_waits.contains(&s.id.as_str()))
        .filter_map(|s| {
            let d = inst.data.get(&s.id)?;
            // Steps without a form (notifications, gates) collect nothing.
            s.form()?;
            Some(StepRecord {
                step: s.id.clone(),
                title: s.display_name().to_owned(),
                count: d.count,
                outcome: d.outcome.clone(),
                outcome_label: d.outcome.as_deref().map(|o| outcome_label(p, &s.id, o)),
                comment: if staff { d.comment.clone() } else { None },
                fields: values(s.form(), &d.fields),
            })
        })
        .collect();
    // Which step each task is of: the events of a task name only its number.
    let task_steps: std::collections::HashMap<Seq, &str> = history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TaskCreated { task, step, .. } => Some((*task, step.as_str())),
            _ => None,
        })
        .collect();
    let timeline = history
        .iter()
        .filter_map(|e| {
            let mut entry = entry(p, e, audience, &sponsor_waits)?;
            if entry.step.is_none()
                && let Some(step) = task_of(&e.kind).and_then(|t| task_steps.get(&t))
            {
                entry.step = Some((*step).to_owned());
                entry.step_title = p.step(step).map(|s| s.display_name().to_owned());
            }
            Some(entry)
        })
        .collect();
    let mut open: Vec<_> = inst.tasks.values().collect();
    open.sort_by_key(|t| (!t.overdue, t.due_at, t.seq));
    let open_tasks = open
        .into_iter()
        .map(|t| {
            let step = &p.steps[t.step];
            OpenTask {
                task: t.seq,
                step: step.id.clone(),
                title: step.display_name().to_owned(),
                role: t.role.clone(),
                role_title: role_title(p, &t.role),
                assignee: if staff { t.assignee.clone() } else { None },
                due_at: t.due_at,
                overdue: t.overdue,
            }
        })
        .collect();
    let open_waits = inst
        .tokens
        .iter()
        .filter_map(|(token, t)| {
            let step = &p.steps[t.step];
            let StepKind::Wait(w) = &step.kind else {
                return None;
            };
            if !staff && !sponsor_waits.contains(&step.id.as_str()) {
                return None;
            }
            let until = inst
                .timers
                .values()
                .find(|tm| matches!(tm.kind, TimerKind::Timeout { token: k } if k == *token))
                .map(|tm| tm.due_at);
            Some(OpenWait {
                step: step.id.clone(),
                title: step.display_name().to_owned(),
                description: step.description.clone(),
                event: w.event.clone(),
                from: w.from.clone(),
                until,
            })
        })
        .collect();
    Dossier {
        id: id.to_owned(),
        reference: crate::core::reference(id),
        desk: p.name.clone(),
        desk_title: p.title.clone(),
        title: crate::core::request_title(p, inst),
        status,
        result,
        started_at: inst.started_at,
        ended_at: inst.ended_at,
        intake,
        steps,
        timeline,
        open_tasks,
        open_waits,
    }
}

/// Whether a role's member is the sponsor: the address comes from the request's data.
pub fn is_sponsor_role(p: &Process, role: &str) -> bool {
    p.role(role)
        .is_some_and(|r| matches!(r.source, RoleSource::FromField { .. }))
}

/// Whether `email` is the request's sponsor (a member of a role taken from its data).
pub fn is_sponsor(p: &Process, inst: &Instance, email: &str) -> bool {
    p.roles.iter().any(|r| {
        matches!(r.source, RoleSource::FromField { .. })
            && crate::core::is_member(p, inst, &r.id, email)
    })
}

/// The task an event is about, when it names only its number.
fn task_of(kind: &EventKind) -> Option<Seq> {
    match kind {
        EventKind::TaskClaimed { task, .. }
        | EventKind::TaskReleased { task, .. }
        | EventKind::TaskDelegated { task, .. }
        | EventKind::TaskEscalated { task, .. } => Some(*task),
        _ => None,
    }
}

fn role_title(p: &Process, role: &str) -> String {
    p.role(role)
        .and_then(|r| r.title.clone())
        .unwrap_or_else(|| role.to_owned())
}

fn outcome_label(p: &Process, step: &str, outcome: &str) -> String {
    p.step(step)
        .and_then(|s| s.outcomes().iter().find(|o| o.id == outcome))
        .map_or_else(|| outcome.to_owned(), |o| o.display_name())
}

/// The form's fields that have a value, in the form's order.
fn values(form: Option<&Form>, fields: &Fields) -> Vec<FieldValue> {
    let Some(form) = form else {
        return Vec::new();
    };
    form.fields
        .iter()
        .filter_map(|f| {
            let value = fields.get(&f.id)?.clone();
            let option_label = match (&f.ty, &value) {
                (FieldType::Choice, serde_json::Value::String(v)) => f
                    .options
                    .iter()
                    .find(|o| o.value == *v)
                    .map(|o| o.label.clone().unwrap_or_else(|| o.value.clone())),
                _ => None,
            };
            Some(FieldValue {
                id: f.id.clone(),
                label: f.label.clone().unwrap_or_else(|| f.id.clone()),
                ty: f.ty,
                value,
                option_label,
            })
        })
        .collect()
}

fn entry(p: &Process, e: &Event, audience: Audience, sponsor_waits: &[&str]) -> Option<Entry> {
    let staff = audience == Audience::Staff;
    let mut out = Entry {
        at: e.at,
        kind: EntryKind::Submitted,
        actor: staff.then(|| e.actor.clone()),
        step: None,
        step_title: None,
        outcome: None,
        outcome_label: None,
        comment: None,
        detail: None,
    };
    let with_step = |out: &mut Entry, step: &str| {
        out.step = Some(step.to_owned());
        out.step_title = Some(
            p.step(step)
                .map_or_else(|| step.to_owned(), |s| s.display_name().to_owned()),
        );
    };
    let with_outcome = |out: &mut Entry, step: &str, outcome: &Option<String>| {
        out.outcome.clone_from(outcome);
        out.outcome_label = outcome.as_deref().map(|o| outcome_label(p, step, o));
    };
    let for_sponsor = |step: &str| sponsor_waits.contains(&step);
    match &e.kind {
        EventKind::InstanceStarted => {}
        EventKind::TaskCreated { step, role, .. } if staff => {
            out.kind = EntryKind::TaskOpened;
            with_step(&mut out, step);
            out.detail = Some(role_title(p, role));
        }
        EventKind::TaskClaimed { .. } if staff => out.kind = EntryKind::Claimed,
        EventKind::TaskReleased { .. } if staff => out.kind = EntryKind::Released,
        EventKind::TaskDelegated { to, .. } if staff => {
            out.kind = EntryKind::Delegated;
            out.detail = Some(match to {
                Recipient::Person(p) => p.clone(),
                Recipient::Role(r) => role_title(p, r),
            });
        }
        EventKind::TaskEscalated { role, .. } if staff => {
            out.kind = EntryKind::Escalated;
            out.detail = Some(role_title(p, role));
        }
        EventKind::TaskCompleted {
            step,
            outcome,
            comment,
            ..
        } => {
            out.kind = EntryKind::Completed;
            with_step(&mut out, step);
            with_outcome(&mut out, step, outcome);
            if staff {
                out.comment.clone_from(comment);
            }
        }
        EventKind::DeadlinePassed { step, .. } if staff => {
            out.kind = EntryKind::DeadlinePassed;
            with_step(&mut out, step);
        }
        EventKind::ProviderCalled { step, provider } if staff => {
            out.kind = EntryKind::ProviderCalled;
            with_step(&mut out, step);
            out.detail = Some(provider.clone());
        }
        EventKind::CallbackReceived {
            step,
            provider,
            outcome,
        } => {
            out.kind = EntryKind::ProviderAnswered;
            with_step(&mut out, step);
            with_outcome(&mut out, step, outcome);
            out.detail = staff.then(|| provider.clone());
        }
        EventKind::StepEntered { step }
            if (staff || for_sponsor(step))
                && p.step(step)
                    .is_some_and(|s| matches!(s.kind, StepKind::Wait(_))) =>
        {
            out.kind = EntryKind::Waiting;
            with_step(&mut out, step);
        }
        EventKind::EventReceived { step, .. } if staff || for_sponsor(step) => {
            out.kind = EntryKind::Answered;
            with_step(&mut out, step);
        }
        EventKind::TimedOut { step } if staff || for_sponsor(step) => {
            out.kind = EntryKind::TimedOut;
            with_step(&mut out, step);
        }
        EventKind::GateTaken { step, branch } if staff => {
            out.kind = EntryKind::GateTaken;
            with_step(&mut out, step);
            out.detail = Some(branch.clone());
        }
        EventKind::NotificationQueued { template, to } if staff => {
            out.kind = EntryKind::Notified;
            out.detail = Some(match to {
                Recipient::Person(p) => format!("{template} → {p}"),
                Recipient::Role(r) => format!("{template} → {}", role_title(p, r)),
            });
        }
        EventKind::InstanceEnded { result } => {
            out.kind = EntryKind::Ended;
            out.detail = Some(result.as_str().to_owned());
        }
        EventKind::InstanceCancelled { reason } => {
            out.kind = EntryKind::Cancelled;
            out.detail = staff.then(|| reason.clone());
        }
        _ => return None,
    }
    Some(out)
}
