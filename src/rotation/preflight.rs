//! Before anything changes: the Docker engine is reachable (when containers will be restarted),
//! and, for a dry run, whether another run holds the lock.

use crate::deploy::{ContainerEngine as _, DockerEngine};
use crate::error::{Error, Result};
use crate::files::lock::RunLock;
use crate::files::runtime_dir::RuntimeDir;
use crate::output::{Report, ReportItem};

/// Connect to Docker when containers will be restarted. A real run needs it before anything is
/// pushed; a dry run only reports that the containers cannot be listed.
pub async fn connect_docker(
    restart: bool,
    dry_run: bool,
    report: &mut Report,
) -> Result<Option<DockerEngine>> {
    if !restart {
        return Ok(None);
    }
    let connected = match DockerEngine::connect() {
        Ok(engine) => engine.ping().await.map(|()| engine),
        Err(e) => Err(e),
    };
    match connected {
        Ok(engine) => Ok(Some(engine)),
        Err(e) if dry_run => {
            report.push(
                ReportItem::new("docker", "unreachable")
                    .with_detail(format!("{e}; containers to restart are unknown")),
            );
            Ok(None)
        }
        Err(e) => Err(match e {
            Error::Docker { kind, message } => Error::Docker {
                kind,
                message: format!(
                    "{message}; nothing was changed (use --no-restart to rotate without restarting)"
                ),
            },
            other => other,
        }),
    }
}

/// A dry run takes no lock, but says when another run holds it.
pub fn lock_check(runtime: &RuntimeDir, report: &mut Report) -> crate::error::Result<()> {
    if RunLock::busy(runtime)? {
        report
            .push(ReportItem::new("lock", "busy").with_detail(
                "another compose-secrets is running; a real rotate would wait for it",
            ));
    }
    Ok(())
}
