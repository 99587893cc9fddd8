//! The task page, shared by email links and signed-in staff: the step, its deadline, its
//! form, outcomes and comment, and the whole request it decides on (the dossier).

use super::*;

use guichet_engine::core::dossier::Audience;

pub(crate) fn invalid_link(token: &str, sent: bool) -> Response {
    // The page reflects nothing of the address it was asked for: a fresh link is offered
    // only for what has a link token's shape (43 characters of base64url).
    let shaped = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    page(
        StatusCode::NOT_FOUND,
        "invalid-link",
        &text("invalid-title"),
        &serde_json::json!({"token": shaped.then_some(token), "sent": sent}),
    )
}

/// Where a task page posts, and who looks at it.
pub(crate) struct Viewer<'a> {
    pub(crate) action: String,
    pub(crate) csrf: String,
    /// The signed-in staff member; `None` behind an email link.
    pub(crate) staff: Option<&'a str>,
    /// The link's token, for the invalid-link page.
    pub(crate) token: &'a str,
}

impl Viewer<'_> {
    /// Where the page's documents download from: behind the link for its holder, the
    /// request's path for signed-in staff.
    fn documents(&self, instance: &str) -> String {
        if self.staff.is_some() {
            format!("/requests/{instance}/documents/")
        } else {
            format!("/l/{}/documents/", self.token)
        }
    }
}

/// What was posted and what was wrong with it, to show the form again.
#[derive(Default)]
pub(crate) struct Posted {
    pub(crate) values: HashMap<String, String>,
    /// Field errors by field id (`comment` for the comment).
    pub(crate) errors: HashMap<String, String>,
    /// A refusal of the whole decision.
    pub(crate) problem: Option<String>,
}

impl Posted {
    /// The page again after the engine refused `values` with `e` (not an internal fault).
    pub(crate) fn refused(values: HashMap<String, String>, e: core::Error) -> Posted {
        match e {
            core::Error::Invalid(errors) if errors.iter().all(|e| e.field != "to") => Posted {
                values,
                errors: errors
                    .into_iter()
                    .map(|e| (e.field, messages::problem(&e.problem)))
                    .collect(),
                problem: None,
            },
            e => Posted {
                values,
                errors: HashMap::new(),
                problem: Some(messages::refusal(&e)),
            },
        }
    }
}

/// The task page behind an email link.
pub(crate) async fn task_view(
    s: &AppState,
    token: &str,
    instance: &str,
    task: u32,
    posted: &Posted,
) -> PageResult {
    let viewer = Viewer {
        action: format!("/l/{token}"),
        csrf: s.engine.csrf_for(token).await?,
        staff: None,
        token,
    };
    task_page(s, &viewer, instance, task, posted).await
}

pub(crate) async fn task_page(
    s: &AppState,
    viewer: &Viewer<'_>,
    instance: &str,
    task: u32,
    posted: &Posted,
) -> PageResult {
    let (_, inst) = s.engine.instance(instance).await?;
    let Some(t) = inst.tasks.get(&task) else {
        return Ok(invalid_link(viewer.token, false));
    };
    let desk = s.engine.process_of(instance).await?;
    i18n::desk(desk.language);
    let p = desk.in_language(i18n::current());
    let step = &p.steps[t.step];
    let dossier = s
        .engine
        .dossier_of(instance, &inst, p, Audience::Staff)
        .await?;
    let outcomes: Vec<_> = step
        .outcomes()
        .iter()
        .map(|o| serde_json::json!({"id": o.id, "label": o.display_name(), "comment": o.comment}))
        .collect();
    let (values, errors) = (&posted.values, &posted.errors);
    let data = serde_json::json!({
        "action": viewer.action,
        "request_url": format!("/requests/{instance}"),
        "csrf": viewer.csrf,
        "staff": viewer.staff.is_some(),
        "claimed": t.assignee.is_some(),
        "assignee": t.assignee.clone().unwrap_or_default(),
        "can_claim": viewer.staff.is_some() && t.assignee.is_none(),
        "can_release": viewer.staff.is_some_and(|me| t.assignee.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(me))),
        "step": step.display_name(),
        "description": step.description.clone().unwrap_or_default(),
        "request_title": dossier.title,
        "reference": dossier.reference,
        "desk": p.title,
        "deadline": t.due_at.map(date).unwrap_or_default(),
        "overdue": t.overdue,
        "fields": form::view("", step.form(), values, errors),
        "outcomes": outcomes,
        "comment": values.get("_comment").cloned().unwrap_or_default(),
        "comment_error": errors.get("comment").cloned().unwrap_or_default(),
        "comment_required": step.outcomes().iter().any(|o| o.comment),
        "has_errors": !errors.is_empty(),
        "problem": posted.problem.clone().unwrap_or_default(),
        "dossier": dossier::view(&dossier, true, &viewer.documents(instance)),
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(page(status, "task", step.display_name(), &data))
}
