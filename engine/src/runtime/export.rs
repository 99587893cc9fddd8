//! The exports of the history (XES, CSV, OCEL) as the engine reads them.

use std::io::Write;

use guichet_definitions::model::{Process, StepKind};
use serde_json::Value;

use crate::clock::Timestamp;
use crate::core::{Actor, Event, EventKind};
use crate::error::Error;
use crate::indicators::export::{Csv, io, iso, resource, xml};
use crate::indicators::facts;
use crate::indicators::kpi::Query;
use crate::runtime::Engine;
use crate::store::db::{Db as _, V};
use crate::store::in_long_read;

/// Requests of the query, in order: (id, desk, revision, result).
async fn requests(e: &Engine, q: &Query) -> Result<Vec<(String, String, i64, String)>, Error> {
    let sql = "SELECT i.id, i.name, d.revision, COALESCE(i.result, i.status) FROM instances i JOIN definitions d ON d.hash = i.definition \
         WHERE i.status <> 'running' AND i.ended_at >= $1 AND i.ended_at < $2 ORDER BY i.started_at, i.id";
    let period = [
        V::Int(q.from.map_or(i64::MIN, |t| t.0)),
        V::Int(q.to.map_or(i64::MAX, |t| t.0)),
    ];
    let rows = in_long_read!(e.store(), |db| db.rows(sql.into(), &period))?;
    let mut out = Vec::new();
    for r in rows {
        let desk = r.text(1)?;
        if q.desks.is_empty() || q.desks.contains(&desk) {
            out.push((r.text(0)?, desk, r.int(2)?, r.text(3)?));
        }
    }
    Ok(out)
}

/// One event of a trace in the XES log.
#[derive(Debug)]
struct XesEvent<'a> {
    step: &'a str,
    transition: &'static str,
    at: Timestamp,
    by: Option<&'a Actor>,
    role: Option<&'a str>,
    exit: Option<&'static str>,
}

/// The events of a request's trace: a start and an end for every visit of every step, as
/// the indicators count them ([`facts::visits`]: an end by completion, timeout or
/// withdrawal, a gate's at once); both carry who performed the visit. In order of time, a
/// visit's start before its end.
fn xes_events<'a>(p: &'a Process, visits: &'a [facts::Visit]) -> Vec<XesEvent<'a>> {
    let role = |step: &str| {
        p.step(step).and_then(|s| match &s.kind {
            StepKind::Task(t) => Some(t.role.as_str()),
            _ => None,
        })
    };
    let mut out: Vec<(usize, u8, XesEvent<'a>)> = Vec::new();
    for (i, v) in visits.iter().enumerate() {
        let (step, by, role) = (v.step.as_str(), v.by.as_ref(), role(&v.step));
        let at = v.entered_at;
        let start = XesEvent {
            step,
            transition: "start",
            at,
            by,
            role,
            exit: None,
        };
        out.push((i, 0, start));
        if let Some(at) = v.left_at {
            let end = XesEvent {
                step,
                transition: "complete",
                at,
                by,
                role,
                exit: v.exit,
            };
            out.push((i, 1, end));
        }
    }
    out.sort_by_key(|(visit, phase, e)| (e.at, *visit, *phase));
    out.into_iter().map(|(_, _, e)| e).collect()
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
        for (id, desk, revision, _) in requests(self, q).await? {
            // Each request reads its history: let the worker's other tasks run between them.
            tokio::task::yield_now().await;
            let process = self.process_of(&id).await?;
            writeln!(
                out,
                "  <trace>\n    <string key=\"concept:name\" value=\"{}\"/>\n    <string key=\"guichet:model\" value=\"{}\"/>\n    <int key=\"guichet:revision\" value=\"{revision}\"/>",
                xml(&id),
                xml(&desk)
            )
            .map_err(io)?;
            let history: Vec<Event> = self
                .history(&id)
                .await?
                .into_iter()
                .map(|h| h.event)
                .collect();
            let visits = facts::visits(&process, &history, &Default::default());
            for e in xes_events(&process, &visits) {
                write!(
                    out,
                    "    <event>\n      <string key=\"concept:name\" value=\"{}\"/>\n      <string key=\"lifecycle:transition\" value=\"{}\"/>\n      <date key=\"time:timestamp\" value=\"{}\"/>\n",
                    xml(e.step),
                    e.transition,
                    iso(e.at),
                )
                .map_err(io)?;
                if let Some(by) = e.by {
                    writeln!(
                        out,
                        "      <string key=\"org:resource\" value=\"{}\"/>",
                        xml(&resource(by))
                    )
                    .map_err(io)?;
                }
                if let Some(role) = e.role {
                    writeln!(
                        out,
                        "      <string key=\"org:role\" value=\"{}\"/>",
                        xml(role)
                    )
                    .map_err(io)?;
                }
                if let Some(exit) = e.exit.filter(|x| *x != facts::COMPLETED) {
                    writeln!(out, "      <string key=\"guichet:exit\" value=\"{exit}\"/>")
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
        let mut csv = Csv::new(out);
        csv.row([
            "request", "model", "revision", "seq", "time", "event", "step", "actor", "detail",
        ])?;
        let mut n = 0;
        for (id, desk, revision, _) in requests(self, q).await? {
            // Each request reads its history: let the worker's other tasks run between them.
            tokio::task::yield_now().await;
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
                csv.row([
                    id.as_str(),
                    &desk,
                    &revision.to_string(),
                    &h.seq.to_string(),
                    &iso(h.event.at),
                    &name,
                    &step,
                    &resource(&h.event.actor),
                    &detail,
                ])?;
                n += 1;
            }
        }
        csv.finish()?;
        Ok(n)
    }

    /// Writes the ended requests of `q` as an OCEL 2.0 JSON log; returns (objects, events).
    /// Events are written as they are read; the objects and the types, a few per request,
    /// are kept until the end.
    pub async fn export_ocel(
        &self,
        q: &Query,
        out: &mut impl Write,
    ) -> Result<(usize, usize), Error> {
        use std::collections::{BTreeMap, BTreeSet};
        let json = |v: &Value| v.to_string();
        let mut objects: Vec<Value> = Vec::new();
        let mut event_types: BTreeSet<String> = BTreeSet::new();
        let mut events = 0;
        write!(out, "{{\"events\": [").map_err(io)?;
        for (id, desk, revision, result) in requests(self, q).await? {
            // Each request reads its history: let the worker's other tasks run between them.
            tokio::task::yield_now().await;
            let process = self.process_of(&id).await?;
            let history = self.history(&id).await?;
            let started = history.first().map_or(Timestamp(0), |h| h.event.at);
            let mut entered: BTreeMap<&str, Timestamp> = BTreeMap::new();
            let mut about: BTreeSet<guichet_definitions::model::About> = BTreeSet::new();
            // The documents that came with a step, until its completion relates them.
            let mut documents: Vec<(String, String)> = Vec::new();
            let mut documents_of_request: Vec<String> = Vec::new();
            for h in &history {
                let (step, outcome, branch) = match &h.event.kind {
                    EventKind::StepEntered { step } => {
                        entered.insert(step, h.event.at);
                        continue;
                    }
                    EventKind::DocumentReceived {
                        field,
                        sha256,
                        name,
                        size,
                        media_type,
                        ..
                    } => {
                        let object = format!("{id}/document/{sha256}");
                        if !documents_of_request.contains(&object) {
                            let time = iso(h.event.at);
                            objects.push(serde_json::json!({
                                "id": object,
                                "type": "document",
                                "attributes": [
                                    {"name": "name", "time": time, "value": name},
                                    {"name": "media-type", "time": time, "value": media_type},
                                    {"name": "size", "time": time, "value": size},
                                    {"name": "sha256", "time": time, "value": sha256},
                                ],
                                "relationships": [{"objectId": id, "qualifier": "request"}],
                            }));
                            documents_of_request.push(object.clone());
                        }
                        documents.push((object, field.clone()));
                        continue;
                    }
                    EventKind::StepCompleted { step, outcome } => (step, outcome.as_ref(), None),
                    // A gate ends as it is entered, by the branch it takes.
                    EventKind::GateTaken { step, branch } => (step, None, Some(branch)),
                    _ => continue,
                };
                let s = process.step(step);
                let mut relationships =
                    vec![serde_json::json!({"objectId": id, "qualifier": "request"})];
                if let Some(a) = s.and_then(|s| s.about) {
                    about.insert(a);
                    relationships.push(serde_json::json!({
                        "objectId": format!("{id}/{}", a.as_str()),
                        "qualifier": a.as_str(),
                    }));
                }
                relationships.extend(documents.drain(..).map(
                    |(object, field)| serde_json::json!({"objectId": object, "qualifier": field}),
                ));
                let role = s.and_then(|s| match &s.kind {
                    guichet_definitions::model::StepKind::Task(t) => Some(t.role.clone()),
                    _ => None,
                });
                // An absent role (a step other than a task) or outcome is left out, not "".
                let mut attributes = vec![
                    serde_json::json!({"name": "resource", "value": resource(&h.event.actor)}),
                    serde_json::json!({"name": "entered", "value": iso(entered.get(step.as_str()).copied().unwrap_or(h.event.at))}),
                ];
                if let Some(role) = role {
                    attributes.push(serde_json::json!({"name": "role", "value": role}));
                }
                if let Some(outcome) = outcome {
                    attributes.push(serde_json::json!({"name": "outcome", "value": outcome}));
                }
                if let Some(branch) = branch {
                    attributes.push(serde_json::json!({"name": "branch", "value": branch}));
                }
                let event = serde_json::json!({
                    "id": format!("{id}:{}", h.seq),
                    "type": step,
                    "time": iso(h.event.at),
                    "attributes": attributes,
                    "relationships": relationships,
                });
                if events > 0 {
                    write!(out, ",").map_err(io)?;
                }
                write!(out, "\n{}", json(&event)).map_err(io)?;
                events += 1;
                event_types.insert(step.clone());
            }
            let time = iso(started);
            objects.push(serde_json::json!({
                "id": id,
                "type": "request",
                "attributes": [
                    {"name": "model", "time": time, "value": desk},
                    {"name": "revision", "time": time, "value": revision},
                    {"name": "result", "time": time, "value": result},
                ],
                "relationships": about.iter().map(|a| serde_json::json!({
                    "objectId": format!("{id}/{}", a.as_str()),
                    "qualifier": a.as_str(),
                })).collect::<Vec<_>>(),
            }));
            for a in about {
                objects.push(serde_json::json!({
                    "id": format!("{id}/{}", a.as_str()),
                    "type": a.as_str(),
                    "attributes": [],
                    "relationships": [{"objectId": id, "qualifier": "request"}],
                }));
            }
        }
        write!(out, "\n],\n\"objects\": [").map_err(io)?;
        for (i, o) in objects.iter().enumerate() {
            write!(out, "{}\n{}", if i > 0 { "," } else { "" }, json(o)).map_err(io)?;
        }
        let string = |name: &str| serde_json::json!({"name": name, "type": "string"});
        let object_types = serde_json::json!([
            {"name": "request", "attributes": [string("model"), {"name": "revision", "type": "integer"}, string("result")]},
            {"name": "contract", "attributes": []},
            {"name": "dataset", "attributes": []},
            {"name": "document", "attributes": [string("name"), string("media-type"), {"name": "size", "type": "integer"}, string("sha256")]},
        ]);
        let event_types: Vec<Value> = event_types
            .iter()
            .map(|t| serde_json::json!({
                "name": t,
                "attributes": [string("resource"), string("role"), string("outcome"), string("branch"), {"name": "entered", "type": "time"}],
            }))
            .collect();
        writeln!(
            out,
            "\n],\n\"objectTypes\": {},\n\"eventTypes\": {}\n}}",
            json(&object_types),
            json(&Value::Array(event_types))
        )
        .map_err(io)?;
        Ok((objects.len(), events))
    }
}
