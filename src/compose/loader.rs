//! Loading Compose files into one merged document, step for step as compose-go's loader does:
//! per document, interpolate, resolve `extends`, apply `!reset`/`!override`, import `include`d
//! projects, merge, keep lists unique; then default secret targets and resolve secret paths.
//!
//! Only the parts of a service that decide secrets are kept after interpolation (its secrets,
//! `build.secrets`, user, environment, profiles, `extends` and `x-compose-secrets`): the rest
//! cannot change where a secret lives or who mounts it, and merging it would only add ways
//! to fail that `docker compose` reports better.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

mod extends;
mod include;

use super::interpolate::substitute;
use super::merge::{clear_paths, enforce_unicity, merge, scalar_text};
use super::yaml::{self, Document, TreePath};
use crate::error::{Error, Result};

/// The variables each service's `environment:` entries interpolate: service → key → names.
pub type References = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// What a load shares across files, includes and extends.
#[derive(Default)]
pub struct Shared {
    /// Recorded while interpolating, for the leak check (a later file's entry replaces it).
    pub environment_references: RefCell<References>,
    /// Variables referenced but not set (Compose warns and uses "").
    pub unset: RefCell<BTreeSet<String>>,
    /// Every file read: Compose files, included and extended ones, env files of includes.
    pub files_read: RefCell<Vec<PathBuf>>,
    /// Documents already parsed (the project-name pass reads the main files first).
    pub parsed: RefCell<BTreeMap<PathBuf, Vec<Document>>>,
    /// What this load has used of its limits (see [`Budget`]).
    pub used: Cell<Budget>,
    /// Each secret's `file:` as written, before interpolation (a later file's replaces it),
    /// to say which variable left it empty.
    pub secret_file_templates: RefCell<BTreeMap<String, String>>,
}

/// Files loaded per project, counting each time an `include` or an `extends: {file}` loads
/// one again. The projects in tests/corpus/compose load at most 4; 1,000 leaves room for a
/// project whose every service extends a shared file, and stops an include fan-out (each file
/// including the next twice doubles the work per level) after 10 levels.
pub const MAX_FILE_LOADS: usize = 1_000;

/// YAML nodes merged over the whole load, every load of a file counted: ten documents at
/// [`yaml::MAX_DOCUMENT_NODES`], 10,000 times the largest file in tests/corpus/compose.
pub const MAX_PROJECT_NODES: usize = 1_000_000;

/// Bytes of string values interpolated over the whole load: 16 times the largest Compose
/// file read, and over 60,000 times the largest project in tests/corpus/compose (1 KB).
pub const MAX_PROJECT_STRING_BYTES: usize = 64 * 1024 * 1024;

/// The deepest chain of `extends`: 2 in tests/corpus/compose (069-extends-same-file); each
/// link is a recursion.
pub const MAX_EXTENDS_DEPTH: usize = 200;

/// Resources a load has used so far.
#[derive(Debug, Default, Clone, Copy)]
pub struct Budget {
    pub file_loads: usize,
    pub nodes: usize,
    pub string_bytes: usize,
}

/// Loads the files of one project (the main one, or an included one).
pub struct Loader<'a> {
    pub env: &'a BTreeMap<String, String>,
    /// The project directory: relative paths of this project resolve against it.
    pub working_dir: &'a Path,
    /// `$HOME`, for `~` in secret file paths.
    pub home: Option<&'a str>,
    pub shared: &'a Shared,
    /// Files whose `include:` led here, for cycle detection.
    pub include_chain: Vec<PathBuf>,
}

/// Which steps a file goes through (an `extends` base skips most of them).
#[derive(Clone, Copy)]
struct Steps {
    extends: bool,
    include: bool,
    validate: bool,
}

const ALL_STEPS: Steps = Steps {
    extends: true,
    include: true,
    validate: true,
};

/// Service keys that decide secrets, and how a rotation replaces the service's containers
/// (`deploy`, `container_name`, `ports`); everything else is dropped after interpolation.
const SERVICE_KEYS: [&str; 13] = [
    "secrets",
    "provider",
    "env_file",
    "build",
    "user",
    // Where a named `user:` is looked up (`owners`).
    "image",
    "environment",
    "profiles",
    "extends",
    "deploy",
    "container_name",
    "ports",
    super::EXTENSION_KEY,
];

impl Loader<'_> {
    /// The merged document of `files` (compose-go's `loadYamlModel`).
    pub fn load_model(&self, files: &[PathBuf]) -> Result<Value> {
        let mut dict = Value::Mapping(Mapping::new());
        for file in files {
            dict = self.load_file(file, dict, ALL_STEPS)?.0;
        }
        set_default_targets(&mut dict);
        check_sources(&dict)?;
        self.resolve_secret_paths(&mut dict)?;
        Ok(dict)
    }

    /// Read `file` (or its parsed documents) and merge each document into `dict`. Also returns
    /// the paths the last document cleared, which an `extends` base applies.
    fn load_file(
        &self,
        file: &Path,
        mut dict: Value,
        steps: Steps,
    ) -> Result<(Value, Vec<TreePath>)> {
        let docs = self.documents(file)?;
        self.spend(file, |b| {
            b.file_loads += 1;
            b.nodes += docs.iter().map(|d| d.nodes).sum::<usize>();
        })?;
        let mut last_cleared = Vec::new();
        for Document { value, cleared, .. } in docs {
            let mut doc = value;
            self.interpolate(file, &mut doc)?;
            cast_external(file, &mut doc)?;
            prune(&mut doc);
            // A base service from another file resolves its env files from that file's folder.
            let base = if steps.extends {
                self.working_dir
            } else {
                file.parent().unwrap_or(self.working_dir)
            };
            resolve_env_files(file, &mut doc, base, self.home)?;
            if steps.extends {
                self.apply_extends(file, &mut doc, &cleared)?;
            }
            clear_paths(&mut dict, &cleared);
            if steps.include {
                self.apply_include(file, &mut doc)?;
            } else if let Some(map) = doc.as_mapping_mut() {
                map.shift_remove("include");
            }
            dict = merge(dict, doc, &mut Vec::new()).map_err(|m| Error::config(file, m))?;
            enforce_unicity(&mut dict).map_err(|m| Error::config(file, m))?;
            if steps.validate {
                super::schema::validate(file, &dict)?;
            }
            canonical(&mut dict);
            last_cleared = cleared;
        }
        Ok((dict, last_cleared))
    }

    /// Count `use` against the load's limits; the first limit passed is an error naming it.
    fn spend(&self, file: &Path, using: impl FnOnce(&mut Budget)) -> Result<()> {
        let mut b = self.shared.used.get();
        using(&mut b);
        self.shared.used.set(b);
        let over = if b.file_loads > MAX_FILE_LOADS {
            format!("more than {MAX_FILE_LOADS} Compose files loaded (includes and extends count each time they load one)")
        } else if b.nodes > MAX_PROJECT_NODES {
            format!("more than {MAX_PROJECT_NODES} YAML nodes loaded over the project's files")
        } else if b.string_bytes > MAX_PROJECT_STRING_BYTES {
            format!("more than {MAX_PROJECT_STRING_BYTES} bytes of strings interpolated over the project's files")
        } else {
            return Ok(());
        };
        Err(Error::config(file, format!("resource limit: {over}")))
    }

    fn documents(&self, file: &Path) -> Result<Vec<Document>> {
        if let Some(docs) = self.shared.parsed.borrow().get(file) {
            return Ok(docs.clone());
        }
        let docs = yaml::read(file)?;
        self.shared.files_read.borrow_mut().push(file.to_path_buf());
        self.shared
            .parsed
            .borrow_mut()
            .insert(file.to_path_buf(), docs.clone());
        Ok(docs)
    }

    /// Interpolate every string value (never a key), naming the dotted path in errors.
    fn interpolate(&self, file: &Path, doc: &mut Value) -> Result<()> {
        let mut path = Vec::new();
        walk_strings(doc, &mut path, &mut |path, s| {
            self.record_references(path, s);
            if let Some(name) = path
                .strip_prefix("secrets.")
                .and_then(|rest| rest.strip_suffix(".file"))
            {
                self.shared
                    .secret_file_templates
                    .borrow_mut()
                    .insert(name.to_string(), s.to_string());
            }
            let mut unset = |name: &str| {
                self.shared.unset.borrow_mut().insert(name.to_string());
            };
            let out = substitute(s, self.env, &mut unset)
                .map_err(|e| Error::config(file, e.message(path)))?;
            self.spend(file, |b| b.string_bytes += out.len())?;
            Ok(out)
        })
    }

    /// Remember which variables a service's `environment:` entry refers to.
    fn record_references(&self, path: &str, raw: &str) {
        let Some(rest) = path.strip_prefix("services.") else {
            return;
        };
        let Some((service, key)) = rest.split_once(".environment.") else {
            return;
        };
        let key = if key == "[]" {
            raw.split_once('=').map_or(raw, |(k, _)| k)
        } else {
            key
        };
        let names = super::interpolate::referenced_variables(raw);
        self.shared
            .environment_references
            .borrow_mut()
            .entry(service.to_string())
            .or_default()
            .insert(key.to_string(), names);
    }

    /// `file:` of secrets and configs, resolved against the project directory. An empty
    /// secret `file:` would resolve to the project directory itself: refused, naming the
    /// variables that left it empty.
    fn resolve_secret_paths(&self, dict: &mut Value) -> Result<()> {
        for section in ["secrets", "configs"] {
            let Some(defs) = dict.get_mut(section).and_then(Value::as_mapping_mut) else {
                continue;
            };
            for (name, def) in defs.iter_mut() {
                if let Some(Value::String(f)) = def.get_mut("file") {
                    if f.is_empty() && section == "secrets" {
                        return Err(self.empty_secret_file(name.as_str().unwrap_or_default()));
                    }
                    *f = resolve_path(f, self.working_dir, self.home);
                }
            }
        }
        Ok(())
    }

    fn empty_secret_file(&self, name: &str) -> Error {
        let written = self
            .shared
            .secret_file_templates
            .borrow()
            .get(name)
            .cloned()
            .unwrap_or_default();
        let empty: Vec<String> = super::interpolate::referenced_variables(&written)
            .into_iter()
            .filter(|v| self.env.get(v).is_none_or(String::is_empty))
            .collect();
        let why = match empty.as_slice() {
            [] if written.is_empty() => "it is written as an empty string".to_string(),
            [] => format!("`{written}` interpolates to nothing"),
            [one] => format!("`{written}` interpolates to nothing: {one} is not set or empty"),
            many => format!(
                "`{written}` interpolates to nothing: {} are not set or empty",
                many.join(", ")
            ),
        };
        Error::manifest(
            name,
            format!("secrets.{name}.file is an empty path ({why}); set it to the file's path"),
        )
    }
}

/// Call `f` on every string value (not keys) with its dotted path, replacing it with the result.
fn walk_strings(
    v: &mut Value,
    path: &mut Vec<String>,
    f: &mut dyn FnMut(&str, &str) -> Result<String>,
) -> Result<()> {
    match v {
        Value::String(s) => {
            *s = f(&path.join("."), s)?;
            Ok(())
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                path.push(k.as_str().unwrap_or_default().to_string());
                walk_strings(item, path, f)?;
                path.pop();
            }
            Ok(())
        }
        Value::Sequence(items) => {
            for item in items.iter_mut() {
                path.push("[]".into());
                walk_strings(item, path, f)?;
                path.pop();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `secrets.*.external` given as a string (after interpolation) becomes a boolean, as Compose
/// casts it.
fn cast_external(file: &Path, doc: &mut Value) -> Result<()> {
    let Some(secrets) = doc.get_mut("secrets").and_then(Value::as_mapping_mut) else {
        return Ok(());
    };
    for (name, def) in secrets.iter_mut() {
        if let Some(ext) = def.get_mut("external") {
            if let Value::String(s) = ext {
                let b = match s.to_ascii_lowercase().as_str() {
                    "true" | "y" | "yes" | "on" => true,
                    "false" | "n" | "no" | "off" => false,
                    _ => {
                        return Err(Error::config(
                            file,
                            format!(
                            "error while interpolating secrets.{}.external: invalid boolean: {s}",
                            name.as_str().unwrap_or_default()
                        ),
                        ))
                    }
                };
                *ext = Value::Bool(b);
            }
        }
    }
    Ok(())
}

/// Keep only what decides secrets (see the module comment).
fn prune(doc: &mut Value) {
    let Some(map) = doc.as_mapping_mut() else {
        return;
    };
    map.retain(|k, _| {
        matches!(
            k.as_str(),
            Some("name" | "services" | "secrets" | "configs" | "include" | "version")
        )
    });
    map.shift_remove("version");
    let Some(Value::Mapping(services)) = map.get_mut("services") else {
        return;
    };
    for (_, service) in services.iter_mut() {
        let Some(s) = service.as_mapping_mut() else {
            continue;
        };
        s.retain(|k, _| k.as_str().is_some_and(|k| SERVICE_KEYS.contains(&k)));
        if let Some(build) = s.get_mut("build") {
            match build {
                Value::Mapping(b) => b.retain(|k, _| k.as_str() == Some("secrets")),
                _ => *build = Value::Mapping(Mapping::new()),
            }
        }
    }
}

/// A service's `env_file` (a path, a list of paths, or of `{path, required}`) becomes a list of
/// absolute paths: only which files a service reads matters here (the leak check).
fn resolve_env_files(file: &Path, doc: &mut Value, base: &Path, home: Option<&str>) -> Result<()> {
    let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) else {
        return Ok(());
    };
    for (name, service) in services.iter_mut() {
        let Some(entry) = service.get_mut("env_file") else {
            continue;
        };
        let items = match std::mem::take(entry) {
            Value::Null => Vec::new(),
            Value::Sequence(items) => items,
            one => vec![one],
        };
        let mut paths = Vec::new();
        for item in items {
            let path = match &item {
                Value::String(p) => p.clone(),
                Value::Mapping(m) => m.get("path").map(scalar_text).unwrap_or_default(),
                _ => String::new(),
            };
            if path.is_empty() {
                return Err(Error::config(
                    file,
                    format!(
                        "services.{}.env_file: every entry needs a path",
                        name.as_str().unwrap_or_default()
                    ),
                ));
            }
            paths.push(Value::String(resolve_path(&path, base, home)));
        }
        *entry = Value::Sequence(paths);
    }
    Ok(())
}

/// Short-syntax secret mounts become mappings (compose-go's canonical form).
fn canonical(dict: &mut Value) {
    let Some(services) = dict.get_mut("services").and_then(Value::as_mapping_mut) else {
        return;
    };
    for (_, service) in services.iter_mut() {
        if let Some(list) = service.get_mut("secrets") {
            long_form(list);
        }
        if let Some(list) = service.get_mut("build").and_then(|b| b.get_mut("secrets")) {
            long_form(list);
        }
    }
}

fn long_form(list: &mut Value) {
    if let Value::Sequence(items) = list {
        for item in items.iter_mut() {
            if let Value::String(source) = item {
                let mut m = Mapping::new();
                m.insert("source".into(), Value::String(std::mem::take(source)));
                *item = Value::Mapping(m);
            }
        }
    }
}

/// A mount without a `target` gets `/run/secrets/<source>`.
fn set_default_targets(dict: &mut Value) {
    let Some(services) = dict.get_mut("services").and_then(Value::as_mapping_mut) else {
        return;
    };
    for (_, service) in services.iter_mut() {
        if let Some(Value::Sequence(items)) = service.get_mut("secrets") {
            for item in items.iter_mut() {
                if let Value::Mapping(m) = item {
                    if !m.contains_key("target") {
                        let source = m.get("source").map(scalar_text).unwrap_or_default();
                        m.insert(
                            "target".into(),
                            Value::String(format!("/run/secrets/{source}")),
                        );
                    }
                }
            }
        }
    }
}

/// `file` and `environment` are exclusive, and a secret needs one unless it is external or
/// has a driver (compose-go's `checkFileObject`).
fn check_sources(dict: &Value) -> Result<()> {
    let Some(secrets) = dict.get("secrets").and_then(Value::as_mapping) else {
        return Ok(());
    };
    for (name, def) in secrets {
        let name = name.as_str().unwrap_or_default();
        let has = |k: &str| def.get(k).is_some_and(|v| !v.is_null());
        if has("file") && has("environment") {
            return Err(Error::manifest(
                name,
                "file|environment attributes are mutually exclusive",
            ));
        }
        if !has("file") && !has("environment") && !has("driver") && !has("external") {
            return Err(Error::manifest(name, "one of file|environment must be set"));
        }
    }
    Ok(())
}

/// A secret's `file:` as Compose resolves it: `~` is `$HOME`, an absolute path is kept as
/// written, a relative one is joined to the project directory and cleaned.
pub fn resolve_path(p: &str, working_dir: &Path, home: Option<&str>) -> String {
    if let Some(rest) = p.strip_prefix('~') {
        let home = home.unwrap_or("");
        return clean(&format!("{home}/{rest}"));
    }
    if p.starts_with('/') || is_windows_absolute(p) {
        return p.to_string();
    }
    clean(&format!("{}/{p}", working_dir.display()))
}

/// `C:\x`, `C:/x` or `\\server\share`: Compose keeps these as written on any platform.
fn is_windows_absolute(p: &str) -> bool {
    let b = p.as_bytes();
    (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'\\' | b'/'))
        || p.starts_with("\\\\")
}

/// Go's `filepath.Rel` for absolute paths: `target` relative to `base`.
fn relative_to(base: &Path, target: &str) -> Option<String> {
    if !target.starts_with('/') {
        return None;
    }
    let base = clean(&base.to_string_lossy());
    let target = clean(target);
    let base: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    let target: Vec<&str> = target.split('/').filter(|s| !s.is_empty()).collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = std::iter::repeat_n("..", base.len() - common).collect();
    parts.extend(&target[common..]);
    Some(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

/// `filepath.Join` for paths compose-go resolves while loading (include, extends).
fn join_clean(base: &Path, p: &str) -> PathBuf {
    if p.starts_with('/') {
        PathBuf::from(clean(p))
    } else {
        PathBuf::from(clean(&format!("{}/{p}", base.display())))
    }
}

/// Go's `filepath.Clean` for absolute Unix paths: no `.`, no `..`, no doubled or trailing `/`.
pub fn clean(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_as_compose_resolves_them() {
        let wd = Path::new("/p");
        assert_eq!(resolve_path("./x/../a.txt", wd, None), "/p/a.txt");
        assert_eq!(resolve_path("dir/", wd, None), "/p/dir");
        assert_eq!(resolve_path(".", wd, None), "/p");
        assert_eq!(resolve_path("", wd, None), "/p");
        assert_eq!(resolve_path("../s/x", wd, None), "/s/x");
        assert_eq!(
            resolve_path("/etc//x/../b.txt", wd, None),
            "/etc//x/../b.txt"
        );
        assert_eq!(
            resolve_path("~/s.txt", wd, Some("/home/u")),
            "/home/u/s.txt"
        );
        assert_eq!(
            resolve_path("~other/x", wd, Some("/home/u")),
            "/home/u/other/x"
        );
        assert_eq!(clean("/../a"), "/a");
    }
}
