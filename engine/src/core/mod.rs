//! The functional core: advancing an instance is a pure function returning the new state, the
//! effects and the history events. No I/O, no clock, no randomness: the same inputs always
//! give the same outputs, which the simulator relies on.

pub mod eval;
pub mod form;
pub mod io;
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
