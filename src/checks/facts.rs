//! What `verify` gathered, as plain data: the checks' inputs from the outside world.
//! [`super::gather`] fills them in; unit tests may build them by hand.

use super::*;
use crate::deploy::swarm::{SwarmSecret, SwarmService};
use crate::rotation::policy::LastSet;
use crate::store::{AccessProbe, Naming};

/// What `docker compose config` said of the project.
pub enum ComposeReference {
    /// No Compose v2 here (why).
    Missing(String),
    /// Compose v2 (described) refused the project (why).
    Refused { compose: String, why: String },
    /// Compose v2 (described) and its resolved configuration.
    Config {
        compose: String,
        config: serde_json::Value,
    },
}

/// A secret's current version read by itself: its id and its value's fingerprint.
pub struct Current {
    pub version: Option<String>,
    pub fingerprint: String,
    /// For a certificate part: whether the file holds the part of the store's bundle (a
    /// `pfx` compared by content, as each one written draws new salts).
    pub matches_file: Option<bool>,
}

/// What the store said. `Err` holds the error's message.
pub struct StoreFacts {
    pub describe: String,
    pub keeps_versions: bool,
    pub naming: Naming,
    /// The listing by lower-cased key, when a check needed it.
    pub listing: Option<std::result::Result<BTreeMap<String, VersionInfo>, String>>,
    /// Current versions read one by one, by key: every secret in `.env`, and in Key Vault
    /// those the listing cannot vouch for (see [`super::drift::listing_currency`]).
    pub current: BTreeMap<String, std::result::Result<Current, String>>,
    /// When each secret with a rotation policy was last set.
    pub last_set: Option<std::result::Result<BTreeMap<String, LastSet>, String>>,
    /// Access as far as the store can tell without writing (Key Vault only).
    pub probe: Option<AccessProbe>,
}

impl StoreFacts {
    pub fn key_for(&self, spec: &SecretSpec) -> String {
        self.naming.key_for(spec)
    }

    /// The listing's entry for `key`, when there is a listing and it has one.
    pub fn listed(&self, key: &str) -> Option<&VersionInfo> {
        match &self.listing {
            Some(Ok(listing)) => listing.get(&key.to_ascii_lowercase()),
            _ => None,
        }
    }
}

/// What the Docker engine said of the project's containers.
pub enum Containers {
    /// The engine could not be reached: where it was looked for, and why.
    Unreachable {
        engine: String,
        why: String,
    },
    /// The engine answered but could not list them.
    Failed(String),
    Listed(Vec<ContainerInfo>),
}

impl Containers {
    /// The services with a running container.
    pub fn running(&self) -> Vec<String> {
        match self {
            Containers::Listed(containers) => containers
                .iter()
                .filter(|c| c.running)
                .map(|c| c.service.clone())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The stack's secrets and services as a swarm manager lists them.
pub type SwarmFacts = std::result::Result<(Vec<SwarmSecret>, Vec<SwarmService>), String>;

/// What git says of one path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitPath {
    pub ignored: Option<bool>,
    pub tracked: bool,
    /// The commits that touched it, newest first; `None` when the history cannot be read.
    pub commits: Option<Vec<String>>,
}
