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
