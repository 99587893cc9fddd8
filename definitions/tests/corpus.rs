//! Data-driven tests of the checker: every file of `corpus/ok/` and of the shipped models must
//! check without error; every file of `corpus/err/` must render exactly its golden
//! `<name>.txt` (no colour, fixed width). All failures are reported together.
//!
//! To accept new output after an intended change: `UPDATE_GOLDENS=1 cargo test -p
//! guichet-definitions --test corpus`, then read the diff.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use guichet_definitions::{Code, Severity, diagnostic, load};

fn kdl_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "kdl"))
        .collect();
    files.sort();
    files
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Renders diagnostics with a path relative to the crate, so goldens do not depend on where
/// the repository is checked out.
fn render(path: &Path) -> (String, Vec<Code>, bool) {
    let source = std::fs::read_to_string(path).unwrap();
    let name = path.strip_prefix(root()).unwrap().display().to_string();
    let checked = load(&source);
    let codes = checked.diagnostics.iter().map(|d| d.code).collect();
    (
        diagnostic::render(&checked.diagnostics, &name, &source, false),
        codes,
        checked.process.is_some(),
    )
}

#[test]
fn ok_files_and_models_check_clean() {
    let mut failures = Vec::new();
    let mut files = kdl_files(&root().join("tests/corpus/ok"));
    files.extend(kdl_files(&root().join("models")));
    assert!(files.len() >= 5);
    for path in files {
        let (rendered, codes, has_process) = render(&path);
        if !codes.is_empty() || !has_process {
            failures.push(format!("{}:\n{rendered}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn err_files_match_their_goldens() {
    let update = std::env::var_os("UPDATE_GOLDENS").is_some();
    let mut failures = Vec::new();
    let mut seen: BTreeSet<Code> = BTreeSet::new();
    for path in kdl_files(&root().join("tests/corpus/err")) {
        let (rendered, codes, _) = render(&path);
        if codes.is_empty() {
            failures.push(format!("{}: no diagnostic at all", path.display()));
        }
        seen.extend(codes);
        let golden = path.with_extension("txt");
        if update {
            std::fs::write(&golden, &rendered).unwrap();
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == rendered => {}
            Ok(expected) => failures.push(format!(
                "{} differs from its golden.\n--- expected\n{expected}\n--- got\n{rendered}",
                path.display()
            )),
            Err(_) => failures.push(format!(
                "{} has no golden {}; run with UPDATE_GOLDENS=1\n{rendered}",
                path.display(),
                golden.display()
            )),
        }
    }
    // Every code that a definition's content can trigger is shown by a file of the corpus.
    // The size limits and UTF-8 need inputs too big or binary for the corpus; they are
    // tested in `limits.rs`.
    let not_in_corpus = [
        Code::FileTooLarge,
        Code::TooManyNodes,
        Code::StringTooLong,
        Code::NotUtf8,
    ];
    for code in Code::ALL {
        if !seen.contains(code) && !not_in_corpus.contains(code) {
            failures.push(format!(
                "no file of corpus/err/ shows {code} ({})",
                code.title()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn warnings_alone_still_give_a_process() {
    let source = std::fs::read_to_string(root().join("tests/corpus/err/warnings.kdl")).unwrap();
    let checked = load(&source);
    assert!(
        checked
            .diagnostics
            .iter()
            .all(|d| d.severity == Severity::Warning)
    );
    assert!(checked.process.is_some());
}

#[test]
fn every_code_has_a_docs_page_and_every_page_a_code() {
    let dir = root().join("../docs/diagnostics");
    let mut failures = Vec::new();
    for code in Code::ALL {
        let page = dir.join(format!("{code}.md"));
        match std::fs::read_to_string(&page) {
            Ok(text) if text.contains(code.title()) => {}
            Ok(_) => failures.push(format!(
                "{} does not state the title \"{}\"",
                page.display(),
                code.title()
            )),
            Err(_) => failures.push(format!("{code} has no page {}", page.display())),
        }
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".md") else {
            continue;
        };
        if stem != "README" && !Code::ALL.iter().any(|c| c.as_str() == stem) {
            failures.push(format!("docs/diagnostics/{name} documents no code"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
