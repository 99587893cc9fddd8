//! What the engine says of a refusal, in the reader's language: form errors ([`Problem`]) and
//! the core's refusals ([`core::Error`]), from the catalogue ([`crate::i18n`]). The engine
//! keeps English for the API, the CLI and logs.

use guichet_engine::core::form::{Problem, bytes};

use super::{text, text_with};

/// A field's problem, in the reader's language.
pub(crate) fn problem(p: &Problem) -> String {
    match p {
        Problem::UnknownField { known } => text_with(
            "problem-unknown-field",
            &[("known", (&known.join(", ")).into())],
        ),
        Problem::NoData => text("problem-no-data"),
        Problem::Required => text("problem-required"),
        Problem::ExpectedText => text("problem-expected-text"),
        Problem::TooLong { max } => text_with("problem-too-long", &[("max", (*max).into())]),
        Problem::TooShort { min } => text_with("problem-too-short", &[("min", (*min).into())]),
        Problem::ControlCharacter { code } => text_with(
            "problem-control-character",
            &[("code", (&format!("{code:04X}")).into())],
        ),
        Problem::NotEmail { value } => text_with("problem-not-email", &[("value", value.into())]),
        Problem::NotDate { value } => text_with("problem-not-date", &[("value", value.into())]),
        Problem::NotNumber => text("problem-not-number"),
        Problem::BelowMin { min } => text_with("problem-below-min", &[("min", min.into())]),
        Problem::AboveMax { max } => text_with("problem-above-max", &[("max", max.into())]),
        Problem::NotOption { value, options } => text_with(
            "problem-not-option",
            &[
                ("value", value.into()),
                ("options", (&options.join(", ")).into()),
            ],
        ),
        Problem::ExpectedOption => text("problem-expected-option"),
        Problem::NotYesNo => text("problem-not-yes-no"),
        Problem::NotDocument => text("problem-not-document"),
        Problem::BadDocument { detail } => {
            text_with("problem-bad-document", &[("detail", detail.into())])
        }
        Problem::DocumentTooLarge { size, limit } => text_with(
            "problem-document-too-large",
            &[
                ("size", (&bytes(*size)).into()),
                ("limit", (&bytes(*limit)).into()),
            ],
        ),
        Problem::DocumentType { media_type, accept } => {
            let media_type = if media_type.is_empty() {
                text("document-unknown-type")
            } else {
                media_type.clone()
            };
            text_with(
                "problem-document-type",
                &[
                    ("type", (&media_type).into()),
                    ("accept", (&accept.join(", ")).into()),
                ],
            )
        }
        Problem::DocumentOverLimit { limit } => text_with(
            "problem-document-over-limit",
            &[("limit", (&bytes(*limit)).into())],
        ),
        Problem::CommentRequired { outcome } => {
            text_with("problem-comment-required", &[("outcome", outcome.into())])
        }
        Problem::Other(m) => m.clone(),
    }
}

/// A refusal of the core, in the reader's language (the internal faults never reach a page:
/// see `failure`).
pub(crate) fn refusal(e: &guichet_engine::core::Error) -> String {
    use guichet_engine::core::Error as E;
    match e {
        E::NotRunning(_) => text("refusal-not-running"),
        E::UnknownTask(_) => text("refusal-unknown-task"),
        E::ClaimedBy { by, .. } => text_with("refusal-claimed-by", &[("by", by.into())]),
        E::InvalidTaskTransition { .. } => text("refusal-task-transition"),
        E::Invalid(errors) => errors
            .iter()
            .map(|e| problem(&e.problem))
            .collect::<Vec<_>>()
            .join(" ; "),
        E::OutcomeRequired(allowed) => text_with(
            "refusal-outcome-required",
            &[("allowed", (&allowed.join(", ")).into())],
        ),
        E::UnknownOutcome { given, allowed } => text_with(
            "refusal-unknown-outcome",
            &[
                ("given", given.into()),
                ("allowed", (&allowed.join(", ")).into()),
            ],
        ),
        E::NoOutcomes(_) => text("refusal-no-outcomes"),
        E::UnknownEvent(_) => text("refusal-unknown-event"),
        E::NotAwaited { .. } => text("refusal-not-awaited"),
        E::UnknownRole(role) => text_with("refusal-unknown-role", &[("role", role.into())]),
        other => other.to_string(),
    }
}
