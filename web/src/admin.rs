//! Administration, for administrators only (others get the not-found page): the desks and
//! their revisions, deploying a new revision with the checker's diagnostics in the page, the
//! indicators dashboard (charts with the tables behind them and CSV downloads), the requests
//! with filters, the outbox with its dead letters to retry, and the staff accounts with the
//! role membership of every desk.

use super::*;

use guichet_definitions::model::RoleSource;
use guichet_engine::indicators::charts;
use guichet_engine::indicators::export::csv_text;
use guichet_engine::indicators::kpi::{Compare, Query};
use guichet_engine::runtime::tokens::{DEFAULT_DAYS, NewToken, Scope, Scopes};

/// The signed-in administrator and their session token.
async fn admin(s: &AppState, headers: &HeaderMap) -> Result<(String, String), Response> {
    let (email, token) = staff::staff(s, headers).await?;
    if s.engine.is_admin(&email).await.unwrap_or(false) {
        Ok((email, token))
    } else {
        Err(staff::not_found())
    }
}

fn day(t: Option<i64>) -> String {
    t.map(|t| date(guichet_engine::clock::Timestamp(t)))
        .unwrap_or_default()
}

/// A form posted by the signed-in administrator, with its anti-forgery token checked.
async fn admin_form(
    s: &AppState,
    headers: &HeaderMap,
    values: &HashMap<String, String>,
) -> Result<String, Response> {
    let (_, token) = admin(s, headers).await?;
    if csrf_ok(s, &token, values).await {
        Ok(token)
    } else {
        Err(expired_form("admin-expired"))
    }
}

/// `GET /admin`: the desks, their revisions and requests.
pub(crate) async fn overview(State(s): Shared, headers: HeaderMap) -> Response {
    let (email, token) = match admin(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let result = async {
        let counts = s.engine.requests(None, None, i64::MAX).await?;
        let mut desks: Vec<serde_json::Value> = Vec::new();
        for (name, revision, version, deployed) in s.engine.definitions().await? {
            let latest = !desks.iter().any(|d| d["name"] == name.as_str());
            let of = |status: &str| {
                counts
                    .iter()
                    .filter(|r| r.desk == name && r.status == status)
                    .count()
            };
            desks.push(serde_json::json!({
                "name": name, "revision": revision, "version": version,
                "deployed": day(Some(deployed)), "latest": latest,
                "running": if latest { of("running") } else { 0 },
                "ended": if latest { of("ended") } else { 0 },
            }));
        }
        let data = serde_json::json!({
            "email": email, "csrf": s.engine.csrf_for(&token).await?,
            "desks": desks, "source": "", "problems": "", "deployed": "",
        });
        Ok::<_, Error>(page(StatusCode::OK, "admin", &text("admin-heading"), &data))
    }
    .await;
    result.unwrap_or_else(|e| failure(&e))
}

/// `POST /admin/definitions`: deploys a definition pasted in the page; a definition with
/// errors is not deployed, and its diagnostics are shown next to the source.
pub(crate) async fn deploy(
    State(s): Shared,
    headers: HeaderMap,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    let token = match admin_form(&s, &headers, &values).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let source = values.get("source").cloned().unwrap_or_default();
    let (status, problems, deployed) = match s.engine.deploy(&source).await {
        Ok(d) => (
            StatusCode::OK,
            String::new(),
            text_with(
                if d.new {
                    "admin-deployed-what"
                } else {
                    "admin-deployed-again"
                },
                &[
                    ("name", (&d.name).into()),
                    ("revision", d.revision.into()),
                    ("version", i64::from(d.version).into()),
                ],
            ),
        ),
        Err(Error::Definition(diags)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            guichet_definitions::diagnostic::render(&diags, "définition", &source, false),
            String::new(),
        ),
        Err(e) => return failure(&e),
    };
    let data = serde_json::json!({
        "email": "", "csrf": s.engine.csrf_for(&token).await.unwrap_or_default(),
        "desks": [], "source": if problems.is_empty() { "" } else { source.as_str() },
        "problems": problems, "deployed": deployed,
    });
    page(status, "admin", &text("admin-heading"), &data)
}

fn compare_of(v: Option<&String>) -> Compare {
    match v.map(String::as_str) {
        Some("version") => Compare::Version,
        Some("month") => Compare::Month,
        Some("quarter") => Compare::Quarter,
        _ => Compare::Model,
    }
}

/// `GET /admin/indicators?compare=model|version|month|quarter`: the dashboard.
pub(crate) async fn indicators(
    State(s): Shared,
    headers: HeaderMap,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admin(&s, &headers).await {
        return r;
    }
    let compare = compare_of(params.get("compare"));
    let q = Query {
        compare,
        ..Query::default()
    };
    let label = |desk: &str, group: &str| {
        if group.is_empty() {
            desk.to_owned()
        } else {
            format!("{desk} · {group}")
        }
    };
    let result = async {
        let leads = s.engine.lead_times(&q).await?;
        let kpis = s.engine.kpis(&q).await?;
        let steps = s
            .engine
            .step_timings(&Query {
                compare: Compare::Model,
                ..Query::default()
            })
            .await?;
        let matrix = s.engine.maturity_matrix(&Query::default()).await?;
        let (waiting, working) = (text("indicators-waiting"), text("indicators-working"));
        let lead_svg = charts::box_plot(
            &text("indicators-lead-chart"),
            &text("indicators-days"),
            &leads
                .iter()
                .map(|l| (label(&l.desk, &l.group), l.stats))
                .collect::<Vec<_>>(),
        );
        let mut per_desk: Vec<serde_json::Value> = Vec::new();
        let mut desks: Vec<&str> = steps.iter().map(|r| r.desk.as_str()).collect();
        desks.dedup();
        for desk in desks {
            let of_desk: Vec<_> = steps.iter().filter(|r| r.desk == desk).collect();
            per_desk.push(serde_json::json!({
                "desk": desk,
                "svg": charts::task_times(
                    &text_with("indicators-task-times", &[("desk", desk.into())]),
                    &text("indicators-days"),
                    [&waiting, &working],
                    &of_desk,
                ),
            }));
        }
        let fmt = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_default();
        let kpi_rows: Vec<_> = kpis
            .iter()
            .map(|k| {
                serde_json::json!({
                    "group": label(&k.desk, &k.group), "title": k.title.clone().unwrap_or(k.kpi.clone()),
                    "value": fmt(k.value), "unit": k.unit, "target": fmt(k.target),
                    "verdict": match k.meets_target { Some(true) => text("indicators-met"), Some(false) => text("indicators-missed"), None => String::new() },
                })
            })
            .collect();
        let lead_rows: Vec<_> = leads
            .iter()
            .map(|l| {
                serde_json::json!({
                    "group": label(&l.desk, &l.group), "n": l.stats.n, "mean": fmt(Some(l.stats.mean)),
                    "median": fmt(Some(l.stats.median)), "p90": fmt(Some(l.stats.p90)),
                    "max": fmt(Some(l.stats.max)),
                })
            })
            .collect();
        let compare_name = match compare {
            Compare::Model => "model",
            Compare::Version => "version",
            Compare::Month => "month",
            Compare::Quarter => "quarter",
        };
        let data = serde_json::json!({
            "compare": compare_name, "lead_svg": lead_svg, "lead_rows": lead_rows,
            "kpis": kpi_rows, "desks": per_desk, "matrix_svg": guichet_engine::indicators::charts::matrix_svg(&matrix, i18n::current()),
            "empty": leads.is_empty(),
        });
        Ok::<_, Error>(page(
            StatusCode::OK,
            "admin-indicators",
            &text("nav-indicators"),
            &data,
        ))
    }
    .await;
    result.unwrap_or_else(|e| failure(&e))
}

/// `GET /admin/indicators.csv?view=indicators|steps&compare=...`: the tables behind the charts.
pub(crate) async fn indicators_csv(
    State(s): Shared,
    headers: HeaderMap,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admin(&s, &headers).await {
        return r;
    }
    let q = Query {
        compare: compare_of(params.get("compare")),
        ..Query::default()
    };
    let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    let result = async {
        let out = if params.get("view").map(String::as_str) == Some("steps") {
            let header = [
                "desk",
                "group",
                "step",
                "kind",
                "visits",
                "loops",
                "total_mean",
                "waiting_mean",
                "working_mean",
                "breach_rate",
                "share_of_lead_time",
            ];
            let rows = s.engine.step_timings(&q).await?.into_iter().map(|r| {
                [
                    r.desk,
                    r.group,
                    r.step,
                    r.kind,
                    r.visits.to_string(),
                    r.loops.to_string(),
                    num(r.total.map(|t| t.mean)),
                    num(r.waiting.map(|t| t.mean)),
                    num(r.working.map(|t| t.mean)),
                    num(r.breach_rate),
                    r.share_of_lead_time.to_string(),
                ]
            });
            csv_text(&header, rows)?
        } else {
            let header = [
                "desk",
                "group",
                "kpi",
                "title",
                "kind",
                "requests",
                "value",
                "unit",
                "median",
                "p90",
                "target",
                "meets_target",
            ];
            let rows = s.engine.kpis(&q).await?.into_iter().map(|r| {
                [
                    r.desk,
                    r.group,
                    r.kpi,
                    r.title.unwrap_or_default(),
                    r.kind.to_owned(),
                    r.requests.to_string(),
                    num(r.value),
                    r.unit.to_owned(),
                    num(r.stats.map(|t| t.median)),
                    num(r.stats.map(|t| t.p90)),
                    num(r.target),
                    r.meets_target.map(|m| m.to_string()).unwrap_or_default(),
                ]
            });
            csv_text(&header, rows)?
        };
        Ok::<_, Error>(
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"indicateurs.csv\"",
                    ),
                ],
                out,
            )
                .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(|e| failure(&e))
}

/// `GET /admin/requests?desk=&status=`: requests, newest first.
pub(crate) async fn requests(
    State(s): Shared,
    headers: HeaderMap,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admin(&s, &headers).await {
        return r;
    }
    let desk = params.get("desk").filter(|d| !d.is_empty());
    let status = params.get("status").filter(|d| !d.is_empty());
    let result = async {
        let rows: Vec<_> = s
            .engine
            .requests(desk.map(String::as_str), status.map(String::as_str), 500)
            .await?
            .into_iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "reference": core::reference(&r.id), "desk": r.desk, "title": r.title,
                    "status": dossier::state(&r.result.unwrap_or(r.status)), "started": day(Some(r.started_at)),
                    "ended": day(r.ended_at),
                })
            })
            .collect();
        let names: Vec<_> = s.engine.desks().await?.into_keys().collect();
        let data = serde_json::json!({
            "rows": rows, "desks": names,
            "desk": desk.cloned().unwrap_or_default(), "status": status.cloned().unwrap_or_default(),
        });
        Ok::<_, Error>(page(
            StatusCode::OK,
            "admin-requests",
            &text("nav-requests"),
            &data,
        ))
    }
    .await;
    result.unwrap_or_else(|e| failure(&e))
}

/// `GET /admin/outbox?state=`: emails and webhooks, newest first; dead letters can be retried.
pub(crate) async fn outbox(
    State(s): Shared,
    headers: HeaderMap,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let (_, token) = match admin(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let state = params.get("state").filter(|d| !d.is_empty());
    let result = async {
        let rows: Vec<_> = s
            .engine
            .outbox_messages(state.map(String::as_str), 500)
            .await?
            .into_iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id, "kind": m.kind, "dead": m.state == "dead", "state": outbox_state(&m.state),
                    "attempts": m.attempts, "error": m.last_error.unwrap_or_default(),
                    "to": m.recipients.unwrap_or_default(), "subject": m.subject.unwrap_or_default(),
                    "created": day(Some(m.created_at)), "sent": day(m.sent_at),
                })
            })
            .collect();
        let data = serde_json::json!({
            "rows": rows, "state": state.cloned().unwrap_or_default(),
            "csrf": s.engine.csrf_for(&token).await?,
        });
        Ok::<_, Error>(page(StatusCode::OK, "admin-outbox", &text("nav-outbox"), &data))
    }
    .await;
    result.unwrap_or_else(|e| failure(&e))
}

/// `POST /admin/outbox/{id}/retry`: a dead letter goes back to the dispatcher.
pub(crate) async fn outbox_retry(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admin_form(&s, &headers, &values).await {
        return r;
    }
    match s.engine.outbox_retry_dead(&id, s.engine.now()).await {
        Ok(()) => redirect("/admin/outbox?state=dead"),
        Err(e) => failure(&e),
    }
}

/// `GET /admin/users`: accounts, and who holds which role on which desk.
pub(crate) async fn users(State(s): Shared, headers: HeaderMap) -> Response {
    let (me, token) = match admin(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let result = async {
        let all = s.engine.users().await?;
        let accounts: Vec<&String> = all.iter().map(|u| &u.email).collect();
        let users: Vec<_> = all
            .iter()
            .map(|u| {
                serde_json::json!({
                    "email": u.email, "admin": u.admin, "me": u.email == me,
                    "disabled": u.disabled_at.map(|t| day(Some(t))),
                })
            })
            .collect();
        let mut roles = Vec::new();
        for (desk, p) in s.engine.desks().await? {
            for r in &p.roles {
                let members = match &r.source {
                    RoleSource::Members(m) => m
                        .iter()
                        .map(|m| serde_json::json!({"email": m, "account": accounts.contains(&m)}))
                        .collect::<Vec<_>>(),
                    RoleSource::FromField { .. } => Vec::new(),
                };
                roles.push(serde_json::json!({
                    "desk": desk, "role": r.id, "title": r.title.clone().unwrap_or_default(),
                    "members": members, "requester": members.is_empty(),
                }));
            }
        }
        let tokens: Vec<_> = s
            .engine
            .api_tokens()
            .await?
            .into_iter()
            .map(|t| {
                serde_json::json!({
                    "prefix": t.prefix, "email": t.email, "name": t.name,
                    "scopes": t.scopes.to_string(), "expires": day(t.expires_at),
                    "created": day(Some(t.created_at)), "used": day(t.last_used_at),
                    "revoked": day(t.revoked_at), "active": t.revoked_at.is_none(),
                })
            })
            .collect();
        let data = serde_json::json!({
            "users": users, "roles": roles, "tokens": tokens,
            "csrf": s.engine.csrf_for(&token).await?, "problem": "",
        });
        Ok::<_, Error>(page(
            StatusCode::OK,
            "admin-users",
            &text("nav-users"),
            &data,
        ))
    }
    .await;
    result.unwrap_or_else(|e| failure(&e))
}

/// `POST /admin/users`: creates an account or sets its password (which ends the account's
/// sessions and API tokens); never changes who is an administrator ([`user_admin`] does).
pub(crate) async fn user_add(
    State(s): Shared,
    headers: HeaderMap,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admin_form(&s, &headers, &values).await {
        return r;
    }
    let email = email_of(&values);
    let password = values.get("password").cloned().unwrap_or_default();
    if !email.contains('@') {
        return invalid_field("email", "users-not-email");
    }
    match s.engine.set_password(&email, &password).await {
        Ok(()) => redirect("/admin/users"),
        Err(e) => failure(&e),
    }
}

/// The account a form names (`email`), as accounts are kept: trimmed, in lower case.
fn email_of(values: &HashMap<String, String>) -> String {
    values
        .get("email")
        .map(|e| e.trim().to_lowercase())
        .unwrap_or_default()
}

/// `POST /admin/users/admin`: gives (`admin=yes`) or takes (`admin=no`) an account's
/// administrator right: the one control that changes it. An administrator cannot take their
/// own (another must), so that nobody locks themselves out.
pub(crate) async fn user_admin(
    State(s): Shared,
    headers: HeaderMap,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    account_switch(&s, &headers, &values, Switch::Admin).await
}

/// `POST /admin/users/disabled`: disables an account (`disabled=yes`: its sessions and tokens
/// end) or enables it again (`disabled=no`). An administrator cannot disable their own.
pub(crate) async fn user_disabled(
    State(s): Shared,
    headers: HeaderMap,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    account_switch(&s, &headers, &values, Switch::Disabled).await
}

/// What a yes/no control of an account's row sets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Switch {
    Admin,
    Disabled,
}

/// A yes/no control of `/admin/users` on one account: checked, refused on one's own account
/// where it would lock one out (taking one's admin right, disabling oneself), then set.
async fn account_switch(
    s: &AppState,
    headers: &HeaderMap,
    values: &HashMap<String, String>,
    switch: Switch,
) -> Response {
    let (me, _) = match admin(s, headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(r) = admin_form(s, headers, values).await {
        return r;
    }
    let (field, choice, own) = match switch {
        Switch::Admin => ("admin", "users-admin-choice", "users-own-admin"),
        Switch::Disabled => ("disabled", "users-disabled-choice", "users-own-disable"),
    };
    let email = email_of(values);
    let on = match values.get(field).map(String::as_str) {
        Some("yes") => true,
        Some("no") => false,
        _ => return invalid_field(field, choice),
    };
    // Locking oneself out: taking one's own admin right, or disabling oneself.
    if email == me && on == (switch == Switch::Disabled) {
        return invalid_field(field, own);
    }
    let set = match switch {
        Switch::Admin => s.engine.set_admin(&email, on).await,
        Switch::Disabled => s.engine.set_disabled(&email, on).await,
    };
    match set {
        Ok(true) => redirect("/admin/users"),
        Ok(false) => failure(&Error::NotFound(format!("account {email}"))),
        Err(e) => failure(&e),
    }
}

/// The page refusing a form whose field is not valid; `message` is the id of the message
/// saying why.
fn invalid_field(field: &str, message: &str) -> Response {
    failure(&Error::Refused(core::Error::Invalid(vec![
        core::form::FieldError::new(field, core::form::Problem::Other(text(message))),
    ])))
}

/// An outbox message's state, in words.
fn outbox_state(state: &str) -> String {
    match state {
        "pending" | "sending" | "dead" | "sent" | "captured" => {
            text(&format!("outbox-state-{state}"))
        }
        other => other.to_owned(),
    }
}

/// `POST /admin/tokens`: a new API token for an account (`email`) or a pull provider
/// (`provider`), shown once on the page that answers; only its hash is kept.
pub(crate) async fn token_create(
    State(s): Shared,
    headers: HeaderMap,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admin_form(&s, &headers, &values).await {
        return r;
    }
    let field = |k: &str| {
        values
            .get(k)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let (email, provider, name) = (
        field("email").to_lowercase(),
        field("provider"),
        field("name"),
    );
    if name.is_empty() {
        return invalid_field("name", "tokens-say-use");
    }
    if email.is_empty() == provider.is_empty() {
        return invalid_field("email", "tokens-one-owner");
    }
    let scopes = Scope::ALL
        .into_iter()
        .filter(|scope| values.contains_key(&format!("scope-{}", scope.name())))
        .fold(Scopes::default(), Scopes::with);
    if scopes.is_empty() {
        return invalid_field("scope-read", "tokens-need-scope");
    }
    let days = match field("expires").as_str() {
        "never" => None,
        "" => Some(DEFAULT_DAYS),
        days => match days.parse::<i64>() {
            Ok(days) => Some(days),
            _ => return invalid_field("expires", "tokens-expires"),
        },
    };
    let new = NewToken {
        name: name.clone(),
        scopes,
        days,
    };
    let created = if provider.is_empty() {
        s.engine.issue_api_token(&email, new).await
    } else {
        s.engine.create_provider_token(&provider, new).await
    };
    match created {
        Ok(token) => {
            let data = serde_json::json!({
                "token": token, "owner": if provider.is_empty() { email } else { format!("provider:{provider}") },
                "name": name,
            });
            page(
                StatusCode::CREATED,
                "admin-token",
                &text("token-created"),
                &data,
            )
        }
        Err(e) => failure(&e),
    }
}

/// `POST /admin/tokens/{prefix}/revoke`: an API token stops working at once.
pub(crate) async fn token_revoke(
    State(s): Shared,
    headers: HeaderMap,
    Path(prefix): Path<String>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admin_form(&s, &headers, &values).await {
        return r;
    }
    match s.engine.revoke_api_token(&prefix).await {
        Ok(_) => redirect("/admin/users"),
        Err(e) => failure(&e),
    }
}
