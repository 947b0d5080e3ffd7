//! `rotate`: pick the secrets, then one call to the transaction runner (see
//! `transaction::rotate`), which locks, plans, runs one transaction per secret and reports.

use std::time::Duration;

use crate::cli::RotateOpts;
use crate::context::Context;
use crate::error::Result;
use crate::rotation::Selection;
use crate::transaction::rotate::{self, RotateRequest};

pub async fn run(ctx: &Context, opts: &RotateOpts) -> Result<u8> {
    let mut owners = crate::owners::Cache::open(&ctx.runtime_dir);
    let project = crate::owners::resolved(ctx.project()?, &mut owners).await?;
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
    let request = RotateRequest {
        dry_run: opts.dry_run,
        restart: !opts.no_restart,
        health_url: opts.health_url.as_deref(),
        health_timeout: Duration::from_secs(opts.health_timeout),
        hook_timeout: ctx.settings.hook_timeout()?,
        yes: opts.yes,
    };
    let site = ctx.site();
    let store = |fingerprints: &_| ctx.store(fingerprints);
    let code = rotate::run(site, &project, &layout, chosen, store, &request).await?;
    if code == 0 && !opts.dry_run {
        owners.save();
    }
    Ok(code)
}
