//! Forms in pages, generated from a step's declared fields: what to show (with the values
//! typed and the error next to each field), and how posted strings become field values.

use std::collections::HashMap;

use guichet_definitions::model::{FieldType, Form};
use guichet_engine::core::Fields;
use serde::Serialize;

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
