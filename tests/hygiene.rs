//! Secret hygiene across every command: no value in any output, whatever the verbosity or failure.

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
         x-compose-secrets:\n      rotation-hook: [\"./hook.sh\", \"--for\", \"token\"]\n",
    );
    p.write(".env", "TOKEN=original-token-value-1234\n");
    p.cmd(&["load"]).run().success();
    let out = p
        .cmd(&["-vvv", "rotate", "token", "--no-restart"])
        .env("RUST_LOG", "trace")
        .run()
        .success();
    let new = p.env_value("TOKEN");
    assert_ne!(new, "original-token-value-1234");
    let values = vec![new.clone(), "original-token-value-1234".to_string()];
    out.assert_no_values(&values);

    let argv = p.read_string("hook-argv");
    assert!(argv.contains("--for\ntoken"), "the hook ran: {argv}");
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
