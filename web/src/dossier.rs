//! A request's dossier ([`guichet_engine::core::dossier`]) as the pages show it: values in
//! words, the timeline in sentences. One view for the task pages, the request page and the
//! sponsor's page (the audience decides what the dossier holds, not this module).

use guichet_definitions::model::FieldType;
use guichet_engine::core::Actor;
use guichet_engine::core::dossier::{Dossier, Entry, EntryKind, FieldValue};
use serde::Serialize;

use super::date;

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
        ("running", _) => "en cours".to_owned(),
        ("ended", Some("accepted")) => "acceptée".to_owned(),
        ("ended", Some("rejected")) => "refusée".to_owned(),
        ("ended", Some("withdrawn")) | ("cancelled", _) => "retirée".to_owned(),
        (s, _) => s.to_owned(),
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
        (FieldType::YesNo, Value::Bool(b)) => if *b { "Oui" } else { "Non" }.to_owned(),
        (FieldType::Choice, _) if v.option_label.is_some() => {
            v.option_label.clone().unwrap_or_default()
        }
        (FieldType::Date, Value::String(s)) => french_date(s).unwrap_or_else(|| s.clone()),
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

/// `2026-12-03` as `03/12/2026`.
fn french_date(iso: &str) -> Option<String> {
    let mut parts = iso.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    Some(format!("{d}/{m}/{y}"))
}

/// Whole numbers without a decimal part, others as written, with a decimal comma.
fn number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        _ => n.to_string().replace('.', ","),
    }
}

fn who(actor: Option<&Actor>) -> String {
    match actor {
        None => String::new(),
        Some(Actor::System) => "guichet".to_owned(),
        Some(Actor::User(email)) => email.clone(),
        Some(Actor::Requester) => "porteur de projet".to_owned(),
        Some(Actor::Provider(p)) => format!("prestataire {p}"),
    }
}

fn entry(e: &Entry) -> EntryView {
    let step = e.step_title.as_deref().unwrap_or_default();
    let detail = e.detail.as_deref().unwrap_or_default();
    let outcome = e.outcome_label.as_deref();
    let what = match e.kind {
        EntryKind::Submitted => "Demande déposée".to_owned(),
        EntryKind::TaskOpened => format!("« {step} » ouverte pour {detail}"),
        EntryKind::Claimed => format!("« {step} » prise en charge"),
        EntryKind::Released => format!("« {step} » rendue à son rôle"),
        EntryKind::Delegated => format!("« {step} » confiée à {detail}"),
        EntryKind::Escalated => format!("« {step} » transmise à {detail} (délai dépassé)"),
        EntryKind::Completed => match outcome {
            Some(o) => format!("{step} : {o}"),
            None => format!("{step} : terminée"),
        },
        EntryKind::DeadlinePassed => format!("Échéance dépassée : « {step} »"),
        EntryKind::ProviderCalled => format!("« {step} » confiée au prestataire {detail}"),
        EntryKind::ProviderAnswered => match outcome {
            Some(o) => format!("{step} : {o} (prestataire)"),
            None => format!("{step} : terminée (prestataire)"),
        },
        EntryKind::Waiting => format!("En attente d'une réponse : « {step} »"),
        EntryKind::Answered => format!("Réponse reçue : « {step} »"),
        EntryKind::TimedOut => format!("Délai de réponse écoulé : « {step} »"),
        EntryKind::GateTaken => format!("« {step} » : suite vers {detail}"),
        EntryKind::Notified => format!("Courriel {detail}"),
        EntryKind::Ended => format!(
            "Demande close : {}",
            match detail {
                "accepted" => "acceptée",
                "rejected" => "refusée",
                _ => "retirée",
            }
        ),
        EntryKind::Cancelled if detail.is_empty() => "Demande retirée".to_owned(),
        EntryKind::Cancelled => format!("Demande retirée ({detail})"),
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
