//! What the engine says of a refusal, in the pages' French: form errors ([`Problem`]) and the
//! core's refusals ([`core::Error`]). The engine keeps English for the API, the CLI and logs.

use guichet_engine::core::form::{Problem, bytes};

/// A field's problem, in French.
pub(crate) fn problem(p: &Problem) -> String {
    match p {
        Problem::UnknownField { known } => {
            format!("champ inconnu (cette étape a : {})", known.join(", "))
        }
        Problem::NoData => "cette étape ne prend aucune donnée".to_owned(),
        Problem::Required => "obligatoire".to_owned(),
        Problem::ExpectedText => "un texte est attendu".to_owned(),
        Problem::TooLong { max } => format!("{max} caractères au plus"),
        Problem::TooShort { min } => format!("{min} caractères au moins"),
        Problem::ControlCharacter { code } => {
            format!("contient un caractère de contrôle (U+{code:04X}) : retirez-le")
        }
        Problem::NotEmail { value } => format!("« {value} » n'est pas une adresse e-mail"),
        Problem::NotDate { value } => {
            format!("« {value} » n'est pas une date (AAAA-MM-JJ, ou choisissez-la)")
        }
        Problem::NotNumber => "un nombre est attendu".to_owned(),
        Problem::BelowMin { min } => format!("au moins {min}"),
        Problem::AboveMax { max } => format!("au plus {max}"),
        Problem::NotOption { value, options } => {
            format!(
                "« {value} » n'est pas l'un des choix : {}",
                options.join(", ")
            )
        }
        Problem::ExpectedOption => "choisissez l'une des options".to_owned(),
        Problem::NotYesNo => "oui ou non".to_owned(),
        Problem::NotDocument => "un document est attendu".to_owned(),
        Problem::BadDocument { detail } => format!("document invalide ({detail})"),
        Problem::DocumentTooLarge { size, limit } => format!(
            "le document est trop volumineux : {} pour {} au plus",
            bytes(*size),
            bytes(*limit)
        ),
        Problem::DocumentType { media_type, accept } => format!(
            "un document de type {} n'est pas accepté ici : {}",
            if media_type.is_empty() {
                "inconnu"
            } else {
                media_type
            },
            accept.join(", ")
        ),
        Problem::DocumentOverLimit { limit } => format!(
            "le document est trop volumineux : {} au plus",
            bytes(*limit)
        ),
        Problem::CommentRequired { outcome } => {
            format!("obligatoire avec la décision « {outcome} » : dites pourquoi")
        }
        Problem::Other(m) => m.clone(),
    }
}

/// A refusal of the core, in French (the internal faults never reach a page: see `failure`).
pub(crate) fn refusal(e: &guichet_engine::core::Error) -> String {
    use guichet_engine::core::Error as E;
    match e {
        E::NotRunning(_) => "La demande n'est plus en cours.".to_owned(),
        E::UnknownTask(_) => "Cette tâche n'est plus ouverte.".to_owned(),
        E::ClaimedBy { by, .. } => format!("Cette tâche est prise par {by}."),
        E::InvalidTaskTransition { .. } => {
            "Cette action n'est pas possible sur la tâche dans son état actuel.".to_owned()
        }
        E::Invalid(errors) => errors
            .iter()
            .map(|e| problem(&e.problem))
            .collect::<Vec<_>>()
            .join(" ; "),
        E::OutcomeRequired(allowed) => {
            format!("Choisissez une décision : {}.", allowed.join(", "))
        }
        E::UnknownOutcome { given, allowed } => format!(
            "« {given} » n'est pas une décision de cette tâche : {}.",
            allowed.join(", ")
        ),
        E::NoOutcomes(_) => "Cette tâche ne prend pas de décision.".to_owned(),
        E::UnknownEvent(_) => "Cette réponse n'est pas attendue.".to_owned(),
        E::UnknownRole(role) => format!("Rôle inconnu : {role}."),
        other => other.to_string(),
    }
}
