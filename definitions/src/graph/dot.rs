//! Graphviz DOT output (`guichet graph --format dot`).

use std::fmt::Write;

use super::{exit_label, step_detail};
use crate::model::{Process, StepKind, Target};

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn dot(p: &Process) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&p.name));
    let _ = writeln!(out, "  label={};", quote(&p.title));
    out.push_str("  rankdir=TB;\n  node [fontname=\"sans-serif\", fontsize=10];\n  edge [fontname=\"sans-serif\", fontsize=9];\n");
    for (i, s) in p.steps.iter().enumerate() {
        let (shape, extra) = match &s.kind {
            StepKind::Start(_) => ("oval", ", style=filled, fillcolor=\"#dff0d8\""),
            StepKind::End(_) => ("oval", ", style=\"filled,bold\", fillcolor=\"#f2dede\""),
            StepKind::Gate(_) => ("diamond", ""),
            StepKind::Parallel(_) => ("box", ", style=\"filled\", fillcolor=\"#eeeeee\""),
            StepKind::Notify(_) => ("note", ""),
            StepKind::Call(_) => ("box", ", peripheries=2"),
            StepKind::Wait(_) => ("hexagon", ""),
            StepKind::Task(_) => ("box", ", style=rounded"),
        };
        let label = format!("{}\n{}", s.display_name(), step_detail(p, i, p.language));
        let _ = writeln!(
            out,
            "  {} [shape={shape}, label={}{extra}];",
            quote(&s.id),
            quote(&label)
        );
        if let StepKind::Parallel(_) = s.kind {
            let _ = writeln!(
                out,
                "  {} [shape=box, style=filled, fillcolor=\"#eeeeee\", label=\"fin {}\"];",
                quote(&format!("{}/join", s.id)),
                s.id.replace('"', "")
            );
        }
    }
    for (i, edges) in p.flow.edges.iter().enumerate() {
        let s = &p.steps[i];
        for e in edges {
            let from = match (&s.kind, e.exit) {
                (StepKind::Parallel(_), crate::model::Exit::Next) => format!("{}/join", s.id),
                _ => s.id.clone(),
            };
            let to = match e.to {
                Target::Step(t) => p.steps[t].id.clone(),
                Target::Join(par) => format!("{}/join", p.steps[par].id),
            };
            let label = exit_label(p, i, e.exit, p.language);
            let style = if e.jump { ", style=dashed" } else { "" };
            let _ = writeln!(
                out,
                "  {} -> {} [label={}{style}];",
                quote(&from),
                quote(&to),
                quote(&label)
            );
        }
    }
    out.push_str("}\n");
    out
}
