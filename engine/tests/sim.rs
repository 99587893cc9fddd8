//! The simulator against results known in closed form: deterministic durations, queueing
//! theory (M/M/1 and M/M/2), and the geometric number of revisions of a loop.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use guichet_definitions::model::Process;
use guichet_engine::sim::{Dist, Scenario, simulate};

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
