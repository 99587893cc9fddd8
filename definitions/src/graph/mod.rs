//! Drawing a process: Graphviz DOT, Mermaid, and a standalone SVG that needs no external
//! program (the web pages show it as is).
//!
//! All three draw the same thing: steps by kind, tasks labelled with their role, gates with
//! their conditions, parallel blocks as split and join, and every edge of the compiled flow
//! labelled with the way out it stands for (an outcome, a condition, a timeout).

mod dot;
mod mermaid;
mod svg;

pub use dot::dot;
pub use mermaid::mermaid;
pub use svg::{svg, svg_marked};

use crate::model::{EndResult, Exit, Language, Process, StepIdx, StepKind};

/// The drawing's own words (the desk's texts are its own): in the reader's language for the
/// web page, in the desk's for `guichet graph`.
struct Words {
    otherwise: &'static str,
    timeout: &'static str,
    intake: &'static str,
    email_to: &'static str,
    provider: &'static str,
    waits: &'static str,
    decision: &'static str,
    parallel: &'static str,
    accepted: &'static str,
    rejected: &'static str,
    withdrawn: &'static str,
}

fn words(language: Language) -> Words {
    match language {
        Language::Fr => Words {
            otherwise: "sinon",
            timeout: "délai dépassé",
            intake: "dépôt de la demande",
            email_to: "courriel à",
            provider: "prestataire",
            waits: "attend",
            decision: "décision",
            parallel: "en parallèle",
            accepted: "acceptée",
            rejected: "refusée",
            withdrawn: "retirée",
        },
        Language::En => Words {
            otherwise: "otherwise",
            timeout: "deadline passed",
            intake: "request submitted",
            email_to: "email to",
            provider: "provider",
            waits: "waits for",
            decision: "decision",
            parallel: "in parallel",
            accepted: "accepted",
            rejected: "rejected",
            withdrawn: "withdrawn",
        },
    }
}

/// The label of an edge: which way out of the step it is.
pub(crate) fn exit_label(p: &Process, step: StepIdx, exit: Exit, language: Language) -> String {
    let s = &p.steps[step];
    match exit {
        Exit::Next | Exit::Branch(_) => String::new(),
        Exit::Outcome(i) => s.outcomes().get(i).map_or_else(String::new, |o| {
            o.label.clone().unwrap_or_else(|| o.id.clone())
        }),
        Exit::When(i) => match &s.kind {
            StepKind::Gate(g) => g
                .conditions
                .get(i)
                .map_or_else(String::new, |c| c.text.clone()),
            _ => String::new(),
        },
        Exit::Otherwise => words(language).otherwise.to_owned(),
        Exit::Timeout => words(language).timeout.to_owned(),
    }
}

/// A second line under the step's name: who does it, or what it waits for.
pub(crate) fn step_detail(p: &Process, step: StepIdx, language: Language) -> String {
    let w = words(language);
    let role_name = |id: &str| {
        p.role(id)
            .and_then(|r| r.title.clone())
            .unwrap_or_else(|| id.to_owned())
    };
    match &p.steps[step].kind {
        StepKind::Start(_) => w.intake.to_owned(),
        StepKind::Task(t) => match &t.due {
            Some(d) => format!("{} · {d}", role_name(&t.role)),
            None => role_name(&t.role),
        },
        StepKind::Notify(n) => format!("{} {}", w.email_to, role_name(&n.to)),
        StepKind::Call(c) => format!(
            "{} {}",
            w.provider,
            p.providers
                .iter()
                .find(|x| x.id == c.provider)
                .and_then(|x| x.title.clone())
                .unwrap_or_else(|| c.provider.clone())
        ),
        StepKind::Wait(wait) => match language {
            Language::Fr => format!("{} « {} »", w.waits, wait.event),
            Language::En => format!("{} “{}”", w.waits, wait.event),
        },
        StepKind::Gate(_) => w.decision.to_owned(),
        StepKind::Parallel(_) => w.parallel.to_owned(),
        StepKind::End(e) => match e.result {
            EndResult::Accepted => w.accepted,
            EndResult::Rejected => w.rejected,
            EndResult::Withdrawn => w.withdrawn,
        }
        .to_owned(),
    }
}

/// Truncates a label to `max` characters with an ellipsis.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}
