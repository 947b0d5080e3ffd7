//! `verify`: run every check (see `checks`), print a table or JSON, exit 1 on a failure
//! (or a warning with `--strict`).

use crate::checks::{self, Findings, Status};
use crate::cli::VerifyOpts;
use crate::context::Context;
use crate::error::{exit, Error, Result};
use crate::files::state::State;

pub async fn run(ctx: &Context, opts: &VerifyOpts) -> Result<u8> {
    let project = ctx.project()?;
    let mut f = Findings::relative_to(&ctx.cwd);
    checks::check_compose_model(&mut f, &project, &ctx.cwd, &ctx.compose_flags()).await;
    // Read-only: the runtime directory is looked at, never created, and no mode is changed.
    let runtime = match ctx.begin_reading() {
        Ok(runtime) => runtime,
        Err(e) => {
            f.add(
                Status::Fail,
                "files",
                f.path_subject(&ctx.runtime_dir),
                e.to_string(),
            );
            None
        }
    };
    let store = match ctx.store() {
        Ok(store) => Some(store),
        Err(e) => {
            f.add(Status::Fail, "drift", "source", e.to_string());
            None
        }
    };
    let state = match State::read(
        runtime.as_ref(),
        &store.as_ref().map(|s| s.describe()).unwrap_or_default(),
    ) {
        Ok(state) => state,
        Err(e) => {
            f.add(Status::Fail, "files", "state.json", e.to_string());
            State::new("")
        }
    };
    let layout = match ctx.layout(&project) {
        Ok(layout) => Some(layout),
        Err(e) => {
            f.add(
                Status::Fail,
                "files",
                f.path_subject(&ctx.project_dir),
                e.to_string(),
            );
            None
        }
    };
    let locals = layout
        .as_ref()
        .map(|l| checks::check_files(&mut f, &project, l, &state))
        .unwrap_or_default();
    if let Some(store) = &store {
        checks::check_drift(&mut f, &locals, store.as_ref(), &state).await;
        checks::check_held(&mut f, &project, store.as_ref(), &state).await;
        checks::check_policy(&mut f, &project, store.as_ref(), runtime.as_ref()).await;
        if store.keeps_versions() {
            let names: Vec<String> = locals.iter().map(|l| store.key_for(l.spec)).collect();
            checks::check_vault(&mut f, store.as_ref(), &names).await;
        }
    }
    checks::check_certificates(&mut f, &locals, crate::clock::unix_now());
    checks::check_compose_environment(&mut f, &project, &locals);
    checks::check_env_file(&mut f, &ctx.env_file);
    let secret_files: Vec<(&str, &std::path::Path)> = locals
        .iter()
        .map(|l| (l.spec.name.as_str(), l.path.as_path()))
        .collect();
    checks::check_git(
        &mut f,
        &ctx.project_dir,
        &ctx.env_file,
        &ctx.runtime_dir,
        &secret_files,
    );
    if opts.no_docker {
        f.add(
            Status::Skip,
            "containers",
            format!("project {}", project.name),
            "--no-docker: containers, leaks into them and health not checked",
        );
    } else {
        let running = checks::check_docker(&mut f, &project, &locals).await;
        match crate::deploy::detect_swarm(ctx.target, &project.name).await {
            Ok(Some(swarm)) => {
                checks::check_swarm(&mut f, &swarm, &project.name, &locals, &state).await;
            }
            Ok(None) => {}
            Err(e) => f.add(Status::Fail, "swarm", &project.name, e.to_string()),
        }
        checks::check_http_health(&mut f, &project, &running).await;
    }
    let verification = crate::audit::verification(
        runtime.as_ref(),
        &ctx.runtime_dir,
        &project,
        layout.as_ref(),
        store.as_deref(),
        &state,
    )
    .await;
    let busy = match runtime.as_ref().map(crate::files::lock::RunLock::busy) {
        Some(Ok(busy)) => busy,
        Some(Err(e)) => {
            f.add(Status::Fail, "files", ".lock", e.to_string());
            false
        }
        None => false,
    };
    checks::check_audit(
        &mut f,
        runtime.as_ref(),
        &checks::audit_log_path(&ctx.runtime_dir),
        &verification,
        &state,
        busy,
    );
    checks::check_failed_rollbacks(
        &mut f,
        runtime.as_ref(),
        &checks::audit_log_path(&ctx.runtime_dir),
    );

    // The report goes to stdout before the error, so a failing run still shows every check.
    checks::table::print(&ctx.reporter, &f);
    let (failed, warned) = (f.count(Status::Fail), f.count(Status::Warn));
    if failed > 0 || (opts.strict && warned > 0) {
        return Err(Error::VerifyFailed { failed, warned });
    }
    Ok(exit::OK)
}
