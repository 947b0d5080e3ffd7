//! Test harness: runs the real kv-emulator binary on an ephemeral port in a temp state dir
//! and builds official-SDK clients that trust its CA.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret as CredentialSecret, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_core::time::Duration as SdkDuration;
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

pub struct Emulator {
    child: Child,
    _dir: Option<tempfile::TempDir>,
    pub state_dir: PathBuf,
    pub env: HashMap<String, String>,
}

pub fn parse_env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Emulator {
    pub fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let state_dir = dir.path().join("state");
        let mut emu = Self::start_in(&state_dir, args);
        emu._dir = Some(dir);
        emu
    }

    /// Starts on an existing state dir (restarts); the caller keeps the directory alive.
    pub fn start_in(state_dir: &Path, args: &[&str]) -> Self {
        let env_file = state_dir.join("emulator.env");
        // A killed predecessor leaves its file behind; don't mistake it for this run's.
        let _ = std::fs::remove_file(&env_file);
        let child = Command::new(env!("CARGO_BIN_EXE_kv-emulator"))
            .args(["--port", "0", "--state-dir"])
            .arg(state_dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kv-emulator");
        let mut emu = Self {
            child,
            _dir: None,
            state_dir: state_dir.to_path_buf(),
            env: HashMap::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&env_file) {
                emu.env = parse_env_file(&text);
                break;
            }
            if let Ok(Some(status)) = emu.child.try_wait() {
                panic!("kv-emulator exited before it was ready: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "kv-emulator did not write {env_file:?} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        emu
    }

    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("emulator.env has no {key}"))
    }

    pub fn url(&self) -> &str {
        self.var("AZURE_KEYVAULT_URL")
    }

    pub fn tenant(&self) -> &str {
        self.var("AZURE_TENANT_ID")
    }

    pub fn client_secret(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("client-secret")).expect("client-secret file")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait: the emulator persists and exits 0.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "kv-emulator ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// A reqwest 0.13 client (the SDK's transport) that trusts only the emulator's CA.
    pub fn http(&self) -> reqwest::Client {
        let pem = std::fs::read(self.var("COMPOSE_SECRETS_CA_FILE")).expect("read ca.pem");
        // reqwest without a provider of its own: ring, the one the product uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("parse ca.pem")])
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("build reqwest client")
    }

    pub fn client_options(&self, retry: RetryOptions) -> ClientOptions {
        ClientOptions {
            transport: Some(Transport::new(Arc::new(self.http()))),
            retry,
            ..Default::default()
        }
    }

    pub fn client_secret_credential(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Arc<ClientSecretCredential> {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = self.var("AZURE_AUTHORITY_HOST").to_string();
        let mut client_options = self.client_options(RetryOptions::none());
        client_options.cloud = Some(Arc::new(CloudConfiguration::from(cloud)));
        ClientSecretCredential::new(
            self.tenant(),
            client_id.to_string(),
            CredentialSecret::new(secret.to_string()),
            Some(ClientSecretCredentialOptions { client_options }),
        )
        .expect("ClientSecretCredential")
    }

    pub fn secret_client_with(
        &self,
        credential: Arc<dyn TokenCredential>,
        retry: RetryOptions,
    ) -> SecretClient {
        let options = SecretClientOptions {
            client_options: self.client_options(retry),
            verify_challenge_resource: Some(false),
            ..Default::default()
        };
        SecretClient::new(self.url(), credential, Some(options)).expect("SecretClient")
    }

    /// A client authenticated as `client_id` through the Entra client-secret flow.
    pub fn secret_client(&self, client_id: &str) -> SecretClient {
        let credential = self.client_secret_credential(client_id, &self.client_secret());
        self.secret_client_with(credential, low_retries())
    }

    pub async fn admin_get(&self, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.var("KV_EMULATOR_ADMIN_URL"));
        let resp = self.http().get(url).send().await.expect("admin GET");
        assert!(
            resp.status().is_success(),
            "admin GET {path}: {}",
            resp.status()
        );
        serde_json::from_slice(&resp.bytes().await.expect("admin body")).expect("admin JSON")
    }

    pub async fn admin_post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let url = format!("{}{path}", self.var("KV_EMULATOR_ADMIN_URL"));
        let resp = self
            .http()
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("admin POST");
        assert!(
            resp.status().is_success(),
            "admin POST {path}: {}",
            resp.status()
        );
        serde_json::from_slice(&resp.bytes().await.expect("admin body")).expect("admin JSON")
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn low_retries() -> RetryOptions {
    RetryOptions::exponential(ExponentialRetryOptions {
        max_retries: 3,
        initial_delay: SdkDuration::milliseconds(50),
        max_delay: SdkDuration::seconds(2),
        max_total_elapsed: SdkDuration::seconds(20),
    })
}
