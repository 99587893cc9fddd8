//! Exports of the history for process-mining tools: XES (IEEE 1849) and a CSV of the raw
//! events. One trace per ended request, one XES event per step start and completion, with
//! `concept:name` (the step id), `lifecycle:transition` (`start` or `complete`),
//! `time:timestamp`, `org:resource` (who acted) and, for tasks, `org:role`; each trace carries
//! the request's desk model and revision.

use std::io::Write;

use serde_json::Value;
use sqlx::Row;

use crate::clock::Timestamp;
use crate::core::{Actor, EventKind};
use crate::kpi::Query;
use crate::runtime::{Engine, Error};

/// A CSV cell (RFC 4180): quoted when it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn xml(s: &str) -> String {
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

fn resource(a: &Actor) -> String {
    match a {
        Actor::System => "system".to_owned(),
        Actor::User(u) => u.clone(),
        Actor::Requester => "requester".to_owned(),
        Actor::Provider(p) => format!("provider:{p}"),
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Io(e)
}

/// Requests of the query, in order: (id, desk, revision).
async fn requests(e: &Engine, q: &Query) -> Result<Vec<(String, String, i64)>, Error> {
    let rows = sqlx::query(
        "SELECT i.id, i.name, d.revision FROM instances i JOIN definitions d ON d.hash = i.definition \
         WHERE i.status <> 'running' AND i.ended_at >= $1 AND i.ended_at < $2 ORDER BY i.started_at, i.id",
    )
    .bind(q.from.map_or(i64::MIN, |t| t.0))
    .bind(q.to.map_or(i64::MAX, |t| t.0))
    .fetch_all(&e.store().pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let desk: String = r.try_get(1)?;
        if q.desks.is_empty() || q.desks.contains(&desk) {
            out.push((r.try_get(0)?, desk, r.try_get(2)?));
        }
    }
    Ok(out)
}

impl Engine {
    /// Writes the ended requests of `q` as an XES log; returns (traces, events).
    pub async fn export_xes(
        &self,
        q: &Query,
        out: &mut impl Write,
    ) -> Result<(usize, usize), Error> {
        writeln!(
            out,
            r#"<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1849-2016" xes.features="nested-attributes" xmlns="http://www.xes-standard.org/">
  <extension name="Concept" prefix="concept" uri="http://www.xes-standard.org/concept.xesext"/>
  <extension name="Time" prefix="time" uri="http://www.xes-standard.org/time.xesext"/>
  <extension name="Lifecycle" prefix="lifecycle" uri="http://www.xes-standard.org/lifecycle.xesext"/>
  <extension name="Organizational" prefix="org" uri="http://www.xes-standard.org/org.xesext"/>
  <global scope="trace">
    <string key="concept:name" value="__INVALID__"/>
  </global>
  <global scope="event">
    <string key="concept:name" value="__INVALID__"/>
    <string key="lifecycle:transition" value="complete"/>
    <date key="time:timestamp" value="1970-01-01T00:00:00.000+00:00"/>
  </global>
  <classifier name="Activity" keys="concept:name"/>
  <classifier name="Activity and transition" keys="concept:name lifecycle:transition"/>
  <string key="concept:name" value="guichet"/>"#
        )
        .map_err(io)?;
        let mut traces = 0;
        let mut events = 0;
        for (id, desk, revision) in requests(self, q).await? {
            let process = self.process_of(&id).await?;
            writeln!(
                out,
                "  <trace>\n    <string key=\"concept:name\" value=\"{}\"/>\n    <string key=\"guichet:model\" value=\"{}\"/>\n    <int key=\"guichet:revision\" value=\"{revision}\"/>",
                xml(&id),
                xml(&desk)
            )
            .map_err(io)?;
            for h in self.history(&id).await? {
                let (step, transition) = match &h.event.kind {
                    EventKind::StepEntered { step } => (step, "start"),
                    EventKind::StepCompleted { step, .. } => (step, "complete"),
                    _ => continue,
                };
                let role = process.step(step).and_then(|s| match &s.kind {
                    guichet_definitions::model::StepKind::Task(t) => Some(t.role.clone()),
                    _ => None,
                });
                write!(
                    out,
                    "    <event>\n      <string key=\"concept:name\" value=\"{}\"/>\n      <string key=\"lifecycle:transition\" value=\"{transition}\"/>\n      <date key=\"time:timestamp\" value=\"{}\"/>\n      <string key=\"org:resource\" value=\"{}\"/>\n",
                    xml(step),
                    iso(h.event.at),
                    xml(&resource(&h.event.actor))
                )
                .map_err(io)?;
                if let Some(role) = role {
                    writeln!(
                        out,
                        "      <string key=\"org:role\" value=\"{}\"/>",
                        xml(&role)
                    )
                    .map_err(io)?;
                }
                writeln!(out, "    </event>").map_err(io)?;
                events += 1;
            }
            writeln!(out, "  </trace>").map_err(io)?;
            traces += 1;
        }
        writeln!(out, "</log>").map_err(io)?;
        Ok((traces, events))
    }

    /// Writes every history event of the ended requests of `q` as CSV; returns the rows.
    pub async fn export_csv(&self, q: &Query, out: &mut impl Write) -> Result<usize, Error> {
        writeln!(
            out,
            "request,model,revision,seq,time,event,step,actor,detail"
        )
        .map_err(io)?;
        let field = csv_field;
        let mut n = 0;
        for (id, desk, revision) in requests(self, q).await? {
            for h in self.history(&id).await? {
                let mut body =
                    serde_json::to_value(&h.event).map_err(|e| Error::Corrupt(e.to_string()))?;
                let obj = body
                    .as_object_mut()
                    .ok_or_else(|| Error::Corrupt("event is not an object".into()))?;
                let name = obj
                    .remove("event")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let step = obj
                    .remove("step")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                obj.remove("at");
                obj.remove("actor");
                let detail = if obj.is_empty() {
                    String::new()
                } else {
                    Value::Object(obj.clone()).to_string()
                };
                writeln!(
                    out,
                    "{},{},{revision},{},{},{},{},{},{}",
                    field(&id),
                    field(&desk),
                    h.seq,
                    iso(h.event.at),
                    field(&name),
                    field(&step),
                    field(&resource(&h.event.actor)),
                    field(&detail)
                )
                .map_err(io)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
