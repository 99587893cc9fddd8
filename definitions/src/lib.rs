//! The guichet process-definition language.
//!
//! A desk designer writes a process in KDL; [`load`] turns the text into a checked
//! [`model::Process`] in stages, each one trusting the last:
//!
//! 1. **limits and syntax**: size, nesting depth and node count are checked before and after
//!    the `kdl` crate parses the text (KDL 2.0);
//! 2. **lowering** (`lower`): KDL nodes become typed steps, forms, roles and indicators;
//!    unknown nodes and properties, wrong types, bad ids and durations are reported;
//! 3. **resolution** (`resolve`): every name is looked up (roles, steps, templates,
//!    providers, fields, outcomes, indicators) and the control flow is compiled to edges;
//! 4. **analysis** (`analysis`): soundness of the whole graph (reachability, termination,
//!    parallel branches, data read before it is written).
//!
//! All problems of all stages are reported together, as [`Diagnostic`]s with stable codes.
//! A process is returned only when there is no error, so later code never sees a broken one.

pub mod diagnostic;
pub mod duration;
pub mod expr;
pub mod graph;
pub mod limits;
pub mod model;
pub mod models;
pub mod templates;

mod analysis;
mod lower;
mod resolve;
mod schema;
pub mod suggest;
mod translate;

use std::collections::HashMap;
use std::sync::Arc;

pub use diagnostic::{Code, Diagnostic, Severity, Span};
pub use model::Process;

use diagnostic::Diagnostics;
use model::Language;

/// The result of checking a definition: the process if it has no error, and every diagnostic
/// (warnings come with a process too).
#[derive(Debug)]
pub struct Checked {
    pub process: Option<Process>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Checks raw bytes (as read from a file or an upload): they must be UTF-8.
pub fn load_bytes(bytes: &[u8]) -> Checked {
    if bytes.len() > limits::MAX_FILE_BYTES {
        return too_large(bytes.len());
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => load(text),
        Err(e) => Checked {
            process: None,
            diagnostics: vec![
                Diagnostic::new(
                    Code::NotUtf8,
                    Span::new(e.valid_up_to(), 0),
                    format!(
                        "the file is not UTF-8 text (invalid byte at offset {})",
                        e.valid_up_to()
                    ),
                )
                .label("invalid UTF-8")
                .help("save the file as UTF-8 (the default of modern editors)"),
            ],
        },
    }
}

fn too_large(len: usize) -> Checked {
    Checked {
        process: None,
        diagnostics: vec![
            Diagnostic::new(
                Code::FileTooLarge,
                Span::new(0, 0),
                format!(
                    "the file has {len} bytes, more than the limit of {} bytes",
                    limits::MAX_FILE_BYTES
                ),
            )
            .label("too large")
            .help("a desk process is a few kilobytes; split long texts out into templates"),
        ],
    }
}

/// Parses a KDL file within the limits (size, depth, node count), with every problem as a
/// diagnostic. Shared by definitions and the simulator's scenario files.
pub fn parse_document(source: &str) -> Result<kdl::KdlDocument, Vec<Diagnostic>> {
    if source.len() > limits::MAX_FILE_BYTES {
        return Err(too_large(source.len()).diagnostics);
    }
    let mut diags = Diagnostics::default();
    let depth = limits::max_depth(source);
    if depth > limits::MAX_DEPTH {
        let at = deepest_brace(source, limits::MAX_DEPTH + 1);
        diags.push(
            Diagnostic::new(
                Code::TooDeep,
                Span::new(at, 1),
                format!(
                    "blocks are nested {depth} deep, more than the limit of {}",
                    limits::MAX_DEPTH
                ),
            )
            .label("too deep from here")
            .help("a process needs a handful of levels; check for unbalanced braces"),
        );
        return Err(diags.into_vec());
    }
    let doc = match kdl::KdlDocument::parse(source) {
        Ok(doc) => doc,
        Err(err) => {
            for kd in err.diagnostics {
                let span = Span::from(kd.span);
                let message = kd.message.unwrap_or_else(|| "invalid KDL".to_owned());
                let written = source.get(span.offset..span.end()).unwrap_or("");
                // The most common slip from KDL 1 and other languages: bare keywords.
                let keyword_help = matches!(written, "true" | "false" | "null")
                    .then(|| format!("KDL 2.0 writes keywords with a #: write #{written}"));
                let mut d = Diagnostic::new(Code::KdlSyntax, span, message)
                    .label(kd.label.unwrap_or_else(|| "here".to_owned()));
                d = d.maybe_help(keyword_help.or(kd.help).or_else(|| {
                    Some("see the KDL 2.0 syntax (kdl.dev): strings in double quotes, booleans #true and #false".to_owned())
                }));
                diags.push(d);
            }
            return Err(diags.into_vec());
        }
    };
    let count = count_nodes(&doc);
    if count > limits::MAX_NODES {
        diags.push(
            Diagnostic::new(
                Code::TooManyNodes,
                Span::new(0, 0),
                format!(
                    "the file has {count} nodes, more than the limit of {}",
                    limits::MAX_NODES
                ),
            )
            .label("too many nodes")
            .help("split the desk into smaller processes"),
        );
        return Err(diags.into_vec());
    }
    Ok(doc)
}

/// Checks a definition's text and builds its process.
pub fn load(source: &str) -> Checked {
    let mut diags = Diagnostics::default();
    let doc = match parse_document(source) {
        Ok(doc) => doc,
        Err(errors) => {
            for d in errors {
                diags.push(d);
            }
            return finish(diags, None);
        }
    };
    let draft = lower::lower(&doc, source, &mut diags);
    let resolved = resolve::resolve(&draft, source, &mut diags);
    // Graph analysis only on a flow whose references all resolved: otherwise a missing edge
    // would show up again as "unreachable" or "no end", hiding the real mistake.
    let flow_intact = !diags_have(
        &diags,
        &[
            Code::UnknownStep,
            Code::BadStart,
            Code::Missing,
            Code::InvalidId,
            Code::DuplicateId,
            Code::EmptyBlock,
            Code::UnknownNode,
            Code::WrongType,
            Code::FallsOffEnd,
        ],
    );
    if flow_intact {
        analysis::analyse(&draft, &resolved.flow, &resolved.reads, &mut diags);
    }
    if diags.has_errors() {
        return finish(diags, None);
    }
    let mut process = Process {
        name: draft.name.map(|n| n.text).unwrap_or_default(),
        version: draft.version,
        title: draft.title.unwrap_or_default(),
        language: draft.language.unwrap_or(Language::Fr),
        description: draft.description,
        roles: resolved.roles,
        providers: draft.providers,
        templates: draft.templates,
        steps: draft.steps,
        body: draft.body,
        kpis: resolved.kpis,
        maturity: draft.maturity,
        flow: resolved.flow,
        step_index: resolved.step_index,
        translations: Vec::new(),
    };
    let translations = translate::apply(&draft.translations, &process, &mut diags);
    if diags.has_errors() {
        return finish(diags, None);
    }
    process.translations = translations
        .into_iter()
        .map(|(l, p)| (l, Arc::new(p)))
        .collect();
    finish(diags, Some(process))
}

fn finish(diags: Diagnostics, process: Option<Process>) -> Checked {
    Checked {
        process,
        diagnostics: diags.into_vec(),
    }
}

fn diags_have(diags: &Diagnostics, codes: &[Code]) -> bool {
    diags
        .iter()
        .any(|d| d.is_error() && codes.contains(&d.code))
}

fn count_nodes(doc: &kdl::KdlDocument) -> usize {
    doc.nodes()
        .iter()
        .map(|n| 1 + n.children().map_or(0, count_nodes))
        .sum()
}

/// Byte offset of the first `{` at the given depth (for the G0003 label).
fn deepest_brace(source: &str, depth: usize) -> usize {
    let mut d = 0;
    for (i, c) in source.char_indices() {
        match c {
            '{' => {
                d += 1;
                if d >= depth {
                    return i;
                }
            }
            '}' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    0
}

/// Step ids of a checked process by name (used by tests and tools).
pub fn step_ids(p: &Process) -> HashMap<&str, usize> {
    p.steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect()
}
