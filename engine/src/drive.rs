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
use crate::runtime::{Engine, Error};

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
        return Some(Command::Complete {
            task: t.seq,
            user: "agent@guichet.example".into(),
            outcome: step.outcomes().first().map(|o| o.id.clone()),
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
    let mut handles = Vec::new();
    let spawn = |id: Option<String>| {
        let (engine, semaphore, intake, desk) = (
            engine.clone(),
            semaphore.clone(),
            intake.clone(),
            desk.to_owned(),
        );
        tokio::spawn(async move {
            let _permit = semaphore
                .acquire_owned()
                .await
                .map_err(|e| Error::Corrupt(e.to_string()))?;
            let t0 = Instant::now();
            let fresh = id.is_none();
            let id = match id {
                Some(id) => id,
                None => engine.start(&desk, &intake).await?,
            };
            let commands = run_one(&engine, &id).await?;
            Ok::<_, Error>((fresh.then(|| t0.elapsed()), commands))
        })
    };
    for id in running {
        handles.push(spawn(Some(id)));
    }
    let to_start = requests.saturating_sub(existing.len());
    for _ in 0..to_start {
        handles.push(spawn(None));
    }
    let mut report = Report {
        started: to_start,
        ..Report::default()
    };
    for h in handles {
        let (latency, commands) = h.await.map_err(|e| Error::Corrupt(e.to_string()))??;
        report.finished += 1;
        report.commands += commands + usize::from(latency.is_some());
        report.latencies.extend(latency);
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
