//! Mermaid flowchart output (`guichet graph --format mermaid`), for Markdown documents.

use std::fmt::Write;

use super::{clip, exit_label, step_detail};
use crate::model::{Exit, Process, StepKind, Target};

/// Mermaid node ids must be plain: number the steps.
fn id(i: usize) -> String {
    format!("s{i}")
}

fn text(s: &str) -> String {
    // Mermaid labels in quotes accept anything but the quote itself.
    s.replace('"', "#quot;")
}

pub fn mermaid(p: &Process) -> String {
    let mut out = String::from("flowchart TD\n");
    for (i, s) in p.steps.iter().enumerate() {
        let label = text(&format!(
            "{}<br/><small>{}</small>",
            s.display_name(),
            step_detail(p, i, p.language)
        ));
        let node = match &s.kind {
            StepKind::Start(_) | StepKind::End(_) => format!("([\"{label}\"])"),
            StepKind::Gate(_) => format!("{{\"{label}\"}}"),
            StepKind::Wait(_) => format!("{{{{\"{label}\"}}}}"),
            StepKind::Notify(_) => format!(">\"{label}\"]"),
            StepKind::Call(_) => format!("[[\"{label}\"]]"),
            StepKind::Parallel(_) => format!("[\"{label}\"]"),
            StepKind::Task(_) => format!("(\"{label}\")"),
        };
        let _ = writeln!(out, "  {}{node}", id(i));
        if let StepKind::Parallel(_) = s.kind {
            let _ = writeln!(out, "  {}_join[\"fin {}\"]", id(i), text(s.display_name()));
        }
    }
    for (i, edges) in p.flow.edges.iter().enumerate() {
        for e in edges {
            let from = match (&p.steps[i].kind, e.exit) {
                (StepKind::Parallel(_), Exit::Next) => format!("{}_join", id(i)),
                _ => id(i),
            };
            let to = match e.to {
                Target::Step(t) => id(t),
                Target::Join(par) => format!("{}_join", id(par)),
            };
            let label = exit_label(p, i, e.exit, p.language);
            let arrow = if e.jump { "-.->" } else { "-->" };
            if label.is_empty() {
                let _ = writeln!(out, "  {from} {arrow} {to}");
            } else {
                let _ = writeln!(
                    out,
                    "  {from} {arrow}|\"{}\"| {to}",
                    text(&clip(&label, 40))
                );
            }
        }
    }
    out
}
