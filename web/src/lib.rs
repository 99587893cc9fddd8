//! The web application of guichet (first slice): the requester portal (an intake form per
//! deployed desk, generated from its definition), the pages behind email links (a task to
//! decide, or the sponsor's status), and the endpoint of provider callbacks.
//!
//! Email links are capabilities: opening one (GET) never changes anything, since mail
//! scanners follow links; deciding is a POST from the page, carrying an anti-forgery token
//! derived from the link, and spends the link. Every invalid link (unknown, forged, expired,
//! used, revoked) gets the same page, which offers a fresh link by email.
//!
//! Staff sign in, see the tasks of their roles, and decide them; a request page shows where
//! it stands on the drawn process. The REST API (`api`, under `/api/v1`, with its OpenAPI
//! document at `/api/openapi.json`) does what the pages do, for scripts, with API tokens.
//! Administrators have `admin`: desks, deployment, the indicators dashboard, requests, the
//! outbox and accounts.
//!
//! One module per part: `portal`, `link` (email links), `staff`, `task` (the task page both
//! share), `ops` (health, metrics, provider callbacks); `form` and `pages` are the plumbing.
//! The imports below are shared with the modules (`use super::*`).

mod admin;
mod api;
mod documents;
mod dossier;
mod form;
mod i18n;
mod limits;
mod link;
mod messages;
mod ops;
mod pages;
mod portal;
mod staff;
mod task;

use link::{link_act, link_fresh, link_page, lost_link, lost_link_page};
use ops::{callback, healthz, metrics};
use portal::{desk_form, desk_submit, home};
use staff::{
    inbox, login, login_page, logout, preferences, preferences_save, request_page, staff_act,
    staff_task,
};
use task::{Viewer, invalid_link, task_page, task_view};

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
use guichet_engine::core::{self, Command, Fields, InstanceStatus};
use guichet_engine::{Engine, Error};

pub use api::document as openapi_document;
pub use limits::{LimitSettings, Limits, Rate, parse_limit};
pub use pages::Pages;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Provider callbacks are accepted only when providers are configured.
    pub webhooks: Option<Arc<Webhooks>>,
    /// Mark the session cookie `Secure` (when served over HTTPS).
    pub secure_cookies: bool,
    /// The hour (Paris time) of the daily digests, shown on the preferences page.
    pub digest_hour: u8,
    /// How many HTTP requests this node works on at once before it refuses new work (503
    /// with Retry-After); decisions on existing work are always taken (see `ops::admit`).
    pub max_in_flight: usize,
    /// The rate limits of the public forms ([`Limits::new`] from the settings).
    pub limits: Limits,
}

type Shared = State<Arc<AppState>>;

/// All routes, with security headers on every response.
pub fn router(state: AppState) -> Router {
    let shared = Arc::new(state);
    let admission = {
        let s = shared.clone();
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        move |request, next| ops::admit(s.clone(), in_flight.clone(), request, next)
    };
    let authenticate = {
        let s = shared.clone();
        move |request, next| api::authenticate(s.clone(), request, next)
    };
    let limited = {
        let s = shared.clone();
        move |request, next| limits::guard(s.clone(), request, next)
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(healthz))
        .route("/livez", get(ops::livez))
        .route("/metrics", get(metrics))
        .route("/", get(home))
        .route(
            "/desks/{name}",
            get(desk_form).post(desk_submit).layer(uploads()),
        )
        .route("/l/{token}", get(link_page).post(link_act).layer(uploads()))
        .route("/l/{token}/documents/{sha256}", get(link::document))
        .route("/l/{token}/fresh", post(link_fresh))
        .route("/follow", get(lost_link_page).post(lost_link))
        .route("/callbacks/{token}", post(callback).layer(uploads()))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/inbox", get(inbox))
        .route("/preferences", get(preferences).post(preferences_save))
        .route(
            "/tasks/{instance}/{seq}",
            get(staff_task).post(staff_act).layer(uploads()),
        )
        .route("/requests/{id}", get(request_page))
        .route("/requests/{id}/documents/{sha256}", get(staff::document))
        .route("/admin", get(admin::overview))
        .route("/admin/definitions", post(admin::deploy))
        .route("/admin/indicators", get(admin::indicators))
        .route("/admin/indicators.csv", get(admin::indicators_csv))
        .route("/admin/requests", get(admin::requests))
        .route("/admin/outbox", get(admin::outbox))
        .route("/admin/outbox/{id}/retry", post(admin::outbox_retry))
        .route("/admin/users", get(admin::users).post(admin::user_add))
        .route("/admin/users/admin", post(admin::user_admin))
        .route("/admin/users/disabled", post(admin::user_disabled))
        .route("/admin/tokens", post(admin::token_create))
        .route("/admin/tokens/{prefix}/revoke", post(admin::token_revoke))
        .route("/api/openapi.json", get(api::openapi))
        .merge(api::routes().split_for_parts().0)
        .layer(axum::middleware::from_fn(authenticate))
        .layer(axum::middleware::from_fn(limited))
        .layer(axum::middleware::from_fn(admission))
        .layer(axum::middleware::from_fn(api::json_errors))
        .layer(axum::middleware::from_fn(ops::track))
        .layer(axum::middleware::from_fn(i18n::choose))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(shared)
}

/// The routes that take documents read their bodies as a stream, each document bounded by
/// its field's `max-size` and the rest of the form by [`form::Submission::read`]: the
/// router's default bound (2 MB) is lifted there.
fn uploads() -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::disable()
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

/// A page in the reader's language ([`i18n::current`]); `title` is already in it.
fn page(status: StatusCode, name: &str, title: &str, data: &impl serde::Serialize) -> Response {
    let html = Pages::get().render(i18n::current(), name, title, data);
    (status, Html(html)).into_response()
}

/// A message of the catalogue in the reader's language.
fn text(id: &str) -> String {
    i18n::t(i18n::current(), id)
}

/// [`text`] with arguments.
fn text_with(id: &str, args: &[(&str, i18n::Arg<'_>)]) -> String {
    i18n::tr(i18n::current(), id, args)
}

/// What a page handler answers when it cannot show its page: an engine error, shown by its
/// kind ([`failure`]), or a page of its own (the sign-in page, not found, an expired form).
/// Handlers return [`PageResult`] and use `?` on both.
pub(crate) enum Failure {
    Error(Error),
    Page(Response),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

impl From<Response> for Failure {
    fn from(r: Response) -> Self {
        Failure::Page(r)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Error(e) => failure(&e),
            Failure::Page(r) => r,
        }
    }
}

pub(crate) type PageResult = Result<Response, Failure>;

fn failure(e: &Error) -> Response {
    use guichet_engine::error::Kind;
    let (status, heading, message) = match (e.kind(), e) {
        (Kind::NotFound, _) => (
            StatusCode::NOT_FOUND,
            text("error-not-found"),
            text("error-not-found-page"),
        ),
        // The engine's words are English (for the API and the CLI); a page says it in its own.
        (Kind::Refused, Error::Conflict(_)) => (
            StatusCode::CONFLICT,
            text("error-already-done"),
            text("error-already-done-text"),
        ),
        (Kind::Refused, Error::Refused(r)) => (
            StatusCode::CONFLICT,
            text("error-refused"),
            messages::refusal(r),
        ),
        (Kind::Invalid, Error::Refused(r)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            text("error-refused"),
            messages::refusal(r),
        ),
        (Kind::Invalid, Error::Invalid(m)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            text("error-invalid-choice"),
            m.clone(),
        ),
        (Kind::Unavailable, _) => {
            tracing::warn!(error = %e, "page failed: the database cannot answer now");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                text("error-unavailable"),
                text("error-unavailable-text"),
            )
        }
        _ => {
            // The person sees no detail, only the incident's number; the operator's log has it.
            let id = incident(e, "page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                text("error-heading"),
                text_with("error-incident", &[("incident", (&id).into())]),
            )
        }
    };
    page(
        status,
        "error",
        &heading,
        &serde_json::json!({"heading": heading, "message": message}),
    )
}

/// Logs an internal fault under a fresh incident number, returned for the answer: the person
/// or program that met it can quote it, and the operator finds the cause in the log.
pub(crate) fn incident(e: &Error, what: &str) -> String {
    let mut bytes = [0u8; 4];
    // Without randomness, the time's low bits still tell incidents apart.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            .to_be_bytes();
    }
    let id = hex::encode(bytes);
    tracing::error!(incident = %id, error = %e, "{what}");
    id
}

/// A moment, Paris time, as the reader writes dates ([`Timestamp::paris_minute`]).
///
/// [`Timestamp::paris_minute`]: guichet_engine::clock::Timestamp::paris_minute
fn date(t: guichet_engine::clock::Timestamp) -> String {
    t.paris_minute(i18n::current())
}

/// Whether a form carries the anti-forgery token derived from `secret` (a link's or a
/// session's token). Fails closed: a missing or empty token, or an error deriving the
/// expected one, refuses.
async fn csrf_ok(s: &AppState, secret: &str, values: &HashMap<String, String>) -> bool {
    let Ok(expected) = s.engine.csrf_for(secret).await else {
        return false;
    };
    !expected.is_empty() && values.get("_csrf").is_some_and(|c| same(c, &expected))
}

/// The page for a form whose anti-forgery token is missing or wrong; `hint` is the id of
/// the message saying what to do.
fn expired_form(hint: &str) -> Response {
    let heading = text("error-expired-form");
    let data = serde_json::json!({"heading": heading, "message": text(hint)});
    page(StatusCode::FORBIDDEN, "error", &heading, &data)
}

/// Compares two secrets in constant time (`subtle`): how long it takes tells nothing of where
/// they differ.
fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Serves the application until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer's address, for the rate limits of the public forms.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Strings from a form, as engine field values (empty ones left out).
pub fn to_fields(values: &HashMap<String, String>) -> Fields {
    form::fields(values, &[])
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}
