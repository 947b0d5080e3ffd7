//! Fuzz target: the resolver over the shapes that blew it up (see `checks::resolver`).
#![no_main]

use std::sync::OnceLock;

#[path = "../checks.rs"]
#[allow(dead_code)] // each target uses one of the checks
mod checks;

/// One project directory for the whole run; each input replaces its files.
fn project() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("cs-fuzz-resolver-")
            .tempdir()
            .unwrap()
    })
    .path()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::resolver(data, project()));
