//! Which secrets a `rotate` covers: names, `--all`, `--older-than`, and a value from stdin.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use super::policy;
use crate::audit;
use crate::compose::{Project, SecretSource, SecretSpec};
use crate::error::{Error, Result};
use crate::files::runtime_dir::RuntimeDir;
use crate::output::{Report, ReportItem};
use crate::secret::{SecretValue, MAX_VALUE_BYTES};
use crate::store::{tags, SecretStore};

/// What the command line asked to rotate.
pub struct Selection<'a> {
    pub names: &'a [String],
    pub all: bool,
    /// `--older-than AGE`, as written.
    pub older_than: Option<&'a str>,
    /// `--due`: what the secrets' own `rotate-every` says is due.
    pub due: bool,
    pub value_stdin: bool,
}

/// The secrets named (or all of them), and the value from stdin when one was piped in.
/// Checked before anything is locked or opened.
pub struct Chosen<'m> {
    pub named: Vec<&'m SecretSpec>,
    pub value: Option<SecretValue>,
    age: Option<(Duration, String)>,
    policy: bool,
}

impl Selection<'_> {
    pub fn choose<'m>(&self, project: &'m Project) -> Result<Chosen<'m>> {
        if self.names.is_empty() && !self.all && self.older_than.is_none() && !self.due {
            return Err(Error::Usage(
                "rotate: name the secrets to rotate, or pass --all, --due or --older-than AGE"
                    .into(),
            ));
        }
        let age = self
            .older_than
            .map(|a| Ok::<_, Error>((parse_age(a)?, a.trim().to_string())))
            .transpose()?;
        let named = if self.names.is_empty() {
            all_rotatable(project)
        } else {
            resolve_names(project, self.names)?
        };
        if self.value_stdin
            && (named.len() != 1 || self.all || self.older_than.is_some() || self.due)
        {
            return Err(Error::Usage(
                "--value-stdin takes exactly one named secret (not --all, --due or --older-than)"
                    .into(),
            ));
        }
        let value = if self.value_stdin {
            Some(read_value(std::io::stdin().lock())?)
        } else {
            None
        };
        Ok(Chosen {
            named,
            value,
            age,
            policy: self.due,
        })
    }
}

impl<'m> Chosen<'m> {
    /// The chosen secrets that are due: with `--older-than`, those rotated longer ago (or
    /// never); with `--due`, those their rotation policy says are due; the others reported
    /// `not-due`. Else all of them.
    pub async fn due(
        &self,
        store: &dyn SecretStore,
        runtime: Option<&RuntimeDir>,
        report: &mut crate::output::Report,
    ) -> Result<Vec<&'m SecretSpec>> {
        if self.policy {
            return by_policy(store, self.named.clone(), runtime, report).await;
        }
        let Some((age, written)) = &self.age else {
            return Ok(self.named.clone());
        };
        let rotated = last_rotated(store, &self.named, runtime).await?;
        let due = older_than(self.named.clone(), &rotated, *age, crate::clock::unix_now());
        for spec in self
            .named
            .iter()
            .filter(|s| !due.iter().any(|d| d.name == s.name))
        {
            report.push(
                crate::output::ReportItem::new(&spec.name, "not-due")
                    .with_detail(format!("rotated less than {written} ago")),
            );
        }
        Ok(due)
    }
}

/// Find each name by Compose name, vault name or `.env` key; an unknown name is a usage error.
pub fn resolve_names<'m>(project: &'m Project, names: &[String]) -> Result<Vec<&'m SecretSpec>> {
    let mut out: Vec<&SecretSpec> = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        match project.lookup(name) {
            Some(spec) if !spec.in_use => {
                return Err(Error::manifest(
                    &spec.name,
                    format!("is not rotated: {}", spec.unused_reason()),
                ));
            }
            Some(spec) => {
                rotatable(spec)?;
                if !out.iter().any(|s| s.name == spec.name) {
                    out.push(spec);
                }
            }
            None => unknown.push(name.as_str()),
        }
    }
    if !unknown.is_empty() {
        let known: Vec<&str> = project.secrets.iter().map(|s| s.name.as_str()).collect();
        return Err(Error::Usage(format!(
            "unknown secret{} {} (declared: {})",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    Ok(out)
}

/// Every declared secret that `rotate` can handle (`file:` secrets), for `--all`.
pub fn all_rotatable(project: &Project) -> Vec<&SecretSpec> {
    project
        .secrets_in_use()
        .filter(|s| rotatable(s).is_ok())
        .collect()
}

pub(super) fn rotatable(spec: &SecretSpec) -> Result<()> {
    match spec.source {
        SecretSource::File(_) => Ok(()),
        SecretSource::Environment(_) => Err(Error::manifest(
            &spec.name,
            "is an `environment:` secret: Compose copies it at container creation, so a restart cannot deliver a \
             new value; rotate it in its source and recreate the containers (`docker compose up -d`)",
        )),
        SecretSource::External { .. } => Err(Error::manifest(
            &spec.name,
            "is `external`: it is managed outside Compose, so compose-secrets does not rotate it",
        )),
    }
}

/// Parse an age such as `90d`, `12h`, `30m`, `45s` or `2w`.
pub fn parse_age(text: &str) -> Result<Duration> {
    crate::clock::parse_duration(text).ok_or_else(|| {
        Error::Usage(format!(
            "--older-than {}: expected a number and a unit, e.g. 90d, 12h, 30m",
            text.trim()
        ))
    })
}

/// When each candidate was last rotated (Unix seconds), or `None` when never.
///
/// Key Vault: the `rotated-at` tag of the latest version, from one listing. `.env` keeps no
/// tags, so the last successful rotation in the audit log stands in.
pub async fn last_rotated(
    store: &dyn SecretStore,
    candidates: &[&SecretSpec],
    runtime: Option<&RuntimeDir>,
) -> Result<BTreeMap<String, Option<i64>>> {
    let mut out = BTreeMap::new();
    if store.keeps_versions() {
        let listing = policy::listing_by_name(store).await?;
        for spec in candidates {
            let at = listing
                .get(&store.key_for(spec).to_ascii_lowercase())
                .and_then(|i| i.tags.get(tags::ROTATED_AT))
                .and_then(|t| audit::parse_rfc3339(t));
            out.insert(spec.name.clone(), at);
        }
    } else {
        for spec in candidates {
            out.insert(spec.name.clone(), audit::last_rotation(runtime, &spec.name));
        }
    }
    Ok(out)
}

/// Keep the candidates rotated longer than `age` ago, or never.
pub fn older_than<'m>(
    candidates: Vec<&'m SecretSpec>,
    rotated: &BTreeMap<String, Option<i64>>,
    age: Duration,
    now: i64,
) -> Vec<&'m SecretSpec> {
    let age = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
    candidates
        .into_iter()
        .filter(|s| match rotated.get(&s.name).copied().flatten() {
            Some(at) => now.saturating_sub(at) > age,
            None => true,
        })
        .collect()
}

/// The secrets `--due` rotates: a `rotate-every` whose period has passed since the value
/// was set (or no record of when), or a version whose `exp` has passed. The others with a
/// policy get a `not-due` line; those without one are left out.
async fn by_policy<'m>(
    store: &dyn SecretStore,
    named: Vec<&'m SecretSpec>,
    runtime: Option<&RuntimeDir>,
    report: &mut Report,
) -> Result<Vec<&'m SecretSpec>> {
    let now = crate::clock::unix_now();
    let with_policy: Vec<&SecretSpec> = named
        .iter()
        .copied()
        .filter(|s| s.rotate_every.is_some())
        .collect();
    let set = policy::last_set(store, &with_policy, runtime).await?;
    let mut kept = Vec::new();
    for spec in named {
        let last = set.get(&spec.name).copied().unwrap_or_default();
        // A version past its `exp` is due whatever its period says.
        let expired = last.expires.is_some_and(|exp| exp <= now);
        match policy::standing(spec, last.at, now) {
            policy::Standing::NoPolicy => {}
            standing if standing.is_due() || expired => kept.push(spec),
            policy::Standing::Current { age, period } | policy::Standing::Soon { age, period } => {
                report.push(ReportItem::new(&spec.name, "not-due").with_detail(format!(
                    "set {} ago, rotate-every {}: due in {}",
                    policy::human(age),
                    policy::human(period),
                    policy::human(period - age)
                )));
            }
            _ => {}
        }
    }
    Ok(kept)
}

/// Read a value from stdin: everything, minus ONE trailing newline; empty or over 25 KB is refused.
pub fn read_value(mut input: impl Read) -> Result<SecretValue> {
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    input
        .by_ref()
        .take(MAX_VALUE_BYTES as u64 + 3)
        .read_to_end(&mut bytes)
        .map_err(Error::io("<stdin>", "read the new value"))?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(Error::Usage(
            "--value-stdin: stdin is empty; pipe the new value in (it is never taken from the command line)".into(),
        ));
    }
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(Error::Usage(format!(
            "--value-stdin: the value is over Key Vault's limit of {MAX_VALUE_BYTES} bytes"
        )));
    }
    SecretValue::from_bytes(bytes.to_vec())
        .map_err(|_| Error::Usage("--value-stdin: the value is not UTF-8".into()))
}
