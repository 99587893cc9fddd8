//! Run with: `cargo run --example walk_process -- definitions/models/externe.kdl`
//!
//! Loads a desk definition with the library, prints its diagnostics if any, then walks the
//! compiled flow: every step and where each of its ways out leads. This is the same API the
//! engine uses to move requests along.

use std::process::ExitCode;

use guichet_definitions::model::Target;
use guichet_definitions::{diagnostic, load};

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "definitions/models/interne-decentralise.kdl".to_owned());
    let source = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let checked = load(&source);
    eprint!(
        "{}",
        diagnostic::render(&checked.diagnostics, &path, &source, false)
    );
    let Some(process) = checked.process else {
        return ExitCode::from(1);
    };
    println!("{} (v{}): {}", process.name, process.version, process.title);
    for (i, step) in process.steps.iter().enumerate() {
        println!("{:>3} {:<9} {}", i, step.kind_name(), step.id);
        for edge in process.flow.edges(i) {
            let to = match edge.to {
                Target::Step(t) => process.steps[t].id.clone(),
                Target::Join(p) => format!("end of a branch of {}", process.steps[p].id),
            };
            println!("      {:?} -> {to}", edge.exit);
        }
    }
    ExitCode::SUCCESS
}
