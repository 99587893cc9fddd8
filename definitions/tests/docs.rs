//! Every `kdl` example of docs/definition-language.md is a complete definition and is checked:
//! plain examples must have no diagnostic at all; `kdl error=G00xx` ones must report that code.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use guichet_definitions::load;

#[test]
fn language_reference_examples_check() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/definition-language.md"
    );
    let doc = std::fs::read_to_string(path).unwrap();
    let mut failures = Vec::new();
    let mut examples = 0;
    let mut lines = doc.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```kdl") else {
            continue;
        };
        let expected = info.trim().strip_prefix("error=").map(str::to_owned);
        let mut body = String::new();
        for (_, l) in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        examples += 1;
        let checked = load(&body);
        let codes: Vec<String> = checked
            .diagnostics
            .iter()
            .map(|d| d.code.to_string())
            .collect();
        match &expected {
            None if !codes.is_empty() => {
                failures.push(format!("example at line {}: {codes:?}", n + 1))
            }
            Some(code) if !codes.contains(code) => {
                failures.push(format!(
                    "example at line {} should report {code}, got {codes:?}",
                    n + 1
                ));
            }
            _ => {}
        }
    }
    assert!(examples >= 7, "only {examples} examples found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
