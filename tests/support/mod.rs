//! Helpers the test modules share; a test module imports only from here and from `harness`.

pub mod compose;
pub mod docker;
pub mod emulator;
#[path = "../../fuzz/checks.rs"]
pub mod fuzz_checks;
pub mod idle_engine;
pub mod process;
pub mod stack;
pub mod store;
