//! A request's dossier ([`guichet_engine::core::dossier`]) as the pages show it: values in
//! words, the timeline in sentences, in the reader's language ([`crate::i18n`]). One view for the task pages, the request page and the
//! sponsor's page (the audience decides what the dossier holds, not this module).

use guichet_definitions::model::FieldType;
use guichet_engine::core::Actor;
use guichet_engine::core::dossier::{Dossier, Entry, EntryKind, FieldValue};
use serde::Serialize;

use super::{date, text, text_with};

#[derive(Debug, Serialize)]
pub(crate) struct View {
    /// Staff read who did what.
    staff: bool,
    status: String,
    intake: Vec<ValueView>,
    steps: Vec<StepView>,
    tasks: Vec<TaskView>,
    waits: Vec<WaitView>,
    timeline: Vec<EntryView>,
}

#[derive(Debug, Serialize)]
struct ValueView {
    label: String,
    text: String,
    /// For a document, where to download it.
    href: String,
    /// Long text, shown as paragraphs.
    long: bool,
}

#[derive(Debug, Serialize)]
struct StepView {
    title: String,
    outcome: String,
    comment: String,
    /// Completed more than once: the values are the last completion's.
    again: bool,
    fields: Vec<ValueView>,
}

#[derive(Debug, Serialize)]
struct TaskView {
    title: String,
    role: String,
    assignee: String,
    due: String,
    overdue: bool,
}

#[derive(Debug, Serialize)]
struct WaitView {
    title: String,
    until: String,
}

#[derive(Debug, Serialize)]
struct EntryView {
    at: String,
    who: String,
    what: String,
    comment: String,
}

/// The dossier as pages show it; `documents` is where its documents download from (the
/// request's, or the link's, path ending with `/documents/`).
pub(crate) fn view(d: &Dossier, staff: bool, documents: &str) -> View {
    let value = |v: &FieldValue| value(v, documents);
    View {
        staff,
        status: status(d),
        intake: d.intake.iter().map(&value).collect(),
        steps: d
            .steps
            .iter()
            .map(|s| StepView {
                title: s.title.clone(),
                outcome: s.outcome_label.clone().unwrap_or_default(),
                comment: s.comment.clone().unwrap_or_default(),
                again: s.count > 1,
                fields: s.fields.iter().map(&value).collect(),
            })
            .collect(),
        tasks: d
            .open_tasks
            .iter()
            .map(|t| TaskView {
                title: t.title.clone(),
                role: t.role_title.clone(),
                assignee: t.assignee.clone().unwrap_or_default(),
                due: t.due_at.map(date).unwrap_or_default(),
                overdue: t.overdue,
            })
            .collect(),
        // The sponsor's page shows the waits they answer as forms, above.
        waits: d
            .open_waits
            .iter()
            .filter(|_| staff)
            .map(|w| WaitView {
                title: w.title.clone(),
                until: w.until.map(date).unwrap_or_default(),
            })
            .collect(),
        timeline: d.timeline.iter().map(entry).collect(),
    }
}

/// Where the request stands, in words.
pub(crate) fn status(d: &Dossier) -> String {
    match (d.status, d.result) {
        ("running", _) => text("state-running"),
        ("ended", Some("accepted")) => text("state-accepted"),
        ("ended", Some("rejected")) => text("state-rejected"),
        ("ended", Some("withdrawn")) | ("cancelled", _) => text("state-withdrawn"),
        (s, _) => s.to_owned(),
    }
}

/// A request's state as stored (`running`, `accepted`, `rejected`, `withdrawn`, `cancelled`,
/// `ended`), in words.
pub(crate) fn state(s: &str) -> String {
    match s {
        "running" => text("state-running"),
        "accepted" => text("state-accepted"),
        "rejected" => text("state-rejected"),
        "withdrawn" | "cancelled" => text("state-withdrawn"),
        "ended" => text("state-ended"),
        other => other.to_owned(),
    }
}

fn value(v: &FieldValue, documents: &str) -> ValueView {
    use serde_json::Value;
    if v.ty == FieldType::File {
        let get = |k: &str| v.value.get(k).and_then(Value::as_str).unwrap_or_default();
        let size = v.value.get("size").and_then(Value::as_u64).unwrap_or(0);
        return ValueView {
            label: v.label.clone(),
            text: format!(
                "{} ({}, {})",
                get("name"),
                get("type"),
                guichet_engine::core::form::bytes(size)
            ),
            href: format!("{documents}{}", get("sha256")),
            long: false,
        };
    }
    let text = match (&v.ty, &v.value) {
        (FieldType::YesNo, Value::Bool(b)) => text(if *b { "yes" } else { "no" }),
        (FieldType::Choice, _) if v.option_label.is_some() => {
            v.option_label.clone().unwrap_or_default()
        }
        (FieldType::Date, Value::String(s)) => day(s).unwrap_or_else(|| s.clone()),
        (FieldType::Number, Value::Number(n)) => number(n),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    };
    ValueView {
        label: v.label.clone(),
        text,
        href: String::new(),
        long: v.ty == FieldType::LongText,
    }
}

/// `2026-12-03` as the reader writes a day: `03/12/2026` in French, as is in English.
fn day(iso: &str) -> Option<String> {
    if crate::i18n::current() == guichet_definitions::model::Language::En {
        return None;
    }
    let mut parts = iso.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    Some(format!("{d}/{m}/{y}"))
}

/// Whole numbers without a decimal part, others as written, with a decimal comma in French.
fn number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        _ if crate::i18n::current() == guichet_definitions::model::Language::En => n.to_string(),
        _ => n.to_string().replace('.', ","),
    }
}

fn who(actor: Option<&Actor>) -> String {
    match actor {
        None => String::new(),
        Some(Actor::System) => text("actor-desk"),
        Some(Actor::User(email)) => email.clone(),
        Some(Actor::Requester) => text("actor-sponsor"),
        Some(Actor::Provider(p)) => text_with("actor-provider", &[("provider", p.into())]),
    }
}

fn entry(e: &Entry) -> EntryView {
    let step = e.step_title.as_deref().unwrap_or_default();
    let detail = e.detail.as_deref().unwrap_or_default();
    let outcome = e.outcome_label.as_deref();
    let step_only = |id: &str| text_with(id, &[("step", step.into())]);
    let with_detail = |id: &str| text_with(id, &[("step", step.into()), ("detail", detail.into())]);
    let with_outcome = |id: &str, plain: &str| match outcome {
        Some(o) => text_with(id, &[("step", step.into()), ("outcome", o.into())]),
        None => step_only(plain),
    };
    let what = match e.kind {
        EntryKind::Submitted => text("entry-submitted"),
        EntryKind::TaskOpened => with_detail("entry-task-opened"),
        EntryKind::Claimed => step_only("entry-claimed"),
        EntryKind::Released => step_only("entry-released"),
        EntryKind::Delegated => with_detail("entry-delegated"),
        EntryKind::Escalated => with_detail("entry-escalated"),
        EntryKind::Completed => with_outcome("entry-completed", "entry-completed-plain"),
        EntryKind::DeadlinePassed => step_only("entry-deadline-passed"),
        EntryKind::ProviderCalled => with_detail("entry-provider-called"),
        EntryKind::ProviderAnswered => {
            with_outcome("entry-provider-answered", "entry-provider-answered-plain")
        }
        EntryKind::Waiting => step_only("entry-waiting"),
        EntryKind::Answered => step_only("entry-answered"),
        EntryKind::TimedOut => step_only("entry-timed-out"),
        EntryKind::GateTaken => with_detail("entry-gate-taken"),
        EntryKind::Notified => text_with("entry-notified", &[("detail", detail.into())]),
        EntryKind::Ended => text_with(
            "entry-ended",
            &[(
                "result",
                (&state(match detail {
                    "accepted" | "rejected" => detail,
                    _ => "withdrawn",
                }))
                    .into(),
            )],
        ),
        EntryKind::Cancelled if detail.is_empty() => text("entry-cancelled"),
        EntryKind::Cancelled => text_with("entry-cancelled-why", &[("detail", detail.into())]),
    };
    // What the desk does by itself (emails, opening tasks, waiting, routing) is the desk's,
    // though recorded with whoever set it off.
    let automatic = matches!(
        e.kind,
        EntryKind::TaskOpened
            | EntryKind::Notified
            | EntryKind::Waiting
            | EntryKind::GateTaken
            | EntryKind::ProviderCalled
            | EntryKind::Ended
    );
    EntryView {
        at: date(e.at),
        who: if automatic && e.actor.is_some() {
            who(Some(&Actor::System))
        } else {
            who(e.actor.as_ref())
        },
        what,
        comment: e.comment.clone().unwrap_or_default(),
    }
}
