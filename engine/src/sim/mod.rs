//! Simulation of a desk before adopting it: the real functional core drives every simulated
//! request, on a virtual clock, with staff in limited numbers per role. A discrete-event loop:
//! requests arrive, tasks queue for the members of their role, work takes a sampled time,
//! outcomes are drawn with the scenario's weights, providers and sponsors answer after a
//! sampled delay, and the definition's own timers fire as they fall due.
//!
//! Runs are reproducible: the same scenario and seed give the same results.

pub mod drive;
pub mod fit;
pub mod scenario;
pub mod seed;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;

use guichet_definitions::model::{Process, StepKind};
use serde::Serialize;

use crate::calendar::Calendar;
use crate::clock::Timestamp;
use crate::core::{self, Actor, Command, Event, Fields, Instance, InstanceStatus, Seq};
use crate::indicators::facts;
use crate::indicators::kpi::{KpiRow, Stats, StepRow};
use crate::indicators::tally::{Tally, VisitTimes};
use crate::sim::drive::sample_fields;

const DAY_MS: f64 = 86_400_000.0;

/// A duration distribution, in days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    Fixed(f64),
    Uniform(f64, f64),
    /// Minimum, mode, maximum.
    Triangular(f64, f64, f64),
    Exponential {
        mean: f64,
    },
    /// Median and the spread factor (the 84th percentile over the median).
    LogNormal {
        median: f64,
        spread: f64,
    },
}

/// A small deterministic generator (SplitMix64): reproducible runs without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    #[allow(clippy::cast_precision_loss)]
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

impl Dist {
    /// Whether the parameters make sense (the reason when they do not).
    pub fn validate(&self) -> Result<(), String> {
        let ok = |c: bool, why: &str| if c { Ok(()) } else { Err(why.to_owned()) };
        match *self {
            Dist::Fixed(d) => ok(d >= 0.0 && d.is_finite(), "the value must be zero or more"),
            Dist::Uniform(a, b) => ok(0.0 <= a && a <= b && b.is_finite(), "0 <= min <= max"),
            Dist::Triangular(a, m, b) => ok(
                0.0 <= a && a <= m && m <= b && a < b && b.is_finite(),
                "0 <= min <= mode <= max, with min < max",
            ),
            Dist::Exponential { mean } => ok(
                mean > 0.0 && mean.is_finite(),
                "the mean must be above zero",
            ),
            Dist::LogNormal { median, spread } => ok(
                median > 0.0 && spread >= 1.0 && spread.is_finite(),
                "the median must be above zero and the spread 1 or more",
            ),
        }
    }

    /// The mean of the distribution, in days.
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Fixed(d) => d,
            Dist::Uniform(a, b) => f64::midpoint(a, b),
            Dist::Triangular(a, m, b) => (a + m + b) / 3.0,
            Dist::Exponential { mean } => mean,
            Dist::LogNormal { median, spread } => {
                let s = spread.ln();
                median * (s * s / 2.0).exp()
            }
        }
    }

    pub fn sample(&self, rng: &mut Rng) -> f64 {
        match *self {
            Dist::Fixed(d) => d,
            Dist::Uniform(a, b) => a + (b - a) * rng.unit(),
            Dist::Triangular(a, m, b) => {
                let u = rng.unit();
                let f = (m - a) / (b - a);
                if u < f {
                    a + ((b - a) * (m - a) * u).sqrt()
                } else {
                    b - ((b - a) * (b - m) * (1.0 - u)).sqrt()
                }
            }
            Dist::Exponential { mean } => -mean * rng.unit().ln(),
            Dist::LogNormal { median, spread } => {
                let (u1, u2) = (rng.unit(), rng.unit());
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                median * (spread.ln() * z).exp()
            }
        }
        .max(0.0)
    }
}

/// What the simulation assumes. Durations are in days: working days (in the calendar's
/// working time) for work on tasks, calendar days for arrivals and answers.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// When the first request arrives.
    pub start: Timestamp,
    pub calendar: Calendar,
    /// Time between two arrivals.
    pub interarrival: Dist,
    /// Arrival instants, instead of `interarrival`, when given.
    pub schedule: Option<Vec<i64>>,
    /// Work time of a task, by step id, else by role, else `default_work`.
    pub work: BTreeMap<String, Dist>,
    pub role_work: BTreeMap<String, Dist>,
    pub default_work: Dist,
    /// Weights of the outcomes of a step (task or call), by step id; a step without weights
    /// always takes its first outcome (the way forward).
    pub outcomes: BTreeMap<String, Vec<(String, f64)>>,
    /// Members per role; roles not listed have one.
    pub staff: BTreeMap<String, usize>,
    /// How long providers take to answer a call, unless `answers` names the step.
    pub provider: Dist,
    /// How long the sponsor takes to answer a wait, unless `answers` names the step.
    pub sponsor: Dist,
    pub answers: BTreeMap<String, Dist>,
    /// The share of calls providers answer, and of waits sponsors answer (1 by default); a
    /// call or wait left unanswered takes its timeout path as the definition says.
    pub provider_answers: f64,
    pub sponsor_answers: f64,
    /// The same, for one call or wait step.
    pub answer_shares: BTreeMap<String, f64>,
}

/// Monday 4 January 2027, 00:00: the default first arrival.
pub const DEFAULT_START: Timestamp = Timestamp(1_799_020_800_000);

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            start: DEFAULT_START,
            calendar: Calendar::Always,
            interarrival: Dist::Exponential { mean: 1.0 },
            schedule: None,
            work: BTreeMap::new(),
            role_work: BTreeMap::new(),
            default_work: Dist::Fixed(1.0),
            outcomes: BTreeMap::new(),
            staff: BTreeMap::new(),
            provider: Dist::Fixed(5.0),
            sponsor: Dist::Fixed(5.0),
            answers: BTreeMap::new(),
            provider_answers: 1.0,
            sponsor_answers: 1.0,
            answer_shares: BTreeMap::new(),
        }
    }
}

/// The queue of one role.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Queue {
    pub members: usize,
    /// Share of the members' working time spent working, until the last request ended.
    pub utilisation: f64,
    /// Mean number of tasks waiting for a free member, over the run.
    pub mean_length: f64,
    pub max_length: usize,
    /// Mean time a task waited for a free member, in days.
    pub mean_wait: f64,
    /// Whether its queue kept growing: over the second half of the arrivals, at least twice
    /// as long on average as over the first half, and by [`GROWING_BY`] tasks or more.
    pub growing: bool,
    /// Busy more than [`BUSY_LIMIT`] of their time, or a queue that kept growing: the role
    /// cannot keep up, and the lead times measure its queue more than the model.
    pub overloaded: bool,
}

/// Utilisation above which a role is overloaded.
pub const BUSY_LIMIT: f64 = 0.95;
/// Growth of a role's mean queue, from the first half of the arrivals to the second, from
/// which it counts as growing (with a doubling).
pub const GROWING_BY: f64 = 5.0;

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub desk: String,
    pub requests: usize,
    pub ended: BTreeMap<String, usize>,
    /// Lead time of ended requests, in days.
    pub lead_time: Option<Stats>,
    /// Completions of each step, over all requests.
    pub completions: BTreeMap<String, usize>,
    /// Share of time each role's members were busy, until the last request ended.
    pub utilisation: BTreeMap<String, f64>,
    pub queues: BTreeMap<String, Queue>,
    /// Time tasks waited for a free member, in days.
    pub queue_wait: Option<Stats>,
    /// The desk's declared indicators, computed as for recorded requests.
    pub kpis: Vec<KpiRow>,
    /// Per-step timings, computed as for recorded requests.
    pub steps: Vec<StepRow>,
    /// From the first arrival to the last end, in days.
    pub span_days: f64,
    /// The roles that cannot keep up ([`Queue::overloaded`]), the busiest first: the ones
    /// to reinforce.
    pub overloaded: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrival,
    /// A member finished work on a task.
    Done {
        request: usize,
        task: Seq,
        role: String,
    },
    Callback {
        request: usize,
        token: Seq,
    },
    Answer {
        request: usize,
        token: Seq,
    },
    Timer {
        request: usize,
        timer: Seq,
    },
}

fn ms(days: f64) -> i64 {
    #[allow(clippy::cast_possible_truncation)]
    let v = (days * DAY_MS).round() as i64;
    v
}

/// When the simulated time starts: the scenario's start, or its first scheduled arrival
/// when earlier.
fn origin(sc: &Scenario) -> i64 {
    sc.schedule
        .as_ref()
        .and_then(|s| s.first().copied())
        .map_or(sc.start.0, |first| first.min(sc.start.0))
}

/// Simulated time runs at most this long after the last arrival (a guard against a scenario
/// whose requests never end).
const MAX_SPAN_MS: i64 = 50 * 365 * 86_400_000;

#[derive(Default)]
struct RoleQueue {
    waiting: VecDeque<(usize, Seq, i64)>,
    free: usize,
    busy_ms: i64,
    wait_ms: i64,
    served: usize,
    max_len: usize,
    /// Sum and count of the queue's lengths seen at arrivals, in the first half of them and
    /// in the second.
    early: (usize, usize),
    late: (usize, usize),
}

struct Sim<'a> {
    p: &'a Process,
    sc: &'a Scenario,
    rng: Rng,
    now: i64,
    queue: BinaryHeap<Reverse<(i64, u64, Ev)>>,
    order: u64,
    requests: Vec<Instance>,
    ids: Vec<String>,
    started: Vec<i64>,
    ended_at: Vec<Option<i64>>,
    /// The history of each running request, and its tasks' deadlines, for its facts when it
    /// ends.
    history: Vec<Vec<Event>>,
    due: Vec<BTreeMap<Seq, Timestamp>>,
    roles: BTreeMap<String, RoleQueue>,
    /// Tasks and timers already given an event, per request.
    seen: Vec<BTreeSet<(u8, Seq)>>,
    /// Calls and waits whose answer is on its way: (request, token). A token that comes back
    /// to a call (a retry after a timeout) gets a new answer once the previous one has landed.
    pending: BTreeSet<(usize, Seq)>,
    queue_waits: Vec<f64>,
    completions: BTreeMap<String, usize>,
    tally: Tally,
    /// How ended requests ended.
    results: BTreeMap<String, usize>,
    /// The form data each step's completion carries, sampled once.
    fields: Vec<Fields>,
    /// Whether to keep histories and tally facts (not needed for forecasts).
    facts: bool,
    ended: usize,
    /// Where each ended request goes whole, when someone wants them (the dataset generator).
    sink: Option<&'a mut dyn FnMut(EndedRequest)>,
}

/// A simulated request that ended, with everything the engine stores about it.
#[derive(Debug, Clone)]
pub struct EndedRequest {
    pub id: String,
    pub started: i64,
    pub ended: i64,
    /// The final state.
    pub instance: Instance,
    pub events: Vec<Event>,
    pub due: BTreeMap<Seq, Timestamp>,
    pub visits: Vec<facts::Visit>,
    pub kpis: Vec<(String, f64)>,
    pub intake: Vec<(String, String)>,
}

impl<'a> Sim<'a> {
    fn new(p: &'a Process, sc: &'a Scenario, seed: u64, facts: bool) -> Self {
        Sim {
            p,
            sc,
            rng: Rng::new(seed),
            now: origin(sc),
            queue: BinaryHeap::new(),
            order: 0,
            requests: Vec::new(),
            ids: Vec::new(),
            started: Vec::new(),
            ended_at: Vec::new(),
            history: Vec::new(),
            due: Vec::new(),
            roles: BTreeMap::new(),
            seen: Vec::new(),
            pending: BTreeSet::new(),
            queue_waits: Vec::new(),
            completions: BTreeMap::new(),
            tally: Tally::default(),
            results: BTreeMap::new(),
            fields: p.steps.iter().map(|s| sample_fields(s.form())).collect(),
            facts,
            ended: 0,
            sink: None,
        }
    }

    fn push(&mut self, at: i64, ev: Ev) {
        self.order += 1;
        self.queue.push(Reverse((at.max(self.now), self.order, ev)));
    }

    fn role(&mut self, role: &str) -> &mut RoleQueue {
        let members = *self.sc.staff.get(role).unwrap_or(&1);
        self.roles
            .entry(role.to_owned())
            .or_insert_with(|| RoleQueue {
                free: members,
                ..RoleQueue::default()
            })
    }

    fn outcome(&mut self, step: usize) -> Option<String> {
        let s = &self.p.steps[step];
        let declared = s.outcomes();
        if declared.is_empty() {
            return None;
        }
        // A scenario written for several models may weigh outcomes this model's step does
        // not have: only its own count.
        let weights: Vec<&(String, f64)> = self
            .sc
            .outcomes
            .get(&s.id)
            .map(|w| {
                w.iter()
                    .filter(|(o, _)| declared.iter().any(|d| d.id == *o))
                    .collect()
            })
            .unwrap_or_default();
        let total: f64 = weights.iter().map(|w| w.1).sum();
        if total <= 0.0 {
            return Some(declared[0].id.clone());
        }
        let mut x = self.rng.unit() * total;
        for (o, w) in &weights {
            if x < *w {
                return Some(o.clone());
            }
            x -= w;
        }
        weights.last().map(|w| w.0.clone())
    }

    /// Adds a request (new or already under way) and schedules what it waits for.
    fn admit(&mut self, id: String, inst: Instance, events: Vec<Event>) {
        self.started.push(inst.started_at.0);
        self.requests.push(inst);
        self.ids.push(id);
        self.ended_at.push(None);
        self.history
            .push(if self.facts { events } else { Vec::new() });
        self.due.push(BTreeMap::new());
        self.seen.push(BTreeSet::new());
        self.schedule(self.requests.len() - 1);
    }

    /// Applies a command; the core refuses stale timers and late answers, and those events
    /// are simply dropped. Returns whether it applied.
    fn advance(&mut self, r: usize, command: Command) -> bool {
        let inst = self.requests[r].clone();
        match core::advance(self.p, inst, command, Timestamp(self.now)) {
            Ok((next, t)) => {
                self.requests[r] = next;
                if self.facts {
                    self.history[r].extend(t.events);
                }
                true
            }
            Err(_) => false,
        }
    }

    fn apply(&mut self, r: usize, command: Command) {
        if self.advance(r, command) {
            self.schedule(r);
        }
    }

    /// Records the facts of an ended request, as the engine does when a request ends.
    fn finish(&mut self, r: usize) {
        self.ended_at[r] = Some(self.now);
        self.ended += 1;
        let result = match self.requests[r].status {
            InstanceStatus::Ended(e) => e.as_str(),
            InstanceStatus::Cancelled => "cancelled",
            InstanceStatus::Running => "running",
        };
        *self.results.entry(result.to_owned()).or_default() += 1;
        self.seen[r] = BTreeSet::new();
        if !self.facts {
            return;
        }
        let events = std::mem::take(&mut self.history[r]);
        let inst = &self.requests[r];
        let due = std::mem::take(&mut self.due[r]);
        let visits = facts::visits(self.p, &events, &due);
        let desk = &self.p.name;
        let group = String::new();
        self.tally.request(desk, &group, self.now - self.started[r]);
        let kpis = facts::kpi_values(self.p, inst, &visits);
        for (kpi, v) in &kpis {
            self.tally.value(desk, &group, kpi, *v);
        }
        for v in &visits {
            let times = VisitTimes {
                first: v.visit == 1,
                entered: v.entered_at.0,
                claimed: v.claimed_at.map(|t| t.0),
                left: v.left_at.map(|t| t.0),
                due: v.due_at.map(|t| t.0),
            };
            self.tally.visit(desk, &group, &v.step, v.kind, times);
        }
        if let Some(sink) = self.sink.as_mut() {
            let intake = facts::intake_fields(self.p, inst);
            sink(EndedRequest {
                id: self.ids[r].clone(),
                started: self.started[r],
                ended: self.now,
                instance: std::mem::replace(&mut self.requests[r], Instance::new(Timestamp(0))),
                events,
                due,
                visits,
                kpis,
                intake,
            });
        }
        // Only the facts are kept of an ended request, so memory follows the open ones.
        self.requests[r] = Instance::new(Timestamp(0));
    }

    /// Gives every new task, call, wait and timer of a request its event.
    fn schedule(&mut self, r: usize) {
        let inst = &self.requests[r];
        if inst.status != InstanceStatus::Running {
            if self.ended_at[r].is_none() {
                self.finish(r);
            }
            return;
        }
        let seen = &self.seen[r];
        let tasks: Vec<(Seq, String, Option<Timestamp>)> = inst
            .tasks
            .values()
            .filter(|t| !seen.contains(&(0, t.seq)))
            .map(|t| (t.seq, t.role.clone(), t.due_at))
            .collect();
        let tokens: Vec<(Seq, usize)> = inst.tokens.iter().map(|(k, t)| (*k, t.step)).collect();
        let timers: Vec<(Seq, Timestamp)> = inst
            .timers
            .values()
            .filter(|t| !seen.contains(&(3, t.seq)))
            .map(|t| (t.seq, t.due_at))
            .collect();
        for (seq, role, due) in tasks {
            self.seen[r].insert((0, seq));
            if let Some(d) = due {
                self.due[r].insert(seq, d);
            }
            let now = self.now;
            let q = self.role(&role);
            q.waiting.push_back((r, seq, now));
            q.max_len = q.max_len.max(q.waiting.len());
        }
        // A call or wait that is over (answered, or its timeout took the declared path) may
        // come back later (a retry): it is decided afresh then.
        let waiting: BTreeSet<Seq> = tokens
            .iter()
            .filter(|(_, step)| {
                matches!(
                    self.p.steps[*step].kind,
                    StepKind::Call(_) | StepKind::Wait(_)
                )
            })
            .map(|(t, _)| *t)
            .collect();
        let over: Vec<(usize, Seq)> = self
            .pending
            .range((r, 0)..=(r, Seq::MAX))
            .filter(|(_, t)| !waiting.contains(t))
            .copied()
            .collect();
        for k in over {
            self.pending.remove(&k);
        }
        for (token, step) in tokens {
            let step = &self.p.steps[step];
            let (default, event, share) = match &step.kind {
                StepKind::Call(_) => (self.sc.provider, false, self.sc.provider_answers),
                StepKind::Wait(_) => (self.sc.sponsor, true, self.sc.sponsor_answers),
                _ => continue,
            };
            if self.pending.insert((r, token)) {
                let share = *self.sc.answer_shares.get(&step.id).unwrap_or(&share);
                if self.rng.unit() >= share {
                    continue; // never answered: the timeout decides
                }
                let delay = self.sc.answers.get(&step.id).unwrap_or(&default);
                let at = self.now + ms(delay.sample(&mut self.rng));
                let request = r;
                self.push(
                    at,
                    if event {
                        Ev::Answer { request, token }
                    } else {
                        Ev::Callback { request, token }
                    },
                );
            }
        }
        for (seq, due) in timers {
            self.seen[r].insert((3, seq));
            self.push(
                due.0,
                Ev::Timer {
                    request: r,
                    timer: seq,
                },
            );
        }
        self.assign();
    }

    fn work_of(&self, step: &str, role: &str) -> Dist {
        *self
            .sc
            .work
            .get(step)
            .or_else(|| self.sc.role_work.get(role))
            .unwrap_or(&self.sc.default_work)
    }

    /// Free members take the oldest waiting task of their role; they claim it, so the
    /// history tells waiting from working time as it does for real staff.
    fn assign(&mut self) {
        let roles: Vec<String> = self.roles.keys().cloned().collect();
        for role in roles {
            loop {
                let q = self.role(&role);
                if q.free == 0 {
                    break;
                }
                let Some((r, task, queued)) = q.waiting.pop_front() else {
                    break;
                };
                // A task escalated, delegated or cancelled meanwhile is skipped here.
                let Some(t) = self.requests[r].tasks.get(&task) else {
                    continue;
                };
                let work = self.work_of(&self.p.steps[t.step].id, &role);
                let work_ms =
                    ms(work.sample(&mut self.rng) * self.sc.calendar.day_ms() as f64 / DAY_MS);
                let user = format!("sim:{role}");
                self.advance(r, Command::Claim { task, user });
                let now = self.now;
                let done = self.sc.calendar.add_work(now, work_ms);
                let q = self.role(&role);
                q.free -= 1;
                q.busy_ms += work_ms;
                q.wait_ms += now - queued;
                q.served += 1;
                #[allow(clippy::cast_precision_loss)]
                self.queue_waits.push((now - queued) as f64 / DAY_MS);
                self.push(
                    done,
                    Ev::Done {
                        request: r,
                        task,
                        role: role.clone(),
                    },
                );
            }
        }
    }

    fn step_event(&mut self, request: usize, token: Seq) -> Option<usize> {
        self.pending.remove(&(request, token));
        let step = self.requests[request].tokens.get(&token).map(|t| t.step)?;
        *self
            .completions
            .entry(self.p.steps[step].id.clone())
            .or_default() += 1;
        Some(step)
    }

    /// Runs until nothing is left to happen, calling `progress` with the number of ended
    /// requests as they end.
    fn run(&mut self, intake: &Fields, arrivals: usize, progress: &mut dyn FnMut(usize)) {
        let p = self.p;
        let mut schedule = self.sc.schedule.clone().map(VecDeque::from);
        let mut limit = self.now + MAX_SPAN_MS;
        if arrivals > 0 {
            let first = match &mut schedule {
                Some(s) => s.pop_front(),
                None => Some(self.sc.start.0),
            };
            if let Some(at) = first {
                self.push(at, Ev::Arrival);
            }
        }
        let mut arrived = 0;
        while let Some(Reverse((at, _, ev))) = self.queue.pop() {
            if at > limit {
                break;
            }
            self.now = at;
            let before = self.ended;
            match ev {
                Ev::Arrival => {
                    limit = at + MAX_SPAN_MS;
                    if let Ok((inst, t)) = core::start(p, intake, Timestamp(at)) {
                        let id = format!("sim-{}", self.requests.len() + 1);
                        self.admit(id, inst, t.events);
                    }
                    let late = arrived * 2 >= arrivals;
                    for q in self.roles.values_mut() {
                        let half = if late { &mut q.late } else { &mut q.early };
                        half.0 += q.waiting.len();
                        half.1 += 1;
                    }
                    arrived += 1;
                    if arrived < arrivals {
                        let next = match &mut schedule {
                            Some(s) => s.pop_front(),
                            None => Some(at + ms(self.sc.interarrival.sample(&mut self.rng))),
                        };
                        if let Some(next) = next {
                            self.push(next, Ev::Arrival);
                        }
                    }
                }
                Ev::Done {
                    request,
                    task,
                    role,
                } => {
                    self.role(&role).free += 1;
                    if let Some(t) = self.requests[request].tasks.get(&task) {
                        let step = t.step;
                        *self
                            .completions
                            .entry(p.steps[step].id.clone())
                            .or_default() += 1;
                        let outcome = self.outcome(step);
                        let fields = self.fields[step].clone();
                        let comment = comment_for(&p.steps[step], outcome.as_deref());
                        self.apply(
                            request,
                            Command::Complete {
                                task,
                                user: format!("sim:{role}"),
                                outcome,
                                fields,
                                comment,
                            },
                        );
                    }
                    self.assign();
                }
                Ev::Callback { request, token } => {
                    let Some(step) = self.step_event(request, token) else {
                        continue;
                    };
                    let StepKind::Call(c) = &p.steps[step].kind else {
                        continue;
                    };
                    let outcome = self.outcome(step);
                    let fields = self.fields[step].clone();
                    let provider = c.provider.clone();
                    self.apply(
                        request,
                        Command::Callback {
                            token,
                            provider,
                            outcome,
                            fields,
                        },
                    );
                }
                Ev::Answer { request, token } => {
                    let Some(step) = self.step_event(request, token) else {
                        continue;
                    };
                    let StepKind::Wait(w) = &p.steps[step].kind else {
                        continue;
                    };
                    let name = w.event.clone();
                    let fields = self.fields[step].clone();
                    self.apply(
                        request,
                        Command::Event {
                            name,
                            fields,
                            actor: Actor::Requester,
                            key: None,
                        },
                    );
                }
                Ev::Timer { request, timer } => {
                    // Timers of tasks done meanwhile are gone: nothing to fire.
                    if self.requests[request].timers.contains_key(&timer) {
                        self.apply(request, Command::FireTimer { timer });
                    }
                }
            }
            if self.ended != before {
                progress(self.ended);
            }
        }
    }

    fn report(self) -> Report {
        let start = origin(self.sc);
        let last = self
            .ended_at
            .iter()
            .flatten()
            .max()
            .copied()
            .unwrap_or(self.now)
            .max(start + 1);
        #[allow(clippy::cast_precision_loss)]
        let lead: Vec<f64> = self
            .ended_at
            .iter()
            .zip(&self.started)
            .filter_map(|(e, s)| e.map(|e| (e - s) as f64 / DAY_MS))
            .collect();
        let mut ended = self.results.clone();
        let running = self.ended_at.iter().filter(|e| e.is_none()).count();
        if running > 0 {
            ended.insert("running".to_owned(), running);
        }
        let open_ms = self.sc.calendar.working_between(start, last).max(1);
        let span_ms = last - start;
        #[allow(clippy::cast_precision_loss)]
        let queues: BTreeMap<String, Queue> = self
            .roles
            .iter()
            .map(|(role, q)| {
                let members = *self.sc.staff.get(role).unwrap_or(&1);
                let mean = |(sum, n): (usize, usize)| sum as f64 / n.max(1) as f64;
                let (early, late) = (mean(q.early), mean(q.late));
                let growing = q.early.1 > 0 && late >= 2.0 * early && late >= early + GROWING_BY;
                let utilisation = q.busy_ms as f64 / (members as f64 * open_ms as f64);
                (
                    role.clone(),
                    Queue {
                        members,
                        utilisation,
                        mean_length: q.wait_ms as f64 / span_ms as f64,
                        max_length: q.max_len,
                        mean_wait: q.wait_ms as f64 / q.served.max(1) as f64 / DAY_MS,
                        growing,
                        overloaded: growing || utilisation > BUSY_LIMIT,
                    },
                )
            })
            .collect();
        let defs = BTreeMap::from([(self.p.name.clone(), Arc::new(self.p.clone()))]);
        let mut overloaded: Vec<(&String, &Queue)> =
            queues.iter().filter(|(_, q)| q.overloaded).collect();
        overloaded.sort_by(|a, b| b.1.utilisation.total_cmp(&a.1.utilisation));
        let overloaded = overloaded.into_iter().map(|(r, _)| r.clone()).collect();
        Report {
            desk: self.p.name.clone(),
            requests: self.requests.len(),
            ended,
            lead_time: Stats::of(lead),
            completions: self.completions,
            utilisation: queues
                .iter()
                .map(|(r, q)| (r.clone(), q.utilisation))
                .collect(),
            queues,
            queue_wait: Stats::of(self.queue_waits),
            kpis: self.tally.kpi_rows(&defs),
            steps: self.tally.step_rows(&defs),
            #[allow(clippy::cast_precision_loss)]
            span_days: span_ms as f64 / DAY_MS,
            overloaded,
        }
    }
}

/// Runs `requests` arrivals of a process through the scenario.
pub fn simulate(p: &Process, sc: &Scenario, requests: usize, seed: u64) -> Report {
    simulate_with(p, sc, requests, seed, &mut |_| {})
}

/// [`simulate`], calling `progress` with the number of ended requests as they end.
pub fn simulate_with(
    p: &Process,
    sc: &Scenario,
    requests: usize,
    seed: u64,
    progress: &mut dyn FnMut(usize),
) -> Report {
    let mut sim = Sim::new(p, sc, seed, true);
    let intake: Fields = sample_fields(p.start().form());
    sim.run(&intake, requests, progress);
    sim.report()
}

/// [`simulate`], handing each ended request whole to `sink` as it ends (to fill a database
/// with realistic histories); the report is not needed then.
pub fn simulate_into(
    p: &Process,
    sc: &Scenario,
    requests: usize,
    seed: u64,
    sink: &mut dyn FnMut(EndedRequest),
) {
    let mut sim = Sim::new(p, sc, seed, true);
    sim.sink = Some(sink);
    let intake: Fields = sample_fields(p.start().form());
    sim.run(&intake, requests, &mut |_| {});
}

/// When an open request is expected to end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    pub id: String,
    /// Median and 90th percentile of the simulated end, over the runs that ended it.
    pub p50: Option<Timestamp>,
    pub p90: Option<Timestamp>,
    /// Share of runs in which it ended within the simulated span.
    pub ends: f64,
}

/// Forecasts when each open request ends: `runs` simulations from their current state at
/// `now`, with the scenario's staff and durations and no new arrivals.
pub fn forecast(
    p: &Process,
    sc: &Scenario,
    open: &[(String, Instance)],
    now: Timestamp,
    runs: usize,
    seed: u64,
) -> Vec<Forecast> {
    let mut ends: Vec<Vec<i64>> = vec![Vec::new(); open.len()];
    let sc = Scenario {
        start: now,
        ..sc.clone()
    };
    for run in 0..runs {
        let mut sim = Sim::new(p, &sc, seed.wrapping_add(run as u64), false);
        for (id, inst) in open {
            sim.admit(id.clone(), inst.clone(), Vec::new());
        }
        sim.run(&Fields::new(), 0, &mut |_| {});
        for (i, e) in sim.ended_at.iter().enumerate() {
            if let Some(e) = e {
                ends[i].push(*e);
            }
        }
    }
    open.iter()
        .zip(ends)
        .map(|((id, _), e)| {
            #[allow(clippy::cast_precision_loss)]
            let share = e.len() as f64 / runs.max(1) as f64;
            #[allow(clippy::cast_possible_truncation)]
            let stats = Stats::of(e.iter().map(|x| *x as f64).collect());
            #[allow(clippy::cast_possible_truncation)]
            Forecast {
                id: id.clone(),
                p50: stats.map(|s| Timestamp(s.median as i64)),
                p90: stats.map(|s| Timestamp(s.p90 as i64)),
                ends: share,
            }
        })
        .collect()
}

/// The comment a simulated person gives with `outcome`: one when the outcome requires it.
pub(crate) fn comment_for(
    step: &guichet_definitions::model::Step,
    outcome: Option<&str>,
) -> Option<String> {
    step.outcomes()
        .iter()
        .any(|o| o.comment && Some(o.id.as_str()) == outcome)
        .then(|| "(simulated)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_have_their_means() {
        let mut rng = Rng::new(7);
        let n = 200_000;
        let mean =
            |d: Dist, rng: &mut Rng| (0..n).map(|_| d.sample(rng)).sum::<f64>() / f64::from(n);
        assert!((mean(Dist::Uniform(2.0, 4.0), &mut rng) - 3.0).abs() < 0.01);
        assert!((mean(Dist::Triangular(0.0, 3.0, 6.0), &mut rng) - 3.0).abs() < 0.02);
        assert!((mean(Dist::Exponential { mean: 2.0 }, &mut rng) - 2.0).abs() < 0.02);
        // Log-normal: mean = median * exp(sigma^2 / 2).
        let sigma = 1.5f64.ln();
        let expected = 3.0 * (sigma * sigma / 2.0).exp();
        assert!(
            (mean(
                Dist::LogNormal {
                    median: 3.0,
                    spread: 1.5
                },
                &mut rng
            ) - expected)
                .abs()
                < 0.03
        );
    }
}
