//! The one integration test crate: every test drives the real `compose-secrets` binary
//! (or, for the store conformance suite, the library) through `harness`.

mod harness;
mod support {
    pub mod compose;
    pub mod idle_engine;
}

mod adopt;
mod audit_trust;
mod cli_help;
mod compose_differential;
mod crash;
mod crosscheck;
mod demo_docker;
mod docker;
mod docker_faults;
mod emulator_process;
mod ensure;
mod faults;
#[path = "../fuzz/checks.rs"]
mod fuzz_checks;
mod hostile;
mod hygiene;
mod install_script;
mod interval;
mod json_errors;
mod load;
mod load_keyvault;
mod manifest;
mod policy;
mod properties;
mod prune;
mod races;
mod recovery;
mod resolver_hostile;
mod rotate;
mod rotate_docker;
mod settings;
mod sidecar_docker;
mod state_trust;
mod status_lines;
mod store_conformance;
mod swarm;
mod sync;
mod sync_docker;
mod verify;
mod waits;
