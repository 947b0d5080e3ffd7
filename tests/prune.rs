//! `load --prune` removes only files compose-secrets wrote and that still hold what it wrote,
//! only in the secrets directories of this run's model and settings, never a runtime file;
//! and a secrets directory that would make a runtime file a secret's file is refused.

use std::path::Path;

use crate::harness::Project;

/// Secrets `a` (kept) and the `gone` ones, all in `.runtime/secrets`.
fn compose(gone: &[&str]) -> String {
    let mut mounts = vec!["a"];
    mounts.extend_from_slice(gone);
    let mut out = format!(
        "services:\n  app:\n    image: x\n    secrets: [{}]\nsecrets:\n",
        mounts.join(", ")
    );
    for name in mounts {
        out.push_str(&format!("  {name}:\n    file: ./.runtime/secrets/{name}\n"));
    }
    out
}

/// A loaded project with `a`, `old` and `edited`, then `old` and `edited` no longer declared.
fn undeclared() -> Project {
    let p = Project::empty();
    p.write("compose.yaml", compose(&["old", "edited"]));
    p.write(".env", "A=aaaaaaaa\nOLD=oooooooo\nEDITED=eeeeeeee\n");
    p.write("Makefile", "all:\n\ttrue\n");
    p.cmd(&["load"]).run().success();
    p.write("compose.yaml", compose(&[]));
    p
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// The red team's first case: a note, a FIFO and a symlink compose-secrets never wrote were
/// pruned. Now only `old` (written by load, unchanged) goes; `edited` (written, then changed
/// by hand) is reported and kept.
#[test]
fn prune_leaves_files_it_did_not_write_or_that_changed() {
    let p = undeclared();
    p.write(".runtime/secrets/notes.txt", "my notes\n");
    mkfifo(&p.path(".runtime/secrets/pipe"));
    std::os::unix::fs::symlink("../../Makefile", p.path(".runtime/secrets/link")).unwrap();
    let edited = p.path(".runtime/secrets/edited");
    std::fs::set_permissions(&edited, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(&edited, "changed by hand").unwrap();

    let out = p.cmd(&["load", "--prune"]).run().success();
    let line = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.contains(&format!("secrets/{name}")))
            .map(str::to_string)
    };
    assert!(
        line("old").is_some_and(|l| l.contains("pruned")),
        "{}",
        out.stdout
    );
    assert!(!p.exists(".runtime/secrets/old"));
    let edited_line = line("edited").unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        edited_line.contains("stray") && edited_line.contains("remove it by hand"),
        "{edited_line}"
    );
    assert_eq!(p.read_string(".runtime/secrets/edited"), "changed by hand");
    for name in ["notes.txt", "pipe", "link"] {
        assert!(p.exists(&format!(".runtime/secrets/{name}")), "{name} kept");
        assert!(line(name).is_none(), "{name} is not ours:\n{}", out.stdout);
    }
    assert_eq!(p.read_string("Makefile"), "all:\n\ttrue\n");
    assert_eq!(p.read_string(".runtime/secrets/a"), "aaaaaaaa");
    // What is left is not compose-secrets' to remove: a second prune removes nothing.
    let again = p.cmd(&["load", "--prune"]).run().success();
    assert!(!again.stdout.contains("pruned"), "{}", again.stdout);
    assert!(p.exists(".runtime/secrets/edited"));
}

/// The red team's third case: entries added to `created_dirs` and `written` in state.json
/// made `--prune` remove the project's `Makefile` and the audit log. Neither the old list
/// form nor entries with a valid fingerprint (copied from a real secret, over files holding
/// that very value) widen the scope beyond the model's secrets directories.
#[test]
fn state_json_alone_cannot_widen_what_is_pruned() {
    let p = undeclared();
    let value_of_a = "aaaaaaaa";
    p.write("Makefile", value_of_a);
    p.write("elsewhere/copy", value_of_a);
    let dir = p.dir.path().to_path_buf();
    let targets = [
        dir.join("Makefile"),
        dir.join("elsewhere/copy"),
        dir.join(".runtime/audit.log"),
        dir.join(".runtime/state.json"),
        dir.join(".runtime/audit.key"),
        dir.join(".runtime/.lock"),
    ];
    // Every target but the two compose-secrets rewrites on each load (state, audit log).
    let fixed = || -> Vec<(std::path::PathBuf, Vec<u8>)> {
        targets
            .iter()
            .filter(|t| !t.ends_with("state.json") && !t.ends_with("audit.log"))
            .map(|t| (t.clone(), std::fs::read(t).unwrap()))
            .collect()
    };
    let before = fixed();
    for fingerprinted in [false, true] {
        let state_path = p.path(".runtime/state.json");
        let mut state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
        let fingerprint = state["secrets"]["a"]["fingerprint"].clone();
        assert!(fingerprint.is_string(), "{state}");
        state["created_dirs"] =
            serde_json::json!([dir, dir.join(".runtime"), dir.join("elsewhere")]);
        state["written"] = if fingerprinted {
            serde_json::Value::Object(
                targets
                    .iter()
                    .map(|t| (t.display().to_string(), fingerprint.clone()))
                    .collect(),
            )
        } else {
            serde_json::json!(targets)
        };
        std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
        let out = p.cmd(&["load", "--prune"]).run().success();
        for t in &targets {
            assert!(t.exists(), "{} must be kept:\n{}", t.display(), out.stdout);
        }
        assert!(!out.stdout.contains("Makefile"), "{}", out.stdout);
        assert!(!out.stdout.contains("audit.log"), "{}", out.stdout);
    }
    assert_eq!(fixed(), before);
    // The rewritten state no longer lists `old`: unlisted, it is not removed either.
    assert!(p.exists(".runtime/secrets/old"));
}

/// The red team's second case: with `--secrets-dir .runtime` (flag, environment or `.env`),
/// a secret `file: ./.runtime/audit.key` overwrote the audit key and `--prune` removed the
/// lock, the audit log and the state. A secrets directory that is the runtime directory,
/// contains it, or lies inside it (but for the default `.runtime/secrets`) is refused with
/// exit 2 naming both, however it is set, and nothing changes.
#[test]
fn a_secrets_dir_at_or_around_the_runtime_dir_is_refused() {
    let p = undeclared();
    // Outside the project, a symlink to it: `<link>/.runtime` is the runtime directory.
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("link");
    std::os::unix::fs::symlink(p.dir.path(), &link).unwrap();
    let via_link = link.join(".runtime");
    let via_link_file = format!("{}/audit.key", via_link.display());
    let via_link = via_link.display().to_string();
    let via_link_flags = ["--secrets-dir", via_link.as_str()];
    let runtime = p.path(".runtime");
    /// A secret's file, the global flags, a process variable, and the secrets directory the
    /// error names (relative to the project, or absolute).
    struct Case<'a> {
        file: &'a str,
        flags: &'a [&'a str],
        env: Option<(&'a str, &'a str)>,
        shown: &'a str,
    }
    let case = |file, flags, env, shown| Case {
        file,
        flags,
        env,
        shown,
    };
    let cases = [
        case(
            "./.runtime/audit.key",
            &["--secrets-dir", ".runtime"],
            None,
            ".runtime",
        ),
        case(
            "./.runtime/audit.key",
            &[],
            Some(("COMPOSE_SECRETS_DIR", ".runtime")),
            ".runtime",
        ),
        case("./.runtime/audit.key", &[], None, ".runtime"),
        case("./audit.key", &["--secrets-dir", "."], None, ""),
        case(
            "./.runtime/other/x",
            &["--secrets-dir", ".runtime/other"],
            None,
            ".runtime/other",
        ),
        case(&via_link_file, &via_link_flags, None, &via_link),
    ];
    for (
        i,
        Case {
            file,
            flags,
            env,
            shown,
        },
    ) in cases.iter().enumerate()
    {
        p.write(
            "compose.yaml",
            format!(
                "services:\n  app:\n    image: x\n    secrets: [a, k]\nsecrets:\n  a:\n    file: ./.runtime/secrets/a\n  k:\n    file: {file}\n"
            ),
        );
        // Case 2 sets it in the project's `.env`, where a cloned repository could.
        let dotenv = if i == 2 {
            "A=aaaaaaaa\nK=kkkkkkkk\nCOMPOSE_SECRETS_DIR=.runtime\n"
        } else {
            "A=aaaaaaaa\nK=kkkkkkkk\n"
        };
        p.write(".env", dotenv);
        let before = p.snapshot();
        let mut args: Vec<&str> = flags.to_vec();
        args.extend(["load", "--prune"]);
        let mut run = p.cmd(&args);
        if let Some((k, v)) = env {
            run = run.env(k, v);
        }
        let out = run.run().code(2);
        let secrets = if shown.is_empty() {
            p.dir.path().to_path_buf()
        } else {
            p.dir.path().join(shown)
        };
        assert!(
            out.stderr.contains(&secrets.display().to_string())
                && out.stderr.contains(&runtime.display().to_string())
                && out.stderr.contains("runtime directory"),
            "case {i}: {}",
            out.stderr
        );
        crate::harness::assert_same_files(&before, &p.snapshot());
    }
    // A secret's file that is a runtime file is refused with the default directories too.
    for file in [
        "./.runtime/audit.key",
        "./.runtime/state.json",
        "./.runtime/.lock",
    ] {
        p.write(
            "compose.yaml",
            format!("services:\n  app:\n    image: x\n    secrets: [k]\nsecrets:\n  k:\n    file: {file}\n"),
        );
        let before = p.snapshot();
        p.cmd(&["load"])
            .run()
            .code(2)
            .stderr_has("runtime directory");
        crate::harness::assert_same_files(&before, &p.snapshot());
    }
    // The default layout keeps working.
    p.write("compose.yaml", compose(&[]));
    p.write(".env", "A=aaaaaaaa\n");
    p.cmd(&["load"]).run().success();
}
