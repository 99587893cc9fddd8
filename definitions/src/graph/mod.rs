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

use crate::model::{Exit, Process, StepIdx, StepKind};

/// The label of an edge: which way out of the step it is.
pub(crate) fn exit_label(p: &Process, step: StepIdx, exit: Exit) -> String {
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
        Exit::Otherwise => "sinon".to_owned(),
        Exit::Timeout => "délai dépassé".to_owned(),
    }
}

/// A second line under the step's name: who does it, or what it waits for.
pub(crate) fn step_detail(p: &Process, step: StepIdx) -> String {
    let role_name = |id: &str| {
        p.role(id)
            .and_then(|r| r.title.clone())
            .unwrap_or_else(|| id.to_owned())
    };
    match &p.steps[step].kind {
        StepKind::Start(_) => "dépôt de la demande".to_owned(),
        StepKind::Task(t) => match &t.due {
            Some(d) => format!("{} · {d}", role_name(&t.role)),
            None => role_name(&t.role),
        },
        StepKind::Notify(n) => format!("courriel à {}", role_name(&n.to)),
        StepKind::Call(c) => format!(
            "prestataire {}",
            p.providers
                .iter()
                .find(|x| x.id == c.provider)
                .and_then(|x| x.title.clone())
                .unwrap_or_else(|| c.provider.clone())
        ),
        StepKind::Wait(w) => format!("attend « {} »", w.event),
        StepKind::Gate(_) => "décision".to_owned(),
        StepKind::Parallel(_) => "en parallèle".to_owned(),
        StepKind::End(e) => e.result.as_str().to_owned(),
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
