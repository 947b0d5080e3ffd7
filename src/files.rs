//! Everything compose-secrets keeps on disk: secret files in checked directories, and the
//! runtime directory's state, lock and temp-file hygiene.

pub mod git;
pub mod layout;
pub mod lock;
pub mod runtime_dir;
pub mod secret_dir;
pub mod state;
pub mod strays;

pub use crate::compose::lexical_normalize;
