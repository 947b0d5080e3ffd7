//! The rotation hook: an external command (e.g. `ALTER USER`) that is part of the transaction.
//! It gets the new value on stdin only, and runs again with the previous value when a later
//! step fails, so its target goes back with the store, the file and the containers.
//!
//! It runs with a minimal environment: `PATH`, `HOME`, the phase, the secret's name and the
//! version being replaced or restored, plus only the variables the secret's
//! `x-compose-secrets.hook-env` names. A credential in compose-secrets' own environment
//! (`AZURE_CLIENT_SECRET`, `IDENTITY_HEADER`) never reaches it.

use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt as _;

use super::Settings;
use crate::compose::SecretSpec;
use crate::error::{Error, Result};
use crate::secret::SecretValue;

/// Which way the hook is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// With the new value, before the push.
    Rotate,
    /// With the previous value, after a later step failed.
    Rollback,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Rotate => "rotate",
            Phase::Rollback => "rollback",
        }
    }
}

/// The environment the hook gets, from the process's own (`inherited`).
pub fn environment(
    spec: &SecretSpec,
    phase: Phase,
    version: Option<&str>,
    inherited: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for name in ["PATH", "HOME"] {
        if let Some(v) = inherited(name) {
            env.push((name.to_string(), v));
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    }
    env.push(("COMPOSE_SECRETS_HOOK_PHASE".into(), phase.as_str().into()));
    env.push(("COMPOSE_SECRETS_SECRET".into(), spec.name.clone()));
    env.push((
        "COMPOSE_SECRETS_VERSION".into(),
        version.unwrap_or_default().to_string(),
    ));
    for name in &spec.hook_env {
        if let Some(v) = inherited(name) {
            env.push((name.clone(), v));
        }
    }
    env
}

/// How long the hook's leftover processes get between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// The words of a hook that ran out of time (see [`timed_out`]).
const TIMED_OUT: &str = "timed out after";

/// Run the rotation hook with `value` on stdin only; its output is discarded unread, because a
/// hook may echo what it was given.
///
/// The hook runs in a process group of its own, and whatever is left of that group when the
/// hook ends (exited, failed or timed out) is sent SIGTERM, then SIGKILL: a backgrounded
/// grandchild never acts on the target after the transaction has moved on. A process that
/// leaves the group (`setsid`) is beyond this.
pub async fn run(
    hook: &[String],
    spec: &SecretSpec,
    phase: Phase,
    version: Option<&str>,
    value: &SecretValue,
    settings: &Settings,
) -> Result<()> {
    let failed = |what: String| {
        Error::within(
            format!("rotation hook `{}` ({})", hook.join(" "), phase.as_str()),
            Error::manifest(&spec.name, what),
        )
    };
    let (program, args) = hook
        .split_first()
        .ok_or_else(|| failed("is empty".into()))?;
    let env = environment(spec, phase, version, &|k| std::env::var(k).ok());
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(&settings.hook_dir)
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("could not start ({})", e.kind())))?;
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let outcome = tokio::time::timeout(settings.hook_timeout, async {
        if let Some(mut stdin) = child.stdin.take() {
            // A hook that does not read its stdin closes the pipe: not an error in itself.
            let _ = stdin.write_all(value.expose().as_bytes()).await;
            let _ = stdin.shutdown().await;
        }
        child.wait().await
    })
    .await;
    if outcome.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    if let Some(group) = group {
        end_group(group).await;
    }
    match outcome {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(failed(match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".into(),
        })),
        Ok(Err(e)) => Err(failed(format!("could not be waited for ({})", e.kind()))),
        Err(_) => Err(failed(format!(
            "{TIMED_OUT} {}s; its whole process group was stopped",
            settings.hook_timeout.as_secs()
        ))),
    }
}

/// Whether `error` is a hook that ran out of time: it may have changed its target before it
/// was stopped, so its rollback phase runs.
pub fn timed_out(error: &Error) -> bool {
    matches!(error.innermost(), Error::Manifest { message, .. } if message.starts_with(TIMED_OUT))
}

/// SIGTERM to every process left in the hook's group, SIGKILL to any still there after
/// [`KILL_GRACE`]. The group leader has been reaped, so "no such process" means none is left.
async fn end_group(group: Pid) {
    if killpg(group, Signal::SIGTERM).is_err() {
        return;
    }
    let deadline = tokio::time::Instant::now() + KILL_GRACE;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if killpg(group, None).is_err() {
            return;
        }
    }
    let _ = killpg(group, Signal::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_gets_a_minimal_environment_and_its_allow_list_only() {
        let spec = SecretSpec {
            name: "db".into(),
            vault_name: "db".into(),
            env_key: "DB".into(),
            generator: crate::generator::Generator::default(),
            source: crate::compose::SecretSource::File("/p/db".into()),
            owner_uid: None,
            owner_gid: None,
            owner_from: Default::default(),
            mode: 0o400,
            pinned_version: None,
            rotation_hook: Some(vec!["true".into()]),
            hook_env: vec!["PGHOST".into(), "UNSET_ONE".into()],
            rotate_every: None,
            expiry_grace: None,
            certificate: None,
            uses: vec![],
            in_use: true,
        };
        let parent = |k: &str| {
            [
                ("PATH", "/bin"),
                ("HOME", "/root"),
                ("PGHOST", "db.internal"),
                ("AZURE_CLIENT_SECRET", "s3cr3t"),
                ("IDENTITY_HEADER", "h"),
            ]
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_string())
        };
        let env = environment(&spec, Phase::Rollback, Some("v1"), &parent);
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "PATH",
                "HOME",
                "COMPOSE_SECRETS_HOOK_PHASE",
                "COMPOSE_SECRETS_SECRET",
                "COMPOSE_SECRETS_VERSION",
                "PGHOST"
            ]
        );
        assert!(env
            .iter()
            .any(|(k, v)| k == "COMPOSE_SECRETS_HOOK_PHASE" && v == "rollback"));
        assert!(!env.iter().any(|(_, v)| v.contains("s3cr3t")));
    }
}
