//! The rotation hook: an external command that gets the new value on stdin only.

use tokio::io::AsyncWriteExt as _;

use super::Settings;
use crate::error::{Error, Result};
use crate::secret::SecretValue;

/// Run the rotation hook with the new value on stdin only; its output is discarded unread,
/// because a hook may echo what it was given.
pub(super) async fn run_hook(
    hook: &[String],
    secret: &str,
    value: &SecretValue,
    settings: &Settings,
) -> Result<()> {
    let failed = |what: String| {
        Error::manifest(
            secret,
            format!(
                "rotation hook `{}` {what}; nothing was changed",
                hook.join(" ")
            ),
        )
    };
    let (program, args) = hook
        .split_first()
        .ok_or_else(|| failed("is empty".into()))?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(&settings.hook_dir)
        .env("COMPOSE_SECRETS_SECRET", secret)
        .env("COMPOSE_SECRETS_PHASE", "rotate")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("could not start ({})", e.kind())))?;
    let outcome = tokio::time::timeout(settings.hook_timeout, async {
        if let Some(mut stdin) = child.stdin.take() {
            // A hook that does not read its stdin closes the pipe: not an error in itself.
            let _ = stdin.write_all(value.expose().as_bytes()).await;
            let _ = stdin.shutdown().await;
        }
        child.wait().await
    })
    .await;
    match outcome {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(failed(match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".into(),
        })),
        Ok(Err(e)) => Err(failed(format!("could not be waited for ({})", e.kind()))),
        Err(_) => {
            let _ = child.kill().await;
            Err(failed(format!(
                "timed out after {}s",
                settings.hook_timeout.as_secs()
            )))
        }
    }
}
