//! `ensure` as a domain operation: every secret Compose will use has a value in the demo
//! store (the project's `.env`, or the `--env-file`s).
//!
//! The data's path: the env files are read (or `.env` is made from the template); each
//! secret in use keeps its value, adopts the content of a secret file that already exists
//! inside the project (a project that ran before compose-secrets), or gets a generated one; the files that
//! changed are written once, atomically, 0600.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::compose::names::is_derived;
use crate::compose::{Project, SecretSource, SecretSpec};
use crate::dotenv::DotEnv;
use crate::error::{Error, Result};
use crate::files::layout::Layout;
use crate::output::{Report, ReportItem};
use crate::secret::{SecretValue, MAX_VALUE_BYTES};
use crate::store::dotenv::EnvFiles;

/// How an `ensure` runs.
pub struct EnsureRequest<'a> {
    /// Secrets to regenerate (Compose name, vault name or `.env` key).
    pub force: &'a [String],
    /// Copied to `.env` when no env file exists.
    pub template: PathBuf,
    pub dry_run: bool,
    /// Paths in the report are shown relative to this directory.
    pub shown_from: &'a Path,
}

/// Give every secret in use a value in `env_paths`, reporting each decision.
pub fn ensure(
    project: &Project,
    layout: &Layout,
    env_paths: &[PathBuf],
    request: &EnsureRequest<'_>,
    report: &mut Report,
) -> Result<()> {
    let forced = forced_secrets(project, request.force)?;
    let secrets: Vec<&SecretSpec> = project
        .secrets_in_use()
        .filter(|s| !s.is_external())
        .collect();
    crate::store::Naming::EnvKeys.check_keys(&secrets)?;
    let rel = |p: &Path| {
        p.strip_prefix(request.shown_from)
            .unwrap_or(p)
            .display()
            .to_string()
    };

    let mut env = EnvFiles::read(env_paths)?;
    let mut changed: BTreeSet<usize> = BTreeSet::new();
    if !env.any_exists() {
        env.replace_primary(from_template(&request.template, env.primary())?);
        changed.insert(env_paths.len() - 1);
        report.push(
            ReportItem::new(
                rel(env.primary()),
                if request.dry_run {
                    "would-create"
                } else {
                    "created"
                },
            )
            .with_detail(format!("from {}", rel(&request.template))),
        );
    }
    for spec in project
        .secrets
        .iter()
        .filter(|s| !s.in_use && !s.is_external())
    {
        report.push(ReportItem::new(&spec.name, "skipped").with_detail(spec.unused_reason()));
    }
    for spec in secrets {
        let forced = forced.contains(spec.name.as_str());
        let key = &spec.env_key;
        let had_value = env.get(key).is_some_and(|v| !v.is_empty());
        if !forced && keep_or_adopt(spec, &mut env, layout, request, &rel, report, &mut changed)? {
            continue;
        }
        let action = match (request.dry_run, forced && had_value) {
            (true, true) => "would-regenerate",
            (true, false) => "would-generate",
            (false, true) => "regenerated",
            (false, false) => "generated",
        };
        if !request.dry_run {
            let value = fresh_value(spec, env.file_of(key))?;
            changed.insert(env.set(key, &value)?);
        }
        report.push(ReportItem::new(&spec.name, action).with_detail(format!(
            "{}{}",
            as_key(&spec.name, key, ", "),
            what_is_made(spec)
        )));
    }
    if !request.dry_run {
        for index in changed {
            env.write(index)?;
        }
    }
    warn_store_in_env_file(project, env_paths, request.shown_from, report);
    Ok(())
}

/// A secret not forced keeps the value it has (process environment, env file), or adopts
/// the one already in its file; `false` when it has none and needs a new one.
#[allow(clippy::too_many_arguments)]
fn keep_or_adopt(
    spec: &SecretSpec,
    env: &mut EnvFiles,
    layout: &Layout,
    request: &EnsureRequest<'_>,
    rel: &dyn Fn(&Path) -> String,
    report: &mut Report,
    changed: &mut BTreeSet<usize>,
) -> Result<bool> {
    let key = &spec.env_key;
    let current = env.get(key).filter(|v| !v.is_empty());
    if let SecretSource::Environment(var) = &spec.source {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            report.push(ReportItem::new(&spec.name, "kept").with_detail(format!(
                "{}from the process environment (Compose uses it over {})",
                as_key(&spec.name, var, ", "),
                rel(env.file_of(key))
            )));
            return Ok(true);
        }
    }
    if let Some(value) = current {
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::manifest(
                &spec.name,
                format!(
                    "its value in {} is {} bytes, over Key Vault's limit of {MAX_VALUE_BYTES}",
                    env.file_of(key).display(),
                    value.len()
                ),
            ));
        }
        let mut item = ReportItem::new(&spec.name, "kept");
        if !is_derived(&spec.name, key) {
            item = item.with_detail(format!("as {key}"));
        }
        report.push(item);
        return Ok(true);
    }
    // A part's file is not a bundle: a certificate is generated whole.
    let adoptable = spec.certificate.is_none();
    if let Some((value, path)) = adoptable
        .then(|| existing_file_value(spec, layout))
        .transpose()?
        .flatten()
    {
        changed.insert(env.set(key, &value)?);
        report.push(
            ReportItem::new(
                &spec.name,
                if request.dry_run {
                    "would-adopt"
                } else {
                    "adopted"
                },
            )
            .with_detail(format!(
                "{}the value already in {}",
                as_key(&spec.name, key, ", "),
                rel(&path)
            )),
        );
        return Ok(true);
    }
    Ok(false)
}

/// The secrets `--force` names; a name no secret has is a usage error.
fn forced_secrets<'p>(project: &'p Project, force: &[String]) -> Result<BTreeSet<&'p str>> {
    let mut out = BTreeSet::new();
    let mut unknown = Vec::new();
    for name in force {
        match project.lookup(name) {
            Some(spec) => {
                out.insert(spec.name.as_str());
            }
            None => unknown.push(name.as_str()),
        }
    }
    if unknown.is_empty() {
        Ok(out)
    } else {
        Err(Error::Usage(format!(
            "--force {}: no declared secret has that name or .env key",
            unknown.join(", ")
        )))
    }
}

/// `.env` as the template makes it; a missing template says what to do.
fn from_template(template: &Path, env_file: &Path) -> Result<DotEnv> {
    // Read as `.env` is read: a FIFO or device is refused, never waited on.
    let Some(bytes) = crate::dotenv::read_bounded(template, crate::dotenv::MAX_DOTENV_BYTES)?
    else {
        return Err(Error::config(
            template,
            format!(
                "cannot create {} from this template: it does not exist; create it (an empty {} \
                 will do: every secret gets a generated value), or create {} yourself, or pass \
                 --template",
                env_file.display(),
                template
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                env_file.display()
            ),
        ));
    };
    // Parse errors name the template, where the bad line is.
    let parsed = DotEnv::parse_bytes(template, &bytes)?;
    DotEnv::parse(env_file, &parsed.render())
}

/// The value a secret's file already holds (one trailing newline dropped), when it has one:
/// a project adopting compose-secrets keeps the password its database was set up with.
/// A new value for `spec`: its generator's, or for a certificate part the demo's self-signed
/// certificate (the whole bundle; `load` cuts the part).
fn fresh_value(spec: &SecretSpec, env_file: &Path) -> Result<SecretValue> {
    match spec.certificate {
        Some(_) => {
            crate::certificate::self_signed(&spec.vault_name, crate::certificate::DEMO_VALIDITY)
        }
        None => spec.generator.generate().map_err(|e| Error::Io {
            path: env_file.to_path_buf(),
            action: "read OS randomness",
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

/// How a new value is made, for the report.
fn what_is_made(spec: &SecretSpec) -> String {
    match spec.certificate {
        Some(_) => format!(
            "a self-signed certificate valid {} days (base64 of its PEM key and certificate)",
            crate::certificate::DEMO_VALIDITY.as_secs() / 86_400
        ),
        None => spec.generator.to_string(),
    }
}

fn existing_file_value(
    spec: &SecretSpec,
    layout: &Layout,
) -> Result<Option<(SecretValue, PathBuf)>> {
    let Some(placement) = layout.of(&spec.name) else {
        return Ok(None);
    };
    let Some(dir) = layout.open_existing(&placement.dir)? else {
        return Ok(None);
    };
    // Adopting copies a file's content into `.env`. Inside the project that file is the
    // project's own secret; outside it (under a COMPOSE_SECRETS_DIR, which a cloned `.env`
    // can set) it may be any file the user, or root under sudo, can read. Generating a value
    // instead would leave `load` to refuse that file (or `--overwrite` to destroy it), so
    // neither is what the user expects: stop, name the file, and leave the choice to them.
    if !placement.path.starts_with(&layout.project_dir) {
        if !dir.has(&placement.file_name) {
            return Ok(None);
        }
        return Err(Error::manifest(
            &spec.name,
            format!(
                "its file {} already exists outside the project directory {}; `ensure` adopts an existing \
                 file's value into .env only inside the project. If that file holds the value to use, set {} \
                 in .env yourself; otherwise remove the file (or point COMPOSE_SECRETS_DIR elsewhere) to have \
                 a value generated",
                placement.path.display(),
                layout.project_dir.display(),
                spec.env_key
            ),
        ));
    }
    let Some(file) = dir.read(&placement.file_name)? else {
        return Ok(None);
    };
    let mut bytes = file.contents.to_vec();
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(Error::manifest(
            &spec.name,
            format!(
                "its file {} holds {} bytes, over Key Vault's limit of {MAX_VALUE_BYTES}; it cannot be adopted",
                placement.path.display(),
                bytes.len()
            ),
        ));
    }
    match SecretValue::from_bytes(bytes) {
        Ok(value) => Ok(Some((value, placement.path.clone()))),
        Err(e) => {
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            Err(Error::manifest(
                &spec.name,
                format!(
                    "its file {} is not UTF-8 text, so .env cannot hold it; store it base64-encoded, or remove \
                     the file to have a value generated",
                    placement.path.display()
                ),
            ))
        }
    }
}

/// A service reading the demo store as its `env_file`, or naming a secret's key in
/// `environment:` without a value, gets the secret in its environment.
fn warn_store_in_env_file(
    project: &Project,
    env_paths: &[PathBuf],
    shown_from: &Path,
    report: &mut Report,
) {
    for service in project.services.values().filter(|s| s.enabled) {
        for (key, _) in service.environment.iter().filter(|(_, v)| v.is_none()) {
            if let Some(spec) = project.secrets_in_use().find(|s| s.env_key == *key) {
                report.push(
                    ReportItem::new(format!("service {}", service.name), "warning").with_detail(format!(
                        "its `environment:` names {key} with no value, so Compose passes secret {} into \
                         its environment from .env; remove that entry and mount the secret file",
                        spec.name
                    )),
                );
            }
        }
        for path in service.env_files.iter().filter(|p| env_paths.contains(p)) {
            report.push(
                ReportItem::new(format!("service {}", service.name), "warning").with_detail(format!(
                    "its env_file {} is where compose-secrets keeps demo values, so Compose puts every \
                     secret into its environment; give it an env file of its own",
                    path.strip_prefix(shown_from).unwrap_or(path).display()
                )),
            );
        }
    }
}

/// `as KEY` and `then` when `key` is not derived from the secret's name: a line that names the
/// secret shows its `.env` key (or variable) only when it says something new.
fn as_key(secret: &str, key: &str, then: &str) -> String {
    if is_derived(secret, key) {
        String::new()
    } else {
        format!("as {key}{then}")
    }
}
