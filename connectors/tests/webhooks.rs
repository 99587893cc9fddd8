//! Provider webhooks against a real HTTP listener on 127.0.0.1, and provider callbacks:
//! signed, replayed, forged, stale and late ones. Model (c), where a trusted third party
//! checks compliance and answers by callback.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guichet_connectors::email::RetryPolicy;
use guichet_connectors::provider::{CallbackError, ProviderConfig, Webhooks, sign};
use guichet_engine::Engine;
use guichet_engine::clock::{Clock, ManualClock, Timestamp};
use guichet_engine::core::{Command, Fields};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const SECRET: &str = "s3cret-shared-with-the-third-party";
const T0: Timestamp = Timestamp(1_800_000_000_000);
static N: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
}

/// An HTTP/1.1 listener that records each request and answers with the next scripted status.
async fn listener(script: &[u16]) -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(
        script.iter().copied().collect::<VecDeque<u16>>(),
    ));
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                return;
            };
            let (s, script) = (s.clone(), script.clone());
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                let mut headers = HashMap::new();
                let mut line = String::new();
                r.read_line(&mut line).await.unwrap(); // request line
                loop {
                    line.clear();
                    r.read_line(&mut line).await.unwrap();
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                r.read_exact(&mut body).await.unwrap();
                s.lock().unwrap().push(Received {
                    headers,
                    body: String::from_utf8(body).unwrap(),
                });
                let status = script.lock().unwrap().pop_front().unwrap_or(200);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                w.write_all(reply.as_bytes()).await.unwrap();
            });
        }
    });
    (addr, seen)
}

async fn setup(provider_url: &str) -> (Arc<Engine>, Arc<ManualClock>, Webhooks) {
    let path = std::env::temp_dir().join(format!(
        "guichet-hooks-{}-{}.db",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
    }
    let clock = Arc::new(ManualClock::new(T0));
    let e = Arc::new(
        Engine::open(&format!("sqlite://{}", path.display()), clock.clone())
            .await
            .unwrap(),
    );
    let source = guichet_definitions::models::source("externe").unwrap();
    e.deploy(source).await.unwrap();
    let hooks = Webhooks {
        engine: e.clone(),
        pull: Vec::new(),
        providers: HashMap::from([(
            "tiers-de-confiance".to_owned(),
            ProviderConfig {
                url: provider_url.to_owned(),
                secret: SECRET.to_owned(),
            },
        )]),
        base_url: "https://guichet.institut.example".into(),
        policy: RetryPolicy {
            base_ms: 1_000,
            max_ms: 60_000,
            max_attempts: 5,
            lease_ms: 30_000,
            ..RetryPolicy::default()
        },
        timeout: Duration::from_secs(5),
    };
    (e, clock, hooks)
}

/// A request of model (c) whose compliance check was just handed to the third party.
async fn request_at_the_third_party(e: &Engine) -> String {
    let intake: Fields = serde_json::from_value(json!({
        "titre": "T", "email": "p@x.example", "organisme": "O", "cadre": "autre", "resume": "R", "donnees": "D"
    }))
    .unwrap();
    let id = e.start("externe", &intake).await.unwrap();
    let task = e.tasks(Some(&id), true).await.unwrap()[0].seq;
    e.execute(
        &id,
        Command::Complete {
            task: u32::try_from(task).unwrap(),
            user: "r@i.example".into(),
            outcome: Some("recevable".into()),
            fields: Fields::new(),
            comment: None,
        },
    )
    .await
    .unwrap();
    id
}

fn callback_token(r: &Received) -> String {
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let url = body["callback_url"].as_str().unwrap();
    url.rsplit('/').next().unwrap().to_owned()
}

fn now_s(clock: &ManualClock) -> i64 {
    clock.now().0 / 1000
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_answered_once() {
    let (addr, seen) = listener(&[503]).await;
    let (e, clock, hooks) = setup(&format!("http://{addr}/hooks/guichet")).await;
    let id = request_at_the_third_party(&e).await;
    assert_eq!(
        hooks.run_once(10).await.unwrap().retried,
        1,
        "503 is transient"
    );
    clock.set(Timestamp(T0.0 + 5_000));
    assert_eq!(hooks.run_once(10).await.unwrap().sent, 1);
    let received = seen.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    // The same message both times, with a valid signature over the exact body.
    assert_eq!(
        received[0].headers["guichet-message-id"],
        received[1].headers["guichet-message-id"]
    );
    for r in &received {
        let sig = &r.headers["guichet-signature"];
        let t: i64 = sig
            .split(',')
            .next()
            .unwrap()
            .trim_start_matches("t=")
            .parse()
            .unwrap();
        assert_eq!(*sig, sign(SECRET, t, r.body.as_bytes()));
    }
    let body: serde_json::Value = serde_json::from_str(&received[1].body).unwrap();
    assert_eq!(body["request"], id.as_str());
    assert_eq!(body["step"], "conformite");
    assert_eq!(body["outcomes"], json!(["conforme", "non-conforme"]));
    assert!(
        body["callback_url"]
            .as_str()
            .unwrap()
            .starts_with("https://guichet.institut.example/callbacks/")
    );
    assert!(body["respond_before"].is_i64());
    // The third party answers: the branch is done.
    let token = callback_token(&received[1]);
    let answer = json!({"outcome": "conforme", "fields": {"anonymise": true}}).to_string();
    let inst = hooks
        .accept_callback(
            &token,
            &sign(SECRET, now_s(&clock), answer.as_bytes()),
            answer.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(inst.data["conformite"].outcome.as_deref(), Some("conforme"));
    // A replay of the same callback is refused, and changes nothing.
    let before = e.history(&id).await.unwrap().len();
    let again = hooks
        .accept_callback(
            &token,
            &sign(SECRET, now_s(&clock), answer.as_bytes()),
            answer.as_bytes(),
        )
        .await;
    assert_eq!(again.unwrap_err(), CallbackError::Invalid);
    assert_eq!(e.history(&id).await.unwrap().len(), before);
}

#[tokio::test]
async fn forged_stale_malformed_and_late_callbacks_are_refused() {
    let (addr, seen) = listener(&[]).await;
    let (e, clock, hooks) = setup(&format!("http://{addr}/")).await;
    let id = request_at_the_third_party(&e).await;
    hooks.run_once(10).await.unwrap();
    let token = callback_token(&seen.lock().unwrap()[0]);
    let answer = json!({"outcome": "conforme", "fields": {}}).to_string();
    let history = e.history(&id).await.unwrap().len();
    // Signed with the wrong secret.
    let forged = hooks
        .accept_callback(
            &token,
            &sign("guess", now_s(&clock), answer.as_bytes()),
            answer.as_bytes(),
        )
        .await;
    assert_eq!(forged.unwrap_err(), CallbackError::BadSignature);
    // A valid signature over another body.
    let other = json!({"outcome": "non-conforme"}).to_string();
    let swapped = hooks
        .accept_callback(
            &token,
            &sign(SECRET, now_s(&clock), other.as_bytes()),
            answer.as_bytes(),
        )
        .await;
    assert_eq!(swapped.unwrap_err(), CallbackError::BadSignature);
    // An old signature (a replayed capture).
    let stale = hooks
        .accept_callback(
            &token,
            &sign(SECRET, now_s(&clock) - 600, answer.as_bytes()),
            answer.as_bytes(),
        )
        .await;
    assert_eq!(stale.unwrap_err(), CallbackError::Stale);
    // A forged callback URL.
    let unknown = hooks
        .accept_callback(
            "x".repeat(43).as_str(),
            &sign(SECRET, now_s(&clock), answer.as_bytes()),
            answer.as_bytes(),
        )
        .await;
    assert_eq!(unknown.unwrap_err(), CallbackError::Invalid);
    // Properly signed, but not what the step declares.
    let wrong = json!({"outcome": "peut-etre"}).to_string();
    let refused = hooks
        .accept_callback(
            &token,
            &sign(SECRET, now_s(&clock), wrong.as_bytes()),
            wrong.as_bytes(),
        )
        .await;
    assert!(matches!(refused, Err(CallbackError::Refused(m)) if m.contains("peut-etre")));
    let junk = hooks
        .accept_callback(
            &token,
            &sign(SECRET, now_s(&clock), b"{\"outcome\": 3}"),
            b"{\"outcome\": 3}",
        )
        .await;
    assert!(matches!(junk, Err(CallbackError::Malformed(_))));
    assert_eq!(
        e.history(&id).await.unwrap().len(),
        history,
        "refused callbacks change nothing"
    );
    // The third party answers after the 20-day timeout: the step has moved on.
    clock.set(Timestamp(T0.0 + 20 * 86_400_000 + 3_600_000));
    e.fire_due_timers(100).await.unwrap();
    let late = hooks
        .accept_callback(
            &token,
            &sign(SECRET, now_s(&clock), answer.as_bytes()),
            answer.as_bytes(),
        )
        .await;
    assert!(matches!(late, Err(CallbackError::Late(_))), "{late:?}");
    assert!(
        e.tasks(Some(&id), true)
            .await
            .unwrap()
            .iter()
            .any(|t| t.step == "relance-tiers")
    );
}

#[tokio::test]
async fn an_unconfigured_provider_or_a_refusal_is_a_dead_letter() {
    let (addr, _) = listener(&[400]).await;
    let (e, _clock, mut hooks) = setup(&format!("http://{addr}/")).await;
    request_at_the_third_party(&e).await;
    assert_eq!(
        hooks.run_once(10).await.unwrap().dead,
        1,
        "400 is permanent"
    );
    let dead = e.outbox_messages(Some("dead"), 10).await.unwrap();
    assert!(dead[0].last_error.as_deref().unwrap().contains("400"));
    hooks.providers.clear();
    request_at_the_third_party(&e).await;
    assert_eq!(hooks.run_once(10).await.unwrap().dead, 1);
    let dead = e.outbox_messages(Some("dead"), 10).await.unwrap();
    assert!(dead.iter().any(|d| {
        d.last_error
            .as_deref()
            .unwrap()
            .contains("no URL configured")
    }));
}

#[tokio::test]
async fn a_signed_callback_carries_documents_by_the_hashes_it_signs() {
    let (addr, seen) = listener(&[]).await;
    let (e, clock, hooks) = setup(&format!("http://{addr}/")).await;
    let id = request_at_the_third_party(&e).await;
    hooks.run_once(10).await.unwrap();
    let token = callback_token(&seen.lock().unwrap()[0]);
    let sha = "e".repeat(64);
    // As the web layer hands them over once stored: by field.
    let mut documents = Fields::new();
    documents.insert(
        "rapport-pdf".into(),
        json!({"sha256": sha, "name": "rapport.pdf", "size": 1234, "type": "application/pdf"}),
    );
    let send = |answer: serde_json::Value, documents: Fields| {
        let hooks = &hooks;
        let token = token.clone();
        let now = now_s(&clock);
        async move {
            let answer = answer.to_string();
            hooks
                .accept_callback_with(
                    &token,
                    &sign(SECRET, now, answer.as_bytes()),
                    answer.as_bytes(),
                    &documents,
                )
                .await
        }
    };
    // A document the signed body does not name by its hash: refused.
    let other =
        json!({"outcome": "conforme", "fields": {"rapport-pdf": {"sha256": "f".repeat(64)}}});
    assert!(matches!(
        send(other, documents.clone()).await,
        Err(CallbackError::Malformed(m)) if m.contains("rapport-pdf")
    ));
    // A document named in the body but not sent: refused (never recorded without its file).
    let claimed = json!({"outcome": "conforme", "fields": {"rapport-pdf": {"sha256": sha, "name": "r.pdf", "size": 1, "type": "application/pdf"}}});
    assert!(matches!(
        send(claimed, Fields::new()).await,
        Err(CallbackError::Malformed(m)) if m.contains("as a file part")
    ));
    assert!(
        !e.instance(&id)
            .await
            .unwrap()
            .1
            .data
            .contains_key("conformite")
    );
    // Named by its hash and sent: recorded as stored, its hash in the history.
    let answer = json!({"outcome": "conforme", "fields": {"rapport-pdf": {"sha256": sha}}});
    let inst = send(answer, documents).await.unwrap();
    assert_eq!(
        inst.data["conformite"].fields["rapport-pdf"]["name"],
        "rapport.pdf"
    );
    assert!(e.history(&id).await.unwrap().iter().any(|h| matches!(
        &h.event.kind,
        guichet_engine::core::EventKind::DocumentReceived { sha256, .. } if *sha256 == sha
    )));
}
