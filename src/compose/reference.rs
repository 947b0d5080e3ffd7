//! Docker Compose v2 itself, as the reference for the project model: `verify` asks it for
//! `config --format json` with the user's own flags and compares the parts that decide
//! secrets. Only paths and names go on its command line; its output (which holds
//! interpolated environments) is parsed, never printed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::{Project, SecretSource};

/// Names the Compose v2 binary to compare with, or `none` to turn the cross-check off.
pub const SETTING: &str = "COMPOSE_SECRETS_COMPOSE";

/// `config` on a large project takes well under a second; a hung one must not hang verify.
const CONFIG_TIMEOUT: Duration = Duration::from_secs(20);

/// A Compose v2 found on this machine.
pub struct ComposeV2 {
    program: PathBuf,
    /// How the user knows it: `docker compose` (the CLI plugin) or `docker-compose <version>`.
    name: String,
}

/// Where the docker CLI looks for plugins after `$DOCKER_CONFIG/cli-plugins` (or
/// `~/.docker/cli-plugins`), in its order.
const SYSTEM_PLUGIN_DIRS: [&str; 4] = [
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
];

impl ComposeV2 {
    /// The Compose v2 to compare with: `COMPOSE_SECRETS_COMPOSE` when set (a path, or `none`
    /// to turn the cross-check off); else the docker CLI's compose plugin (always v2; run
    /// directly, as it also runs standalone, which spares starting the docker CLI); else a
    /// standalone `docker-compose` on `PATH` that reports version 2 or later. `Err` says why
    /// there is none: v1 resolves projects differently, so it is no reference (a v1 that is
    /// a Python script is recognised without running it).
    pub fn find() -> Result<ComposeV2, String> {
        if let Some(chosen) = std::env::var_os(SETTING).filter(|v| !v.is_empty()) {
            if chosen == "none" {
                return Err(format!("{SETTING}=none"));
            }
            let program = PathBuf::from(chosen);
            return Self::standalone(program.clone()).ok_or_else(|| {
                format!("{SETTING}={} is not Docker Compose v2", program.display())
            });
        }
        let config_dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
        let plugin = config_dir
            .iter()
            .map(|d| d.join("cli-plugins"))
            .chain(SYSTEM_PLUGIN_DIRS.iter().map(PathBuf::from))
            .map(|d| d.join("docker-compose"))
            .find(|p| is_executable(p));
        if let Some(program) = plugin {
            return Ok(ComposeV2 {
                program,
                name: "docker compose".into(),
            });
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|d| d.join("docker-compose"))
            .filter(|p| is_executable(p) && !is_python_script(p))
            .find_map(Self::standalone)
            .ok_or_else(|| {
                "Docker Compose v2 not found (`docker compose`, `docker-compose`)".into()
            })
    }

    /// `program` when it answers `version --short` with 2 or later.
    fn standalone(program: PathBuf) -> Option<ComposeV2> {
        let out = Command::new(&program)
            .args(["version", "--short"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let major = version.trim_start_matches('v').split('.').next()?;
        (major.parse::<u32>().ok()? >= 2).then(|| ComposeV2 {
            name: format!(
                "{} {version}",
                program
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            ),
            program,
        })
    }

    pub fn describe(&self) -> &str {
        &self.name
    }

    /// `config --format json` run in `cwd` with the user's Compose flags; `Err` carries
    /// Compose's own first error line.
    pub async fn config(&self, cwd: &Path, flags: &[OsString]) -> Result<Value, String> {
        self.config_within(cwd, flags, CONFIG_TIMEOUT).await
    }

    /// [`Self::config`] bounded by `timeout`. Both pipes are read while the child runs: a
    /// large project prints far more than a pipe holds (64 KiB), and a child blocked on a
    /// full pipe never exits. A child still running at the timeout is killed and reaped.
    async fn config_within(
        &self,
        cwd: &Path,
        flags: &[OsString],
        timeout: Duration,
    ) -> Result<Value, String> {
        let child = tokio::process::Command::new(&self.program)
            .args(flags)
            .args(["config", "--format", "json"])
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run it: {e}"))?;
        let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(out) => out.map_err(|e| e.to_string())?,
            // Dropping the future drops the child, which `kill_on_drop` kills; tokio reaps it.
            Err(_) => return Err(format!("no answer within {}s", timeout.as_secs())),
        };
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("failed")
                .trim()
                .to_string());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("unreadable output: {e}"))
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Compose v1 as Debian and pip install it is a Python script; v2 is a static binary.
fn is_python_script(path: &Path) -> bool {
    let mut head = [0u8; 64];
    let Ok(n) = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head))
    else {
        return false;
    };
    let first_line = head[..n].split(|&b| b == b'\n').next().unwrap_or_default();
    first_line.starts_with(b"#!") && first_line.windows(6).any(|w| w == b"python")
}

/// What decides secrets in Compose's printed project: its name, the secrets it keeps (file,
/// environment or external name), and each enabled service's mounts in order.
pub fn view_of_config(doc: &Value) -> Value {
    let doc = undouble_dollars(doc);
    let secrets: serde_json::Map<String, Value> = doc
        .get("secrets")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(key, def)| {
            let view = if def.get("external").and_then(Value::as_bool) == Some(true) {
                json!({"external": def.get("name").cloned().unwrap_or(Value::Null)})
            } else if let Some(file) = def.get("file") {
                json!({ "file": file })
            } else {
                json!({ "environment": def.get("environment").cloned().unwrap_or(Value::Null) })
            };
            (key.clone(), view)
        })
        .collect();
    let services: serde_json::Map<String, Value> = doc
        .get("services")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, svc)| {
            let mounts: Vec<Value> = svc
                .get("secrets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|m| {
                    let field = |k: &str| m.get(k).filter(|v| !v.is_null()).cloned();
                    mount_view(
                        field("source"),
                        field("target"),
                        field("uid"),
                        field("gid"),
                        field("mode").map(|m| match m {
                            // Compose prints the octal text ("0440"); read as JSON it may be a number.
                            Value::Number(n) => json!(format!("0{:o}", n.as_u64().unwrap_or(0))),
                            other => other,
                        }),
                    )
                })
                .collect();
            (name.clone(), Value::Array(mounts))
        })
        .collect();
    json!({"name": doc.get("name").cloned().unwrap_or(Value::Null), "secrets": secrets, "services": services})
}

/// The same view of compose-secrets' model: enabled services, and the secrets they use.
pub fn view_of_project(project: &Project) -> Value {
    let mut used = std::collections::BTreeSet::new();
    let mut services = serde_json::Map::new();
    for svc in project.services.values().filter(|s| s.enabled) {
        used.extend(svc.mounts.iter().map(|m| m.source.as_str()));
        used.extend(svc.build_secrets.iter().map(String::as_str));
        let mounts = svc
            .mounts
            .iter()
            .map(|m| {
                mount_view(
                    Some(json!(m.source)),
                    Some(json!(m.target)),
                    m.uid.as_ref().map(|u| json!(u)),
                    m.gid.as_ref().map(|g| json!(g)),
                    m.mode.map(|mode| json!(format!("0{mode:o}"))),
                )
            })
            .collect();
        services.insert(svc.name.clone(), Value::Array(mounts));
    }
    let secrets: serde_json::Map<String, Value> = project
        .secrets
        .iter()
        .filter(|s| used.contains(s.name.as_str()))
        .map(|s| {
            let view = match &s.source {
                SecretSource::File(p) => json!({"file": p}),
                SecretSource::Environment(var) => json!({"environment": var}),
                SecretSource::External { name } => json!({"external": name}),
            };
            (s.name.clone(), view)
        })
        .collect();
    json!({"name": project.name, "secrets": secrets, "services": services})
}

fn mount_view(
    source: Option<Value>,
    target: Option<Value>,
    uid: Option<Value>,
    gid: Option<Value>,
    mode: Option<Value>,
) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in [
        ("source", source),
        ("target", target),
        ("uid", uid),
        ("gid", gid),
        ("mode", mode),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    }
    Value::Object(m)
}

/// Compose doubles every `$` in what it prints: undo it.
fn undouble_dollars(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("$$", "$")),
        Value::Array(items) => Value::Array(items.iter().map(undouble_dollars).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.replace("$$", "$"), undouble_dollars(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Each difference between two views, in words naming the secret or service.
pub fn differences(reference: &Value, ours: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if reference["name"] != ours["name"] {
        out.push(format!(
            "project name: Compose {}, compose-secrets {}",
            reference["name"], ours["name"]
        ));
    }
    for (section, what) in [("secrets", "secret"), ("services", "service")] {
        let empty = serde_json::Map::new();
        let theirs = reference[section].as_object().unwrap_or(&empty);
        let mine = ours[section].as_object().unwrap_or(&empty);
        let keys: std::collections::BTreeSet<&String> = theirs.keys().chain(mine.keys()).collect();
        for key in keys {
            match (theirs.get(key), mine.get(key)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(a), Some(b)) => out.push(format!(
                    "{what} {key}: Compose has {a}, compose-secrets {b}"
                )),
                (Some(_), None) => out.push(format!("{what} {key}: only Compose has it")),
                (None, _) => out.push(format!("{what} {key}: only compose-secrets has it")),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn fake(dir: &Path, script: &str) -> ComposeV2 {
        let program = dir.join("docker-compose");
        std::fs::write(&program, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        ComposeV2 {
            program,
            name: "fake".into(),
        }
    }

    /// 1 MiB of JSON, far past a pipe's 64 KiB: read while the child writes, it parses.
    #[tokio::test]
    async fn output_larger_than_a_pipe_is_read_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let compose = fake(
            tmp.path(),
            "printf '{\"name\": \"'; head -c 1048576 /dev/zero | tr '\\0' x; printf '\"}'",
        );
        let doc = compose
            .config_within(tmp.path(), &[], Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(doc["name"].as_str().map(str::len), Some(1_048_576));
    }

    /// A Compose that never answers is killed at the timeout (its pid no longer runs).
    #[tokio::test]
    async fn a_hung_compose_is_killed_at_the_timeout() {
        let tmp = tempfile::tempdir().unwrap();
        let pid_file = tmp.path().join("pid");
        let compose = fake(
            tmp.path(),
            &format!("echo $$ > {}; exec sleep 600", pid_file.display()),
        );
        let e = compose
            .config_within(tmp.path(), &[], Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(e.contains("no answer within 2s"), "{e}");
        // No pid file: the shell was killed before it wrote one, so it is gone too.
        let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        else {
            return;
        };
        // Reaped by tokio shortly after the kill; poll without a time bound on the assertion.
        let gone = (0..600).any(|_| {
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"));
            if alive {
                std::thread::sleep(Duration::from_millis(50));
            }
            !alive
        });
        assert!(gone, "the hung compose {pid} still runs");
    }
}
