//! `rotate` on the real Docker engine, in demo mode and against the Key Vault emulator:
//! the container restarts with the new value, a value the service rejects is rolled back
//! everywhere (source, file, container).

use std::process::Command;
use std::time::Duration;

use compose_secrets::testing::store::SecretStore as _;

use crate::harness::{Project, Run};
use crate::support::docker::{fingerprint, ready, DEMO_IMAGE};
use crate::support::emulator::Emulator;
use crate::support::stack::Stack;
use crate::support::store::store_for;

#[test]
fn demo_rotate_restarts_the_container_with_the_new_value_and_rolls_back_a_rejected_one() {
    if !ready("rotate_docker::demo_rotate_restarts_the_container_with_the_new_value_and_rolls_back_a_rejected_one") {
        return;
    }
    let p = Project::empty();
    p.write(".env.demo", "S1=\n");
    let stack = Stack::write(&p, "demo");
    stack.cmd(&["ensure"]).run().success();
    stack.cmd(&["load"]).run().success();
    stack.up();
    let old = p.env_value("S1");
    assert_eq!(stack.fingerprint_seen(), fingerprint(old.as_bytes()));
    let started = stack.started_at();
    let inode = p.inode(".runtime/secrets/s1");

    let out = stack.cmd(&["rotate", "s1"]).run().success();
    out.assert_no_values(std::slice::from_ref(&old));
    let new = p.env_value("S1");
    assert_ne!(new, old);
    assert_eq!(p.read_string(".runtime/secrets/s1"), new);
    assert_eq!(p.mode(".runtime/secrets/s1"), 0o400);
    assert_ne!(p.inode(".runtime/secrets/s1"), inode, "replaced by rename");
    assert_ne!(stack.started_at(), started, "the container was restarted");
    assert_eq!(
        stack.fingerprint_seen(),
        fingerprint(new.as_bytes()),
        "it sees the new value"
    );
    out.assert_no_values(std::slice::from_ref(&new));

    // A value the service rejects: unhealthy after the restart, so everything goes back.
    let started = stack.started_at();
    let out = stack
        .cmd(&["rotate", "s1", "--value-stdin", "--health-timeout", "20"])
        .stdin("bad-rejected-value")
        .run();
    let out = out.code(6);
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    out.assert_no_values(&["bad-rejected-value".to_string(), new.clone()]);
    assert_eq!(p.env_value("S1"), new, ".env holds the previous value");
    assert_eq!(
        p.read_string(".runtime/secrets/s1"),
        new,
        "the file holds the previous value"
    );
    assert_ne!(
        stack.started_at(),
        started,
        "restarted again by the rollback"
    );
    assert_eq!(stack.health().map(|(s, _)| s), Some(200));
    assert_eq!(stack.fingerprint_seen(), fingerprint(new.as_bytes()));
}

#[tokio::test(flavor = "multi_thread")]
async fn key_vault_rotate_pushes_a_tagged_version_restarts_and_rolls_back_in_the_vault() {
    if !ready("rotate_docker::key_vault_rotate_pushes_a_tagged_version_restarts_and_rolls_back_in_the_vault") {
        return;
    }
    let emulator = Emulator::start(&["--seed", "s1"]);
    let store = store_for(&emulator, &[]);
    let p = Project::empty();
    let stack = Stack::write(&p, "kv");
    let kv = |args: &[&str]| stack.cmd(args).keyvault(&emulator);
    kv(&["load"]).run().success();
    stack.up();
    let before = store.get_latest("s1").await.unwrap();
    let started = stack.started_at();

    kv(&["rotate", "s1"]).run().success();
    let after = store.get_latest("s1").await.unwrap();
    assert_ne!(after.info.version, before.info.version, "a new version");
    assert_eq!(
        after.info.tags.get("previous-version"),
        before.info.version.as_ref()
    );
    assert!(
        after.info.tags.contains_key("rotated-at") && after.info.tags.contains_key("rotated-by")
    );
    assert_eq!(p.read_string(".runtime/secrets/s1"), after.value.expose());
    assert_ne!(stack.started_at(), started);
    assert_eq!(
        stack.fingerprint_seen(),
        fingerprint(after.value.expose().as_bytes())
    );

    let out = kv(&["rotate", "s1", "--value-stdin", "--health-timeout", "20"])
        .stdin("bad-rejected-value")
        .run()
        .code(6);
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    let current = store.get_latest("s1").await.unwrap();
    assert_eq!(
        current.value, after.value,
        "the previous value is current again"
    );
    assert!(
        current.info.tags.contains_key("rollback-of"),
        "tagged as a rollback"
    );
    assert_eq!(p.read_string(".runtime/secrets/s1"), after.value.expose());
    assert_eq!(
        stack.fingerprint_seen(),
        fingerprint(after.value.expose().as_bytes())
    );
}

#[test]
fn verify_names_a_stale_container_and_a_value_leaked_into_a_container_env() {
    if !ready(
        "rotate_docker::verify_names_a_stale_container_and_a_value_leaked_into_a_container_env",
    ) {
        return;
    }
    let p = Project::empty();
    p.write(".env.demo", "S1=\n");
    let stack = Stack::write(&p, "verify");
    stack.cmd(&["ensure"]).run().success();
    stack.cmd(&["load"]).run().success();
    stack.up();
    let checks = |run: Run| -> (i32, Vec<serde_json::Value>) {
        let out = run.run();
        let json = out.json();
        (out.code, json["checks"].as_array().unwrap().clone())
    };
    let find = |checks: &[serde_json::Value], category: &str, subject: &str| -> Vec<String> {
        checks
            .iter()
            .filter(|c| {
                c["category"] == category && c["subject"].as_str().unwrap().contains(subject)
            })
            .map(|c| c["status"].as_str().unwrap().to_string())
            .collect()
    };
    let (code, c) = checks(stack.cmd(&["verify", "--json"]));
    assert_eq!(code, 0, "{c:#?}");
    assert_eq!(find(&c, "health", "service app"), vec!["pass"]);

    // Rotated without a restart: the running container still holds the old value.
    std::thread::sleep(Duration::from_millis(1100));
    stack.cmd(&["rotate", "s1", "--no-restart"]).run().success();
    let (code, c) = checks(stack.cmd(&["verify", "--json"]));
    assert_eq!(code, 1);
    assert!(
        find(&c, "containers", "(app)").contains(&"fail".to_string()),
        "{c:#?}"
    );
    stack.restart_by_hand();
    let (_, c) = checks(stack.cmd(&["verify", "--json"]));
    assert_eq!(find(&c, "containers", "(app)"), vec!["pass"], "{c:#?}");

    // A container of the project that carries a secret value in its environment.
    let value = p.env_value("S1");
    let leak = Command::new("docker")
        .args([
            "run",
            "-d",
            "--rm",
            "--label",
            &format!("com.docker.compose.project={}", stack.name),
            "--label",
            "com.docker.compose.service=leaky",
            "-e",
            &format!("LEAKED={value}"),
            "--entrypoint",
            "/demo-app",
            DEMO_IMAGE,
            "serve",
        ])
        .output()
        .unwrap();
    assert!(leak.status.success());
    let leak_id = String::from_utf8_lossy(&leak.stdout).trim().to_string();
    let out = stack.cmd(&["verify", "--json"]).run().code(1);
    out.assert_no_values(std::slice::from_ref(&value));
    let c = out.json()["checks"].as_array().unwrap().clone();
    assert!(
        find(&c, "leaks", "(leaky)").contains(&"fail".to_string()),
        "{c:#?}"
    );
    let _ = Command::new("docker").args(["rm", "-f", &leak_id]).output();
    let (code, c) = checks(stack.cmd(&["verify", "--json"]));
    assert_eq!(code, 0, "{c:#?}");
}

/// Two Compose projects on one host with the same service name, `app`, both using a secret
/// named `s1`: rotating in one restarts only that project's container. The other keeps
/// running, on its own value, with its StartedAt unchanged.
#[test]
fn a_same_named_service_in_another_project_is_not_restarted() {
    if !ready("rotate_docker::a_same_named_service_in_another_project_is_not_restarted") {
        return;
    }
    let (mine, theirs) = (Project::empty(), Project::empty());
    let stacks: Vec<Stack<&Project>> = [(&mine, "mine"), (&theirs, "theirs")]
        .into_iter()
        .map(|(p, tag)| {
            p.write(".env.demo", "S1=\n");
            let stack = Stack::write(p, tag);
            stack.cmd(&["ensure"]).run().success();
            stack.cmd(&["load"]).run().success();
            stack.up();
            stack
        })
        .collect();
    let (started_mine, started_theirs) = (stacks[0].started_at(), stacks[1].started_at());
    let their_value = theirs.env_value("S1");

    stacks[0].cmd(&["rotate", "s1"]).run().success();
    assert_ne!(stacks[0].started_at(), started_mine, "ours restarted");
    assert_eq!(
        stacks[1].started_at(),
        started_theirs,
        "the other project's `app` was not touched"
    );
    assert_eq!(stacks[1].inspect("{{.State.Running}}"), "true");
    assert_eq!(
        stacks[1].fingerprint_seen(),
        fingerprint(their_value.as_bytes())
    );
}
