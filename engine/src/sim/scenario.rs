//! Scenario files for the simulator, in KDL like the definitions they drive:
//!
//! ```kdl
//! scenario "Nos effectifs" {
//!     start "2027-01-04"
//!     arrivals exponential mean=2
//!     calendar france-office
//!     staff juriste=2 comite-faisabilite=1
//!     work triangular min=0.5 mode=1 max=3
//!     work role=juriste lognormal median=2 spread=1.6
//!     work step=comite fixed value=1
//!     outcomes "comite" favorable=0.8 ajourne=0.2
//!     provider uniform min=5 max=15
//!     sponsor exponential mean=7
//! }
//! ```
//!
//! The full reference is in `docs/simulation.md`. Problems are reported as the definition
//! checker reports them (same codes, spans and help). Names are checked against the models
//! being simulated: one scenario describes a desk for several models, so a step, role or
//! outcome that none of the simulated models has is a warning (with the likely spelling),
//! and the setting is left out.

use std::collections::BTreeMap;

use guichet_definitions::diagnostic::{Code, Diagnostic, Severity, Span};
use guichet_definitions::model::Process;
use guichet_definitions::suggest::did_you_mean;
use kdl::{KdlNode, KdlValue};

use crate::calendar::{Calendar, weekday};
use crate::clock::Timestamp;
use crate::sim::{Dist, Scenario};

const DISTRIBUTIONS: &[&str] = &["fixed", "uniform", "triangular", "exponential", "lognormal"];
const NODES: &[&str] = &[
    "start", "arrivals", "calendar", "staff", "work", "outcomes", "provider", "sponsor", "answer",
];

/// A scenario read from a file: what it assumes, its title, and the settings left out
/// because no simulated model has what they name.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub title: String,
    pub scenario: Scenario,
    pub warnings: Vec<Diagnostic>,
}

/// Reads a scenario and checks its names against the models it will run.
pub fn parse(source: &str, models: &[&Process]) -> Result<Parsed, Vec<Diagnostic>> {
    parse_over(source, models, Scenario::default())
}

/// Reads a scenario over a base (e.g. one fitted from history): what the file names
/// replaces the base's value.
pub fn parse_over(
    source: &str,
    models: &[&Process],
    base: Scenario,
) -> Result<Parsed, Vec<Diagnostic>> {
    let doc = guichet_definitions::parse_document(source)?;
    let mut r = Reader {
        models,
        diags: Vec::new(),
    };
    let mut sc = base;
    let mut title = String::new();
    let roots: Vec<&KdlNode> = doc.nodes().iter().collect();
    match roots.as_slice() {
        [root] if root.name().value() == "scenario" => {
            if let Some(t) = root.entries().first().and_then(|e| e.value().as_string()) {
                t.clone_into(&mut title);
            }
            for node in root.children().map(|c| c.nodes()).unwrap_or_default() {
                r.node(node, &mut sc);
            }
        }
        _ => r.diags.push(
            Diagnostic::new(
                Code::Missing,
                roots.first().map_or(Span::new(0, 0), |n| n.span().into()),
                "a scenario file holds one `scenario` node",
            )
            .label("expected `scenario \"title\" { ... }`")
            .help("wrap the settings in `scenario \"my scenario\" { ... }`"),
        ),
    }
    if r.diags.iter().any(Diagnostic::is_error) {
        Err(r.diags)
    } else {
        Ok(Parsed {
            title,
            scenario: sc,
            warnings: r.diags,
        })
    }
}

struct Reader<'a> {
    models: &'a [&'a Process],
    diags: Vec<Diagnostic>,
}

fn span(node: &KdlNode) -> Span {
    node.span().into()
}

fn prop_span(node: &KdlNode, name: &str) -> Span {
    node.entries()
        .iter()
        .find(|e| e.name().is_some_and(|n| n.value() == name))
        .map_or_else(|| span(node), |e| e.span().into())
}

impl Reader<'_> {
    fn error(&mut self, code: Code, at: Span, message: String, help: String) {
        self.diags
            .push(Diagnostic::new(code, at, message).label("here").help(help));
    }

    /// A name none of the simulated models has: the setting is left out.
    fn unknown(&mut self, code: Code, at: Span, message: String, help: String) {
        let mut d = Diagnostic::new(code, at, message)
            .label("left out")
            .help(help);
        d.severity = Severity::Warning;
        self.diags.push(d);
    }

    fn args(node: &KdlNode) -> Vec<&KdlValue> {
        node.entries()
            .iter()
            .filter(|e| e.name().is_none())
            .map(kdl::KdlEntry::value)
            .collect()
    }

    fn props(node: &KdlNode) -> Vec<(&str, &KdlValue)> {
        node.entries()
            .iter()
            .filter_map(|e| e.name().map(|n| (n.value(), e.value())))
            .collect()
    }

    fn node(&mut self, node: &KdlNode, sc: &mut Scenario) {
        let name = node.name().value();
        match name {
            "start" => {
                if let Some(t) = self.instant(node, Self::args(node).first().copied()) {
                    sc.start = t;
                }
            }
            "arrivals" => self.arrivals(node, sc),
            "calendar" => self.calendar(node, sc),
            "staff" => {
                for (role, v) in Self::props(node) {
                    let at = prop_span(node, role);
                    if !self.known_role(role, at) {
                        continue;
                    }
                    match v.as_integer().and_then(|n| usize::try_from(n).ok()) {
                        Some(n) if n > 0 => {
                            sc.staff.insert(role.to_owned(), n);
                        }
                        _ => self.error(
                            Code::WrongType,
                            at,
                            format!("the staff of `{role}` must be a whole number of people"),
                            format!("write e.g. `{role}=2`"),
                        ),
                    }
                }
            }
            "work" => {
                let Some(d) = self.dist(node) else { return };
                let props = Self::props(node);
                if let Some((_, s)) = props.iter().find(|(k, _)| *k == "step") {
                    if let Some(step) = self.step_name(node, s, "step", &["task"]) {
                        sc.work.insert(step, d);
                    }
                } else if let Some((_, v)) = props.iter().find(|(k, _)| *k == "role") {
                    let role = v.as_string().unwrap_or_default();
                    if self.known_role(role, prop_span(node, "role")) {
                        sc.role_work.insert(role.to_owned(), d);
                    }
                } else {
                    sc.default_work = d;
                }
            }
            "answer" => {
                let Some(d) = self.dist(node) else { return };
                let step = Self::props(node)
                    .into_iter()
                    .find(|(k, _)| *k == "step")
                    .map(|(_, v)| v);
                match step {
                    Some(s) => {
                        if let Some(step) = self.step_name(node, s, "step", &["call", "wait"]) {
                            if let Some(share) = self.share(node) {
                                sc.answer_shares.insert(step.clone(), share);
                            }
                            sc.answers.insert(step, d);
                        }
                    }
                    None => self.error(
                        Code::Missing,
                        span(node),
                        "`answer` needs the call or wait step it is about".to_owned(),
                        "write e.g. `answer step=\"reponse-complement\" exponential mean=10`; \
                         `provider` and `sponsor` set the defaults"
                            .to_owned(),
                    ),
                }
            }
            "provider" => {
                if let Some(d) = self.dist(node) {
                    sc.provider = d;
                }
                if let Some(share) = self.share(node) {
                    sc.provider_answers = share;
                }
            }
            "sponsor" => {
                if let Some(d) = self.dist(node) {
                    sc.sponsor = d;
                }
                if let Some(share) = self.share(node) {
                    sc.sponsor_answers = share;
                }
            }
            "outcomes" => self.outcomes(node, sc),
            other => {
                let hint = did_you_mean(other, NODES.iter().copied())
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                self.error(
                    Code::UnknownNode,
                    span(node),
                    format!("unknown scenario setting `{other}`"),
                    format!("{hint}a scenario has: {}", NODES.join(", ")),
                );
            }
        }
    }

    fn arrivals(&mut self, node: &KdlNode, sc: &mut Scenario) {
        if let Some(children) = node.children() {
            let mut at = Vec::new();
            for c in children.nodes() {
                if c.name().value() != "at" {
                    self.error(
                        Code::UnknownNode,
                        span(c),
                        format!("unknown arrival setting `{}`", c.name().value()),
                        "a schedule lists arrivals as `at \"2027-01-04T10:00\"`".to_owned(),
                    );
                    continue;
                }
                let count = Self::props(c)
                    .into_iter()
                    .find(|(k, _)| *k == "count")
                    .and_then(|(_, v)| v.as_integer())
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(1);
                if let Some(t) = self.instant(c, Self::args(c).first().copied()) {
                    at.extend(std::iter::repeat_n(t.0, count));
                }
            }
            at.sort_unstable();
            sc.schedule = Some(at);
        } else if let Some(d) = self.dist(node) {
            sc.interarrival = d;
        }
    }

    fn calendar(&mut self, node: &KdlNode, sc: &mut Scenario) {
        let args = Self::args(node);
        match args.first().and_then(|v| v.as_string()) {
            Some("always") => sc.calendar = Calendar::Always,
            Some("france-office") => sc.calendar = Calendar::french_office(),
            Some(other) => self.error(
                Code::InvalidValue,
                span(node),
                format!("unknown calendar `{other}`"),
                "use `always`, `france-office`, or give `open`, `close`, `days` and `holidays`"
                    .to_owned(),
            ),
            None => {
                let (mut open, mut close) = (9 * 60, 17 * 60);
                let mut days = [true, true, true, true, true, false, false];
                let mut french_holidays = false;
                for (k, v) in Self::props(node) {
                    let at = prop_span(node, k);
                    let text = v.as_string().unwrap_or_default();
                    match k {
                        "open" | "close" => match hour_minute(text) {
                            Some(m) if k == "open" => open = m,
                            Some(m) => close = m,
                            None => self.error(
                                Code::InvalidValue,
                                at,
                                format!("`{text}` is not a time of day"),
                                format!("write e.g. `{k}=\"09:00\"`"),
                            ),
                        },
                        "days" => {
                            days = [false; 7];
                            for d in text.split_whitespace() {
                                match weekday(d) {
                                    Some(w) => {
                                        days[usize::from(w.number_days_from_monday())] = true;
                                    }
                                    None => self.error(
                                        Code::InvalidValue,
                                        at,
                                        format!("`{d}` is not a day of the week"),
                                        "write e.g. `days=\"mon tue wed thu fri\"`".to_owned(),
                                    ),
                                }
                            }
                        }
                        "holidays" => match text {
                            "france" => french_holidays = true,
                            "none" => french_holidays = false,
                            _ => self.error(
                                Code::InvalidValue,
                                at,
                                format!("unknown holidays `{text}`"),
                                "use `holidays=\"france\"` or `holidays=\"none\"`".to_owned(),
                            ),
                        },
                        _ => self.error(
                            Code::UnknownProperty,
                            at,
                            format!("unknown calendar property `{k}`"),
                            "a calendar has `open`, `close`, `days` and `holidays`".to_owned(),
                        ),
                    }
                }
                if close <= open || !days.contains(&true) {
                    self.error(
                        Code::InvalidValue,
                        span(node),
                        "this calendar has no working time".to_owned(),
                        "open before close, on at least one day".to_owned(),
                    );
                    return;
                }
                sc.calendar = Calendar::Business {
                    open,
                    close,
                    days,
                    french_holidays,
                };
            }
        }
    }

    fn outcomes(&mut self, node: &KdlNode, sc: &mut Scenario) {
        let Some(first) = Self::args(node).first().copied() else {
            self.error(
                Code::Missing,
                span(node),
                "`outcomes` needs the step it is about".to_owned(),
                "write e.g. `outcomes \"comite\" favorable=0.8 ajourne=0.2`".to_owned(),
            );
            return;
        };
        let Some(step) = self.step_name(node, first, "", &["task", "call"]) else {
            return;
        };
        let mut declared: Vec<&str> = Vec::new();
        for p in self.models {
            if let Some(s) = p.step(&step) {
                declared.extend(s.outcomes().iter().map(|o| o.id.as_str()));
            }
        }
        let mut weights = Vec::new();
        let mut left_out = false;
        for (k, v) in Self::props(node) {
            let at = prop_span(node, k);
            if !declared.contains(&k) {
                left_out = true;
                let hint = did_you_mean(k, declared.iter().copied())
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                self.unknown(
                    Code::UnknownOutcome,
                    at,
                    format!("no simulated model's step `{step}` has the outcome `{k}`"),
                    format!("{hint}its outcomes are: {}", declared.join(", ")),
                );
                continue;
            }
            match number(v) {
                Some(w) if w >= 0.0 => weights.push((k.to_owned(), w)),
                _ => self.error(
                    Code::WrongType,
                    at,
                    format!("the weight of `{k}` must be a number, zero or more"),
                    format!("write e.g. `{k}=0.8`; weights need not add up to 1"),
                ),
            }
        }
        if weights.is_empty() && left_out {
            return;
        }
        if weights.iter().map(|w| w.1).sum::<f64>() <= 0.0 {
            self.error(
                Code::InvalidValue,
                span(node),
                format!("no outcome of `{step}` has a weight above zero"),
                "give at least one outcome a positive weight".to_owned(),
            );
            return;
        }
        sc.outcomes.insert(step, weights);
    }

    /// The share of calls or waits answered at all (`answered=0.9`), between 0 and 1.
    fn share(&mut self, node: &KdlNode) -> Option<f64> {
        let (_, v) = Self::props(node)
            .into_iter()
            .find(|(k, _)| *k == "answered")?;
        match number(v) {
            Some(x) if (0.0..=1.0).contains(&x) => Some(x),
            _ => {
                self.error(
                    Code::InvalidValue,
                    prop_span(node, "answered"),
                    "`answered` is the share answered, between 0 and 1".to_owned(),
                    "write e.g. `answered=0.9`: one in ten never answers, and the timeout decides"
                        .to_owned(),
                );
                None
            }
        }
    }

    /// A distribution: its name as the argument, its parameters as properties.
    fn dist(&mut self, node: &KdlNode) -> Option<Dist> {
        let name = node.name().value();
        let Some(kind) = Self::args(node).first().and_then(|v| v.as_string()) else {
            self.error(
                Code::Missing,
                span(node),
                format!("`{name}` needs a distribution"),
                format!(
                    "write e.g. `{name} exponential mean=3` (days); distributions: {}",
                    DISTRIBUTIONS.join(", ")
                ),
            );
            return None;
        };
        let mut params: BTreeMap<&str, f64> = BTreeMap::new();
        for (k, v) in Self::props(node) {
            if matches!(k, "step" | "role" | "answered") {
                continue;
            }
            match days(v) {
                Some(x) => {
                    params.insert(k, x);
                }
                None => self.error(
                    Code::WrongType,
                    prop_span(node, k),
                    format!("`{k}` must be a number of days or an ISO 8601 duration"),
                    format!("write e.g. `{k}=2.5` or `{k}=\"PT4H\"`"),
                ),
            }
        }
        let want: &[&str] = match kind {
            "fixed" => &["value"],
            "uniform" => &["min", "max"],
            "triangular" => &["min", "mode", "max"],
            "exponential" => &["mean"],
            "lognormal" => &["median", "spread"],
            other => {
                let hint = did_you_mean(other, DISTRIBUTIONS.iter().copied())
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                self.error(
                    Code::InvalidValue,
                    span(node),
                    format!("unknown distribution `{other}`"),
                    format!("{hint}distributions: {}", DISTRIBUTIONS.join(", ")),
                );
                return None;
            }
        };
        let mut got = Vec::new();
        for w in want {
            match params.get(w) {
                Some(x) => got.push(*x),
                None => {
                    self.error(
                        Code::Missing,
                        span(node),
                        format!("a {kind} distribution needs `{w}`"),
                        format!("a {kind} distribution takes {}", want.join(", ")),
                    );
                    return None;
                }
            }
        }
        for k in params.keys() {
            if !want.contains(k) {
                self.error(
                    Code::UnknownProperty,
                    prop_span(node, k),
                    format!("a {kind} distribution has no `{k}`"),
                    format!("a {kind} distribution takes {}", want.join(", ")),
                );
            }
        }
        let d = match kind {
            "fixed" => Dist::Fixed(got[0]),
            "uniform" => Dist::Uniform(got[0], got[1]),
            "triangular" => Dist::Triangular(got[0], got[1], got[2]),
            "exponential" => Dist::Exponential { mean: got[0] },
            _ => Dist::LogNormal {
                median: got[0],
                spread: got[1],
            },
        };
        if let Err(why) = d.validate() {
            self.error(
                Code::InvalidValue,
                span(node),
                format!("this {kind} distribution is not valid: {why}"),
                "fix the parameters".to_owned(),
            );
            return None;
        }
        Some(d)
    }

    fn instant(&mut self, node: &KdlNode, v: Option<&KdlValue>) -> Option<Timestamp> {
        let text = v.and_then(KdlValue::as_string).unwrap_or_default();
        let parsed = parse_instant(text);
        if parsed.is_none() {
            self.error(
                Code::InvalidValue,
                span(node),
                format!("`{text}` is not a date"),
                "write a date as \"2027-01-04\" or \"2027-01-04T10:00\"".to_owned(),
            );
        }
        parsed
    }

    fn known_role(&mut self, role: &str, at: Span) -> bool {
        if self.models.iter().any(|p| p.role(role).is_some()) {
            return true;
        }
        let all: Vec<&str> = self
            .models
            .iter()
            .flat_map(|p| p.roles.iter().map(|r| r.id.as_str()))
            .collect();
        let hint = did_you_mean(role, all.iter().copied())
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default();
        self.unknown(
            Code::UnknownRole,
            at,
            format!("no model being simulated has the role `{role}`"),
            format!("{hint}check the spelling against the models' `role` nodes"),
        );
        false
    }

    /// A step id that at least one model has, of one of the given kinds.
    fn step_name(
        &mut self,
        node: &KdlNode,
        v: &KdlValue,
        prop: &str,
        kinds: &[&str],
    ) -> Option<String> {
        let at = if prop.is_empty() {
            span(node)
        } else {
            prop_span(node, prop)
        };
        let id = v.as_string().unwrap_or_default();
        let found: Vec<&str> = self
            .models
            .iter()
            .filter_map(|p| p.step(id))
            .map(|s| s.kind_name())
            .collect();
        if found.is_empty() {
            let all: Vec<&str> = self
                .models
                .iter()
                .flat_map(|p| p.steps.iter())
                .filter(|s| kinds.contains(&s.kind_name()))
                .map(|s| s.id.as_str())
                .collect();
            let hint = did_you_mean(id, all.iter().copied())
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            self.unknown(
                Code::UnknownStep,
                at,
                format!("no model being simulated has the step `{id}`"),
                format!("{hint}name a {} step of the models", kinds.join(" or ")),
            );
            return None;
        }
        if !found.iter().any(|k| kinds.contains(k)) {
            self.error(
                Code::InvalidValue,
                at,
                format!("`{id}` is a {} step here", found[0]),
                format!("this setting is about {} steps", kinds.join(" or ")),
            );
            return None;
        }
        Some(id.to_owned())
    }
}

fn number(v: &KdlValue) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

/// A number of days, or an ISO 8601 duration converted to days.
fn days(v: &KdlValue) -> Option<f64> {
    if let Some(x) = number(v) {
        return Some(x);
    }
    let d: guichet_definitions::duration::IsoDuration = v.as_string()?.parse().ok()?;
    #[allow(clippy::cast_precision_loss)]
    Some(d.approx_seconds() as f64 / 86_400.0)
}

fn hour_minute(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

/// "2027-01-04" or "2027-01-04T10:00", read as local time on the virtual clock.
pub fn parse_instant(s: &str) -> Option<Timestamp> {
    let (date, time) = s.split_once('T').unwrap_or((s, "00:00"));
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(date, &fmt).ok()?;
    let minutes = hour_minute(time)?;
    let midnight = date.midnight().assume_utc();
    Some(Timestamp(
        i64::try_from(midnight.unix_timestamp_nanos() / 1_000_000).ok()?
            + i64::from(minutes) * 60_000,
    ))
}
