//! The REST API: API tokens act as a staff account, with the same roles and refusals as the
//! pages; JSON errors with stable codes; the OpenAPI document lists every route. The router
//! in process, on a real SQLite file.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use guichet_connectors::email::RetryPolicy;
use guichet_connectors::provider::Webhooks;
use guichet_engine::Engine;
use guichet_engine::clock::{ManualClock, Timestamp};
use guichet_engine::core::Command;
use guichet_engine::runtime::tokens::NewToken;
use guichet_web::{AppState, LimitSettings, Limits, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

static N: AtomicUsize = AtomicUsize::new(0);
const PASSWORD: &str = "correct horse battery staple";

async fn site() -> (Arc<Engine>, Router) {
    let (engine, app, _, _) = site_with(false, 512).await;
    (engine, app)
}

/// The site, with `tiers-de-confiance` pulling its work when `pull`, working on at most
/// `max_in_flight` requests at once.
async fn site_with(
    pull: bool,
    max_in_flight: usize,
) -> (Arc<Engine>, Router, Arc<ManualClock>, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "guichet-api-{}-{}.db",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
    }
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let engine = Arc::new(
        Engine::open(&format!("sqlite://{}", path.display()), clock.clone())
            .await
            .unwrap(),
    );
    for (_, source) in guichet_definitions::models::ALL {
        engine.deploy(source).await.unwrap();
    }
    for who in [
        "guichet-donnees@hopital.example",
        "juriste@hopital.example",
        "dpo@hopital.example",
    ] {
        engine.set_user(who, PASSWORD, false).await.unwrap();
    }
    let webhooks = pull.then(|| {
        Arc::new(Webhooks {
            engine: engine.clone(),
            providers: std::collections::HashMap::new(),
            pull: vec!["tiers-de-confiance".to_owned()],
            base_url: "https://guichet.institut.example".into(),
            policy: RetryPolicy::default(),
            timeout: std::time::Duration::from_secs(5),
        })
    });
    let app = router(AppState {
        engine: engine.clone(),
        webhooks,
        secure_cookies: false,
        digest_hour: guichet_connectors::email::DIGEST_HOUR,
        max_in_flight,
        limits: Limits::new(&LimitSettings::off()),
    });
    (engine, app, clock, path)
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The code of an API error.
fn code(v: &Value) -> String {
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// Deploys `body` with `token`.
async fn deploy(app: &Router, token: &str, body: Value) -> (StatusCode, Value) {
    call(app, "POST", "/api/v1/definitions", Some(token), Some(body)).await
}

fn intake() -> Value {
    json!({"fields": {
        "titre": "Cohorte", "email": "porteur@labo.example", "organisme": "Labo",
        "type-porteur": "academique", "cadre": "collaboratif", "resume": "R", "donnees": "D"
    }})
}

/// An API token for `email`, whose account is made (not an administrator) if it is new.
async fn token_of(engine: &Engine, email: &str) -> String {
    if !engine
        .users()
        .await
        .unwrap()
        .iter()
        .any(|u| u.email == email)
    {
        engine.set_user(email, PASSWORD, false).await.unwrap();
    }
    engine.create_api_token(email, "script").await.unwrap()
}

/// Submits the standard intake to desk (a) with `token`: the request's id and its first task.
async fn submit(app: &Router, token: &str) -> (String, u64) {
    let (status, created) = call(
        app,
        "POST",
        "/api/v1/desks/interne-decentralise/requests",
        Some(token),
        Some(intake()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        created["id"].as_str().unwrap().to_owned(),
        created["open_tasks"][0]["task"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn a_request_goes_through_the_api_with_the_pages_rules() {
    let (engine, app) = site().await;
    let desk = engine
        .create_api_token("guichet-donnees@hopital.example", "script")
        .await
        .unwrap();
    let jurist = engine
        .create_api_token("juriste@hopital.example", "script")
        .await
        .unwrap();
    let dpo = engine
        .create_api_token("dpo@hopital.example", "script")
        .await
        .unwrap();

    // No token, a forged one: 401 with the stable code.
    let (status, body) = call(&app, "GET", "/api/v1/desks", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let forged = format!("gch_{}", "A".repeat(43));
    assert_eq!(
        call(&app, "GET", "/api/v1/desks", Some(&forged), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    let (status, desks) = call(&app, "GET", "/api/v1/desks", Some(&desk), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(desks.as_array().unwrap().len(), 3);
    let a = desks
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "interne-decentralise")
        .unwrap();
    assert!(
        a["intake"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "cadre" && f["type"] == "choice")
    );

    // An invalid intake: 422 naming the fields, nothing saved.
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/desks/interne-decentralise/requests",
        Some(&desk),
        Some(json!({"fields": {"titre": "T"}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid");
    assert!(body["error"]["fields"]["email"].is_string(), "{body}");
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/desks/nope/requests",
        Some(&desk),
        Some(intake()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    let (status, created) = call(
        &app,
        "POST",
        "/api/v1/desks/interne-decentralise/requests",
        Some(&desk),
        Some(intake()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap().to_owned();
    // The answer says where the request stands, as its reading would.
    assert_eq!(created["status"], "running", "{created}");
    assert_eq!(
        created["open_tasks"][0]["step"], "recevabilite",
        "{created}"
    );
    assert_eq!(created["open_tasks"].as_array().unwrap().len(), 1);

    // The desk's inbox has the admissibility review; the jurist's does not.
    let (_, inbox) = call(&app, "GET", "/api/v1/tasks", Some(&desk), None).await;
    let review = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["request"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(review["step"], "recevabilite");
    let (_, jurist_inbox) = call(&app, "GET", "/api/v1/tasks", Some(&jurist), None).await;
    assert!(jurist_inbox.as_array().unwrap().is_empty());
    let task = format!("/api/v1/tasks/{id}/{}", review["task"]);

    // Outside one's roles, the task does not exist.
    assert_eq!(
        call(&app, "GET", &task, Some(&jurist), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &app,
            "POST",
            &format!("{task}/complete"),
            Some(&jurist),
            Some(json!({"outcome": "recevable"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    let (status, detail) = call(&app, "GET", &task, Some(&desk), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["outcomes"][0]["id"], "recevable");
    assert_eq!(detail["outcomes"][0]["label"], "Recevable");

    // A wrong outcome is refused and changes nothing; the right one moves the request on.
    let (status, body) = call(
        &app,
        "POST",
        &format!("{task}/complete"),
        Some(&desk),
        Some(json!({"outcome": "peut-etre"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid"))
    );
    assert!(
        body["error"]["fields"]["outcome"]
            .as_str()
            .unwrap()
            .contains("recevable")
    );
    let (status, done) = call(
        &app,
        "POST",
        &format!("{task}/complete"),
        Some(&desk),
        Some(json!({"outcome": "recevable"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "completed");
    assert_eq!(
        done["closed_by"], "guichet-donnees@hopital.example",
        "{done}"
    );
    // With where the request now stands: the three feasibility studies, open, the same as a
    // reading of the request says.
    let mut next: Vec<_> = done["request"]["open_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["step"].as_str().unwrap().to_owned())
        .collect();
    next.sort();
    assert_eq!(
        next,
        [
            "faisabilite-juridique",
            "faisabilite-scientifique",
            "faisabilite-technique"
        ]
    );
    assert_eq!(done["request"]["status"], "running");
    let (_, read) = call(
        &app,
        "GET",
        &format!("/api/v1/requests/{id}?history=false"),
        Some(&desk),
        None,
    )
    .await;
    assert_eq!(read["open_tasks"], done["request"]["open_tasks"], "{read}");
    // Twice: a conflict naming who did it.
    let (status, body) = call(
        &app,
        "POST",
        &format!("{task}/complete"),
        Some(&desk),
        Some(json!({"outcome": "recevable"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("guichet-donnees@hopital.example"),
        "{body}"
    );

    // The legal feasibility: claimed by one jurist, the other cannot decide it.
    let (_, inbox) = call(&app, "GET", "/api/v1/tasks", Some(&jurist), None).await;
    let legal = inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["step"] == "faisabilite-juridique")
        .unwrap()
        .clone();
    let legal = format!("/api/v1/tasks/{id}/{}", legal["task"]);
    let (status, claimed) =
        call(&app, "POST", &format!("{legal}/claim"), Some(&jurist), None).await;
    assert_eq!(
        (status, claimed["assignee"].as_str()),
        (StatusCode::OK, Some("juriste@hopital.example"))
    );
    let (status, body) = call(
        &app,
        "POST",
        &format!("{legal}/complete"),
        Some(&dpo),
        Some(json!({"outcome": "favorable", "fields": {"base-legale": "mr-004"}})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // A missing required field: 422 naming it.
    let (status, body) = call(
        &app,
        "POST",
        &format!("{legal}/complete"),
        Some(&jurist),
        Some(json!({"outcome": "favorable"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["fields"]["base-legale"].is_string(), "{body}");
    let (status, _) = call(
        &app,
        "POST",
        &format!("{legal}/complete"),
        Some(&jurist),
        Some(json!({"outcome": "favorable", "fields": {"base-legale": "mr-004"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The request as staff of its desk see it; not to someone without a role on it.
    let (status, req) = call(
        &app,
        "GET",
        &format!("/api/v1/requests/{id}"),
        Some(&desk),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(req["status"], "running");
    assert!(
        req["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "task-completed")
    );
    // For pollers: where it stands, without the history.
    let (status, light) = call(
        &app,
        "GET",
        &format!("/api/v1/requests/{id}?history=false"),
        Some(&desk),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(light["status"], "running");
    assert_eq!(light["open_tasks"], req["open_tasks"]);
    assert!(light.get("history").is_none(), "{light}");
    engine
        .set_user("autre@ailleurs.example", PASSWORD, false)
        .await
        .unwrap();
    let outsider = engine
        .create_api_token("autre@ailleurs.example", "x")
        .await
        .unwrap();
    assert_eq!(
        call(
            &app,
            "GET",
            &format!("/api/v1/requests/{id}"),
            Some(&outsider),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    // A revoked token stops working at once.
    assert_eq!(engine.revoke_api_token(&desk[..12]).await.unwrap(), 1);
    assert_eq!(
        call(&app, "GET", "/api/v1/tasks", Some(&desk), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        engine
            .create_api_token("nobody@example.org", "x")
            .await
            .is_err()
    );
}

/// The served document is the one in `docs/openapi.json` (regenerated with
/// `UPDATE_GOLDENS=1`), and every operation answers its errors in the one JSON shape.
#[tokio::test]
async fn the_openapi_document_is_the_docs_one_and_lists_every_error() {
    let (_, app) = site().await;
    let (status, doc) = call(&app, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let text = guichet_web::openapi_document();
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(&golden, format!("{text}\n")).unwrap();
    }
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&golden).unwrap()).unwrap();
    assert_eq!(
        doc, kept,
        "docs/openapi.json is not the served document: run UPDATE_GOLDENS=1 cargo test -p guichet-web --test api"
    );
    // Every reference leads to a schema of the document.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{name} is referenced, not defined"
        );
    }
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            for status in ["401", "403", "429", "500", "503"] {
                assert_eq!(
                    responses[status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
            let ok = responses
                .iter()
                .find(|(s, _)| s.starts_with('2'))
                .unwrap_or_else(|| panic!("{method} {path}: no success"));
            assert!(
                ok.1["content"].is_object(),
                "{method} {path}: success without content"
            );
            if path.contains('{') {
                assert!(responses.contains_key("404"), "{method} {path}");
                assert!(responses.contains_key("400"), "{method} {path}");
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{method} {path} {status}");
                }
            }
        }
    }
    assert_eq!(operations, 20);
}

/// Every failure under `/api/` is the JSON error, whatever answers it; and the token is
/// checked before the path, the query or the body are read.
#[tokio::test]
async fn every_failure_is_the_json_error_and_the_token_comes_first() {
    let (engine, app) = site().await;
    let token = token_of(&engine, "lecteur@hopital.example").await;
    // No token: 401, however malformed the rest.
    for (method, uri, body) in [
        ("POST", "/api/v1/tasks/x/not-a-number/claim", None),
        (
            "POST",
            "/api/v1/requests/x/withdraw",
            Some(json!(["not", "an", "object"])),
        ),
        ("GET", "/api/v1/tasks?limit=many", None),
        ("GET", "/api/v1/no-such-route", None),
    ] {
        let (status, v) = call(&app, method, uri, None, body).await;
        assert_eq!(
            (status, code(&v).as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{uri}"
        );
    }
    // With one: each error in its own words.
    let t = Some(token.as_str());
    let (status, v) = call(&app, "POST", "/api/v1/tasks/x/not-a-number/claim", t, None).await;
    assert_eq!(
        (status, code(&v).as_str()),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    let (status, v) = call(&app, "GET", "/api/v1/tasks?limit=many", t, None).await;
    assert_eq!(
        (status, code(&v).as_str()),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    let (status, v) = call(&app, "GET", "/api/v1/tasks?limit=5000", t, None).await;
    assert_eq!(
        (status, code(&v).as_str()),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("1000"));
    let (status, v) = call(&app, "GET", "/api/v1/no-such-route", t, None).await;
    assert_eq!(
        (status, code(&v).as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, v) = call(
        &app,
        "POST",
        "/api/v1/requests/x/withdraw",
        t,
        Some(json!([1])),
    )
    .await;
    assert_eq!(
        (status, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
    );
    // A body that is not JSON: 415 (JSON routes) in the API's shape.
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/preferences")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("digest"))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(code(&v), "unsupported_media_type");
    // The same on a route that also takes documents.
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/desks/interne-decentralise/requests")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("titre=Cohorte"))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A method the route does not take: 405, its Allow header kept.
    let req = Request::builder()
        .method("DELETE")
        .uri("/api/v1/tasks")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.headers().get(header::ALLOW).is_some());
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(code(&v), "method_not_allowed");
}

#[tokio::test]
async fn a_provider_pulls_its_work_with_a_lock_and_a_fencing_attempt() {
    let (engine, app, clock, _) = site_with(true, 512).await;
    let provider = engine
        .create_provider_token("tiers-de-confiance", NewToken::named("worker"))
        .await
        .unwrap();
    let staff = engine
        .create_api_token("juriste@hopital.example", "x")
        .await
        .unwrap();
    let intake: guichet_engine::core::Fields = serde_json::from_value(json!({
        "titre": "Étude", "email": "p@x.example", "organisme": "O", "cadre": "autre",
        "resume": "R", "donnees": "D"
    }))
    .unwrap();
    let id = engine.start("externe", &intake).await.unwrap();
    let review = engine.tasks(Some(&id), true).await.unwrap()[0].seq;
    engine
        .execute(
            &id,
            Command::Complete {
                task: u32::try_from(review).unwrap(),
                user: "referent-donnees@institut.example".into(),
                outcome: Some("recevable".into()),
                fields: Default::default(),
                comment: None,
            },
        )
        .await
        .unwrap();
    // The webhook dispatcher leaves a pull provider's calls alone.
    let pushed = engine
        .claim_outbox_of(
            engine.now(),
            1_000,
            10,
            "webhook",
            guichet_engine::runtime::outbox::Providers::Except(&["tiers-de-confiance".to_owned()]),
            guichet_engine::runtime::outbox::Holder::ThisNode,
        )
        .await
        .unwrap();
    assert!(pushed.is_empty(), "{pushed:?}");
    let fetch = json!({"provider": "tiers-de-confiance", "max": 5, "lock_seconds": 60});
    // Only the provider's own account (or an administrator) fetches; only pull providers.
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/external-tasks/fetch-and-lock",
        Some(&staff),
        Some(fetch.clone()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/external-tasks/fetch-and-lock",
        Some(&provider),
        Some(json!({"provider": "autre"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, work) = call(
        &app,
        "POST",
        "/api/v1/external-tasks/fetch-and-lock",
        Some(&provider),
        Some(fetch.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{work}");
    let work = work.as_array().unwrap().clone();
    assert_eq!(work.len(), 1, "{work:?}");
    assert_eq!(work[0]["step"], "conformite");
    assert_eq!(work[0]["request"], id.as_str());
    assert!(
        work[0]["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "conforme")
    );
    let first = work[0]["attempt"].as_i64().unwrap();
    let task = work[0]["id"].as_str().unwrap().to_owned();
    // Locked: nobody else gets it meanwhile.
    let (_, again) = call(
        &app,
        "POST",
        "/api/v1/external-tasks/fetch-and-lock",
        Some(&provider),
        Some(fetch.clone()),
    )
    .await;
    assert!(again.as_array().unwrap().is_empty());

    // The lock runs out; the work is fetched again with a new attempt; the old holder's late
    // answer is refused and changes nothing.
    clock.set(Timestamp(engine.now().0 + 61_000));
    let (_, retaken) = call(
        &app,
        "POST",
        "/api/v1/external-tasks/fetch-and-lock",
        Some(&provider),
        Some(fetch.clone()),
    )
    .await;
    let second = retaken[0]["attempt"].as_i64().unwrap();
    assert!(second > first);
    let complete = format!("/api/v1/external-tasks/{task}/complete");
    let (status, body) = call(
        &app,
        "POST",
        &complete,
        Some(&provider),
        Some(json!({"provider": "tiers-de-confiance", "attempt": first, "outcome": "conforme"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict")),
        "{body}"
    );
    let (_, inst) = engine.instance(&id).await.unwrap();
    assert!(
        !inst.data.contains_key("conformite"),
        "a late answer changed the request"
    );
    // A report named in the JSON without its file: refused.
    let report: &[u8] = b"%PDF-1.5\n% rapport de conformite\n%%EOF\n";
    let (status, body) = call(
        &app,
        "POST",
        &complete,
        Some(&provider),
        Some(json!({"provider": "tiers-de-confiance", "attempt": second, "outcome": "conforme",
                    "fields": {"rapport-pdf": {"sha256": "d".repeat(64), "name": "r.pdf", "size": 1, "type": "application/pdf"}}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // The holder of the lock answers, its report attached; the step moves on; answering
    // twice is a conflict.
    let (status, body) = call_multipart(
        &app,
        &complete,
        &provider,
        json!({"provider": "tiers-de-confiance", "attempt": second, "outcome": "conforme"}),
        &[("rapport-pdf", "rapport.pdf", report)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, inst) = engine.instance(&id).await.unwrap();
    assert_eq!(inst.data["conformite"].outcome.as_deref(), Some("conforme"));
    assert_eq!(
        inst.data["conformite"].fields["rapport-pdf"]["type"],
        "application/pdf"
    );
    let (status, _) = call(
        &app,
        "POST",
        &complete,
        Some(&provider),
        Some(json!({"provider": "tiers-de-confiance", "attempt": second, "outcome": "conforme"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The service account cannot sign in to the pages.
    assert!(
        engine
            .login("provider:tiers-de-confiance", "!")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn an_account_chooses_a_daily_digest_through_the_api() {
    let (engine, app) = site().await;
    let jurist = engine
        .create_api_token("juriste@hopital.example", "script")
        .await
        .unwrap();
    assert_eq!(
        call(&app, "GET", "/api/v1/preferences", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, p) = call(&app, "GET", "/api/v1/preferences", Some(&jurist), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        p,
        json!({"email": "juriste@hopital.example", "digest": false, "language": "fr"})
    );
    let (status, e) = call(
        &app,
        "POST",
        "/api/v1/preferences",
        Some(&jurist),
        Some(json!({"digest": true, "language": "de"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["error"]["code"], "invalid");
    assert!(e["error"]["fields"]["language"].is_string(), "{e}");
    let (status, p) = call(
        &app,
        "POST",
        "/api/v1/preferences",
        Some(&jurist),
        Some(json!({"digest": true, "language": "en"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        p,
        json!({"email": "juriste@hopital.example", "digest": true, "language": "en"})
    );
    assert!(
        engine
            .mail_preference("juriste@hopital.example")
            .await
            .unwrap()
            .digest
    );
}

#[tokio::test]
async fn over_its_limit_a_node_refuses_new_work_but_takes_decisions() {
    // A limit of 0: every request that is not exempt finds the node at its limit.
    let (engine, app, _, _) = site_with(false, 0).await;
    let desk = engine
        .create_api_token("guichet-donnees@hopital.example", "script")
        .await
        .unwrap();
    let id = engine
        .start(
            "interne-decentralise",
            &serde_json::from_value(intake()["fields"].clone()).unwrap(),
        )
        .await
        .unwrap();
    let raw = |method: &str, uri: &str, body: Option<Value>| {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {desk}"));
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let req = req.body(body).unwrap();
        let app = app.clone();
        async move { app.oneshot(req).await.unwrap() }
    };
    // New work and reads: 503 with Retry-After, a JSON error under /api/, nothing saved.
    let r = raw(
        "POST",
        "/api/v1/desks/interne-decentralise/requests",
        Some(intake()),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()[header::RETRY_AFTER], "5");
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(
        engine.requests(None, None, 100).await.unwrap().len(),
        1,
        "only the request started before"
    );
    let r = raw("GET", "/desks/interne-decentralise", None).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()[header::RETRY_AFTER], "5");
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&bytes).contains("Service surchargé"));
    // Monitoring still answers.
    assert_eq!(raw("GET", "/healthz", None).await.status(), StatusCode::OK);
    assert_eq!(raw("GET", "/metrics", None).await.status(), StatusCode::OK);
    // A decision on existing work is taken: the request moves on.
    let (_, inst) = engine.instance(&id).await.unwrap();
    let task = inst.tasks.values().next().unwrap().seq;
    let r = raw(
        "POST",
        &format!("/api/v1/tasks/{id}/{task}/complete"),
        Some(json!({"outcome": "recevable"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (_, inst) = engine.instance(&id).await.unwrap();
    assert!(inst.tasks.values().all(|t| t.seq != task));
}

#[tokio::test]
async fn requests_leave_the_count_in_flight_when_they_end() {
    // One at a time: if an ended request stayed counted, the second would be refused.
    let (engine, app, _, _) = site_with(false, 1).await;
    let desk = engine
        .create_api_token("guichet-donnees@hopital.example", "script")
        .await
        .unwrap();
    for _ in 0..3 {
        let (status, _) = call(&app, "GET", "/api/v1/desks", Some(&desk), None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = call(&app, "GET", "/api/v1/nothing-here", Some(&desk), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn an_internal_fault_is_a_500_with_an_incident_number_never_a_refusal() {
    let (engine, app, _, path) = site_with(false, 512).await;
    let desk = engine
        .create_api_token("guichet-donnees@hopital.example", "script")
        .await
        .unwrap();
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/desks/interne-decentralise/requests",
        Some(&desk),
        Some(intake()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    // The request's stored state damaged behind the engine's back (a bug or tampering).
    let damaged = rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE instances SET state = 'not a state' WHERE id = ?1",
            [&id],
        )
        .unwrap();
    assert_eq!(damaged, 1);
    let (status, body) = call(
        &app,
        "GET",
        &format!("/api/v1/requests/{id}"),
        Some(&desk),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"]["code"], "internal");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("incident "), "{message}");
    // The fault's own words stay in the log.
    assert!(
        !message.contains("corrupt") && !message.contains("expected"),
        "{message}"
    );
}

#[tokio::test]
async fn the_api_reads_the_whole_request_answers_waits_and_withdraws_with_role_checks() {
    let (engine, app) = site().await;
    let desk = token_of(&engine, "guichet-donnees@hopital.example").await;
    let jurist = token_of(&engine, "juriste@hopital.example").await;
    engine
        .set_user("admin@guichet.example", PASSWORD, true)
        .await
        .unwrap();
    let admin = token_of(&engine, "admin@guichet.example").await;
    let outsider = token_of(&engine, "autre@ailleurs.example").await;
    let (id, task) = submit(&app, &desk).await;

    // Reviewers see what the sponsor submitted: labels, types, typed values.
    let (status, request) = call(
        &app,
        "GET",
        &format!("/api/v1/requests/{id}"),
        Some(&desk),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let cadre = request["intake"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "cadre")
        .unwrap();
    assert_eq!(cadre["type"], "choice");
    assert_eq!(cadre["value"], "collaboratif");
    assert_eq!(cadre["option_label"], "Projet collaboratif");
    assert_eq!(cadre["label"], "Cadre du projet");
    assert_eq!(request["timeline"][0]["kind"], "submitted", "{request}");

    // Nothing waits for the sponsor's answer yet: refused, nothing kept for later.
    let answer = json!({"fields": {"reponse": "Variables précisées."}});
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/v1/requests/{id}/events/complement-recu"),
        Some(&admin),
        Some(answer.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, inst) = engine.instance(&id).await.unwrap();
    assert!(inst.buffered.is_empty());
    // An event no step waits for is not found.
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/requests/{id}/events/nope"),
        Some(&admin),
        Some(answer.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The desk asks for more information, with a comment.
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/v1/tasks/{id}/{task}/complete"),
        Some(&desk),
        Some(json!({"outcome": "complement", "comment": "Précisez les variables."})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The wait is `from="demandeur"`: staff of another role may not answer for the sponsor.
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/v1/requests/{id}/events/complement-recu"),
        Some(&desk),
        Some(answer.clone()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{body}"
    );
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/requests/{id}/events/complement-recu"),
        Some(&jurist),
        Some(answer.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An account that may not see the request: not found, as for any request of others.
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/requests/{id}/events/complement-recu"),
        Some(&outsider),
        Some(answer.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The wait's form is checked.
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/v1/requests/{id}/events/complement-recu"),
        Some(&admin),
        Some(json!({"fields": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["fields"]["reponse"].is_string(), "{body}");
    // An administrator answers (recorded as themselves), with a key: the desk examines it
    // again.
    let uri = format!("/api/v1/requests/{id}/events/complement-recu");
    let (status, replayed, body) = post_with_key(&app, &uri, &admin, "ans-1", &answer).await;
    assert_eq!((status, replayed), (StatusCode::OK, false), "{body}");
    assert_eq!(body["open_tasks"][0]["step"], "recevabilite", "{body}");
    let history = engine.history(&id).await.unwrap().len();
    // Sent again with its key (its answer lost): the same answer, nothing changed.
    let (status, replayed, again) = post_with_key(&app, &uri, &admin, "ans-1", &answer).await;
    assert_eq!((status, replayed), (StatusCode::OK, true), "{again}");
    assert_eq!(again["open_tasks"], body["open_tasks"]);
    assert_eq!(engine.history(&id).await.unwrap().len(), history);
    // Sent again without it: another answer, and nothing waits for one.
    let (status, refused) = call(&app, "POST", &uri, Some(&admin), Some(answer.clone())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(engine.history(&id).await.unwrap().len(), history);
    let (_, request) = call(
        &app,
        "GET",
        &format!("/api/v1/requests/{id}"),
        Some(&desk),
        None,
    )
    .await;
    let timeline = request["timeline"].as_array().unwrap();
    let asked = timeline
        .iter()
        .find(|e| e["kind"] == "completed" && e["step"] == "recevabilite")
        .unwrap();
    assert_eq!(asked["comment"], "Précisez les variables.");
    assert_eq!(asked["outcome_label"], "Demander un complément");
    assert_eq!(asked["actor"]["id"], "guichet-donnees@hopital.example");
    assert!(
        timeline
            .iter()
            .any(|e| e["kind"] == "answered" && e["actor"]["id"] == "admin@guichet.example"),
        "{request}"
    );
    let answered = request["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "reponse-complement")
        .unwrap();
    assert_eq!(answered["fields"][0]["value"], "Variables précisées.");

    // Withdrawal: the desk's staff may, others may not see the request at all.
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/requests/{id}/withdraw"),
        Some(&outsider),
        Some(json!({"reason": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/v1/requests/{id}/withdraw"),
        Some(&desk),
        Some(json!({"reason": "Le porteur a abandonné le projet."})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert!(body["open_tasks"].as_array().unwrap().is_empty());
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/v1/requests/{id}/withdraw"),
        Some(&desk),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("refused"))
    );
}

#[tokio::test]
async fn an_unfavourable_opinion_needs_a_comment() {
    let (engine, app) = site().await;
    let desk = token_of(&engine, "guichet-donnees@hopital.example").await;
    let jurist = token_of(&engine, "juriste@hopital.example").await;
    let (id, task) = submit(&app, &desk).await;
    let (_, body) = call(
        &app,
        "POST",
        &format!("/api/v1/tasks/{id}/{task}/complete"),
        Some(&desk),
        Some(json!({"outcome": "recevable"})),
    )
    .await;
    let legal = body["request"]["open_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["step"] == "faisabilite-juridique")
        .unwrap()["task"]
        .as_u64()
        .unwrap();
    let decide = |comment: Option<&str>| {
        let mut b = json!({"outcome": "defavorable", "fields": {"base-legale": "mr-004"}});
        if let Some(c) = comment {
            b["comment"] = c.into();
        }
        b
    };
    for missing in [None, Some("   ")] {
        let (status, body) = call(
            &app,
            "POST",
            &format!("/api/v1/tasks/{id}/{legal}/complete"),
            Some(&jurist),
            Some(decide(missing)),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["fields"]["comment"]
                .as_str()
                .unwrap()
                .contains("required with the outcome `defavorable`"),
            "{body}"
        );
    }
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/v1/tasks/{id}/{legal}/complete"),
        Some(&jurist),
        Some(decide(Some("Aucune base légale pour ces finalités."))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, inst) = engine.instance(&id).await.unwrap();
    assert_eq!(
        inst.data["faisabilite-juridique"].comment.as_deref(),
        Some("Aucune base légale pour ces finalités.")
    );
}

/// A multipart call: the JSON `body` part, then files (field, file name, content).
async fn call_multipart(
    app: &Router,
    uri: &str,
    token: &str,
    body: Value,
    files: &[(&str, &str, &[u8])],
) -> (StatusCode, Value) {
    let boundary = "----guichet-api-boundary-x1y2z3";
    let mut raw = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"body\"\r\nContent-Type: application/json\r\n\r\n{body}\r\n"
    )
    .into_bytes();
    for (field, name, content) in files {
        raw.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n\r\n"
            )
            .as_bytes(),
        );
        raw.extend_from_slice(content);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(raw))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn documents_go_through_the_api_with_the_requests_rules() {
    let (engine, app) = site().await;
    let desk = token_of(&engine, "guichet-donnees@hopital.example").await;
    let outsider = token_of(&engine, "autre@ailleurs.example").await;
    let pdf: &[u8] = b"%PDF-1.4\n% protocole\n%%EOF\n";
    // A text file where a PDF is asked: 422 naming the field, nothing saved.
    let (status, body) = call_multipart(
        &app,
        "/api/v1/desks/interne-decentralise/requests",
        &desk,
        intake(),
        &[("protocole", "protocole.pdf", b"just text")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["fields"]["protocole"]
            .as_str()
            .unwrap()
            .contains("text/plain is not accepted"),
        "{body}"
    );
    // A document named in the JSON but never sent: refused, never recorded without its file.
    let mut forged = intake();
    forged["fields"]["protocole"] =
        json!({"sha256": "c".repeat(64), "name": "x.pdf", "size": 10, "type": "application/pdf"});
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/desks/interne-decentralise/requests",
        Some(&desk),
        Some(forged),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["fields"]["protocole"].is_string(), "{body}");
    let (status, created) = call_multipart(
        &app,
        "/api/v1/desks/interne-decentralise/requests",
        &desk,
        intake(),
        &[("protocole", "protocole.pdf", pdf)],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, request) = call(
        &app,
        "GET",
        &format!("/api/v1/requests/{id}"),
        Some(&desk),
        None,
    )
    .await;
    let protocol = request["intake"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "protocole")
        .unwrap()
        .clone();
    assert_eq!(protocol["type"], "file");
    assert_eq!(protocol["value"]["type"], "application/pdf");
    assert_eq!(protocol["value"]["size"], pdf.len());
    let sha = protocol["value"]["sha256"].as_str().unwrap().to_owned();
    let get = |token: String| {
        let app = app.clone();
        let uri = format!("/api/v1/requests/{id}/documents/{sha}");
        async move {
            let req = Request::builder()
                .uri(uri)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let disposition = resp
                .headers()
                .get(header::CONTENT_DISPOSITION)
                .map(|v| v.to_str().unwrap().to_owned());
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, disposition, bytes.to_vec())
        }
    };
    let (status, disposition, bytes) = get(desk.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, pdf);
    assert!(disposition.unwrap().starts_with("attachment;"));
    assert_eq!(get(outsider).await.0, StatusCode::NOT_FOUND);
}

/// Submits `body` to desk (a) with `token` and an `Idempotency-Key`: the status, whether the
/// answer says it is a replay, and the body.
async fn submit_with_key(
    app: &Router,
    token: &str,
    key: &str,
    body: &Value,
) -> (StatusCode, bool, Value) {
    let uri = "/api/v1/desks/interne-decentralise/requests";
    post_with_key(app, uri, token, key, body).await
}

/// Posts `body` to `uri` with `token` and an `Idempotency-Key`: the status, whether the
/// answer says it is a replay, and the body.
async fn post_with_key(
    app: &Router,
    uri: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> (StatusCode, bool, Value) {
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let replayed = resp
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        replayed,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_submission_retried_with_its_idempotency_key_returns_the_first_answer() {
    let (engine, app) = site().await;
    let token = token_of(&engine, "guichet-donnees@hopital.example").await;
    let (status, replayed, first) = submit_with_key(&app, &token, "3f6c-retry", &intake()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{first}");
    // Sent again (its answer lost): the same request, said to be a replay, standing as now.
    let (status, replayed, again) = submit_with_key(&app, &token, "3f6c-retry", &intake()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["reference"], first["reference"]);
    assert_eq!(again["open_tasks"], first["open_tasks"]);
    // Another account's key of the same text is its own.
    let other = token_of(&engine, "juriste@hopital.example").await;
    let (status, replayed, theirs) = submit_with_key(&app, &other, "3f6c-retry", &intake()).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{theirs}");
    assert_ne!(theirs["id"], first["id"]);
    // The key with something else: refused, naming the first request; nothing started.
    let mut changed = intake();
    changed["fields"]["titre"] = json!("Another project");
    let (status, _, refused) = submit_with_key(&app, &token, "3f6c-retry", &changed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");
    let reference = first["reference"].as_str().unwrap();
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains(reference),
        "{refused}"
    );
    // Keys that are not keys: refused before anything is read.
    for bad in ["two words", &"k".repeat(256)] {
        let (status, _, refused) = submit_with_key(&app, &token, bad, &intake()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {refused}");
        assert_eq!(refused["error"]["code"], "invalid_idempotency_key");
    }
    let requests = engine.tasks(None, false).await.unwrap();
    let mut ids: Vec<_> = requests.iter().map(|t| t.instance.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "one request per account's key: {ids:?}");
}

/// A token does what its scopes allow, whatever its account may, and nothing once expired;
/// each refusal says what is missing before anything is read.
#[tokio::test]
async fn a_token_acts_within_its_scopes_and_until_it_expires() {
    use guichet_engine::runtime::tokens::Scopes;
    let (engine, app, clock, _) = site_with(false, 512).await;
    let clerk = "guichet-donnees@hopital.example";
    let issue = |scope: &str, days: Option<i64>| {
        let engine = engine.clone();
        let new = NewToken {
            name: scope.to_owned(),
            scopes: Scopes::parse(scope).unwrap(),
            days,
        };
        async move { engine.issue_api_token(clerk, new).await.unwrap() }
    };
    let (reader, submitter, worker) = (
        issue("read", Some(30)).await,
        issue("submit", None).await,
        issue("read,act", Some(90)).await,
    );
    // The portal's token submits, and reads nothing.
    let (id, task) = submit(&app, &submitter).await;
    let (status, refused) = call(
        &app,
        "GET",
        &format!("/api/v1/requests/{id}"),
        Some(&submitter),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs the scope `read`"),
        "{refused}"
    );
    // The reader reads and cannot submit nor act.
    let (status, _) = call(
        &app,
        "GET",
        &format!("/api/v1/requests/{id}"),
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, refused) = call(
        &app,
        "POST",
        "/api/v1/desks/interne-decentralise/requests",
        Some(&reader),
        Some(intake()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "forbidden");
    let claim = format!("/api/v1/tasks/{id}/{task}/claim");
    let (status, _) = call(&app, "POST", &claim, Some(&reader), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Acting needs `act`.
    let (status, claimed) = call(&app, "POST", &claim, Some(&worker), None).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    // Past its 30 days the reader is told it expired; the others still work.
    clock.set(Timestamp(engine.now().0 + 31 * 86_400_000));
    let (status, expired) = call(&app, "GET", "/api/v1/tasks", Some(&reader), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{expired}");
    assert!(
        expired["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired on"),
        "{expired}"
    );
    let (status, _) = call(&app, "GET", "/api/v1/tasks", Some(&worker), None).await;
    assert_eq!(status, StatusCode::OK);
    clock.set(Timestamp(engine.now().0 + 60 * 86_400_000));
    let (status, _) = call(&app, "GET", "/api/v1/tasks", Some(&worker), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    submit(&app, &submitter).await;
    // The listing shows what each may do and until when.
    let listed = engine.api_tokens().await.unwrap();
    let scopes: Vec<_> = listed
        .iter()
        .map(|t| (t.scopes.to_string(), t.expires_at.is_some()))
        .collect();
    assert_eq!(
        scopes,
        [
            ("read".into(), true),
            ("submit".into(), false),
            ("read,act".into(), true)
        ]
    );
}

/// A client runs a desk without the pages: it lists the definitions, deploys one (an
/// administrator's token of the `deploy` scope; errors come back as the checker's
/// diagnostics), draws it, and reads the indicators.
#[tokio::test]
async fn definitions_are_listed_deployed_and_drawn_and_indicators_read_through_the_api() {
    use guichet_engine::runtime::tokens::Scopes;
    let (engine, app) = site().await;
    let admin = "admin@hopital.example";
    engine.set_user(admin, PASSWORD, true).await.unwrap();
    let issue = |email: &'static str, scope: &str| {
        let engine = engine.clone();
        let new = NewToken {
            name: scope.to_owned(),
            scopes: Scopes::parse(scope).unwrap(),
            days: None,
        };
        async move { engine.issue_api_token(email, new).await.unwrap() }
    };
    let deployer = issue(admin, "read,deploy").await;
    let admin_acting = issue(admin, "read,submit,act").await;
    let clerk = token_of(&engine, "guichet-donnees@hopital.example").await;

    let (status, revisions) = call(&app, "GET", "/api/v1/definitions", Some(&clerk), None).await;
    assert_eq!(status, StatusCode::OK);
    let revisions = revisions.as_array().unwrap().clone();
    assert!(
        revisions
            .iter()
            .any(|r| r["desk"] == "interne-decentralise" && r["current"] == true)
    );

    // Deploying: the scope, then the right, then the source.
    let source = include_str!("../../definitions/models/interne-decentralise.kdl")
        .replace("version=1", "version=2");
    let body = json!({ "source": source });
    let (status, v) = deploy(&app, &admin_acting, body.clone()).await;
    assert_eq!(
        (status, code(&v).as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("deploy"),
        "{v}"
    );
    let clerk_deploy = issue("guichet-donnees@hopital.example", "deploy").await;
    let (status, v) = deploy(&app, &clerk_deploy, body.clone()).await;
    assert_eq!(
        (status, code(&v).as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("administrators"),
        "{v}"
    );
    let broken = json!({ "source": "process \"x\" {\n    task \"a\" role=\"nobody\"\n}\n" });
    let (status, v) = deploy(&app, &deployer, broken).await;
    assert_eq!(
        (status, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_definition"),
        "{v}"
    );
    let diagnostics = v["error"]["diagnostics"].as_array().unwrap();
    assert!(!diagnostics.is_empty());
    assert!(
        diagnostics
            .iter()
            .all(|d| d["line"].as_u64().is_some() && d["code"].is_string()),
        "{v}"
    );
    let (status, deployed) = deploy(&app, &deployer, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{deployed}");
    assert_eq!(
        (deployed["desk"].as_str(), deployed["new"].as_bool()),
        (Some("interne-decentralise"), Some(true))
    );
    let revision = deployed["revision"].as_i64().unwrap();
    // The same source again: its revision, nothing new.
    let (status, again) = deploy(&app, &deployer, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (again["revision"].as_i64(), again["new"].as_bool()),
        (Some(revision), Some(false))
    );
    let (_, revisions) = call(&app, "GET", "/api/v1/definitions", Some(&clerk), None).await;
    let current: Vec<_> = revisions
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["desk"] == "interne-decentralise")
        .map(|r| {
            (
                r["revision"].as_i64().unwrap(),
                r["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(current[0], (revision, true));
    assert!(current[1..].iter().all(|(_, c)| !c));

    // Drawings, in each format with its media type.
    for (format, media, start) in [
        ("svg", "image/svg+xml", "<svg"),
        ("dot", "text/vnd.graphviz", "digraph"),
        ("mermaid", "text/plain", "flowchart"),
    ] {
        let req = Request::builder()
            .uri(format!(
                "/api/v1/desks/interne-decentralise/graph?format={format}"
            ))
            .header(header::AUTHORIZATION, format!("Bearer {clerk}"))
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{format}");
        let ct = resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ct.starts_with(media), "{format}: {ct}");
        let text = String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        assert!(
            text.trim_start().contains(start),
            "{format}: {}",
            &text[..text.len().min(200)]
        );
    }
    let (status, v) = call(
        &app,
        "GET",
        "/api/v1/desks/interne-decentralise/graph?format=png",
        Some(&clerk),
        None,
    )
    .await;
    assert_eq!(
        (status, code(&v).as_str()),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    let (status, _) = call(
        &app,
        "GET",
        "/api/v1/desks/nulle-part/graph",
        Some(&clerk),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Indicators: administrators only; a request that ended counts.
    let (status, v) = call(&app, "GET", "/api/v1/indicators", Some(&clerk), None).await;
    assert_eq!(
        (status, code(&v).as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (id, _) = submit(&app, &clerk).await;
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/requests/{id}/withdraw"),
        Some(&clerk),
        Some(json!({"reason": "test"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    engine.fold_all_indicators().await.unwrap();
    let (status, v) = call(
        &app,
        "GET",
        "/api/v1/indicators?desks=interne-decentralise&compare=version",
        Some(&deployer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    for part in ["indicators", "lead_times", "steps"] {
        assert!(v[part].is_array(), "{part}: {v}");
    }
    assert!(
        v["indicators"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["desk"] == "interne-decentralise")
    );
    let (status, v) = call(
        &app,
        "GET",
        "/api/v1/indicators?from=hier",
        Some(&deployer),
        None,
    )
    .await;
    assert_eq!(
        (status, code(&v).as_str()),
        (StatusCode::BAD_REQUEST, "invalid")
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("YYYY-MM-DD")
    );
    let (status, _) = call(
        &app,
        "GET",
        "/api/v1/indicators?desks=nulle-part",
        Some(&deployer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
