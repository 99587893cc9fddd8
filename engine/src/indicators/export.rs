//! Exports of the history for process-mining tools: XES (IEEE 1849) and a CSV of the raw
//! events. One trace per ended request, one XES event per step start and completion, with
//! `concept:name` (the step id), `lifecycle:transition` (`start` or `complete`),
//! `time:timestamp`, `org:resource` (who acted) and, for tasks, `org:role`; each trace carries
//! the request's desk model and revision.
//!
//! OCEL 2.0 (JSON): the objects of each ended request are the request itself and, when
//! steps declared `about="contract"` or `about="dataset"` were completed, its contract and its
//! dataset; one event per step completion, of the step's type, related to the request (and
//! to the object the step is about), with who did it, the role, the outcome and when the step
//! was entered.

use crate::clock::Timestamp;
use crate::core::Actor;
use crate::error::Error;

/// A CSV cell (RFC 4180): quoted when it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

pub(crate) fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// ISO 8601 with milliseconds, UTC, as XES dates are written.
pub fn iso(t: Timestamp) -> String {
    let d = t.to_datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.millisecond()
    )
}

pub(crate) fn resource(a: &Actor) -> String {
    match a {
        Actor::System => "system".to_owned(),
        Actor::User(u) => u.clone(),
        Actor::Requester => "requester".to_owned(),
        Actor::Provider(p) => format!("provider:{p}"),
    }
}

pub(crate) fn io(e: std::io::Error) -> Error {
    Error::Io(e)
}
