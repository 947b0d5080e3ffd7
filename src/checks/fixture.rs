//! Shared test fixture for the checks: a project with a Compose file and a loaded secret.

pub(crate) use std::os::unix::fs::PermissionsExt as _;

use super::*;
pub(crate) use super::{Check, Findings, LocalSecret, Status};
pub(crate) use crate::compose::ProjectOptions;
pub(crate) use crate::deploy::{memory::MemoryEngine, ContainerEngine as _};
pub(crate) use crate::files::layout::{Layout, Protected};
pub(crate) use crate::files::secret_dir::{Owner, SecretDir};
pub(crate) use crate::store::memory::MemoryStore;
pub(crate) use crate::store::AccessProbe;
pub(crate) use std::path::{Path, PathBuf};

pub(crate) const PROJECT: &str = "unit";
pub(crate) const VALUE: &str = "correct-horse-battery-staple";
pub(crate) const COMPOSE: &str = "\
services:
  app:
    image: demo
    environment:
      PLAIN: hello
    secrets: [db-password]
  worker:
    image: demo
secrets:
  db-password:
    file: ./.runtime/secrets/db-password
";

/// A project directory with a Compose file and a loaded `db-password` file.
pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) manifest: Project,
    pub(crate) layout: Layout,
    /// The key files are fingerprinted with, as `verify` has it from the runtime directory.
    pub(crate) fingerprints: FingerprintKey,
}

impl Fixture {
    pub(crate) fn new(compose: &str) -> Self {
        Self::with_env(compose, &[])
    }

    /// With these variables in the environment Compose interpolates with.
    pub(crate) fn with_env(compose: &str, variables: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), compose).unwrap();
        let manifest = Project::load(&ProjectOptions {
            cwd: dir.path().to_path_buf(),
            project_name: Some(PROJECT.into()),
            process_env: variables
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            keep_in_use: vec![crate::audit::SIGNING_KEY_SECRET.to_string()],
            ..ProjectOptions::default()
        })
        .unwrap();
        let runtime = dir.path().join(".runtime");
        let layout = Layout::plan(
            &manifest,
            &runtime,
            &runtime.join("secrets"),
            &Protected {
                project: &manifest,
                env_file: &dir.path().join(".env"),
                template: &dir.path().join(".env.demo"),
            },
        )
        .unwrap();
        let fixture = Self {
            dir,
            manifest,
            layout,
            fingerprints: FingerprintKey::random(),
        };
        fixture.write_secret(VALUE);
        fixture
    }

    pub(crate) fn secrets_dir(&self) -> PathBuf {
        self.dir.path().join(".runtime/secrets")
    }

    pub(crate) fn secret_file(&self) -> PathBuf {
        self.secrets_dir().join("db-password")
    }

    /// Write the file as `load` does: atomically, mode 0400.
    pub(crate) fn write_secret(&self, value: impl AsRef<[u8]>) {
        SecretDir::open(&self.secrets_dir(), true)
            .unwrap()
            .write_atomic("db-password", value.as_ref(), 0o400, Owner::default())
            .unwrap();
    }

    pub(crate) fn files(&self) -> (Findings, Vec<LocalSecret<'_>>) {
        let mut f = Findings::relative_to(self.dir.path());
        let state = State::new("");
        let locals = check_files(
            &mut f,
            &self.manifest,
            &self.layout,
            &state,
            &self.fingerprints,
        );
        (f, locals)
    }
}

pub(crate) fn statuses(f: &Findings, category: &str, subject: &str) -> Vec<Status> {
    f.checks
        .iter()
        .filter(|c| c.category == category && c.subject.contains(subject))
        .map(|c| c.status)
        .collect()
}

#[track_caller]
pub(crate) fn assert_only(f: &Findings, category: &str, subject: &str, want: Status, says: &str) {
    let found: Vec<&Check> = f
        .checks
        .iter()
        .filter(|c| c.category == category && c.subject.contains(subject))
        .collect();
    assert!(
        !found.is_empty() && found.iter().all(|c| c.status == want),
        "{category}/{subject}: want only {want:?}\n{:#?}",
        f.checks
    );
    assert!(
        found.iter().any(|c| c.message.contains(says)),
        "{category}/{subject}: no message says {says:?}\n{found:#?}"
    );
    assert_no_value(f);
}

#[track_caller]
pub(crate) fn assert_no_value(f: &Findings) {
    for c in &f.checks {
        assert!(
            !c.message.contains(VALUE) && !c.subject.contains(VALUE),
            "a value leaked into {c:?}"
        );
    }
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
