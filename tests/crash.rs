//! Crash consistency: SIGKILL `load`, `ensure --force` and `rotate --no-restart` at random
//! points, in demo mode and against the Key Vault emulator, and check after every kill that
//! each secret file holds a complete old or new value with its mode and owner, that nothing
//! secret-looking is left behind, and that the next run converges.
//!
//! After every kill of a rotation, one plain `load` closes any intent the kill left open and
//! `verify` passes.
//!
//! `CRASH_ITERATIONS` kills per test (default 30; `make stress` runs 500), `CRASH_SEED` replays
//! a run (the seed is printed). Each test prints one `crash-summary` line for RELIABILITY.md.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{is_root, Project};
use crate::support::emulator::Emulator;
use crate::support::process::run_bounded;

const TEMP_PREFIX: &str = ".compose-secrets.tmp.";
/// Secrets in the crash project: enough that a kill lands between two files.
const SECRETS: usize = 8;
/// Owner declared for the files when running as root (root can chown; others cannot).
const OWNER: (u32, u32) = (1000, 1000);
/// No Docker: `rotate --no-restart` never needs one.
const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";

fn iterations() -> usize {
    std::env::var("CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

/// xorshift64*: reproducible from `CRASH_SEED`, no dev-dependency needed.
struct Rng(u64);

impl Rng {
    fn from_env(test: &str) -> Rng {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("{test}: CRASH_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A value of random length (16 B … 20 KB), so some writes take long enough to be cut.
    fn value(&mut self, tag: usize) -> String {
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let len = if self.below(4) == 0 {
            16 + self.below(64)
        } else {
            1024 + self.below(19 * 1024)
        } as usize;
        let mut v = format!("v{tag}x");
        while v.len() < len {
            v.push(ALNUM[self.below(ALNUM.len() as u64) as usize] as char);
        }
        v
    }
}

fn name(i: usize) -> String {
    format!("crash-secret-{i}")
}

fn compose_yaml() -> String {
    let names: Vec<String> = (0..SECRETS).map(name).collect();
    let mut doc = format!(
        "services:\n  app:\n    image: x\n    secrets: [{}]\nsecrets:\n",
        names.join(", ")
    );
    for i in 0..SECRETS {
        let n = name(i);
        doc.push_str(&format!("  {n}:\n    file: ./.runtime/secrets/{n}\n"));
        let mode = if i.is_multiple_of(3) { "0440" } else { "0400" };
        if is_root() {
            doc.push_str(&format!(
                "    x-compose-secrets: {{mode: \"{mode}\", owner: \"{}:{}\"}}\n",
                OWNER.0, OWNER.1
            ));
        } else {
            doc.push_str(&format!("    x-compose-secrets: {{mode: \"{mode}\"}}\n"));
        }
    }
    doc
}

fn declared_mode(i: usize) -> u32 {
    if i.is_multiple_of(3) {
        0o440
    } else {
        0o400
    }
}

fn env_key(i: usize) -> String {
    name(i).to_uppercase().replace('-', "_")
}

/// What the kill counts showed, for the summary line.
#[derive(Default, Debug)]
struct Stats {
    iterations: usize,
    killed_mid_run: usize,
    finished_before_kill: usize,
    files_old_after_kill: usize,
    files_new_after_kill: usize,
    temps_left_in_secrets_dir: usize,
    torn_audit_lines: usize,
    stale_value_free_temps: usize,
    /// Rotations left with an `intent` and no outcome by a kill, before the next `load`.
    intents_open_after_kill: usize,
    /// The same after that `load` (must stay 0).
    intents_open_after_load: usize,
}

impl Stats {
    fn print(&self, test: &str) {
        eprintln!(
            "crash-summary test={test} iterations={} killed_mid_run={} finished_before_kill={} \
             files_old={} files_new={} temps_left={} torn_audit_lines={} \
             stale_value_free_temps={} intents_open_after_kill={} intents_open_after_load={} \
             violations=0",
            self.iterations,
            self.killed_mid_run,
            self.finished_before_kill,
            self.files_old_after_kill,
            self.files_new_after_kill,
            self.temps_left_in_secrets_dir,
            self.torn_audit_lines,
            self.stale_value_free_temps,
            self.intents_open_after_kill,
            self.intents_open_after_load
        );
    }
}

/// Start `cmd`, SIGKILL it after `delay` (`Child::kill` is SIGKILL on Unix). True if it was
/// still running, i.e. the kill really interrupted it.
fn kill_after(mut cmd: Command, delay: Duration) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn compose-secrets");
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

/// How long one uninterrupted run takes here (median of five): kills are spread over
/// 0 … 1.5× this. Timed with a blocking wait, not a polling loop, so short runs are not rounded up.
fn measure(mut make: impl FnMut() -> Command) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let mut cmd = make();
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let started = Instant::now();
            let out = cmd.output().expect("spawn compose-secrets");
            let elapsed = started.elapsed();
            assert!(
                out.status.success(),
                "the uninterrupted run works: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            elapsed
        })
        .collect();
    times.sort();
    eprintln!("typical run: {:?}", times[2]);
    times[2]
}

fn read_files(p: &Project) -> BTreeMap<usize, Option<Vec<u8>>> {
    (0..SECRETS)
        .map(|i| {
            let path = p.path(&format!(".runtime/secrets/{}", name(i)));
            (i, std::fs::read(path).ok())
        })
        .collect()
}

/// The invariants that must hold at any instant, whatever was killed where.
///
/// `allowed(i)` lists the complete values secret `i`'s file may hold now.
fn check_after_kill(
    p: &Project,
    before: &BTreeMap<usize, Option<Vec<u8>>>,
    allowed: &dyn Fn(usize) -> Vec<Vec<u8>>,
    stats: &mut Stats,
    context: &str,
) {
    let dir = p.path(".runtime/secrets");
    if dir.exists() {
        assert_eq!(
            p.mode(".runtime/secrets"),
            0o700,
            "{context}: secrets dir mode"
        );
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let file_name = entry.file_name().into_string().unwrap();
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            if file_name.starts_with(TEMP_PREFIX) {
                // A temp file may survive a kill, but never readable by group or others,
                // and never under a name Compose would mount.
                stats.temps_left_in_secrets_dir += 1;
                assert_eq!(
                    meta.permissions().mode() & 0o037,
                    0,
                    "{context}: temp file {file_name} has mode {:o}",
                    meta.permissions().mode()
                );
                continue;
            }
            assert!(
                (0..SECRETS).any(|i| name(i) == file_name),
                "{context}: unexpected file {file_name} in the secrets dir"
            );
        }
    }
    let now = read_files(p);
    for i in 0..SECRETS {
        let rel = format!(".runtime/secrets/{}", name(i));
        match (&before[&i], &now[&i]) {
            (Some(_), None) => panic!("{context}: {rel} disappeared"),
            (_, None) => continue,
            (_, Some(bytes)) => {
                assert!(!bytes.is_empty(), "{context}: {rel} is empty");
                let ok = allowed(i);
                assert!(
                    ok.contains(bytes),
                    "{context}: {rel} holds {} bytes that are neither the old nor the new value \
                     (partial or foreign)",
                    bytes.len()
                );
                if before[&i].as_ref() == Some(bytes) {
                    stats.files_old_after_kill += 1;
                } else {
                    stats.files_new_after_kill += 1;
                }
                assert_eq!(p.mode(&rel), declared_mode(i), "{context}: {rel} mode");
                if is_root() {
                    assert_eq!(p.owner(&rel), OWNER, "{context}: {rel} owner");
                }
            }
        }
    }
    if p.exists(".runtime/state.json") {
        let bytes = p.read(".runtime/state.json");
        assert!(
            serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
            "{context}: state.json is torn"
        );
    }
    if p.exists(".runtime/audit.log") {
        let text = p.read_string(".runtime/audit.log");
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let is_last = n + 1 == lines.len();
            if serde_json::from_str::<serde_json::Value>(line).is_err() {
                // Only the last line may be torn by a kill mid-append (verify flags it);
                // the next append starts on a fresh line.
                assert!(
                    is_last && !text.ends_with('\n'),
                    "{context}: audit.log line {} is not JSON",
                    n + 1
                );
                stats.torn_audit_lines += 1;
            }
        }
    }
}

/// After the recovery run: no temp file is left in the secrets dir, and no temp file anywhere
/// in the project holds a secret value (a stray copy of `.env` or a secret could be committed
/// or land in a Docker build context). Value-free leftovers (a state.json temp) are counted.
fn check_temps_after_recovery(root: &Path, values: &[String], stats: &mut Stats, context: &str) {
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let file_name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_dir() {
            check_temps_after_recovery(&path, values, stats, context);
            continue;
        }
        if !file_name.starts_with(TEMP_PREFIX) {
            continue;
        }
        assert!(
            !path.parent().unwrap().ends_with(".runtime/secrets"),
            "{context}: {} survived the next load in the secrets dir",
            path.display()
        );
        let bytes = std::fs::read(&path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let holds_value = values.iter().any(|v| text.contains(v.as_str()));
        assert!(
            !holds_value,
            "{context}: {} (mode {:o}) survived the next run and holds a secret value",
            path.display(),
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777
        );
        stats.stale_value_free_temps += 1;
    }
}

fn demo_project(rng: &mut Rng) -> (Project, Vec<String>) {
    let p = Project::empty();
    p.write("compose.yaml", compose_yaml());
    let values: Vec<String> = (0..SECRETS).map(|i| rng.value(i)).collect();
    write_env(&p, &values);
    (p, values)
}

fn write_env(p: &Project, values: &[String]) {
    let mut env = String::from("# crash test\nDEMO_MODE=true\n");
    for (i, v) in values.iter().enumerate() {
        env.push_str(&format!("{}={v}\n", env_key(i)));
    }
    p.write(".env", env);
    // As `ensure` leaves it: `verify` fails a readable `.env`.
    std::fs::set_permissions(p.path(".env"), std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn env_values(p: &Project, context: &str) -> Vec<String> {
    let env =
        compose_secrets::testing::dotenv::DotEnv::parse_bytes(&p.path(".env"), &p.read(".env"))
            .unwrap_or_else(|e| panic!("{context}: .env is unreadable after a kill: {e}"));
    (0..SECRETS)
        .map(|i| {
            env.get(&env_key(i))
                .unwrap_or_else(|| panic!("{context}: {} lost from .env", env_key(i)))
                .expose()
                .to_string()
        })
        .collect()
}

/// Rotations whose last audit line is their `intent` (as `verify` counts them).
fn open_intents(p: &Project) -> usize {
    if !p.exists(".runtime/audit.log") {
        return 0;
    }
    let mut last: BTreeMap<String, bool> = BTreeMap::new();
    for line in p.read_string(".runtime/audit.log").lines() {
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some("rotate" | "sync"), Some(secret)) =
            (doc["action"].as_str(), doc["secret"].as_str())
        {
            last.insert(secret.to_string(), doc["outcome"] == "intent");
        }
    }
    last.values().filter(|open| **open).count()
}

/// After a killed rotation: one plain `load` closes what the kill left open, and `verify`
/// passes (issue 19 item 9).
fn recover_and_verify(p: &Project, context: &str, env: &[(String, String)], stats: &mut Stats) {
    stats.intents_open_after_kill += open_intents(p);
    recover_with_load(p, context, env);
    let open = open_intents(p);
    stats.intents_open_after_load += open;
    assert_eq!(open, 0, "{context}: the load closed every open intent");
    let mut cmd = p.cmd(&["verify", "--no-docker"]).cmd;
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let out = run_bounded(cmd);
    assert_eq!(
        out.code, 0,
        "{context}: verify passes after the load: {}",
        out.stdout
    );
}

fn recover_with_load(p: &Project, context: &str, extra_env: &[(String, String)]) {
    let mut cmd = p.cmd(&["load"]).cmd;
    cmd.envs(extra_env.iter().map(|(k, v)| (k, v)));
    let out = run_bounded(cmd);
    assert_eq!(
        out.code, 0,
        "{context}: the next load converges: {}",
        out.stderr
    );
}

#[test]
fn killing_demo_load_never_leaves_a_partial_file_and_the_next_load_converges() {
    let test = "demo-load";
    let mut rng = Rng::from_env(test);
    let (p, mut values) = demo_project(&mut rng);
    let typical = measure(|| p.cmd(&["load", "--no-cache"]).cmd);
    let mut stats = Stats::default();
    for it in 0..iterations() {
        let context = format!("{test} iteration {it}");
        // Change a random subset of the source, then kill the load that would apply it.
        let before = read_files(&p);
        let old = values.clone();
        for (i, v) in values.iter_mut().enumerate() {
            if rng.below(2) == 0 {
                *v = rng.value(i);
            }
        }
        write_env(&p, &values);
        let delay = Duration::from_micros(rng.below(typical.as_micros() as u64 * 3 / 2 + 1));
        if kill_after(p.cmd(&["load"]).cmd, delay) {
            stats.killed_mid_run += 1;
        } else {
            stats.finished_before_kill += 1;
        }
        let allowed = |i: usize| vec![old[i].clone().into_bytes(), values[i].clone().into_bytes()];
        check_after_kill(&p, &before, &allowed, &mut stats, &context);
        recover_with_load(&p, &context, &[]);
        let after = read_files(&p);
        for i in 0..SECRETS {
            assert_eq!(
                after[&i].as_deref(),
                Some(values[i].as_bytes()),
                "{context}: {} converged to the source",
                name(i)
            );
        }
        let known: Vec<String> = old.iter().chain(&values).cloned().collect();
        check_temps_after_recovery(p.dir.path(), &known, &mut stats, &context);
        stats.iterations += 1;
    }
    stats.print(test);
}

#[test]
fn killing_demo_rotate_keeps_env_and_files_complete_and_the_next_load_converges() {
    let test = "demo-rotate";
    let mut rng = Rng::from_env(test);
    let (p, _) = demo_project(&mut rng);
    recover_with_load(&p, "initial load", &[]);
    let rotate = |i: usize| {
        let mut cmd = p.cmd(&["rotate", &name(i), "--no-restart"]).cmd;
        cmd.env("DOCKER_HOST", NO_DOCKER);
        cmd
    };
    let typical = measure(|| rotate(0));
    let mut stats = Stats::default();
    for it in 0..iterations() {
        let context = format!("{test} iteration {it}");
        let before = read_files(&p);
        let old_env = env_values(&p, &context);
        let target = rng.below(SECRETS as u64) as usize;
        let delay = Duration::from_micros(rng.below(typical.as_micros() as u64 * 3 / 2 + 1));
        if kill_after(rotate(target), delay) {
            stats.killed_mid_run += 1;
        } else {
            stats.finished_before_kill += 1;
        }
        let new_env = env_values(&p, &context);
        for i in 0..SECRETS {
            if i != target {
                assert_eq!(
                    old_env[i], new_env[i],
                    "{context}: rotate changed another secret"
                );
            }
        }
        // The file may hold the old value or the new one; the new one is in .env once the
        // source write landed.
        let allowed = |i: usize| {
            vec![
                old_env[i].clone().into_bytes(),
                new_env[i].clone().into_bytes(),
            ]
        };
        check_after_kill(&p, &before, &allowed, &mut stats, &context);
        recover_and_verify(&p, &context, &[], &mut stats);
        let after = read_files(&p);
        for (i, value) in new_env.iter().enumerate() {
            assert_eq!(
                after[&i].as_deref(),
                Some(value.as_bytes()),
                "{context}: {} agrees with .env after the next load",
                name(i)
            );
        }
        let known: Vec<String> = old_env.iter().chain(&new_env).cloned().collect();
        check_temps_after_recovery(p.dir.path(), &known, &mut stats, &context);
        stats.iterations += 1;
    }
    stats.print(test);
}

#[test]
fn killing_ensure_force_keeps_env_whole_and_leaves_no_copy_of_it() {
    let test = "demo-ensure";
    let mut rng = Rng::from_env(test);
    let (p, _) = demo_project(&mut rng);
    let typical = measure(|| p.cmd(&["ensure", "--force", &name(0)]).cmd);
    let mut stats = Stats::default();
    for it in 0..iterations() {
        let context = format!("{test} iteration {it}");
        let old_env = env_values(&p, &context);
        let target = rng.below(SECRETS as u64) as usize;
        let delay = Duration::from_micros(rng.below(typical.as_micros() as u64 * 3 / 2 + 1));
        if kill_after(p.cmd(&["ensure", "--force", &name(target)]).cmd, delay) {
            stats.killed_mid_run += 1;
        } else {
            stats.finished_before_kill += 1;
        }
        let new_env = env_values(&p, &context);
        for i in 0..SECRETS {
            if i != target {
                assert_eq!(old_env[i], new_env[i], "{context}: another value changed");
            }
        }
        assert_eq!(p.mode(".env"), 0o600, "{context}: .env mode");
        // The next run of the same command cleans up after the killed one.
        let out = run_bounded(p.cmd(&["ensure"]).cmd);
        assert_eq!(out.code, 0, "{context}: {}", out.stderr);
        let known: Vec<String> = old_env.iter().chain(&new_env).cloned().collect();
        check_temps_after_recovery(p.dir.path(), &known, &mut stats, &context);
        stats.iterations += 1;
    }
    stats.print(test);
}

// ---------------------------------------------------------------------------------------------
// Against the Key Vault emulator.
// ---------------------------------------------------------------------------------------------

/// The environment that points the binary at an emulator with a managed identity.
fn vault_env(emulator: &Emulator) -> Vec<(String, String)> {
    let mut env = emulator.client_env();
    env.push(("DOCKER_HOST".into(), NO_DOCKER.into()));
    env
}

fn seeded_emulator() -> Emulator {
    let mut args: Vec<String> = Vec::new();
    for i in 0..SECRETS {
        args.push("--seed".into());
        args.push(name(i));
    }
    args.extend(["--latency-ms".to_string(), "5".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Emulator::start(&args)
}

#[test]
fn killing_key_vault_load_and_rotate_never_leaves_a_partial_file_and_the_next_load_converges() {
    let test = "keyvault";
    let mut rng = Rng::from_env(test);
    let emulator = seeded_emulator();
    let env = vault_env(&emulator);
    let with_env = |mut cmd: Command| {
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd
    };
    // The crash target, and a second operator's project that rotates the same vault.
    let p = Project::empty();
    p.write("compose.yaml", compose_yaml());
    let operator = Project::empty();
    operator.write("compose.yaml", compose_yaml());
    recover_with_load(&p, "initial load", &env);
    recover_with_load(&operator, "operator load", &env);
    let typical = measure(|| with_env(p.cmd(&["load", "--no-cache"]).cmd));
    let mut stats = Stats::default();
    for it in 0..iterations() {
        let context = format!("{test} iteration {it}");
        let before = read_files(&p);
        let target = rng.below(SECRETS as u64) as usize;
        let kill_rotate = rng.below(3) == 0;
        let victim = if kill_rotate {
            // Kill our own rotation: the vault may have the new version, the file the old.
            p.cmd(&["rotate", &name(target), "--no-restart"]).cmd
        } else {
            // Someone else rotates; kill the load that would bring the new value here.
            let out = run_bounded(with_env(
                operator.cmd(&["rotate", &name(target), "--no-restart"]).cmd,
            ));
            assert_eq!(out.code, 0, "{context}: operator rotate: {}", out.stderr);
            p.cmd(&["load"]).cmd
        };
        let delay = Duration::from_micros(rng.below(typical.as_micros() as u64 * 3 / 2 + 1));
        if kill_after(with_env(victim), delay) {
            stats.killed_mid_run += 1;
        } else {
            stats.finished_before_kill += 1;
        }
        // Nothing changes the vault between the kill and the recovery load, so what the
        // recovery writes is the vault's current value: the only allowed "new" one.
        let killed_state = copy_of_runtime(&p);
        recover_and_verify(&p, &context, &env, &mut stats);
        let converged = read_files(&p);
        let allowed = |i: usize| {
            let mut ok = vec![converged[&i].clone().unwrap()];
            if let Some(old) = &before[&i] {
                ok.push(old.clone());
            }
            ok
        };
        check_after_kill(&killed_state, &before, &allowed, &mut stats, &context);
        let known: Vec<String> = converged
            .values()
            .chain(before.values())
            .flatten()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        check_temps_after_recovery(p.dir.path(), &known, &mut stats, &context);
        stats.iterations += 1;
    }
    stats.print(test);
}

/// A copy of the project's `.runtime` (bytes, modes, owners) as the kill left it, so it can
/// be checked against values only the recovery run reveals.
fn copy_of_runtime(p: &Project) -> Project {
    let copy = Project::empty();
    copy_tree_with_modes(&p.path(".runtime"), &copy.path(".runtime"));
    copy
}

fn copy_tree_with_modes(from: &Path, to: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(from) else {
        return;
    };
    if meta.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree_with_modes(&entry.path(), &to.join(entry.file_name()));
        }
    } else if meta.is_file() {
        std::fs::write(to, std::fs::read(from).unwrap()).unwrap();
    } else {
        return;
    }
    std::fs::set_permissions(to, meta.permissions()).unwrap();
    if is_root() {
        std::os::unix::fs::chown(to, Some(meta.uid()), Some(meta.gid())).unwrap();
    }
}

fn quiet(mut cmd: Command) -> Command {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// On the real engine: in a `docker` module, so nextest runs it in the Docker group.
mod docker {
    use super::*;

    /// SIGKILL during a start-first replacement (on the real engine): while the new container
    /// runs beside the old one, then at spread-out points of whole rotations. Every kill leaves
    /// at most one extra container of the service; `verify` names it; the next `load` removes it,
    /// and the service behind the proxy answers.
    #[test]
    fn a_kill_during_a_start_first_replacement_leaves_at_most_one_extra_container() {
        use crate::start_first_docker::ProxiedStack;
        let test = "crash::docker::a_kill_during_a_start_first_replacement_leaves_at_most_one_extra_container";
        if !crate::support::docker::ready(test) {
            return;
        }
        let p = Project::empty();
        // `monitor` holds the replacement with both containers running: the kill lands there.
        let monitored =
            "    deploy:\n      update_config:\n        order: start-first\n        monitor: 60s\n";
        let stack = ProxiedStack::write(&p, "crash", monitored);
        stack.start(&[]);
        let original = stack.app_containers();
        let mut child = quiet(stack.cmd(&["rotate", "s1"]).cmd)
            .spawn()
            .expect("spawn rotate");
        let deadline = Instant::now() + Duration::from_secs(120);
        while stack.app_containers().len() < 2 {
            assert!(Instant::now() < deadline, "the replacement never started");
            assert!(child.try_wait().unwrap().is_none(), "rotate ended early");
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let left = stack.app_containers();
        assert_eq!(left.len(), 2, "one extra container: {left:?}");
        let replica = left
            .iter()
            .find(|c| !original.contains(c))
            .unwrap()
            .1
            .clone();
        let verify = stack.cmd(&["verify"]).run();
        assert_ne!(verify.code, 0, "{}", verify.stdout);
        let said = format!("{}{}", verify.stdout, verify.stderr);
        assert!(
            said.contains(&replica) && said.contains("start-first replacement"),
            "verify names {replica}: {said}"
        );
        let load = stack.cmd(&["load"]).run().success();
        assert!(load.stdout.contains(&replica), "{}", load.stdout);
        assert_eq!(stack.app_containers(), original, "the old container kept");

        // Kills spread over whole rotations (no monitor): the same bound, the same clean-up.
        let p = Project::empty();
        let stack = ProxiedStack::write(
            &p,
            "crashes",
            "    deploy:\n      update_config:\n        order: start-first\n",
        );
        stack.start(&[]);
        for i in 0..6u64 {
            kill_after(
                stack.cmd(&["rotate", "s1"]).cmd,
                Duration::from_millis(250 + 400 * i),
            );
            let left = stack.app_containers();
            assert!(left.len() <= 2, "kill {i}: {left:?}");
            stack.cmd(&["load"]).run().success();
            let left = stack.app_containers();
            assert_eq!(left.len(), 1, "kill {i}: settled by load: {left:?}");
        }
        stack.cmd(&["rotate", "s1"]).run().success();
        assert_eq!(stack.app_containers().len(), 1);
    }
}
