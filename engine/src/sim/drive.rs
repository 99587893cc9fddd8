//! A tireless desk: drives requests to their end by always taking the first way forward
//! (each task completed with its first outcome, each provider answering at once, each awaited
//! event sent). Used by the benchmark and by the crash tests, which kill it at random moments
//! and restart it: it resumes from the database, so it must be idempotent to restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use guichet_definitions::model::{FieldType, Form, Process, StepKind};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::core::{Actor, Command, Fields, Instance, InstanceStatus};
use crate::error::Error;
use crate::runtime::Engine;

/// Plausible values for the required fields of a form.
pub fn sample_fields(form: Option<&Form>) -> Fields {
    form.map(|f| {
        f.fields
            .iter()
            .filter(|x| x.required)
            .map(|x| {
                let v = match x.ty {
                    FieldType::Date => json!("2027-01-01"),
                    FieldType::Email => json!("porteur@labo.example"),
                    FieldType::Choice => json!(
                        x.options
                            .first()
                            .map(|o| o.value.clone())
                            .unwrap_or_default()
                    ),
                    FieldType::Number => json!(x.min.unwrap_or(0.0).max(1.0)),
                    FieldType::YesNo => json!(true),
                    FieldType::Text | FieldType::LongText => json!("texte"),
                    // A document as the shell records it once stored (none is written).
                    FieldType::File => json!({
                        "sha256": "0".repeat(64), "name": "document.pdf", "size": 1000,
                        "type": x.accept.first().filter(|a| !a.ends_with("/*")).map_or("application/pdf", String::as_str),
                    }),
                };
                (x.id.clone(), v)
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The next command the tireless desk gives, or `None` when the request only waits for time.
pub fn next_command(p: &Process, inst: &Instance) -> Option<Command> {
    if let Some(t) = inst.tasks.values().next() {
        let step = &p.steps[t.step];
        let outcome = step.outcomes().first().map(|o| o.id.clone());
        return Some(Command::Complete {
            task: t.seq,
            user: "agent@guichet.example".into(),
            comment: super::comment_for(step, outcome.as_deref()),
            outcome,
            fields: sample_fields(step.form()),
        });
    }
    for (token, t) in &inst.tokens {
        let step = &p.steps[t.step];
        match &step.kind {
            StepKind::Call(c) => {
                return Some(Command::Callback {
                    token: *token,
                    provider: c.provider.clone(),
                    outcome: step.outcomes().first().map(|o| o.id.clone()),
                    fields: sample_fields(step.form()),
                });
            }
            StepKind::Wait(w) => {
                return Some(Command::Event {
                    name: w.event.clone(),
                    fields: sample_fields(step.form()),
                    actor: Actor::Requester,
                    key: None,
                });
            }
            _ => {}
        }
    }
    None
}

/// What a drive did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub started: usize,
    pub finished: usize,
    pub commands: usize,
    /// Wall time from start to end of each request driven from its start, sorted.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

/// Starts requests on `desk` until `requests` exist, and drives every running one to its end,
/// `concurrency` at a time.
pub async fn drive(
    engine: Arc<Engine>,
    desk: &str,
    intake: &Fields,
    requests: usize,
    concurrency: usize,
) -> Result<Report, Error> {
    let began = Instant::now();
    let existing = engine.instance_ids(desk, None).await?;
    let running = engine.instance_ids(desk, Some("running")).await?;
    let semaphore = Arc::new(Semaphore::new(concurrency.max(1)));
    let to_start = requests.saturating_sub(existing.len());
    let mut report = Report {
        started: to_start,
        ..Report::default()
    };
    let reap = |report: &mut Report, done: Result<Result<_, Error>, tokio::task::JoinError>| {
        let (latency, commands): (Option<Duration>, usize) =
            done.map_err(|e| Error::Corrupt(e.to_string()))??;
        report.finished += 1;
        report.commands += commands + usize::from(latency.is_some());
        report.latencies.extend(latency);
        Ok::<_, Error>(())
    };
    // A task per request once a place is free (not all at once: the driver's own memory
    // stays that of `concurrency` requests, however many it drives).
    let mut tasks = tokio::task::JoinSet::new();
    for id in running
        .into_iter()
        .map(Some)
        .chain((0..to_start).map(|_| None))
    {
        let permit = semaphore
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        let (engine, intake, desk) = (engine.clone(), intake.clone(), desk.to_owned());
        tasks.spawn(async move {
            let _permit = permit;
            let t0 = Instant::now();
            let fresh = id.is_none();
            let id = match id {
                Some(id) => id,
                None => engine.start(&desk, &intake).await?,
            };
            let commands = run_one(&engine, &id).await?;
            Ok::<_, Error>((fresh.then(|| t0.elapsed()), commands))
        });
        while let Some(done) = tasks.try_join_next() {
            reap(&mut report, done)?;
        }
    }
    while let Some(done) = tasks.join_next().await {
        reap(&mut report, done)?;
    }
    report.latencies.sort();
    report.elapsed = began.elapsed();
    Ok(report)
}

/// Drives one request to its end; returns the number of commands it took.
async fn run_one(engine: &Engine, id: &str) -> Result<usize, Error> {
    let process = engine.process_of(id).await?;
    let (_, mut inst) = engine.instance(id).await?;
    let mut commands = 0;
    while inst.status == InstanceStatus::Running {
        let Some(command) = next_command(&process, &inst) else {
            return Err(Error::Corrupt(format!(
                "request {id} waits for time only; the driver does not move clocks"
            )));
        };
        inst = engine.execute(id, command).await?;
        commands += 1;
    }
    Ok(commands)
}

/// For the inbox benchmark: `n` synthetic open requests of `desk`, each with one open task,
/// cycling through the desk's task steps (so through its roles), due dates spread from 60
/// days ago to 60 days ahead. Rows only (no history): what the inbox reads, not requests
/// that can be worked on.
pub async fn seed_open_tasks(engine: &Engine, desk: &str, n: usize) -> Result<(), Error> {
    use crate::store::db::{Db as _, V, inserts};
    let (sql, key) = (
        "SELECT hash FROM definitions WHERE name = $1 ORDER BY revision DESC LIMIT 1",
        [V::Text(desk.to_owned())],
    );
    let hash = crate::store::in_read!(engine.store(), |db| db.row(sql.into(), &key))?
        .ok_or_else(|| Error::NotFound(format!("desk {desk}")))?
        .text(0)?;
    let p = engine
        .desks()
        .await?
        .remove(desk)
        .ok_or_else(|| Error::NotFound(desk.to_owned()))?;
    let tasks: Vec<(&str, &str)> = p
        .steps
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::Task(t) => Some((s.id.as_str(), t.role.as_str())),
            _ => None,
        })
        .collect();
    let now = engine.now().0;
    let state = serde_json::to_string(&Instance::new(crate::clock::Timestamp(now)))
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    let day = 86_400_000i64;
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let (mut instances, mut open) = (Vec::new(), Vec::new());
        for &i in chunk {
            let id = format!("seed-{i:08}");
            let (step, role) = tasks[i % tasks.len()];
            #[allow(clippy::cast_possible_wrap)]
            let due = now + ((i as i64 * 7919) % 120 - 60) * day;
            instances.push(vec![
                V::Text(id.clone()),
                V::Text(hash.clone()),
                V::Text(desk.to_owned()),
                V::Text(format!("Demande synthétique {i}")),
                V::Text("running".into()),
                V::Text(state.clone()),
                V::Int(1),
                V::Int(now),
                V::Int(0),
                V::Text(String::new()),
            ]);
            open.push(vec![
                V::Text(id),
                V::Int(1),
                V::Text(step.to_owned()),
                V::Text(role.to_owned()),
                V::Text("open".into()),
                V::Int(now),
                V::Int(due),
                V::Int(i64::from(due < now)),
                V::Text(desk.to_owned()),
            ]);
        }
        let mut statements = inserts(
            "instances",
            &[
                "id",
                "definition",
                "name",
                "title",
                "status",
                "state",
                "row_version",
                "started_at",
                "history_seq",
                "history_head",
            ],
            instances,
        );
        statements.extend(inserts(
            "tasks",
            &[
                "instance",
                "seq",
                "step",
                "role",
                "state",
                "created_at",
                "due_at",
                "overdue",
                "desk",
            ],
            open,
        ));
        engine.write_all(statements).await?;
    }
    Ok(())
}
