//! Command-line options: the contract other test suites start the emulator with.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::auth::Permissions;

/// Fixed so that a tenant can be configured once in a developer's environment.
pub const DEFAULT_TENANT: &str = "72f988bf-0000-4000-8000-00000000c0de";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "kv-emulator",
    version,
    about = "HTTPS Azure Key Vault (secrets) emulator with Entra and managed-identity token endpoints"
)]
pub struct Opts {
    /// Address to listen on; non-loopback addresses need --allow-remote.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Port to listen on; 0 picks a free port (see emulator.env for the actual one).
    #[arg(long, default_value_t = 8443)]
    pub port: u16,

    /// Allow binding a non-loopback address.
    #[arg(long)]
    pub allow_remote: bool,

    /// Directory for the CA, emulator.env, client-secret and vault.json.
    #[arg(long, default_value = ".runtime/emulator")]
    pub state_dir: PathBuf,

    /// Latency added to every data-plane request.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,

    /// Tenant advertised in the 401 challenge and accepted by the token endpoint.
    #[arg(long, default_value = DEFAULT_TENANT, value_parser = parse_tenant)]
    pub tenant_id: String,

    /// IDENTITY=perm,perm,... (get,list,set,delete,recover,purge,backup,restore,all).
    /// Identities not listed may do everything.
    #[arg(long = "permissions", value_name = "IDENTITY=PERMS", value_parser = parse_permissions)]
    pub permissions: Vec<(String, Permissions)>,

    /// Create a secret with a random 32-byte hex value (repeatable).
    #[arg(long = "seed", value_name = "NAME")]
    pub seeds: Vec<String>,

    /// Create N secrets named bench-0000, bench-0001, ... with random values.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed_count: usize,

    /// Keep vault data in <state-dir>/vault.json across restarts.
    #[arg(long)]
    pub persist: bool,

    /// Answer every Nth data-plane request with 429 Throttled (0 = off).
    #[arg(long = "fault-429-every", default_value_t = 0, value_name = "N")]
    pub fault_429_every: u64,

    /// Retry-After seconds sent with injected 429s.
    #[arg(long, default_value_t = 1, value_name = "SECS")]
    pub retry_after: u64,

    /// Answer every Nth data-plane request with 500 (0 = off).
    #[arg(long = "fault-500-every", default_value_t = 0, value_name = "N")]
    pub fault_500_every: u64,

    /// Close the connection without a response on every Nth data-plane request (0 = off).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub fault_drop_every: u64,

    /// Extra latency for every --latency-spike-every'th data-plane request.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub latency_spike_ms: u64,

    /// Apply --latency-spike-ms to every Nth data-plane request (0 = off).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub latency_spike_every: u64,

    /// Token endpoints answer 503; tokens already issued keep working.
    #[arg(long)]
    pub token_endpoint_down: bool,
}

fn parse_tenant(s: &str) -> Result<String, String> {
    // azure_identity rejects tenants outside this alphabet, so refusing early gives a clearer error.
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid tenant id {s:?}: use letters, digits, '-' and '.'"
        ))
    }
}

fn parse_permissions(s: &str) -> Result<(String, Permissions), String> {
    let (identity, perms) = s
        .split_once('=')
        .ok_or_else(|| format!("expected IDENTITY=perm,perm,... but got {s:?}"))?;
    if identity.is_empty() {
        return Err(format!("empty identity in {s:?}"));
    }
    Ok((identity.to_string(), Permissions::parse(perms)?))
}
