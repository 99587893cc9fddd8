//! Validation of submitted form data against a step's declared fields. A wrong value is
//! refused with an error naming the field, and nothing changes.

use std::fmt;

use guichet_definitions::model::{FieldType, Form};
use serde_json::Value;

use crate::core::state::Fields;

/// One field's problem: what it is ([`Problem`], which pages put in the reader's language),
/// and its English message (for the API, the CLI and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    pub problem: Problem,
}

impl FieldError {
    pub fn new(field: &str, problem: Problem) -> FieldError {
        FieldError {
            field: field.to_owned(),
            message: problem.to_string(),
            problem,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.message)
    }
}

/// What is wrong with a value, with what a message needs to say it in any language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("unknown field (this step has: {})", .known.join(", "))]
    UnknownField { known: Vec<String> },
    #[error("this step takes no data")]
    NoData,
    #[error("required")]
    Required,
    #[error("expected text")]
    ExpectedText,
    #[error("at most {max} characters")]
    TooLong { max: u64 },
    #[error("at least {min} characters")]
    TooShort { min: u64 },
    #[error("contains a control character (U+{code:04X}): remove it")]
    ControlCharacter { code: u32 },
    #[error("`{value}` is not an email address")]
    NotEmail { value: String },
    #[error("`{value}` is not a date (YYYY-MM-DD)")]
    NotDate { value: String },
    #[error("expected a number")]
    NotNumber,
    /// Below the field's `min` (as written).
    #[error("at least {min}")]
    BelowMin { min: String },
    #[error("at most {max}")]
    AboveMax { max: String },
    #[error("`{value}` is not one of: {}", .options.join(", "))]
    NotOption { value: String, options: Vec<String> },
    #[error("expected one of the options")]
    ExpectedOption,
    #[error("expected yes or no")]
    NotYesNo,
    #[error("expected a document")]
    NotDocument,
    /// A document's description is malformed (a client's mistake, not a person's).
    #[error("{detail}")]
    BadDocument { detail: String },
    #[error("the document is too large: {} for at most {}", bytes(*.size), bytes(*.limit))]
    DocumentTooLarge { size: u64, limit: u64 },
    /// Refused while it streamed in, past the field's `max-size`.
    #[error("the document is too large: at most {}", bytes(*.limit))]
    DocumentOverLimit { limit: u64 },
    #[error("a document of type {} is not accepted here: {}", if .media_type.is_empty() { "unknown" } else { .media_type }, .accept.join(", "))]
    DocumentType {
        media_type: String,
        accept: Vec<String>,
    },
    #[error("required with the outcome `{outcome}`: say why")]
    CommentRequired { outcome: String },
    /// A message with no translation (administration pages).
    #[error("{0}")]
    Other(String),
}

fn err(field: &str, problem: Problem) -> FieldError {
    FieldError::new(field, problem)
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
                    Problem::NoData
                } else {
                    Problem::UnknownField {
                        known: known.iter().map(|k| (*k).to_owned()).collect(),
                    }
                },
            ));
        }
    }
    for field in &form.fields {
        let value = data.get(&field.id).filter(|v| !is_empty(v));
        let Some(value) = value else {
            if field.required {
                errors.push(err(&field.id, Problem::Required));
            }
            continue;
        };
        match normalise(field, value) {
            Ok(v) => {
                out.insert(field.id.clone(), v);
            }
            Err(problem) => errors.push(err(&field.id, problem)),
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

fn normalise(field: &guichet_definitions::model::Field, value: &Value) -> Result<Value, Problem> {
    match field.ty {
        FieldType::Text | FieldType::LongText => {
            let Value::String(s) = value else {
                return Err(Problem::ExpectedText);
            };
            let s = s.trim();
            let max = field.max_length.map_or(
                if field.ty == FieldType::Text {
                    TEXT_MAX
                } else {
                    LONG_TEXT_MAX
                },
                u64::from,
            );
            if s.chars().count() as u64 > max {
                return Err(Problem::TooLong { max });
            }
            no_controls(s)?;
            Ok(Value::String(s.to_owned()))
        }
        FieldType::Email => {
            let Value::String(s) = value else {
                return Err(Problem::NotEmail {
                    value: value.to_string(),
                });
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
                Err(Problem::NotEmail {
                    value: s.to_owned(),
                })
            }
        }
        FieldType::Date => {
            let Value::String(s) = value else {
                return Err(Problem::NotDate {
                    value: value.to_string(),
                });
            };
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(s.trim(), format)
                .map(|_| Value::String(s.trim().to_owned()))
                .map_err(|_| Problem::NotDate {
                    value: s.to_owned(),
                })
        }
        FieldType::Number => {
            let n = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().replace(',', ".").parse::<f64>().ok(),
                _ => None,
            }
            .filter(|n| n.is_finite())
            .ok_or(Problem::NotNumber)?;
            if let Some(min) = field.min
                && n < min
            {
                return Err(Problem::BelowMin {
                    min: min.to_string(),
                });
            }
            if let Some(max) = field.max
                && n > max
            {
                return Err(Problem::AboveMax {
                    max: max.to_string(),
                });
            }
            Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
        }
        FieldType::Choice => {
            let Value::String(s) = value else {
                return Err(Problem::ExpectedOption);
            };
            if field.options.iter().any(|o| o.value == *s) {
                Ok(Value::String(s.clone()))
            } else {
                Err(Problem::NotOption {
                    value: s.clone(),
                    options: field.options.iter().map(|o| o.value.clone()).collect(),
                })
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
            _ => Err(Problem::NotYesNo),
        },
    }
}

/// A file field's value: the document as stored (`sha256`, `name`, `size`, `type`), which
/// the shell wrote beside the database before the command; checked against the field's
/// `accept` and `max-size`.
fn document(field: &guichet_definitions::model::Field, value: &Value) -> Result<Value, Problem> {
    let bad = |detail: &str| Problem::BadDocument {
        detail: detail.to_owned(),
    };
    let Value::Object(doc) = value else {
        return Err(Problem::NotDocument);
    };
    let sha256 = doc.get("sha256").and_then(Value::as_str).unwrap_or("");
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad(
            "the document's SHA-256 is not 64 lower-case hex digits",
        ));
    }
    let name = doc.get("name").and_then(Value::as_str).unwrap_or("").trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(bad("the document needs a name of 1 to 255 characters"));
    }
    no_controls(name)?;
    let size = doc
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("the document's size is missing"))?;
    let limit = field.file_limit();
    if size > limit {
        return Err(Problem::DocumentTooLarge { size, limit });
    }
    let media_type = doc.get("type").and_then(Value::as_str).unwrap_or("");
    if !field.accepts(media_type) {
        return Err(Problem::DocumentType {
            media_type: media_type.to_owned(),
            accept: field.accept.clone(),
        });
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

/// The longest `text` value without a declared `max-length`.
pub const TEXT_MAX: u64 = 1_000;

/// The longest `long-text` value without a declared `max-length` (the most a definition may
/// declare).
pub const LONG_TEXT_MAX: u64 = 10_000;

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
                Problem::CommentRequired {
                    outcome: o.id.clone(),
                },
            )),
            _ => Ok(None),
        };
    };
    if text.chars().count() > COMMENT_MAX {
        return Err(err(
            "comment",
            Problem::TooLong {
                max: COMMENT_MAX as u64,
            },
        ));
    }
    no_controls(text).map_err(|m| err("comment", m))?;
    Ok(Some(text.to_owned()))
}

/// NUL cannot be stored in PostgreSQL's text, and no control character but tabs and line
/// breaks can be written in XML (the XES export): refused where typed.
fn no_controls(s: &str) -> Result<(), Problem> {
    match s
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        Some(c) => Err(Problem::ControlCharacter { code: u32::from(c) }),
        None => Ok(()),
    }
}

/// Whether a recipient may be an email address: one `@` and no space. Looser than an email
/// field's check, since staff accounts such as `admin@localhost` have no dot in their domain.
pub fn may_be_address(s: &str) -> bool {
    s.matches('@').count() == 1 && !s.contains(char::is_whitespace)
}
