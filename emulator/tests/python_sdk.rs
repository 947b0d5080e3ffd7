//! Fidelity with the official Python SDK: runs scripts/python_sdk_check.py against the real
//! kv-emulator binary. Fails when the packages are missing unless KV_EMULATOR_SKIP_PYTHON=1.

mod common;

use std::io::Write as _;
use std::process::Command;

use common::Emulator;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../scripts/python_sdk_check.py"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_fidelity() {
    if std::env::var("KV_EMULATOR_SKIP_PYTHON").as_deref() == Ok("1") {
        // Written directly so libtest's output capture cannot hide the opt-out.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (KV_EMULATOR_SKIP_PYTHON=1): python SDK fidelity"
        );
        return;
    }
    let probe = Command::new("python3")
        .args(["-c", "import azure.keyvault.secrets, azure.identity"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the Python SDK fidelity test needs azure-keyvault-secrets and azure-identity: \
             run `pip install azure-keyvault-secrets azure-identity` \
             (or set KV_EMULATOR_SKIP_PYTHON=1 to skip). python3 said: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "python3 not runnable ({e}): install Python 3 and \
             `pip install azure-keyvault-secrets azure-identity` \
             (or set KV_EMULATOR_SKIP_PYTHON=1 to skip)"
        ),
    }

    let emu = Emulator::start(&[]);
    let out = Command::new("python3")
        .arg(SCRIPT)
        .arg(emu.state_dir.join("emulator.env"))
        // Only the emulator.env given on the command line may configure the script.
        .env_remove("IDENTITY_ENDPOINT")
        .env_remove("IDENTITY_HEADER")
        .env_remove("AZURE_KEYVAULT_URL")
        .env_remove("REQUESTS_CA_BUNDLE")
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python_sdk_check.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let ops: u32 = stdout
        .trim()
        .strip_prefix("python-sdk: ")
        .and_then(|rest| rest.strip_suffix(" operations ok"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected script output: {stdout:?}"));
    assert!(
        ops >= 60,
        "expected the full lifecycle twice, got {ops} operations"
    );

    let stats = emu.admin_get("/stats").await;
    for op in [
        "set",
        "get",
        "list",
        "list_versions",
        "update",
        "delete",
        "get_deleted",
        "recover",
        "purge",
    ] {
        assert!(
            stats["by_operation"][op].as_u64().unwrap_or(0) >= 2,
            "{op} was exercised by both credentials: {stats}"
        );
    }
    assert!(stats["tokens_issued"].as_u64().unwrap() >= 2, "{stats}");
}
