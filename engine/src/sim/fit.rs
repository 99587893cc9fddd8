//! Calibrating the simulator from reality: duration distributions, outcome weights and the
//! arrival rate measured on the recorded history of one deployed revision of a desk, so a
//! simulation (of that desk or of an alternative model) starts from the desk's measured
//! behaviour. Also the open requests, for forecasts.

use std::collections::BTreeMap;
use std::sync::Arc;

use guichet_definitions::model::Process;

use crate::calendar::Calendar;
use crate::core::Instance;
use crate::error::Error;
use crate::runtime::Engine;
use crate::sim::{Dist, Scenario};
use crate::store::db::{Db as _, V};
use crate::store::{in_long_read, in_read};

const DAY_MS: f64 = 86_400_000.0;

/// What was measured, ready to lay under a scenario.
#[derive(Debug, Clone, Default)]
pub struct Fit {
    /// Ended requests the fit read.
    pub requests: usize,
    pub interarrival: Option<Dist>,
    /// Working time per task step and per role, in working days.
    pub work: BTreeMap<String, Dist>,
    pub role_work: BTreeMap<String, Dist>,
    /// Answer delays of calls and waits, in days.
    pub answers: BTreeMap<String, Dist>,
    pub outcomes: BTreeMap<String, Vec<(String, f64)>>,
}

impl Fit {
    /// Lays the measured values over a scenario (the scenario file then overrides what it
    /// names).
    pub fn apply(&self, sc: &mut Scenario) {
        if let Some(d) = self.interarrival {
            sc.interarrival = d;
        }
        sc.work.extend(self.work.clone());
        sc.role_work.extend(self.role_work.clone());
        sc.answers.extend(self.answers.clone());
        sc.outcomes.extend(self.outcomes.clone());
    }
}

/// A log-normal fitted by moments of the logarithms; a fixed value when the sample is too
/// small or has no spread.
pub fn fit_lognormal(days: &[f64]) -> Option<Dist> {
    // A minute is the smallest duration that counts (zero-length work has no logarithm).
    let logs: Vec<f64> = days.iter().map(|d| d.max(1.0 / 1440.0).ln()).collect();
    if logs.is_empty() {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let n = logs.len() as f64;
    let mean = logs.iter().sum::<f64>() / n;
    if logs.len() < 2 {
        return Some(Dist::Fixed(mean.exp()));
    }
    let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let spread = var.sqrt().exp();
    if spread < 1.0 + 1e-9 {
        return Some(Dist::Fixed(mean.exp()));
    }
    Some(Dist::LogNormal {
        median: mean.exp(),
        spread,
    })
}

/// Fits a scenario from the ended requests of `desk` at `revision` (the latest when
/// `None`). Work is measured in the calendar's working time, from claim to completion.
pub async fn fit(
    engine: &Engine,
    desk: &str,
    revision: Option<i64>,
    calendar: &Calendar,
) -> Result<Fit, Error> {
    let revision = match revision {
        Some(r) => r,
        None => {
            let (sql, key) = (
                "SELECT MAX(revision) FROM definitions WHERE name = $1",
                [V::Text(desk.to_owned())],
            );
            in_read!(engine.store(), |db| db.row(sql.into(), &key))?
                .map(|r| r.opt_int(0))
                .transpose()?
                .flatten()
                .ok_or_else(|| Error::NotFound(format!("desk {desk}")))?
        }
    };
    let (sql, key) = (
        "SELECT hash FROM definitions WHERE name = $1 AND revision = $2",
        [V::Text(desk.to_owned()), V::Int(revision)],
    );
    let hash = in_read!(engine.store(), |db| db.row(sql.into(), &key))?
        .ok_or_else(|| Error::NotFound(format!("desk {desk} revision {revision}")))?
        .text(0)?;
    let p = in_read!(engine.store(), |db| engine.process(db, &hash))?;
    let of_hash = [V::Text(hash.clone())];
    let sql = "SELECT started_at FROM instances WHERE definition = $1 ORDER BY started_at";
    let starts: Vec<i64> = in_long_read!(engine.store(), |db| db.rows(sql.into(), &of_hash))?
        .iter()
        .map(|r| r.int(0))
        .collect::<Result<_, _>>()?;
    let sql = "SELECT v.step, v.kind, v.entered_at, v.claimed_at, v.left_at, v.outcome, v.exit FROM step_visits v \
         JOIN instances i ON i.id = v.instance WHERE i.definition = $1 AND i.status <> 'running'";
    let rows = in_long_read!(engine.store(), |db| db.rows(sql.into(), &of_hash))?;
    let sql = "SELECT COUNT(*) FROM instances WHERE definition = $1 AND status <> 'running'";
    let ended = in_long_read!(engine.store(), |db| db.row(sql.into(), &of_hash))?
        .map_or(Ok(0), |r| r.int(0))?;
    let mut work: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut role_work: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut answers: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let day = calendar.day_ms() as f64;
    for r in rows {
        let step = r.text(0)?;
        let kind = r.text(1)?;
        let entered = r.int(2)?;
        let claimed = r.opt_int(3)?;
        let Some(left) = r.opt_int(4)? else {
            continue;
        };
        // A visit that timed out or was withdrawn says how long it lasted at least, not how
        // long the work takes: the fit reads completions only.
        if r.opt_text(6)?
            .is_some_and(|exit| exit != crate::indicators::facts::COMPLETED)
        {
            continue;
        }
        if let Some(o) = r.opt_text(5)? {
            *outcomes
                .entry(step.clone())
                .or_default()
                .entry(o)
                .or_default() += 1.0;
        }
        match kind.as_str() {
            "task" => {
                #[allow(clippy::cast_precision_loss)]
                let w = calendar.working_between(claimed.unwrap_or(entered), left) as f64 / day;
                if let Some(role) = task_role(&p, &step) {
                    role_work.entry(role).or_default().push(w);
                }
                work.entry(step).or_default().push(w);
            }
            "call" | "wait" =>
            {
                #[allow(clippy::cast_precision_loss)]
                answers
                    .entry(step)
                    .or_default()
                    .push((left - entered) as f64 / DAY_MS)
            }
            _ => {}
        }
    }
    let fitted = |m: BTreeMap<String, Vec<f64>>| {
        m.into_iter()
            .filter_map(|(k, v)| fit_lognormal(&v).map(|d| (k, d)))
            .collect()
    };
    #[allow(clippy::cast_precision_loss)]
    let interarrival = (starts.len() >= 2).then(|| Dist::Exponential {
        mean: ((starts[starts.len() - 1] - starts[0]) as f64 / DAY_MS / (starts.len() - 1) as f64)
            .max(1.0 / 1440.0),
    });
    Ok(Fit {
        requests: usize::try_from(ended).unwrap_or_default(),
        interarrival,
        work: fitted(work),
        role_work: fitted(role_work),
        answers: fitted(answers),
        outcomes: outcomes
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect(),
    })
}

/// The open requests of every desk, each with the process it runs on.
pub async fn open_requests(
    engine: &Engine,
) -> Result<Vec<(String, Arc<Process>, Instance)>, Error> {
    let sql = "SELECT id, definition, state FROM instances WHERE status = 'running' ORDER BY started_at, id";
    let rows = in_long_read!(engine.store(), |db| db.rows(sql.into(), &[]))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let hash = r.text(1)?;
        let inst: Instance = serde_json::from_str(&r.text(2)?)
            .map_err(|e| Error::Corrupt(format!("instance state: {e}")))?;
        let p = in_read!(engine.store(), |db| engine.process(db, &hash))?;
        out.push((r.text(0)?, p, inst));
    }
    Ok(out)
}

fn task_role(p: &Process, step: &str) -> Option<String> {
    match &p.step(step)?.kind {
        guichet_definitions::model::StepKind::Task(t) => Some(t.role.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Rng;

    #[test]
    fn a_lognormal_sample_fits_back_to_its_parameters() {
        let truth = Dist::LogNormal {
            median: 3.0,
            spread: 1.8,
        };
        let mut rng = Rng::new(5);
        let sample: Vec<f64> = (0..50_000).map(|_| truth.sample(&mut rng)).collect();
        let Some(Dist::LogNormal { median, spread }) = fit_lognormal(&sample) else {
            panic!("not a log-normal");
        };
        assert!((median - 3.0).abs() < 0.05, "median {median}");
        assert!((spread - 1.8).abs() < 0.02, "spread {spread}");
        assert_eq!(fit_lognormal(&[2.0, 2.0]), Some(Dist::Fixed(2.0)));
        assert_eq!(fit_lognormal(&[]), None);
    }
}
