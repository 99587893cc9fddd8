//! The pages behind email links. Opening one never acts; deciding is a POST carrying an
//! anti-forgery token derived from the link, and spends it. Every invalid link gets the same
//! page.

use super::*;

pub(crate) async fn link_page(State(s): Shared, Path(token): Path<String>) -> Response {
    let Ok(grant) = s.engine.verify_link(&token).await else {
        return invalid_link(&s, &token, false);
    };
    let result = match grant.task {
        Some(task) => {
            task_view(
                &s,
                &token,
                &grant.instance,
                task,
                &HashMap::new(),
                &HashMap::new(),
                None,
            )
            .await
        }
        None => status_view(&s, &grant.instance).await,
    };
    result.unwrap_or_else(|e| failure(&s, &e))
}

pub(crate) async fn status_view(s: &AppState, id: &str) -> Result<Response, Error> {
    let (_, inst) = s.engine.instance(id).await?;
    let p = s.engine.process_of(id).await?;
    let request_title = core::request_title(&p, &inst);
    let status = match inst.status {
        InstanceStatus::Running => "Votre demande est en cours d'examen.",
        InstanceStatus::Ended(guichet_definitions::model::EndResult::Accepted) => {
            "Votre demande est acceptée."
        }
        InstanceStatus::Ended(guichet_definitions::model::EndResult::Rejected) => {
            "Votre demande n'a pas été acceptée."
        }
        InstanceStatus::Ended(guichet_definitions::model::EndResult::Withdrawn)
        | InstanceStatus::Cancelled => "Votre demande est close.",
    };
    let data = serde_json::json!({
        "request_title": request_title,
        "reference": core::reference(id),
        "desk": p.title,
        "status": status,
        "timeline": timeline(s, id).await?,
    });
    Ok(page(s, StatusCode::OK, "status", "Votre demande", &data))
}

pub(crate) async fn link_act(
    State(s): Shared,
    Path(token): Path<String>,
    Form(values): Form<HashMap<String, String>>,
) -> Response {
    let Ok(grant) = s.engine.verify_link(&token).await else {
        return invalid_link(&s, &token, false);
    };
    let Some(task) = grant.task else {
        return page(
            &s,
            StatusCode::METHOD_NOT_ALLOWED,
            "error",
            "Action refusée",
            &serde_json::json!({"heading": "Action refusée", "message": "Ce lien sert à suivre la demande."}),
        );
    };
    if !csrf_ok(&s, &token, &values).await {
        return expired_form(
            &s,
            "Rechargez la page de la tâche depuis votre courriel, puis recommencez.",
        );
    }
    let outcome = values.get("_outcome").filter(|o| !o.is_empty()).cloned();
    let fields = form::fields(&values, &["_csrf", "_outcome"]);
    let command = Command::Complete {
        task,
        user: grant.recipient.clone(),
        outcome,
        fields,
    };
    match s.engine.execute(&grant.instance, command).await {
        Ok(_) => {
            // The link has served: it cannot act again.
            let _ = s.engine.spend_link(&token).await;
            page(
                &s,
                StatusCode::OK,
                "done",
                "Merci",
                &serde_json::json!({"message": "Votre décision est enregistrée. La demande suit son cours."}),
            )
        }
        Err(Error::Refused(core::Error::Invalid(errors))) => {
            let errors = errors.into_iter().map(|e| (e.field, e.message)).collect();
            task_view(&s, &token, &grant.instance, task, &values, &errors, None)
                .await
                .unwrap_or_else(|e| failure(&s, &e))
        }
        Err(Error::Refused(e)) if !e.is_internal() => task_view(
            &s,
            &token,
            &grant.instance,
            task,
            &values,
            &HashMap::new(),
            Some(e.to_string()),
        )
        .await
        .unwrap_or_else(|e| failure(&s, &e)),
        Err(e) => failure(&s, &e),
    }
}

pub(crate) async fn link_fresh(State(s): Shared, Path(token): Path<String>) -> Response {
    // The same answer whatever the token was: no hint of which case it is.
    let _ = s.engine.fresh_link_for(&token).await;
    invalid_link(&s, &token, true)
}
