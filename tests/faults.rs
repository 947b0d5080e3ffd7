//! Vault faults from the emulator against the real binary: 500s, dropped connections and
//! 10 s latency spikes. `load` and `rotate` finish within their retry budget with every file
//! complete, or fail naming what they could not do and leave the files as they were.

use std::time::{Duration, Instant};

use compose_secrets::testing::store::SecretStore as _;

use crate::harness::Project;
use crate::support::emulator::{seeded_project, Emulator};

const SECRETS: usize = 12;

/// Every file equals the vault's current value.
async fn assert_converged(p: &Project, emulator: &Emulator) {
    let store = crate::support::store::store_for(emulator, &[]);
    for i in 0..SECRETS {
        let name = format!("bench-{i:04}");
        let current = store.get_latest(&name).await.unwrap();
        assert_eq!(
            p.read_string(&format!(".runtime/secrets/{name}")),
            current.value.expose(),
            "{name}"
        );
    }
}

async fn load_under(faults: serde_json::Value) -> (Project, Emulator, Duration) {
    let emulator = Emulator::start(&["--seed-count", &SECRETS.to_string()]);
    let p = seeded_project(SECRETS);
    emulator.set_faults(faults).await;
    let started = Instant::now();
    p.cmd(&["load"]).keyvault(&emulator).run().success();
    let took = started.elapsed();
    emulator.clear_faults().await;
    (p, emulator, took)
}

#[tokio::test(flavor = "multi_thread")]
async fn load_rides_out_500s() {
    let (p, emulator, took) = load_under(serde_json::json!({"fault_500_every": 3})).await;
    let stats = emulator.stats().await;
    assert!(stats["faults_injected"].as_u64().unwrap() > 0, "{stats}");
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("500 every 3rd request: load took {took:?}\n"),
    );
    assert_converged(&p, &emulator).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn load_rides_out_dropped_connections() {
    let (p, emulator, took) = load_under(serde_json::json!({"fault_drop_every": 4})).await;
    let stats = emulator.stats().await;
    assert!(stats["faults_injected"].as_u64().unwrap() > 0, "{stats}");
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("dropped connection every 4th request: load took {took:?}\n"),
    );
    assert_converged(&p, &emulator).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn load_waits_out_a_ten_second_latency_spike() {
    let (p, emulator, took) =
        load_under(serde_json::json!({"latency_spike_ms": 10_000, "latency_spike_every": 7})).await;
    assert!(
        took >= Duration::from_secs(10),
        "a spike was injected ({took:?})"
    );
    assert!(
        took < Duration::from_secs(60),
        "within the budget ({took:?})"
    );
    assert_converged(&p, &emulator).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn load_that_keeps_failing_names_the_secrets_and_leaves_files_alone() {
    let emulator = Emulator::start(&["--seed-count", &SECRETS.to_string()]);
    let p = seeded_project(SECRETS);
    p.cmd(&["load"]).keyvault(&emulator).run().success();
    // Every value changes in the vault, then every request fails for good.
    std::thread::sleep(Duration::from_millis(1100));
    let store = crate::support::store::store_for(&emulator, &[]);
    for i in 0..SECRETS {
        store
            .set(
                &format!("bench-{i:04}"),
                &compose_secrets::testing::secret::SecretValue::new(format!("new-{i}")),
                &Default::default(),
            )
            .await
            .unwrap();
    }
    let before = p.snapshot();
    emulator
        .set_faults(serde_json::json!({"fault_500_every": 1}))
        .await;
    let out = p.cmd(&["load"]).keyvault(&emulator).run().code(4);
    assert!(out.stderr.contains("key vault"), "{}", out.stderr);
    let after = p.snapshot();
    let changed: Vec<_> = before
        .keys()
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(changed.is_empty(), "a failed load changed {changed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_rides_out_500s_and_vault_and_file_agree() {
    let emulator = Emulator::start(&["--seed-count", &SECRETS.to_string()]);
    let p = seeded_project(SECRETS);
    p.cmd(&["load"]).keyvault(&emulator).run().success();
    emulator
        .set_faults(serde_json::json!({"fault_500_every": 2}))
        .await;
    p.cmd(&["rotate", "bench-0003", "--no-restart"])
        .keyvault(&emulator)
        .run()
        .success();
    emulator.clear_faults().await;
    assert_converged(&p, &emulator).await;
}
