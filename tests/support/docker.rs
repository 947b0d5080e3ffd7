//! The Docker side of the tests: whether the engine is there (or the SKIPPED line), the demo
//! and product images built once, Docker Compose commands free of the developer's `COMPOSE_*`,
//! and the demo app's fingerprint.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use compose_secrets::testing::deploy::{ContainerEngine as _, DockerEngine};
use sha2::Digest as _;

use crate::harness::repo_root;

/// The demo image every Docker test runs (built by `scripts/build-demo-image.sh`).
pub const DEMO_IMAGE: &str = "compose-secrets-demo:latest";
const SKIP_VARIABLE: &str = "COMPOSE_SECRETS_SKIP_DOCKER";

pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
}

/// Whether a Docker test should run: `false` (and a line on stderr) when
/// `COMPOSE_SECRETS_SKIP_DOCKER=1`; panics when the engine is unreachable, because a
/// silently skipped Docker suite would look green.
pub fn docker_available_or_skip(test: &str) -> bool {
    if std::env::var(SKIP_VARIABLE).as_deref() == Ok("1") {
        let _ = writeln!(std::io::stderr(), "SKIPPED ({SKIP_VARIABLE}=1): {test}");
        return false;
    }
    if let Err(reason) = engine_reachable() {
        panic!(
            "Docker engine not reachable (DOCKER_HOST={}): the Docker tests need it. Start Docker, \
             or set {SKIP_VARIABLE}=1 to skip them. ({reason})",
            docker_host()
        );
    }
    true
}

/// Ping once per test process. On its own thread and runtime, so it works from sync and
/// async tests alike.
fn engine_reachable() -> &'static Result<(), String> {
    static REACHABLE: OnceLock<Result<(), String>> = OnceLock::new();
    REACHABLE.get_or_init(|| {
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let engine = DockerEngine::connect().map_err(|e| e.to_string())?;
                engine.ping().await.map_err(|e| e.to_string())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the ping thread panicked".into()))
    })
}

/// Make sure the demo image exists, building it once with `scripts/build-demo-image.sh`
/// if not.
pub fn ensure_demo_image() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    ensure_image(&BUILT, DEMO_IMAGE, "build-demo-image.sh", "DEMO_IMAGE");
}

/// The compose-secrets image `scripts/build-image.sh` builds.
pub const PRODUCT_IMAGE: &str = "compose-secrets:latest";

/// Build the compose-secrets image once if it is missing (a release build: minutes).
pub fn ensure_product_image() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    ensure_image(
        &BUILT,
        PRODUCT_IMAGE,
        "build-image.sh",
        "COMPOSE_SECRETS_IMAGE",
    );
}

/// `image`, built by `scripts/<script>` (with `unset` removed from its environment, so the
/// default tag is built) when missing. A `OnceLock` covers the threads of one test process
/// and a file lock the processes (nextest runs each test in its own).
fn ensure_image(
    built: &'static OnceLock<Result<(), String>>,
    image: &str,
    script: &str,
    unset: &str,
) {
    let result = built.get_or_init(|| {
        if image_exists(image) {
            return Ok(());
        }
        let _lock = BuildLock::acquire(&format!("{script}.lock"))?;
        // Another process may have built it while we waited for the lock.
        if image_exists(image) {
            return Ok(());
        }
        build_image(script, unset)
    });
    if let Err(e) = result {
        panic!("the image {image} is missing and could not be built: {e}");
    }
}

fn image_exists(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn build_image(script: &str, unset: &str) -> Result<(), String> {
    let script = repo_root().join("scripts").join(script);
    let output = Command::new(&script)
        .env_remove(unset)
        .current_dir(repo_root())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({}):\n{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// An exclusive `flock` on a file in the target directory, released on drop.
struct BuildLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

impl BuildLock {
    fn acquire(name: &str) -> Result<Self, String> {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map(BuildLock)
            .map_err(|(_, e)| format!("cannot lock {}: {e}", path.display()))
    }
}

/// Docker Compose v2, the engine users run: every Docker test drives its stacks with it
/// (see `support::compose` for where it is found). Missing, it fails naming `make bootstrap`.
pub fn compose_command() -> Command {
    static V2: OnceLock<crate::support::compose::ComposeV2> = OnceLock::new();
    let v2 = V2.get_or_init(|| match crate::support::compose::find_compose_v2() {
        Ok(Some(v2)) => v2,
        Ok(None) => panic!(
            "the Docker tests run Docker Compose v2 and found none: run `make bootstrap` (it installs \
             target/tools/bin/docker-compose) or set COMPOSE_SECRETS_COMPOSE_V2 to a v2 binary"
        ),
        Err(e) => panic!("Docker Compose v2: {e}"),
    });
    let mut command = Command::new(&v2.program);
    command.args(&v2.prefix);
    without_compose_variables(command)
}

/// Docker Compose v1 (`docker-compose` 1.x), kept working: only the v1 smoke test uses it.
/// Every `docker-compose` on `PATH` is asked, since `make bootstrap` puts a v2 one first.
pub fn compose_v1_command() -> Option<Command> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("docker-compose"))
        .filter(|p| p.is_file())
        .find(|p| {
            Command::new(p).arg("version").output().is_ok_and(|out| {
                out.status.success() && String::from_utf8_lossy(&out.stdout).contains("version 1.")
            })
        })
        .map(|p| without_compose_variables(Command::new(p)))
}

/// The project name and file come from the arguments only, never a developer's shell.
fn without_compose_variables(mut command: Command) -> Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("COMPOSE_") {
            command.env_remove(name);
        }
    }
    command
}

/// The fingerprint the demo app and the product report: `sha256:` + 16 hex characters.
pub fn fingerprint(value: &[u8]) -> String {
    format!("sha256:{}", hex::encode(&sha2::Sha256::digest(value)[..8]))
}

/// A test that cannot run here says so on stderr (shown by nextest's Docker group).
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED ({why}): {test}");
}

/// A Docker test's preamble: the engine is there (or the test is skipped, saying so) and the
/// demo image is built.
pub fn ready(test: &str) -> bool {
    if !docker_available_or_skip(test) {
        return false;
    }
    ensure_demo_image();
    true
}
