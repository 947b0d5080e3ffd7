//! `include:` (compose-go's `ApplyInclude`): each included project loaded with its own
//! directory and environment, its services, secrets and configs imported, and a name both
//! define must be defined identically.

use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use std::collections::BTreeMap;

use super::{join_clean, relative_to, Loader};
use crate::compose::env_file;
use crate::error::{Error, Result};

impl Loader<'_> {
    /// compose-go's `ApplyInclude`: load each included project with its own directory and
    /// environment, and import its services and secrets into `doc`.
    pub(super) fn apply_include(&self, file: &Path, doc: &mut Value) -> Result<()> {
        let Some(include) = doc.as_mapping_mut().and_then(|m| m.shift_remove("include")) else {
            return Ok(());
        };
        let Value::Sequence(items) = include else {
            return Err(Error::config(file, "`include` must be a list"));
        };
        let mut chain = self.include_chain.clone();
        chain.push(file.to_path_buf());
        for item in items {
            let (paths, project_directory, env_files) = include_item(file, &item)?;
            let paths: Vec<PathBuf> = paths
                .iter()
                .map(|p| join_clean(self.working_dir, p))
                .collect();
            let Some(main) = paths.first() else {
                return Err(Error::config(file, "an `include` entry needs a path"));
            };
            if chain.contains(main) {
                let mut names: Vec<String> =
                    chain.iter().map(|p| p.display().to_string()).collect();
                names.push(main.display().to_string());
                return Err(Error::config(
                    file,
                    format!("include cycle detected: {}", names.join(" includes ")),
                ));
            }
            let project_dir = match project_directory {
                Some(pd) => join_clean(self.working_dir, &pd),
                None => main.parent().map_or_else(PathBuf::new, Path::to_path_buf),
            };
            // Paths resolve against the project directory, or its parent when it does not exist
            // (compose-go's `localResourceLoader.Dir`); its `.env` is still looked for in it.
            let resolve_dir = if project_dir.is_dir() {
                project_dir.clone()
            } else {
                project_dir
                    .parent()
                    .map_or_else(|| project_dir.clone(), Path::to_path_buf)
            };
            let env_paths = self.include_env_files(file, &project_dir, &env_files)?;
            let mut from_files = BTreeMap::new();
            for env_file in &env_paths {
                env_file::read(env_file, self.env, &mut from_files)?;
                self.shared.files_read.borrow_mut().push(env_file.clone());
            }
            // The including project's variables win over the included project's files.
            let mut env = self.env.clone();
            for (k, v) in from_files {
                env.entry(k).or_insert(v);
            }
            let sub = Loader {
                env: &env,
                working_dir: &resolve_dir,
                home: self.home,
                shared: self.shared,
                include_chain: chain.clone(),
            };
            let imported = sub.load_model(&paths)?;
            import_resources(file, self.working_dir, imported, doc)?;
        }
        Ok(())
    }

    /// The included project's env files: those `env_file` names (each must be a file), else
    /// its directory's `.env` when there is one.
    fn include_env_files(
        &self,
        file: &Path,
        project_dir: &Path,
        env_files: &[String],
    ) -> Result<Vec<PathBuf>> {
        Ok(if env_files.is_empty() {
            let dotenv = project_dir.join(".env");
            // Anything but a directory is read: a FIFO is refused by the reader.
            if std::fs::metadata(&dotenv).is_ok_and(|m| !m.is_dir()) {
                vec![dotenv]
            } else {
                Vec::new()
            }
        } else {
            let mut out = Vec::new();
            for f in env_files {
                let path = join_clean(self.working_dir, f);
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_dir() => {
                        return Err(Error::config(
                            file,
                            format!("{} is not a file", path.display()),
                        ))
                    }
                    Ok(_) => out.push(path),
                    Err(_) => {
                        return Err(Error::config(
                            file,
                            format!("include env_file {} does not exist", path.display()),
                        ))
                    }
                }
            }
            out
        })
    }
}

/// `(paths, project_directory, env_file)` of one `include` entry, short or long form.
fn include_item(file: &Path, item: &Value) -> Result<(Vec<String>, Option<String>, Vec<String>)> {
    let list = |v: Option<&Value>, what: &str| -> Result<Vec<String>> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|i| {
                    i.as_str().map(str::to_string).ok_or_else(|| {
                        Error::config(file, format!("include {what} entries must be strings"))
                    })
                })
                .collect(),
            Some(_) => Err(Error::config(
                file,
                format!("include {what} must be a string or a list"),
            )),
        }
    };
    match item {
        Value::String(s) => Ok((vec![s.clone()], None, Vec::new())),
        Value::Mapping(m) => {
            for key in m.keys().filter_map(Value::as_str) {
                if !matches!(key, "path" | "project_directory" | "env_file") {
                    return Err(Error::config(
                        file,
                        format!("include additional property '{key}' not allowed"),
                    ));
                }
            }
            Ok((
                list(m.get("path"), "path")?,
                m.get("project_directory")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                list(m.get("env_file"), "env_file")?,
            ))
        }
        _ => Err(Error::config(
            file,
            "each `include` entry must be a path or a mapping",
        )),
    }
}

/// Import an included project's services and secrets; a name the including file also defines
/// must be defined identically (paths compared once resolved).
fn import_resources(
    file: &Path,
    working_dir: &Path,
    imported: Value,
    doc: &mut Value,
) -> Result<()> {
    let Value::Mapping(mut imported) = imported else {
        return Ok(());
    };
    let Some(target) = doc.as_mapping_mut() else {
        return Ok(());
    };
    for key in ["services", "secrets", "configs"] {
        let Some(Value::Mapping(from)) = imported.shift_remove(key) else {
            continue;
        };
        let to = target
            .entry(Value::String(key.to_string()))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if to.is_null() {
            *to = Value::Mapping(Mapping::new());
        }
        let Some(to) = to.as_mapping_mut() else {
            return Err(Error::config(file, format!("`{key}` must be a mapping")));
        };
        for (name, def) in from {
            if let Some(existing) = to.get(&name) {
                // Compose compares the import, its paths relative to the including project,
                // with the including file's definition as written: the same file spelled
                // `./lib/x` and `lib/x` is a conflict there, and so it is here.
                let mut theirs = def.clone();
                if key != "services" {
                    if let Some(Value::String(f)) = theirs.get_mut("file") {
                        if let Some(rel) = relative_to(working_dir, f) {
                            *f = rel;
                        }
                    }
                }
                if *existing == theirs {
                    continue;
                }
                return Err(Error::config(
                    file,
                    format!(
                        "{key}.{} conflicts with imported resource",
                        name.as_str().unwrap_or_default()
                    ),
                ));
            }
            to.insert(name, def);
        }
    }
    Ok(())
}
