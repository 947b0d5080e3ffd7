//! Docker Compose v2 for the differential test: where to find it, and the controlled
//! environment that Compose and compose-secrets both run in.
//!
//! Compose v2 is looked up in this order:
//! 1. `COMPOSE_SECRETS_COMPOSE_V2`: the path of a v2 binary (standalone `docker-compose`
//!    or the CLI plugin, which also runs standalone);
//! 2. `<repo>/target/tools/bin/docker-compose`, which `make bootstrap` installs;
//! 3. `docker compose`, if `docker compose version` reports v2 (its plugin binary is run
//!    directly when it can be found, so the controlled `HOME` cannot hide it).
//!
//! A binary named by 1 or found at 2 that is not v2 is an error, never a silent fallback.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The path of a Compose v2 binary to use instead of searching.
pub const COMPOSE_V2_VARIABLE: &str = "COMPOSE_SECRETS_COMPOSE_V2";
/// `1`: a missing Compose v2 skips (with a line on stderr) instead of failing.
pub const SKIP_VARIABLE: &str = "COMPOSE_SECRETS_SKIP_COMPOSE_V2";

/// Where the docker CLI looks for plugins after its config dir, in its order.
const SYSTEM_PLUGIN_DIRS: [&str; 4] = [
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
];

/// How to run Compose v2: `program prefix… <compose args>`.
#[derive(Debug, Clone)]
pub struct ComposeV2 {
    pub program: PathBuf,
    /// `["compose"]` when going through the docker CLI, else empty.
    pub prefix: Vec<String>,
    /// What `version --short` printed, e.g. `2.40.3`.
    pub version: String,
    /// Variables the program needs beyond the controlled environment (only the docker
    /// CLI's config dir, so it still finds its plugin under a temporary `HOME`).
    pub extra_env: Vec<(String, String)>,
}

impl ComposeV2 {
    /// A command running Compose with `args`, in `cwd`, with exactly `env` (plus `extra_env`).
    pub fn command(&self, args: &[String], cwd: &Path, env: &BTreeMap<String, String>) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.prefix).args(args).current_dir(cwd);
        set_env(&mut cmd, env);
        cmd.envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// For messages: the command line that runs Compose.
    pub fn describe(&self) -> String {
        let mut words = vec![self.program.display().to_string()];
        words.extend(self.prefix.iter().cloned());
        format!("{} (Compose {})", words.join(" "), self.version)
    }
}

/// Compose v2, or `None` (after writing a `SKIPPED` line) when it is missing and
/// `COMPOSE_SECRETS_SKIP_COMPOSE_V2=1`. Panics when it is missing otherwise, or when the
/// configured binary is not Compose v2: a differential test that silently does nothing
/// would look green.
pub fn compose_v2_or_skip(test: &str) -> Option<ComposeV2> {
    match find_compose_v2() {
        Ok(Some(compose)) => Some(compose),
        Ok(None) if std::env::var(SKIP_VARIABLE).as_deref() == Ok("1") => {
            let _ = std::io::stderr().write_all(format!("SKIPPED ({SKIP_VARIABLE}=1): {test}\n").as_bytes());
            None
        }
        Ok(None) => panic!(
            "{test} needs Docker Compose v2 and found none: run `make bootstrap` (it installs \
             target/tools/bin/docker-compose), or set {COMPOSE_V2_VARIABLE} to a Compose v2 binary, \
             or install the docker CLI with its compose plugin; set {SKIP_VARIABLE}=1 to skip instead"
        ),
        Err(why) => panic!("{test}: {why}"),
    }
}

/// Compose v2 from the places listed in the module docs, `Ok(None)` if there is none.
pub fn find_compose_v2() -> Result<Option<ComposeV2>, String> {
    if let Some(path) = std::env::var_os(COMPOSE_V2_VARIABLE).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return standalone(&path)
            .map(Some)
            .map_err(|why| format!("{COMPOSE_V2_VARIABLE}={}: {why}", path.display()));
    }
    let bootstrapped = crate::harness::repo_root().join("target/tools/bin/docker-compose");
    if bootstrapped.exists() {
        return standalone(&bootstrapped).map(Some).map_err(|why| {
            format!(
                "{}: {why} (run `make bootstrap` again)",
                bootstrapped.display()
            )
        });
    }
    Ok(docker_cli_plugin())
}

/// A binary run on its own must answer `version --short` with a 2.x version.
fn standalone(path: &Path) -> Result<ComposeV2, String> {
    let version = short_version(Command::new(path).args(["version", "--short"]))?;
    Ok(ComposeV2 {
        program: path.to_path_buf(),
        prefix: Vec::new(),
        version,
        extra_env: Vec::new(),
    })
}

/// `docker compose`, if the docker CLI has a v2 compose plugin.
fn docker_cli_plugin() -> Option<ComposeV2> {
    let version =
        short_version(Command::new("docker").args(["compose", "version", "--short"])).ok()?;
    let config_dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
    let mut dirs: Vec<PathBuf> = config_dir.iter().map(|d| d.join("cli-plugins")).collect();
    dirs.extend(SYSTEM_PLUGIN_DIRS.iter().map(PathBuf::from));
    if let Some(plugin) = dirs
        .iter()
        .map(|d| d.join("docker-compose"))
        .find(|p| p.is_file())
        .and_then(|p| standalone(&p).ok())
    {
        return Some(plugin);
    }
    Some(ComposeV2 {
        program: PathBuf::from("docker"),
        prefix: vec!["compose".into()],
        version,
        extra_env: config_dir
            .map(|d| vec![("DOCKER_CONFIG".to_string(), d.display().to_string())])
            .unwrap_or_default(),
    })
}

fn short_version(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(format!(
            "`version --short` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if version.starts_with("2.") || version.starts_with("v2.") {
        Ok(version)
    } else {
        Err(format!(
            "not Compose v2 (`version --short` printed {version:?})"
        ))
    }
}

/// The environment a differential case runs in, for Compose and compose-secrets alike:
/// nothing inherited but `PATH`; `HOME` and `PWD` fixed; IMDS off; then the case's own
/// variables (which may replace `HOME` or `PWD`).
pub fn controlled_env(
    cwd: &Path,
    home: &Path,
    case_env: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_string(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
    );
    env.insert("HOME".to_string(), home.display().to_string());
    env.insert("PWD".to_string(), cwd.display().to_string());
    env.insert("COMPOSE_SECRETS_DISABLE_IMDS".to_string(), "1".to_string());
    env.extend(case_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Replace the whole environment of `cmd` with `env`.
pub fn set_env(cmd: &mut Command, env: &BTreeMap<String, String>) {
    cmd.env_clear().envs(env);
}

/// What a bounded run printed.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run `cmd` with no stdin, for at most `bound`; a hang is an `Err`, not a panic, so the
/// caller can report it with the other failures.
pub fn run_bounded(mut cmd: Command, bound: Duration) -> Result<Ran, String> {
    let started = Instant::now();
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    // Files, not pipes: a child that writes a lot while we poll never blocks on a full pipe.
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let create = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    cmd.stdin(Stdio::null())
        .stdout(create(&out_path)?)
        .stderr(create(&err_path)?);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{:?} {:?} did not finish within {}s",
                cmd.get_program(),
                cmd.get_args().collect::<Vec<_>>(),
                bound.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Ok(Ran {
        code: status.code().unwrap_or(-1),
        stdout: read(&out_path),
        stderr: read(&err_path),
    })
}

/// A `PATH` on which `docker-compose` is Compose v2 (a temp dir holding a link to it, first),
/// so that `verify`'s cross-check runs whatever the machine's own `PATH` holds; with the
/// docker CLI plugin, the `PATH` as it is. `None` (after a SKIPPED line) only under
/// `COMPOSE_SECRETS_SKIP_COMPOSE_V2=1`.
pub fn path_with_compose_v2(test: &str) -> Option<(tempfile::TempDir, String)> {
    let compose = compose_v2_or_skip(test)?;
    let dir = tempfile::tempdir().unwrap();
    let mut path = std::env::var("PATH").unwrap_or_default();
    if compose.prefix.is_empty() {
        std::os::unix::fs::symlink(&compose.program, dir.path().join("docker-compose")).unwrap();
        path = format!("{}:{path}", dir.path().display());
    }
    Some((dir, path))
}
