//! A hand-edited `state.json` may narrow what compose-secrets touches, never widen it: a
//! forged `created_dirs` entry chmods no directory, a forged `written` entry replaces no file,
//! and a file edited by hand since compose-secrets wrote it is no longer taken for its own.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::harness::Project;

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn edit_state(p: &Project, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = p.path(".runtime/state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut state);
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
}

/// Forged `created_dirs` entries for the project directory, a user's `data/` (0755) holding a
/// declared secret file, a `--secrets-dir` of the user's outside the project (0750) and an
/// unrelated directory outside it: `load` changes none of their modes.
#[test]
fn forged_created_dirs_change_no_directory_mode() {
    let p = Project::empty();
    let outside = tempfile::tempdir().unwrap();
    let ext = outside.path().join("ext");
    let other = outside.path().join("other");
    for (dir, mode) in [(&ext, 0o750), (&other, 0o755)] {
        std::fs::create_dir(dir).unwrap();
        set_mode(dir, mode);
    }
    std::fs::create_dir(p.path("data")).unwrap();
    set_mode(&p.path("data"), 0o755);
    set_mode(p.dir.path(), 0o755);
    p.write(
        "compose.yaml",
        format!(
            "services:\n  app:\n    image: x\n    secrets: [token, db, ext]\nsecrets:\n  token: {{file: ./token.txt}}\n  \
             db: {{file: ./data/db.txt}}\n  ext: {{file: {}/ext.txt}}\n",
            ext.display()
        ),
    );
    p.write(".env", "TOKEN=tttttttt\nDB=dddddddd\nEXT=eeeeeeee\n");
    let secrets_dir = ext.display().to_string();
    let load = || {
        p.cmd(&["load", "--secrets-dir", &secrets_dir])
            .run()
            .success()
    };
    load();
    let dirs = [p.dir.path().to_path_buf(), p.path("data"), ext, other];
    let modes = || -> Vec<u32> {
        dirs.iter()
            .map(|d| std::fs::symlink_metadata(d).unwrap().permissions().mode() & 0o7777)
            .collect()
    };
    assert_eq!(modes(), [0o755, 0o755, 0o750, 0o755]);
    edit_state(&p, |state| state["created_dirs"] = serde_json::json!(dirs));
    let out = load();
    assert!(!out.stdout.contains("tightened"), "{}", out.stdout);
    assert_eq!(modes(), [0o755, 0o755, 0o750, 0o755], "{}", out.stdout);
}

/// `conf/a.txt` holding the user's own value, and `b` in the secrets directory (loaded once so
/// that there is a state to edit).
fn user_file_and_state() -> Project {
    let p = Project::empty();
    let compose = |mounts: &str| {
        format!(
            "services:\n  app:\n    image: x\n    secrets: [{mounts}]\nsecrets:\n  a: {{file: conf/a.txt}}\n  \
             b: {{file: ./.runtime/secrets/b}}\n"
        )
    };
    p.write("compose.yaml", compose("b"));
    p.write(".env", "A=from-the-store\nB=bbbbbbbb\n");
    p.write("conf/a.txt", "initialised-with-this\n");
    p.cmd(&["load"]).run().success();
    p.write("compose.yaml", compose("a, b"));
    p
}

/// A `written` entry added by hand, as the old list form or with a real fingerprint copied
/// from another secret, does not make a file the user wrote compose-secrets' to replace.
#[test]
fn a_forged_written_entry_does_not_let_load_replace_a_file() {
    for fingerprinted in [false, true] {
        let p = user_file_and_state();
        let target = p.path("conf/a.txt");
        edit_state(&p, |state| {
            state["written"] = if fingerprinted {
                let fingerprint = state["secrets"]["b"]["fingerprint"].clone();
                assert!(fingerprint.is_string(), "{state}");
                serde_json::json!({ target.display().to_string(): fingerprint })
            } else {
                serde_json::json!([target])
            };
        });
        let before = p.snapshot();
        p.cmd(&["load"])
            .run()
            .code(2)
            .stderr_has("secret `a`")
            .stderr_has("conf/a.txt already holds a different value")
            .stderr_has("--overwrite");
        crate::harness::assert_same_files(&before, &p.snapshot());
        assert_eq!(p.read_string("conf/a.txt"), "initialised-with-this\n");
    }
}

/// A file compose-secrets wrote and someone edited since is theirs now: refused without
/// `--overwrite`, whether or not the store changed, and named; `--overwrite` replaces it.
#[test]
fn a_file_edited_by_hand_after_a_load_is_not_replaced_without_overwrite() {
    let p = user_file_and_state();
    p.cmd(&["load", "--overwrite"]).run().success();
    assert_eq!(p.read_string("conf/a.txt"), "from-the-store");
    set_mode(&p.path("conf/a.txt"), 0o600);
    p.write("conf/a.txt", "edited-by-hand");
    for env in [
        "A=from-the-store\nB=bbbbbbbb\n",
        "A=a-new-value\nB=bbbbbbbb\n",
    ] {
        p.write(".env", env);
        let before = p.snapshot();
        p.cmd(&["load"])
            .run()
            .code(2)
            .stderr_has("conf/a.txt already holds a different value")
            .stderr_has("edited since");
        crate::harness::assert_same_files(&before, &p.snapshot());
    }
    p.cmd(&["load", "--overwrite"]).run().success();
    assert_eq!(p.read_string("conf/a.txt"), "a-new-value");
}

/// What compose-secrets wrote stays its own: `load` replaces it when the store changes, and
/// again after a `rotate` rewrote it.
#[test]
fn a_file_compose_secrets_wrote_is_rewritten_when_the_store_changes() {
    let p = user_file_and_state();
    std::fs::remove_file(p.path("conf/a.txt")).unwrap();
    p.cmd(&["load"]).run().success();
    assert_eq!(p.read_string("conf/a.txt"), "from-the-store");
    p.write(".env", "A=changed-in-the-store\nB=bbbbbbbb\n");
    p.cmd(&["load"]).run().success();
    assert_eq!(p.read_string("conf/a.txt"), "changed-in-the-store");
    p.cmd(&["rotate", "a", "--no-restart"]).run().success();
    let rotated = p.read_string("conf/a.txt");
    assert_ne!(rotated, "changed-in-the-store");
    assert_eq!(p.env_value("A"), rotated);
    p.write(".env", "A=after-the-rotation\nB=bbbbbbbb\n");
    p.cmd(&["load"]).run().success();
    assert_eq!(p.read_string("conf/a.txt"), "after-the-rotation");
}

/// A project loaded by the version that kept the fingerprint key in a process-wide global:
/// its per-install key and the state.json it wrote (fingerprints keyed with it). The state
/// still matches: the same value is `unchanged` (no rewrite), and a new value replaces the
/// file, which state.json proves compose-secrets wrote (another key would refuse it).
#[test]
fn a_state_written_by_an_earlier_version_still_matches() {
    const AUDIT_KEY: &str = "978afbbdf4f606d3afd5219a061498a107a4496da09877b5bea29034cc0128c9";
    const RECORDED: &str = "hmac:291526c74a868781";
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [token]\nsecrets:\n  token: {file: ./token.txt}\n",
    );
    p.write(".env", "TOKEN=kept-from-before-0001\n");
    p.write("token.txt", "kept-from-before-0001");
    set_mode(&p.path("token.txt"), 0o400);
    std::fs::create_dir(p.path(".runtime")).unwrap();
    set_mode(&p.path(".runtime"), 0o700);
    p.write(".runtime/audit.key", AUDIT_KEY);
    let state = serde_json::json!({
        "format": 1,
        "source": p.path(".env"),
        "secrets": {"token": {
            "version": RECORDED, "updated": null, "fingerprint": RECORDED, "checked_at": 1
        }},
        "written": {p.path("token.txt").display().to_string(): RECORDED},
    });
    p.write(".runtime/state.json", state.to_string());
    for file in ["audit.key", "state.json"] {
        set_mode(&p.path(&format!(".runtime/{file}")), 0o600);
    }

    let out = p.cmd(&["load", "--json"]).run().success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["items"][0]["action"], "unchanged", "{}", out.stdout);

    p.write(".env", "TOKEN=a-new-value-0002\n");
    let out = p.cmd(&["load", "--json"]).run().success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["items"][0]["action"], "written", "{}", out.stdout);
    assert_eq!(p.read_string("token.txt"), "a-new-value-0002");
}
