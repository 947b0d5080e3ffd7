//! `load`: read the project, then one call to the transaction runner (see
//! `transaction::load`), which writes every declared secret to its file, commits the state and
//! the audit line, brings a swarm stack along and fills `--env-output`.

use crate::cli::LoadOpts;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::loading;
use crate::transaction::load::{self, LoadOptions};

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
    let mut owners = crate::owners::Cache::open(&ctx.runtime_dir);
    let project = if !maps.is_empty() && !ctx.has_project() {
        None
    } else {
        Some(crate::owners::resolved(ctx.project()?, &mut owners).await?)
    };
    let layout = project.as_ref().map(|p| ctx.layout(p)).transpose()?;
    if let Some(project) = &project {
        let specs: Vec<&crate::compose::SecretSpec> = project.secrets_in_use().collect();
        ctx.naming()?.check_keys(&specs)?;
    }
    let options = LoadOptions {
        dry_run: opts.dry_run,
        prune: opts.prune,
        overwrite: opts.overwrite,
        no_cache: opts.no_cache,
        env_output: opts.env_output.as_deref(),
        maps,
    };
    let parts = project.as_ref().zip(layout.as_ref());
    let store = |fingerprints: &_| ctx.store(fingerprints);
    let code = load::run(ctx.site(), parts, store, options).await?;
    if code == 0 && !opts.dry_run {
        owners.save();
    }
    Ok(code)
}
