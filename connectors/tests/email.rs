//! Email delivery through a real SMTP server over TCP on 127.0.0.1 (a scripted sink), from
//! outbox rows written by the real engine on a SQLite file. Time is a manual clock.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod smtp_sink;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use guichet_connectors::email::{
    Dispatcher, Report, RetryPolicy, SmtpConfig, Templates, TlsMode, Transport,
};
use guichet_engine::Engine;
use guichet_engine::clock::{ManualClock, Timestamp};
use guichet_engine::core::{Command, Fields};
use guichet_engine::definitions::model::Language;
use mail_parser::MessageParser;
use serde_json::json;
use smtp_sink::{Reply, Sink};

static N: AtomicUsize = AtomicUsize::new(0);
const T0: Timestamp = Timestamp(1_800_000_000_000);

async fn engine() -> (Arc<Engine>, Arc<ManualClock>) {
    let path = std::env::temp_dir().join(format!(
        "guichet-email-{}-{}.db",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
    }
    let clock = Arc::new(ManualClock::new(T0));
    let e = Engine::open(&format!("sqlite://{}", path.display()), clock.clone())
        .await
        .unwrap();
    (Arc::new(e), clock)
}

fn smtp(addr: std::net::SocketAddr) -> Transport {
    Transport::smtp(&SmtpConfig {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: TlsMode::None,
        username: None,
        password: None,
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn dispatcher(engine: Arc<Engine>, transport: Transport) -> Dispatcher {
    Dispatcher {
        engine,
        transport,
        templates: Arc::new(Templates::builtin()),
        from: "Guichet <guichet@hopital.example>".parse().unwrap(),
        base_url: "https://guichet.hopital.example".into(),
        policy: RetryPolicy {
            base_ms: 1_000,
            max_ms: 60_000,
            max_attempts: 6,
            lease_ms: 30_000,
            task_link_ttl_ms: 30 * 86_400_000,
            status_link_ttl_ms: 365 * 86_400_000,
        },
        digest_hour: guichet_connectors::email::DIGEST_HOUR,
    }
}

fn model(name: &str) -> &'static str {
    guichet_definitions::models::source(name).unwrap()
}

fn intake() -> Fields {
    serde_json::from_value(json!({
        "titre": "Cohorte insuffisance cardiaque", "email": "porteur@labo.example", "organisme": "Labo",
        "type-porteur": "industriel", "cadre": "collaboratif", "resume": "R", "donnees": "D"
    }))
    .unwrap()
}

/// Starts one request of model (a): three emails (acknowledgment, alert, task).
async fn one_request(e: &Engine) -> String {
    e.deploy(model("interne-decentralise")).await.unwrap();
    e.start("interne-decentralise", &intake()).await.unwrap()
}

/// Runs dispatcher passes, moving the clock past each backoff, until nothing is pending.
async fn drain(d: &Dispatcher, clock: &ManualClock) -> Report {
    let mut total = Report::default();
    for _ in 0..30 {
        let r = d.run_once(100).await.unwrap();
        total.sent += r.sent;
        total.retried += r.retried;
        total.dead += r.dead;
        let mut waiting = 0;
        for state in ["pending", "sending"] {
            let rows = d.engine.outbox_messages(Some(state), 1_000).await.unwrap();
            waiting += rows
                .iter()
                .filter(|m| m.kind == "email" || m.kind == "digest")
                .count();
        }
        if waiting == 0 {
            return total;
        }
        clock.set(Timestamp(clock_now(clock) + 61_000));
    }
    panic!("the outbox never drained: {total:?}");
}

fn clock_now(c: &ManualClock) -> i64 {
    use guichet_engine::clock::Clock;
    c.now().0
}

/// The token of the first guichet link in a text.
fn link_token(text: &str) -> String {
    let at = text
        .find("https://guichet.hopital.example/l/")
        .unwrap_or_else(|| panic!("no link in {text}"));
    text[at + "https://guichet.hopital.example/l/".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

fn header(raw: &str, name: &str) -> String {
    let m = MessageParser::default().parse(raw.as_bytes()).unwrap();
    m.header_raw(name).unwrap_or("").trim().to_owned()
}

#[tokio::test]
async fn delivers_real_mime_with_stable_message_ids() {
    let sink = Sink::start("127.0.0.1:0", &[]).await;
    let (e, clock) = engine().await;
    let id = one_request(&e).await;
    let d = dispatcher(e.clone(), smtp(sink.addr));
    let report = drain(&d, &clock).await;
    assert_eq!(
        report,
        Report {
            sent: 3,
            retried: 0,
            dead: 0
        }
    );
    let messages = sink.accepted();
    assert_eq!(messages.len(), 3);
    let parsed: Vec<_> = messages
        .iter()
        .map(|m| MessageParser::default().parse(m.as_bytes()).unwrap())
        .collect();
    let sponsor = parsed
        .iter()
        .find(|m| m.to().unwrap().first().unwrap().address().unwrap() == "porteur@labo.example")
        .expect("the sponsor's acknowledgment");
    assert_eq!(
        sponsor.subject().unwrap(),
        "[Guichet interne à accès décentralisé] Votre demande « Cohorte insuffisance cardiaque » est bien reçue"
    );
    assert_eq!(
        sponsor.from().unwrap().first().unwrap().address().unwrap(),
        "guichet@hopital.example"
    );
    let text = sponsor.body_text(0).unwrap();
    let status_token = link_token(&text);
    let html = sponsor.body_html(0).unwrap();
    assert!(
        html.contains(&format!(
            "<a href=\"https://guichet.hopital.example/l/{status_token}\">"
        )),
        "{html}"
    );
    // The sponsor's link opens their request, and only theirs.
    let grant = e.verify_link(&status_token).await.unwrap();
    assert_eq!(
        (
            grant.instance.as_str(),
            grant.task,
            grant.recipient.as_str()
        ),
        (id.as_str(), None, "porteur@labo.example")
    );
    // The staff task email carries a link bound to the task and the recipient.
    let task = parsed
        .iter()
        .find(|m| m.subject().unwrap().contains("Nouvelle tâche"))
        .unwrap();
    assert_eq!(
        task.to().unwrap().first().unwrap().address().unwrap(),
        "guichet-donnees@hopital.example"
    );
    let body = task.body_text(0).unwrap();
    assert!(body.contains("Échéance :"), "{body}");
    let token = link_token(&body);
    assert!(token.len() >= 43, "256-bit tokens");
    let grant = e.verify_link(&token).await.unwrap();
    assert_eq!(grant.recipient, "guichet-donnees@hopital.example");
    assert!(grant.task.is_some());
    // Opening never spends it; acting spends it once.
    assert!(e.verify_link(&token).await.is_ok());
    assert!(e.spend_link(&token).await.is_ok());
    assert!(e.spend_link(&token).await.is_err());
    assert!(e.verify_link(&token).await.is_err());
    // Forged tokens open nothing.
    assert!(
        e.verify_link("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await
            .is_err()
    );
    assert!(e.verify_link(&status_token[1..]).await.is_err());
    // Message-IDs are the outbox ids, recorded with each row.
    for (raw, m) in messages.iter().zip(&parsed) {
        let mid = m.message_id().unwrap();
        assert!(
            mid.starts_with(&id) && mid.ends_with("@hopital.example"),
            "{mid}"
        );
        assert_eq!(header(raw, "Message-ID"), format!("<{mid}>"));
    }
    let rows = e.outbox_messages(None, 10).await.unwrap();
    assert!(
        rows.iter()
            .all(|r| r.state == "sent" && r.attempts == 1 && r.message_id.is_some())
    );
    // The outbox keeps what was sent without the links' tokens (their hashes are in `links`).
    let kept: Vec<&str> = rows.iter().filter_map(|r| r.body.as_deref()).collect();
    assert!(kept.iter().any(|b| b.contains("/l/…")), "{kept:?}");
    for secret in [&token, &status_token] {
        assert!(
            kept.iter().all(|b| !b.contains(secret.as_str())),
            "{kept:?}"
        );
    }
}

#[tokio::test]
async fn the_messages_of_a_pass_are_delivered_several_at_a_time() {
    // Each reply is held back a while: deliveries one after the other would never have two
    // messages held at once.
    let sink = Sink::start("127.0.0.1:0", &[]).await;
    sink.state.lock().unwrap().hold = Duration::from_millis(300);
    let (e, _) = engine().await;
    for _ in 0..3 {
        one_request(&e).await;
    }
    let d = dispatcher(e.clone(), smtp(sink.addr));
    assert_eq!(d.run_once(100).await.unwrap().sent, 9);
    let state = sink.state.lock().unwrap();
    assert_eq!(state.accepted.len(), 9);
    assert!(
        state.most_held >= 2,
        "at most {} message in flight at once",
        state.most_held
    );
}

/// What became of each message is recorded as soon as it is known, while the rest of the
/// pass goes on: a crash in the middle of a pass sends again only what was in flight.
#[tokio::test]
async fn the_results_of_a_pass_are_recorded_as_they_come_in() {
    let sink = Sink::start("127.0.0.1:0", &[("*", Reply::Slow)]).await;
    let (e, _) = engine().await;
    for _ in 0..3 {
        one_request(&e).await;
    }
    let d = Arc::new(dispatcher(e.clone(), smtp(sink.addr)));
    let pass = tokio::spawn({
        let d = d.clone();
        async move { d.run_once(100).await }
    });
    // While the slow message is held back, the others are already recorded as sent.
    let sent = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let messages = e.outbox_messages(None, 50).await.unwrap();
        let sent = messages.iter().filter(|m| m.state == "sent").count();
        if sent > 0 || pass.is_finished() {
            break sent;
        }
    };
    assert!(
        !pass.is_finished(),
        "the pass ended before any result was recorded"
    );
    assert!((1..9).contains(&sent), "{sent}");
    assert_eq!(pass.await.unwrap().unwrap().sent, 9);
    let messages = e.outbox_messages(None, 50).await.unwrap();
    assert!(messages.iter().all(|m| m.state == "sent"), "{messages:?}");
}

#[tokio::test]
async fn a_backlog_larger_than_a_pass_goes_out_without_waiting_for_the_next_tick() {
    // 40 requests of model (a): 120 messages, more than a pass claims.
    let (e, _) = engine().await;
    for _ in 0..40 {
        one_request(&e).await;
    }
    let d = dispatcher(e.clone(), Transport::Capture);
    let stop = Arc::new(tokio::sync::Notify::new());
    let (mut sent, mut passes) = (0, 0);
    let run = d.run(Duration::from_secs(3600), stop.notified(), |r| {
        sent += r.unwrap().sent;
        passes += 1;
        if sent >= 120 {
            stop.notify_one();
        }
    });
    // A dispatcher that waited its interval (an hour) after a full pass would not finish.
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the backlog waited for the next tick");
    assert_eq!((sent, passes), (120, 2));
    assert!(
        e.outbox_messages(Some("pending"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// What the dispatcher logs on this thread, as `serve` would write it.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    /// Captures this thread's logs until the guard is dropped (a `#[tokio::test]` runs on
    /// one thread).
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt().with_writer(logs.clone()).finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn transient_failures_are_retried_with_the_same_message_id() {
    let (logs, _guard) = Logs::capture();
    // The first message gets 451 three times, then is accepted.
    let sponsor = "porteur@labo.example";
    let sink = Sink::start(
        "127.0.0.1:0",
        &[
            (sponsor, Reply::Transient),
            (sponsor, Reply::Transient),
            (sponsor, Reply::Transient),
        ],
    )
    .await;
    let (e, clock) = engine().await;
    one_request(&e).await;
    let d = dispatcher(e.clone(), smtp(sink.addr));
    let report = drain(&d, &clock).await;
    assert_eq!(report.sent, 3);
    assert_eq!(report.retried, 3);
    assert_eq!(sink.state.lock().unwrap().received, 6);
    // Each retry is logged with its cause.
    let retries: Vec<_> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("will retry"))
        .collect();
    assert_eq!(retries.len(), 3, "{retries:?}");
    assert!(
        retries
            .iter()
            .all(|l| l.contains("451") && l.contains("outbox=")),
        "{retries:?}"
    );
    let rows = e.outbox_messages(None, 10).await.unwrap();
    let retried = rows
        .iter()
        .find(|r| r.attempts == 4)
        .expect("one message took four attempts");
    assert_eq!(retried.state, "sent");
    // The accepted copy carries the Message-ID recorded for the row.
    let accepted = sink.accepted();
    let copy = accepted
        .iter()
        .find(|m| m.contains(retried.message_id.as_deref().unwrap()))
        .unwrap();
    assert!(copy.contains("Message-ID"));
}

#[tokio::test]
async fn a_permanent_failure_is_a_dead_letter_that_can_be_retried() {
    let (logs, _guard) = Logs::capture();
    let sink = Sink::start("127.0.0.1:0", &[("*", Reply::Permanent)]).await;
    let (e, clock) = engine().await;
    one_request(&e).await;
    let d = dispatcher(e.clone(), smtp(sink.addr));
    let report = drain(&d, &clock).await;
    assert_eq!((report.sent, report.dead), (2, 1));
    let dead = e.outbox_messages(Some("dead"), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].last_error.as_deref().unwrap().contains("550"),
        "{:?}",
        dead[0].last_error
    );
    // The log says which, why, and how to retry it.
    let logged: Vec<_> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("dead letter"))
        .collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        logged[0].contains(&dead[0].id) && logged[0].contains("550") && logged[0].contains("ERROR"),
        "{logged:?}"
    );
    // An administrator retries it; it is delivered with the same Message-ID.
    e.outbox_retry_dead(&dead[0].id, e.now()).await.unwrap();
    assert_eq!(d.run_once(10).await.unwrap().sent, 1);
    let row = e.outbox_message(&dead[0].id).await.unwrap();
    assert_eq!(row.state, "sent");
    assert_eq!(row.message_id.unwrap(), d.message_id(&dead[0].id));
    assert!(
        e.outbox_retry_dead(&dead[0].id, e.now()).await.is_err(),
        "only dead letters are retried"
    );
}

#[tokio::test]
async fn a_server_down_for_a_while_loses_nothing() {
    // Take a free port, then close it: connections are refused.
    let addr = Sink::start("127.0.0.1:0", &[]).await.stop();
    tokio::task::yield_now().await;
    let (e, clock) = engine().await;
    one_request(&e).await;
    let d = dispatcher(e.clone(), smtp(addr));
    let r = d.run_once(100).await.unwrap();
    assert_eq!(
        r,
        Report {
            sent: 0,
            retried: 3,
            dead: 0
        }
    );
    let errors = e.outbox_messages(None, 10).await.unwrap();
    assert!(
        errors
            .iter()
            .all(|m| m.state == "pending" && m.last_error.is_some())
    );
    // The server comes back on the same address.
    let sink = Sink::start(&addr.to_string(), &[]).await;
    let report = drain(&d, &clock).await;
    assert_eq!(report.sent, 3);
    assert_eq!(sink.accepted().len(), 3);
}

#[tokio::test]
async fn a_connection_dropped_after_data_is_resent_with_the_same_message_id() {
    let sink = Sink::start("127.0.0.1:0", &[("*", Reply::Drop)]).await;
    let (e, clock) = engine().await;
    one_request(&e).await;
    let d = dispatcher(e.clone(), smtp(sink.addr));
    let report = drain(&d, &clock).await;
    assert_eq!(report.sent, 3);
    assert!(report.retried >= 1);
    // The server saw the dropped message and its resend; the recipient's client can drop the
    // duplicate by its Message-ID, which is the same on both.
    assert_eq!(sink.state.lock().unwrap().received, 4);
}

#[tokio::test]
async fn without_smtp_messages_are_captured_in_the_database() {
    let (e, clock) = engine().await;
    let id = one_request(&e).await;
    let d = dispatcher(e.clone(), Transport::Capture);
    assert_eq!(drain(&d, &clock).await.sent, 3);
    let rows = e.outbox_messages(Some("captured"), 10).await.unwrap();
    assert_eq!(rows.len(), 3);
    let ack = rows
        .iter()
        .find(|r| r.recipients.as_deref() == Some("porteur@labo.example"))
        .unwrap();
    assert!(ack.subject.as_deref().unwrap().contains("est bien reçue"));
    let token = link_token(ack.body.as_deref().unwrap());
    assert_eq!(e.verify_link(&token).await.unwrap().instance, id);
}

#[tokio::test]
async fn a_role_with_nobody_to_write_to_is_a_dead_letter() {
    let (e, clock) = engine().await;
    let source = model("interne-decentralise").replace(
        "role \"direction\" title=\"Direction de la recherche\" {\n        member \"direction-recherche@hopital.example\"\n    }",
        "role \"direction\" title=\"Direction de la recherche\"",
    );
    e.deploy(&source).await.unwrap();
    let id = e.start("interne-decentralise", &intake()).await.unwrap();
    // Escalate the first task to the empty role.
    clock.set(Timestamp(T0.0 + 11 * 86_400_000));
    e.fire_due_timers(100).await.unwrap();
    let d = dispatcher(e.clone(), Transport::Capture);
    let report = drain(&d, &clock).await;
    assert_eq!(report.dead, 1, "{report:?}");
    let dead = e.outbox_messages(Some("dead"), 10).await.unwrap();
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("nobody to write to"),
        "{:?}",
        dead[0]
    );
    let _ = id;
}

/// Every template of every shipped model, rendered for a request whose every field (but the
/// title and the sponsor's address) holds a canary value: no canary reaches an email's
/// subject, headers or bodies.
#[tokio::test]
async fn emails_carry_no_case_data() {
    let sink = Sink::start("127.0.0.1:0", &[]).await;
    for (file, source) in guichet_definitions::models::ALL {
        let (e, clock) = engine().await;
        e.deploy(source).await.unwrap();
        let p = guichet_definitions::load(source).process.unwrap();
        let canary =
            |step: &str, field: &str| format!("CANARY{}{}", step.len(), field.replace('-', ""));
        let fill = |step: &guichet_definitions::model::Step| -> Fields {
            step.form()
                .map(|f| {
                    f.fields
                        .iter()
                        .map(|x| {
                            use guichet_definitions::model::FieldType as T;
                            let v = match x.ty {
                                T::Text | T::LongText if x.id == "titre" => json!("Titre public"),
                                T::Text | T::LongText => json!(canary(&step.id, &x.id)),
                                T::Email => json!("porteur@labo.example"),
                                T::Date => json!("2031-07-14"),
                                T::Number => json!(x.max.unwrap_or(987_654_321.0)),
                                T::Choice => json!(x.options.last().unwrap().value),
                                T::YesNo => json!(true),
                                T::File => json!({"sha256": "a".repeat(64), "name": canary(&step.id, &x.id), "size": 1, "type": "application/pdf"}),
                            };
                            (x.id.clone(), v)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let id = e.start(&p.name, &fill(p.start())).await.unwrap();
        // Drive it to its end, with canaries in every form.
        for _ in 0..200 {
            let (_, inst) = e.instance(&id).await.unwrap();
            if !inst.is_running() {
                break;
            }
            let command = if let Some(t) = inst.tasks.values().next() {
                let step = &p.steps[t.step];
                Command::Complete {
                    task: t.seq,
                    user: "a@hopital.example".into(),
                    outcome: step.outcomes().first().map(|o| o.id.clone()),
                    fields: fill(step),
                    comment: None,
                }
            } else {
                let (token, tok) = inst.tokens.iter().next().unwrap();
                let step = &p.steps[tok.step];
                match &step.kind {
                    guichet_definitions::model::StepKind::Call(c) => Command::Callback {
                        token: *token,
                        provider: c.provider.clone(),
                        outcome: step.outcomes().first().map(|o| o.id.clone()),
                        fields: fill(step),
                    },
                    guichet_definitions::model::StepKind::Wait(w) => Command::Event {
                        name: w.event.clone(),
                        fields: fill(step),
                        actor: guichet_engine::core::Actor::Requester,
                        key: None,
                    },
                    _ => panic!("stuck"),
                }
            };
            e.execute(&id, command).await.unwrap();
        }
        let d = dispatcher(e.clone(), smtp(sink.addr));
        let report = drain(&d, &clock).await;
        assert_eq!(report.dead, 0, "{file}");
        assert!(report.sent >= 10, "{file}: {report:?}");
        // Every staff member asks for a daily digest; a second request with canaries in its
        // intake waits at its first tasks, and the digests list them.
        for r in &p.roles {
            if let guichet_definitions::model::RoleSource::Members(members) = &r.source {
                for m in members {
                    e.set_mail_preference(m, true, Language::Fr).await.unwrap();
                }
            }
        }
        e.start(&p.name, &fill(p.start())).await.unwrap();
        let before = sink.accepted().len();
        drain(&d, &clock).await;
        let digests = sink.accepted()[before..]
            .iter()
            .filter(|m| {
                let m = MessageParser::default().parse(m.as_bytes()).unwrap();
                m.subject().unwrap().contains("Vos tâches en attente")
            })
            .count();
        assert!(digests >= 1, "{file}: no digest");
    }
    let messages = sink.accepted();
    for raw in &messages {
        let m = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let mut seen = String::new();
        for h in m.headers() {
            seen.push_str(&format!("{:?}\n", h.value()));
        }
        seen.push_str(m.subject().unwrap_or(""));
        for i in 0..2 {
            seen.push_str(&m.body_text(i).unwrap_or_default());
            seen.push_str(&m.body_html(i).unwrap_or_default());
        }
        assert!(!seen.contains("CANARY"), "case data leaked:\n{seen}");
        assert!(
            !seen.contains("987654321") && !seen.contains("2031"),
            "case data leaked:\n{seen}"
        );
        assert!(seen.contains("Titre public"), "the title is there:\n{seen}");
    }
}

#[tokio::test]
async fn task_links_die_when_the_task_is_done_or_reassigned() {
    let (e, clock) = engine().await;
    let id = one_request(&e).await;
    let d = dispatcher(e.clone(), Transport::Capture);
    drain(&d, &clock).await;
    let body = |to: &str| {
        let e = e.clone();
        let to = to.to_owned();
        async move {
            let rows = e.outbox_messages(Some("captured"), 100).await.unwrap();
            rows.iter()
                .filter(|r| r.recipients.as_deref() == Some(to.as_str()))
                .map(|r| r.body.clone().unwrap())
                .collect::<Vec<_>>()
        }
    };
    let token = link_token(&body("guichet-donnees@hopital.example").await[0]);
    let task = e.verify_link(&token).await.unwrap().task.unwrap();
    // Delegated to someone else: the old link dies, the new holder gets a link of their own.
    e.execute(
        &id,
        Command::Delegate {
            task,
            by: "chef@hopital.example".into(),
            to: guichet_engine::core::Recipient::Person("bob@hopital.example".into()),
        },
    )
    .await
    .unwrap();
    assert!(e.verify_link(&token).await.is_err());
    drain(&d, &clock).await;
    let bob = link_token(&body("bob@hopital.example").await[0]);
    assert_eq!(
        e.verify_link(&bob).await.unwrap().recipient,
        "bob@hopital.example"
    );
    // Completed: Bob's link dies too.
    e.execute(
        &id,
        Command::Complete {
            task,
            user: "bob@hopital.example".into(),
            outcome: Some("non-recevable".into()),
            fields: Fields::new(),
            comment: None,
        },
    )
    .await
    .unwrap();
    assert!(e.verify_link(&bob).await.is_err());
    // A link of the closed task recorded late (a message that was on its way) is dead too.
    let late = e
        .link_for(
            &id,
            Some(task),
            "bob@hopital.example",
            "late",
            Timestamp(T0.0 + 86_400_000),
        )
        .await
        .unwrap();
    e.record_links(std::slice::from_ref(&late)).await.unwrap();
    assert!(e.verify_link(&late.token).await.is_err());
    // And links expire.
    let status = link_token(&body("porteur@labo.example").await[0]);
    assert!(e.verify_link(&status).await.is_ok());
    clock.set(Timestamp(T0.0 + 366 * 86_400_000));
    assert!(e.verify_link(&status).await.is_err());
}

#[tokio::test]
async fn a_fresh_link_goes_only_to_someone_who_may_act() {
    let (e, clock) = engine().await;
    let id = one_request(&e).await;
    let d = dispatcher(e.clone(), Transport::Capture);
    drain(&d, &clock).await;
    let task = u32::try_from(e.tasks(Some(&id), true).await.unwrap()[0].seq).unwrap();
    let count = || {
        let e = e.clone();
        async move { e.outbox_messages(None, 100).await.unwrap().len() }
    };
    let before = count().await;
    // A stranger asks: nothing is sent (and the answer is the same).
    e.request_fresh_link(&id, task, "intrus@ailleurs.example")
        .await
        .unwrap();
    e.request_fresh_link("no-such-request", task, "intrus@ailleurs.example")
        .await
        .unwrap();
    assert_eq!(count().await, before);
    // A member of the task's role asks: a new email with a new, working link.
    clock.set(Timestamp(T0.0 + 60_000));
    e.request_fresh_link(&id, task, "guichet-donnees@hopital.example")
        .await
        .unwrap();
    assert_eq!(count().await, before + 1);
    drain(&d, &clock).await;
    let rows = e.outbox_messages(Some("captured"), 100).await.unwrap();
    let fresh = rows.iter().find(|r| r.id.contains(".fresh.")).unwrap();
    let token = link_token(fresh.body.as_deref().unwrap());
    let grant = e.verify_link(&token).await.unwrap();
    assert_eq!(
        (grant.task, grant.recipient.as_str()),
        (Some(task), "guichet-donnees@hopital.example")
    );
}

/// 2027-01-15 00:00 UTC (01:00 in Paris, winter time).
const DAY: i64 = 1_799_971_200_000;
const HOUR: i64 = 3_600_000;

/// The data unit finds a request of model (a) admissible: its feasibility tasks open.
async fn admissible(e: &Engine, id: &str) {
    let (_, inst) = e.instance(id).await.unwrap();
    let task = inst.tasks.values().next().unwrap().seq;
    e.execute(
        id,
        Command::Complete {
            task,
            user: "guichet-donnees@hopital.example".into(),
            outcome: Some("recevable".into()),
            fields: Fields::new(),
            comment: None,
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_daily_digest_replaces_task_emails_for_those_who_ask() {
    let sink = Sink::start("127.0.0.1:0", &[]).await;
    let (e, clock) = engine().await;
    // 06:00 UTC is 07:00 in Paris, before the digest hour (8).
    clock.set(Timestamp(DAY + 6 * HOUR));
    let jurist = "juriste@hopital.example";
    e.set_mail_preference(jurist, true, Language::Fr)
        .await
        .unwrap();
    let id = one_request(&e).await;
    // Admissible: legal feasibility goes to the two jurists, one of whom wants a digest.
    admissible(&e, &id).await;
    let d = dispatcher(e.clone(), smtp(sink.addr));
    drain(&d, &clock).await;
    let to = |raw: &str| header(raw, "To");
    let subject = |raw: &str| {
        MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap()
            .subject()
            .unwrap()
            .to_owned()
    };
    let accepted = sink.accepted();
    let legal: Vec<&String> = accepted
        .iter()
        .filter(|m| subject(m).contains("Faisabilité juridique"))
        .collect();
    assert_eq!(legal.len(), 1, "only the DPO is written to at once");
    assert!(to(legal[0]).contains("dpo@hopital.example"));
    assert!(!accepted.iter().any(|m| to(m).contains(jurist)));
    let row = e
        .outbox_messages(Some("sent"), 100)
        .await
        .unwrap()
        .into_iter()
        .find(|m| {
            m.subject
                .as_deref()
                .unwrap_or("")
                .contains("Faisabilité juridique")
        })
        .unwrap();
    assert_eq!(
        row.recipients.as_deref(),
        Some("dpo@hopital.example, juriste@hopital.example (daily digest)")
    );
    // Before the hour, no digest.
    assert_eq!(d.run_once(100).await.unwrap().sent, 0);
    // At 08:00 in Paris, one digest to the jurist, listing the task with a link of its own.
    clock.set(Timestamp(DAY + 7 * HOUR));
    assert_eq!(d.run_once(100).await.unwrap().sent, 1);
    let accepted = sink.accepted();
    let digest = accepted.last().unwrap();
    assert!(to(digest).contains(jurist), "{digest}");
    assert_eq!(subject(digest), "[Guichet] Vos tâches en attente : 1");
    let parsed = MessageParser::default().parse(digest.as_bytes()).unwrap();
    let text = parsed.body_text(0).unwrap();
    assert!(
        text.contains(
            "Faisabilité juridique (Juristes et DPO), demande « Cohorte insuffisance cardiaque »"
        ),
        "{text}"
    );
    let expected_id = guichet_engine::runtime::digest::digest_id(jurist, "2027-01-15");
    assert_eq!(
        header(digest, "Message-ID"),
        format!("<{expected_id}@hopital.example>")
    );
    let grant = e.verify_link(&link_token(&text)).await.unwrap();
    let legal_task = e
        .tasks(Some(&id), false)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.step == "faisabilite-juridique")
        .unwrap();
    assert_eq!(
        (
            grant.instance.as_str(),
            grant.task,
            grant.recipient.as_str()
        ),
        (id.as_str(), Some(legal_task.seq as u32), jurist)
    );
    // Once a day: later passes that day send nothing more.
    clock.set(Timestamp(DAY + 15 * HOUR));
    assert_eq!(d.run_once(100).await.unwrap().sent, 0);
    assert_eq!(sink.accepted().len(), accepted.len());
    // The next morning, the task still waits: a new digest, with an id of its own.
    clock.set(Timestamp(DAY + 24 * HOUR + 7 * HOUR));
    assert_eq!(d.run_once(100).await.unwrap().sent, 1);
    let next = sink.accepted().last().unwrap().clone();
    assert_eq!(
        header(&next, "Message-ID"),
        format!(
            "<{}@hopital.example>",
            guichet_engine::runtime::digest::digest_id(jurist, "2027-01-16")
        )
    );
    // Someone with nothing pending gets no digest.
    e.set_mail_preference("direction-recherche@hopital.example", true, Language::En)
        .await
        .unwrap();
    clock.set(Timestamp(DAY + 48 * HOUR + 7 * HOUR));
    assert_eq!(d.run_once(100).await.unwrap().sent, 1, "the jurist's only");
}

#[tokio::test]
async fn a_digest_refused_for_a_while_is_resent_with_the_same_message_id() {
    let jurist = "juriste@hopital.example";
    let sink = Sink::start(
        "127.0.0.1:0",
        &[(jurist, Reply::Transient), (jurist, Reply::Transient)],
    )
    .await;
    let (e, clock) = engine().await;
    clock.set(Timestamp(DAY + 6 * HOUR));
    e.set_mail_preference(jurist, true, Language::En)
        .await
        .unwrap();
    let ids = [one_request(&e).await, one_request(&e).await];
    for id in &ids {
        admissible(&e, id).await;
    }
    let d = dispatcher(e.clone(), smtp(sink.addr));
    drain(&d, &clock).await;
    clock.set(Timestamp(DAY + 7 * HOUR));
    let report = drain(&d, &clock).await;
    assert_eq!((report.sent, report.retried), (1, 2), "{report:?}");
    let row = e
        .outbox_message(&guichet_engine::runtime::digest::digest_id(
            jurist,
            "2027-01-15",
        ))
        .await
        .unwrap();
    assert_eq!((row.state.as_str(), row.attempts), ("sent", 3));
    assert_eq!(row.instance, None);
    let digest = sink.accepted().last().unwrap().clone();
    assert_eq!(
        header(&digest, "Message-ID"),
        row.message_id.clone().unwrap()
    );
    assert!(header(&digest, "Subject").contains("Your pending tasks: 2"));
}

/// A server that accepts connections and then never answers (nor closes them) costs a pass
/// one deadline, not one per message: the first messages fail at the deadline, the rest of
/// the pass at once, all kept for a retry with the cause in `last_error`; and once the
/// server answers again, everything goes out.
#[tokio::test]
async fn a_server_that_never_answers_costs_one_deadline_and_says_so() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            connections.push(c);
        }
    });
    let (e, clock) = engine().await;
    for _ in 0..10 {
        one_request(&e).await;
    }
    let transport = Transport::smtp(&SmtpConfig {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: TlsMode::None,
        username: None,
        password: None,
        timeout: Duration::from_secs(1),
    })
    .unwrap();
    let d = dispatcher(e.clone(), transport);
    let began = std::time::Instant::now();
    let r = d.run_once(100).await.unwrap();
    // 30 messages, 8 at a time: without the breaker, four deadlines or more.
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(
        r,
        Report {
            sent: 0,
            retried: 30,
            dead: 0
        }
    );
    let messages = e.outbox_messages(None, 50).await.unwrap();
    assert_eq!(messages.len(), 30);
    let waited = |m: &&guichet_engine::runtime::outbox::Message| {
        m.last_error
            .as_deref()
            .is_some_and(|e| e.contains("did not finish the conversation within 1 s"))
    };
    assert!(messages.iter().any(|m| waited(&m)), "{messages:?}");
    for m in &messages {
        assert_eq!(m.state, "pending");
        let error = m.last_error.as_deref().unwrap_or_default();
        assert!(waited(&m) || error.contains("unanswered"), "{error}");
    }
    // The server is replaced by one that answers, on the same address.
    held.abort();
    let _ = held.await;
    let sink = Sink::start(&addr.to_string(), &[]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = drain(&d, &clock).await;
    assert_eq!(report.sent, 30);
    assert_eq!(sink.accepted().len(), 30);
}
