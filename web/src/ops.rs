//! Operations and machines: health, metrics, and provider callbacks.

use super::*;

/// What a request does, for admission under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Monitoring: always answered.
    Exempt,
    /// Moves existing work forward (a decision, a claim, a provider's answer): always taken,
    /// since refusing it would keep the work, and the load, in the system.
    Progress,
    /// New work or reading: refused with 503 while the node is at its limit.
    Other,
}

/// The class of a request, by method and route pattern.
pub(crate) fn admission(method: &axum::http::Method, route: &str) -> Admission {
    match route {
        "/healthz" | "/readyz" | "/livez" | "/metrics" => Admission::Exempt,
        // Asking for a fresh link moves no work forward: it waits its turn like any other.
        "/l/{token}"
        | "/tasks/{instance}/{seq}"
        | "/callbacks/{token}"
        | "/logout"
        | "/api/v1/tasks/{request}/{task}/claim"
        | "/api/v1/tasks/{request}/{task}/release"
        | "/api/v1/tasks/{request}/{task}/delegate"
        | "/api/v1/tasks/{request}/{task}/complete"
        | "/api/v1/external-tasks/{id}/complete"
            if method == axum::http::Method::POST =>
        {
            Admission::Progress
        }
        _ => Admission::Other,
    }
}

/// The route pattern a request matched (`/l/{token}`, never the path with its token).
fn route_of(request: &axum::extract::Request) -> Option<&str> {
    request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)
}

/// Counts a request in flight for as long as it lives (also when its client goes away).
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Backpressure: a node works on at most `max_in_flight` requests; beyond, new work and reads
/// get 503 with `Retry-After` (a JSON error under `/api/`), while decisions on existing work
/// and monitoring are still taken.
pub(crate) async fn admit(
    s: Arc<AppState>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = route_of(&request).unwrap_or_default();
    let class = admission(request.method(), route);
    if class == Admission::Exempt {
        return next.run(request).await;
    }
    let now = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let guard = InFlight(in_flight);
    if class == Admission::Other && now >= s.max_in_flight {
        drop(guard);
        tracing::warn!(
            route,
            in_flight = now,
            "over the limit of requests in flight: 503"
        );
        let mut r = if route.starts_with("/api/") {
            api::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "too many requests at once on this node; try again in a few seconds",
            )
            .into_response()
        } else {
            let heading = text("error-overloaded");
            let data =
                serde_json::json!({"heading": heading, "message": text("error-overloaded-text")});
            page(StatusCode::SERVICE_UNAVAILABLE, "error", &heading, &data)
        };
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    }
    let response = next.run(request).await;
    drop(guard);
    response
}

pub(crate) async fn callback(
    State(s): Shared,
    Path(token): Path<String>,
    headers: HeaderMap,
    request: axum::extract::Request,
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
    let refused = |status: StatusCode, code: &str, message: String| {
        (
            status,
            Json(serde_json::json!({"error": code, "message": message})),
        )
            .into_response()
    };
    let multipart = form::is_multipart(&headers);
    // A multipart callback: its JSON in a part named `body` (what the signature covers),
    // its documents in file parts named after their fields, staged under their limits.
    let (body, documents) = if multipart {
        let form = match callback_form(&s, &token).await {
            Ok(form) => form,
            Err(r) => return r,
        };
        let submission = match form::Submission::read(&s, request, |_, f| {
            form.as_ref()
                .and_then(|(p, step)| p.steps[*step].form())
                .and_then(|x| x.field(f))
        })
        .await
        {
            Ok(sub) => sub,
            Err(r) => return r,
        };
        if let Some((field, why)) = submission.errors.iter().next() {
            return refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "refused",
                format!("document `{field}`: {why}"),
            );
        }
        let body = Bytes::from(submission.values.get("body").cloned().unwrap_or_default());
        (body, Some(submission))
    } else {
        match axum::body::to_bytes(request.into_body(), 2_000_000).await {
            Ok(b) => (b, None),
            Err(_) => {
                return refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "malformed",
                    "the body is larger than 2 MB: send documents as file parts of a multipart callback"
                        .to_owned(),
                );
            }
        }
    };
    let files = documents
        .as_ref()
        .map(form::Submission::documents)
        .unwrap_or_default();
    match hooks
        .accept_callback_with(&token, signature, &body, &files)
        .await
    {
        Ok(_) => {
            if let Some(d) = documents {
                d.keep().await;
            }
            (StatusCode::OK, Json(serde_json::json!({"ok": true}))).into_response()
        }
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
            refused(status, code, e.to_string())
        }
    }
}

/// The process and call step a callback token answers, for the limits of its documents.
async fn callback_form(
    s: &AppState,
    token: &str,
) -> Result<Option<(std::sync::Arc<guichet_definitions::model::Process>, usize)>, Response> {
    let Ok(grant) = s.engine.callback_grant(token).await else {
        return Err((
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "unknown-callback"})),
        )
            .into_response());
    };
    let (_, inst) = s
        .engine
        .instance(&grant.instance)
        .await
        .map_err(|e| failure(&e))?;
    let p = s
        .engine
        .process_of(&grant.instance)
        .await
        .map_err(|e| failure(&e))?;
    Ok(inst.tokens.get(&grant.token).map(|t| (p, t.step)))
}

/// Latency histogram buckets, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Debug, Default)]
struct Histogram {
    /// Cumulative counts per bucket (Prometheus `le`), then the total.
    buckets: [u64; 10],
    count: u64,
    sum: f64,
}

/// (method, route, status) -> latencies, for the whole process.
type Latencies = std::sync::Mutex<std::collections::BTreeMap<(String, String, u16), Histogram>>;

fn latencies() -> &'static Latencies {
    static L: std::sync::OnceLock<Latencies> = std::sync::OnceLock::new();
    L.get_or_init(Latencies::default)
}

/// Records how long each request took, by route (the pattern, not the path, so tokens and
/// ids never reach the metrics) and status.
pub(crate) async fn track(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = route_of(&request).unwrap_or("unmatched").to_owned();
    let method = request.method().as_str().to_owned();
    let began = std::time::Instant::now();
    let response = next.run(request).await;
    let seconds = began.elapsed().as_secs_f64();
    // One line per request, by route pattern: tokens in paths (`/l/{token}`) never reach logs.
    let status = response.status().as_u16();
    let ms = (seconds * 1000.0 * 10.0).round() / 10.0;
    if status >= 500 {
        tracing::warn!(target: "guichet::http", method, route, status, ms, "request");
    } else {
        tracing::info!(target: "guichet::http", method, route, status, ms, "request");
    }
    if let Ok(mut l) = latencies().lock() {
        let h = l
            .entry((method, route, response.status().as_u16()))
            .or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }
    response
}

fn write_latencies(out: &mut String) {
    use std::fmt::Write;
    out.push_str("# HELP guichet_http_request_duration_seconds Time to answer, by route and status.\n# TYPE guichet_http_request_duration_seconds histogram\n");
    let Ok(l) = latencies().lock() else { return };
    for ((method, route, status), h) in l.iter() {
        let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
        for (le, n) in BUCKETS.iter().zip(h.buckets) {
            let _ = writeln!(
                out,
                "guichet_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "guichet_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "guichet_http_request_duration_seconds_sum{{{labels}}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "guichet_http_request_duration_seconds_count{{{labels}}} {}",
            h.count
        );
    }
}

/// `GET /healthz` and `/readyz`: ready to serve, as [`Engine::readiness`] checks (every table
/// answers, the database takes a write, the background workers do their work); else 503
/// with the cause, for a load balancer to send the work elsewhere.
pub(crate) async fn healthz(State(s): Shared) -> Response {
    match s.engine.readiness().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: /healthz answers 503");
            let cause = match e {
                Error::Unready(problem) => format!("not ready: {problem}"),
                e => format!("not ready: database: {e}"),
            };
            (StatusCode::SERVICE_UNAVAILABLE, cause).into_response()
        }
    }
}

/// `GET /livez`: the process answers. A supervisor restarts a node when this fails, not when
/// `/healthz` does (a restart does not mend a database).
pub(crate) async fn livez() -> Response {
    (StatusCode::OK, "ok").into_response()
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
    out.push_str("# HELP guichet_requests_with_timers Requests with a scheduled timer.\n# TYPE guichet_requests_with_timers gauge\n");
    let _ = writeln!(
        out,
        "guichet_requests_with_timers {}",
        g.requests_with_timers
    );
    out.push_str("# HELP guichet_timers_due Requests whose earliest timer is due and not fired yet.\n# TYPE guichet_timers_due gauge\n");
    let _ = writeln!(out, "guichet_timers_due {}", g.timers_due);
    let m = s.engine.remembered();
    out.push_str("# HELP guichet_requests_remembered Requests this process remembers as it last wrote them.\n# TYPE guichet_requests_remembered gauge\n");
    let _ = writeln!(out, "guichet_requests_remembered {}", m.remembered);
    out.push_str("# HELP guichet_commands_from_memory_total Commands prepared from a remembered request.\n# TYPE guichet_commands_from_memory_total counter\n");
    let _ = writeln!(out, "guichet_commands_from_memory_total {}", m.used);
    out.push_str("# HELP guichet_remembered_stale_total Remembered requests found changed by another node or process.\n# TYPE guichet_remembered_stale_total counter\n");
    let _ = writeln!(out, "guichet_remembered_stale_total {}", m.stale);
    out.push_str("# HELP guichet_memory_trusted 1 when remembered requests are used without reading them, 0 when too often out of date (their version is read first).\n# TYPE guichet_memory_trusted gauge\n");
    let _ = writeln!(out, "guichet_memory_trusted {}", u8::from(m.trusted));
    write_latencies(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
