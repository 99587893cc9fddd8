//! Run with: `cargo bench -p guichet-definitions --bench check`
//!
//! Measures `load` (parse, lower, resolve, analyse) on a generated definition of 5,000 steps:
//! tasks with outcomes and revision loops, parallel blocks and gates. Prints the median of
//! several runs. Under `cargo test` (no `--bench` argument) it runs once, in debug, so CI keeps
//! it compiling and working without a release build.

use std::time::{Duration, Instant};

fn definition(steps: usize) -> String {
    let mut s = String::from(
        "process \"bench\" version=1 {\n role \"r\" { member \"r@example.org\" }\n start \"s\" {\n  form {\n   field \"budget\" type=\"number\" required=#true\n  }\n }\n",
    );
    let mut i = 1;
    let mut emitted = 1;
    while emitted < steps {
        match i % 5 {
            0 => {
                s.push_str(&format!(
                    " parallel \"p{i}\" {{\n  task \"a{i}\" role=\"r\" due=\"P1D\"\n  task \"b{i}\" role=\"r\" due=\"P1D\" {{\n   outcome \"ok\" \"ko\"\n  }}\n }}\n"
                ));
                i += 1;
                emitted += 3;
            }
            3 => {
                s.push_str(&format!(
                    " gate \"g{i}\" {{\n  when \"s.budget > {i} && t{}.outcome == 'ok'\" goto=\"t{}\"\n  otherwise goto=\"t{}\"\n }}\n",
                    i - 1,
                    i + 1,
                    i + 1
                ));
                i += 1;
                emitted += 1;
            }
            _ => {
                let back = if i > 2 && i % 5 == 2 {
                    format!("\n  outcome \"revoir\" goto=\"t{}\"", i - 1)
                } else {
                    String::new()
                };
                s.push_str(&format!(
                    " task \"t{i}\" role=\"r\" due=\"P1D\" {{\n  outcome \"ok\"{back}\n }}\n"
                ));
                i += 1;
                emitted += 1;
            }
        }
    }
    s.push_str(" end \"fin\" result=\"accepted\"\n}\n");
    s
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let source = definition(5_000);
    let runs = if quick { 1 } else { 11 };
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut steps = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let checked = guichet_definitions::load(&source);
        times.push(start.elapsed());
        let Some(process) = checked.process else {
            eprintln!(
                "{:#?}",
                &checked.diagnostics[..checked.diagnostics.len().min(5)]
            );
            std::process::exit(1);
        };
        steps = process.steps.len();
    }
    times.sort();
    println!(
        "check: {steps} steps, {} bytes: median {:.1} ms, min {:.1} ms over {runs} run(s)",
        source.len(),
        times[runs / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
}
