//! Crash safety: the real binary drives requests and is killed with SIGKILL at random moments,
//! then restarted, until every request has ended. The database must then show each request
//! ended exactly once, no task or timer duplicated or lost, every notification in the outbox,
//! and an intact history. On a SQLite file and on PostgreSQL (`scripts/test` starts it).

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use guichet_engine::Engine;
use guichet_engine::clock::SystemClock;
use guichet_engine::core::{Effect, EventKind, Recipient};
use sqlx::Row;

const REQUESTS: usize = 60;

fn sqlite_url(name: &str) -> String {
    let path = std::env::temp_dir().join(format!("guichet-crash-{name}-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    format!("sqlite://{}", path.display())
}

async fn postgres_url(name: &str) -> String {
    let admin = std::env::var("GUICHET_TEST_POSTGRES")
        .expect("GUICHET_TEST_POSTGRES is not set: run the tests with scripts/test, which starts PostgreSQL");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
    let db = format!("guichet_crash_{name}_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    format!("{}/{db}", admin.rsplit_once('/').unwrap().0)
}

/// How many times the driver is killed before it is left to finish. Bounded, so the test
/// ends however slow the machine is; the delays are random, so kills land at every stage
/// (start-up, mid-transaction, between commands).
const KILLS: usize = 15;

/// Runs the driver, killing it after pseudo-random delays `KILLS` times, then lets it finish.
fn run_with_kills(url: &str) -> usize {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut kills = 0;
    loop {
        let mut child = Command::new(env!("CARGO_BIN_EXE_guichet"))
            .args([
                "--database",
                url,
                "bench",
                "--requests",
                &REQUESTS.to_string(),
                "--concurrency",
                "8",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if kills < KILLS {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // Later kills wait longer, so that work gets done between them on a slow machine.
            let delay = 30 + (seed >> 33) % 300 + 20 * kills as u64;
            // Not waiting for a timer: choosing when to pull the plug.
            std::thread::sleep(Duration::from_millis(delay));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                continue;
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "driver failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return kills;
    }
}

async fn check(url: &str) {
    let e = Engine::open(url, Arc::new(SystemClock)).await.unwrap();
    let ids = e.instance_ids("interne-decentralise", None).await.unwrap();
    assert_eq!(
        ids.len(),
        REQUESTS,
        "exactly the requested number of requests was started"
    );
    for id in &ids {
        let history = e.history(id).await.unwrap();
        let ended = history
            .iter()
            .filter(|h| matches!(h.event.kind, EventKind::InstanceEnded { .. }))
            .count();
        assert_eq!(ended, 1, "{id} ended {ended} times");
        // Each task created once, its row present and completed.
        let created: BTreeMap<u32, String> = history
            .iter()
            .filter_map(|h| match &h.event.kind {
                EventKind::TaskCreated { task, step, .. } => Some((*task, step.clone())),
                _ => None,
            })
            .collect();
        let rows = e.tasks(Some(id), false).await.unwrap();
        assert_eq!(
            rows.len(),
            created.len(),
            "{id}: task rows vs task-created events"
        );
        assert!(
            rows.iter().all(|t| t.state == "completed"),
            "{id}: {rows:?}"
        );
        // Every notification queued in history is in the outbox, once.
        let queued = history
            .iter()
            .filter(|h| matches!(h.event.kind, EventKind::NotificationQueued { .. }))
            .count();
        let outbox = e.outbox(id).await.unwrap();
        let emails = outbox
            .iter()
            .filter(|(_, eff)| matches!(eff, Effect::Email { .. }))
            .count();
        assert_eq!(emails, queued, "{id}: outbox vs history");
        let to_sponsor = outbox
            .iter()
            .filter(|(_, eff)| matches!(eff, Effect::Email { to: Recipient::Role(r), .. } if r == "demandeur"))
            .count();
        assert_eq!(to_sponsor, 4, "{id}: received, contract, accepted, access");
    }
    let timers: i64 = sqlx::query("SELECT COUNT(*) FROM timers")
        .fetch_one(e.store().pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(timers, 0, "no timer outlives its request");
    let report = e.verify_audit().await.unwrap();
    assert_eq!(report.broken, None);
    e.store().close().await;
}

async fn kill_and_check(url: String) {
    let u = url.clone();
    let kills = tokio::task::spawn_blocking(move || run_with_kills(&u))
        .await
        .unwrap();
    assert!(kills > 0, "the test must actually kill the driver");
    eprintln!("killed the driver {kills} times");
    check(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_loses_nothing_on_sqlite() {
    kill_and_check(sqlite_url("sqlite")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_loses_nothing_on_postgres() {
    kill_and_check(postgres_url("pg").await).await;
}
