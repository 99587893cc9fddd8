//! End-to-end tests of the real `guichet` binary, run in a temporary directory: what a desk
//! designer does from the README.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn guichet(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn models() -> Vec<PathBuf> {
    [
        "interne-decentralise",
        "interne-solutions-externes",
        "externe",
    ]
    .iter()
    .map(|m| repo().join(format!("definitions/models/{m}.kdl")))
    .collect()
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("guichet-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn shipped_models_check_clean() {
    let mut args = vec!["check"];
    let paths: Vec<String> = models().iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let out = guichet(&args, &repo());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches(": ok, process")
            .count(),
        3
    );
}

#[test]
fn a_broken_copy_gets_located_diagnostics_and_exit_1() {
    let dir = tempdir("broken");
    let source = std::fs::read_to_string(&models()[0]).unwrap();
    let broken = source
        .replace(
            "role=\"juriste\" due=\"P15D\"",
            "role=\"juristes\" due=\"P15D\"",
        )
        .replace("otherwise goto=\"refus\"\n", "");
    assert_ne!(broken, source);
    std::fs::write(dir.join("desk.kdl"), &broken).unwrap();
    let out = guichet(&["check", "desk.kdl"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("G0020"), "{err}");
    assert!(err.contains("did you mean `juriste`?"), "{err}");
    assert!(err.contains("G0029"), "{err}");
    // file:line:col of the unknown role.
    let line = broken
        .lines()
        .position(|l| l.contains("\"juristes\""))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("desk.kdl:{line}:")), "{err}");
    assert!(err.contains("2 error(s)"), "{err}");

    let out = guichet(&["check", "--format", "json", "desk.kdl"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let diags = json[0]["diagnostics"].as_array().unwrap();
    assert_eq!(diags.len(), 2);
    assert_eq!(diags[0]["code"], "G0020");
    assert_eq!(diags[0]["line"], line);
    assert_eq!(json[0]["ok"], false);
}

#[test]
fn exit_2_when_it_cannot_run() {
    let dir = tempdir("missing");
    let out = guichet(&["check", "nowhere.kdl"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read nowhere.kdl"));
}

#[test]
fn warnings_exit_0_unless_denied() {
    let dir = tempdir("warn");
    std::fs::write(
        dir.join("w.kdl"),
        "process \"w\" {\n role \"r\" { member \"r@example.org\" }\n start \"s\"\n task \"t\" role=\"r\"\n end \"f\" result=\"accepted\"\n}\n",
    )
    .unwrap();
    assert_eq!(guichet(&["check", "w.kdl"], &dir).status.code(), Some(0));
    let out = guichet(&["check", "--deny-warnings", "w.kdl"], &dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("G0100"));
}

#[test]
fn every_model_draws_in_every_format() {
    let dir = tempdir("graph");
    for model in models() {
        let source = std::fs::read_to_string(&model).unwrap();
        let process = guichet_definitions::load(&source).process.unwrap();
        let m = model.display().to_string();
        let out = guichet(&["graph", &m, "--format", "svg", "-o", "g.svg"], &dir);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let svg = std::fs::read_to_string(dir.join("g.svg")).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        // Every step and every role is drawn.
        for step in &process.steps {
            if !matches!(step.kind, guichet_definitions::model::StepKind::Parallel(_)) {
                assert!(
                    svg.contains(&format!("<title>{}</title>", step.id)),
                    "{} missing in {m}",
                    step.id
                );
            }
        }
        for role in &process.roles {
            assert!(svg.contains(role.title.as_deref().unwrap_or(&role.id)));
        }
        let dot = guichet(&["graph", &m, "--format", "dot"], &dir);
        let dot = String::from_utf8(dot.stdout).unwrap();
        assert!(dot.starts_with("digraph"));
        let edges: usize = process.flow.edges.iter().map(Vec::len).sum();
        assert_eq!(dot.matches(" -> ").count(), edges);
        let mermaid = guichet(&["graph", &m, "--format", "mermaid"], &dir);
        let mermaid = String::from_utf8(mermaid.stdout).unwrap();
        assert!(mermaid.starts_with("flowchart TD"));
    }
}

#[test]
fn graph_refuses_a_broken_definition() {
    let dir = tempdir("graph-broken");
    std::fs::write(dir.join("b.kdl"), "process \"b\" {\n start \"s\"\n}\n").unwrap();
    let out = guichet(&["graph", "b.kdl"], &dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("G0046"));
}

#[test]
fn serve_loads_the_three_models() {
    let dir = tempdir("serve");
    let out = guichet(
        &[
            "--database",
            &format!("sqlite://{}", dir.join("g.db").display()),
            "serve",
            "--once",
        ],
        &repo(),
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for name in [
        "interne-decentralise",
        "interne-solutions-externes",
        "externe",
    ] {
        assert!(stdout.contains(name), "{stdout}");
    }
}

/// The engine from the command line, on a SQLite file: what scripts and tests drive.
fn db_cmd(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(args)
        .current_dir(dir)
        .env(
            "GUICHET_DATABASE",
            format!("sqlite://{}", dir.join("desk.db").display()),
        )
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Starts a request of model (c) from the command line; returns its id.
fn start_externe(dir: &Path) -> String {
    let fields = [
        "titre=Étude",
        "email=p@x.example",
        "organisme=O",
        "cadre=autre",
        "resume=R",
        "donnees=D",
    ];
    let mut args = vec!["instance", "start", "externe"];
    for f in &fields {
        args.extend(["--field", f]);
    }
    ok(&db_cmd(dir, &args)).trim().to_owned()
}

fn open_tasks(dir: &Path, id: &str) -> Vec<serde_json::Value> {
    let out = ok(&db_cmd(dir, &["task", "list", "--instance", id, "--json"]));
    serde_json::from_str::<Vec<serde_json::Value>>(&out).unwrap()
}

fn task_at(dir: &Path, id: &str, step: &str) -> String {
    open_tasks(dir, id)
        .iter()
        .find(|t| t["step"] == step)
        .unwrap()["seq"]
        .to_string()
}

#[test]
fn a_request_runs_from_the_command_line_and_its_history_is_audited() {
    let dir = tempdir("engine-cli");
    let out = ok(&db_cmd(&dir, &["serve", "--once"]));
    assert_eq!(out.matches("revision 1").count(), 3);
    let id = start_externe(&dir);
    let reference = id[id.len() - 8..].to_uppercase();
    // Someone outside the task's role is refused, told who may act: nothing recorded.
    let out = db_cmd(
        &dir,
        &[
            "task",
            "complete",
            &reference,
            "recevabilite",
            "--user",
            "ref@institut.example",
            "--outcome",
            "non-recevable",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not hold the role `referent`")
            && err.contains("referent-donnees@institut.example")
            && err.contains("--as-admin"),
        "{err}"
    );
    assert_eq!(open_tasks(&dir, &id).len(), 1);
    // A task named by its step, a request by its reference; the reply says what is open.
    let out = ok(&db_cmd(
        &dir,
        &[
            "task",
            "claim",
            &reference,
            "recevabilite",
            "--user",
            "referent-donnees@institut.example",
        ],
    ));
    assert!(
        out.starts_with(&format!(
            "ok: request {reference} (externe) is running; open next: recevabilite (task "
        )) && out.contains("referent, due "),
        "{out}"
    );
    let complete = |step: &str, outcome: &str| {
        let task = task_at(&dir, &id, step);
        ok(&db_cmd(
            &dir,
            &[
                "task",
                "complete",
                &id,
                &task,
                "--user",
                "referent-donnees@institut.example",
                "--outcome",
                outcome,
            ],
        ))
    };
    let out = complete("recevabilite", "non-recevable");
    assert_eq!(
        out.trim(),
        format!("ok: request {reference} (externe) is ended (rejected)")
    );
    assert!(open_tasks(&dir, &id).is_empty());
    let show = ok(&db_cmd(&dir, &["instance", "show", &reference]));
    assert!(
        show.contains(&format!(
            "request {id} (reference {reference}) on desk externe: ended (rejected)"
        )),
        "{show}"
    );
    assert!(show.contains("  Organisme porteur: O\n"), "{show}");
    assert!(
        show.contains("referent-donnees@institut.example: completed recevabilite non-recevable"),
        "{show}"
    );
    // A refused command explains itself and exits 1.
    let out = db_cmd(
        &dir,
        &["task", "complete", &id, "1", "--user", "x@y.example"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no longer running"));
    // Unknown names and filters are errors with a hint, not empty answers.
    for (args, hint) in [
        (
            &["kpi", "--model", "nope"][..],
            "no desk model `nope`: one of externe",
        ),
        (
            &["mail", "list", "--state", "bogus"][..],
            "unknown state `bogus`: one of pending",
        ),
        (
            &["instance", "show", "ZZZZZZZZ"][..],
            "no request `ZZZZZZZZ`",
        ),
    ] {
        let out = db_cmd(&dir, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(hint),
            "{args:?}: {out:?}"
        );
    }
    // The audit passes, then names the altered entry.
    assert!(ok(&db_cmd(&dir, &["audit", "verify"])).contains("history intact: 1 request(s)"));
    let db = dir.join("desk.db");
    let status = Command::new("python3")
        .args(["-c", &format!(
            "import sqlite3; c = sqlite3.connect('{}'); c.execute(\"UPDATE history SET body = replace(body, 'non-recevable', 'recevable') WHERE seq = (SELECT min(seq) FROM history WHERE event = 'task-completed')\"); c.commit()",
            db.display()
        )])
        .status()
        .unwrap();
    assert!(status.success());
    let out = db_cmd(&dir, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("BROKEN at request {id}")) && text.contains("altered"),
        "{text}"
    );
}

#[test]
fn a_bad_database_url_exits_2() {
    let dir = tempdir("bad-db");
    let out = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["--database", "mysql://nowhere", "task", "list"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
    // A file that is not a database is named as such at once (not after the pool's retries).
    std::fs::write(dir.join("notes.txt"), "not a database").unwrap();
    let out = guichet(&["--database", "sqlite://notes.txt", "task", "list"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notes.txt is not a SQLite database"),
        "{stderr}"
    );
    assert!(!stderr.contains("timed out"), "{stderr}");
    // Verifying a mistyped path creates nothing and says so.
    let out = guichet(&["--database", "sqlite://tpyo.db", "audit", "verify"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no database at tpyo.db"));
    assert!(!dir.join("tpyo.db").exists());
}

#[test]
fn emails_are_captured_without_smtp_and_listed() {
    let dir = tempdir("mail-cli");
    ok(&db_cmd(&dir, &["serve", "--once"]));
    let id = start_externe(&dir);
    let out = ok(&db_cmd(&dir, &["mail", "dispatch"]));
    assert!(
        out.starts_with("2 sent, 0 to retry, 0 dead (no SMTP server"),
        "{out}"
    );
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&db_cmd(&dir, &["mail", "list", "--json"]))).unwrap();
    assert_eq!(list.len(), 2);
    let ack = list
        .iter()
        .find(|m| m["recipients"] == "p@x.example")
        .unwrap();
    let show = ok(&db_cmd(
        &dir,
        &["mail", "show", ack["id"].as_str().unwrap()],
    ));
    assert!(
        show.contains("Subject: [Guichet externe] Votre demande « Étude » est bien reçue"),
        "{show}"
    );
    assert!(show.contains("http://127.0.0.1:8080/l/"), "{show}");
    assert!(
        show.contains(&id[id.len() - 8..].to_uppercase()),
        "the reference: {show}"
    );
    // Retrying a message that is not a dead letter is refused.
    let out = db_cmd(&dir, &["mail", "retry", ack["id"].as_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_daily_digest_is_chosen_from_the_command_line() {
    let dir = tempdir("mail-digest");
    let show = |args: &[&str]| ok(&db_cmd(&dir, &[&["mail", "digest"], args].concat()));
    assert_eq!(
        show(&["dpo@hopital.example"]),
        "dpo@hopital.example: an email per new task and reminder (fr)\n"
    );
    assert_eq!(
        show(&["DPO@hopital.example", "--daily", "--language", "en"]),
        "dpo@hopital.example: one daily digest of pending tasks (en)\n"
    );
    // The language stays when only the rhythm changes, and the other way round.
    assert_eq!(
        show(&["dpo@hopital.example", "--each"]),
        "dpo@hopital.example: an email per new task and reminder (en)\n"
    );
    let out = db_cmd(
        &dir,
        &["mail", "digest", "dpo@hopital.example", "--daily", "--each"],
    );
    assert_eq!(out.status.code(), Some(2), "contradictory flags");
    let out = db_cmd(&dir, &["mail", "digest", "not an address", "--daily"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not an email address"),
        "{out:?}"
    );
}

#[test]
fn check_with_a_templates_folder() {
    let dir = tempdir("templates");
    std::fs::create_dir_all(dir.join("tpl/fr")).unwrap();
    std::fs::write(
        dir.join("desk.kdl"),
        "process \"d\" {\n role \"r\" { member \"r@example.org\" }\n template \"relance-comite\"\n start \"s\"\n notify \"n\" to=\"r\" template=\"relance-comite\"\n end \"f\" result=\"accepted\"\n}\n",
    )
    .unwrap();
    // Declared, but the folder lacks it: an error at the declaration.
    let out = guichet(&["check", "desk.kdl", "--templates", "tpl"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("G0021")
            && err.contains("desk.kdl:3:")
            && err.contains("fr/relance-comite.hbs"),
        "{err}"
    );
    // A template with an unknown variable is refused, naming the file and the variable.
    std::fs::write(
        dir.join("tpl/fr/relance-comite.hbs"),
        "Relance {{request.title}}\n---\nBonjour {{destinataire}}\n",
    )
    .unwrap();
    let out = guichet(&["check", "desk.kdl", "--templates", "tpl"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("relance-comite.hbs") && err.contains("destinataire"),
        "{err}"
    );
    std::fs::write(
        dir.join("tpl/fr/relance-comite.hbs"),
        "Relance {{request.title}}\n---\nBonjour, {{link}}\n",
    )
    .unwrap();
    let out = guichet(&["check", "desk.kdl", "--templates", "tpl"], &dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kpi_compares_the_models_as_json_and_csv() {
    let dir = tempdir("kpi-cli");
    for desk in ["interne-decentralise", "externe"] {
        ok(&db_cmd(
            &dir,
            &[
                "bench",
                "--desk",
                desk,
                "--requests",
                "3",
                "--concurrency",
                "1",
            ],
        ));
    }
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&db_cmd(&dir, &["kpi", "--format", "json"]))).unwrap();
    let contracts = |desk: &str| {
        rows.iter()
            .find(|r| r["desk"] == desk && r["kpi"] == "contrats")
            .unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(contracts("interne-decentralise"), 3.0);
    assert_eq!(contracts("externe"), 3.0);
    let csv = ok(&db_cmd(
        &dir,
        &[
            "kpi", "--view", "steps", "--model", "externe", "--format", "csv",
        ],
    ));
    assert!(
        csv.starts_with("desk,group,step,kind,visits,loops"),
        "{csv}"
    );
    assert!(
        csv.lines().skip(1).all(|l| l.starts_with("externe,")),
        "{csv}"
    );
    let matrix = ok(&db_cmd(&dir, &["kpi", "--view", "matrix"]));
    assert!(
        matrix.contains("technical") && matrix.contains("done"),
        "{matrix}"
    );
    let svg = ok(&db_cmd(
        &dir,
        &["kpi", "--view", "matrix", "--format", "svg"],
    ));
    assert!(
        svg.starts_with("<svg") && svg.contains("Prioritaire") && svg.contains("technique"),
        "{svg}"
    );
    assert_eq!(
        db_cmd(&dir, &["kpi", "--format", "svg"]).status.code(),
        Some(1),
        "svg draws the matrix only"
    );
    let out = db_cmd(&dir, &["kpi", "--from", "demain"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a date"));
}

/// Starts `guichet serve` on a free port of 127.0.0.1 in `dir`; returns it, with its standard
/// error piped, and the address it listens on.
fn serve(dir: &Path, args: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args([&["serve", "--listen", "127.0.0.1:0"], args].concat())
        .current_dir(dir)
        .env(
            "GUICHET_DATABASE",
            format!("sqlite://{}", dir.join("g.db").display()),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.strip_prefix("Listening on http://") {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    // The rest of standard output is drained, so that the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

#[test]
fn the_benchmark_drives_requests_through_the_api_of_a_node() {
    let dir = tempdir("bench-api");
    let (mut child, address) = serve(&dir, &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["bench", "--requests", "3", "--concurrency", "2", "--json"])
        .args(["--api", &format!("http://{address}")])
        .env(
            "GUICHET_DATABASE",
            format!("sqlite://{}", dir.join("g.db").display()),
        )
        .output()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["requests_finished"], 3, "{report}");
    assert_eq!(report["through"], "HTTP API of 1 node(s)");
    // Each request: submitted, then its 13 tasks completed through the API, one after the
    // other, each answer saying what comes next (no call to read the request back).
    assert_eq!(report["commands"], 3 * 14, "{report}");
}

/// A request's commands sent to the node that took it find it in that node's memory
/// (`bench --sticky`); spread over two nodes, each finds its memory out of date (the other wrote
/// since), and the command is read again: every request ends all the same.
#[test]
fn a_node_keeps_the_requests_it_writes_in_memory_and_reads_those_another_changed() {
    let dir = tempdir("sticky");
    let (mut a, address_a) = serve(&dir, &[]);
    let (mut b, address_b) = serve(&dir, &[]);
    let nodes = format!("http://{address_a},http://{address_b}");
    let bench = |requests: &str, sticky: bool| {
        let out = Command::new(env!("CARGO_BIN_EXE_guichet"))
            .args([
                "bench",
                "--requests",
                requests,
                "--concurrency",
                "2",
                "--json",
            ])
            .args(["--api", &nodes])
            .args(if sticky { &["--sticky"][..] } else { &[] })
            .env(
                "GUICHET_DATABASE",
                format!("sqlite://{}", dir.join("g.db").display()),
            )
            .output()
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&ok(&out)).unwrap()
    };
    // (commands from memory, found stale) on a node, from its /metrics.
    let memory = |address: &str| -> (u64, u64) {
        let text = ureq::get(format!("http://{address}/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let value = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {text}"))
        };
        (
            value("guichet_commands_from_memory_total"),
            value("guichet_remembered_stale_total"),
        )
    };
    // Four requests, two submitted to each node, each completed where it was submitted: its
    // 13 tasks from memory.
    let report = bench("4", true);
    assert_eq!(report["requests_finished"], 4, "{report}");
    assert_eq!(report["through"], "HTTP API of 2 node(s)");
    assert_eq!(memory(&address_a), (2 * 13, 0));
    assert_eq!(memory(&address_b), (2 * 13, 0));
    // Four more, each call to the next node: each node's memory is out of date at every
    // call but a request's first, which finds nothing remembered.
    let report = bench("4", false);
    assert_eq!(report["requests_finished"], 4, "{report}");
    for address in [&address_a, &address_b] {
        let (used, stale) = memory(address);
        assert_eq!(used - 2 * 13, stale, "{address}: every use stale");
        assert!(stale >= 2 * 5, "{address}: {stale}");
    }
    for child in [&mut a, &mut b] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn a_node_started_with_no_email_leaves_the_emails_to_another() {
    let dir = tempdir("no-email");
    let db = format!("sqlite://{}", dir.join("g.db").display());
    let count = |state: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_guichet"))
            .args([
                "mail", "list", "--state", state, "--limit", "1000", "--json",
            ])
            .env("GUICHET_DATABASE", &db)
            .output()
            .unwrap();
        serde_json::from_str::<Vec<serde_json::Value>>(&ok(&out))
            .unwrap()
            .len()
    };
    let (mut quiet, address) = serve(&dir, &["--no-email"]);
    let out = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["bench", "--requests", "3", "--concurrency", "3", "--json"])
        .args(["--api", &format!("http://{address}")])
        .env("GUICHET_DATABASE", &db)
        .output()
        .unwrap();
    ok(&out);
    // Longer than two passes of a node that sends (its first pass runs at start).
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let pending = count("pending");
    assert!(pending > 0, "the requests queued emails");
    assert_eq!(
        count("sent") + count("captured") + count("dead"),
        0,
        "a node started with --no-email worked on emails"
    );
    // A node that sends takes them over.
    let (mut sender, _) = serve(&dir, &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count("pending") + count("sending") > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for child in [&mut quiet, &mut sender] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // Delivered, or dead letters (roles of the benchmark's desk have nobody to write to).
    assert_eq!(count("pending"), 0);
    assert_eq!(count("captured") + count("dead"), pending);
}

#[test]
fn serve_stops_gracefully_under_load_on_sigterm() {
    use std::io::{Read, Write};
    let (mut child, address) = serve(&tempdir("serve-stop"), &[]);
    // Logs are read as they come: a full pipe would block the server.
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut logs = String::new();
        stderr.read_to_string(&mut logs).unwrap();
        logs
    });
    // Four clients load the intake form until the server stops accepting (bounded).
    let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let address = address.clone();
            let started = started.clone();
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                for _ in 0..5_000 {
                    let Ok(mut s) = std::net::TcpStream::connect(&address) else {
                        break;
                    };
                    let sent = write!(
                        s,
                        "GET /desks/interne-decentralise HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    );
                    let mut out = String::new();
                    let read = s.read_to_string(&mut out);
                    if sent.is_err() || read.is_err() || out.is_empty() {
                        // Refused or reset before any answer: the server had stopped accepting.
                        break;
                    }
                    started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    answers.push(out);
                }
                answers
            })
        })
        .collect();
    while started.load(std::sync::atomic::Ordering::SeqCst) < 20 {
        std::thread::yield_now();
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    // Every answer the clients got is whole: nothing in flight was cut.
    let answers: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(answers.len() >= 20);
    for a in &answers {
        assert!(
            a.starts_with("HTTP/1.1 200") && a.trim_end().ends_with("</html>"),
            "a cut answer: {a}"
        );
    }
    let logs = logs.join().unwrap();
    assert!(
        logs.contains("stopping") && logs.contains("stopped"),
        "{logs}"
    );
}

#[test]
fn serve_answers_in_a_browser_at_once() {
    use std::io::{Read, Write};
    let (mut child, address) = serve(&tempdir("serve-http"), &["--log-format", "json"]);
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(&address).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let home = get("/");
    let desk = get("/desks/interne-decentralise");
    let _ = get("/l/a-forged-token");
    child.kill().unwrap();
    child.wait().unwrap();
    // Structured logs on standard error: one JSON object per request, by route pattern.
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let requests: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|_| panic!("not JSON: {l}"))
        })
        .filter(|l| l["target"] == "guichet::http")
        .collect();
    let routes: Vec<(&str, i64)> = requests
        .iter()
        .map(|r| (r["route"].as_str().unwrap(), r["status"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        routes,
        [("/", 200), ("/desks/{name}", 200), ("/l/{token}", 404)],
        "{logs}"
    );
    assert!(!logs.contains("a-forged-token"), "{logs}");
    assert!(
        requests
            .iter()
            .all(|r| r["level"] == "INFO" && r["ms"].is_number() && r["timestamp"].is_string())
    );
    assert!(home.starts_with("HTTP/1.1 200"), "{home}");
    assert!(
        home.contains("Guichet interne à accès décentralisé"),
        "{home}"
    );
    assert!(
        desk.contains("Fiche projet") && desk.contains("name=\"titre\""),
        "{desk}"
    );
}

#[test]
fn simulate_compares_the_models_reproducibly_in_every_format() {
    let dir = tempdir("simulate");
    let scenario = repo().join("examples/scenarios/trois-modeles.kdl");
    let scenario = scenario.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["simulate", "--scenario", scenario, "--cases", "60"];
        args.extend(extra);
        ok(&guichet(&args, &dir))
    };
    let table = run(&[]);
    assert!(
        table.contains("interne-decentralise  interne-solutions-externes  externe"),
        "{table}"
    );
    assert!(
        table.contains("Délai moyen de contractualisation (days)"),
        "{table}"
    );
    assert!(table.contains("Where the time goes"), "{table}");
    // The same seed gives the same results; another seed others.
    assert_eq!(table, run(&[]));
    assert_ne!(table, run(&["--seed", "2"]));
    let json: serde_json::Value = serde_json::from_str(&run(&["--format", "json"])).unwrap();
    let reports = json["models"].as_array().unwrap();
    assert_eq!(reports.len(), 3);
    for m in reports {
        assert_eq!(m["requests"], 60);
        assert!(m["lead_time"]["median"].as_f64().unwrap() > 0.0, "{m}");
        assert!(
            m["kpis"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kpi"] == "contrats")
        );
    }
    let csv = run(&["--format", "csv"]);
    assert!(
        csv.starts_with("metric,interne-decentralise,interne-solutions-externes,externe\n"),
        "{csv}"
    );
    let html_path = dir.join("report.html");
    run(&["--format", "html", "--output", html_path.to_str().unwrap()]);
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(
        html.starts_with("<!doctype html>") && html.matches("<svg").count() == 4,
        "{html}"
    );
    // One model by its shipped name, and a definition file.
    let one = ok(&guichet(
        &[
            "simulate",
            "externe",
            models()[0].to_str().unwrap(),
            "--cases",
            "10",
        ],
        &dir,
    ));
    let header: Vec<&str> = one.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["metric", "externe", "interne-decentralise"],
        "{one}"
    );
}

/// The example of docs/simulation.md is what its command prints (every line of the extract,
/// in order), and the overloaded role it shows is flagged in every format.
#[test]
fn the_simulation_example_in_the_docs_is_what_its_command_prints() {
    let docs = std::fs::read_to_string(repo().join("docs/simulation.md")).unwrap();
    let (before, after) = docs.split_once("` gives (extract):").unwrap();
    let command = &before[before.rfind("`guichet ").unwrap() + 1..];
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let extract = after
        .split_once("```text\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .unwrap()
        .0;
    let out = ok(&guichet(&args, &repo()));
    let mut lines = out.lines();
    for want in extract.lines().filter(|l| !l.is_empty()) {
        assert!(
            lines.any(|l| l == want),
            "`{command}` no longer prints (in this order):\n{want}\n\nIt prints:\n{out}"
        );
    }
    assert!(
        extract.contains("juriste: staff, busy, mean queue"),
        "{extract}"
    );

    let with = |format: &str| {
        let mut a = args.clone();
        a.extend(["--format", format]);
        ok(&guichet(&a, &repo()))
    };
    let json: serde_json::Value = serde_json::from_str(&with("json")).unwrap();
    let models = json["models"].as_array().unwrap();
    assert_eq!(models[0]["desk"], "interne-decentralise");
    assert_eq!(models[0]["overloaded"], serde_json::json!(["juriste"]));
    assert_eq!(models[0]["queues"]["juriste"]["overloaded"], true);
    for m in &models[1..] {
        assert_eq!(m["overloaded"], serde_json::json!([]), "{}", m["desk"]);
    }
    let csv = with("csv");
    let row = csv.lines().find(|l| l.contains("juriste: staff")).unwrap();
    assert!(row.contains("OVERLOADED"), "{row}");
    let html = with("html");
    assert!(
        html.contains(
            "<p role=\"alert\"><strong>Overloaded.</strong> interne-decentralise: `juriste`"
        ),
        "{html}"
    );
}

#[test]
fn simulate_refuses_a_broken_scenario_with_its_place() {
    let dir = tempdir("simulate-broken");
    std::fs::write(
        dir.join("s.kdl"),
        "scenario \"s\" {\n    staff juristes=2\n}\n",
    )
    .unwrap();
    // A role none of the models has: a warning with the likely spelling, and the run goes on.
    let out = guichet(&["simulate", "--scenario", "s.kdl", "--cases", "5"], &dir);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("G0020") && err.contains("s.kdl:2:11"), "{err}");
    assert!(err.contains("did you mean `juriste`?"), "{err}");
    // A distribution without its parameters: an error, nothing runs.
    std::fs::write(
        dir.join("s.kdl"),
        "scenario \"s\" {\n    work uniform min=1\n}\n",
    )
    .unwrap();
    let out = guichet(&["simulate", "--scenario", "s.kdl"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("G0013") && err.contains("s.kdl:2:5"), "{err}");
    assert!(err.contains("a uniform distribution needs `max`"), "{err}");
    let out = guichet(&["simulate", "nope"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a file nor a shipped model"));
}

#[test]
fn simulate_fits_from_history_and_forecasts_open_requests() {
    let dir = tempdir("simulate-db");
    ok(&db_cmd(
        &dir,
        &[
            "bench",
            "--desk",
            "externe",
            "--requests",
            "4",
            "--concurrency",
            "1",
        ],
    ));
    let fitted = db_cmd(
        &dir,
        &[
            "simulate",
            "externe",
            "--fit-from",
            "externe@1",
            "--cases",
            "20",
        ],
    );
    let table = ok(&fitted);
    assert!(table.contains("(fitted from externe@1)"), "{table}");
    assert!(
        String::from_utf8_lossy(&fitted.stderr).contains("fitted from 4 ended request(s)"),
        "{}",
        String::from_utf8_lossy(&fitted.stderr)
    );
    let id = start_externe(&dir);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&ok(&db_cmd(
        &dir,
        &["simulate", "--forecast", "--runs", "5", "--format", "json"],
    )))
    .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["request"], id.as_str());
    assert_eq!(rows[0]["ends"], 1.0);
    assert!(rows[0]["p50"].as_str().unwrap() <= rows[0]["p90"].as_str().unwrap());
    let out = db_cmd(&dir, &["simulate", "--fit-from", "externe@9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("externe revision 9"));
}

#[test]
fn a_configuration_file_gives_defaults_that_the_environment_and_flags_override() {
    let dir = tempdir("config");
    std::fs::write(
        dir.join("guichet.toml"),
        "# the desk's settings\ndatabase = \"sqlite://from-file.db\"\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    ok(&guichet(&["serve", "--once"], &dir));
    assert!(dir.join("from-file.db").exists());
    // The environment wins over the file, the command line over both.
    let out = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["serve", "--once"])
        .current_dir(&dir)
        .env("GUICHET_DATABASE", "sqlite://from-env.db")
        .output()
        .unwrap();
    ok(&out);
    assert!(dir.join("from-env.db").exists());
    ok(&guichet(
        &["--database", "sqlite://from-flag.db", "serve", "--once"],
        &dir,
    ));
    assert!(dir.join("from-flag.db").exists());
    // Another file by --config; a mistake names the setting and the known ones.
    std::fs::write(dir.join("other.toml"), "smtp_hots = \"mail.example\"\n").unwrap();
    let out = guichet(&["--config", "other.toml", "serve", "--once"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("other.toml: unknown setting `smtp_hots`") && err.contains("smtp_host"),
        "{err}"
    );
}

#[test]
fn every_setting_is_documented_and_accepted_by_the_configuration_file() {
    let docs = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    for source in ["src/main.rs", "src/mail.rs", "src/db.rs"] {
        let text = std::fs::read_to_string(repo().join(source)).unwrap();
        for chunk in text.split("env = \"GUICHET_").skip(1) {
            let var = format!("GUICHET_{}", chunk.split('"').next().unwrap());
            assert!(
                docs.contains(&format!("`{var}`")),
                "{var} is not in docs/operations.md"
            );
            if var != "GUICHET_CONFIG" {
                let key = var.trim_start_matches("GUICHET_").to_lowercase();
                let dir = tempdir("config-key");
                std::fs::write(dir.join("guichet.toml"), format!("{key} = \"1\"\n")).unwrap();
                let out = guichet(&["check", "--help"], &dir);
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{key}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

#[test]
fn simulated_requests_are_stored_as_the_engine_stores_them() {
    let dir = tempdir("store");
    let out = ok(&db_cmd(
        &dir,
        &["simulate", "--cases", "20", "--store", "--with-history"],
    ));
    // "stored N ended request(s) of 3 model(s) in ... s; N folded into ..."
    let numbers: Vec<usize> = out
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let stored = numbers[0];
    assert!(stored > 0 && stored <= 60, "{out}");
    assert!(out.contains(&format!("; {stored} folded")), "{out}");
    // Their histories are chained as the engine chains them.
    let audit = ok(&db_cmd(&dir, &["audit", "verify"]));
    assert!(
        audit.contains(&format!("history intact: {stored} request(s)")),
        "{audit}"
    );
    assert!(!audit.contains(" 0 event(s)"), "{audit}");
    // And the indicators count each once.
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&db_cmd(&dir, &["kpi", "--format", "json"]))).unwrap();
    let mut per_desk = std::collections::BTreeMap::new();
    for r in &rows {
        per_desk.insert(
            r["desk"].as_str().unwrap().to_owned(),
            r["requests"].as_u64().unwrap(),
        );
    }
    assert_eq!(per_desk.len(), 3, "{per_desk:?}");
    assert_eq!(
        per_desk.values().sum::<u64>(),
        stored as u64,
        "{per_desk:?}"
    );
    // What is stored is what the same command reports without --store: each model's ended
    // requests and lead time.
    let report: serde_json::Value = serde_json::from_str(&ok(&db_cmd(
        &dir,
        &["simulate", "--cases", "20", "--format", "json"],
    )))
    .unwrap();
    let lead: Vec<serde_json::Value> = serde_json::from_str(&ok(&db_cmd(
        &dir,
        &["kpi", "--view", "lead", "--format", "json"],
    )))
    .unwrap();
    for m in report["models"].as_array().unwrap() {
        let desk = m["desk"].as_str().unwrap();
        let ended: u64 = m["ended"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "running")
            .map(|(_, n)| n.as_u64().unwrap())
            .sum();
        assert_eq!(per_desk[desk], ended, "{desk}");
        let stored = lead.iter().find(|r| r["desk"] == desk).unwrap();
        let (ours, reported) = (
            stored["stats"]["mean"].as_f64().unwrap(),
            m["lead_time"]["mean"].as_f64().unwrap(),
        );
        assert!(
            (ours - reported).abs() < 1e-9 * reported,
            "{desk}: stored lead time {ours} days, reported {reported}"
        );
    }
}

/// The resident memory of a process, in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Posts a multipart intake with one document of `size` bytes to a running `serve`, over a
/// plain TCP connection, written a megabyte at a time; calls `during` after each megabyte.
/// The response's status line.
fn upload(address: &str, desk: &str, size: usize, mut during: impl FnMut()) -> String {
    use std::io::{Read, Write};
    let boundary = "----guichet-upload-boundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\np@x.example\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"piece\"; filename=\"gros.pdf\"\r\n\r\n%PDF-1.7\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let body_len = head.len() + size + tail.len();
    let mut conn = std::net::TcpStream::connect(address).unwrap();
    write!(
        conn,
        "POST /desks/{desk} HTTP/1.1\r\nHost: {address}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n{head}"
    )
    .unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        conn.write_all(&chunk[..n]).unwrap();
        left -= n;
        during();
    }
    conn.write_all(tail.as_bytes()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn a_200_mb_upload_streams_to_disk_without_growing_the_server() {
    let dir = tempdir("upload");
    std::fs::write(
        dir.join("gros.kdl"),
        r#"process "gros" version=1 {
    role "demandeur" from="demande.email"
    start "demande" {
        form {
            field "email" type="email" required=#true
            field "piece" type="file" required=#true max-size="300MB"
        }
    }
    end "fin" result="accepted"
}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["deploy", "gros.kdl"])
        .current_dir(&dir)
        .env(
            "GUICHET_DATABASE",
            format!("sqlite://{}", dir.join("g.db").display()),
        )
        .output()
        .unwrap();
    ok(&out);
    let (mut child, address) = serve(&dir, &["--no-email"]);
    let pid = child.id();
    // Warm: the pages compiled, a first document through every buffer.
    assert!(upload(&address, "gros", 2 << 20, || {}).contains(" 200 "));
    let before = rss_kib(pid);
    let mut peak = before;
    let status = upload(&address, "gros", 200 << 20, || {
        peak = peak.max(rss_kib(pid))
    });
    peak = peak.max(rss_kib(pid));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(status.contains(" 200 "), "{status}");
    let grew = peak.saturating_sub(before);
    eprintln!("200 MB upload: resident {before} KiB before, {peak} KiB at most during");
    assert!(
        grew < 20 * 1024,
        "resident memory grew by {grew} KiB during a 200 MB upload ({before} KiB before)"
    );
    // Kept whole, under its hash.
    let kept: Vec<u64> = std::fs::read_dir(dir.join("g.db-documents"))
        .unwrap()
        .flatten()
        .filter(|d| d.file_name() != "tmp")
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|f| f.metadata().unwrap().len())
        .collect();
    assert!(kept.contains(&((200 << 20) + 9)), "{kept:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn user_add_sets_a_password_and_never_takes_the_administrator_right_away() {
    let dir = tempdir("user-add");
    let db = format!("sqlite://{}", dir.join("g.db").display());
    let add = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_guichet"))
            .args(["user", "add"])
            .args(args)
            .env("GUICHET_DATABASE", &db)
            .env("GUICHET_PASSWORD", "a long enough passphrase")
            .output()
            .unwrap()
    };
    let made = ok(&add(&["chef@hopital.example", "--admin"]));
    assert!(made.contains("account ready, administrator"), "{made}");
    // A new password without --admin: still an administrator.
    let again = ok(&add(&["chef@hopital.example"]));
    assert!(again.contains("account ready, administrator"), "{again}");
    let plain = ok(&add(&["agent@hopital.example"]));
    assert!(!plain.contains("administrator"), "{plain}");
}

/// `token create` takes scopes and an expiry, refuses those it cannot take with a message
/// naming the values it takes, and `token list` shows both.
#[test]
fn a_token_is_made_with_its_scopes_and_expiry_and_listed_with_them() {
    let dir = tempdir("token-scopes");
    ok(&Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["user", "add", "robot@hopital.example"])
        .env(
            "GUICHET_DATABASE",
            format!("sqlite://{}", dir.join("desk.db").display()),
        )
        .env("GUICHET_PASSWORD", "a long enough passphrase")
        .output()
        .unwrap());
    let made = db_cmd(
        &dir,
        &[
            "token",
            "create",
            "robot@hopital.example",
            "--name",
            "export",
            "--scope",
            "read",
        ],
    );
    assert!(ok(&made).starts_with("gch_"));
    ok(&db_cmd(
        &dir,
        &[
            "token",
            "create",
            "robot@hopital.example",
            "--name",
            "portail",
            "--scope",
            "submit",
            "--expires",
            "never",
        ],
    ));
    for (args, says) in [
        (
            &["--scope", "write"][..],
            "`write` is not a token scope: use read, submit, act or deploy",
        ),
        (
            &["--expires", "soon"][..],
            "--expires takes a number of days or `never`",
        ),
        (
            &["--expires", "0"][..],
            "a token lasts 1 to 3650 days, not 0",
        ),
    ] {
        let out = db_cmd(
            &dir,
            &[&["token", "create", "robot@hopital.example"][..], args].concat(),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let list = ok(&db_cmd(&dir, &["token", "list"]));
    let lines: Vec<_> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].contains("export  read  created"), "{list}");
    assert!(
        !lines[0].contains("expires never"),
        "90 days by default: {list}"
    );
    assert!(
        lines[1].contains("portail  submit  created") && lines[1].contains("expires never"),
        "{list}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One HTTP/1.1 exchange over a plain TCP connection: the whole answer (head and body).
fn exchange(address: &str, method: &str, path: &str, form: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(address).unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).unwrap();
    out
}

/// The status code of an answer from [`exchange`].
fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// 200 clients posting the intake form as fast as they can from one address create the
/// configured number of requests (5 an hour), however many addresses they give; the rest get
/// 429 with Retry-After and a page in the reader's language, and nothing is recorded or
/// queued for them. The lost-link form and the sign-in count per address too, and a sponsor's
/// email address counts from any client.
#[test]
fn a_flood_of_the_public_forms_gets_what_the_limits_allow_and_no_more() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempdir("flood");
    std::fs::write(
        dir.join("flood.kdl"),
        r#"process "flood" version=1 {
    role "demandeur" from="demande.email"
    start "demande" {
        form {
            field "email" type="email" required=#true
            field "titre" type="text" required=#true
        }
    }
    notify "accuse" to="demandeur" template="demande-recue"
    end "fin" result="accepted"
}"#,
    )
    .unwrap();
    // The database `serve` uses (see [`serve`]).
    let database = format!("sqlite://{}", dir.join("g.db").display());
    let at = |args: &[&str]| guichet(&[&["--database", &database], args].concat(), &dir);
    ok(&at(&["deploy", "flood.kdl"]));
    let (mut child, address) = serve(&dir, &["--no-email", "--limit-login", "3/minute"]);
    // Its log, read as it comes (a full pipe would stop the server), then searched.
    let log = {
        use std::io::Read;
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        })
    };
    let (created, limited, other) = (
        std::sync::Arc::new(AtomicUsize::new(0)),
        std::sync::Arc::new(AtomicUsize::new(0)),
        std::sync::Arc::new(AtomicUsize::new(0)),
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let address = address.clone();
            let (created, limited, other) = (created.clone(), limited.clone(), other.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while std::time::Instant::now() < until {
                    n += 1;
                    // Every attempt gives another address: only the client's counts here.
                    let form = format!("email=victime{i}-{n}%40ailleurs.example&titre=Achetez");
                    let answer = exchange(&address, "POST", "/desks/flood", &form);
                    match status_of(&answer) {
                        200 => created.fetch_add(1, Ordering::SeqCst),
                        429 => {
                            assert!(
                                answer.to_lowercase().contains("\r\nretry-after: "),
                                "{answer}"
                            );
                            assert!(answer.contains("Trop de demandes"), "{answer}");
                            limited.fetch_add(1, Ordering::SeqCst)
                        }
                        _ => other.fetch_add(1, Ordering::SeqCst),
                    };
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(created.load(Ordering::SeqCst), 5);
    assert_eq!(other.load(Ordering::SeqCst), 0);
    assert!(limited.load(Ordering::SeqCst) > 200, "{limited:?}");
    let json =
        |args: &[&str]| -> Vec<serde_json::Value> { serde_json::from_str(&ok(&at(args))).unwrap() };
    assert_eq!(
        json(&["instance", "list", "--desk", "flood", "--json"]).len(),
        5
    );
    // One acknowledgement queued for each request created, none for the refused.
    assert_eq!(json(&["mail", "list", "--json"]).len(), 5);

    // The lost-link form: five an hour from one address, whatever it names.
    for n in 0..5 {
        let form = format!("reference=ABCD1234&email=p{n}%40x.example");
        assert_eq!(
            status_of(&exchange(&address, "POST", "/follow", &form)),
            200
        );
    }
    let answer = exchange(
        &address,
        "POST",
        "/follow",
        "reference=A&email=q%40x.example",
    );
    assert_eq!(status_of(&answer), 429, "{answer}");
    // An expired link's "send me a fresh one" counts against the same limit.
    let answer = exchange(&address, "POST", "/l/not-a-token/fresh", "");
    assert_eq!(status_of(&answer), 429, "{answer}");

    // Sign-in attempts from one address (set to 3 a minute here), whatever the account; these
    // come without the sign-in page's cookie, so each is refused (403) and counted all the same.
    for n in 0..3 {
        let form = format!("email=u{n}%40x.example&password=faux");
        assert_eq!(status_of(&exchange(&address, "POST", "/login", &form)), 403);
    }
    let answer = exchange(
        &address,
        "POST",
        "/login",
        "email=admin%40localhost&password=x",
    );
    assert_eq!(status_of(&answer), 429, "{answer}");
    child.kill().unwrap();
    child.wait().unwrap();
    // Thousands refused, a line a minute at most in the log (this run: one).
    let log = log.join().unwrap();
    let lines = log.matches("over the rate limit of a public form").count();
    assert_eq!(lines, 1, "{log}");
}
