//! `compose up|down|stop|metadata`: compose-secrets as a Docker Compose provider service (see
//! `provider`). `up` is `ensure` (demo mode, no `.env` yet) then `load`, reported to Compose as
//! JSON lines; `down` and `stop` change nothing.

use crate::cli::{ComposeCommand, EnsureOpts, GlobalOpts, LoadOpts, ProviderOpts};
use crate::context::Context;
use crate::error::{exit, Error, Result};
use crate::output::Reporter;
use crate::provider;

pub async fn run(global: GlobalOpts, command: ComposeCommand) -> Result<u8> {
    match command {
        ComposeCommand::Metadata => {
            let _ = std::io::Write::write_all(
                &mut std::io::stdout().lock(),
                format!("{}\n", provider::metadata()).as_bytes(),
            );
            Ok(exit::OK)
        }
        ComposeCommand::Down(_) | ComposeCommand::Stop(_) => {
            // Nothing is written, so neither the lock nor the audit log is touched.
            provider::send("info", "secret files kept for the next up; nothing changed");
            Ok(exit::OK)
        }
        ComposeCommand::Up(opts) => up(global, &opts).await.inspect_err(|e| {
            provider::send("error", &e.to_string());
        }),
    }
}

async fn up(mut global: GlobalOpts, opts: &ProviderOpts) -> Result<u8> {
    // Compose's name is what the project found here must be called, not a name to give it.
    let compose_name = global.project_name.take().ok_or_else(|| {
        Error::Usage("compose up: --project-name is missing (docker compose passes it)".into())
    })?;
    let reporter = Reporter::capturing();
    let context = || {
        // The template comes from the settings (COMPOSE_SECRETS_TEMPLATE, `.env`, default).
        Context::new(&global, None, reporter.clone())?
            .without_process_variable("COMPOSE_PROJECT_NAME")
    };
    let mut ctx = context()?;
    let project = ctx.project()?;
    provider::check_project(&project, &compose_name, &opts.service)?;
    let secrets = project.secrets_in_use().count();
    if !ctx.use_keyvault()? && !ctx.env_file.exists() {
        provider::send("info", &format!("creating {}", ctx.show(&ctx.env_file)));
        super::ensure::run(&ctx, &EnsureOpts::default()).await?;
        relay(&reporter);
        // Settings in the new .env (the owner's uid, the store) count from here on.
        ctx = context()?;
    }
    provider::send(
        "info",
        &format!("loading {secrets} secret(s) of project {compose_name}"),
    );
    super::load::run(&ctx, &LoadOpts::default()).await?;
    relay(&reporter);
    Ok(exit::OK)
}

/// The captured report, one `info` line per secret.
fn relay(reporter: &Reporter) {
    if let Some(document) = reporter.take_json() {
        for line in provider::report_lines(&document) {
            provider::send("info", &line);
        }
    }
}
