//! `load` over the runner (and the Compose provider's `up`, which is a load): the lock, the
//! recovery of a crashed rotation, every declared file written, the state and the audit line
//! committed, the head anchored, a swarm stack brought along, `--env-output` filled.

use std::path::Path;

use super::{anchor, Site, Transaction};
use crate::audit::{self, AuditLog};
use crate::compose::Project;
use crate::deploy::DockerEngine;
use crate::error::{exit, DockerFailure, Error, Result};
use crate::files::layout::Layout;
use crate::files::state::State;
use crate::loading::{self, LoadRequest, Loaded};
use crate::output::Report;
use crate::secret::FingerprintKey;
use crate::store::SecretStore;

/// How to load, from the command line.
pub struct LoadOptions<'a> {
    pub dry_run: bool,
    pub prune: bool,
    pub overwrite: bool,
    pub no_cache: bool,
    /// `--env-output`: also fill this env file's `KEY=` lines.
    pub env_output: Option<&'a Path>,
    /// `--map VAULT=KEY`s, parsed.
    pub maps: Vec<(String, String)>,
}

type SwarmProbe = tokio::task::JoinHandle<Result<Option<DockerEngine>>>;

/// Load `project` (none: only the `--map`ped secrets, for `--env-output`) and print the
/// report.
pub async fn run(
    site: Site<'_>,
    project: Option<(&Project, &Layout)>,
    open_store: impl FnOnce(&FingerprintKey) -> Result<Box<dyn SecretStore>>,
    options: LoadOptions<'_>,
) -> Result<u8> {
    // The lock comes before the store is opened (which reads .env in demo mode), so a rotation
    // committed while this load waited is what it reads.
    let txn = Transaction::open(site, options.dry_run).await?;
    let store = open_store(&txn.fingerprints)?;
    let store = store.as_ref();
    let mut report = Report::new("load", store.describe(), options.dry_run);
    // A bad --env-output is found before any secret file is written.
    let env_output = options
        .env_output
        .map(|o| loading::open_env_output(site.shown_from, o))
        .transpose()?;
    let wanted = match env_output {
        Some(_) => loading::env_output_keys(project.map(|(p, _)| p), store, options.maps)?,
        None => Vec::new(),
    };
    // Whether the stack runs on a swarm is asked of Docker while the vault is being read.
    let swarm_probe = project.filter(|_| !options.dry_run).map(|(p, _)| {
        let (target, stack) = (site.target, p.name.clone());
        tokio::spawn(async move { crate::deploy::detect_swarm(target, &stack).await })
    });
    let request = LoadRequest {
        shown_from: site.shown_from.to_path_buf(),
        dry_run: options.dry_run,
        prune: options.prune,
        overwrite: options.overwrite,
        no_cache: options.no_cache,
        concurrency: store.concurrency(),
        fingerprints: txn.fingerprints.clone(),
    };
    let loaded = match project {
        Some((project, layout)) => {
            let parts = (project, layout, store);
            load_project(&txn, parts, &request, swarm_probe, &mut report).await?
        }
        None => Loaded::default(),
    };
    if let Some(output) = env_output {
        let (dry_run, cwd) = (options.dry_run, site.shown_from);
        loading::write_env_output(store, output, &wanted, &loaded, dry_run, cwd, &mut report)
            .await?;
    }
    site.reporter.print(&report);
    Ok(exit::OK)
}

/// Write the project's files; when the lock is held, commit the state and the audit line,
/// anchor the head, and bring a swarm stack along.
async fn load_project(
    txn: &Transaction<'_>,
    (project, layout, store): (&Project, &Layout, &dyn SecretStore),
    request: &LoadRequest,
    swarm_probe: Option<SwarmProbe>,
    report: &mut Report,
) -> Result<Loaded> {
    let site = &txn.site;
    txn.recover(project, layout, store, report).await?;
    let state = txn.state(store)?;
    // The chain key as it is before this load rewrites the files (the signing key's among
    // them): a new one is handed over to in the log.
    let mut log = match &txn.writing {
        Some(w) => audit::project_key(&w.runtime, Some((project, layout)), None, true)
            .await?
            .map(|key| AuditLog::new(&w.runtime, key)),
        None => None,
    };
    if let Some(log) = &log {
        log.check_appendable()?;
    }
    let reporter = site.reporter;
    let (loaded, before, mut after) =
        loading::load_files(project, layout, store, state, request, reporter, report).await?;
    let (Some(w), Some(log)) = (&txn.writing, log.as_mut()) else {
        return Ok(loaded);
    };
    // A load that changed nothing (the usual `compose up`) writes nothing: no audit line, no
    // state.json, no anchor round trip; the log's head and the anchor stay where they were.
    if changed_anything(&before, &after, report) {
        loading::commit(&w.runtime, project, layout, log, &before, &mut after).await?;
        anchor(store, project, site, &w.runtime, after.audit_head.as_ref()).await;
    }
    let swarm = match swarm_probe {
        Some(probe) => probe.await.map_err(|e| Error::Docker {
            kind: DockerFailure::Other,
            message: format!("swarm detection did not finish: {e}"),
        })??,
        None => None,
    };
    if let Some(engine) = swarm {
        loading::sync_swarm(&engine, &project.name, layout, &after, &loaded, report).await?;
    }
    Ok(loaded)
}

/// What a load does on disk besides the state: a file written (restored or repaired, even
/// with the same value), a directory created or tightened, a stray pruned.
const CHANGES: [&str; 4] = ["written", "created", "tightened", "pruned"];

/// Whether a load changed anything the audit log and state.json record.
fn changed_anything(before: &State, after: &State, report: &Report) -> bool {
    before != after
        || report
            .items
            .iter()
            .any(|item| CHANGES.contains(&item.action.as_str()))
}
