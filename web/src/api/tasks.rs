//! The account's inbox, its tasks and the actions on them, and how it gets its task emails.

use super::schema::{
    Acted, Decision, Delegation, InboxItem, InboxQuery, Outcome, PreferenceBody, Preferences,
    RequestStanding, Standing, Task, TaskCore, TaskDetail, Upload,
};
use super::*;

use guichet_definitions::model::Process;
use guichet_engine::runtime::TaskRow;

/// The account's inbox (its tasks and its roles' tasks), overdue first; at most `limit`,
/// with the total in `X-Total-Count` (`N+` when there are more than it counted).
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(InboxQuery),
    responses((status = 200, description = "The tasks", body = Vec<InboxItem>,
        headers(("X-Total-Count" = String, description = "How many in all: `N` or `N+`")))))]
pub(crate) async fn inbox(
    State(s): Shared,
    caller: Caller,
    ApiQuery(query): ApiQuery<InboxQuery>,
) -> ApiResult {
    let email = caller.may(Scope::Read)?;
    let limit = match query.limit {
        None => 200,
        Some(l) if l <= 1000 => i64::from(l),
        Some(_) => {
            return Err(ApiError::of_status(
                StatusCode::BAD_REQUEST,
                Some("`limit` is at most 1000".into()),
            ));
        }
    };
    let inbox = s.engine.inbox(&email, limit).await?;
    let (total, more_than) = (inbox.total, inbox.more_than);
    let items: Vec<_> = inbox
        .items
        .into_iter()
        .map(|i| {
            let mut task = Task::of(&i.task, None);
            task.task.title = Some(i.step_title);
            InboxItem {
                task,
                desk: i.desk,
                request_title: i.title,
            }
        })
        .collect();
    let total = if more_than {
        format!("{total}+")
    } else {
        total.to_string()
    };
    Ok(([("x-total-count", total)], Json(items)).into_response())
}

/// The task found (with its desk), when it is open and the account may act on it.
async fn open_to(
    s: &AppState,
    email: &str,
    found: Option<(String, TaskRow)>,
) -> Result<TaskRow, ApiError> {
    match found {
        Some((desk, t)) if s.engine.may_act_now(email, &desk, &t).await? => Ok(t),
        _ => Err(ApiError::not_found("open task")),
    }
}

/// A task, its form and its outcomes.
#[utoipa::path(get, path = "/api/v1/tasks/{request}/{task}", tag = "tasks",
    params(
        ("request" = String, Path, description = "The request's id"),
        ("task" = u32, Path, description = "The task's number in the request"),
    ),
    responses((status = 200, description = "The task", body = TaskDetail)))]
pub(crate) async fn task(
    State(s): Shared,
    caller: Caller,
    ApiPath((instance, seq)): ApiPath<(String, u32)>,
) -> ApiResult<Json<TaskDetail>> {
    let email = caller.may(Scope::Read)?;
    let t = open_to(&s, &email, s.engine.task(&instance, seq).await?).await?;
    let p = s.engine.process_of(&instance).await?;
    let step = p.step(&t.step);
    Ok(Json(TaskDetail {
        task: Task::of(&t, Some(&p)),
        description: step.and_then(|st| st.description.clone()),
        form: schema::form(step.and_then(|st| st.form())),
        outcomes: step.map_or_else(Vec::new, |st| {
            st.outcomes()
                .iter()
                .map(|o| Outcome {
                    id: o.id.clone(),
                    label: o.display_name().to_owned(),
                })
                .collect()
        }),
    }))
}

/// Runs a command on a task the account may act on; a task closed meanwhile is a conflict
/// naming who closed it.
async fn act(
    s: &AppState,
    email: &str,
    instance: &str,
    seq: u32,
    command: Command,
) -> ApiResult<Json<Acted>> {
    // May the account act on the task? Checked on the request as the command finds it (no
    // read of the task before): it is open, and theirs or open to one of their roles.
    let roles = s.engine.roles_of(email).await?;
    let before = std::sync::Mutex::new(None);
    let allowed = |p: &Process, inst: &core::Instance| {
        let task = inst
            .tasks
            .get(&seq)
            .map(|t| TaskRow::open(instance, p, t))
            .filter(|t| Engine::may_act(&roles, email, &p.name, t));
        let ok = task.is_some();
        if let Ok(mut before) = before.lock() {
            *before = task;
        }
        ok
    };
    let completing = matches!(command, Command::Complete { .. });
    let closed_by = |t: &TaskRow| {
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
        Some(t) => TaskRow::open(instance, &p, t),
        None if completing => TaskRow {
            state: "completed".to_owned(),
            closed_by: Some(email.to_owned()),
            ..before
        },
        None => match s.engine.task(instance, seq).await? {
            Some((_, t)) => t,
            None => before,
        },
    };
    // The task as it is now, and where its request stands (so that a client need not read
    // the request back to find the next tasks).
    Ok(Json(Acted {
        task: TaskCore::of(&after, Some(&p)),
        request: RequestStanding {
            id: instance.to_owned(),
            standing: Standing::of(instance, &p, &inst),
        },
    }))
}

/// Take the task: it becomes the account's.
#[utoipa::path(post, path = "/api/v1/tasks/{request}/{task}/claim", tag = "tasks",
    params(
        ("request" = String, Path, description = "The request's id"),
        ("task" = u32, Path, description = "The task's number in the request"),
    ),
    responses(
        (status = 200, description = "Taken", body = Acted),
        (status = 409, description = "Closed meanwhile, or someone else's (`conflict`, \
            `refused`)", body = ErrorBody),
    ))]
pub(crate) async fn claim(
    State(s): Shared,
    caller: Caller,
    ApiPath((instance, seq)): ApiPath<(String, u32)>,
) -> ApiResult<Json<Acted>> {
    let user = caller.may(Scope::Act)?;
    let command = Command::Claim {
        task: seq,
        user: user.clone(),
    };
    act(&s, &user, &instance, seq, command).await
}

/// Give the task back to its role.
#[utoipa::path(post, path = "/api/v1/tasks/{request}/{task}/release", tag = "tasks",
    params(
        ("request" = String, Path, description = "The request's id"),
        ("task" = u32, Path, description = "The task's number in the request"),
    ),
    responses(
        (status = 200, description = "Given back", body = Acted),
        (status = 409, description = "Closed meanwhile, or not taken (`conflict`, `refused`)",
            body = ErrorBody),
    ))]
pub(crate) async fn release(
    State(s): Shared,
    caller: Caller,
    ApiPath((instance, seq)): ApiPath<(String, u32)>,
) -> ApiResult<Json<Acted>> {
    let user = caller.may(Scope::Act)?;
    let command = Command::Release {
        task: seq,
        user: user.clone(),
    };
    act(&s, &user, &instance, seq, command).await
}

/// Hand the task to a person, with `{"to": "person@example.org"}`.
#[utoipa::path(post, path = "/api/v1/tasks/{request}/{task}/delegate", tag = "tasks",
    params(
        ("request" = String, Path, description = "The request's id"),
        ("task" = u32, Path, description = "The task's number in the request"),
    ),
    request_body = Delegation,
    responses(
        (status = 200, description = "Handed over", body = Acted),
        (status = 409, description = "Closed meanwhile, or not the account's to hand \
            (`conflict`, `refused`)", body = ErrorBody),
    ))]
pub(crate) async fn delegate(
    State(s): Shared,
    caller: Caller,
    ApiPath((instance, seq)): ApiPath<(String, u32)>,
    ApiJson(body): ApiJson<Delegation>,
) -> ApiResult<Json<Acted>> {
    let by = caller.may(Scope::Act)?;
    let command = Command::Delegate {
        task: seq,
        by: by.clone(),
        to: core::Recipient::Person(body.to.trim().to_lowercase()),
    };
    act(&s, &by, &instance, seq, command).await
}

/// Decide the task, with `{"outcome": "id", "fields": {...}, "comment": "..."}` (documents
/// as file parts of a multipart call, the JSON in its `body` part).
#[utoipa::path(post, path = "/api/v1/tasks/{request}/{task}/complete", tag = "tasks",
    params(
        ("request" = String, Path, description = "The request's id"),
        ("task" = u32, Path, description = "The task's number in the request"),
    ),
    request_body(content(
        (Decision = "application/json"),
        (Upload = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "Decided; the task and where its request now stands",
            body = Acted),
        (status = 409, description = "Closed meanwhile (`conflict`, naming who closed it)",
            body = ErrorBody),
    ))]
pub(crate) async fn complete(
    State(s): Shared,
    caller: Caller,
    ApiPath((instance, seq)): ApiPath<(String, u32)>,
    request: axum::extract::Request,
) -> ApiResult<Json<Acted>> {
    let email = caller.may(Scope::Act)?;
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

/// How the account gets its task emails.
#[utoipa::path(get, path = "/api/v1/preferences", tag = "tasks",
    responses((status = 200, description = "The account's preferences", body = Preferences)))]
pub(crate) async fn preferences(State(s): Shared, caller: Caller) -> ApiResult<Json<Preferences>> {
    let email = caller.may(Scope::Read)?;
    Ok(Json(s.engine.mail_preference(&email).await?.into()))
}

/// One daily digest instead of an email per new task and reminder, and the emails'
/// language: `{"digest": true, "language": "en"}`.
#[utoipa::path(post, path = "/api/v1/preferences", tag = "tasks",
    request_body = PreferenceBody,
    responses((status = 200, description = "Saved", body = Preferences)))]
pub(crate) async fn set_preferences(
    State(s): Shared,
    caller: Caller,
    ApiJson(body): ApiJson<PreferenceBody>,
) -> ApiResult<Json<Preferences>> {
    let email = caller.may(Scope::Act)?;
    let language = match body.language.as_deref() {
        None => guichet_engine::definitions::model::Language::Fr,
        Some(code)
            if let Some(l) = guichet_engine::definitions::model::Language::from_code(code) =>
        {
            l
        }
        Some(other) => {
            return Err(ApiError::invalid(
                "some fields are not valid; nothing was saved",
                serde_json::json!({"language": format!("`{other}` is not a language: fr or en")}),
            ));
        }
    };
    let p = s
        .engine
        .set_mail_preference(&email, body.digest, language)
        .await?;
    Ok(Json(p.into()))
}
