//! `sync` through the real binary without Docker: the warm path (a listing, no GET, no Docker
//! call, nothing written when nothing changed), the dry-run plan, nothing changed when Docker
//! cannot restart what changed, `--watch` stopping on SIGTERM, and backing off on 429s with
//! the vault's Retry-After. The fleet, held versions and outages on the real engine are in
//! `sync_docker`.

use std::time::Duration;

use crate::harness::{assert_same_files, Project};
use crate::support::emulator::{seeded_project, Emulator};
use crate::support::process::Background;

const NO_DOCKER: &str = "unix:///nonexistent/compose-secrets-test/docker.sock";

/// The demo project loaded in demo mode, then one `.env` value changed by hand: what
/// `sync` has to apply (the demo service is not running).
fn demo_with_a_change() -> Project {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    let env = p.read_string(".env");
    let changed: String = env
        .lines()
        .map(|l| {
            if l.starts_with("FLASK_SECRET_KEY=") {
                "FLASK_SECRET_KEY=set-by-hand-0123456789".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    p.write(".env", changed + "\n");
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_with_nothing_changed_costs_a_warm_load_lists_only_and_writes_nothing() {
    let emulator = Emulator::start(&["--seed-count", "60"]);
    // `updated` has one-second resolution: let the seeded versions age past it.
    std::thread::sleep(Duration::from_millis(1100));
    let p = seeded_project(60);
    p.cmd(&["load"]).keyvault(&emulator).run().success();

    emulator.reset_stats().await;
    p.cmd(&["load"]).keyvault(&emulator).run().success();
    let warm_load = emulator.stats().await;
    let before = p.snapshot();
    emulator.reset_stats().await;
    // No Docker either: nothing changed, so no engine is asked.
    let out = p
        .cmd(&["sync", "--json"])
        .keyvault(&emulator)
        .env("DOCKER_HOST", NO_DOCKER)
        .run()
        .success();
    let sync = emulator.stats().await;
    let report = out.json();
    assert_eq!(report["command"], "sync");
    assert_eq!(report["extra"]["changes"], serde_json::json!([]));
    let unchanged = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "unchanged")
        .count();
    assert_eq!(unchanged, 60);
    let op = |s: &serde_json::Value, k: &str| s["by_operation"][k].as_u64().unwrap_or(0);
    assert_eq!(op(&sync, "get"), 0, "{sync}");
    assert!(op(&sync, "list") >= 1, "{sync}");
    assert_eq!(
        (op(&sync, "list"), op(&sync, "get")),
        (op(&warm_load, "list"), op(&warm_load, "get")),
        "sync costs what a warm load costs: {sync} vs {warm_load}"
    );
    assert_eq!(sync["requests"], warm_load["requests"]);
    // No audit line, no state write: a poll that finds nothing leaves no trace.
    assert_same_files(&before, &p.snapshot());
}

#[test]
fn a_change_docker_cannot_restart_for_changes_nothing() {
    let p = demo_with_a_change();
    let before = p.snapshot();
    let out = p.cmd(&["sync"]).env("DOCKER_HOST", NO_DOCKER).run().code(5);
    assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
    out.assert_no_values(&["set-by-hand-0123456789".to_string()]);
    assert_same_files(&before, &p.snapshot());
}

#[test]
fn the_dry_run_names_what_would_be_applied_and_changes_nothing() {
    let p = demo_with_a_change();
    let before = p.snapshot();
    let out = p
        .cmd(&["sync", "--dry-run", "--json"])
        .env("DOCKER_HOST", NO_DOCKER)
        .run()
        .success();
    out.assert_no_values(&["set-by-hand-0123456789".to_string()]);
    let report = out.json();
    assert_eq!(report["dry_run"], true);
    let items = report["items"].as_array().unwrap();
    let action = |name: &str, action: &str| {
        items
            .iter()
            .any(|i| i["name"] == name && i["action"] == action)
    };
    assert!(action("flask-secret-key", "would-sync"), "{report:#}");
    assert!(action("flask-secret-key", "would-restart"), "{report:#}");
    assert!(action("docker", "unreachable"), "{report:#}");
    assert!(action("keycloak-admin-password", "unchanged"), "{report:#}");
    assert_same_files(&before, &p.snapshot());
}

#[test]
fn a_bad_interval_is_a_usage_error() {
    let p = Project::demo();
    p.cmd(&["sync", "--watch", "--interval", "soon"])
        .run()
        .code(2)
        .stderr_has("--interval");
    p.cmd(&["sync", "--watch", "--interval", "0s"])
        .run()
        .code(2);
    // --interval means nothing without --watch.
    p.cmd(&["sync", "--interval", "5s"]).run().code(2);
}

#[test]
fn watch_with_nothing_to_do_stops_cleanly_on_sigterm() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    let before = p.snapshot();
    let mut watch = Background::spawn(
        p.cmd(&["sync", "--watch", "--interval", "1s"])
            .env("DOCKER_HOST", NO_DOCKER),
    );
    watch.wait_for("the watcher's start line", Duration::from_secs(60), |w| {
        w.stderr().contains("watching the store every 1s")
    });
    // Let it poll a few times: nothing changes, so nothing is written or restarted.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(watch.terminate(), 0, "stderr:\n{}", watch.stderr());
    assert!(
        watch.stderr().contains("SIGTERM: stopped"),
        "{}",
        watch.stderr()
    );
    assert_eq!(watch.stdout(), "", "no change, no line");
    assert_same_files(&before, &p.snapshot());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_watch_backs_off_for_at_least_the_retry_after() {
    let emulator = Emulator::start(&["--seed-count", "3"]);
    std::thread::sleep(Duration::from_millis(1100));
    let p = seeded_project(3);
    p.cmd(&["load"]).keyvault(&emulator).run().success();
    emulator
        .set_faults(serde_json::json!({"fault_429_every": 1, "retry_after": 2}))
        .await;
    let mut watch = Background::spawn(
        p.cmd(&["--json", "sync", "--watch", "--interval", "1s"])
            .keyvault(&emulator),
    );
    watch.wait_for("a back-off line", Duration::from_secs(120), |w| {
        w.stderr().contains("\"backoff\"")
    });
    emulator
        .set_faults(serde_json::json!({"fault_500_every": 0, "fault_429_every": 0}))
        .await;
    let line: serde_json::Value = watch
        .stderr()
        .lines()
        .find(|l| l.contains("\"backoff\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    assert_eq!(line["error"]["kind"], "vault-throttled", "{line}");
    assert!(
        line["retry_in_secs"].as_f64().unwrap() >= 2.0,
        "never sooner than Retry-After: {line}"
    );
    assert_eq!(watch.terminate(), 0, "stderr:\n{}", watch.stderr());
}
