//! `load`: write every declared secret to its file (see `loading`), then record the state and
//! the audit line, bring a swarm stack along, and fill `--env-output`.

use crate::audit;
use crate::cli::LoadOpts;
use crate::context::Context;
use crate::error::{exit, Error, Result};
use crate::files::state::State;
use crate::loading::{self, LoadRequest, Loaded};
use crate::output::Report;

pub async fn run(ctx: &Context, opts: &LoadOpts) -> Result<u8> {
    load(ctx, opts).await.map_err(|e| before_ensure(ctx, e))
}

/// In demo mode with no `.env` at all, every value is missing for one reason: `ensure` has not
/// run. Say that, rather than list the secrets `.env` lacks.
fn before_ensure(ctx: &Context, error: Error) -> Error {
    match error {
        Error::MissingSecrets { names, .. }
            if matches!(ctx.use_keyvault(), Ok(false)) && !ctx.env_file.exists() =>
        {
            Error::NoEnvFile {
                path: ctx.show(&ctx.env_file).into(),
                names,
                template: ctx
                    .template
                    .exists()
                    .then(|| ctx.show(&ctx.template).into()),
            }
        }
        other => other,
    }
}

async fn load(ctx: &Context, opts: &LoadOpts) -> Result<u8> {
    let maps = loading::parse_maps(&opts.maps)?;
    let project = if !maps.is_empty() && !ctx.has_project() {
        None
    } else {
        Some(ctx.project()?)
    };
    let layout = project.as_ref().map(|p| ctx.layout(p)).transpose()?;
    if let Some(project) = &project {
        let specs: Vec<&crate::compose::SecretSpec> = project.secrets_in_use().collect();
        ctx.naming()?.check_keys(&specs)?;
    }
    // The lock comes before the store is opened (which reads .env in demo mode), so a rotation
    // committed while this load waited is what it reads.
    let writing = if opts.dry_run {
        None
    } else {
        Some(ctx.begin_writing().await?)
    };
    let read_only = match &writing {
        Some(_) => None,
        None => ctx.begin_reading()?,
    };
    let runtime = writing.as_ref().map(|w| &w.runtime).or(read_only.as_ref());
    let store = ctx.store()?;
    let mut report = Report::new("load", store.describe(), opts.dry_run);
    // A bad --env-output is found before any secret file is written.
    let env_output = opts
        .env_output
        .as_deref()
        .map(|o| loading::open_env_output(&ctx.cwd, o))
        .transpose()?;
    // Whether the stack runs on a swarm is asked of Docker while the vault is being read.
    let swarm_probe = project.as_ref().filter(|_| !opts.dry_run).map(|p| {
        let (target, stack) = (ctx.target, p.name.clone());
        tokio::spawn(async move { crate::deploy::detect_swarm(target, &stack).await })
    });
    let request = LoadRequest {
        shown_from: ctx.cwd.clone(),
        dry_run: opts.dry_run,
        prune: opts.prune,
        overwrite: opts.overwrite,
        no_cache: opts.no_cache,
        concurrency: store.concurrency(),
    };
    let loaded = match (&project, &layout) {
        (Some(project), Some(layout)) => {
            if let Some(w) = &writing {
                // A rotation a crash cut short is closed before this load reads the state.
                crate::rotation::recover_intents(
                    &w.runtime,
                    project,
                    layout,
                    store.as_ref(),
                    &mut report,
                )
                .await?;
            }
            let state = State::read(runtime, &store.describe())?;
            // The chain key as it is before this load rewrites the files (the signing key's
            // among them): a new one is handed over to in the log.
            let mut log = match &writing {
                Some(w) => audit::project_key(&w.runtime, Some((project, layout)), None, true)
                    .await?
                    .map(|key| audit::AuditLog::new(&w.runtime, key)),
                None => None,
            };
            if let Some(log) = &log {
                log.check_appendable()?;
            }
            let (loaded, before, mut after) = loading::load_files(
                project,
                layout,
                store.as_ref(),
                state,
                &request,
                &ctx.reporter,
                &mut report,
            )
            .await?;
            if let (Some(w), Some(log)) = (&writing, log.as_mut()) {
                loading::commit(&w.runtime, project, layout, log, &before, &mut after).await?;
                let head = after.audit_head.as_ref();
                let anchored = audit::anchor::update_for(
                    store.as_ref(),
                    project,
                    &ctx.runtime_dir,
                    &w.runtime,
                    head,
                );
                if let Some(warning) = anchored.await {
                    ctx.reporter.warn(&warning);
                }
                let swarm = match swarm_probe {
                    Some(probe) => probe.await.map_err(|e| Error::Docker {
                        kind: crate::error::DockerFailure::Other,
                        message: format!("swarm detection did not finish: {e}"),
                    })??,
                    None => None,
                };
                if let Some(engine) = swarm {
                    loading::sync_swarm(
                        &engine,
                        &project.name,
                        layout,
                        &after,
                        &loaded,
                        &mut report,
                    )
                    .await?;
                }
            }
            loaded
        }
        _ => Loaded::default(),
    };
    if let Some(output) = env_output {
        let wanted = loading::env_output_keys(project.as_ref(), store.as_ref(), maps);
        loading::write_env_output(
            store.as_ref(),
            output,
            &wanted,
            &loaded.values,
            opts.dry_run,
            &ctx.cwd,
            &mut report,
        )
        .await?;
    }
    ctx.reporter.print(&report);
    Ok(exit::OK)
}
