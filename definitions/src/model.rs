//! The typed model of a desk process: what a definition says, checked.
//!
//! A [`Process`] is only handed out by [`crate::load`] when the definition has no errors, so
//! code that receives one (the engine, the graph drawers, the KPI module) can trust every
//! reference in it: role names exist, step indices are in range, conditions compiled, and the
//! [`Flow`] is sound (every step reachable, an end reachable from every step, parallel
//! branches joined).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::diagnostic::Span;
use crate::duration::IsoDuration;
use crate::expr::Condition;

/// The reserved jump target that finishes a parallel branch.
pub(crate) const JOIN: &str = "join";

/// Index of a step in [`Process::steps`].
pub type StepIdx = usize;

#[derive(Debug, Clone, Serialize)]
pub struct Process {
    pub name: String,
    pub version: u32,
    pub title: String,
    pub language: Language,
    pub description: Option<String>,
    pub roles: Vec<Role>,
    pub providers: Vec<Provider>,
    /// Templates the desk declares beyond the standard catalogue (`templates::STANDARD`).
    pub templates: Vec<TemplateDecl>,
    /// Every step, nested ones included, in source order. The start step is index 0.
    pub steps: Vec<Step>,
    /// The top-level sequence of steps.
    pub body: Vec<StepIdx>,
    pub kpis: Vec<Kpi>,
    pub maturity: Vec<MaturityFact>,
    /// The compiled control flow: where a token goes when a step finishes.
    pub flow: Flow,
    #[serde(skip)]
    pub(crate) step_index: HashMap<String, StepIdx>,
    /// The desk in the other languages its `translation` blocks give; see
    /// [`Process::in_language`].
    #[serde(skip)]
    pub translations: Vec<(Language, Arc<Process>)>,
}

impl Process {
    /// The desk as a reader of `language` sees it: its translation into that language when
    /// it has one (texts only: ids and flow are the same), else itself as written.
    pub fn in_language(&self, language: Language) -> &Process {
        self.translations
            .iter()
            .find(|(l, _)| *l == language)
            .map_or(self, |(_, p)| p)
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.step_index.get(id).map(|&i| &self.steps[i])
    }

    pub fn step_idx(&self, id: &str) -> Option<StepIdx> {
        self.step_index.get(id).copied()
    }

    pub fn role(&self, id: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == id)
    }

    /// The start step (always index 0 in a checked process).
    pub fn start(&self) -> &Step {
        &self.steps[0]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Fr,
    En,
}

impl Language {
    /// The language's code: `fr` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Language::Fr => "fr",
            Language::En => "en",
        }
    }

    /// The language of a code, if it is one of ours.
    pub fn from_code(code: &str) -> Option<Language> {
        match code {
            "fr" => Some(Language::Fr),
            "en" => Some(Language::En),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Role {
    pub id: String,
    pub span: Span,
    pub title: Option<String>,
    pub source: RoleSource,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleSource {
    /// Fixed members, by email address.
    Members(Vec<String>),
    /// The member is the email address entered in a field of a step, e.g. the requester's.
    FromField { step: StepIdx, field: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    pub id: String,
    pub span: Span,
    pub title: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TemplateDecl {
    pub id: String,
    pub span: Span,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub id: String,
    /// The whole node.
    pub span: Span,
    pub title: Option<String>,
    pub description: Option<String>,
    pub kind: StepKind,
    /// The parallel branch this step is part of, if any (the innermost one).
    pub scope: Option<Scope>,
    /// What the step's work is about besides the request (`about="contract"`), for
    /// object-centric event logs (OCEL 2.0).
    pub about: Option<About>,
}

/// The objects of a request that steps can be about, besides the request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum About {
    /// The data-sharing contract: its negotiation, review and signature.
    Contract,
    /// The dataset: its preparation, checks and delivery.
    Dataset,
}

impl About {
    pub const ALL: [(&'static str, About); 2] =
        [("contract", About::Contract), ("dataset", About::Dataset)];

    pub fn as_str(self) -> &'static str {
        match self {
            About::Contract => "contract",
            About::Dataset => "dataset",
        }
    }
}

impl Step {
    /// The title if given, else the id: what a person sees.
    pub fn display_name(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.id)
    }

    /// The form of a step that collects data, if any.
    pub fn form(&self) -> Option<&Form> {
        match &self.kind {
            StepKind::Start(s) => Some(&s.form),
            StepKind::Task(t) => Some(&t.form),
            StepKind::Call(c) => Some(&c.form),
            StepKind::Wait(w) => Some(&w.form),
            _ => None,
        }
    }

    /// The declared outcomes of a step (tasks and calls), empty for others.
    pub fn outcomes(&self) -> &[Outcome] {
        match &self.kind {
            StepKind::Task(t) => &t.outcomes,
            StepKind::Call(c) => &c.outcomes,
            _ => &[],
        }
    }

    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }
}

/// A position inside a parallel block: which block, which branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Scope {
    pub parallel: StepIdx,
    pub branch: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum StepKind {
    Start(Start),
    Task(Task),
    Notify(Notify),
    Call(Call),
    Wait(Wait),
    Gate(Gate),
    Parallel(Parallel),
    End(End),
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Start(_) => "start",
            StepKind::Task(_) => "task",
            StepKind::Notify(_) => "notify",
            StepKind::Call(_) => "call",
            StepKind::Wait(_) => "wait",
            StepKind::Gate(_) => "gate",
            StepKind::Parallel(_) => "parallel",
            StepKind::End(_) => "end",
        }
    }
}

/// The intake: the sponsor's *fiche projet*.
#[derive(Debug, Clone, Serialize)]
pub struct Start {
    pub form: Form,
}

/// A human task, done by a member of a role.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub role: String,
    pub form: Form,
    pub outcomes: Vec<Outcome>,
    /// Deadline, from the task's creation.
    pub due: Option<IsoDuration>,
    /// A reminder is sent this long before the deadline.
    pub remind: Option<IsoDuration>,
    pub escalation: Option<Escalation>,
    /// How long the task may stay open: then it is withdrawn (from its holder's inbox and
    /// links) and the request goes on at `on-timeout`.
    pub timeout: Option<IsoDuration>,
}

/// Hand the task to another role when it is still open this long after creation.
#[derive(Debug, Clone, Serialize)]
pub struct Escalation {
    pub after: IsoDuration,
    pub to: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub id: String,
    pub span: Span,
    pub label: Option<String>,
    /// Whoever chooses this outcome must say why in a comment (e.g. an unfavourable opinion).
    pub comment: bool,
}

impl Outcome {
    /// What people read: the label, or the id with a capital and spaces (`non-conforme`
    /// reads "Non conforme").
    pub fn display_name(&self) -> String {
        if let Some(l) = &self.label {
            return l.clone();
        }
        let spaced = self.id.replace(['-', '_'], " ");
        let mut chars = spaced.chars();
        chars
            .next()
            .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
    }
}

/// A notification email to the members of a role.
#[derive(Debug, Clone, Serialize)]
pub struct Notify {
    pub to: String,
    pub template: String,
}

/// Work handed to an external provider through a webhook; the step waits for its callback.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub provider: String,
    /// The fields the provider's callback must carry.
    pub form: Form,
    pub outcomes: Vec<Outcome>,
    pub timeout: Option<IsoDuration>,
}

/// Waits for a named external event correlated to the request (e.g. the sponsor's answer).
#[derive(Debug, Clone, Serialize)]
pub struct Wait {
    pub event: String,
    /// The role allowed to send the event from the web pages, if any.
    pub from: Option<String>,
    /// The fields the event carries.
    pub form: Form,
    pub timeout: Option<IsoDuration>,
    /// How long an event that comes before the request reaches this wait is kept for it
    /// (`keep-early`); without it, an event nobody waits for is refused.
    pub keep_early: Option<IsoDuration>,
}

/// An exclusive choice: the first condition that holds wins, else the default.
#[derive(Debug, Clone, Serialize)]
pub struct Gate {
    pub conditions: Vec<Arc<Condition>>,
}

/// All branches run at once; the block finishes when every branch has finished.
#[derive(Debug, Clone, Serialize)]
pub struct Parallel {
    pub branches: Vec<Branch>,
    /// `complete-when`: checked each time a branch ends; when it holds, what is still open
    /// in the other branches is withdrawn and the block ends at once.
    pub complete_when: Option<Arc<Condition>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Branch {
    pub name: String,
    pub span: Span,
    pub steps: Vec<StepIdx>,
}

#[derive(Debug, Clone, Serialize)]
pub struct End {
    pub result: EndResult,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndResult {
    Accepted,
    Rejected,
    Withdrawn,
}

impl EndResult {
    pub const ALL: [(&'static str, EndResult); 3] = [
        ("accepted", EndResult::Accepted),
        ("rejected", EndResult::Rejected),
        ("withdrawn", EndResult::Withdrawn),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndResult::Accepted => "accepted",
            EndResult::Rejected => "rejected",
            EndResult::Withdrawn => "withdrawn",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Form {
    pub fields: Vec<Field>,
}

impl Form {
    pub fn field(&self, id: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Field {
    pub id: String,
    pub span: Span,
    pub ty: FieldType,
    pub required: bool,
    pub label: Option<String>,
    pub help: Option<String>,
    /// The allowed values of a `choice` field.
    pub options: Vec<ChoiceOption>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub max_length: Option<u32>,
    /// For a file: the media types accepted (`application/pdf`, `image/*`); empty, any.
    pub accept: Vec<String>,
    /// For a file: the largest accepted, in bytes ([`Field::DEFAULT_MAX_SIZE`] if unset).
    pub max_size: Option<u64>,
}

impl Field {
    /// A file field's size limit when it declares none: 20 MB.
    pub const DEFAULT_MAX_SIZE: u64 = 20 * 1000 * 1000;
    /// No file field may accept more: 1 GB.
    pub const MAX_MAX_SIZE: u64 = 1000 * 1000 * 1000;

    /// The largest file this field accepts, in bytes.
    pub fn file_limit(&self) -> u64 {
        self.max_size.unwrap_or(Self::DEFAULT_MAX_SIZE)
    }

    /// Whether a file of `media_type` (as sniffed from its content) is accepted.
    pub fn accepts(&self, media_type: &str) -> bool {
        self.accept.is_empty()
            || self.accept.iter().any(|a| match a.strip_suffix("/*") {
                Some(family) => media_type
                    .split_once('/')
                    .is_some_and(|(f, _)| f.eq_ignore_ascii_case(family)),
                None => a.eq_ignore_ascii_case(media_type),
            })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChoiceOption {
    pub value: String,
    pub label: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldType {
    Text,
    LongText,
    Email,
    Date,
    Number,
    Choice,
    YesNo,
    /// A document: its content is stored beside the database, the field holds its SHA-256,
    /// name, size and media type.
    File,
}

impl FieldType {
    pub const ALL: [(&'static str, FieldType); 8] = [
        ("text", FieldType::Text),
        ("long-text", FieldType::LongText),
        ("email", FieldType::Email),
        ("date", FieldType::Date),
        ("number", FieldType::Number),
        ("choice", FieldType::Choice),
        ("yes-no", FieldType::YesNo),
        ("file", FieldType::File),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("text", |(n, _)| n)
    }
}

/// The white paper's building blocks (2.2), plus `general` for the overall indicators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildingBlock {
    General,
    Catalogue,
    Uses,
    Technical,
    Regulatory,
    Valorisation,
}

impl BuildingBlock {
    pub const ALL: [(&'static str, BuildingBlock); 6] = [
        ("general", BuildingBlock::General),
        ("catalogue", BuildingBlock::Catalogue),
        ("uses", BuildingBlock::Uses),
        ("technical", BuildingBlock::Technical),
        ("regulatory", BuildingBlock::Regulatory),
        ("valorisation", BuildingBlock::Valorisation),
    ];
}

/// A performance indicator the desk declares (white paper 3.3).
#[derive(Debug, Clone, Serialize)]
pub struct Kpi {
    pub id: String,
    pub span: Span,
    pub title: Option<String>,
    pub block: BuildingBlock,
    pub kind: KpiKind,
    pub target: Option<KpiTarget>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum KpiKind {
    /// Time between two milestones of a request: the first completion of `from` and the
    /// first completion of `to` (the start step completes when the request is submitted).
    Duration { from: StepIdx, to: StepIdx },
    /// Requests that completed `step` (or every completion with `each`), or whose data
    /// satisfy `when` when they end, or that ended with `result`.
    Count {
        step: Option<StepIdx>,
        each: bool,
        when: Option<Arc<Condition>>,
        result: Option<EndResult>,
    },
    /// One count indicator divided by another.
    Ratio { of: String, per: String },
    /// Sum of a number field over requests.
    Sum { step: StepIdx, field: String },
    /// Mean of a number field over requests that have it.
    Mean { step: StepIdx, field: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct KpiTarget {
    pub value: TargetValue,
    /// Whether lower values are better (durations, revision rate) or higher ones.
    pub lower_is_better: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetValue {
    Duration(IsoDuration),
    Number(f64),
}

/// A binary maturity indicator (white paper 3.3): does this tool or process exist at the desk?
#[derive(Debug, Clone, Serialize)]
pub struct MaturityFact {
    pub id: String,
    pub span: Span,
    pub block: BuildingBlock,
    pub present: bool,
    pub title: Option<String>,
}

/// Where a token goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Step(StepIdx),
    /// The end of a branch of this parallel step: the token waits there for its siblings.
    Join(StepIdx),
}

/// Which way out of a step an edge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    /// The step finished (for a task with outcomes, see `Outcome`). For a parallel step, this
    /// is the way out once every branch has finished.
    Next,
    /// The task or call finished with `outcomes[i]`.
    Outcome(usize),
    /// The gate's `conditions[i]` held.
    When(usize),
    /// No condition of the gate held.
    Otherwise,
    /// The wait or call timed out.
    Timeout,
    /// Branch `i` of a parallel step starts here.
    Branch(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub exit: Exit,
    pub to: Target,
    /// Whether the edge was written as a jump (`goto`), not implied by the order of steps.
    pub jump: bool,
}

/// The compiled control flow: for each step, its ways out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Flow {
    pub edges: Vec<Vec<Edge>>,
}

impl Flow {
    pub fn edges(&self, step: StepIdx) -> &[Edge] {
        &self.edges[step]
    }

    /// Whether a token at one of the steps `from` can still come to step `to` (a loop back
    /// included), following every way out; a branch's end goes on where its block does.
    pub fn reaches(&self, from: impl IntoIterator<Item = StepIdx>, to: StepIdx) -> bool {
        let mut seen = vec![false; self.edges.len()];
        let mut next: Vec<StepIdx> = from.into_iter().collect();
        while let Some(s) = next.pop() {
            if std::mem::replace(&mut seen[s], true) {
                continue;
            }
            for e in &self.edges[s] {
                let step = match e.to {
                    Target::Step(n) => Some(n),
                    Target::Join(par) => match self.target(par, Exit::Next) {
                        Some(Target::Step(n)) => Some(n),
                        Some(Target::Join(outer)) => Some(outer),
                        None => None,
                    },
                };
                match step {
                    Some(n) if n == to => return true,
                    Some(n) => next.push(n),
                    None => {}
                }
            }
        }
        false
    }

    /// The target of one way out of a step.
    pub fn target(&self, step: StepIdx, exit: Exit) -> Option<Target> {
        self.edges[step]
            .iter()
            .find(|e| e.exit == exit)
            .map(|e| e.to)
    }
}
