//! `verify`: read the project's own files, gather what the outside world says (see
//! `checks::gather`), run every check over both, print a table or JSON, exit 1 on a failure
//! (or a warning with `--strict`).

use crate::checks::{self, gather, Findings, LocalSecret, Status};
use crate::cli::VerifyOpts;
use crate::compose::Project;
use crate::context::Context;
use crate::error::{exit, Error, Result};
use crate::files::layout::Layout;
use crate::files::runtime_dir::RuntimeDir;
use crate::files::state::State;
use crate::secret::FingerprintKey;
use crate::store::SecretStore;
use crate::transaction::Reading;

pub async fn run(ctx: &Context, opts: &VerifyOpts) -> Result<u8> {
    let mut project = ctx.project()?;
    let mut f = Findings::relative_to(&ctx.cwd);
    // --no-docker leaves named users unresolved: their files get the named-user warning.
    if !opts.no_docker {
        let mut owners = crate::owners::Cache::open(&ctx.runtime_dir);
        for e in crate::owners::resolve_for_verify(&mut project, &mut owners).await {
            f.add(Status::Fail, "files", "owners", e.to_string());
        }
    }
    let reference = gather::compose_reference(&ctx.cwd, &ctx.compose_flags()).await;
    checks::check_compose_model(&mut f, &project, &reference);
    let local = Local::read(ctx, &project, &mut f);
    let locals = local
        .layout
        .as_ref()
        .map(|l| checks::check_files(&mut f, &project, l, &local.state, &local.fingerprints))
        .unwrap_or_default();
    if let Some(store) = &local.store {
        let runtime = (local.runtime.as_ref(), &local.fingerprints);
        let facts = gather::store_facts(store.as_ref(), &project, &locals, &local.state, runtime);
        let facts = facts.await;
        checks::check_drift(&mut f, &locals, &facts, &local.state);
        checks::check_held(&mut f, &project, &facts, &local.state);
        checks::check_policy(&mut f, &project, &facts);
        if let Some(probe) = &facts.probe {
            checks::check_vault(&mut f, &facts.describe, probe);
        }
    }
    checks::check_certificates(&mut f, &locals, crate::clock::unix_now());
    checks::check_compose_environment(&mut f, &project, &locals);
    checks::check_env_file(&mut f, &ctx.env_file);
    let secret_files: Vec<(&str, &std::path::Path)> = locals
        .iter()
        .map(|l| (l.spec.name.as_str(), l.path.as_path()))
        .collect();
    let (dir, env, runtime_dir) = (&ctx.project_dir, &ctx.env_file, &ctx.runtime_dir);
    let git = gather::git(dir, env, runtime_dir, &secret_files);
    checks::check_git(&mut f, dir, env, runtime_dir, &secret_files, git.as_ref());
    if opts.no_docker {
        f.add(
            Status::Skip,
            "containers",
            format!("project {}", project.name),
            "--no-docker: containers, leaks into them and health not checked",
        );
    } else {
        check_engine(ctx, &project, &locals, &local.state, &mut f).await;
    }
    check_audit(ctx, &project, &local, &mut f).await;

    // The report goes to stdout before the error, so a failing run still shows every check.
    checks::table::print(&ctx.reporter, &f);
    let (failed, warned) = (f.count(Status::Fail), f.count(Status::Warn));
    if failed > 0 || (opts.strict && warned > 0) {
        return Err(Error::VerifyFailed { failed, warned });
    }
    Ok(exit::OK)
}

/// What `verify` reads of its own: the runtime directory (never created), the store handle,
/// the state and the layout; each that cannot be read is a finding, and the checks that need
/// it are skipped.
struct Local {
    runtime: Option<RuntimeDir>,
    /// The key the writers fingerprinted with (a random one when there is none yet).
    fingerprints: FingerprintKey,
    store: Option<Box<dyn SecretStore>>,
    state: State,
    layout: Option<Layout>,
}

impl Local {
    fn read(ctx: &Context, project: &Project, f: &mut Findings) -> Local {
        // Read-only: the runtime directory is looked at, never created, and no mode is changed.
        let Reading {
            runtime,
            fingerprints,
        } = ctx.begin_reading().unwrap_or_else(|e| {
            f.add(
                Status::Fail,
                "files",
                f.path_subject(&ctx.runtime_dir),
                e.to_string(),
            );
            Reading {
                runtime: None,
                fingerprints: FingerprintKey::random(),
            }
        });
        let store = ctx
            .store(&fingerprints)
            .map_err(|e| f.add(Status::Fail, "drift", "source", e.to_string()))
            .ok();
        let source = store.as_ref().map(|s| s.describe()).unwrap_or_default();
        let state = State::read(runtime.as_ref(), &source).unwrap_or_else(|e| {
            f.add(Status::Fail, "files", "state.json", e.to_string());
            State::new("")
        });
        let layout = ctx
            .layout(project)
            .map_err(|e| {
                let subject = f.path_subject(&ctx.project_dir);
                f.add(Status::Fail, "files", subject, e.to_string());
            })
            .ok();
        Local {
            runtime,
            fingerprints,
            store,
            state,
            layout,
        }
    }
}

/// Containers, Swarm and HTTP health, each gathered from the engine, then checked.
async fn check_engine(
    ctx: &Context,
    project: &Project,
    locals: &[LocalSecret<'_>],
    state: &State,
    f: &mut Findings,
) {
    let containers = gather::containers(&project.name).await;
    checks::check_docker(f, project, locals, &containers);
    match crate::deploy::detect_swarm(ctx.target, &project.name).await {
        Ok(Some(swarm)) => {
            let facts = gather::swarm(&swarm, &project.name).await;
            checks::check_swarm(f, &facts, &project.name, locals, state);
        }
        Ok(None) => {}
        Err(e) => f.add(Status::Fail, "swarm", &project.name, e.to_string()),
    }
    let running = containers.running();
    let answers = gather::http_health(project, &running).await;
    checks::check_http_health(f, project, &running, &answers);
}

/// The audit chain, its keys and anchor as `audit::verification` read them, and the lock.
async fn check_audit(ctx: &Context, project: &Project, local: &Local, f: &mut Findings) {
    let runtime = local.runtime.as_ref();
    let verification = crate::audit::verification(
        runtime,
        &ctx.runtime_dir,
        project,
        local.layout.as_ref(),
        local.store.as_deref(),
        &local.state,
    )
    .await;
    let busy = match runtime.map(crate::files::lock::RunLock::busy) {
        Some(Ok(busy)) => busy,
        Some(Err(e)) => {
            f.add(Status::Fail, "files", ".lock", e.to_string());
            false
        }
        None => false,
    };
    let log = checks::audit_log_path(&ctx.runtime_dir);
    checks::check_audit(f, runtime, &log, &verification, &local.state, busy);
    checks::check_failed_rollbacks(f, runtime, &log);
}
