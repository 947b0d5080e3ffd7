//! `ensure`: create `.env` from the template and fill empty secrets from their generators.

use crate::cli::EnsureOpts;
use crate::context::Context;
use crate::dotenv::DotEnv;
use crate::error::{exit, Error, Result};
use crate::files::secret_dir::write_file_atomic;
use crate::output::{Report, ReportItem};
use crate::secret::{SecretValue, MAX_VALUE_BYTES};

pub async fn run(ctx: &Context, opts: &EnsureOpts) -> Result<u8> {
    let project = ctx.project()?;
    let unknown: Vec<&str> = opts
        .force
        .iter()
        .filter(|name| project.lookup(name).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(Error::Usage(format!(
            "--force {}: no declared secret has that name or .env key",
            unknown.join(", ")
        )));
    }
    let template = opts
        .template
        .as_deref()
        .map_or_else(|| ctx.template.clone(), |t| ctx.cwd.join(t));
    // The lock comes before the first read of .env, so a rotation cannot slip in between.
    let _lock = if opts.dry_run {
        None
    } else {
        Some(
            ctx.begin_writing(std::time::Duration::from_secs(30))
                .await?,
        )
    };
    let secrets: Vec<&crate::compose::SecretSpec> = project
        .secrets
        .iter()
        .filter(|s| !s.is_external())
        .collect();
    crate::store::Naming::EnvKeys.check_keys(&secrets)?;
    let existing = DotEnv::read(&ctx.env_file)?;
    let created = existing.is_none();
    let mut env = match existing {
        Some(env) => env,
        None => {
            let bytes = std::fs::read(&template).map_err(|e| {
                Error::config(
                    &template,
                    format!(
                        "cannot create {} from this template: {e}",
                        ctx.env_file.display()
                    ),
                )
            })?;
            // Parse errors name the template, where the bad line is.
            let parsed = DotEnv::parse_bytes(&template, &bytes)?;
            DotEnv::parse(&ctx.env_file, &parsed.render())?
        }
    };

    let mut report = Report::new("ensure", ctx.env_file.display().to_string(), opts.dry_run);
    if created {
        report.push(
            ReportItem::new(
                ctx.env_file.display().to_string(),
                if opts.dry_run {
                    "would-create"
                } else {
                    "created"
                },
            )
            .with_detail(format!("from {}", template.display())),
        );
    }
    let mut changed = created;
    for spec in secrets {
        let forced = opts
            .force
            .iter()
            .any(|f| project.lookup(f).is_some_and(|s| s.name == spec.name));
        let has_value = env.get(&spec.env_key).is_some_and(|v| !v.is_empty());
        if has_value && !forced {
            let len = env.get(&spec.env_key).map_or(0, SecretValue::len);
            if len > MAX_VALUE_BYTES {
                return Err(Error::manifest(
                    &spec.name,
                    format!(
                        "its value in {} is {len} bytes, over Key Vault's limit of {MAX_VALUE_BYTES}",
                        ctx.env_file.display()
                    ),
                ));
            }
            report.push(ReportItem::new(&spec.name, "kept").with_detail(spec.env_key.clone()));
            continue;
        }
        let action = match (opts.dry_run, forced && has_value) {
            (true, true) => "would-regenerate",
            (true, false) => "would-generate",
            (false, true) => "regenerated",
            (false, false) => "generated",
        };
        if !opts.dry_run {
            let value = spec.generator.generate().map_err(|e| Error::Io {
                path: ctx.env_file.clone(),
                action: "read OS randomness",
                source: std::io::Error::other(e.to_string()),
            })?;
            env.set(&spec.env_key, &value);
        }
        changed = true;
        report.push(
            ReportItem::new(&spec.name, action)
                .with_detail(format!("{} ({})", spec.env_key, spec.generator)),
        );
    }
    if changed && !opts.dry_run {
        write_file_atomic(&ctx.env_file, env.render().as_bytes(), 0o600)?;
    }
    ctx.reporter.print(&report);
    Ok(exit::OK)
}
