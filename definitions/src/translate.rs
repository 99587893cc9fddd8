//! A desk's texts in another language: `translation "en" { ... }` blocks.
//!
//! A definition is written in one language (`language "fr"`); a `translation` block gives its
//! texts in another, mirroring the parts it names: the desk's title and description, role
//! titles, step titles and descriptions, field labels and help, choice options and outcome
//! labels, indicator titles. Only texts change: ids, types and the flow stay the definition's.
//!
//! Reading a block ([`read`]) checks its shape; [`apply`] checks that every part it names
//! exists (with a suggestion when it does not) and builds the translated process, which the
//! engine hands to a reader of that language ([`Process::in_language`]). A text the block
//! leaves out is shown as written in the definition, and reported by a warning listing them.

use kdl::KdlNode;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Span};
use crate::model::{Language, Process, StepKind};
use crate::schema::{Name, Props, name_span, no_children, node_name, pick, unknown_child};
use crate::suggest::did_you_mean;

/// A `translation` block as written.
#[derive(Debug, Default)]
pub(crate) struct TranslationDraft {
    pub language: Option<Language>,
    /// The block's name, where errors about the whole block are reported.
    pub span: Span,
    pub title: Option<String>,
    pub description: Option<String>,
    pub roles: Vec<(Name, String)>,
    pub steps: Vec<StepText>,
    pub kpis: Vec<(Name, String)>,
}

#[derive(Debug)]
pub(crate) struct StepText {
    pub id: Name,
    pub title: Option<String>,
    pub description: Option<String>,
    pub fields: Vec<FieldText>,
    pub outcomes: Vec<(Name, String)>,
}

#[derive(Debug)]
pub(crate) struct FieldText {
    pub id: Name,
    pub label: Option<String>,
    pub help: Option<String>,
    pub options: Vec<(Name, String)>,
}

const CHILDREN: &[&str] = &["title", "description", "role", "step", "kpi"];

/// Reads a `translation "en" { ... }` node.
pub(crate) fn read(node: &KdlNode, diags: &mut Diagnostics) -> TranslationDraft {
    let props = Props::read(node, &[], diags);
    props.at_most_args(1, "one argument, the language", diags);
    let mut t = TranslationDraft {
        span: name_span(node),
        language: props.arg_string("a language", diags).and_then(|n| {
            pick(
                &n,
                "translation",
                &[("fr", Language::Fr), ("en", Language::En)],
                diags,
            )
        }),
        ..TranslationDraft::default()
    };
    let Some(children) = node.children() else {
        return t;
    };
    for child in children.nodes() {
        match node_name(child) {
            "title" => t.title = text_arg(child, "a title", diags),
            "description" => t.description = text_arg(child, "a description", diags),
            "role" => {
                if let Some(entry) = named_text(child, "title", diags) {
                    t.roles.push(entry);
                }
            }
            "kpi" => {
                if let Some(entry) = named_text(child, "title", diags) {
                    t.kpis.push(entry);
                }
            }
            "step" => {
                if let Some(step) = step(child, diags) {
                    t.steps.push(step);
                }
            }
            _ => unknown_child(child, "a translation", CHILDREN, diags),
        }
    }
    t
}

/// `title "..."`: one string.
fn text_arg(node: &KdlNode, what: &str, diags: &mut Diagnostics) -> Option<String> {
    let props = Props::read(node, &[], diags);
    props.at_most_args(1, "one argument", diags);
    no_children(node, diags);
    props.arg_string(what, diags).map(|n| n.text)
}

/// `role "id" title="..."`: an id and its one text, which must be given.
fn named_text(node: &KdlNode, key: &str, diags: &mut Diagnostics) -> Option<(Name, String)> {
    let props = Props::read(node, &[key], diags);
    props.at_most_args(1, "one argument, the id", diags);
    no_children(node, diags);
    let id = props.arg_string("an id", diags)?;
    let text = props.required_string(key, "\"...\"", diags)?;
    Some((id, text.text))
}

fn step(node: &KdlNode, diags: &mut Diagnostics) -> Option<StepText> {
    let props = Props::read(node, &["title", "description"], diags);
    props.at_most_args(1, "one argument, the step id", diags);
    let id = props.arg_string("an id (the step's)", diags)?;
    let mut step = StepText {
        id,
        title: props.string("title", diags).map(|n| n.text),
        description: props.string("description", diags).map(|n| n.text),
        fields: Vec::new(),
        outcomes: Vec::new(),
    };
    for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
        match node_name(child) {
            "field" => {
                let fp = Props::read(child, &["label", "help"], diags);
                fp.at_most_args(1, "one argument, the field id", diags);
                let Some(id) = fp.arg_string("an id (the field's)", diags) else {
                    continue;
                };
                let mut field = FieldText {
                    id,
                    label: fp.string("label", diags).map(|n| n.text),
                    help: fp.string("help", diags).map(|n| n.text),
                    options: Vec::new(),
                };
                for o in child.children().map(|c| c.nodes()).unwrap_or_default() {
                    if node_name(o) != "option" {
                        unknown_child(o, "a field's translation", &["option"], diags);
                        continue;
                    }
                    if let Some(entry) = named_text(o, "label", diags) {
                        field.options.push(entry);
                    }
                }
                step.fields.push(field);
            }
            "outcome" => {
                if let Some(entry) = named_text(child, "label", diags) {
                    step.outcomes.push(entry);
                }
            }
            _ => unknown_child(child, "a step's translation", &["field", "outcome"], diags),
        }
    }
    Some(step)
}

/// An error for a name the translation gives that the definition does not have.
fn unknown<'a>(
    code: Code,
    name: &Name,
    what: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Diagnostic {
    let known: Vec<&str> = known.into_iter().collect();
    let d = Diagnostic::new(
        code,
        name.span,
        format!(
            "the translation names {what} `{}`, which the desk does not have",
            name.text
        ),
    )
    .label("not in the desk");
    match did_you_mean(&name.text, known.iter().copied()) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None if known.is_empty() => d.help("remove it"),
        None => d.help(format!("the desk has: {}", known.join(", "))),
    }
}

/// Builds `p` in each translation's language, reporting what a translation names that `p`
/// does not have, a translation into the desk's own language or given twice, and (as one
/// warning per translation) the texts it leaves out.
pub(crate) fn apply(
    drafts: &[TranslationDraft],
    p: &Process,
    diags: &mut Diagnostics,
) -> Vec<(Language, Process)> {
    let mut out: Vec<(Language, Process)> = Vec::new();
    let mut seen: Vec<(Language, Span)> = Vec::new();
    for t in drafts {
        let Some(language) = t.language else { continue };
        if language == p.language {
            diags.push(
                Diagnostic::new(
                    Code::InvalidValue,
                    t.span,
                    format!(
                        "the desk is written in `{}` already: a translation is into another language",
                        language.code()
                    ),
                )
                .label("the desk's own language")
                .help("translate into the other language, or remove the block"),
            );
            continue;
        }
        if let Some((_, first)) = seen.iter().find(|(l, _)| *l == language) {
            diags.push(
                Diagnostic::new(
                    Code::DuplicateNode,
                    t.span,
                    format!("the translation into `{}` is given twice", language.code()),
                )
                .label("again here")
                .related(*first, "first here")
                .help("merge the two blocks"),
            );
            continue;
        }
        seen.push((language, t.span));
        let mut q = p.clone();
        q.language = language;
        if let Some(title) = &t.title {
            q.title.clone_from(title);
        }
        if t.description.is_some() {
            q.description.clone_from(&t.description);
        }
        for (id, title) in &t.roles {
            match q.roles.iter_mut().find(|r| r.id == id.text) {
                Some(r) => r.title = Some(title.clone()),
                None => diags.push(unknown(
                    Code::UnknownRole,
                    id,
                    "the role",
                    p.roles.iter().map(|r| r.id.as_str()),
                )),
            }
        }
        for (id, title) in &t.kpis {
            match q.kpis.iter_mut().find(|k| k.id == id.text) {
                Some(k) => k.title = Some(title.clone()),
                None => diags.push(unknown(
                    Code::UnknownKpi,
                    id,
                    "the indicator",
                    p.kpis.iter().map(|k| k.id.as_str()),
                )),
            }
        }
        for s in &t.steps {
            let Some(i) = p.step_idx(&s.id.text) else {
                diags.push(unknown(
                    Code::UnknownStep,
                    &s.id,
                    "the step",
                    p.steps.iter().map(|s| s.id.as_str()),
                ));
                continue;
            };
            step_texts(s, &mut q.steps[i], &p.steps[i], diags);
        }
        let missing = untranslated(p, t);
        if !missing.is_empty() {
            let shown: Vec<&str> = missing.iter().take(8).map(String::as_str).collect();
            diags.push(
                Diagnostic::new(
                    Code::Untranslated,
                    t.span,
                    format!(
                        "the translation into `{}` leaves {} text{} as written in `{}`: {}{}",
                        language.code(),
                        missing.len(),
                        if missing.len() == 1 { "" } else { "s" },
                        p.language.code(),
                        shown.join(", "),
                        if missing.len() > shown.len() { ", …" } else { "" }
                    ),
                )
                .label("incomplete")
                .help("add them to the block; until then readers of this language see them as written"),
            );
        }
        out.push((language, q));
    }
    out
}

/// Puts a step's translated texts into `to` (a copy of `from`).
fn step_texts(
    s: &StepText,
    to: &mut crate::model::Step,
    from: &crate::model::Step,
    diags: &mut Diagnostics,
) {
    if s.title.is_some() {
        to.title.clone_from(&s.title);
    }
    if s.description.is_some() {
        to.description.clone_from(&s.description);
    }
    let step_id = from.id.as_str();
    for f in &s.fields {
        let known = from
            .form()
            .map(|form| {
                form.fields
                    .iter()
                    .map(|x| x.id.as_str())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let Some(field) = form_mut(&mut to.kind)
            .and_then(|form| form.fields.iter_mut().find(|x| x.id == f.id.text))
        else {
            diags.push(unknown(
                Code::UnknownField,
                &f.id,
                &format!("in step `{step_id}` the field"),
                known,
            ));
            continue;
        };
        if f.label.is_some() {
            field.label.clone_from(&f.label);
        }
        if f.help.is_some() {
            field.help.clone_from(&f.help);
        }
        for (value, label) in &f.options {
            let values: Vec<String> = field.options.iter().map(|o| o.value.clone()).collect();
            match field.options.iter_mut().find(|o| o.value == value.text) {
                Some(o) => o.label = Some(label.clone()),
                None => diags.push(unknown(
                    Code::InvalidValue,
                    value,
                    &format!("for field `{step_id}.{}` the option", f.id.text),
                    values.iter().map(String::as_str),
                )),
            }
        }
    }
    for (id, label) in &s.outcomes {
        let known: Vec<&str> = from.outcomes().iter().map(|o| o.id.as_str()).collect();
        let outcomes = match &mut to.kind {
            StepKind::Task(t) => Some(&mut t.outcomes),
            StepKind::Call(c) => Some(&mut c.outcomes),
            _ => None,
        };
        match outcomes.and_then(|o| o.iter_mut().find(|o| o.id == id.text)) {
            Some(o) => o.label = Some(label.clone()),
            None => diags.push(unknown(
                Code::UnknownOutcome,
                id,
                &format!("in step `{step_id}` the outcome"),
                known,
            )),
        }
    }
}

fn form_mut(kind: &mut StepKind) -> Option<&mut crate::model::Form> {
    match kind {
        StepKind::Start(s) => Some(&mut s.form),
        StepKind::Task(t) => Some(&mut t.form),
        StepKind::Call(c) => Some(&mut c.form),
        StepKind::Wait(w) => Some(&mut w.form),
        _ => None,
    }
}

/// The texts `p` writes that the translation `t` leaves out, named as the block would name
/// them (`title`, `step "x" title`, `field "x.y" label`...).
fn untranslated(p: &Process, t: &TranslationDraft) -> Vec<String> {
    let mut out = Vec::new();
    if t.title.is_none() && !p.title.is_empty() {
        out.push("title".to_owned());
    }
    if t.description.is_none() && p.description.is_some() {
        out.push("description".to_owned());
    }
    for r in &p.roles {
        if r.title.is_some() && !t.roles.iter().any(|(id, _)| id.text == r.id) {
            out.push(format!("role \"{}\"", r.id));
        }
    }
    for k in &p.kpis {
        if k.title.is_some() && !t.kpis.iter().any(|(id, _)| id.text == k.id) {
            out.push(format!("kpi \"{}\"", k.id));
        }
    }
    for from in &p.steps {
        let given = t.steps.iter().find(|s| s.id.text == from.id);
        if from.title.is_some() && given.is_none_or(|s| s.title.is_none()) {
            out.push(format!("step \"{}\" title", from.id));
        }
        if from.description.is_some() && given.is_none_or(|s| s.description.is_none()) {
            out.push(format!("step \"{}\" description", from.id));
        }
        let field_given = |id: &str| given.and_then(|s| s.fields.iter().find(|f| f.id.text == id));
        for field in from.form().map(|f| f.fields.as_slice()).unwrap_or_default() {
            let g = field_given(&field.id);
            if field.label.is_some() && g.is_none_or(|f| f.label.is_none()) {
                out.push(format!("field \"{}.{}\" label", from.id, field.id));
            }
            if field.help.is_some() && g.is_none_or(|f| f.help.is_none()) {
                out.push(format!("field \"{}.{}\" help", from.id, field.id));
            }
            for o in &field.options {
                if o.label.is_some()
                    && g.is_none_or(|f| !f.options.iter().any(|(v, _)| v.text == o.value))
                {
                    out.push(format!("option \"{}.{}.{}\"", from.id, field.id, o.value));
                }
            }
        }
        for o in from.outcomes() {
            if o.label.is_some()
                && given.is_none_or(|s| !s.outcomes.iter().any(|(id, _)| id.text == o.id))
            {
                out.push(format!("outcome \"{}.{}\"", from.id, o.id));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::model::Language;

    #[test]
    fn a_reader_of_the_translation_sees_its_texts_and_the_same_desk() {
        let checked = crate::load(include_str!("../tests/corpus/ok/translated.kdl"));
        assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
        let fr = checked.process.expect("a process");
        let en = fr.in_language(Language::En);
        assert_eq!(fr.in_language(Language::Fr).title, "Petit guichet");
        assert_eq!(en.title, "Small desk");
        assert_eq!(en.language, Language::En);
        assert_eq!(
            en.role("demandeur").and_then(|r| r.title.as_deref()),
            Some("Project sponsor")
        );
        let start = en.start().form().expect("a form");
        let cadre = start.field("cadre").expect("cadre");
        assert_eq!(cadre.label.as_deref(), Some("Framework"));
        assert_eq!(cadre.help.as_deref(), Some("The project's framework."));
        assert_eq!(cadre.options[0].label.as_deref(), Some("Academic research"));
        let task = en.step("recevabilite").expect("the task");
        assert_eq!(task.display_name(), "Admissibility");
        assert_eq!(task.description.as_deref(), Some("Check the request."));
        assert_eq!(task.outcomes()[1].display_name(), "Not admissible");
        // The same desk: ids, order, flow.
        assert_eq!(en.steps.len(), fr.steps.len());
        assert!(en.steps.iter().zip(&fr.steps).all(|(a, b)| a.id == b.id));
        assert_eq!(format!("{:?}", en.flow), format!("{:?}", fr.flow));
        // The French desk is untouched.
        assert_eq!(
            fr.step("recevabilite").map(|s| s.display_name()),
            Some("Recevabilité")
        );
    }
}
