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

/// A CSV writer (RFC 4180, through the `csv` crate) whose cells a spreadsheet opens as
/// what they are: a text that starts with `=`, `+`, `-`, `@`, a tab or a carriage return,
/// and is not a number, is written after a `'` (OWASP's rule against formula injection:
/// a request's title such as `=HYPERLINK(...)` stays text in Excel or LibreOffice).
#[derive(Debug)]
pub struct Csv<W: std::io::Write>(csv::Writer<W>);

impl<W: std::io::Write> Csv<W> {
    pub fn new(out: W) -> Self {
        Csv(csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(out))
    }

    /// Writes one row.
    pub fn row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) -> Result<(), Error> {
        self.0
            .write_record(
                cells
                    .into_iter()
                    .map(|c| safe_cell(c.as_ref()).into_owned()),
            )
            .map_err(csv_error)
    }

    /// The writer, everything flushed to it.
    pub fn finish(self) -> Result<W, Error> {
        self.0.into_inner().map_err(|e| Error::Io(e.into_error()))
    }
}

fn csv_error(e: csv::Error) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => Error::Io(e),
        other => Error::Corrupt(format!("CSV: {other:?}")),
    }
}

/// A cell as a spreadsheet should read it (see [`Csv`]).
pub fn safe_cell(s: &str) -> std::borrow::Cow<'_, str> {
    let risky = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && s.trim().parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// A whole CSV document in memory, header first.
pub fn csv_text<S: AsRef<str>>(
    header: &[&str],
    rows: impl IntoIterator<Item = impl IntoIterator<Item = S>>,
) -> Result<String, Error> {
    let mut out = Csv::new(Vec::new());
    out.row(header)?;
    for r in rows {
        out.row(r)?;
    }
    String::from_utf8(out.finish()?).map_err(|e| Error::Corrupt(e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::{csv_text, safe_cell};

    #[test]
    fn formulas_stay_text_and_numbers_stay_numbers() {
        assert_eq!(
            safe_cell("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        for risky in ["+1+1", "-cmd|' /C calc'!A0", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(safe_cell(risky), format!("'{risky}"));
        }
        for plain in ["-3.5", "+2", "1e3", "Étude", "", "a=b"] {
            assert_eq!(safe_cell(plain), plain);
        }
        let text = csv_text(&["a", "b"], [["=1+1", "x,\"y\"\nz"], ["-0.25", ""]]).unwrap();
        assert_eq!(text, "a,b\n'=1+1,\"x,\"\"y\"\"\nz\"\n-0.25,\n");
    }
}
