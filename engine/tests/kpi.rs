//! Indicators computed from histories made by driving the real engine on a virtual clock
//! through known scenarios; expected values are worked out by hand in each test.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use guichet_definitions::model::BuildingBlock;
use guichet_engine::Engine;
use guichet_engine::clock::{ManualClock, Timestamp};
use guichet_engine::core::{Command, Fields};
use guichet_engine::indicators::kpi::{Compare, KpiRow, Query};
use serde_json::json;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
/// 2027-01-04T00:00:00Z, a Monday.
const JAN: i64 = 1_799_020_800_000;
static N: AtomicUsize = AtomicUsize::new(0);

async fn engine() -> (Engine, Arc<ManualClock>) {
    let path = std::env::temp_dir().join(format!(
        "guichet-kpi-{}-{}.db",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
    }
    let clock = Arc::new(ManualClock::new(Timestamp(JAN)));
    let e = Engine::open(&format!("sqlite://{}", path.display()), clock.clone())
        .await
        .unwrap();
    let source = guichet_definitions::models::source("interne-decentralise").unwrap();
    e.deploy(source).await.unwrap();
    (e, clock)
}

struct Scenario {
    start: i64,
    /// Days from the request to the signed contract; `None` rejects it at the committee.
    contract_days: Option<i64>,
    revise: bool,
    cadre: &'static str,
}

async fn complete(
    e: &Engine,
    id: &str,
    step: &str,
    outcome: Option<&str>,
    fields: serde_json::Value,
) {
    let tasks = e.tasks(Some(id), true).await.unwrap();
    let t = tasks
        .iter()
        .find(|t| t.step == step)
        .unwrap_or_else(|| panic!("no task {step}: {tasks:?}"));
    e.execute(
        id,
        Command::Complete {
            task: u32::try_from(t.seq).unwrap(),
            user: "agent@hopital.example".into(),
            outcome: outcome.map(Into::into),
            fields: serde_json::from_value(fields).unwrap(),
            comment: None,
        },
    )
    .await
    .unwrap();
}

/// Runs one request of model (a) along a scenario.
async fn run(e: &Engine, clock: &ManualClock, s: &Scenario) -> String {
    clock.set(Timestamp(s.start));
    let intake: Fields = serde_json::from_value(json!({
        "titre": "T", "email": "p@x.example", "organisme": "O", "type-porteur": "academique",
        "cadre": s.cadre, "resume": "R", "donnees": "D", "dans-catalogue": true
    }))
    .unwrap();
    let id = e.start("interne-decentralise", &intake).await.unwrap();
    // The desk claims the review after one day and decides after two.
    clock.set(Timestamp(s.start + DAY));
    let task = e.tasks(Some(&id), true).await.unwrap()[0].seq;
    e.execute(
        &id,
        Command::Claim {
            task: u32::try_from(task).unwrap(),
            user: "agent@hopital.example".into(),
        },
    )
    .await
    .unwrap();
    clock.set(Timestamp(s.start + 2 * DAY));
    complete(e, &id, "recevabilite", Some("recevable"), json!({})).await;
    complete(
        e,
        &id,
        "faisabilite-juridique",
        Some("favorable"),
        json!({"base-legale": "mr-004"}),
    )
    .await;
    complete(
        e,
        &id,
        "faisabilite-scientifique",
        Some("favorable"),
        json!({}),
    )
    .await;
    complete(
        e,
        &id,
        "faisabilite-technique",
        Some("faisable"),
        json!({"travaux-supplementaires": s.revise}),
    )
    .await;
    let Some(days) = s.contract_days else {
        complete(e, &id, "comite", Some("refuse"), json!({})).await;
        return id;
    };
    complete(e, &id, "comite", Some("accepte"), json!({})).await;
    complete(
        e,
        &id,
        "negociation",
        Some("projet-pret"),
        json!({"montant": 1000}),
    )
    .await;
    if s.revise {
        complete(e, &id, "revue-juridique", Some("a-reviser"), json!({})).await;
        complete(
            e,
            &id,
            "negociation",
            Some("projet-pret"),
            json!({"montant": 3000}),
        )
        .await;
    }
    complete(e, &id, "revue-juridique", Some("valide"), json!({})).await;
    clock.set(Timestamp(s.start + days * DAY));
    complete(
        e,
        &id,
        "signature",
        Some("signe"),
        json!({"date-signature": "2027-02-01"}),
    )
    .await;
    complete(e, &id, "information-patients", None, json!({})).await;
    complete(e, &id, "constitution-jeu", None, json!({})).await;
    complete(e, &id, "controle-qualite", Some("conforme"), json!({})).await;
    // Access five days after the signature.
    clock.set(Timestamp(s.start + (days + 5) * DAY));
    complete(e, &id, "ouverture-acces", None, json!({})).await;
    clock.set(Timestamp(s.start + (days + 5) * DAY + HOUR));
    complete(
        e,
        &id,
        "suivi",
        None,
        json!({"publications": 2, "litige": false}),
    )
    .await;
    id
}

fn row<'a>(rows: &'a [KpiRow], kpi: &str, group: &str) -> &'a KpiRow {
    rows.iter()
        .find(|r| r.kpi == kpi && r.group == group)
        .unwrap_or_else(|| panic!("no {kpi} in {group}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

async fn four_requests(e: &Engine, clock: &ManualClock) {
    for s in [
        Scenario {
            start: JAN,
            contract_days: Some(10),
            revise: false,
            cadre: "collaboratif",
        },
        Scenario {
            start: JAN + 3 * DAY,
            contract_days: Some(20),
            revise: true,
            cadre: "collaboratif",
        },
        Scenario {
            start: JAN + 6 * DAY,
            contract_days: Some(60),
            revise: false,
            cadre: "autre",
        },
        Scenario {
            start: JAN + 9 * DAY,
            contract_days: None,
            revise: false,
            cadre: "collaboratif",
        },
    ] {
        run(e, clock, &s).await;
    }
}

#[tokio::test]
async fn declared_indicators_match_the_hand_computed_values() {
    let (e, clock) = engine().await;
    four_requests(&e, &clock).await;
    let rows = e.kpis(&Query::default()).await.unwrap();
    // Contracts took 10, 20 and 60 days: mean 30, median 20.
    let d = row(&rows, "delai-contrat", "");
    let s = d.stats.unwrap();
    assert_eq!(s.n, 3);
    assert!(
        close(s.mean, 30.0) && close(s.median, 20.0) && close(s.min, 10.0) && close(s.max, 60.0),
        "{s:?}"
    );
    assert_eq!(d.value, Some(s.mean));
    assert_eq!(d.meets_target, Some(true), "target P90D");
    assert_eq!(d.requests, 4);
    assert_eq!(row(&rows, "demandes", "").value, Some(4.0));
    assert_eq!(row(&rows, "contrats", "").value, Some(3.0));
    assert_eq!(row(&rows, "contrats-revises", "").value, Some(1.0));
    let rate = row(&rows, "taux-revision", "");
    assert!(close(rate.value.unwrap(), 1.0 / 3.0));
    assert_eq!(
        rate.meets_target,
        Some(false),
        "target 0.3, lower is better"
    );
    assert!(close(
        row(&rows, "delai-mise-a-disposition", "").value.unwrap(),
        5.0
    ));
    assert_eq!(row(&rows, "hors-cadre", "").value, Some(1.0));
    assert!(close(
        row(&rows, "part-hors-cadre", "").value.unwrap(),
        0.25
    ));
    assert_eq!(row(&rows, "travaux-techniques", "").value, Some(1.0));
    assert_eq!(row(&rows, "publications", "").value, Some(6.0));
    // Revenue: the final amount of each contract (1000, 3000 after revision, 1000).
    assert_eq!(row(&rows, "revenu", "").value, Some(5000.0));
    assert_eq!(row(&rows, "litiges", "").value, Some(0.0));
    assert_eq!(row(&rows, "demandes-complement", "").value, Some(0.0));
}

#[tokio::test]
async fn step_timings_and_loops() {
    let (e, clock) = engine().await;
    four_requests(&e, &clock).await;
    let steps = e.step_timings(&Query::default()).await.unwrap();
    let review = steps.iter().find(|s| s.step == "recevabilite").unwrap();
    assert_eq!((review.visits, review.requests, review.loops), (4, 4, 0));
    // Claimed after one day, completed after two: waiting 1, working 1, total 2.
    let (w, k, t) = (
        review.waiting.unwrap(),
        review.working.unwrap(),
        review.total.unwrap(),
    );
    assert!(
        close(w.mean, 1.0) && close(k.mean, 1.0) && close(t.mean, 2.0),
        "{w:?} {k:?} {t:?}"
    );
    // Deadline P5D: never breached.
    assert_eq!(review.breach_rate, Some(0.0));
    let nego = steps.iter().find(|s| s.step == "negociation").unwrap();
    assert_eq!(
        (nego.visits, nego.requests, nego.loops),
        (4, 3, 1),
        "one revision"
    );
    // The signature waits until the contract day: the largest share of lead time.
    let signature = steps.iter().find(|s| s.step == "signature").unwrap();
    let sig = signature.total.unwrap();
    assert!(close(sig.median, 18.0) && close(sig.max, 58.0), "{sig:?}");
    assert_eq!(
        signature.breach_rate,
        Some(2.0 / 3.0),
        "due in 15 days: 20 and 60 breach"
    );
    assert_eq!(steps[0].step, "signature", "the bottleneck comes first");
}

#[tokio::test]
async fn comparison_by_period_filters_and_the_matrix() {
    let (e, clock) = engine().await;
    four_requests(&e, &clock).await;
    // By month of the end: the 10-day contract (ended 19 January) and the refusal (15
    // January) in January, the 20-day one (1 February) in February, the 60-day one in March.
    let rows = e
        .kpis(&Query {
            compare: Compare::Month,
            ..Query::default()
        })
        .await
        .unwrap();
    let jan = row(&rows, "delai-contrat", "2027-01");
    assert_eq!((jan.requests, jan.stats.unwrap().n), (2, 1));
    assert!(close(jan.value.unwrap(), 10.0));
    assert!(close(
        row(&rows, "delai-contrat", "2027-02").value.unwrap(),
        20.0
    ));
    let mar = row(&rows, "delai-contrat", "2027-03");
    assert!(close(mar.value.unwrap(), 60.0));
    let rows = e
        .kpis(&Query {
            compare: Compare::Quarter,
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(row(&rows, "demandes", "2027-Q1").value, Some(4.0));
    // Only the requests outside the identified frames.
    let rows = e
        .kpis(&Query {
            filters: vec![("cadre".into(), "autre".into())],
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(row(&rows, "demandes", "").value, Some(1.0));
    assert!(close(row(&rows, "delai-contrat", "").value.unwrap(), 60.0));
    // A period with nothing in it.
    let none = e
        .kpis(&Query {
            to: Some(Timestamp(JAN)),
            ..Query::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    // The matrix: technical is mature and performant (access in 5 days, target 45), uses is
    // mature but not performant (25 % outside the frames, target 20 %).
    let matrix = e.maturity_matrix(&Query::default()).await.unwrap();
    let cell = |b: BuildingBlock| matrix.iter().find(|m| m.block == b).unwrap();
    assert_eq!(cell(BuildingBlock::Technical).quadrant, "done");
    assert_eq!(cell(BuildingBlock::Uses).quadrant, "not a priority");
    assert_eq!(cell(BuildingBlock::Uses).performance, Some(0.0));
    assert_eq!(cell(BuildingBlock::Catalogue).maturity, Some(2.0 / 3.0));
}

#[tokio::test]
async fn comparison_by_version() {
    let (e, clock) = engine().await;
    run(
        &e,
        &clock,
        &Scenario {
            start: JAN,
            contract_days: Some(10),
            revise: false,
            cadre: "collaboratif",
        },
    )
    .await;
    let source = guichet_definitions::models::source("interne-decentralise").unwrap();
    let v2 = source.replace(
        "process \"interne-decentralise\" version=1",
        "process \"interne-decentralise\" version=2",
    );
    assert_eq!(e.deploy(&v2).await.unwrap().revision, 2);
    run(
        &e,
        &clock,
        &Scenario {
            start: JAN + 30 * DAY,
            contract_days: Some(40),
            revise: false,
            cadre: "collaboratif",
        },
    )
    .await;
    let rows = e
        .kpis(&Query {
            compare: Compare::Version,
            ..Query::default()
        })
        .await
        .unwrap();
    assert!(close(
        row(&rows, "delai-contrat", "revision 1").value.unwrap(),
        10.0
    ));
    assert!(close(
        row(&rows, "delai-contrat", "revision 2").value.unwrap(),
        40.0
    ));
}

#[tokio::test]
async fn a_scenario_fitted_from_history_has_the_measured_durations_and_weights() {
    use guichet_engine::calendar::Calendar;
    use guichet_engine::sim::Dist;
    let (e, clock) = engine().await;
    four_requests(&e, &clock).await;
    let fit = guichet_engine::sim::fit::fit(&e, "interne-decentralise", Some(1), &Calendar::Always)
        .await
        .unwrap();
    assert_eq!(fit.requests, 4);
    // Requests came every three days.
    assert_eq!(fit.interarrival, Some(Dist::Exponential { mean: 3.0 }));
    // The review was claimed after a day and decided a day later, every time.
    assert_eq!(fit.work["recevabilite"], Dist::Fixed(1.0));
    // Three accepted at the committee, one refused; one contract revised out of four reviews.
    let weight = |step: &str, o: &str| {
        fit.outcomes[step]
            .iter()
            .find(|(x, _)| x == o)
            .map(|w| w.1)
            .unwrap()
    };
    assert_eq!(weight("comite", "accepte"), 3.0);
    assert_eq!(weight("comite", "refuse"), 1.0);
    assert_eq!(weight("revue-juridique", "a-reviser"), 1.0);
    assert_eq!(weight("revue-juridique", "valide"), 3.0);
    // Working time in an office calendar: the claim on Tuesday 00:00 and the decision on
    // Wednesday 00:00 span one open day of eight hours.
    let office =
        guichet_engine::sim::fit::fit(&e, "interne-decentralise", None, &Calendar::french_office())
            .await
            .unwrap();
    assert_eq!(office.work["recevabilite"], Dist::Fixed(1.0));
    assert!(
        guichet_engine::sim::fit::fit(&e, "nope", None, &Calendar::Always)
            .await
            .is_err()
    );
}

/// Numbers equal to within float rounding (sums added in another order), the rest exactly.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

async fn everything(e: &Engine, queries: &[Query]) -> serde_json::Value {
    let mut out = Vec::new();
    for q in queries {
        out.push(json!({
            "kpis": e.kpis(q).await.unwrap(),
            "steps": e.step_timings(q).await.unwrap(),
            "lead": e.lead_times(q).await.unwrap(),
        }));
    }
    serde_json::Value::Array(out)
}

#[tokio::test]
async fn indicators_read_from_the_monthly_rollups_are_those_of_the_facts() {
    let (e, clock) = engine().await;
    four_requests(&e, &clock).await;
    let day = |d: i64| Some(Timestamp(JAN + d * DAY));
    let mut queries = Vec::new();
    for compare in [
        Compare::Model,
        Compare::Version,
        Compare::Month,
        Compare::Quarter,
    ] {
        queries.push(Query {
            compare,
            ..Query::default()
        });
    }
    // Whole months (February), partial ones at both edges, a period inside one month, one
    // ending on a month's first day, an intake filter (facts only), a desk that is not there.
    for (from, to) in [
        (day(28), day(56)),
        (day(10), day(70)),
        (day(12), day(20)),
        (None, day(28)),
        (day(-3), None),
        // Instants that are not midnights: the hours at the edges from the facts.
        (
            Some(Timestamp(JAN + 10 * DAY + 5 * HOUR)),
            Some(Timestamp(JAN + 70 * DAY + HOUR)),
        ),
    ] {
        queries.push(Query {
            from,
            to,
            compare: Compare::Month,
            ..Query::default()
        });
    }
    // One intake answer (its own parts), with a period; two answers (facts only).
    queries.push(Query {
        filters: vec![("cadre".into(), "collaboratif".into())],
        ..Query::default()
    });
    queries.push(Query {
        filters: vec![("cadre".into(), "autre".into())],
        from: day(10),
        to: day(70),
        compare: Compare::Month,
        ..Query::default()
    });
    queries.push(Query {
        filters: vec![
            ("cadre".into(), "collaboratif".into()),
            ("type-porteur".into(), "academique".into()),
        ],
        ..Query::default()
    });
    queries.push(Query {
        desks: vec!["ailleurs".into()],
        ..Query::default()
    });
    let facts = everything(&e, &queries).await;
    assert_eq!(facts[0]["kpis"][0]["requests"], 4, "{facts}");
    // Half folded, then all: the same figures.
    assert_eq!(e.fold_indicators(2).await.unwrap(), 2);
    let half = everything(&e, &queries).await;
    assert!(same(&facts, &half), "{facts}\n{half}");
    assert_eq!(e.fold_indicators(100).await.unwrap(), 2);
    assert_eq!(e.fold_indicators(100).await.unwrap(), 0);
    let folded = everything(&e, &queries).await;
    assert!(same(&facts, &folded), "{facts}\n{folded}");
    // What was folded is in the rollups, one row per desk, revision and month for all
    // requests, and others per intake answer.
    let months: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM kpi_rollups WHERE grain = 'month' AND field = ''")
            .fetch_one(e.store().pool())
            .await
            .unwrap();
    assert_eq!(months, 3, "January, February and March");
}

#[tokio::test]
async fn the_object_centric_export_relates_documents_to_the_step_they_came_with() {
    let (e, _) = engine().await;
    let sha = "a".repeat(64);
    let intake: Fields = serde_json::from_value(json!({
        "titre": "T", "email": "p@x.example", "organisme": "O", "type-porteur": "academique",
        "cadre": "autre", "resume": "R", "donnees": "D",
        "protocole": {"sha256": sha, "name": "protocole.pdf", "size": 1234, "type": "application/pdf"}
    }))
    .unwrap();
    let id = e.start("interne-decentralise", &intake).await.unwrap();
    complete(&e, &id, "recevabilite", Some("non-recevable"), json!({})).await;
    let mut out = Vec::new();
    e.export_ocel(&Query::default(), &mut out).await.unwrap();
    let ocel: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let object = format!("{id}/document/{sha}");
    let document = ocel["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == object.as_str())
        .unwrap_or_else(|| panic!("no document object: {ocel}"));
    assert_eq!(document["type"], "document");
    assert!(document["attributes"].to_string().contains("protocole.pdf"));
    let intake_event = ocel["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ev| ev["type"] == "demande")
        .unwrap();
    assert!(
        intake_event["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["objectId"] == object.as_str() && r["qualifier"] == "protocole"),
        "{intake_event}"
    );
    assert!(
        ocel["objectTypes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "document")
    );
}
