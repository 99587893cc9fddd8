//! Advancing an instance: a pure function of (checked process, state, command, now) that
//! returns the new state, the effects for the shell and the history events.
//!
//! Tokens move through the compiled [`Flow`](guichet_definitions::model::Flow): automatic
//! steps (notifications, gates, parallel splits and joins) run at once, in a work loop; a
//! token stops at a task, a call or a wait until a later command moves it on. A command either
//! succeeds whole or fails with an [`Error`] and changes nothing (the caller keeps the old
//! state).

use std::collections::{BTreeSet, VecDeque};

use guichet_definitions::model::{Exit, FieldType, Process, StepIdx, StepKind, Target};

use crate::clock::Timestamp;
use crate::core::eval;
use crate::core::form::{self, FieldError};
use crate::core::io::{Actor, Command, Effect, Event, EventKind, Recipient, Transition};
use crate::core::lifecycle::{self, TaskAction};
use crate::core::state::{
    Fields, Instance, InstanceStatus, ReceivedEvent, Seq, StepData, Task, TaskState, Timer,
    TimerKind, Token,
};

/// How many automatic steps one command may run. A definition whose gates loop without ever
/// waiting would otherwise spin forever; this turns it into an error that changes nothing.
pub const MAX_AUTOMATIC_STEPS: usize = 10_000;

/// Why a command was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("the request is no longer running ({0:?})")]
    NotRunning(InstanceStatus),
    #[error("no open task {0} in this request")]
    UnknownTask(Seq),
    #[error("task {task} is claimed by {by}")]
    ClaimedBy { task: Seq, by: String },
    #[error("cannot {action:?} task {task} while it is {state:?}")]
    InvalidTaskTransition {
        task: Seq,
        state: TaskState,
        action: TaskAction,
    },
    #[error("invalid data: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("an outcome is required: one of {0:?}")]
    OutcomeRequired(Vec<String>),
    #[error("unknown outcome `{given}`: one of {allowed:?}")]
    UnknownOutcome { given: String, allowed: Vec<String> },
    #[error("step `{0}` has no outcomes")]
    NoOutcomes(String),
    #[error("no call waits at token {0} (answered already, timed out, or never sent)")]
    UnknownToken(Seq),
    #[error("the callback comes from `{given}` but the step calls `{expected}`")]
    WrongProvider { given: String, expected: String },
    #[error("no step of this process waits for event `{0}`")]
    UnknownEvent(String),
    #[error(
        "nothing waits for event `{event}` in this request now: {} not open (not reached yet, answered already or timed out), and no wait for it that the request can still reach keeps an early event (keep-early)",
        waits.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ") + if waits.len() > 1 { " are" } else { " is" }
    )]
    NotAwaited { event: String, waits: Vec<String> },
    #[error("no scheduled timer {0}")]
    UnknownTimer(Seq),
    #[error("timer {timer} is due at {due:?}, not yet")]
    TimerNotDue { timer: Seq, due: Timestamp },
    #[error("unknown role `{0}`")]
    UnknownRole(String),
    #[error(
        "the process ran {MAX_AUTOMATIC_STEPS} automatic steps without waiting (a loop of gates?)"
    )]
    Livelock,
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A fault of the engine or of the process (a lost token, a loop of automatic steps), not
    /// something the person who sent the command did wrong or can fix.
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::Internal(_) | Error::Livelock)
    }
}

/// Starts a request with the sponsor's intake data.
pub fn start(
    p: &Process,
    fields: &Fields,
    now: Timestamp,
) -> Result<(Instance, Transition), Error> {
    let mut m = Machine::new(p, Instance::new(now), now, Actor::Requester);
    let start = p.start();
    let fields = form::validate(start.form().unwrap_or(&Default::default()), fields)
        .map_err(Error::Invalid)?;
    m.event(EventKind::InstanceStarted);
    m.event(EventKind::StepEntered {
        step: start.id.clone(),
    });
    m.record(0, None, fields);
    m.event(EventKind::StepCompleted {
        step: start.id.clone(),
        outcome: None,
    });
    let token = m.inst.seq();
    m.inst.tokens.insert(token, Token { step: 0 });
    m.follow(0, Exit::Next, token)?;
    m.finish()
}

/// Applies one command to a request.
pub fn advance(
    p: &Process,
    inst: Instance,
    command: Command,
    now: Timestamp,
) -> Result<(Instance, Transition), Error> {
    if !inst.is_running() {
        return Err(Error::NotRunning(inst.status));
    }
    let actor = match &command {
        Command::Claim { user, .. }
        | Command::Release { user, .. }
        | Command::Complete { user, .. } => Actor::User(user.clone()),
        Command::Delegate { by, .. } => Actor::User(by.clone()),
        Command::Callback { provider, .. } => Actor::Provider(provider.clone()),
        Command::Event { actor, .. } | Command::Cancel { actor, .. } => actor.clone(),
        Command::FireTimer { .. } => Actor::System,
    };
    let mut m = Machine::new(p, inst, now, actor);
    match command {
        Command::Claim { task, user } => m.claim(task, user)?,
        Command::Release { task, user } => m.release(task, &user)?,
        Command::Delegate { task, to, .. } => m.delegate(task, to)?,
        Command::Complete {
            task,
            user,
            outcome,
            fields,
            comment,
        } => m.complete(task, &user, outcome, &fields, comment.as_deref())?,
        Command::Callback {
            token,
            provider,
            outcome,
            fields,
        } => {
            m.callback(token, &provider, outcome, &fields)?;
        }
        Command::Event {
            name, fields, key, ..
        } => m.external_event(name, fields, key)?,
        Command::FireTimer { timer } => m.fire(timer)?,
        Command::Cancel { reason, .. } => m.cancel(reason),
    }
    m.finish()
}

struct Machine<'p> {
    p: &'p Process,
    inst: Instance,
    now: Timestamp,
    actor: Actor,
    out: Transition,
    work: VecDeque<(Target, Seq)>,
    steps_run: usize,
}

impl<'p> Machine<'p> {
    fn new(p: &'p Process, inst: Instance, now: Timestamp, actor: Actor) -> Self {
        Machine {
            p,
            inst,
            now,
            actor,
            out: Transition::default(),
            work: VecDeque::new(),
            steps_run: 0,
        }
    }

    fn finish(mut self) -> Result<(Instance, Transition), Error> {
        self.run()?;
        Ok((self.inst, self.out))
    }

    fn event(&mut self, kind: EventKind) {
        self.out.events.push(Event {
            at: self.now,
            actor: self.actor.clone(),
            kind,
        });
    }

    fn effect(&mut self, e: Effect) {
        self.out.effects.push(e);
    }

    fn id(&self, step: StepIdx) -> String {
        self.p.steps[step].id.clone()
    }

    /// Records a completion of `step` with its outcome and fields (and, in the history, the
    /// documents among them).
    fn record(&mut self, step: StepIdx, outcome: Option<String>, fields: Fields) {
        let p = self.p;
        if let Some(form) = p.steps[step].form() {
            for f in form.fields.iter().filter(|f| f.ty == FieldType::File) {
                let Some(doc) = fields.get(&f.id) else {
                    continue;
                };
                let text = |k: &str| doc.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
                self.event(EventKind::DocumentReceived {
                    step: p.steps[step].id.clone(),
                    field: f.id.clone(),
                    sha256: text("sha256"),
                    name: text("name"),
                    size: doc
                        .get("size")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0),
                    media_type: text("type"),
                });
            }
        }
        let d = self.inst.data.entry(self.id(step)).or_default();
        d.count += 1;
        d.outcome = outcome;
        d.fields = fields;
        d.comment = None;
    }

    /// Moves the token out of `step` by `exit`.
    fn follow(&mut self, step: StepIdx, exit: Exit, token: Seq) -> Result<(), Error> {
        let target = self.p.flow.target(step, exit).ok_or_else(|| {
            Error::Internal(format!(
                "step `{}` has no way out for {exit:?}",
                self.id(step)
            ))
        })?;
        self.work.push_back((target, token));
        Ok(())
    }

    /// The work loop: runs automatic steps until every token waits or the instance ends.
    fn run(&mut self) -> Result<(), Error> {
        while let Some((target, token)) = self.work.pop_front() {
            if !self.inst.is_running() {
                self.work.clear();
                break;
            }
            self.steps_run += 1;
            if self.steps_run > MAX_AUTOMATIC_STEPS {
                return Err(Error::Livelock);
            }
            match target {
                Target::Join(par) => self.arrive(par, token)?,
                Target::Step(s) => self.enter(s, token)?,
            }
        }
        Ok(())
    }

    fn arrive(&mut self, par: StepIdx, token: Seq) -> Result<(), Error> {
        let from = self
            .inst
            .tokens
            .remove(&token)
            .ok_or_else(|| Error::Internal("lost token".into()))?;
        let branch = self.p.steps[from.step]
            .scope
            .filter(|s| s.parallel == par)
            .map(|s| s.branch)
            .ok_or_else(|| {
                Error::Internal("a token reached a join from outside its block".into())
            })?;
        let arrived = self.inst.joins.entry(par).or_default();
        arrived.insert(branch);
        let all = arrived.len();
        let StepKind::Parallel(block) = &self.p.steps[par].kind else {
            return Err(Error::Internal(
                "join of a step that is not parallel".into(),
            ));
        };
        // `complete-when`: a condition that holds (one that cannot be evaluated, reading a
        // value not set yet, does not) ends the block now.
        let early = all < block.branches.len()
            && block.complete_when.as_ref().is_some_and(|c| {
                eval::eval(c, &eval::context(self.p, &self.inst.data)).unwrap_or(false)
            });
        if early {
            self.withdraw_inside(par);
        }
        if early || all == block.branches.len() {
            self.inst.joins.remove(&par);
            self.event(EventKind::StepCompleted {
                step: self.id(par),
                outcome: None,
            });
            let next = self.inst.seq();
            self.inst.tokens.insert(next, Token { step: par });
            let count = self.inst.data.get(&self.id(par)).map_or(0, |d| d.count);
            self.inst.data.insert(
                self.id(par),
                StepData {
                    count: count + 1,
                    ..StepData::default()
                },
            );
            self.follow(par, Exit::Next, next)?;
        }
        Ok(())
    }

    fn enter(&mut self, s: StepIdx, token: Seq) -> Result<(), Error> {
        let p = self.p;
        let step = &p.steps[s];
        self.inst
            .tokens
            .get_mut(&token)
            .ok_or_else(|| Error::Internal("lost token".into()))?
            .step = s;
        self.event(EventKind::StepEntered {
            step: step.id.clone(),
        });
        match &step.kind {
            StepKind::Start(_) => {
                return Err(Error::Internal("a token went back to the start".into()));
            }
            StepKind::Task(t) => {
                let seq = self.inst.seq();
                let due_at = t.due.as_ref().map(|d| self.now.plus(d));
                let task = Task {
                    seq,
                    token,
                    step: s,
                    role: t.role.clone(),
                    assignee: None,
                    state: TaskState::Open,
                    created_at: self.now,
                    due_at,
                    overdue: false,
                };
                self.event(EventKind::TaskCreated {
                    task: seq,
                    step: step.id.clone(),
                    role: t.role.clone(),
                });
                self.inst.tasks.insert(seq, task.clone());
                self.effect(Effect::TaskSaved(task));
                self.email("tache-assignee", Recipient::Role(t.role.clone()), Some(seq));
                if let Some(due) = due_at {
                    self.schedule(due, TimerKind::Deadline { task: seq });
                    if let Some(r) = &t.remind {
                        let at = due.minus(r);
                        if at > self.now {
                            self.schedule(at, TimerKind::Reminder { task: seq });
                        }
                    }
                }
                if let Some(esc) = &t.escalation {
                    self.schedule(
                        self.now.plus(&esc.after),
                        TimerKind::Escalation { task: seq },
                    );
                }
                if let Some(t) = &t.timeout {
                    self.schedule(self.now.plus(t), TimerKind::Timeout { token });
                }
            }
            StepKind::Notify(n) => {
                self.email(&n.template, Recipient::Role(n.to.clone()), None);
                self.record(s, None, Fields::new());
                self.event(EventKind::StepCompleted {
                    step: step.id.clone(),
                    outcome: None,
                });
                self.follow(s, Exit::Next, token)?;
            }
            StepKind::Call(c) => {
                self.effect(Effect::CallProvider {
                    provider: c.provider.clone(),
                    step: step.id.clone(),
                    token,
                });
                self.event(EventKind::ProviderCalled {
                    step: step.id.clone(),
                    provider: c.provider.clone(),
                });
                if let Some(t) = &c.timeout {
                    self.schedule(self.now.plus(t), TimerKind::Timeout { token });
                }
            }
            StepKind::Wait(w) => {
                // An event that came early was kept for this wait: take it now, if it is
                // not older than the wait keeps them.
                let form = &w.form;
                let now = self.now;
                let kept = |e: &ReceivedEvent| {
                    e.name == w.event && w.keep_early.as_ref().is_some_and(|d| e.at.plus(d) >= now)
                };
                if w.keep_early.is_some() {
                    self.inst.buffered.retain(|e| e.name != w.event || kept(e));
                }
                let early = self
                    .inst
                    .buffered
                    .iter()
                    .position(|e| kept(e) && form::validate(form, &e.fields).is_ok());
                if let Some(i) = early {
                    let ev = self.inst.buffered.remove(i);
                    let fields = form::validate(form, &ev.fields).map_err(Error::Invalid)?;
                    self.event(EventKind::EventReceived {
                        name: ev.name,
                        step: step.id.clone(),
                    });
                    self.record(s, None, fields);
                    self.event(EventKind::StepCompleted {
                        step: step.id.clone(),
                        outcome: None,
                    });
                    self.follow(s, Exit::Next, token)?;
                } else if let Some(t) = &w.timeout {
                    self.schedule(self.now.plus(t), TimerKind::Timeout { token });
                }
            }
            StepKind::Gate(g) => {
                let ctx = eval::context(p, &self.inst.data);
                let mut taken = None;
                for (i, c) in g.conditions.iter().enumerate() {
                    match eval::eval(c, &ctx) {
                        Ok(true) => {
                            taken = Some(i);
                            break;
                        }
                        Ok(false) => {}
                        Err(error) => {
                            self.event(EventKind::ConditionFailed {
                                step: step.id.clone(),
                                condition: i,
                                error,
                            });
                        }
                    }
                }
                let (exit, branch) = match taken {
                    Some(i) => (Exit::When(i), g.conditions[i].text.clone()),
                    None => (Exit::Otherwise, "otherwise".to_owned()),
                };
                self.event(EventKind::GateTaken {
                    step: step.id.clone(),
                    branch: branch.clone(),
                });
                self.record(s, Some(branch), Fields::new());
                self.follow(s, exit, token)?;
            }
            StepKind::Parallel(block) => {
                self.inst.tokens.remove(&token);
                self.inst.joins.insert(s, BTreeSet::new());
                for b in 0..block.branches.len() {
                    let t = self.inst.seq();
                    self.inst.tokens.insert(t, Token { step: s });
                    self.follow(s, Exit::Branch(b), t)?;
                }
            }
            StepKind::End(e) => {
                self.record(s, None, Fields::new());
                self.event(EventKind::StepCompleted {
                    step: step.id.clone(),
                    outcome: None,
                });
                self.close_all();
                self.inst.status = InstanceStatus::Ended(e.result);
                self.inst.ended_at = Some(self.now);
                self.event(EventKind::InstanceEnded { result: e.result });
                self.effect(Effect::Finished);
            }
        }
        Ok(())
    }

    fn schedule(&mut self, due_at: Timestamp, kind: TimerKind) {
        let seq = self.inst.seq();
        let timer = Timer { seq, due_at, kind };
        self.inst.timers.insert(seq, timer.clone());
        self.effect(Effect::TimerScheduled(timer));
    }

    fn cancel_timers(&mut self, matches: impl Fn(&TimerKind) -> bool) {
        let gone: Vec<Seq> = self
            .inst
            .timers
            .values()
            .filter(|t| matches(&t.kind))
            .map(|t| t.seq)
            .collect();
        for seq in gone {
            self.inst.timers.remove(&seq);
            self.effect(Effect::TimerCancelled { timer: seq });
        }
    }

    fn email(&mut self, template: &str, to: Recipient, task: Option<Seq>) {
        self.event(EventKind::NotificationQueued {
            template: template.to_owned(),
            to: to.clone(),
        });
        self.effect(Effect::Email {
            template: template.to_owned(),
            to,
            task,
        });
    }

    /// Withdraws the open tasks of `token`: cancelled, out of the inbox, their own timers
    /// gone.
    fn withdraw_tasks_of(&mut self, token: Seq) {
        let tasks: Vec<Seq> = self
            .inst
            .tasks
            .values()
            .filter(|t| t.token == token)
            .map(|t| t.seq)
            .collect();
        for task in tasks {
            self.inst.tasks.remove(&task);
            self.event(EventKind::TaskCancelled { task });
            self.effect(Effect::TaskClosed {
                task,
                completed: false,
            });
            self.cancel_timers(|k| {
                matches!(k, TimerKind::Deadline { task: t } | TimerKind::Reminder { task: t } | TimerKind::Escalation { task: t } if *t == task)
            });
        }
    }

    /// Withdraws everything still open inside parallel block `par` (at any depth): tasks
    /// cancelled with their timers, calls and waits no longer answered, tokens and nested
    /// joins gone.
    fn withdraw_inside(&mut self, par: StepIdx) {
        let p = self.p;
        let inside = |mut step: StepIdx| {
            while let Some(sc) = p.steps[step].scope {
                if sc.parallel == par {
                    return true;
                }
                step = sc.parallel;
            }
            false
        };
        let tokens: Vec<(Seq, StepIdx)> = self
            .inst
            .tokens
            .iter()
            .filter(|(_, t)| inside(t.step))
            .map(|(seq, t)| (*seq, t.step))
            .collect();
        for (token, step) in tokens {
            self.inst.tokens.remove(&token);
            self.event(EventKind::StepWithdrawn {
                step: self.id(step),
            });
            self.withdraw_tasks_of(token);
            self.cancel_timers(|k| matches!(k, TimerKind::Timeout { token: t } if *t == token));
        }
        self.inst.joins.retain(|&j, _| !inside(j));
    }

    /// Cancels every open task and timer and drops the tokens (the request is over).
    fn close_all(&mut self) {
        let tasks: Vec<Seq> = self.inst.tasks.keys().copied().collect();
        for t in tasks {
            self.inst.tasks.remove(&t);
            self.event(EventKind::TaskCancelled { task: t });
            self.effect(Effect::TaskClosed {
                task: t,
                completed: false,
            });
        }
        self.cancel_timers(|_| true);
        self.inst.tokens.clear();
        self.inst.joins.clear();
    }

    fn task(&self, seq: Seq) -> Result<&Task, Error> {
        self.inst.tasks.get(&seq).ok_or(Error::UnknownTask(seq))
    }

    /// Applies a lifecycle action to a task, refusing edges the table does not have; `change`
    /// sets what else the action changes (assignee, role).
    fn transition(
        &mut self,
        seq: Seq,
        action: TaskAction,
        change: impl FnOnce(&mut Task),
    ) -> Result<(), Error> {
        let task = self.task(seq)?;
        let next = lifecycle::task(task.state, action).ok_or(Error::InvalidTaskTransition {
            task: seq,
            state: task.state,
            action,
        })?;
        let task = self
            .inst
            .tasks
            .get_mut(&seq)
            .ok_or(Error::UnknownTask(seq))?;
        task.state = next;
        change(task);
        let saved = task.clone();
        self.effect(Effect::TaskSaved(saved));
        Ok(())
    }

    fn claim(&mut self, seq: Seq, user: String) -> Result<(), Error> {
        let task = self.task(seq)?;
        match &task.assignee {
            Some(a) if *a == user => return Ok(()), // claiming twice changes nothing
            Some(a) => {
                return Err(Error::ClaimedBy {
                    task: seq,
                    by: a.clone(),
                });
            }
            None => {}
        }
        self.transition(seq, TaskAction::Claim, |t| t.assignee = Some(user.clone()))?;
        self.event(EventKind::TaskClaimed { task: seq, user });
        Ok(())
    }

    fn release(&mut self, seq: Seq, user: &str) -> Result<(), Error> {
        let task = self.task(seq)?;
        if let Some(a) = &task.assignee
            && a != user
        {
            return Err(Error::ClaimedBy {
                task: seq,
                by: a.clone(),
            });
        }
        self.transition(seq, TaskAction::Release, |t| t.assignee = None)?;
        self.event(EventKind::TaskReleased {
            task: seq,
            user: user.to_owned(),
        });
        Ok(())
    }

    fn delegate(&mut self, seq: Seq, to: Recipient) -> Result<(), Error> {
        match &to {
            Recipient::Person(email) if !super::form::may_be_address(email) => {
                return Err(Error::Invalid(vec![FieldError::new(
                    "to",
                    form::Problem::NotEmail {
                        value: email.clone(),
                    },
                )]));
            }
            Recipient::Person(email) => {
                self.transition(seq, TaskAction::DelegateToPerson, |t| {
                    t.assignee = Some(email.clone())
                })?;
            }
            Recipient::Role(role) => {
                if self.p.role(role).is_none() {
                    return Err(Error::UnknownRole(role.clone()));
                }
                self.transition(seq, TaskAction::DelegateToRole, |t| {
                    t.assignee = None;
                    t.role = role.clone();
                })?;
            }
        }
        self.event(EventKind::TaskDelegated {
            task: seq,
            to: to.clone(),
        });
        self.email("tache-reassignee", to, Some(seq));
        Ok(())
    }

    /// Checks an outcome against a step's declared outcomes; returns the exit to take.
    fn check_outcome(&self, step: StepIdx, outcome: Option<&str>) -> Result<Exit, Error> {
        let declared = self.p.steps[step].outcomes();
        let names = || declared.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
        match (declared.is_empty(), outcome) {
            (true, None) => Ok(Exit::Next),
            (true, Some(_)) => Err(Error::NoOutcomes(self.id(step))),
            (false, None) => Err(Error::OutcomeRequired(names())),
            (false, Some(o)) => declared
                .iter()
                .position(|d| d.id == o)
                .map(Exit::Outcome)
                .ok_or_else(|| Error::UnknownOutcome {
                    given: o.to_owned(),
                    allowed: names(),
                }),
        }
    }

    fn complete(
        &mut self,
        seq: Seq,
        user: &str,
        outcome: Option<String>,
        fields: &Fields,
        comment: Option<&str>,
    ) -> Result<(), Error> {
        let task = self.task(seq)?.clone();
        if let Some(a) = &task.assignee
            && a != user
        {
            return Err(Error::ClaimedBy {
                task: seq,
                by: a.clone(),
            });
        }
        let exit = self.check_outcome(task.step, outcome.as_deref())?;
        let step = &self.p.steps[task.step];
        let chosen = outcome
            .as_deref()
            .and_then(|o| step.outcomes().iter().find(|d| d.id == o));
        // Every problem at once: the fields' and the comment's.
        let fields = form::validate(step.form().unwrap_or(&Default::default()), fields);
        let comment = form::comment(comment, chosen);
        let (fields, comment) = match (fields, comment) {
            (Ok(f), Ok(c)) => (f, c),
            (f, c) => {
                let mut errors = f.err().unwrap_or_default();
                errors.extend(c.err());
                return Err(Error::Invalid(errors));
            }
        };
        lifecycle::task(task.state, TaskAction::Complete).ok_or(Error::InvalidTaskTransition {
            task: seq,
            state: task.state,
            action: TaskAction::Complete,
        })?;
        self.inst.tasks.remove(&seq);
        self.effect(Effect::TaskClosed {
            task: seq,
            completed: true,
        });
        self.cancel_timers(|k| {
            matches!(k, TimerKind::Deadline { task } | TimerKind::Reminder { task } | TimerKind::Escalation { task } if *task == seq)
                || matches!(k, TimerKind::Timeout { token } if *token == task.token)
        });
        self.event(EventKind::TaskCompleted {
            task: seq,
            step: step.id.clone(),
            outcome: outcome.clone(),
            comment: comment.clone(),
        });
        self.record(task.step, outcome.clone(), fields);
        if let Some(d) = self.inst.data.get_mut(&step.id) {
            d.comment = comment;
        }
        self.event(EventKind::StepCompleted {
            step: step.id.clone(),
            outcome,
        });
        self.follow(task.step, exit, task.token)
    }

    fn callback(
        &mut self,
        token: Seq,
        provider: &str,
        outcome: Option<String>,
        fields: &Fields,
    ) -> Result<(), Error> {
        let step_idx = self
            .inst
            .tokens
            .get(&token)
            .map(|t| t.step)
            .ok_or(Error::UnknownToken(token))?;
        let step = &self.p.steps[step_idx];
        let StepKind::Call(call) = &step.kind else {
            return Err(Error::UnknownToken(token));
        };
        if call.provider != provider {
            return Err(Error::WrongProvider {
                given: provider.to_owned(),
                expected: call.provider.clone(),
            });
        }
        let exit = self.check_outcome(step_idx, outcome.as_deref())?;
        let fields = form::validate(&call.form, fields).map_err(Error::Invalid)?;
        self.cancel_timers(|k| matches!(k, TimerKind::Timeout { token: t } if *t == token));
        self.event(EventKind::CallbackReceived {
            step: step.id.clone(),
            provider: provider.to_owned(),
            outcome: outcome.clone(),
        });
        self.record(step_idx, outcome.clone(), fields);
        self.event(EventKind::StepCompleted {
            step: step.id.clone(),
            outcome,
        });
        self.follow(step_idx, exit, token)
    }

    /// An event for the wait that expects it: it answers the wait open for it, else it is
    /// kept for a wait that keeps early events, else refused. An event whose key was taken
    /// already is that event again: nothing changes.
    fn external_event(
        &mut self,
        name: String,
        fields: Fields,
        key: Option<String>,
    ) -> Result<(), Error> {
        let p = self.p;
        if key
            .as_ref()
            .is_some_and(|k| self.inst.event_keys.contains(k))
        {
            return Ok(());
        }
        // The waits of this process for this event, and their forms.
        let waits: Vec<StepIdx> = (0..p.steps.len())
            .filter(|&i| matches!(&p.steps[i].kind, StepKind::Wait(w) if w.event == name))
            .collect();
        if waits.is_empty() {
            return Err(Error::UnknownEvent(name));
        }
        let waiting = self
            .inst
            .tokens
            .iter()
            .find(|(_, t)| waits.contains(&t.step))
            .map(|(seq, t)| (*seq, t.step));
        if let Some((token, s)) = waiting {
            let StepKind::Wait(w) = &p.steps[s].kind else {
                return Err(Error::Internal("wait step expected".into()));
            };
            let fields = form::validate(&w.form, &fields).map_err(Error::Invalid)?;
            self.cancel_timers(|k| matches!(k, TimerKind::Timeout { token: t } if *t == token));
            self.event(EventKind::EventReceived {
                name,
                step: self.id(s),
            });
            self.record(s, None, fields);
            self.event(EventKind::StepCompleted {
                step: self.id(s),
                outcome: None,
            });
            self.inst.event_keys.extend(key);
            return self.follow(s, Exit::Next, token);
        }
        // Nobody waits yet: kept for the waits that keep early events and that the request
        // can still reach, once it is valid for one of them.
        let at: Vec<StepIdx> = self.inst.tokens.values().map(|t| t.step).collect();
        let keepers: Vec<&guichet_definitions::model::Wait> = waits
            .iter()
            .filter_map(|&s| match &p.steps[s].kind {
                StepKind::Wait(w) if w.keep_early.is_some() && p.flow.reaches(at.clone(), s) => {
                    Some(w)
                }
                _ => None,
            })
            .collect();
        if keepers.is_empty() {
            return Err(Error::NotAwaited {
                event: name,
                waits: waits.iter().map(|&s| self.id(s)).collect(),
            });
        }
        let checks: Vec<_> = keepers
            .iter()
            .map(|w| form::validate(&w.form, &fields))
            .collect();
        if !checks.iter().any(Result::is_ok) {
            let first = checks.into_iter().find_map(Result::err).unwrap_or_default();
            return Err(Error::Invalid(first));
        }
        self.inst.buffered.push(ReceivedEvent {
            name: name.clone(),
            fields,
            at: self.now,
        });
        self.inst.event_keys.extend(key);
        self.event(EventKind::EventBuffered { name });
        Ok(())
    }

    fn fire(&mut self, seq: Seq) -> Result<(), Error> {
        let timer = self
            .inst
            .timers
            .get(&seq)
            .cloned()
            .ok_or(Error::UnknownTimer(seq))?;
        if timer.due_at > self.now {
            return Err(Error::TimerNotDue {
                timer: seq,
                due: timer.due_at,
            });
        }
        self.inst.timers.remove(&seq);
        self.event(EventKind::TimerFired {
            timer: seq,
            kind: timer.kind,
        });
        let to_task = |t: &Task| match &t.assignee {
            Some(a) => Recipient::Person(a.clone()),
            None => Recipient::Role(t.role.clone()),
        };
        match timer.kind {
            TimerKind::Deadline { task } => {
                let t = self.task(task)?.clone();
                self.event(EventKind::DeadlinePassed {
                    task,
                    step: self.id(t.step),
                });
                if let Some(t) = self.inst.tasks.get_mut(&task) {
                    t.overdue = true;
                    let saved = t.clone();
                    self.effect(Effect::TaskSaved(saved));
                }
                self.email("tache-echeance-depassee", to_task(&t), Some(task));
            }
            TimerKind::Reminder { task } => {
                let t = self.task(task)?.clone();
                // Fired late (the node was down past the deadline): the deadline's own email
                // says more, and a reminder of a passed deadline would mislead.
                if t.overdue || t.due_at.is_some_and(|due| due <= self.now) {
                    return Ok(());
                }
                self.event(EventKind::ReminderSent { task });
                self.email("tache-rappel", to_task(&t), Some(task));
            }
            TimerKind::Escalation { task } => {
                let t = self.task(task)?.clone();
                let StepKind::Task(def) = &self.p.steps[t.step].kind else {
                    return Err(Error::Internal(
                        "escalation of a step that is not a task".into(),
                    ));
                };
                let role = def
                    .escalation
                    .as_ref()
                    .map(|e| e.to.clone())
                    .ok_or_else(|| Error::Internal("escalation timer without escalation".into()))?;
                self.transition(task, TaskAction::Escalate, |t| {
                    t.assignee = None;
                    t.role = role.clone();
                })?;
                self.event(EventKind::TaskEscalated {
                    task,
                    role: role.clone(),
                });
                self.email("tache-escalade", Recipient::Role(role), Some(task));
            }
            TimerKind::Timeout { token } => {
                let s = self
                    .inst
                    .tokens
                    .get(&token)
                    .map(|t| t.step)
                    .ok_or(Error::UnknownToken(token))?;
                self.event(EventKind::TimedOut { step: self.id(s) });
                // A task that times out is withdrawn: out of its holder's inbox, its links
                // dead, its own timers gone.
                self.withdraw_tasks_of(token);
                self.follow(s, Exit::Timeout, token)?;
            }
        }
        Ok(())
    }

    fn cancel(&mut self, reason: String) {
        self.close_all();
        self.inst.status = InstanceStatus::Cancelled;
        self.inst.ended_at = Some(self.now);
        self.event(EventKind::InstanceCancelled { reason });
        self.effect(Effect::Finished);
    }
}
