//! The XES and OCEL 2.0 exports read back by a standard process-mining library (pm4py,
//! installed by `scripts/test` into a virtual environment; its Python in `GUICHET_PM4PY`).

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;

/// The Python of the virtual environment where `scripts/test` installed pm4py.
fn python() -> String {
    std::env::var("GUICHET_PM4PY").unwrap_or_else(|_| {
        panic!("GUICHET_PM4PY is not set: run the tests with scripts/test, which installs pm4py in a virtual environment")
    })
}

/// A fresh folder for a test's database and files.
fn folder(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("guichet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `guichet` on the database `db`; panics with its standard error unless it succeeds.
fn guichet(db: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .arg("--database")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a Python script with pm4py; the JSON its last line prints.
fn pm4py(script: &str) -> serde_json::Value {
    let out = Command::new(python())
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pm4py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn pm4py_reads_the_xes_export() {
    let dir = folder("xes");
    let db = format!("sqlite://{}", dir.join("x.db").display());
    let guichet = |args: &[&str]| guichet(&db, args);
    guichet(&[
        "bench",
        "--desk",
        "interne-decentralise",
        "--requests",
        "4",
        "--concurrency",
        "1",
    ]);
    guichet(&[
        "bench",
        "--desk",
        "externe",
        "--requests",
        "3",
        "--concurrency",
        "1",
    ]);
    let xes = dir.join("log.xes");
    let out = guichet(&["export", "xes", "-o", xes.to_str().unwrap()]);
    let summary = String::from_utf8_lossy(&out.stderr).to_string();
    let numbers: Vec<usize> = summary
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (traces, events) = (numbers[0], numbers[1]);
    assert_eq!(traces, 7, "{summary}");
    let script = format!(
        "import json, pm4py\nlog = pm4py.read_xes({:?})\nprint(json.dumps({{'traces': int(log['case:concept:name'].nunique()), 'events': len(log), \
         'activities': sorted(set(log['concept:name'])), 'models': sorted(set(log['case:guichet:model'])), \
         'transitions': sorted(set(log['lifecycle:transition'])), 'completions': int((log['lifecycle:transition'] == 'complete').sum())}}))",
        xes.to_str().unwrap()
    );
    let parsed = pm4py(&script);
    assert_eq!(parsed["traces"], traces);
    assert_eq!(parsed["events"], events);
    assert_eq!(
        parsed["models"],
        serde_json::json!(["externe", "interne-decentralise"])
    );
    assert_eq!(
        parsed["transitions"],
        serde_json::json!(["complete", "start"])
    );
    // The activities are exactly the steps the tireless driver went through.
    let activities: BTreeSet<String> = parsed["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    for step in [
        "demande",
        "recevabilite",
        "faisabilite-juridique",
        "conformite",
        "signature",
        "ouverture-acces",
        "transfert",
        "projet-clos",
    ] {
        assert!(
            activities.contains(step),
            "{step} missing from {activities:?}"
        );
    }
    assert!(!activities.contains("refus"), "no request was refused");

    // The object-centric log: every request with its contract and its dataset (each request
    // was accepted, so went through the steps about them), one event per step completion.
    let ocel = dir.join("log.jsonocel");
    let out = guichet(&["export", "ocel", "-o", ocel.to_str().unwrap()]);
    let summary = String::from_utf8_lossy(&out.stderr).to_string();
    let script = format!(
        "import json, pm4py\no = pm4py.read_ocel2_json({:?})\nprint(json.dumps({{'events': len(o.events), \
         'objects': {{k: int(v) for k, v in o.objects['ocel:type'].value_counts().items()}}, \
         'relations': o.relations.groupby('ocel:type')['ocel:eid'].count().to_dict(), 'o2o': len(o.o2o), \
         'activities': sorted(set(o.events['ocel:activity']))}}))",
        ocel.to_str().unwrap()
    );
    let o = pm4py(&script);
    assert_eq!(o["events"], parsed["completions"], "{o}");
    assert!(
        summary.contains(&format!("21 objects, {} events", o["events"])),
        "{summary}"
    );
    assert_eq!(
        o["objects"],
        serde_json::json!({"request": 7, "contract": 7, "dataset": 7})
    );
    // Each event concerns its request; those of the contract's and the dataset's steps
    // concern them too: a signature per request, a contract step or more per request.
    assert_eq!(o["relations"]["request"], o["events"]);
    assert!(o["relations"]["contract"].as_u64().unwrap() >= 7 * 2, "{o}");
    assert!(o["relations"]["dataset"].as_u64().unwrap() >= 7, "{o}");
    assert_eq!(
        o["o2o"], 28,
        "request <-> contract and request <-> dataset, both ways"
    );
    let ocel_activities: BTreeSet<String> = o["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert!(
        ocel_activities.is_subset(&activities),
        "{ocel_activities:?}"
    );
    assert!(ocel_activities.contains("signature"));
}

/// Nearest-rank percentile `p` of `values`, as guichet defines it (docs/kpi.md).
fn nearest_rank(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Whether two figures in days agree: `exact` to within rounding, else to within the 1 % of
/// the indicators' buckets (docs/kpi.md, How they are computed).
fn agree(ours: f64, theirs: f64, exact: bool) -> bool {
    let tolerance = if exact { 1e-6 } else { 0.0101 };
    (ours - theirs).abs() <= tolerance * theirs.abs().max(1e-3)
}

/// The figures pm4py computes from the XES export (time in each step from its lifecycle
/// pairs, trace durations) are those `guichet kpi` gives, on simulated requests whose
/// providers time out and whose sponsors fail to answer.
#[test]
fn pm4py_finds_the_step_times_and_lead_times_that_guichet_kpi_gives() {
    let dir = folder("pm4py-figures");
    let db = format!("sqlite://{}", dir.join("x.db").display());
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/scenarios/trois-modeles.kdl"
    );
    guichet(
        &db,
        &[
            "simulate",
            "interne-solutions-externes",
            "--scenario",
            scenario,
            "--cases",
            "300",
            "--seed",
            "3",
            "--store",
            "--with-history",
        ],
    );
    let xes = dir.join("log.xes");
    guichet(&db, &["export", "xes", "-o", xes.to_str().unwrap()]);
    let json = |view: &str| -> serde_json::Value {
        let out = guichet(&db, &["kpi", "--view", view, "--format", "json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (steps, lead) = (json("steps"), json("lead"));

    let script = format!(
        r#"import json, pm4py
from pm4py.objects.log.util import interval_lifecycle
df = pm4py.read_xes({xes:?})
pairs = df.groupby(['concept:name', 'lifecycle:transition']).size().unstack(fill_value=0)
intervals = pm4py.convert_to_dataframe(interval_lifecycle.to_interval(pm4py.convert_to_event_log(df)))
means = pm4py.get_service_time(intervals, start_timestamp_key='start_timestamp', timestamp_key='time:timestamp', aggregation_measure='mean')
intervals['days'] = (intervals['time:timestamp'] - intervals['start_timestamp']).dt.total_seconds() / 86400
tasks = df[df['org:role'].notna()]
print(json.dumps({{
    'starts': {{k: int(v) for k, v in pairs['start'].items()}},
    'completes': {{k: int(v) for k, v in pairs['complete'].items()}},
    'mean': {{k: v / 86400 for k, v in means.items()}},
    'days': {{k: list(g['days']) for k, g in intervals.groupby('concept:name')}},
    'exits': {{k: int(v) for k, v in df['guichet:exit'].value_counts().items()}},
    'task_resources': sorted(set(tasks['org:resource'])),
    'leads': [d / 86400 for d in pm4py.get_all_case_durations(df)],
}}))"#,
        xes = xes.to_str().unwrap()
    );
    let pm = pm4py(&script);

    // The history has timeouts, and every start has its end.
    let timeouts = pm["exits"]["timeout"].as_u64().unwrap_or(0);
    assert!(timeouts > 50, "too few timeouts to test: {}", pm["exits"]);
    assert_eq!(pm["starts"], pm["completes"]);
    // Tasks are credited to who performed them, not to the engine or the sponsor.
    for r in pm["task_resources"].as_array().unwrap() {
        let r = r.as_str().unwrap();
        assert!(r != "system" && r != "requester", "a task credited to {r}");
    }

    let mut compared = 0;
    for row in steps.as_array().unwrap() {
        let step = row["step"].as_str().unwrap();
        let total = &row["total"];
        let days: Vec<f64> = pm["days"][step]
            .as_array()
            .unwrap_or_else(|| panic!("pm4py has no {step}"))
            .iter()
            .map(|d| d.as_f64().unwrap())
            .collect();
        assert_eq!(row["visits"], days.len(), "{step}: visits");
        let (ours, theirs) = (
            total["mean"].as_f64().unwrap(),
            pm["mean"][step].as_f64().unwrap(),
        );
        assert!(
            agree(ours, theirs, true),
            "{step}: mean {ours} days, pm4py {theirs}"
        );
        for (p, key) in [(0.5, "median"), (0.9, "p90")] {
            let (ours, theirs) = (total[key].as_f64().unwrap(), nearest_rank(&days, p));
            assert!(
                agree(ours, theirs, false),
                "{step}: {key} {ours} days, pm4py {theirs}"
            );
        }
        compared += 1;
    }
    assert!(compared > 20, "{compared} steps compared");

    let leads: Vec<f64> = pm["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap())
        .collect();
    let ours = &lead[0]["stats"];
    assert_eq!(ours["n"], leads.len());
    #[allow(clippy::cast_precision_loss)]
    let mean = leads.iter().sum::<f64>() / leads.len() as f64;
    assert!(
        agree(ours["mean"].as_f64().unwrap(), mean, true),
        "lead time {ours} against pm4py's mean {mean}"
    );
    let median = nearest_rank(&leads, 0.5);
    assert!(
        agree(ours["median"].as_f64().unwrap(), median, false),
        "lead time {ours} against pm4py's median {median}"
    );
    eprintln!(
        "pm4py agrees with guichet kpi on {compared} steps and {} requests ({timeouts} timed-out visits); lead time: mean {mean:.3} days, median {median:.3}",
        leads.len()
    );
}
