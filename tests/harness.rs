//! Test harness: a temporary project directory and a builder around the real `compose-secrets` binary.
//!
//! Every run starts from a clean environment for the variables that would change
//! its behaviour (`AZURE_*`, `COMPOSE_*`, managed-identity endpoints, `RUST_LOG`),
//! so a developer's shell cannot leak into a test, and IMDS is disabled so no
//! code path can reach 169.254.169.254.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::emulator::Emulator;

pub const BIN: &str = env!("CARGO_BIN_EXE_compose-secrets");

/// Root of this repository, for copying the demo stack.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Variables stripped from every child, by prefix or exact name.
const SCRUBBED_PREFIXES: [&str; 4] = ["AZURE_", "COMPOSE_", "KV_EMULATOR_", "DEMO_"];
const SCRUBBED_NAMES: [&str; 8] = [
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "RUST_LOG",
    "SSL_CERT_FILE",
];

/// compose.yaml's `name:` line.
const DEMO_NAME_LINE: &str = "\nname: compose-secrets-demo\n";

pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// An empty project directory.
    pub fn empty() -> Project {
        Project {
            dir: tempfile::Builder::new()
                .prefix("cs-test-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    /// The repository's demo stack: `compose.yaml` and `.env.demo`, under a project name of its
    /// own. compose.yaml's `name:` would make every copy the one demo, whose containers on the
    /// shared engine a copy's `rotate` would then restart.
    pub fn demo() -> Project {
        static COPIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let p = Project::empty();
        let root = repo_root();
        let yaml = std::fs::read_to_string(root.join("compose.yaml")).unwrap();
        let copy = COPIES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("csdemo{}x{copy}", std::process::id());
        assert!(yaml.contains(DEMO_NAME_LINE), "compose.yaml lost its name");
        p.write(
            "compose.yaml",
            yaml.replace(DEMO_NAME_LINE, &format!("\nname: {name}\n")),
        );
        p.write(".env.demo", std::fs::read(root.join(".env.demo")).unwrap());
        p
    }

    /// The project's `name:` (a demo copy's own, see [`Project::demo`]).
    pub fn name(&self) -> String {
        self.read_string("compose.yaml")
            .lines()
            .find_map(|l| l.strip_prefix("name: ").map(str::to_string))
            .expect("compose.yaml has a name: line")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Project {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn read_string(&self, rel: &str) -> String {
        String::from_utf8(self.read(rel)).unwrap()
    }

    pub fn exists(&self, rel: &str) -> bool {
        std::fs::symlink_metadata(self.path(rel)).is_ok()
    }

    pub fn mode(&self, rel: &str) -> u32 {
        std::fs::symlink_metadata(self.path(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    pub fn owner(&self, rel: &str) -> (u32, u32) {
        let m = std::fs::symlink_metadata(self.path(rel)).unwrap();
        (m.uid(), m.gid())
    }

    pub fn inode(&self, rel: &str) -> u64 {
        std::fs::symlink_metadata(self.path(rel)).unwrap().ino()
    }

    /// Value of a key in the project's `.env`, parsed the simple way (unquoted values only).
    pub fn env_value(&self, key: &str) -> String {
        self.read_string(".env")
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
            .unwrap_or_else(|| panic!("{key} not in .env"))
    }

    /// Every file below the project with its bytes and mode: compare before and after a failed run.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        let mut out = BTreeMap::new();
        snapshot_into(self.dir.path(), self.dir.path(), &mut out);
        out
    }

    /// `git` in the project, as a user with a name (commits need one); a failure panics.
    #[track_caller]
    pub fn git(&self, args: &[&str]) -> &Project {
        let out = Command::new("git")
            .args(["-c", "user.email=t@example.invalid", "-c", "user.name=t"])
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self
    }

    /// Every line of `.runtime/audit.log`, parsed.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        self.read_string(".runtime/audit.log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    pub fn cmd(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(BIN);
        cmd.args(args).current_dir(self.dir.path());
        scrub(&mut cmd);
        if !is_root() {
            // As `make` does for a user who is not root: the demo's files and container are
            // theirs, since only root may give a file to uid 1000.
            cmd.env("DEMO_UID", nix_uid().to_string())
                .env("DEMO_GID", nix_gid().to_string());
        }
        Run { cmd, stdin: None }
    }
}

fn snapshot_into(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, u32)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        if rel.ends_with(".lock") {
            continue;
        }
        if meta.is_dir() {
            // An empty directory (or one holding only the lock) is not a change worth failing on.
            let before = out.len();
            snapshot_into(root, &path, out);
            if out.len() > before {
                out.insert(
                    rel.clone(),
                    (Vec::new(), meta.permissions().mode() & 0o7777),
                );
            }
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            out.insert(rel, (target.into_os_string().into_encoded_bytes(), 0));
        } else {
            out.insert(
                rel,
                (
                    std::fs::read(&path).unwrap_or_default(),
                    meta.permissions().mode() & 0o7777,
                ),
            );
        }
    }
}

/// Assert two snapshots are equal, naming only the paths that differ (never their bytes).
#[track_caller]
pub fn assert_same_files(
    before: &BTreeMap<PathBuf, (Vec<u8>, u32)>,
    after: &BTreeMap<PathBuf, (Vec<u8>, u32)>,
) {
    let mut differ = Vec::new();
    for path in before.keys().chain(after.keys()) {
        if before.get(path) != after.get(path) && !differ.contains(path) {
            differ.push(path.clone());
        }
    }
    assert!(differ.is_empty(), "files changed: {differ:?}");
}

/// Remove inherited variables that would change what the binary does.
pub fn scrub(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if SCRUBBED_PREFIXES.iter().any(|p| key.starts_with(p))
            || SCRUBBED_NAMES.contains(&key.as_str())
        {
            cmd.env_remove(&key);
        }
    }
    cmd.env("COMPOSE_SECRETS_DISABLE_IMDS", "1");
}

pub struct Run {
    pub cmd: Command,
    stdin: Option<Vec<u8>>,
}

impl Run {
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Run {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Run {
        self.cmd.env_remove(key);
        self
    }

    /// Key Vault mode against `emulator`, with its managed identity.
    pub fn keyvault(mut self, emulator: &Emulator) -> Run {
        self.cmd.envs(emulator.client_env());
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Run {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn run(mut self) -> Output {
        self.cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn compose-secrets");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(bytes) = self.stdin.take() {
            stdin.write_all(&bytes).unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    #[track_caller]
    pub fn success(self) -> Output {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Output {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Output {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Output {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Assert no secret value appears anywhere in the output.
    #[track_caller]
    pub fn assert_no_values(&self, values: &[String]) {
        for v in values {
            assert!(!v.is_empty());
            assert!(
                !self.stdout.contains(v.as_str()),
                "a secret value leaked to stdout:\n{}",
                self.stdout
            );
            assert!(
                !self.stderr.contains(v.as_str()),
                "a secret value leaked to stderr:\n{}",
                self.stderr
            );
        }
    }
}

/// The demo's four secrets: (Compose name, .env key).
pub const DEMO_SECRETS: [(&str, &str); 4] = [
    ("flask-secret-key", "FLASK_SECRET_KEY"),
    (
        "keycloak-service-client-secret",
        "KEYCLOAK_SERVICE_CLIENT_SECRET",
    ),
    ("keycloak-admin-password", "KEYCLOAK_ADMIN_PASSWORD"),
    ("audit-log-signing-key", "AUDIT_LOG_SIGNING_KEY"),
];

/// Whether a non-root user can be impersonated for permission tests (we run as root in CI).
pub fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

fn nix_gid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.gid())
        .unwrap_or(u32::MAX)
}
