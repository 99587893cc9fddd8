//! The requester portal: the list of desks, and an intake form per desk generated from its
//! start step; errors next to each field, nothing saved until the form is valid.

use super::*;

pub(crate) async fn home(State(s): Shared) -> Response {
    match s.engine.desks().await {
        Ok(desks) => {
            let list: Vec<_> = desks
                .values()
                .map(|p| p.in_language(i18n::current()))
                .map(|p| serde_json::json!({"name": p.name, "title": p.title, "description": p.description.clone().unwrap_or_default()}))
                .collect();
            page(
                StatusCode::OK,
                "home",
                &text("home-title"),
                &serde_json::json!({"desks": list}),
            )
        }
        Err(e) => failure(&e),
    }
}

/// The hidden field that carries the form's submission key: generated with the page, kept
/// when the page comes back with errors, so that sending the same form twice (a double
/// click, a retry after a lost answer) starts one request ([`Engine::start_request_once`]).
///
/// [`Engine::start_request_once`]: guichet_engine::runtime::Engine::start_request_once
const SUBMISSION: &str = "_submission";

/// The submission key a posted form carries, when it is one this page made (32 hex digits).
fn submission_key(values: &HashMap<String, String>) -> Option<&str> {
    values
        .get(SUBMISSION)
        .map(String::as_str)
        .filter(|k| k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A fresh submission key for a form.
fn new_submission_key() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Corrupt(format!("no randomness for a form's key: {e}")))?;
    Ok(hex::encode(bytes))
}

pub(crate) async fn desk_view(
    s: &AppState,
    name: &str,
    values: &HashMap<String, String>,
    errors: &HashMap<String, String>,
) -> Result<Response, Error> {
    desk_page(s, name, values, errors, None).await
}

/// The desk's form; `reused` is the reference of the request an earlier, different
/// submission of this page started (the form then comes back with a new key).
async fn desk_page(
    s: &AppState,
    name: &str,
    values: &HashMap<String, String>,
    errors: &HashMap<String, String>,
    reused: Option<&str>,
) -> Result<Response, Error> {
    let desks = s.engine.desks().await?;
    let p = desks
        .get(name)
        .ok_or_else(|| Error::NotFound(name.to_owned()))?;
    i18n::desk(p.language);
    let p = p.in_language(i18n::current());
    let start = p.start();
    let fields = form::view("", start.form(), values, errors);
    let data = serde_json::json!({
        "desk": {"name": p.name, "title": p.title, "description": p.description.clone().unwrap_or_default()},
        "form_title": start.display_name(),
        "fields": fields,
        "has_errors": !errors.is_empty(),
        "submission": match submission_key(values).filter(|_| reused.is_none()) {
            Some(key) => key.to_owned(),
            None => new_submission_key()?,
        },
        "reused": reused,
    });
    let status = if errors.is_empty() && reused.is_none() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(page(status, "desk", &p.title, &data))
}

pub(crate) async fn desk_form(State(s): Shared, Path(name): Path<String>) -> Response {
    desk_view(&s, &name, &HashMap::new(), &HashMap::new())
        .await
        .unwrap_or_else(|e| failure(&e))
}

pub(crate) async fn desk_submit(
    State(s): Shared,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Response {
    let desks = match s.engine.desks().await {
        Ok(d) => d,
        Err(e) => return failure(&e),
    };
    let Some(p) = desks.get(&name) else {
        return failure(&Error::NotFound(name));
    };
    let form = p.start().form();
    let address = s.limits.address(&request);
    let submission =
        match form::Submission::read(&s, request, |_, field| form.and_then(|f| f.field(field)))
            .await
        {
            Ok(sub) => sub,
            Err(r) => return r,
        };
    if !submission.errors.is_empty() {
        return desk_view(&s, &name, &submission.values, &submission.page_errors())
            .await
            .unwrap_or_else(|e| failure(&e));
    }
    // The email addresses the request would write to count against the intake's limit too.
    let addresses = form
        .into_iter()
        .flat_map(|f| &f.fields)
        .filter(|f| f.ty == guichet_definitions::model::FieldType::Email)
        .filter_map(|f| submission.values.get(&f.id))
        .map(String::as_str);
    if let Err(limited) = s.limits.intake(address, addresses) {
        s.limits.refused("/desks/{name}", address, limited);
        return limits::too_many(limited);
    }
    let fields = submission.fields(&[SUBMISSION]);
    // The desk writes to the sponsor in the language they read its form in.
    let language = Some(i18n::current());
    let started = match submission_key(&submission.values) {
        Some(key) => {
            s.engine
                .start_request_once(&name, &fields, language, &format!("form {name} {key}"))
                .await
        }
        None => s
            .engine
            .start_request(&name, &fields, language)
            .await
            .map(|(id, inst)| guichet_engine::runtime::Started {
                id,
                inst,
                replayed: false,
            }),
    };
    match started {
        Ok(guichet_engine::runtime::Started { id, replayed, .. }) => {
            let title = submission
                .values
                .get("titre")
                .or_else(|| submission.values.get("title"))
                .cloned()
                .unwrap_or_default();
            if !replayed {
                submission.keep().await;
            }
            page(
                StatusCode::OK,
                "submitted",
                &text("submitted-heading"),
                &serde_json::json!({"title": title, "reference": core::reference(&id)}),
            )
        }
        Err(Error::Refused(core::Error::Invalid(errors))) => {
            let errors = errors
                .into_iter()
                .map(|e| (e.field, messages::problem(&e.problem)))
                .collect();
            desk_view(&s, &name, &submission.values, &errors)
                .await
                .unwrap_or_else(|e| failure(&e))
        }
        Err(Error::KeyReused(reference)) => desk_page(
            &s,
            &name,
            &submission.values,
            &HashMap::new(),
            Some(&reference),
        )
        .await
        .unwrap_or_else(|e| failure(&e)),
        Err(e) => failure(&e),
    }
}
