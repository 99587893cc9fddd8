//! Desks, submissions, requests, the events that answer their waits, their documents, and
//! withdrawal.

use super::schema::{
    Desk, FieldsBody, Request, RequestQuery, RequestStanding, Standing, Submitted, Upload,
    Withdrawal,
};
use super::*;

use guichet_definitions::model::Process;
use guichet_engine::runtime::Started;

/// The deployed desks and their intake forms.
#[utoipa::path(get, path = "/api/v1/desks", tag = "requests",
    responses((status = 200, description = "The desks", body = Vec<Desk>)))]
pub(crate) async fn desks(State(s): Shared, caller: Caller) -> ApiResult<Json<Vec<Desk>>> {
    caller.may(Scope::Read)?;
    let desks = s.engine.desks().await?;
    Ok(Json(desks.values().map(|p| Desk::of(p)).collect()))
}

/// Submit a request to a desk, as the portal's form does: `{"fields": {...}}` with the
/// intake form's values (documents as file parts of a multipart call, the JSON in its
/// `body` part). With an `Idempotency-Key`, a retry answers the first submission again.
#[utoipa::path(post, path = "/api/v1/desks/{name}/requests", tag = "requests",
    params(
        ("name" = String, Path, description = "The desk's name"),
        ("Idempotency-Key" = Option<String>, Header,
            description = "1 to 255 printable ASCII characters, the same for every retry"),
    ),
    request_body(content(
        (FieldsBody = "application/json"),
        (Upload = "multipart/form-data"),
    )),
    responses(
        (status = 201, description = "Submitted (or the first answer again, with \
            `Idempotent-Replayed: true`)", body = Submitted,
            headers(("Idempotent-Replayed" = String, description = "`true` on a retry"))),
        (status = 409, description = "The desk does not take it (`refused`)", body = ErrorBody),
    ))]
pub(crate) async fn start(
    State(s): Shared,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    request: axum::extract::Request,
) -> ApiResult {
    let email = caller.may(Scope::Submit)?;
    let key = idempotency_key(request.headers())?;
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
    let mut answer = Submitted {
        reference: core::reference(&id),
        id,
        status: None,
        result: None,
        open_tasks: None,
    };
    // Where it stands, for those who may see it: no need to read it back.
    if staff::may_see(&s, &email, &name).await? {
        let p = s.engine.process_of(&answer.id).await?;
        let standing = Standing::of(&answer.id, &p, &inst);
        answer.status = Some(standing.status);
        answer.result = standing.result;
        answer.open_tasks = Some(standing.open_tasks);
    }
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    if replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// A request: what was asked, what each step collected, where it stands and its history
/// (left out with `?history=false`).
#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "requests",
    params(("id" = String, Path, description = "The request's id"), RequestQuery),
    responses((status = 200, description = "The request", body = Request)))]
pub(crate) async fn request(
    State(s): Shared,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<RequestQuery>,
) -> ApiResult<Json<Request>> {
    let email = caller.may(Scope::Read)?;
    let (desk, inst) = visible(&s, &email, &id).await?;
    let p = s.engine.process_of(&id).await?;
    let with_history = query.history != Some(false);
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
    Ok(Json(Request {
        standing: Standing::of(&id, &p, &inst),
        id,
        reference: dossier.reference,
        desk,
        title: dossier.title,
        started_at: Some(inst.started_at.rfc3339()),
        ended_at: inst.ended_at.map(|t| t.rfc3339()),
        intake: dossier.intake,
        steps: dossier.steps,
        open_waits: dossier.open_waits,
        timeline: with_history.then_some(dossier.timeline),
        history: with_history.then_some(history),
    }))
}

/// The request and its desk, when the account may see it (404 otherwise).
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

/// Where a request stands after an action on it.
async fn standing_of(
    s: &AppState,
    id: &str,
    inst: &core::Instance,
) -> ApiResult<Json<RequestStanding>> {
    let p = s.engine.process_of(id).await?;
    Ok(Json(RequestStanding {
        id: id.to_owned(),
        standing: Standing::of(id, &p, inst),
    }))
}

/// Answer the wait for event `name` that is open now, with `{"fields": {...}}` (documents
/// as file parts of a multipart call). Open to the members of the wait's `from` role (to
/// the desk's staff when it names none) and to administrators; refused (409) when the
/// request does not wait for it now: an event is never kept for a later wait. With an
/// `Idempotency-Key` already used on the request, the request as it stands, unchanged.
#[utoipa::path(post, path = "/api/v1/requests/{id}/events/{name}", tag = "requests",
    params(
        ("id" = String, Path, description = "The request's id"),
        ("name" = String, Path, description = "The event's name, as its wait declares it"),
        ("Idempotency-Key" = Option<String>, Header,
            description = "1 to 255 printable ASCII characters, the same for every retry"),
    ),
    request_body(content(
        (FieldsBody = "application/json"),
        (Upload = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "Answered; where the request now stands",
            body = RequestStanding),
        (status = 409, description = "The request does not wait for it now (`refused`)",
            body = ErrorBody),
    ))]
pub(crate) async fn event(
    State(s): Shared,
    caller: Caller,
    ApiPath((id, name)): ApiPath<(String, String)>,
    request: axum::extract::Request,
) -> ApiResult {
    let email = caller.may(Scope::Act)?;
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
    let key = idempotency_key(request.headers())?;
    if key.as_ref().is_some_and(|k| inst.event_keys.contains(k)) {
        let mut answer = standing_of(&s, &id, &inst).await?.into_response();
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
            Ok(standing_of(&s, &id, &inst).await?.into_response())
        }
        Err(Error::Conflict(m)) => Err(ApiError::new(StatusCode::CONFLICT, "refused", m)),
        Err(e) => Err(e.into()),
    }
}

/// Withdraw the request, with `{"reason": "..."}`: its open tasks and timers are
/// cancelled. Open to the desk's staff and to administrators.
#[utoipa::path(post, path = "/api/v1/requests/{id}/withdraw", tag = "requests",
    params(("id" = String, Path, description = "The request's id")),
    request_body = Withdrawal,
    responses(
        (status = 200, description = "Withdrawn; where the request now stands",
            body = RequestStanding),
        (status = 409, description = "It has ended already (`refused`)", body = ErrorBody),
    ))]
pub(crate) async fn withdraw(
    State(s): Shared,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Withdrawal>,
) -> ApiResult<Json<RequestStanding>> {
    let email = caller.may(Scope::Act)?;
    visible(&s, &email, &id).await?;
    let reason = body.reason.map(|r| r.trim().to_owned()).unwrap_or_default();
    if let Err(e) = core::form::comment(Some(&reason), None) {
        return Err(ApiError::invalid(
            "the reason is not valid; nothing was saved",
            serde_json::json!({ "reason": e.message }),
        ));
    }
    let actor = core::Actor::User(email);
    match s.engine.withdraw(&id, actor, &reason, &|_, _| true).await {
        Ok(inst) => standing_of(&s, &id, &inst).await,
        Err(Error::Conflict(m)) => Err(ApiError::new(StatusCode::CONFLICT, "refused", m)),
        Err(e) => Err(e.into()),
    }
}

/// A document of the request, for those who may see the request: always an attachment,
/// with its media type.
#[utoipa::path(get, path = "/api/v1/requests/{id}/documents/{sha256}", tag = "requests",
    params(
        ("id" = String, Path, description = "The request's id"),
        ("sha256" = String, Path, description = "The document's SHA-256, in hexadecimal",
            pattern = "^[0-9a-f]{64}$"),
    ),
    responses((status = 200, description = "The document's bytes",
        content_type = "application/octet-stream", body = Vec<u8>)))]
pub(crate) async fn document(
    State(s): Shared,
    caller: Caller,
    ApiPath((id, sha256)): ApiPath<(String, String)>,
) -> ApiResult {
    let email = caller.may(Scope::Read)?;
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
