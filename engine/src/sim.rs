//! Simulation of a desk before adopting it: the real functional core drives every simulated
//! request, on a virtual clock, with staff in limited numbers per role. A discrete-event loop:
//! requests arrive, tasks queue for the members of their role, work takes a sampled time,
//! outcomes are drawn with the scenario's weights, providers and sponsors answer after a
//! sampled delay, and the definition's own timers fire as they fall due.
//!
//! Runs are reproducible: the same scenario and seed give the same results.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use guichet_definitions::model::{Process, StepKind};

use crate::clock::Timestamp;
use crate::core::{self, Actor, Command, Fields, Instance, InstanceStatus, Seq};
use crate::drive::sample_fields;
use crate::kpi::Stats;

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

/// What the simulation assumes.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Time between two arrivals.
    pub interarrival: Dist,
    /// Work time of a task, by step id; `default_work` otherwise.
    pub work: BTreeMap<String, Dist>,
    pub default_work: Dist,
    /// Weights of the outcomes of a step (task or call), by step id; a step without weights
    /// always takes its first outcome (the way forward).
    pub outcomes: BTreeMap<String, Vec<(String, f64)>>,
    /// Members per role; roles not listed have one.
    pub staff: BTreeMap<String, usize>,
    /// How long providers take to answer a call.
    pub provider: Dist,
    /// How long the sponsor takes to answer a wait.
    pub sponsor: Dist,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            interarrival: Dist::Exponential { mean: 1.0 },
            work: BTreeMap::new(),
            default_work: Dist::Fixed(1.0),
            outcomes: BTreeMap::new(),
            staff: BTreeMap::new(),
            provider: Dist::Fixed(5.0),
            sponsor: Dist::Fixed(5.0),
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub requests: usize,
    pub ended: BTreeMap<String, usize>,
    /// Lead time of ended requests, in days.
    pub lead_time: Option<Stats>,
    /// Completions of each step, over all requests.
    pub completions: BTreeMap<String, usize>,
    /// Share of time each role's members were busy, until the last request ended.
    pub utilisation: BTreeMap<String, f64>,
    /// Time tasks waited for a free member, in days.
    pub queue_wait: Option<Stats>,
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

struct Sim<'a> {
    p: &'a Process,
    sc: &'a Scenario,
    rng: Rng,
    now: i64,
    queue: BinaryHeap<Reverse<(i64, u64, Ev)>>,
    order: u64,
    requests: Vec<Instance>,
    started: Vec<i64>,
    ended_at: Vec<Option<i64>>,
    /// Tasks waiting for a member: (request, task, queued at).
    waiting: BTreeMap<String, VecDeque<(usize, Seq, i64)>>,
    free: BTreeMap<String, usize>,
    busy_ms: BTreeMap<String, i64>,
    /// Tasks and timers already given an event, per request.
    seen: Vec<std::collections::BTreeSet<(u8, Seq)>>,
    /// Calls and waits whose answer is on its way: (request, token). A token that comes back
    /// to a call (a retry after a timeout) gets a new answer once the previous one has landed.
    pending: std::collections::BTreeSet<(usize, Seq)>,
    queue_waits: Vec<f64>,
    completions: BTreeMap<String, usize>,
}

impl Sim<'_> {
    fn push(&mut self, at: i64, ev: Ev) {
        self.order += 1;
        self.queue.push(Reverse((at, self.order, ev)));
    }

    fn outcome(&mut self, step: usize) -> Option<String> {
        let s = &self.p.steps[step];
        let declared = s.outcomes();
        if declared.is_empty() {
            return None;
        }
        match self.sc.outcomes.get(&s.id) {
            Some(weights) => {
                let total: f64 = weights.iter().map(|w| w.1).sum();
                let mut x = self.rng.unit() * total;
                for (o, w) in weights {
                    if x < *w {
                        return Some(o.clone());
                    }
                    x -= w;
                }
                weights.last().map(|w| w.0.clone())
            }
            None => Some(declared[0].id.clone()),
        }
    }

    fn apply(&mut self, r: usize, command: Command) {
        let now = Timestamp(self.now);
        let inst = self.requests[r].clone();
        // The core refuses stale timers and late answers: those events are simply dropped.
        if let Ok((next, _)) = core::advance(self.p, inst, command, now) {
            self.requests[r] = next;
            self.schedule(r);
        }
    }

    /// Gives every new task, call, wait and timer of a request its event.
    fn schedule(&mut self, r: usize) {
        let inst = self.requests[r].clone();
        if inst.status != InstanceStatus::Running {
            if self.ended_at[r].is_none() {
                self.ended_at[r] = Some(self.now);
            }
            return;
        }
        for t in inst.tasks.values() {
            if self.seen[r].insert((0, t.seq)) {
                self.waiting
                    .entry(t.role.clone())
                    .or_default()
                    .push_back((r, t.seq, self.now));
            }
        }
        for (token, tok) in &inst.tokens {
            match &self.p.steps[tok.step].kind {
                StepKind::Call(_) if self.pending.insert((r, *token)) => {
                    let at = self.now + ms(self.sc.provider.sample(&mut self.rng));
                    self.push(
                        at,
                        Ev::Callback {
                            request: r,
                            token: *token,
                        },
                    );
                }
                StepKind::Wait(_) if self.pending.insert((r, *token)) => {
                    let at = self.now + ms(self.sc.sponsor.sample(&mut self.rng));
                    self.push(
                        at,
                        Ev::Answer {
                            request: r,
                            token: *token,
                        },
                    );
                }
                _ => {}
            }
        }
        for t in inst.timers.values() {
            if self.seen[r].insert((3, t.seq)) {
                self.push(
                    t.due_at.0,
                    Ev::Timer {
                        request: r,
                        timer: t.seq,
                    },
                );
            }
        }
        self.assign();
    }

    /// Free members take the oldest waiting task of their role.
    fn assign(&mut self) {
        let roles: Vec<String> = self.waiting.keys().cloned().collect();
        for role in roles {
            loop {
                let free = *self
                    .free
                    .entry(role.clone())
                    .or_insert_with(|| *self.sc.staff.get(&role).unwrap_or(&1));
                if free == 0 {
                    break;
                }
                let Some((r, task, queued)) =
                    self.waiting.get_mut(&role).and_then(VecDeque::pop_front)
                else {
                    break;
                };
                // A task escalated or delegated meanwhile is skipped here and seen again later.
                let Some(t) = self.requests[r].tasks.get(&task) else {
                    continue;
                };
                let step = &self.p.steps[t.step].id;
                let work = self
                    .sc
                    .work
                    .get(step)
                    .unwrap_or(&self.sc.default_work)
                    .sample(&mut self.rng);
                #[allow(clippy::cast_precision_loss)]
                self.queue_waits.push((self.now - queued) as f64 / DAY_MS);
                *self.free.entry(role.clone()).or_default() -= 1;
                *self.busy_ms.entry(role.clone()).or_default() += ms(work);
                let at = self.now + ms(work);
                self.push(
                    at,
                    Ev::Done {
                        request: r,
                        task,
                        role: role.clone(),
                    },
                );
            }
        }
    }
}

/// Runs `requests` arrivals of a process through the scenario.
pub fn simulate(p: &Process, sc: &Scenario, requests: usize, seed: u64) -> Report {
    let mut sim = Sim {
        p,
        sc,
        rng: Rng::new(seed),
        now: 0,
        queue: BinaryHeap::new(),
        order: 0,
        requests: Vec::new(),
        started: Vec::new(),
        ended_at: Vec::new(),
        waiting: BTreeMap::new(),
        free: BTreeMap::new(),
        busy_ms: BTreeMap::new(),
        seen: Vec::new(),
        pending: std::collections::BTreeSet::new(),
        queue_waits: Vec::new(),
        completions: BTreeMap::new(),
    };
    let intake: Fields = sample_fields(p.start().form());
    sim.push(0, Ev::Arrival);
    let mut arrived = 0;
    while let Some(Reverse((at, _, ev))) = sim.queue.pop() {
        sim.now = at;
        match ev {
            Ev::Arrival => {
                if let Ok((inst, _)) = core::start(p, &intake, Timestamp(at)) {
                    sim.requests.push(inst);
                    sim.started.push(at);
                    sim.ended_at.push(None);
                    sim.seen.push(std::collections::BTreeSet::new());
                    sim.schedule(sim.requests.len() - 1);
                }
                arrived += 1;
                if arrived < requests {
                    let next = at + ms(sc.interarrival.sample(&mut sim.rng));
                    sim.push(next, Ev::Arrival);
                }
            }
            Ev::Done {
                request,
                task,
                role,
            } => {
                *sim.free.entry(role).or_default() += 1;
                if let Some(t) = sim.requests[request].tasks.get(&task) {
                    let step = t.step;
                    *sim.completions.entry(p.steps[step].id.clone()).or_default() += 1;
                    let outcome = sim.outcome(step);
                    let fields = sample_fields(p.steps[step].form());
                    sim.apply(
                        request,
                        Command::Complete {
                            task,
                            user: "sim".into(),
                            outcome,
                            fields,
                        },
                    );
                }
                sim.assign();
            }
            Ev::Callback { request, token } => {
                sim.pending.remove(&(request, token));
                let Some(step) = sim.requests[request].tokens.get(&token).map(|t| t.step) else {
                    continue;
                };
                let StepKind::Call(c) = &p.steps[step].kind else {
                    continue;
                };
                *sim.completions.entry(p.steps[step].id.clone()).or_default() += 1;
                let outcome = sim.outcome(step);
                let fields = sample_fields(p.steps[step].form());
                let provider = c.provider.clone();
                sim.apply(
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
                sim.pending.remove(&(request, token));
                let Some(step) = sim.requests[request].tokens.get(&token).map(|t| t.step) else {
                    continue;
                };
                let StepKind::Wait(w) = &p.steps[step].kind else {
                    continue;
                };
                let name = w.event.clone();
                let fields = sample_fields(p.steps[step].form());
                sim.apply(
                    request,
                    Command::Event {
                        name,
                        fields,
                        actor: Actor::Requester,
                    },
                );
            }
            Ev::Timer { request, timer } => sim.apply(request, Command::FireTimer { timer }),
        }
    }
    let horizon = sim
        .ended_at
        .iter()
        .flatten()
        .max()
        .copied()
        .unwrap_or(sim.now)
        .max(1);
    #[allow(clippy::cast_precision_loss)]
    let lead: Vec<f64> = sim
        .ended_at
        .iter()
        .zip(&sim.started)
        .filter_map(|(e, s)| e.map(|e| (e - s) as f64 / DAY_MS))
        .collect();
    let mut ended = BTreeMap::new();
    for inst in &sim.requests {
        let key = match inst.status {
            InstanceStatus::Ended(r) => r.as_str().to_owned(),
            InstanceStatus::Cancelled => "cancelled".to_owned(),
            InstanceStatus::Running => "running".to_owned(),
        };
        *ended.entry(key).or_default() += 1;
    }
    #[allow(clippy::cast_precision_loss)]
    let utilisation = sim
        .busy_ms
        .iter()
        .map(|(role, busy)| {
            let members = *sc.staff.get(role).unwrap_or(&1) as f64;
            (role.clone(), *busy as f64 / (members * horizon as f64))
        })
        .collect();
    Report {
        requests: sim.requests.len(),
        ended,
        lead_time: Stats::of(lead),
        completions: sim.completions,
        utilisation,
        queue_wait: Stats::of(sim.queue_waits),
    }
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
