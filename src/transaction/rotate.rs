//! `rotate` over the runner: the chosen secrets, due or not, planned against the containers
//! that use them, then one transaction each (see `rotation::rotate_all`), or the plan shown.

use std::io::IsTerminal as _;
use std::time::Duration;

use super::{close, run_settings, Site, TargetRequest, Transaction};
use crate::compose::Project;
use crate::error::{exit, Error, Result};
use crate::files::layout::Layout;
use crate::output::{Report, ReportItem};
use crate::rotation::{self, preflight, Chosen, SecretPlan};
use crate::secret::FingerprintKey;
use crate::store::SecretStore;

/// How to rotate, from the command line and the settings.
pub struct RotateRequest<'a> {
    pub dry_run: bool,
    /// Restart the containers that use each secret (off with `--no-restart`).
    pub restart: bool,
    pub health_url: Option<&'a str>,
    pub health_timeout: Duration,
    pub hook_timeout: Duration,
    /// Rotate without asking when nothing runs (`--yes`).
    pub yes: bool,
}

/// Rotate `chosen`: lock, recover, pick what is due, find the containers, plan, then run the
/// transactions (or describe them in a dry run), and print the report.
pub async fn run(
    site: Site<'_>,
    project: &Project,
    layout: &Layout,
    chosen: Chosen<'_>,
    open_store: impl FnOnce(&FingerprintKey) -> Result<Box<dyn SecretStore>>,
    request: &RotateRequest<'_>,
) -> Result<u8> {
    let txn = Transaction::open(site, request.dry_run).await?;
    let store = open_store(&txn.fingerprints)?;
    let store = store.as_ref();
    let mut report = Report::new("rotate", store.describe(), request.dry_run);
    txn.recover(project, layout, store, &mut report).await?;
    if let Some(runtime) = &txn.read_only {
        preflight::lock_check(runtime, &mut report)?;
    }
    let specs = chosen.due(store, txn.runtime(), &mut report).await?;
    let mut slot = None;
    let targets = txn
        .targets(
            &project.name,
            &mut slot,
            &target_request(request),
            &mut report,
        )
        .await?;
    if targets.swarm.is_some() {
        report.push(ReportItem::new(&project.name, "swarm").with_detail(
            "stack services are updated by a start-first rolling update with automatic rollback",
        ));
    }
    let plans = rotation::plan(
        project,
        layout,
        store,
        &specs,
        targets.containers.as_deref(),
        request.health_url,
    )?;
    let settings = run_settings(
        &site,
        project,
        request.restart,
        request.health_timeout,
        request.hook_timeout,
    );
    if !request.dry_run && request.restart && targets.swarm.is_none() {
        confirm_when_nothing_runs(&site, request.yes, &plans, &mut report)?;
    }
    if request.dry_run {
        let with_value = chosen.value.is_some();
        for plan in &plans {
            let items = rotation::describe(plan, &settings, &store.describe(), with_value);
            report.items.extend(items);
        }
        site.reporter.print(&report);
        return Ok(exit::OK);
    }
    let state = txn.state(store)?;
    let mut run = txn
        .run(project, layout, store, &targets, settings, state)
        .await?;
    let outcome = rotation::rotate_all(&mut run, &plans, chosen.value, &mut report).await;
    close(&run, project, &site).await;
    site.reporter.print(&report);
    outcome.map(|()| exit::OK)
}

fn target_request<'a>(request: &RotateRequest<'_>) -> TargetRequest<'a> {
    TargetRequest {
        restart: request.restart,
        detect_swarm: true,
        dry_run: request.dry_run,
        next_step: " (use --no-restart to rotate without restarting)",
    }
}

/// The stack is down (no running container uses a secret to rotate): warn, say what to run
/// next, and on a terminal ask before anything changes.
fn confirm_when_nothing_runs(
    site: &Site<'_>,
    yes: bool,
    plans: &[SecretPlan],
    report: &mut Report,
) -> Result<()> {
    let Some(idle) = preflight::NothingRunning::find(
        plans
            .iter()
            .map(|p| (p.spec.name.as_str(), p.services.as_slice())),
    ) else {
        return Ok(());
    };
    site.reporter.warn(&idle.warning());
    report
        .extra
        .insert("not_running".into(), serde_json::json!(idle.services));
    let ask = preflight::should_ask(
        yes,
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
