//! Run with: `cargo run --example run_request`
//!
//! The engine as a library, in a few lines: open a database (a SQLite file here), deploy a
//! desk model, start a request, and complete its tasks until it ends. Every command is one
//! durable transaction; the history is hash-chained and verified at the end.

use std::sync::Arc;

use guichet_engine::Engine;
use guichet_engine::clock::SystemClock;
use guichet_engine::core::{Command, Fields, InstanceStatus};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let db = std::env::temp_dir().join("guichet-example.db");
    let _ = std::fs::remove_file(&db);
    let engine = Engine::open(&format!("sqlite://{}", db.display()), Arc::new(SystemClock)).await?;

    let (_, source) = guichet_definitions::models::ALL[2]; // externe.kdl
    let desk = engine.deploy(source).await?;
    let intake: Fields = serde_json::from_value(json!({
        "titre": "Étude de cohorte", "email": "porteur@labo.example", "organisme": "Labo",
        "cadre": "mise-a-disposition", "resume": "Objectifs", "donnees": "PMSI"
    }))?;
    let id = engine.start(&desk.name, &intake).await?;
    println!(
        "request {id} started on {} revision {}",
        desk.name, desk.revision
    );

    // Complete each open task with its first outcome until the request ends; answer the
    // third party's callbacks the same way.
    let process = engine.process_of(&id).await?;
    loop {
        let (_, inst) = engine.instance(&id).await?;
        if inst.status != InstanceStatus::Running {
            println!("request ended: {:?}", inst.status);
            break;
        }
        let command = if let Some(task) = inst.tasks.values().next() {
            let step = &process.steps[task.step];
            println!("  agent@institut.example completes {}", step.id);
            Command::Complete {
                task: task.seq,
                user: "agent@institut.example".into(),
                outcome: step.outcomes().first().map(|o| o.id.clone()),
                fields: Fields::new(),
                comment: None,
            }
        } else {
            let (token, t) = inst
                .tokens
                .iter()
                .next()
                .expect("a running request waits somewhere");
            let step = &process.steps[t.step];
            println!("  the provider answers {}", step.id);
            Command::Callback {
                token: *token,
                provider: "tiers-de-confiance".into(),
                outcome: step.outcomes().first().map(|o| o.id.clone()),
                fields: Fields::new(),
            }
        };
        engine.execute(&id, command).await?;
    }
    let audit = engine.verify_audit().await?;
    println!(
        "history: {} events, intact: {}",
        audit.events,
        audit.broken.is_none()
    );
    Ok(())
}
