//! The functional core: advancing an instance is a pure function returning the new state, the
//! effects and the history events. No I/O, no clock, no randomness: the same inputs always
//! give the same outputs, which the simulator relies on.

pub mod dossier;
pub mod eval;
pub mod form;
pub mod io;
pub mod lifecycle;
pub mod machine;
pub mod state;

pub use io::{Actor, Command, Effect, Event, EventKind, Recipient, Transition};
pub use machine::{Error, advance, start};
pub use state::{Fields, Instance, InstanceStatus, Seq, Task, TaskState, Timer, TimerKind};

use guichet_definitions::model::{Process, RoleSource};

/// The addresses behind a recipient: a role's static members, the address taken from the
/// request's data (the sponsor), or one person.
pub fn recipients(p: &Process, inst: &Instance, to: &Recipient) -> Vec<String> {
    match to {
        Recipient::Person(email) => vec![email.clone()],
        Recipient::Role(role) => match p.role(role).map(|r| &r.source) {
            Some(RoleSource::Members(members)) => members.clone(),
            Some(RoleSource::FromField { step, field }) => inst
                .data
                .get(&p.steps[*step].id)
                .and_then(|d| d.fields.get(field))
                .and_then(|v| v.as_str())
                .map(|s| vec![s.to_owned()])
                .unwrap_or_default(),
            None => Vec::new(),
        },
    }
}

/// Whether `email` is a member of `role` for this request (one of its declared members, or
/// the address the request's data gives a role taken from a field), in any case.
pub fn is_member(p: &Process, inst: &Instance, role: &str, email: &str) -> bool {
    recipients(p, inst, &Recipient::Role(role.to_owned()))
        .iter()
        .any(|m| m.eq_ignore_ascii_case(email))
}

/// The request's title: the intake's `titre` (or `title`) field, empty if there is none.
pub fn request_title(p: &Process, inst: &Instance) -> String {
    inst.data
        .get(&p.start().id)
        .and_then(|d| d.fields.get("titre").or_else(|| d.fields.get("title")))
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned()
}

/// The short reference people quote for a request: the last eight characters of its id, in
/// capitals (ids are time-ordered UUIDs, whose end is random).
pub fn reference(id: &str) -> String {
    let start = id.char_indices().rev().nth(7).map_or(0, |(i, _)| i);
    id[start..].to_uppercase()
}

#[cfg(test)]
mod tests {
    #[test]
    fn references_are_the_end_of_the_id() {
        assert_eq!(
            super::reference("01a22337-4c7a-7539-b877-71f295048831"),
            "95048831"
        );
        assert_eq!(super::reference("abc"), "ABC");
    }
}
