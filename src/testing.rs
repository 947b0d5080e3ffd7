//! The library's public API, which exists for the integration tests (`tests/`) and the fuzz
//! targets (`fuzz/`) alone: with the `testing` feature, the few items they drive directly,
//! under the paths of the modules that own them. The product's only public item is [`main`];
//! every module is `pub(crate)`, so what nothing uses is reported by the `dead_code` lint.
//!
//! [`main`]: crate::main

pub mod audit {
    pub use crate::audit::{canonical, verify_log, AuditKey};
}

pub mod clock {
    pub use crate::clock::{rfc3339, unix_now};
}

pub mod compose {
    pub use crate::compose::{Project, ProjectOptions, SecretSource, SecretSpec};

    pub mod interpolate {
        pub use crate::compose::interpolate::{substitute, TemplateError};
    }
}

pub mod deploy {
    pub use crate::deploy::{ContainerEngine, ContainerInfo, DockerEngine};

    pub mod health {
        pub use crate::deploy::health::{wait_container_ready, wait_http_healthy};
    }
}

pub mod dotenv {
    pub use crate::dotenv::DotEnv;
}

pub mod error {
    pub use crate::error::{exit, Error, Result};
}

pub mod files {
    pub use crate::files::lexical_normalize;

    pub mod layout {
        pub use crate::files::layout::{Layout, Protected};
    }

    pub mod runtime_dir {
        pub use crate::files::runtime_dir::RuntimeDir;
    }
}

pub mod hardening {
    pub use crate::hardening::harden_process;
}

pub mod memory_audit {
    pub use crate::memory_audit::ENV_VAR;
}

pub mod secret {
    pub use crate::secret::{is_valid_env_key, FingerprintKey, SecretValue};
}

pub mod store {
    pub use crate::store::{tags, NewVersion, SecretStore, VersionInfo};

    pub mod dotenv {
        pub use crate::store::dotenv::DotenvStore;
    }

    pub mod key_vault {
        pub use crate::store::key_vault::{KeyVaultConfig, KeyVaultStore};
    }

    pub mod memory {
        pub use crate::store::memory::MemoryStore;
    }
}
