//! The one integration test crate: every test drives the real `compose-secrets` binary
//! (or, for the store conformance suite, the library) through `harness`.

mod harness;

mod ensure;
mod hygiene;
mod load;
mod manifest;
mod emulator_process;
mod store_conformance;
mod rotate;
