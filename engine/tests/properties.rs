//! Property tests of the core over generated sound definitions driven by random choices:
//! every request reaches an end, and after every command no token is lost or duplicated
//! (each waiting token has exactly one reason to wait, each branch of a running parallel block
//! holds at most one token, every task and timer belongs to a live token).

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use guichet_definitions::model::{Process, StepKind};
use guichet_engine::clock::Timestamp;
use guichet_engine::core::{
    Actor, Command, Fields, Instance, InstanceStatus, TimerKind, advance, start,
};
use guichet_engine::sim::drive::sample_fields;
use proptest::prelude::*;

/// A generated process: a sequence of blocks, each a task (maybe with a revision loop), a
/// call with a timeout, a wait with a timeout, a parallel block (with a nested parallel in
/// one branch), or a gate on an earlier outcome.
fn generated(shape: &[(u8, bool)]) -> String {
    let mut s = String::from(
        "process \"gen\" version=1 {\n role \"r\" { member \"r@example.org\" }\n provider \"pr\"\n start \"s0\"\n",
    );
    let mut last_task: Option<String> = None;
    for (i, (kind, flag)) in shape.iter().enumerate() {
        match kind % 6 {
            0 => {
                let back = match (&last_task, flag) {
                    (Some(p), true) => format!("\n  outcome \"revoir\" goto=\"{p}\""),
                    _ => String::new(),
                };
                s.push_str(&format!(
                    " task \"t{i}\" role=\"r\" due=\"P2D\" remind=\"P1D\" {{\n  outcome \"ok\" \"ko\"{back}\n }}\n"
                ));
                last_task = Some(format!("t{i}"));
            }
            1 => {
                s.push_str(&format!(
                    " parallel \"p{i}\" {{\n  task \"a{i}\" role=\"r\" due=\"P1D\"\n  branch \"b\" {{\n   task \"b{i}\" role=\"r\" {{\n    outcome \"ok\"\n    outcome \"encore\" goto=\"b{i}\"\n   }}\n   parallel \"q{i}\" {{\n    notify \"n{i}\" to=\"r\" template=\"decision-comite\"\n    task \"c{i}\" role=\"r\"\n   }}\n  }}\n  notify \"m{i}\" to=\"r\" template=\"decision-comite\"\n }}\n"
                ));
            }
            2 => {
                let target = if *flag { "fin" } else { "refus" };
                let cond = match &last_task {
                    Some(t) => format!("{t}.outcome == 'ko'"),
                    None => "s0.count > 1".to_owned(),
                };
                s.push_str(&format!(
                    " gate \"g{i}\" {{\n  when \"{cond}\" goto=\"{target}\"\n  otherwise goto=\"n{i}\"\n }}\n notify \"n{i}\" to=\"r\" template=\"decision-comite\"\n"
                ));
            }
            3 => s.push_str(&format!(
                " call \"k{i}\" provider=\"pr\" timeout=\"P3D\" on-timeout=\"r{i}\" goto=\"w{i}\" {{\n  outcome \"ok\"\n }}\n task \"r{i}\" role=\"r\"\n wait \"w{i}\" event=\"e{i}\" timeout=\"P4D\" on-timeout=\"x{i}\"\n notify \"x{i}\" to=\"r\" template=\"decision-comite\"\n"
            )),
            4 => s.push_str(&format!(" notify \"z{i}\" to=\"r\" template=\"decision-comite\"\n")),
            _ => s.push_str(&format!(
                " task \"u{i}\" role=\"r\" due=\"P1D\" {{\n  escalate to=\"r\" after=\"P2D\"\n }}\n"
            )),
        }
    }
    s.push_str(
        " gate \"dernier\" {\n  when \"s0.count > 5\" goto=\"refus\"\n  otherwise goto=\"fin\"\n }\n end \"fin\" result=\"accepted\"\n end \"refus\" result=\"rejected\"\n}\n",
    );
    s
}

/// The invariants that must hold between any two commands.
fn check_invariants(p: &Process, inst: &Instance) -> Result<(), String> {
    let mut per_branch: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (seq, tok) in &inst.tokens {
        let step = &p.steps[tok.step];
        match &step.kind {
            StepKind::Task(_) => {
                let n = inst.tasks.values().filter(|t| t.token == *seq).count();
                if n != 1 {
                    return Err(format!(
                        "token {seq} at task `{}` has {n} open tasks",
                        step.id
                    ));
                }
            }
            StepKind::Call(_) | StepKind::Wait(_) => {}
            _ => {
                return Err(format!(
                    "token {seq} stopped at automatic step `{}`",
                    step.id
                ));
            }
        }
        // Count the token in every branch that encloses it.
        let mut at = tok.step;
        while let Some(scope) = p.steps[at].scope {
            *per_branch
                .entry((scope.parallel, scope.branch))
                .or_default() += 1;
            at = scope.parallel;
        }
    }
    for ((par, branch), n) in &per_branch {
        let arrived = inst.joins.get(par).is_some_and(|a| a.contains(branch));
        if arrived && *n > 0 {
            return Err(format!(
                "branch {branch} of `{}` arrived but still holds a token",
                p.steps[*par].id
            ));
        }
        if !inst.joins.contains_key(par) {
            return Err(format!(
                "tokens inside `{}` but its join is not open",
                p.steps[*par].id
            ));
        }
    }
    for t in inst.tasks.values() {
        if inst.tokens.get(&t.token).map(|k| k.step) != Some(t.step) {
            return Err(format!("task {} belongs to no token at its step", t.seq));
        }
    }
    for timer in inst.timers.values() {
        let ok = match timer.kind {
            TimerKind::Deadline { task }
            | TimerKind::Reminder { task }
            | TimerKind::Escalation { task } => inst.tasks.contains_key(&task),
            TimerKind::Timeout { token } => inst.tokens.contains_key(&token),
        };
        if !ok {
            return Err(format!("timer {} outlived what it was for", timer.seq));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_request_ends_and_no_token_is_lost(
        shape in proptest::collection::vec((0u8..6, any::<bool>()), 0..12),
        choices in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let src = generated(&shape);
        let checked = guichet_definitions::load(&src);
        let p = checked.process.unwrap_or_else(|| panic!("{src}\n{:#?}", checked.diagnostics));
        if let Err(e) = drive(&p, &Fields::new(), &choices) {
            panic!("{e}\n{src}");
        }
    }
}

/// The shipped models too, driven at random.
#[test]
fn shipped_models_end_under_random_driving() {
    for (name, src) in guichet_definitions::models::ALL {
        let p = guichet_definitions::load(src).process.unwrap();
        let intake = sample_fields(p.start().form());
        for seed in 0..40u8 {
            let choices: Vec<u8> = (0..50u8)
                .map(|i| i.wrapping_mul(seed).wrapping_add(seed / 3))
                .collect();
            if let Err(e) = drive(&p, &intake, &choices) {
                panic!("{name} seed {seed}: {e}");
            }
        }
    }
}

/// Drives a request with `choices` until it ends; returns the number of commands. Required
/// fields of every form are filled with a plausible value; outcomes, callbacks, events and
/// timers are picked by `choices`. After 300 commands it always takes the first outcome, so
/// that revision loops end.
fn drive(p: &Process, intake: &Fields, choices: &[u8]) -> Result<usize, String> {
    let mut now = Timestamp(1_800_000_000_000);
    let (mut inst, _) = start(p, intake, now).map_err(|e| e.to_string())?;
    check_invariants(p, &inst)?;
    let mut n = 0;
    while inst.status == InstanceStatus::Running {
        n += 1;
        if n > 3_000 {
            return Err("no end after 3,000 commands".into());
        }
        let pick = choices[n % choices.len()] as usize;
        let patient = n > 300;
        let fill = sample_fields;
        let mut options: Vec<Command> = Vec::new();
        for t in inst.tasks.values() {
            let step = &p.steps[t.step];
            let outcomes = step.outcomes();
            let o = (!outcomes.is_empty()).then(|| {
                let i = if patient { 0 } else { pick % outcomes.len() };
                outcomes[i].id.clone()
            });
            // A comment where the outcome requires one, as a person must give.
            let comment = o
                .as_deref()
                .filter(|o| outcomes.iter().any(|x| x.comment && x.id == *o))
                .map(|_| "why".to_owned());
            options.push(Command::Complete {
                task: t.seq,
                user: "r@example.org".into(),
                outcome: o,
                fields: fill(step.form()),
                comment,
            });
        }
        for (seq, tok) in &inst.tokens {
            let step = &p.steps[tok.step];
            match &step.kind {
                StepKind::Call(c) => {
                    let outcomes = step.outcomes();
                    let o = (!outcomes.is_empty()).then(|| {
                        outcomes[if patient { 0 } else { pick % outcomes.len() }]
                            .id
                            .clone()
                    });
                    options.push(Command::Callback {
                        token: *seq,
                        provider: c.provider.clone(),
                        outcome: o,
                        fields: fill(step.form()),
                    });
                }
                StepKind::Wait(w) => options.push(Command::Event {
                    name: w.event.clone(),
                    fields: fill(step.form()),
                    actor: Actor::Requester,
                    key: None,
                }),
                _ => {}
            }
        }
        if let Some(t) = inst.timers.values().min_by_key(|t| (t.due_at, t.seq))
            && ((!patient && pick.is_multiple_of(4)) || options.is_empty())
        {
            now = now.max(t.due_at);
            options.insert(0, Command::FireTimer { timer: t.seq });
        }
        if options.is_empty() {
            return Err(format!("stuck: tokens {:?}", inst.tokens));
        }
        let command = options.swap_remove(pick % options.len());
        let desc = format!("{command:?}");
        let (next, _) = advance(p, inst, command, now).map_err(|e| format!("{desc}: {e}"))?;
        inst = next;
        check_invariants(p, &inst).map_err(|e| format!("after {desc}: {e}"))?;
    }
    if !inst.tokens.is_empty() || !inst.tasks.is_empty() || !inst.timers.is_empty() {
        return Err("ended with work left".into());
    }
    Ok(n)
}
