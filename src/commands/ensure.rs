//! `ensure`: create `.env` from the template and give every secret in use a value (see
//! `ensuring`), under the run lock.

use crate::cli::EnsureOpts;
use crate::context::Context;
use crate::ensuring::{self, EnsureRequest};
use crate::error::{exit, Result};
use crate::output::Report;

pub async fn run(ctx: &Context, opts: &EnsureOpts) -> Result<u8> {
    let project = ctx.project()?;
    // Secret files are placed first: a layout `load` would refuse fails here, before `.env`
    // changes.
    let layout = ctx.layout(&project)?;
    let request = EnsureRequest {
        force: &opts.force,
        template: ctx.template.clone(),
        dry_run: opts.dry_run,
        shown_from: &ctx.cwd,
    };
    // The lock comes before the first read of .env, so a rotation cannot slip in between.
    let _writing = if opts.dry_run {
        None
    } else {
        Some(ctx.begin_writing().await?)
    };
    let mut report = Report::new("ensure", ctx.env_file.display().to_string(), opts.dry_run);
    ensuring::ensure(&project, &layout, &ctx.env_files, &request, &mut report)?;
    ctx.reporter.print(&report);
    Ok(exit::OK)
}
