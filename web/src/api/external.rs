//! Providers that pull their work (`--provider ID=pull`): they take their waiting calls,
//! locked for a while, and answer each with the fencing attempt it came with.

use super::schema::{ExternalCompleted, FetchAndLock, LockedCall, PulledResult, Upload};
use super::*;

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

/// A pull provider takes up to `max` of its waiting calls, locked for `lock_seconds`; each
/// comes with the fencing `attempt` to complete it with.
#[utoipa::path(post, path = "/api/v1/external-tasks/fetch-and-lock", tag = "external",
    request_body = FetchAndLock,
    responses(
        (status = 200, description = "The calls taken (none when nothing waits)",
            body = Vec<LockedCall>),
        (status = 404, description = "Not a provider that pulls its work (`not_found`)",
            body = ErrorBody),
    ))]
pub(crate) async fn fetch_and_lock(
    State(s): Shared,
    caller: Caller,
    ApiJson(body): ApiJson<FetchAndLock>,
) -> ApiResult<Json<Vec<LockedCall>>> {
    let email = caller.may(Scope::Act)?;
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
        out.push(LockedCall {
            id: m.id.clone(),
            attempt: m.attempt,
            desk,
            reference: core::reference(&m.instance),
            title: core::request_title(&p, &inst),
            request: m.instance.clone(),
            step: step.clone(),
            provider: body.provider.clone(),
            lock_expires_at: Some(guichet_engine::clock::Timestamp(now.0 + lock_ms).rfc3339()),
            outcomes: def.map(|d| d.outcomes().iter().map(|o| o.id.clone()).collect()),
            form: schema::form(def.and_then(|d| d.form())),
        });
    }
    Ok(Json(out))
}

/// A pull provider answers a call it locked: `{"provider", "attempt", "outcome",
/// "fields"}` (documents for the call's file fields as file parts of a multipart call).
#[utoipa::path(post, path = "/api/v1/external-tasks/{id}/complete", tag = "external",
    params(("id" = String, Path, description = "The call's id, from fetch-and-lock")),
    request_body(content(
        (PulledResult = "application/json"),
        (Upload = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "Taken", body = ExternalCompleted),
        (status = 409, description = "The lock was lost: another attempt holds the call \
            (`conflict`)", body = ErrorBody),
    ))]
pub(crate) async fn complete_external(
    State(s): Shared,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    request: axum::extract::Request,
) -> ApiResult<Json<ExternalCompleted>> {
    let email = caller.may(Scope::Act)?;
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
    Ok(Json(ExternalCompleted {
        id,
        completed: true,
    }))
}
