//! The task page, shared by email links and signed-in staff: the step, its deadline, its
//! form and outcomes, and the request's timeline.

use super::*;

pub(crate) fn invalid_link(s: &AppState, token: &str, sent: bool) -> Response {
    page(
        s,
        StatusCode::NOT_FOUND,
        "invalid-link",
        "Lien invalide",
        &serde_json::json!({"token": token, "sent": sent}),
    )
}

/// The request's timeline as people read it: completed steps and their outcomes.
pub(crate) async fn timeline(s: &AppState, id: &str) -> Result<Vec<serde_json::Value>, Error> {
    let process = s.engine.process_of(id).await?;
    let mut out = Vec::new();
    for h in s.engine.history(id).await? {
        let what = match &h.event.kind {
            EventKind::StepCompleted { step, outcome } => {
                let Some(st) = process.step(step) else {
                    continue;
                };
                if !matches!(
                    st.kind,
                    StepKind::Start(_) | StepKind::Task(_) | StepKind::Call(_) | StepKind::Wait(_)
                ) {
                    continue;
                }
                let label = outcome.as_ref().map(|o| {
                    st.outcomes()
                        .iter()
                        .find(|x| x.id == *o)
                        .map_or_else(|| o.clone(), |x| x.display_name())
                });
                match label {
                    Some(o) => format!("{} : {o}", st.display_name()),
                    None => st.display_name().to_owned(),
                }
            }
            EventKind::InstanceEnded { result } => format!("Demande close ({})", result.as_str()),
            EventKind::InstanceCancelled { .. } => "Demande retirée".to_owned(),
            _ => continue,
        };
        out.push(serde_json::json!({"at": date(h.event.at), "what": what}));
    }
    Ok(out)
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

/// The task page behind an email link.
pub(crate) async fn task_view(
    s: &AppState,
    token: &str,
    instance: &str,
    task: u32,
    values: &HashMap<String, String>,
    errors: &HashMap<String, String>,
    problem: Option<String>,
) -> Result<Response, Error> {
    let viewer = Viewer {
        action: format!("/l/{token}"),
        csrf: s.engine.csrf_for(token).await?,
        staff: None,
        token,
    };
    task_page(s, &viewer, instance, task, values, errors, problem).await
}

pub(crate) async fn task_page(
    s: &AppState,
    viewer: &Viewer<'_>,
    instance: &str,
    task: u32,
    values: &HashMap<String, String>,
    errors: &HashMap<String, String>,
    problem: Option<String>,
) -> Result<Response, Error> {
    let (_, inst) = s.engine.instance(instance).await?;
    let Some(t) = inst.tasks.get(&task) else {
        return Ok(invalid_link(s, viewer.token, false));
    };
    let p = s.engine.process_of(instance).await?;
    let step = &p.steps[t.step];
    let request_title = core::request_title(&p, &inst);
    let outcomes: Vec<_> = step
        .outcomes()
        .iter()
        .map(|o| serde_json::json!({"id": o.id, "label": o.display_name()}))
        .collect();
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
        "request_title": request_title,
        "reference": core::reference(instance),
        "desk": p.title,
        "deadline": t.due_at.map(date).unwrap_or_default(),
        "overdue": t.overdue,
        "fields": form::view(step.form(), values, errors),
        "outcomes": outcomes,
        "has_errors": !errors.is_empty(),
        "problem": problem.unwrap_or_default(),
        "timeline": timeline(s, instance).await?,
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(page(s, status, "task", step.display_name(), &data))
}
