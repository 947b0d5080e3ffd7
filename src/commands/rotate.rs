//! `rotate`: pick the secrets, take the lock and check Docker before anything changes, run one
//! transaction per secret (see `rotation`), record each in the audit log, print the report.

use std::io::IsTerminal as _;
use std::time::Duration;

use crate::audit;
use crate::cli::RotateOpts;
use crate::context::Context;
use crate::deploy::ContainerEngine;
use crate::error::{exit, Error, Result};
use crate::files::state::State;
use crate::output::{Report, ReportItem};
use crate::rotation::{self, preflight, Run, Selection, Settings};

/// Docker's grace period for a container being restarted (as `docker restart`).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a rotation hook may run (COMPOSE_SECRETS_HOOK_TIMEOUT, in seconds, overrides it).
const HOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// The hook's time limit: COMPOSE_SECRETS_HOOK_TIMEOUT (whole seconds, at least 1) or
/// [`HOOK_TIMEOUT`].
fn hook_timeout() -> Result<Duration> {
    match std::env::var("COMPOSE_SECRETS_HOOK_TIMEOUT") {
        Err(_) => Ok(HOOK_TIMEOUT),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(secs) if secs >= 1 => Ok(Duration::from_secs(secs)),
            _ => Err(Error::Usage(format!(
                "COMPOSE_SECRETS_HOOK_TIMEOUT={text}: expected a whole number of seconds, at least 1"
            ))),
        },
    }
}

pub async fn run(ctx: &Context, opts: &RotateOpts) -> Result<u8> {
    let project = crate::owners::resolved(ctx.project()?).await?;
    let layout = ctx.layout(&project)?;
    let chosen = Selection {
        names: &opts.names,
        all: opts.all,
        older_than: opts.older_than.as_deref(),
        due: opts.due,
        value_stdin: opts.value_stdin,
    }
    .choose(&project)?;
    ctx.naming()?.check_keys(&chosen.named)?;
    // The lock comes before the store is opened: what it reads is what the last run committed.
    let writing = if opts.dry_run {
        None
    } else {
        Some(
            ctx.begin_writing(Duration::from_secs(opts.lock_timeout))
                .await?,
        )
    };
    let read_only = match &writing {
        Some(_) => None,
        None => ctx.begin_reading()?,
    };
    let store = ctx.store()?;
    let mut report = Report::new("rotate", store.describe(), opts.dry_run);
    if let Some(w) = &writing {
        // A rotation a crash cut short is closed before this one reads the store or the state.
        rotation::recover_intents(&w.runtime, &project, &layout, store.as_ref(), &mut report)
            .await?;
        crate::deploy::replace::settle_reported(&project.name, &mut report).await;
    }
    if let Some(runtime) = &read_only {
        preflight::lock_check(runtime, &mut report)?;
    }
    let runtime = writing.as_ref().map(|w| &w.runtime).or(read_only.as_ref());
    let specs = chosen.due(store.as_ref(), runtime, &mut report).await?;

    let restart = !opts.no_restart;
    let swarm_engine = if restart {
        crate::deploy::detect_swarm(ctx.target, &project.name).await?
    } else {
        None
    };
    let engine = match swarm_engine {
        Some(_) => None,
        None => {
            preflight::connect_docker(
                restart,
                opts.dry_run,
                &mut report,
                " (use --no-restart to rotate without restarting)",
            )
            .await?
        }
    };
    if swarm_engine.is_some() {
        report.push(ReportItem::new(&project.name, "swarm").with_detail(
            "stack services are updated by a start-first rolling update with automatic rollback",
        ));
    }
    let containers = match &engine {
        Some(engine) => Some(engine.project_containers(&project.name).await?),
        None => None,
    };
    let plans = rotation::plan(
        &project,
        &layout,
        store.as_ref(),
        &specs,
        containers.as_deref(),
        opts.health_url.as_deref(),
    )?;
    let settings = Settings {
        restart,
        health_timeout: Duration::from_secs(opts.health_timeout),
        stop_timeout: STOP_TIMEOUT,
        hook_timeout: hook_timeout()?,
        hook_dir: project.directory.clone(),
        rotated_by: audit::user_at_host(),
        shown_from: ctx.cwd.clone(),
    };
    if !opts.dry_run && restart && swarm_engine.is_none() {
        confirm_when_nothing_runs(ctx, opts, &plans, &mut report)?;
    }
    let Some(writing) = &writing else {
        for plan in &plans {
            let items =
                rotation::describe(plan, &settings, &store.describe(), chosen.value.is_some());
            report.items.extend(items);
        }
        ctx.reporter.print(&report);
        return Ok(exit::OK);
    };
    let key = audit::project_key(
        &writing.runtime,
        Some((&project, &layout)),
        Some(store.as_ref()),
        true,
    )
    .await?
    .ok_or_else(|| Error::config(&ctx.runtime_dir, "no audit key could be made"))?;
    let mut run = Run {
        store: store.as_ref(),
        engine: engine.as_ref().map(|e| e as &dyn ContainerEngine),
        settings,
        swarm: swarm_engine.as_ref().map(|engine| rotation::SwarmTarget {
            engine,
            stack: project.name.clone(),
            monitor: crate::deploy::swarm::MONITOR,
            timeout: Duration::from_secs(opts.health_timeout.max(30) * 4),
        }),
        runtime: &writing.runtime,
        state: State::read(Some(&writing.runtime), &store.describe())?,
        audit: audit::AuditLog::new(&writing.runtime, key),
    };
    let outcome = rotation::rotate_all(&mut run, &plans, chosen.value, &mut report).await;
    let head = run.state.audit_head.as_ref();
    let anchored = audit::anchor::update_for(
        store.as_ref(),
        &project,
        &ctx.runtime_dir,
        &writing.runtime,
        head,
    );
    if let Some(warning) = anchored.await {
        ctx.reporter.warn(&warning);
    }
    ctx.reporter.print(&report);
    outcome.map(|()| exit::OK)
}

/// The stack is down (no running container uses a secret to rotate): warn, say what to run
/// next, and on a terminal ask before anything changes.
fn confirm_when_nothing_runs(
    ctx: &Context,
    opts: &RotateOpts,
    plans: &[rotation::SecretPlan],
    report: &mut Report,
) -> Result<()> {
    let Some(idle) = preflight::NothingRunning::find(
        plans
            .iter()
            .map(|p| (p.spec.name.as_str(), p.services.as_slice())),
    ) else {
        return Ok(());
    };
    ctx.reporter.warn(&idle.warning());
    report
        .extra
        .insert("not_running".into(), serde_json::json!(idle.services));
    let ask = preflight::should_ask(
        opts.yes,
        std::io::stdin().is_terminal(),
        std::io::stderr().is_terminal(),
    );
    if ask && !preflight::ask(&idle.question()) {
        return Err(Error::Usage(
            "rotate cancelled: nothing was changed (--yes rotates without asking)".into(),
        ));
    }
    Ok(())
}
