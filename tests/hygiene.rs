//! Secret hygiene across every command: no value in any output, whatever the verbosity or failure.

use compose_secrets::testing::store::SecretStore as _;

use crate::harness::{Project, DEMO_SECRETS};

#[test]
fn no_command_prints_a_known_value() {
    let p = Project::demo();
    // Known values, each distinctive enough that an accidental print would be found.
    let values: Vec<String> = DEMO_SECRETS
        .iter()
        .enumerate()
        .map(|(i, _)| format!("KnownValue{i}x{}", "7".repeat(20)))
        .collect();
    let mut env = String::from("DEMO_MODE=true\nAZURE_USE_KEYVAULT=false\n");
    for ((_, key), value) in DEMO_SECRETS.iter().zip(&values) {
        env.push_str(&format!("{key}={value}\n"));
    }
    p.write(".env", &env);
    let runs: Vec<Vec<&str>> = vec![
        vec!["ensure"],
        vec!["ensure", "--json"],
        vec!["-vvv", "load"],
        vec!["load", "--json"],
        vec!["load", "--dry-run", "-vvv"],
        vec!["load", "--env-output", "out.env"],
        vec!["rotate", "flask-secret-key", "--dry-run"],
        vec!["verify"],
        vec!["verify", "--json"],
        vec!["load", "--keyvault"],
        vec!["--help"],
    ];
    for args in runs {
        let out = p.cmd(&args).env("RUST_LOG", "trace").run();
        out.assert_no_values(&values);
    }
    // A malformed line holding part of a value must not be echoed in the error.
    p.write(
        ".env",
        format!("FLASK_SECRET_KEY={}\n{} broken\n", values[0], values[1]),
    );
    let out = p.cmd(&["load"]).run().code(2);
    out.assert_no_values(&values);
}

#[test]
fn core_dumps_are_disabled_and_the_process_is_not_dumpable() {
    let p = Project::empty();
    let out = p.cmd(&["debug", "hardening"]).run().success().json();
    assert_eq!(out["core_limit_soft"], 0, "{out}");
    assert_eq!(out["core_limit_hard"], 0, "{out}");
    assert_eq!(out["dumpable"], false, "{out}");
}

#[test]
fn completions_are_generated() {
    let p = Project::empty();
    for shell in ["bash", "zsh", "fish"] {
        let out = p.cmd(&["completions", shell]).run().success();
        assert!(out.stdout.contains("compose-secrets"), "{shell}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let p = Project::empty();
    p.cmd(&["load", "--no-such-flag"]).run().code(2);
    p.cmd(&["frobnicate"]).run().code(2);
}

#[test]
fn a_rotation_hook_gets_the_value_on_stdin_and_never_in_argv_or_environment() {
    let p = Project::empty();
    // The hook records what it was started with: its argv, its environment, the argv and
    // environment of its parent (compose-secrets itself), and a digest of its stdin.
    p.write(
        "hook.sh",
        "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > hook-argv\nenv > hook-env\n\
         tr '\\0' '\\n' < /proc/$PPID/cmdline > parent-argv\n\
         tr '\\0' '\\n' < /proc/$PPID/environ > parent-env\n\
         sha256sum | cut -d' ' -f1 > hook-stdin-digest\n",
    );
    std::fs::set_permissions(
        p.path("hook.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [token]\nsecrets:\n  token:\n    file: .runtime/secrets/token\n    \
         x-compose-secrets:\n      rotation-hook: [\"./hook.sh\", \"--for\", \"token\"]\n      hook-env: [DB_HOST]\n",
    );
    p.write(".env", "TOKEN=original-token-value-1234\n");
    p.cmd(&["load"]).run().success();
    let out = p
        .cmd(&["-vvv", "rotate", "token", "--no-restart"])
        .env("RUST_LOG", "trace")
        // Credentials of the process must not reach the hook; the allow-listed variable does.
        .env("AZURE_CLIENT_SECRET", "azure-credential-not-for-hooks")
        .env("IDENTITY_HEADER", "identity-header-not-for-hooks")
        .env("DB_HOST", "db.internal")
        .run()
        .success();
    let new = p.env_value("TOKEN");
    assert_ne!(new, "original-token-value-1234");
    let values = vec![new.clone(), "original-token-value-1234".to_string()];
    out.assert_no_values(&values);

    let argv = p.read_string("hook-argv");
    assert!(argv.contains("--for\ntoken"), "the hook ran: {argv}");
    let env = p.read_string("hook-env");
    for wanted in [
        "COMPOSE_SECRETS_HOOK_PHASE=rotate",
        "COMPOSE_SECRETS_SECRET=token",
        "DB_HOST=db.internal",
    ] {
        assert!(
            env.contains(wanted),
            "the hook's environment lacks {wanted}:\n{env}"
        );
    }
    for credential in ["AZURE_CLIENT_SECRET", "IDENTITY_HEADER", "RUST_LOG"] {
        assert!(
            !env.contains(credential),
            "{credential} reached the hook:\n{env}"
        );
    }
    for record in ["hook-argv", "hook-env", "parent-argv", "parent-env"] {
        let text = p.read_string(record);
        assert!(!text.is_empty(), "{record} was recorded");
        for value in &values {
            assert!(!text.contains(value.as_str()), "{record} holds a value");
        }
    }
    let digest = {
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(new.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert_eq!(
        p.read_string("hook-stdin-digest").trim(),
        digest,
        "the new value arrived on stdin"
    );
}

/// A needle file for `COMPOSE_SECRETS_MEMORY_AUDIT`: each value as length, 4-byte prefix and
/// SHA-256, then a control that is always in memory (the needle file's own path, which sits
/// in the environment): a search that could not find it would prove nothing.
fn memory_needles(p: &Project, values: &[String]) -> std::path::PathBuf {
    use sha2::Digest as _;
    let path = p.path("needles");
    let control = path.to_string_lossy().into_owned();
    let mut text = String::new();
    for v in values.iter().chain(std::iter::once(&control)) {
        let b = v.as_bytes();
        text.push_str(&format!(
            "{} {} {}\n",
            b.len(),
            hex::encode(&b[..4]),
            hex::encode(sha2::Sha256::digest(b))
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Of the values (not the control), how many the process still held when it ended.
fn assert_wiped(out: &crate::harness::Output, values: &[String], what: &str) {
    let control = values.len() + 1;
    let expected = format!("memory-audit: 1 of {control} values still in memory");
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("memory-audit:"))
        .unwrap_or_else(|| panic!("{what}: no memory-audit line: {}", out.stderr));
    assert!(
        line.starts_with(&expected) && line.ends_with(&format!("; lines {control}")),
        "{what}: values left in memory (only the control line {control} may be found): {line}"
    );
}

#[test]
fn no_value_is_left_in_memory_when_a_demo_command_ends() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [alpha, bravo]\nsecrets:\n  alpha:\n    file: .runtime/secrets/alpha\n    \
         x-compose-secrets: {generator: hex:24}\n  bravo:\n    file: .runtime/secrets/bravo\n",
    );
    let alpha = "AlphaValue-0123456789-abcdefghijklmnop".to_string();
    let bravo = "Bravo value with spaces and 'quotes' 0123456789".to_string();
    p.write(".env", format!("ALPHA={alpha}\nBRAVO=\"{bravo}\"\n"));
    let values = vec![alpha.clone(), bravo.clone()];
    let needles = memory_needles(&p, &values);
    let audited = |args: &[&str]| {
        p.cmd(args)
            .env(compose_secrets::testing::memory_audit::ENV_VAR, &needles)
            .run()
    };
    for args in [
        &["load"][..],
        &["load", "--env-output", "out.env"],
        &["verify"],
        &["-vvv", "load", "--dry-run"],
    ] {
        let out = audited(args);
        // verify may find fault with the test project (a 0644 .env); it still reads every value.
        let allowed = if args == ["verify"] { 1 } else { 0 };
        assert!(out.code <= allowed, "{args:?}: {}", out.stderr);
        assert_wiped(&out, &values, &format!("{args:?}"));
    }
    assert_eq!(p.read_string(".runtime/secrets/bravo"), bravo);
    // rotate and ensure --force hold the old value for a rollback; it is wiped at the end too.
    let out = audited(&["rotate", "alpha", "--no-restart"]).success();
    assert_wiped(&out, &values, "rotate");
    assert_ne!(p.env_value("ALPHA"), alpha);
    let out = audited(&["ensure", "--force", "bravo"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_wiped(&out, &values, "ensure --force");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_vault_load_and_rotate_leave_no_value_in_memory() {
    let emulator =
        crate::support::emulator::Emulator::start(&["--seed", "alpha", "--seed", "bravo"]);
    let store = crate::support::store::store_for(&emulator, &[]);
    let mut values = Vec::new();
    for name in ["alpha", "bravo"] {
        values.push(
            store
                .get_latest(name)
                .await
                .unwrap()
                .value
                .expose()
                .to_string(),
        );
    }
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [alpha, bravo]\nsecrets:\n  alpha:\n    file: .runtime/secrets/alpha\n  bravo:\n    file: .runtime/secrets/bravo\n",
    );
    let needles = memory_needles(&p, &values);
    let kv = |args: &[&str]| {
        p.cmd(args)
            .keyvault(&emulator)
            .env(compose_secrets::testing::memory_audit::ENV_VAR, &needles)
            .run()
    };
    let out = kv(&["load"]).success();
    assert_eq!(p.read_string(".runtime/secrets/alpha"), values[0]);
    assert_wiped(&out, &values, "Key Vault load");
    // rotate reads the old value (kept for a rollback) and pushes a new one.
    let out = kv(&["rotate", "alpha", "--no-restart"]).success();
    assert_ne!(p.read_string(".runtime/secrets/alpha"), values[0]);
    assert_wiped(&out, &values, "Key Vault rotate");
}

/// A value's fingerprint (in `state.json`, the audit log and `verify`) is keyed with the
/// install's own key: the same weak value gives a different fingerprint in another project,
/// and no fingerprint is a bare hash a dictionary could be checked against.
#[test]
fn fingerprints_are_keyed_per_install_not_bare_hashes() {
    let fingerprint_in = |p: &Project| -> String {
        let state: serde_json::Value =
            serde_json::from_str(&p.read_string(".runtime/state.json")).unwrap();
        state["secrets"]["token"]["fingerprint"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let project = || {
        let p = Project::empty();
        p.write(
            "compose.yaml",
            "services:\n  app:\n    image: x\n    secrets: [token]\nsecrets:\n  token:\n    file: .runtime/secrets/token\n",
        );
        p.write(".env", "TOKEN=kong\n");
        p.cmd(&["load"]).run().success();
        p
    };
    let (a, b) = (project(), project());
    let (fa, fb) = (fingerprint_in(&a), fingerprint_in(&b));
    assert!(fa.starts_with("hmac:"), "{fa}");
    assert_ne!(fa, fb, "the same value fingerprints alike in two installs");
    let bare = {
        use sha2::Digest as _;
        sha2::Sha256::digest(b"kong")
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    for f in [&fa, &fb] {
        let hex = f.trim_start_matches("hmac:");
        assert!(
            !bare.starts_with(hex) && !hex.starts_with(&bare[..8]),
            "{f} is a bare hash"
        );
    }
}

/// A control character in a name (an escape sequence, a carriage return) is printed escaped:
/// a file name cannot drive the terminal or overwrite a line of the report.
#[test]
fn control_characters_in_names_are_printed_escaped() {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [a]\nsecrets:\n  a:\n    file: \"./evil\\e[2J\\rname.txt\"\n",
    );
    p.write(".env", "A=aaaaaaaa\n");
    let out = p.cmd(&["load"]).run().success();
    assert!(p.path("evil\u{1b}[2J\rname.txt").exists());
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
    }
    assert!(
        out.stdout.contains("evil\\u{1b}[2J\\rname.txt"),
        "{}",
        out.stdout
    );
    let verify = p.cmd(&["verify", "--no-docker"]).run();
    assert!(
        !verify.stdout.contains('\u{1b}') && !verify.stdout.contains('\r'),
        "{:?}",
        verify.stdout
    );
}
