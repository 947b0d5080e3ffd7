//! A `KeyVaultStore` on the emulator, configured as a deployment with a service principal would be.

use std::collections::HashMap;

use compose_secrets::testing::store::key_vault::{KeyVaultConfig, KeyVaultStore};

use crate::support::emulator::Emulator;

/// The settings a deployment would have for this emulator: its `emulator.env`
/// plus a service principal, then `overrides` (an empty value removes a key).
fn emulator_vars(emulator: &Emulator, overrides: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars = emulator.vars();
    // Only the process environment feeds the SDK's managed identity; keep the
    // lookup to what KeyVaultConfig reads.
    vars.remove("IDENTITY_ENDPOINT");
    vars.remove("IDENTITY_HEADER");
    vars.insert("AZURE_CREDENTIAL".into(), "client-secret".into());
    vars.insert("AZURE_CLIENT_ID".into(), "conformance".into());
    vars.insert("AZURE_CLIENT_SECRET".into(), emulator.client_secret.clone());
    vars.insert("COMPOSE_SECRETS_DISABLE_IMDS".into(), "1".into());
    for (key, value) in overrides {
        if value.is_empty() {
            vars.remove(*key);
        } else {
            vars.insert((*key).to_owned(), (*value).to_owned());
        }
    }
    vars
}

fn config_for(emulator: &Emulator, overrides: &[(&str, &str)]) -> KeyVaultConfig {
    let vars = emulator_vars(emulator, overrides);
    KeyVaultConfig::from_lookup(&|key| vars.get(key).cloned()).expect("valid Key Vault config")
}

pub fn store_for(emulator: &Emulator, overrides: &[(&str, &str)]) -> KeyVaultStore {
    KeyVaultStore::new(config_for(emulator, overrides)).expect("build the Key Vault store")
}
