//! The one integration test crate: every test drives the real `compose-secrets` binary
//! (or, for the store conformance suite, the library) through `harness`.

mod harness;
mod support;

mod adopt;
mod audit_trust;
mod certificates;
mod certificates_nginx;
mod cli_help;
mod compose_differential;
mod crash;
mod crosscheck;
mod demo_docker;
mod docker;
mod docker_faults;
mod ensure;
mod faults;
mod hostile;
mod hygiene;
mod install_script;
mod interval;
mod json_errors;
mod load;
mod load_keyvault;
mod manifest;
mod owners_docker;
mod policy;
mod properties;
mod provider;
mod provider_docker;
mod prune;
mod races;
mod recovery;
mod resolver_hostile;
mod rotate;
mod rotate_docker;
mod sidecar_docker;
mod start_first_docker;
mod state_trust;
mod status_lines;
mod store_conformance;
mod swarm;
mod sync;
mod sync_docker;
mod verify;
mod waits;
