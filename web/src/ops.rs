//! Operations and machines: health, metrics, and provider callbacks.

use super::*;

pub(crate) async fn callback(
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

/// Alive and able to read the database.
pub(crate) async fn healthz(State(s): Shared) -> Response {
    match s.engine.gauges().await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")).into_response(),
    }
}

/// Prometheus text format.
pub(crate) async fn metrics(State(s): Shared) -> Response {
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
