//! The REST API against its own OpenAPI document, judged by a client nobody here wrote:
//! Schemathesis (installed by `scripts/test` into a virtual environment; its `st` in
//! `GUICHET_SCHEMATHESIS`) runs every check it has on every operation of a live `serve`,
//! with a token, and the test fails on any failure it finds. The run's figures are written to
//! `target/contract-figures.txt`, which `scripts/test` prints.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The `st` of the virtual environment where `scripts/test` installed Schemathesis.
fn schemathesis() -> String {
    std::env::var("GUICHET_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!("GUICHET_SCHEMATHESIS is not set: run the tests with scripts/test, which installs Schemathesis in a virtual environment")
    })
}

/// Runs `guichet` on the database of `dir` with `env`; its standard output, once it
/// succeeded.
fn guichet(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(args)
        .env("GUICHET_DATABASE", database(dir))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn database(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("g.db").display())
}

/// Kills the server when the test ends, whichever way.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What Schemathesis is told: the ids that exist, so that its calls reach the handlers'
/// logic and not only their 404s, and, per operation, the answers a schema-valid call may
/// get by the desk's rules rather than by its shape.
fn config(
    (request, task): (&str, i64),
    withdrawn: &str,
    (delegated, delegated_task): (&str, i64),
    admin: &str,
) -> String {
    format!(
        r#"# Written by tests/contract.rs.
[parameters]
"path.name" = "interne-decentralise"
"path.id" = "{request}"
"path.request" = "{request}"
"path.task" = {task}

# Withdrawal ends a request: it gets one of its own, so that the other calls find theirs open.
[[operations]]
include-path = "/api/v1/requests/{{id}}/withdraw"
parameters = {{ "path.id" = "{withdrawn}" }}

# Delegation hands the task away: it gets a task of its own, so that the others keep theirs.
[[operations]]
include-path = "/api/v1/tasks/{{request}}/{{task}}/delegate"
parameters = {{ "path.request" = "{delegated}", "path.task" = {delegated_task} }}

# An event the desk declares (its wait is not open: refused, 409).
[[operations]]
include-path = "/api/v1/requests/{{id}}/events/{{name}}"
parameters = {{ "path.name" = "complement-recu" }}

# Deploying and the indicators are for administrators: an administrator's token of every
# scope. A definition is KDL in a JSON string, which the schema cannot describe further: a
# generated one has errors (422, with the checker's diagnostics).
[[operations]]
include-path-regex = "^/api/v1/(definitions|indicators)$"
headers = {{ Authorization = "Bearer {admin}" }}
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

# A submission's and a decision's `fields` follow the desk's forms, which the deployed
# definitions declare at run time: a schema-valid object may lack a required field (422).
[[operations]]
include-path-regex = "^/api/v1/(desks/\\{{name\\}}/requests|requests/\\{{id\\}}/events/\\{{name\\}}|tasks/\\{{request\\}}/\\{{task\\}}/complete|external-tasks/\\{{id\\}}/complete)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]
"#
    )
}

#[test]
fn schemathesis_finds_no_failure_in_any_operation() {
    let st = schemathesis();
    let dir = std::env::temp_dir().join(format!("guichet-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    guichet(
        &dir,
        &["user", "add", "guichet-donnees@hopital.example"],
        &[("GUICHET_PASSWORD", "un mot de passe assez long")],
    );
    guichet(
        &dir,
        &["user", "add", "admin@hopital.example", "--admin"],
        &[("GUICHET_PASSWORD", "un mot de passe assez long")],
    );
    let token_of = |args: &[&str]| {
        let printed = guichet(
            &dir,
            &[&["token", "create", "--name", "schemathesis"], args].concat(),
            &[],
        );
        printed
            .split_whitespace()
            .find(|w| w.starts_with("gch_"))
            .unwrap_or_else(|| panic!("no token in {printed}"))
            .to_owned()
    };
    let token = token_of(&["guichet-donnees@hopital.example"]);
    let admin = token_of(&["admin@hopital.example", "--scope", "read,submit,act,deploy"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_guichet"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .env("GUICHET_DATABASE", database(&dir))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _server = Server(child);
    let address = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.strip_prefix("Listening on http://") {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let base = format!("http://{address}");
    // A request with an open task (the desk's first, to the unit whose member the token
    // acts as), for the operations that name one.
    let intake = serde_json::json!({"fields": {
        "titre": "Cohorte", "email": "porteur@labo.example", "organisme": "Labo",
        "type-porteur": "academique", "cadre": "collaboratif", "resume": "R", "donnees": "D"
    }});
    let submit = || {
        let answer = ureq::post(&format!(
            "{base}/api/v1/desks/interne-decentralise/requests"
        ))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(intake.to_string())
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        let task = answer["open_tasks"][0]["task"].as_i64();
        (answer["id"].as_str().unwrap().to_owned(), task.unwrap())
    };
    let ((request, task), (withdrawn, _)) = (submit(), submit());
    let (delegated, delegated_task) = submit();
    let config_file = dir.join("schemathesis.toml");
    std::fs::write(
        &config_file,
        config(
            (&request, task),
            &withdrawn,
            (&delegated, delegated_task),
            &admin,
        ),
    )
    .unwrap();
    let out = Command::new(st)
        .arg("--config-file")
        .arg(&config_file)
        .args(["run", &format!("{base}/api/openapi.json")])
        .args(["--checks", "all", "--max-examples", "40", "--seed", "1"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The summary, from its banner on: the operations, phases, failures and cases.
    let summary = stdout
        .find("SUMMARY")
        .map_or(stdout.as_ref(), |i| &stdout[i..]);
    let figures = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("..")
        .join("contract-figures.txt");
    std::fs::write(&figures, summary).unwrap();
    println!("{summary}");
    assert!(
        out.status.success(),
        "Schemathesis found failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its calls reached the handlers' logic: the requests were acted on by the account.
    let acted = |id: &str| {
        let after = ureq::get(&format!("{base}/api/v1/requests/{id}"))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let after: serde_json::Value = serde_json::from_str(&after).unwrap();
        let kinds: Vec<String> = after["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"]["id"] == "guichet-donnees@hopital.example")
            .filter_map(|e| e["kind"].as_str().map(str::to_owned))
            .collect();
        kinds
    };
    let (on_tasks, on_withdrawn, on_delegated) =
        (acted(&request), acted(&withdrawn), acted(&delegated));
    println!(
        "by the token's account: {on_tasks:?}, {on_withdrawn:?} and {on_delegated:?} on the three requests"
    );
    assert!(
        on_tasks.iter().any(|k| k == "claimed" || k == "completed"),
        "no call took or decided the task: {on_tasks:?}"
    );
    assert_eq!(on_withdrawn, ["cancelled"]);
    assert!(
        on_delegated.iter().any(|k| k == "delegated"),
        "no call delegated the task: {on_delegated:?}"
    );
    assert!(
        summary.contains("Tested: 20"),
        "not every operation was tested:\n{summary}"
    );
}
