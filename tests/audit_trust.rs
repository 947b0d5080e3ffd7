//! The audit chain against someone who can write `.runtime`: a log re-signed with a replaced
//! per-install key, the newest lines dropped with `state.json`'s head rewritten, the log and
//! its head deleted, and an emptied log. The store's signing key and the head anchored in Key
//! Vault must catch what `.runtime` alone cannot; a legitimate history must still pass.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::harness::{Project, Run};
use crate::support::emulator::Emulator;

type HmacSha256 = Hmac<Sha256>;

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// What an attacker with write access to `.runtime` does: a new `audit.key`, every line
/// re-signed with it exactly as `audit/chain.rs` signs (`key: "local"`, its `key_id`, the MAC
/// over prev ‖ canonical body), `edit` applied to the first line, and `audit_head` set to match.
fn forge_with_a_new_local_key(p: &Project, edit: impl Fn(&mut serde_json::Value)) {
    let key = hex::encode(rand::random::<[u8; 32]>());
    p.write(".runtime/audit.key", &key);
    let key_id = hex::encode(&hmac_hex(key.as_bytes(), &[b"compose-secrets audit key id"])[..8]);
    let log = p.read_string(".runtime/audit.log");
    let mut prev = String::new();
    let mut out = String::new();
    let mut count = 0;
    for (i, line) in log.lines().filter(|l| !l.is_empty()).enumerate() {
        let mut doc: serde_json::Value = serde_json::from_str(line).unwrap();
        let obj = doc.as_object_mut().unwrap();
        obj.remove("mac");
        obj.insert("key".into(), "local".into());
        obj.insert("key_id".into(), key_id.clone().into());
        obj.insert("prev".into(), prev.clone().into());
        if i == 0 {
            edit(&mut doc);
        }
        let body = compose_secrets::testing::audit::canonical(&doc);
        let mac = hex::encode(hmac_hex(
            key.as_bytes(),
            &[prev.as_bytes(), body.as_bytes()],
        ));
        doc["mac"] = mac.clone().into();
        out.push_str(&compose_secrets::testing::audit::canonical(&doc));
        out.push('\n');
        prev = mac;
        count += 1;
    }
    p.write(".runtime/audit.log", out);
    set_head(p, Some((count, &prev)));
}

/// Rewrite (or, with `None`, remove) `audit_head` in `state.json`.
fn set_head(p: &Project, head: Option<(usize, &str)>) {
    let mut state: serde_json::Value =
        serde_json::from_str(&p.read_string(".runtime/state.json")).unwrap();
    let obj = state.as_object_mut().unwrap();
    match head {
        Some((lines, mac)) => {
            obj.insert(
                "audit_head".into(),
                serde_json::json!({"lines": lines, "mac": mac}),
            );
        }
        None => {
            obj.remove("audit_head");
        }
    }
    p.write(".runtime/state.json", serde_json::to_vec(&state).unwrap());
}

fn log_lines(p: &Project) -> Vec<String> {
    p.read_string(".runtime/audit.log")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn mac_of(line: &str) -> String {
    let doc: serde_json::Value = serde_json::from_str(line).unwrap();
    doc["mac"].as_str().unwrap().to_string()
}

/// The `audit` checks of a `verify --json --no-docker` run: (exit code, [(status, message)]).
fn audit_checks(run: Run) -> (i32, Vec<(String, String)>) {
    let out = run.run();
    let json = out.json();
    let checks = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["category"] == "audit")
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_string(),
                c["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (out.code, checks)
}

#[track_caller]
fn assert_fail_with(checks: &[(String, String)], needles: &[&str]) {
    assert!(
        checks
            .iter()
            .any(|(s, m)| s == "fail" && needles.iter().all(|n| m.contains(n))),
        "want a fail containing {needles:?}: {checks:#?}"
    );
}

#[track_caller]
fn assert_no_fail(checks: &[(String, String)]) {
    assert!(
        checks.iter().all(|(s, _)| s != "fail"),
        "want no audit failure: {checks:#?}"
    );
}

/// A file removed by hand: the next load restores it, a change the log records (a load that
/// changes nothing adds no line).
fn remove_a_secret_file(p: &Project) {
    std::fs::remove_file(p.path(".runtime/secrets/flask-secret-key")).unwrap();
}

/// The demo loaded twice, each load a line.
fn demo_loaded() -> Project {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    remove_a_secret_file(&p);
    p.cmd(&["load"]).run().success();
    p
}

const SEEDS: [&str; 4] = [
    "flask-secret-key",
    "keycloak-service-client-secret",
    "keycloak-admin-password",
    "audit-log-signing-key",
];

fn emulator() -> Emulator {
    let mut args = Vec::new();
    for s in SEEDS {
        args.extend(["--seed", s]);
    }
    let emulator = Emulator::start(&args);
    // `updated` has one-second resolution: let the seeded versions age past it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    emulator
}

const VERIFY: [&str; 3] = ["verify", "--json", "--no-docker"];

/// Three loads from the emulator, each a line.
fn kv_loaded(emulator: &Emulator) -> Project {
    let p = Project::demo();
    for i in 0..3 {
        if i > 0 {
            remove_a_secret_file(&p);
        }
        p.cmd(&["load"]).keyvault(emulator).run().success();
    }
    p
}

#[test]
fn demo_a_log_re_signed_with_a_replaced_local_key_fails_naming_the_line() {
    let p = demo_loaded();
    let (_, checks) = audit_checks(p.cmd(&VERIFY));
    assert_no_fail(&checks);
    forge_with_a_new_local_key(&p, |doc| doc["user"] = "mallory".into());
    let (code, checks) = audit_checks(p.cmd(&VERIFY));
    assert_eq!(code, 1, "{checks:#?}");
    assert_fail_with(&checks, &["line 1", "audit-log-signing-key"]);
}

#[test]
fn demo_verify_says_what_the_demo_store_cannot_detect() {
    let p = demo_loaded();
    let (_, checks) = audit_checks(p.cmd(&VERIFY));
    assert_no_fail(&checks);
    assert!(
        checks
            .iter()
            .any(|(s, m)| s == "skip" && m.contains("demo") && m.contains("state.json")),
        "{checks:#?}"
    );
}

#[test]
fn without_a_signing_key_verify_says_what_the_local_key_proves() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [db]\nsecrets:\n  db:\n    file: ./.runtime/secrets/db\n    x-compose-secrets:\n      generator: hex:8\n",
    );
    p.write(".env", "");
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    let (code, checks) = audit_checks(p.cmd(&VERIFY));
    assert_eq!(code, 0, "{checks:#?}");
    assert!(
        checks
            .iter()
            .any(|(_, m)| m.contains(".runtime/audit.key") && m.contains("re-sign")),
        "{checks:#?}"
    );
}

#[test]
fn an_empty_log_says_empty_and_fails_only_when_state_had_lines() {
    let p = demo_loaded();
    p.write(".runtime/audit.log", "");
    let (code, checks) = audit_checks(p.cmd(&VERIFY));
    assert_eq!(code, 1, "{checks:#?}");
    assert_fail_with(&checks, &["empty", "2 line(s)"]);
    assert!(
        checks.iter().all(|(_, m)| !m.contains("line 0")),
        "{checks:#?}"
    );
    set_head(&p, None);
    let (code, checks) = audit_checks(p.cmd(&VERIFY));
    assert_eq!(code, 0, "{checks:#?}");
    assert!(
        checks.iter().any(|(_, m)| m.contains("empty")),
        "{checks:#?}"
    );
    assert!(
        checks.iter().all(|(_, m)| !m.contains("line 0")),
        "{checks:#?}"
    );
}

#[test]
fn key_vault_a_log_re_signed_with_a_replaced_local_key_fails() {
    let emulator = emulator();
    let p = kv_loaded(&emulator);
    forge_with_a_new_local_key(&p, |doc| doc["host"] = "elsewhere".into());
    let (code, checks) = audit_checks(p.cmd(&VERIFY).keyvault(&emulator));
    assert_eq!(code, 1, "{checks:#?}");
    assert_fail_with(&checks, &["line 1", "audit-log-signing-key"]);
}

#[test]
fn key_vault_dropped_lines_with_a_rewritten_head_fail() {
    let emulator = emulator();
    let p = kv_loaded(&emulator);
    let lines = log_lines(&p);
    assert_eq!(lines.len(), 3);
    let (_, checks) = audit_checks(p.cmd(&VERIFY).keyvault(&emulator));
    assert_no_fail(&checks);
    let kept = &lines[..2];
    p.write(".runtime/audit.log", kept.join("\n") + "\n");
    set_head(&p, Some((2, &mac_of(&kept[1]))));
    let (code, checks) = audit_checks(p.cmd(&VERIFY).keyvault(&emulator));
    assert_eq!(code, 1, "{checks:#?}");
    assert_fail_with(&checks, &["2 line(s)", "3"]);
}

#[test]
fn key_vault_a_deleted_log_and_head_fail() {
    let emulator = emulator();
    let p = kv_loaded(&emulator);
    std::fs::remove_file(p.path(".runtime/audit.log")).unwrap();
    set_head(&p, None);
    let (code, checks) = audit_checks(p.cmd(&VERIFY).keyvault(&emulator));
    assert_eq!(code, 1, "{checks:#?}");
    assert_fail_with(&checks, &["3 line(s)"]);
    // A load after the deletion does not bury the evidence: one that changes nothing writes
    // nothing, and one that writes does not rewind the anchor.
    p.cmd(&["load"]).keyvault(&emulator).run().success();
    assert!(
        !p.exists(".runtime/audit.log"),
        "a no-change load starts no log"
    );
    remove_a_secret_file(&p);
    let out = p.cmd(&["load"]).keyvault(&emulator).run().success();
    assert!(out.stderr.contains("anchor"), "{}", out.stderr);
    let (code, checks) = audit_checks(p.cmd(&VERIFY).keyvault(&emulator));
    assert_eq!(code, 1, "{checks:#?}");
}

/// Needs the Docker engine (`sync` looks for containers to restart): run under
/// `flock /tmp/docker-tests.lock`.
#[tokio::test(flavor = "multi_thread")]
async fn key_vault_a_legitimate_history_passes_with_its_head_anchored() {
    use compose_secrets::testing::store::SecretStore as _;
    let emulator = emulator();
    let p = kv_loaded(&emulator);
    let rotate = |name: &str| {
        p.cmd(&["rotate", name, "--no-restart", "--yes"])
            .keyvault(&emulator)
            .run()
            .success();
    };
    rotate("flask-secret-key");
    rotate("audit-log-signing-key");
    // A new signing key set in the vault behind our back, then applied by `sync`.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    crate::support::store::store_for(&emulator, &[])
        .set(
            "audit-log-signing-key",
            &compose_secrets::testing::secret::SecretValue::new(
                "set-elsewhere-0123456789abcdef".into(),
            ),
            &Default::default(),
        )
        .await
        .unwrap();
    p.cmd(&["sync"]).keyvault(&emulator).run().success();
    let (_, checks) = audit_checks(p.cmd(&VERIFY).keyvault(&emulator));
    assert!(
        checks.iter().all(|(s, _)| s != "fail" && s != "warn"),
        "{checks:#?}"
    );
    let lines = log_lines(&p);
    assert!(
        lines.iter().filter(|l| l.contains("key-rotation")).count() >= 2,
        "{lines:#?}"
    );
    assert!(
        checks.iter().any(|(s, m)| s == "pass"
            && m.contains("anchored")
            && m.contains(&format!("{} line(s)", lines.len()))),
        "{checks:#?}"
    );
    assert!(
        checks
            .iter()
            .any(|(s, m)| s == "pass" && m.contains("audit-log-signing-key")),
        "{checks:#?}"
    );
}
