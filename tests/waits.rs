//! Bounded, cancellable waits and the rotation hook's process tree (issue 19, items 6 and 8).
//!
//! A vault that answers 429 with `Retry-After: 3600` is refused at once instead of waited
//! out; SIGTERM, SIGINT and SIGHUP stop `load` and `sync --watch` at their next wait, and
//! never between a transaction's intent and its outcome; a hook that times out has its whole
//! process group stopped and runs again in its rollback phase; `verify` fails after a failed
//! rollback. Every time bound here is a generous limit that only a hang reaches, never a
//! timing claim.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::harness::Project;
use crate::support::emulator::{seeded_project, Emulator};
use crate::support::process::Background;

/// Longer than any bounded wait of the fixed code; far shorter than the hour it used to wait.
const HANG: Duration = Duration::from_secs(120);
/// How long a signalled run may take to stop by itself: only a hang takes longer.
const STOP_BOUND: Duration = Duration::from_secs(30);
const SECRETS: usize = 3;

/// A compose-secrets in the background, its output in files.
/// A vault whose every data-plane request is answered 429 with `retry_after` seconds.
async fn throttled(retry_after: u64) -> (Project, Emulator) {
    let emulator = Emulator::start(&["--seed-count", &SECRETS.to_string()]);
    let p = seeded_project(SECRETS);
    emulator
        .set_faults(serde_json::json!({"fault_429_every": 1, "retry_after": retry_after}))
        .await;
    (p, emulator)
}

async fn faults_injected(emulator: &Emulator) -> u64 {
    emulator.stats().await["faults_injected"]
        .as_u64()
        .unwrap_or(0)
}

/// Wait until the emulator has throttled at least one request: the run is in its wait.
async fn until_throttled(emulator: &Emulator, run: &mut Background) {
    let deadline = Instant::now() + HANG;
    while faults_injected(emulator).await == 0 {
        assert!(
            run.running(),
            "exited before it was throttled:\n{}",
            run.stderr()
        );
        assert!(Instant::now() < deadline, "never throttled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn load_refuses_a_retry_after_beyond_its_budget_and_names_it() {
    let (p, emulator) = throttled(3600).await;
    let before = p.snapshot();
    let started = Instant::now();
    let mut load = Background::spawn(p.cmd(&["load"]).keyvault(&emulator));
    let code = load.exit_within(HANG, "load under Retry-After: 3600");
    let stderr = load.stderr();
    eprintln!(
        "429 with Retry-After 3600 on every request: load exited {code} after {:?}\n{stderr}",
        started.elapsed()
    );
    assert_eq!(code, 4, "a Key Vault error:\n{stderr}");
    for needed in [
        "HTTP 429",
        "Retry-After 3600s",
        "retry budget",
        "key vault: ",
    ] {
        assert!(stderr.contains(needed), "lacks {needed:?}:\n{stderr}");
    }
    assert!(faults_injected(&emulator).await > 0);
    crate::harness::assert_same_files(&before, &p.snapshot());
}

/// Start `sync --watch` on a loaded project, throttle the vault with `retry_after`, wait until
/// the watcher has been throttled, then send `signal`.
async fn signalled_watch(retry_after: u64, signal: Signal) -> (Background, Emulator) {
    let emulator = Emulator::start(&["--seed-count", &SECRETS.to_string()]);
    let p = seeded_project(SECRETS);
    p.cmd(&["load"]).keyvault(&emulator).run().success();
    let mut watch = Background::spawn(
        p.cmd(&["sync", "--watch", "--interval", "1s"])
            .keyvault(&emulator),
    );
    watch.wait_for("the start line", HANG, |w| {
        w.stderr().contains("watching the store")
    });
    emulator
        .set_faults(serde_json::json!({"fault_429_every": 1, "retry_after": retry_after}))
        .await;
    until_throttled(&emulator, &mut watch).await;
    // A moment for the watcher to be in its wait rather than in the request.
    tokio::time::sleep(Duration::from_millis(300)).await;
    watch.signal(signal);
    eprintln!("{signal:?} sent to sync --watch (Retry-After {retry_after} s)");
    (watch, emulator)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_throttled_for_an_hour_stops_on_sigterm() {
    let (mut watch, _emulator) = signalled_watch(3600, Signal::SIGTERM).await;
    let signalled = Instant::now();
    let code = watch.exit_within(STOP_BOUND, "sync --watch after SIGTERM");
    eprintln!(
        "sync --watch stopped {:?} after SIGTERM",
        signalled.elapsed()
    );
    assert_eq!(code, 0, "{}", watch.stderr());
    assert!(
        watch.stderr().contains("SIGTERM: stopped"),
        "{}",
        watch.stderr()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_throttled_for_an_hour_stops_on_sigint() {
    let (mut watch, _emulator) = signalled_watch(3600, Signal::SIGINT).await;
    let code = watch.exit_within(STOP_BOUND, "sync --watch after SIGINT");
    assert_eq!(code, 0, "{}", watch.stderr());
    assert!(
        watch.stderr().contains("SIGINT: stopped"),
        "{}",
        watch.stderr()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_step_in_a_retry_wait_stops_on_sigterm() {
    // 50 s: within the budget and the cap, so the step itself waits it out between attempts.
    let (mut watch, _emulator) = signalled_watch(50, Signal::SIGTERM).await;
    let code = watch.exit_within(STOP_BOUND, "sync --watch in a 50 s retry wait");
    assert_eq!(code, 0, "{}", watch.stderr());
    assert!(
        watch.stderr().contains("SIGTERM: stopped"),
        "{}",
        watch.stderr()
    );
    assert_eq!(watch.stdout(), "", "nothing was applied");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_in_a_retry_wait_stops_on_sigterm_with_the_interrupted_code() {
    let (p, emulator) = throttled(50).await;
    let before = p.snapshot();
    let mut load = Background::spawn(p.cmd(&["load"]).keyvault(&emulator));
    until_throttled(&emulator, &mut load).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.signal(Signal::SIGTERM);
    let code = load.exit_within(STOP_BOUND, "load in a 50 s retry wait after SIGTERM");
    assert_eq!(code, 10, "exit::INTERRUPTED:\n{}", load.stderr());
    assert!(
        load.stderr().contains("SIGTERM: stopped"),
        "{}",
        load.stderr()
    );
    crate::harness::assert_same_files(&before, &p.snapshot());
}

/// A hook that, in its rotate phase, backgrounds a grandchild that would "apply" the new value
/// (write `grandchild-applied`) after 4 s, then sleeps past any timeout; in its rollback
/// phase it records that it ran (`rollback-ran`) and exits with `rollback_status`.
fn write_hook(p: &Project, rollback_status: u8) {
    p.write(
        "hook.sh",
        format!(
            "#!/bin/sh\ncat > /dev/null\n\
             if [ \"$COMPOSE_SECRETS_HOOK_PHASE\" = rollback ]; then\n\
             \x20 echo ran > rollback-ran\n  exit {rollback_status}\nfi\n\
             ( sleep 4; echo applied > grandchild-applied ) &\n\
             sleep 60\n"
        ),
    );
    std::fs::set_permissions(
        p.path("hook.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
}

fn hooked_project(rollback_status: u8) -> Project {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [token]\nsecrets:\n  token:\n    \
         file: .runtime/secrets/token\n    x-compose-secrets:\n      rotation-hook: [\"./hook.sh\"]\n",
    );
    p.write(".env", "TOKEN=original-token-value-1234\n");
    std::fs::set_permissions(
        p.path(".env"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    write_hook(&p, rollback_status);
    p.cmd(&["load"]).run().success();
    p
}

fn last_audit_line(p: &Project) -> serde_json::Value {
    p.audit_lines().pop().expect("an audit line")
}

/// Run `rotate token` with a 1 s hook timeout; its exit code once it ends by itself.
fn rotate_with_a_hook_that_times_out(p: &Project) -> (i32, String) {
    let mut rotate = Background::spawn(
        p.cmd(&["rotate", "token", "--no-restart"])
            .env("COMPOSE_SECRETS_HOOK_TIMEOUT", "1"),
    );
    let code = rotate.exit_within(HANG, "rotate with a hook that times out");
    // Past the grandchild's 4 s: had it survived, its marker would be there.
    std::thread::sleep(Duration::from_secs(6));
    (code, rotate.stderr())
}

#[test]
fn a_hook_timeout_stops_its_whole_process_group_and_runs_the_rollback_phase() {
    let p = hooked_project(0);
    let (code, stderr) = rotate_with_a_hook_that_times_out(&p);
    assert!(
        !p.exists("grandchild-applied"),
        "the hook's grandchild outlived the timeout and acted:\n{stderr}"
    );
    assert!(
        p.exists("rollback-ran"),
        "the rollback phase ran:\n{stderr}"
    );
    assert_eq!(code, 2, "a failed hook is exit 2:\n{stderr}");
    assert!(stderr.contains("timed out after 1s"), "{stderr}");
    assert!(stderr.contains("rolled back"), "{stderr}");
    assert_eq!(
        p.read_string(".env"),
        "TOKEN=original-token-value-1234\n",
        "nothing was pushed"
    );
    let last = last_audit_line(&p);
    assert_eq!(last["outcome"], "rolled-back", "{last}");
    assert_eq!(last["hook"], "rolled-back", "{last}");
    p.cmd(&["verify"]).run().success();
}

#[test]
fn verify_fails_after_a_failed_hook_rollback_until_a_rotation_supersedes_it() {
    let p = hooked_project(3);
    p.cmd(&["verify"]).run().success();
    let (code, stderr) = rotate_with_a_hook_that_times_out(&p);
    assert_eq!(code, 9, "a failed rollback:\n{stderr}");
    assert!(p.exists("rollback-ran"), "{stderr}");
    let last = last_audit_line(&p);
    assert_eq!(last["outcome"], "rollback-failed", "{last}");
    assert_eq!(last["hook"], "rollback-failed", "{last}");
    let out = p.cmd(&["verify"]).run().code(1);
    assert!(
        out.stdout
            .contains("rotation hook's target may still hold the new value"),
        "{}",
        out.stdout
    );
    // A load does not run the hook, so it does not settle it; a committed rotation does.
    p.cmd(&["load"]).run().success();
    p.cmd(&["verify"]).run().code(1);
    p.write("hook.sh", "#!/bin/sh\ncat > /dev/null\n");
    p.cmd(&["rotate", "token", "--no-restart"]).run().success();
    p.cmd(&["verify"]).run().success();
}

/// On the real engine: the module path puts it in nextest's Docker group.
mod docker {
    use super::{last_audit_line, HANG};
    use crate::harness::Project;
    use crate::support::docker::ready;
    use crate::support::process::Background;
    use crate::support::stack::Stack;
    use nix::sys::signal::Signal;

    #[test]
    fn sighup_during_a_watch_transaction_finishes_it_and_leaves_no_open_intent() {
        if !ready(
            "waits::docker::sighup_during_a_watch_transaction_finishes_it_and_leaves_no_open_intent",
        ) {
            return;
        }
        let p = Project::empty();
        p.write(".env.demo", "S1=\n");
        let stack = Stack::write(&p, "hup");
        stack.cmd(&["ensure"]).run().success();
        stack.cmd(&["load"]).run().success();
        stack.up();
        // A value set elsewhere: the watcher's first step restarts the service onto it.
        let env = p.read_string(".env");
        let changed: String = env
            .lines()
            .map(|l| {
                if l.starts_with("S1=") {
                    "S1=set-by-hand-0123456789abcdef\n".to_string()
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        p.write(".env", changed);
        let mut watch = Background::spawn(stack.cmd(&["sync", "--watch", "--interval", "1s"]));
        watch.wait_for("the sync's intent line", HANG, |_| {
            p.read_string(".runtime/audit.log")
                .lines()
                .any(|l| l.contains("\"sync\"") && l.contains("\"intent\""))
        });
        watch.signal(Signal::SIGHUP);
        let code = watch.exit_within(HANG, "sync --watch after SIGHUP");
        assert_eq!(code, 0, "{}", watch.stderr());
        assert!(watch.stderr().contains("SIGHUP"), "{}", watch.stderr());
        let last = last_audit_line(&p);
        assert_eq!(last["action"], "sync", "{last}");
        assert_ne!(
            last["outcome"], "intent",
            "the transaction was finished: {last}"
        );
        let verify = stack.cmd(&["verify"]).run();
        assert!(
            !verify.stdout.contains("has no outcome"),
            "verify reports an open intent:\n{}",
            verify.stdout
        );
    }
}
