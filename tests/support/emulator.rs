//! The Key Vault emulator for tests: the `kv-emulator` binary as a child process, and its admin API.
//!
//! Each [`Emulator`] owns a fresh state directory and port, so tests never share
//! secrets, faults or request counters. The child is killed when it is dropped.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::Project;

/// How long the emulator may take to bind and write `emulator.env`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Keys `emulator.env` must contain before the emulator counts as ready.
const REQUIRED_KEYS: [&str; 3] = [
    "AZURE_KEYVAULT_URL",
    "COMPOSE_SECRETS_CA_FILE",
    "KV_EMULATOR_ADMIN_URL",
];

pub struct Emulator {
    /// Vault base URL, `https://127.0.0.1:PORT`.
    pub url: String,
    /// The emulator's CA certificate (PEM).
    pub ca_file: PathBuf,
    pub state_dir: tempfile::TempDir,
    /// `emulator.env`, parsed: AZURE_KEYVAULT_URL, COMPOSE_SECRETS_CA_FILE, AZURE_TENANT_ID,
    /// AZURE_AUTHORITY_HOST, IDENTITY_ENDPOINT, IDENTITY_HEADER, KV_EMULATOR_ADMIN_URL.
    pub env: Vec<(String, String)>,
    /// The client secret the token endpoint accepts for any client id.
    pub client_secret: String,
    child: Child,
}

impl Emulator {
    /// Path of the `kv-emulator` binary: `KV_EMULATOR_BIN` when set (a build that has only
    /// the integration crate, such as `scripts/mutants.sh --survivors`, has none of its own),
    /// else next to `compose-secrets` in the workspace target dir.
    pub fn binary() -> PathBuf {
        if let Some(path) = std::env::var_os("KV_EMULATOR_BIN").filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
        let main_binary = Path::new(env!("CARGO_BIN_EXE_compose-secrets"));
        main_binary
            .parent()
            .map(|dir| dir.join("kv-emulator"))
            .unwrap_or_else(|| PathBuf::from("kv-emulator"))
    }

    /// Start an emulator on a free port with `extra_args` (e.g. `["--seed", "db"]`)
    /// and wait until it has written `emulator.env`.
    pub fn start(extra_args: &[&str]) -> Emulator {
        let binary = Self::binary();
        assert!(
            binary.is_file(),
            "kv-emulator not built: run `cargo build --workspace` (make test does this); looked for {}",
            binary.display()
        );
        let state_dir = tempfile::Builder::new()
            .prefix("kv-emulator-")
            .tempdir()
            .expect("create the emulator state dir");
        let log_path = state_dir.path().join("emulator.log");
        let log = File::create(&log_path).expect("create the emulator log");
        let log_err = log.try_clone().expect("clone the emulator log handle");

        let mut child = Command::new(&binary)
            .arg("--port")
            .arg("0")
            .arg("--state-dir")
            .arg(state_dir.path())
            .args(extra_args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));

        let env_path = state_dir.path().join("emulator.env");
        let secret_path = state_dir.path().join("client-secret");
        let started = Instant::now();
        let env = loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "kv-emulator {extra_args:?} exited with {status} before it was ready; log:\n{}",
                    read_log(&log_path)
                );
            }
            if let Some(env) = read_env_file(&env_path) {
                if secret_path.is_file() {
                    break env;
                }
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "kv-emulator {extra_args:?} did not write {} within {}s; log:\n{}",
                    env_path.display(),
                    STARTUP_TIMEOUT.as_secs(),
                    read_log(&log_path)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        };

        let client_secret = std::fs::read_to_string(&secret_path)
            .expect("read the emulator's client-secret")
            .trim()
            .to_owned();
        let lookup = |key: &str| {
            env.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Emulator {
            url: lookup("AZURE_KEYVAULT_URL"),
            ca_file: PathBuf::from(lookup("COMPOSE_SECRETS_CA_FILE")),
            env,
            client_secret,
            state_dir,
            child,
        }
    }

    /// One value from `emulator.env`.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// What `compose-secrets` needs to use this vault with the emulator's managed identity:
    /// `emulator.env` less the admin API (the tests' alone), plus Key Vault mode.
    /// `Run::keyvault` applies it.
    pub fn client_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .filter(|(k, _)| !k.starts_with("KV_EMULATOR_"))
            .cloned()
            .collect();
        env.push(("AZURE_USE_KEYVAULT".into(), "true".into()));
        env.push(("AZURE_CREDENTIAL".into(), "managed-identity".into()));
        env
    }

    /// `emulator.env` as a map, for building configs.
    pub fn vars(&self) -> HashMap<String, String> {
        self.env.iter().cloned().collect()
    }

    fn admin_url(&self, path: &str) -> String {
        let base = self
            .var("KV_EMULATOR_ADMIN_URL")
            .expect("emulator.env has KV_EMULATOR_ADMIN_URL");
        format!("{}/{}", base.trim_end_matches('/'), path)
    }

    /// An HTTPS client that trusts only the emulator's CA.
    fn admin_client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.ca_file).expect("read the emulator CA");
        let certificates =
            reqwest::Certificate::from_pem_bundle(&pem).expect("the emulator CA is PEM");
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .tls_certs_only(certificates)
            .timeout(Duration::from_secs(10))
            .build()
            .expect("build the admin client")
    }

    /// `GET /_emulator/stats`: `requests`, `by_operation`, `gets_by_secret`.
    pub async fn stats(&self) -> serde_json::Value {
        let response = self
            .admin_client()
            .get(self.admin_url("stats"))
            .send()
            .await
            .expect("GET /_emulator/stats");
        assert!(
            response.status().is_success(),
            "GET /_emulator/stats answered {}",
            response.status()
        );
        response.json().await.expect("stats are JSON")
    }

    /// `POST /_emulator/stats/reset`.
    pub async fn reset_stats(&self) {
        let response = self
            .admin_client()
            .post(self.admin_url("stats/reset"))
            .send()
            .await
            .expect("POST /_emulator/stats/reset");
        assert!(
            response.status().is_success(),
            "POST /_emulator/stats/reset answered {}",
            response.status()
        );
    }

    /// `POST /_emulator/faults` with e.g. `{"fault_429_every": 2, "retry_after": 1}`.
    pub async fn set_faults(&self, faults: serde_json::Value) {
        let response = self
            .admin_client()
            .post(self.admin_url("faults"))
            .json(&faults)
            .send()
            .await
            .expect("POST /_emulator/faults");
        assert!(
            response.status().is_success(),
            "POST /_emulator/faults answered {}",
            response.status()
        );
    }

    /// Every fault off again (an empty update changes nothing: each field must be zeroed).
    pub async fn clear_faults(&self) {
        self.set_faults(serde_json::json!({
            "fault_429_every": 0,
            "fault_500_every": 0,
            "fault_drop_every": 0,
            "token_endpoint_down": false,
            "latency_spike_every": 0,
            "latency_spike_ms": 0,
        }))
        .await;
    }

    /// The emulator's output so far, for assertion messages.
    pub fn log(&self) -> String {
        read_log(&self.state_dir.path().join("emulator.log"))
    }
}

/// A project whose one service (not running) uses `n` file secrets named as the emulator's
/// `--seed-count n` names its secrets: `bench-0000`, `bench-0001`, …
pub fn seeded_project(n: usize) -> Project {
    let p = Project::empty();
    let names: Vec<String> = (0..n).map(|i| format!("bench-{i:04}")).collect();
    let mut yaml = format!(
        "services:\n  app:\n    image: x\n    secrets: [{}]\nsecrets:\n",
        names.join(", ")
    );
    for name in &names {
        yaml.push_str(&format!("  {name}:\n    file: ./.runtime/secrets/{name}\n"));
    }
    p.write("compose.yaml", yaml);
    p
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parse `export KEY=VALUE` lines; `None` until every required key is present
/// and the last line is complete (the emulator may still be writing).
fn read_env_file(path: &Path) -> Option<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).ok()?;
    if !text.ends_with('\n') {
        return None;
    }
    let env: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            Some((key.trim().to_owned(), value.to_owned()))
        })
        .collect();
    REQUIRED_KEYS
        .iter()
        .all(|key| env.iter().any(|(k, v)| k == key && !v.is_empty()))
        .then_some(env)
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"))
}
