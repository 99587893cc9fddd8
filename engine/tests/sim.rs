//! The simulator against results known in closed form: deterministic durations, queueing
//! theory (M/M/1 and M/M/2), and the geometric number of revisions of a loop.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use guichet_definitions::model::Process;
use guichet_engine::calendar::Calendar;
use guichet_engine::clock::Timestamp;
use guichet_engine::sim::scenario::{self, parse_instant};
use guichet_engine::sim::{Dist, Scenario, forecast, simulate};

fn one_task(extra_outcome: bool) -> Process {
    let outcomes = if extra_outcome {
        "{\n  outcome \"ok\"\n  outcome \"revoir\" goto=\"travail\"\n }"
    } else {
        ""
    };
    let src = format!(
        "process \"file\" {{\n role \"r\" {{ member \"r@example.org\" }}\n start \"s\"\n task \"travail\" role=\"r\" {outcomes}\n end \"fin\" result=\"accepted\"\n}}\n"
    );
    guichet_definitions::load(&src).process.unwrap()
}

fn scenario(interarrival: Dist, work: Dist, staff: usize) -> Scenario {
    Scenario {
        interarrival,
        default_work: work,
        staff: BTreeMap::from([("r".to_owned(), staff)]),
        ..Scenario::default()
    }
}

#[test]
fn deterministic_durations_give_exact_lead_times() {
    let p = one_task(false);
    let report = simulate(&p, &scenario(Dist::Fixed(10.0), Dist::Fixed(2.0), 1), 50, 1);
    let lead = report.lead_time.unwrap();
    assert_eq!(report.ended["accepted"], 50);
    assert!(
        (lead.min - 2.0).abs() < 1e-9 && (lead.max - 2.0).abs() < 1e-9,
        "{lead:?}"
    );
    // One member, busy 2 days out of every 10.
    assert!(
        (report.utilisation["r"] - 100.0 / 492.0).abs() < 1e-6,
        "{:?}",
        report.utilisation
    );
}

#[test]
fn runs_are_reproducible_for_a_seed() {
    let p = one_task(true);
    let mut sc = scenario(
        Dist::Exponential { mean: 1.0 },
        Dist::Triangular(0.2, 0.5, 1.5),
        1,
    );
    sc.outcomes.insert(
        "travail".into(),
        vec![("ok".into(), 0.7), ("revoir".into(), 0.3)],
    );
    let a = simulate(&p, &sc, 500, 42);
    let b = simulate(&p, &sc, 500, 42);
    let c = simulate(&p, &sc, 500, 43);
    assert_eq!(a.lead_time, b.lead_time);
    assert_eq!(a.completions, b.completions);
    assert_ne!(a.lead_time, c.lead_time);
}

#[test]
fn a_single_server_queue_matches_m_m_1() {
    // Arrivals at rate 1 a day, service at rate 1.25 a day: W = 1 / (mu - lambda) = 4 days.
    let p = one_task(false);
    let report = simulate(
        &p,
        &scenario(
            Dist::Exponential { mean: 1.0 },
            Dist::Exponential { mean: 0.8 },
            1,
        ),
        40_000,
        7,
    );
    let w = report.lead_time.unwrap().mean;
    assert!(
        (w - 4.0).abs() < 0.4,
        "mean time in the system {w}, expected 4"
    );
    // Utilisation rho = lambda / mu = 0.8.
    assert!(
        (report.utilisation["r"] - 0.8).abs() < 0.03,
        "{:?}",
        report.utilisation
    );
}

/// A role that cannot keep up is flagged, with its queue growing; one at 80 % is not, nor
/// are two people doing the same work.
#[test]
fn a_role_that_cannot_keep_up_is_flagged_overloaded() {
    let p = one_task(false);
    let run = |work: f64, staff: usize| {
        let sc = scenario(
            Dist::Exponential { mean: 1.0 },
            Dist::Exponential { mean: work },
            staff,
        );
        simulate(&p, &sc, 2_000, 5)
    };
    // rho = 1.25: the queue grows by a quarter of the arrivals.
    let over = run(1.25, 1);
    let q = over.queues["r"];
    assert!(q.overloaded && q.growing, "{q:?}");
    assert_eq!(over.overloaded, ["r"]);
    assert!(q.max_length > 300, "{q:?}");
    for (work, staff) in [(0.8, 1), (1.25, 2)] {
        let fine = run(work, staff);
        let q = fine.queues["r"];
        assert!(!q.overloaded && !q.growing, "{work} days, {staff}: {q:?}");
        assert!(fine.overloaded.is_empty());
    }
}

#[test]
fn two_servers_match_m_m_2() {
    // lambda = 1, mu = 0.625 per member, c = 2: rho = 0.8, a = lambda / mu = 1.6.
    // Erlang C: P(wait) = a^2/2! * 1/(1 - rho) / (1 + a + a^2/2! * 1/(1 - rho)) = 0.7111;
    // Wq = P(wait) / (c mu - lambda) = 2.8444; W = Wq + 1/mu = 4.4444 days.
    let p = one_task(false);
    let report = simulate(
        &p,
        &scenario(
            Dist::Exponential { mean: 1.0 },
            Dist::Exponential { mean: 1.6 },
            2,
        ),
        40_000,
        11,
    );
    let w = report.lead_time.unwrap().mean;
    assert!(
        (w - 4.4444).abs() < 0.45,
        "mean time in the system {w}, expected 4.44"
    );
}

#[test]
fn a_revision_loop_taken_with_probability_p() {
    // Each completion loops back with p = 0.4: revisions per request p / (1 - p) = 2/3.
    let p = one_task(true);
    let mut sc = scenario(Dist::Fixed(10.0), Dist::Fixed(0.1), 1);
    sc.outcomes.insert(
        "travail".into(),
        vec![("ok".into(), 0.6), ("revoir".into(), 0.4)],
    );
    let n = 20_000;
    let report = simulate(&p, &sc, n, 3);
    #[allow(clippy::cast_precision_loss)]
    let revisions = (report.completions["travail"] - n) as f64 / n as f64;
    assert!(
        (revisions - 2.0 / 3.0).abs() < 0.03,
        "mean revisions {revisions}, expected 0.667"
    );
}

#[test]
fn the_shipped_models_run_under_a_plausible_scenario() {
    for (file, source) in guichet_definitions::models::ALL {
        let p = guichet_definitions::load(source).process.unwrap();
        let sc = Scenario {
            interarrival: Dist::Exponential { mean: 3.0 },
            default_work: Dist::Triangular(0.5, 2.0, 6.0),
            provider: Dist::LogNormal {
                median: 7.0,
                spread: 1.5,
            },
            ..Scenario::default()
        };
        let report = simulate(&p, &sc, 200, 5);
        assert_eq!(report.requests, 200, "{file}");
        assert_eq!(
            report.ended.get("accepted").copied().unwrap_or(0),
            200,
            "{file}: {:?}",
            report.ended
        );
        assert!(report.lead_time.unwrap().mean > 10.0, "{file}");
    }
}

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

fn at(s: &str) -> Timestamp {
    parse_instant(s).unwrap()
}

#[test]
fn a_working_calendar_spreads_work_over_open_hours() {
    // One working day of work (8 hours) on a request arriving on Friday 8 January 2027 at
    // 16:00: one hour on Friday, seven on Monday, done Monday 16:00, three days later.
    let p = one_task(false);
    let sc = Scenario {
        calendar: Calendar::french_office(),
        schedule: Some(vec![at("2026-04-03T16:00").0, at("2027-01-08T16:00").0]),
        default_work: Dist::Fixed(1.0),
        ..Scenario::default()
    };
    let report = simulate(&p, &sc, 2, 1);
    let lead = report.lead_time.unwrap();
    assert_eq!(lead.min, 3.0, "{lead:?}");
    // Friday 3 April 2026, 16:00: Easter Monday (6 April) is off, so Tuesday 16:00.
    assert_eq!(lead.max, 4.0, "{lead:?}");
}

#[test]
fn simulated_requests_have_the_indicators_of_recorded_ones() {
    let source = guichet_definitions::models::source("interne-decentralise").unwrap();
    let p = guichet_definitions::load(source).process.unwrap();
    let sc = Scenario {
        interarrival: Dist::Fixed(1.0),
        default_work: Dist::Fixed(0.25),
        staff: BTreeMap::from([("juriste".to_owned(), 1)]),
        ..Scenario::default()
    };
    let report = simulate(&p, &sc, 50, 1);
    assert_eq!(report.ended["accepted"], 50);
    let kpi = |id: &str| report.kpis.iter().find(|k| k.kpi == id).unwrap();
    assert_eq!(kpi("demandes").value, Some(50.0));
    assert_eq!(kpi("contrats").value, Some(50.0));
    let contract = kpi("delai-contrat").stats.unwrap();
    assert_eq!(contract.n, 50);
    // The jurist has three tasks of a quarter of a day per request (legal feasibility,
    // contract review, patient information): 37.5 days of work for 50 requests.
    let juriste = report.queues["juriste"];
    let busy = juriste.utilisation * report.span_days;
    assert!(
        (busy - 37.5).abs() < 1e-6,
        "{juriste:?} over {}",
        report.span_days
    );
    assert!(juriste.mean_wait < 0.5, "{juriste:?}");
    // Waiting and working add up to the time in the step, as in recorded facts.
    let step = report
        .steps
        .iter()
        .find(|s| s.step == "faisabilite-juridique")
        .unwrap();
    let (total, waiting, working) = (
        step.total.unwrap().mean,
        step.waiting.unwrap().mean,
        step.working.unwrap().mean,
    );
    assert!((total - waiting - working).abs() < 1e-9);
    assert!((working - 0.25).abs() < 1e-9, "{working}");
    assert_eq!(step.visits, 50);
}

#[test]
fn forecasts_follow_the_queue_of_open_requests() {
    // Three requests waiting for one member, two days of work each: they end 2, 4 and 6
    // days from now, in the order they came.
    let p = one_task(false);
    let now = at("2027-03-01");
    let open: Vec<(String, _)> = (0..3)
        .map(|i| {
            let (inst, _) = guichet_engine::core::start(
                &p,
                &Default::default(),
                Timestamp(now.0 - (3 - i) * HOUR),
            )
            .unwrap();
            (format!("r{i}"), inst)
        })
        .collect();
    let sc = Scenario {
        default_work: Dist::Fixed(2.0),
        ..Scenario::default()
    };
    let f = forecast(&p, &sc, &open, now, 5, 1);
    let ends: Vec<i64> = f.iter().map(|f| f.p50.unwrap().0 - now.0).collect();
    assert_eq!(ends, vec![2 * DAY, 4 * DAY, 6 * DAY]);
    assert!(f.iter().all(|f| f.ends == 1.0 && f.p90 == f.p50));
}

#[test]
fn the_example_scenario_reads_against_the_shipped_models() {
    let models: Vec<_> = guichet_definitions::models::ALL
        .iter()
        .map(|(_, s)| guichet_definitions::load(s).process.unwrap())
        .collect();
    let refs: Vec<_> = models.iter().collect();
    let source = include_str!("../../examples/scenarios/trois-modeles.kdl");
    let parsed = scenario::parse(source, &refs).unwrap();
    assert_eq!(parsed.scenario.staff["juriste"], 2);
    assert_eq!(parsed.scenario.calendar, Calendar::french_office());
    assert_eq!(parsed.scenario.outcomes["comite"].len(), 2);
    assert!(matches!(
        parsed.scenario.role_work["juriste"],
        Dist::LogNormal { .. }
    ));
}

#[test]
fn scenario_mistakes_name_the_place_and_the_fix() {
    let p = one_task(true);
    let refs = [&p];
    let cases = [
        (
            "scenario \"s\" { staff rr=2 }",
            "G0020",
            "no model being simulated has the role `rr`",
            "did you mean `r`?",
        ),
        (
            "scenario \"s\" { work step=\"travial\" fixed value=1 }",
            "G0022",
            "no model being simulated has the step `travial`",
            "did you mean `travail`?",
        ),
        (
            "scenario \"s\" { outcomes \"travail\" ok=1 revior=1 }",
            "G0024",
            "no simulated model's step `travail` has the outcome `revior`",
            "did you mean `revoir`?",
        ),
        (
            "scenario \"s\" { arrivals exponentiel mean=2 }",
            "G0019",
            "unknown distribution `exponentiel`",
            "did you mean `exponential`?",
        ),
        (
            "scenario \"s\" { work triangular min=3 mode=1 max=2 }",
            "G0019",
            "not valid",
            "fix the parameters",
        ),
        (
            "scenario \"s\" { work uniform min=1 }",
            "G0013",
            "a uniform distribution needs `max`",
            "min, max",
        ),
        (
            "scenario \"s\" { calendar open=\"18:00\" close=\"09:00\" }",
            "G0019",
            "no working time",
            "open before close",
        ),
        (
            "scenario \"s\" { staf r=1 }",
            "G0010",
            "unknown scenario setting `staf`",
            "did you mean `staff`?",
        ),
        (
            "scenario \"s\" { start \"04/01/2027\" }",
            "G0019",
            "is not a date",
            "2027-01-04",
        ),
        ("scenario \"s\" { staff r=true", "G0001", "", ""),
    ];
    for (src, code, message, help) in cases {
        // Names no simulated model has are warnings: the setting is left out.
        let diags = match scenario::parse(src, &refs) {
            Ok(parsed) => {
                assert!(["G0020", "G0022", "G0024"].contains(&code), "{src}");
                parsed.warnings
            }
            Err(errors) => errors,
        };
        let d = &diags[0];
        assert_eq!(d.code.as_str(), code, "{src}: {diags:?}");
        assert!(d.message.contains(message), "{src}: {}", d.message);
        assert!(
            d.help.as_deref().unwrap_or("").contains(help),
            "{src}: {:?}",
            d.help
        );
        // The span points into the file.
        assert!(d.span.end() <= src.len(), "{src}");
    }
}

#[test]
fn the_scenarios_in_the_docs_read_cleanly() {
    let models: Vec<_> = guichet_definitions::models::ALL
        .iter()
        .map(|(_, s)| guichet_definitions::load(s).process.unwrap())
        .collect();
    let refs: Vec<_> = models.iter().collect();
    let doc = include_str!("../../docs/simulation.md");
    let mut blocks = 0;
    for block in doc.split("```kdl\n").skip(1) {
        let source = block.split("```").next().unwrap();
        let parsed = scenario::parse(source, &refs).unwrap_or_else(|e| panic!("{source}\n{e:?}"));
        assert!(
            parsed.warnings.is_empty(),
            "{source}\n{:?}",
            parsed.warnings
        );
        blocks += 1;
    }
    assert!(blocks >= 1);
}

#[test]
fn sponsors_who_never_answer_are_withdrawn_by_the_timeout() {
    // Model (a): the review asks for more information half of the time; the sponsor answers
    // with probability q, else the wait's 30-day timeout withdraws the request. Withdrawn
    // share: sum over k of (0.5 (1 - q)) (0.5 q)^k = 0.5 (1 - q) / (1 - 0.5 q).
    let source = guichet_definitions::models::source("interne-decentralise").unwrap();
    let p = guichet_definitions::load(source).process.unwrap();
    let refs = [&p];
    for (q, expected) in [(0.0, 0.5), (0.5, 1.0 / 3.0), (1.0, 0.0)] {
        let src = format!(
            "scenario \"s\" {{\n arrivals fixed value=1\n work fixed value=0.01\n outcomes \"recevabilite\" recevable=1 complement=1\n answer step=\"reponse-complement\" fixed value=2 answered={q:.1}\n}}"
        );
        let sc = scenario::parse(&src, &refs).unwrap().scenario;
        let n = 1500;
        let report = simulate(&p, &sc, n, 9);
        #[allow(clippy::cast_precision_loss)]
        let share = report.ended.get("withdrawn").copied().unwrap_or(0) as f64 / n as f64;
        assert!(
            (share - expected).abs() < 0.04,
            "answered {q}: withdrawn {share}, expected {expected}: {:?}",
            report.ended
        );
    }
    let bad = scenario::parse("scenario \"s\" { sponsor fixed value=1 answered=2 }", &refs);
    assert_eq!(bad.unwrap_err()[0].code.as_str(), "G0019");
}
