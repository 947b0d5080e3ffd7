//! Everything compose-secrets keeps on disk: secret files in checked directories, and the
//! runtime directory's state, lock and temp-file hygiene.

pub mod lock;
pub mod runtime_dir;
pub mod secret_dir;
pub mod state;
