//! The XES export read back by a standard process-mining library (pm4py, installed by
//! `scripts/test` into a virtual environment; its Python in `GUICHET_PM4PY`).

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn pm4py_reads_the_xes_export() {
    let python = std::env::var("GUICHET_PM4PY").unwrap_or_else(|_| {
        panic!("GUICHET_PM4PY is not set: run the tests with scripts/test, which installs pm4py in a virtual environment")
    });
    let dir = std::env::temp_dir().join(format!("guichet-xes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("x.db").display());
    let guichet = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_guichet"))
            .arg("--database")
            .arg(&db)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
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
         'transitions': sorted(set(log['lifecycle:transition']))}}))",
        xes.to_str().unwrap()
    );
    let out = Command::new(&python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pm4py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
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
}
