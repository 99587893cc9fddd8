//! Bad input never panics and always gets a diagnostic inside the file: size limits, the KDL
//! specification's own test corpus, and random mutations of real definitions.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use guichet_definitions::{Code, limits, load, load_bytes};
use proptest::prelude::*;

fn codes(src: &str) -> Vec<Code> {
    load(src).diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn limits_have_their_own_codes() {
    let big = format!(
        "process \"t\" {{\n{}}}\n",
        "// padding\n".repeat(limits::MAX_FILE_BYTES / 10)
    );
    assert_eq!(codes(&big), [Code::FileTooLarge]);
    let many = format!(
        "process \"t\" {{\n{}}}\n",
        "a\n".repeat(limits::MAX_NODES + 1)
    );
    assert_eq!(codes(&many), [Code::TooManyNodes]);
    let long = format!(
        "process \"t\" {{\n title \"{}\"\n}}\n",
        "é".repeat(limits::MAX_STRING_CHARS + 1)
    );
    assert!(codes(&long).contains(&Code::StringTooLong));
    let cond = format!(
        "process \"t\" {{\n start \"s\"\n gate \"g\" {{\n when \"{}\" goto=\"f\"\n otherwise goto=\"f\"\n }}\n end \"f\" result=\"accepted\"\n}}\n",
        "s.count > 1 || ".repeat(200) + "true"
    );
    assert!(codes(&cond).contains(&Code::StringTooLong));
    assert_eq!(
        load_bytes(b"process \"t\xff\"").diagnostics[0].code,
        Code::NotUtf8
    );
    // Deep nesting is refused before the parser sees it, however deep.
    let deep = "a {".repeat(200_000);
    assert_eq!(codes(&deep), [Code::TooDeep]);
}

/// The KDL specification's test cases, read in place from the `kdl` crate's package.
fn kdl_spec_cases() -> Vec<PathBuf> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kdl = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "kdl")
        .expect("the kdl package is a dependency");
    let manifest = PathBuf::from(kdl["manifest_path"].as_str().unwrap());
    let dir = manifest.parent().unwrap().join("tests/test_cases/input");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn kdl_spec_corpus_never_panics_and_always_explains() {
    let files = kdl_spec_cases();
    assert!(
        files.len() > 300,
        "found only {} KDL test cases",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let result = std::panic::catch_unwind(|| load_bytes(&bytes));
        match result {
            Err(_) => failures.push(format!("{}: panicked", path.display())),
            Ok(checked) => {
                // None of these is a desk process: each must be refused with a diagnostic
                // whose span lies inside the file.
                if checked.process.is_some() || checked.diagnostics.is_empty() {
                    failures.push(format!("{}: accepted without a diagnostic", path.display()));
                }
                for d in &checked.diagnostics {
                    if d.span.end() > bytes.len() {
                        failures.push(format!(
                            "{}: span {:?} outside the file",
                            path.display(),
                            d.span
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn models() -> Vec<String> {
    guichet_definitions::models::ALL
        .iter()
        .map(|(_, s)| (*s).to_owned())
        .collect()
}

/// A generated sound process: a chain of tasks, some in parallel blocks, with gates that jump
/// forward and revision loops that jump back to the previous task.
fn generated(shape: &[(u8, bool)]) -> String {
    let mut s = String::from(
        "process \"gen\" version=1 {\n role \"r\" { member \"r@example.org\" }\n start \"s0\"\n",
    );
    let mut prev: Option<String> = None;
    for (i, (kind, flag)) in shape.iter().enumerate() {
        match kind % 3 {
            0 => {
                let back = match (&prev, flag) {
                    (Some(p), true) => format!("\n  outcome \"revoir\" goto=\"{p}\""),
                    _ => String::new(),
                };
                s.push_str(&format!(
                    " task \"t{i}\" role=\"r\" due=\"P1D\" {{\n  outcome \"ok\"{back}\n }}\n"
                ));
                prev = Some(format!("t{i}"));
            }
            1 => {
                s.push_str(&format!(
                    " parallel \"p{i}\" {{\n  task \"a{i}\" role=\"r\" due=\"P1D\"\n  branch \"b\" {{\n   task \"b{i}\" role=\"r\" due=\"P1D\" {{\n    outcome \"ok\"\n    outcome \"encore\" goto=\"b{i}\"\n   }}\n  }}\n }}\n"
                ));
                prev = None;
            }
            _ => {
                let target = if *flag { "fin" } else { "refus" };
                s.push_str(&format!(
                    " gate \"g{i}\" {{\n  when \"s0.count > 0\" goto=\"{target}\"\n  otherwise goto=\"n{i}\"\n }}\n notify \"n{i}\" to=\"r\" template=\"decision-comite\"\n"
                ));
                prev = None;
            }
        }
    }
    s.push_str(" gate \"dernier\" {\n  when \"s0.count > 5\" goto=\"refus\"\n  otherwise goto=\"fin\"\n }\n");
    s.push_str(" end \"fin\" result=\"accepted\"\n end \"refus\" result=\"rejected\"\n}\n");
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn generated_sound_processes_validate(shape in proptest::collection::vec((0u8..3, any::<bool>()), 0..30)) {
        let src = generated(&shape);
        let checked = load(&src);
        let errors: Vec<_> = checked.diagnostics.iter().filter(|d| d.is_error()).collect();
        prop_assert!(errors.is_empty(), "{src}\n{errors:#?}");
        prop_assert!(checked.process.is_some());
    }

    #[test]
    fn mutated_models_never_panic_and_point_inside(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<char>()), 1..6),
    ) {
        let mut src = models()[which].clone();
        for (at, op, c) in edits {
            let mut i = at.index(src.len().max(1));
            while !src.is_char_boundary(i) { i -= 1; }
            match op {
                0 => { src.insert(i, c); }
                1 => { if i < src.len() { src.remove(i); } }
                2 => { src.insert(i, '{'); }
                _ => { src.insert(i, '"'); }
            }
        }
        let checked = load(&src);
        for d in &checked.diagnostics {
            prop_assert!(d.span.end() <= src.len(), "{d:?}");
        }
    }
}

/// The web server will check uploads on tokio worker threads (2 MiB stacks). Inputs at every
/// limit must load there without overflowing, in debug builds too.
#[test]
fn inputs_at_the_limits_fit_a_small_stack() {
    let deep_brackets = format!(
        "{}s.count{} > 0",
        "(".repeat(limits::MAX_EXPRESSION_DEPTH),
        ")".repeat(limits::MAX_EXPRESSION_DEPTH)
    );
    let many_operators = format!("{}true", "!".repeat(limits::MAX_EXPRESSION_OPERATORS));
    let chain = vec!["s.count > 0"; limits::MAX_EXPRESSION_OPERATORS / 4].join(" && ");
    let mut inputs: Vec<String> = models();
    for cond in [deep_brackets, many_operators, chain] {
        inputs.push(format!(
            "process \"t\" {{\n start \"s\"\n gate \"g\" {{\n  when \"{cond}\" goto=\"f\"\n  otherwise goto=\"f\"\n }}\n end \"f\" result=\"accepted\"\n}}\n"
        ));
    }
    // KDL nested to the limit (refused by the schema, but parsed).
    let depth = limits::MAX_DEPTH;
    inputs.push(format!("{}{}", "a {\n".repeat(depth), "}\n".repeat(depth)));
    for (i, input) in inputs.into_iter().enumerate() {
        let handle = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || load(&input).diagnostics.len())
            .unwrap();
        assert!(handle.join().is_ok(), "input {i} overflowed a 2 MiB stack");
    }
}
