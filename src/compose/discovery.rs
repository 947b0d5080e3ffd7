//! Which Compose files make the project, which directory is the project's, and which variables
//! interpolate it, decided in the order `docker compose` decides them: `--env-file` or the
//! default `.env`, then `-f` or `COMPOSE_FILE` or a search up from the working directory with
//! its override file, then the project directory's own `.env`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::env_file;
use super::loader::clean;
use crate::error::{Error, Result};

/// Compose's own file names, in the order `docker compose` prefers them.
pub const COMPOSE_FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// Override files found beside the base file; note `.yml` before `.yaml`, as in Compose.
pub const OVERRIDE_FILE_NAMES: [&str; 4] = [
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// How the command line and environment describe the project (Compose's global flags).
#[derive(Debug, Clone, Default)]
pub struct ProjectOptions {
    /// `-f`, as given (relative to the working directory).
    pub files: Vec<PathBuf>,
    pub project_directory: Option<PathBuf>,
    pub project_name: Option<String>,
    /// `--env-file`, repeatable.
    pub env_files: Vec<PathBuf>,
    /// `--profile`, repeatable.
    pub profiles: Vec<String>,
    /// The working directory, as the shell sees it (see [`logical_cwd`]).
    pub cwd: PathBuf,
    /// The process environment.
    pub process_env: BTreeMap<String, String>,
    /// Secrets in use even when no service mounts them (the audit layer's signing key): the
    /// layers above name them, the model does not.
    pub keep_in_use: Vec<String>,
}

/// What discovery found.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    /// Absolute Compose files, in merge order; empty when none was found.
    pub files: Vec<PathBuf>,
    /// Why no file was found (when `files` is empty).
    pub not_found: Option<String>,
    /// The project directory.
    pub working_dir: PathBuf,
    /// Interpolation variables: the process environment over the `.env` files.
    pub env: BTreeMap<String, String>,
    /// The `.env` / `--env-file` files read, in order.
    pub env_files: Vec<PathBuf>,
    /// Whether `--env-file` (or `COMPOSE_ENV_FILES`) named the env files.
    pub explicit_env_files: bool,
}

impl ProjectOptions {
    fn absolute(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            PathBuf::from(clean(&p.to_string_lossy()))
        } else {
            PathBuf::from(clean(&format!(
                "{}/{}",
                self.cwd.display(),
                p.to_string_lossy()
            )))
        }
    }
}

/// Find the project's files, directory and variables.
pub fn discover(options: &ProjectOptions) -> Result<Discovered> {
    let mut env = options.process_env.clone();
    env.entry("PWD".into())
        .or_insert_with(|| options.cwd.display().to_string());
    let project_directory = options
        .project_directory
        .as_ref()
        .map(|p| options.absolute(p));
    let explicit = explicit_env_files(options);
    let default_disabled = match options.process_env.get("COMPOSE_DISABLE_ENV_FILE") {
        None => false,
        Some(v) => parse_go_bool(v).ok_or_else(|| {
            Error::Usage(format!("COMPOSE_DISABLE_ENV_FILE={v} is not a boolean"))
        })?,
    };
    let cli_files = cli_files(options)?;

    // Compose's `GetWorkingDir`: --project-directory, else the first file's directory, else cwd.
    let working_dir = |files: &[PathBuf]| -> PathBuf {
        project_directory.clone().unwrap_or_else(|| {
            files
                .first()
                .and_then(|f| f.parent())
                .map_or_else(|| options.cwd.clone(), Path::to_path_buf)
        })
    };
    let mut read_env_files: Vec<PathBuf> = Vec::new();
    let mut load_env = |files: &[PathBuf], env: &mut BTreeMap<String, String>| -> Result<()> {
        let paths = env_file_paths(&explicit, default_disabled, &working_dir(files));
        read_env_files_into(&paths, env, &mut read_env_files)
    };

    load_env(&cli_files, &mut env)?;
    let mut files = cli_files;
    let mut not_found = None;
    if files.is_empty() {
        files = compose_file_variable(options, &env)?;
    }
    if files.is_empty() {
        let start = project_directory
            .clone()
            .unwrap_or_else(|| options.cwd.clone());
        match search(&start) {
            Some(found) => files = found,
            None => {
                not_found = Some(format!(
                    "no Compose file found in {} or its parents (looked for {}); pass -f or set COMPOSE_FILE",
                    start.display(),
                    COMPOSE_FILE_NAMES.join(", ")
                ));
            }
        }
    }
    if !files.is_empty() {
        load_env(&files, &mut env)?;
    }
    let working_dir = working_dir(&files);
    Ok(Discovered {
        files,
        not_found,
        working_dir,
        env,
        env_files: read_env_files,
        explicit_env_files: !explicit.is_empty(),
    })
}

/// The env files to read: the explicit ones, else the project directory's `.env` unless
/// `COMPOSE_DISABLE_ENV_FILE` is set.
fn env_file_paths(explicit: &[PathBuf], default_disabled: bool, dir: &Path) -> Vec<PathBuf> {
    if !explicit.is_empty() {
        return explicit.to_vec();
    }
    let dotenv = dir.join(".env");
    // Anything but a directory is read: a FIFO is refused by the reader, not skipped.
    if !default_disabled && std::fs::metadata(&dotenv).is_ok_and(|m| !m.is_dir()) {
        vec![dotenv]
    } else {
        Vec::new()
    }
}

/// Read `paths` into `env` under what is already there (the process environment and earlier
/// passes win), noting each file read once in `read`.
fn read_env_files_into(
    paths: &[PathBuf],
    env: &mut BTreeMap<String, String>,
    read: &mut Vec<PathBuf>,
) -> Result<()> {
    let mut from_files = BTreeMap::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(Error::config(path, "is a directory, not an env file"))
            }
            Ok(_) => {}
            Err(_) => return Err(Error::config(path, "couldn't find env file")),
        }
        env_file::read(path, &*env, &mut from_files)?;
        if !read.contains(path) {
            read.push(path.clone());
        }
    }
    for (k, v) in from_files {
        env.entry(k).or_insert(v);
    }
    Ok(())
}

/// `--env-file`, else `COMPOSE_ENV_FILES`, as absolute paths.
fn explicit_env_files(options: &ProjectOptions) -> Vec<PathBuf> {
    if !options.env_files.is_empty() {
        return options
            .env_files
            .iter()
            .map(|p| options.absolute(p))
            .collect();
    }
    options
        .process_env
        .get("COMPOSE_ENV_FILES")
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.split(',')
                .map(|p| options.absolute(Path::new(p)))
                .collect()
        })
        .unwrap_or_default()
}

/// `-f`, as absolute paths; `-f -` (stdin) is refused.
fn cli_files(options: &ProjectOptions) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for f in &options.files {
        if f.as_os_str() == "-" {
            return Err(Error::Usage(
                "-f -: reading the Compose file from stdin is not supported; pass a file".into(),
            ));
        }
        files.push(options.absolute(f));
    }
    Ok(files)
}

/// `COMPOSE_FILE` (from the environment or `.env`), split on `COMPOSE_PATH_SEPARATOR`; each
/// must exist.
fn compose_file_variable(
    options: &ProjectOptions,
    env: &BTreeMap<String, String>,
) -> Result<Vec<PathBuf>> {
    let Some(list) = env.get("COMPOSE_FILE") else {
        return Ok(Vec::new());
    };
    let separator = env
        .get("COMPOSE_PATH_SEPARATOR")
        .filter(|s| !s.is_empty())
        .map_or(":", String::as_str);
    let mut files = Vec::new();
    for p in list.split(separator) {
        let path = options.absolute(Path::new(p));
        if !path.is_file() {
            return Err(Error::config(
                &path,
                "named by COMPOSE_FILE, but there is no such Compose file",
            ));
        }
        files.push(path);
    }
    Ok(files)
}

/// The base file in `start` or the nearest parent that has one, and its override file.
fn search(start: &Path) -> Option<Vec<PathBuf>> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if let Some(base) = COMPOSE_FILE_NAMES
            .iter()
            .map(|n| d.join(n))
            .find(|p| p.is_file())
        {
            let mut files = vec![base];
            if let Some(o) = OVERRIDE_FILE_NAMES
                .iter()
                .map(|n| d.join(n))
                .find(|p| p.is_file())
            {
                files.push(o);
            }
            return Some(files);
        }
        dir = d.parent();
    }
    None
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The working directory as the shell names it: `$PWD` when it is this directory (it keeps
/// the names of symlinks, as Go's `os.Getwd` and so `docker compose` do), else the real path.
pub fn logical_cwd() -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    let real = std::env::current_dir().map_err(Error::io(".", "find the current directory"))?;
    if let Some(pwd) = std::env::var_os("PWD").map(PathBuf::from) {
        if pwd.is_absolute() {
            if let (Ok(a), Ok(b)) = (std::fs::metadata(&pwd), std::fs::metadata(&real)) {
                if a.dev() == b.dev() && a.ino() == b.ino() {
                    return Ok(pwd);
                }
            }
        }
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(cwd: &Path) -> ProjectOptions {
        ProjectOptions {
            cwd: cwd.to_path_buf(),
            ..ProjectOptions::default()
        }
    }

    #[test]
    fn search_walks_up_and_adds_the_override() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::write(root.join("docker-compose.yml"), "services: {}\n").unwrap();
        std::fs::write(root.join("compose.yaml"), "services: {}\n").unwrap();
        std::fs::write(root.join("docker-compose.override.yaml"), "services: {}\n").unwrap();
        std::fs::write(root.join(".env"), "A=root\n").unwrap();
        std::fs::write(root.join("sub/deeper/.env"), "A=cwd\nB=cwd\n").unwrap();
        let found = discover(&options(&root.join("sub/deeper"))).unwrap();
        assert_eq!(
            found.files,
            [
                root.join("compose.yaml"),
                root.join("docker-compose.override.yaml")
            ]
        );
        assert_eq!(found.working_dir, root);
        assert_eq!(found.env["A"], "cwd", "the working directory's .env wins");
        assert_eq!(found.env_files.len(), 2);
    }

    #[test]
    fn compose_file_from_dotenv_and_env_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.yaml"), "services: {}\n").unwrap();
        std::fs::write(root.join("b.yaml"), "services: {}\n").unwrap();
        std::fs::write(
            root.join(".env"),
            "COMPOSE_FILE=a.yaml;b.yaml\nCOMPOSE_PATH_SEPARATOR=;\n",
        )
        .unwrap();
        std::fs::write(root.join("other.env"), "X=1\n").unwrap();
        let found = discover(&options(root)).unwrap();
        assert_eq!(found.files, [root.join("a.yaml"), root.join("b.yaml")]);
        let mut o = options(root);
        o.env_files = vec!["other.env".into()];
        o.files = vec!["a.yaml".into()];
        let found = discover(&o).unwrap();
        assert_eq!(found.env.get("X").map(String::as_str), Some("1"));
        assert!(
            !found.env.contains_key("COMPOSE_FILE"),
            "--env-file replaces .env"
        );
        let mut o = options(root);
        o.env_files = vec!["missing.env".into()];
        assert!(discover(&o).is_err());
    }

    #[test]
    fn nothing_found_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let found = discover(&options(dir.path())).unwrap();
        assert!(found.files.is_empty());
        assert!(found.not_found.unwrap().contains("no Compose file found"));
        assert_eq!(found.working_dir, dir.path());
    }
}
