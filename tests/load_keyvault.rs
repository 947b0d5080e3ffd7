//! `load` (and `rotate`) from Key Vault through the real binary against the emulator: every
//! credential kind, pinned versions, the warm path that fetches nothing, and errors that
//! name the secret and the missing permission.

use std::time::Duration;

use compose_secrets::testing::secret::SecretValue;
use compose_secrets::testing::store::SecretStore as _;

use crate::harness::Project;
use crate::support::emulator::Emulator;

const TWO: &str = "services:\n  app:\n    image: x\n    secrets: [db-password, api-key]\nsecrets:\n  db-password:\n    file: ./.runtime/secrets/db-password\n  api-key:\n    file: ./.runtime/secrets/api-key\n";

fn started(seeds: &[&str], extra: &[&str]) -> Emulator {
    let mut args: Vec<&str> = Vec::new();
    for s in seeds {
        args.extend(["--seed", s]);
    }
    args.extend_from_slice(extra);
    let emulator = Emulator::start(&args);
    // `updated` has one-second resolution: let seeded versions age past it.
    std::thread::sleep(Duration::from_millis(1100));
    emulator
}

#[test]
fn every_credential_kind_loads_the_same_files() {
    let emulator = started(&["db-password", "api-key"], &[]);
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        token_file.path(),
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZCJ9.c2ln",
    )
    .unwrap();
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("managed-identity", vec![]),
        ("auto", vec![]),
        (
            "client-secret",
            vec![
                ("AZURE_CLIENT_ID", "ci-app".into()),
                ("AZURE_CLIENT_SECRET", emulator.client_secret.clone()),
            ],
        ),
        (
            "workload-identity",
            vec![
                ("AZURE_CLIENT_ID", "wl-app".into()),
                (
                    "AZURE_FEDERATED_TOKEN_FILE",
                    token_file.path().display().to_string(),
                ),
            ],
        ),
    ];
    let mut contents = Vec::new();
    for (credential, extra) in cases {
        let p = Project::empty();
        p.write("compose.yaml", TWO);
        let mut run = p
            .cmd(&["load", "--json"])
            .keyvault(&emulator)
            .env("AZURE_CREDENTIAL", credential);
        for (k, v) in &extra {
            run = run.env(k, v);
        }
        let out = run.run();
        out.assert_no_values(std::slice::from_ref(&emulator.client_secret));
        let out = out.success();
        assert!(
            out.stdout.contains("written"),
            "{credential}: {}",
            out.stdout
        );
        assert_eq!(p.mode(".runtime/secrets/db-password"), 0o400);
        contents.push((
            p.read(".runtime/secrets/db-password"),
            p.read(".runtime/secrets/api-key"),
        ));
    }
    assert!(
        contents.windows(2).all(|w| w[0] == w[1]),
        "every credential reads the same values"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_load_lists_once_and_fetches_nothing() {
    let emulator = started(&["db-password", "api-key"], &[]);
    let p = Project::empty();
    p.write("compose.yaml", TWO);
    p.cmd(&["load"]).keyvault(&emulator).run().success();
    emulator.reset_stats().await;
    let inode = p.inode(".runtime/secrets/db-password");
    p.cmd(&["load", "--json"])
        .keyvault(&emulator)
        .run()
        .success()
        .stdout_has("unchanged");
    let stats = emulator.stats().await;
    assert_eq!(
        stats["by_operation"]["get"].as_u64().unwrap_or(0),
        0,
        "{stats}"
    );
    assert!(
        stats["by_operation"]["list"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
    assert_eq!(
        p.inode(".runtime/secrets/db-password"),
        inode,
        "not rewritten"
    );

    // Rotated in the vault: only that secret is fetched and rewritten.
    std::thread::sleep(Duration::from_millis(1100));
    let store = crate::support::store::store_for(&emulator, &[]);
    store
        .set(
            "db-password",
            &SecretValue::new("fresh-value-42".into()),
            &Default::default(),
        )
        .await
        .unwrap();
    emulator.reset_stats().await;
    p.cmd(&["load"]).keyvault(&emulator).run().success();
    let stats = emulator.stats().await;
    assert_eq!(stats["gets_by_secret"]["db-password"], 1, "{stats}");
    assert!(stats["gets_by_secret"].get("api-key").is_none(), "{stats}");
    assert_eq!(
        p.read_string(".runtime/secrets/db-password"),
        "fresh-value-42"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pinned_version_is_loaded_instead_of_the_latest() {
    let emulator = started(&[], &[]);
    let store = crate::support::store::store_for(&emulator, &[]);
    let old = store
        .set(
            "db-password",
            &SecretValue::new("pinned-one".into()),
            &Default::default(),
        )
        .await
        .unwrap();
    store
        .set(
            "db-password",
            &SecretValue::new("latest-two".into()),
            &Default::default(),
        )
        .await
        .unwrap();
    let p = Project::empty();
    p.write(
        "compose.yaml",
        format!(
            "services:\n  app:\n    image: x\n    secrets: [db-password]\nsecrets:\n  db-password:\n    file: ./.runtime/secrets/db-password\n    x-compose-secrets:\n      version: {}\n",
            old.version.unwrap()
        ),
    );
    p.cmd(&["load"]).keyvault(&emulator).run().success();
    assert_eq!(p.read_string(".runtime/secrets/db-password"), "pinned-one");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_name_the_secret_and_change_nothing() {
    let emulator = started(
        &["db-password", "api-key"],
        &["--permissions", "reader=get,list"],
    );
    let p = Project::empty();
    p.write("compose.yaml", TWO);
    p.cmd(&["load"]).keyvault(&emulator).run().success();
    let before = p.snapshot();

    // Not found: exit 3 naming it.
    p.write(
        "compose.yaml",
        format!("{TWO}  ghost:\n    file: ./.runtime/secrets/ghost\n").replace(
            "secrets: [db-password, api-key]",
            "secrets: [db-password, api-key, ghost]",
        ),
    );
    let before_ghost = p.snapshot();
    p.cmd(&["load"])
        .keyvault(&emulator)
        .run()
        .code(3)
        .stderr_has("ghost");
    crate::harness::assert_same_files(&before_ghost, &p.snapshot());
    p.write("compose.yaml", TWO);

    // Disabled: exit 3 naming it.
    let store = crate::support::store::store_for(&emulator, &[]);
    store.set_enabled("api-key", None, false).await.unwrap();
    p.cmd(&["load", "--no-cache"])
        .keyvault(&emulator)
        .run()
        .code(3)
        .stderr_has("`api-key` is disabled");
    store.set_enabled("api-key", None, true).await.unwrap();

    // The seeds' VM identity may only get: load works, rotate names the `set` permission.
    p.cmd(&["load"])
        .keyvault(&emulator)
        .env("AZURE_CLIENT_ID", "reader")
        .run()
        .success();
    let out = p
        .cmd(&["rotate", "db-password", "--no-restart"])
        .keyvault(&emulator)
        .env("AZURE_CLIENT_ID", "reader")
        .run()
        .code(4);
    assert!(
        out.stderr.contains("`set`") && out.stderr.contains("db-password"),
        "{}",
        out.stderr
    );
    let after = p.snapshot();
    let changed: Vec<_> = before
        .keys()
        .filter(|k| {
            before.get(*k) != after.get(*k)
                && !k.ends_with("audit.log")
                && !k.ends_with("state.json")
        })
        .collect();
    assert!(changed.is_empty(), "a refused rotation changed {changed:?}");
}

/// A Compose file whose one service mounts `n` seeded secrets (`bench-0000`…).
fn seeded(n: usize) -> String {
    let names: Vec<String> = (0..n).map(|i| format!("bench-{i:04}")).collect();
    let mut text = format!(
        "services:\n  app:\n    image: x\n    secrets: [{}]\nsecrets:\n",
        names.join(", ")
    );
    for name in &names {
        text.push_str(&format!("  {name}:\n    file: ./.runtime/secrets/{name}\n"));
    }
    text
}

/// Issue 21 item 5: a cold load needs no listing, since each GET brings its version; a warm
/// load lists and GETs nothing; `--no-cache` is cold again. Counted at the emulator.
#[tokio::test(flavor = "multi_thread")]
async fn a_cold_load_gets_each_secret_once_and_lists_nothing() {
    const N: usize = 40;
    let emulator = started(&[], &["--seed-count", "40"]);
    let p = Project::empty();
    p.write("compose.yaml", seeded(N));
    let op = |s: &serde_json::Value, k: &str| s["by_operation"][k].as_u64().unwrap_or(0);
    emulator.reset_stats().await;
    p.cmd(&["load"]).keyvault(&emulator).run().success();
    let cold = emulator.stats().await;
    assert_eq!(op(&cold, "list"), 0, "{cold}");
    assert_eq!(op(&cold, "get"), N as u64, "{cold}");
    for i in 0..N {
        assert_eq!(cold["gets_by_secret"][format!("bench-{i:04}")], 1, "{cold}");
    }
    // The challenge is one round trip: at most the first wave (16 in flight) meets it.
    let unauthenticated = cold["unauthenticated"].as_u64().unwrap_or(0);
    assert!((1..=16).contains(&unauthenticated), "{cold}");

    emulator.reset_stats().await;
    p.cmd(&["load"]).keyvault(&emulator).run().success();
    let warm = emulator.stats().await;
    assert_eq!(op(&warm, "get"), 0, "{warm}");
    assert_eq!(op(&warm, "list"), 2, "40 secrets at 25 a page: {warm}");

    emulator.reset_stats().await;
    p.cmd(&["load", "--no-cache"])
        .keyvault(&emulator)
        .run()
        .success();
    let no_cache = emulator.stats().await;
    assert_eq!(
        (op(&no_cache, "list"), op(&no_cache, "get")),
        (0, N as u64),
        "{no_cache}"
    );
}

/// Without a listing, a secret the vault lacks is still named (exit 3) and nothing is written;
/// so is a disabled one.
#[tokio::test(flavor = "multi_thread")]
async fn a_cold_load_names_a_missing_or_disabled_secret_and_writes_nothing() {
    let emulator = started(&["db-password", "api-key"], &[]);
    let p = Project::empty();
    p.write(
        "compose.yaml",
        format!("{TWO}  ghost:\n    file: ./.runtime/secrets/ghost\n").replace(
            "secrets: [db-password, api-key]",
            "secrets: [db-password, api-key, ghost]",
        ),
    );
    let before = p.snapshot();
    emulator.reset_stats().await;
    let out = p.cmd(&["load"]).keyvault(&emulator).run().code(3);
    assert!(
        out.stderr.contains("no value for") && out.stderr.contains("ghost"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("db-password"), "{}", out.stderr);
    crate::harness::assert_same_files(&before, &p.snapshot());
    assert_eq!(
        emulator.stats().await["by_operation"]["list"]
            .as_u64()
            .unwrap_or(0),
        0
    );

    p.write("compose.yaml", TWO);
    let before = p.snapshot();
    let store = crate::support::store::store_for(&emulator, &[]);
    store.set_enabled("api-key", None, false).await.unwrap();
    p.cmd(&["load"])
        .keyvault(&emulator)
        .run()
        .code(3)
        .stderr_has("`api-key` is disabled");
    crate::harness::assert_same_files(&before, &p.snapshot());
}
