//! The router in process (`oneshot`), on a real SQLite file: the requester portal, and a task
//! decided from its email link.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use guichet_connectors::email::{Dispatcher, RetryPolicy, Templates, Transport};
use guichet_engine::Engine;
use guichet_engine::clock::{ManualClock, Timestamp};
use guichet_web::{AppState, LimitSettings, Limits, router};
use http_body_util::BodyExt;
use tower::ServiceExt;

static N: AtomicUsize = AtomicUsize::new(0);

async fn setup() -> (Arc<Engine>, Router, Dispatcher) {
    let path = std::env::temp_dir().join(format!(
        "guichet-web-{}-{}.db",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
    }
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let engine = Arc::new(
        Engine::open(&format!("sqlite://{}", path.display()), clock)
            .await
            .unwrap(),
    );
    for (_, source) in guichet_definitions::models::ALL {
        engine.deploy(source).await.unwrap();
    }
    let app = router(AppState {
        engine: engine.clone(),
        webhooks: None,
        secure_cookies: false,
        digest_hour: guichet_connectors::email::DIGEST_HOUR,
        max_in_flight: 512,
        limits: Limits::new(&LimitSettings::off()),
    });
    let mail = Dispatcher {
        engine: engine.clone(),
        transport: Transport::Capture,
        templates: Arc::new(Templates::builtin()),
        from: "Guichet <guichet@institut.example>".parse().unwrap(),
        base_url: "http://guichet.test".into(),
        policy: RetryPolicy::default(),
        digest_hour: guichet_connectors::email::DIGEST_HOUR,
    };
    (engine, app, mail)
}

async fn call(app: &Router, method: &str, uri: &str, form: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    let body = match form {
        Some(f) => {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(f.to_owned())
        }
        None => Body::empty(),
    };
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const INTAKE: &[(&str, &str)] = &[
    ("titre", "Étude <cohorte> & co"),
    ("email", "porteur@labo.example"),
    ("organisme", "Labo"),
    ("cadre", "autre"),
    ("resume", "Résumé"),
    ("donnees", "PMSI"),
];

fn body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn the_portal_lists_desks_and_validates_the_intake_before_saving() {
    let (engine, app, _) = setup().await;
    let (status, html) = call(&app, "GET", "/", None).await;
    assert_eq!(status, StatusCode::OK);
    for desk in [
        "interne-decentralise",
        "interne-solutions-externes",
        "externe",
    ] {
        assert!(html.contains(&format!("href=\"/desks/{desk}\"")), "{html}");
    }
    let (status, html) = call(&app, "GET", "/desks/externe", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<h1>Guichet externe</h1>"));
    assert!(html.contains("name=\"email\" type=\"email\""));
    assert!(html.contains("<option value=\"autre\">Autre (hors des cadres identifiés)</option>"));
    // A wrong email and a missing field: shown next to the fields, nothing saved.
    let mut bad: Vec<(&str, &str)> = INTAKE
        .iter()
        .copied()
        .filter(|(k, _)| *k != "resume")
        .collect();
    bad.retain(|(k, _)| *k != "email");
    bad.push(("email", "pas-une-adresse"));
    let (status, html) = call(&app, "POST", "/desks/externe", Some(&body(&bad))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("id=\"e-email\">« pas-une-adresse » n&#x27;est pas une adresse e-mail"),
        "{html}"
    );
    assert!(html.contains("id=\"e-resume\">obligatoire"));
    // The page is French: no error next to a field is in the engine's English.
    for error in html.split("<p class=\"error\"").skip(1) {
        let text = error.split('>').nth(1).unwrap_or("");
        for english in [
            "required", "is not", "expected", "at most", "at least", "unknown",
        ] {
            assert!(!text.contains(english), "English on a French page: {text}");
        }
    }
    assert!(
        html.contains("value=\"pas-une-adresse\""),
        "typed values are kept"
    );
    assert!(
        engine
            .instance_ids("externe", None)
            .await
            .unwrap()
            .is_empty()
    );
    // Valid: saved, with a reference; the title is escaped in the page.
    let (status, html) = call(&app, "POST", "/desks/externe", Some(&body(INTAKE))).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Étude &lt;cohorte&gt; &amp; co"), "{html}");
    assert_eq!(engine.instance_ids("externe", None).await.unwrap().len(), 1);
    let (status, _) = call(&app, "GET", "/desks/nulle-part", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The first link token found in the captured emails sent to `to`.
async fn token_for(engine: &Engine, mail: &Dispatcher, to: &str) -> String {
    mail.run_once(100).await.unwrap();
    let rows = engine.outbox_messages(Some("captured"), 100).await.unwrap();
    let text = rows
        .iter()
        .filter(|r| r.recipients.as_deref() == Some(to))
        .map(|r| r.body.clone().unwrap())
        .next()
        .unwrap();
    let at = text.find("http://guichet.test/l/").unwrap() + "http://guichet.test/l/".len();
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

fn csrf(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").unwrap() + "name=\"_csrf\" value=\"".len();
    html[at..].chars().take_while(|c| *c != '"').collect()
}

#[tokio::test]
async fn a_task_is_decided_from_its_email_link_and_only_by_a_post() {
    let (engine, app, mail) = setup().await;
    call(&app, "POST", "/desks/externe", Some(&body(INTAKE))).await;
    let id = engine
        .instance_ids("externe", None)
        .await
        .unwrap()
        .remove(0);
    let token = token_for(&engine, &mail, "referent-donnees@institut.example").await;
    let history = engine.history(&id).await.unwrap().len();
    // Opening the link (several times, as mail scanners do) changes nothing.
    for _ in 0..3 {
        let (status, html) = call(&app, "GET", &format!("/l/{token}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("<h1>Recevabilité</h1>"), "{html}");
        assert!(html.contains("name=\"_outcome\" value=\"recevable\""));
    }
    assert_eq!(engine.history(&id).await.unwrap().len(), history);
    let (_, html) = call(&app, "GET", &format!("/l/{token}"), None).await;
    let csrf = csrf(&html);
    // A POST without the anti-forgery token is refused.
    let (status, _) = call(
        &app,
        "POST",
        &format!("/l/{token}"),
        Some("_outcome=recevable"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &app,
        "POST",
        &format!("/l/{token}"),
        Some(&format!("_csrf=x{csrf}&_outcome=recevable")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(engine.history(&id).await.unwrap().len(), history);
    // An outcome the step does not have: shown, nothing changes.
    let (status, html) = call(
        &app,
        "POST",
        &format!("/l/{token}"),
        Some(&format!("_csrf={csrf}&_outcome=peut-etre")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("« peut-etre » n&#x27;est pas une décision de cette tâche"),
        "{html}"
    );
    // The decision.
    let (status, html) = call(
        &app,
        "POST",
        &format!("/l/{token}"),
        Some(&format!("_csrf={csrf}&_outcome=recevable")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Votre décision est enregistrée"));
    let (_, inst) = engine.instance(&id).await.unwrap();
    assert_eq!(
        inst.data["recevabilite"].outcome.as_deref(),
        Some("recevable")
    );
    let closed = engine.tasks(Some(&id), false).await.unwrap();
    assert_eq!(
        closed
            .iter()
            .find(|t| t.step == "recevabilite")
            .unwrap()
            .closed_by
            .as_deref(),
        Some("referent-donnees@institut.example")
    );
    // The link has served: the same page for it and for a forged one.
    let (status, used) = call(&app, "GET", &format!("/l/{token}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, forged) = call(&app, "GET", &format!("/l/{}", "A".repeat(43)), None).await;
    assert_eq!(
        used.replace(&token, "T"),
        forged.replace(&"A".repeat(43), "T")
    );
    // A path that is no link's shape is not written back into the page.
    let (status, odd) = call(&app, "GET", "/l/%22%3E%3Cb%3Eici", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!odd.contains("/fresh") && !odd.contains("ici"), "{odd}");
    let (status, _) = call(
        &app,
        "POST",
        &format!("/l/{token}"),
        Some(&format!("_csrf={csrf}&_outcome=recevable")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Asking for a fresh link answers the same; the sponsor's status link shows progress.
    let (_, fresh) = call(&app, "POST", &format!("/l/{token}/fresh"), None).await;
    assert!(fresh.contains("un nouveau lien vient de vous être envoyé"));
    let status_token = token_for(&engine, &mail, "porteur@labo.example").await;
    let (status, html) = call(&app, "GET", &format!("/l/{status_token}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Votre demande est en cours d&#x27;examen."),
        "{html}"
    );
    assert!(html.contains("Recevabilité : Recevable"), "{html}");
    // The follow link's forms (answers, withdrawal) carry its anti-forgery token too.
    let (status, _) = call(
        &app,
        "POST",
        &format!("/l/{status_token}"),
        Some("_outcome=x"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn metrics_count_requests_tasks_and_the_outbox() {
    let (engine, app, mail) = setup().await;
    call(&app, "POST", "/desks/externe", Some(&body(INTAKE))).await;
    mail.run_once(100).await.unwrap();
    let (status, text) = call(&app, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("guichet_requests{status=\"running\"} 1"),
        "{text}"
    );
    assert!(text.contains("guichet_tasks_open 1"), "{text}");
    assert!(
        text.contains("guichet_outbox{kind=\"email\",state=\"sent\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("guichet_requests_with_timers 1"),
        "its task's deadline, reminder and escalation: {text}"
    );
    assert!(text.contains("guichet_timers_due 0"), "{text}");
    // The request as submitted is remembered for its next command.
    assert!(text.contains("guichet_requests_remembered 1"), "{text}");
    assert!(text.contains("guichet_memory_trusted 1"), "{text}");
    // Latencies by route pattern and status (the metrics are the process's: other tests of
    // this file submit intakes too, so at least this one).
    let intake = "method=\"POST\",route=\"/desks/{name}\",status=\"200\"";
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let count = value(&format!(
        "guichet_http_request_duration_seconds_count{{{intake}}}"
    ));
    assert!(count >= 1);
    assert_eq!(
        value(&format!(
            "guichet_http_request_duration_seconds_bucket{{{intake},le=\"+Inf\"}}"
        )),
        count
    );
    // Tokens and ids never reach the metrics: only route patterns do.
    call(&app, "GET", "/l/secret-token-value", None).await;
    let (_, text) = call(&app, "GET", "/metrics", None).await;
    assert!(text.contains("route=\"/l/{token}\""), "{text}");
    assert!(!text.contains("secret-token-value"));
    let _ = engine;
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let (_, app, _) = setup().await;
    let resp = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/healthz")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}

const INTAKE_INTERNE: &[(&str, &str)] = &[
    ("titre", "Parcours diabète"),
    ("email", "porteur@labo.example"),
    ("organisme", "Laboratoire d'épidémiologie"),
    ("type-porteur", "academique"),
    ("cadre", "collaboratif"),
    ("resume", "Étude des parcours de soins."),
    ("donnees", "Séjours 2015-2025"),
];

#[tokio::test]
async fn the_sponsor_answers_withdraws_and_finds_their_link_again_from_their_page() {
    use guichet_engine::core::{Actor, Command, EventKind, InstanceStatus};
    let (engine, app, mail) = setup().await;
    let (status, _) = call(
        &app,
        "POST",
        "/desks/interne-decentralise",
        Some(&body(INTAKE_INTERNE)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let id = engine
        .instance_ids("interne-decentralise", None)
        .await
        .unwrap()
        .remove(0);
    // The reviewer's task page shows what the sponsor submitted, with the labels.
    let task_link = token_for(&engine, &mail, "guichet-donnees@hopital.example").await;
    let (_, html) = call(&app, "GET", &format!("/l/{task_link}"), None).await;
    assert!(
        html.contains("<dt>Organisme porteur</dt><dd>Laboratoire d&#x27;épidémiologie</dd>"),
        "{html}"
    );
    assert!(
        html.contains("<dt>Cadre du projet</dt><dd>Projet collaboratif</dd>"),
        "{html}"
    );

    let follow = token_for(&engine, &mail, "porteur@labo.example").await;
    let (status, html) = call(&app, "GET", &format!("/l/{follow}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<dt>Résumé scientifique</dt>"), "{html}");
    assert!(
        !html.contains("name=\"_step\""),
        "nothing to answer yet: {html}"
    );
    assert!(html.contains("?withdraw"), "{html}");

    // The desk asks for more information; its comment is for staff only.
    let (_, inst) = engine.instance(&id).await.unwrap();
    let task = *inst.tasks.keys().next().unwrap();
    engine
        .execute(
            &id,
            Command::Complete {
                task,
                user: "guichet-donnees@hopital.example".into(),
                outcome: Some("complement".into()),
                fields: Default::default(),
                comment: Some("Commentaire interne au guichet".into()),
            },
        )
        .await
        .unwrap();
    let (status, html) = call(&app, "GET", &format!("/l/{follow}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("name=\"_step\" value=\"reponse-complement\""),
        "{html}"
    );
    assert!(html.contains("Compléments apportés"), "{html}");
    assert!(!html.contains("Commentaire interne"), "{html}");
    assert!(
        !html.contains("guichet-donnees@hopital.example"),
        "who did what is staff's: {html}"
    );
    let token = csrf(&html);

    // An empty answer: the error tied to its input, nothing recorded.
    let (status, html) = call(
        &app,
        "POST",
        &format!("/l/{follow}"),
        Some(&format!(
            "_csrf={token}&_action=answer&_step=reponse-complement&reponse="
        )),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("aria-describedby=\"e-reponse-complement-reponse\" aria-invalid=\"true\""),
        "{html}"
    );
    assert!(
        html.contains("id=\"e-reponse-complement-reponse\""),
        "{html}"
    );
    // The answer: recorded as the sponsor's, and the desk examines the request again.
    let (status, _) = call(
        &app,
        "POST",
        &format!("/l/{follow}"),
        Some(&format!(
            "_csrf={token}&_action=answer&_step=reponse-complement&reponse={}",
            enc("Variables : âge, HbA1c.")
        )),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, inst) = engine.instance(&id).await.unwrap();
    assert_eq!(
        inst.data["reponse-complement"].fields["reponse"],
        "Variables : âge, HbA1c."
    );
    assert_eq!(inst.tasks.len(), 1, "recevabilite is open again");
    let history = engine.history(&id).await.unwrap();
    assert!(
        history
            .iter()
            .any(|h| matches!(h.event.kind, EventKind::EventReceived { .. })
                && h.event.actor == Actor::Requester)
    );
    let (_, html) = call(&app, "GET", &format!("/l/{follow}?done=answer"), None).await;
    assert!(html.contains("Votre réponse est enregistrée"), "{html}");
    // The same answer again is not kept for a later question.
    let (status, html) = call(
        &app,
        "POST",
        &format!("/l/{follow}"),
        Some(&format!(
            "_csrf={token}&_action=answer&_step=reponse-complement&reponse=encore"
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("n&#x27;est plus attendue"), "{html}");
    assert!(engine.instance(&id).await.unwrap().1.buffered.is_empty());

    // Lost link: the same page whether the address is the sponsor's or not; one email.
    let reference = guichet_engine::core::reference(&id);
    let before = engine.outbox_messages(None, 1000).await.unwrap().len();
    let (_, wrong) = call(
        &app,
        "POST",
        "/follow",
        Some(&format!(
            "reference={reference}&email=autre%40ailleurs.example"
        )),
    )
    .await;
    assert_eq!(
        engine.outbox_messages(None, 1000).await.unwrap().len(),
        before
    );
    for _ in 0..3 {
        let (status, right) = call(
            &app,
            "POST",
            "/follow",
            Some(&format!(
                "reference={}&email=porteur%40labo.example",
                reference.to_lowercase()
            )),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(right, wrong);
    }
    let follow_mails = engine
        .outbox_messages(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.id.contains(".follow."))
        .count();
    assert_eq!(follow_mails, 1, "one fresh link per ten minutes");
    let fresh = token_for(&engine, &mail, "porteur@labo.example").await;
    assert_eq!(
        call(&app, "GET", &format!("/l/{fresh}"), None).await.0,
        StatusCode::OK
    );

    // Withdrawal asks for confirmation first.
    let (status, html) = call(&app, "GET", &format!("/l/{follow}?withdraw"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("name=\"_confirm\" value=\"yes\""), "{html}");
    let (_, html) = call(
        &app,
        "POST",
        &format!("/l/{follow}"),
        Some(&format!("_csrf={token}&_action=withdraw")),
    )
    .await;
    assert!(html.contains("name=\"_confirm\""), "{html}");
    assert_eq!(
        engine.instance(&id).await.unwrap().1.status,
        InstanceStatus::Running
    );
    let (status, _) = call(
        &app,
        "POST",
        &format!("/l/{follow}"),
        Some(&format!("_csrf={token}&_action=withdraw&_confirm=yes")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, inst) = engine.instance(&id).await.unwrap();
    assert_eq!(inst.status, InstanceStatus::Cancelled);
    assert!(inst.tasks.is_empty());
    let (_, html) = call(&app, "GET", &format!("/l/{follow}?done=withdraw"), None).await;
    assert!(html.contains("Votre demande est retirée."), "{html}");
    assert!(!html.contains("?withdraw"), "{html}");
}

/// A multipart form: text fields, then files (field, file name, content).
fn multipart(texts: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----guichet-test-boundary-7MA4YWxkTrZu0gW".to_owned();
    let mut body = Vec::new();
    for (k, v) in texts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    for (k, name, content) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

/// Posts a multipart form; the status, the headers and the body.
async fn post_multipart(
    app: &Router,
    uri: &str,
    texts: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> (StatusCode, String) {
    let (boundary, body) = multipart(texts, files);
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A GET's status, headers and raw body.
async fn download(app: &Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

/// The files kept in the engine's document folder (staging left out).
fn kept(engine: &Engine) -> Vec<std::path::PathBuf> {
    let dir = engine.documents().dir();
    let Ok(folders) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    folders
        .flatten()
        .filter(|f| f.file_name() != "tmp")
        .flat_map(|f| std::fs::read_dir(f.path()).into_iter().flatten().flatten())
        .map(|f| f.path())
        .collect()
}

#[tokio::test]
async fn documents_travel_with_the_request_checked_kept_by_hash_and_downloaded_as_attachments() {
    use guichet_engine::core::EventKind;
    use sha2::Digest as _;
    let (engine, app, mail) = setup().await;
    let _ = std::fs::remove_dir_all(engine.documents().dir());
    let pdf: &[u8] = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n";
    let png: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
    // A PNG named .pdf where a PDF is asked: refused by its content, nothing kept.
    let (status, html) = post_multipart(
        &app,
        "/desks/interne-decentralise",
        INTAKE_INTERNE,
        &[("protocole", "protocole.pdf", png)],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains("un document de type image/png n&#x27;est pas accepté ici : application/pdf"),
        "{html}"
    );
    assert!(kept(&engine).is_empty());
    assert!(
        engine
            .instance_ids("interne-decentralise", None)
            .await
            .unwrap()
            .is_empty()
    );
    // The PDF: kept under its SHA-256, recorded in the hash-chained history.
    let (status, html) = post_multipart(
        &app,
        "/desks/interne-decentralise",
        INTAKE_INTERNE,
        &[("protocole", "C:\\Users\\porteur\\Protocole v2 é.pdf", pdf)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let sha = hex::encode(sha2::Sha256::digest(pdf));
    assert_eq!(kept(&engine), vec![engine.documents().path(&sha).unwrap()]);
    assert_eq!(
        std::fs::read(engine.documents().path(&sha).unwrap()).unwrap(),
        pdf
    );
    let id = engine
        .instance_ids("interne-decentralise", None)
        .await
        .unwrap()
        .remove(0);
    let history = engine.history(&id).await.unwrap();
    assert!(history.iter().any(|h| matches!(
        &h.event.kind,
        EventKind::DocumentReceived { field, sha256, name, size, media_type, .. }
            if field == "protocole" && *sha256 == sha && name == "Protocole v2 é.pdf"
                && *size == pdf.len() as u64 && media_type == "application/pdf"
    )));
    // The reviewer's page links it; the download is an attachment with its type.
    let task_link = token_for(&engine, &mail, "guichet-donnees@hopital.example").await;
    let (_, html) = call(&app, "GET", &format!("/l/{task_link}"), None).await;
    let href = format!("/l/{task_link}/documents/{sha}");
    assert!(html.contains(&format!("href=\"{href}\"")), "{html}");
    assert!(
        html.contains("Protocole v2 é.pdf (application/pdf, 51 B)"),
        "{html}"
    );
    let (status, headers, body) = download(&app, &href).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, pdf);
    assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"Protocole v2 _.pdf\"; filename*=UTF-8''Protocole%20v2%20%C3%A9.pdf"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // Not a document of this request, or a forged link: not found.
    let other = "b".repeat(64);
    assert_eq!(
        download(&app, &format!("/l/{task_link}/documents/{other}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        download(&app, &format!("/l/{}/documents/{sha}", "A".repeat(43)))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Signed out: the staff route sends to the sign-in page.
    assert_eq!(
        download(&app, &format!("/requests/{id}/documents/{sha}"))
            .await
            .0,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_document_too_large_is_refused_while_it_streams_and_leaves_nothing() {
    let (engine, app, _) = setup().await;
    let _ = std::fs::remove_dir_all(engine.documents().dir());
    engine
        .deploy(
            r#"process "petit" version=1 {
    role "demandeur" from="demande.email"
    start "demande" {
        form {
            field "email" type="email" required=#true
            field "piece" type="file" required=#true max-size="1KB"
        }
    }
    end "fin" result="accepted"
}"#,
        )
        .await
        .unwrap();
    let big = vec![b'a'; 5_000];
    let (status, html) = post_multipart(
        &app,
        "/desks/petit",
        &[("email", "p@x.example")],
        &[("piece", "notes.txt", &big)],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains("le document est trop volumineux : 1 KB au plus"),
        "{html}"
    );
    assert!(kept(&engine).is_empty());
    let staging = engine.documents().dir().join("tmp");
    assert_eq!(
        std::fs::read_dir(&staging).map_or(0, Iterator::count),
        0,
        "nothing left in {}",
        staging.display()
    );
    assert!(engine.instance_ids("petit", None).await.unwrap().is_empty());
    // Within the limit: kept, as text read from its content.
    let (status, html) = post_multipart(
        &app,
        "/desks/petit",
        &[("email", "p@x.example")],
        &[("piece", "notes.bin", b"quelques notes\n")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let id = engine.instance_ids("petit", None).await.unwrap().remove(0);
    let (_, inst) = engine.instance(&id).await.unwrap();
    assert_eq!(inst.data["demande"].fields["piece"]["type"], "text/plain");
    assert_eq!(kept(&engine).len(), 1);
}

/// The subjects of the captured emails to `to`, oldest first, once the pass has run.
async fn subjects_to(engine: &Engine, mail: &Dispatcher, to: &str) -> Vec<String> {
    mail.run_once(100).await.unwrap();
    let mut rows = engine.outbox_messages(Some("captured"), 100).await.unwrap();
    rows.reverse();
    rows.into_iter()
        .filter(|r| r.recipients.as_deref() == Some(to))
        .map(|r| r.subject.unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn emails_are_written_in_their_readers_language() {
    let (engine, app, mail) = setup().await;
    let submit = |language: &'static str, email: &'static str| {
        let app = app.clone();
        async move {
            let mut intake = INTAKE_INTERNE.to_vec();
            intake.retain(|(k, _)| *k != "email");
            intake.push(("email", email));
            let req = Request::builder()
                .method("POST")
                .uri("/desks/interne-decentralise")
                .header(header::ACCEPT_LANGUAGE, language)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body(&intake)))
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
        }
    };
    // A sponsor who read the form in English is written to in English; the desk's staff, who
    // chose nothing, in the desk's language.
    submit("en-GB,en;q=0.9", "sponsor-en@labo.example").await;
    let sponsor = subjects_to(&engine, &mail, "sponsor-en@labo.example").await;
    assert_eq!(sponsor.len(), 1, "{sponsor:?}");
    assert!(sponsor[0].contains("has been received"), "{sponsor:?}");
    // The desk's own texts too, where its definition translates them.
    assert!(
        sponsor[0].contains("[Internal desk with decentralised access]"),
        "{sponsor:?}"
    );
    let staff = subjects_to(&engine, &mail, "guichet-donnees@hopital.example").await;
    assert!(staff.len() >= 2, "{staff:?}");
    assert!(
        staff
            .iter()
            .all(|s| s.contains("Nouvelle demande") || s.contains("Nouvelle tâche")),
        "{staff:?}"
    );
    // A staff member who chose English gets English; a French sponsor, French.
    engine
        .set_mail_preference(
            "guichet-donnees@hopital.example",
            false,
            guichet_engine::definitions::model::Language::En,
        )
        .await
        .unwrap();
    submit("fr-FR,fr;q=0.9", "sponsor-fr@labo.example").await;
    let sponsor = subjects_to(&engine, &mail, "sponsor-fr@labo.example").await;
    assert!(sponsor[0].contains("est bien reçue"), "{sponsor:?}");
    let staff = subjects_to(&engine, &mail, "guichet-donnees@hopital.example").await;
    let newer = &staff[staff.len() - 2..];
    assert!(
        newer
            .iter()
            .all(|s| s.contains("New request") || s.contains("New task")),
        "{staff:?}"
    );
}

/// `/healthz` (and `/readyz`) says whether the node can serve: a table missing behind its
/// back makes it 503 naming the table, while `/livez` still answers (a restart would not
/// mend the database).
#[tokio::test]
async fn health_is_ready_only_with_every_table_and_alive_all_the_same() {
    let path = std::env::temp_dir().join(format!(
        "guichet-web-health-{}-{}.db",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
    }
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let engine = Arc::new(
        Engine::open(&format!("sqlite://{}", path.display()), clock)
            .await
            .unwrap(),
    );
    let app = router(AppState {
        engine,
        webhooks: None,
        secure_cookies: false,
        digest_hour: guichet_connectors::email::DIGEST_HOUR,
        max_in_flight: 512,
        limits: Limits::new(&LimitSettings::off()),
    });
    for path in ["/healthz", "/readyz", "/livez"] {
        assert_eq!(
            call(&app, "GET", path, None).await,
            (StatusCode::OK, "ok".into())
        );
    }
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE step_visits")
        .unwrap();
    for path in ["/healthz", "/readyz"] {
        let (status, text) = call(&app, "GET", path, None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            text.contains("not ready") && text.contains("step_visits"),
            "{text}"
        );
    }
    assert_eq!(call(&app, "GET", "/livez", None).await.0, StatusCode::OK);
}

/// The submission key in a desk's form page.
fn submission_key(html: &str) -> String {
    let at = html
        .find("name=\"_submission\" value=\"")
        .expect("a submission key")
        + 26;
    html[at..at + 32].to_owned()
}

#[tokio::test]
async fn the_intake_form_sent_twice_starts_one_request() {
    let (engine, app, _) = setup().await;
    let (_, html) = call(&app, "GET", "/desks/externe", None).await;
    let key = submission_key(&html);
    // A refused sending keeps its key in the page it comes back with.
    let missing: Vec<_> = INTAKE
        .iter()
        .copied()
        .filter(|(k, _)| *k != "resume")
        .collect();
    let with_key = |pairs: &[(&str, &str)], key: &str| {
        let mut pairs = pairs.to_vec();
        pairs.push(("_submission", key));
        body(&pairs)
    };
    let (status, html) = call(
        &app,
        "POST",
        "/desks/externe",
        Some(&with_key(&missing, &key)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(submission_key(&html), key);
    // Sent twice (a double click, a retry after a lost answer): one request, one reference.
    let (status, first) = call(
        &app,
        "POST",
        "/desks/externe",
        Some(&with_key(INTAKE, &key)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) = call(
        &app,
        "POST",
        "/desks/externe",
        Some(&with_key(INTAKE, &key)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let ids = engine.instance_ids("externe", None).await.unwrap();
    assert_eq!(ids.len(), 1);
    let reference = guichet_engine::core::reference(&ids[0]);
    assert!(
        first.contains(&reference) && again.contains(&reference),
        "{again}"
    );
    // Back in the browser, changed and sent again: not taken for the first; the page says
    // so, keeps the answers and gives the form a new key for a new request.
    let mut changed = INTAKE.to_vec();
    changed[0] = ("titre", "Une autre étude");
    let (status, html) = call(
        &app,
        "POST",
        "/desks/externe",
        Some(&with_key(&changed, &key)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains(&format!("comme demande <strong>{reference}</strong>")),
        "{html}"
    );
    assert!(html.contains("value=\"Une autre étude\""), "{html}");
    let fresh = submission_key(&html);
    assert_ne!(fresh, key);
    assert_eq!(engine.instance_ids("externe", None).await.unwrap().len(), 1);
    let (status, _) = call(
        &app,
        "POST",
        "/desks/externe",
        Some(&with_key(&changed, &fresh)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(engine.instance_ids("externe", None).await.unwrap().len(), 2);
}
