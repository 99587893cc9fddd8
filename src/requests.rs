//! The commands on requests, tasks and events: `instance`, `task`, `event`. Requests are
//! named by id or by the 8-character reference people quote; tasks by their step id (or
//! number); `--user` must hold the task's role (an administrator overrides with
//! `--as-admin`, recorded as a hand-over to themselves); every reply says what is open next.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use guichet_definitions::model::Process;
use guichet_engine::Engine;
use guichet_engine::core::dossier::{Audience, Dossier, EntryKind};
use guichet_engine::core::{Actor, Command, Instance, InstanceStatus, Recipient};

use crate::db::{parse_fields, wrong};

#[derive(Debug, Subcommand)]
pub(crate) enum InstanceCommand {
    /// Start a request on the latest revision of a desk.
    Start {
        /// The desk (process name), e.g. interne-decentralise.
        desk: String,
        /// Intake fields, as id=value (repeat); values that read as JSON are numbers/booleans.
        #[arg(long = "field", value_name = "ID=VALUE")]
        fields: Vec<String>,
    },
    /// Requests, newest first: reference, desk, status, started, title.
    List {
        /// Only this desk's.
        #[arg(long)]
        desk: Option<String>,
        /// Only requests in this state: open or ended.
        #[arg(long, value_parser = ["open", "ended"])]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show a request as staff read it: where it stands, what the sponsor submitted, what each
    /// step collected, open tasks and waits, the timeline.
    Show {
        /// The request's id or reference.
        request: String,
        #[arg(long)]
        json: bool,
    },
    /// The history of a request, event by event (as recorded, hash-chained).
    History {
        /// The request's id or reference.
        request: String,
        #[arg(long)]
        json: bool,
    },
    /// Withdraw or cancel a request: its open tasks and timers are cancelled.
    Cancel {
        /// The request's id or reference.
        request: String,
        #[arg(long)]
        reason: String,
        /// Who cancels (an email address); the sponsor if absent.
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TaskCommand {
    /// Open tasks (all tasks with --all), overdue and soonest due first.
    List {
        /// Only this request's (id or reference).
        #[arg(long)]
        instance: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Take a task (a member of its role).
    Claim {
        #[command(flatten)]
        who: TaskRef,
    },
    /// Give a task back to its role.
    Release {
        #[command(flatten)]
        who: TaskRef,
    },
    /// Hand a task to a person (--to-user) or a role (--to-role).
    Delegate {
        #[command(flatten)]
        who: TaskRef,
        #[arg(long, conflicts_with = "to_role")]
        to_user: Option<String>,
        #[arg(long)]
        to_role: Option<String>,
    },
    /// Decide a task: its outcome, its form's fields, a comment.
    Complete {
        #[command(flatten)]
        who: TaskRef,
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long = "field", value_name = "ID=VALUE")]
        fields: Vec<String>,
        /// Why: shown to staff in the request's timeline (required by some outcomes).
        #[arg(long)]
        comment: Option<String>,
    },
}

/// A task, and who acts on it.
#[derive(Debug, clap::Args)]
pub(crate) struct TaskRef {
    /// The request's id or reference.
    request: String,
    /// The task: its step id (`recevabilite`), or its number as `task list` shows it.
    task: String,
    /// Who acts: a member of the task's role (or its assignee).
    #[arg(long)]
    user: String,
    /// Act on a task outside the user's roles, as an administrator: the task is first
    /// handed over to them, which the history records.
    #[arg(long)]
    as_admin: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventCommand {
    /// Send a named event to a request: it answers the wait open for it; when none is open
    /// it is kept for a wait that keeps early events (keep-early), else refused.
    Send {
        /// The request's id or reference.
        request: String,
        name: String,
        #[arg(long = "field", value_name = "ID=VALUE")]
        fields: Vec<String>,
        /// The sender's key for this event: sent again with the same key, it changes nothing.
        #[arg(long)]
        key: Option<String>,
    },
}

pub(crate) async fn instance(e: Arc<Engine>, c: InstanceCommand) -> anyhow::Result<ExitCode> {
    match c {
        InstanceCommand::Start { desk, fields } => {
            let id = e.start(&desk, &parse_fields(&fields)?).await?;
            // The id alone on standard output, for scripts (`ID=$(guichet instance start ...)`).
            println!("{id}");
            eprintln!("{}", next(&e, &id).await?);
        }
        InstanceCommand::List {
            desk,
            state,
            limit,
            json,
        } => {
            if let Some(desk) = &desk
                && !e.desks().await?.contains_key(desk)
            {
                return Err(wrong(format!(
                    "no desk named `{desk}` here: `guichet serve --once` lists the deployed ones"
                )));
            }
            let rows = e.requests(desk.as_deref(), state.as_deref(), limit).await?;
            if json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "id": r.id, "reference": guichet_engine::core::reference(&r.id),
                            "desk": r.desk, "status": r.status, "result": r.result,
                            "title": r.title, "started_at": r.started_at, "ended_at": r.ended_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for r in rows {
                    let status = match &r.result {
                        Some(result) => format!("ended ({result})"),
                        None => r.status.clone(),
                    };
                    println!(
                        "{}  {:<28} {:<18} {}  {}",
                        guichet_engine::core::reference(&r.id),
                        r.desk,
                        status,
                        day(guichet_engine::clock::Timestamp(r.started_at)),
                        r.title
                    );
                }
            }
        }
        InstanceCommand::Show { request, json } => {
            let id = e.request_id(&request).await?;
            let d = e.dossier(&id, Audience::Staff).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                print!("{}", show(&d));
            }
        }
        InstanceCommand::History { request, json } => {
            let id = e.request_id(&request).await?;
            let history = e.history(&id).await?;
            if json {
                let events: Vec<_> = history.iter().map(|h| &h.event).collect();
                println!("{}", serde_json::to_string_pretty(&events)?);
            } else {
                for h in history {
                    println!("{:>4} {}", h.seq, serde_json::to_string(&h.event)?);
                }
            }
        }
        InstanceCommand::Cancel {
            request,
            reason,
            user,
        } => {
            let id = e.request_id(&request).await?;
            let actor = user.map_or(Actor::Requester, Actor::User);
            e.execute(&id, Command::Cancel { reason, actor }).await?;
            println!("{}", next(&e, &id).await?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn task(e: Arc<Engine>, c: TaskCommand) -> anyhow::Result<ExitCode> {
    let (who, command) = match c {
        TaskCommand::List {
            instance,
            all,
            json,
        } => return list(&e, instance, all, json).await,
        TaskCommand::Claim { who } => (who, Action::Claim),
        TaskCommand::Release { who } => (who, Action::Release),
        TaskCommand::Delegate {
            who,
            to_user,
            to_role,
        } => {
            let to = match (to_user, to_role) {
                (Some(u), None) => Recipient::Person(u),
                (None, Some(r)) => Recipient::Role(r),
                _ => return Err(wrong("give --to-user EMAIL or --to-role ROLE")),
            };
            (who, Action::Delegate(to))
        }
        TaskCommand::Complete {
            who,
            outcome,
            fields,
            comment,
        } => {
            let fields = parse_fields(&fields)?;
            (
                who,
                Action::Complete {
                    outcome,
                    fields,
                    comment,
                },
            )
        }
    };
    let id = e.request_id(&who.request).await?;
    let (desk, inst) = e.instance(&id).await?;
    let p = e.process_of(&id).await?;
    if inst.status != InstanceStatus::Running {
        let d = e.dossier(&id, Audience::Staff).await?;
        return Err(wrong(format!(
            "the request is no longer running ({}): nothing to act on",
            status(&d)
        )));
    }
    let seq = task_seq(&p, &inst, &who.task)?;
    let t = &inst.tasks[&seq];
    let user = who.user.trim().to_lowercase();
    let holds = match &t.assignee {
        Some(a) => a.eq_ignore_ascii_case(&user),
        None => e
            .roles_of(&user)
            .await?
            .contains(&(desk.clone(), t.role.clone())),
    };
    if who.as_admin {
        if !e.is_admin(&user).await? {
            return Err(wrong(format!(
                "--as-admin: `{user}` is not an administrator (`guichet user add {user} --admin`)"
            )));
        }
        if !holds {
            // The override, in the history: the administrator takes the task over.
            e.execute(
                &id,
                Command::Delegate {
                    task: seq,
                    by: user.clone(),
                    to: Recipient::Person(user.clone()),
                },
            )
            .await?;
        }
    } else if !holds {
        let members = guichet_engine::core::recipients(&p, &inst, &Recipient::Role(t.role.clone()));
        return Err(wrong(match &t.assignee {
            Some(a) => format!(
                "task `{}` is claimed by {a}: act as them, or as an administrator with --as-admin",
                p.steps[t.step].id
            ),
            None => format!(
                "`{user}` does not hold the role `{}` on desk `{desk}` (its members: {}): act as one of them, or as an administrator with --as-admin",
                t.role,
                if members.is_empty() {
                    "none".to_owned()
                } else {
                    members.join(", ")
                }
            ),
        }));
    }
    let command = match command {
        Action::Claim => Command::Claim { task: seq, user },
        Action::Release => Command::Release { task: seq, user },
        Action::Delegate(to) => Command::Delegate {
            task: seq,
            by: user,
            to,
        },
        Action::Complete {
            outcome,
            fields,
            comment,
        } => Command::Complete {
            task: seq,
            user,
            outcome,
            fields,
            comment,
        },
    };
    e.execute(&id, command).await?;
    println!("{}", next(&e, &id).await?);
    Ok(ExitCode::SUCCESS)
}

enum Action {
    Claim,
    Release,
    Delegate(Recipient),
    Complete {
        outcome: Option<String>,
        fields: guichet_engine::core::Fields,
        comment: Option<String>,
    },
}

pub(crate) async fn event(e: Arc<Engine>, c: EventCommand) -> anyhow::Result<ExitCode> {
    let EventCommand::Send {
        request,
        name,
        fields,
        key,
    } = c;
    let id = e.request_id(&request).await?;
    e.execute(
        &id,
        Command::Event {
            name,
            fields: parse_fields(&fields)?,
            actor: Actor::Requester,
            key,
        },
    )
    .await?;
    println!("{}", next(&e, &id).await?);
    Ok(ExitCode::SUCCESS)
}

async fn list(
    e: &Engine,
    instance: Option<String>,
    all: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let instance = match instance {
        Some(given) => Some(e.request_id(&given).await?),
        None => None,
    };
    let tasks = e.tasks(instance.as_deref(), !all).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tasks)?);
        return Ok(ExitCode::SUCCESS);
    }
    if tasks.is_empty() {
        println!("no {}task", if all { "" } else { "open " });
    }
    for t in tasks {
        println!(
            "{} {:>3} {:<28} {:<20} {:<9} {}{}",
            guichet_engine::core::reference(&t.instance),
            t.seq,
            t.step,
            t.role,
            t.state,
            t.assignee.unwrap_or_default(),
            if t.overdue { " OVERDUE" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The open task `given` names: its number, or the id of the step it is at (refused when
/// several tasks are open at that step: their numbers are given).
fn task_seq(p: &Process, inst: &Instance, given: &str) -> anyhow::Result<u32> {
    if let Ok(n) = given.parse::<u32>() {
        return if inst.tasks.contains_key(&n) {
            Ok(n)
        } else {
            Err(wrong(format!(
                "no open task {n} in this request; open: {}",
                open_list(p, inst)
            )))
        };
    }
    let at: Vec<u32> = inst
        .tasks
        .values()
        .filter(|t| p.steps[t.step].id == given)
        .map(|t| t.seq)
        .collect();
    match at.as_slice() {
        [one] => Ok(*one),
        [] => Err(wrong(format!(
            "no open task at step `{given}`; open: {}",
            open_list(p, inst)
        ))),
        several => Err(wrong(format!(
            "{} tasks are open at `{given}`: give the number, one of {}",
            several.len(),
            several
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn open_list(p: &Process, inst: &Instance) -> String {
    if inst.tasks.is_empty() {
        return "none".to_owned();
    }
    inst.tasks
        .values()
        .map(|t| format!("{} (task {})", p.steps[t.step].id, t.seq))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a request stands after a command, and what is open next.
async fn next(e: &Engine, id: &str) -> anyhow::Result<String> {
    let d = e.dossier(id, Audience::Staff).await?;
    let mut out = format!("ok: request {} ({}) is {}", d.reference, d.desk, status(&d));
    if d.status == "running" {
        let mut open: Vec<String> = d
            .open_tasks
            .iter()
            .map(|t| {
                format!(
                    "{} (task {}, {}{})",
                    t.step,
                    t.task,
                    t.role,
                    t.due_at
                        .map(|at| format!(", due {}", day(at)))
                        .unwrap_or_default()
                )
            })
            .collect();
        open.extend(
            d.open_waits
                .iter()
                .map(|w| format!("{} (waiting for `{}`)", w.step, w.event)),
        );
        if !open.is_empty() {
            out.push_str("; open next: ");
            out.push_str(&open.join(", "));
        }
    }
    Ok(out)
}

/// The request's status in words.
fn status(d: &Dossier) -> String {
    match (d.status, d.result) {
        ("ended", Some(result)) => format!("ended ({result})"),
        (status, _) => status.to_owned(),
    }
}

fn day(t: guichet_engine::clock::Timestamp) -> String {
    t.paris_minute(guichet_engine::definitions::model::Language::En)
}

/// A request as `instance show` prints it.
fn show(d: &Dossier) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "request {} (reference {}) on desk {}: {}",
        d.id,
        d.reference,
        d.desk,
        status(d)
    );
    let _ = writeln!(out, "  {}", d.title);
    let value = |v: &guichet_engine::core::dossier::FieldValue| {
        v.option_label.clone().unwrap_or_else(|| match &v.value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let _ = writeln!(out, "submitted:");
    for f in &d.intake {
        let _ = writeln!(out, "  {}: {}", f.label, value(f));
    }
    if !d.open_tasks.is_empty() {
        let _ = writeln!(out, "open tasks:");
        for t in &d.open_tasks {
            let _ = writeln!(
                out,
                "  {} (task {}) for {}{}{}{}",
                t.step,
                t.task,
                t.role,
                t.assignee
                    .as_ref()
                    .map(|a| format!(", claimed by {a}"))
                    .unwrap_or_default(),
                t.due_at
                    .map(|at| format!(", due {}", day(at)))
                    .unwrap_or_default(),
                if t.overdue { ", OVERDUE" } else { "" }
            );
        }
    }
    for w in &d.open_waits {
        let _ = writeln!(
            out,
            "waiting at {} for event `{}`{}",
            w.step,
            w.event,
            w.until
                .map(|at| format!(" until {}", day(at)))
                .unwrap_or_default()
        );
    }
    if !d.steps.is_empty() {
        let _ = writeln!(out, "collected:");
        for s in &d.steps {
            let _ = writeln!(
                out,
                "  {}{}{}",
                s.step,
                s.outcome
                    .as_deref()
                    .map(|o| format!(": {o}"))
                    .unwrap_or_default(),
                s.comment
                    .as_deref()
                    .map(|c| format!(" — {c}"))
                    .unwrap_or_default()
            );
            for f in &s.fields {
                let _ = writeln!(out, "    {}: {}", f.label, value(f));
            }
        }
    }
    let _ = writeln!(out, "timeline:");
    for entry in &d.timeline {
        let who = match &entry.actor {
            Some(Actor::User(u)) => u.clone(),
            Some(Actor::Requester) => "sponsor".to_owned(),
            Some(Actor::Provider(p)) => format!("provider {p}"),
            Some(Actor::System) | None => "guichet".to_owned(),
        };
        let kind = serde_json::to_value(entry.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut line = format!("  {} {who}: {kind}", day(entry.at));
        for part in [&entry.step, &entry.outcome, &entry.detail]
            .into_iter()
            .flatten()
        {
            line.push(' ');
            line.push_str(part);
        }
        if let Some(c) = &entry.comment {
            let _ = write!(line, " — {c}");
        }
        if entry.kind == EntryKind::Ended || entry.kind == EntryKind::Cancelled {
            line.push('.');
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_named_by_step_or_number() {
        let src = guichet_definitions::models::ALL
            .iter()
            .find(|(n, _)| *n == "interne-decentralise.kdl")
            .map(|(_, s)| *s)
            .unwrap_or_default();
        let p = guichet_definitions::load(src)
            .process
            .expect("the model loads");
        let mut fields = guichet_engine::core::Fields::new();
        for (k, v) in [
            ("titre", "T"),
            ("email", "p@x.example"),
            ("organisme", "O"),
            ("type-porteur", "academique"),
            ("cadre", "autre"),
            ("resume", "R"),
            ("donnees", "D"),
        ] {
            fields.insert(k.into(), v.into());
        }
        let (inst, _) =
            guichet_engine::core::start(&p, &fields, guichet_engine::clock::Timestamp(0))
                .expect("starts");
        let seq = *inst.tasks.keys().next().expect("a task");
        assert_eq!(task_seq(&p, &inst, "recevabilite").ok(), Some(seq));
        assert_eq!(task_seq(&p, &inst, &seq.to_string()).ok(), Some(seq));
        let nope = task_seq(&p, &inst, "comite").map_err(|e| e.to_string());
        assert_eq!(
            nope,
            Err(format!(
                "no open task at step `comite`; open: recevabilite (task {seq})"
            ))
        );
        assert!(task_seq(&p, &inst, "999").is_err());
    }
}
