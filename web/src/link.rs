//! The pages behind email links. Opening one never acts; acting is a POST carrying an
//! anti-forgery token derived from the link. Every invalid link gets the same page.
//!
//! A task link opens its task, and is spent by the decision. A follow link (no task) is the
//! sponsor's space: the request as they may see it, a form for each open wait they may
//! answer, and withdrawal with confirmation; it stays valid until it expires. A staff member
//! who holds a follow link (a notification to their role) sees the request as staff do.

use super::*;

use guichet_engine::core::Actor;
use guichet_engine::core::dossier::{self as core_dossier, Audience};
use guichet_engine::runtime::links::Grant;
use task::Posted;

pub(crate) async fn link_page(
    State(s): Shared,
    Path(token): Path<String>,
    axum::extract::Query(params): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let Ok(grant) = s.engine.verify_link(&token).await else {
        return invalid_link(&token, false);
    };
    let result = match grant.task {
        Some(task) => task_view(&s, &token, &grant.instance, task, &Posted::default()).await,
        None if params.contains_key("withdraw") => withdraw_view(&s, &token, &grant).await,
        None => {
            let notice = match params.get("done").map(String::as_str) {
                Some("answer") => Some(text("status-answered")),
                Some("withdraw") => Some(text("status-withdrawn")),
                _ => None,
            };
            follow_view(&s, &token, &grant, None, notice.as_deref()).await
        }
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The link's request, its definition, and whether the link's holder is its sponsor.
async fn holder(
    s: &AppState,
    grant: &Grant,
) -> Result<
    (
        core::Instance,
        std::sync::Arc<guichet_definitions::model::Process>,
        bool,
    ),
    Error,
> {
    let (_, inst) = s.engine.instance(&grant.instance).await?;
    let p = s.engine.process_of(&grant.instance).await?;
    let sponsor = core_dossier::is_sponsor(&p, &inst, &grant.recipient);
    // Unless their browser says otherwise, the sponsor reads in the request's language.
    i18n::desk(match inst.language {
        Some(l) if sponsor => l,
        _ => p.language,
    });
    Ok((inst, p, sponsor))
}

/// Whether the link's holder may answer a wait sent `from` a role: they are one of its
/// members for this request (a wait without `from` is answered by staff, not from a link).
fn may_answer(
    p: &guichet_definitions::model::Process,
    inst: &core::Instance,
    from: Option<&str>,
    who: &str,
) -> bool {
    from.is_some_and(|role| core::is_member(p, inst, role, who))
}

/// The follow page: the request as the link's holder may see it, the waits they may answer
/// (`posted` shows one of them again with its errors), withdrawal for the sponsor.
pub(crate) async fn follow_view(
    s: &AppState,
    token: &str,
    grant: &Grant,
    posted: Option<(&str, &Posted)>,
    notice: Option<&str>,
) -> PageResult {
    let id = &grant.instance;
    let (inst, p, sponsor) = holder(s, grant).await?;
    let audience = if sponsor {
        Audience::Sponsor
    } else {
        Audience::Staff
    };
    let p = p.in_language(i18n::current());
    let dossier = s.engine.dossier_of(id, &inst, p, audience).await?;
    let action = format!("/l/{token}");
    let csrf = s.engine.csrf_for(token).await?;
    let empty = Posted::default();
    let mut invalid = false;
    let answers: Vec<_> = dossier
        .open_waits
        .iter()
        .filter(|w| may_answer(p, &inst, w.from.as_deref(), &grant.recipient))
        .filter_map(|w| {
            let form = p.step(&w.step)?.form();
            let mine = posted.filter(|(step, _)| *step == w.step).map(|(_, p)| p);
            let this = mine.unwrap_or(&empty);
            invalid |= !this.errors.is_empty();
            Some(serde_json::json!({
                "step": w.step, "title": w.title,
                "description": w.description.clone().unwrap_or_default(),
                "until": w.until.map(date).unwrap_or_default(),
                "fields": form::view(&format!("{}-", w.step), form, &this.values, &this.errors),
                "has_errors": !this.errors.is_empty(),
                "problem": this.problem.clone().unwrap_or_default(),
                "action": action, "csrf": csrf,
            }))
        })
        .collect();
    let status = text(match (dossier.status, dossier.result, answers.is_empty()) {
        ("running", _, false) => "status-waiting-for-you",
        ("running", _, true) => "status-in-review",
        ("ended", Some("accepted"), _) => "status-accepted",
        ("ended", Some("rejected"), _) => "status-rejected",
        _ => "status-closed",
    });
    // A problem with a wait that is no longer open (answered meanwhile) is shown on top.
    let problem = posted
        .filter(|(step, _)| !dossier.open_waits.iter().any(|w| w.step == *step))
        .and_then(|(_, p)| p.problem.clone())
        .unwrap_or_default();
    let data = serde_json::json!({
        "sponsor": sponsor,
        "request_title": dossier.title,
        "reference": dossier.reference,
        "desk": dossier.desk_title,
        "status": status,
        "notice": notice.unwrap_or_default(),
        "problem": problem,
        "answers": answers,
        "can_withdraw": sponsor && dossier.status == "running",
        "withdraw_url": format!("/l/{token}?withdraw"),
        "dossier": dossier::view(&dossier, !sponsor, &format!("/l/{token}/documents/")),
    });
    let code = if invalid {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(page(code, "status", &text("status-title"), &data))
}

/// The confirmation asked before a withdrawal.
async fn withdraw_view(s: &AppState, token: &str, grant: &Grant) -> PageResult {
    let (inst, p, sponsor) = holder(s, grant).await?;
    if !sponsor || inst.status != InstanceStatus::Running {
        return follow_view(s, token, grant, None, None).await;
    }
    let data = serde_json::json!({
        "request_title": core::request_title(&p, &inst),
        "reference": core::reference(&grant.instance),
        "action": format!("/l/{token}"),
        "back": format!("/l/{token}"),
        "csrf": s.engine.csrf_for(token).await?,
    });
    Ok(page(
        StatusCode::OK,
        "withdraw",
        &text("withdraw-title"),
        &data,
    ))
}

pub(crate) async fn link_act(
    State(s): Shared,
    Path(token): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let Ok(grant) = s.engine.verify_link(&token).await else {
        return invalid_link(&token, false);
    };
    let result = async {
        let (_, inst) = s.engine.instance(&grant.instance).await?;
        let p = s.engine.process_of(&grant.instance).await?;
        // The form whose documents may come: the task's, or the wait named by `_step`.
        let task_step = grant
            .task
            .and_then(|t| inst.tasks.get(&t))
            .map(|t| &p.steps[t.step]);
        let submission = form::Submission::read(&s, request, |values, field| {
            let step = match task_step {
                Some(step) => Some(step),
                None => values.get("_step").and_then(|id| p.step(id)),
            };
            step.and_then(|st| st.form()).and_then(|f| f.field(field))
        })
        .await?;
        if !csrf_ok(&s, &token, &submission.values).await {
            return Ok(expired_form("error-reload-from-email"));
        }
        match grant.task {
            Some(task) => decide(&s, &token, &grant, task, submission).await,
            None => follow_act(&s, &token, &grant, submission).await,
        }
    }
    .await;
    result.unwrap_or_else(|e: Failure| e.into_response())
}

/// `GET /l/{token}/documents/{sha256}`: a document of the link's request, when the page the
/// link opens shows it (the sponsor sees theirs, a task's recipient the request's).
pub(crate) async fn document(
    State(s): Shared,
    Path((token, sha256)): Path<(String, String)>,
) -> Response {
    let Ok(grant) = s.engine.verify_link(&token).await else {
        return invalid_link(&token, false);
    };
    async {
        let (inst, p, sponsor) = holder(&s, &grant).await?;
        let audience = if grant.task.is_none() && sponsor {
            Audience::Sponsor
        } else {
            Audience::Staff
        };
        let dossier = s
            .engine
            .dossier_of(&grant.instance, &inst, &p, audience)
            .await?;
        documents::download(&s, &dossier, &sha256).await
    }
    .await
    .unwrap_or_else(|e: Failure| e.into_response())
}

/// A decision on the link's task; the link is spent when it is taken.
async fn decide(
    s: &AppState,
    token: &str,
    grant: &Grant,
    task: u32,
    submission: form::Submission,
) -> PageResult {
    let values = &submission.values;
    if !submission.errors.is_empty() {
        let posted = Posted {
            values: submission.values.clone(),
            errors: submission.page_errors(),
            problem: None,
        };
        return task_view(s, token, &grant.instance, task, &posted).await;
    }
    let command = Command::Complete {
        task,
        user: grant.recipient.clone(),
        outcome: values.get("_outcome").filter(|o| !o.is_empty()).cloned(),
        fields: submission.fields(&["_csrf", "_outcome", "_comment"]),
        comment: values.get("_comment").cloned(),
    };
    match s.engine.execute(&grant.instance, command).await {
        Ok(_) => {
            submission.keep().await;
            // The link has served: it cannot act again.
            let _ = s.engine.spend_link(token).await;
            Ok(page(
                StatusCode::OK,
                "done",
                &text("done-title"),
                &serde_json::json!({"message": text("task-decided")}),
            ))
        }
        Err(Error::Refused(e)) if !e.is_internal() => {
            let posted = Posted::refused(submission.values, e);
            task_view(s, token, &grant.instance, task, &posted).await
        }
        Err(e) => Err(e.into()),
    }
}

/// What the holder of a follow link does: answer a wait, or withdraw the request.
async fn follow_act(
    s: &AppState,
    token: &str,
    grant: &Grant,
    submission: form::Submission,
) -> PageResult {
    let values = &submission.values;
    let id = &grant.instance;
    let sponsor = holder(s, grant).await?.2;
    let actor = if sponsor {
        Actor::Requester
    } else {
        Actor::User(grant.recipient.clone())
    };
    let who = grant.recipient.clone();
    match values.get("_action").map(String::as_str) {
        Some("answer") => {
            let step = values.get("_step").cloned().unwrap_or_default();
            if !submission.errors.is_empty() {
                let posted = Posted {
                    values: submission.values.clone(),
                    errors: submission.page_errors(),
                    problem: None,
                };
                return follow_view(s, token, grant, Some((&step, &posted)), None).await;
            }
            let fields = submission.fields(&["_csrf", "_action", "_step"]);
            let may = |p: &guichet_definitions::model::Process, inst: &core::Instance| {
                let from = p.step(&step).and_then(|s| match &s.kind {
                    StepKind::Wait(w) => w.from.as_deref(),
                    _ => None,
                });
                may_answer(p, inst, from, &who)
            };
            match s.engine.answer(id, &step, fields, actor, None, &may).await {
                Ok(_) => {
                    submission.keep().await;
                    Ok(redirect(&format!("/l/{token}?done=answer")))
                }
                Err(Error::Refused(e)) if !e.is_internal() => {
                    let posted = Posted::refused(submission.values, e);
                    follow_view(s, token, grant, Some((&step, &posted)), None).await
                }
                Err(Error::Conflict(_)) => {
                    let posted = Posted {
                        problem: Some(text("status-answer-late")),
                        ..Posted::default()
                    };
                    follow_view(s, token, grant, Some((&step, &posted)), None).await
                }
                Err(e) => Err(e.into()),
            }
        }
        Some("withdraw") if values.get("_confirm").map(String::as_str) == Some("yes") => {
            let may = |p: &guichet_definitions::model::Process, inst: &core::Instance| {
                core_dossier::is_sponsor(p, inst, &who)
            };
            match s
                .engine
                // The timeline says who withdrew it; the sponsor gives no reason.
                .withdraw(id, Actor::Requester, "", &may)
                .await
            {
                Ok(_) | Err(Error::Conflict(_)) => {
                    Ok(redirect(&format!("/l/{token}?done=withdraw")))
                }
                Err(e) => Err(e.into()),
            }
        }
        Some("withdraw") => withdraw_view(s, token, grant).await,
        _ => {
            let heading = text("error-unknown-action");
            Ok(page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "error",
                &heading,
                &serde_json::json!({"heading": heading, "message": text("error-reload-from-email")}),
            ))
        }
    }
}

pub(crate) async fn link_fresh(State(s): Shared, Path(token): Path<String>) -> Response {
    if token.len() > 100 {
        return invalid_link(&token, true);
    }
    if let Err(limited) = s.limits.link(&token) {
        s.limits.refused("/l/{token}/fresh", None, limited);
        return limits::too_many(limited);
    }
    // The same answer whatever the token was: no hint of which case it is.
    let _ = s.engine.fresh_link_for(&token).await;
    invalid_link(&token, true)
}

/// `GET /follow`: the form where a sponsor who lost their link asks for a fresh one.
pub(crate) async fn lost_link_page() -> Response {
    page(
        StatusCode::OK,
        "lost-link",
        &text("lost-heading"),
        &serde_json::json!({"sent": false}),
    )
}

/// `POST /follow`: a fresh follow link is emailed when the address is the sponsor's of the
/// request with that reference; the page says the same in every case.
pub(crate) async fn lost_link(
    State(s): Shared,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    let reference = values.get("reference").map_or("", String::as_str);
    let email = values.get("email").map_or("", String::as_str);
    if let Err(limited) = s.limits.named(limits::Class::Links, [email]) {
        s.limits.refused("/follow", None, limited);
        return limits::too_many(limited);
    }
    if let Err(e) = s.engine.resend_follow_link(reference, email).await {
        // Logged, not shown: the answer must not differ.
        tracing::warn!(error = %e, "a fresh follow link could not be queued");
    }
    page(
        StatusCode::OK,
        "lost-link",
        &text("lost-heading"),
        &serde_json::json!({"sent": true}),
    )
}
