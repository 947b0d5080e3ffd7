//! `sync`: follow the store (see `syncing`): one step, or `--watch` until stopped.

use std::time::Duration;

use crate::cli::SyncOpts;
use crate::context::Context;
use crate::error::{exit, Error, Result};
use crate::syncing::{self, Parts, Session, SyncRequest};

/// The shortest `--interval`: a poll is a listing of the whole vault.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(ctx: &Context, opts: &SyncOpts) -> Result<u8> {
    let request = SyncRequest {
        dry_run: opts.dry_run,
        retry_held: opts.retry_held,
        health_url: opts.health_url.clone(),
        health_timeout: Duration::from_secs(opts.health_timeout),
    };
    let project = || {
        let project = ctx.project()?;
        let layout = ctx.layout(&project)?;
        Ok((project, layout))
    };
    let parts = Parts {
        site: ctx.site(),
        project: &project,
        naming: ctx.naming()?,
        open_store: &|fingerprints| ctx.store(fingerprints),
    };
    if !opts.watch {
        let outcome = syncing::step(&parts, &mut Session::default(), &request).await?;
        ctx.reporter.print(&outcome.report);
        return outcome.failure.map_or(Ok(exit::OK), Err);
    }
    let interval = crate::clock::parse_period(&opts.interval)
        .filter(|d| *d >= MIN_INTERVAL)
        .ok_or_else(|| {
            Error::Usage(format!(
                "--interval {}: expected a period of at least 1 second, e.g. 60 (seconds), 60s, 5m",
                opts.interval.trim()
            ))
        })?;
    syncing::watch::run(&parts, &request, interval).await
}
