//! The transaction against the in-memory store and engine: every step, every failure, every rollback.
use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::select::{older_than, parse_age, read_value, resolve_names};
use super::*;
use crate::compose::{Project, ProjectOptions, SecretSource, SecretSpec};
use crate::deploy::{labels, ContainerInfo};
use crate::files::layout::{Layout, Protected};
use crate::files::runtime_dir::RuntimeDir;
use crate::files::secret_dir::Owner;
use crate::store::memory::MemoryStore;

/// Containers whose restarts can be scripted to fail or come back unhealthy.
#[derive(Default)]
pub(super) struct ScriptedEngine {
    containers: Mutex<BTreeMap<String, ContainerInfo>>,
    restarts: Mutex<Vec<String>>,
    /// Container name -> how many of its next restarts come back unhealthy.
    pub(super) unhealthy: Mutex<BTreeMap<String, usize>>,
    /// Container name -> how many of its next restarts Docker refuses.
    pub(super) refuse_restart: Mutex<BTreeMap<String, usize>>,
    clock: Mutex<u64>,
}

impl ScriptedEngine {
    pub(super) fn with(containers: &[(&str, &str, u32)]) -> Self {
        let engine = Self::default();
        for (service, name, number) in containers {
            let info = ContainerInfo {
                id: format!("id-{name}"),
                name: (*name).into(),
                project: "proj".into(),
                service: (*service).into(),
                number: Some(*number),
                running: true,
                started_at: Some("t0".into()),
                labels: BTreeMap::from([
                    (labels::PROJECT.into(), "proj".into()),
                    (labels::SERVICE.into(), (*service).into()),
                ]),
                ..ContainerInfo::default()
            };
            engine
                .containers
                .lock()
                .unwrap()
                .insert(info.id.clone(), info);
        }
        engine
    }

    /// The next `times` restarts of container `name` come back unhealthy.
    pub(super) fn unhealthy_after(&self, name: &str, times: usize) {
        self.unhealthy.lock().unwrap().insert(name.into(), times);
    }

    pub(super) fn restarts(&self) -> Vec<String> {
        self.restarts.lock().unwrap().clone()
    }

    pub(super) fn all(&self) -> Vec<ContainerInfo> {
        self.containers.lock().unwrap().values().cloned().collect()
    }
}

#[async_trait]
impl ContainerEngine for ScriptedEngine {
    fn describe(&self) -> String {
        "scripted".into()
    }
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
    async fn project_containers(&self, _project: &str) -> Result<Vec<ContainerInfo>> {
        Ok(self.all())
    }
    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        self.containers
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::Docker {
                kind: crate::error::DockerFailure::Other,
                message: format!("no such container {id}"),
            })
    }
    async fn restart(&self, id: &str, _stop_timeout: Duration) -> Result<()> {
        let mut containers = self.containers.lock().unwrap();
        let c = containers.get_mut(id).expect("known container");
        self.restarts.lock().unwrap().push(c.name.clone());
        if let Some(n) = self.refuse_restart.lock().unwrap().get_mut(&c.name) {
            if *n > 0 {
                *n -= 1;
                return Err(Error::Docker {
                    kind: crate::error::DockerFailure::Other,
                    message: "restart refused (scripted)".into(),
                });
            }
        }
        let mut clock = self.clock.lock().unwrap();
        *clock += 1;
        c.started_at = Some(format!("t{clock}"));
        let mut unhealthy = self.unhealthy.lock().unwrap();
        c.health = match unhealthy.get_mut(&c.name) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Some("unhealthy".into())
            }
            _ => Some("healthy".into()),
        };
        Ok(())
    }
    async fn start(&self, _id: &str) -> Result<()> {
        Ok(())
    }
    // These tests script restarts only; start-first is tested against `MemoryEngine`.
    async fn create_like(
        &self,
        template: &str,
        _name: &str,
        _labels: &BTreeMap<String, String>,
    ) -> Result<String> {
        Err(Error::Docker {
            kind: crate::error::DockerFailure::Other,
            message: format!("the scripted engine does not create containers ({template})"),
        })
    }
    async fn join_like(&self, _template: &str, _id: &str) -> Result<()> {
        Ok(())
    }
    async fn stop(&self, _id: &str, _stop_timeout: Duration) -> Result<()> {
        Ok(())
    }
    async fn remove(&self, _id: &str) -> Result<()> {
        Ok(())
    }
    async fn image_id(&self, image: &str) -> Result<String> {
        Err(Error::Docker {
            kind: crate::error::DockerFailure::Refused { status: 404 },
            message: format!("image {image} is not present locally (scripted)"),
        })
    }
    async fn image_files(&self, image: &str, _: &[&str], _: usize) -> Result<Vec<Option<Vec<u8>>>> {
        Err(Error::Docker {
            kind: crate::error::DockerFailure::Refused { status: 404 },
            message: format!("image {image} is not present locally (scripted)"),
        })
    }
}

pub(super) const OLD: &str = "old-value-0123456789";

pub(super) struct Fixture {
    pub(super) dir: tempfile::TempDir,
    pub(super) manifest: Project,
    pub(super) store: MemoryStore,
    pub(super) engine: ScriptedEngine,
    pub(super) fingerprints: FingerprintKey,
}

impl Fixture {
    pub(super) async fn new(hook: Option<&str>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let hook = hook
            .map(|h| format!("      rotation-hook: [\"sh\", \"-c\", {h:?}]\n"))
            .unwrap_or_default();
        let compose = format!(
            "name: proj\nservices:\n  app:\n    image: x\n    secrets: [s1]\n  worker:\n    image: x\n    secrets: [s1]\n  other:\n    image: x\n\
             secrets:\n  s1:\n    file: ./secrets/s1\n    x-compose-secrets:\n      generator: hex:16\n{hook}"
        );
        std::fs::write(dir.path().join("compose.yaml"), compose).unwrap();
        let manifest = Project::load(&ProjectOptions {
            cwd: dir.path().to_path_buf(),
            ..ProjectOptions::default()
        })
        .unwrap();
        let store = MemoryStore::new();
        store
            .set("s1", &SecretValue::new(OLD.into()), &BTreeMap::new())
            .await
            .unwrap();
        let secrets = SecretDir::open(&dir.path().join("secrets"), true).unwrap();
        secrets
            .write_atomic("s1", OLD.as_bytes(), 0o400, Owner::default())
            .unwrap();
        // Listed out of order on purpose: restarts follow container numbers.
        let engine = ScriptedEngine::with(&[
            ("app", "proj-app-2", 2),
            ("worker", "proj-worker-1", 1),
            ("app", "proj-app-1", 1),
            ("other", "proj-other-1", 1),
        ]);
        Fixture {
            dir,
            manifest,
            store,
            engine,
            fingerprints: FingerprintKey::random(),
        }
    }

    pub(super) fn plan(&self) -> SecretPlan {
        let specs = resolve_names(&self.manifest, &["s1".into()]).unwrap();
        let containers = self.engine.all();
        plan(
            &self.manifest,
            &self.layout(),
            &self.store,
            &specs,
            Some(&containers),
            None,
        )
        .unwrap()
        .remove(0)
    }

    pub(super) fn layout(&self) -> Layout {
        demo_layout(self.dir.path(), &self.manifest)
    }

    pub(super) fn secrets_dir(&self) -> PathBuf {
        self.dir.path().join("secrets")
    }

    pub(super) fn runtime(&self) -> RuntimeDir {
        RuntimeDir::open(&self.dir.path().join(".runtime"), true)
            .unwrap()
            .unwrap()
    }

    pub(super) fn state(&self) -> State {
        State::read(Some(&self.runtime()), "memory").unwrap()
    }

    /// The audit log's lines as JSON.
    pub(super) fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join(".runtime/audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub(super) fn run<'a>(&'a self, runtime: &'a RuntimeDir, restart: bool) -> Run<'a> {
        let key = AuditKey::local(runtime, true).unwrap().unwrap();
        Run {
            store: &self.store,
            engine: Some(&self.engine),
            settings: Settings {
                restart,
                health_timeout: Duration::from_secs(2),
                stop_timeout: Duration::from_secs(1),
                hook_timeout: Duration::from_secs(20),
                hook_dir: self.dir.path().to_path_buf(),
                rotated_by: "tester@host".into(),
                shown_from: PathBuf::from("/"),
            },
            swarm: None,
            runtime,
            fingerprints: self.fingerprints.clone(),
            state: State::read(Some(runtime), "memory").unwrap(),
            audit: AuditLog::new(runtime, key),
        }
    }

    async fn rotate(&self, value: Option<&str>) -> RotationRecord {
        let runtime = self.runtime();
        let mut run = self.run(&runtime, true);
        rotate(
            &mut run,
            &self.plan(),
            value.map(|v| SecretValue::new(v.into())),
        )
        .await
    }

    /// A rotation whose new value fails `proj-app-1`'s health gate: its record and its error.
    async fn rotate_failing_the_gate(&self, value: Option<&str>) -> (RotationRecord, Error) {
        self.engine.unhealthy_after("proj-app-1", 1);
        let mut record = self.rotate(value).await;
        let error = record.take_error().expect("the rotation fails");
        (record, error)
    }

    pub(super) fn file(&self) -> String {
        String::from_utf8(std::fs::read(self.secrets_dir().join("s1")).unwrap()).unwrap()
    }

    pub(super) async fn latest(&self) -> crate::store::FetchedSecret {
        self.store.get_latest("s1").await.unwrap()
    }

    async fn versions(&self) -> usize {
        self.store.list_versions("s1").await.unwrap().len()
    }
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn success_pushes_with_tags_rewrites_the_file_and_restarts_in_order() {
    let f = Fixture::new(None).await;
    let old_version = f.latest().await.info.version;
    let mut record = f.rotate(None).await;
    assert!(record.take_error().is_none(), "{:?}", record.steps);
    assert_eq!(record.outcome, Outcome::Ok);
    assert_eq!(record.health, HealthResult::Passed);

    let latest = f.latest().await;
    assert_ne!(latest.value.expose(), OLD);
    assert_eq!(latest.value.len(), 32, "hex:16");
    assert_eq!(
        latest.info.tags.get(tags::PREVIOUS_VERSION),
        old_version.as_ref()
    );
    assert_eq!(
        latest.info.tags.get(tags::ROTATED_BY).map(String::as_str),
        Some("tester@host")
    );
    let at = latest.info.tags.get(tags::ROTATED_AT).expect("rotated-at");
    assert!(audit::parse_rfc3339(at).is_some(), "{at}");
    assert_eq!(record.old_version, old_version);
    assert_eq!(record.new_version, latest.info.version);

    assert_eq!(f.file(), latest.value.expose());
    assert_eq!(mode(&f.secrets_dir().join("s1")), 0o400);
    let state = f.state();
    assert_eq!(state.secrets["s1"].version, latest.info.version);
    assert_eq!(
        state.secrets["s1"].fingerprint,
        latest.value.fingerprint(&f.fingerprints)
    );

    let order = vec!["proj-app-1", "proj-app-2", "proj-worker-1"];
    assert_eq!(f.engine.restarts(), order);
    assert_eq!(record.restarted, order);
    let event = record.audit_event();
    assert_eq!(event.outcome, Outcome::Ok);
}

#[tokio::test]
async fn the_hook_gets_the_value_on_stdin_only() {
    let f = Fixture::new(Some(
        "cat > hook.stdin; printf '%s %s' \"$$COMPOSE_SECRETS_SECRET\" \"$$COMPOSE_SECRETS_HOOK_PHASE\" > hook.env; printf '%s' \"$$#\" > hook.argc",
    ))
    .await;
    let mut record = f.rotate(Some("given-value-42")).await;
    assert!(record.take_error().is_none(), "{:?}", record.steps);
    let read = |n: &str| std::fs::read_to_string(f.dir.path().join(n)).unwrap();
    assert_eq!(read("hook.stdin"), "given-value-42");
    assert_eq!(read("hook.env"), "s1 rotate");
    assert_eq!(read("hook.argc"), "0");
    assert_eq!(f.latest().await.value.expose(), "given-value-42");
}

#[tokio::test]
async fn a_failing_hook_changes_nothing() {
    // The hook echoes its stdin (the value) to stderr and stdout, then fails.
    let f = Fixture::new(Some("tee /dev/stderr; exit 3")).await;
    let mut record = f.rotate(Some("hook-echoed-value")).await;
    let error = record.take_error().expect("hook failure");
    let message = error.to_string();
    assert!(
        message.contains("s1") && message.contains("status 3"),
        "{message}"
    );
    assert!(
        !message.contains("hook-echoed-value"),
        "hook output is never echoed: {message}"
    );
    assert_eq!(record.outcome, Outcome::Failed);
    assert_eq!(f.versions().await, 1);
    assert_eq!(f.latest().await.value.expose(), OLD);
    assert_eq!(f.file(), OLD);
    assert!(f.engine.restarts().is_empty());
    assert!(!f.state().secrets.contains_key("s1"));
    let outcomes: Vec<String> = f
        .audit()
        .iter()
        .map(|l| l["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(outcomes, ["intent", "failed"]);
}

#[tokio::test]
async fn a_refused_push_changes_nothing() {
    let f = Fixture::new(None).await;
    f.store.fail_sets(true);
    let mut record = f.rotate(None).await;
    assert!(record.take_error().is_some());
    assert_eq!(record.outcome, Outcome::Failed);
    assert_eq!(record.health, HealthResult::Skipped);
    f.store.fail_sets(false);
    assert_eq!(f.versions().await, 1);
    assert_eq!(f.file(), OLD);
    assert!(f.engine.restarts().is_empty());
}

#[tokio::test]
async fn a_health_failure_rolls_everything_back() {
    let f = Fixture::new(None).await;
    f.engine.unhealthy_after("proj-app-2", 1);
    let mut record = f.rotate(None).await;
    let error = record.take_error().expect("rolled back");
    assert!(
        matches!(error, Error::RolledBack { .. }) && error.exit_code() == 6,
        "{error}"
    );
    assert!(error.to_string().contains("proj-app-2"), "{error}");
    assert_eq!(error.exit_code(), 6);
    assert_eq!(record.outcome, Outcome::RolledBack);
    assert_eq!(record.health, HealthResult::Failed);

    let versions = f.store.list_versions("s1").await.unwrap();
    assert_eq!(versions.len(), 3, "old, failed new, rollback");
    let failed = versions[1].version.clone().unwrap();
    let latest = f.latest().await;
    assert_eq!(latest.value.expose(), OLD);
    assert_eq!(latest.info.tags.get(tags::ROLLBACK_OF), Some(&failed));
    assert_eq!(f.file(), OLD);
    assert_eq!(mode(&f.secrets_dir().join("s1")), 0o400);
    // The worker was never restarted; the two app containers go back in the same order.
    assert_eq!(
        f.engine.restarts(),
        vec!["proj-app-1", "proj-app-2", "proj-app-1", "proj-app-2"]
    );
    assert_eq!(record.restarted, f.engine.restarts());
}

#[tokio::test]
async fn a_docker_failure_rolls_back_with_the_docker_exit_code() {
    let f = Fixture::new(None).await;
    f.engine
        .refuse_restart
        .lock()
        .unwrap()
        .insert("proj-worker-1".into(), 1);
    let mut record = f.rotate(None).await;
    let error = record.take_error().expect("rolled back");
    assert!(
        matches!(error, Error::RolledBack { .. }) && error.exit_code() == 5,
        "{error}"
    );
    assert!(error.to_string().contains("proj-worker-1"), "{error}");
    assert_eq!(f.file(), OLD);
    assert_eq!(f.latest().await.value.expose(), OLD);
    // The refused container is restarted in the rollback too: it may have been stopped.
    assert_eq!(
        f.engine.restarts(),
        vec![
            "proj-app-1",
            "proj-app-2",
            "proj-worker-1",
            "proj-app-1",
            "proj-app-2",
            "proj-worker-1"
        ]
    );
}

#[tokio::test]
async fn a_failed_rollback_says_what_is_left() {
    let f = Fixture::new(None).await;
    f.engine.unhealthy_after("proj-app-1", 5);
    let mut record = f.rotate(None).await;
    let error = record.take_error().expect("rollback failed");
    assert!(matches!(error, Error::RollbackFailed { .. }), "{error}");
    assert_eq!(error.exit_code(), 9);
    assert!(error.to_string().contains("proj-app-1"), "{error}");
    assert_eq!(record.outcome, Outcome::RollbackFailed);
    // Store and file were still put back.
    assert_eq!(f.latest().await.value.expose(), OLD);
    assert_eq!(f.file(), OLD);
}

#[tokio::test]
async fn no_restart_pushes_and_writes_only() {
    let f = Fixture::new(None).await;
    let runtime = f.runtime();
    let mut run = f.run(&runtime, false);
    run.engine = None;
    let specs = resolve_names(&f.manifest, &["S1".into()]).unwrap();
    let plan = plan(&f.manifest, &f.layout(), &f.store, &specs, None, None)
        .unwrap()
        .remove(0);
    let mut record = rotate(&mut run, &plan, None).await;
    assert!(record.take_error().is_none());
    assert_eq!(record.health, HealthResult::Skipped);
    assert_eq!(f.file(), f.latest().await.value.expose());
    assert!(f.engine.restarts().is_empty());
    assert!(record.steps.iter().any(|s| s.action == "not-restarted"));
}

/// A hook that keeps what it was given (and in which phase) in `target`, as a database
/// keeps a password; `fail_on` makes it fail in that phase.
fn recording_hook(fail_on: &str) -> String {
    format!(
        "cat > target.new && mv target.new target && echo \"$$COMPOSE_SECRETS_HOOK_PHASE\" >> phases \
         && [ \"$$COMPOSE_SECRETS_HOOK_PHASE\" != '{fail_on}' ]"
    )
}

fn hook_target(f: &Fixture) -> (String, Vec<String>) {
    let read = |n: &str| std::fs::read_to_string(f.dir.path().join(n)).unwrap_or_default();
    (
        read("target"),
        read("phases").lines().map(str::to_string).collect(),
    )
}

#[tokio::test]
async fn a_rollback_runs_the_hook_again_with_the_previous_value() {
    let f = Fixture::new(Some(&recording_hook("never"))).await;
    let (record, error) = f
        .rotate_failing_the_gate(Some("new-value-for-the-db"))
        .await;
    assert_eq!(error.exit_code(), 6, "{error}");
    assert_eq!(record.hook, Some(HookOutcome::RolledBack));
    let (target, phases) = hook_target(&f);
    assert_eq!(
        target, OLD,
        "the hook's target is back on the previous value"
    );
    assert_eq!(phases, ["rotate", "rollback"]);
    assert_eq!(f.latest().await.value.expose(), OLD);
    let last = f.audit().pop().unwrap();
    assert_eq!(last["outcome"], "rolled-back");
    assert_eq!(last["hook"], "rolled-back");
}

#[tokio::test]
async fn a_refused_push_after_the_hook_puts_the_hook_back() {
    let f = Fixture::new(Some(&recording_hook("never"))).await;
    f.store.fail_sets(true);
    let mut record = f.rotate(Some("new-value-for-the-db")).await;
    let error = record.take_error().expect("failed");
    assert_eq!(record.outcome, Outcome::Failed);
    assert_eq!(error.exit_code(), crate::error::exit::VAULT, "{error}");
    let (target, phases) = hook_target(&f);
    assert_eq!(target, OLD);
    assert_eq!(phases, ["rotate", "rollback"]);
}

#[tokio::test]
async fn a_hook_that_fails_its_rollback_is_a_failed_rollback_naming_it() {
    let f = Fixture::new(Some(&recording_hook("rollback"))).await;
    let (record, error) = f
        .rotate_failing_the_gate(Some("new-value-for-the-db"))
        .await;
    assert_eq!(error.exit_code(), 9, "{error}");
    assert!(error.to_string().contains("rotation hook"), "{error}");
    assert!(!error.to_string().contains("new-value-for-the-db"));
    assert_eq!(record.outcome, Outcome::RollbackFailed);
    assert_eq!(record.hook, Some(HookOutcome::RollbackFailed));
    // Everything else went back.
    assert_eq!(f.latest().await.value.expose(), OLD);
    assert_eq!(f.file(), OLD);
}

#[tokio::test]
async fn every_transaction_writes_its_intent_before_it_pushes() {
    let f = Fixture::new(None).await;
    let mut record = f.rotate(None).await;
    assert!(record.take_error().is_none());
    let lines = f.audit();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["outcome"], "intent");
    assert_eq!(lines[0]["new_version"], serde_json::Value::Null);
    assert_eq!(lines[1]["outcome"], "ok");
    assert_eq!(
        f.state().audit_head.unwrap().mac,
        lines[1]["mac"].as_str().unwrap(),
        "the state keeps the chain's head"
    );
}

#[tokio::test]
async fn the_dry_run_plan_names_containers_in_order() {
    let f = Fixture::new(None).await;
    let settings = Settings {
        restart: true,
        health_timeout: Duration::from_secs(1),
        stop_timeout: Duration::from_secs(1),
        hook_timeout: Duration::from_secs(1),
        hook_dir: PathBuf::new(),
        rotated_by: String::new(),
        shown_from: PathBuf::from("/"),
    };
    let items = describe(&f.plan(), &settings, "memory", false);
    let text: Vec<String> = items
        .iter()
        .map(|i| format!("{} {:?}", i.action, i.detail))
        .collect();
    assert!(text[0].starts_with("would-rotate"), "{text:?}");
    assert!(
        text.iter().any(|t| t.contains("proj-app-1 → proj-app-2")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("service worker: proj-worker-1")),
        "{text:?}"
    );
    assert!(!text.iter().any(|t| t.contains("other")), "{text:?}");
}

#[test]
fn unknown_names_are_usage_errors_naming_them() {
    let manifest = Project {
        name: "p".into(),
        directory: PathBuf::new(),
        compose_files: vec![],
        files_read: vec![],
        env_files: vec![],
        config_files: vec![],
        variables: BTreeMap::new(),
        profiles: vec![],
        secrets: vec![],
        services: BTreeMap::new(),
    };
    let e = resolve_names(&manifest, &["nope".into()]).unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::USAGE);
    assert!(e.to_string().contains("nope"));
}

#[test]
fn ages() {
    assert_eq!(parse_age("90d").unwrap(), Duration::from_secs(90 * 86_400));
    assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3600));
    assert_eq!(parse_age("30m").unwrap(), Duration::from_secs(1800));
    for bad in ["", "d", "10", "10y", "-1d", "1.5d"] {
        assert!(parse_age(bad).is_err(), "{bad}");
    }
}

/// The layout of `manifest` in `dir`: `.runtime/secrets`, beside `.env` and `.env.demo`.
pub(super) fn demo_layout(dir: &std::path::Path, manifest: &Project) -> Layout {
    let runtime = dir.join(".runtime");
    Layout::plan(
        manifest,
        &runtime,
        &runtime.join("secrets"),
        &Protected {
            project: manifest,
            env_file: &dir.join(".env"),
            template: &dir.join(".env.demo"),
        },
    )
    .unwrap()
}

/// A file secret named `n` with every option at its default.
pub(super) fn spec(n: &str) -> SecretSpec {
    SecretSpec {
        name: n.into(),
        vault_name: n.into(),
        env_key: n.to_uppercase(),
        generator: crate::generator::Generator::default(),
        source: SecretSource::File(PathBuf::from(n)),
        owner_uid: None,
        owner_gid: None,
        owner_from: Default::default(),
        mode: 0o400,
        pinned_version: None,
        rotation_hook: None,
        hook_env: vec![],
        rotate_every: None,
        expiry_grace: None,
        certificate: None,
        uses: vec![],
        in_use: true,
    }
}

#[test]
fn older_than_keeps_old_and_never_rotated() {
    let (a, b, c) = (spec("a"), spec("b"), spec("c"));
    let rotated = BTreeMap::from([
        ("a".into(), Some(1000)),
        ("b".into(), Some(9000)),
        ("c".into(), None),
    ]);
    let due = older_than(
        vec![&a, &b, &c],
        &rotated,
        Duration::from_secs(5000),
        10_000,
    );
    let names: Vec<&str> = due.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "c"]);
}

#[test]
fn stdin_values() {
    assert_eq!(read_value(&b"abc\n"[..]).unwrap().expose(), "abc");
    assert_eq!(read_value(&b"abc\n\n"[..]).unwrap().expose(), "abc\n");
    assert_eq!(read_value(&b"abc"[..]).unwrap().expose(), "abc");
    assert!(read_value(&b""[..]).is_err());
    assert!(read_value(&b"\n"[..]).is_err());
    assert!(read_value(&vec![b'a'; MAX_VALUE_BYTES + 1][..]).is_err());
    assert!(read_value(&vec![b'a'; MAX_VALUE_BYTES][..]).is_ok());
}

mod edges;
