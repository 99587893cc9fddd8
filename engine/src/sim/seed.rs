//! A database of finished requests for the indicators' benchmark. Requests of deployed desks
//! are simulated through a scenario (the real core on a virtual clock, [`crate::sim`]) and
//! stored as the engine stores a request that ends: the instance row with its final state,
//! the hash-chained history (optional: the simulator's requests carry about 80 events each,
//! and the indicators read none of them), the step visits, the indicator values and the
//! intake answers, queued for the fold. Rows are written in batches of multi-row inserts, which the engine's
//! own path (one request per transaction) is not meant to be compared with.

use std::sync::Arc;

use crate::error::Error;
use crate::runtime::{Engine, status_str};
use crate::sim::{EndedRequest, Scenario, simulate_into};
use crate::store::db::{Db as _, V, inserts};
use crate::store::history::{self, genesis};
use crate::store::in_read;

/// Writes one batch of ended requests of a desk in one transaction.
async fn write(
    engine: &Engine,
    desk: &str,
    hash: &str,
    batch: Vec<EndedRequest>,
    with_history: bool,
) -> Result<(), Error> {
    let corrupt = |e: serde_json::Error| Error::Corrupt(e.to_string());
    let (mut instances, mut history, mut visits, mut kpis, mut fields, mut pending) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for r in batch {
        let id = format!("{desk}-{}", r.id);
        let mut head = genesis(&id);
        let mut seq = 0i64;
        if with_history {
            history.extend(history::row(&id, &mut seq, &mut head, &r.events)?);
        }
        let (status, result) = status_str(r.instance.status);
        instances.push(vec![
            V::Text(id.clone()),
            V::Text(hash.to_owned()),
            V::Text(desk.to_owned()),
            V::Text(format!("Demande simulée {}", r.id)),
            V::Text(status.to_owned()),
            V::MaybeText(result.map(str::to_owned)),
            V::Text(serde_json::to_string(&r.instance).map_err(corrupt)?),
            V::Int(seq + 1),
            V::Int(r.started),
            V::Int(r.ended),
            V::Int(seq),
            V::Text(head),
        ]);
        visits.extend(r.visits.iter().map(|v| v.row(&id)));
        for (k, x) in r.kpis {
            kpis.push(vec![V::Text(id.clone()), V::Text(k), V::Real(x)]);
        }
        for (f, x) in r.intake {
            fields.push(vec![V::Text(id.clone()), V::Text(f), V::Text(x)]);
        }
        pending.push(vec![V::Text(id)]);
    }
    let mut statements = inserts(
        "instances",
        &[
            "id",
            "definition",
            "name",
            "title",
            "status",
            "result",
            "state",
            "row_version",
            "started_at",
            "ended_at",
            "history_seq",
            "history_head",
        ],
        instances,
    );
    statements.extend(inserts("history", history::COLUMNS, history));
    statements.extend(inserts(
        "step_visits",
        crate::indicators::facts::VISIT_COLUMNS,
        visits,
    ));
    statements.extend(inserts("kpi_facts", &["instance", "kpi", "value"], kpis));
    statements.extend(inserts(
        "instance_fields",
        &["instance", "field", "value"],
        fields,
    ));
    statements.extend(inserts("kpi_pending", &["instance"], pending));
    engine.write_all(statements).await?;
    Ok(())
}

/// Simulates `per_desk` requests of each named desk (deployed) through the scenario and
/// stores those that end; calls `progress` with the number stored so far. Returns it.
pub async fn seed_ended(
    engine: &Engine,
    desks: &[String],
    scenario: &Scenario,
    per_desk: usize,
    seed: u64,
    with_history: bool,
    progress: &mut dyn FnMut(usize),
) -> Result<usize, Error> {
    const BATCH: usize = 500;
    let deployed = engine.desks().await?;
    let mut jobs = Vec::new();
    for name in desks {
        let p = deployed
            .get(name)
            .ok_or_else(|| Error::NotFound(format!("desk {name}")))?
            .clone();
        let (sql, key) = (
            "SELECT hash FROM definitions WHERE name = $1 ORDER BY revision DESC LIMIT 1",
            [V::Text(name.clone())],
        );
        let hash = in_read!(engine.store(), |db| db.row(sql.into(), &key))?
            .ok_or_else(|| Error::NotFound(format!("desk {name}")))?
            .text(0)?;
        jobs.push((name.clone(), hash, p));
    }
    // The simulation runs on its own thread, the writing here; batches cross a short queue so
    // that memory stays flat.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, Vec<EndedRequest>)>(4);
    let sc = Arc::new(scenario.clone());
    let simulating = std::thread::spawn({
        let jobs: Vec<_> = jobs.iter().map(|(_, _, p)| p.clone()).collect();
        move || {
            for (k, p) in jobs.iter().enumerate() {
                let mut batch = Vec::with_capacity(BATCH);
                let mut sink = |r: EndedRequest| {
                    batch.push(r);
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        let _ = tx.blocking_send((k, full));
                    }
                };
                // The seed of each model is the command's, as `simulate` reports them: what
                // is stored is what the same command without --store shows.
                simulate_into(p, &sc, per_desk, seed, &mut sink);
                if !batch.is_empty() {
                    let _ = tx.blocking_send((k, batch));
                }
            }
        }
    });
    let mut stored = 0;
    while let Some((k, batch)) = rx.recv().await {
        let (name, hash, _) = &jobs[k];
        stored += batch.len();
        write(engine, name, hash, batch, with_history).await?;
        progress(stored);
    }
    simulating
        .join()
        .map_err(|_| Error::Corrupt("the simulation thread panicked".into()))?;
    Ok(stored)
}
