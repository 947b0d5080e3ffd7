//! Fidelity with the official Python SDK: runs scripts/python_sdk_check.py against the real
//! kv-emulator binary. Fails when the packages are missing unless KV_EMULATOR_SKIP_PYTHON=1.
//!
//! The interpreter: $COMPOSE_SECRETS_PYTHON, else target/tools/bin/python (the venv that
//! `make bootstrap`, i.e. scripts/bootstrap.sh, installs the SDK into), else python3.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Emulator;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../scripts/python_sdk_check.py"
);

const INSTALL: &str = "run `make bootstrap` (scripts/bootstrap.sh), which installs them into \
     target/tools, or set KV_EMULATOR_SKIP_PYTHON=1 to skip this test";

/// The interpreter to run the check with, and where that choice came from.
fn python() -> (PathBuf, &'static str) {
    if let Some(path) = std::env::var_os("COMPOSE_SECRETS_PYTHON").filter(|p| !p.is_empty()) {
        return (path.into(), "set by COMPOSE_SECRETS_PYTHON");
    }
    let bootstrapped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin/python");
    if bootstrapped.exists() {
        return (bootstrapped, "installed by make bootstrap");
    }
    (
        "python3".into(),
        "python3 on PATH: there is no target/tools/bin/python",
    )
}

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
    let (python, from) = python();
    let probe = Command::new(&python)
        .args(["-c", "import azure.keyvault.secrets, azure.identity"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the Python SDK fidelity test needs azure-keyvault-secrets and azure-identity, \
             which {} ({from}) cannot import: {INSTALL}. It said: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "{} ({from}) is not runnable ({e}): the Python SDK fidelity test needs Python 3 \
             with azure-keyvault-secrets and azure-identity: {INSTALL}",
            python.display()
        ),
    }

    let emu = Emulator::start(&[]);
    let out = Command::new(&python)
        .arg(SCRIPT)
        .arg(emu.state_dir.join("emulator.env"))
        // Only the emulator.env given on the command line may configure the script.
        .env_remove("IDENTITY_ENDPOINT")
        .env_remove("IDENTITY_HEADER")
        .env_remove("AZURE_KEYVAULT_URL")
        .env_remove("REQUESTS_CA_BUNDLE")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
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
