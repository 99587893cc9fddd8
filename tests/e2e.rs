//! The end-to-end walk of a request of desk model (a) in a real headless Chromium, driven by
//! Playwright (`tests/e2e/walk.mjs`), against the real `guichet serve` and a real SMTP server:
//! sponsor intake, decisions from email links, the committee signing in and deciding from
//! its inbox, the signature, and the sponsor's status page; in French, then in English.
//! `scripts/test` installs Chromium (Debian) and the npm packages, and sets `GUICHET_E2E` to
//! the folder holding them. Screenshots of every page land in `target/e2e-screenshots/`.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn a_request_of_model_a_walked_in_a_real_browser_in_french_then_in_english() {
    let Ok(dir) = std::env::var("GUICHET_E2E") else {
        panic!(
            "GUICHET_E2E is not set: run the tests with scripts/test, which installs Chromium and Playwright"
        )
    };
    let all = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e-screenshots");
    let _ = std::fs::remove_dir_all(&all);
    // One after the other: two browsers at once on a 2-core machine would race the walk's
    // deadline, not test anything more.
    for language in ["fr", "en"] {
        let shots = all.join(language);
        let status = Command::new("node")
            .arg("walk.mjs")
            .current_dir(&dir)
            .env("GUICHET_BIN", env!("CARGO_BIN_EXE_guichet"))
            .env("SCREENSHOTS", &shots)
            .env("WALK_LANG", language)
            .status()
            .unwrap_or_else(|e| panic!("cannot run node: {e}"));
        assert!(
            status.success(),
            "the browser walk in {language} failed (its output is above)"
        );
        let taken = std::fs::read_dir(&shots).map_or(0, Iterator::count);
        assert!(
            taken >= 20,
            "only {taken} screenshots in {}",
            shots.display()
        );
    }
}
