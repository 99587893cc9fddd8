//! Forms in pages, generated from a step's declared fields: what to show (with the values
//! typed and the error next to each field), and how posted strings become field values.

use std::collections::HashMap;

use axum::Form as Posted;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use guichet_definitions::model::{FieldType, Form};
use guichet_engine::Error;
use guichet_engine::core::Fields;
use serde::Serialize;

use crate::AppState;

#[derive(Debug, Serialize)]
pub(crate) struct FieldView {
    id: String,
    /// The input's element id (`f-`, the form's prefix, the field id); its help and error
    /// are `h-` and `e-` of the same, named by `aria-describedby`.
    dom: String,
    describedby: String,
    label: String,
    help: String,
    required: bool,
    error: String,
    value: String,
    input_type: &'static str,
    is_long: bool,
    is_choice: bool,
    is_yes_no: bool,
    is_file: bool,
    /// A file field's accepted media types, for the input's `accept`.
    accept: String,
    yes: bool,
    no: bool,
    options: Vec<OptionView>,
    min: String,
    max: String,
}

#[derive(Debug, Serialize)]
struct OptionView {
    value: String,
    label: String,
    selected: bool,
}

/// The fields of `form` to show, with the values posted and their errors; `prefix` keeps the
/// element ids of several forms on one page apart.
pub(crate) fn view(
    prefix: &str,
    form: Option<&Form>,
    values: &HashMap<String, String>,
    errors: &HashMap<String, String>,
) -> Vec<FieldView> {
    let Some(form) = form else { return Vec::new() };
    form.fields
        .iter()
        .map(|f| {
            let value = values.get(&f.id).cloned().unwrap_or_default();
            let dom = format!("{prefix}{}", f.id);
            let error = errors.get(&f.id).cloned().unwrap_or_default();
            let describedby = [
                (f.help.is_some(), format!("h-{dom}")),
                (!error.is_empty(), format!("e-{dom}")),
            ]
            .into_iter()
            .filter_map(|(shown, id)| shown.then_some(id))
            .collect::<Vec<_>>()
            .join(" ");
            FieldView {
                id: f.id.clone(),
                dom,
                describedby,
                label: f.label.clone().unwrap_or_else(|| f.id.clone()),
                help: f.help.clone().unwrap_or_default(),
                required: f.required,
                error,
                input_type: match f.ty {
                    FieldType::Email => "email",
                    FieldType::Date => "date",
                    FieldType::Number => "number",
                    _ => "text",
                },
                is_long: f.ty == FieldType::LongText,
                is_choice: f.ty == FieldType::Choice,
                is_yes_no: f.ty == FieldType::YesNo,
                is_file: f.ty == FieldType::File,
                accept: f.accept.join(","),
                yes: value == "true",
                no: value == "false",
                options: f
                    .options
                    .iter()
                    .map(|o| OptionView {
                        value: o.value.clone(),
                        label: o.label.clone().unwrap_or_else(|| o.value.clone()),
                        selected: o.value == value,
                    })
                    .collect(),
                min: f.min.map(|m| m.to_string()).unwrap_or_default(),
                max: f.max.map(|m| m.to_string()).unwrap_or_default(),
                value,
            }
        })
        .collect()
}

/// Posted strings as field values; empty ones are left out (a required field then reports
/// itself as missing), and `skip` names the page's own controls.
pub(crate) fn fields(values: &HashMap<String, String>, skip: &[&str]) -> Fields {
    values
        .iter()
        .filter(|(k, v)| !skip.contains(&k.as_str()) && !v.trim().is_empty())
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect()
}

/// A form as posted: its text values and, from a multipart form, the documents staged as
/// they streamed in (kept only once the command that records them is saved: [`keep`]), with
/// the problems met while streaming (a document too large), by field.
///
/// [`keep`]: Submission::keep
#[derive(Debug, Default)]
pub(crate) struct Submission {
    pub(crate) values: HashMap<String, String>,
    documents: Vec<(String, String, guichet_engine::store::documents::Staged)>,
    pub(crate) errors: HashMap<String, guichet_engine::core::form::Problem>,
}

/// The most text a form may carry (in a multipart form, in one part: documents have their
/// own limits, their fields' `max-size`).
const TEXT_PART: usize = 2_000_000;

/// The most parts a multipart form may have.
const MAX_PARTS: usize = 500;

impl Submission {
    /// Reads the posted form, urlencoded or multipart. A file part is streamed to the
    /// document store under the limit of the field `field` names for it (given the values
    /// read so far, which come first in the page's order); parts no field takes are skipped.
    pub(crate) async fn read<'f>(
        s: &AppState,
        request: axum::extract::Request,
        field: impl Fn(&HashMap<String, String>, &str) -> Option<&'f guichet_definitions::model::Field>,
    ) -> Result<Submission, Response> {
        use axum::extract::FromRequest as _;
        if !is_multipart(request.headers()) {
            // Read whole, so bounded here (upload routes lift the router's own bound).
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, TEXT_PART).await.map_err(|_| {
                (StatusCode::PAYLOAD_TOO_LARGE, "the form is too long").into_response()
            })?;
            let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
            let Posted(values) = Posted::<HashMap<String, String>>::from_request(request, &())
                .await
                .map_err(IntoResponse::into_response)?;
            return Ok(Submission {
                values,
                ..Submission::default()
            });
        }
        let mut parts = axum::extract::Multipart::from_request(request, &())
            .await
            .map_err(IntoResponse::into_response)?;
        let mut out = Submission::default();
        let mut count = 0;
        let broken = |e: axum::extract::multipart::MultipartError| {
            (
                e.status(),
                format!("the form could not be read: {}", e.body_text()),
            )
                .into_response()
        };
        while let Some(mut part) = parts.next_field().await.map_err(broken)? {
            count += 1;
            if count > MAX_PARTS {
                return Err(
                    (StatusCode::PAYLOAD_TOO_LARGE, "the form has too many parts").into_response(),
                );
            }
            let Some(name) = part.name().map(str::to_owned) else {
                continue;
            };
            let Some(file_name) = part.file_name().map(str::to_owned) else {
                let text = part.text().await.map_err(broken)?;
                if text.len() > TEXT_PART {
                    return Err(
                        (StatusCode::PAYLOAD_TOO_LARGE, "a text field is too long").into_response()
                    );
                }
                out.values.insert(name, text);
                continue;
            };
            // No file chosen: the browser sends an empty part without a name.
            if file_name.is_empty() {
                continue;
            }
            // One document per field: a repeated part is skipped, not stored.
            let Some(def) = field(&out.values, &name)
                .filter(|f| f.ty == guichet_definitions::model::FieldType::File)
                .filter(|_| !out.documents.iter().any(|(f, _, _)| *f == name))
            else {
                continue;
            };
            let limit = def.file_limit();
            let mut staging =
                s.engine.documents().stage(limit).await.map_err(|e| {
                    crate::failure(&Error::Io(std::io::Error::other(e.to_string())))
                })?;
            let mut too_large = false;
            while let Some(chunk) = part.chunk().await.map_err(broken)? {
                match staging.write(&chunk).await {
                    Ok(()) => {}
                    Err(guichet_engine::store::documents::Refusal::TooLarge { .. }) => {
                        too_large = true;
                        break;
                    }
                    Err(e) => {
                        return Err(crate::failure(&Error::Io(std::io::Error::other(
                            e.to_string(),
                        ))));
                    }
                }
            }
            if too_large {
                out.errors.insert(
                    name,
                    guichet_engine::core::form::Problem::DocumentOverLimit { limit },
                );
                continue;
            }
            let staged = staging
                .finish()
                .await
                .map_err(|e| crate::failure(&Error::Io(std::io::Error::other(e.to_string()))))?;
            out.documents.push((name, display_name(&file_name), staged));
        }
        Ok(out)
    }

    /// The values as engine fields (empty ones and `skip` left out), documents as the
    /// engine records them: `sha256`, `name`, `size`, `type` (sniffed from the content).
    pub(crate) fn fields(&self, skip: &[&str]) -> Fields {
        let mut out = fields(&self.values, skip);
        out.extend(self.documents());
        out
    }

    /// A value for one of `file_fields` that did not come as an uploaded document (a JSON
    /// body naming a hash it never sent): its field. A document is recorded only with its
    /// file.
    pub(crate) fn unsent_document(&self, file_fields: &[&str], fields: &Fields) -> Option<String> {
        file_fields
            .iter()
            .find(|f| fields.contains_key(**f) && !self.documents.iter().any(|(d, _, _)| d == *f))
            .map(|f| (*f).to_owned())
    }

    /// The problems met while streaming, in the pages' words, by field.
    pub(crate) fn page_errors(&self) -> HashMap<String, String> {
        self.errors
            .iter()
            .map(|(f, p)| (f.clone(), crate::messages::problem(p)))
            .collect()
    }

    /// The documents alone, as engine field values.
    pub(crate) fn documents(&self) -> Fields {
        self.documents
            .iter()
            .map(|(field, name, staged)| {
                let d = &staged.stored;
                (
                    field.clone(),
                    serde_json::json!({"sha256": d.sha256, "name": name, "size": d.size, "type": d.media_type}),
                )
            })
            .collect()
    }

    /// Keeps the staged documents, once the command that records them is saved. A failure
    /// here leaves a recorded document without its file: logged as an error for the
    /// operator (the history holds its hash, so the sender can send it again).
    pub(crate) async fn keep(self) {
        for (field, _, staged) in self.documents {
            let sha = staged.stored.sha256.clone();
            if let Err(e) = staged.keep().await {
                tracing::error!(field, sha256 = sha, error = %e, "a recorded document could not be kept");
            }
        }
    }
}

/// Whether a request's body is a multipart form (documents may come with it).
pub(crate) fn is_multipart(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"))
}

/// The file fields of `forms`, by id.
pub(crate) fn file_fields<'f>(forms: impl IntoIterator<Item = &'f Form>) -> Vec<&'f str> {
    forms
        .into_iter()
        .flat_map(|f| f.fields.iter())
        .filter(|f| f.ty == FieldType::File)
        .map(|f| f.id.as_str())
        .collect()
}

/// A file name as shown: its last path component (some browsers send a whole path), without
/// control characters, at most 255 characters.
fn display_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = last.chars().filter(|c| !c.is_control()).take(255).collect();
    if clean.trim().is_empty() {
        "document".to_owned()
    } else {
        clean.trim().to_owned()
    }
}
