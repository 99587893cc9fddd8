//! The catalogue of standard email templates a definition may name without declaring them.
//!
//! The connectors crate ships a French and an English version of each; a desk can override
//! any of them, and declare its own with a `template` node (its templates folder must then
//! provide it). Naming a template that is neither standard nor declared is error G0021.

/// Standard templates for the sponsor (requester) and for staff.
pub const STANDARD: &[&str] = &[
    // To the sponsor.
    "demande-recue",
    "complement-demande",
    "demande-acceptee",
    "demande-refusee",
    "demande-retiree",
    "contrat-a-signer",
    "acces-ouvert",
    "information-patients",
    // To staff.
    "tache-assignee",
    "tache-rappel",
    "tache-echeance-depassee",
    "tache-escalade",
    "tache-reassignee",
    "nouvelle-demande",
    "decision-comite",
];

pub fn is_standard(name: &str) -> bool {
    STANDARD.contains(&name)
}
