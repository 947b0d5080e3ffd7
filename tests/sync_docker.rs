//! `sync` on the real engine against one emulator vault shared by a fleet: two project copies
//! stand for two hosts, each running the demo service on its own port. A rotation on host A
//! reaches host B through `sync` (one shot or `--watch`), health-gated; a value B's service
//! rejects is held on B without touching A or the vault; a vault outage during `--watch` is
//! waited out with files and containers left alone.

use std::time::{Duration, Instant};

use compose_secrets::testing::secret::SecretValue;
use compose_secrets::testing::store::SecretStore as _;

use crate::harness::{Project, Run};
use crate::support::docker::{fingerprint, ready};
use crate::support::emulator::Emulator;
use crate::support::process::Background;
use crate::support::stack::{DemoStack, Stack};

/// A bound for a hung run (the watcher, a restart), never a timing claim.
const PATIENCE: Duration = Duration::from_secs(180);

/// One host of the fleet: its own project directory, Compose project and port, the shared vault.
struct Host<'e> {
    stack: Stack<Project>,
    emulator: &'e Emulator,
}

impl<'e> Host<'e> {
    /// A host whose service rejects values starting with `reject` (DEMO_REJECT_PREFIX).
    fn new(tag: &str, reject: &str, emulator: &'e Emulator) -> Host<'e> {
        let options = DemoStack {
            reject,
            fatal: None,
            service_extra: "",
        };
        Host {
            stack: Stack::with(Project::empty(), &format!("sync{tag}"), &options),
            emulator,
        }
    }

    fn cmd(&self, args: &[&str]) -> Run {
        self.stack.cmd(args).keyvault(self.emulator)
    }

    /// `load`, then `compose up`, until `/health` answers 200.
    fn start(&self) {
        self.cmd(&["load"]).run().success();
        self.stack.up();
    }

    fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "host {}: never {what}",
                self.stack.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn status(&self) -> Option<u16> {
        self.stack.status()
    }

    /// The fingerprint of `s1` the running service reports (empty while it does not answer).
    fn seen(&self) -> String {
        self.stack
            .health()
            .map(|(_, b)| b["secrets"]["s1"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    }

    fn started_at(&self) -> String {
        self.stack.started_at()
    }

    fn file(&self) -> String {
        self.stack.project().read_string(".runtime/secrets/s1")
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_str(&self.stack.project().read_string(".runtime/state.json")).unwrap()
    }

    fn last_audit_line(&self) -> serde_json::Value {
        self.stack
            .project()
            .audit_lines()
            .pop()
            .expect("an audit line")
    }
}

/// A value unique to this run, starting with `prefix`.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{nanos:x}-{}", std::process::id())
}

fn checks(out: &crate::harness::Output, category: &str) -> Vec<(String, String, String)> {
    out.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["category"] == category)
        .map(|c| {
            (
                c["subject"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_sync_follows_a_rotation_on_another_host_and_holds_a_value_it_rejects() {
    if !ready(
        "sync_docker::fleet_sync_follows_a_rotation_on_another_host_and_holds_a_value_it_rejects",
    ) {
        return;
    }
    let emulator = Emulator::start(&["--seed", "s1"]);
    let store = crate::support::store::store_for(&emulator, &[]);
    let a = Host::new("a", "never-rejected-", &emulator);
    let b = Host::new("b", "held-", &emulator);
    a.start();
    b.start();
    let first = store.get_latest("s1").await.unwrap();
    assert_eq!(b.seen(), fingerprint(first.value.expose().as_bytes()));

    // A rotation on host A reaches B's service through `sync`.
    a.cmd(&["rotate", "s1"]).run().success();
    let second = store.get_latest("s1").await.unwrap();
    assert_ne!(second.info.version, first.info.version);
    assert_eq!(
        b.seen(),
        fingerprint(first.value.expose().as_bytes()),
        "not yet"
    );
    let b_started = b.started_at();
    let out = b.cmd(&["sync", "--json"]).run().success();
    out.assert_no_values(&[
        first.value.expose().to_string(),
        second.value.expose().to_string(),
    ]);
    let changes = out.json()["extra"]["changes"].clone();
    assert_eq!(changes[0]["secret"], "s1", "{changes}");
    assert_eq!(changes[0]["outcome"], "ok", "{changes}");
    assert_eq!(b.seen(), fingerprint(second.value.expose().as_bytes()));
    assert_ne!(b.started_at(), b_started, "B's service was restarted");
    assert_eq!(b.file(), second.value.expose());
    assert_eq!(
        store.get_latest("s1").await.unwrap().info.version,
        second.info.version,
        "sync pushes nothing"
    );

    // A value B's service rejects (A's does not): held on B, A unaffected.
    let rejected = unique("held-");
    a.cmd(&["rotate", "s1", "--value-stdin"])
        .stdin(rejected.clone())
        .run()
        .success();
    let third = store.get_latest("s1").await.unwrap();
    assert_eq!(a.seen(), fingerprint(rejected.as_bytes()));
    let a_started = a.started_at();
    let out = b.cmd(&["sync", "--health-timeout", "20"]).run().code(6);
    out.assert_no_values(&[rejected.clone(), second.value.expose().to_string()]);
    assert!(out.stderr.contains("held"), "{}", out.stderr);
    assert!(out.stdout.contains("held"), "{}", out.stdout);
    assert_eq!(b.status(), Some(200), "B stays healthy");
    assert_eq!(
        b.seen(),
        fingerprint(second.value.expose().as_bytes()),
        "on the old value"
    );
    assert_eq!(b.file(), second.value.expose());
    let held = &b.state()["held"]["s1"];
    assert_eq!(
        held["version"].as_str(),
        third.info.version.as_deref(),
        "{held}"
    );
    let line = b.last_audit_line();
    assert_eq!(
        (line["action"].as_str(), line["outcome"].as_str()),
        (Some("sync"), Some("sync-held"))
    );
    let current = store.get_latest("s1").await.unwrap();
    assert_eq!(
        current.info.version, third.info.version,
        "the vault is left alone"
    );
    assert!(!current.info.tags.contains_key("rollback-of"));

    // A second sync restarts nothing for the held version.
    let b_started = b.started_at();
    let out = b.cmd(&["sync", "--json"]).run().success();
    let items = out.json()["items"].as_array().unwrap().clone();
    assert!(
        items
            .iter()
            .any(|i| i["name"] == "s1" && i["action"] == "held"),
        "{items:#?}"
    );
    assert_eq!(out.json()["extra"]["changes"], serde_json::json!([]));
    assert_eq!(b.started_at(), b_started, "nothing restarted");
    // A was never touched by B's syncs.
    assert_eq!(a.started_at(), a_started);
    assert_eq!(a.status(), Some(200));
    assert_eq!(a.seen(), fingerprint(rejected.as_bytes()));

    // verify on B fails on the held version, naming it.
    let out = b.cmd(&["verify", "--json"]).run().code(1);
    let sync_checks = checks(&out, "sync");
    let short = &third.info.version.as_deref().unwrap()[..8];
    assert!(
        sync_checks
            .iter()
            .any(|(s, status, m)| s == "s1" && status == "fail" && m.contains(short)),
        "{sync_checks:?}"
    );
    // --retry-held tries again (and holds again: the value is still rejected).
    b.cmd(&["sync", "--retry-held", "--health-timeout", "20"])
        .run()
        .code(6);
    assert_eq!(b.status(), Some(200));

    // The vault moves on: B applies the new version and the hold ends.
    a.cmd(&["rotate", "s1"]).run().success();
    let fourth = store.get_latest("s1").await.unwrap();
    b.cmd(&["sync"]).run().success();
    assert_eq!(b.seen(), fingerprint(fourth.value.expose().as_bytes()));
    assert!(b.state().get("held").is_none(), "{}", b.state());
    let out = b.cmd(&["verify", "--json"]).run();
    assert!(
        checks(&out, "sync")
            .iter()
            .all(|(_, status, _)| status != "fail"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_watch_picks_up_a_rotation_on_another_host_and_stops_on_sigterm() {
    if !ready("sync_docker::fleet_watch_picks_up_a_rotation_on_another_host_and_stops_on_sigterm") {
        return;
    }
    let emulator = Emulator::start(&["--seed", "s1"]);
    let store = crate::support::store::store_for(&emulator, &[]);
    let a = Host::new("wa", "never-rejected-", &emulator);
    let b = Host::new("wb", "never-rejected-", &emulator);
    a.start();
    b.start();
    let mut watch = Background::spawn(b.cmd(&["sync", "--watch", "--interval", "2s"]));
    watch.wait_for("the watcher to start", PATIENCE, |w| {
        w.stderr().contains("watching the store every 2s")
    });
    let b_started = b.started_at();
    a.cmd(&["rotate", "s1"]).run().success();
    let new = store.get_latest("s1").await.unwrap();
    let wanted = fingerprint(new.value.expose().as_bytes());
    b.wait_until("on the new value", |b| b.seen() == wanted);
    watch.wait_for("the change line", PATIENCE, |w| {
        w.stdout().contains("s1: synced")
    });
    assert_ne!(b.started_at(), b_started);
    assert_eq!(b.file(), new.value.expose());
    let lines: Vec<String> = watch.stdout().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 1, "one line per change: {lines:?}");
    assert_eq!(watch.terminate(), 0, "stderr:\n{}", watch.stderr());
    assert!(watch.stderr().contains("SIGTERM"), "{}", watch.stderr());
    let text = format!("{}{}", watch.stdout(), watch.stderr());
    assert!(!text.contains(new.value.expose()), "no value in the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vault_outage_during_watch_keeps_files_and_containers_and_recovers() {
    if !ready("sync_docker::a_vault_outage_during_watch_keeps_files_and_containers_and_recovers") {
        return;
    }
    let emulator = Emulator::start(&["--seed", "s1"]);
    let store = crate::support::store::store_for(&emulator, &[]);
    let b = Host::new("ob", "never-rejected-", &emulator);
    b.start();
    let mut watch = Background::spawn(b.cmd(&["sync", "--watch", "--interval", "2s"]));
    watch.wait_for("the watcher to start", PATIENCE, |w| {
        w.stderr().contains("watching the store every 2s")
    });
    let (file, started, seen) = (b.file(), b.started_at(), b.seen());

    emulator
        .set_faults(serde_json::json!({"fault_500_every": 1}))
        .await;
    watch.wait_for("two back-offs in a row", PATIENCE, |w| {
        w.stderr().contains("(2 in a row)")
    });
    let stderr = watch.stderr();
    assert!(stderr.contains("backing off"), "{stderr}");
    assert!(stderr.contains("500"), "the failure is named: {stderr}");
    assert_eq!(b.file(), file, "the file is kept");
    assert_eq!(b.started_at(), started, "the container is kept");
    assert_eq!(b.status(), Some(200));
    assert_eq!(b.seen(), seen);
    assert_eq!(watch.stdout(), "", "no change during the outage");

    // The vault recovers, and a version set meanwhile is applied.
    emulator
        .set_faults(serde_json::json!({"fault_500_every": 0, "fault_429_every": 0}))
        .await;
    let value = unique("after-the-outage-");
    store
        .set(
            "s1",
            &SecretValue::new(value.clone()),
            &std::collections::BTreeMap::new(),
        )
        .await
        .unwrap();
    let wanted = fingerprint(value.as_bytes());
    b.wait_until("on the value set after the outage", |b| b.seen() == wanted);
    watch.wait_for("the change line", PATIENCE, |w| {
        w.stdout().contains("s1: synced")
    });
    assert_eq!(watch.terminate(), 0, "stderr:\n{}", watch.stderr());
    assert!(!watch.stderr().contains(&value));
}
