//! `rotate`: pick the secrets, check Docker and the lock before anything changes, run one
//! transaction per secret (see `rotation`), record each in the audit log, print the report.

use std::time::Duration;

use crate::audit;
use crate::cli::RotateOpts;
use crate::context::Context;
use crate::deploy::{ContainerEngine, DockerEngine};
use crate::error::{exit, Error, Result};
use crate::files::lock::RunLock;
use crate::manifest::SecretSpec;
use crate::output::{Report, ReportItem};
use crate::rotation::{self, Settings, Target};

/// Docker's grace period for a container being restarted (as `docker restart`).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const HOOK_TIMEOUT: Duration = Duration::from_secs(120);
/// Swarm watches each new task this long before it counts the update as a success.
const SWARM_MONITOR: Duration = Duration::from_secs(5);

pub async fn run(ctx: &Context, opts: &RotateOpts) -> Result<u8> {
    if opts.names.is_empty() && !opts.all && opts.older_than.is_none() {
        return Err(Error::Usage(
            "rotate: name the secrets to rotate, or pass --all or --older-than AGE".into(),
        ));
    }
    let age = opts
        .older_than
        .as_deref()
        .map(rotation::parse_age)
        .transpose()?;
    let manifest = ctx.manifest()?;
    let store = ctx.store()?;
    let remote = store.is_remote();
    let named = if opts.names.is_empty() {
        rotation::all_rotatable(&manifest)
    } else {
        rotation::resolve_names(&manifest, &opts.names)?
    };
    if opts.value_stdin && (named.len() != 1 || opts.all || opts.older_than.is_some()) {
        return Err(Error::Usage(
            "--value-stdin takes exactly one named secret (not --all or --older-than)".into(),
        ));
    }
    let value = if opts.value_stdin {
        Some(rotation::read_value(std::io::stdin().lock())?)
    } else {
        None
    };

    let mut report = Report::new("rotate", store.describe(), opts.dry_run);
    let _lock = if opts.dry_run {
        lock_check(ctx, &mut report);
        None
    } else {
        crate::files::runtime_dir::ensure(&ctx.runtime_dir)?;
        let lock = RunLock::acquire(&ctx.lock_file(), Duration::from_secs(opts.lock_timeout))?;
        crate::files::secret_dir::remove_orphaned_temps_beside(&ctx.env_file)?;
        crate::files::secret_dir::remove_orphaned_temps_beside(&ctx.state_file())?;
        Some(lock)
    };

    let specs: Vec<&SecretSpec> = match age {
        Some(age) => {
            let rotated = rotation::last_rotated(store.as_ref(), &named, &ctx.audit_log()).await?;
            let due = rotation::older_than(named.clone(), &rotated, age, crate::clock::unix_now());
            for spec in named
                .iter()
                .filter(|s| !due.iter().any(|d| d.name == s.name))
            {
                report.push(ReportItem::new(&spec.name, "not-due").with_detail(format!(
                    "rotated less than {} ago",
                    opts.older_than.as_deref().unwrap_or_default()
                )));
            }
            due
        }
        None => named,
    };

    let restart = !opts.no_restart;
    let swarm_engine = if restart {
        crate::deploy::detect_swarm(ctx.target, &manifest.project_name).await?
    } else {
        None
    };
    let engine = if swarm_engine.is_some() {
        None
    } else {
        connect_docker(restart, opts.dry_run, &mut report).await?
    };
    if swarm_engine.is_some() {
        report.push(
            ReportItem::new(&manifest.project_name, "swarm")
                .with_detail("stack services are updated by a start-first rolling update with automatic rollback"),
        );
    }
    let containers = match &engine {
        Some(engine) => Some(engine.project_containers(&manifest.project_name).await?),
        None => None,
    };
    let plans = rotation::plan(
        &manifest,
        &specs,
        &ctx.secrets_dir,
        remote,
        containers.as_deref(),
        opts.health_url.as_deref(),
    )?;
    let settings = Settings {
        restart,
        health_timeout: Duration::from_secs(opts.health_timeout),
        stop_timeout: STOP_TIMEOUT,
        hook_timeout: HOOK_TIMEOUT,
        hook_dir: manifest.project_dir.clone(),
        rotated_by: audit::user_at_host(),
    };

    if opts.dry_run {
        for plan in &plans {
            for item in rotation::describe(plan, &settings, &store.describe(), value.is_some()) {
                report.push(item);
            }
        }
        ctx.reporter.print(&report);
        return Ok(exit::OK);
    }

    let target = Target {
        store: store.as_ref(),
        engine: engine.as_ref().map(|e| e as &dyn ContainerEngine),
        secrets_dir: &ctx.secrets_dir,
        state_file: &ctx.state_file(),
        settings,
        swarm: swarm_engine.as_ref().map(|engine| rotation::SwarmTarget {
            engine,
            stack: manifest.project_name.clone(),
            monitor: SWARM_MONITOR,
            timeout: Duration::from_secs(opts.health_timeout.max(30) * 4),
        }),
    };
    let mut value = value;
    for (i, plan) in plans.iter().enumerate() {
        let mut record = rotation::rotate(&target, plan, value.take()).await;
        for step in record.steps.drain(..) {
            report.push(step);
        }
        let key = audit::project_key(
            &ctx.runtime_dir,
            &ctx.secrets_dir,
            Some(&manifest),
            Some(store.as_ref()),
        )
        .await;
        let logged = key.and_then(|k| audit::append(&ctx.audit_log(), &k, &record.audit_event()));
        if let Some(error) = record.take_error() {
            for rest in &plans[i + 1..] {
                report.push(
                    ReportItem::new(&rest.spec.name, "not-attempted")
                        .with_detail("an earlier rotation in this run failed"),
                );
            }
            if let Err(e) = logged {
                ctx.reporter.note(&format!(
                    "compose-secrets: could not write the audit log: {e}"
                ));
            }
            ctx.reporter.print(&report);
            return Err(error);
        }
        if let Err(e) = logged {
            ctx.reporter.print(&report);
            return Err(e);
        }
    }
    if !restart && !plans.is_empty() {
        report.extra.insert(
            "restart_needed".into(),
            serde_json::json!(plans
                .iter()
                .flat_map(|p| p.spec.services())
                .collect::<std::collections::BTreeSet<_>>()),
        );
    }
    ctx.reporter.print(&report);
    Ok(exit::OK)
}

/// Connect to Docker when containers will be restarted. A real run needs it before anything is
/// pushed; a dry run only reports that the containers cannot be listed.
async fn connect_docker(
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
            Error::Docker { message } => Error::Docker {
                message: format!("{message}; nothing was changed (use --no-restart to rotate without restarting)"),
            },
            other => other,
        }),
    }
}

/// A dry run takes no lock, but says when another run holds it.
fn lock_check(ctx: &Context, report: &mut Report) {
    if std::fs::symlink_metadata(ctx.lock_file()).is_err() {
        return;
    }
    if let Err(Error::Locked { .. }) = RunLock::acquire(&ctx.lock_file(), Duration::ZERO) {
        report
            .push(ReportItem::new("lock", "busy").with_detail(
                "another compose-secrets is running; a real rotate would wait for it",
            ));
    }
}
