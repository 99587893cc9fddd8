//! The REST API (JSON, `/api/v1`): what the pages do, for scripts and other systems. Every
//! call but the OpenAPI document carries an API token (`Authorization: Bearer gch_...`,
//! issued by `guichet token create`), which acts as one staff account: the same roles, the
//! same refusals as in the pages. Errors are JSON with a stable code:
//! `{"error": {"code": "not_found", "message": "...", "fields": {...}}}`.
//!
//! Codes: `unauthorized` (401: no token, or not valid), `forbidden` (403), `not_found` (404:
//! also for what the account may not see), `invalid` (422: `fields` says which and why),
//! `refused` (409: the request does not allow it as it stands), `conflict` (409: someone
//! else acted first; the message says who), `unavailable` (503: the database),
//! `invalid_idempotency_key` (400) and `idempotency_key_reused` (422: the key of an earlier,
//! different submission), `internal` (500: the message gives the incident's number).

use super::*;

use guichet_definitions::model::{FieldType, Form as FormDef, Process};
use guichet_engine::error::Kind;
use guichet_engine::runtime::Started;
use guichet_engine::runtime::tokens::{Presented, Scope};
use serde::Deserialize;

/// An API error: status, stable code, message, and the field errors of an invalid body.
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Option<serde_json::Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: None,
        }
    }

    fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} (or not yours to see)"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(f) = self.fields {
            error["fields"] = f;
        }
        (self.status, Json(serde_json::json!({ "error": error }))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused(core::Error::Invalid(errors)) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid",
                message: "some fields are not valid; nothing was saved".to_owned(),
                fields: Some(
                    errors
                        .into_iter()
                        .map(|e| (e.field, serde_json::Value::String(e.message)))
                        .collect::<serde_json::Map<_, _>>()
                        .into(),
                ),
            },
            Error::Refused(
                e @ (core::Error::UnknownOutcome { .. } | core::Error::OutcomeRequired(_)),
            ) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid",
                message: "the outcome is not one of the task's; nothing was saved".to_owned(),
                fields: Some(serde_json::json!({ "outcome": e.to_string() })),
            },
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
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the service cannot answer now; try again",
                )
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

type ApiResult = Result<Response, ApiError>;

/// The staff account behind the request's API token, when the token may do `scope`: an
/// expired token is told so (401), a token without the scope is refused (403), before
/// anything else is read.
async fn account(s: &AppState, headers: &HeaderMap, scope: Scope) -> Result<String, ApiError> {
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
        Presented::Valid(grant) if grant.scopes.contains(scope) => Ok(grant.email),
        Presented::Valid(grant) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this token may {}; this call needs the scope `{}` (create a token with \
                 `guichet token create --scope {}`)",
                grant.scopes,
                scope.name(),
                scope.name()
            ),
        )),
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

/// Refuses a file field's value that came in the JSON rather than as a file part.
fn documents_sent(
    documents: &form::Submission,
    file_fields: &[&str],
    fields: &Fields,
) -> Result<(), ApiError> {
    match documents.unsent_document(file_fields, fields) {
        None => Ok(()),
        Some(field) => Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message:
                "a document must be sent as a file part of a multipart call; nothing was saved"
                    .to_owned(),
            fields: Some(
                serde_json::json!({ field: "send the document as a file part named after the field" }),
            ),
        }),
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
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let invalid =
        |message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message);
    if !multipart {
        let bytes = axum::body::to_bytes(request.into_body(), 2_000_000)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid",
                    "the body is larger than 2 MB",
                )
            })?;
        let text = if bytes.is_empty() {
            &b"{}"[..]
        } else {
            &bytes[..]
        };
        let body = serde_json::from_slice(text)
            .map_err(|e| invalid(format!("the body is not the JSON expected: {e}")))?;
        return Ok((body, form::Submission::default()));
    }
    let submission = form::Submission::read(s, request, |_, name| field(name))
        .await
        .map_err(|r| {
            ApiError::new(
                r.status(),
                "invalid",
                "the multipart body could not be read",
            )
        })?;
    if !submission.errors.is_empty() {
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message: "some documents are not valid; nothing was saved".to_owned(),
            fields: Some(
                submission
                    .errors
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.to_string())))
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
            ),
        });
    }
    let json = submission.values.get("body").map_or("{}", String::as_str);
    let body = serde_json::from_str(json)
        .map_err(|e| invalid(format!("the `body` part is not the JSON expected: {e}")))?;
    Ok((body, submission))
}

fn field_type(t: FieldType) -> &'static str {
    FieldType::ALL
        .iter()
        .find(|(_, x)| *x == t)
        .map_or("text", |(n, _)| n)
}

/// A form as JSON: what to send, and what each field accepts.
fn form_json(form: Option<&FormDef>) -> serde_json::Value {
    form.map_or_else(Vec::new, |f| {
        f.fields
            .iter()
            .map(|f| {
                serde_json::json!({
                    "id": f.id, "type": field_type(f.ty), "required": f.required,
                    "label": f.label, "help": f.help,
                    "options": f.options.iter().map(|o| serde_json::json!({"value": o.value, "label": o.label})).collect::<Vec<_>>(),
                    "min": f.min, "max": f.max, "max_length": f.max_length,
                })
            })
            .collect()
    })
    .into()
}

fn desk_json(p: &Process) -> serde_json::Value {
    serde_json::json!({
        "name": p.name, "title": p.title, "version": p.version, "description": p.description,
        "intake": form_json(p.start().form()),
    })
}

fn timestamp(t: Option<i64>) -> Option<String> {
    t.map(|t| guichet_engine::clock::Timestamp(t).rfc3339())
}

fn task_json(t: &guichet_engine::runtime::TaskRow, p: Option<&Process>) -> serde_json::Value {
    let step = p.and_then(|p| p.step(&t.step));
    serde_json::json!({
        "request": t.instance, "task": t.seq, "step": t.step,
        "title": step.map(|s| s.display_name().to_owned()),
        "role": t.role, "assignee": t.assignee, "state": t.state,
        "created_at": timestamp(Some(t.created_at)), "due_at": timestamp(t.due_at),
        "overdue": t.overdue, "closed_by": t.closed_by,
    })
}

/// Where a request stands: its status, result and open tasks (overdue first, then by
/// deadline), from its state.
fn standing(
    id: &str,
    p: &Process,
    inst: &core::Instance,
) -> serde_json::Map<String, serde_json::Value> {
    let (status, result) = guichet_engine::runtime::status_str(inst.status);
    let mut open: Vec<_> = inst.tasks.values().collect();
    open.sort_by_key(|t| (!t.overdue, t.due_at, t.seq));
    let open_tasks: Vec<_> = open
        .into_iter()
        .map(|t| task_json(&guichet_engine::runtime::TaskRow::open(id, p, t), Some(p)))
        .collect();
    let mut out = serde_json::Map::new();
    out.insert("status".into(), status.into());
    out.insert("result".into(), result.into());
    out.insert("open_tasks".into(), open_tasks.into());
    out
}

/// `GET /api/v1/desks`: the deployed desks and their intake forms.
pub(crate) async fn desks(State(s): Shared, headers: HeaderMap) -> ApiResult {
    account(&s, &headers, Scope::Read).await?;
    let desks = s.engine.desks().await?;
    Ok(Json(desks.values().map(|p| desk_json(p)).collect::<Vec<_>>()).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct FieldsBody {
    #[serde(default)]
    fields: Fields,
}

/// `POST /api/v1/desks/{name}/requests`: submits a request, as the portal's form does
/// (documents in a multipart call: see [`body_and_documents`]).
pub(crate) async fn start(
    State(s): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> ApiResult {
    let email = account(&s, &headers, Scope::Submit).await?;
    let key = idempotency_key(&headers)?;
    let desks = s.engine.desks().await?;
    let form = desks.get(&name).and_then(|p| p.start().form());
    let (mut body, documents): (FieldsBody, _) =
        body_and_documents(&s, request, |f| form.and_then(|form| form.field(f))).await?;
    documents_sent(&documents, &form::file_fields(form), &body.fields)?;
    body.fields.extend(documents.documents());
    let started = match key {
        // Scoped by account: two clients' keys never meet.
        Some(key) => {
            s.engine
                .start_request_once(&name, &body.fields, None, &format!("api {email} {key}"))
                .await
        }
        None => s
            .engine
            .start_request(&name, &body.fields, None)
            .await
            .map(|(id, inst)| Started {
                id,
                inst,
                replayed: false,
            }),
    }
    .map_err(|e| match e {
        Error::NotFound(_) => ApiError::not_found(&format!("desk `{name}`")),
        e => e.into(),
    })?;
    let Started { id, inst, replayed } = started;
    if !replayed {
        documents.keep().await;
    }
    let mut body = serde_json::json!({"id": id, "reference": core::reference(&id)});
    // Where it stands, for those who may see it: no need to read it back.
    if staff::may_see(&s, &email, &name).await? {
        let p = s.engine.process_of(&id).await?;
        if let Some(body) = body.as_object_mut() {
            body.extend(standing(&id, &p, &inst));
        }
    }
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// The longest `Idempotency-Key` taken.
const MAX_KEY: usize = 255;

/// The submission's `Idempotency-Key`, if it sent one: printable ASCII, at most
/// [`MAX_KEY`] characters (a UUID or any random text the client keeps for its retries).
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
                 spaces (a UUID, say), the same for every retry of one submission"
            ),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// `GET /api/v1/requests/{id}`: status, open tasks and history.
pub(crate) async fn request(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> ApiResult {
    let email = account(&s, &headers, Scope::Read).await?;
    let (desk, inst) = match s.engine.instance(&id).await {
        Ok(found) => found,
        Err(Error::NotFound(_)) => return Err(ApiError::not_found("request")),
        Err(e) => return Err(e.into()),
    };
    if !staff::may_see(&s, &email, &desk).await? {
        return Err(ApiError::not_found("request"));
    }
    let p = s.engine.process_of(&id).await?;
    // `?history=false`: where the request stands, without its history or timeline (for
    // pollers: nothing read but the request).
    let with_history = params.get("history").map(String::as_str) != Some("false");
    let history: Vec<core::Event> = if with_history {
        s.engine
            .history(&id)
            .await?
            .into_iter()
            .map(|h| h.event)
            .collect()
    } else {
        Vec::new()
    };
    let dossier = core::dossier::build(&id, &p, &inst, &history, core::dossier::Audience::Staff);
    let mut body = serde_json::json!({
        "id": id, "reference": dossier.reference, "desk": desk,
        "title": dossier.title,
        "started_at": timestamp(Some(inst.started_at.0)),
        "ended_at": timestamp(inst.ended_at.map(|t| t.0)),
        "intake": dossier.intake,
        "steps": dossier.steps,
        "open_waits": dossier.open_waits,
    });
    if let Some(body) = body.as_object_mut() {
        body.extend(standing(&id, &p, &inst));
    }
    if with_history {
        body["timeline"] = serde_json::to_value(&dossier.timeline).unwrap_or_default();
        body["history"] = serde_json::to_value(&history).unwrap_or_default();
    }
    Ok(Json(body).into_response())
}

/// The request and its definition, when the account may see it (404 otherwise).
async fn visible(
    s: &AppState,
    email: &str,
    id: &str,
) -> Result<(String, core::Instance), ApiError> {
    match s.engine.instance(id).await {
        Ok((desk, inst)) if staff::may_see(s, email, &desk).await? => Ok((desk, inst)),
        Ok(_) | Err(Error::NotFound(_)) => Err(ApiError::not_found("request")),
        Err(e) => Err(e.into()),
    }
}

/// Where a request stands after an action on it: its id, status, result and open tasks.
async fn standing_of(s: &AppState, id: &str, inst: &core::Instance) -> ApiResult {
    let p = s.engine.process_of(id).await?;
    let mut body = serde_json::Map::new();
    body.insert("id".into(), id.into());
    body.extend(standing(id, &p, inst));
    Ok(Json(body).into_response())
}

/// `POST /api/v1/requests/{id}/events/{name}` with `{"fields": {...}}`: answers the wait of
/// the request that waits for event `name` now. Open to the members of the wait's `from`
/// role (to the desk's staff when it names none) and to administrators; refused (409) when
/// the request does not wait for it now: an event is never kept for a later wait.
pub(crate) async fn event(
    State(s): Shared,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    request: axum::extract::Request,
) -> ApiResult {
    let email = account(&s, &headers, Scope::Act).await?;
    let (desk, inst) = visible(&s, &email, &id).await?;
    let p = s.engine.process_of(&id).await?;
    let waits: Vec<&guichet_definitions::model::Step> = p
        .steps
        .iter()
        .filter(|st| matches!(&st.kind, StepKind::Wait(w) if w.event == name))
        .collect();
    if waits.is_empty() {
        return Err(ApiError::not_found(&format!("event `{name}` in this desk")));
    }
    // The wait that is open now, else the first declared (the engine says it is not open).
    let step = waits
        .iter()
        .find(|st| inst.tokens.values().any(|t| p.steps[t.step].id == st.id))
        .unwrap_or(&waits[0]);
    let from = match &step.kind {
        StepKind::Wait(w) => w.from.clone(),
        _ => None,
    };
    let admin = s.engine.is_admin(&email).await?;
    let roles = s.engine.roles_of(&email).await?;
    let may = |p: &Process, inst: &core::Instance| {
        admin
            || match &from {
                None => roles.iter().any(|(d, _)| *d == desk),
                Some(role) => {
                    roles.contains(&(desk.clone(), role.clone()))
                        || core::is_member(p, inst, role, &email)
                }
            }
    };
    if !may(&p, &inst) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "only the role `{}` may send `{name}`",
                from.as_deref().unwrap_or_default()
            ),
        ));
    }
    // The same event sent again with its key: the answer it had, nothing changed.
    let key = idempotency_key(&headers)?;
    if key.as_ref().is_some_and(|k| inst.event_keys.contains(k)) {
        let mut answer = standing_of(&s, &id, &inst).await?;
        answer.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
        return Ok(answer);
    }
    let (mut body, documents): (FieldsBody, _) =
        body_and_documents(&s, request, |f| step.form().and_then(|form| form.field(f))).await?;
    documents_sent(&documents, &form::file_fields(step.form()), &body.fields)?;
    body.fields.extend(documents.documents());
    let actor = core::Actor::User(email.clone());
    match s
        .engine
        .answer(&id, &step.id, body.fields, actor, key, &may)
        .await
    {
        Ok(inst) => {
            documents.keep().await;
            standing_of(&s, &id, &inst).await
        }
        Err(Error::Conflict(m)) => Err(ApiError::new(StatusCode::CONFLICT, "refused", m)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Withdrawal {
    /// Why, kept in the request's history.
    reason: Option<String>,
}

/// `POST /api/v1/requests/{id}/withdraw` with `{"reason": "..."}`: the request is withdrawn,
/// its open tasks and timers cancelled. Open to the desk's staff and to administrators.
pub(crate) async fn withdraw(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Withdrawal>,
) -> ApiResult {
    let email = account(&s, &headers, Scope::Act).await?;
    visible(&s, &email, &id).await?;
    let reason = body.reason.map(|r| r.trim().to_owned()).unwrap_or_default();
    if let Err(e) = core::form::comment(Some(&reason), None) {
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message: "the reason is not valid; nothing was saved".to_owned(),
            fields: Some(serde_json::json!({ "reason": e.message })),
        });
    }
    let actor = core::Actor::User(email);
    match s.engine.withdraw(&id, actor, &reason, &|_, _| true).await {
        Ok(inst) => standing_of(&s, &id, &inst).await,
        Err(Error::Conflict(m)) => Err(ApiError::new(StatusCode::CONFLICT, "refused", m)),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/v1/tasks?limit=N`: the account's inbox (its tasks and its roles' tasks), overdue
/// first; at most `limit` (default 200, at most 1,000), with the total in `X-Total-Count`.
pub(crate) async fn inbox(
    State(s): Shared,
    headers: HeaderMap,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> ApiResult {
    let email = account(&s, &headers, Scope::Read).await?;
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .unwrap_or(200)
        .clamp(0, 1000);
    let inbox = s.engine.inbox(&email, limit).await?;
    let (total, more_than) = (inbox.total, inbox.more_than);
    let items: Vec<_> = inbox
        .items
        .into_iter()
        .map(|i| {
            let mut j = task_json(&i.task, None);
            j["title"] = i.step_title.into();
            j["desk"] = i.desk.into();
            j["request_title"] = i.title.into();
            j
        })
        .collect();
    let total = if more_than {
        format!("{total}+")
    } else {
        total.to_string()
    };
    Ok(([("x-total-count", total)], Json(items)).into_response())
}

/// The task, when the account may act on it.
async fn task_of(
    s: &AppState,
    email: &str,
    instance: &str,
    seq: u32,
) -> Result<guichet_engine::runtime::TaskRow, ApiError> {
    open_to(s, email, s.engine.task(instance, seq).await?).await
}

/// The task found (with its desk), when it is open and the account may act on it.
async fn open_to(
    s: &AppState,
    email: &str,
    found: Option<(String, guichet_engine::runtime::TaskRow)>,
) -> Result<guichet_engine::runtime::TaskRow, ApiError> {
    match found {
        Some((desk, t)) if s.engine.may_act_now(email, &desk, &t).await? => Ok(t),
        _ => Err(ApiError::not_found("open task")),
    }
}

/// `GET /api/v1/tasks/{request}/{task}`: the task, its form and its outcomes.
pub(crate) async fn task(
    State(s): Shared,
    headers: HeaderMap,
    Path((instance, seq)): Path<(String, u32)>,
) -> ApiResult {
    let email = account(&s, &headers, Scope::Read).await?;
    let t = task_of(&s, &email, &instance, seq).await?;
    let p = s.engine.process_of(&instance).await?;
    let mut j = task_json(&t, Some(&p));
    if let Some(step) = p.step(&t.step) {
        j["description"] = step.description.clone().into();
        j["form"] = form_json(step.form());
        j["outcomes"] = step
            .outcomes()
            .iter()
            .map(|o| serde_json::json!({"id": o.id, "label": o.display_name()}))
            .collect::<Vec<_>>()
            .into();
    }
    Ok(Json(j).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct Decision {
    outcome: Option<String>,
    #[serde(default)]
    fields: Fields,
    /// Why, shown to staff in the timeline (required by outcomes declared `comment=#true`).
    comment: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Delegation {
    to: String,
}

/// Runs a command on a task the account may act on; a task closed meanwhile is a conflict
/// naming who closed it.
async fn act(s: &AppState, email: &str, instance: &str, seq: u32, command: Command) -> ApiResult {
    // May the account act on the task? Checked on the request as the command finds it (no
    // read of the task before): it is open, and theirs or open to one of their roles.
    let roles = s.engine.roles_of(email).await?;
    let before = std::sync::Mutex::new(None);
    let allowed = |p: &Process, inst: &core::Instance| {
        let task = inst
            .tasks
            .get(&seq)
            .map(|t| guichet_engine::runtime::TaskRow::open(instance, p, t))
            .filter(|t| Engine::may_act(&roles, email, &p.name, t));
        let ok = task.is_some();
        if let Ok(mut before) = before.lock() {
            *before = task;
        }
        ok
    };
    let completing = matches!(command, Command::Complete { .. });
    let closed_by = |t: &guichet_engine::runtime::TaskRow| {
        t.closed_by
            .clone()
            .unwrap_or_else(|| "someone else".to_owned())
    };
    let inst = match s.engine.execute_if(instance, command, &allowed).await {
        Ok(Some(inst)) => inst,
        Ok(None) => {
            // Not theirs, or not open: say which from the task's row.
            return Err(match s.engine.task(instance, seq).await? {
                Some((_, t)) if t.state != "open" && t.state != "claimed" => ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("the task is already {} by {}", t.state, closed_by(&t)),
                ),
                _ => ApiError::not_found("open task"),
            });
        }
        Err(Error::NotFound(_)) => return Err(ApiError::not_found("open task")),
        Err(Error::Refused(core::Error::UnknownTask(_)) | Error::Conflict(_)) => {
            let by = s
                .engine
                .task(instance, seq)
                .await?
                .map_or_else(|| "someone else".to_owned(), |(_, t)| closed_by(&t));
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("the task was closed meanwhile by {by}"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let before = before
        .into_inner()
        .ok()
        .flatten()
        .ok_or_else(|| ApiError::not_found("open task"))?;
    let p = s.engine.process_of(instance).await?;
    // The task as it now is: still open (claimed, released, delegated), in the new state;
    // completed, as the command closed it; else as stored.
    let after = match inst.tasks.get(&seq) {
        Some(t) => Some(guichet_engine::runtime::TaskRow::open(instance, &p, t)),
        None if completing => Some(guichet_engine::runtime::TaskRow {
            state: "completed".to_owned(),
            closed_by: Some(email.to_owned()),
            ..before
        }),
        None => s.engine.task(instance, seq).await?.map(|(_, t)| t),
    };
    // The task as it is now, and where its request stands (so that a client need not read
    // the request back to find the next tasks).
    let body = after.map(|t| {
        let mut j = task_json(&t, Some(&p));
        j["request"] = standing(instance, &p, &inst).into();
        j
    });
    Ok(Json(body).into_response())
}

/// Authenticates, then runs the command `make` builds for the account on the task.
async fn act_as(
    s: &AppState,
    headers: &HeaderMap,
    instance: &str,
    seq: u32,
    make: impl FnOnce(String) -> Command,
) -> ApiResult {
    let email = account(s, headers, Scope::Act).await?;
    let command = make(email.clone());
    act(s, &email, instance, seq, command).await
}

/// `POST /api/v1/tasks/{request}/{task}/claim`
pub(crate) async fn claim(
    State(s): Shared,
    headers: HeaderMap,
    Path((instance, seq)): Path<(String, u32)>,
) -> ApiResult {
    act_as(&s, &headers, &instance, seq, |user| Command::Claim {
        task: seq,
        user,
    })
    .await
}

/// `POST /api/v1/tasks/{request}/{task}/release`
pub(crate) async fn release(
    State(s): Shared,
    headers: HeaderMap,
    Path((instance, seq)): Path<(String, u32)>,
) -> ApiResult {
    act_as(&s, &headers, &instance, seq, |user| Command::Release {
        task: seq,
        user,
    })
    .await
}

/// `POST /api/v1/tasks/{request}/{task}/delegate` with `{"to": "person@example.org"}`
pub(crate) async fn delegate(
    State(s): Shared,
    headers: HeaderMap,
    Path((instance, seq)): Path<(String, u32)>,
    Json(body): Json<Delegation>,
) -> ApiResult {
    let to = core::Recipient::Person(body.to.trim().to_lowercase());
    act_as(&s, &headers, &instance, seq, |by| Command::Delegate {
        task: seq,
        by,
        to,
    })
    .await
}

/// `GET /api/v1/preferences`: how the account gets task emails.
pub(crate) async fn preferences(State(s): Shared, headers: HeaderMap) -> ApiResult {
    let email = account(&s, &headers, Scope::Read).await?;
    let p = s.engine.mail_preference(&email).await?;
    Ok(Json(p).into_response())
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct PreferenceBody {
    /// One daily digest instead of an email per new task and reminder.
    digest: bool,
    /// `fr` (default) or `en`.
    language: Option<String>,
}

/// `POST /api/v1/preferences` with `{"digest": true, "language": "en"}`.
pub(crate) async fn set_preferences(
    State(s): Shared,
    headers: HeaderMap,
    Json(body): Json<PreferenceBody>,
) -> ApiResult {
    let email = account(&s, &headers, Scope::Act).await?;
    let language = match body.language.as_deref() {
        None => guichet_engine::definitions::model::Language::Fr,
        Some(code)
            if let Some(l) = guichet_engine::definitions::model::Language::from_code(code) =>
        {
            l
        }
        Some(other) => {
            return Err(ApiError {
                fields: Some(
                    serde_json::json!({"language": format!("`{other}` is not a language: fr or en")}),
                ),
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid",
                    "some fields are not valid; nothing was saved",
                )
            });
        }
    };
    let p = s
        .engine
        .set_mail_preference(&email, body.digest, language)
        .await?;
    Ok(Json(p).into_response())
}

/// `POST /api/v1/tasks/{request}/{task}/complete` with `{"outcome": "...", "fields": {...}}`
/// (documents in a multipart call: see [`body_and_documents`]).
pub(crate) async fn complete(
    State(s): Shared,
    headers: HeaderMap,
    Path((instance, seq)): Path<(String, u32)>,
    request: axum::extract::Request,
) -> ApiResult {
    let email = account(&s, &headers, Scope::Act).await?;
    // The task's form matters only for documents: those of a multipart call, or a JSON body
    // giving an object (a document's description) for a field. It is read only then, so that
    // a common decision reads nothing before its command (whether the account may act is
    // checked on the request as the command finds it, as for every action).
    let multipart = form::is_multipart(request.headers());
    let found = if multipart {
        task_step(&s, &instance, seq).await?
    } else {
        None
    };
    let (mut body, documents): (Decision, _) = body_and_documents(&s, request, |f| {
        form_of(&found).and_then(|form| form.field(f))
    })
    .await?;
    let found = if !multipart && body.fields.values().any(serde_json::Value::is_object) {
        task_step(&s, &instance, seq).await?
    } else {
        found
    };
    documents_sent(
        &documents,
        &form::file_fields(form_of(&found)),
        &body.fields,
    )?;
    body.fields.extend(documents.documents());
    let command = Command::Complete {
        task: seq,
        user: email.clone(),
        outcome: body.outcome,
        fields: body.fields,
        comment: body.comment,
    };
    let answer = act(&s, &email, &instance, seq, command).await?;
    documents.keep().await;
    Ok(answer)
}

/// The form of the step found by [`task_step`].
fn form_of(
    found: &Option<(std::sync::Arc<Process>, String)>,
) -> Option<&guichet_definitions::model::Form> {
    found
        .as_ref()
        .and_then(|(p, step)| p.step(step))
        .and_then(|st| st.form())
}

/// The process of a task's request and the task's step, if the task exists.
async fn task_step(
    s: &AppState,
    instance: &str,
    seq: u32,
) -> Result<Option<(std::sync::Arc<Process>, String)>, ApiError> {
    match s.engine.task(instance, seq).await? {
        Some((_, t)) => Ok(Some((s.engine.process_of(instance).await?, t.step))),
        None => Ok(None),
    }
}

/// `GET /api/v1/requests/{id}/documents/{sha256}`: a document of the request, for those who
/// may see the request; always an attachment.
pub(crate) async fn document(
    State(s): Shared,
    headers: HeaderMap,
    Path((id, sha256)): Path<(String, String)>,
) -> ApiResult {
    let email = account(&s, &headers, Scope::Read).await?;
    visible(&s, &email, &id).await?;
    let dossier = s
        .engine
        .dossier(&id, guichet_engine::core::dossier::Audience::Staff)
        .await?;
    match documents::download(&s, &dossier, &sha256).await {
        Ok(r) if r.status() == StatusCode::NOT_FOUND => Err(ApiError::not_found("document")),
        Ok(r) => Ok(r),
        Err(crate::Failure::Error(e)) => Err(e.into()),
        Err(crate::Failure::Page(r)) => Ok(r),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct FetchAndLock {
    provider: String,
    #[serde(default = "default_max")]
    max: i64,
    #[serde(default = "default_lock")]
    lock_seconds: i64,
}

fn default_max() -> i64 {
    10
}

fn default_lock() -> i64 {
    300
}

/// The pull provider an account may work for: its own service account, or an administrator.
async fn pull_provider(s: &AppState, email: &str, provider: &str) -> Result<(), ApiError> {
    let pulls = s
        .webhooks
        .as_ref()
        .is_some_and(|w| w.pull.iter().any(|p| p == provider));
    if !pulls {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "`{provider}` is not a provider that pulls its work (--provider {provider}=pull)"
            ),
        ));
    }
    if email == format!("provider:{provider}") || s.engine.is_admin(email).await? {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this token does not act for `{provider}` (see `guichet token create --provider`)"
            ),
        ))
    }
}

/// `POST /api/v1/external-tasks/fetch-and-lock`: a provider takes up to `max` of its waiting
/// calls, locked for `lock_seconds`; each comes with the fencing `attempt` to complete it with.
pub(crate) async fn fetch_and_lock(
    State(s): Shared,
    headers: HeaderMap,
    Json(body): Json<FetchAndLock>,
) -> ApiResult {
    let email = account(&s, &headers, Scope::Act).await?;
    pull_provider(&s, &email, &body.provider).await?;
    let now = s.engine.now();
    let lock_ms = body.lock_seconds.clamp(1, 86_400) * 1000;
    let claimed = s
        .engine
        .claim_outbox_of(
            now,
            lock_ms,
            body.max.clamp(1, 100),
            "webhook",
            guichet_engine::runtime::outbox::Providers::Only(&body.provider),
            guichet_engine::runtime::outbox::Holder::Worker,
        )
        .await?;
    let mut out = Vec::new();
    for m in claimed {
        let core::Effect::CallProvider { step, .. } = &m.effect else {
            continue;
        };
        let p = s.engine.process_of(&m.instance).await?;
        let (desk, inst) = s.engine.instance(&m.instance).await?;
        let def = p.step(step);
        out.push(serde_json::json!({
            "id": m.id, "attempt": m.attempt, "desk": desk, "request": m.instance,
            "reference": core::reference(&m.instance), "title": core::request_title(&p, &inst),
            "step": step, "provider": body.provider,
            "lock_expires_at": timestamp(Some(now.0 + lock_ms)),
            "outcomes": def.map(|d| d.outcomes().iter().map(|o| o.id.clone()).collect::<Vec<_>>()),
            "form": form_json(def.and_then(|d| d.form())),
        }));
    }
    Ok(Json(out).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct PulledResult {
    provider: String,
    attempt: i64,
    outcome: Option<String>,
    #[serde(default)]
    fields: Fields,
}

/// `POST /api/v1/external-tasks/{id}/complete`: the provider's answer for work it locked
/// (documents for the call's file fields in a multipart call: see [`body_and_documents`]).
pub(crate) async fn complete_external(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> ApiResult {
    let email = account(&s, &headers, Scope::Act).await?;
    // The call steps of the message's request, whose forms say what documents it may carry.
    let p = match s.engine.outbox_message(&id).await {
        Ok(m) => match m.instance {
            Some(instance) => Some(s.engine.process_of(&instance).await?),
            None => None,
        },
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let calls = |field: &str| {
        p.as_ref().and_then(|p| {
            p.steps
                .iter()
                .filter(|st| matches!(st.kind, StepKind::Call(_)))
                .find_map(|st| st.form().and_then(|f| f.field(field)))
        })
    };
    let (mut body, documents): (PulledResult, _) = body_and_documents(&s, request, calls).await?;
    pull_provider(&s, &email, &body.provider).await?;
    let file_fields = form::file_fields(p.iter().flat_map(|p| {
        p.steps
            .iter()
            .filter(|st| matches!(&st.kind, StepKind::Call(c) if c.provider == body.provider))
            .filter_map(|st| st.form())
    }));
    documents_sent(&documents, &file_fields, &body.fields)?;
    let sent = documents.documents();
    body.fields.extend(sent);
    s.engine
        .complete_pulled(&id, &body.provider, body.attempt, body.outcome, body.fields)
        .await?;
    documents.keep().await;
    Ok(Json(serde_json::json!({"id": id, "completed": true})).into_response())
}

/// The routes of the API, with their OpenAPI summaries (the document is built from this
/// list, so every route is documented).
pub(crate) const ROUTES: &[(&str, &str, &str)] = &[
    (
        "get",
        "/api/v1/desks",
        "The deployed desks and their intake forms",
    ),
    (
        "post",
        "/api/v1/desks/{name}/requests",
        "Submit a request to a desk: body {\"fields\": {...}}; 201 with its id and reference; an Idempotency-Key header makes a retry return the first answer (Idempotent-Replayed: true)",
    ),
    (
        "get",
        "/api/v1/requests/{id}",
        "A request: status, open tasks, history (left out with ?history=false)",
    ),
    (
        "post",
        "/api/v1/requests/{id}/events/{name}",
        "Answer the wait for event `name` that is open now: body {\"fields\": {...}}; open to the wait's `from` role; 409 when nothing waits for it",
    ),
    (
        "get",
        "/api/v1/requests/{id}/documents/{sha256}",
        "A document of the request (an attachment, with its media type)",
    ),
    (
        "post",
        "/api/v1/requests/{id}/withdraw",
        "Withdraw the request (open tasks and timers cancelled): body {\"reason\": \"...\"}",
    ),
    (
        "get",
        "/api/v1/tasks",
        "The account's inbox: its tasks and its roles' tasks",
    ),
    (
        "get",
        "/api/v1/tasks/{request}/{task}",
        "A task, its form and its outcomes",
    ),
    (
        "post",
        "/api/v1/tasks/{request}/{task}/claim",
        "Take the task",
    ),
    (
        "post",
        "/api/v1/tasks/{request}/{task}/release",
        "Give the task back to its role",
    ),
    (
        "post",
        "/api/v1/tasks/{request}/{task}/delegate",
        "Hand the task to a person: body {\"to\": \"email\"}",
    ),
    (
        "post",
        "/api/v1/tasks/{request}/{task}/complete",
        "Decide the task: body {\"outcome\": \"id\", \"fields\": {...}}",
    ),
    (
        "get",
        "/api/v1/preferences",
        "How the account gets task emails: {\"email\", \"digest\", \"language\"}",
    ),
    (
        "post",
        "/api/v1/preferences",
        "One daily digest instead of an email per new task and reminder: body {\"digest\": true, \"language\": \"fr\"}",
    ),
    (
        "post",
        "/api/v1/external-tasks/fetch-and-lock",
        "A pull provider takes its waiting calls: body {\"provider\": \"id\", \"max\": 10, \"lock_seconds\": 300}",
    ),
    (
        "post",
        "/api/v1/external-tasks/{id}/complete",
        "A pull provider answers a call it locked: body {\"provider\", \"attempt\", \"outcome\", \"fields\"}",
    ),
];

/// `GET /api/openapi.json`: the OpenAPI 3.1 document of the API.
pub(crate) async fn openapi() -> Response {
    let mut paths = serde_json::Map::new();
    for (method, path, summary) in ROUTES {
        let params: Vec<_> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                serde_json::json!({"name": name, "in": "path", "required": true,
                    "schema": {"type": if name == "task" { "integer" } else { "string" }}})
            })
            .collect();
        let mut op = serde_json::json!({
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {}}},
                "401": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
                "409": {"$ref": "#/components/responses/Error"},
                "422": {"$ref": "#/components/responses/Error"},
            },
        });
        if *method == "post" {
            op["requestBody"] = serde_json::json!({"required": false,
                "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        paths
            .entry((*path).to_owned())
            .or_insert_with(|| serde_json::json!({}))[*method] = op;
    }
    Json(serde_json::json!({
        "openapi": "3.1.0",
        "info": {"title": "guichet", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Health-data access desks: requests, tasks, decisions."},
        "security": [{"token": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                "description": "An API token from `guichet token create EMAIL` (scopes read, submit, act; expires)"}},
            "responses": {"Error": {"description": "An error with a stable code",
                "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"error": {"type": "object", "required": ["code", "message"],
                        "properties": {"code": {"type": "string", "enum":
                            ["unauthorized", "forbidden", "not_found", "invalid", "refused", "conflict", "unavailable", "internal", "invalid_idempotency_key", "idempotency_key_reused"]},
                            "message": {"type": "string"},
                            "fields": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}}}},
        },
    }))
    .into_response()
}
