//! Run with: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run load -- -max_total_time=180`
//!
//! Any bytes through the loader: it must never panic or overflow its stack, and every
//! diagnostic must point inside the input. Seed the corpus with the shipped models and the
//! error corpus: `cp ../definitions/models/*.kdl ../definitions/tests/corpus/*/*.kdl corpus/load/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let checked = guichet_definitions::load_bytes(data);
    for d in &checked.diagnostics {
        assert!(d.span.end() <= data.len().max(1), "{d:?}");
    }
});
