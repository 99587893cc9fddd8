//! First stage after KDL parsing: walk the document and build the typed pieces of a process,
//! with every reference to another part (a role, a step, a template) kept as a [`Name`] with
//! its span. The next stage (`resolve`) checks those references and compiles the flow.

use std::sync::Arc;

use kdl::{KdlDocument, KdlNode};

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Span};

use crate::expr::{self, Condition};
use crate::limits;
use crate::model::{
    About, BuildingBlock, Call, ChoiceOption, End, EndResult, Escalation, Field, FieldType, Form,
    Gate, Language, MaturityFact, Notify, Outcome, Provider, Scope, Start, Step, StepIdx, StepKind,
    Task, TemplateDecl, Wait,
};
use crate::schema::{
    Name, Props, check_id, entry_string, name_span, no_children, node_name, node_span,
    parse_duration, unknown_child,
};

/// Everything read from the file, references still unresolved.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    pub name: Option<Name>,
    pub version: u32,
    pub title: Option<String>,
    pub description: Option<String>,
    pub language: Option<Language>,
    pub process_span: Span,
    pub roles: Vec<RoleDraft>,
    pub providers: Vec<Provider>,
    pub templates: Vec<TemplateDecl>,
    pub steps: Vec<Step>,
    /// Per step, the jumps and names it refers to.
    pub links: Vec<Links>,
    pub body: Vec<StepIdx>,
    pub kpis: Vec<KpiDraft>,
    pub maturity: Vec<MaturityFact>,
    /// Role names used by steps, with their spans (`role=`, `to=`, `escalate to=`, `from=`).
    pub role_refs: Vec<Name>,
    pub template_refs: Vec<Name>,
    pub provider_refs: Vec<Name>,
    pub translations: Vec<crate::translate::TranslationDraft>,
}

#[derive(Debug)]
pub(crate) struct RoleDraft {
    pub id: Name,
    pub title: Option<String>,
    pub members: Vec<String>,
    /// `from="step.field"`.
    pub from: Option<Name>,
}

/// The jumps a step writes.
#[derive(Debug, Default)]
pub(crate) struct Links {
    pub id: Option<Name>,
    pub goto: Option<Name>,
    pub outcome_gotos: Vec<Option<Name>>,
    pub when_gotos: Vec<Option<Name>>,
    pub otherwise: Option<Name>,
    /// Span of the gate node, where a missing `otherwise` is reported.
    pub on_timeout: Option<Name>,
    pub timeout_span: Option<Span>,
    /// Spans of the `due`, `remind` and escalation `after` values.
    pub timing_spans: Vec<Span>,
}

#[derive(Debug)]
pub(crate) struct KpiDraft {
    pub id: Name,
    pub title: Option<String>,
    pub block: BuildingBlock,
    pub kind: Option<Name>,
    pub props: KpiProps,
    pub target: Option<Name>,
    pub better: Option<bool>,
}

#[derive(Debug, Default)]
pub(crate) struct KpiProps {
    pub from: Option<Name>,
    pub to: Option<Name>,
    pub step: Option<Name>,
    pub each: bool,
    pub when: Option<Arc<Condition>>,
    pub result: Option<EndResult>,
    pub of: Option<Name>,
    pub per: Option<Name>,
    pub field: Option<Name>,
}

const PROCESS_CHILDREN: &[&str] = &[
    "title",
    "description",
    "language",
    "role",
    "provider",
    "template",
    "kpi",
    "maturity",
    "translation",
    "start",
    "task",
    "notify",
    "call",
    "wait",
    "gate",
    "parallel",
    "end",
];

const STEP_NODES: &[&str] = &[
    "start", "task", "notify", "call", "wait", "gate", "parallel", "end",
];

pub(crate) fn lower(doc: &KdlDocument, src: &str, diags: &mut Diagnostics) -> Draft {
    let mut d = Draft {
        version: 1,
        ..Draft::default()
    };
    let nodes = doc.nodes();
    let Some(process) = nodes.first() else {
        diags.push(
            Diagnostic::new(
                Code::Missing,
                Span::new(0, src.len().min(1)),
                "the file is empty",
            )
            .label("no process here")
            .help("a definition is one `process \"name\" version=1 { ... }` node"),
        );
        return d;
    };
    for extra in nodes.iter().skip(1) {
        diags.push(
            Diagnostic::new(
                Code::DuplicateNode,
                name_span(extra),
                "a definition file holds one process",
            )
            .label("second top-level node")
            .help("put each process in its own file, and everything else inside the process block"),
        );
    }
    if node_name(process) != "process" {
        diags.push(
            Diagnostic::new(
                Code::UnknownNode,
                name_span(process),
                format!("expected `process`, found `{}`", node_name(process)),
            )
            .label("not a process")
            .help("a definition starts with: process \"my-desk\" version=1 { ... }"),
        );
        return d;
    }
    d.process_span = node_span(process);
    let props = Props::read(process, &["version"], diags);
    props.at_most_args(1, "one argument, the process name", diags);
    if let Some(name) = props.arg_string("a name", diags)
        && check_id(&name, "process", diags)
    {
        d.name = Some(name);
    }
    d.version = props.integer("version", 1_000_000, diags).unwrap_or(1);

    let Some(children) = process.children() else {
        diags.push(
            Diagnostic::new(
                Code::EmptyBlock,
                name_span(process),
                "the process has no steps",
            )
            .label("empty process")
            .help("add a block with a start step, tasks and an end"),
        );
        return d;
    };
    let mut lw = Lowerer {
        d: &mut d,
        diags,
        src,
    };
    let mut seen_single: Vec<(&str, Span)> = Vec::new();
    for node in children.nodes() {
        let name = node_name(node);
        if matches!(name, "title" | "description" | "language") {
            if let Some((_, first)) = seen_single.iter().find(|(n, _)| *n == name) {
                lw.diags.push(
                    Diagnostic::new(
                        Code::DuplicateNode,
                        name_span(node),
                        format!("`{name}` is given twice"),
                    )
                    .label("again here")
                    .related(*first, "first here")
                    .help("keep one"),
                );
                continue;
            }
            seen_single.push((name, name_span(node)));
        }
        match name {
            "title" => lw.d.title = lw.single_string(node, "a title"),
            "description" => lw.d.description = lw.single_string(node, "a description"),
            "language" => {
                if let Some(n) = lw.single_name(node, "a language") {
                    lw.d.language = crate::schema::pick(
                        &n,
                        "language",
                        &[("fr", Language::Fr), ("en", Language::En)],
                        lw.diags,
                    );
                }
            }
            "role" => lw.role(node),
            "provider" => lw.provider(node),
            "template" => lw.template(node),
            "kpi" => lw.kpi(node),
            "maturity" => lw.maturity(node),
            "translation" => {
                let t = crate::translate::read(node, lw.diags);
                lw.d.translations.push(t);
            }
            n if STEP_NODES.contains(&n) => {
                if let Some(i) = lw.step(node, None) {
                    lw.d.body.push(i);
                }
            }
            _ => unknown_child(node, "a process", PROCESS_CHILDREN, lw.diags),
        }
    }
    d
}

struct Lowerer<'a> {
    d: &'a mut Draft,
    diags: &'a mut Diagnostics,
    src: &'a str,
}

impl Lowerer<'_> {
    fn single_name(&mut self, node: &KdlNode, what: &str) -> Option<Name> {
        let props = Props::read(node, &[], self.diags);
        props.at_most_args(1, "one argument", self.diags);
        no_children(node, self.diags);
        props.arg_string(what, self.diags)
    }

    fn single_string(&mut self, node: &KdlNode, what: &str) -> Option<String> {
        self.single_name(node, what).map(|n| n.text)
    }

    fn id(&mut self, props: &Props<'_>, what: &str) -> Option<Name> {
        let name = props.arg_string(&format!("an id (the {what}'s name)"), self.diags)?;
        check_id(&name, what, self.diags).then_some(name)
    }

    fn role(&mut self, node: &KdlNode) {
        let props = Props::read(node, &["title", "from"], self.diags);
        props.at_most_args(1, "one argument, the role id", self.diags);
        let Some(id) = self.id(&props, "role") else {
            return;
        };
        let title = props.string("title", self.diags).map(|n| n.text);
        let from = props.string("from", self.diags);
        let mut members = Vec::new();
        if let Some(children) = node.children() {
            for child in children.nodes() {
                if node_name(child) != "member" {
                    unknown_child(child, "a role", &["member"], self.diags);
                    continue;
                }
                let p = Props::read(child, &[], self.diags);
                no_children(child, self.diags);
                if p.args.is_empty() {
                    self.diags.push(
                        Diagnostic::new(
                            Code::Missing,
                            name_span(child),
                            "`member` needs an email address",
                        )
                        .label("no address")
                        .help("write member \"someone@example.org\""),
                    );
                }
                for arg in &p.args {
                    if let Some(email) = entry_string(arg, "member", self.diags) {
                        if !looks_like_email(&email.text) {
                            self.diags.push(
                                Diagnostic::new(
                                    Code::InvalidValue,
                                    email.span,
                                    format!("`{}` is not an email address", email.text),
                                )
                                .label("not an email address")
                                .help(
                                    "members are email addresses, e.g. \"juriste@hopital.example\"",
                                ),
                            );
                        }
                        members.push(email.text);
                    }
                }
            }
        }
        if let Some(f) = &from
            && !members.is_empty()
        {
            self.diags.push(
                Diagnostic::new(
                    Code::InvalidValue,
                    f.span,
                    "a role is either taken from case data or has members, not both",
                )
                .label("from case data")
                .help("remove `from`, or the `member` nodes"),
            );
        }
        self.d.roles.push(RoleDraft {
            id,
            title,
            members,
            from,
        });
    }

    fn provider(&mut self, node: &KdlNode) {
        let props = Props::read(node, &["title"], self.diags);
        props.at_most_args(1, "one argument, the provider id", self.diags);
        no_children(node, self.diags);
        if let Some(id) = self.id(&props, "provider") {
            let title = props.string("title", self.diags).map(|n| n.text);
            self.d.providers.push(Provider {
                id: id.text,
                span: id.span,
                title,
            });
        }
    }

    fn template(&mut self, node: &KdlNode) {
        let props = Props::read(node, &[], self.diags);
        props.at_most_args(1, "one argument, the template name", self.diags);
        no_children(node, self.diags);
        if let Some(id) = self.id(&props, "template") {
            self.d.templates.push(TemplateDecl {
                id: id.text,
                span: id.span,
            });
        }
    }

    fn maturity(&mut self, node: &KdlNode) {
        let props = Props::read(node, &[], self.diags);
        props.at_most_args(0, "no argument", self.diags);
        let Some(children) = node.children() else {
            return;
        };
        for child in children.nodes() {
            if node_name(child) != "fact" {
                unknown_child(child, "maturity", &["fact"], self.diags);
                continue;
            }
            let p = Props::read(child, &["block", "present", "title"], self.diags);
            p.at_most_args(1, "one argument, the fact id", self.diags);
            no_children(child, self.diags);
            let Some(id) = self.id(&p, "maturity fact") else {
                continue;
            };
            if p.entry("block").is_none() || p.entry("present").is_none() {
                self.diags.push(
                    Diagnostic::new(
                        Code::Missing,
                        name_span(child),
                        "a maturity fact needs `block` and `present`",
                    )
                    .label("incomplete fact")
                    .help("e.g. fact \"catalogue\" block=\"catalogue\" present=#true"),
                );
            }
            let block = p
                .choice("block", &BuildingBlock::ALL, self.diags)
                .unwrap_or(BuildingBlock::General);
            let present = p.bool("present", self.diags).unwrap_or(false);
            let title = p.string("title", self.diags).map(|n| n.text);
            self.d.maturity.push(MaturityFact {
                id: id.text,
                span: id.span,
                block,
                present,
                title,
            });
        }
    }

    fn kpi(&mut self, node: &KdlNode) {
        let p = Props::read(
            node,
            &[
                "title", "block", "from", "to", "step", "each", "when", "result", "of", "per",
                "field", "target", "better",
            ],
            self.diags,
        );
        p.at_most_args(2, "two arguments, the id and the kind", self.diags);
        no_children(node, self.diags);
        let Some(id) = self.id(&p, "indicator") else {
            return;
        };
        let kind = match p.args.get(1) {
            Some(e) => entry_string(e, "kind", self.diags),
            None => {
                self.diags.push(
                    Diagnostic::new(
                        Code::Missing,
                        id.span,
                        format!("indicator `{}` needs a kind", id.text),
                    )
                    .label("kind missing")
                    .help("write the kind after the id: duration, count, ratio, sum or mean"),
                );
                None
            }
        };
        let when = p
            .string("when", self.diags)
            .and_then(|n| self.condition(&n));
        let result = p.choice("result", &EndResult::ALL, self.diags);
        let better = p.choice("better", &[("lower", true), ("higher", false)], self.diags);
        self.d.kpis.push(KpiDraft {
            title: p.string("title", self.diags).map(|n| n.text),
            block: p
                .choice("block", &BuildingBlock::ALL, self.diags)
                .unwrap_or(BuildingBlock::General),
            kind,
            props: KpiProps {
                from: p.string("from", self.diags),
                to: p.string("to", self.diags),
                step: p.string("step", self.diags),
                each: p.bool("each", self.diags).unwrap_or(false),
                when,
                result,
                of: p.string("of", self.diags),
                per: p.string("per", self.diags),
                field: p.string("field", self.diags),
            },
            target: p.entry("target").and_then(|e| match e.value() {
                kdl::KdlValue::String(s) => Some(Name {
                    text: s.clone(),
                    span: e.span().into(),
                }),
                #[allow(clippy::cast_precision_loss)]
                kdl::KdlValue::Integer(i) => Some(Name {
                    text: (*i as f64).to_string(),
                    span: e.span().into(),
                }),
                kdl::KdlValue::Float(f) => Some(Name {
                    text: f.to_string(),
                    span: e.span().into(),
                }),
                _ => {
                    self.diags.push(
                        Diagnostic::new(
                            Code::WrongType,
                            e.span().into(),
                            "`target` must be a number or a duration",
                        )
                        .label("expected a number or a duration")
                        .help("e.g. target=\"P90D\" for a duration, target=0.2 for a ratio"),
                    );
                    None
                }
            }),
            better,
            id,
        });
    }

    /// Compiles a condition, reporting parse errors at their place in the file.
    pub(crate) fn condition(&mut self, n: &Name) -> Option<Arc<Condition>> {
        condition(n, self.src, self.diags)
    }

    fn new_step(
        &mut self,
        node: &KdlNode,
        id: Option<Name>,
        kind: StepKind,
        scope: Option<Scope>,
    ) -> StepIdx {
        let idx = self.d.steps.len();
        self.d.steps.push(Step {
            id: id
                .as_ref()
                .map_or_else(|| format!("#{idx}"), |n| n.text.clone()),
            span: node_span(node),
            title: None,
            description: None,
            kind,
            scope,
            about: None,
        });
        self.d.links.push(Links {
            id,
            ..Links::default()
        });
        idx
    }

    /// Reads one step node (and its nested steps); returns its index.
    fn step(&mut self, node: &KdlNode, scope: Option<Scope>) -> Option<StepIdx> {
        let kind = node_name(node);
        let allowed: &[&str] = match kind {
            "start" => &["title"],
            "task" => &[
                "title",
                "role",
                "due",
                "remind",
                "timeout",
                "on-timeout",
                "goto",
                "about",
            ],
            "notify" => &["title", "to", "template", "goto", "about"],
            "call" => &[
                "title",
                "provider",
                "timeout",
                "on-timeout",
                "goto",
                "about",
            ],
            "wait" => &[
                "title",
                "event",
                "from",
                "timeout",
                "on-timeout",
                "keep-early",
                "goto",
                "about",
            ],
            "gate" => &["title"],
            "parallel" => &["title", "goto", "complete-when"],
            "end" => &["title", "result"],
            _ => &[],
        };
        let p = Props::read(node, allowed, self.diags);
        p.at_most_args(1, "one argument, the step id", self.diags);
        let mut id = self.id(&p, &format!("{kind} step"));
        if let Some(n) = id.as_ref().filter(|n| n.text == crate::model::JOIN) {
            self.diags.push(
                Diagnostic::new(Code::InvalidId, n.span, "`join` is a reserved word")
                    .label("reserved")
                    .help("goto=\"join\" finishes a parallel branch; name the step otherwise"),
            );
            id = None;
        }
        // A placeholder kind; replaced below once the children are read.
        let idx = self.new_step(
            node,
            id,
            StepKind::End(End {
                result: EndResult::Rejected,
            }),
            scope,
        );
        self.d.steps[idx].title = p.string("title", self.diags).map(|n| n.text);
        self.d.steps[idx].about = p
            .string("about", self.diags)
            .and_then(|n| crate::schema::pick(&n, "value of `about`", &About::ALL, self.diags));
        self.d.links[idx].goto = p.string("goto", self.diags);

        let mut form = Form::default();
        let mut outcomes = Vec::new();
        let mut conditions = Vec::new();
        let mut escalation = None;
        let mut branches = Vec::new();
        let children_allowed: &[&str] = match kind {
            "start" => &["form", "description"],
            "task" => &["form", "outcome", "escalate", "description"],
            "call" => &["form", "outcome", "description"],
            "wait" => &["form", "description"],
            "gate" => &["when", "otherwise"],
            "parallel" => &[
                "branch", "task", "notify", "call", "wait", "gate", "parallel", "end", "start",
            ],
            _ => &[],
        };
        let mut seen_form = None;
        if let Some(children) = node.children() {
            for child in children.nodes() {
                let cname = node_name(child);
                if !children_allowed.contains(&cname) {
                    if children_allowed.is_empty() {
                        no_children(node, self.diags);
                        break;
                    }
                    unknown_child(
                        child,
                        &format!("a {kind} step"),
                        children_allowed,
                        self.diags,
                    );
                    continue;
                }
                match cname {
                    "form" => {
                        if let Some(first) = seen_form {
                            self.diags.push(
                                Diagnostic::new(
                                    Code::DuplicateNode,
                                    name_span(child),
                                    "a step has one form",
                                )
                                .label("second form")
                                .related(first, "first form")
                                .help("put all fields in one form block"),
                            );
                            continue;
                        }
                        seen_form = Some(name_span(child));
                        form = self.form(child);
                    }
                    "description" => {
                        self.d.steps[idx].description = self.single_string(child, "a description");
                    }
                    "outcome" => self.outcome(child, idx, &mut outcomes),
                    "escalate" => {
                        let ep = Props::read(child, &["to", "after"], self.diags);
                        ep.at_most_args(0, "no argument", self.diags);
                        no_children(child, self.diags);
                        let to = ep.required_string("to", "\"direction\"", self.diags);
                        let after = ep.required_string("after", "\"P20D\"", self.diags);
                        let after_d = after.as_ref().and_then(|a| parse_duration(a, self.diags));
                        if let Some(a) = &after {
                            self.d.links[idx].timing_spans.push(a.span);
                        }
                        if let (Some(to), Some(after)) = (to, after_d) {
                            self.d.role_refs.push(to.clone());
                            escalation = Some(Escalation { after, to: to.text });
                        }
                    }
                    "when" => {
                        let wp = Props::read(child, &["goto"], self.diags);
                        wp.at_most_args(1, "one argument, the condition", self.diags);
                        no_children(child, self.diags);
                        let cond = wp.arg_string("a condition", self.diags);
                        let goto = wp.required_string("goto", "\"step-id\"", self.diags);
                        self.d.links[idx].when_gotos.push(goto);
                        conditions.push(cond.and_then(|c| self.condition(&c)));
                    }
                    "otherwise" => {
                        let op = Props::read(child, &["goto"], self.diags);
                        op.at_most_args(0, "no argument", self.diags);
                        no_children(child, self.diags);
                        if self.d.links[idx].otherwise.is_some() {
                            self.diags.push(
                                Diagnostic::new(
                                    Code::DuplicateNode,
                                    name_span(child),
                                    "a gate has one `otherwise`",
                                )
                                .label("second default")
                                .help("keep one `otherwise`"),
                            );
                            continue;
                        }
                        self.d.links[idx].otherwise =
                            op.required_string("goto", "\"step-id\"", self.diags);
                        if self.d.links[idx].otherwise.is_none() {
                            // Still counts as a default, so no second error about a missing one.
                            self.d.links[idx].otherwise = Some(Name {
                                text: String::new(),
                                span: name_span(child),
                            });
                        }
                    }
                    "branch" => {
                        let bp = Props::read(child, &["title"], self.diags);
                        bp.at_most_args(1, "one argument, the branch name", self.diags);
                        let name = bp.arg_string("a name", self.diags);
                        let b = branches.len();
                        let mut steps = Vec::new();
                        if let Some(bc) = child.children() {
                            for s in bc.nodes() {
                                if STEP_NODES.contains(&node_name(s)) {
                                    if let Some(si) = self.step(
                                        s,
                                        Some(Scope {
                                            parallel: idx,
                                            branch: b,
                                        }),
                                    ) {
                                        steps.push(si);
                                    }
                                } else {
                                    unknown_child(s, "a branch", STEP_NODES, self.diags);
                                }
                            }
                        }
                        if steps.is_empty() {
                            self.diags.push(
                                Diagnostic::new(
                                    Code::EmptyBlock,
                                    name_span(child),
                                    "this branch has no steps",
                                )
                                .label("empty branch")
                                .help("add steps to the branch, or remove it"),
                            );
                        }
                        branches.push(crate::model::Branch {
                            name: name.map_or_else(|| format!("{}", b + 1), |n| n.text),
                            span: name_span(child),
                            steps,
                        });
                    }
                    _ => {
                        // A step directly in a parallel block is a branch of its own.
                        let b = branches.len();
                        if let Some(si) = self.step(
                            child,
                            Some(Scope {
                                parallel: idx,
                                branch: b,
                            }),
                        ) {
                            branches.push(crate::model::Branch {
                                name: self.d.steps[si].id.clone(),
                                span: name_span(child),
                                steps: vec![si],
                            });
                        }
                    }
                }
            }
        }

        let timeout = p.duration("timeout", self.diags);
        if let Some((_, span)) = timeout {
            self.d.links[idx].timeout_span = Some(span);
        }
        self.d.links[idx].on_timeout = p.string("on-timeout", self.diags);
        match (&timeout, &self.d.links[idx].on_timeout) {
            (Some((_, span)), None) => self.diags.push(
                Diagnostic::new(Code::Missing, *span, "a timeout needs a path to take")
                    .label("timeout without on-timeout")
                    .help("add on-timeout=\"step-id\": the step to go to when time runs out"),
            ),
            (None, Some(n)) => self.diags.push(
                Diagnostic::new(Code::Missing, n.span, "`on-timeout` without a `timeout`")
                    .label("never taken")
                    .help("add timeout=\"P30D\" (how long to wait), or remove on-timeout"),
            ),
            _ => {}
        }
        let timeout = timeout.map(|(d, _)| d);

        let step_kind = match kind {
            "start" => StepKind::Start(Start { form }),
            "task" => {
                let role = p.required_string("role", "\"role-id\"", self.diags);
                if let Some(r) = &role {
                    self.d.role_refs.push(r.clone());
                }
                let due = p.duration("due", self.diags);
                let remind = p.duration("remind", self.diags);
                for (_, s) in due.iter().chain(remind.iter()) {
                    self.d.links[idx].timing_spans.push(*s);
                }
                StepKind::Task(Task {
                    role: role.map(|r| r.text).unwrap_or_default(),
                    form,
                    outcomes,
                    due: due.map(|d| d.0),
                    remind: remind.map(|d| d.0),
                    escalation,
                    timeout,
                })
            }
            "notify" => {
                let to = p.required_string("to", "\"role-id\"", self.diags);
                let template = p.required_string("template", "\"template-name\"", self.diags);
                if let Some(t) = &to {
                    self.d.role_refs.push(t.clone());
                }
                if let Some(t) = &template {
                    self.d.template_refs.push(t.clone());
                }
                StepKind::Notify(Notify {
                    to: to.map(|t| t.text).unwrap_or_default(),
                    template: template.map(|t| t.text).unwrap_or_default(),
                })
            }
            "call" => {
                let provider = p.required_string("provider", "\"provider-id\"", self.diags);
                if let Some(pr) = &provider {
                    self.d.provider_refs.push(pr.clone());
                }
                StepKind::Call(Call {
                    provider: provider.map(|t| t.text).unwrap_or_default(),
                    form,
                    outcomes,
                    timeout,
                })
            }
            "wait" => {
                let event = p.required_string("event", "\"event-name\"", self.diags);
                if let Some(e) = &event {
                    check_id(e, "event", self.diags);
                }
                let from = p.string("from", self.diags);
                if let Some(f) = &from {
                    self.d.role_refs.push(f.clone());
                }
                let keep_early = p.duration("keep-early", self.diags);
                StepKind::Wait(Wait {
                    event: event.map(|e| e.text).unwrap_or_default(),
                    from: from.map(|f| f.text),
                    form,
                    timeout,
                    keep_early: keep_early.map(|d| d.0),
                })
            }
            "gate" => {
                if self.d.links[idx].otherwise.is_none() {
                    self.diags.push(
                        Diagnostic::new(
                            Code::GateWithoutDefault,
                            name_span(node),
                            format!("gate `{}` has no default branch", self.d.steps[idx].id),
                        )
                        .label("no `otherwise`")
                        .help(
                            "add `otherwise goto=\"step-id\"`: where to go when no condition holds",
                        ),
                    );
                }
                if conditions.is_empty() && self.d.links[idx].when_gotos.is_empty() {
                    self.diags.push(
                        Diagnostic::new(Code::EmptyBlock, name_span(node), "this gate has no condition")
                            .label("no `when`")
                            .help("add `when \"condition\" goto=\"step-id\"`, or replace the gate by goto=\"...\" on the step before"),
                    );
                }
                StepKind::Gate(Gate {
                    conditions: conditions.into_iter().flatten().collect(),
                })
            }
            "parallel" => {
                if branches.is_empty() {
                    self.diags.push(
                        Diagnostic::new(
                            Code::EmptyBlock,
                            name_span(node),
                            "this parallel block has no branches",
                        )
                        .label("empty")
                        .help("put the steps that run at the same time inside the block"),
                    );
                }
                let complete_when = p
                    .string("complete-when", self.diags)
                    .and_then(|n| self.condition(&n));
                StepKind::Parallel(crate::model::Parallel {
                    branches,
                    complete_when,
                })
            }
            "end" => {
                let result = p
                    .required_string("result", "\"accepted\"", self.diags)
                    .and_then(|r| crate::schema::pick(&r, "result", &EndResult::ALL, self.diags));
                StepKind::End(End {
                    result: result.unwrap_or(EndResult::Rejected),
                })
            }
            _ => unreachable!("only step node names reach here"),
        };
        self.d.steps[idx].kind = step_kind;
        Some(idx)
    }

    fn outcome(&mut self, node: &KdlNode, step: StepIdx, outcomes: &mut Vec<Outcome>) {
        let p = Props::read(node, &["goto", "label", "comment"], self.diags);
        no_children(node, self.diags);
        if p.args.is_empty() {
            self.diags.push(
                Diagnostic::new(
                    Code::Missing,
                    name_span(node),
                    "`outcome` needs at least one name",
                )
                .label("no outcome name")
                .help("e.g. outcome \"favorable\" \"defavorable\""),
            );
        }
        let label = p.string("label", self.diags).map(|n| n.text);
        if label.is_some() && p.args.len() > 1 {
            self.diags.push(
                Diagnostic::new(
                    Code::InvalidValue,
                    name_span(node),
                    "`label` applies to one outcome, but this node names several",
                )
                .label("several outcomes")
                .help("write one `outcome` node per outcome that has a label"),
            );
        }
        let goto = p.string("goto", self.diags);
        let comment = p.bool("comment", self.diags).unwrap_or(false);
        for arg in &p.args {
            let Some(name) = entry_string(arg, "outcome", self.diags) else {
                continue;
            };
            if !check_id(&name, "outcome", self.diags) {
                continue;
            }
            if let Some(first) = outcomes.iter().find(|o: &&Outcome| o.id == name.text) {
                self.diags.push(
                    Diagnostic::new(
                        Code::DuplicateId,
                        name.span,
                        format!("outcome `{}` is declared twice", name.text),
                    )
                    .label("again here")
                    .related(first.span, "first here")
                    .help("remove one"),
                );
                continue;
            }
            outcomes.push(Outcome {
                id: name.text,
                span: name.span,
                label: label.clone(),
                comment,
            });
            self.d.links[step].outcome_gotos.push(goto.clone());
        }
    }

    fn form(&mut self, node: &KdlNode) -> Form {
        let p = Props::read(node, &[], self.diags);
        p.at_most_args(0, "no argument", self.diags);
        let mut form = Form::default();
        let Some(children) = node.children() else {
            return form;
        };
        for child in children.nodes() {
            if node_name(child) != "field" {
                unknown_child(child, "a form", &["field"], self.diags);
                continue;
            }
            let fp = Props::read(
                child,
                &[
                    "type",
                    "required",
                    "label",
                    "help",
                    "min",
                    "max",
                    "max-length",
                    "accept",
                    "max-size",
                ],
                self.diags,
            );
            fp.at_most_args(1, "one argument, the field id", self.diags);
            let Some(id) = self.id(&fp, "field") else {
                continue;
            };
            if matches!(id.text.as_str(), "outcome" | "count") {
                self.diags.push(
                    Diagnostic::new(
                        Code::InvalidId,
                        id.span,
                        format!("`{}` is a reserved name", id.text),
                    )
                    .label("reserved")
                    .help("conditions read `step.outcome` and `step.count`; pick another field id"),
                );
                continue;
            }
            if let Some(first) = form.fields.iter().find(|f| f.id == id.text) {
                self.diags.push(
                    Diagnostic::new(
                        Code::DuplicateId,
                        id.span,
                        format!("field `{}` is declared twice in this form", id.text),
                    )
                    .label("again here")
                    .related(first.span, "first here")
                    .help("rename or remove one of them"),
                );
                continue;
            }
            let ty = if fp.entry("type").is_none() {
                self.diags.push(
                    Diagnostic::new(
                        Code::Missing,
                        id.span,
                        format!("field `{}` has no type", id.text),
                    )
                    .label("type missing")
                    .help(
                        "add type=\"...\": text, long-text, email, date, number, choice, yes-no or file",
                    ),
                );
                None
            } else {
                fp.choice("type", &FieldType::ALL, self.diags)
            };
            let mut options = Vec::new();
            if let Some(oc) = child.children() {
                for o in oc.nodes() {
                    if node_name(o) != "option" {
                        unknown_child(o, "a field", &["option"], self.diags);
                        continue;
                    }
                    let op = Props::read(o, &["label"], self.diags);
                    no_children(o, self.diags);
                    let label = op.string("label", self.diags).map(|n| n.text);
                    for arg in &op.args {
                        if let Some(v) = entry_string(arg, "option", self.diags) {
                            if options.iter().any(|x: &ChoiceOption| x.value == v.text) {
                                self.diags.push(
                                    Diagnostic::new(
                                        Code::DuplicateId,
                                        v.span,
                                        format!("option `{}` is listed twice", v.text),
                                    )
                                    .label("again here")
                                    .help("remove one"),
                                );
                                continue;
                            }
                            options.push(ChoiceOption {
                                value: v.text,
                                label: label.clone(),
                            });
                        }
                    }
                }
            }
            match ty {
                Some(FieldType::Choice) if options.is_empty() => self.diags.push(
                    Diagnostic::new(
                        Code::Missing,
                        id.span,
                        format!("choice field `{}` has no options", id.text),
                    )
                    .label("no options")
                    .help("add a block: { option \"a\" \"b\" }"),
                ),
                Some(t) if t != FieldType::Choice && !options.is_empty() => self.diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        id.span,
                        format!("field `{}` has options but is not a choice", id.text),
                    )
                    .label("options on a non-choice field")
                    .help("set type=\"choice\", or remove the options"),
                ),
                _ => {}
            }
            let min = fp.number("min", self.diags);
            let max = fp.number("max", self.diags);
            let max_length = fp.integer("max-length", limits::MAX_STRING_CHARS as u32, self.diags);
            if (min.is_some() || max.is_some()) && ty.is_some_and(|t| t != FieldType::Number) {
                self.diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        id.span,
                        format!(
                            "`min` and `max` apply to number fields, and `{}` is not one",
                            id.text
                        ),
                    )
                    .label("not a number field")
                    .help("remove min/max, or set type=\"number\""),
                );
            }
            if let (Some(lo), Some(hi)) = (min, max)
                && lo > hi
            {
                self.diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        id.span,
                        format!("field `{}` has min > max", id.text),
                    )
                    .label("empty range")
                    .help("swap min and max"),
                );
            }
            let accept: Vec<String> = fp
                .string("accept", self.diags)
                .map(|n| {
                    n.text
                        .split([',', ' '])
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_lowercase)
                        .collect()
                })
                .unwrap_or_default();
            let max_size = fp.string("max-size", self.diags).and_then(|n| {
                let size = byte_size(&n.text);
                if size.is_none_or(|b| b == 0 || b > Field::MAX_MAX_SIZE) {
                    self.diags.push(
                        Diagnostic::new(
                            Code::InvalidValue,
                            n.span,
                            format!("`{}` is not a size from 1 byte to 1 GB", n.text),
                        )
                        .label("not a size")
                        .help("write a number of bytes with a unit: max-size=\"20MB\", \"500KB\""),
                    );
                }
                size
            });
            if let Some(bad) = accept.iter().find(|t| {
                !t.split_once('/')
                    .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
            }) {
                self.diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        fp.entry("accept").map_or(id.span, |e| e.span().into()),
                        format!("`{bad}` is not a media type"),
                    )
                    .label("not a media type")
                    .help("list media types: accept=\"application/pdf, image/*\""),
                );
            }
            if (!accept.is_empty() || max_size.is_some())
                && ty.is_some_and(|t| t != FieldType::File)
            {
                self.diags.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        id.span,
                        format!(
                            "`accept` and `max-size` apply to file fields, and `{}` is not one",
                            id.text
                        ),
                    )
                    .label("not a file field")
                    .help("remove them, or set type=\"file\""),
                );
            }
            form.fields.push(Field {
                id: id.text,
                span: id.span,
                ty: ty.unwrap_or(FieldType::Text),
                required: fp.bool("required", self.diags).unwrap_or(false),
                label: fp.string("label", self.diags).map(|n| n.text),
                help: fp.string("help", self.diags).map(|n| n.text),
                options,
                min,
                max,
                max_length,
                accept,
                max_size,
            });
        }
        form
    }
}

/// A size written with a decimal unit (`20MB`, `500 KB`, `1GB`, or bytes), in bytes.
fn byte_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().ok()?;
    let factor = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Compiles a condition written in `n`, reporting errors at their place in the file.
pub(crate) fn condition(n: &Name, src: &str, diags: &mut Diagnostics) -> Option<Arc<Condition>> {
    if n.text.chars().count() > limits::MAX_EXPRESSION_CHARS {
        diags.push(
            Diagnostic::new(
                Code::StringTooLong,
                n.span,
                format!(
                    "this condition is longer than {} characters",
                    limits::MAX_EXPRESSION_CHARS
                ),
            )
            .label("too long")
            .help("split the decision over several gates"),
        );
        return None;
    }
    let span = text_span(n, src);
    match expr::compile(&n.text, span) {
        Ok(c) => Some(Arc::new(c)),
        Err(errors) => {
            for e in errors {
                let help = e.help.unwrap_or_else(|| {
                    "conditions are CEL: e.g. recevabilite.outcome == 'recevable' && demande.budget > 10000 (see docs/definition-language.md#conditions)".to_owned()
                });
                diags.push(
                    Diagnostic::new(
                        Code::BadExpression,
                        e.span,
                        format!("the condition does not parse: {}", e.message),
                    )
                    .label("here")
                    .help(help),
                );
            }
            None
        }
    }
}

/// The span of a string's content inside its quotes, when the source spells it without escapes
/// (the usual case); otherwise the whole entry.
pub(crate) fn text_span(n: &Name, src: &str) -> Span {
    src.get(n.span.offset..n.span.end())
        .and_then(|written| written.find(n.text.as_str()))
        .map_or(n.span, |pos| Span::new(n.span.offset + pos, n.text.len()))
}

fn looks_like_email(s: &str) -> bool {
    let mut parts = s.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
        }
        _ => false,
    }
}
