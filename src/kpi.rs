//! `guichet kpi`: indicators, lead times, per-step timings and the maturity x performance
//! matrix, as a table, JSON or CSV.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use guichet_engine::Engine;
use guichet_engine::clock::Timestamp;
use guichet_engine::indicators::export::csv_text;
use guichet_engine::indicators::kpi::{Compare, Query};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum View {
    /// The indicators each desk declares.
    Indicators,
    /// Lead time of the requests, submission to end, in days.
    Lead,
    /// Time spent in each step: waiting, working, loops, deadline breaches, bottlenecks.
    Steps,
    /// The white paper's maturity x performance matrix.
    Matrix,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum CompareArg {
    Model,
    Version,
    /// The same as month.
    Period,
    Month,
    Quarter,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Output {
    Table,
    Json,
    Csv,
    /// The matrix as the white paper's quadrant chart (with --view matrix).
    Svg,
}

#[derive(Debug, Args)]
pub(crate) struct KpiArgs {
    #[arg(long, value_enum, default_value_t = View::Indicators)]
    view: View,
    /// Desk models to include (repeat); all by default.
    #[arg(long = "model")]
    models: Vec<String>,
    #[arg(long, value_enum, default_value_t = CompareArg::Model)]
    compare: CompareArg,
    /// Requests ended on or after this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    from: Option<String>,
    /// Requests ended before this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    to: Option<String>,
    /// Only requests whose intake answer matches, e.g. --where cadre=autre (repeat).
    #[arg(long = "where", value_name = "FIELD=VALUE")]
    filters: Vec<String>,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    format: Output,
}

fn day(s: &str) -> anyhow::Result<Timestamp> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, format)
        .with_context(|| format!("`{s}` is not a date (YYYY-MM-DD)"))?;
    Ok(Timestamp::from_datetime(d.midnight().assume_utc()))
}

pub(crate) fn num(v: Option<f64>) -> String {
    v.map(|x| {
        if x.fract() == 0.0 && x.abs() < 1e15 {
            format!("{x:.0}")
        } else {
            format!("{x:.2}")
        }
    })
    .unwrap_or_default()
}

/// Rows of cells as an aligned table or CSV.
pub(crate) fn print_rows(header: &[&str], rows: Vec<Vec<String>>, csv: bool) -> String {
    let mut out = String::new();
    if csv {
        // In memory, into a String: nothing can fail but a bug.
        return csv_text(header, rows).unwrap_or_else(|e| format!("{e}\n"));
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut l = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned();
        l.push('\n');
        l
    };
    out.push_str(&line(header.iter().map(|h| (*h).to_owned()).collect()));
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

fn json(rows: &impl serde::Serialize) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(rows)?);
    Ok(ExitCode::SUCCESS)
}

/// Refuses a desk model nobody deployed (a typo would otherwise print nothing).
async fn known_models(e: &Engine, models: &[String]) -> anyhow::Result<()> {
    let desks = e.desks().await?;
    if let Some(unknown) = models.iter().find(|m| !desks.contains_key(m.as_str())) {
        return Err(crate::db::wrong(format!(
            "no desk model `{unknown}`: one of {}",
            desks.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}

pub(crate) async fn kpi(e: Arc<Engine>, a: KpiArgs) -> anyhow::Result<ExitCode> {
    known_models(&e, &a.models).await?;
    let mut filters = Vec::new();
    for f in &a.filters {
        let Some((k, v)) = f.split_once('=') else {
            return Err(crate::db::wrong(format!(
                "--where `{f}` is not FIELD=VALUE"
            )));
        };
        filters.push((k.to_owned(), v.to_owned()));
    }
    let q = Query {
        desks: a.models.clone(),
        from: a.from.as_deref().map(day).transpose()?,
        to: a.to.as_deref().map(day).transpose()?,
        compare: match a.compare {
            CompareArg::Model => Compare::Model,
            CompareArg::Version => Compare::Version,
            CompareArg::Period | CompareArg::Month => Compare::Month,
            CompareArg::Quarter => Compare::Quarter,
        },
        filters,
    };
    let csv = matches!(a.format, Output::Csv);
    if matches!(a.format, Output::Svg) && !matches!(a.view, View::Matrix) {
        return Err(crate::db::wrong(
            "--format svg draws the matrix: use it with --view matrix",
        ));
    }
    // Requests ended since the server last folded them are read from their facts either
    // way; folding them first makes this and later reads quicker.
    e.fold_all_indicators().await?;
    match a.view {
        View::Indicators => {
            let rows = e.kpis(&q).await?;
            if matches!(a.format, Output::Json) {
                return json(&rows);
            }
            let cells = rows
                .iter()
                .map(|r| {
                    vec![
                        r.desk.clone(),
                        r.group.clone(),
                        r.kpi.clone(),
                        r.title.clone().unwrap_or_default(),
                        num(r.value),
                        r.unit.to_owned(),
                        r.requests.to_string(),
                        num(r.stats.map(|s| s.median)),
                        num(r.stats.map(|s| s.p90)),
                        num(r.target),
                        r.meets_target.map_or(String::new(), |m| {
                            if m { "yes".into() } else { "NO".into() }
                        }),
                    ]
                })
                .collect();
            print!(
                "{}",
                print_rows(
                    &[
                        "desk",
                        "group",
                        "indicator",
                        "title",
                        "value",
                        "unit",
                        "requests",
                        "median",
                        "p90",
                        "target",
                        "met",
                    ],
                    cells,
                    csv,
                )
            );
        }
        View::Lead => {
            let rows = e.lead_times(&q).await?;
            if matches!(a.format, Output::Json) {
                return json(&rows);
            }
            let cells = rows
                .iter()
                .map(|r| {
                    let s = r.stats;
                    let days = [s.mean, s.median, s.p90, s.min, s.max].map(|d| num(Some(d)));
                    [r.desk.clone(), r.group.clone(), s.n.to_string()]
                        .into_iter()
                        .chain(days)
                        .collect()
                })
                .collect();
            print!(
                "{}",
                print_rows(
                    &[
                        "desk",
                        "group",
                        "requests",
                        "mean days",
                        "median",
                        "p90",
                        "min",
                        "max"
                    ],
                    cells,
                    csv,
                )
            );
        }
        View::Steps => {
            let rows = e.step_timings(&q).await?;
            if matches!(a.format, Output::Json) {
                return json(&rows);
            }
            let cells = rows
                .iter()
                .map(|r| {
                    vec![
                        r.desk.clone(),
                        r.group.clone(),
                        r.step.clone(),
                        r.kind.clone(),
                        r.visits.to_string(),
                        r.loops.to_string(),
                        num(r.total.map(|s| s.mean)),
                        num(r.total.map(|s| s.median)),
                        num(r.total.map(|s| s.p90)),
                        num(r.waiting.map(|s| s.mean)),
                        num(r.working.map(|s| s.mean)),
                        num(r.breach_rate),
                        format!("{:.0}%", r.share_of_lead_time * 100.0),
                    ]
                })
                .collect();
            print!(
                "{}",
                print_rows(
                    &[
                        "desk",
                        "group",
                        "step",
                        "kind",
                        "visits",
                        "loops",
                        "mean days",
                        "median",
                        "p90",
                        "waiting",
                        "working",
                        "breach rate",
                        "share of lead time",
                    ],
                    cells,
                    csv,
                )
            );
        }
        View::Matrix => {
            let rows = e.maturity_matrix(&q).await?;
            if matches!(a.format, Output::Svg) {
                print!(
                    "{}",
                    guichet_engine::indicators::charts::matrix_svg(
                        &rows,
                        guichet_engine::definitions::model::Language::Fr
                    )
                );
                return Ok(ExitCode::SUCCESS);
            }
            if matches!(a.format, Output::Json) {
                return json(&rows);
            }
            let cells = rows
                .iter()
                .map(|r| {
                    vec![
                        r.desk.clone(),
                        format!("{:?}", r.block).to_lowercase(),
                        num(r.maturity),
                        num(r.performance),
                        r.quadrant.to_owned(),
                    ]
                })
                .collect();
            print!(
                "{}",
                print_rows(
                    &["desk", "block", "maturity", "performance", "quadrant"],
                    cells,
                    csv,
                )
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ExportFormat {
    /// IEEE 1849 XES, for process-mining tools (pm4py, ProM, Disco, Celonis).
    Xes,
    /// Every history event, one row each.
    Csv,
    /// OCEL 2.0 JSON, object-centric: requests, their contracts and datasets.
    Ocel,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[arg(value_enum)]
    format: ExportFormat,
    /// Desk models to include (repeat); all by default.
    #[arg(long = "model")]
    models: Vec<String>,
    /// Requests ended on or after this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    from: Option<String>,
    /// Requests ended before this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    to: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    output: Option<std::path::PathBuf>,
}

pub(crate) async fn export(e: Arc<Engine>, a: ExportArgs) -> anyhow::Result<ExitCode> {
    known_models(&e, &a.models).await?;
    let q = Query {
        desks: a.models.clone(),
        from: a.from.as_deref().map(day).transpose()?,
        to: a.to.as_deref().map(day).transpose()?,
        ..Query::default()
    };
    let mut out: Box<dyn std::io::Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let result = match a.format {
        ExportFormat::Xes => e
            .export_xes(&q, &mut out)
            .await
            .map(|(t, n)| format!("{t} traces, {n} events")),
        ExportFormat::Csv => e
            .export_csv(&q, &mut out)
            .await
            .map(|n| format!("{n} events")),
        ExportFormat::Ocel => e
            .export_ocel(&q, &mut out)
            .await
            .map(|(o, n)| format!("{o} objects, {n} events")),
    };
    let summary = match result.and_then(|s| out.flush().map(|()| s).map_err(Into::into)) {
        Ok(s) => s,
        // The reader went away (`| head`): not an error of ours.
        Err(guichet_engine::Error::Io(io)) if io.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(ExitCode::SUCCESS);
        }
        Err(err) => return Err(err.into()),
    };
    if a.output.is_some() {
        eprintln!("exported {summary}");
    }
    Ok(ExitCode::SUCCESS)
}
