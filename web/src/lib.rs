//! The web application of guichet (first slice): the requester portal (an intake form per
//! deployed desk, generated from its definition), the pages behind email links (a task to
//! decide, or the sponsor's status), and the endpoint of provider callbacks.
//!
//! Email links are capabilities: opening one (GET) never changes anything, since mail
//! scanners follow links; deciding is a POST from the page, carrying an anti-forgery token
//! derived from the link, and spends the link. Every invalid link (unknown, forged, expired,
//! used, revoked) gets the same page, which offers a fresh link by email.
//!
//! Staff accounts, the inbox, administration and the REST API come with the rest of the web
//! issue.

mod form;
mod pages;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use guichet_connectors::provider::{CallbackError, Webhooks};
use guichet_definitions::model::StepKind;
use guichet_engine::core::{self, Command, EventKind, Fields, InstanceStatus};
use guichet_engine::{Engine, Error};

pub use pages::Pages;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub pages: Pages,
    /// Provider callbacks are accepted only when providers are configured.
    pub webhooks: Option<Arc<Webhooks>>,
    /// Mark the session cookie `Secure` (when served over HTTPS).
    pub secure_cookies: bool,
}

type Shared = State<Arc<AppState>>;

/// All routes, with security headers on every response.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/", get(home))
        .route("/desks/{name}", get(desk_form).post(desk_submit))
        .route("/l/{token}", get(link_page).post(link_act))
        .route("/l/{token}/fresh", post(link_fresh))
        .route("/callbacks/{token}", post(callback))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/inbox", get(inbox))
        .route("/tasks/{instance}/{seq}", get(staff_task).post(staff_act))
        .route("/requests/{id}", get(request_page))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(Arc::new(state))
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn page(
    s: &AppState,
    status: StatusCode,
    name: &str,
    title: &str,
    data: &serde_json::Value,
) -> Response {
    (status, Html(s.pages.render(name, title, data))).into_response()
}

fn failure(s: &AppState, e: &Error) -> Response {
    let (status, heading, message) = match e {
        Error::NotFound(_) => (
            StatusCode::NOT_FOUND,
            "Introuvable",
            "Cette page n'existe pas.".to_owned(),
        ),
        Error::Conflict(m) => (StatusCode::CONFLICT, "Déjà traité", m.clone()),
        Error::Refused(r) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Action refusée",
            r.to_string(),
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Erreur",
            "Une erreur est survenue ; réessayez plus tard.".to_owned(),
        ),
    };
    page(
        s,
        status,
        "error",
        heading,
        &serde_json::json!({"heading": heading, "message": message}),
    )
}

fn date(t: guichet_engine::clock::Timestamp) -> String {
    let d = t.to_datetime();
    format!(
        "{:02}/{:02}/{} {:02}:{:02}",
        d.day(),
        d.month() as u8,
        d.year(),
        d.hour(),
        d.minute()
    )
}

async fn home(State(s): Shared) -> Response {
    match s.engine.desks().await {
        Ok(desks) => {
            let list: Vec<_> = desks
                .values()
                .map(|p| serde_json::json!({"name": p.name, "title": p.title, "description": p.description.clone().unwrap_or_default()}))
                .collect();
            page(
                &s,
                StatusCode::OK,
                "home",
                "Guichets",
                &serde_json::json!({"desks": list}),
            )
        }
        Err(e) => failure(&s, &e),
    }
}

async fn desk_view(
    s: &AppState,
    name: &str,
    values: &HashMap<String, String>,
    errors: &HashMap<String, String>,
) -> Result<Response, Error> {
    let desks = s.engine.desks().await?;
    let p = desks
        .get(name)
        .ok_or_else(|| Error::NotFound(name.to_owned()))?;
    let start = p.start();
    let fields = form::view(start.form(), values, errors);
    let data = serde_json::json!({
        "desk": {"name": p.name, "title": p.title, "description": p.description.clone().unwrap_or_default()},
        "form_title": start.display_name(),
        "fields": fields,
        "has_errors": !errors.is_empty(),
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(page(s, status, "desk", &p.title, &data))
}

async fn desk_form(State(s): Shared, Path(name): Path<String>) -> Response {
    desk_view(&s, &name, &HashMap::new(), &HashMap::new())
        .await
        .unwrap_or_else(|e| failure(&s, &e))
}

async fn desk_submit(
    State(s): Shared,
    Path(name): Path<String>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    let fields = form::fields(&values, &[]);
    match s.engine.start(&name, &fields).await {
        Ok(id) => {
            let title = values
                .get("titre")
                .or_else(|| values.get("title"))
                .cloned()
                .unwrap_or_default();
            page(
                &s,
                StatusCode::OK,
                "submitted",
                "Demande envoyée",
                &serde_json::json!({"title": title, "reference": core::reference(&id)}),
            )
        }
        Err(Error::Refused(core::Error::Invalid(errors))) => {
            let errors = errors.into_iter().map(|e| (e.field, e.message)).collect();
            desk_view(&s, &name, &values, &errors)
                .await
                .unwrap_or_else(|e| failure(&s, &e))
        }
        Err(e) => failure(&s, &e),
    }
}

fn invalid_link(s: &AppState, token: &str, sent: bool) -> Response {
    page(
        s,
        StatusCode::NOT_FOUND,
        "invalid-link",
        "Lien invalide",
        &serde_json::json!({"token": token, "sent": sent}),
    )
}

/// The request's timeline as people read it: completed steps and their outcomes.
async fn timeline(s: &AppState, id: &str) -> Result<Vec<serde_json::Value>, Error> {
    let process = s.engine.process_of(id).await?;
    let mut out = Vec::new();
    for h in s.engine.history(id).await? {
        let what = match &h.event.kind {
            EventKind::StepCompleted { step, outcome } => {
                let Some(st) = process.step(step) else {
                    continue;
                };
                if !matches!(
                    st.kind,
                    StepKind::Start(_) | StepKind::Task(_) | StepKind::Call(_) | StepKind::Wait(_)
                ) {
                    continue;
                }
                match outcome {
                    Some(o) => format!("{} : {o}", st.display_name()),
                    None => st.display_name().to_owned(),
                }
            }
            EventKind::InstanceEnded { result } => format!("Demande close ({})", result.as_str()),
            EventKind::InstanceCancelled { .. } => "Demande retirée".to_owned(),
            _ => continue,
        };
        out.push(serde_json::json!({"at": date(h.event.at), "what": what}));
    }
    Ok(out)
}

/// Where a task page posts, and who looks at it.
struct Viewer<'a> {
    action: String,
    csrf: String,
    /// The signed-in staff member; `None` behind an email link.
    staff: Option<&'a str>,
    /// The link's token, for the invalid-link page.
    token: &'a str,
}

/// The task page behind an email link.
async fn task_view(
    s: &AppState,
    token: &str,
    instance: &str,
    task: u32,
    values: &HashMap<String, String>,
    errors: &HashMap<String, String>,
    problem: Option<String>,
) -> Result<Response, Error> {
    let viewer = Viewer {
        action: format!("/l/{token}"),
        csrf: s.engine.csrf_for(token).await?,
        staff: None,
        token,
    };
    task_page(s, &viewer, instance, task, values, errors, problem).await
}

async fn task_page(
    s: &AppState,
    viewer: &Viewer<'_>,
    instance: &str,
    task: u32,
    values: &HashMap<String, String>,
    errors: &HashMap<String, String>,
    problem: Option<String>,
) -> Result<Response, Error> {
    let (_, inst) = s.engine.instance(instance).await?;
    let Some(t) = inst.tasks.get(&task) else {
        return Ok(invalid_link(s, viewer.token, false));
    };
    let p = s.engine.process_of(instance).await?;
    let step = &p.steps[t.step];
    let request_title = core::request_title(&p, &inst);
    let outcomes: Vec<_> = step
        .outcomes()
        .iter()
        .map(|o| serde_json::json!({"id": o.id, "label": o.label.clone().unwrap_or_else(|| o.id.clone())}))
        .collect();
    let data = serde_json::json!({
        "action": viewer.action,
        "request_url": format!("/requests/{instance}"),
        "csrf": viewer.csrf,
        "staff": viewer.staff.is_some(),
        "claimed": t.assignee.is_some(),
        "assignee": t.assignee.clone().unwrap_or_default(),
        "can_claim": viewer.staff.is_some() && t.assignee.is_none(),
        "can_release": viewer.staff.is_some_and(|me| t.assignee.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(me))),
        "step": step.display_name(),
        "description": step.description.clone().unwrap_or_default(),
        "request_title": request_title,
        "reference": core::reference(instance),
        "desk": p.title,
        "deadline": t.due_at.map(date).unwrap_or_default(),
        "overdue": t.overdue,
        "fields": form::view(step.form(), values, errors),
        "outcomes": outcomes,
        "has_errors": !errors.is_empty(),
        "problem": problem.unwrap_or_default(),
        "timeline": timeline(s, instance).await?,
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(page(s, status, "task", step.display_name(), &data))
}

async fn link_page(State(s): Shared, Path(token): Path<String>) -> Response {
    let Ok(grant) = s.engine.verify_link(&token).await else {
        return invalid_link(&s, &token, false);
    };
    let result = match grant.task {
        Some(task) => {
            task_view(
                &s,
                &token,
                &grant.instance,
                task,
                &HashMap::new(),
                &HashMap::new(),
                None,
            )
            .await
        }
        None => status_view(&s, &grant.instance).await,
    };
    result.unwrap_or_else(|e| failure(&s, &e))
}

async fn status_view(s: &AppState, id: &str) -> Result<Response, Error> {
    let (_, inst) = s.engine.instance(id).await?;
    let p = s.engine.process_of(id).await?;
    let request_title = core::request_title(&p, &inst);
    let status = match inst.status {
        InstanceStatus::Running => "Votre demande est en cours d'examen.",
        InstanceStatus::Ended(guichet_definitions::model::EndResult::Accepted) => {
            "Votre demande est acceptée."
        }
        InstanceStatus::Ended(guichet_definitions::model::EndResult::Rejected) => {
            "Votre demande n'a pas été acceptée."
        }
        InstanceStatus::Ended(guichet_definitions::model::EndResult::Withdrawn)
        | InstanceStatus::Cancelled => "Votre demande est close.",
    };
    let data = serde_json::json!({
        "request_title": request_title,
        "reference": core::reference(id),
        "desk": p.title,
        "status": status,
        "timeline": timeline(s, id).await?,
    });
    Ok(page(s, StatusCode::OK, "status", "Votre demande", &data))
}

/// Constant-time comparison of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn link_act(
    State(s): Shared,
    Path(token): Path<String>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    let Ok(grant) = s.engine.verify_link(&token).await else {
        return invalid_link(&s, &token, false);
    };
    let Some(task) = grant.task else {
        return page(
            &s,
            StatusCode::METHOD_NOT_ALLOWED,
            "error",
            "Action refusée",
            &serde_json::json!({"heading": "Action refusée", "message": "Ce lien sert à suivre la demande."}),
        );
    };
    let expected = match s.engine.csrf_for(&token).await {
        Ok(c) => c,
        Err(e) => return failure(&s, &e),
    };
    if !values.get("_csrf").is_some_and(|c| same(c, &expected)) {
        let data = serde_json::json!({"heading": "Formulaire expiré", "message": "Rechargez la page de la tâche depuis votre courriel, puis recommencez."});
        return page(
            &s,
            StatusCode::FORBIDDEN,
            "error",
            "Formulaire expiré",
            &data,
        );
    }
    let outcome = values.get("_outcome").filter(|o| !o.is_empty()).cloned();
    let fields = form::fields(&values, &["_csrf", "_outcome"]);
    let command = Command::Complete {
        task,
        user: grant.recipient.clone(),
        outcome,
        fields,
    };
    match s.engine.execute(&grant.instance, command).await {
        Ok(_) => {
            // The link has served: it cannot act again.
            let _ = s.engine.spend_link(&token).await;
            page(
                &s,
                StatusCode::OK,
                "done",
                "Merci",
                &serde_json::json!({"message": "Votre décision est enregistrée. La demande suit son cours."}),
            )
        }
        Err(Error::Refused(core::Error::Invalid(errors))) => {
            let errors = errors.into_iter().map(|e| (e.field, e.message)).collect();
            task_view(&s, &token, &grant.instance, task, &values, &errors, None)
                .await
                .unwrap_or_else(|e| failure(&s, &e))
        }
        Err(Error::Refused(e)) => task_view(
            &s,
            &token,
            &grant.instance,
            task,
            &values,
            &HashMap::new(),
            Some(e.to_string()),
        )
        .await
        .unwrap_or_else(|e| failure(&s, &e)),
        Err(e) => failure(&s, &e),
    }
}

async fn link_fresh(State(s): Shared, Path(token): Path<String>) -> Response {
    // The same answer whatever the token was: no hint of which case it is.
    let _ = s.engine.fresh_link_for(&token).await;
    invalid_link(&s, &token, true)
}

async fn callback(
    State(s): Shared,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(hooks) = &s.webhooks else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "not-found"})),
        )
            .into_response();
    };
    let signature = headers
        .get("guichet-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match hooks.accept_callback(&token, signature, &body).await {
        Ok(_) => (StatusCode::OK, Json(serde_json::json!({"ok": true}))).into_response(),
        Err(e) => {
            let (status, code) = match &e {
                CallbackError::Invalid => (StatusCode::NOT_FOUND, "unknown-callback"),
                CallbackError::BadSignature => (StatusCode::UNAUTHORIZED, "bad-signature"),
                CallbackError::Stale => (StatusCode::UNAUTHORIZED, "stale-signature"),
                CallbackError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
                CallbackError::Late(_) => (StatusCode::CONFLICT, "late"),
                CallbackError::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "refused"),
                CallbackError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            };
            (
                status,
                Json(serde_json::json!({"error": code, "message": e.to_string()})),
            )
                .into_response()
        }
    }
}

/// Serves the application until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Strings from a form, as engine field values (empty ones left out).
pub fn to_fields(values: &HashMap<String, String>) -> Fields {
    form::fields(values, &[])
}

const SESSION_COOKIE: &str = "guichet_session";

/// The session token from the request's cookies.
fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The signed-in staff member and their session token.
async fn staff(s: &AppState, headers: &HeaderMap) -> Option<(String, String)> {
    let token = session_token(headers)?;
    let email = s.engine.session(&token).await.ok()??;
    Some((email, token))
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}

fn session_cookie(s: &AppState, value: &str, max_age: i64) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if s.secure_cookies { "; Secure" } else { "" }
    )
}

fn with_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn login_page(State(s): Shared) -> Response {
    page(
        &s,
        StatusCode::OK,
        "login",
        "Connexion",
        &serde_json::json!({"failed": false, "email": ""}),
    )
}

async fn login(State(s): Shared, Form(values): Form<HashMap<String, String>>) -> Response {
    let email = values.get("email").cloned().unwrap_or_default();
    let password = values.get("password").cloned().unwrap_or_default();
    match s.engine.login(&email, &password).await {
        // A new session at every login: a token planted before it is worthless.
        Ok(Some(token)) => with_cookie(
            redirect("/inbox"),
            &session_cookie(&s, &token, guichet_engine::users::ABSOLUTE_MS / 1000),
        ),
        Ok(None) => page(
            &s,
            StatusCode::UNAUTHORIZED,
            "login",
            "Connexion",
            &serde_json::json!({"failed": true, "email": email}),
        ),
        Err(e) => failure(&s, &e),
    }
}

async fn logout(
    State(s): Shared,
    headers: HeaderMap,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    if let Some((_, token)) = staff(&s, &headers).await {
        let expected = s.engine.csrf_for(&token).await.unwrap_or_default();
        if values.get("_csrf").is_some_and(|c| same(c, &expected)) {
            let _ = s.engine.logout(&token).await;
        }
    }
    with_cookie(redirect("/login"), &session_cookie(&s, "", 0))
}

async fn inbox(State(s): Shared, headers: HeaderMap) -> Response {
    let Some((email, token)) = staff(&s, &headers).await else {
        return redirect("/login");
    };
    let items = match s.engine.inbox(&email).await {
        Ok(i) => i,
        Err(e) => return failure(&s, &e),
    };
    let rows: Vec<_> = items
        .iter()
        .map(|i| {
            serde_json::json!({
                "instance": i.task.instance, "seq": i.task.seq, "step_title": i.step_title, "title": i.title,
                "desk": i.desk, "due": i.task.due_at.map(|d| date(guichet_engine::clock::Timestamp(d))).unwrap_or_default(),
                "overdue": i.task.overdue, "claimed": i.task.assignee.is_some(),
                "assignee": i.task.assignee.clone().unwrap_or_default(),
            })
        })
        .collect();
    let csrf = s.engine.csrf_for(&token).await.unwrap_or_default();
    page(
        &s,
        StatusCode::OK,
        "inbox",
        "Mes tâches",
        &serde_json::json!({"email": email, "items": rows, "csrf": csrf}),
    )
}

/// Whether the staff member may act on the open task; a `false` hides whether it exists.
async fn staff_may_act(s: &AppState, email: &str, instance: &str, seq: u32) -> bool {
    let Ok((desk, _)) = s.engine.instance(instance).await else {
        return false;
    };
    let Ok(tasks) = s.engine.tasks(Some(instance), true).await else {
        return false;
    };
    let Some(task) = tasks.into_iter().find(|t| t.seq == i64::from(seq)) else {
        return false;
    };
    let Ok(roles) = s.engine.roles_of(email).await else {
        return false;
    };
    Engine::may_act(&roles, email, &desk, &task)
}

fn not_found(s: &AppState) -> Response {
    let data = serde_json::json!({"heading": "Introuvable", "message": "Cette tâche n'existe pas ou ne vous est pas ouverte."});
    page(s, StatusCode::NOT_FOUND, "error", "Introuvable", &data)
}

async fn staff_task(
    State(s): Shared,
    headers: HeaderMap,
    Path((instance, seq)): Path<(String, u32)>,
) -> Response {
    let Some((email, token)) = staff(&s, &headers).await else {
        return redirect("/login");
    };
    if !staff_may_act(&s, &email, &instance, seq).await {
        return not_found(&s);
    }
    let viewer = Viewer {
        action: format!("/tasks/{instance}/{seq}"),
        csrf: s.engine.csrf_for(&token).await.unwrap_or_default(),
        staff: Some(&email),
        token: "",
    };
    task_page(
        &s,
        &viewer,
        &instance,
        seq,
        &HashMap::new(),
        &HashMap::new(),
        None,
    )
    .await
    .unwrap_or_else(|e| failure(&s, &e))
}

async fn staff_act(
    State(s): Shared,
    headers: HeaderMap,
    Path((instance, seq)): Path<(String, u32)>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    let Some((email, token)) = staff(&s, &headers).await else {
        return redirect("/login");
    };
    let expected = s.engine.csrf_for(&token).await.unwrap_or_default();
    if !values.get("_csrf").is_some_and(|c| same(c, &expected)) {
        let data = serde_json::json!({"heading": "Formulaire expiré", "message": "Rechargez la page de la tâche, puis recommencez."});
        return page(
            &s,
            StatusCode::FORBIDDEN,
            "error",
            "Formulaire expiré",
            &data,
        );
    }
    if !staff_may_act(&s, &email, &instance, seq).await {
        return not_found(&s);
    }
    let command = match values.get("_action").map(String::as_str) {
        Some("claim") => Command::Claim {
            task: seq,
            user: email.clone(),
        },
        Some("release") => Command::Release {
            task: seq,
            user: email.clone(),
        },
        Some("delegate") => Command::Delegate {
            task: seq,
            by: email.clone(),
            to: core::Recipient::Person(
                values
                    .get("_to")
                    .map(|t| t.trim().to_lowercase())
                    .unwrap_or_default(),
            ),
        },
        _ => Command::Complete {
            task: seq,
            user: email.clone(),
            outcome: values.get("_outcome").filter(|o| !o.is_empty()).cloned(),
            fields: form::fields(&values, &["_csrf", "_outcome", "_action", "_to"]),
        },
    };
    let completing = matches!(command, Command::Complete { .. });
    let viewer = Viewer {
        action: format!("/tasks/{instance}/{seq}"),
        csrf: expected.clone(),
        staff: Some(&email),
        token: "",
    };
    match s.engine.execute(&instance, command).await {
        Ok(_) if completing => {
            let data = serde_json::json!({"message": "Votre décision est enregistrée. La demande suit son cours."});
            page(&s, StatusCode::OK, "done", "Merci", &data)
        }
        Ok(_) => redirect(&format!("/tasks/{instance}/{seq}")),
        Err(Error::Refused(core::Error::Invalid(errors)))
            if errors.iter().any(|e| e.field == "to") =>
        {
            let problem = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            task_page(
                &s,
                &viewer,
                &instance,
                seq,
                &values,
                &HashMap::new(),
                Some(problem),
            )
            .await
            .unwrap_or_else(|e| failure(&s, &e))
        }
        Err(Error::Refused(core::Error::Invalid(errors))) => {
            let errors = errors.into_iter().map(|e| (e.field, e.message)).collect();
            task_page(&s, &viewer, &instance, seq, &values, &errors, None)
                .await
                .unwrap_or_else(|e| failure(&s, &e))
        }
        Err(Error::Refused(e)) => task_page(
            &s,
            &viewer,
            &instance,
            seq,
            &values,
            &HashMap::new(),
            Some(e.to_string()),
        )
        .await
        .unwrap_or_else(|e| failure(&s, &e)),
        Err(e) => failure(&s, &e),
    }
}

/// Alive and able to read the database.
async fn healthz(State(s): Shared) -> Response {
    match s.engine.gauges().await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")).into_response(),
    }
}

/// Prometheus text format.
async fn metrics(State(s): Shared) -> Response {
    use std::fmt::Write;
    let g = match s.engine.gauges().await {
        Ok(g) => g,
        Err(e) => {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")).into_response();
        }
    };
    let mut out = String::new();
    out.push_str("# HELP guichet_requests Requests by status.\n# TYPE guichet_requests gauge\n");
    for (status, n) in &g.instances {
        let _ = writeln!(out, "guichet_requests{{status=\"{status}\"}} {n}");
    }
    out.push_str("# HELP guichet_tasks_open Open tasks.\n# TYPE guichet_tasks_open gauge\n");
    let _ = writeln!(out, "guichet_tasks_open {}", g.tasks_open);
    out.push_str("# HELP guichet_tasks_overdue Open tasks past their deadline.\n# TYPE guichet_tasks_overdue gauge\n");
    let _ = writeln!(out, "guichet_tasks_overdue {}", g.tasks_overdue);
    out.push_str(
        "# HELP guichet_outbox Outbox messages by kind and state.\n# TYPE guichet_outbox gauge\n",
    );
    for (kind, state, n) in &g.outbox {
        let _ = writeln!(
            out,
            "guichet_outbox{{kind=\"{kind}\",state=\"{state}\"}} {n}"
        );
    }
    out.push_str("# HELP guichet_timers Scheduled timers.\n# TYPE guichet_timers gauge\n");
    let _ = writeln!(out, "guichet_timers {}", g.timers_scheduled);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// A request as staff see it: status, open tasks, timeline, and the process drawn with the
/// steps where it stands outlined. Open to the staff of its desk and to administrators.
async fn request_page(State(s): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some((email, _)) = staff(&s, &headers).await else {
        return redirect("/login");
    };
    let Ok((desk, inst)) = s.engine.instance(&id).await else {
        return not_found(&s);
    };
    let allowed = s.engine.is_admin(&email).await.unwrap_or(false)
        || s.engine
            .roles_of(&email)
            .await
            .is_ok_and(|roles| roles.iter().any(|(d, _)| *d == desk));
    if !allowed {
        return not_found(&s);
    }
    let result = async {
        let p = s.engine.process_of(&id).await?;
        let marked: Vec<usize> = inst.tokens.values().map(|t| t.step).collect();
        let tasks: Vec<_> = inst
            .tasks
            .values()
            .map(|t| {
                serde_json::json!({
                    "step": p.steps[t.step].display_name(), "role": t.role,
                    "assignee": t.assignee.clone().unwrap_or_default(),
                    "due": t.due_at.map(date).unwrap_or_default(), "overdue": t.overdue,
                })
            })
            .collect();
        let status = match inst.status {
            InstanceStatus::Running => "en cours".to_owned(),
            InstanceStatus::Ended(r) => format!("close ({})", r.as_str()),
            InstanceStatus::Cancelled => "retirée".to_owned(),
        };
        let data = serde_json::json!({
            "request_title": core::request_title(&p, &inst),
            "reference": core::reference(&id),
            "desk": p.title,
            "status": status,
            "tasks": tasks,
            "timeline": timeline(&s, &id).await?,
            "graph": guichet_definitions::graph::svg_marked(&p, &marked),
        });
        Ok::<_, Error>(page(&s, StatusCode::OK, "request", &p.title, &data))
    }
    .await;
    result.unwrap_or_else(|e| failure(&s, &e))
}
