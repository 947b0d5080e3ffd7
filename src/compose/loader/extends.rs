//! `extends:` (compose-go's `applyServiceExtends`): a service merged onto its base, from the
//! same file or another, recursively, with cycles named.

use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use super::{
    clear_paths, join_clean, merge, scalar_text, Error, Loader, Result, Steps, TreePath,
    MAX_EXTENDS_DEPTH,
};

impl Loader<'_> {
    pub(super) fn apply_extends(
        &self,
        file: &Path,
        doc: &mut Value,
        cleared: &[TreePath],
    ) -> Result<()> {
        let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) else {
            return Ok(());
        };
        let names: Vec<String> = services
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        for name in names {
            let merged =
                self.extend_service(&name, services, file, self.working_dir, &[], cleared)?;
            if let Some(merged) = merged {
                services.insert(Value::String(name), merged);
            }
        }
        Ok(())
    }

    /// compose-go's `applyServiceExtends`: the service merged onto its (recursively extended)
    /// base, or `None` for a null service.
    ///
    /// `base_dir` is where an `extends.file` resolves: the project directory for the
    /// project's own files, the extended file's directory inside an extended file.
    #[allow(clippy::too_many_arguments)]
    fn extend_service(
        &self,
        name: &str,
        services: &mut Mapping,
        file: &Path,
        base_dir: &Path,
        chain: &[(PathBuf, String)],
        cleared: &[TreePath],
    ) -> Result<Option<Value>> {
        let Some(service) = services.get(name).cloned() else {
            return Ok(None);
        };
        if service.is_null() {
            return Ok(None);
        }
        let Some(extends) = service.get("extends").cloned() else {
            return Ok(Some(service));
        };
        let here = (file.to_path_buf(), name.to_string());
        check_chain(file, name, chain, &here)?;
        let (reference, from_file) = extends_target(file, name, &extends)?;
        // The base of `extends: {file: ...}` comes from that file's services, loaded with this
        // project's variables; its own top-level sections are not imported.
        let mut other_file = match &from_file {
            Some(written) => Some(self.base_file(file, base_dir, name, &reference, written)?),
            None if !services.contains_key(reference.as_str()) => {
                return Err(Error::config(
                    file,
                    format!("cannot extend service \"{name}\": service \"{reference}\" not found"),
                ));
            }
            None => None,
        };
        let mut chain = chain.to_vec();
        chain.push(here);
        let base = match &mut other_file {
            Some((path, base_services, base_cleared)) => {
                let path = path.clone();
                let base_cleared = base_cleared.clone();
                let dir = path
                    .parent()
                    .map_or_else(|| base_dir.to_path_buf(), Path::to_path_buf);
                self.extend_service(
                    &reference,
                    base_services,
                    &path,
                    &dir,
                    &chain,
                    &base_cleared,
                )?
            }
            None => self.extend_service(&reference, services, file, base_dir, &chain, &[])?,
        };
        let Some(base) = base else {
            return Ok(Some(service));
        };
        let merged = merge_onto_base(file, name, base, service, cleared)?;
        services.insert(Value::String(name.to_string()), merged.clone());
        Ok(Some(merged))
    }

    /// The services of the file `extends.file` names, with the paths it cleared (`!reset`).
    fn base_file(
        &self,
        file: &Path,
        base_dir: &Path,
        name: &str,
        reference: &str,
        written: &str,
    ) -> Result<(PathBuf, Mapping, Vec<TreePath>)> {
        let path = join_clean(base_dir, written);
        let steps = Steps {
            extends: false,
            include: false,
            validate: false,
        };
        let (loaded, base_cleared) = self
            .load_file(&path, Value::Mapping(Mapping::new()), steps)
            .map_err(|e| match e {
                Error::Config { message, .. } if message == "the Compose file does not exist" => {
                    Error::config(
                        file,
                        format!(
                            "cannot extend service \"{name}\": {} does not exist",
                            path.display()
                        ),
                    )
                }
                other => other,
            })?;
        let Some(Value::Mapping(base_services)) = loaded.get("services").cloned() else {
            return Err(Error::config(
                file,
                format!(
                    "cannot extend service \"{name}\" in {}: no services section",
                    path.display()
                ),
            ));
        };
        if !base_services.contains_key(reference) {
            return Err(Error::config(
                file,
                format!(
                    "cannot extend service \"{name}\": service \"{reference}\" not found in {written}"
                ),
            ));
        }
        Ok((path, base_services, base_cleared))
    }
}

/// Refuse a cycle, named by the services and files actually in it from its first repeat (the
/// chain holds each service with the file that defines it), and a chain too deep.
fn check_chain(
    file: &Path,
    name: &str,
    chain: &[(PathBuf, String)],
    here: &(PathBuf, String),
) -> Result<()> {
    if let Some(start) = chain.iter().position(|link| link == here) {
        let lines: Vec<String> = chain[start..]
            .iter()
            .chain(std::iter::once(here))
            .map(|(f, s)| format!("{s} in {}", f.display()))
            .collect();
        return Err(Error::config(
            file,
            format!("circular reference in extends: {}", lines.join(" extends ")),
        ));
    }
    if chain.len() >= MAX_EXTENDS_DEPTH {
        return Err(Error::config(
            file,
            format!(
                "resource limit: services.{name}: `extends` chains more than {MAX_EXTENDS_DEPTH} services"
            ),
        ));
    }
    Ok(())
}

/// `extends: base` or `extends: {service: base, file: other.yaml}`: the service and the file.
fn extends_target(file: &Path, name: &str, extends: &Value) -> Result<(String, Option<String>)> {
    match extends {
        Value::String(s) => Ok((s.clone(), None)),
        Value::Mapping(m) => Ok((
            m.get("service")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::config(file, format!("extends.{name}.service is required")))?
                .to_string(),
            m.get("file").map(scalar_text),
        )),
        _ => Err(Error::config(
            file,
            format!("services.{name}.extends must be a service name or a mapping"),
        )),
    }
}

/// The service merged onto its base, with the paths the extending file cleared taken out of
/// the base first and the `extends` key gone.
fn merge_onto_base(
    file: &Path,
    name: &str,
    base: Value,
    service: Value,
    cleared: &[TreePath],
) -> Result<Value> {
    let mut wrapped = Value::Mapping(Mapping::new());
    if let Some(m) = wrapped.as_mapping_mut() {
        let mut services = Mapping::new();
        services.insert(Value::String(name.to_string()), base);
        m.insert("services".into(), Value::Mapping(services));
    }
    clear_paths(&mut wrapped, cleared);
    let source = wrapped
        .get_mut("services")
        .and_then(|s| s.get_mut(name))
        .map(std::mem::take)
        .unwrap_or(Value::Null);
    let mut merged = merge(source, service, &mut vec!["services".into(), "x".into()])
        .map_err(|m| Error::config(file, m))?;
    if let Some(m) = merged.as_mapping_mut() {
        m.shift_remove("extends");
    }
    Ok(merged)
}
