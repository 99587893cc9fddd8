//! Second stage: check every reference in the draft (roles, steps, templates, providers,
//! fields, outcomes, indicators), compile the control flow into [`Flow`] edges, and check the
//! names read by conditions. Graph-wide soundness is the next stage (`analysis`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Span};
use crate::expr::{self, Condition};
use crate::lower::{Draft, KpiDraft};
use crate::model::{
    Edge, Exit, FieldType, Flow, JOIN, Kpi, KpiKind, KpiTarget, Role, RoleSource, Step, StepIdx,
    StepKind, Target, TargetValue,
};
use crate::schema::Name;
use crate::suggest::did_you_mean;
use crate::templates;

/// The output of resolution: what the analysis and the final model need.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub step_index: HashMap<String, StepIdx>,
    pub flow: Flow,
    pub roles: Vec<Role>,
    pub kpis: Vec<Kpi>,
    /// Per gate/kpi condition: the steps whose data it reads, with spans (for G0103).
    pub reads: Vec<Read>,
}

#[derive(Debug)]
pub(crate) struct Read {
    /// The step whose condition reads (a gate), or `None` for an indicator (read at the end).
    pub reader: Option<StepIdx>,
    pub step: StepIdx,
    pub span: Span,
    pub guarded: bool,
    /// `step.count` is always defined (0 before the step first runs).
    pub count: bool,
    /// The field read is not required, so it may be empty.
    pub optional_field: bool,
}

pub(crate) fn resolve(d: &Draft, src: &str, diags: &mut Diagnostics) -> Resolved {
    let step_index = index_steps(d, diags);
    check_start(d, diags);
    let roles = resolve_roles(d, &step_index, diags);
    check_names(d, diags);
    let flow = build_flow(d, &step_index, diags);
    let mut reads = Vec::new();
    for (i, step) in d.steps.iter().enumerate() {
        if let StepKind::Gate(g) = &step.kind {
            for c in &g.conditions {
                check_condition(c, Some(i), d, &step_index, &mut reads, diags);
            }
        }
        // Read as branches end, of steps that may not have run yet: not a gate's reads
        // (an unset value makes it false, as documented).
        if let StepKind::Parallel(par) = &step.kind
            && let Some(c) = &par.complete_when
        {
            check_condition(c, None, d, &step_index, &mut reads, diags);
        }
        check_timing(step, i, d, diags);
    }
    let kpis = resolve_kpis(d, &step_index, src, &mut reads, diags);
    Resolved {
        step_index,
        flow,
        roles,
        kpis,
        reads,
    }
}

fn index_steps(d: &Draft, diags: &mut Diagnostics) -> HashMap<String, StepIdx> {
    let mut index: HashMap<String, StepIdx> = HashMap::new();
    // Conditions see `a-b` and `a_b` as one name; they must not both exist.
    let mut cel_names: HashMap<String, StepIdx> = HashMap::new();
    for (i, links) in d.links.iter().enumerate() {
        let Some(id) = &links.id else { continue };
        if let Some(&first) = index.get(&id.text) {
            diags.push(
                Diagnostic::new(
                    Code::DuplicateId,
                    id.span,
                    format!("two steps are named `{}`", id.text),
                )
                .label("second step with this id")
                .related(
                    d.links[first]
                        .id
                        .as_ref()
                        .map_or(Span::default(), |n| n.span),
                    "first one",
                )
                .help("step ids are unique in a process, branches included: rename one"),
            );
            continue;
        }
        if let Some(&other) = cel_names.get(&expr::cel_name(&id.text)) {
            let other_id = &d.steps[other].id;
            diags.push(
                Diagnostic::new(
                    Code::DuplicateId,
                    id.span,
                    format!(
                        "`{}` and `{other_id}` are the same name in conditions",
                        id.text
                    ),
                )
                .label("clashes in conditions")
                .help("conditions read '-' and '_' alike; rename one of the two steps"),
            );
        }
        cel_names.insert(expr::cel_name(&id.text), i);
        index.insert(id.text.clone(), i);
    }
    index
}

fn check_start(d: &Draft, diags: &mut Diagnostics) {
    let starts: Vec<StepIdx> = (0..d.steps.len())
        .filter(|&i| matches!(d.steps[i].kind, StepKind::Start(_)))
        .collect();
    let first = d.body.first().copied();
    match (starts.as_slice(), first) {
        (_, None) => diags.push(
            Diagnostic::new(
                Code::BadStart,
                d.process_span_or_name(),
                "the process has no steps",
            )
            .label("no steps")
            .help("begin the process with a `start` step holding the intake form"),
        ),
        ([], Some(f)) => diags.push(
            Diagnostic::new(
                Code::BadStart,
                d.steps[f].span,
                "the process has no start step",
            )
            .label("the process begins here")
            .help("add `start \"demande\" { form { ... } }` as the first step"),
        ),
        ([s], Some(f)) if *s != f => diags.push(
            Diagnostic::new(
                Code::BadStart,
                d.steps[*s].span,
                "the start step must come first",
            )
            .label("start is not the first step")
            .related(d.steps[f].span, "the first step")
            .help("move the start step to the top of the process"),
        ),
        ([_], _) => {}
        ([_, rest @ ..], _) => {
            for s in rest {
                diags.push(
                    Diagnostic::new(
                        Code::BadStart,
                        d.steps[*s].span,
                        "a process has one start step",
                    )
                    .label("another start")
                    .help("to collect more information later, use a `task` or a `wait` step"),
                );
            }
        }
    }
}

impl Draft {
    fn process_span_or_name(&self) -> Span {
        self.name.as_ref().map_or(self.process_span, |n| n.span)
    }
}

fn unknown(code: Code, what: &str, name: &Name, known: &[&str], how: &str) -> Diagnostic {
    let d = Diagnostic::new(code, name.span, format!("unknown {what} `{}`", name.text))
        .label(format!("no such {what}"));
    match did_you_mean(&name.text, known.iter().copied()) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None if known.is_empty() => d.help(how.to_owned()),
        None if how.is_empty() => d.help(format!("known: {}", list(known))),
        None => d.help(format!("known: {}; {how}", list(known))),
    }
}

/// The step a condition names: by its id, or its id with underscores for hyphens.
fn step_named(steps: &HashMap<String, StepIdx>, name: &str) -> Option<StepIdx> {
    steps.get(name).copied().or_else(|| {
        steps
            .iter()
            .find(|(id, _)| expr::cel_name(id) == name)
            .map(|(_, &si)| si)
    })
}

/// The type in conditions of a step's `member` (`count`, `outcome` or a field of its form):
/// `number`, `yes-no` or `text`, and how to say it.
fn value_type(step: &Step, member: &str) -> (&'static str, String) {
    let field = step.form().and_then(|f| f.field(member));
    match (member, field) {
        ("count", _) => (
            "number",
            "a number (how many times the step was completed)".to_owned(),
        ),
        ("outcome", _) | (_, None) => ("text", "text (the id of one of its outcomes)".to_owned()),
        (_, Some(f)) => (
            match f.ty {
                FieldType::Number => "number",
                FieldType::YesNo => "yes-no",
                _ => "text",
            },
            format!("a {} field", f.ty.as_str()),
        ),
    }
}

/// How a step id is written in a condition: as it is, or with underscores for its hyphens
/// when one comes before a digit (`relecture-1` would read as a subtraction).
pub(crate) fn condition_spelling(id: &str) -> String {
    let b = id.as_bytes();
    if b.windows(2).any(|w| w[0] == b'-' && w[1].is_ascii_digit()) {
        expr::cel_name(id)
    } else {
        id.to_owned()
    }
}

fn list(names: &[&str]) -> String {
    const MAX: usize = 12;
    let mut s = names
        .iter()
        .take(MAX)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX {
        s.push_str(&format!(" and {} more", names.len() - MAX));
    }
    s
}

fn resolve_roles(
    d: &Draft,
    steps: &HashMap<String, StepIdx>,
    diags: &mut Diagnostics,
) -> Vec<Role> {
    let mut roles: Vec<Role> = Vec::new();
    unique_ids(
        d.roles.iter().map(|r| (r.id.text.as_str(), r.id.span)),
        "role",
        diags,
    );
    for r in &d.roles {
        // Only the first declaration of an id counts; later ones were reported.
        if roles.iter().any(|x| x.id == r.id.text) {
            continue;
        }
        let source = match &r.from {
            Some(from) => match resolve_field_ref(from, d, steps, diags) {
                Some((step, field)) => {
                    let ty = d.steps[step]
                        .form()
                        .and_then(|f| f.field(&field))
                        .map(|f| f.ty);
                    if ty != Some(FieldType::Email) {
                        diags.push(
                            Diagnostic::new(
                                Code::InvalidValue,
                                from.span,
                                format!("`{}` is not an email field", from.text),
                            )
                            .label("not an email field")
                            .help("a role taken from case data needs a field with type=\"email\""),
                        );
                    }
                    RoleSource::FromField { step, field }
                }
                None => RoleSource::Members(Vec::new()),
            },
            None => {
                if r.members.is_empty() {
                    diags.push(
                        Diagnostic::new(
                            Code::RoleWithoutMembers,
                            r.id.span,
                            format!("role `{}` has no member", r.id.text),
                        )
                        .label("nobody in this role")
                        .help("add `member \"name@example.org\"` in the role's block, or add members at deployment"),
                    );
                }
                RoleSource::Members(r.members.clone())
            }
        };
        roles.push(Role {
            id: r.id.text.clone(),
            span: r.id.span,
            title: r.title.clone(),
            source,
        });
    }
    let known: Vec<&str> = roles.iter().map(|r| r.id.as_str()).collect();
    check_refs(
        &d.role_refs,
        &known,
        Code::UnknownRole,
        "role",
        "declare it with role \"id\" { member \"...\" }",
        diags,
    );
    for role in &roles {
        if !d.role_refs.iter().any(|r| r.text == role.id) {
            diags.push(
                Diagnostic::new(
                    Code::UnusedRole,
                    role.span,
                    format!("role `{}` is never used", role.id),
                )
                .label("unused")
                .help("give it a task or a notification, or remove it"),
            );
        }
    }
    roles
}

/// Reports ids declared twice among `items`; returns the ids, first declarations only.
fn unique_ids<'a>(
    items: impl IntoIterator<Item = (&'a str, Span)>,
    what: &str,
    diags: &mut Diagnostics,
) -> Vec<&'a str> {
    let mut seen: Vec<(&str, Span)> = Vec::new();
    for (id, span) in items {
        match seen.iter().find(|(x, _)| *x == id) {
            Some((_, first)) => diags.push(
                Diagnostic::new(
                    Code::DuplicateId,
                    span,
                    format!("{what} `{id}` is declared twice"),
                )
                .label("again here")
                .related(*first, "first here")
                .help(format!("declare each {what} once")),
            ),
            None => seen.push((id, span)),
        }
    }
    seen.into_iter().map(|(id, _)| id).collect()
}

/// Reports every reference of `refs` that is not among `known`.
fn check_refs(
    refs: &[Name],
    known: &[&str],
    code: Code,
    what: &str,
    how: &str,
    diags: &mut Diagnostics,
) {
    for r in refs {
        if !known.contains(&r.text.as_str()) {
            diags.push(unknown(code, what, r, known, how));
        }
    }
}

fn check_names(d: &Draft, diags: &mut Diagnostics) {
    let providers = unique_ids(
        d.providers.iter().map(|p| (p.id.as_str(), p.span)),
        "provider",
        diags,
    );
    check_refs(
        &d.provider_refs,
        &providers,
        Code::UnknownProvider,
        "provider",
        "declare it with provider \"id\" title=\"...\"",
        diags,
    );
    let mut templates = templates::STANDARD.to_vec();
    templates.extend(unique_ids(
        d.templates.iter().map(|t| (t.id.as_str(), t.span)),
        "template",
        diags,
    ));
    check_refs(
        &d.template_refs,
        &templates,
        Code::UnknownTemplate,
        "template",
        "use a standard template or declare yours with template \"name\"",
        diags,
    );
    unique_ids(
        d.maturity.iter().map(|f| (f.id.as_str(), f.span)),
        "maturity fact",
        diags,
    );
}

/// Resolves `step.field`.
fn resolve_field_ref(
    n: &Name,
    d: &Draft,
    steps: &HashMap<String, StepIdx>,
    diags: &mut Diagnostics,
) -> Option<(StepIdx, String)> {
    let Some((step, field)) = n.text.split_once('.') else {
        diags.push(
            Diagnostic::new(
                Code::UnknownField,
                n.span,
                format!("`{}` does not name a field", n.text),
            )
            .label("expected step.field")
            .help("write the step id, a dot and the field id, e.g. \"demande.email\""),
        );
        return None;
    };
    let step_name = Name {
        text: step.to_owned(),
        span: n.span,
    };
    let Some(&si) = steps.get(step) else {
        let known: Vec<&str> = steps.keys().map(String::as_str).collect();
        diags.push(unknown(
            Code::UnknownStep,
            "step",
            &step_name,
            &sorted(known),
            "check the step id",
        ));
        return None;
    };
    let fields: Vec<&str> = d.steps[si]
        .form()
        .map(|f| f.fields.iter().map(|x| x.id.as_str()).collect())
        .unwrap_or_default();
    if !fields.contains(&field) {
        let field_name = Name {
            text: field.to_owned(),
            span: n.span,
        };
        diags.push(unknown(
            Code::UnknownField,
            &format!("field of `{step}`"),
            &field_name,
            &fields,
            "add the field to the step's form",
        ));
        return None;
    }
    Some((si, field.to_owned()))
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

fn resolve_step(
    n: &Name,
    steps: &HashMap<String, StepIdx>,
    diags: &mut Diagnostics,
) -> Option<StepIdx> {
    match steps.get(&n.text) {
        Some(&i) => Some(i),
        None => {
            if !n.text.is_empty() {
                let known: Vec<&str> = steps.keys().map(String::as_str).collect();
                diags.push(unknown(
                    Code::UnknownStep,
                    "step",
                    n,
                    &sorted(known),
                    "check the step id",
                ));
            }
            None
        }
    }
}

fn build_flow(d: &Draft, steps: &HashMap<String, StepIdx>, diags: &mut Diagnostics) -> Flow {
    // The step after each step in its block, or the join of its branch.
    let mut next: Vec<Option<Target>> = vec![None; d.steps.len()];
    let mut chain = |block: &[StepIdx], join: Option<StepIdx>| {
        for (pos, &s) in block.iter().enumerate() {
            next[s] = block
                .get(pos + 1)
                .map(|&n| Target::Step(n))
                .or(join.map(Target::Join));
        }
    };
    chain(&d.body, None);
    for (i, step) in d.steps.iter().enumerate() {
        if let StepKind::Parallel(p) = &step.kind {
            for b in &p.branches {
                chain(&b.steps, Some(i));
            }
        }
    }
    let mut edges: Vec<Vec<Edge>> = vec![Vec::new(); d.steps.len()];
    // `goto="join"` finishes the current parallel branch: the token goes to the join.
    let jump = |name: &Name,
                scope: Option<crate::model::Scope>,
                diags: &mut Diagnostics|
     -> Option<Target> {
        if name.text == JOIN {
            return match scope {
                Some(s) => Some(Target::Join(s.parallel)),
                None => {
                    diags.push(
                        Diagnostic::new(Code::UnknownStep, name.span, "`join` is only meaningful inside a parallel branch")
                            .label("not in a branch")
                            .help("goto=\"join\" finishes a parallel branch; at the top level, go to an `end` step"),
                    );
                    None
                }
            };
        }
        let t = resolve_step(name, steps, diags)?;
        if matches!(d.steps[t].kind, StepKind::Start(_)) {
            diags.push(
                Diagnostic::new(Code::BadStart, name.span, "no step can go back to the start")
                    .label("jumps to the start")
                    .help("the start is the sponsor's submission; to ask for a new version, use a `wait` step"),
            );
            return None;
        }
        Some(Target::Step(t))
    };
    for (i, step) in d.steps.iter().enumerate() {
        let links = &d.links[i];
        let explicit = links.goto.as_ref().and_then(|g| jump(g, step.scope, diags));
        let after = explicit.or(next[i]);
        let mut falls_off = false;
        let add = |edges: &mut Vec<Edge>,
                   exit: Exit,
                   to: Option<Target>,
                   jumped: bool,
                   falls: &mut bool| match to {
            Some(to) => edges.push(Edge {
                exit,
                to,
                jump: jumped,
            }),
            None => *falls = true,
        };
        match &step.kind {
            StepKind::End(_) => {}
            StepKind::Gate(_) => {
                for (w, goto) in links.when_gotos.iter().enumerate() {
                    if let Some(t) = goto.as_ref().and_then(|g| jump(g, step.scope, diags)) {
                        edges[i].push(Edge {
                            exit: Exit::When(w),
                            to: t,
                            jump: true,
                        });
                    }
                }
                if let Some(t) = links
                    .otherwise
                    .as_ref()
                    .and_then(|g| jump(g, step.scope, diags))
                {
                    edges[i].push(Edge {
                        exit: Exit::Otherwise,
                        to: t,
                        jump: true,
                    });
                }
            }
            StepKind::Parallel(p) => {
                for (b, branch) in p.branches.iter().enumerate() {
                    if let Some(&first) = branch.steps.first() {
                        edges[i].push(Edge {
                            exit: Exit::Branch(b),
                            to: Target::Step(first),
                            jump: false,
                        });
                    }
                }
                add(
                    &mut edges[i],
                    Exit::Next,
                    after,
                    explicit.is_some(),
                    &mut falls_off,
                );
            }
            StepKind::Task(_) | StepKind::Call(_) if !step.outcomes().is_empty() => {
                for (o, goto) in links.outcome_gotos.iter().enumerate() {
                    let t = goto.as_ref().and_then(|g| jump(g, step.scope, diags));
                    let jumped = t.is_some() || explicit.is_some();
                    if goto.is_some() && t.is_none() {
                        continue; // unknown target, already reported
                    }
                    add(
                        &mut edges[i],
                        Exit::Outcome(o),
                        t.or(after),
                        jumped,
                        &mut falls_off,
                    );
                }
            }
            _ => add(
                &mut edges[i],
                Exit::Next,
                after,
                explicit.is_some(),
                &mut falls_off,
            ),
        }
        if let Some(t) = links
            .on_timeout
            .as_ref()
            .and_then(|g| jump(g, step.scope, diags))
        {
            edges[i].push(Edge {
                exit: Exit::Timeout,
                to: t,
                jump: true,
            });
        }
        if falls_off && (links.goto.is_none() || explicit.is_some()) {
            diags.push(
                Diagnostic::new(
                    Code::FallsOffEnd,
                    links.id.as_ref().map_or(step.span, |n| n.span),
                    format!("nothing comes after `{}`", step.id),
                )
                .label("the process would run past its last step here")
                .help("add an `end` step after it, or goto=\"step-id\""),
            );
        }
        if let StepKind::End(_) = step.kind
            && let Some(scope) = step.scope
        {
            diags.push(
                Diagnostic::new(
                    Code::EndInBranch,
                    links.id.as_ref().map_or(step.span, |n| n.span),
                    "a parallel branch cannot end the process",
                )
                .label("end inside a branch")
                .related(
                    d.links[scope.parallel].id.as_ref().map_or(Span::default(), |n| n.span),
                    "the parallel block",
                )
                .help("let the branch finish, and put a gate after the parallel block that goes to the end"),
            );
        }
    }
    Flow { edges }
}

/// Checks the names a condition reads, and records which steps it reads for G0103.
fn check_condition(
    c: &Arc<Condition>,
    reader: Option<StepIdx>,
    d: &Draft,
    steps: &HashMap<String, StepIdx>,
    reads: &mut Vec<Read>,
    diags: &mut Diagnostics,
) {
    for (f, span) in c.functions() {
        if !expr::FUNCTIONS.contains(&f.as_str()) && !expr::is_internal_function(&f) {
            let n = Name {
                text: f.clone(),
                span,
            };
            diags.push(unknown(
                Code::UnknownName,
                "function",
                &n,
                expr::FUNCTIONS,
                "see docs/definition-language.md#conditions",
            ));
        }
    }
    for r in c.references() {
        let root = Name {
            text: r.path[0].clone(),
            span: r.span,
        };
        // A step is read by its id, or by its id with underscores for hyphens: the spelling
        // of an id whose hyphen comes before a digit (`relecture_1`), since `relecture-1`
        // reads as a subtraction.
        let found = step_named(steps, &r.path[0]);
        let Some(si) = found else {
            // `relecture-1.outcome` reads as `relecture - 1.outcome`.
            let minus = steps.keys().find(|id| {
                id.strip_prefix(r.path[0].as_str())
                    .is_some_and(|rest| rest.starts_with('-'))
                    && condition_spelling(id) != **id
            });
            if let Some(id) = minus {
                diags.push(
                    Diagnostic::new(
                        Code::UnknownName,
                        r.span,
                        format!("unknown name `{}`: `{id}` reads as `{}` minus a number here", r.path[0], r.path[0]),
                    )
                    .label("read as a subtraction")
                    .help(format!(
                        "in conditions, write step `{id}` as `{}` (underscores for the hyphens of an id with a hyphen before a digit)",
                        condition_spelling(id)
                    )),
                );
                continue;
            }
            let spellings: Vec<String> = steps.keys().map(|id| condition_spelling(id)).collect();
            let known: Vec<&str> = spellings.iter().map(String::as_str).collect();
            diags.push(unknown(
                Code::UnknownName,
                "name",
                &root,
                &sorted(known),
                "a condition reads steps: step.outcome, step.count or step.field",
            ));
            continue;
        };
        let step = &d.steps[si];
        let Some(member) = r.path.get(1) else {
            diags.push(
                Diagnostic::new(
                    Code::UnknownName,
                    r.span,
                    format!("`{}` is a step, not a value", step.id),
                )
                .label("a step")
                .help(format!(
                    "read one of its values: {}.outcome, {}.count or {}.<field>",
                    step.id, step.id, step.id
                )),
            );
            continue;
        };
        let mut members: Vec<&str> = vec!["count"];
        if !step.outcomes().is_empty() {
            members.push("outcome");
        }
        if let Some(f) = step.form() {
            members.extend(f.fields.iter().map(|x| x.id.as_str()));
        }
        if !members.contains(&member.as_str()) {
            let mut diag = Diagnostic::new(
                Code::UnknownField,
                r.span,
                format!("step `{}` has no field `{member}`", step.id),
            )
            .label("no such field")
            .help(match did_you_mean(member, members.iter().copied()) {
                Some(s) => format!("did you mean `{}.{s}`?", step.id),
                None => format!("`{}` has: {}", step.id, list(&members)),
            });
            if member == "outcome" {
                diag = diag.help(format!(
                    "`{}` is a {} step with no outcomes; only tasks and calls with `outcome` nodes have one",
                    step.id,
                    step.kind_name()
                ));
            }
            diags.push(diag);
            continue;
        }
        reads.push(Read {
            reader,
            step: si,
            span: r.span,
            guarded: r.guarded,
            count: member == "count",
            optional_field: step
                .form()
                .and_then(|f| f.field(member))
                .is_some_and(|f| !f.required && f.ty != FieldType::YesNo),
        });
        if r.path.len() > 2 {
            diags.push(
                Diagnostic::new(
                    Code::UnknownField,
                    r.span,
                    format!("`{}.{member}` has no parts", step.id),
                )
                .label("too many dots")
                .help(format!("read `{}.{member}` itself", step.id)),
            );
            continue;
        }
        // The type of what is read, and the literals it is compared with.
        let field = step.form().and_then(|f| f.field(member));
        let (ty, what) = value_type(step, member);
        if let Some((other, span)) = &r.compared_with_name
            && let Some(o) = step_named(steps, &other[0]).map(|i| &d.steps[i])
            && let Some(m) = other.get(1)
            && (m == "count" || m == "outcome" || o.form().and_then(|f| f.field(m)).is_some())
        {
            let (oty, owhat) = value_type(o, m);
            if oty != ty {
                diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        Span::new(r.span.offset.min(span.offset), r.span.end().max(span.end()) - r.span.offset.min(span.offset)),
                        format!(
                            "`{}.{member}` is {what} and `{}.{m}` is {owhat}: compared, they never agree",
                            condition_spelling(&step.id),
                            condition_spelling(&o.id)
                        ),
                    )
                    .label("values of two types")
                    .help("compare values of one type: numbers with numbers, text with text, yes-no with yes-no"),
                );
            }
        }
        let mismatch = |given: &str, span: Span| {
            Diagnostic::new(
                Code::InvalidValue,
                span,
                format!("`{}.{member}` is {what}, compared here with {given}", condition_spelling(&step.id)),
            )
            .label(match given {
                "a string" => "a string",
                "a number" => "a number",
                _ => "a yes-no value",
            })
            .help(match ty {
                "number" => "compare numbers with numbers, e.g. demande.budget > 10000 (no quotes)",
                "yes-no" => "yes-no fields are booleans: write `step.field` or `!step.field`",
                _ if field.is_some_and(|f| f.ty == FieldType::Date) => {
                    "dates are text: compare them with a date in quotes, e.g. demande.debut >= '2027-01-01'"
                }
                _ => "write the value in quotes, e.g. comite.outcome == 'favorable'",
            })
        };
        for (kind, span) in &r.compared_with_kinds {
            if *kind != ty {
                let given = if *kind == "number" {
                    "a number"
                } else {
                    "a yes-no value"
                };
                diags.push(mismatch(given, *span));
            }
        }
        if ty != "text" {
            for (_, span) in &r.compared_with {
                diags.push(mismatch("a string", *span));
            }
            continue;
        }
        if member == "outcome" {
            let outcomes: Vec<&str> = step.outcomes().iter().map(|o| o.id.as_str()).collect();
            for (lit, span) in &r.compared_with {
                if !outcomes.contains(&lit.as_str()) {
                    let n = Name {
                        text: lit.clone(),
                        span: *span,
                    };
                    diags.push(unknown(
                        Code::UnknownOutcome,
                        &format!("outcome of `{}`", step.id),
                        &n,
                        &outcomes,
                        "",
                    ));
                }
            }
        } else if let Some(field) = field
            && field.ty == FieldType::Choice
        {
            for (lit, span) in &r.compared_with {
                if !field.options.iter().any(|o| &o.value == lit) {
                    let opts: Vec<&str> = field.options.iter().map(|o| o.value.as_str()).collect();
                    let n = Name {
                        text: lit.clone(),
                        span: *span,
                    };
                    diags.push(unknown(
                        Code::InvalidValue,
                        &format!("option of `{}.{}`", step.id, field.id),
                        &n,
                        &opts,
                        "",
                    ));
                }
            }
        }
    }
}

fn check_timing(step: &Step, i: StepIdx, d: &Draft, diags: &mut Diagnostics) {
    let StepKind::Task(t) = &step.kind else {
        return;
    };
    let at = d.links[i].id.as_ref().map_or(step.span, |n| n.span);
    match (&t.due, &t.remind) {
        (None, _) => diags.push(
            Diagnostic::new(Code::NoDeadline, at, format!("task `{}` has no deadline", step.id))
                .label("no `due`")
                .help("add due=\"P15D\": deadlines drive reminders and the deadline-breach indicator"),
        ),
        (Some(due), Some(remind)) if crate::duration::longer(remind, due) => diags.push(
            Diagnostic::new(
                Code::ReminderAfterDeadline,
                d.links[i].timing_spans.get(1).copied().unwrap_or(at),
                format!("the reminder ({remind} before the deadline) is not shorter than the deadline ({due})"),
            )
            .label("reminder too early")
            .help("remind is counted back from the deadline: make it shorter than due"),
        ),
        _ => {}
    }
    if t.remind.is_some() && t.due.is_none() {
        diags.push(
            Diagnostic::new(
                Code::ReminderAfterDeadline,
                at,
                "a reminder without a deadline is never sent",
            )
            .label("remind without due")
            .help("add due=\"...\"; remind is counted back from it"),
        );
    }
    if let (Some(due), Some(esc)) = (&t.due, &t.escalation)
        && crate::duration::longer(due, &esc.after)
        && due != &esc.after
    {
        diags.push(
            Diagnostic::new(
                Code::ReminderAfterDeadline,
                d.links[i].timing_spans.last().copied().unwrap_or(at),
                format!(
                    "the task escalates ({}) before its deadline ({due})",
                    esc.after
                ),
            )
            .label("escalates before the deadline")
            .help("escalation is counted from the task's creation: make `after` at least `due`"),
        );
    }
}

const KPI_KINDS: &[&str] = &["duration", "count", "ratio", "sum", "mean"];

fn resolve_kpis(
    d: &Draft,
    steps: &HashMap<String, StepIdx>,
    _src: &str,
    reads: &mut Vec<Read>,
    diags: &mut Diagnostics,
) -> Vec<Kpi> {
    let mut out: Vec<Kpi> = Vec::new();
    let count_ids: Vec<&str> = d
        .kpis
        .iter()
        .filter(|k| k.kind.as_ref().is_some_and(|n| n.text == "count"))
        .map(|k| k.id.text.as_str())
        .collect();
    unique_ids(
        d.kpis.iter().map(|k| (k.id.text.as_str(), k.id.span)),
        "indicator",
        diags,
    );
    for (n, k) in d.kpis.iter().enumerate() {
        if d.kpis[..n].iter().any(|x| x.id.text == k.id.text) {
            continue;
        }
        let Some(kind) = &k.kind else { continue };
        let Some(kind_name) = crate::schema::pick(
            kind,
            "indicator kind",
            &[
                ("duration", 0),
                ("count", 1),
                ("ratio", 2),
                ("sum", 3),
                ("mean", 4),
            ],
            diags,
        ) else {
            continue;
        };
        let kind_name = KPI_KINDS[kind_name];
        let p = &k.props;
        let allowed: &[&str] = match kind_name {
            "duration" => &["from", "to"],
            "count" => &["step", "each", "when", "result"],
            "ratio" => &["of", "per"],
            _ => &["field"],
        };
        let given: [(&str, Option<Span>); 9] = [
            ("from", p.from.as_ref().map(|n| n.span)),
            ("to", p.to.as_ref().map(|n| n.span)),
            ("step", p.step.as_ref().map(|n| n.span)),
            ("each", p.each.then_some(k.id.span)),
            ("when", p.when.as_ref().map(|c| c.span)),
            ("result", p.result.map(|_| k.id.span)),
            ("of", p.of.as_ref().map(|n| n.span)),
            ("per", p.per.as_ref().map(|n| n.span)),
            ("field", p.field.as_ref().map(|n| n.span)),
        ];
        for (name, span) in given {
            if let Some(span) = span
                && !allowed.contains(&name)
            {
                diags.push(
                    Diagnostic::new(
                        Code::UnknownProperty,
                        span,
                        format!("a {kind_name} indicator has no `{name}`"),
                    )
                    .label("not used by this kind")
                    .help(format!(
                        "a {kind_name} indicator takes: {}",
                        allowed.join(", ")
                    )),
                );
            }
        }
        let need = |n: &Option<Name>, key: &str, example: &str, diags: &mut Diagnostics| {
            if n.is_none() {
                diags.push(
                    Diagnostic::new(
                        Code::Missing,
                        k.id.span,
                        format!("a {kind_name} indicator needs `{key}`"),
                    )
                    .label(format!("`{key}` missing"))
                    .help(format!("add {key}={example}")),
                );
            }
        };
        let step_of = |n: &Option<Name>, diags: &mut Diagnostics| {
            n.as_ref().and_then(|n| resolve_step(n, steps, diags))
        };
        let number_field = |n: &Option<Name>, diags: &mut Diagnostics| {
            let n = n.as_ref()?;
            let (s, f) = resolve_field_ref(n, d, steps, diags)?;
            let ty = d.steps[s].form().and_then(|x| x.field(&f)).map(|x| x.ty);
            if ty != Some(FieldType::Number) {
                diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        n.span,
                        format!("`{}` is not a number field", n.text),
                    )
                    .label("not a number")
                    .help("sums and means are over fields with type=\"number\""),
                );
                return None;
            }
            Some((s, f))
        };
        let kpi_kind = match kind_name {
            "duration" => {
                need(&p.from, "from", "\"demande\"", diags);
                need(&p.to, "to", "\"signature\"", diags);
                match (step_of(&p.from, diags), step_of(&p.to, diags)) {
                    (Some(from), Some(to)) => Some(KpiKind::Duration { from, to }),
                    _ => None,
                }
            }
            "count" => {
                let n = usize::from(p.step.is_some())
                    + usize::from(p.when.is_some())
                    + usize::from(p.result.is_some());
                if n != 1 {
                    diags.push(
                        Diagnostic::new(
                            Code::Missing,
                            k.id.span,
                            "a count indicator needs exactly one of `step`, `when` or `result`",
                        )
                        .label(if n == 0 {
                            "nothing to count"
                        } else {
                            "several things to count"
                        })
                        .help(
                            "e.g. step=\"signature\", when=\"suivi.litige\" or result=\"accepted\"",
                        ),
                    );
                }
                if let Some(c) = &p.when {
                    check_condition(c, None, d, steps, reads, diags);
                }
                let step = step_of(&p.step, diags);
                if p.each && p.step.is_none() {
                    diags.push(
                        Diagnostic::new(
                            Code::InvalidValue,
                            k.id.span,
                            "`each` counts visits of a step, and there is no `step`",
                        )
                        .label("each without step")
                        .help("add step=\"...\" or remove each"),
                    );
                }
                (n == 1 && (p.step.is_none() || step.is_some())).then(|| KpiKind::Count {
                    step,
                    each: p.each,
                    when: p.when.clone(),
                    result: p.result,
                })
            }
            "ratio" => {
                need(&p.of, "of", "\"revisions\"", diags);
                need(&p.per, "per", "\"contrats\"", diags);
                let mut ok = true;
                for n in [&p.of, &p.per].into_iter().flatten() {
                    if !count_ids.contains(&n.text.as_str()) {
                        ok = false;
                        diags.push(unknown(
                            Code::UnknownKpi,
                            "count indicator",
                            n,
                            &count_ids,
                            "a ratio divides two count indicators of this process",
                        ));
                    }
                }
                match (&p.of, &p.per) {
                    (Some(of), Some(per)) if ok => Some(KpiKind::Ratio {
                        of: of.text.clone(),
                        per: per.text.clone(),
                    }),
                    _ => None,
                }
            }
            _ => {
                need(&p.field, "field", "\"contrat.montant\"", diags);
                number_field(&p.field, diags).map(|(step, field)| {
                    if kind_name == "sum" {
                        KpiKind::Sum { step, field }
                    } else {
                        KpiKind::Mean { step, field }
                    }
                })
            }
        };
        let target = k
            .target
            .as_ref()
            .and_then(|t| kpi_target(k, kind_name, t, diags));
        if let Some(kind) = kpi_kind {
            out.push(Kpi {
                id: k.id.text.clone(),
                span: k.id.span,
                title: k.title.clone(),
                block: k.block,
                kind,
                target,
            });
        }
    }
    out
}

fn kpi_target(k: &KpiDraft, kind: &str, t: &Name, diags: &mut Diagnostics) -> Option<KpiTarget> {
    let value = if kind == "duration" {
        TargetValue::Duration(crate::schema::parse_duration(t, diags)?)
    } else {
        match t.text.parse::<f64>() {
            Ok(v) if v.is_finite() => TargetValue::Number(v),
            _ => {
                diags.push(
                    Diagnostic::new(
                        Code::WrongType,
                        t.span,
                        format!("the target of a {kind} indicator is a number"),
                    )
                    .label("not a number")
                    .help("e.g. target=0.2 or target=50"),
                );
                return None;
            }
        }
    };
    let lower_is_better = match (k.better, kind) {
        (Some(b), _) => b,
        (None, "duration") => true,
        (None, _) => {
            diags.push(
                Diagnostic::new(Code::Missing, t.span, "say whether lower or higher is better")
                    .label("target without direction")
                    .help("add better=\"lower\" (e.g. a revision rate) or better=\"higher\" (e.g. a number of contracts)"),
            );
            return None;
        }
    };
    Some(KpiTarget {
        value,
        lower_is_better,
    })
}
