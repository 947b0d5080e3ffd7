//! `verify`: run every check (see `checks`), print a table or JSON, exit 1 on a failure
//! (or a warning with `--strict`).

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};

use crate::checks::{self, Findings, Status};
use crate::cli::VerifyOpts;
use crate::context::Context;
use crate::deploy::ContainerEngine as _;
use crate::dotenv::DotEnv;
use crate::error::{exit, Error, Result};
use crate::files::state::State;

pub async fn run(ctx: &Context, opts: &VerifyOpts) -> Result<u8> {
    let manifest = ctx.manifest()?;
    let mut f = Findings::relative_to(&ctx.cwd);

    let locals = checks::check_files(&mut f, &manifest, &ctx.secrets_dir);
    let store = match ctx.store() {
        Ok(store) => Some(store),
        Err(e) => {
            f.add(Status::Fail, "drift", "source", e.to_string());
            None
        }
    };
    let state = store
        .as_ref()
        .map(|s| State::read(&ctx.state_file(), &s.describe()))
        .unwrap_or_else(|| State::new(""));
    if let Some(store) = &store {
        checks::check_drift(&mut f, &locals, store.as_ref(), &state, store.is_remote()).await;
        if store.is_remote() {
            let names: Vec<String> = locals.iter().map(|l| l.spec.vault_name.clone()).collect();
            checks::check_vault(&mut f, store.as_ref(), &names).await;
        }
    }
    checks::check_compose_environment(&mut f, &manifest, &locals, &interpolation_variables(ctx));
    checks::check_env_file(&mut f, &ctx.env_file);
    checks::check_git(&mut f, &ctx.cwd, &ctx.env_file, &ctx.runtime_dir);

    if opts.no_docker {
        f.add(
            Status::Skip,
            "containers",
            format!("project {}", manifest.project_name),
            "--no-docker: containers, leaks into them and health not checked",
        );
    } else {
        let running = check_docker(&mut f, &manifest, &locals).await;
        if let Ok(Some(swarm)) =
            crate::deploy::detect_swarm(ctx.target, &manifest.project_name).await
        {
            checks::check_swarm(&mut f, &swarm, &manifest.project_name, &locals, &state).await;
        }
        checks::check_http_health(&mut f, &manifest, &running).await;
    }

    let keys = audit_keys(ctx, &manifest, store.as_deref()).await;
    checks::check_audit(&mut f, &ctx.audit_log(), &keys);

    // The report goes to stdout before the error, so a failing run still shows every check.
    print(ctx, &f);
    let (failed, warned) = (f.count(Status::Fail), f.count(Status::Warn));
    if failed > 0 || (opts.strict && warned > 0) {
        return Err(Error::VerifyFailed { failed, warned });
    }
    Ok(exit::OK)
}

/// Containers of the project through the Docker API: staleness, leaks, Docker health.
/// An unreachable engine is one failure naming it; returns the services with a running container.
async fn check_docker(
    f: &mut Findings,
    manifest: &crate::manifest::Manifest,
    locals: &[checks::LocalSecret<'_>],
) -> Vec<String> {
    let unreachable_subject = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .map_or_else(
            || "docker engine".to_string(),
            |h| format!("DOCKER_HOST={h}"),
        );
    let engine = match crate::deploy::DockerEngine::connect() {
        Ok(engine) => engine,
        Err(e) => {
            f.add(
                Status::Fail,
                "containers",
                unreachable_subject,
                format!("{e} (or pass --no-docker)"),
            );
            return Vec::new();
        }
    };
    if let Err(e) = engine.ping().await {
        f.add(
            Status::Fail,
            "containers",
            unreachable_subject,
            format!("{e} (or pass --no-docker)"),
        );
        return Vec::new();
    }
    match engine.project_containers(&manifest.project_name).await {
        Ok(containers) => {
            checks::check_containers(f, manifest, locals, &containers);
            containers
                .iter()
                .filter(|c| c.running)
                .map(|c| c.service.clone())
                .collect()
        }
        Err(e) => {
            f.add(
                Status::Fail,
                "containers",
                format!("project {}", manifest.project_name),
                e.to_string(),
            );
            Vec::new()
        }
    }
}

/// What Compose interpolates `environment:` with: `.env`, overridden by the process environment.
fn interpolation_variables(ctx: &Context) -> HashMap<String, String> {
    let mut variables = HashMap::new();
    if let Ok(Some(env)) = DotEnv::read(&ctx.env_file) {
        for key in env.keys() {
            if let Some(v) = env.get(key) {
                variables.insert(key.to_string(), v.expose().to_string());
            }
        }
    }
    variables.extend(std::env::vars());
    variables
}

/// The current signing key, plus earlier versions of it from the vault: lines written before a
/// rotation of `audit-log-signing-key` were signed with the value of that time.
async fn audit_keys(
    ctx: &Context,
    manifest: &crate::manifest::Manifest,
    store: Option<&dyn crate::store::SecretStore>,
) -> Vec<crate::audit::AuditKey> {
    let mut keys = Vec::new();
    if let Ok(key) =
        crate::audit::project_key(&ctx.runtime_dir, &ctx.secrets_dir, Some(manifest), store).await
    {
        keys.push(key);
    }
    if let Ok(Some(local)) = crate::audit::AuditKey::existing_local(&ctx.runtime_dir) {
        keys.push(local);
    }
    if let (Some(store), Some(spec)) = (
        store.filter(|s| s.is_remote()),
        manifest.lookup(crate::audit::SIGNING_KEY_SECRET),
    ) {
        if let Ok(versions) = store.list_versions(&spec.vault_name).await {
            for v in versions
                .iter()
                .rev()
                .take(10)
                .filter_map(|v| v.version.as_deref())
            {
                if let Ok(old) = store.get_version(&spec.vault_name, v).await {
                    keys.push(crate::audit::AuditKey::from_signing_secret(&old.value));
                }
            }
        }
    }
    keys
}

fn print(ctx: &Context, f: &Findings) {
    let summary = serde_json::json!({
        "pass": f.count(Status::Pass),
        "warn": f.count(Status::Warn),
        "fail": f.count(Status::Fail),
        "skip": f.count(Status::Skip),
    });
    let mut out = std::io::stdout().lock();
    if ctx.reporter.json {
        let doc =
            serde_json::json!({ "command": "verify", "checks": f.checks, "summary": summary });
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        );
        return;
    }
    if ctx.reporter.quiet {
        return;
    }
    let _ = out.write_all(render_table(f, std::io::stdout().is_terminal()).as_bytes());
}

/// `STATUS  CHECK  SUBJECT  MESSAGE`, aligned, then a summary line; colours only on a TTY.
fn render_table(f: &Findings, color: bool) -> String {
    use std::fmt::Write as _;
    const SUBJECT_MAX: usize = 48;
    let category_width = f
        .checks
        .iter()
        .map(|c| c.category.len())
        .chain(["CHECK".len()])
        .max()
        .unwrap_or(0);
    let subject_width = f
        .checks
        .iter()
        .map(|c| c.subject.chars().count())
        .chain(["SUBJECT".len()])
        .max()
        .unwrap_or(0)
        .min(SUBJECT_MAX);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<6}  {:<category_width$}  {:<subject_width$}  MESSAGE",
        "STATUS", "CHECK", "SUBJECT"
    );
    for c in &f.checks {
        let (label, code) = match c.status {
            Status::Pass => ("PASS", "32"),
            Status::Warn => ("WARN", "33"),
            Status::Fail => ("FAIL", "31"),
            Status::Skip => ("SKIP", "2"),
        };
        // Pad before colouring: escape codes would count as width.
        let label = format!("{label:<6}");
        let label = if color {
            format!("\x1b[{code}m{label}\x1b[0m")
        } else {
            label
        };
        let _ = writeln!(
            text,
            "{label}  {:<category_width$}  {:<subject_width$}  {}",
            c.category, c.subject, c.message
        );
    }
    let _ = writeln!(
        text,
        "\n{} passed, {} failed, {} warning{}, {} skipped",
        f.count(Status::Pass),
        f.count(Status::Fail),
        f.count(Status::Warn),
        if f.count(Status::Warn) == 1 { "" } else { "s" },
        f.count(Status::Skip)
    );
    text
}
