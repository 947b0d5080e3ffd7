//! `load --env-output FILE [--map VAULT=KEY]...`: the `get_secrets.sh` pattern. Values go into
//! an env file's `KEY=` lines, atomically, keeping every other line and the file's mode.

use std::path::{Path, PathBuf};

use crate::dotenv::DotEnv;
use crate::error::{Error, Result};
use crate::files::secret_dir::write_file_atomic;
use crate::output::{Report, ReportItem};
use crate::secret::SecretValue;
use crate::store::SecretStore;

/// The env file `--env-output` names, read and checked before any secret file is written.
pub struct EnvOutput {
    pub path: PathBuf,
    env: DotEnv,
    mode: u32,
}

/// One `KEY=` line `--env-output` fills: from the store key's value, or for a certificate
/// part (`part`) from that part of the bundle.
pub struct EnvLine<'a> {
    pub store_key: String,
    pub env_key: String,
    pub part: Option<&'a crate::compose::SecretSpec>,
}

pub fn parse_maps(maps: &[String]) -> Result<Vec<(String, String)>> {
    maps.iter()
        .map(|m| {
            let (vault, key) = m
                .split_once('=')
                .ok_or_else(|| Error::Usage(format!("--map {m}: expected VAULT_NAME=ENV_KEY")))?;
            if vault.is_empty() || !crate::secret::is_valid_env_key(key) {
                return Err(Error::Usage(format!(
                    "--map {m}: expected VAULT_NAME=ENV_KEY with a valid env key"
                )));
            }
            Ok((vault.to_string(), key.to_string()))
        })
        .collect()
}

/// Read and check the env file `--env-output` names (relative to `cwd`): parsed, not a
/// symlink, its mode kept (0600 for a new file).
pub fn open_env_output(cwd: &Path, output: &Path) -> Result<EnvOutput> {
    let path = if output.is_absolute() {
        output.to_path_buf()
    } else {
        cwd.join(output)
    };
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::UnsafePath {
            path,
            message: "is a symlink; compose-secrets never writes through one".into(),
        });
    }
    let mode = std::fs::metadata(&path).map_or(0o600, |m| {
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777
    });
    let env = match DotEnv::read(&path)? {
        Some(env) => env,
        None => DotEnv::parse(&path, "")?,
    };
    Ok(EnvOutput { path, env, mode })
}

/// Set each wanted `ENV_KEY=` line from the value of its store key (a certificate part: its
/// part), fetching only what this run did not fetch already; write the file once,
/// atomically, keeping every other line.
pub async fn write_env_output(
    store: &dyn SecretStore,
    output: EnvOutput,
    wanted: &[EnvLine<'_>],
    already: &super::Loaded,
    dry_run: bool,
    shown_from: &Path,
    report: &mut Report,
) -> Result<()> {
    let shown = crate::output::shown_path(&output.path.display().to_string(), shown_from);
    let EnvOutput {
        path,
        mut env,
        mode,
    } = output;
    let mut missing = Vec::new();
    let mut changed = false;
    for line in wanted {
        let (store_key, env_key) = (&line.store_key, &line.env_key);
        let value = match value_of(store, line, already).await? {
            Some(v) => v,
            None => {
                missing.push(store_key.clone());
                continue;
            }
        };
        let same = env.get(env_key).is_some_and(|v| v == &value);
        if !same {
            env.set(env_key, &value);
            changed = true;
        }
        let action = match (same, dry_run) {
            (true, _) => "unchanged",
            (false, true) => "would-set",
            (false, false) => "set",
        };
        // The line names the store key: the env key only when it is not derived from it.
        let detail = if crate::compose::names::is_derived(store_key, env_key) {
            format!("in {shown}")
        } else {
            format!("as {env_key} in {shown}")
        };
        let subject = line.part.map_or(store_key.as_str(), |s| &s.name);
        report.push(ReportItem::new(subject, action).with_detail(detail));
    }
    if !missing.is_empty() {
        return Err(Error::MissingSecrets {
            names: missing,
            origin: store.describe(),
        });
    }
    if changed && !dry_run {
        write_file_atomic(&path, env.render().as_bytes(), mode)?;
    }
    Ok(())
}

/// A line's value: fetched this run (a part by its Compose secret, since the parts of one
/// vault object differ), else read now; `None` when the store has none.
async fn value_of(
    store: &dyn SecretStore,
    line: &EnvLine<'_>,
    already: &super::Loaded,
) -> Result<Option<SecretValue>> {
    let fetched_now = match line.part {
        Some(spec) => already.by_secret.get(&spec.name),
        None => already.values.get(&line.store_key),
    };
    if let Some(v) = fetched_now {
        return Ok(Some(v.clone()));
    }
    match store.get_latest(&line.store_key).await {
        Ok(f) if f.value.is_empty() => Ok(None),
        Ok(f) => match line.part {
            Some(spec) => Ok(Some(
                crate::certificate::file_value(spec, &line.store_key, f)?.value,
            )),
            None => Ok(Some(f.value)),
        },
        Err(Error::SecretNotFound { .. } | Error::MissingSecrets { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
