//! `guichet simulate`: desk models side by side under one scenario, calibrated from the
//! recorded history if asked, and forecasts of the open requests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};
use guichet_definitions::{self as definitions, diagnostic};
use guichet_engine::Engine;
use guichet_engine::clock::Timestamp;
use guichet_engine::indicators::charts::{self, esc};
use guichet_engine::sim::scenario::{self, Parsed};
use guichet_engine::sim::{self, Report, Scenario};

use crate::kpi::{num, print_rows};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SimFormat {
    Table,
    Json,
    Csv,
    /// A standalone HTML report with the tables and charts.
    Html,
}

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Definition files (.kdl) or names of shipped desk models; the three shipped models
    /// when none is given.
    models: Vec<String>,
    /// The scenario file (KDL): arrivals, calendar, staff, durations, outcome weights. See
    /// docs/simulation.md.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Requests to simulate per model.
    #[arg(long, default_value_t = 1000)]
    cases: usize,
    /// Seed of the random draws: the same seed gives the same results.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Calibrate from the recorded history of a deployed desk (`desk` or `desk@revision`):
    /// durations, outcome weights and arrival rate; the scenario file overrides what it names.
    #[arg(long, value_name = "DESK[@REVISION]")]
    fit_from: Option<String>,
    /// Forecast when each open request in the database ends, instead of simulating new ones.
    #[arg(long)]
    forecast: bool,
    /// Simulations per forecast (the forecast gives their median and 90th percentile).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    #[arg(long, value_enum, default_value_t = SimFormat::Table)]
    format: SimFormat,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Store the simulated requests that end in the database, as the engine would have (the
    /// final state and the facts of the indicators; the history with --with-history),
    /// instead of reporting on them: a realistic dataset for the indicators (bench/kpi.sh).
    /// Shipped models are deployed first if they are not.
    #[arg(long)]
    store: bool,
    /// With --store, also the hash-chained history of each request (about 80 events a
    /// request with the simulator's timers; the indicators read none of them).
    #[arg(long, requires = "store")]
    with_history: bool,
}

impl SimulateArgs {
    /// Whether the command reads the database.
    pub(crate) fn needs_database(&self) -> bool {
        self.fit_from.is_some() || self.forecast || self.store
    }
}

/// The models to simulate, by file or shipped name.
fn load_models(names: &[String]) -> anyhow::Result<Vec<definitions::Process>> {
    if names.is_empty() {
        return Ok(definitions::models::ALL
            .iter()
            .filter_map(|(_, source)| definitions::load(source).process)
            .collect());
    }
    let mut out = Vec::new();
    for name in names {
        let path = Path::new(name);
        let (label, source) = if path.exists() {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            (name.clone(), String::from_utf8_lossy(&bytes).into_owned())
        } else if let Some(source) = definitions::models::source(name) {
            (name.clone(), source.to_owned())
        } else {
            let shipped: Vec<&str> = definitions::models::ALL
                .iter()
                .filter_map(|(file, _)| file.strip_suffix(".kdl"))
                .collect();
            return Err(crate::db::wrong(format!(
                "`{name}` is neither a file nor a shipped model (shipped: {})",
                shipped.join(", ")
            )));
        };
        let checked = definitions::load(&source);
        match checked.process {
            Some(p) => out.push(p),
            None => {
                eprint!(
                    "{}",
                    diagnostic::render(&checked.diagnostics, &label, &source, false)
                );
                return Err(crate::db::wrong(format!(
                    "{label} has errors; fix them first (see `guichet check`)"
                )));
            }
        }
    }
    Ok(out)
}

fn read_scenario(
    path: Option<&Path>,
    models: &[definitions::Process],
    base: Scenario,
    show_warnings: bool,
) -> anyhow::Result<Parsed> {
    let Some(path) = path else {
        return Ok(Parsed {
            title: "default scenario".to_owned(),
            scenario: base,
            warnings: Vec::new(),
        });
    };
    let source = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the scenario {}", path.display()))?;
    let refs: Vec<&definitions::Process> = models.iter().collect();
    let name = path.display().to_string();
    let parsed = scenario::parse_over(&source, &refs, base).map_err(|diags| {
        eprint!("{}", diagnostic::render(&diags, &name, &source, false));
        anyhow::anyhow!("the scenario {name} has errors")
    })?;
    if show_warnings {
        eprint!(
            "{}",
            diagnostic::render(&parsed.warnings, &name, &source, false)
        );
    }
    Ok(parsed)
}

/// Runs the command; `engine` is there when it needs the database.
pub(crate) async fn simulate(
    engine: Option<Arc<Engine>>,
    a: SimulateArgs,
) -> anyhow::Result<ExitCode> {
    let models = load_models(&a.models)?;
    let mut parsed = read_scenario(a.scenario.as_deref(), &models, Scenario::default(), true)?;
    if let (Some(spec), Some(e)) = (&a.fit_from, &engine) {
        let (desk, revision) = match spec.split_once('@') {
            Some((d, r)) => (
                d,
                Some(
                    r.trim_start_matches(['r', 'v'])
                        .parse::<i64>()
                        .with_context(|| format!("`{r}` is not a revision number"))?,
                ),
            ),
            None => (spec.as_str(), None),
        };
        let fit = guichet_engine::sim::fit::fit(e, desk, revision, &parsed.scenario.calendar)
            .await
            .with_context(|| format!("cannot fit from {spec}"))?;
        if fit.requests == 0 {
            return Err(crate::db::wrong(format!(
                "{spec} has no ended request to fit from"
            )));
        }
        eprintln!(
            "fitted from {} ended request(s) of {spec}: {} step duration(s), {} outcome weight(s)",
            fit.requests,
            fit.work.len() + fit.answers.len(),
            fit.outcomes.len()
        );
        let mut base = Scenario::default();
        fit.apply(&mut base);
        // Read again over the fitted values (its warnings were shown the first time).
        parsed = read_scenario(a.scenario.as_deref(), &models, base, false)?;
        parsed.title = format!("{} (fitted from {spec})", parsed.title);
    }
    if a.forecast {
        let e = engine.context("forecasts read the database")?;
        return forecast(&e, &parsed, &a).await;
    }
    if a.store {
        let e = engine.context("storing reads the database")?;
        return store(&e, &models, &parsed, &a).await;
    }
    let reports = run_models(&models, &parsed.scenario, a.cases, a.seed);
    let text = match a.format {
        SimFormat::Table => table(&parsed.title, &a, &reports, false),
        SimFormat::Csv => table(&parsed.title, &a, &reports, true),
        SimFormat::Json => serde_json::to_string_pretty(&serde_json::json!({
            "scenario": parsed.title,
            "cases": a.cases,
            "seed": a.seed,
            "models": reports,
        }))?,
        SimFormat::Html => html(&parsed.title, &a, &reports),
    };
    write_out(a.output.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}

/// `--store`: the simulated requests that end, written to the database and folded into the
/// indicators' rollups, with the time each part took.
async fn store(
    e: &Engine,
    models: &[definitions::Process],
    parsed: &Parsed,
    a: &SimulateArgs,
) -> anyhow::Result<ExitCode> {
    let deployed = e.desks().await?;
    let mut names = Vec::new();
    for p in models {
        if !deployed.contains_key(&p.name) {
            let Some(source) = definitions::models::source(p.name.as_str()) else {
                return Err(crate::db::wrong(format!(
                    "`{}` is not deployed: deploy it first (guichet deploy FILE)",
                    p.name
                )));
            };
            e.deploy(source).await?;
        }
        names.push(p.name.clone());
    }
    let began = std::time::Instant::now();
    let bar = indicatif::ProgressBar::new((a.cases * names.len()) as u64);
    let stored = guichet_engine::sim::seed::seed_ended(
        e,
        &names,
        &parsed.scenario,
        a.cases,
        a.seed,
        a.with_history,
        &mut |n| bar.set_position(n as u64),
    )
    .await?;
    bar.finish_and_clear();
    let written = began.elapsed();
    let began = std::time::Instant::now();
    let folded = e.fold_all_indicators().await?;
    println!(
        "stored {stored} ended request(s) of {} model(s) in {:.1} s; {folded} folded into the indicators' rollups in {:.1} s",
        names.len(),
        written.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_out(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// The models side by side, one thread each (they share nothing), with a progress bar on a
/// terminal. Each model's run depends only on the seed, not on the threads.
fn run_models(
    models: &[definitions::Process],
    sc: &Scenario,
    cases: usize,
    seed: u64,
) -> Vec<Report> {
    let bar = indicatif::ProgressBar::new((cases * models.len()) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("[{bar:40}] {pos}/{len} requests ended")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let reports = std::thread::scope(|scope| {
        let runs: Vec<_> = models
            .iter()
            .map(|p| {
                let bar = bar.clone();
                scope.spawn(move || {
                    let mut last = 0;
                    sim::simulate_with(p, sc, cases, seed, &mut |ended| {
                        bar.inc((ended - last) as u64);
                        last = ended;
                    })
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    bar.finish_and_clear();
    reports
}

/// The side-by-side comparison as (metric, value per model) rows.
fn comparison(reports: &[Report]) -> Vec<(String, Vec<String>)> {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let each = |f: &dyn Fn(&Report) -> String| reports.iter().map(f).collect::<Vec<_>>();
    rows.push((
        "requests simulated".into(),
        each(&|r| r.requests.to_string()),
    ));
    let mut results: Vec<&String> = reports.iter().flat_map(|r| r.ended.keys()).collect();
    results.sort();
    results.dedup();
    for res in results {
        rows.push((
            if res == "running" {
                "still running".to_owned()
            } else {
                format!("ended {res}")
            },
            each(&|r| r.ended.get(res).copied().unwrap_or(0).to_string()),
        ));
    }
    for (name, f) in [
        (
            "lead time mean (days)",
            (|s: &guichet_engine::indicators::kpi::Stats| s.mean) as fn(&_) -> f64,
        ),
        ("lead time median (days)", |s| s.median),
        ("lead time p90 (days)", |s| s.p90),
    ] {
        rows.push((name.into(), each(&|r| num(r.lead_time.as_ref().map(f)))));
    }
    // The declared indicators, in the order of the first model that declares each.
    let mut kpis: Vec<(String, String, &str)> = Vec::new();
    for r in reports {
        for k in &r.kpis {
            if !kpis.iter().any(|x| x.0 == k.kpi) {
                kpis.push((
                    k.kpi.clone(),
                    k.title.clone().unwrap_or(k.kpi.clone()),
                    k.unit,
                ));
            }
        }
    }
    for (id, title, unit) in kpis {
        rows.push((
            format!("{title} ({unit})"),
            each(&|r| num(r.kpis.iter().find(|k| k.kpi == id).and_then(|k| k.value))),
        ));
    }
    let mut roles: Vec<&String> = reports.iter().flat_map(|r| r.queues.keys()).collect();
    roles.sort();
    roles.dedup();
    for role in roles {
        rows.push((
            format!("{role}: staff, busy, mean queue"),
            each(&|r| {
                r.queues.get(role).map_or_else(String::new, |q| {
                    format!(
                        "{} · {:.0}% · {:.1}{}",
                        q.members,
                        q.utilisation * 100.0,
                        q.mean_length,
                        if q.overloaded { " · OVERLOADED" } else { "" }
                    )
                })
            }),
        ));
    }
    rows
}

/// What each overloaded role of each model says: busy, queue, and to reinforce it.
fn overload_warnings(reports: &[Report]) -> Vec<String> {
    let mut out = Vec::new();
    for r in reports {
        for role in &r.overloaded {
            let Some(q) = r.queues.get(role) else {
                continue;
            };
            out.push(format!(
                "{}: `{role}` cannot keep up ({} {} busy {:.0}% of their time, queue up to {} tasks{}): \
                 its queue makes the lead times; reinforce it (staff {role}={}) and run again",
                r.desk,
                q.members,
                if q.members == 1 { "person" } else { "people" },
                q.utilisation * 100.0,
                q.max_length,
                if q.growing { ", growing" } else { "" },
                q.members + 1
            ));
        }
    }
    out
}

/// The slowest steps of a model: share of lead time, waiting, working, breaches.
fn bottlenecks(r: &Report, top: usize) -> Vec<Vec<String>> {
    r.steps
        .iter()
        .take(top)
        .map(|s| {
            vec![
                r.desk.clone(),
                s.step.clone(),
                format!("{:.0}%", s.share_of_lead_time * 100.0),
                num(s.total.map(|t| t.mean)),
                num(s.waiting.map(|t| t.mean)),
                num(s.working.map(|t| t.mean)),
                s.breach_rate
                    .map(|b| format!("{:.0}%", b * 100.0))
                    .unwrap_or_default(),
                s.loops.to_string(),
            ]
        })
        .collect()
}

const BOTTLENECK_HEADER: [&str; 8] = [
    "model", "step", "share", "total", "waiting", "working", "late", "loops",
];

fn table(title: &str, a: &SimulateArgs, reports: &[Report], csv: bool) -> String {
    let mut out = Vec::new();
    let models: Vec<&str> = reports.iter().map(|r| r.desk.as_str()).collect();
    let mut header = vec!["metric"];
    header.extend(models.iter().copied());
    let rows: Vec<Vec<String>> = comparison(reports)
        .into_iter()
        .map(|(m, v)| std::iter::once(m).chain(v).collect())
        .collect();
    if !csv {
        out.push(format!(
            "{title}: {} requests per model, seed {}\n",
            a.cases, a.seed
        ));
    }
    out.push(print_rows(&header, rows, csv));
    let warnings = overload_warnings(reports);
    if !csv && !warnings.is_empty() {
        out.push("\nOVERLOADED:\n".into());
        for w in warnings {
            out.push(format!("- {w}\n"));
        }
    }
    if !csv {
        out.push(
            "\nWhere the time goes (mean days; share of lead time, steps overlap in parallel):\n"
                .into(),
        );
        let rows: Vec<Vec<String>> = reports.iter().flat_map(|r| bottlenecks(r, 5)).collect();
        out.push(print_rows(&BOTTLENECK_HEADER, rows, false));
    }
    out.concat()
}

fn html(title: &str, a: &SimulateArgs, reports: &[Report]) -> String {
    let mut h = String::new();
    h.push_str(&format!(
        "<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}figure{{margin:1.5em 0}}</style></head><body>\
         <h1>{t}</h1><p>{} simulated requests per model, seed {}. Durations in days.</p>",
        a.cases,
        a.seed,
        t = esc(title)
    ));
    let lead: Vec<(String, guichet_engine::indicators::kpi::Stats)> = reports
        .iter()
        .filter_map(|r| r.lead_time.map(|s| (r.desk.clone(), s)))
        .collect();
    h.push_str("<h2>Lead time per model</h2><figure>");
    h.push_str(&charts::box_plot(
        "Lead time of ended requests",
        "days",
        &lead,
    ));
    h.push_str("</figure>");
    h.push_str("<h2>Side by side</h2><table><tr><th>metric</th>");
    for r in reports {
        h.push_str(&format!("<th>{}</th>", esc(&r.desk)));
    }
    h.push_str("</tr>");
    for (m, vals) in comparison(reports) {
        h.push_str(&format!("<tr><td>{}</td>", esc(&m)));
        for v in vals {
            h.push_str(&format!("<td>{}</td>", esc(&v)));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    for w in overload_warnings(reports) {
        h.push_str(&format!(
            "<p role=\"alert\"><strong>Overloaded.</strong> {}</p>",
            esc(&w)
        ));
    }
    for r in reports {
        h.push_str(&format!("<h2>{}: time per task</h2><figure>", esc(&r.desk)));
        h.push_str(&charts::task_times(
            &format!("{}: mean days per task, slowest first", r.desk),
            "days",
            ["waiting for a free member", "working"],
            &r.steps.iter().collect::<Vec<_>>(),
        ));
        h.push_str("</figure><table><tr>");
        for c in BOTTLENECK_HEADER {
            h.push_str(&format!("<th>{c}</th>"));
        }
        h.push_str("</tr>");
        for row in bottlenecks(r, r.steps.len()) {
            h.push_str("<tr>");
            for c in row {
                h.push_str(&format!("<td>{}</td>", esc(&c)));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

/// Open requests of one compiled process.
type OpenGroup = (
    Arc<definitions::Process>,
    Vec<(String, guichet_engine::core::Instance)>,
);

async fn forecast(e: &Engine, parsed: &Parsed, a: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let open = guichet_engine::sim::fit::open_requests(e).await?;
    // Requests of the same compiled process are simulated together: they share the staff.
    let mut groups: BTreeMap<(String, u32), OpenGroup> = BTreeMap::new();
    for (id, p, inst) in open {
        groups
            .entry((p.name.clone(), p.version))
            .or_insert_with(|| (p.clone(), Vec::new()))
            .1
            .push((id, inst));
    }
    let now = e.now();
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for ((desk, _), (p, reqs)) in &groups {
        for f in sim::forecast(p, &parsed.scenario, reqs, now, a.runs.max(1), a.seed) {
            let day = |t: Option<Timestamp>| {
                t.map(|t| t.to_datetime().date().to_string())
                    .unwrap_or_else(|| "—".to_owned())
            };
            rows.push(vec![
                guichet_engine::core::reference(&f.id),
                desk.clone(),
                day(f.p50),
                day(f.p90),
                format!("{:.0}%", f.ends * 100.0),
            ]);
            json.push(serde_json::json!({
                "request": f.id,
                "desk": desk,
                "p50": f.p50.map(|t| t.to_datetime().date().to_string()),
                "p90": f.p90.map(|t| t.to_datetime().date().to_string()),
                "ends": f.ends,
            }));
        }
    }
    let text = match a.format {
        SimFormat::Json => serde_json::to_string_pretty(&json)?,
        SimFormat::Csv | SimFormat::Table | SimFormat::Html => print_rows(
            &[
                "request",
                "desk",
                "likely end (p50)",
                "late end (p90)",
                "ends",
            ],
            rows,
            matches!(a.format, SimFormat::Csv),
        ),
    };
    write_out(a.output.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}
