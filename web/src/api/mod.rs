//! The REST API (JSON, `/api/v1`): what the pages do, for scripts and other systems. Every
//! call but the OpenAPI document carries an API token (`Authorization: Bearer gch_...`,
//! issued by `guichet token create`), which acts as one staff account: the same roles, the
//! same refusals as in the pages. The token is checked before anything else of the call is
//! read ([`authenticate`]).
//!
//! Every failure under `/api/` is one JSON shape, `{"error": {"code", "message", "fields"}}`
//! ([`schema::ErrorBody`]): the handlers' own errors, the extractors' rejections (a path, a
//! query or a body that does not parse), and what the router and the middlewares answer
//! (unknown routes, 405, 413, 415, 429, 503), rewritten by [`json_errors`].
//!
//! The OpenAPI 3.1 document (`/api/openapi.json`, `docs/openapi.json`) is generated from the
//! handlers' annotations and the types of [`schema`]; the routes are registered from the
//! same annotations ([`routes`]), so a route cannot be left out of the document. One module
//! per part: `requests` (desks, submissions, requests, events, documents, withdrawal),
//! `tasks` (the inbox, tasks and their actions, mail preferences), `external` (pull
//! providers).

mod definitions;
mod external;
mod indicators;
mod requests;
pub(crate) mod schema;
mod tasks;

use super::*;

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use guichet_engine::error::Kind;
use guichet_engine::runtime::tokens::{Grant, Presented, Scope};
use schema::{ErrorBody, ErrorDetail};
use utoipa::{Modify as _, OpenApi as _};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

/// An API error: status, stable code, message, and the field errors of an invalid body.
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Option<serde_json::Value>,
    diagnostics: Option<Vec<serde_json::Value>>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: None,
            diagnostics: None,
        }
    }

    fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} (or not yours to see)"),
        )
    }

    /// 422: the call is well formed but a value is not one the request takes; `fields`
    /// names each and says why.
    fn invalid(message: &str, fields: serde_json::Value) -> Self {
        ApiError {
            fields: Some(fields),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
        }
    }

    /// The error for a status that carries no more than its meaning (what the router and
    /// the extractors answer).
    fn of_status(status: StatusCode, detail: Option<String>) -> Self {
        let (code, message) = match status {
            StatusCode::BAD_REQUEST => ("invalid", "the call is malformed"),
            StatusCode::UNAUTHORIZED => ("unauthorized", "send an API token"),
            StatusCode::FORBIDDEN => ("forbidden", "this token may not do this"),
            StatusCode::NOT_FOUND => (
                "not_found",
                "no such route: see /api/openapi.json for the API's routes",
            ),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "this route does not take this method: the Allow header lists those it takes",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the body is too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "send the body as JSON (Content-Type: application/json)",
            ),
            StatusCode::UNPROCESSABLE_ENTITY => ("invalid", "the body is not the JSON expected"),
            StatusCode::TOO_MANY_REQUESTS => (
                "too_many_requests",
                "too many calls: try again after the seconds in Retry-After",
            ),
            StatusCode::SERVICE_UNAVAILABLE => {
                ("unavailable", "the service cannot answer now; try again")
            }
            s if s.is_server_error() => ("internal", "an internal error occurred"),
            _ => ("invalid", "the call was refused"),
        };
        let message = match detail {
            Some(d) if !d.is_empty() => format!("{message}: {d}"),
            _ => message.to_owned(),
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                fields: self.fields,
                diagnostics: self.diagnostics,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused(core::Error::Invalid(errors)) => Self::invalid(
                "some fields are not valid; nothing was saved",
                errors
                    .into_iter()
                    .map(|e| (e.field, serde_json::Value::String(e.message)))
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            ),
            Error::Refused(
                e @ (core::Error::UnknownOutcome { .. } | core::Error::OutcomeRequired(_)),
            ) => Self::invalid(
                "the outcome is not one of the task's; nothing was saved",
                serde_json::json!({ "outcome": e.to_string() }),
            ),
            Error::Refused(e) if !e.is_internal() => {
                Self::new(StatusCode::CONFLICT, "refused", e.to_string())
            }
            Error::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            e @ Error::KeyReused(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                e.to_string(),
            ),
            Error::Invalid(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            Error::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "not_found", m),
            Error::Definition(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "the definition has errors",
            ),
            e if e.kind() == Kind::Unavailable => {
                tracing::warn!(error = %e, "api request failed: the database cannot answer now");
                Self::of_status(StatusCode::SERVICE_UNAVAILABLE, None)
            }
            e => {
                let id = crate::incident(&e, "api request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!(
                        "an internal error occurred (incident {id}); the operator's log has it"
                    ),
                )
            }
        }
    }
}

type ApiResult<T = Response> = Result<T, ApiError>;

/// Checks the API token of every call under `/api/v1/` before anything else of the call is
/// read (its path, its query, its body): a call without a valid token is 401 whatever else
/// is wrong with it. The account and its scopes go to the handler as a [`Caller`].
pub(crate) async fn authenticate(
    s: Arc<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.uri().path().starts_with("/api/v1/") {
        match grant(&s, request.headers()).await {
            Ok(grant) => {
                request.extensions_mut().insert(Caller(grant));
            }
            Err(e) => return e.into_response(),
        }
    }
    next.run(request).await
}

/// The grant of the call's API token: an expired token is told so (401).
async fn grant(s: &AppState, headers: &HeaderMap) -> Result<Grant, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send an API token: `Authorization: Bearer gch_...` (see `guichet token create`)",
        )
    };
    let token = token.ok_or_else(unauthorized)?;
    match s.engine.api_token(token).await? {
        Presented::Valid(grant) => Ok(grant),
        Presented::Expired(at) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "this API token expired on {}; create a new one (`guichet token create`)",
                guichet_engine::clock::Timestamp(at).to_datetime().date()
            ),
        )),
        Presented::Refused => Err(unauthorized()),
    }
}

/// The account behind the call's API token ([`authenticate`] found it valid).
#[derive(Debug, Clone)]
pub(crate) struct Caller(Grant);

impl Caller {
    /// The account's email, when its token may do `scope` (403 naming the scope otherwise).
    fn may(&self, scope: Scope) -> Result<String, ApiError> {
        let grant = &self.0;
        if grant.scopes.contains(scope) {
            return Ok(grant.email.clone());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this token may {}; this call needs the scope `{}` (create a token with \
                 `guichet token create --scope {}`)",
                grant.scopes,
                scope.name(),
                scope.name()
            ),
        ))
    }
}

/// Refuses (403, saying `why`) an account that is not an administrator.
async fn administrator(s: &AppState, email: &str, why: &str) -> Result<(), ApiError> {
    if s.engine.is_admin(email).await? {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", why))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::of_status(StatusCode::UNAUTHORIZED, None))
    }
}

/// A path's parameters; one that does not parse is 400 in the API's shape.
pub(crate) struct ApiPath<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(ApiPath(t)),
            Err(r) => Err(ApiError::of_status(r.status(), Some(r.body_text()))),
        }
    }
}

/// A query; one that does not parse (`?limit=many`) is 400 in the API's shape.
pub(crate) struct ApiQuery<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(t)) => Ok(ApiQuery(t)),
            Err(r) => Err(ApiError::of_status(
                StatusCode::BAD_REQUEST,
                Some(r.body_text()),
            )),
        }
    }
}

/// A JSON body; one that is not JSON (415), does not parse (400) or lacks a field (422) is
/// answered in the API's shape.
pub(crate) struct ApiJson<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(t)) => Ok(ApiJson(t)),
            Err(r) => Err(ApiError::of_status(r.status(), Some(r.body_text()))),
        }
    }
}

/// Under `/api/`, an error answered without the API's JSON (the router's 404 and 405, a
/// rate limit's 429 page, a body limit's 413) is answered again in the API's shape, with
/// its `Allow` and `Retry-After`.
pub(crate) async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    if !api || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json {
        return response;
    }
    let mut answer = ApiError::of_status(status, None).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = response.headers().get(&name) {
            answer.headers_mut().insert(name, v.clone());
        }
    }
    answer
}

/// Refuses a file field's value that came in the JSON rather than as a file part.
fn documents_sent(
    documents: &form::Submission,
    file_fields: &[&str],
    fields: &Fields,
) -> Result<(), ApiError> {
    match documents.unsent_document(file_fields, fields) {
        None => Ok(()),
        Some(field) => Err(ApiError::invalid(
            "a document must be sent as a file part of a multipart call; nothing was saved",
            serde_json::json!({ field: "send the document as a file part named after the field" }),
        )),
    }
}

/// A call's JSON body; or, from a `multipart/form-data` call, its `body` part (JSON) and its
/// documents: each other part a file for the field it is named after (`field` gives the
/// field's definition), staged under its `max-size` and kept once the command is saved.
async fn body_and_documents<'f, T: serde::de::DeserializeOwned>(
    s: &AppState,
    request: axum::extract::Request,
    field: impl Fn(&str) -> Option<&'f guichet_definitions::model::Field>,
) -> Result<(T, form::Submission), ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !content_type.starts_with("multipart/form-data") {
        let bytes = axum::body::to_bytes(request.into_body(), 2_000_000)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the body is larger than 2 MB",
                )
            })?;
        if bytes.is_empty() {
            let body = serde_json::from_slice(b"{}")
                .map_err(|e| ApiError::of_status(StatusCode::BAD_REQUEST, Some(e.to_string())))?;
            return Ok((body, form::Submission::default()));
        }
        if !content_type.starts_with("application/json") {
            return Err(ApiError::of_status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("or as multipart/form-data with the JSON in a part named `body`".into()),
            ));
        }
        let body = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("the body is not the JSON expected: {e}"),
            )
        })?;
        return Ok((body, form::Submission::default()));
    }
    let submission = form::Submission::read(s, request, |_, name| field(name))
        .await
        .map_err(|r| {
            ApiError::of_status(
                r.status(),
                Some("the multipart body could not be read".into()),
            )
        })?;
    if !submission.errors.is_empty() {
        return Err(ApiError::invalid(
            "some documents are not valid; nothing was saved",
            submission
                .errors
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.to_string())))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        ));
    }
    let json = submission.values.get("body").map_or("{}", String::as_str);
    let body = serde_json::from_str(json).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("the `body` part is not the JSON expected: {e}"),
        )
    })?;
    Ok((body, submission))
}

/// The longest `Idempotency-Key` taken.
const MAX_KEY: usize = 255;

/// The call's `Idempotency-Key`, if it sent one: printable ASCII, at most [`MAX_KEY`]
/// characters (a UUID or any random text the client keeps for its retries).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().ok().map(str::trim).unwrap_or_default();
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            format!(
                "`Idempotency-Key` must be 1 to {MAX_KEY} printable ASCII characters without \
                 spaces (a UUID, say), the same for every retry of one call"
            ),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// A route that takes documents: its body is read as a stream, bounded per document
/// ([`crate::uploads`]).
fn uploads(
    (schemas, paths, method): UtoipaMethodRouter<Arc<AppState>>,
) -> UtoipaMethodRouter<Arc<AppState>> {
    (schemas, paths, method.layer(crate::uploads()))
}

/// The API's routes, registered from the handlers' annotations, with the document they
/// make.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(Contract::openapi())
        .routes(routes!(requests::desks))
        .routes(uploads(routes!(requests::start)))
        .routes(routes!(requests::request))
        .routes(uploads(routes!(requests::event)))
        .routes(routes!(requests::document))
        .routes(routes!(requests::withdraw))
        .routes(routes!(tasks::inbox))
        .routes(routes!(tasks::task))
        .routes(routes!(tasks::claim))
        .routes(routes!(tasks::release))
        .routes(routes!(tasks::delegate))
        .routes(uploads(routes!(tasks::complete)))
        .routes(routes!(tasks::preferences, tasks::set_preferences))
        .routes(routes!(external::fetch_and_lock))
        .routes(uploads(routes!(external::complete_external)))
        .routes(routes!(definitions::list, definitions::deploy))
        .routes(routes!(definitions::graph))
        .routes(routes!(indicators::indicators))
}

/// The OpenAPI document, as JSON.
pub fn document() -> String {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let (_, mut doc) = routes().split_for_parts();
            Contract.modify(&mut doc);
            doc.to_pretty_json().unwrap_or_default()
        })
        .clone()
}

/// `GET /api/openapi.json`: the OpenAPI 3.1 document of the API.
pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "guichet",
        description = "Health-data access desks: requests, tasks, decisions. Every call carries \
            an API token (`guichet token create EMAIL`, with the scopes read, submit, act); \
            every failure is one JSON shape, `{\"error\": {\"code\", \"message\", \"fields\"}}`."
    ),
    security(("token" = [])),
    components(schemas(ErrorBody)),
    tags(
        (name = "requests", description = "Desks, submissions, requests, events, documents"),
        (name = "tasks", description = "The inbox, tasks and decisions, mail preferences"),
        (name = "external", description = "Providers that pull their work"),
        (name = "definitions", description = "Desks' definitions: their revisions, deploying, drawings"),
        (name = "indicators", description = "The indicators of ended requests, as the dashboard shows them"),
    )
)]
struct Contract;

impl utoipa::Modify for Contract {
    /// What every operation may answer besides its own: the token's refusals, the
    /// malformed call, the limits and the failures, each in the one error shape.
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token from `guichet token create EMAIL` (scopes read, \
                         submit, act; it expires)",
                    ))
                    .build(),
            ),
        );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.post];
            for op in operations.into_iter().flatten() {
                let params = op.parameters.as_deref().unwrap_or_default();
                let in_path = params.iter().any(|p| {
                    matches!(p, utoipa::openapi::RefOr::T(p)
                        if p.parameter_in == utoipa::openapi::path::ParameterIn::Path)
                });
                let has_body = op.request_body.is_some();
                let mut add = |status: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description).into());
                };
                add("401", "No API token, or not a valid one (`unauthorized`)");
                add(
                    "403",
                    "The token lacks the scope, or the account the right (`forbidden`)",
                );
                if in_path || has_body || !params.is_empty() {
                    add(
                        "400",
                        "The path, the query or the body does not parse (`invalid`)",
                    );
                }
                if in_path {
                    add(
                        "404",
                        "Nothing there, or not the account's to see (`not_found`)",
                    );
                }
                if has_body {
                    add("413", "The body is too large (`payload_too_large`)");
                    add("415", "The body is not JSON (`unsupported_media_type`)");
                    add(
                        "422",
                        "A value the call does not take (`invalid`, with `fields`)",
                    );
                }
                add(
                    "429",
                    "Too many calls: see Retry-After (`too_many_requests`)",
                );
                add(
                    "500",
                    "An internal error, with its incident number (`internal`)",
                );
                add(
                    "503",
                    "The node is at its limit or the database cannot answer (`unavailable`)",
                );
            }
        }
    }
}
