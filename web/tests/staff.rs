//! Staff sign in, see the tasks of their roles, claim and decide them; nobody sees or acts
//! on a task outside their roles. The router in process, on a real SQLite file.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use guichet_engine::Engine;
use guichet_engine::clock::{ManualClock, Timestamp};
use guichet_engine::core::Fields;
use guichet_web::{AppState, LimitSettings, Limits, router};
use http_body_util::BodyExt;
use tower::ServiceExt;

static N: AtomicUsize = AtomicUsize::new(0);
const PASSWORD: &str = "correct horse battery staple";

struct Site {
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    app: Router,
}

async fn site() -> Site {
    let path = std::env::temp_dir().join(format!(
        "guichet-staff-{}-{}.db",
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
    let source = guichet_definitions::models::source("interne-decentralise").unwrap();
    engine.deploy(source).await.unwrap();
    // A member of the desk's data unit, and a jurist.
    engine
        .set_user("guichet-donnees@hopital.example", PASSWORD, false)
        .await
        .unwrap();
    engine
        .set_user("juriste@hopital.example", PASSWORD, false)
        .await
        .unwrap();
    let app = router(AppState {
        engine: engine.clone(),
        webhooks: None,
        secure_cookies: true,
        digest_hour: guichet_connectors::email::DIGEST_HOUR,
        max_in_flight: 512,
        limits: Limits::new(&LimitSettings::off()),
    });
    Site { engine, clock, app }
}

struct Reply {
    status: StatusCode,
    location: Option<String>,
    cookie: Option<String>,
    body: String,
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    form: Option<String>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        // A session's token, or a whole `name=value` cookie.
        let c = if c.contains('=') {
            c.to_owned()
        } else {
            format!("guichet_session={c}")
        };
        req = req.header(header::COOKIE, c);
    }
    let body = match form {
        Some(f) => {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(f)
        }
        None => Body::empty(),
    };
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        location,
        cookie,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
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

/// Creates the administrator `admin@hopital.example`.
async fn add_admin(site: &Site) {
    site.engine
        .set_user("admin@hopital.example", PASSWORD, true)
        .await
        .unwrap();
}

/// Posts the sign-in form as a browser does: the page first (its form's token and the
/// cookie paired with it), then the form.
async fn post_login(app: &Router, email: &str, password: &str) -> Reply {
    let page = call(app, "GET", "/login", None, None).await;
    let pair = page.cookie.expect("the sign-in page sets its cookie");
    assert!(
        pair.contains("HttpOnly") && pair.contains("SameSite=Strict"),
        "{pair}"
    );
    let cookie = pair.split(';').next().unwrap().to_owned();
    call(
        app,
        "POST",
        "/login",
        Some(&cookie),
        Some(format!(
            "_csrf={}&email={}&password={}",
            csrf(&page.body),
            enc(email),
            enc(password)
        )),
    )
    .await
}

async fn sign_in(site: &Site, email: &str) -> String {
    let r = post_login(&site.app, email, PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/inbox"));
    let cookie = r.cookie.unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Secure"),
        "{cookie}"
    );
    cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("guichet_session=")
        .to_owned()
}

fn csrf(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").unwrap() + "name=\"_csrf\" value=\"".len();
    html[at..].chars().take_while(|c| *c != '"').collect()
}

async fn a_request(site: &Site) -> (String, u32) {
    let intake: Fields = serde_json::from_value(serde_json::json!({
        "titre": "Cohorte", "email": "p@x.example", "organisme": "O", "type-porteur": "academique",
        "cadre": "collaboratif", "resume": "R", "donnees": "D"
    }))
    .unwrap();
    let id = site
        .engine
        .start("interne-decentralise", &intake)
        .await
        .unwrap();
    let seq = site.engine.tasks(Some(&id), true).await.unwrap()[0].seq;
    (id, u32::try_from(seq).unwrap())
}

#[tokio::test]
async fn signing_in_and_out() {
    let site = site().await;
    // Wrong password, unknown account: the same answer.
    let bad = post_login(
        &site.app,
        "guichet-donnees@hopital.example",
        "wrong password!",
    )
    .await;
    let unknown = post_login(&site.app, "nobody@hopital.example", PASSWORD).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(bad.cookie.is_none() && unknown.cookie.is_none());
    // A sign-in form posted from elsewhere (no cookie paired with its token, or another's)
    // signs nobody in, even with the right password: the page again, with a fresh pair.
    add_admin(&site).await;
    let good = format!("email=admin%40hopital.example&password={}", enc(PASSWORD));
    for (cookie, form) in [
        (None, good.clone()),
        (
            Some("guichet_login=forged"),
            format!("_csrf=forged-too&{good}"),
        ),
        (Some("guichet_login=abc"), format!("_csrf=abd&{good}")),
    ] {
        let r = call(&site.app, "POST", "/login", cookie, Some(form)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert!(r.body.contains("a expiré"), "{}", r.body);
        assert!(r.cookie.unwrap().starts_with("guichet_login="));
    }
    // Without a session, the inbox sends to the login page.
    assert_eq!(
        call(&site.app, "GET", "/inbox", None, None)
            .await
            .location
            .as_deref(),
        Some("/login")
    );
    assert_eq!(
        call(&site.app, "GET", "/inbox", Some("f00d"), None)
            .await
            .location
            .as_deref(),
        Some("/login")
    );
    // Each login makes a new session.
    let a = sign_in(&site, "guichet-donnees@hopital.example").await;
    let b = sign_in(&site, "guichet-donnees@hopital.example").await;
    assert_ne!(a, b);
    let inbox = call(&site.app, "GET", "/inbox", Some(&a), None).await;
    assert_eq!(inbox.status, StatusCode::OK);
    // Logout ends the session on the server, with the page's token or without it (the
    // cookie cleared and the session kept would leave it usable by whoever copied it).
    let token = csrf(&inbox.body);
    let out = call(
        &site.app,
        "POST",
        "/logout",
        Some(&a),
        Some(format!("_csrf={token}")),
    )
    .await;
    assert!(out.cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(
        call(&site.app, "GET", "/inbox", Some(&a), None)
            .await
            .location
            .as_deref(),
        Some("/login")
    );
    let c = sign_in(&site, "guichet-donnees@hopital.example").await;
    let out = call(&site.app, "POST", "/logout", Some(&c), None).await;
    assert!(out.cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(
        call(&site.app, "GET", "/inbox", Some(&c), None)
            .await
            .location
            .as_deref(),
        Some("/login"),
        "a logout without the form's token ended the session too"
    );
    // Sessions end after two idle hours.
    site.clock
        .set(Timestamp(1_800_000_000_000 + 2 * 3_600_000 + 1));
    assert_eq!(
        call(&site.app, "GET", "/inbox", Some(&b), None)
            .await
            .location
            .as_deref(),
        Some("/login")
    );
}

#[tokio::test]
async fn staff_see_and_decide_only_the_tasks_of_their_roles() {
    let site = site().await;
    let (id, seq) = a_request(&site).await;
    let data = sign_in(&site, "guichet-donnees@hopital.example").await;
    let jurist = sign_in(&site, "juriste@hopital.example").await;
    // The review is for the data unit: in its inbox, not in the jurist's.
    let inbox = call(&site.app, "GET", "/inbox", Some(&data), None).await;
    assert!(
        inbox.body.contains(&format!("href=\"/tasks/{id}/{seq}\"")),
        "{}",
        inbox.body
    );
    assert!(inbox.body.contains("Examen de recevabilité"));
    // The desk by its title, not its identifier.
    assert!(
        inbox
            .body
            .contains("<td>Guichet interne à accès décentralisé</td>"),
        "{}",
        inbox.body
    );
    let other = call(&site.app, "GET", "/inbox", Some(&jurist), None).await;
    assert!(
        other.body.contains("Aucune tâche ne vous attend"),
        "{}",
        other.body
    );
    let page = call(
        &site.app,
        "GET",
        &format!("/tasks/{id}/{seq}"),
        Some(&jurist),
        None,
    )
    .await;
    assert_eq!(
        page.status,
        StatusCode::NOT_FOUND,
        "no hint that the task exists"
    );
    // The data unit opens it, claims it, and decides.
    let page = call(
        &site.app,
        "GET",
        &format!("/tasks/{id}/{seq}"),
        Some(&data),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let token = csrf(&page.body);
    let no_csrf = call(
        &site.app,
        "POST",
        &format!("/tasks/{id}/{seq}"),
        Some(&data),
        Some("_action=claim".into()),
    )
    .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let empty = call(
        &site.app,
        "POST",
        &format!("/tasks/{id}/{seq}"),
        Some(&data),
        Some("_csrf=&_action=claim".into()),
    )
    .await;
    assert_eq!(
        empty.status,
        StatusCode::FORBIDDEN,
        "an empty token is refused"
    );
    let jurist_token = csrf(
        &call(&site.app, "GET", "/inbox", Some(&jurist), None)
            .await
            .body,
    );
    let intruder = call(
        &site.app,
        "POST",
        &format!("/tasks/{id}/{seq}"),
        Some(&jurist),
        Some(format!("_csrf={jurist_token}&_outcome=recevable")),
    )
    .await;
    assert_eq!(intruder.status, StatusCode::NOT_FOUND);
    // Delegating to something that is not an address is refused, and says why.
    let bad = call(
        &site.app,
        "POST",
        &format!("/tasks/{id}/{seq}"),
        Some(&data),
        Some(format!("_csrf={token}&_action=delegate&_to=personne")),
    )
    .await;
    assert!(
        bad.body
            .contains("« personne » n&#x27;est pas une adresse e-mail"),
        "{}",
        bad.body
    );
    let claimed = call(
        &site.app,
        "POST",
        &format!("/tasks/{id}/{seq}"),
        Some(&data),
        Some(format!("_csrf={token}&_action=claim")),
    )
    .await;
    assert_eq!(claimed.status, StatusCode::SEE_OTHER);
    let page = call(
        &site.app,
        "GET",
        &format!("/tasks/{id}/{seq}"),
        Some(&data),
        None,
    )
    .await;
    assert!(
        page.body
            .contains("Prise par guichet-donnees@hopital.example"),
        "{}",
        page.body
    );
    let done = call(
        &site.app,
        "POST",
        &format!("/tasks/{id}/{seq}"),
        Some(&data),
        Some(format!("_csrf={token}&_outcome=recevable")),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let (_, inst) = site.engine.instance(&id).await.unwrap();
    assert_eq!(
        inst.data["recevabilite"].outcome.as_deref(),
        Some("recevable")
    );
    // The legal feasibility now waits in the jurist's inbox.
    let inbox = call(&site.app, "GET", "/inbox", Some(&jurist), None).await;
    assert!(
        inbox.body.contains("Faisabilité juridique"),
        "{}",
        inbox.body
    );
    // The request's page: its timeline and the process drawn, where it stands outlined.
    let request = call(
        &site.app,
        "GET",
        &format!("/requests/{id}"),
        Some(&data),
        None,
    )
    .await;
    assert_eq!(request.status, StatusCode::OK);
    assert!(
        request.body.contains("<svg") && request.body.contains("stroke=\"#cc0000\""),
        "{}",
        request.body
    );
    assert!(request.body.contains("Examen de recevabilité : Recevable"));
    site.engine
        .set_user("ailleurs@autre.example", PASSWORD, false)
        .await
        .unwrap();
    let stranger = sign_in(&site, "ailleurs@autre.example").await;
    let hidden = call(
        &site.app,
        "GET",
        &format!("/requests/{id}"),
        Some(&stranger),
        None,
    )
    .await;
    assert_eq!(
        hidden.status,
        StatusCode::NOT_FOUND,
        "staff of other desks do not see it"
    );
    // The finished task is gone from everybody's reach.
    let gone = call(
        &site.app,
        "GET",
        &format!("/tasks/{id}/{seq}"),
        Some(&data),
        None,
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

/// Drives a request of model (a) to its end with the first way forward at every step.
async fn an_ended_request(site: &Site) -> String {
    let (id, _) = a_request(site).await;
    let p = site.engine.process_of(&id).await.unwrap();
    loop {
        let (_, inst) = site.engine.instance(&id).await.unwrap();
        let Some(command) = guichet_engine::sim::drive::next_command(&p, &inst) else {
            break;
        };
        site.clock.set(Timestamp(site.engine.now().0 + 86_400_000));
        site.engine.execute(&id, command).await.unwrap();
    }
    id
}

#[tokio::test]
async fn administrators_deploy_watch_the_indicators_and_retry_dead_letters() {
    let site = site().await;
    add_admin(&site).await;
    let ended = an_ended_request(&site).await;
    let admin = sign_in(&site, "admin@hopital.example").await;
    let staff = sign_in(&site, "juriste@hopital.example").await;

    // Not for staff who are not administrators; not for strangers.
    for page in [
        "/admin",
        "/admin/indicators",
        "/admin/requests",
        "/admin/outbox",
        "/admin/users",
    ] {
        assert_eq!(
            call(&site.app, "GET", page, Some(&staff), None)
                .await
                .status,
            StatusCode::NOT_FOUND,
            "{page}"
        );
        assert_eq!(
            call(&site.app, "GET", page, None, None)
                .await
                .location
                .as_deref(),
            Some("/login"),
            "{page}"
        );
        assert_eq!(
            call(&site.app, "GET", page, Some(&admin), None)
                .await
                .status,
            StatusCode::OK,
            "{page}"
        );
    }

    // A definition with an error is not deployed, and the page shows where and why.
    let home = call(&site.app, "GET", "/admin", Some(&admin), None).await;
    assert!(home.body.contains("interne-decentralise"));
    let token = csrf(&home.body);
    let source = guichet_definitions::models::source("interne-decentralise").unwrap();
    let broken = source.replace(
        "role=\"juriste\" due=\"P15D\"",
        "role=\"juristes\" due=\"P15D\"",
    );
    let r = call(
        &site.app,
        "POST",
        "/admin/definitions",
        Some(&admin),
        Some(format!("_csrf={}&source={}", enc(&token), enc(&broken))),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("G0020") && r.body.contains("juristes"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("La définition n'est pas déployée"),
        "{}",
        r.body
    );
    // Without the anti-forgery token: refused.
    let changed = source.replace("version=1", "version=2");
    let r = call(
        &site.app,
        "POST",
        "/admin/definitions",
        Some(&admin),
        Some(format!("source={}", enc(&changed))),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        &site.app,
        "POST",
        "/admin/definitions",
        Some(&admin),
        Some(format!("_csrf={}&source={}", enc(&token), enc(&changed))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body
            .contains("interne-decentralise : révision 2 (version 2)"),
        "{}",
        r.body
    );

    // The dashboard: charts with their tables, CSV behind them.
    let dash = call(&site.app, "GET", "/admin/indicators", Some(&admin), None).await;
    assert!(dash.body.matches("<svg").count() >= 3, "{}", dash.body);
    assert!(
        dash.body.contains("Délai moyen de contractualisation"),
        "{}",
        dash.body
    );
    let csv = call(
        &site.app,
        "GET",
        "/admin/indicators.csv?view=steps",
        Some(&admin),
        None,
    )
    .await;
    assert!(
        csv.body.starts_with("desk,group,step,kind,visits"),
        "{}",
        csv.body
    );
    assert!(
        csv.body
            .contains("interne-decentralise,,recevabilite,task,1"),
        "{}",
        csv.body
    );
    let monthly = call(
        &site.app,
        "GET",
        "/admin/indicators?compare=month",
        Some(&admin),
        None,
    )
    .await;
    assert!(
        monthly.body.contains("interne-decentralise · 20"),
        "{}",
        monthly.body
    );

    // Requests, filtered.
    let list = call(
        &site.app,
        "GET",
        "/admin/requests?status=ended",
        Some(&admin),
        None,
    )
    .await;
    assert!(
        list.body.contains(&format!("/requests/{ended}")),
        "{}",
        list.body
    );
    let running = call(
        &site.app,
        "GET",
        "/admin/requests?status=running",
        Some(&admin),
        None,
    )
    .await;
    assert!(!running.body.contains(&format!("/requests/{ended}")));

    // A dead letter goes back to the dispatcher.
    // The dispatcher claims a message and the server refuses it for good.
    let claimed = site
        .engine
        .claim_outbox(site.engine.now(), 60_000, 1, "email")
        .await
        .unwrap();
    let message = site.engine.outbox_message(&claimed[0].id).await.unwrap();
    site.engine
        .outbox_dead(&message.id, claimed[0].attempt, "550 no such user")
        .await
        .unwrap();
    let page = call(
        &site.app,
        "GET",
        "/admin/outbox?state=dead",
        Some(&admin),
        None,
    )
    .await;
    assert!(page.body.contains("550 no such user"), "{}", page.body);
    let r = call(
        &site.app,
        "POST",
        &format!("/admin/outbox/{}/retry", message.id),
        Some(&admin),
        Some(format!("_csrf={}", enc(&csrf(&page.body)))),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        site.engine.outbox_message(&message.id).await.unwrap().state,
        "pending"
    );

    // Accounts, role membership, API tokens (revoked from the page).
    let token = site
        .engine
        .create_api_token("juriste@hopital.example", "export nocturne")
        .await
        .unwrap();
    let users = call(&site.app, "GET", "/admin/users", Some(&admin), None).await;
    assert!(users.body.contains("export nocturne") && users.body.contains(&token[..12]));
    assert!(
        !users.body.contains(&token),
        "the token itself is never shown again"
    );
    let r = call(
        &site.app,
        "POST",
        &format!("/admin/tokens/{}/revoke", &token[..12]),
        Some(&admin),
        Some(format!("_csrf={}", enc(&csrf(&users.body)))),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        site.engine
            .api_token(&token)
            .await
            .unwrap()
            .email()
            .is_none()
    );
    // Created from the page: shown once, and it works.
    let users = call(&site.app, "GET", "/admin/users", Some(&admin), None).await;
    let form_csrf = enc(&csrf(&users.body));
    for (form, refused) in [
        (
            format!("_csrf={form_csrf}&email=&provider=&name=x"),
            "pas les deux",
        ),
        (
            format!("_csrf={form_csrf}&email=juriste%40hopital.example&name="),
            "à quoi sert le jeton",
        ),
        (
            "_csrf=forged&email=juriste%40hopital.example&name=x".to_owned(),
            "",
        ),
        (
            format!("_csrf={form_csrf}&email=juriste%40hopital.example&name=x"),
            "cochez au moins une portée",
        ),
    ] {
        let r = call(&site.app, "POST", "/admin/tokens", Some(&admin), Some(form)).await;
        assert!(r.status.is_client_error(), "{}", r.body);
        assert!(r.body.contains(refused), "{}", r.body);
    }
    let r = call(
        &site.app,
        "POST",
        "/admin/tokens",
        Some(&staff),
        Some(format!(
            "_csrf={form_csrf}&email=juriste%40hopital.example&name=x"
        )),
    )
    .await;
    assert!(r.status.is_client_error(), "not for staff");
    let r = call(
        &site.app,
        "POST",
        "/admin/tokens",
        Some(&admin),
        Some(format!(
            "_csrf={form_csrf}&email=juriste%40hopital.example&provider=&name=entrep%C3%B4t\
             &scope-read=on&expires=30"
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let at = r.body.find("<code id=\"token\">").unwrap() + "<code id=\"token\">".len();
    let created: String = r.body[at..].chars().take_while(|c| *c != '<').collect();
    assert_eq!(
        site.engine.api_token(&created).await.unwrap().email(),
        Some("juriste@hopital.example")
    );
    let users = call(&site.app, "GET", "/admin/users", Some(&admin), None).await;
    assert!(users.body.contains("entrepôt") && !users.body.contains(&created));
    // Made to read, for 30 days.
    let row = users.body.rsplit("entrepôt</td>").next().unwrap();
    assert!(row.starts_with("<td>read</td>"), "{row}");
    let users = call(&site.app, "GET", "/admin/users", Some(&admin), None).await;
    assert!(
        users.body.contains("dpo@hopital.example (sans compte)"),
        "{}",
        users.body
    );
    let r = call(
        &site.app,
        "POST",
        "/admin/users",
        Some(&admin),
        Some(format!(
            "_csrf={}&email=dpo%40hopital.example&password={}",
            enc(&csrf(&users.body)),
            enc(PASSWORD)
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    sign_in(&site, "dpo@hopital.example").await;
}

#[tokio::test]
async fn staff_choose_a_daily_digest_on_their_preferences_page() {
    let site = site().await;
    // Signed out, the page asks to sign in.
    let r = call(&site.app, "GET", "/preferences", None, None).await;
    assert_eq!(r.location.as_deref(), Some("/login"));
    let jurist = sign_in(&site, "juriste@hopital.example").await;
    let inbox = call(&site.app, "GET", "/inbox", Some(&jurist), None).await;
    assert!(
        inbox.body.contains("href=\"/preferences\""),
        "{}",
        inbox.body
    );
    let r = call(&site.app, "GET", "/preferences", Some(&jurist), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("value=\"each\" checked"), "{}", r.body);
    assert!(r.body.contains("à 8 h"), "{}", r.body);
    let token = csrf(&r.body);
    // Without the anti-forgery token nothing changes.
    let r = call(
        &site.app,
        "POST",
        "/preferences",
        Some(&jurist),
        Some("digest=daily&language=en".into()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        !site
            .engine
            .mail_preference("juriste@hopital.example")
            .await
            .unwrap()
            .digest
    );
    // A value the form does not offer is refused, and nothing changes.
    let r = call(
        &site.app,
        "POST",
        "/preferences",
        Some(&jurist),
        Some(format!("_csrf={token}&digest=weekly&language=fr")),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("résumé quotidien"), "{}", r.body);
    let r = call(
        &site.app,
        "POST",
        "/preferences",
        Some(&jurist),
        Some(format!("_csrf={token}&digest=daily&language=en")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/preferences?saved"));
    let p = site
        .engine
        .mail_preference("juriste@hopital.example")
        .await
        .unwrap();
    assert!(p.digest);
    assert_eq!(p.language, guichet_engine::definitions::model::Language::En);
    let r = call(&site.app, "GET", "/preferences?saved", Some(&jurist), None).await;
    // Their pages are in the language they chose, whatever their browser asks for.
    assert!(r.body.contains("Preference saved"), "{}", r.body);
    assert!(r.body.contains("<html lang=\"en\">"), "{}", r.body);
    assert!(r.body.contains("value=\"daily\" checked"), "{}", r.body);
    assert!(r.body.contains("value=\"en\" selected"), "{}", r.body);
    // The choice is the jurist's alone.
    assert!(
        !site
            .engine
            .mail_preference("guichet-donnees@hopital.example")
            .await
            .unwrap()
            .digest
    );
}

#[tokio::test]
async fn a_database_that_cannot_answer_is_an_error_page_not_a_sign_out() {
    let site = site().await;
    let jurist = sign_in(&site, "juriste@hopital.example").await;
    site.engine.store().close().await;
    for page in ["/inbox", "/preferences"] {
        let r = call(&site.app, "GET", page, Some(&jurist), None).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{page}");
        assert_eq!(r.location, None, "{page}: not sent to the sign-in page");
        assert!(r.body.contains("réessayez plus tard"), "{}", r.body);
    }
}

/// The texts of a catalogue's messages, cut at their arguments and markup: the phrases a page
/// in that language shows (single words left out: "Administration" is both languages').
fn phrases(language: &str) -> std::collections::BTreeSet<String> {
    use fluent_syntax::ast::{Entry, PatternElement};
    let path = format!("{}/locales/{language}.ftl", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(path).unwrap();
    let resource = fluent_syntax::parser::parse(source.as_str()).unwrap();
    let mut out = std::collections::BTreeSet::new();
    for entry in resource.body {
        let Entry::Message(m) = entry else { continue };
        for element in m.value.iter().flat_map(|p| &p.elements) {
            let PatternElement::TextElement { value } = element else {
                continue;
            };
            // Between the markup's tags.
            for piece in value.split(['<', '>']).step_by(2) {
                let piece = piece.trim().trim_matches(|c: char| "«»“”():.;".contains(c));
                let piece = piece.trim();
                if piece.contains(' ') && piece.len() >= 8 {
                    out.insert(piece.to_owned());
                }
            }
        }
    }
    out
}

/// A page as its reader sees the text (handlebars escapes what it fills in).
fn unescaped(html: &str) -> String {
    html.replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&#x3D;", "=")
        .replace("&#x60;", "`")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Fails when `text` holds one of the `foreign` phrases.
fn says_none_of(text: &str, foreign: &[&String], what: &str) {
    let wrong: Vec<_> = foreign
        .iter()
        .filter(|p| text.contains(p.as_str()))
        .collect();
    assert!(wrong.is_empty(), "{what} says {wrong:?}:\n{text}");
}

async fn get_in(
    site: &Site,
    uri: &str,
    cookie: Option<&str>,
    language: &str,
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .uri(uri)
        .header(header::ACCEPT_LANGUAGE, language);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("guichet_session={c}"));
    }
    let resp = site
        .app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn every_page_speaks_its_readers_language_and_no_other() {
    let site = site().await;
    add_admin(&site).await;
    let (id, seq) = a_request(&site).await;
    let staff = sign_in(&site, "guichet-donnees@hopital.example").await;
    let admin = sign_in(&site, "admin@hopital.example").await;
    // Links as the emails would carry them: the sponsor's follow link and the task's.
    let until = Timestamp(site.engine.now().0 + 86_400_000);
    let follow = site
        .engine
        .link_for(&id, None, "p@x.example", "test-follow", until)
        .await
        .unwrap()
        .token;
    let task_link = site
        .engine
        .link_for(
            &id,
            Some(seq),
            "guichet-donnees@hopital.example",
            "test-task",
            until,
        )
        .await
        .unwrap()
        .token;
    let pages: Vec<(String, Option<&str>)> = vec![
        ("/".into(), None),
        ("/desks/interne-decentralise".into(), None),
        ("/follow".into(), None),
        ("/login".into(), None),
        ("/l/not-a-link".into(), None),
        (format!("/l/{follow}"), None),
        (format!("/l/{follow}?withdraw"), None),
        (format!("/l/{follow}?done=answer"), None),
        (format!("/l/{task_link}"), None),
        ("/inbox".into(), Some(&staff)),
        ("/preferences".into(), Some(&staff)),
        (format!("/tasks/{id}/{seq}"), Some(&staff)),
        (format!("/requests/{id}"), Some(&staff)),
        ("/requests/no-such-request".into(), Some(&staff)),
        ("/admin".into(), Some(&admin)),
        ("/admin/indicators".into(), Some(&admin)),
        ("/admin/requests".into(), Some(&admin)),
        ("/admin/outbox".into(), Some(&admin)),
        ("/admin/users".into(), Some(&admin)),
    ];
    let (fr, en) = (phrases("fr"), phrases("en"));
    // The desk's own texts (labels, titles) are in the language it was written in, on every
    // page: a phrase of the catalogue that the desk also says is not the catalogue speaking.
    let desk = guichet_definitions::models::source("interne-decentralise").unwrap();
    assert!(
        fr.len() > 100 && en.len() > 100,
        "{} {}",
        fr.len(),
        en.len()
    );
    for (language, header, own, other) in [
        ("fr", "fr-FR,fr;q=0.9,en;q=0.5", &fr, &en),
        ("en", "en-GB,en;q=0.9", &en, &fr),
    ] {
        let foreign: Vec<&String> = other
            .iter()
            .filter(|p| !own.contains(*p) && !desk.contains(p.as_str()))
            .collect();
        for (uri, cookie) in &pages {
            let (status, html) = get_in(&site, uri, *cookie, header).await;
            assert!(status.as_u16() < 500, "{uri}: {status}");
            assert!(
                html.contains(&format!("<html lang=\"{language}\">")),
                "{uri} in {language}: {html}"
            );
            let text = unescaped(&html);
            says_none_of(&text, &foreign, &format!("{uri} in {language}"));
            let right = own.iter().filter(|p| text.contains(p.as_str())).count();
            assert!(
                right > 0,
                "{uri} in {language} says nothing of its catalogue:\n{text}"
            );
        }
        // A form refused: its errors are in the reader's language too.
        let req = Request::builder()
            .method("POST")
            .uri("/desks/interne-decentralise")
            .header(header::ACCEPT_LANGUAGE, header)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(
                "titre=x&email=not-an-address&date-souhaitee=03%2F12%2F2026",
            ))
            .unwrap();
        let resp = site.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        let text = unescaped(&html);
        says_none_of(
            &text,
            &foreign,
            &format!("the refused intake in {language}"),
        );
        let expected = if language == "fr" {
            "n'est pas une adresse e-mail"
        } else {
            "is not an email address"
        };
        assert!(text.contains(expected), "{language}: {text}");
    }
    // The desk's own texts are in the reader's language too, where the desk translates them.
    let (_, fr_form) = get_in(&site, "/desks/interne-decentralise", None, "fr").await;
    let (_, en_form) = get_in(&site, "/desks/interne-decentralise", None, "en").await;
    assert!(fr_form.contains("Titre du projet") && !fr_form.contains("Project title"));
    assert!(en_form.contains("Project title") && !en_form.contains("Titre du projet"));
    assert!(
        en_form.contains("Academic research")
            && en_form.contains("Internal desk with decentralised access")
    );
    // Without a language the browser asks for, a page about a desk is in the desk's.
    let (_, html) = get_in(&site, "/desks/interne-decentralise", None, "de").await;
    assert!(html.contains("<html lang=\"fr\">"), "{html}");
}

#[tokio::test]
async fn failed_sign_ins_slow_the_next_attempts_on_the_account() {
    let site = site().await;
    let attempt = |password: &'static str| {
        let app = site.app.clone();
        async move { post_login(&app, "juriste@hopital.example", password).await }
    };
    // Five wrong passwords: each answered as wrong, at once.
    for _ in 0..guichet_engine::runtime::signin::FREE_FAILURES {
        let r = attempt("not the password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    // Then even the right password waits its turn, unchecked, and the page says how long.
    let r = attempt(PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.body.contains("réessayez dans 1 s"), "{}", r.body);
    assert!(r.cookie.is_none());
    // Another account is not held back.
    let r = post_login(&site.app, "guichet-donnees@hopital.example", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Once the wait is over, the right password opens a session, and the count starts again.
    site.clock.set(Timestamp(site.engine.now().0 + 1_000));
    let r = attempt(PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = attempt("not the password").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sign_ins_leaves_the_node_answering() {
    let site = site().await;
    // Many sign-ins at once, each a password hash of tens of milliseconds (more in a debug
    // build): they queue for the hashing slots on blocking threads, not on the two workers.
    let logins: Vec<_> = (0..24)
        .map(|i| {
            let app = site.app.clone();
            tokio::spawn(async move {
                post_login(&app, &format!("flood{i}@x.example"), "whatever-it-is")
                    .await
                    .status
            })
        })
        .collect();
    tokio::task::yield_now().await;
    // The node still answers its health check, on the same two workers, while most of them
    // wait their turn.
    let app = site.app.clone();
    let health = tokio::spawn(async move { call(&app, "GET", "/healthz", None, None).await })
        .await
        .unwrap();
    assert_eq!(health.status, StatusCode::OK);
    let pending = logins.iter().filter(|l| !l.is_finished()).count();
    assert!(
        pending >= logins.len() / 2,
        "only {pending} of {} logins were still waiting when the health check answered",
        logins.len()
    );
    for l in logins {
        assert_eq!(l.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_new_password_ends_the_accounts_sessions_and_tokens_and_admin_rights_change_only_by_their_control()
 {
    let site = site().await;
    add_admin(&site).await;
    let admin = sign_in(&site, "admin@hopital.example").await;
    let jurist = sign_in(&site, "juriste@hopital.example").await;
    let token = site
        .engine
        .create_api_token("juriste@hopital.example", "script")
        .await
        .unwrap();
    let users = call(&site.app, "GET", "/admin/users", Some(&admin), None).await;
    let form_csrf = enc(&csrf(&users.body));
    // The administrator gives the jurist a new password: the jurist's session and API token
    // end with the old one.
    let r = call(
        &site.app,
        "POST",
        "/admin/users",
        Some(&admin),
        Some(format!(
            "_csrf={form_csrf}&email=juriste%40hopital.example&password={}",
            enc("a brand new passphrase")
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = call(&site.app, "GET", "/inbox", Some(&jurist), None).await;
    assert_eq!(r.location.as_deref(), Some("/login"));
    assert_eq!(site.engine.api_token(&token).await.unwrap().email(), None);
    // The password form never changes who is an administrator: the administrator saving a
    // password of their own stays one (their session ends like anyone's).
    let r = call(
        &site.app,
        "POST",
        "/admin/users",
        Some(&admin),
        Some(format!(
            "_csrf={form_csrf}&email=admin%40hopital.example&password={}",
            enc(PASSWORD)
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let admin = sign_in(&site, "admin@hopital.example").await;
    let users = call(&site.app, "GET", "/admin/users", Some(&admin), None).await;
    assert_eq!(users.status, StatusCode::OK, "still an administrator");
    let form_csrf = enc(&csrf(&users.body));
    // The one control that changes it: given to the jurist, then taken back.
    let set = |email: &'static str, admin_value: &'static str| {
        let app = site.app.clone();
        let cookie = admin.clone();
        let form_csrf = form_csrf.clone();
        async move {
            call(
                &app,
                "POST",
                "/admin/users/admin",
                Some(&cookie),
                Some(format!(
                    "_csrf={form_csrf}&email={}&admin={admin_value}",
                    enc(email)
                )),
            )
            .await
        }
    };
    let admin_of = |email: &'static str| {
        let engine = site.engine.clone();
        async move {
            engine
                .users()
                .await
                .unwrap()
                .into_iter()
                .find(|u| u.email == email)
                .is_some_and(|u| u.admin)
        }
    };
    assert_eq!(
        set("juriste@hopital.example", "yes").await.status,
        StatusCode::SEE_OTHER
    );
    assert!(admin_of("juriste@hopital.example").await);
    assert_eq!(
        set("juriste@hopital.example", "no").await.status,
        StatusCode::SEE_OTHER
    );
    assert!(!admin_of("juriste@hopital.example").await);
    // Nobody takes their own right away; an unknown account is not found.
    let r = set("admin@hopital.example", "no").await;
    assert!(r.status.is_client_error(), "{}", r.body);
    assert!(
        r.body.contains("ne retire pas ses propres droits"),
        "{}",
        r.body
    );
    assert!(admin_of("admin@hopital.example").await);
    assert_eq!(
        set("personne@hopital.example", "yes").await.status,
        StatusCode::NOT_FOUND
    );
    // A staff member who is not an administrator cannot use it.
    let r = post_login(
        &site.app,
        "juriste@hopital.example",
        "a brand new passphrase",
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let jurist: String = r
        .cookie
        .unwrap()
        .trim_start_matches("guichet_session=")
        .chars()
        .take_while(|c| *c != ';')
        .collect();
    let r = call(
        &site.app,
        "POST",
        "/admin/users/admin",
        Some(&jurist),
        Some(format!(
            "_csrf={form_csrf}&email=juriste%40hopital.example&admin=yes"
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!admin_of("juriste@hopital.example").await);
}

/// An administrator disables an account: its session and API token end at once, the right
/// password no longer signs in (the page says the account is disabled), and enabling it again
/// lets it sign in with the password it had. Nobody disables their own account.
#[tokio::test]
async fn a_disabled_account_cannot_sign_in_and_loses_its_sessions_and_tokens() {
    let site = site().await;
    add_admin(&site).await;
    let admin = sign_in(&site, "admin@hopital.example").await;
    let jurist = sign_in(&site, "juriste@hopital.example").await;
    let token = site
        .engine
        .create_api_token("juriste@hopital.example", "script")
        .await
        .unwrap();
    let users = call(&site.app, "GET", "/admin/users", Some(&admin), None).await;
    let form_csrf = enc(&csrf(&users.body));
    let set = |email: &str, value: &str| {
        let (app, cookie) = (site.app.clone(), admin.clone());
        let form = format!("_csrf={form_csrf}&email={}&disabled={value}", enc(email));
        async move {
            call(
                &app,
                "POST",
                "/admin/users/disabled",
                Some(&cookie),
                Some(form),
            )
            .await
        }
    };
    assert_eq!(
        set("juriste@hopital.example", "yes").await.status,
        StatusCode::SEE_OTHER
    );
    let r = call(&site.app, "GET", "/inbox", Some(&jurist), None).await;
    assert_eq!(r.location.as_deref(), Some("/login"));
    assert_eq!(site.engine.api_token(&token).await.unwrap().email(), None);
    let refused = post_login(&site.app, "juriste@hopital.example", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.body.contains("Ce compte est désactivé"),
        "{}",
        refused.body
    );
    assert!(refused.cookie.is_none());
    // A new API token for it is refused too.
    assert!(
        site.engine
            .create_api_token("juriste@hopital.example", "again")
            .await
            .is_err()
    );
    let listed = call(&site.app, "GET", "/admin/users", Some(&admin), None).await;
    assert!(listed.body.contains("désactivé le"), "{}", listed.body);
    // Nobody disables their own account; an unknown one is not found.
    let own = set("admin@hopital.example", "yes").await;
    assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", own.body);
    assert_eq!(
        set("nobody@hopital.example", "yes").await.status,
        StatusCode::NOT_FOUND
    );
    // Enabled again: the password it had signs in.
    assert_eq!(
        set("juriste@hopital.example", "no").await.status,
        StatusCode::SEE_OTHER
    );
    sign_in(&site, "juriste@hopital.example").await;
}
