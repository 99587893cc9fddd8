//! The XES and OCEL 2.0 exports read back by a standard process-mining library (pm4py,
//! installed by `scripts/test` into a virtual environment; its Python in `GUICHET_PM4PY`).

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
         'transitions': sorted(set(log['lifecycle:transition'])), 'completions': int((log['lifecycle:transition'] == 'complete').sum())}}))",
        xes.to_str().unwrap()
    );
    let pm4py = |script: &str| -> serde_json::Value {
        let out = Command::new(&python).args(["-c", script]).output().unwrap();
        assert!(
            out.status.success(),
            "pm4py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    };
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
