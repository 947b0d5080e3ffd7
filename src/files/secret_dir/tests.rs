//! The secrets directory's own tests: atomic writes, symlinks, owners, limits and temp files.

use super::*;

#[test]
fn writes_atomically_with_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = SecretDir::open(&tmp.path().join("run/secrets"), true).unwrap();
    dir.write_atomic("a", b"value", 0o400, Owner::default())
        .unwrap();
    let st = dir.read("a").unwrap().unwrap();
    assert_eq!(&*st.contents, b"value");
    assert_eq!(st.mode, 0o400);
    dir.write_atomic("a", b"second", 0o440, Owner::default())
        .unwrap();
    assert_eq!(&*dir.read("a").unwrap().unwrap().contents, b"second");
    assert_eq!(dir.entries().unwrap(), vec!["a".to_string()]);
    let meta = std::fs::metadata(dir.path()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
}

#[test]
fn refuses_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, tmp.path().join("link")).unwrap();
    assert!(matches!(
        SecretDir::open(&tmp.path().join("link"), true),
        Err(Error::UnsafePath { .. })
    ));
    let dir = SecretDir::open(&real, false).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", real.join("s")).unwrap();
    assert!(matches!(dir.read("s"), Err(Error::UnsafePath { .. })));
    assert!(matches!(dir.read("../x"), Err(Error::UnsafePath { .. })));
}

#[test]
fn refuses_world_writable_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("s");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(matches!(
        SecretDir::open(&d, false),
        Err(Error::UnsafePath { .. })
    ));
}

fn fresh_dir() -> (tempfile::TempDir, SecretDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = SecretDir::open(&tmp.path().join("s"), true).unwrap();
    (tmp, dir)
}

/// A Key Vault value can be 25 KB: it comes back whole, byte for byte.
#[test]
fn a_25_kb_value_reads_back_whole() {
    let (_tmp, dir) = fresh_dir();
    let value: Vec<u8> = (0..25 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    dir.write_atomic("big", &value, 0o400, Owner::default())
        .unwrap();
    assert_eq!(&*dir.read("big").unwrap().unwrap().contents, &value[..]);
}

/// At the limit a file reads whole; one byte more is refused, never cut to the limit.
#[test]
fn a_file_over_the_read_limit_is_refused_not_truncated() {
    let (_tmp, dir) = fresh_dir();
    let limit = usize::try_from(MAX_READ_BYTES).unwrap();
    let at_limit = vec![b'x'; limit];
    std::fs::write(dir.path().join("at"), &at_limit).unwrap();
    assert_eq!(dir.read("at").unwrap().unwrap().contents.len(), limit);
    std::fs::write(dir.path().join("over"), vec![b'x'; limit + 1]).unwrap();
    let err = dir.read("over").err().expect("refused");
    assert!(err.to_string().contains("larger than"), "{err}");
    assert!(err.to_string().contains("over"), "names the file: {err}");
}

/// An owner may be a uid alone or a gid alone: that one changes, the other stays the writer's.
#[test]
fn a_uid_only_or_gid_only_owner_changes_just_that_id() {
    let (_tmp, dir) = fresh_dir();
    let (uid, gid) = (Uid::effective().as_raw(), Gid::effective().as_raw());
    if Uid::effective().is_root() {
        let only_uid = Owner {
            uid: Some(4242),
            gid: None,
        };
        dir.write_atomic("u", b"v", 0o400, only_uid).unwrap();
        let st = dir.read("u").unwrap().unwrap();
        assert_eq!((st.uid, st.gid, st.mode), (4242, gid, 0o400));
        let only_gid = Owner {
            uid: None,
            gid: Some(4343),
        };
        dir.write_atomic("g", b"v", 0o440, only_gid).unwrap();
        let st = dir.read("g").unwrap().unwrap();
        assert_eq!((st.uid, st.gid, st.mode), (uid, 4343, 0o440));
    } else {
        // Without the right to chown, asking for one's own ids works, another's is refused
        // with the fix named, and nothing is left behind.
        let own = Owner {
            uid: Some(uid),
            gid: None,
        };
        dir.write_atomic("u", b"v", 0o400, own).unwrap();
        assert_eq!(dir.read("u").unwrap().unwrap().uid, uid);
        let other = Owner {
            uid: Some(uid + 1),
            gid: None,
        };
        let err = dir.write_atomic("x", b"v", 0o400, other).unwrap_err();
        assert!(
            err.to_string().contains("cannot give the file owner"),
            "{err}"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file is left behind");
    }
}

fn temp_name(pid: u32) -> String {
    format!("{TEMP_PREFIX}{pid}.0123456789abcdef")
}

/// Cleanup removes a dead writer's temp file and keeps a live one's, and anything named like
/// a temp file that is not a file.
#[test]
fn a_dead_writers_temp_file_is_removed_and_a_live_ones_kept() {
    let (_tmp, dir) = fresh_dir();
    let mut live = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    std::fs::write(dir.path().join(temp_name(live.id())), b"half").unwrap();
    std::fs::write(dir.path().join(temp_name(dead_pid)), b"half").unwrap();
    std::fs::write(dir.path().join(format!("{TEMP_PREFIX}notapid.x")), b"?").unwrap();
    std::fs::create_dir(dir.path().join(temp_name(dead_pid + 1_000_000))).unwrap();

    let cleanup = dir.remove_orphaned_temps().unwrap();
    let _ = live.kill();
    let _ = live.wait();
    assert_eq!(cleanup.removed, 1);
    assert_eq!(
        cleanup.skipped,
        vec![dir.path().join(temp_name(dead_pid + 1_000_000))]
    );
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    let mut want = vec![
        temp_name(live.id()),
        format!("{TEMP_PREFIX}notapid.x"),
        temp_name(dead_pid + 1_000_000),
    ];
    want.sort();
    assert_eq!(left, want, "only the dead writer's file went");
}

/// A prune removes a regular file holding exactly what was recorded, nothing else: not a
/// changed file, a symlink (not followed), a FIFO (not waited on), or a directory.
#[test]
fn remove_if_holds_removes_only_an_unchanged_regular_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = SecretDir::open(&tmp.path().join("s"), true).unwrap();
    let key = crate::secret::FingerprintKey::random();
    let fp = key.fingerprint(b"value");
    dir.write_atomic("same", b"value", 0o400, Owner::default())
        .unwrap();
    dir.write_atomic("changed", b"other", 0o400, Owner::default())
        .unwrap();
    std::fs::write(tmp.path().join("target"), "value").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("target"), dir.path().join("link")).unwrap();
    nix::unistd::mkfifo(&dir.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    for name in ["changed", "link", "fifo", "sub", "missing"] {
        assert!(!dir.remove_if_holds(name, &fp, &key).unwrap(), "{name}");
    }
    assert!(
        !dir.remove_if_holds("same", "", &key).unwrap(),
        "no fingerprint, no removal"
    );
    let other = crate::secret::FingerprintKey::random();
    assert!(
        !dir.remove_if_holds("same", &fp, &other).unwrap(),
        "another install's key matches nothing"
    );
    assert!(dir.remove_if_holds("same", &fp, &key).unwrap());
    assert!(!dir.has("same"));
    for name in ["changed", "link", "fifo", "sub"] {
        assert!(dir.has(name), "{name} kept");
    }
    assert_eq!(std::fs::read(tmp.path().join("target")).unwrap(), b"value");
}

/// A staged file has its final mode before anything renames it; dropped, it leaves the
/// directory as it was, and renamed, it replaces the old file.
#[test]
fn a_staged_file_is_complete_before_its_rename_and_gone_when_dropped() {
    let (_tmp, dir) = fresh_dir();
    dir.write_atomic("a", b"old", 0o400, Owner::default())
        .unwrap();
    let staged = dir.stage("a", b"new", 0o440, Owner::default()).unwrap();
    let temps: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(TEMP_PREFIX))
        .collect();
    assert_eq!(temps.len(), 1, "{temps:?}");
    let meta = std::fs::symlink_metadata(dir.path().join(&temps[0])).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o440);
    assert_eq!(std::fs::read(dir.path().join(&temps[0])).unwrap(), b"new");
    drop(staged);
    assert_eq!(&*dir.read("a").unwrap().unwrap().contents, b"old");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    dir.stage("a", b"new", 0o440, Owner::default())
        .unwrap()
        .rename()
        .unwrap();
    dir.sync().unwrap();
    let st = dir.read("a").unwrap().unwrap();
    assert_eq!((st.contents.as_slice(), st.mode), (&b"new"[..], 0o440));
    assert_eq!(dir.entries().unwrap(), vec!["a".to_string()]);
}
