//! The transaction runner: what `rotate` and `sync` (and any command that changes files and
//! containers under the run lock) do around their transactions, written once. In order:
//! [`Transaction::open`] (the run lock, or a read-only look when nothing will be written),
//! [`Transaction::recover`] (close what a crash left open), [`Transaction::targets`] (swarm
//! detection, the Docker pre-flight, the project's containers), [`Transaction::run`] (the
//! audit key and the [`Run`] the transactions act on), and [`close`] (the audit head
//! anchored in the store).

pub mod load;
pub mod rotate;

use std::path::Path;
use std::time::Duration;

use crate::audit;
use crate::compose::Project;
use crate::deploy::{ContainerEngine, ContainerInfo, DockerEngine, Target};
use crate::error::{Error, Result};
use crate::files::layout::Layout;
use crate::files::lock::RunLock;
use crate::files::runtime_dir::RuntimeDir;
use crate::files::state::State;
use crate::output::{Report, Reporter};
use crate::rotation::{self, preflight, Run, SwarmTarget};
use crate::secret::FingerprintKey;
use crate::store::SecretStore;

/// Docker's grace period for a container being restarted (as `docker restart`).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for a swarm service's rolling update: four health timeouts, at least 30 s
/// each, as Swarm watches every new task for `MONITOR` before it moves on.
fn swarm_timeout(health_timeout: Duration) -> Duration {
    Duration::from_secs(health_timeout.as_secs().max(30) * 4)
}

/// The plain values a transaction needs from the settings.
#[derive(Clone, Copy)]
pub struct Site<'a> {
    pub runtime_dir: &'a Path,
    /// The last env file: temp files a killed run left beside it are cleared under the lock.
    pub env_file: &'a Path,
    pub lock_timeout: Duration,
    pub target: Target,
    pub reporter: &'a Reporter,
    /// Paths in the report are shown relative to this directory.
    pub shown_from: &'a Path,
}

/// A run that writes: the runtime directory it holds, and the run lock.
pub struct Writing {
    pub runtime: RuntimeDir,
    /// This run's fingerprint key, from the per-install key.
    pub fingerprints: FingerprintKey,
    _lock: RunLock,
}

/// A run that only reads: the runtime directory if there is one, and the fingerprint key the
/// writers used (a random one when there is no per-install key yet).
pub struct Reading {
    pub runtime: Option<RuntimeDir>,
    pub fingerprints: FingerprintKey,
}

/// Start a run that writes: open (or create) the runtime directory and hold it, take the run
/// lock, clear temp files that killed runs left beside `.env` and in the runtime directory,
/// and key this run's fingerprints. Every command that writes starts here, before it reads
/// anything it will write back.
pub async fn begin_writing(site: &Site<'_>) -> Result<Writing> {
    let runtime = RuntimeDir::open(site.runtime_dir, true)?.ok_or_else(|| {
        Error::io(site.runtime_dir, "create directory")(std::io::ErrorKind::NotFound.into())
    })?;
    let lock = RunLock::acquire(&runtime, site.lock_timeout).await?;
    let beside_env = crate::files::secret_dir::remove_orphaned_temps_beside(site.env_file)?;
    let in_runtime = runtime.dir().remove_orphaned_temps()?;
    for skipped in beside_env.skipped.into_iter().chain(in_runtime.skipped) {
        site.reporter.note(&format!(
            "compose-secrets: left alone {}: named like a temp file, but not a file (remove it by hand)",
            crate::output::shown_path(&skipped.display().to_string(), site.shown_from)
        ));
    }
    let fingerprints = audit::fingerprint_key(Some(&runtime), true)?;
    Ok(Writing {
        runtime,
        fingerprints,
        _lock: lock,
    })
}

/// Start a run that only reads: the runtime directory if there is one (never created, no
/// mode changed), and fingerprints keyed as the writers keyed them.
pub fn begin_reading(site: &Site<'_>) -> Result<Reading> {
    let runtime = RuntimeDir::open(site.runtime_dir, false)?;
    let fingerprints = audit::fingerprint_key(runtime.as_ref(), false)?;
    Ok(Reading {
        runtime,
        fingerprints,
    })
}

/// Where the containers are: a swarm to roll out to, or Compose containers behind an engine.
pub struct Targets<'e> {
    pub engine: Option<&'e DockerEngine>,
    pub swarm: Option<DockerEngine>,
    /// The project's containers (`None`: no engine, so none are known).
    pub containers: Option<Vec<ContainerInfo>>,
}

/// How [`Transaction::targets`] looks for the containers.
pub struct TargetRequest<'a> {
    /// Whether anything is to be restarted (off: no Docker at all).
    pub restart: bool,
    /// Whether to ask the engine about a swarm first.
    pub detect_swarm: bool,
    pub dry_run: bool,
    /// Added to the "Docker is unreachable" error: how to go on without Docker.
    pub next_step: &'a str,
}

/// An open transaction: the lock held (or a read-only look), before the store is read.
pub struct Transaction<'a> {
    pub site: Site<'a>,
    pub writing: Option<Writing>,
    pub read_only: Option<RuntimeDir>,
    /// The key every fingerprint of this run is computed with.
    pub fingerprints: FingerprintKey,
}

impl<'a> Transaction<'a> {
    /// Take the lock (a dry run only looks at the runtime directory). The lock comes before
    /// the store is opened: what the caller reads then is what the last run committed.
    pub async fn open(site: Site<'a>, dry_run: bool) -> Result<Transaction<'a>> {
        let writing = match dry_run {
            true => None,
            false => Some(begin_writing(&site).await?),
        };
        let (read_only, fingerprints) = match &writing {
            Some(w) => (None, w.fingerprints.clone()),
            None => {
                let reading = begin_reading(&site)?;
                (reading.runtime, reading.fingerprints)
            }
        };
        Ok(Transaction {
            site,
            writing,
            read_only,
            fingerprints,
        })
    }

    /// The runtime directory, held or only looked at.
    pub fn runtime(&self) -> Option<&RuntimeDir> {
        self.writing
            .as_ref()
            .map(|w| &w.runtime)
            .or(self.read_only.as_ref())
    }

    /// The state as the last run committed it.
    pub fn state(&self, store: &dyn SecretStore) -> Result<State> {
        State::read(self.runtime(), &store.describe())
    }

    /// Close a rotation a crash cut short, before this run reads the store or the state.
    pub async fn recover(
        &self,
        project: &Project,
        layout: &Layout,
        store: &dyn SecretStore,
        report: &mut Report,
    ) -> Result<()> {
        if let Some(w) = &self.writing {
            rotation::recover_intents(&w.runtime, project, layout, store, &w.fingerprints, report)
                .await?;
            // A start-first replacement a crash cut short: its extra container goes too.
            crate::deploy::replace::settle_reported(&project.name, report).await;
        }
        Ok(())
    }

    /// Find the containers: a swarm stack when the target says so, else the Compose
    /// containers of an engine reached once (`slot` keeps it, so `sync --watch` reuses it).
    pub async fn targets<'e>(
        &self,
        stack: &str,
        slot: &'e mut Option<DockerEngine>,
        request: &TargetRequest<'_>,
        report: &mut Report,
    ) -> Result<Targets<'e>> {
        let swarm = match request.restart && request.detect_swarm {
            true => crate::deploy::detect_swarm(self.site.target, stack).await?,
            false => None,
        };
        if swarm.is_none() && slot.is_none() {
            *slot = preflight::connect_docker(
                request.restart,
                request.dry_run,
                report,
                request.next_step,
            )
            .await?;
        }
        let engine = slot.as_ref().filter(|_| swarm.is_none() && request.restart);
        let containers = match engine {
            Some(engine) => Some(engine.project_containers(stack).await?),
            None => None,
        };
        Ok(Targets {
            engine,
            swarm,
            containers,
        })
    }

    /// The audit key and the [`Run`] the transactions act on (the lock must be held).
    pub async fn run<'r>(
        &'r self,
        project: &Project,
        layout: &Layout,
        store: &'r dyn SecretStore,
        targets: &'r Targets<'_>,
        settings: rotation::Settings,
        state: State,
    ) -> Result<Run<'r>> {
        let Some(writing) = &self.writing else {
            unreachable!("only a run that holds the lock changes anything")
        };
        let key = audit::project_key(&writing.runtime, Some((project, layout)), Some(store), true)
            .await?
            .ok_or_else(|| rotation::no_audit_key(self.site.runtime_dir))?;
        Ok(Run {
            store,
            engine: targets.engine.map(|e| e as &dyn ContainerEngine),
            swarm: targets.swarm.as_ref().map(|engine| SwarmTarget {
                engine,
                stack: project.name.clone(),
                monitor: crate::deploy::swarm::MONITOR,
                timeout: swarm_timeout(settings.health_timeout),
            }),
            settings,
            runtime: &writing.runtime,
            fingerprints: writing.fingerprints.clone(),
            state,
            audit: audit::AuditLog::new(&writing.runtime, key),
        })
    }
}

/// The run's settings for a transaction: `rotated-by`, the hook's directory, and where
/// paths are shown from filled in; [`STOP_TIMEOUT`] for every restart.
pub fn run_settings(
    site: &Site<'_>,
    project: &Project,
    restart: bool,
    health_timeout: Duration,
    hook_timeout: Duration,
) -> rotation::Settings {
    rotation::Settings {
        restart,
        health_timeout,
        stop_timeout: STOP_TIMEOUT,
        hook_timeout,
        hook_dir: project.directory.clone(),
        rotated_by: audit::user_at_host(),
        shown_from: site.shown_from.to_path_buf(),
    }
}

/// After the transactions: anchor the audit log's new head in the store, out of `.runtime`'s
/// reach (a failure to is a warning: the log itself is written).
pub async fn close(run: &Run<'_>, project: &Project, site: &Site<'_>) {
    let head = run.state.audit_head.as_ref();
    anchor(run.store, project, site, run.runtime, head).await;
}

/// Anchor `head` in the store (a warning when that fails).
pub async fn anchor(
    store: &dyn SecretStore,
    project: &Project,
    site: &Site<'_>,
    runtime: &RuntimeDir,
    head: Option<&crate::files::state::AuditHead>,
) {
    let anchored = audit::anchor::update_for(store, project, site.runtime_dir, runtime, head);
    if let Some(warning) = anchored.await {
        site.reporter.warn(&warning);
    }
}
