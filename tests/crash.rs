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
use serde_json::json;
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

// ---------------------------------------------------------------------------------------
// Several nodes on one PostgreSQL, one of them killed again and again.

// The connectors' scripted SMTP server; this test uses only its accepting part.
#[allow(dead_code)]
#[path = "../connectors/tests/smtp_sink/mod.rs"]
mod smtp_sink;

/// How many requests flow through the three nodes, and how many times a node is killed.
const NODE_REQUESTS: usize = 60;
const NODE_KILLS: usize = 8;

/// One `guichet serve` of the cluster, on a port of its own chosen at start.
struct Node {
    child: std::process::Child,
    address: String,
}

fn start_node(url: &str, smtp: std::net::SocketAddr) -> Node {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["--database", url, "serve", "--listen", "127.0.0.1:0"])
        .args(["--smtp-host", "127.0.0.1", "--smtp-tls", "none"])
        .args(["--smtp-port", &smtp.port().to_string()])
        .args(["--mail-from", "Guichet <guichet@hopital.example>"])
        // A killed node's messages are taken by the others after 5 s, not 2 minutes.
        .args(["--outbox-lease", "5"])
        .env("GUICHET_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("the node printed its address").unwrap();
        if let Some(rest) = line.strip_prefix("Listening on http://") {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Node { child, address }
}

/// POSTs JSON to a node with an API token; the status, or None when the node did not answer
/// (killed, restarting).
fn post(address: &str, path: &str, token: &str, body: &serde_json::Value) -> Option<u16> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        // Short: a paused node does not answer until it is resumed.
        .timeout_global(Some(Duration::from_secs(3)))
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .post(&format!("http://{address}{path}"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_killed_and_paused_again_and_again_lose_nothing() {
    let url = postgres_url("nodes").await;
    let sink = smtp_sink::Sink::start("127.0.0.1:0", &[]).await;
    // Accounts and API tokens for every member of model (a)'s roles, before the nodes start.
    let e = Engine::open(&url, Arc::new(SystemClock)).await.unwrap();
    let source = guichet_definitions::models::ALL
        .iter()
        .find(|(f, _)| *f == "interne-decentralise.kdl")
        .unwrap()
        .1;
    e.deploy(source).await.unwrap();
    let p = guichet_definitions::load(source).process.unwrap();
    let mut tokens: BTreeMap<String, String> = BTreeMap::new();
    for r in &p.roles {
        if let guichet_definitions::model::RoleSource::Members(m) = &r.source {
            let who = &m[0];
            e.set_user(who, "un mot de passe assez long", false)
                .await
                .unwrap();
            tokens.insert(
                r.id.clone(),
                e.create_api_token(who, "chaos").await.unwrap(),
            );
        }
    }
    let sponsor = tokens["unite-data"].clone();
    let nodes = Arc::new(std::sync::Mutex::new(
        (0..3)
            .map(|_| start_node(&url, sink.addr))
            .collect::<Vec<_>>(),
    ));
    let live = |n: usize| nodes.lock().unwrap()[n % 3].address.clone();

    // The requests are submitted with every node up (a submission whose answer is lost to a
    // kill would be made twice by a client retrying it, which is not what is tested here).
    let intake = json!({"fields": {
        "titre": "Cohorte", "email": "porteur@labo.example", "organisme": "Labo",
        "type-porteur": "academique", "cadre": "collaboratif", "resume": "R", "donnees": "D"
    }});
    for i in 0..NODE_REQUESTS {
        let (address, token, body) = (live(i), sponsor.clone(), intake.clone());
        let status = tokio::task::spawn_blocking(move || {
            post(
                &address,
                "/api/v1/desks/interne-decentralise/requests",
                &token,
                &body,
            )
        })
        .await
        .unwrap();
        assert_eq!(status, Some(201));
    }

    // A killer: every 0.5 to 1.5 s, one node gets SIGKILL and is started again; every third
    // time, it is paused instead (SIGSTOP) past its outbox lease, then resumed: what it was
    // delivering has been taken by another node, and its late report must change nothing.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let (nodes, stop, url, smtp) = (nodes.clone(), stop.clone(), url.clone(), sink.addr);
        std::thread::spawn(move || {
            let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
            let mut kills = 0;
            while kills < NODE_KILLS && !stop.load(std::sync::atomic::Ordering::SeqCst) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                std::thread::sleep(Duration::from_millis(500 + seed % 1_000));
                let victim = (seed % 3) as usize;
                kills += 1;
                if kills % 3 == 0 {
                    let pid = nodes.lock().unwrap()[victim].child.id().to_string();
                    let signal = |s: &str| {
                        assert!(
                            Command::new("kill")
                                .args([s, &pid])
                                .status()
                                .unwrap()
                                .success()
                        );
                    };
                    signal("-STOP");
                    std::thread::sleep(Duration::from_secs(6));
                    signal("-CONT");
                    continue;
                }
                let mut n = nodes.lock().unwrap();
                n[victim].child.kill().unwrap(); // SIGKILL
                n[victim].child.wait().unwrap();
                n[victim] = start_node(&url, smtp);
            }
            kills
        })
    };

    // The staff: every open task completed through the API of some node, whichever answers,
    // until every request has ended (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let mut round = 0usize;
    loop {
        let mut running = 0;
        for id in e.instance_ids("interne-decentralise", None).await.unwrap() {
            let (_, inst) = e.instance(&id).await.unwrap();
            if !inst.is_running() {
                continue;
            }
            running += 1;
            let open: Vec<_> = inst.tasks.values().cloned().collect();
            if open.is_empty() {
                // No task open: a wait or a call, answered as the tireless driver does.
                if let Some(c) = guichet_engine::drive::next_command(&p, &inst) {
                    let _ = e.execute(&id, c).await;
                }
                continue;
            }
            for t in open {
                round += 1;
                let step = &p.steps[t.step];
                let body = json!({
                    "outcome": step.outcomes().first().map(|o| o.id.clone()),
                    "fields": guichet_engine::drive::sample_fields(step.form()),
                });
                let (address, token) = (live(round), tokens[&t.role].clone());
                let path = format!("/api/v1/tasks/{id}/{}/complete", t.seq);
                let status =
                    tokio::task::spawn_blocking(move || post(&address, &path, &token, &body))
                        .await
                        .unwrap();
                // None: the node was killed; 409: the same completion landed before its
                // answer was lost; both are tried again or already done.
                assert!(
                    matches!(status, None | Some(200 | 404 | 409 | 503)),
                    "{id}/{}: {status:?}",
                    t.seq
                );
            }
        }
        if running == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{running} requests still running"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let kills = killer.join().unwrap();
    assert!(kills >= 3, "the test must actually kill and pause nodes");
    eprintln!("killed or paused a node {kills} times");

    // The nodes left running deliver what is left (a killed node's messages after the lease).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let waiting: i64 =
            sqlx::query("SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')")
                .fetch_one(e.store().pool())
                .await
                .unwrap()
                .get(0);
        if waiting == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{waiting} messages never delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for n in nodes.lock().unwrap().iter_mut() {
        n.child.kill().unwrap();
        n.child.wait().unwrap();
    }

    // Judged by what is recorded: histories, task rows, outbox, the SMTP server's log.
    let ids = e.instance_ids("interne-decentralise", None).await.unwrap();
    assert_eq!(ids.len(), NODE_REQUESTS);
    let accepted: std::collections::BTreeSet<String> = sink
        .accepted()
        .iter()
        .filter_map(|raw| {
            raw.lines()
                .find_map(|l| l.strip_prefix("Message-ID: ").map(|v| v.trim().to_owned()))
        })
        .collect();
    for id in &ids {
        let history = e.history(id).await.unwrap();
        let ended = history
            .iter()
            .filter(|h| matches!(h.event.kind, EventKind::InstanceEnded { .. }))
            .count();
        assert_eq!(ended, 1, "{id} ended {ended} times");
        // Each task created once and completed once.
        let mut completed: BTreeMap<u32, usize> = BTreeMap::new();
        for h in &history {
            if let EventKind::TaskCompleted { task, .. } = &h.event.kind {
                *completed.entry(*task).or_default() += 1;
            }
        }
        let rows = e.tasks(Some(id), false).await.unwrap();
        assert!(!rows.is_empty());
        for t in &rows {
            assert_eq!(t.state, "completed", "{id}: {t:?}");
            assert_eq!(
                completed.get(&u32::try_from(t.seq).unwrap()),
                Some(&1),
                "{id}: task {} completed once",
                t.seq
            );
        }
        // Every notification queued is in the outbox, once, sent, and reached the SMTP
        // server under its Message-ID.
        let queued = history
            .iter()
            .filter(|h| matches!(h.event.kind, EventKind::NotificationQueued { .. }))
            .count();
        let outbox = e.outbox(id).await.unwrap();
        assert_eq!(outbox.len(), queued, "{id}: outbox vs history");
        for (mid, _) in &outbox {
            let m = e.outbox_message(mid).await.unwrap();
            assert_eq!(m.state, "sent", "{id}: {m:?}");
            for message_id in m.message_id.unwrap().split(' ') {
                assert!(
                    accepted.contains(message_id),
                    "{message_id} never reached the SMTP server"
                );
            }
        }
    }
    let timers: i64 = sqlx::query("SELECT COUNT(*) FROM timers")
        .fetch_one(e.store().pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(timers, 0, "no timer outlives its request");
    assert_eq!(e.verify_audit().await.unwrap().broken, None);
    e.store().close().await;
}
