//! Calibrating the simulator from reality: duration distributions, outcome weights and the
//! arrival rate measured on the recorded history of one deployed revision of a desk, so a
//! simulation (of that desk or of an alternative model) starts from the desk's measured
//! behaviour. Also the open requests, for forecasts.

use std::collections::BTreeMap;
use std::sync::Arc;

use guichet_definitions::model::Process;
use sqlx::Row;

use crate::calendar::Calendar;
use crate::core::Instance;
use crate::error::Error;
use crate::runtime::Engine;
use crate::sim::{Dist, Scenario};

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
        None => sqlx::query("SELECT MAX(revision) FROM definitions WHERE name = $1")
            .bind(desk)
            .fetch_one(&engine.store().pool)
            .await?
            .try_get::<Option<i64>, _>(0)?
            .ok_or_else(|| Error::NotFound(format!("desk {desk}")))?,
    };
    let hash: String =
        sqlx::query("SELECT hash FROM definitions WHERE name = $1 AND revision = $2")
            .bind(desk)
            .bind(revision)
            .fetch_optional(&engine.store().pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("desk {desk} revision {revision}")))?
            .try_get(0)?;
    let mut conn = engine.store().pool.acquire().await?;
    let p = engine.process(&mut *conn, &hash).await?;
    drop(conn);
    let starts: Vec<i64> =
        sqlx::query("SELECT started_at FROM instances WHERE definition = $1 ORDER BY started_at")
            .bind(&hash)
            .fetch_all(&engine.store().pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
    let rows = sqlx::query(
        "SELECT v.step, v.kind, v.entered_at, v.claimed_at, v.left_at, v.outcome FROM step_visits v \
         JOIN instances i ON i.id = v.instance WHERE i.definition = $1 AND i.status <> 'running'",
    )
    .bind(&hash)
    .fetch_all(&engine.store().pool)
    .await?;
    let ended: i64 =
        sqlx::query("SELECT COUNT(*) FROM instances WHERE definition = $1 AND status <> 'running'")
            .bind(&hash)
            .fetch_one(&engine.store().pool)
            .await?
            .try_get(0)?;
    let mut work: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut role_work: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut answers: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let day = calendar.day_ms() as f64;
    for r in rows {
        let step: String = r.try_get(0)?;
        let kind: String = r.try_get(1)?;
        let entered: i64 = r.try_get(2)?;
        let claimed: Option<i64> = r.try_get(3)?;
        let Some(left) = r.try_get::<Option<i64>, _>(4)? else {
            continue;
        };
        if let Some(o) = r.try_get::<Option<String>, _>(5)? {
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
    let rows = sqlx::query(
        "SELECT id, definition, state FROM instances WHERE status = 'running' ORDER BY started_at, id",
    )
    .fetch_all(&engine.store().pool)
    .await?;
    let mut conn = engine.store().pool.acquire().await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let hash: String = r.try_get(1)?;
        let state: String = r.try_get(2)?;
        let inst: Instance = serde_json::from_str(&state)
            .map_err(|e| Error::Corrupt(format!("instance state: {e}")))?;
        out.push((
            r.try_get(0)?,
            engine.process(&mut *conn, &hash).await?,
            inst,
        ));
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
