//! The chain, its head, key hand-overs and the log's file under attack.
use super::*;
use crate::secret::SecretValue;

fn event(n: usize) -> AuditEvent {
    AuditEvent {
        action: Action::Rotate,
        secret: Secrets::One(format!("secret-{n}")),
        old_version: Versions::One(Some(format!("v{n}"))),
        new_version: Versions::One(Some(format!("v{}", n + 1))),
        services_restarted: vec!["app-1".into()],
        health: HealthResult::Passed,
        outcome: Outcome::Ok,
        hook: None,
        error: None,
    }
}

fn runtime() -> (tempfile::TempDir, RuntimeDir) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = RuntimeDir::open(&dir.path().join(".runtime"), true)
        .unwrap()
        .unwrap();
    (dir, runtime)
}

fn local(runtime: &RuntimeDir) -> AuditKey {
    AuditKey::local(runtime, true).unwrap().unwrap()
}

fn signing(value: &str) -> AuditKey {
    AuditKey::from_signing_secret(&SecretValue::new(value.into()))
}

/// Three lines appended with the local key; returns the head.
fn three_lines(runtime: &RuntimeDir) -> AuditHead {
    let mut log = AuditLog::new(runtime, local(runtime));
    let mut head = None;
    for n in 0..3 {
        head = Some(log.append(&event(n), head.as_ref()).unwrap());
    }
    head.unwrap()
}

fn log_text(runtime: &RuntimeDir) -> String {
    std::fs::read_to_string(runtime.file(AUDIT_LOG)).unwrap()
}

fn write_log(runtime: &RuntimeDir, text: &str) {
    std::fs::write(runtime.file(AUDIT_LOG), text).unwrap();
}

#[test]
fn three_lines_verify_and_the_files_are_private() {
    let (_dir, runtime) = runtime();
    let head = three_lines(&runtime);
    assert_eq!(head.lines, 3);
    let report = verify_log(Some(&runtime), &[local(&runtime)], Some(&head)).unwrap();
    assert_eq!(report.lines, 3);
    assert!(report.ok(), "{report:?}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |n: &str| {
        std::fs::metadata(runtime.file(n))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(AUDIT_LOG), 0o600);
    assert_eq!(mode(crate::files::runtime_dir::AUDIT_KEY), 0o600);
    let first: serde_json::Value =
        serde_json::from_str(log_text(&runtime).lines().next().unwrap()).unwrap();
    assert_eq!(first["prev"], "");
    assert_eq!(first["key"], "local");
    assert_eq!(first["action"], "rotate");
    assert_eq!(first["health"], "passed");
}

#[test]
fn an_edited_byte_names_its_line() {
    let (_dir, runtime) = runtime();
    three_lines(&runtime);
    let text = log_text(&runtime);
    let edited = text.replacen("secret-1", "secret-X", 1);
    assert_ne!(text, edited);
    write_log(&runtime, &edited);
    let report = verify_log(Some(&runtime), &[local(&runtime)], None).unwrap();
    assert_eq!(report.first_bad_line, Some(2), "{report:?}");
}

#[test]
fn a_deleted_line_is_detected() {
    let (_dir, runtime) = runtime();
    three_lines(&runtime);
    let text = log_text(&runtime);
    let lines: Vec<&str> = text.lines().collect();
    write_log(&runtime, &format!("{}\n{}\n", lines[0], lines[2]));
    let report = verify_log(Some(&runtime), &[local(&runtime)], None).unwrap();
    assert_eq!(report.first_bad_line, Some(2), "{report:?}");
    write_log(&runtime, &format!("{}\n{}\n", lines[1], lines[2]));
    let report = verify_log(Some(&runtime), &[local(&runtime)], None).unwrap();
    assert_eq!(report.first_bad_line, Some(1), "{report:?}");
}

#[test]
fn truncating_emptying_or_deleting_the_log_is_caught_by_the_head() {
    let (_dir, runtime) = runtime();
    let head = three_lines(&runtime);
    let key = [local(&runtime)];
    let text = log_text(&runtime);
    let lines: Vec<&str> = text.lines().collect();
    write_log(&runtime, &format!("{}\n{}\n", lines[0], lines[1]));
    let report = verify_log(Some(&runtime), &key, Some(&head)).unwrap();
    assert!(report.first_bad_line.is_none(), "what is left chains");
    assert_eq!(
        report.head,
        HeadStatus::Truncated {
            lines: 2,
            expected: 3
        }
    );
    assert!(!report.ok());
    write_log(&runtime, "");
    let report = verify_log(Some(&runtime), &key, Some(&head)).unwrap();
    assert!(matches!(
        report.head,
        HeadStatus::Truncated { lines: 0, .. }
    ));
    std::fs::remove_file(runtime.file(AUDIT_LOG)).unwrap();
    let report = verify_log(Some(&runtime), &key, Some(&head)).unwrap();
    assert_eq!(report.head, HeadStatus::Deleted { expected: 3 });
    assert!(!report.ok());
    // A log ahead of the head (a run killed after appending, before saving state) is fine.
    write_log(&runtime, &text);
    let mut log = AuditLog::new(&runtime, local(&runtime));
    log.append(&event(9), Some(&head)).unwrap();
    let report = verify_log(Some(&runtime), &key, Some(&head)).unwrap();
    assert_eq!(report.head, HeadStatus::Matches);
    assert!(report.ok(), "{report:?}");
}

#[test]
fn a_wrong_key_or_a_forged_key_id_fails() {
    let (_dir, runtime) = runtime();
    three_lines(&runtime);
    let report = verify_log(Some(&runtime), &[signing("another-key")], None).unwrap();
    assert_eq!(report.first_bad_line, Some(1), "{report:?}");
    // A line signed with another key but claiming ours: the mac check catches it.
    let attacker = signing("attacker");
    let mut line: serde_json::Value = serde_json::from_str(&signed_line(
        &attacker,
        &event(9),
        "",
        "2025-01-01T00:00:00Z",
    ))
    .unwrap();
    line["key_id"] = local(&runtime).id().into();
    write_log(&runtime, &format!("{}\n", canonical(&line)));
    let report = verify_log(Some(&runtime), &[local(&runtime)], None).unwrap();
    assert_eq!(report.first_bad_line, Some(1));
}

#[test]
fn twelve_signing_key_rotations_verify_with_the_last_key_alone() {
    let (_dir, runtime) = runtime();
    let mut log = AuditLog::new(&runtime, signing("key-0"));
    let mut head = Some(log.append(&event(0), None).unwrap());
    for n in 1..=12 {
        log.change_key(signing(&format!("key-{n}")));
        head = Some(log.append(&event(n), head.as_ref()).unwrap());
    }
    let head = head.unwrap();
    assert_eq!(
        head.lines,
        1 + 12 * 2,
        "each change adds its key-rotation line"
    );
    let report = verify_log(Some(&runtime), &[signing("key-12")], Some(&head)).unwrap();
    assert!(report.ok(), "{report:?}");
    let text = log_text(&runtime);
    for n in 0..12 {
        assert!(!text.contains(&format!("key-{n}")), "no key in clear");
    }
    // Without the current key nothing before it can be checked.
    let report = verify_log(Some(&runtime), &[signing("key-11")], Some(&head)).unwrap();
    assert!(!report.ok());
}

#[test]
fn an_intent_without_an_outcome_is_pending() {
    let (_dir, runtime) = runtime();
    let mut log = AuditLog::new(&runtime, local(&runtime));
    let intent = AuditEvent {
        outcome: Outcome::Intent,
        ..event(1)
    };
    log.append(&intent, None).unwrap();
    let report = verify_log(Some(&runtime), &[local(&runtime)], None).unwrap();
    assert_eq!(report.pending, vec![(1, "secret-1".to_string())]);
    log.append(&event(1), None).unwrap();
    let report = verify_log(Some(&runtime), &[local(&runtime)], None).unwrap();
    assert!(report.pending.is_empty());
}

#[test]
fn a_torn_last_line_is_reported_and_appends_continue() {
    let (_dir, runtime) = runtime();
    three_lines(&runtime);
    let mut text = log_text(&runtime);
    text.push_str("{\"trunc");
    write_log(&runtime, &text);
    let mut log = AuditLog::new(&runtime, local(&runtime));
    log.append(&event(5), None).unwrap();
    let report = verify_log(Some(&runtime), &[local(&runtime)], None).unwrap();
    assert_eq!(report.lines, 5);
    assert_eq!(report.first_bad_line, Some(4));
}

#[test]
fn a_line_over_eight_kilobytes_still_chains_the_next_one() {
    let (_dir, runtime) = runtime();
    let mut log = AuditLog::new(&runtime, local(&runtime));
    let names: Vec<String> = (0..400).map(|i| format!("secret-number-{i:04}")).collect();
    let big = AuditEvent {
        action: Action::Load,
        secret: Secrets::Many(names.clone()),
        old_version: Versions::PerSecret(names.iter().map(|n| (n.clone(), None)).collect()),
        new_version: Versions::PerSecret(
            names
                .iter()
                .map(|n| (n.clone(), Some("v".repeat(32))))
                .collect(),
        ),
        ..event(0)
    };
    let head = log.append(&big, None).unwrap();
    assert!(log_text(&runtime).len() > 20 * 1024);
    let head = log.append(&event(1), Some(&head)).unwrap();
    let report = verify_log(Some(&runtime), &[local(&runtime)], Some(&head)).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.lines, 2);
}

#[test]
fn a_symlinked_or_fifo_log_is_an_error_not_an_empty_chain() {
    let (dir, runtime) = runtime();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, runtime.file(AUDIT_LOG)).unwrap();
    assert!(verify_log(Some(&runtime), &[local(&runtime)], None).is_err());
    let mut log = AuditLog::new(&runtime, local(&runtime));
    assert!(log.append(&event(0), None).is_err());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn load_events_list_secrets_and_versions() {
    let (_dir, runtime) = runtime();
    let mut log = AuditLog::new(&runtime, local(&runtime));
    let event = AuditEvent {
        action: Action::Load,
        secret: Secrets::Many(vec!["a".into(), "b".into()]),
        old_version: Versions::PerSecret(BTreeMap::from([("a".into(), None)])),
        new_version: Versions::PerSecret(BTreeMap::from([("a".into(), Some("v1".into()))])),
        services_restarted: vec![],
        health: HealthResult::Skipped,
        outcome: Outcome::Ok,
        hook: None,
        error: None,
    };
    log.append(&event, None).unwrap();
    let v: serde_json::Value = serde_json::from_str(log_text(&runtime).trim()).unwrap();
    assert_eq!(v["secret"], serde_json::json!(["a", "b"]));
    assert_eq!(v["new_version"]["a"], "v1");
    assert_eq!(v["action"], "load");
}

#[test]
fn timestamps_round_trip() {
    let now = now_rfc3339();
    assert!(now.ends_with('Z'), "{now}");
    assert!(parse_rfc3339(&now).is_some());
    assert_eq!(parse_rfc3339("1970-01-01T00:01:00Z"), Some(60));
}

/// A symlink at `audit.key` would let whoever planted it choose the key the chain is signed
/// with: it is refused for reading and for creating, and its target is left as it was.
#[test]
fn a_symlinked_audit_key_is_refused_and_its_target_untouched() {
    let (dir, runtime) = runtime();
    let victim = dir.path().join("chosen-key");
    std::fs::write(&victim, "attacker-chosen-key\n").unwrap();
    std::os::unix::fs::symlink(&victim, runtime.file(crate::files::runtime_dir::AUDIT_KEY))
        .unwrap();
    for create in [false, true] {
        let err = AuditKey::local(&runtime, create).expect_err("refused");
        assert!(err.to_string().contains("symlink"), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "attacker-chosen-key\n"
    );
    assert!(!runtime.file(AUDIT_LOG).exists(), "nothing was logged");
}

/// A FIFO or a directory where the log goes is found before anything changes, not at the
/// first append after a push.
#[test]
fn a_log_that_could_not_be_appended_to_is_found_up_front() {
    let (_dir, runtime) = runtime();
    let log = AuditLog::new(&runtime, local(&runtime));
    log.check_appendable().expect("no log yet is fine");
    three_lines(&runtime);
    log.check_appendable().expect("a log file is fine");
    std::fs::remove_file(runtime.file(AUDIT_LOG)).unwrap();
    nix::unistd::mkfifo(
        &runtime.file(AUDIT_LOG),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    assert!(log.check_appendable().is_err(), "a FIFO");
    std::fs::remove_file(runtime.file(AUDIT_LOG)).unwrap();
    std::fs::create_dir(runtime.file(AUDIT_LOG)).unwrap();
    assert!(log.check_appendable().is_err(), "a directory");
}

/// The head in `state.json` saves counting the log, but only when it is the log's own last
/// line: a stale head (another run appended since) is not trusted for the count.
#[test]
fn a_stale_head_is_not_trusted_for_the_line_count() {
    let (_dir, runtime) = runtime();
    let stale = three_lines(&runtime);
    let mut log = AuditLog::new(&runtime, local(&runtime));
    let fresh = log.append(&event(3), Some(&stale)).unwrap();
    assert_eq!(fresh.lines, 4);
    let next = log.append(&event(4), Some(&stale)).unwrap();
    assert_eq!(next.lines, 5, "counted, not the stale head's 3 + 1");
    let report = verify_log(Some(&runtime), &[local(&runtime)], Some(&next)).unwrap();
    assert!(report.ok(), "{report:?}");
}

/// A key-rotation line hands over from the key that signed the log's last line. When that
/// line was signed by neither the old nor the new key, there is nothing to hand over.
#[test]
fn a_key_change_hands_over_only_from_the_key_that_signed_the_last_line() {
    let (_dir, runtime) = runtime();
    let mut first = AuditLog::new(&runtime, signing("key-0"));
    first.append(&event(0), None).unwrap();
    let mut log = AuditLog::new(&runtime, signing("key-1"));
    log.change_key(signing("key-2"));
    let head = log.append(&event(1), None).unwrap();
    assert_eq!(head.lines, 2, "no key-rotation line");
    assert!(!log_text(&runtime).contains("key-rotation"));
}

/// Non-empty lines, a last line without its newline (torn by a crash) included.
#[test]
fn count_lines_counts_non_empty_lines_and_a_torn_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let big = format!("{}\n", "x".repeat(100 * 1024));
    for (text, want) in [
        ("", 0),
        ("a\n", 1),
        ("a\n\nb\n", 2),
        ("a\nb\ntorn", 3),
        ("\n\n", 0),
        (big.as_str(), 1),
    ] {
        std::fs::write(&path, text).unwrap();
        let mut file = File::open(&path).unwrap();
        assert_eq!(count_lines(&mut file).unwrap(), want, "{text:.20?}");
    }
}

/// The last line is found however long it is next to the 8 KiB read window (the window
/// grows), and whether or not the file ends with a newline.
#[test]
fn last_line_finds_the_last_line_across_window_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let long = |n: usize, c: char| c.to_string().repeat(n);
    let cases = [
        (String::new(), None, true),
        ("only\n".to_string(), Some("only".to_string()), true),
        ("only".to_string(), Some("only".to_string()), false),
        ("a\nb\n".to_string(), Some("b".to_string()), true),
        ("a\ntorn".to_string(), Some("torn".to_string()), false),
        (
            format!("a\n{}\n", long(8191, 'x')),
            Some(long(8191, 'x')),
            true,
        ),
        (
            format!("a\n{}\n", long(8192, 'y')),
            Some(long(8192, 'y')),
            true,
        ),
        (
            format!("{}\n{}\n", long(50_000, 'p'), long(40_000, 'z')),
            Some(long(40_000, 'z')),
            true,
        ),
        (
            format!("{}\n", long(200_000, 'w')),
            Some(long(200_000, 'w')),
            true,
        ),
    ];
    for (text, want, newline) in cases {
        std::fs::write(&path, &text).unwrap();
        let mut file = File::open(&path).unwrap();
        let (got, ends) = last_line(&mut file).unwrap();
        assert_eq!(
            got.as_ref().map(String::len),
            want.as_ref().map(String::len),
            "{text:.20?}"
        );
        assert_eq!(got, want, "{text:.20?}");
        assert_eq!(ends, newline, "{text:.20?}");
    }
}

/// A last line far over the 1 MiB line limit is not read whole: the read window stops
/// growing past the limit, so a planted multi-megabyte line costs bounded memory.
#[test]
fn last_line_reads_at_most_a_bounded_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    std::fs::write(&path, format!("a\n{}\n", "q".repeat(5 * MAX_LINE_BYTES))).unwrap();
    let mut file = File::open(&path).unwrap();
    let (got, _) = last_line(&mut file).unwrap();
    let got = got.unwrap().len();
    assert!(
        got > MAX_LINE_BYTES && got < 3 * MAX_LINE_BYTES,
        "read {got} bytes of a {} byte line",
        5 * MAX_LINE_BYTES
    );
}

fn line(action: &str, outcome: &str, secret: &str, time: &str) -> String {
    serde_json::json!({"action": action, "outcome": outcome, "secret": secret, "time": time})
        .to_string()
}

/// `--older-than` and the rotation policy read the last committed change from the log: the
/// latest `ok` line for that secret, not a rolled-back one, not another secret's.
#[test]
fn the_last_rotation_and_change_are_the_latest_committed_lines() {
    let (_dir, runtime) = runtime();
    assert_eq!(last_rotation(Some(&runtime), "s"), None, "no log");
    assert_eq!(last_rotation(None, "s"), None);
    let t = |s: &str| parse_rfc3339(s).unwrap();
    // A first line over 1 MiB: the log is read whole, however long it grew.
    let padding = serde_json::json!({"action": "load", "pad": "x".repeat(2 * 1024 * 1024)});
    let lines = [
        padding.to_string(),
        line("rotate", "ok", "s", "2026-01-01T00:00:00Z"),
        line("rotate", "ok", "s", "2026-03-01T00:00:00Z"),
        line("rotate", "rolled-back", "s", "2026-04-01T00:00:00Z"),
        line("rotate", "ok", "other", "2026-05-01T00:00:00Z"),
        line("sync", "ok", "s", "2026-02-01T00:00:00Z"),
        serde_json::json!({"action": "load", "outcome": "ok", "time": "2026-03-15T00:00:00Z",
            "old_version": {"s": "v1"}, "new_version": {"s": "v2"}})
        .to_string(),
        serde_json::json!({"action": "load", "outcome": "ok", "time": "2026-06-01T00:00:00Z",
            "old_version": {"s": "v2"}, "new_version": {"s": "v2"}})
        .to_string(),
    ];
    write_log(&runtime, &format!("{}\n", lines.join("\n")));
    assert_eq!(
        last_rotation(Some(&runtime), "s"),
        Some(t("2026-03-01T00:00:00Z"))
    );
    assert_eq!(
        last_rotation(Some(&runtime), "other"),
        Some(t("2026-05-01T00:00:00Z"))
    );
    assert_eq!(last_rotation(Some(&runtime), "none"), None);
    assert_eq!(
        last_change(Some(&runtime), "s"),
        Some(t("2026-03-15T00:00:00Z")),
        "the load that brought v2; the one that kept it is no change"
    );
    assert_eq!(
        last_change(Some(&runtime), "other"),
        Some(t("2026-05-01T00:00:00Z")),
        "a rotation is a change"
    );
}

/// The keys `verify` holds when no store is at hand.
async fn local_keys(
    runtime: &RuntimeDir,
    project: &Project,
    layout: Option<&Layout>,
) -> Vec<AuditKey> {
    let state = State::new("");
    let v = verification(Some(runtime), runtime.path(), project, layout, None, &state).await;
    assert!(matches!(v.basis, Basis::Local(_)), "{:?}", v.basis);
    v.keys
}

/// `verify` holds the per-install key when there is one, and nothing before one exists.
#[tokio::test]
async fn verification_keys_include_the_local_key() {
    let (dir, runtime) = runtime();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  app:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    file: ./s\n",
    )
    .unwrap();
    let project = Project::load(&crate::compose::ProjectOptions {
        cwd: dir.path().to_path_buf(),
        ..crate::compose::ProjectOptions::default()
    })
    .unwrap();
    assert!(local_keys(&runtime, &project, None).await.is_empty());
    let key = local(&runtime);
    runtime.flush_staged().unwrap();
    let ids: Vec<String> = local_keys(&runtime, &project, None)
        .await
        .iter()
        .map(AuditKey::id)
        .collect();
    // Without a signing secret the project's key is the per-install key too.
    assert!(
        !ids.is_empty() && ids.iter().all(|id| *id == key.id()),
        "{ids:?}"
    );
}

fn command_output(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Who and where, as `id -un` and the kernel say: the audit line's `by` and the
/// `rotated-by` tag. Under sudo, the invoking user too (an empty `SUDO_USER` is none).
#[test]
fn the_user_and_host_are_the_systems_own() {
    let user = command_output("id", &["-un"]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    // nextest runs each test in its own process, so the variable is this test's alone.
    std::env::remove_var("SUDO_USER");
    assert_eq!(current_user(), (user.clone(), None));
    std::env::set_var("SUDO_USER", "");
    assert_eq!(current_user(), (user.clone(), None));
    std::env::set_var("SUDO_USER", "alice");
    assert_eq!(current_user(), (user.clone(), Some("alice".to_string())));
    std::env::remove_var("SUDO_USER");
    assert_eq!(host_name(), host);
    assert_eq!(user_at_host(), format!("{user}@{host}"));
}

/// With the project's layout at hand, `verify` holds the signing secret's key (read from its
/// file), first, before the per-install key.
#[tokio::test]
async fn verification_keys_put_the_signing_secrets_key_first() {
    let (dir, runtime) = runtime();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  app:\n    image: x\n    secrets: [audit-log-signing-key]\n\
         secrets:\n  audit-log-signing-key:\n    file: ./signing\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("signing"), "the-signing-value").unwrap();
    let project = Project::load(&crate::compose::ProjectOptions {
        cwd: dir.path().to_path_buf(),
        ..crate::compose::ProjectOptions::default()
    })
    .unwrap();
    let runtime_path = dir.path().join(".runtime");
    let layout = Layout::plan(
        &project,
        &runtime_path,
        &runtime_path.join("secrets"),
        &crate::files::layout::Protected {
            project: &project,
            env_file: &dir.path().join(".env"),
            template: &dir.path().join(".env.demo"),
        },
    )
    .unwrap();
    let local = local(&runtime);
    runtime.flush_staged().unwrap();
    let ids: Vec<String> = local_keys(&runtime, &project, Some(&layout))
        .await
        .iter()
        .map(AuditKey::id)
        .collect();
    assert_eq!(ids, vec![signing("the-signing-value").id(), local.id()]);
}

/// Lines signed with the local key, handed over to the signing key, then signed with it.
fn local_then_signing(runtime: &RuntimeDir, signing_value: &str) -> AuditHead {
    let mut log = AuditLog::new(runtime, local(runtime));
    let head = log.append(&event(0), None).unwrap();
    log.change_key(signing(signing_value));
    let head = log.append(&event(1), Some(&head)).unwrap();
    log.append(&event(2), Some(&head)).unwrap()
}

#[test]
fn with_the_stores_key_only_a_handed_over_local_key_is_vouched_for() {
    let (_dir, runtime) = runtime();
    let head = local_then_signing(&runtime, "store-key");
    let store_key = [signing("store-key")];
    let report = verify_chain(Some(&runtime), &store_key, Some(&head), true).unwrap();
    assert!(report.ok(), "{report:?}");

    // The same log with no hand-over: the local lines are vouched for by nothing in the store.
    let (_dir2, runtime) = self::runtime();
    let head = three_lines(&runtime);
    let report = verify_chain(Some(&runtime), &store_key, Some(&head), true).unwrap();
    assert_eq!(report.first_bad_line, Some(1));
    let reason = report.reason.unwrap();
    assert!(reason.contains("per-install key"), "{reason}");
    assert!(reason.contains(SIGNING_KEY_SECRET), "{reason}");
    // Without the store, the local key is all verify has, and it passes.
    assert!(verify_log(Some(&runtime), &[local(&runtime)], Some(&head))
        .unwrap()
        .ok());
}

#[test]
fn a_line_signed_with_a_key_the_chain_was_handed_away_from_fails() {
    let (_dir, runtime) = runtime();
    local_then_signing(&runtime, "store-key");
    // Someone who kept the old local key appends with it after the hand-over.
    let mut log = AuditLog::new(&runtime, local(&runtime));
    let head = log.append(&event(9), None).unwrap();
    let report = verify_chain(Some(&runtime), &[signing("store-key")], Some(&head), true).unwrap();
    assert_eq!(report.first_bad_line, Some(5), "{report:?}");
    assert!(
        report.reason.as_deref().unwrap().contains("handed"),
        "{report:?}"
    );
}

#[test]
fn an_empty_log_is_empty_not_broken() {
    let (_dir, runtime) = runtime();
    write_log(&runtime, "");
    let report = verify_log(Some(&runtime), &[local(&runtime)], None).unwrap();
    assert!(report.exists);
    assert_eq!((report.lines, report.first_bad_line), (0, None));
    assert!(report.ok(), "{report:?}");
    let had = AuditHead {
        lines: 2,
        mac: "00".into(),
    };
    let report = verify_log(Some(&runtime), &[local(&runtime)], Some(&had)).unwrap();
    assert_eq!(report.first_bad_line, None);
    assert_eq!(
        report.head,
        HeadStatus::Truncated {
            lines: 0,
            expected: 2
        }
    );
}

/// The in-memory twin anchors the head like Key Vault: written after each run, a lag
/// accepted, a truncation or deletion caught, and never rewound by a writer.
#[tokio::test]
async fn the_anchor_follows_the_log_and_is_never_rewound() {
    use crate::store::memory::MemoryStore;
    let store = MemoryStore::new();
    let (_dir, runtime) = runtime();
    let name = "compose-secrets-audit-head-test";
    let head = three_lines(&runtime);
    assert_eq!(
        anchor::update(&store, name, &runtime, Some(&head)).await,
        None
    );
    let anchored = anchor::read(&store, name).await.unwrap().unwrap();
    assert_eq!(anchored, head);
    assert_eq!(
        compare_with_anchor(Some(&runtime), &anchored).unwrap(),
        AnchorStatus::Matches
    );

    // The tag write fails: the run goes on with a warning, and the anchor lags by its lines.
    let mut log = AuditLog::new(&runtime, local(&runtime));
    let longer = log.append(&event(7), Some(&head)).unwrap();
    store.fail_sets(true);
    let warning = anchor::update(&store, name, &runtime, Some(&longer)).await;
    assert!(warning.unwrap().contains("not anchored"));
    store.fail_sets(false);
    assert_eq!(
        compare_with_anchor(Some(&runtime), &anchored).unwrap(),
        AnchorStatus::Lags { by: 1 }
    );
    assert_eq!(
        anchor::update(&store, name, &runtime, Some(&longer)).await,
        None
    );
    let anchored = anchor::read(&store, name).await.unwrap().unwrap();
    assert_eq!(anchored.lines, 4);

    // Dropped lines, a rewritten line, a deleted log: caught, and the anchor stays put.
    let text = log_text(&runtime);
    let lines: Vec<&str> = text.lines().collect();
    write_log(&runtime, &(lines[..3].join("\n") + "\n"));
    assert_eq!(
        compare_with_anchor(Some(&runtime), &anchored).unwrap(),
        AnchorStatus::Behind { lines: 3 }
    );
    let warning = anchor::update(&store, name, &runtime, Some(&head)).await;
    assert!(warning.unwrap().contains("left at 4 line(s)"));
    assert_eq!(anchor::read(&store, name).await.unwrap().unwrap().lines, 4);
    let mut other = lines.clone();
    other[3] = lines[0];
    write_log(&runtime, &(other.join("\n") + "\n"));
    assert_eq!(
        compare_with_anchor(Some(&runtime), &anchored).unwrap(),
        AnchorStatus::Diverged { line: 4 }
    );
    std::fs::remove_file(runtime.file(AUDIT_LOG)).unwrap();
    assert_eq!(
        compare_with_anchor(Some(&runtime), &anchored).unwrap(),
        AnchorStatus::Deleted
    );
    assert_eq!(
        compare_with_anchor(None, &anchored).unwrap(),
        AnchorStatus::Deleted
    );
}

/// A signing key declared after the log began, first used by a run that changed no key (a
/// `rotate` with the store's key): the per-install key still hands the chain over.
#[test]
fn a_signing_key_first_used_without_a_key_change_is_handed_over_from_the_local_key() {
    let (_dir, runtime) = runtime();
    let head = three_lines(&runtime);
    let mut log = AuditLog::new(&runtime, signing("store-key"));
    let head = log.append(&event(4), Some(&head)).unwrap();
    assert_eq!(head.lines, 5, "{}", log_text(&runtime));
    let report = verify_chain(Some(&runtime), &[signing("store-key")], Some(&head), true).unwrap();
    assert!(report.ok(), "{report:?}");
}
