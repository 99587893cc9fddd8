//! Scenarios of the functional core on the three shipped desk models: every command goes
//! through `advance`, time through explicit timestamps (no clock, no sleep), and assertions
//! are on the returned state, effects and history.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use guichet_definitions::model::{EndResult, Process};
use guichet_engine::clock::Timestamp;
use guichet_engine::core::{
    Actor, Command, Effect, Error, EventKind, Fields, Instance, InstanceStatus, Recipient, Seq,
    TaskState, TimerKind, Transition, advance, start,
};
use serde_json::json;

const DAY: i64 = 86_400_000;

fn model(name: &str) -> Process {
    let src = guichet_definitions::models::source(name).unwrap();
    guichet_definitions::load(src).process.unwrap()
}

fn fields(v: serde_json::Value) -> Fields {
    serde_json::from_value(v).unwrap()
}

/// One request driven through the core, keeping everything it produced.
struct Desk {
    p: Process,
    inst: Instance,
    now: Timestamp,
    log: Vec<Transition>,
}

impl Desk {
    fn start(name: &str, data: serde_json::Value) -> Desk {
        Desk::of(model(name), data)
    }

    /// A request of the definition `source`.
    fn of_source(source: &str) -> Desk {
        let loaded = guichet_definitions::load(source);
        let p = loaded
            .process
            .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
        Desk::of(p, json!({}))
    }

    fn of(p: Process, data: serde_json::Value) -> Desk {
        let now = Timestamp(1_800_000_000_000);
        let (inst, t) = start(&p, &fields(data), now).unwrap();
        Desk {
            p,
            inst,
            now,
            log: vec![t],
        }
    }

    fn try_do(&mut self, c: Command) -> Result<(), Error> {
        let (inst, t) = advance(&self.p, self.inst.clone(), c, self.now)?;
        self.inst = inst;
        self.log.push(t);
        Ok(())
    }

    fn run(&mut self, c: Command) {
        let desc = format!("{c:?}");
        self.try_do(c).unwrap_or_else(|e| panic!("{desc}: {e}"));
    }

    /// The open task at a step.
    fn task(&self, step: &str) -> Seq {
        let i = self.p.step_idx(step).unwrap();
        self.inst
            .tasks
            .values()
            .find(|t| t.step == i)
            .unwrap_or_else(|| panic!("no open task at `{step}`; open: {:?}", self.open_steps()))
            .seq
    }

    fn open_steps(&self) -> Vec<String> {
        self.inst
            .tasks
            .values()
            .map(|t| self.p.steps[t.step].id.clone())
            .collect()
    }

    fn complete(&mut self, step: &str, outcome: Option<&str>, data: serde_json::Value) {
        self.complete_saying(step, outcome, data, None);
    }

    /// [`Desk::complete`] with a comment.
    fn complete_saying(
        &mut self,
        step: &str,
        outcome: Option<&str>,
        data: serde_json::Value,
        comment: Option<&str>,
    ) {
        let task = self.task(step);
        self.run(Command::Complete {
            task,
            user: "agent@hopital.example".into(),
            outcome: outcome.map(str::to_owned),
            fields: fields(data),
            comment: comment.map(str::to_owned),
        });
    }

    fn token_at(&self, step: &str) -> Seq {
        let i = self.p.step_idx(step).unwrap();
        *self
            .inst
            .tokens
            .iter()
            .find(|(_, t)| t.step == i)
            .unwrap()
            .0
    }

    fn callback(
        &mut self,
        step: &str,
        provider: &str,
        outcome: Option<&str>,
        data: serde_json::Value,
    ) {
        let token = self.token_at(step);
        self.run(Command::Callback {
            token,
            provider: provider.into(),
            outcome: outcome.map(str::to_owned),
            fields: fields(data),
        });
    }

    /// Moves time on and fires every timer due by then, in order.
    fn wait_days(&mut self, days: i64) {
        self.now = Timestamp(self.now.0 + days * DAY);
        loop {
            let due = self
                .inst
                .timers
                .values()
                .filter(|t| t.due_at <= self.now)
                .min_by_key(|t| (t.due_at, t.seq))
                .map(|t| t.seq);
            let Some(timer) = due else { break };
            if !self.inst.is_running() {
                break;
            }
            self.run(Command::FireTimer { timer });
        }
    }

    fn events(&self) -> Vec<&EventKind> {
        self.log
            .iter()
            .flat_map(|t| t.events.iter().map(|e| &e.kind))
            .collect()
    }

    fn emails(&self) -> Vec<(String, Recipient)> {
        self.log
            .iter()
            .flat_map(|t| t.effects.iter())
            .filter_map(|e| match e {
                Effect::Email { template, to, .. } => Some((template.clone(), to.clone())),
                _ => None,
            })
            .collect()
    }

    fn count(&self, step: &str) -> u32 {
        self.inst.data.get(step).map_or(0, |d| d.count)
    }

    fn assert_ended(&self, result: EndResult) {
        assert_eq!(self.inst.status, InstanceStatus::Ended(result));
        assert!(
            self.inst.tokens.is_empty(),
            "tokens left: {:?}",
            self.inst.tokens
        );
        assert!(
            self.inst.tasks.is_empty(),
            "tasks left: {:?}",
            self.open_steps()
        );
        assert!(
            self.inst.timers.is_empty(),
            "timers left: {:?}",
            self.inst.timers
        );
        assert!(self.inst.joins.is_empty());
        let ended = self
            .events()
            .iter()
            .filter(|e| matches!(e, EventKind::InstanceEnded { .. }))
            .count();
        assert_eq!(ended, 1, "the request ends exactly once");
    }
}

fn intake_a() -> serde_json::Value {
    json!({
        "titre": "Cohorte insuffisance cardiaque",
        "email": "porteur@labo.example",
        "organisme": "Labo",
        "type-porteur": "industriel",
        "cadre": "collaboratif",
        "resume": "Étude observationnelle",
        "donnees": "PMSI 2018-2023",
        "dans-catalogue": true
    })
}

#[test]
fn model_a_runs_to_a_signed_contract_through_a_revision_loop() {
    let mut d = Desk::start("interne-decentralise", intake_a());
    assert_eq!(d.open_steps(), ["recevabilite"]);
    // The sponsor got an acknowledgment, the desk an alert.
    let emails = d.emails();
    assert!(emails.contains(&("demande-recue".into(), Recipient::Role("demandeur".into()))));
    assert!(emails.contains(&(
        "nouvelle-demande".into(),
        Recipient::Role("unite-data".into())
    )));

    d.complete("recevabilite", Some("recevable"), json!({}));
    let mut open = d.open_steps();
    open.sort();
    assert_eq!(
        open,
        [
            "faisabilite-juridique",
            "faisabilite-scientifique",
            "faisabilite-technique"
        ]
    );
    assert_eq!(d.inst.tokens.len(), 3, "one token per branch");

    d.complete(
        "faisabilite-juridique",
        Some("favorable"),
        json!({"base-legale": "mr-004"}),
    );
    d.complete(
        "faisabilite-technique",
        Some("faisable"),
        json!({"travaux-supplementaires": false}),
    );
    // The join waits for the last branch.
    assert_eq!(d.open_steps(), ["faisabilite-scientifique"]);
    d.complete("faisabilite-scientifique", Some("favorable"), json!({}));
    assert_eq!(d.open_steps(), ["comite"]);
    assert_eq!(d.inst.tokens.len(), 1);

    d.complete("comite", Some("accepte"), json!({}));
    assert_eq!(d.open_steps(), ["negociation"]);
    d.complete(
        "negociation",
        Some("projet-pret"),
        json!({"montant": 12000, "hors-offre": false}),
    );
    d.complete("revue-juridique", Some("a-reviser"), json!({}));
    d.complete(
        "negociation",
        Some("projet-pret"),
        json!({"montant": 15000}),
    );
    d.complete("revue-juridique", Some("valide"), json!({}));
    assert_eq!(d.count("negociation"), 2);
    assert_eq!(d.count("revue-juridique"), 2);
    assert_eq!(d.inst.data["negociation"].fields["montant"], json!(15000.0));

    d.complete(
        "signature",
        Some("signe"),
        json!({"date-signature": "2027-03-01"}),
    );
    let mut open = d.open_steps();
    open.sort();
    assert_eq!(open, ["constitution-jeu", "information-patients"]);
    d.complete("constitution-jeu", None, json!({}));
    d.complete("controle-qualite", Some("non-conforme"), json!({}));
    d.complete("constitution-jeu", None, json!({}));
    d.complete("controle-qualite", Some("conforme"), json!({}));
    d.complete("information-patients", None, json!({}));
    d.complete("ouverture-acces", None, json!({}));
    d.complete("suivi", None, json!({"publications": 2, "litige": false}));
    d.assert_ended(EndResult::Accepted);
    let emails = d.emails();
    for template in ["contrat-a-signer", "demande-acceptee", "acces-ouvert"] {
        assert!(
            emails.contains(&(template.into(), Recipient::Role("demandeur".into()))),
            "{template}"
        );
    }
}

#[test]
fn model_a_committee_refusal_ends_rejected() {
    let mut d = Desk::start("interne-decentralise", intake_a());
    d.complete("recevabilite", Some("recevable"), json!({}));
    // An unfavourable opinion says why (`comment=#true`): refused without, nothing changes.
    let legal = d.task("faisabilite-juridique");
    let before = d.inst.clone();
    let refused = d.try_do(Command::Complete {
        task: legal,
        user: "agent@hopital.example".into(),
        outcome: Some("defavorable".into()),
        fields: fields(json!({"base-legale": "consentement"})),
        comment: Some(" ".into()),
    });
    assert!(
        matches!(&refused, Err(Error::Invalid(errors)) if errors.len() == 1 && errors[0].field == "comment"),
        "{refused:?}"
    );
    assert_eq!(d.inst, before);
    d.complete_saying(
        "faisabilite-juridique",
        Some("defavorable"),
        json!({"base-legale": "consentement"}),
        Some("Le consentement n'a pas été recueilli."),
    );
    assert_eq!(
        d.inst.data["faisabilite-juridique"].comment.as_deref(),
        Some("Le consentement n'a pas été recueilli.")
    );
    assert!(d.events().iter().any(|e| matches!(
        e,
        EventKind::TaskCompleted { comment: Some(c), .. } if c.starts_with("Le consentement")
    )));
    d.complete("faisabilite-technique", Some("faisable"), json!({}));
    d.complete("faisabilite-scientifique", Some("favorable"), json!({}));
    d.complete("comite", Some("accepte"), json!({}));
    // The committee accepted, but the legal opinion is unfavourable: the gate refuses.
    d.assert_ended(EndResult::Rejected);
    assert!(
        d.events()
            .iter()
            .any(|e| matches!(e, EventKind::GateTaken { branch, .. } if branch == "otherwise"))
    );
    assert!(d.emails().contains(&(
        "demande-refusee".into(),
        Recipient::Role("demandeur".into())
    )));
}

fn complement(text: &str, key: Option<&str>) -> Command {
    Command::Event {
        name: "complement-recu".into(),
        fields: fields(json!({ "reponse": text })),
        actor: Actor::Requester,
        key: key.map(Into::into),
    }
}

#[test]
fn an_answer_nobody_asked_for_is_refused_and_never_answers_a_later_wait() {
    let mut d = Desk::start("interne-decentralise", intake_a());
    // The sponsor sends more information before anyone asked: the shipped wait keeps no
    // early event, so it is refused, naming the wait, and nothing changes.
    let before = d.inst.clone();
    let err = d
        .try_do(complement("Voici le protocole", None))
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotAwaited { event, waits } if event == "complement-recu" && waits == &["reponse-complement"]),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("`reponse-complement` is not open"),
        "{err}"
    );
    assert_eq!(d.inst, before);
    // Asked, answered: back to the review.
    d.complete("recevabilite", Some("complement"), json!({}));
    d.run(complement("Voici le protocole", None));
    assert_eq!(d.open_steps(), ["recevabilite"]);
    // The same answer again (a double click, a resent email): refused, not kept...
    assert!(matches!(
        d.try_do(complement("Voici le protocole", None)),
        Err(Error::NotAwaited { .. })
    ));
    assert!(d.inst.buffered.is_empty());
    // ... so the next request for information waits for the sponsor.
    d.complete("recevabilite", Some("complement"), json!({}));
    assert!(d.open_steps().is_empty());
    assert!(
        d.inst
            .tokens
            .values()
            .any(|t| d.p.steps[t.step].id == "reponse-complement")
    );
}

#[test]
fn an_event_sent_again_with_its_key_changes_nothing() {
    let mut d = Desk::start("interne-decentralise", intake_a());
    d.complete("recevabilite", Some("complement"), json!({}));
    d.run(complement("Voici le protocole", Some("k-1")));
    assert_eq!(d.open_steps(), ["recevabilite"]);
    let before = d.inst.clone();
    d.run(complement("Voici le protocole", Some("k-1")));
    assert_eq!(d.inst, before, "the same event: nothing changes");
    assert_eq!(d.log.last().unwrap(), &Transition::default());
    // Another key is another event: refused, as nothing waits.
    assert!(matches!(
        d.try_do(complement("Autre chose", Some("k-2"))),
        Err(Error::NotAwaited { .. })
    ));
}

const KEEPS_EARLY: &str = r#"process "garde" {
    role "r" { member "r@example.org" }
    start "s"
    task "preparation" role="r" due="P5D"
    wait "signature" event="signe" keep-early="P2D" timeout="P10D" on-timeout="relance"
    end "fin" result="accepted"
    task "relance" role="r" due="P5D"
    end "abandon" result="withdrawn"
}"#;

fn signed() -> Command {
    Command::Event {
        name: "signe".into(),
        fields: Fields::new(),
        actor: Actor::Requester,
        key: None,
    }
}

/// A step id with a hyphen before a digit is read in a condition with underscores, and the
/// gate takes its branch at run time.
#[test]
fn a_condition_reads_a_step_whose_id_ends_with_a_number() {
    let src = r#"process "relectures" {
    role "r" { member "r@example.org" }
    start "s"
    task "relecture-1" role="r" due="P5D" {
        outcome "ok" "ko"
    }
    gate "g" {
        when "relecture_1.outcome == 'ko' && relecture_1.count == 1" goto="refus"
        otherwise goto="fin"
    }
    end "fin" result="accepted"
    end "refus" result="rejected"
}"#;
    let mut d = Desk::of_source(src);
    d.complete("relecture-1", Some("ko"), json!({}));
    d.assert_ended(EndResult::Rejected);
}

const SIGNATURE_TIMES_OUT: &str = r#"process "signature" {
    role "juriste" { member "juriste@hopital.example" }
    role "direction" { member "direction@hopital.example" }
    start "demande"
    task "signature" role="juriste" due="P20D" timeout="P60D" on-timeout="relance" {
        outcome "signe"
    }
    end "fin" result="accepted"
    task "relance" role="direction" due="P5D" {
        outcome "abandon" goto="abandon"
        outcome "relancer" goto="signature"
    }
    end "abandon" result="withdrawn"
}"#;

/// A task that stays open past its timeout is withdrawn (no longer open, its own timers
/// gone) and the request goes on at `on-timeout`; one completed in time cancels the timeout.
#[test]
fn a_task_that_times_out_is_withdrawn_and_the_request_goes_on() {
    let docs = include_str!("../../docs/definition-language.md");
    assert!(
        docs.contains(SIGNATURE_TIMES_OUT),
        "the docs' example of a task timeout changed"
    );
    let mut d = Desk::of_source(SIGNATURE_TIMES_OUT);
    let signature = d.task("signature");
    d.wait_days(59);
    assert_eq!(d.open_steps(), ["signature"]);
    d.wait_days(1);
    assert_eq!(d.open_steps(), ["relance"]);
    assert!(
        d.events()
            .iter()
            .any(|e| matches!(e, EventKind::TimedOut { step } if step == "signature"))
    );
    assert!(
        d.events()
            .iter()
            .any(|e| matches!(e, EventKind::TaskCancelled { task } if *task == signature))
    );
    // Nothing of the withdrawn task is left: no timer, and it cannot be completed.
    assert!(d.inst.timers.values().all(|t| !matches!(t.kind,
        TimerKind::Deadline { task } | TimerKind::Reminder { task } | TimerKind::Escalation { task } if task == signature)));
    let late = d.try_do(Command::Complete {
        task: signature,
        user: "juriste@hopital.example".into(),
        outcome: Some("signe".into()),
        fields: Fields::new(),
        comment: None,
    });
    assert!(matches!(late, Err(Error::UnknownTask(_))), "{late:?}");
    // Sent back to the signature, and signed in time this time: no timeout left behind.
    d.complete("relance", Some("relancer"), json!({}));
    d.wait_days(10);
    d.complete("signature", Some("signe"), json!({}));
    d.assert_ended(EndResult::Accepted);
    assert!(d.inst.timers.is_empty());
}

const ENDS_EARLY: &str = r#"process "avis" {
    role "juriste" { member "juriste@hopital.example" }
    role "comite" { member "comite@hopital.example" }
    start "demande"
    parallel "faisabilite" complete-when="juridique.outcome == 'defavorable'" {
        task "juridique" role="juriste" due="P10D" {
            outcome "favorable" "defavorable"
        }
        task "scientifique" role="comite" due="P20D" {
            outcome "favorable" "defavorable"
        }
    }
    gate "decision" {
        when "juridique.outcome == 'defavorable'" goto="refus"
        otherwise goto="fin"
    }
    end "fin" result="accepted"
    end "refus" result="rejected"
}"#;

/// The example of `complete-when` in docs/definition-language.md, run: an unfavourable legal
/// opinion withdraws the scientific review and ends the block; a favourable one does not.
#[test]
fn a_parallel_block_ends_early_when_its_condition_holds() {
    let docs = include_str!("../../docs/definition-language.md");
    assert!(
        docs.contains(ENDS_EARLY),
        "the docs' example of complete-when changed"
    );
    let mut d = Desk::of_source(ENDS_EARLY);
    assert_eq!(d.open_steps(), ["juridique", "scientifique"]);
    let science = d.task("scientifique");
    d.complete("juridique", Some("defavorable"), json!({}));
    d.assert_ended(EndResult::Rejected);
    assert!(
        d.events()
            .iter()
            .any(|e| matches!(e, EventKind::StepWithdrawn { step } if step == "scientifique"))
    );
    assert!(
        d.events()
            .iter()
            .any(|e| matches!(e, EventKind::TaskCancelled { task } if *task == science))
    );
    assert!(d.inst.timers.is_empty() && d.inst.joins.is_empty());

    let mut d = Desk::of_source(ENDS_EARLY);
    d.complete("juridique", Some("favorable"), json!({}));
    assert_eq!(d.open_steps(), ["scientifique"]);
    d.complete("scientifique", Some("defavorable"), json!({}));
    d.assert_ended(EndResult::Accepted);
}

const WORKING_DAYS: &str = r#"process "ouvres" {
    role "juriste" { member "juriste@hopital.example" }
    start "demande"
    task "avis" role="juriste" due="20 jours ouvrés" remind="3 jours ouvrés" {
        outcome "favorable" "defavorable"
    }
    end "fin" result="accepted"
}"#;

/// The example of working days in docs/definition-language.md: the deadline and the reminder
/// fall on the days the docs say.
#[test]
fn deadlines_in_working_days_skip_weekends_and_holidays() {
    let docs = include_str!("../../docs/definition-language.md");
    assert!(
        docs.contains(WORKING_DAYS),
        "the docs' example of working days changed"
    );
    let p = guichet_definitions::load(WORKING_DAYS).process.unwrap();
    // Friday 3 April 2026, 15:00 in Paris (13:00 UTC).
    let now = Timestamp(1_775_221_200_000);
    let (inst, _) = start(&p, &Fields::new(), now).unwrap();
    let task = inst.tasks.values().next().unwrap();
    // Tuesday 5 May 2026, 15:00 in Paris (13:00 UTC): Easter Monday and 1 May are off.
    assert_eq!(task.due_at, Some(Timestamp(1_777_986_000_000)));
    // The reminder, three working days before: Wednesday 29 April, 15:00.
    let reminder = inst
        .timers
        .values()
        .find(|t| matches!(t.kind, TimerKind::Reminder { .. }))
        .unwrap();
    assert_eq!(reminder.due_at, Timestamp(1_777_467_600_000));
}

/// The example of `keep-early` in docs/definition-language.md, run.
#[test]
fn keep_early_keeps_an_event_for_its_wait_so_long_and_no_longer() {
    let docs = include_str!("../../docs/definition-language.md");
    assert!(
        docs.contains(KEEPS_EARLY),
        "the docs' example of keep-early changed"
    );
    // Signed during the preparation: kept, and taken when the wait opens a day later.
    let mut d = Desk::of_source(KEEPS_EARLY);
    d.run(signed());
    assert_eq!(d.inst.buffered.len(), 1);
    d.wait_days(1);
    d.complete("preparation", None, json!({}));
    d.assert_ended(EndResult::Accepted);
    // Signed three days before the wait opens: too old for it, dropped; the wait waits.
    let mut d = Desk::of_source(KEEPS_EARLY);
    d.run(signed());
    d.wait_days(3);
    d.complete("preparation", None, json!({}));
    assert!(d.inst.is_running());
    assert!(d.inst.buffered.is_empty());
    // Timed out: the request went on to another step; a late signature is refused.
    d.wait_days(10);
    assert_eq!(d.open_steps(), ["relance"]);
    let err = d.try_do(signed()).unwrap_err();
    assert!(matches!(err, Error::NotAwaited { .. }), "{err:?}");
}

#[test]
fn an_unanswered_request_for_information_times_out_to_withdrawal() {
    let mut d = Desk::start("interne-decentralise", intake_a());
    d.complete("recevabilite", Some("complement"), json!({}));
    assert!(d.open_steps().is_empty());
    d.wait_days(29);
    assert!(d.inst.is_running());
    d.wait_days(1);
    d.assert_ended(EndResult::Withdrawn);
    assert!(
        d.events()
            .iter()
            .any(|e| matches!(e, EventKind::TimedOut { step } if step == "reponse-complement"))
    );
}

#[test]
fn deadlines_reminders_and_escalation_fire_in_order() {
    let mut d = Desk::start("interne-decentralise", intake_a());
    let task = d.task("recevabilite");
    d.run(Command::Claim {
        task,
        user: "agent@hopital.example".into(),
    });
    // due P5D, remind P2D before: reminder at day 3, deadline at day 5, escalation at day 10.
    d.wait_days(3);
    assert!(d.emails().contains(&(
        "tache-rappel".into(),
        Recipient::Person("agent@hopital.example".into())
    )));
    assert!(!d.inst.tasks[&task].overdue);
    d.wait_days(2);
    assert!(d.inst.tasks[&task].overdue);
    assert!(d.emails().contains(&(
        "tache-echeance-depassee".into(),
        Recipient::Person("agent@hopital.example".into())
    )));
    d.wait_days(5);
    let t = &d.inst.tasks[&task];
    assert_eq!(t.role, "direction");
    assert_eq!(t.assignee, None);
    assert_eq!(t.state, TaskState::Open);
    assert!(
        d.emails()
            .contains(&("tache-escalade".into(), Recipient::Role("direction".into())))
    );
    // The direction completes it; its timers are gone.
    d.complete("recevabilite", Some("non-recevable"), json!({}));
    d.assert_ended(EndResult::Rejected);
}

/// Timers fired late (the node was down past the deadline): the deadline's email goes out,
/// not a reminder of a deadline already passed.
#[test]
fn a_reminder_fired_after_its_deadline_is_not_sent() {
    let mut d = Desk::start("interne-decentralise", intake_a());
    let task = d.task("recevabilite");
    d.wait_days(6);
    assert!(d.inst.tasks[&task].overdue);
    let emails = d.emails();
    assert!(
        emails.iter().any(|(t, _)| t == "tache-echeance-depassee"),
        "{emails:?}"
    );
    assert!(
        !emails.iter().any(|(t, _)| t == "tache-rappel"),
        "{emails:?}"
    );
    assert!(
        !d.events()
            .iter()
            .any(|e| matches!(e, EventKind::ReminderSent { .. }))
    );
}

#[test]
fn model_b_provider_calls_and_a_timeout_path() {
    let mut d = Desk::start(
        "interne-solutions-externes",
        json!({"titre": "T", "email": "p@x.example", "organisme": "O", "type-porteur": "academique",
               "cadre": "collaboratif", "resume": "R", "donnees": "D"}),
    );
    d.complete("recevabilite", Some("recevable"), json!({}));
    // The patient-information provider was called; two tasks run beside it.
    assert!(d.log.last().unwrap().effects.iter().any(|e| matches!(e,
        Effect::CallProvider { provider, step, .. } if provider == "site-information-patients" && step == "information-patients")));
    d.complete("faisabilite-juridique", Some("favorable"), json!({}));
    d.complete("faisabilite-scientifique", Some("favorable"), json!({}));
    // The provider never answers: after 20 days the team publishes by hand.
    d.wait_days(20);
    assert!(d.open_steps().contains(&"publication-manuelle".to_owned()));
    d.complete("publication-manuelle", None, json!({}));
    d.complete("comite", Some("accepte"), json!({}));
    d.complete("negociation", Some("accord"), json!({"montant": 5000}));
    d.complete("signature", Some("signe"), json!({}));
    // A callback with a field of the wrong type is refused, naming the field.
    let token = d.token_at("structuration");
    let err = d
        .try_do(Command::Callback {
            token,
            provider: "structuration-donnees".into(),
            outcome: Some("livre".into()),
            fields: fields(json!({"volume": "beaucoup"})),
        })
        .unwrap_err();
    assert!(err.to_string().contains("field `volume`"), "{err}");
    // From the wrong provider.
    let err = d
        .try_do(Command::Callback {
            token,
            provider: "controle-qualite".into(),
            outcome: Some("livre".into()),
            fields: Fields::new(),
        })
        .unwrap_err();
    assert!(matches!(err, Error::WrongProvider { .. }));
    d.callback(
        "structuration",
        "structuration-donnees",
        Some("livre"),
        json!({"volume": 1200, "travaux-supplementaires": true}),
    );
    d.callback(
        "qualite",
        "controle-qualite",
        Some("non-conforme"),
        json!({"score": 40}),
    );
    d.callback(
        "structuration",
        "structuration-donnees",
        Some("livre"),
        json!({"volume": 1200}),
    );
    d.callback(
        "qualite",
        "controle-qualite",
        Some("conforme"),
        json!({"score": 91}),
    );
    // A late callback for a step already answered is refused.
    assert!(matches!(
        d.try_do(Command::Callback {
            token,
            provider: "structuration-donnees".into(),
            outcome: Some("livre".into()),
            fields: Fields::new()
        }),
        Err(Error::UnknownToken(_))
    ));
    d.complete("ouverture-acces", None, json!({}));
    d.complete("suivi", None, json!({}));
    d.assert_ended(EndResult::Accepted);
}

#[test]
fn model_c_third_party_timeout_loops_back_to_the_call() {
    let mut d = Desk::start(
        "externe",
        json!({"titre": "T", "email": "p@x.example", "organisme": "O", "cadre": "mise-a-disposition",
               "resume": "R", "donnees": "D"}),
    );
    d.complete("recevabilite", Some("recevable"), json!({}));
    d.complete("faisabilite-scientifique", Some("favorable"), json!({}));
    d.wait_days(20);
    // The third party did not answer: the referent relaunches it, and the call is sent again.
    d.complete("relance-tiers", Some("relance"), json!({}));
    let calls = d
        .log
        .iter()
        .flat_map(|t| &t.effects)
        .filter(|e| matches!(e, Effect::CallProvider { step, .. } if step == "conformite"))
        .count();
    assert_eq!(calls, 2);
    d.callback(
        "conformite",
        "tiers-de-confiance",
        Some("conforme"),
        json!({"anonymise": true}),
    );
    assert_eq!(d.open_steps(), ["comite"]);
    d.complete("comite", Some("accepte"), json!({}));
    d.complete("contrat", Some("pret"), json!({"frais": 800}));
    d.complete("signature", Some("a-reviser"), json!({}));
    d.complete("contrat", Some("pret"), json!({"frais": 700}));
    d.complete("signature", Some("signe"), json!({}));
    d.callback(
        "transfert",
        "tiers-de-confiance",
        Some("transfere"),
        json!({}),
    );
    d.complete("suivi", None, json!({"publications": 1}));
    d.assert_ended(EndResult::Accepted);
    assert_eq!(d.count("signature"), 2);
}

#[test]
fn bad_commands_are_refused_and_change_nothing() {
    let mut d = Desk::start("interne-decentralise", intake_a());
    let before = d.inst.clone();
    let task = d.task("recevabilite");
    let user = || "a@hopital.example".to_owned();
    type Expect = fn(&Error) -> bool;
    let cases: Vec<(Command, Expect)> = vec![
        (
            Command::Complete {
                task,
                user: user(),
                outcome: None,
                fields: Fields::new(),
                comment: None,
            },
            |e| matches!(e, Error::OutcomeRequired(_)),
        ),
        (
            Command::Complete {
                task,
                user: user(),
                outcome: Some("peut-etre".into()),
                fields: Fields::new(),
                comment: None,
            },
            |e| matches!(e, Error::UnknownOutcome { .. }),
        ),
        (
            Command::Complete {
                task,
                user: user(),
                outcome: Some("recevable".into()),
                fields: fields(json!({"x": 1})),
                comment: None,
            },
            |e| matches!(e, Error::Invalid(v) if v[0].field == "x"),
        ),
        (
            Command::Complete {
                task: 999,
                user: user(),
                outcome: None,
                fields: Fields::new(),
                comment: None,
            },
            |e| matches!(e, Error::UnknownTask(999)),
        ),
        (Command::Release { task, user: user() }, |e| {
            matches!(e, Error::InvalidTaskTransition { .. })
        }),
        (Command::FireTimer { timer: 999 }, |e| {
            matches!(e, Error::UnknownTimer(_))
        }),
        (
            Command::Event {
                name: "inconnu".into(),
                fields: Fields::new(),
                actor: Actor::Requester,
                key: None,
            },
            |e| matches!(e, Error::UnknownEvent(_)),
        ),
        (
            Command::Event {
                name: "complement-recu".into(),
                fields: Fields::new(),
                actor: Actor::Requester,
                key: None,
            },
            |e| matches!(e, Error::NotAwaited { .. }),
        ),
        (
            Command::Delegate {
                task,
                by: user(),
                to: Recipient::Role("personne".into()),
            },
            |e| matches!(e, Error::UnknownRole(_)),
        ),
    ];
    for (c, expected) in cases {
        let desc = format!("{c:?}");
        let err = d.try_do(c).unwrap_err();
        assert!(expected(&err), "{desc}: {err:?}");
        assert_eq!(d.inst, before, "{desc} changed the state");
    }
    // A timer that is not due yet.
    let timer = *d.inst.timers.keys().next().unwrap();
    assert!(matches!(
        d.try_do(Command::FireTimer { timer }),
        Err(Error::TimerNotDue { .. })
    ));
    // The intake form is validated too: a wrong choice names the field.
    let p = model("interne-decentralise");
    let mut bad = intake_a();
    bad["cadre"] = json!("inconnu");
    bad["email"] = json!("pas-une-adresse");
    let Err(Error::Invalid(errors)) = start(&p, &fields(bad), Timestamp(0)) else {
        panic!()
    };
    let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(names, ["email", "cadre"]);
    // Fields without a declared maximum have one (text 1,000, long text 10,000 characters),
    // and NUL is refused in any text.
    let mut long = intake_a();
    long["organisme"] = json!("x".repeat(1_001));
    long["donnees"] = json!("y".repeat(2_000_000));
    let Err(Error::Invalid(errors)) = start(&p, &fields(long), Timestamp(0)) else {
        panic!()
    };
    let problems: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.field.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            ("organisme", "at most 1000 characters"),
            ("donnees", "at most 10000 characters")
        ]
    );
    let mut nul = intake_a();
    nul["organisme"] = json!("Labo\u{0}ratoire");
    let Err(Error::Invalid(errors)) = start(&p, &fields(nul), Timestamp(0)) else {
        panic!()
    };
    assert_eq!(
        errors[0].message,
        "contains a control character (U+0000): remove it"
    );
}

#[test]
fn claims_conflict_and_delegation_moves_the_task() {
    let mut d = Desk::start("interne-decentralise", intake_a());
    let task = d.task("recevabilite");
    d.run(Command::Claim {
        task,
        user: "alice@hopital.example".into(),
    });
    // Claiming again is harmless; someone else gets a conflict naming who holds it.
    d.run(Command::Claim {
        task,
        user: "alice@hopital.example".into(),
    });
    let err = d
        .try_do(Command::Claim {
            task,
            user: "bob@hopital.example".into(),
        })
        .unwrap_err();
    assert_eq!(
        err,
        Error::ClaimedBy {
            task,
            by: "alice@hopital.example".into()
        }
    );
    let err = d
        .try_do(Command::Complete {
            task,
            user: "bob@hopital.example".into(),
            outcome: Some("recevable".into()),
            fields: Fields::new(),
            comment: None,
        })
        .unwrap_err();
    assert!(matches!(err, Error::ClaimedBy { .. }));
    d.run(Command::Delegate {
        task,
        by: "alice@hopital.example".into(),
        to: Recipient::Person("bob@hopital.example".into()),
    });
    assert_eq!(
        d.inst.tasks[&task].assignee.as_deref(),
        Some("bob@hopital.example")
    );
    assert!(d.emails().contains(&(
        "tache-reassignee".into(),
        Recipient::Person("bob@hopital.example".into())
    )));
    d.run(Command::Release {
        task,
        user: "bob@hopital.example".into(),
    });
    assert_eq!(d.inst.tasks[&task].state, TaskState::Open);
    d.run(Command::Delegate {
        task,
        by: "bob@hopital.example".into(),
        to: Recipient::Role("juriste".into()),
    });
    assert_eq!(d.inst.tasks[&task].role, "juriste");
}

#[test]
fn withdrawal_cancels_tasks_and_timers_and_then_nothing_moves() {
    let mut d = Desk::start("interne-decentralise", intake_a());
    d.complete("recevabilite", Some("recevable"), json!({}));
    assert_eq!(d.inst.tasks.len(), 3);
    let timers = d.inst.timers.len();
    assert!(timers > 0);
    d.run(Command::Cancel {
        reason: "retrait du porteur".into(),
        actor: Actor::Requester,
    });
    assert_eq!(d.inst.status, InstanceStatus::Cancelled);
    assert!(d.inst.tasks.is_empty() && d.inst.timers.is_empty() && d.inst.tokens.is_empty());
    let last = d.log.last().unwrap();
    assert_eq!(
        last.effects
            .iter()
            .filter(|e| matches!(
                e,
                Effect::TaskClosed {
                    completed: false,
                    ..
                }
            ))
            .count(),
        3
    );
    assert_eq!(
        last.effects
            .iter()
            .filter(|e| matches!(e, Effect::TimerCancelled { .. }))
            .count(),
        timers
    );
    assert!(matches!(
        d.try_do(Command::FireTimer { timer: 1 }),
        Err(Error::NotRunning(_))
    ));
}

#[test]
fn the_core_is_deterministic() {
    let run = || {
        let mut d = Desk::start("interne-decentralise", intake_a());
        d.complete("recevabilite", Some("recevable"), json!({}));
        d.wait_days(16);
        (d.inst, d.log)
    };
    assert_eq!(run(), run());
}
