//! Staff: sign-in, sessions in a cookie, the inbox, task pages with claim, release, delegate
//! and decide, and the request page. Nobody sees or acts on a task outside their roles.

use super::*;

use guichet_engine::runtime::users::SignIn;

pub(crate) const SESSION_COOKIE: &str = "guichet_session";

/// The session token from the request's cookies.
pub(crate) fn session_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// A cookie's value from the request's headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The signed-in staff member and their session token; otherwise the answer to give: the
/// sign-in page, or an error page when the database cannot say (not the sign-in page, which
/// would tell people they were signed out).
pub(crate) async fn staff(s: &AppState, headers: &HeaderMap) -> Result<(String, String), Response> {
    staff_account(s, headers)
        .await
        .map(|(email, token, _)| (email, token))
}

/// [`staff`], with whether they are an administrator.
pub(crate) async fn staff_account(
    s: &AppState,
    headers: &HeaderMap,
) -> Result<(String, String, bool), Response> {
    let token = session_token(headers).ok_or_else(|| redirect("/login"))?;
    match s.engine.session_account(&token).await {
        Ok(Some(account)) => {
            // Their own choice of language comes before their browser's.
            i18n::prefer(account.language);
            Ok((account.email, token, account.admin))
        }
        Ok(None) => Err(redirect("/login")),
        Err(e) => Err(failure(&e)),
    }
}

pub(crate) fn session_cookie(s: &AppState, value: &str, max_age: i64) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if s.secure_cookies { "; Secure" } else { "" }
    )
}

pub(crate) fn with_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The cookie that pairs the sign-in form with the browser that loaded it (login CSRF: a
/// page elsewhere cannot post the form with its own account's password and sign the
/// visitor into it, since it cannot read or set this cookie, `SameSite=Strict`).
const LOGIN_COOKIE: &str = "guichet_login";

/// The sign-in page with a fresh anti-forgery pair: the token in the form and in the cookie.
fn login_form(s: &AppState, status: StatusCode, data: serde_json::Value) -> Response {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        return failure(&Error::Corrupt("no randomness for the sign-in form".into()));
    }
    let token = hex::encode(bytes);
    let mut data = data;
    data["csrf"] = token.clone().into();
    let r = page(status, "login", &text("login-title"), &data);
    let cookie = format!(
        "{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        if s.secure_cookies { "; Secure" } else { "" }
    );
    with_cookie(r, &cookie)
}

pub(crate) async fn login_page(State(s): Shared) -> Response {
    login_form(
        &s,
        StatusCode::OK,
        serde_json::json!({"failed": false, "wait": 0, "email": ""}),
    )
}

pub(crate) async fn login(
    State(s): Shared,
    headers: HeaderMap,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    let email = values.get("email").cloned().unwrap_or_default();
    let password = values.get("password").cloned().unwrap_or_default();
    // The form must come from this browser's sign-in page; else the page again, fresh.
    let paired = cookie(&headers, LOGIN_COOKIE)
        .zip(values.get("_csrf"))
        .is_some_and(|(cookie, form)| !cookie.is_empty() && same(&cookie, form));
    if !paired {
        return login_form(
            &s,
            StatusCode::FORBIDDEN,
            serde_json::json!({"failed": false, "wait": 0, "email": email, "expired": true}),
        );
    }
    let csrf = values.get("_csrf").cloned().unwrap_or_default();
    match s.engine.sign_in(&email, &password).await {
        // A new session at every login: a token planted before it is worthless.
        Ok(SignIn::Session(token)) => with_cookie(
            redirect("/inbox"),
            &session_cookie(
                &s,
                &token,
                guichet_engine::runtime::users::ABSOLUTE_MS / 1000,
            ),
        ),
        Ok(SignIn::Wrong) => page(
            StatusCode::UNAUTHORIZED,
            "login",
            &text("login-title"),
            &serde_json::json!({"failed": true, "wait": 0, "email": email, "csrf": csrf}),
        ),
        Ok(SignIn::Disabled) => page(
            StatusCode::FORBIDDEN,
            "login",
            &text("login-title"),
            &serde_json::json!({"disabled": true, "wait": 0, "email": email, "csrf": csrf}),
        ),
        Ok(SignIn::Wait { ms }) => {
            let seconds = (ms + 999) / 1000;
            let mut r = page(
                StatusCode::TOO_MANY_REQUESTS,
                "login",
                &text("login-title"),
                &serde_json::json!({"failed": false, "wait": seconds, "email": email, "csrf": csrf}),
            );
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Err(e) => failure(&e),
    }
}

/// `POST /logout`: ends the session on the server, always (a form without its anti-forgery
/// token too: the worst a forged one does is sign someone out), and clears the cookie.
pub(crate) async fn logout(State(s): Shared, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&headers)
        && let Err(e) = s.engine.logout(&token).await
    {
        // The cookie is cleared anyway; the session ends at its idle timeout at the latest.
        tracing::warn!(error = %e, "a session could not be ended at logout");
    }
    with_cookie(redirect("/login"), &session_cookie(&s, "", 0))
}

/// `GET /preferences`: how the signed-in person gets task emails.
pub(crate) async fn preferences(
    State(s): Shared,
    headers: HeaderMap,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let (email, token) = match staff(&s, &headers).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let result = async {
        let p = s.engine.mail_preference(&email).await?;
        let data = serde_json::json!({
            "email": email, "digest": p.digest,
            "fr": p.language == guichet_engine::definitions::model::Language::Fr,
            "hour": s.digest_hour, "saved": params.contains_key("saved"),
            "csrf": s.engine.csrf_for(&token).await?,
        });
        Ok::<_, guichet_engine::Error>(page(
            StatusCode::OK,
            "preferences",
            &text("preferences-heading"),
            &data,
        ))
    }
    .await;
    result.unwrap_or_else(|e| failure(&e))
}

/// `POST /preferences`: one email per task, or a daily digest.
pub(crate) async fn preferences_save(
    State(s): Shared,
    headers: HeaderMap,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    let (email, token) = match staff(&s, &headers).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    if !csrf_ok(&s, &token, &values).await {
        return expired_form("preferences-expired");
    }
    let refused = |message: &str| {
        let heading = text("error-invalid-choice");
        let data = serde_json::json!({"heading": heading, "message": text(message)});
        page(StatusCode::UNPROCESSABLE_ENTITY, "error", &heading, &data)
    };
    let digest = match values.get("digest").map(String::as_str) {
        Some("daily") => true,
        Some("each") => false,
        _ => return refused("preferences-digest-choice"),
    };
    let language = match values.get("language").map(String::as_str) {
        None => guichet_engine::definitions::model::Language::Fr,
        Some(code) => match guichet_engine::definitions::model::Language::from_code(code) {
            Some(l) => l,
            None => return refused("preferences-language-choice"),
        },
    };
    match s.engine.set_mail_preference(&email, digest, language).await {
        Ok(_) => redirect("/preferences?saved"),
        Err(e) => failure(&e),
    }
}

/// How many tasks the inbox page lists (the most urgent first).
const INBOX_PAGE: i64 = 50;

pub(crate) async fn inbox(State(s): Shared, headers: HeaderMap) -> Response {
    let (email, token, admin) = match staff_account(&s, &headers).await {
        Ok(who) => who,
        Err(r) => return r,
    };
    let (inbox, desks) = match (
        s.engine.inbox(&email, INBOX_PAGE).await,
        s.engine.desks().await,
    ) {
        (Ok(i), Ok(d)) => (i, d),
        (Err(e), _) | (_, Err(e)) => return failure(&e),
    };
    // The desk by its title, as people know it, and the step by its title, in the reader's
    // language when the desk translates them.
    let language = i18n::current();
    let desk_title = |name: &str| {
        desks
            .get(name)
            .map_or(name, |p| p.in_language(language).title.as_str())
            .to_owned()
    };
    let step_title = |item: &guichet_engine::runtime::users::InboxItem| -> String {
        desks
            .get(&item.desk)
            .and_then(|p| p.in_language(language).step(&item.task.step))
            .map_or_else(|| item.step_title.clone(), |s| s.display_name().to_owned())
    };
    #[derive(serde::Serialize)]
    struct Row<'a> {
        instance: &'a str,
        seq: i64,
        step_title: String,
        title: &'a str,
        desk: String,
        due: String,
        overdue: bool,
        claimed: bool,
        assignee: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Page<'a> {
        email: &'a str,
        items: Vec<Row<'a>>,
        csrf: String,
        admin: bool,
        total: usize,
        more_than: bool,
        more: bool,
        shown: usize,
    }
    // Serialised once, by the template engine: no intermediate JSON value.
    let items: Vec<Row> = inbox
        .items
        .iter()
        .map(|i| Row {
            instance: &i.task.instance,
            seq: i.task.seq,
            step_title: step_title(i),
            title: &i.title,
            desk: desk_title(&i.desk),
            due: i
                .task
                .due_at
                .map(|d| date(guichet_engine::clock::Timestamp(d)))
                .unwrap_or_default(),
            overdue: i.task.overdue,
            claimed: i.task.assignee.is_some(),
            assignee: i.task.assignee.as_deref().unwrap_or_default(),
        })
        .collect();
    let csrf = s.engine.csrf_for(&token).await.unwrap_or_default();
    let data = Page {
        email: &email,
        csrf,
        admin,
        total: inbox.total,
        more_than: inbox.more_than,
        more: inbox.more_than || inbox.total > inbox.items.len(),
        shown: inbox.items.len(),
        items,
    };
    page(StatusCode::OK, "inbox", &text("inbox-heading"), &data)
}

/// Whether the staff member may act on the open task; a `false` hides whether it exists.
/// A database that cannot answer is an error, not a `false`: "no such task" would tell a
/// client to give up on work that is still there.
pub(crate) async fn staff_may_act(
    s: &AppState,
    email: &str,
    instance: &str,
    seq: u32,
) -> Result<bool, guichet_engine::Error> {
    match s.engine.task(instance, seq).await? {
        Some((desk, task)) => s.engine.may_act_now(email, &desk, &task).await,
        None => Ok(false),
    }
}

pub(crate) fn not_found() -> Response {
    let heading = text("error-not-found");
    let data = serde_json::json!({"heading": heading, "message": text("task-not-found")});
    page(StatusCode::NOT_FOUND, "error", &heading, &data)
}

pub(crate) async fn staff_task(
    State(s): Shared,
    headers: HeaderMap,
    Path((instance, seq)): Path<(String, u32)>,
) -> Response {
    async {
        let (email, token) = staff(&s, &headers).await?;
        if !staff_may_act(&s, &email, &instance, seq).await? {
            return Ok(not_found());
        }
        let viewer = Viewer {
            action: format!("/tasks/{instance}/{seq}"),
            csrf: s.engine.csrf_for(&token).await?,
            staff: Some(&email),
            token: "",
        };
        task_page(&s, &viewer, &instance, seq, &task::Posted::default()).await
    }
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn staff_act(
    State(s): Shared,
    headers: HeaderMap,
    Path((instance, seq)): Path<(String, u32)>,
    request: axum::extract::Request,
) -> Response {
    async {
        let (email, token) = staff(&s, &headers).await?;
        let (_, inst) = s.engine.instance(&instance).await?;
        let p = s.engine.process_of(&instance).await?;
        let step = inst.tasks.get(&seq).map(|t| &p.steps[t.step]);
        let submission = form::Submission::read(&s, request, |_, field| {
            step.and_then(|st| st.form()).and_then(|f| f.field(field))
        })
        .await?;
        let values = &submission.values;
        if !csrf_ok(&s, &token, values).await {
            return Ok(expired_form("task-expired"));
        }
        if !staff_may_act(&s, &email, &instance, seq).await? {
            return Ok(not_found());
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
                fields: submission.fields(&["_csrf", "_outcome", "_action", "_to", "_comment"]),
                comment: values.get("_comment").cloned(),
            },
        };
        let completing = matches!(command, Command::Complete { .. });
        if completing && !submission.errors.is_empty() {
            let viewer = Viewer {
                action: format!("/tasks/{instance}/{seq}"),
                csrf: s.engine.csrf_for(&token).await?,
                staff: Some(&email),
                token: "",
            };
            let posted = task::Posted {
                values: submission.values.clone(),
                errors: submission.page_errors(),
                problem: None,
            };
            return task_page(&s, &viewer, &instance, seq, &posted).await;
        }
        match s.engine.execute(&instance, command).await {
            Ok(_) if completing => {
                submission.keep().await;
                let data = serde_json::json!({"message": text("task-decided")});
                Ok(page(StatusCode::OK, "done", &text("done-title"), &data))
            }
            Ok(_) => Ok(redirect(&format!("/tasks/{instance}/{seq}"))),
            Err(Error::Refused(e)) if !e.is_internal() => {
                let viewer = Viewer {
                    action: format!("/tasks/{instance}/{seq}"),
                    csrf: s.engine.csrf_for(&token).await?,
                    staff: Some(&email),
                    token: "",
                };
                let posted = task::Posted::refused(submission.values, e);
                task_page(&s, &viewer, &instance, seq, &posted).await
            }
            Err(e) => Err(e.into()),
        }
    }
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// A request as staff see it: its dossier (fields, what each step collected, open tasks and
/// waits, timeline) and the process drawn with the steps where it stands outlined. Open to
/// the staff of its desk and to administrators.
pub(crate) async fn request_page(
    State(s): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    async {
        let (email, _) = staff(&s, &headers).await?;
        let (desk, inst) = match s.engine.instance(&id).await {
            Ok(found) => found,
            Err(Error::NotFound(_)) => return Ok(not_found()),
            Err(e) => return Err(e.into()),
        };
        if !may_see(&s, &email, &desk).await? {
            return Ok(not_found());
        }
        let desk = s.engine.process_of(&id).await?;
        i18n::desk(desk.language);
        let p = desk.in_language(i18n::current());
        let dossier = s
            .engine
            .dossier_of(
                &id,
                &inst,
                p,
                guichet_engine::core::dossier::Audience::Staff,
            )
            .await?;
        let marked: Vec<usize> = inst.tokens.values().map(|t| t.step).collect();
        let data = serde_json::json!({
            "request_title": dossier.title,
            "reference": dossier.reference,
            "desk": p.title,
            "status": dossier::status(&dossier),
            "dossier": dossier::view(&dossier, true, &format!("/requests/{id}/documents/")),
            "graph": guichet_definitions::graph::svg_marked(p, &marked, i18n::current()),
        });
        Ok(page(StatusCode::OK, "request", &p.title, &data))
    }
    .await
    .unwrap_or_else(|e: Failure| e.into_response())
}

/// `GET /requests/{id}/documents/{sha256}`: a document of the request, for those who may see
/// the request.
pub(crate) async fn document(
    State(s): Shared,
    headers: HeaderMap,
    Path((id, sha256)): Path<(String, String)>,
) -> Response {
    async {
        let (email, _) = staff(&s, &headers).await?;
        let (desk, inst) = match s.engine.instance(&id).await {
            Ok(found) => found,
            Err(Error::NotFound(_)) => return Ok(not_found()),
            Err(e) => return Err(e.into()),
        };
        if !may_see(&s, &email, &desk).await? {
            return Ok(not_found());
        }
        let p = s.engine.process_of(&id).await?;
        let dossier = s
            .engine
            .dossier_of(
                &id,
                &inst,
                &p,
                guichet_engine::core::dossier::Audience::Staff,
            )
            .await?;
        documents::download(&s, &dossier, &sha256).await
    }
    .await
    .unwrap_or_else(|e: Failure| e.into_response())
}

/// Whether a staff member may see a request of `desk`: administrators, and staff with a
/// role on the desk.
pub(crate) async fn may_see(s: &AppState, email: &str, desk: &str) -> Result<bool, Error> {
    Ok(s.engine.is_admin(email).await?
        || s.engine
            .roles_of(email)
            .await?
            .iter()
            .any(|(d, _)| d == desk))
}
