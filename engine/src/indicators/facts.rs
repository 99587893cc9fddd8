//! Facts for the indicators, derived from a request's history when it ends: every visit of
//! every step with its timings, and the value of every indicator the definition declares.
//! Pure functions; the shell stores their output in the same transaction as the end.
//!
//! Definitions (also in `docs/kpi.md`):
//! - a **visit** of a step runs from its `step-entered` event to the event that ends it: its
//!   completion (`step-completed`, a gate's `gate-taken`, at once), its timeout (`timed-out`),
//!   or its withdrawal (the task cancelled, the request ended or cancelled with the step still
//!   open); how it ended is its *exit* (`completed`, `timeout`, `withdrawn`). A task's visit
//!   also records when it was first claimed (waiting = claimed - entered, working = left -
//!   claimed) and its deadline;
//! - **duration** indicator: between two milestones, the first completion of `from` and the
//!   first completion of `to` (a visit that timed out or was withdrawn is no completion) (the start step completes when the request is submitted), in
//!   milliseconds; absent when either never happened;
//! - **count** indicator: with `step`, 1 if the step was completed at least once (with `each`,
//!   the number of completions); with `when`, 1 if the condition holds on the request's final
//!   data (a condition that cannot be evaluated counts as false); with `result`, 1 if the
//!   request ended with that result; 0 otherwise;
//! - **sum** and **mean** indicators: the number field's final value, when set;
//! - **ratio** indicators are not per request: they divide the totals of two counts.

use std::collections::BTreeMap;

use guichet_definitions::model::{KpiKind, Process, StepKind};

use crate::clock::Timestamp;
use crate::core::{Actor, Event, EventKind, Instance, InstanceStatus, eval};

/// The columns of `step_visits`, in the order a visit's values are written.
pub const VISIT_COLUMNS: &[&str] = &[
    "instance",
    "step",
    "visit",
    "kind",
    "entered_at",
    "claimed_at",
    "left_at",
    "due_at",
    "outcome",
    "exit",
];

/// A visit ended by its step's completion (a gate's too).
pub const COMPLETED: &str = "completed";
/// A visit ended by its step's timeout.
pub const TIMEOUT: &str = "timeout";
/// A visit ended by its withdrawal: its task cancelled, or the request ended or cancelled
/// while it was open.
pub const WITHDRAWN: &str = "withdrawn";

/// One visit of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    pub step: String,
    pub visit: u32,
    pub kind: &'static str,
    pub entered_at: Timestamp,
    pub claimed_at: Option<Timestamp>,
    pub left_at: Option<Timestamp>,
    pub due_at: Option<Timestamp>,
    pub outcome: Option<String>,
    /// How it ended ([`COMPLETED`], [`TIMEOUT`], [`WITHDRAWN`]); `None` while open.
    pub exit: Option<&'static str>,
    /// Who performed it: a task's, whoever completed it (else its last claimant); another
    /// step's, whoever ended it (the sponsor answering, the provider calling back, the
    /// engine at a timeout). Not stored: the exports read it from the history.
    pub by: Option<Actor>,
}

impl Visit {
    /// Its row of `step_visits` (`VISIT_COLUMNS`) for `instance`.
    pub(crate) fn row(&self, instance: &str) -> Vec<crate::store::db::V> {
        use crate::store::db::V;
        vec![
            V::Text(instance.to_owned()),
            V::Text(self.step.clone()),
            V::Int(i64::from(self.visit)),
            V::Text(self.kind.to_owned()),
            V::Int(self.entered_at.0),
            V::MaybeInt(self.claimed_at.map(|t| t.0)),
            V::MaybeInt(self.left_at.map(|t| t.0)),
            V::MaybeInt(self.due_at.map(|t| t.0)),
            V::MaybeText(self.outcome.clone()),
            V::MaybeText(self.exit.map(str::to_owned)),
        ]
    }
}

/// The visits of every step, in order of entry.
pub fn visits(p: &Process, events: &[Event], tasks_due: &BTreeMap<u32, Timestamp>) -> Vec<Visit> {
    let mut out: Vec<Visit> = Vec::new();
    let mut count: BTreeMap<&str, u32> = BTreeMap::new();
    // Which visit each task belongs to.
    let mut task_visit: BTreeMap<u32, usize> = BTreeMap::new();
    // The open visit of a step (the last one entered and not left).
    let open = |out: &[Visit], step: &str| {
        out.iter()
            .rposition(|v| v.step == step && v.left_at.is_none())
    };
    let close = |v: &mut Visit, e: &Event, exit: &'static str| {
        v.left_at = Some(e.at);
        v.exit = Some(exit);
        // A task's performer is whoever completed it (a withdrawn task keeps its last
        // claimant); another step's, whoever ended it.
        if v.kind != "task" || exit == COMPLETED && v.by.is_none() {
            v.by = Some(e.actor.clone());
        }
    };
    for e in events {
        match &e.kind {
            EventKind::StepEntered { step } => {
                let n = count.entry(step.as_str()).or_default();
                *n += 1;
                let kind = p.step(step).map_or("unknown", |s| s.kind_name());
                out.push(Visit {
                    step: step.clone(),
                    visit: *n,
                    kind,
                    entered_at: e.at,
                    claimed_at: None,
                    left_at: None,
                    due_at: None,
                    outcome: None,
                    exit: None,
                    by: None,
                });
            }
            EventKind::TaskCreated { task, step, .. } => {
                if let Some(i) = open(&out, step) {
                    task_visit.insert(*task, i);
                    out[i].due_at = tasks_due.get(task).copied();
                }
            }
            EventKind::TaskClaimed { task, user } => {
                if let Some(&i) = task_visit.get(task) {
                    out[i].claimed_at.get_or_insert(e.at);
                    out[i].by = Some(Actor::User(user.clone()));
                }
            }
            EventKind::TaskCompleted { task, .. } => {
                if let Some(&i) = task_visit.get(task) {
                    out[i].by = Some(e.actor.clone());
                }
            }
            EventKind::StepCompleted { step, outcome } => {
                if let Some(i) = open(&out, step) {
                    close(&mut out[i], e, COMPLETED);
                    out[i].outcome.clone_from(outcome);
                }
            }
            EventKind::GateTaken { step, .. } => {
                if let Some(i) = open(&out, step) {
                    close(&mut out[i], e, COMPLETED);
                }
            }
            EventKind::TimedOut { step } => {
                if let Some(i) = open(&out, step) {
                    close(&mut out[i], e, TIMEOUT);
                }
            }
            EventKind::StepWithdrawn { step } => {
                if let Some(i) = open(&out, step) {
                    close(&mut out[i], e, WITHDRAWN);
                }
            }
            EventKind::TaskCancelled { task } => {
                if let Some(&i) = task_visit.get(task)
                    && out[i].left_at.is_none()
                {
                    close(&mut out[i], e, WITHDRAWN);
                }
            }
            EventKind::InstanceEnded { .. } | EventKind::InstanceCancelled { .. } => {
                for v in out.iter_mut().filter(|v| v.left_at.is_none()) {
                    close(v, e, WITHDRAWN);
                }
            }
            _ => {}
        }
    }
    out
}

/// The value of each per-request indicator of the definition, for an ended request.
pub fn kpi_values(p: &Process, inst: &Instance, visits: &[Visit]) -> Vec<(String, f64)> {
    let first_completion = |step: &str| {
        visits
            .iter()
            .filter(|v| v.step == step && v.exit == Some(COMPLETED))
            .find_map(|v| v.left_at)
    };
    let completions = |step: &str| {
        visits
            .iter()
            .filter(|v| v.step == step && v.exit == Some(COMPLETED))
            .count()
    };
    let mut ctx = None;
    let mut out = Vec::new();
    for k in &p.kpis {
        let value = match &k.kind {
            KpiKind::Duration { from, to } => {
                let (from, to) = (&p.steps[*from].id, &p.steps[*to].id);
                match (first_completion(from), first_completion(to)) {
                    #[allow(clippy::cast_precision_loss)]
                    (Some(a), Some(b)) if b >= a => Some((b.0 - a.0) as f64),
                    _ => None,
                }
            }
            KpiKind::Count {
                step,
                each,
                when,
                result,
            } => {
                #[allow(clippy::cast_precision_loss)]
                let v = if let Some(s) = step {
                    let n = completions(&p.steps[*s].id);
                    if *each {
                        n as f64
                    } else {
                        f64::from(u8::from(n > 0))
                    }
                } else if let Some(c) = when {
                    let ctx = ctx.get_or_insert_with(|| eval::context(p, &inst.data));
                    f64::from(u8::from(eval::eval(c, ctx).unwrap_or(false)))
                } else if let Some(r) = result {
                    f64::from(u8::from(inst.status == InstanceStatus::Ended(*r)))
                } else {
                    0.0
                };
                Some(v)
            }
            KpiKind::Sum { step, field } | KpiKind::Mean { step, field } => inst
                .data
                .get(&p.steps[*step].id)
                .and_then(|d| d.fields.get(field))
                .and_then(serde_json::Value::as_f64),
            KpiKind::Ratio { .. } => None,
        };
        if let Some(v) = value {
            out.push((k.id.clone(), v));
        }
    }
    out
}

/// The intake answers worth filtering on: choice and yes-no fields of the start form.
pub fn intake_fields(p: &Process, inst: &Instance) -> Vec<(String, String)> {
    let start = p.start();
    let Some(form) = start.form() else {
        return Vec::new();
    };
    let Some(data) = inst.data.get(&start.id) else {
        return Vec::new();
    };
    form.fields
        .iter()
        .filter(|f| {
            matches!(
                f.ty,
                guichet_definitions::model::FieldType::Choice
                    | guichet_definitions::model::FieldType::YesNo
            )
        })
        .filter_map(|f| {
            let v = data.fields.get(&f.id)?;
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((f.id.clone(), s))
        })
        .collect()
}

/// Whether a step kind is human work (its visits have waiting and working times).
pub fn is_task(p: &Process, step: &str) -> bool {
    matches!(p.step(step).map(|s| &s.kind), Some(StepKind::Task(_)))
}
