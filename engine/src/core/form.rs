//! Validation of submitted form data against a step's declared fields. A wrong value is
//! refused with an error naming the field, and nothing changes.

use std::fmt;

use guichet_definitions::model::{FieldType, Form};
use serde_json::Value;

use crate::core::state::Fields;

/// One field's problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.message)
    }
}

fn err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Checks `data` against `form`; returns the normalised values (numbers as numbers, yes-no as
/// booleans, strings trimmed), or every problem found.
pub fn validate(form: &Form, data: &Fields) -> Result<Fields, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut out = Fields::new();
    for key in data.keys() {
        if form.field(key).is_none() {
            let known: Vec<&str> = form.fields.iter().map(|f| f.id.as_str()).collect();
            errors.push(err(
                key,
                if known.is_empty() {
                    "this step takes no data".to_owned()
                } else {
                    format!("unknown field (this step has: {})", known.join(", "))
                },
            ));
        }
    }
    for field in &form.fields {
        let value = data.get(&field.id).filter(|v| !is_empty(v));
        let Some(value) = value else {
            if field.required {
                errors.push(err(&field.id, "required"));
            }
            continue;
        };
        match normalise(field, value) {
            Ok(v) => {
                out.insert(field.id.clone(), v);
            }
            Err(message) => errors.push(err(&field.id, message)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn normalise(field: &guichet_definitions::model::Field, value: &Value) -> Result<Value, String> {
    match field.ty {
        FieldType::Text | FieldType::LongText => {
            let Value::String(s) = value else {
                return Err("expected text".to_owned());
            };
            let s = s.trim();
            if let Some(max) = field.max_length
                && s.chars().count() > max as usize
            {
                return Err(format!("at most {max} characters"));
            }
            no_controls(s)?;
            Ok(Value::String(s.to_owned()))
        }
        FieldType::Email => {
            let Value::String(s) = value else {
                return Err("expected an email address".to_owned());
            };
            let s = s.trim();
            let valid = s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            }) && !s.chars().any(char::is_whitespace);
            if valid {
                Ok(Value::String(s.to_owned()))
            } else {
                Err(format!("`{s}` is not an email address"))
            }
        }
        FieldType::Date => {
            let Value::String(s) = value else {
                return Err("expected a date (YYYY-MM-DD)".to_owned());
            };
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(s.trim(), format)
                .map(|_| Value::String(s.trim().to_owned()))
                .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))
        }
        FieldType::Number => {
            let n = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().replace(',', ".").parse::<f64>().ok(),
                _ => None,
            }
            .filter(|n| n.is_finite())
            .ok_or_else(|| "expected a number".to_owned())?;
            if let Some(min) = field.min
                && n < min
            {
                return Err(format!("at least {min}"));
            }
            if let Some(max) = field.max
                && n > max
            {
                return Err(format!("at most {max}"));
            }
            Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
        }
        FieldType::Choice => {
            let Value::String(s) = value else {
                return Err("expected one of the options".to_owned());
            };
            if field.options.iter().any(|o| o.value == *s) {
                Ok(Value::String(s.clone()))
            } else {
                let options: Vec<&str> = field.options.iter().map(|o| o.value.as_str()).collect();
                Err(format!("`{s}` is not one of: {}", options.join(", ")))
            }
        }
        FieldType::File => document(field, value),
        FieldType::YesNo => match value {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) if matches!(s.as_str(), "true" | "oui" | "yes") => {
                Ok(Value::Bool(true))
            }
            Value::String(s) if matches!(s.as_str(), "false" | "non" | "no") => {
                Ok(Value::Bool(false))
            }
            _ => Err("expected yes or no".to_owned()),
        },
    }
}

/// A file field's value: the document as stored (`sha256`, `name`, `size`, `type`), which
/// the shell wrote beside the database before the command; checked against the field's
/// `accept` and `max-size`.
fn document(field: &guichet_definitions::model::Field, value: &Value) -> Result<Value, String> {
    let Value::Object(doc) = value else {
        return Err("expected a document".to_owned());
    };
    let sha256 = doc.get("sha256").and_then(Value::as_str).unwrap_or("");
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err("the document's SHA-256 is not 64 lower-case hex digits".to_owned());
    }
    let name = doc.get("name").and_then(Value::as_str).unwrap_or("").trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err("the document needs a name of 1 to 255 characters".to_owned());
    }
    no_controls(name)?;
    let size = doc
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| "the document's size is missing".to_owned())?;
    let limit = field.file_limit();
    if size > limit {
        return Err(format!(
            "the document is too large: {} for at most {}",
            bytes(size),
            bytes(limit)
        ));
    }
    let media_type = doc.get("type").and_then(Value::as_str).unwrap_or("");
    if !field.accepts(media_type) {
        return Err(format!(
            "a document of type {} is not accepted here: {}",
            if media_type.is_empty() {
                "unknown"
            } else {
                media_type
            },
            field.accept.join(", ")
        ));
    }
    Ok(serde_json::json!({
        "sha256": sha256, "name": name, "size": size, "type": media_type,
    }))
}

/// A size in bytes as people read it (decimal units, as `max-size` is written).
pub fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.0} KB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

/// The longest comment accepted with a decision.
pub const COMMENT_MAX: usize = 10_000;

/// Checks the comment given with a decision (`comment` in [`FieldError`]s): trimmed, empty is
/// none, required when the chosen outcome says so.
pub fn comment(
    text: Option<&str>,
    outcome: Option<&guichet_definitions::model::Outcome>,
) -> Result<Option<String>, FieldError> {
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    let Some(text) = text else {
        return match outcome {
            Some(o) if o.comment => Err(err(
                "comment",
                format!("required with the outcome `{}`: say why", o.id),
            )),
            _ => Ok(None),
        };
    };
    if text.chars().count() > COMMENT_MAX {
        return Err(err("comment", format!("at most {COMMENT_MAX} characters")));
    }
    no_controls(text).map_err(|m| err("comment", m))?;
    Ok(Some(text.to_owned()))
}

/// NUL cannot be stored in PostgreSQL's text, and no control character but tabs and line
/// breaks can be written in XML (the XES export): refused where typed.
fn no_controls(s: &str) -> Result<(), String> {
    match s
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        Some(c) => Err(format!(
            "contains a control character (U+{:04X}): remove it",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

/// Whether a recipient may be an email address: one `@` and no space. Looser than an email
/// field's check, since staff accounts such as `admin@localhost` have no dot in their domain.
pub fn may_be_address(s: &str) -> bool {
    s.matches('@').count() == 1 && !s.contains(char::is_whitespace)
}
