//! scripts/install.sh against a release directory made here: the checksum is verified before
//! anything is extracted, and a mismatch installs nothing. The real release binary is checked
//! by scripts/dist-check.sh; here a stand-in keeps the tarball small (the debug binary is
//! ~160 MB and took a minute to pack).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{repo_root, scrub};

const TRIPLE: &str = "x86_64-unknown-linux-gnu";
const AARCH64: &str = "aarch64-unknown-linux-gnu";
const VERSION: &str = "0.0.0-test";

/// A release directory laid out as scripts/dist.sh writes one: the tarball and SHA256SUMS.
struct Release {
    dir: tempfile::TempDir,
}

impl Release {
    fn new() -> Release {
        Release::with_triples(&[TRIPLE])
    }

    /// One stand-in tarball per triple, each binary printing its triple after the version.
    fn with_triples(triples: &[&str]) -> Release {
        let dir = tempfile::tempdir().unwrap();
        let mut tarballs = Vec::new();
        for triple in triples {
            tarballs.push(stand_in_tarball(dir.path(), triple));
        }
        let sums = run_ok(
            Command::new("sha256sum")
                .args(&tarballs)
                .current_dir(dir.path()),
        );
        fs::write(dir.path().join("SHA256SUMS"), sums.stdout).unwrap();
        Release { dir }
    }

    fn tarball(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("compose-secrets-{VERSION}-{TRIPLE}.tar.gz"))
    }

    /// scripts/install.sh <this directory> with PREFIX=<prefix>.
    fn install(&self, prefix: &Path) -> Output {
        let mut cmd = Command::new(repo_root().join("scripts/install.sh"));
        scrub(&mut cmd);
        cmd.arg(self.dir.path()).env("PREFIX", prefix);
        cmd.output().unwrap()
    }
}

/// `<dir>/compose-secrets-<VERSION>-<triple>.tar.gz` with a shell-script binary; its file name.
fn stand_in_tarball(dir: &Path, triple: &str) -> String {
    let name = format!("compose-secrets-{VERSION}-{triple}");
    let root = dir.join("build").join(&name);
    fs::create_dir_all(root.join("completions")).unwrap();
    let bin = root.join("compose-secrets");
    fs::write(
        &bin,
        format!("#!/bin/sh\necho 'compose-secrets {VERSION} {triple}'\n"),
    )
    .unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("compose-secrets.1"), ".TH COMPOSE-SECRETS 1\n").unwrap();
    for f in [
        "compose-secrets.bash",
        "_compose-secrets",
        "compose-secrets.fish",
    ] {
        fs::write(root.join("completions").join(f), "# completions\n").unwrap();
    }
    let tarball = format!("{name}.tar.gz");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(dir.join("build"))
            .arg("-czf")
            .arg(dir.join(&tarball))
            .arg(&name),
    );
    tarball
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file under `dir` (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flat_map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                files_under(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[test]
fn install_script_installs_a_verified_release_into_prefix() {
    let release = Release::new();
    let prefix = tempfile::tempdir().unwrap();
    let out = release.install(prefix.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "install.sh failed: {stderr}");
    assert!(stderr.contains("checksum OK"), "{stderr}");
    let version = run_ok(Command::new(prefix.path().join("bin/compose-secrets")).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("compose-secrets {VERSION} {TRIPLE}\n")
    );
    for rel in [
        "share/man/man1/compose-secrets.1",
        "share/bash-completion/completions/compose-secrets",
        "share/zsh/site-functions/_compose-secrets",
        "share/fish/vendor_completions.d/compose-secrets.fish",
    ] {
        assert!(prefix.path().join(rel).is_file(), "{rel} not installed");
    }
}

#[test]
fn install_script_refuses_a_tampered_tarball_and_installs_nothing() {
    let release = Release::new();
    // Same name, other bytes: what a corrupted download or a swapped file looks like.
    let mut bytes = fs::read(release.tarball()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(release.tarball(), bytes).unwrap();
    let prefix = tempfile::tempdir().unwrap();
    let out = release.install(prefix.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a tampered tarball was accepted: {stderr}"
    );
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert_eq!(files_under(prefix.path()), Vec::<PathBuf>::new());
}

#[test]
fn install_script_refuses_a_tarball_that_sha256sums_does_not_list() {
    let release = Release::new();
    fs::write(release.dir.path().join("SHA256SUMS"), "").unwrap();
    let prefix = tempfile::tempdir().unwrap();
    let out = release.install(prefix.path());
    assert!(!out.status.success(), "an unlisted tarball was accepted");
    assert_eq!(files_under(prefix.path()), Vec::<PathBuf>::new());
}

#[test]
fn install_script_picks_this_machines_tarball_from_a_two_arch_release() {
    let release = Release::with_triples(&[AARCH64, TRIPLE]);
    let prefix = tempfile::tempdir().unwrap();
    let out = release.install(prefix.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "install.sh failed: {stderr}");
    let host = match std::env::consts::ARCH {
        "x86_64" => TRIPLE,
        "aarch64" => AARCH64,
        other => panic!("releases have no {other} tarball"),
    };
    let version = run_ok(Command::new(prefix.path().join("bin/compose-secrets")).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("compose-secrets {VERSION} {host}\n")
    );
}
