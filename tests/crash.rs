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

/// What every crash test checks in the database, request by request: each ended exactly
/// once; each task created once, its row present, completed, and completed once in history;
/// every notification queued in history is in the outbox, once; then no timer outlives its
/// request and the history chains are intact.
async fn check_recorded(e: &Engine, requests: usize) -> Vec<String> {
    let ids = e.instance_ids("interne-decentralise", None).await.unwrap();
    assert_eq!(
        ids.len(),
        requests,
        "exactly the requested number of requests was started"
    );
    for id in &ids {
        let history = e.history(id).await.unwrap();
        let ended = history
            .iter()
            .filter(|h| matches!(h.event.kind, EventKind::InstanceEnded { .. }))
            .count();
        assert_eq!(ended, 1, "{id} ended {ended} times");
        let mut created = std::collections::BTreeSet::new();
        let mut completed: BTreeMap<u32, usize> = BTreeMap::new();
        for h in &history {
            match &h.event.kind {
                EventKind::TaskCreated { task, .. } => {
                    created.insert(*task);
                }
                EventKind::TaskCompleted { task, .. } => *completed.entry(*task).or_default() += 1,
                _ => {}
            }
        }
        let rows = e.tasks(Some(id), false).await.unwrap();
        assert_eq!(
            rows.len(),
            created.len(),
            "{id}: task rows vs task-created events"
        );
        for t in &rows {
            assert_eq!(t.state, "completed", "{id}: {t:?}");
            let seq = u32::try_from(t.seq).unwrap();
            assert_eq!(
                completed.get(&seq),
                Some(&1),
                "{id}: task {seq} completed once"
            );
        }
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
    let timers: i64 = sqlx::query("SELECT COUNT(*) FROM instances WHERE next_timer_at IS NOT NULL")
        .fetch_one(e.store().pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(timers, 0, "no timer outlives its request");
    assert_eq!(e.verify_audit().await.unwrap().broken, None);
    ids
}

async fn check(url: &str) {
    let e = Engine::open(url, Arc::new(SystemClock)).await.unwrap();
    check_recorded(&e, REQUESTS).await;
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

/// One `guichet serve` of a cluster, on a port of its own chosen at start.
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
/// (killed, paused, restarting).
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

/// Nodes of `guichet serve` on one database, an SMTP server, and staff with API tokens for
/// every role of model (a); the test's own engine reads the database to judge.
struct Cluster {
    url: String,
    sink: smtp_sink::Sink,
    engine: Engine,
    process: guichet_definitions::model::Process,
    /// An API token per role, of the role's first member.
    tokens: BTreeMap<String, String>,
    nodes: Arc<std::sync::Mutex<Vec<Node>>>,
}

impl Cluster {
    async fn start(url: String, nodes: usize) -> Cluster {
        let sink = smtp_sink::Sink::start("127.0.0.1:0", &[]).await;
        // Accounts and API tokens before the nodes start.
        let engine = Engine::open(&url, Arc::new(SystemClock)).await.unwrap();
        let source = guichet_definitions::models::source("interne-decentralise").unwrap();
        engine.deploy(source).await.unwrap();
        let process = guichet_definitions::load(source).process.unwrap();
        let mut tokens = BTreeMap::new();
        for r in &process.roles {
            if let guichet_definitions::model::RoleSource::Members(m) = &r.source {
                engine
                    .set_user(&m[0], "un mot de passe assez long", false)
                    .await
                    .unwrap();
                let token = engine.create_api_token(&m[0], "chaos").await.unwrap();
                tokens.insert(r.id.clone(), token);
            }
        }
        let nodes = (0..nodes).map(|_| start_node(&url, sink.addr)).collect();
        Cluster {
            url,
            sink,
            engine,
            process,
            tokens,
            nodes: Arc::new(std::sync::Mutex::new(nodes)),
        }
    }

    /// The address of a node, round robin.
    fn live(&self, n: usize) -> String {
        let nodes = self.nodes.lock().unwrap();
        nodes[n % nodes.len()].address.clone()
    }

    /// Submits `n` requests through the API, with every node up (a submission whose answer
    /// is lost to a kill would be made twice by a client retrying it, which is not what is
    /// tested here).
    async fn submit(&self, n: usize) {
        let intake = json!({"fields": {
            "titre": "Cohorte", "email": "porteur@labo.example", "organisme": "Labo",
            "type-porteur": "academique", "cadre": "collaboratif", "resume": "R", "donnees": "D"
        }});
        for i in 0..n {
            let (address, token, body) = (
                self.live(i),
                self.tokens["unite-data"].clone(),
                intake.clone(),
            );
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
    }

    /// The staff: every open task completed through the API of some node, whichever answers,
    /// until every request has ended (bounded). `during` runs once, after the first round.
    async fn drive(&self, mut during: Option<Box<dyn FnOnce() + '_>>) {
        let deadline = std::time::Instant::now() + Duration::from_secs(240);
        let mut round = 0usize;
        let mut answers: BTreeMap<Option<u16>, usize> = BTreeMap::new();
        // What the staff last saw of each request: while the database is away (the judge's
        // own reads fail too), they go on acting on it, through nodes that cannot reach the
        // database either.
        let mut seen: BTreeMap<String, guichet_engine::core::Instance> = BTreeMap::new();
        let mut ids = Vec::new();
        loop {
            let mut running = 0;
            if let Ok(all) = self.engine.instance_ids("interne-decentralise", None).await {
                ids = all;
            }
            for id in ids.clone() {
                let inst = match self.engine.instance(&id).await {
                    Ok((_, inst)) => {
                        seen.insert(id.clone(), inst.clone());
                        inst
                    }
                    Err(_) => match seen.get(&id) {
                        Some(inst) => inst.clone(),
                        None => {
                            running += 1;
                            continue;
                        }
                    },
                };
                if !inst.is_running() {
                    continue;
                }
                running += 1;
                let open: Vec<_> = inst.tasks.values().cloned().collect();
                if open.is_empty() {
                    // A wait or a call: answered as the tireless driver does.
                    if let Some(c) = guichet_engine::sim::drive::next_command(&self.process, &inst)
                    {
                        let _ = self.engine.execute(&id, c).await;
                    }
                    continue;
                }
                for t in open {
                    round += 1;
                    let step = &self.process.steps[t.step];
                    let body = json!({
                        "outcome": step.outcomes().first().map(|o| o.id.clone()),
                        "fields": guichet_engine::sim::drive::sample_fields(step.form()),
                    });
                    let (address, token) = (self.live(round), self.tokens[&t.role].clone());
                    let path = format!("/api/v1/tasks/{id}/{}/complete", t.seq);
                    let status =
                        tokio::task::spawn_blocking(move || post(&address, &path, &token, &body))
                            .await
                            .unwrap();
                    // None: the node was killed or paused; 409: the same completion landed
                    // before its answer was lost; 503: the database was away. All are tried
                    // again or already done.
                    assert!(
                        matches!(status, None | Some(200 | 404 | 409 | 503)),
                        "{id}/{}: {status:?}",
                        t.seq
                    );
                    *answers.entry(status).or_default() += 1;
                }
            }
            if running == 0 {
                eprintln!("completions answered (status: count): {answers:?}");
                return;
            }
            if round > 0
                && let Some(f) = during.take()
            {
                f();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{running} requests still running"
            );
        }
    }
    /// Waits until the nodes have delivered every message (a killed node's after the lease).
    async fn drain(&self) {
        let began = std::time::Instant::now();
        let deadline = began + Duration::from_secs(60);
        loop {
            let waiting: i64 =
                sqlx::query("SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')")
                    .fetch_one(self.engine.store().pool())
                    .await
                    .unwrap()
                    .get(0);
            if waiting == 0 {
                eprintln!(
                    "outbox drained {:?} after the last request ended",
                    began.elapsed()
                );
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{waiting} messages never delivered"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the nodes; whether they were all still running (none gave up by itself).
    fn stop(&self) -> bool {
        let mut all_up = true;
        for n in self.nodes.lock().unwrap().iter_mut() {
            all_up &= n.child.try_wait().unwrap().is_none();
            let _ = n.child.kill();
            n.child.wait().unwrap();
        }
        all_up
    }

    /// Judged by what is recorded: histories, task rows, outbox, and the SMTP server's log:
    /// every message sent and received under its Message-ID.
    async fn check(&self, requests: usize) {
        let e = &self.engine;
        let ids = check_recorded(e, requests).await;
        let accepted: std::collections::BTreeSet<String> = self
            .sink
            .accepted()
            .iter()
            .filter_map(|raw| {
                raw.lines()
                    .find_map(|l| l.strip_prefix("Message-ID: ").map(|v| v.trim().to_owned()))
            })
            .collect();
        for id in &ids {
            for (mid, _) in e.outbox(id).await.unwrap() {
                let m = e.outbox_message(&mid).await.unwrap();
                assert_eq!(m.state, "sent", "{id}: {m:?}");
                for message_id in m.message_id.unwrap().split(' ') {
                    assert!(
                        accepted.contains(message_id),
                        "{message_id} never reached the SMTP server"
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_killed_and_paused_again_and_again_lose_nothing() {
    let cluster = Cluster::start(postgres_url("nodes").await, 3).await;
    cluster.submit(NODE_REQUESTS).await;
    // A killer: every 0.5 to 1.5 s, one node gets SIGKILL and is started again; every third
    // time, it is paused instead (SIGSTOP) past its outbox lease, then resumed: what it was
    // delivering has been taken by another node, and its late report must change nothing.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let (nodes, stop) = (cluster.nodes.clone(), stop.clone());
        let (url, smtp) = (cluster.url.clone(), cluster.sink.addr);
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
    cluster.drive(None).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let kills = killer.join().unwrap();
    assert!(kills >= 3, "the test must actually kill and pause nodes");
    eprintln!("killed or paused a node {kills} times");
    cluster.drain().await;
    cluster.stop();
    cluster.check(NODE_REQUESTS).await;
    cluster.engine.store().close().await;
}

/// A PostgreSQL server of the test's own (from the binaries `scripts/with-postgres` found),
/// so that restarting it disturbs no other test.
struct PrivatePostgres {
    bin: std::path::PathBuf,
    data: std::path::PathBuf,
    port: u16,
}

/// Starts the server of `data` on `port`.
fn pg_start(bin: &std::path::Path, data: &std::path::Path, port: u16) {
    let status = as_postgres(&bin.join("pg_ctl"))
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(data.join("log"))
        .arg("-w")
        .arg("-o")
        .arg(format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=100",
            data.display()
        ))
        .arg("start")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A command run as the `postgres` user when the tests run as root (PostgreSQL refuses root).
fn as_postgres(program: &std::path::Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let bin = std::path::PathBuf::from(
            std::env::var("GUICHET_TEST_PG_BIN")
                .expect("GUICHET_TEST_PG_BIN is not set: run the tests with scripts/test"),
        );
        let data = std::env::temp_dir().join(format!("guichet-pg-restart-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        let _ = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&data)
            .status();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ok = |c: &mut Command| assert!(c.stdout(Stdio::null()).status().unwrap().success());
        ok(as_postgres(&bin.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
            .arg(&data));
        pg_start(&bin, &data, port);
        PrivatePostgres { bin, data, port }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (`immediate`: like a crash, no checkpoint), leaves it down
    /// for two seconds and starts it again, in a thread of its own, so that the nodes and
    /// the staff are at work while it is away.
    fn restart(&self) -> std::thread::JoinHandle<()> {
        let (bin, data, port) = (self.bin.clone(), self.data.clone(), self.port);
        std::thread::spawn(move || {
            let status = as_postgres(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            std::thread::sleep(Duration::from_secs(2));
            pg_start(&bin, &data, port);
        })
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_ride_out_a_postgresql_restart() {
    let pg = PrivatePostgres::start();
    let cluster = Cluster::start(pg.url(), 2).await;
    cluster.submit(20).await;
    // Once the staff are at work, the database crashes and comes back while they go on.
    let restarted = std::sync::Mutex::new(None);
    cluster
        .drive(Some(Box::new(|| {
            *restarted.lock().unwrap() = Some(pg.restart());
        })))
        .await;
    restarted
        .lock()
        .unwrap()
        .take()
        .expect("the database was restarted")
        .join()
        .unwrap();
    cluster.drain().await;
    assert!(cluster.stop(), "a node gave up when the database went away");
    cluster.check(20).await;
    cluster.engine.store().close().await;
}
