//! Where each secret's file goes, decided and checked before anything is written.
//!
//! A secret file may live anywhere inside the project directory (`db/password.txt`,
//! `./db_password.txt`, `.runtime/secrets/x`) or inside `--secrets-dir`. It may never be one
//! of the project's own files: a Compose file, an env file, the `.env.demo` template, or
//! anything compose-secrets keeps in its runtime directory. Every offending secret is named,
//! and nothing is written while one is wrong.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use super::lexical_normalize;
use crate::compose::{Project, SecretSpec};
use crate::error::{Error, Result};

/// One secret's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub secret: String,
    /// Absolute and normalised.
    pub path: PathBuf,
    /// The directory holding it.
    pub dir: PathBuf,
    pub file_name: String,
}

/// The files of every `file:` secret, and the directories compose-secrets answers for.
#[derive(Debug, Clone)]
pub struct Layout {
    pub project_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub secrets_dir: PathBuf,
    pub placements: Vec<Placement>,
    /// The project's own files (Compose, env, template, configs): never written, never pruned.
    pub protected: BTreeSet<PathBuf>,
}

/// Paths a secret's file may never be.
pub struct Protected<'a> {
    pub project: &'a Project,
    pub env_file: &'a Path,
    pub template: &'a Path,
}

impl Protected<'_> {
    /// Every protected path (normalised), with what it is.
    fn paths(&self) -> std::collections::BTreeMap<PathBuf, String> {
        let mut out = std::collections::BTreeMap::new();
        let mut add = |path: &Path, what: String| {
            out.entry(lexical_normalize(path)).or_insert(what);
        };
        for p in &self.project.files_read {
            add(p, "a Compose file of the project".into());
        }
        for p in self
            .project
            .env_files
            .iter()
            .chain([&self.env_file.to_path_buf()])
        {
            add(p, "an env file of the project".into());
        }
        add(self.template, "the `.env.demo` template".into());
        for p in &self.project.config_files {
            add(p, "the file of a `configs:` entry".into());
        }
        for service in self.project.services.values() {
            for p in &service.env_files {
                add(p, format!("the env_file of service `{}`", service.name));
            }
        }
        out
    }
}

impl Layout {
    /// Place every `file:` secret of `project`, refusing (all at once) those that cannot be.
    pub fn plan(
        project: &Project,
        runtime_dir: &Path,
        secrets_dir: &Path,
        protected: &Protected<'_>,
    ) -> Result<Layout> {
        let project_dir = lexical_normalize(&project.directory);
        let runtime_dir = lexical_normalize(runtime_dir);
        let secrets_dir = lexical_normalize(secrets_dir);
        check_dirs(&runtime_dir, &secrets_dir)?;
        let guarded = protected.paths();
        let mut placements = Vec::new();
        let mut problems = Vec::new();
        for spec in project.secrets_in_use() {
            let Some(raw) = spec.file_path() else {
                continue;
            };
            match place(
                spec,
                raw,
                &project_dir,
                &runtime_dir,
                &secrets_dir,
                &guarded,
            ) {
                Ok(p) => placements.push(p),
                Err(e) => problems.push(e),
            }
        }
        Error::all(problems)?;
        Ok(Layout {
            project_dir,
            runtime_dir,
            secrets_dir,
            placements,
            protected: guarded.into_keys().collect(),
        })
    }

    pub fn of(&self, secret: &str) -> Option<&Placement> {
        self.placements.iter().find(|p| p.secret == secret)
    }

    /// The directory a placement's directory is opened below (see `SecretDir::open_below`):
    /// the project directory, or the secrets directory's parent for one outside it.
    pub fn root_for(&self, dir: &Path) -> PathBuf {
        if dir.starts_with(&self.project_dir) {
            self.project_dir.clone()
        } else {
            self.secrets_dir
                .parent()
                .map_or_else(|| self.secrets_dir.clone(), Path::to_path_buf)
        }
    }

    /// Whether a directory is compose-secrets' own (owner and mode checked as such).
    pub fn is_ours(&self, dir: &Path) -> bool {
        dir.starts_with(&self.runtime_dir) || dir.starts_with(&self.secrets_dir)
    }

    /// Whether `path` is the runtime directory or in it, outside the secrets directory: the
    /// lock, the state, the audit log and its key live there, and are never a secret's file
    /// nor pruned.
    pub fn is_runtime_path(&self, path: &Path) -> bool {
        path.starts_with(&self.runtime_dir) && !path.starts_with(&self.secrets_dir)
    }

    /// Whether `load` may put `dir` back to 0700 when state.json says compose-secrets created
    /// it. State alone never decides: the directory must also hold a declared secret file and
    /// lie strictly inside the runtime directory (so, in the default secrets directory), which
    /// compose-secrets answers for by construction, and be reached below its opening root
    /// through components opened without following a symlink. Anywhere else (the project
    /// directory, a user's `data/`, a `--secrets-dir` of the user's) only state.json would
    /// say compose-secrets made it, so its mode is the user's; `verify` reports it.
    pub fn may_tighten(&self, dir: &Path) -> bool {
        dir.starts_with(&self.runtime_dir)
            && dir != self.runtime_dir
            && !self.project_dir.starts_with(dir)
            && self.root_for(dir) != dir
            && self.placements.iter().any(|p| p.dir == dir)
    }

    /// Each directory holding a secret file, once, in placement order.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for p in &self.placements {
            if !out.contains(&p.dir) {
                out.push(p.dir.clone());
            }
        }
        out
    }

    /// `dir` opened without creating anything (`None`: it does not exist).
    pub fn open_existing(&self, dir: &Path) -> Result<Option<super::secret_dir::SecretDir>> {
        Ok(open_one(self, dir, false)?.map(|(d, _)| d))
    }

    /// The file names declared in `dir`.
    pub fn names_in(&self, dir: &Path) -> Vec<&str> {
        self.placements
            .iter()
            .filter(|p| p.dir == dir)
            .map(|p| p.file_name.as_str())
            .collect()
    }
}

fn place(
    spec: &SecretSpec,
    raw: &Path,
    project_dir: &Path,
    runtime_dir: &Path,
    secrets_dir: &Path,
    guarded: &std::collections::BTreeMap<PathBuf, String>,
) -> Result<Placement> {
    let refuse = |why: String| Error::manifest(&spec.name, why);
    // Compose keeps an absolute path as written; `..` in it could resolve through a symlink
    // to somewhere else than the path compose-secrets would write.
    if raw.components().any(|c| c == Component::ParentDir) {
        return Err(refuse(format!(
            "its file {} contains `..`; write the path without it",
            raw.display()
        )));
    }
    let path = lexical_normalize(raw);
    let (Some(dir), Some(file_name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
    else {
        return Err(refuse(format!(
            "its file {} is not a file path",
            raw.display()
        )));
    };
    let inside_project = path.starts_with(project_dir) && path != project_dir;
    let inside_secrets = path.starts_with(secrets_dir) && path != secrets_dir;
    if !(inside_project || inside_secrets) {
        return Err(refuse(format!(
            "its file {} is outside the project directory {}; compose-secrets writes only inside the project, \
             or inside --secrets-dir: pass --secrets-dir {} (or set COMPOSE_SECRETS_DIR in the environment or the project's .env){}",
            path.display(),
            project_dir.display(),
            dir_of(&path).display(),
            if path.starts_with(std::env::current_dir().unwrap_or_default()) {
                "; if the path comes from ${PWD}, run from the project directory instead"
            } else {
                ""
            }
        )));
    }
    if path == runtime_dir || path == secrets_dir {
        return Err(refuse(format!(
            "its file {} is compose-secrets' own directory, not a file",
            path.display()
        )));
    }
    if path.starts_with(runtime_dir) && !path.starts_with(secrets_dir) {
        return Err(refuse(format!(
            "its file {} is inside the runtime directory {}, where compose-secrets keeps its state, lock and \
             audit log; put it under {}",
            path.display(),
            runtime_dir.display(),
            secrets_dir.display()
        )));
    }
    if let Some(what) = guarded.get(&path) {
        return Err(refuse(format!(
            "its file {} is {what}; compose-secrets would overwrite it",
            path.display()
        )));
    }
    Ok(Placement {
        secret: spec.name.clone(),
        path: path.clone(),
        dir: dir.to_path_buf(),
        file_name: file_name.to_string(),
    })
}

/// The secrets directory may not be the runtime directory, contain it, or lie inside it other
/// than as the default `<runtime>/secrets`: a secret's file written or pruned there could be
/// the lock, the state, the audit log or its key. Checked on the paths as configured (flag,
/// environment or `.env`) and again with the symlinks above the secrets directory resolved
/// (the directory itself and everything below are opened without following one, so a
/// symlink there is refused when it is opened).
fn check_dirs(runtime_dir: &Path, secrets_dir: &Path) -> Result<()> {
    let secrets_resolved = match (secrets_dir.parent(), secrets_dir.file_name()) {
        (Some(parent), Some(name)) => resolved(parent).join(name),
        _ => secrets_dir.to_path_buf(),
    };
    let pairs = [
        (runtime_dir.to_path_buf(), secrets_dir.to_path_buf()),
        (resolved(runtime_dir), secrets_resolved),
    ];
    for (runtime, secrets) in pairs {
        let why = if secrets == runtime {
            "is the runtime directory"
        } else if runtime.starts_with(&secrets) {
            "contains the runtime directory"
        } else if secrets.starts_with(&runtime) && secrets != runtime.join("secrets") {
            "is inside the runtime directory"
        } else {
            continue;
        };
        return Err(Error::UnsafePath {
            path: secrets_dir.to_path_buf(),
            message: format!(
                "the secrets directory {why} {}, where compose-secrets keeps its lock, state and audit log; \
                 set --secrets-dir (or COMPOSE_SECRETS_DIR) to a directory outside it, or leave it unset \
                 for {}",
                runtime_dir.display(),
                runtime_dir.join("secrets").display()
            ),
        });
    }
    Ok(())
}

/// `path` with the symlinks of its longest existing ancestor resolved (the rest, not yet
/// created, cannot be a symlink).
fn resolved(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut head = path;
    loop {
        if let Ok(real) = std::fs::canonicalize(head) {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (head.parent(), head.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                head = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

fn dir_of(path: &Path) -> &Path {
    path.parent().unwrap_or(path)
}

/// The directories of a layout, each opened once (see `SecretDir::open_below`).
pub struct OpenDirs {
    dirs: std::collections::BTreeMap<PathBuf, super::secret_dir::SecretDir>,
    /// Directories this run created (mode 0700), to be recorded as compose-secrets' own.
    pub created: Vec<PathBuf>,
}

impl OpenDirs {
    /// Open every directory that holds a secret file; with `create`, make the missing ones.
    /// The first unsafe directory is an error: nothing has been written yet.
    pub fn open(layout: &Layout, create: bool) -> Result<OpenDirs> {
        let mut out = OpenDirs {
            dirs: std::collections::BTreeMap::new(),
            created: Vec::new(),
        };
        for dir in layout.dirs() {
            if let Some((opened, created)) = open_one(layout, &dir, create)? {
                out.created.extend(created);
                out.dirs.insert(dir, opened);
            }
        }
        Ok(out)
    }

    /// Each directory's outcome on its own, for `verify` (a missing one is `Ok(None)`).
    pub fn open_each(
        layout: &Layout,
    ) -> Vec<(PathBuf, Result<Option<super::secret_dir::SecretDir>>)> {
        layout
            .dirs()
            .into_iter()
            .map(|dir| {
                let opened = open_one(layout, &dir, false).map(|o| o.map(|(d, _)| d));
                (dir, opened)
            })
            .collect()
    }

    pub fn get(&self, dir: &Path) -> Option<&super::secret_dir::SecretDir> {
        self.dirs.get(dir)
    }

    /// What is on disk for a placement (`None`: its directory or file does not exist).
    pub fn read(&self, placement: &Placement) -> Result<Option<super::secret_dir::FileState>> {
        match self.dirs.get(&placement.dir) {
            Some(d) => d.read(&placement.file_name),
            None => Ok(None),
        }
    }
}

fn open_one(
    layout: &Layout,
    dir: &Path,
    create: bool,
) -> Result<Option<(super::secret_dir::SecretDir, Vec<PathBuf>)>> {
    let root = layout.root_for(dir);
    if !create && std::fs::symlink_metadata(&root).is_err() {
        return Ok(None);
    }
    super::secret_dir::SecretDir::open_below(&root, dir, create, layout.is_ours(dir))
}

/// Refuse, before anything is written, an owner the process cannot give: only root (or the
/// owner itself) may give a file away. Names every secret that declares one.
pub fn check_owners<'a>(specs: impl IntoIterator<Item = &'a SecretSpec>) -> Result<()> {
    let euid = nix::unistd::Uid::effective();
    if euid.is_root() {
        return Ok(());
    }
    let egid = nix::unistd::Gid::effective().as_raw();
    let groups = nix::unistd::getgroups().unwrap_or_default();
    let mut problems = Vec::new();
    for spec in specs {
        if spec.file_path().is_none() {
            continue;
        }
        let uid_ok = spec.owner_uid.is_none_or(|u| u == euid.as_raw());
        let gid_ok = spec
            .owner_gid
            .is_none_or(|g| g == egid || groups.iter().any(|x| x.as_raw() == g));
        if !(uid_ok && gid_ok) {
            problems.push(Error::manifest(
                &spec.name,
                format!(
                    "declares owner {}:{}, but compose-secrets runs as uid {euid} and cannot chown. Run it as root \
                     (e.g. `sudo make load-secrets`), run it as that user, or remove `owner` (see README, \
                     \"File owners\")",
                    spec.owner_uid.map_or_else(|| "-".into(), |u| u.to_string()),
                    spec.owner_gid.map_or_else(|| "-".into(), |g| g.to_string()),
                ),
            ));
        }
    }
    Error::all(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secrets_dir_may_not_be_at_around_or_inside_the_runtime_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let runtime = root.join(".runtime");
        std::fs::create_dir(&runtime).unwrap();
        std::os::unix::fs::symlink(root, root.join("link")).unwrap();
        let refused = [
            runtime.clone(),
            root.to_path_buf(),
            runtime.join("other"),
            runtime.join("secrets/deeper"),
            root.join("link/.runtime"),
        ];
        for secrets in refused {
            let e = check_dirs(&runtime, &secrets).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::USAGE);
            let text = e.to_string();
            assert!(
                text.contains(&secrets.display().to_string())
                    && text.contains(&runtime.display().to_string()),
                "{text}"
            );
        }
        for secrets in [
            runtime.join("secrets"),
            root.join("secrets"),
            root.join("link/x"),
        ] {
            check_dirs(&runtime, &secrets).unwrap();
        }
    }
}
