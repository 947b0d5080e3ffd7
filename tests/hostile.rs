//! Hostile input and hostile environments: the checked-in corpus (tests/corpus/*), then the
//! cases that need a mount, another user or a special file (tmpfs, read-only, full disk,
//! unreadable files, unbounded inputs, panic hygiene).
//!
//! Each corpus case is a directory: the project's files (`compose.yaml`, `.env`, …), an
//! optional `before/` project that is loaded successfully first (so "leaves existing files
//! untouched" has something to leave), and an `expect` file:
//!
//! ```text
//! # why this case exists
//! args = load                 # default `load`
//! setup = chmod .runtime/secrets 0777   # shape the filesystem (see `apply_setup`)
//! exit = 2
//! stderr = .env:3             # every `stderr` line must appear in stderr
//! secret = value              # extra strings that must never be printed
//! public = ROOT               # .env keys whose values are not secrets
//! file .runtime/secrets/a = value   # with exit 0: exact contents afterwards
//! ```
//!
//! A failing case (exit != 0) must also change nothing: every file's bytes, mode and owner
//! are compared before and after, special files included.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{is_root, scrub, Project, BIN};
use crate::support::emulator::Emulator;
use crate::support::process::{run_bounded, run_within, truncate, with_memory_cap, Bounded};

/// Values shorter than this are settings (`true`, `1`), not secrets worth searching for.
const MIN_SECRET_LEN: usize = 8;

fn corpus_root() -> PathBuf {
    crate::harness::repo_root().join("tests/corpus")
}

macro_rules! corpus_cases {
    ($($name:ident),* $(,)?) => {
        /// Every case directory, so a new directory without a test is caught.
        const CORPUS_CASES: &[&str] = &[$(stringify!($name)),*];
        mod corpus {
            $(
                #[test]
                fn $name() {
                    super::run_case(stringify!($name));
                }
            )*
        }
    };
}

corpus_cases!(
    ensure_value_over_25kb,
    env_bom,
    env_bom_crlf_export_comments,
    env_crlf,
    env_duplicate_key,
    env_empty_values,
    env_huge,
    env_invalid_key,
    env_invalid_utf8,
    env_lone_cr_line_endings,
    env_output_malformed,
    env_missing_equals,
    env_quoting_is_literal,
    env_text_after_closing_quote,
    env_unterminated_double_quote,
    env_unterminated_single_quote,
    env_value_over_25kb,
    name_invalid_env_key,
    name_not_a_vault_name,
    name_path_traversal,
    name_too_long,
    name_vault_name_traversal,
    names_colliding_env_key,
    names_colliding_file,
    names_colliding_vault_name_case,
    path_absolute,
    path_dotdot_through_secrets_dir,
    path_env_output_symlink,
    path_interpolated_traversal,
    path_nested_subdirectory,
    path_parent_traversal,
    path_secrets_dir_itself,
    runtime_dir_symlink,
    secret_file_directory,
    secret_file_fifo,
    secret_file_hardlinked_to_victim,
    secret_file_symlink,
    secrets_dir_foreign_owner,
    secrets_dir_group_writable,
    secrets_dir_is_a_file,
    secrets_dir_sticky_world_writable,
    secrets_dir_symlink,
    secrets_dir_world_writable,
    state_file_garbage,
    yaml_alias_bomb,
    yaml_deep_nesting,
    yaml_duplicate_secret,
    yaml_empty,
    yaml_huge,
    yaml_invalid_utf8,
    yaml_mode_not_octal,
    yaml_mode_unreadable,
    yaml_multiple_documents,
    yaml_non_string_secret_name,
    yaml_owner_by_name,
    yaml_secret_without_source,
    yaml_secrets_is_a_list,
    yaml_service_secrets_not_a_list,
    yaml_tab_indentation,
    yaml_top_level_sequence,
    yaml_unclosed_flow_sequence,
    yaml_unterminated_interpolation,
);

#[test]
fn every_corpus_directory_has_a_test_and_an_expect_file() {
    // tests/corpus/compose holds the Compose v2 differential cases (compose_differential.rs).
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus_root())
        .expect("tests/corpus exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "compose")
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS_CASES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "tests/corpus and corpus_cases! disagree");
    for case in CORPUS_CASES {
        assert!(
            corpus_root().join(case).join("expect").is_file(),
            "{case}: no expect file"
        );
    }
}

/// One parsed `expect` file.
#[derive(Default, Debug)]
struct Expect {
    args: Vec<String>,
    exit: Option<i32>,
    stderr: Vec<String>,
    setup: Vec<String>,
    secrets: Vec<String>,
    public: Vec<String>,
    files: Vec<(String, String)>,
}

impl Expect {
    fn parse(case: &str, text: &str) -> Expect {
        let mut e = Expect {
            args: vec!["load".into()],
            ..Expect::default()
        };
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once(" = ")
                .unwrap_or_else(|| panic!("{case}/expect: `{line}` is not `key = value`"));
            match key.trim() {
                "args" => e.args = value.split_whitespace().map(String::from).collect(),
                "exit" => e.exit = Some(value.trim().parse().expect("exit is a number")),
                "stderr" => e.stderr.push(value.to_string()),
                "setup" => e.setup.push(value.to_string()),
                "secret" => e.secrets.push(value.to_string()),
                "public" => e.public.push(value.trim().to_string()),
                k if k.starts_with("file ") => e
                    .files
                    .push((k["file ".len()..].trim().to_string(), value.to_string())),
                other => panic!("{case}/expect: unknown key `{other}`"),
            }
        }
        assert!(e.exit.is_some(), "{case}/expect: no `exit`");
        e
    }
}

fn run_case(case: &str) {
    let dir = corpus_root().join(case);
    let expect = Expect::parse(
        case,
        &std::fs::read_to_string(dir.join("expect")).expect("read expect"),
    );
    let p = Project::empty();
    let mut values = expect.secrets.clone();

    let before = dir.join("before");
    if before.is_dir() {
        copy_tree(&before, p.dir.path(), &[]);
        values.extend(env_values(&before.join(".env"), &expect.public));
        let out = run_bounded(p.cmd(&["load"]).cmd);
        assert_eq!(
            out.code, 0,
            "{case}: the `before` project must load\n{}",
            out.stderr
        );
    }
    copy_tree(&dir, p.dir.path(), &["expect", "before"]);
    values.extend(env_values(&dir.join(".env"), &expect.public));
    for step in &expect.setup {
        if let Some(value) = apply_setup(&p, step) {
            values.push(value);
        }
    }

    let snapshot = tree(p.dir.path());
    let args: Vec<&str> = expect.args.iter().map(String::as_str).collect();
    let out = run_bounded(p.cmd(&args).env("RUST_LOG", "trace").cmd);
    let shown = format!(
        "{case}: `{}` exited {}\nstderr:\n{}",
        args.join(" "),
        out.code,
        truncate(&out.stderr)
    );
    assert_eq!(Some(out.code), expect.exit, "{shown}");
    for needle in &expect.stderr {
        assert!(
            out.stderr.contains(needle.as_str()),
            "{shown}\nlacks {needle:?}"
        );
    }
    assert_no_value_in(case, &values, &out.stdout, &out.stderr);

    if out.code == 0 {
        for (rel, contents) in &expect.files {
            assert_eq!(
                String::from_utf8_lossy(&p.read(rel)),
                *contents,
                "{case}: {rel}"
            );
        }
        assert_secret_files_sane(case, &p);
        assert_runtime_holds_no_value(case, &p, &values);
    } else {
        assert_same_tree(case, &snapshot, &tree(p.dir.path()));
    }
}

/// Shape the project for a case. Returns a generated secret value, if the step made one.
fn apply_setup(p: &Project, step: &str) -> Option<String> {
    let words: Vec<&str> = step.split_whitespace().collect();
    let path = |i: usize| p.path(words[i]);
    match words.as_slice() {
        ["repeat", _, prefix, ch, count] => {
            // Append `prefix` + `ch` × `count` as one line: huge files and over-long values.
            let value = ch.repeat(count.parse().unwrap());
            let mut text = std::fs::read(path(1)).unwrap_or_default();
            text.extend_from_slice(format!("{prefix}{value}\n").as_bytes());
            std::fs::write(path(1), text).unwrap();
            prefix.ends_with('=').then_some(value)
        }
        ["file", _, rest @ ..] => {
            remove_any(&path(1));
            std::fs::write(path(1), rest.join(" ")).unwrap();
            None
        }
        ["mkdir", _] => {
            remove_any(&path(1));
            std::fs::create_dir_all(path(1)).unwrap();
            None
        }
        ["rmdir", _] | ["rm", _] => {
            remove_any(&path(1));
            None
        }
        ["symlink", _, target] => {
            remove_any(&path(1));
            std::os::unix::fs::symlink(target, path(1)).unwrap();
            None
        }
        ["hardlink", _, existing] => {
            remove_any(&path(1));
            std::fs::hard_link(p.path(existing), path(1)).unwrap();
            None
        }
        ["fifo", _] => {
            remove_any(&path(1));
            let status = Command::new("mkfifo").arg(path(1)).status().unwrap();
            assert!(status.success(), "mkfifo");
            None
        }
        ["chmod", _, mode] => {
            let mode = u32::from_str_radix(mode, 8).unwrap();
            std::fs::set_permissions(path(1), std::fs::Permissions::from_mode(mode)).unwrap();
            None
        }
        ["chown", _, uid] => {
            assert!(
                is_root(),
                "setup `{step}` needs root (CI runs as root); this case cannot be simulated here"
            );
            std::os::unix::fs::chown(path(1), Some(uid.parse().unwrap()), None).unwrap();
            None
        }
        _ => panic!("unknown setup step `{step}`"),
    }
}

fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).unwrap(),
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target, &[]);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Values in a `.env`-like file, read loosely (the file may be deliberately broken).
fn env_values(path: &Path, public: &[String]) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&bytes)
        .split(['\n', '\r'])
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| {
            let key = key.trim().trim_start_matches("export").trim();
            !public.iter().any(|p| p == key)
        })
        .map(|(_, v)| {
            let v = v.split(" #").next().unwrap_or_default().trim();
            v.trim_matches(['\'', '"']).to_string()
        })
        .filter(|v| v.len() >= MIN_SECRET_LEN)
        .collect()
}

#[track_caller]
fn assert_no_value_in(case: &str, values: &[String], stdout: &str, stderr: &str) {
    for v in values {
        assert!(
            !stdout.contains(v.as_str()) && !stderr.contains(v.as_str()),
            "{case}: a secret value ({} bytes) was printed\nstdout:\n{}\nstderr:\n{}",
            v.len(),
            truncate(stdout),
            truncate(stderr)
        );
    }
}

/// Secret files are 0400-or-declared, owned as declared, and no temp file is left behind.
fn assert_secret_files_sane(case: &str, p: &Project) {
    let Ok(entries) = std::fs::read_dir(p.path(".runtime/secrets")) else {
        return;
    };
    assert_eq!(
        p.mode(".runtime/secrets"),
        0o700,
        "{case}: secrets dir mode"
    );
    for entry in entries {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.starts_with(".compose-secrets.tmp."),
            "{case}: temp file {name} left behind"
        );
        let mode = p.mode(&format!(".runtime/secrets/{name}"));
        assert_eq!(mode & 0o077, 0, "{case}: {name} has mode {mode:04o}");
    }
}

/// State, audit log and audit key hold fingerprints and versions, never a value.
fn assert_runtime_holds_no_value(case: &str, p: &Project, values: &[String]) {
    for rel in [
        ".runtime/state.json",
        ".runtime/audit.log",
        ".runtime/audit.key",
    ] {
        let Ok(bytes) = std::fs::read(p.path(rel)) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for v in values {
            assert!(
                !text.contains(v.as_str()),
                "{case}: {rel} holds a secret value"
            );
        }
    }
}

/// One entry of a tree snapshot: kind, mode, owner, and the bytes of regular files.
#[derive(PartialEq, Eq, Debug)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    bytes: Vec<u8>,
}

/// Like `Project::snapshot`, plus owners and file kinds, and safe with FIFOs (never opened).
fn tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    tree_into(root, root, &mut out);
    out
}

fn tree_into(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        if rel.ends_with(".lock") {
            // The run lock is created before the inputs are checked; it holds nothing.
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let (kind, bytes) = if ft.is_dir() {
            let before = out.len();
            tree_into(root, &path, out);
            if out.len() == before {
                // An empty directory (e.g. `.runtime` holding only the lock) is no change.
                continue;
            }
            ("dir", Vec::new())
        } else if ft.is_symlink() {
            (
                "symlink",
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            )
        } else if ft.is_file() {
            ("file", std::fs::read(&path).unwrap_or_default())
        } else {
            ("special", Vec::new())
        };
        out.insert(
            rel,
            Node {
                kind,
                mode: meta.permissions().mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                bytes,
            },
        );
    }
}

#[track_caller]
fn assert_same_tree(case: &str, before: &BTreeMap<PathBuf, Node>, after: &BTreeMap<PathBuf, Node>) {
    let mut differ: Vec<&PathBuf> = Vec::new();
    for path in before.keys().chain(after.keys()) {
        if before.get(path) != after.get(path) && !differ.contains(&path) {
            differ.push(path);
        }
    }
    assert!(differ.is_empty(), "{case}: a failed run changed {differ:?}");
}

// ---------------------------------------------------------------------------------------------
// Environment failures that need a mount, another user, or a device.
// ---------------------------------------------------------------------------------------------

const TWO_SECRETS: &str = "services:\n  app:\n    image: x\n    secrets: [a, b]\nsecrets:\n  a:\n    file: ./.runtime/secrets/a\n  b:\n    file: ./.runtime/secrets/b\n";
const OLD_ENV: &str = "A=alpha-old-value-1\nB=bravo-old-value-2\n";
const NEW_ENV: &str = "A=alpha-new-value-1\nB=bravo-new-value-2\n";

/// A tmpfs mounted for the life of the value; unmounted (lazily, so a busy mount cannot wedge) on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mount, or panic saying why this environment cannot run the case (never a silent pass).
    fn mount(path: &Path, options: &str) -> Tmpfs {
        assert!(
            is_root(),
            "this case needs root to mount a tmpfs (CI runs as root); it cannot be simulated as uid != 0"
        );
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot simulate this case: `mount -t tmpfs -o {options}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cannot simulate this case: remount,{options} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn two_secret_project() -> Project {
    let p = Project::empty();
    p.write("compose.yaml", TWO_SECRETS);
    p.write(".env", OLD_ENV);
    p
}

/// Every value `OLD_ENV` and `NEW_ENV` hold.
fn all_values() -> Vec<String> {
    OLD_ENV
        .lines()
        .chain(NEW_ENV.lines())
        .map(|l| l.split_once('=').unwrap().1.to_string())
        .collect()
}

#[test]
fn secrets_dir_on_another_filesystem_loads_like_any_other() {
    // The temp file lives in the secrets directory itself, so rename never crosses a mount:
    // a secrets dir on its own filesystem (tmpfs here, a RAM disk in production) must just work.
    let p = two_secret_project();
    std::fs::create_dir_all(p.path(".runtime")).unwrap();
    let _mnt = Tmpfs::mount(&p.path(".runtime/secrets"), "size=1m,mode=0700");
    p.cmd(&["load"]).run().success();
    p.write(".env", NEW_ENV);
    p.cmd(&["load"]).run().success();
    assert_eq!(p.read_string(".runtime/secrets/a"), "alpha-new-value-1");
    assert_eq!(p.read_string(".runtime/secrets/b"), "bravo-new-value-2");
    assert_secret_files_sane("tmpfs", &p);
    assert_ne!(
        std::fs::metadata(p.path(".runtime/secrets")).unwrap().dev(),
        std::fs::metadata(p.path(".runtime")).unwrap().dev(),
        "the secrets dir really is another filesystem"
    );
}

#[test]
fn a_full_disk_fails_naming_the_file_and_keeps_every_old_value() {
    let p = two_secret_project();
    std::fs::create_dir_all(p.path(".runtime")).unwrap();
    let mnt = Tmpfs::mount(&p.path(".runtime/secrets"), "size=64k,mode=0700");
    p.cmd(&["load"]).run().success();
    // Fill every remaining block: the next temp file cannot get a page.
    let filler = mnt.path.join("filler");
    let status = Command::new("dd")
        .args(["if=/dev/zero", "bs=4096"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "dd must stop at ENOSPC");
    p.write(".env", NEW_ENV);
    let before = tree(p.dir.path());
    let out = run_bounded(p.cmd(&["load"]).cmd);
    assert_eq!(out.code, 7, "filesystem error\n{}", out.stderr);
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(".runtime/secrets/a"), "{}", out.stderr);
    assert_no_value_in("full disk", &all_values(), &out.stdout, &out.stderr);
    assert_same_tree("full disk", &before, &tree(p.dir.path()));
    // Space back: the next load converges.
    std::fs::remove_file(&filler).unwrap();
    p.cmd(&["load"]).run().success();
    assert_eq!(p.read_string(".runtime/secrets/a"), "alpha-new-value-1");
    assert_secret_files_sane("full disk", &p);
}

#[test]
fn a_read_only_secrets_dir_fails_and_keeps_every_old_value() {
    let p = two_secret_project();
    std::fs::create_dir_all(p.path(".runtime")).unwrap();
    let mnt = Tmpfs::mount(&p.path(".runtime/secrets"), "size=1m,mode=0700");
    p.cmd(&["load"]).run().success();
    mnt.remount("ro");
    p.write(".env", NEW_ENV);
    let before = tree(p.dir.path());
    let out = run_bounded(p.cmd(&["load"]).cmd);
    assert_eq!(out.code, 7, "filesystem error\n{}", out.stderr);
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(".runtime/secrets/a"), "{}", out.stderr);
    assert_no_value_in("read-only", &all_values(), &out.stdout, &out.stderr);
    assert_same_tree("read-only", &before, &tree(p.dir.path()));
    // A rotation that cannot write the file puts the store back and says the file was never
    // replaced: a filesystem error (7), not a failed rollback (9).
    let env_before = p.read_string(".env");
    let out = run_bounded(p.cmd(&["rotate", "a", "--no-restart"]).cmd);
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert!(!out.stderr.contains("ROLLBACK FAILED"), "{}", out.stderr);
    assert!(!out.stderr.contains("NEW value"), "{}", out.stderr);
    assert_eq!(
        p.read_string(".env"),
        env_before,
        ".env holds the value the file holds"
    );
    assert_eq!(p.read_string(".runtime/secrets/a"), "alpha-old-value-1");
    mnt.remount("rw");
    p.cmd(&["load"]).run().success();
    assert_eq!(p.read_string(".runtime/secrets/b"), "bravo-new-value-2");
}

#[test]
fn a_read_only_project_fails_before_writing_anything() {
    // The whole project read-only (a mounted checkout): load cannot even create .runtime.
    let p = Project::empty();
    let mnt = Tmpfs::mount(&p.path("ro"), "size=1m,mode=0755");
    std::fs::write(mnt.path.join("compose.yaml"), TWO_SECRETS).unwrap();
    std::fs::write(mnt.path.join(".env"), OLD_ENV).unwrap();
    mnt.remount("ro");
    let mut cmd = p.cmd(&["load"]).cmd;
    cmd.current_dir(&mnt.path);
    let out = run_bounded(cmd);
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert!(out.stderr.contains(".runtime"), "{}", out.stderr);
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );
    assert_no_value_in("read-only project", &all_values(), &out.stdout, &out.stderr);
}

/// The uid the unreadable-file cases run as.
const NOBODY: &str = "1001";

/// Give the project to `NOBODY`, so only the file a case takes away is unreadable.
fn hand_to_nobody(p: &Project) {
    assert!(
        is_root(),
        "unreadable-file cases need root to switch to another user (CI runs as root); as uid != 0 \
         they cannot be simulated portably"
    );
    let status = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(p.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(p.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Run the binary as `NOBODY` (root bypasses file permissions, so root cannot test them).
fn as_nobody(p: &Project, args: &[&str]) -> Bounded {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
        BIN,
    ])
    .args(args)
    .current_dir(p.dir.path());
    scrub(&mut cmd);
    run_bounded(cmd)
}

#[test]
fn an_unreadable_env_file_is_named_and_nothing_is_written() {
    let p = two_secret_project();
    hand_to_nobody(&p);
    std::fs::set_permissions(p.path(".env"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = as_nobody(&p, &["load"]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert!(out.stderr.contains(".env"), "{}", out.stderr);
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
    assert!(!p.exists(".runtime/secrets"));
}

#[test]
fn an_unreadable_compose_file_is_named_and_nothing_is_written() {
    let p = two_secret_project();
    hand_to_nobody(&p);
    std::fs::set_permissions(
        p.path("compose.yaml"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let out = as_nobody(&p, &["load"]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert!(out.stderr.contains("compose.yaml"), "{}", out.stderr);
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
    assert!(!p.exists(".runtime/secrets"));
}

#[test]
fn an_unreadable_secret_file_is_named_and_the_others_are_untouched() {
    let p = two_secret_project();
    p.cmd(&["load"]).run().success();
    p.write(".env", NEW_ENV);
    hand_to_nobody(&p);
    // `a` belongs to someone else: the unprivileged run cannot read it to compare.
    std::os::unix::fs::chown(p.path(".runtime/secrets/a"), Some(4242), Some(4242)).unwrap();
    let before = tree(p.dir.path());
    let out = as_nobody(&p, &["load"]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert!(out.stderr.contains(".runtime/secrets/a"), "{}", out.stderr);
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
    assert_no_value_in("unreadable secret", &all_values(), &out.stdout, &out.stderr);
    assert_same_tree("unreadable secret", &before, &tree(p.dir.path()));
}

#[test]
fn an_endless_compose_file_is_refused_before_a_byte_is_read() {
    // `-f /dev/zero`: a device, like a FIFO, is refused by its type before it is read (the
    // 4 MiB cap on regular files is tested with the reader).
    let p = two_secret_project();
    let out = run_bounded(with_memory_cap(&p.cmd(&["-f", "/dev/zero", "load"]).cmd));
    eprintln!("-f /dev/zero: exit {} after {:?}", out.code, out.elapsed);
    assert_eq!(out.code, 2, "input error\n{}", out.stderr);
    assert!(
        out.stderr
            .contains("/dev/zero: is a character device, not a regular file"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_endless_env_file_is_refused_before_a_byte_is_read() {
    let p = two_secret_project();
    let out = run_bounded(with_memory_cap(
        &p.cmd(&["--env-file", "/dev/zero", "load"]).cmd,
    ));
    assert_eq!(out.code, 2, "input error\n{}", out.stderr);
    assert!(
        out.stderr
            .contains("/dev/zero: is a character device, not a regular file"),
        "{}",
        out.stderr
    );
}

#[test]
fn secret_files_get_their_modes_whatever_the_umask_even_when_replaced() {
    // load.rs covers a fresh load; here each umask also rewrites existing files.
    let p = two_secret_project();
    for (i, umask) in ["000", "002", "022", "077", "777"].iter().enumerate() {
        p.write(
            ".env",
            format!("A=alpha-value-{i}-xyz\nB=bravo-value-{i}-xyz\n"),
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("umask {umask}; exec \"$0\" load"), BIN])
            .current_dir(p.dir.path());
        scrub(&mut cmd);
        let out = run_bounded(cmd);
        assert_eq!(out.code, 0, "umask {umask}: {}", out.stderr);
        assert_eq!(p.mode(".runtime"), 0o700, "umask {umask}");
        assert_eq!(p.mode(".runtime/secrets"), 0o700, "umask {umask}");
        assert_eq!(p.mode(".runtime/secrets/a"), 0o400, "umask {umask}");
        assert_eq!(p.mode(".runtime/secrets/b"), 0o400, "umask {umask}");
        assert_eq!(p.mode(".runtime/state.json"), 0o600, "umask {umask}");
        if p.exists(".runtime/audit.log") {
            assert_eq!(p.mode(".runtime/audit.log"), 0o600, "umask {umask}");
        }
        assert_eq!(
            p.read_string(".runtime/secrets/a"),
            format!("alpha-value-{i}-xyz")
        );
    }
}

#[test]
fn no_value_reaches_the_logs_state_or_audit_log_at_full_verbosity() {
    let p = two_secret_project();
    let values: Vec<String> = OLD_ENV
        .lines()
        .map(|l| l.split_once('=').unwrap().1.to_string())
        .collect();
    for args in [
        vec!["-vvv", "load"],
        vec!["-vvv", "load", "--no-cache"],
        vec!["-vvv", "load", "--json"],
        vec!["-vvv", "load", "--env-output", "app.env"],
    ] {
        let out = run_bounded(p.cmd(&args).env("RUST_LOG", "trace").cmd);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert_no_value_in("-vvv", &values, &out.stdout, &out.stderr);
    }
    assert_runtime_holds_no_value("-vvv", &p, &values);
    assert!(p.exists(".runtime/audit.log"), "load writes an audit line");
}

/// Marker telling a re-executed copy of this test binary to panic with a known secret.
const PANIC_CHILD_ENV: &str = "COMPOSE_SECRETS_TEST_PANIC_CHILD";
const PANIC_SECRET: &str = "PanicPayloadSecret-5f3c9a";

#[test]
fn panic_messages_are_withheld_by_the_process_hook() {
    if std::env::var_os(PANIC_CHILD_ENV).is_some() {
        // The child: install the binary's hardening (its panic hook), then panic with a value.
        compose_secrets::testing::hardening::harden_process();
        let value = String::from(PANIC_SECRET);
        panic!("while handling {value}");
    }
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "hostile::panic_messages_are_withheld_by_the_process_hook",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(PANIC_CHILD_ENV, "1")
    .env("RUST_BACKTRACE", "1");
    let out = run_bounded(cmd);
    assert_ne!(out.code, 0, "the child panicked: {}", out.stderr);
    assert!(
        out.stderr.contains("message withheld"),
        "the hook ran: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(PANIC_SECRET) && !out.stdout.contains(PANIC_SECRET),
        "a panic payload was printed:\n{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Faults from the Key Vault emulator: `load` finishes within its retry budget, or fails naming
// what it could not get and leaves the existing files untouched.
// ---------------------------------------------------------------------------------------------

const VAULT_SECRETS: [&str; 3] = ["fault-a", "fault-b", "fault-c"];

fn vault_project() -> Project {
    let p = Project::empty();
    let mut doc = format!(
        "services:\n  app:\n    image: x\n    secrets: [{}]\nsecrets:\n",
        VAULT_SECRETS.join(", ")
    );
    for n in VAULT_SECRETS {
        doc.push_str(&format!("  {n}:\n    file: ./.runtime/secrets/{n}\n"));
    }
    p.write("compose.yaml", doc);
    p
}

fn vault_emulator(extra: &[&str]) -> Emulator {
    let mut args: Vec<&str> = Vec::new();
    for n in VAULT_SECRETS {
        args.extend(["--seed", n]);
    }
    args.extend(extra);
    Emulator::start(&args)
}

fn vault_cmd(p: &Project, emulator: &Emulator, args: &[&str]) -> Command {
    p.cmd(args)
        .keyvault(emulator)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .cmd
}

/// Rotate every vault secret from a second project, so the next `load` here has work to do.
fn rotate_elsewhere(emulator: &Emulator) {
    let operator = vault_project();
    let mut args = vec!["rotate"];
    args.extend(VAULT_SECRETS);
    args.push("--no-restart");
    let out = run_bounded(vault_cmd(&operator, emulator, &args));
    assert_eq!(out.code, 0, "operator rotate: {}", out.stderr);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_throttling_burst_is_ridden_out_within_the_retry_budget() {
    let emulator = vault_emulator(&[]);
    let p = vault_project();
    let out = run_bounded(vault_cmd(&p, &emulator, &["load"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    rotate_elsewhere(&emulator);
    runtime()
        .block_on(emulator.set_faults(serde_json::json!({"fault_429_every": 2, "retry_after": 1})));
    let out = run_bounded(vault_cmd(&p, &emulator, &["load"]));
    eprintln!(
        "load under 429 every 2nd request: exit {} in {:?}",
        out.code, out.elapsed
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    runtime().block_on(emulator.set_faults(serde_json::json!({"fault_429_every": 0})));
    // Converged: a load without faults has nothing to change.
    let out = run_bounded(vault_cmd(&p, &emulator, &["load", "--json", "--no-cache"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for item in doc["items"].as_array().unwrap() {
        assert_eq!(item["action"], "unchanged", "{item}");
    }
}

#[test]
fn a_token_endpoint_that_is_down_fails_within_a_minute_and_writes_nothing() {
    let emulator = vault_emulator(&["--token-endpoint-down"]);
    let p = vault_project();
    let before = tree(p.dir.path());
    let out = run_bounded(vault_cmd(&p, &emulator, &["load"]));
    eprintln!(
        "load with the token endpoint down: exit {} in {:?}: {}",
        out.code,
        out.elapsed,
        out.stderr.trim()
    );
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.elapsed < Duration::from_secs(60),
        "took {:?}",
        out.elapsed
    );
    assert_same_tree("token endpoint down", &before, &tree(p.dir.path()));
}

/// A FIFO where compose-secrets keeps its state, lock, audit key or audit log never makes a
/// command wait: every command ends within the bound with an error naming the file, and no
/// secret file changes.
#[test]
fn a_fifo_in_the_runtime_directory_is_refused_never_waited_on() {
    for name in ["state.json", ".lock", "audit.key", "audit.log"] {
        let p = two_secret_project();
        p.cmd(&["load"]).run().success();
        p.write(".env", NEW_ENV);
        let fifo = p.path(&format!(".runtime/{name}"));
        std::fs::remove_file(&fifo).ok();
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let before = p.read_string(".runtime/secrets/a");
        for args in [
            &["load"][..],
            &["verify", "--no-docker"][..],
            &["rotate", "a", "--no-restart"][..],
        ] {
            let mut cmd = Command::new(BIN);
            cmd.args(args).current_dir(p.dir.path());
            scrub(&mut cmd);
            let out = run_within(cmd, Duration::from_secs(60));
            assert_ne!(
                out.code, 0,
                "{name}: {args:?} succeeded through a FIFO\n{}",
                out.stdout
            );
            assert!(
                out.stderr.contains(name) || out.stdout.contains(name),
                "{name}: {args:?} does not name the file\nstdout:\n{}\nstderr:\n{}",
                out.stdout,
                out.stderr
            );
        }
        assert_eq!(
            p.read_string(".runtime/secrets/a"),
            before,
            "{name}: a secret file changed"
        );
    }
}

/// The README's "run `load` as root" after the project's user ran `ensure` (which made
/// `.runtime` theirs): root uses the runtime directory of the project's owner, and the files
/// come out right. A directory owned by anyone else is still refused.
#[test]
fn root_loads_in_a_project_whose_runtime_directory_its_user_made() {
    let p = two_secret_project();
    p.write(".env.demo", "");
    std::fs::remove_file(p.path(".env")).unwrap();
    hand_to_nobody(&p);
    let out = as_nobody(&p, &["ensure"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(p.owner(".runtime").0, NOBODY.parse::<u32>().unwrap());
    p.cmd(&["load"]).run().success();
    assert_eq!(p.mode(".runtime/secrets/a"), 0o400);
    p.cmd(&["verify", "--no-docker"]).run().stdout_has("intact");
    let status = Command::new("chown")
        .args(["4242", &p.path(".runtime").display().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    p.cmd(&["load"])
        .run()
        .code(2)
        .stderr_has("owned by uid 4242");
}
