//! Fuzz target: the `.env` reader and writer (see `checks::dotenv`).
#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code)] // each target uses one of the checks
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::dotenv(data));
