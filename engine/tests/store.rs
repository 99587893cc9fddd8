//! The engine on real databases: every scenario runs on a SQLite file and on the PostgreSQL
//! server that `scripts/test` starts (its URL in `GUICHET_TEST_POSTGRES`; each test gets a
//! database of its own). Time is a manual clock: no test sleeps.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use guichet_definitions::model::EndResult;
use guichet_engine::clock::{ManualClock, Timestamp};
use guichet_engine::core::{Command, Effect, EventKind, Fields, InstanceStatus, Recipient};
use guichet_engine::{Engine, Error};
use serde_json::json;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty database URL for one test.
async fn database(backend: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("guichet_test_{}_{n}", std::process::id());
    match backend {
        "sqlite" => {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            format!("sqlite://{}", path.display())
        }
        _ => {
            let admin = std::env::var("GUICHET_TEST_POSTGRES").unwrap_or_else(|_| {
                panic!(
                    "GUICHET_TEST_POSTGRES is not set: run the tests with scripts/test, which starts \
                     a throwaway PostgreSQL server, or point it at one (postgres://user@127.0.0.1:port/db)"
                )
            });
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            let base = admin.rsplit_once('/').unwrap().0;
            format!("{base}/{name}")
        }
    }
}

const T0: Timestamp = Timestamp(1_800_000_000_000);
const DAY: i64 = 86_400_000;

async fn engine(backend: &str) -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let engine = Engine::open(&database(backend).await, clock.clone())
        .await
        .unwrap();
    (engine, clock)
}

fn model(name: &str) -> &'static str {
    guichet_definitions::models::source(name).unwrap()
}

fn fields(v: serde_json::Value) -> Fields {
    serde_json::from_value(v).unwrap()
}

fn intake() -> Fields {
    fields(json!({
        "titre": "Cohorte", "email": "porteur@labo.example", "organisme": "Labo",
        "type-porteur": "industriel", "cadre": "collaboratif", "resume": "R", "donnees": "D"
    }))
}

/// The steps of a request's open tasks.
async fn open_steps(e: &Engine, id: &str) -> Vec<String> {
    e.tasks(Some(id), true)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.step)
        .collect()
}

async fn open_task(e: &Engine, id: &str, step: &str) -> u32 {
    let tasks = e.tasks(Some(id), true).await.unwrap();
    let t = tasks
        .iter()
        .find(|t| t.step == step)
        .unwrap_or_else(|| panic!("no open task at {step}: {tasks:?}"));
    u32::try_from(t.seq).unwrap()
}

async fn complete(
    e: &Engine,
    id: &str,
    step: &str,
    outcome: Option<&str>,
    data: serde_json::Value,
) {
    let task = open_task(e, id, step).await;
    e.execute(
        id,
        Command::Complete {
            task,
            user: "agent@hopital.example".into(),
            outcome: outcome.map(Into::into),
            fields: fields(data),
            comment: None,
        },
    )
    .await
    .unwrap_or_else(|err| panic!("{step}: {err}"));
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name("sqlite").await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name("postgres").await } )*
        }
    };
}

on_both_backends!(
    deploying_is_idempotent_and_versions_keep_running_instances,
    a_whole_request_of_model_a_is_stored_and_audited,
    bad_commands_write_nothing,
    timers_fire_from_the_database,
    a_requests_timers_due_together_fire_in_order_in_one_pass,
    concurrent_completions_of_one_task_one_wins,
    parallel_branches_completed_at_once_all_count,
    tampering_with_history_is_detected,
    the_inbox_reads_the_most_urgent_tasks_of_ones_roles,
    a_daily_digest_is_queued_once_per_person_and_day,
    a_dispatcher_that_lost_its_lease_records_nothing,
    two_nodes_folding_the_indicators_count_each_request_once,
    the_facts_of_requests_ending_together_are_those_of_their_history,
    a_request_changed_by_another_node_is_read_again,
    a_node_whose_memory_is_often_out_of_date_reads_instead,
    accounts_sessions_tokens_links_and_preferences_are_written,
    a_token_revoked_on_one_node_is_refused_by_the_others_within_a_second,
    a_history_written_one_event_a_row_reads_and_ends_as_before,
    a_command_that_fails_beside_others_fails_alone,
    a_revision_or_an_administrator_made_on_one_node_is_seen_by_the_others_within_a_second,
    hostile_values_round_trip_through_every_path,
    a_ready_database_reads_every_table_and_takes_a_write,
    a_submission_sent_again_with_its_key_starts_one_request,
    what_a_dead_node_held_is_claimed_again_when_its_heartbeat_stops,
    a_visit_that_timed_out_counts_and_old_facts_are_derived_again,
);

/// The mean days in the wait for more information, as the indicators read them.
async fn days_waited(e: &Engine) -> Option<f64> {
    let steps = e.step_timings(&Default::default()).await.unwrap();
    let wait = steps
        .iter()
        .find(|s| s.step == "reponse-complement")
        .unwrap();
    wait.total.map(|t| t.mean)
}

/// A wait that timed out is a visit that ended then, with its exit, and counts in the time
/// in its step. The visits of a database written before exits existed (its timed-out visit
/// without an end, as migration 22 finds it) are derived again from the history before the
/// fold reads them, and the fold leaves them alone until then.
async fn a_visit_that_timed_out_counts_and_old_facts_are_derived_again(backend: &str) {
    let url = database(backend).await;
    let clock = Arc::new(ManualClock::new(T0));
    let e = Engine::open(&url, clock.clone()).await.unwrap();
    let pool = e.store().pool().clone();
    e.deploy(model("interne-decentralise")).await.unwrap();
    let id = e.start("interne-decentralise", &intake()).await.unwrap();
    complete(&e, &id, "recevabilite", Some("complement"), json!({})).await;
    clock.set(Timestamp(T0.0 + 30 * DAY));
    assert_eq!(e.fire_due_timers(100).await.unwrap(), 1);
    let waited = || {
        let (pool, id) = (pool.clone(), id.clone());
        async move {
            let r = sqlx::query("SELECT left_at, exit FROM step_visits WHERE instance = $1 AND step = 'reponse-complement'")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            let left: Option<i64> = sqlx::Row::get(&r, 0);
            let exit: Option<String> = sqlx::Row::get(&r, 1);
            (left, exit)
        }
    };
    let ended = (Some(T0.0 + 30 * DAY), Some("timeout".to_owned()));
    assert_eq!(waited().await, ended);
    assert_eq!(days_waited(&e).await, Some(30.0));
    assert_eq!(e.fold_all_indicators().await.unwrap(), 1);

    // As an older version left it, and as the migration marks it.
    for sql in [
        "UPDATE step_visits SET left_at = NULL, exit = NULL WHERE step = 'reponse-complement'",
        "INSERT INTO facts_stale (instance) SELECT id FROM instances WHERE status <> 'running'",
        "DELETE FROM kpi_rollups",
        "INSERT INTO kpi_pending (instance) SELECT id FROM instances WHERE status <> 'running'",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    assert_eq!(waited().await, (None, None));
    // The engine of the upgraded version starts on it.
    drop(e);
    let e = Engine::open(&url, clock.clone()).await.unwrap();
    assert_eq!(
        e.fold_indicators(100).await.unwrap(),
        0,
        "stale: not folded"
    );
    assert_eq!(
        days_waited(&e).await,
        None,
        "read from the old facts meanwhile"
    );
    assert_eq!(e.refresh_stale_facts(100).await.unwrap(), 1);
    assert_eq!(waited().await, ended);
    // None left: the engine stops looking.
    assert_eq!(e.refresh_stale_facts(100).await.unwrap(), 0);
    assert!(e.facts_fresh());
    assert_eq!(e.fold_all_indicators().await.unwrap(), 1);
    assert_eq!(days_waited(&e).await, Some(30.0));
}

/// A message claimed by a node is its own while the node's heartbeat goes on, whatever its
/// lease; claimed again by another once the heartbeat is [`STALE_MS`] old, long before the
/// lease ends, and at once when the node left. A claim by a node that never announced
/// itself is held by its lease alone.
async fn what_a_dead_node_held_is_claimed_again_when_its_heartbeat_stops(backend: &str) {
    use guichet_engine::runtime::nodes::STALE_MS;
    let url = database(backend).await;
    let clock = Arc::new(ManualClock::new(T0));
    let a = Engine::open(&url, clock.clone()).await.unwrap();
    let b = Engine::open(&url, clock.clone()).await.unwrap();
    a.deploy(model("interne-decentralise")).await.unwrap();
    for _ in 0..3 {
        a.start("interne-decentralise", &intake()).await.unwrap();
    }
    assert_eq!(a.join_nodes().await.unwrap(), 0);
    b.join_nodes().await.unwrap();
    let lease = 120_000;
    let held = a.claim_outbox(T0, lease, 1, "email").await.unwrap();
    let id = held[0].id.clone();
    let at = |ms: i64| {
        clock.set(Timestamp(T0.0 + ms));
        Timestamp(T0.0 + ms)
    };
    // A beats: B leaves its message alone, and claims the others.
    let now = at(STALE_MS - 1_000);
    a.heartbeat().await.unwrap();
    b.heartbeat().await.unwrap();
    let others = b.claim_outbox(now, lease, 10, "email").await.unwrap();
    assert!(
        !others.is_empty() && others.iter().all(|m| m.id != id),
        "{others:?}"
    );
    // A stops beating: once its heartbeat is stale, B takes its message (attempt 2).
    let now = at(STALE_MS - 1_000 + STALE_MS + 1);
    b.heartbeat().await.unwrap();
    let taken = b.claim_outbox(now, lease, 10, "email").await.unwrap();
    let again = taken
        .iter()
        .find(|m| m.id == id)
        .expect("the dead node's message");
    assert_eq!(again.attempt, 2);
    // B's own claims stay its own while it beats.
    assert!(taken.iter().all(|m| others.iter().all(|o| o.id != m.id)));
    // A node that leaves gives up what it held at once.
    let c = Engine::open(&url, clock.clone()).await.unwrap();
    c.join_nodes().await.unwrap();
    c.start("interne-decentralise", &intake()).await.unwrap();
    let held = c.claim_outbox(now, lease, 10, "email").await.unwrap();
    assert!(!held.is_empty());
    assert!(
        b.claim_outbox(now, lease, 10, "email")
            .await
            .unwrap()
            .is_empty()
    );
    c.leave_nodes().await.unwrap();
    let taken = b.claim_outbox(now, lease, 10, "email").await.unwrap();
    assert_eq!(taken.len(), held.len(), "{taken:?}");
    // Never announced: a lease alone, whoever beats.
    let d = Engine::open(&url, clock.clone()).await.unwrap();
    d.start("interne-decentralise", &intake()).await.unwrap();
    let held = d.claim_outbox(now, lease, 10, "email").await.unwrap();
    assert!(!held.is_empty());
    let later = at(STALE_MS * 4);
    b.heartbeat().await.unwrap();
    assert!(
        b.claim_outbox(later, lease, 10, "email")
            .await
            .unwrap()
            .is_empty()
    );
    // A node restarted on a host finds its predecessor's process gone (A's, here given a
    // process id that is no process): forgotten at once, fresh as its heartbeat is.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE nodes SET pid = 2147483000, seen_at = {} WHERE id = '{}'",
        later.0,
        a.node_id()
    )))
    .execute(&pool)
    .await
    .unwrap();
    let successor = Engine::open(&url, clock.clone()).await.unwrap();
    assert_eq!(successor.join_nodes().await.unwrap(), 1);
    let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM nodes WHERE id = '{}'",
        a.node_id()
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    pool.close().await;
}

/// A submission sent several times at once with one key, through two nodes, starts one
/// request, and every sending is answered with it (all but one as a replay); the key sent
/// with other fields is refused, naming the first request, and starts nothing; another key
/// starts another request.
async fn a_submission_sent_again_with_its_key_starts_one_request(backend: &str) {
    let url = database(backend).await;
    let clock = Arc::new(ManualClock::new(T0));
    let a = Arc::new(Engine::open(&url, clock.clone()).await.unwrap());
    let b = Arc::new(Engine::open(&url, clock.clone()).await.unwrap());
    a.deploy(model("interne-decentralise")).await.unwrap();
    let rounds = 10;
    for round in 0..rounds {
        let key = format!("api someone@example.org {round}");
        let sends: Vec<_> = (0..6)
            .map(|n| {
                let (node, key) = (if n % 2 == 0 { &a } else { &b }.clone(), key.clone());
                tokio::spawn(async move {
                    node.start_request_once("interne-decentralise", &intake(), None, &key)
                        .await
                })
            })
            .collect();
        let mut started = Vec::new();
        for send in sends {
            started.push(send.await.unwrap().unwrap());
        }
        let firsts = started.iter().filter(|s| !s.replayed).count();
        assert_eq!(firsts, 1, "round {round}: {started:?}");
        assert!(
            started.iter().all(|s| s.id == started[0].id),
            "round {round}: {started:?}"
        );
        // Each answer says where the request stands: its first open task.
        assert!(started.iter().all(|s| !s.inst.tasks.is_empty()));
    }
    let mut other = intake();
    other.insert("titre".into(), json!("Another project"));
    let first = a
        .start_request_once(
            "interne-decentralise",
            &intake(),
            None,
            "api someone@example.org 0",
        )
        .await
        .unwrap();
    let err = b
        .start_request_once(
            "interne-decentralise",
            &other,
            None,
            "api someone@example.org 0",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::KeyReused(r) if *r == guichet_engine::core::reference(&first.id)),
        "{err}"
    );
    let fresh = b
        .start_request_once(
            "interne-decentralise",
            &other,
            None,
            "api someone@example.org new",
        )
        .await
        .unwrap();
    assert!(!fresh.replayed && fresh.id != first.id);
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, rounds + 1, "one request per key");
    pool.close().await;
}

/// Readiness reads every table of this version and writes its probe, again and again.
async fn a_ready_database_reads_every_table_and_takes_a_write(backend: &str) {
    let (e, clock) = engine(backend).await;
    e.readiness().await.unwrap();
    // The second probe updates the first's row.
    e.readiness().await.unwrap();
    // A worker failing for over a minute, with no pass succeeding, makes the node not
    // ready, naming it; one success and it is ready again.
    e.worker_passed("email", true);
    e.worker_passed("timers", false);
    clock.set(Timestamp(T0.0 + 30_000));
    e.worker_passed("timers", false);
    e.readiness().await.unwrap();
    clock.set(Timestamp(T0.0 + 61_000));
    e.worker_passed("email", true);
    e.worker_passed("timers", false);
    let err = e.readiness().await.unwrap_err();
    assert!(
        matches!(&err, Error::Unready(m) if m.contains("timers worker has failed at every pass for 61 s")),
        "{err}"
    );
    e.worker_passed("timers", true);
    e.readiness().await.unwrap();
    // One that finished no pass for 15 minutes is stuck.
    clock.set(Timestamp(T0.0 + 61_000 + 15 * 60_000 + 1));
    e.worker_passed("timers", true);
    let err = e.readiness().await.unwrap_err();
    assert!(
        matches!(&err, Error::Unready(m) if m.contains("email worker has finished no pass")),
        "{err}"
    );
}

/// Starts take their desk's latest revision, and permissions the administrators, from what
/// the node read at most a second ago (`DESKS_TTL`); a change made through the node itself,
/// and a desk it has not seen yet, at once.
async fn a_revision_or_an_administrator_made_on_one_node_is_seen_by_the_others_within_a_second(
    backend: &str,
) {
    let url = database(backend).await;
    let clock = Arc::new(ManualClock::new(T0));
    let a = Engine::open(&url, clock.clone()).await.unwrap();
    let b = Engine::open(&url, clock.clone()).await.unwrap();
    let pool = a.store().pool().clone();
    let revision = |id: String| {
        let pool = pool.clone();
        async move {
            let row = sqlx::query(
                "SELECT d.revision FROM instances i JOIN definitions d ON d.hash = i.definition WHERE i.id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
            sqlx::Row::get::<i64, _>(&row, 0)
        }
    };
    // B reads the desks before A deploys one: B starts it at once all the same.
    assert!(b.desks().await.unwrap().is_empty());
    a.deploy(model("externe")).await.unwrap();
    assert_eq!(
        revision(b.start("externe", &intake_c()).await.unwrap()).await,
        1
    );
    // A new revision: A starts on it at once, B within the second.
    let changed = format!("{}\n// revised\n", model("externe"));
    assert_eq!(a.deploy(&changed).await.unwrap().revision, 2);
    assert_eq!(
        revision(a.start("externe", &intake_c()).await.unwrap()).await,
        2
    );
    // The roster is read again once its second has passed on the engine's clock.
    clock.set(Timestamp(
        guichet_engine::clock::Clock::now(&*clock).0 + 1_000,
    ));
    assert_eq!(
        revision(b.start("externe", &intake_c()).await.unwrap()).await,
        2
    );
    // An administrator named through A: at once on A, within the second on B.
    assert!(!b.is_admin("chief@h.example").await.unwrap());
    a.set_user("chief@h.example", "a long passphrase here", true)
        .await
        .unwrap();
    assert!(a.is_admin(" Chief@h.example").await.unwrap());
    // The roster is read again once its second has passed on the engine's clock.
    clock.set(Timestamp(
        guichet_engine::clock::Clock::now(&*clock).0 + 1_000,
    ));
    assert!(b.is_admin("chief@h.example").await.unwrap());
    a.set_user("chief@h.example", "a long passphrase here", false)
        .await
        .unwrap();
    assert!(!a.is_admin("chief@h.example").await.unwrap());
}

/// Commands written together (SQLite's group commit, PostgreSQL's batches): one whose
/// writes fail gets its error and changes nothing; the others are written. One on a request
/// that does not exist, read with theirs (PostgreSQL's reads together), is told so.
async fn a_command_that_fails_beside_others_fails_alone(backend: &str) {
    let (e, _) = engine(backend).await;
    let e = Arc::new(e);
    let pool = e.store().pool().clone();
    e.deploy(model("externe")).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(e.start("externe", &intake_c()).await.unwrap());
    }
    // The next command on one request will queue messages whose ids are already taken.
    let bad = ids[5].clone();
    let tip: i64 = sqlx::Row::get(
        &sqlx::query("SELECT history_seq FROM instances WHERE id = $1")
            .bind(&bad)
            .fetch_one(&pool)
            .await
            .unwrap(),
        0,
    );
    for n in 0..16 {
        sqlx::query(
            "INSERT INTO outbox (id, instance, kind, payload, state, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, 'email', '{}', 'sent', 1, 0, 0)",
        )
        .bind(format!("{bad}.{}.{n}", tip + 1))
        .bind(&bad)
        .execute(&pool)
        .await
        .unwrap();
    }
    let mut tasks = Vec::new();
    for id in &ids {
        tasks.push(open_task(&e, id, "recevabilite").await);
    }
    let complete = |task| Command::Complete {
        task,
        user: "agent@hopital.example".into(),
        outcome: Some("recevable".into()),
        fields: Fields::new(),
        comment: None,
    };
    let unknown = {
        let (e, command) = (e.clone(), complete(1));
        tokio::spawn(async move { e.execute("no-such-request", command).await })
    };
    let calls: Vec<_> = ids
        .iter()
        .zip(tasks)
        .map(|(id, task)| {
            let (e, id) = (e.clone(), id.clone());
            let command = complete(task);
            tokio::spawn(async move {
                let done = e.execute(&id, command).await;
                (id, done)
            })
        })
        .collect();
    for call in calls {
        let (id, done) = call.await.unwrap();
        if id == bad {
            assert!(
                matches!(done, Err(Error::Database(_) | Error::SqliteFault(_))),
                "{done:?}"
            );
        } else {
            done.unwrap_or_else(|err| panic!("{id}: {err}"));
        }
    }
    let unknown = unknown.await.unwrap();
    assert!(matches!(unknown, Err(Error::NotFound(_))), "{unknown:?}");
    for id in &ids {
        let open = open_steps(&e, id).await;
        if *id == bad {
            assert_eq!(
                open,
                ["recevabilite"],
                "nothing of the failed command is written"
            );
        } else {
            assert!(!open.contains(&"recevabilite".to_owned()), "{open:?}");
        }
    }
    assert_eq!(e.verify_audit().await.unwrap().broken, None);
}

/// A database written before the history took one row per command held one row per event
/// (its body the event's object): such rows read, verify and end a request as before.
async fn a_history_written_one_event_a_row_reads_and_ends_as_before(backend: &str) {
    use sha2::Digest as _;
    let (e, _) = engine(backend).await;
    let pool = e.store().pool().clone();
    e.deploy(model("externe")).await.unwrap();
    let (old, new) = (
        e.start("externe", &intake_c()).await.unwrap(),
        e.start("externe", &intake_c()).await.unwrap(),
    );
    let before = e.history(&old).await.unwrap();
    // The old layout: each event a row, chained to the one before.
    let rows =
        sqlx::query("SELECT seq, body, prev_hash FROM history WHERE instance = $1 ORDER BY seq")
            .bind(&old)
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut one_a_row = Vec::new();
    for r in &rows {
        let (last, body, mut prev): (i64, String, String) = (
            sqlx::Row::get(r, 0),
            sqlx::Row::get(r, 1),
            sqlx::Row::get(r, 2),
        );
        let events: Vec<&serde_json::value::RawValue> = serde_json::from_str(&body).unwrap();
        let first = last + 1 - i64::try_from(events.len()).unwrap();
        for (seq, event) in (first..).zip(events) {
            let text = event.get();
            let hash = hex::encode(sha2::Sha256::digest(
                format!("{prev}\n{old}\n{seq}\n{text}").as_bytes(),
            ));
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            one_a_row.push((
                seq,
                value["at"].as_i64().unwrap(),
                value["event"].as_str().unwrap().to_owned(),
                text.to_owned(),
                prev,
                hash.clone(),
            ));
            prev = hash;
        }
    }
    assert!(
        one_a_row.len() > rows.len(),
        "a command appends several events"
    );
    sqlx::query("DELETE FROM history WHERE instance = $1")
        .bind(&old)
        .execute(&pool)
        .await
        .unwrap();
    for (seq, at, event, body, prev, hash) in one_a_row {
        sqlx::query("INSERT INTO history (instance, seq, at, event, body, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&old)
            .bind(seq)
            .bind(at)
            .bind(event)
            .bind(body)
            .bind(prev)
            .bind(hash)
            .execute(&pool)
            .await
            .unwrap();
    }
    // The same events, entries and hashes: one chain, whichever the layout.
    assert_eq!(e.history(&old).await.unwrap(), before);
    assert_eq!(e.verify_audit().await.unwrap().broken, None);
    // Ended under the new layout, its facts read the old rows too: as the other request's.
    for id in [&old, &new] {
        complete(&e, id, "recevabilite", Some("non-recevable"), json!({})).await;
    }
    let visits = |id: String| {
        let pool = pool.clone();
        async move {
            sqlx::query("SELECT step, visit, kind, entered_at, left_at FROM step_visits WHERE instance = $1 ORDER BY step, visit")
                .bind(id)
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    let (step, visit, kind): (String, i64, String) =
                        (sqlx::Row::get(r, 0), sqlx::Row::get(r, 1), sqlx::Row::get(r, 2));
                    let (entered, left): (i64, Option<i64>) = (sqlx::Row::get(r, 3), sqlx::Row::get(r, 4));
                    (step, visit, kind, entered, left)
                })
                .collect::<Vec<_>>()
        }
    };
    let old_visits = visits(old.clone()).await;
    assert!(old_visits.len() >= 2, "{old_visits:?}");
    assert_eq!(old_visits, visits(new.clone()).await);
    let history = e.history(&old).await.unwrap();
    assert_eq!(history[..before.len()], before[..]);
    assert_eq!(
        history.iter().map(|h| h.seq).collect::<Vec<_>>(),
        (1..=history.len() as i64).collect::<Vec<_>>()
    );
    assert_eq!(e.verify_audit().await.unwrap().broken, None);
    // An old row altered is named by its entry.
    sqlx::query("UPDATE history SET body = REPLACE(body, 'requester', 'someone') WHERE instance = $1 AND seq = 2")
        .bind(&old)
        .execute(&pool)
        .await
        .unwrap();
    let (inst, seq, why) = e.verify_audit().await.unwrap().broken.unwrap();
    assert_eq!((inst.as_str(), seq), (old.as_str(), 2));
    assert!(why.contains("its content does not match its hash"), "{why}");
}

async fn a_token_revoked_on_one_node_is_refused_by_the_others_within_a_second(backend: &str) {
    let url = database(backend).await;
    let clock = Arc::new(ManualClock::new(T0));
    let a = Engine::open(&url, clock.clone()).await.unwrap();
    let b = Engine::open(&url, clock.clone()).await.unwrap();
    a.set_user("script@h.example", "a long passphrase here", false)
        .await
        .unwrap();
    let token = a.create_api_token("script@h.example", "s").await.unwrap();
    let other = a.create_api_token("script@h.example", "t").await.unwrap();
    for e in [&a, &b] {
        assert_eq!(
            e.api_token(&token).await.unwrap().email(),
            Some("script@h.example")
        );
    }
    assert_eq!(b.revoke_api_token(&token[..12]).await.unwrap(), 1);
    // The revoking node at once; the other still knows the token as read a moment ago...
    assert_eq!(b.api_token(&token).await.unwrap().email(), None);
    assert_eq!(
        a.api_token(&token).await.unwrap().email(),
        Some("script@h.example")
    );
    // ...until a second has passed: then it reads it again, revoked.
    clock.set(Timestamp(T0.0 + 1_001));
    assert_eq!(a.api_token(&token).await.unwrap().email(), None);
    assert_eq!(b.api_token(&token).await.unwrap().email(), None);
    // Tokens not revoked go on working everywhere; an unknown one never did.
    for e in [&a, &b] {
        assert_eq!(
            e.api_token(&other).await.unwrap().email(),
            Some("script@h.example")
        );
        assert_eq!(e.api_token("gch_forged").await.unwrap().email(), None);
    }
}

async fn a_dispatcher_that_lost_its_lease_records_nothing(backend: &str) {
    let (e, clock) = engine(backend).await;
    e.deploy(model("interne-decentralise")).await.unwrap();
    e.start("interne-decentralise", &intake()).await.unwrap();
    // Node A claims a message for 1 s, then stalls (paused, or a slow server).
    let a = e.claim_outbox(T0, 1_000, 1, "email").await.unwrap();
    let id = a[0].id.clone();
    assert_eq!(a[0].attempt, 1);
    // Its lease runs out: node B claims the same message.
    clock.set(Timestamp(T0.0 + 2_000));
    let b = e
        .claim_outbox(Timestamp(T0.0 + 2_000), 60_000, 10, "email")
        .await
        .unwrap();
    let again = b.iter().find(|m| m.id == id).unwrap();
    assert_eq!(again.attempt, 2);
    // A wakes up: whatever it reports changes nothing.
    let now = Timestamp(T0.0 + 3_000);
    let sent = |message_id, subject| guichet_engine::runtime::outbox::Sent {
        message_id,
        recipients: "someone@x",
        subject,
        ..Default::default()
    };
    assert!(
        !e.outbox_sent(&id, 1, now, &sent("<a@x>", "A"))
            .await
            .unwrap()
    );
    assert!(!e.outbox_retry(&id, 1, now, "late").await.unwrap());
    assert!(!e.outbox_dead(&id, 1, "late").await.unwrap());
    let m = e.outbox_message(&id).await.unwrap();
    assert_eq!(
        (m.state.as_str(), m.attempts, m.subject),
        ("sending", 2, None)
    );
    // B's report is the one recorded.
    assert!(
        e.outbox_sent(&id, 2, now, &sent("<b@x>", "B"))
            .await
            .unwrap()
    );
    let m = e.outbox_message(&id).await.unwrap();
    assert_eq!(
        (
            m.state.as_str(),
            m.subject.as_deref(),
            m.message_id.as_deref()
        ),
        ("sent", Some("B"), Some("<b@x>"))
    );
}

async fn a_daily_digest_is_queued_once_per_person_and_day(backend: &str) {
    use guichet_engine::definitions::model::Language;
    let (e, clock) = engine(backend).await;
    e.deploy(model("interne-decentralise")).await.unwrap();
    e.start("interne-decentralise", &intake()).await.unwrap();
    let data = "guichet-donnees@hopital.example";
    let p = e
        .set_mail_preference("Guichet-Donnees@hopital.example", true, Language::En)
        .await
        .unwrap();
    assert_eq!((p.email.as_str(), p.digest), (data, true));
    // Changing it again updates the one row.
    e.set_mail_preference(data, true, Language::Fr)
        .await
        .unwrap();
    assert_eq!(
        e.mail_preference(data).await.unwrap().language,
        Language::Fr
    );
    // Nobody else asked; someone with nothing pending gets no digest.
    e.set_mail_preference("direction-recherche@hopital.example", true, Language::Fr)
        .await
        .unwrap();
    // T0 is 09:00 in Paris: a digest at 10 is not due yet, one at 8 is.
    assert_eq!(e.queue_digests(T0, 10).await.unwrap(), 0);
    assert_eq!(e.queue_digests(T0, 8).await.unwrap(), 1);
    assert_eq!(e.queue_digests(T0, 8).await.unwrap(), 0, "once a day");
    let claimed = e.claim_digests(T0, 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].digest.email, data);
    assert_eq!(
        claimed[0].id,
        guichet_engine::runtime::digest::digest_id(data, "2027-01-15")
    );
    let row = e.outbox_message(&claimed[0].id).await.unwrap();
    assert_eq!((row.instance, row.kind.as_str()), (None, "digest"));
    // Held by its lease: nobody else claims it.
    assert!(e.claim_digests(T0, 60_000, 10).await.unwrap().is_empty());
    // The next day, a new one.
    clock.set(Timestamp(T0.0 + 86_400_000));
    assert_eq!(
        e.queue_digests(Timestamp(T0.0 + 86_400_000), 8)
            .await
            .unwrap(),
        1
    );
    // Not an address: refused, nothing written.
    assert!(
        e.set_mail_preference("nobody", true, Language::Fr)
            .await
            .is_err()
    );
}

async fn the_inbox_reads_the_most_urgent_tasks_of_ones_roles(backend: &str) {
    let (e, _) = engine(backend).await;
    e.deploy(model("interne-decentralise")).await.unwrap();
    // 6,000 open tasks spread over the desk's task steps, some 1,400 of them the jurists'.
    guichet_engine::sim::drive::seed_open_tasks(&e, "interne-decentralise", 6000)
        .await
        .unwrap();
    // One real request whose legal feasibility a jurist claims: theirs, whatever its deadline.
    let id = e.start("interne-decentralise", &intake()).await.unwrap();
    complete(&e, &id, "recevabilite", Some("recevable"), json!({})).await;
    let legal = e
        .tasks(Some(&id), true)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.step == "faisabilite-juridique")
        .unwrap();
    e.execute(
        &id,
        Command::Claim {
            task: u32::try_from(legal.seq).unwrap(),
            user: "juriste@hopital.example".into(),
        },
    )
    .await
    .unwrap();
    let inbox = e.inbox("Juriste@hopital.example", 50).await.unwrap();
    assert_eq!(inbox.items.len(), 50);
    let all = e.inbox("juriste@hopital.example", 5000).await.unwrap();
    // Counted up to the bound.
    assert!(all.items.len() > 1000);
    assert!(
        inbox.more_than && inbox.total == 1000,
        "{} {}",
        inbox.total,
        inbox.more_than
    );
    assert!(all.items.iter().all(|i| i.task.role == "juriste"));
    assert!(
        all.items
            .iter()
            .any(|i| i.task.instance == id && i.task.assignee.is_some())
    );
    // Overdue first, then by deadline; the first page is the head of the whole list.
    let key = |i: &guichet_engine::runtime::users::InboxItem| {
        (
            !i.task.overdue,
            i.task.due_at.is_none(),
            i.task.due_at,
            i.task.created_at,
            i.task.instance.clone(),
            i.task.seq,
        )
    };
    assert!(all.items.windows(2).all(|w| key(&w[0]) <= key(&w[1])));
    let head: Vec<_> = all
        .items
        .iter()
        .take(50)
        .map(|i| (&i.task.instance, i.task.seq))
        .collect();
    let page: Vec<_> = inbox
        .items
        .iter()
        .map(|i| (&i.task.instance, i.task.seq))
        .collect();
    assert_eq!(head, page);
    assert!(
        inbox
            .items
            .iter()
            .all(|i| i.desk == "interne-decentralise" && !i.title.is_empty())
    );
    // Someone with no role sees nothing.
    assert!(
        e.inbox("nobody@example.org", 50)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn deploying_is_idempotent_and_versions_keep_running_instances(backend: &str) {
    let (e, _) = engine(backend).await;
    let source = model("interne-decentralise");
    let first = e.deploy(source).await.unwrap();
    assert!(first.new);
    assert_eq!(first.revision, 1);
    assert!(
        !e.deploy(source).await.unwrap().new,
        "same content, same revision"
    );
    let old = e.start("interne-decentralise", &intake()).await.unwrap();
    // A changed definition is a new revision; new requests use it, the running one does not.
    let changed = source.replace(
        "due=\"P5D\" remind=\"P2D\" title=\"Examen de recevabilité\"",
        "due=\"P3D\" remind=\"P1D\" title=\"Examen de recevabilité\"",
    );
    assert_ne!(changed, source);
    let second = e.deploy(&changed).await.unwrap();
    assert_eq!(second.revision, 2);
    let new = e.start("interne-decentralise", &intake()).await.unwrap();
    let due = |id: String| {
        let e = &e;
        async move { e.tasks(Some(&id), true).await.unwrap()[0].due_at.unwrap() }
    };
    assert_eq!(due(old.clone()).await, T0.0 + 5 * DAY);
    assert_eq!(due(new).await, T0.0 + 3 * DAY);
    // The old revision still runs its request to the end.
    complete(&e, &old, "recevabilite", Some("non-recevable"), json!({})).await;
    assert_eq!(
        e.instance(&old).await.unwrap().1.status,
        InstanceStatus::Ended(EndResult::Rejected)
    );
    // A broken definition is refused with its diagnostics, and nothing is stored.
    let Err(Error::Definition(diags)) = e.deploy("process \"x\" {\n start \"s\"\n}\n").await else {
        panic!()
    };
    assert!(diags.iter().any(|d| d.code.as_str() == "G0046"));
}

async fn a_whole_request_of_model_a_is_stored_and_audited(backend: &str) {
    let (e, _) = engine(backend).await;
    e.deploy(model("interne-decentralise")).await.unwrap();
    let id = e.start("interne-decentralise", &intake()).await.unwrap();
    complete(&e, &id, "recevabilite", Some("recevable"), json!({})).await;
    complete(
        &e,
        &id,
        "faisabilite-juridique",
        Some("favorable"),
        json!({"base-legale": "mr-004"}),
    )
    .await;
    complete(
        &e,
        &id,
        "faisabilite-scientifique",
        Some("favorable"),
        json!({}),
    )
    .await;
    complete(
        &e,
        &id,
        "faisabilite-technique",
        Some("faisable"),
        json!({}),
    )
    .await;
    complete(&e, &id, "comite", Some("accepte"), json!({})).await;
    complete(
        &e,
        &id,
        "negociation",
        Some("projet-pret"),
        json!({"montant": 1000}),
    )
    .await;
    complete(&e, &id, "revue-juridique", Some("a-reviser"), json!({})).await;
    complete(
        &e,
        &id,
        "negociation",
        Some("projet-pret"),
        json!({"montant": 1200}),
    )
    .await;
    complete(&e, &id, "revue-juridique", Some("valide"), json!({})).await;
    complete(
        &e,
        &id,
        "signature",
        Some("signe"),
        json!({"date-signature": "2027-01-10"}),
    )
    .await;
    complete(&e, &id, "information-patients", None, json!({})).await;
    complete(&e, &id, "constitution-jeu", None, json!({})).await;
    complete(&e, &id, "controle-qualite", Some("conforme"), json!({})).await;
    complete(&e, &id, "ouverture-acces", None, json!({})).await;
    complete(&e, &id, "suivi", None, json!({})).await;
    let (_, inst) = e.instance(&id).await.unwrap();
    assert_eq!(inst.status, InstanceStatus::Ended(EndResult::Accepted));
    assert!(e.tasks(Some(&id), true).await.unwrap().is_empty());
    // Every task closed, by who did it.
    let all = e.tasks(Some(&id), false).await.unwrap();
    assert_eq!(all.len(), 15);
    assert!(
        all.iter()
            .all(|t| t.state == "completed"
                && t.closed_by.as_deref() == Some("agent@hopital.example"))
    );
    // The outbox holds every email, each with its own stable id.
    let outbox = e.outbox(&id).await.unwrap();
    let ids: std::collections::BTreeSet<_> = outbox.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids.len(), outbox.len());
    let to_sponsor = outbox
        .iter()
        .filter(|(_, eff)| matches!(eff, Effect::Email { to: Recipient::Role(r), .. } if r == "demandeur"))
        .count();
    assert_eq!(to_sponsor, 4, "received, contract, accepted, access");
    let history = e.history(&id).await.unwrap();
    assert!(history.len() > 60);
    assert_eq!(
        history.iter().map(|h| h.seq).collect::<Vec<_>>(),
        (1..=history.len() as i64).collect::<Vec<_>>()
    );
    let report = e.verify_audit().await.unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(report.events, history.len());
    assert_eq!(
        e.count_by_status().await.unwrap(),
        [("ended".to_owned(), Some(EndResult::Accepted), 1)]
    );
}

async fn bad_commands_write_nothing(backend: &str) {
    let (e, _) = engine(backend).await;
    e.deploy(model("interne-decentralise")).await.unwrap();
    let id = e.start("interne-decentralise", &intake()).await.unwrap();
    let before = (
        e.instance(&id).await.unwrap(),
        e.history(&id).await.unwrap().len(),
        e.outbox(&id).await.unwrap().len(),
    );
    let task = open_task(&e, &id, "recevabilite").await;
    let err = e
        .execute(
            &id,
            Command::Complete {
                task,
                user: "a@b.example".into(),
                outcome: Some("recevable".into()),
                fields: fields(json!({"inconnu": 1})),
                comment: None,
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("field `inconnu`"), "{err}");
    let after = (
        e.instance(&id).await.unwrap(),
        e.history(&id).await.unwrap().len(),
        e.outbox(&id).await.unwrap().len(),
    );
    assert_eq!(before, after);
    assert!(matches!(
        e.execute("nope", Command::FireTimer { timer: 1 }).await,
        Err(Error::NotFound(_))
    ));
    // A bad intake starts nothing.
    let mut bad = intake();
    bad.insert("email".into(), json!("pas-une-adresse"));
    assert!(matches!(
        e.start("interne-decentralise", &bad).await,
        Err(Error::Refused(_))
    ));
    assert!(matches!(
        e.start("inconnu", &intake()).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        e.count_by_status().await.unwrap(),
        [("running".to_owned(), None, 1)]
    );
}

async fn timers_fire_from_the_database(backend: &str) {
    let (e, clock) = engine(backend).await;
    e.deploy(model("interne-decentralise")).await.unwrap();
    let id = e.start("interne-decentralise", &intake()).await.unwrap();
    complete(&e, &id, "recevabilite", Some("complement"), json!({})).await;
    assert_eq!(e.fire_due_timers(100).await.unwrap(), 0);
    let g = e.gauges().await.unwrap();
    assert_eq!((g.requests_with_timers, g.timers_due), (1, 0));
    clock.set(Timestamp(T0.0 + 30 * DAY));
    let g = e.gauges().await.unwrap();
    assert_eq!((g.requests_with_timers, g.timers_due), (1, 1));
    assert_eq!(e.fire_due_timers(100).await.unwrap(), 1);
    let (_, inst) = e.instance(&id).await.unwrap();
    assert_eq!(inst.status, InstanceStatus::Ended(EndResult::Withdrawn));
    assert_eq!(
        e.fire_due_timers(100).await.unwrap(),
        0,
        "fired timers are gone"
    );
    let g = e.gauges().await.unwrap();
    assert_eq!((g.requests_with_timers, g.timers_due), (0, 0));
    assert_eq!(e.verify_audit().await.unwrap().broken, None);
}

/// The request's row says when its earliest timer falls due, as its state does.
async fn next_timer_in_row(e: &Engine, id: &str) -> Option<i64> {
    let stored = sqlx::query("SELECT next_timer_at FROM instances WHERE id = $1")
        .bind(id)
        .fetch_one(e.store().pool())
        .await
        .unwrap();
    let stored: Option<i64> = sqlx::Row::get(&stored, 0);
    let (_, inst) = e.instance(id).await.unwrap();
    assert_eq!(
        stored,
        inst.next_timer_at().map(|t| t.0),
        "{id}: row vs state"
    );
    stored
}

async fn a_requests_timers_due_together_fire_in_order_in_one_pass(backend: &str) {
    let (e, clock) = engine(backend).await;
    e.deploy(model("externe")).await.unwrap();
    let id = e.start("externe", &intake_c()).await.unwrap();
    // The admissibility task: a reminder, its deadline, then its escalation (in working days).
    let (_, inst) = e.instance(&id).await.unwrap();
    let mut due: Vec<i64> = inst.timers.values().map(|t| t.due_at.0).collect();
    due.sort_unstable();
    assert_eq!(due.len(), 3, "{:?}", inst.timers);
    assert_eq!(next_timer_in_row(&e, &id).await, Some(due[0]));
    clock.set(Timestamp(due[0]));
    assert_eq!(e.fire_due_timers(100).await.unwrap(), 1, "the reminder");
    assert_eq!(next_timer_in_row(&e, &id).await, Some(due[1]));
    clock.set(Timestamp(due[2]));
    assert_eq!(e.fire_due_timers(100).await.unwrap(), 2);
    let fired: Vec<&str> = e
        .history(&id)
        .await
        .unwrap()
        .iter()
        .filter_map(|h| match h.event.kind {
            EventKind::ReminderSent { .. } => Some("reminder"),
            EventKind::DeadlinePassed { .. } => Some("deadline"),
            EventKind::TaskEscalated { .. } => Some("escalation"),
            _ => None,
        })
        .collect();
    assert_eq!(fired, ["reminder", "deadline", "escalation"]);
    assert_eq!(e.fire_due_timers(100).await.unwrap(), 0);
    next_timer_in_row(&e, &id).await;
    // A row that disagrees with its state (edited by hand) is set from the state by the
    // next pass, instead of coming back at every pass ahead of the timers really due.
    let (_, inst) = e.instance(&id).await.unwrap();
    sqlx::query("UPDATE instances SET next_timer_at = $1 WHERE id = $2")
        .bind(T0.0)
        .bind(&id)
        .execute(e.store().pool())
        .await
        .unwrap();
    assert_eq!(e.fire_due_timers(100).await.unwrap(), 0);
    assert_eq!(
        next_timer_in_row(&e, &id).await,
        inst.next_timer_at().map(|t| t.0)
    );
    // Completing the task cancels whatever timers it had left.
    complete(&e, &id, "recevabilite", Some("recevable"), json!({})).await;
    next_timer_in_row(&e, &id).await;
    assert_eq!(e.verify_audit().await.unwrap().broken, None);
}

async fn concurrent_completions_of_one_task_one_wins(backend: &str) {
    let (e, _) = engine(backend).await;
    let e = Arc::new(e);
    e.deploy(model("interne-decentralise")).await.unwrap();
    for round in 0..40 {
        let id = e.start("interne-decentralise", &intake()).await.unwrap();
        let task = open_task(&e, &id, "recevabilite").await;
        let go = |user: &str| {
            let (e, id, user) = (e.clone(), id.clone(), user.to_owned());
            tokio::spawn(async move {
                e.execute(
                    &id,
                    Command::Complete {
                        task,
                        user,
                        outcome: Some("recevable".into()),
                        fields: Fields::new(),
                        comment: None,
                    },
                )
                .await
            })
        };
        let (a, b) = (go("alice@hopital.example"), go("bob@hopital.example"));
        let results = [a.await.unwrap(), b.await.unwrap()];
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(
            matches!(loser, Error::Conflict(m) if m.contains("already completed")),
            "round {round}: {loser}"
        );
        // Exactly one next step: the three feasibility tasks, once each.
        let open = e.tasks(Some(&id), true).await.unwrap();
        assert_eq!(open.len(), 3, "round {round}: {open:?}");
    }
}

/// The three feasibility tasks of one request completed at the same moment: all three are
/// taken (on SQLite, commands on one request that meet in one group commit are prepared again
/// from the state the others left), the parallel block joins once, and the history holds each
/// completion once, chained.
/// Parallel branches of several requests completed at once, through two nodes: every
/// completion counts once, whichever node's batch (or group commit) finds the request
/// changed by the other's.
async fn parallel_branches_completed_at_once_all_count(backend: &str) {
    let url = database(backend).await;
    let clock = Arc::new(ManualClock::new(T0));
    let nodes = [
        Arc::new(Engine::open(&url, clock.clone()).await.unwrap()),
        Arc::new(Engine::open(&url, clock.clone()).await.unwrap()),
    ];
    let e = &nodes[0];
    e.deploy(model("interne-decentralise")).await.unwrap();
    let branches = [
        (
            "faisabilite-juridique",
            "favorable",
            json!({"base-legale": "mr-004"}),
        ),
        ("faisabilite-scientifique", "favorable", json!({})),
        ("faisabilite-technique", "faisable", json!({})),
    ];
    for round in 0..8 {
        let mut ids = Vec::new();
        let mut calls = Vec::new();
        for _ in 0..4 {
            let id = e.start("interne-decentralise", &intake()).await.unwrap();
            complete(e, &id, "recevabilite", Some("recevable"), json!({})).await;
            ids.push(id);
        }
        for id in &ids {
            for (n, (step, outcome, data)) in branches.iter().enumerate() {
                let task = open_task(e, id, step).await;
                let e = nodes[n % 2].clone();
                let (id, outcome, data) = (id.clone(), *outcome, data.clone());
                calls.push(tokio::spawn(async move {
                    e.execute(
                        &id,
                        Command::Complete {
                            task,
                            user: "agent@hopital.example".into(),
                            outcome: Some(outcome.into()),
                            fields: fields(data),
                            comment: None,
                        },
                    )
                    .await
                }));
            }
        }
        for call in calls {
            call.await
                .unwrap()
                .unwrap_or_else(|err| panic!("round {round}: {err}"));
        }
        for id in &ids {
            assert_eq!(open_steps(e, id).await, ["comite"], "round {round}");
            let completions = e
                .history(id)
                .await
                .unwrap()
                .iter()
                .filter(|h| {
                    matches!(
                        h.event.kind,
                        guichet_engine::core::EventKind::TaskCompleted { .. }
                    )
                })
                .count();
            assert_eq!(completions, 4, "round {round}");
        }
    }
    assert_eq!(e.verify_audit().await.unwrap().broken, None);
}

async fn tampering_with_history_is_detected(backend: &str) {
    let (e, _) = engine(backend).await;
    e.deploy(model("externe")).await.unwrap();
    let a = e.start("externe", &intake_c()).await.unwrap();
    let b = e.start("externe", &intake_c()).await.unwrap();
    complete(&e, &b, "recevabilite", Some("recevable"), json!({})).await;
    assert_eq!(e.verify_audit().await.unwrap().broken, None);
    let url_pool = e.store().pool().clone();
    // Alter one event's body.
    sqlx::query("UPDATE history SET body = REPLACE(body, 'recevable', 'non-recevable') WHERE instance = $1 AND event = 'task-completed'")
        .bind(&b)
        .execute(&url_pool)
        .await
        .unwrap();
    let report = e.verify_audit().await.unwrap();
    let (inst, seq, why) = report.broken.unwrap();
    assert_eq!(inst, b);
    assert!(why.contains("altered"), "{why}");
    // The row of the completion's command (named by its first event), its entries from the
    // first to the row's `seq`: the report names the first.
    let row = sqlx::query(
        "SELECT seq, body FROM history WHERE instance = $1 AND event = 'task-completed'",
    )
    .bind(&b)
    .fetch_one(&url_pool)
    .await
    .unwrap();
    let (last, body): (i64, String) = (sqlx::Row::get(&row, 0), sqlx::Row::get(&row, 1));
    let events = serde_json::from_str::<Vec<serde_json::Value>>(&body)
        .unwrap()
        .len();
    assert!(events > 1, "{body}");
    assert_eq!(seq, last + 1 - i64::try_from(events).unwrap());
    assert!(why.contains(&format!("entries {seq}-{last}")), "{why}");
    // Removing the latest entries is detected too.
    sqlx::query(
        "UPDATE history SET body = REPLACE(body, 'non-recevable', 'recevable') WHERE instance = $1",
    )
    .bind(&b)
    .execute(&url_pool)
    .await
    .unwrap();
    assert_eq!(e.verify_audit().await.unwrap().broken, None);
    // The columns beside the hashed body: the time and the kind of its first event.
    for (column, value, told) in [
        ("at", "at + 1", "time column"),
        ("event", "'request-started'", "kind column"),
    ] {
        let sql = format!(
            "UPDATE history SET {column} = {value} WHERE instance = $1 AND event = 'task-completed'"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&b)
            .execute(&url_pool)
            .await
            .unwrap();
        let (inst, at, why) = e.verify_audit().await.unwrap().broken.unwrap();
        assert_eq!((inst.as_str(), at), (b.as_str(), seq), "{why}");
        assert!(why.contains(told) && why.contains("altered"), "{why}");
        let undo = match column {
            "at" => "at - 1",
            _ => "'task-completed'",
        };
        let sql =
            format!("UPDATE history SET {column} = {undo} WHERE instance = $1 AND seq = {last}");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&b)
            .execute(&url_pool)
            .await
            .unwrap();
        assert_eq!(e.verify_audit().await.unwrap().broken, None);
    }
    // History of no request: refused by SQLite's foreign key; on PostgreSQL, which has none
    // there (migration 16), the audit reports it.
    let orphan = sqlx::query(
        "INSERT INTO history (instance, seq, at, event, body, prev_hash, hash) \
         VALUES ('no-such-request', 1, 0, 'started', '[]', '', '')",
    )
    .execute(&url_pool)
    .await;
    if backend == "sqlite" {
        assert!(orphan.is_err(), "a foreign key keeps it out");
    } else {
        orphan.unwrap();
        let broken = e.verify_audit().await.unwrap().broken;
        assert_eq!(
            broken,
            Some((
                "no-such-request".to_owned(),
                1,
                "history of a request that does not exist".to_owned()
            ))
        );
        sqlx::query("DELETE FROM history WHERE instance = 'no-such-request'")
            .execute(&url_pool)
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM history WHERE instance = $1 AND seq = (SELECT MAX(seq) FROM history WHERE instance = $1)")
        .bind(&a)
        .execute(&url_pool)
        .await
        .unwrap();
    let (inst, _, why) = e.verify_audit().await.unwrap().broken.unwrap();
    assert_eq!(inst, a);
    assert!(why.contains("removed"), "{why}");
}

fn intake_c() -> Fields {
    fields(
        json!({"titre": "T", "email": "p@x.example", "organisme": "O", "cadre": "autre", "resume": "R", "donnees": "D"}),
    )
}

async fn two_nodes_folding_the_indicators_count_each_request_once(backend: &str) {
    let url = database(backend).await;
    let clock = Arc::new(ManualClock::new(T0));
    let a = Arc::new(Engine::open(&url, clock.clone()).await.unwrap());
    let b = Arc::new(Engine::open(&url, clock.clone()).await.unwrap());
    a.deploy(model("interne-decentralise")).await.unwrap();
    let driven =
        guichet_engine::sim::drive::drive(a.clone(), "interne-decentralise", &intake(), 12, 4)
            .await
            .unwrap();
    assert_eq!(driven.finished, 12);
    let q = guichet_engine::indicators::kpi::Query::default();
    let before = a.lead_times(&q).await.unwrap();
    assert_eq!(before[0].stats.n, 12);
    // Both nodes fold at once, a few requests at a time, until nothing is left.
    let fold = |e: Arc<Engine>| {
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                match e.fold_indicators(3).await.unwrap() {
                    0 => return n,
                    k => n += k,
                }
            }
        })
    };
    let (x, y) = (fold(a.clone()), fold(b.clone()));
    let (x, y) = (x.await.unwrap(), y.await.unwrap());
    assert_eq!(x + y, 12, "each request folded once ({x} + {y})");
    let stored: i64 = sqlx::query_scalar(
        "SELECT CAST(SUM(requests) AS BIGINT) FROM kpi_rollups WHERE grain = 'month' AND field = ''",
    )
    .fetch_one(a.store().pool())
    .await
    .unwrap();
    assert_eq!(stored, 12);
    let after = b.lead_times(&q).await.unwrap();
    assert_eq!(after[0].stats.n, 12);
    assert!((after[0].stats.mean - before[0].stats.mean).abs() < 1e-9);
    let kpis = b.kpis(&q).await.unwrap();
    let demandes = kpis.iter().find(|k| k.kpi == "demandes").unwrap();
    assert_eq!(demandes.value, Some(12.0));
}

/// A visit as compared: step, visit, entered, left, due.
type VisitRow = (String, i64, i64, Option<i64>, Option<i64>);

/// Drives `requests` requests of `desk` to their end, `concurrency` at a time, each command
/// of a request on the other node than its last one (each node's memory of the request is
/// out of date at every command). Returns how many commands each node ran.
async fn drive_alternating(
    nodes: [&Engine; 2],
    desk: &str,
    requests: usize,
    concurrency: usize,
) -> [usize; 2] {
    let ran = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let process = guichet_definitions::load(model(desk)).process.unwrap();
    let one = async |n: usize| {
        let mut node = n % 2;
        let id = nodes[node].start(desk, &intake()).await.unwrap();
        loop {
            node = 1 - node;
            let (_, inst) = nodes[node].instance(&id).await.unwrap();
            let Some(command) = guichet_engine::sim::drive::next_command(&process, &inst) else {
                assert_ne!(inst.status, InstanceStatus::Running, "{id} waits");
                return;
            };
            nodes[node].execute(&id, command).await.unwrap();
            ran[node].fetch_add(1, Ordering::Relaxed);
        }
    };
    futures_util::StreamExt::for_each_concurrent(
        futures_util::stream::iter(0..requests),
        concurrency,
        one,
    )
    .await;
    ran.map(AtomicUsize::into_inner)
}

/// Requests ending at the same moment (on PostgreSQL their histories read in one query) each
/// get the step visits that their own stored history and deadlines give, whether the node
/// that ends one derives them from the events it remembers (it wrote all of them) or reads
/// them (another node wrote some).
async fn the_facts_of_requests_ending_together_are_those_of_their_history(backend: &str) {
    let url = database(backend).await;
    let clock = Arc::new(ManualClock::new(T0));
    let e = Arc::new(Engine::open(&url, clock.clone()).await.unwrap());
    let other = Engine::open(&url, clock).await.unwrap();
    e.deploy(model("interne-decentralise")).await.unwrap();
    let driven =
        guichet_engine::sim::drive::drive(e.clone(), "interne-decentralise", &intake(), 40, 16)
            .await
            .unwrap();
    assert_eq!(driven.finished, 40);
    let remembered = e.remembered();
    assert!(
        remembered.used >= 40 * 10 && remembered.stale == 0,
        "{remembered:?}"
    );
    drive_alternating([&e, &other], "interne-decentralise", 40, 16).await;
    assert!(other.remembered().stale > 10, "{:?}", other.remembered());
    let ids = e.instance_ids("interne-decentralise", None).await.unwrap();
    assert_eq!(ids.len(), 80);
    let process = e.process_of(&ids[0]).await.unwrap();
    for id in &ids {
        let events: Vec<_> = e
            .history(id)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.event)
            .collect();
        let due = e
            .tasks(Some(id), false)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|t| Some((u32::try_from(t.seq).unwrap(), Timestamp(t.due_at?))))
            .collect();
        let mut expected: Vec<VisitRow> =
            guichet_engine::indicators::facts::visits(&process, &events, &due)
                .into_iter()
                .map(|v| {
                    (
                        v.step,
                        i64::from(v.visit),
                        v.entered_at.0,
                        v.left_at.map(|t| t.0),
                        v.due_at.map(|t| t.0),
                    )
                })
                .collect();
        expected.sort();
        let stored: Vec<VisitRow> = sqlx::query(
            "SELECT step, visit, entered_at, left_at, due_at FROM step_visits WHERE instance = $1 \
             ORDER BY step, visit, entered_at",
        )
        .bind(id)
        .fetch_all(e.store().pool())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                sqlx::Row::get(r, 0),
                sqlx::Row::get(r, 1),
                sqlx::Row::get(r, 2),
                sqlx::Row::get(r, 3),
                sqlx::Row::get(r, 4),
            )
        })
        .collect();
        assert!(expected.len() > 3, "{id}: {expected:?}");
        assert_eq!(stored, expected, "{id}");
    }
}

/// A request another node changed since this one wrote it: the command this node remembered
/// it for is prepared again from the database (the version it remembers is no longer the
/// row's), whether its memory would have allowed the command or refused it, and what is
/// written is what it would be had nothing been remembered.
async fn a_request_changed_by_another_node_is_read_again(backend: &str) {
    let url = database(backend).await;
    let clock = Arc::new(ManualClock::new(T0));
    let a = Engine::open(&url, clock.clone()).await.unwrap();
    let b = Engine::open(&url, clock.clone()).await.unwrap();
    a.deploy(model("interne-decentralise")).await.unwrap();
    let id = a.start("interne-decentralise", &intake()).await.unwrap();
    complete(&a, &id, "recevabilite", Some("recevable"), json!({})).await;
    assert_eq!((a.remembered().used, a.remembered().stale), (1, 0));
    // B completes the legal feasibility; A remembers it open, and is told who closed it.
    let legal = open_task(&a, &id, "faisabilite-juridique").await;
    complete(
        &b,
        &id,
        "faisabilite-juridique",
        Some("favorable"),
        json!({"base-legale": "mr-004"}),
    )
    .await;
    let err = a
        .execute(
            &id,
            Command::Complete {
                task: legal,
                user: "jurist@hopital.example".into(),
                outcome: Some("favorable".into()),
                fields: fields(json!({"base-legale": "mr-004"})),
                comment: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(m) if m.contains("agent@hopital.example")),
        "{err}"
    );
    assert_eq!((a.remembered().used, a.remembered().stale), (2, 1));
    // A remembers the request again, then B opens the committee's task, which A's memory
    // lacks: A completes it all the same.
    complete(
        &a,
        &id,
        "faisabilite-scientifique",
        Some("favorable"),
        json!({}),
    )
    .await;
    complete(
        &b,
        &id,
        "faisabilite-technique",
        Some("faisable"),
        json!({}),
    )
    .await;
    complete(&a, &id, "comite", Some("accepte"), json!({})).await;
    // A changed since B wrote it: B completes the negotiation on the state as stored.
    complete(
        &b,
        &id,
        "negociation",
        Some("projet-pret"),
        json!({"montant": 1000}),
    )
    .await;
    let (_, inst) = a.instance(&id).await.unwrap();
    assert_eq!(open_steps(&a, &id).await, ["revue-juridique"]);
    assert_eq!(inst.data["negociation"].fields["montant"], json!(1000.0));
    let steps: Vec<String> = a
        .history(&id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|h| match h.event.kind {
            EventKind::TaskCompleted { step, .. } => Some(step),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        [
            "recevabilite",
            "faisabilite-juridique",
            "faisabilite-scientifique",
            "faisabilite-technique",
            "comite",
            "negociation"
        ]
    );
    assert_eq!(a.verify_audit().await.unwrap().broken, None);
}

/// A node whose remembered requests keep proving out of date (each request's commands spread
/// over two nodes) reads their version before using them, so that its commands are prepared
/// once, and trusts them again when they are up to date.
async fn a_node_whose_memory_is_often_out_of_date_reads_instead(backend: &str) {
    let url = database(backend).await;
    let clock = Arc::new(ManualClock::new(T0));
    let a = Arc::new(Engine::open(&url, clock.clone()).await.unwrap());
    let b = Engine::open(&url, clock).await.unwrap();
    a.deploy(model("interne-decentralise")).await.unwrap();
    let [ran, _] = drive_alternating([&a, &b], "interne-decentralise", 100, 4).await;
    let stats = a.remembered();
    assert!(!stats.trusted, "{stats:?}");
    // Out of date every time: used (and its command prepared twice) for a first window of
    // 64 (and the 4 at a time on their way when it stopped), then found so by reading.
    assert!(ran > 300 && stats.used <= 64 + 4, "{ran}: {stats:?}");
    assert!(stats.stale >= ran as u64 - 60, "{ran}: {stats:?}");
    // Alone again: trusted after a window of requests found up to date.
    guichet_engine::sim::drive::drive(a.clone(), "interne-decentralise", &intake(), 120, 4)
        .await
        .unwrap();
    let stats = a.remembered();
    assert!(stats.trusted, "{stats:?}");
}

/// The writes beside the engine's commands (accounts, sessions, API tokens, links, callbacks,
/// mail preferences) go through the same path as commands: the writer thread on SQLite, one
/// round trip of prepared statements on PostgreSQL, where each statement's parameter types
/// are inferred by the server.
async fn accounts_sessions_tokens_links_and_preferences_are_written(backend: &str) {
    let (e, clock) = engine(backend).await;
    e.set_user("Jurist@H.example", "correct horse battery", false)
        .await
        .unwrap();
    e.set_user("jurist@h.example", "another long passphrase", true)
        .await
        .unwrap();
    assert_eq!(
        e.login("jurist@h.example", "correct horse battery")
            .await
            .unwrap(),
        None,
        "the second password replaced the first"
    );
    let session = e
        .login("jurist@h.example", "another long passphrase")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        e.session_account(&session)
            .await
            .unwrap()
            .map(|a| (a.email, a.admin, a.language)),
        Some(("jurist@h.example".to_owned(), true, None))
    );
    // Used again after a few minutes: the session's last use is written.
    clock.set(Timestamp(T0.0 + 5 * 60_000));
    assert!(e.session(&session).await.unwrap().is_some());
    e.logout(&session).await.unwrap();
    assert_eq!(e.session(&session).await.unwrap(), None);
    // Disabled: the session ends and the right password opens nothing; enabled, it does.
    let session = e
        .login("jurist@h.example", "another long passphrase")
        .await
        .unwrap()
        .unwrap();
    assert!(e.set_disabled("Jurist@h.example", true).await.unwrap());
    assert_eq!(e.session(&session).await.unwrap(), None);
    assert_eq!(
        e.sign_in("jurist@h.example", "another long passphrase")
            .await
            .unwrap(),
        guichet_engine::runtime::users::SignIn::Disabled
    );
    assert!(e.users().await.unwrap()[0].disabled_at.is_some());
    assert!(e.set_disabled("jurist@h.example", false).await.unwrap());
    assert!(!e.set_disabled("nobody@h.example", true).await.unwrap());
    assert!(e.users().await.unwrap()[0].disabled_at.is_none());

    let token = e
        .create_api_token("jurist@h.example", "script")
        .await
        .unwrap();
    assert_eq!(
        e.api_token(&token).await.unwrap().email(),
        Some("jurist@h.example")
    );
    assert_eq!(e.revoke_api_token(&token[..12]).await.unwrap(), 1);
    assert_eq!(e.api_token(&token).await.unwrap().email(), None);
    let pull = e
        .create_provider_token(
            "lab",
            guichet_engine::runtime::tokens::NewToken::named("pull"),
        )
        .await
        .unwrap();
    assert_eq!(
        e.api_token(&pull).await.unwrap().email(),
        Some("provider:lab")
    );

    e.deploy(model("interne-decentralise")).await.unwrap();
    let id = e.start("interne-decentralise", &intake()).await.unwrap();
    let until = Timestamp(T0.0 + DAY);
    let link = e
        .link_for(&id, None, "porteur@labo.example", "m1", until)
        .await
        .unwrap();
    assert!(
        e.verify_link(&link.token).await.is_err(),
        "not recorded yet"
    );
    e.record_links(std::slice::from_ref(&link)).await.unwrap();
    let token = &link.token;
    assert!(e.verify_link(token).await.is_ok());
    assert!(e.spend_link(token).await.is_ok());
    assert!(e.spend_link(token).await.is_err(), "a link is spent once");
    // Recorded again (the message sent again): left as it is, spent.
    e.record_links(std::slice::from_ref(&link)).await.unwrap();
    assert!(e.spend_link(token).await.is_err());
    let callback = e.issue_callback(&id, 1, "lab", "m2", until).await.unwrap();
    assert!(e.callback_grant(&callback).await.is_ok());
    e.spend_callback(&callback).await.unwrap();
    assert!(e.callback_grant(&callback).await.is_err());

    e.set_mail_preference(
        "jurist@h.example",
        true,
        guichet_definitions::model::Language::En,
    )
    .await
    .unwrap();
    let preference = e.mail_preference("Jurist@h.example").await.unwrap();
    assert!(preference.digest);
    assert_eq!(
        preference.language,
        guichet_definitions::model::Language::En
    );
}

/// Text that breaks SQL built by hand: quotes of every kind, backslashes, placeholders of
/// every driver, comment and statement markers, a character of every Unicode plane (0 to 16,
/// assigned or not), byte-order and direction marks, line breaks, and a megabyte.
fn hostile() -> Vec<String> {
    let planes: String = (0..=16u32)
        .filter_map(|plane| char::from_u32(plane << 16 | 0x41))
        .collect();
    vec![
        "O'Brien \"quoted\" `back` '' \"\" E'x' $$dollar$$ $tag$x$tag$".to_owned(),
        r"back\slash \' \\ \n \x00 \u0000 %% %s".to_owned(),
        "$1 $2 ?1 ? :name @p1 {} {0} ${x}".to_owned(),
        "'); DROP TABLE instances; -- /* */ ;".to_owned(),
        format!("planes {planes} é ü ß 中文 𝄞 🚀 \u{FEFF} \u{202E}rtl \u{FFFD}"),
        "tabs\tand\r\nline\nbreaks".to_owned(),
        "x".repeat(1 << 20),
    ]
}

/// Hostile values go in through the paths people use (an intake, a decision and who made it,
/// a desk's title, an API token's name) and come back unchanged through every read: the
/// request's state, its title, its tasks, who acted in its history, the listings; the audit
/// holds. NUL,
/// which PostgreSQL's text cannot hold, is refused where it is typed, naming the field, on
/// both backends alike, and nothing is written.
async fn hostile_values_round_trip_through_every_path(backend: &str) {
    let (e, _) = engine(backend).await;
    // A desk whose title is hostile: the definition's source is stored as written.
    let title = hostile()[0].replace('"', "'");
    let source = model("interne-decentralise").replacen(
        "title \"Guichet interne à accès décentralisé\"",
        &format!("title \"{}\"", title.replace('\\', "\\\\")),
        1,
    );
    assert_ne!(
        source,
        model("interne-decentralise"),
        "the model's title moved"
    );
    e.deploy(&source).await.unwrap();
    for (k, whole) in hostile().into_iter().enumerate() {
        // Each as long as its field takes (the megabyte one is refused below).
        let short: String = whole.chars().take(200).collect();
        let resume: String = whole.chars().take(5000).collect();
        let text: String = whole.chars().take(1_000).collect();
        let value: String = whole.chars().take(10_000).collect();
        let mut data = intake();
        data.insert("titre".into(), json!(short));
        data.insert("organisme".into(), json!(text));
        data.insert("resume".into(), json!(resume));
        data.insert("donnees".into(), json!(value));
        let id = e.start("interne-decentralise", &data).await.unwrap();
        let user = format!("agent-{k}'; --@hopital.example");
        let task = open_task(&e, &id, "recevabilite").await;
        e.execute(
            &id,
            Command::Complete {
                task,
                user: user.clone(),
                outcome: Some("recevable".into()),
                fields: Fields::new(),
                comment: None,
            },
        )
        .await
        .unwrap();
        complete(
            &e,
            &id,
            "faisabilite-juridique",
            Some("favorable"),
            json!({"base-legale": "mr-004", "avis": value}),
        )
        .await;
        // Trimmed as forms trim, and otherwise as sent.
        let sent = |v: &str| v.trim().to_owned();
        let (_, inst) = e.instance(&id).await.unwrap();
        let intake = &inst.data["demande"].fields;
        assert_eq!(intake["titre"], json!(sent(&short)), "value {k}");
        assert_eq!(intake["organisme"], json!(sent(&text)), "value {k}");
        assert_eq!(intake["resume"], json!(sent(&resume)), "value {k}");
        assert_eq!(intake["donnees"], json!(sent(&value)), "value {k}");
        assert_eq!(
            inst.data["faisabilite-juridique"].fields["avis"],
            json!(sent(&value)),
            "value {k}"
        );
        let listed = e
            .requests(Some("interne-decentralise"), None, 100)
            .await
            .unwrap();
        assert!(
            listed.iter().any(|r| r.id == id && r.title == sent(&short)),
            "value {k}: the title as listed"
        );
        let closed = e.tasks(Some(&id), false).await.unwrap();
        assert!(
            closed
                .iter()
                .any(|t| t.step == "recevabilite" && t.closed_by.as_deref() == Some(&*user)),
            "value {k}: who decided"
        );
        let history = e.history(&id).await.unwrap();
        assert!(
            history.iter().any(|h| matches!(
                &h.event.actor,
                guichet_engine::core::Actor::User(u) if *u == user
            )),
            "value {k}: the history keeps who decided"
        );
    }
    let name = hostile().concat().chars().take(4000).collect::<String>();
    e.set_user(
        "agent@hopital.example",
        "correct horse battery staple",
        false,
    )
    .await
    .unwrap();
    e.create_api_token("agent@hopital.example", &name)
        .await
        .unwrap();
    assert!(e.api_tokens().await.unwrap().iter().any(|t| t.name == name));
    let (desk, _) = e.desks().await.unwrap().into_iter().next().unwrap();
    assert_eq!(desk, "interne-decentralise");
    assert_eq!(
        e.desks().await.unwrap()[&desk].title,
        title,
        "the desk's title as deployed"
    );
    assert_eq!(e.verify_audit().await.unwrap().broken, None);

    // NUL and other control characters, and a value longer than its field takes: refused,
    // naming the field; nothing is written.
    let before = e.count_by_status().await.unwrap();
    let megabyte = "x".repeat(1 << 20);
    for (bad, why) in [
        ("nul \0 byte", "control character"),
        ("bell \u{7}", "control character"),
        ("escape \u{1b}[31m", "control character"),
        (megabyte.as_str(), "at most 10000 characters"),
    ] {
        let mut data = intake();
        data.insert("donnees".into(), json!(bad));
        match e.start("interne-decentralise", &data).await {
            Err(Error::Refused(guichet_engine::core::Error::Invalid(errors))) => {
                assert_eq!(errors.len(), 1, "{errors:?}");
                assert_eq!(errors[0].field, "donnees");
                assert!(errors[0].message.contains(why), "{errors:?}");
            }
            other => panic!("{}: {other:?}", bad.len()),
        }
    }
    assert_eq!(e.count_by_status().await.unwrap(), before);
}
