//! Leaks outside containers: secret values in Compose `environment:` or a service's
//! `env_file`, and a readable `.env`.

use super::*;

/// Compose `environment:` must not carry a secret value, literally, through `${VAR}`
/// interpolation of another variable, by interpolating a secret's own `.env` key, or by
/// naming that key with no value (`- DB_PASSWORD`: Compose then takes it from the shell or
/// `.env`). Services whose profile is off are not deployed, and not checked.
///
/// The project holds each entry as Compose interpolated it, and which variables it named.
pub fn check_compose_environment(f: &mut Findings, project: &Project, locals: &[LocalSecret<'_>]) {
    let values: HashMap<&str, &SecretValue> = locals
        .iter()
        .filter_map(|l| Some((l.spec.name.as_str(), l.value.as_ref()?)))
        .filter(|(_, v)| v.len() >= MIN_LEAK_LEN)
        .collect();
    // A provider service runs no container, so it has no environment to leak into.
    for service in project
        .services
        .values()
        .filter(|s| s.enabled && s.provider.is_none())
    {
        let mut hits: Vec<String> = Vec::new();
        for (key, value) in &service.environment {
            let referenced = service.environment_references.get(key);
            // A bare key is filled in from the environment Compose runs with, `.env` included.
            let passed = value
                .is_none()
                .then(|| project.variables.get(key))
                .flatten()
                .filter(|v| !v.is_empty());
            let value = value.as_deref().or(passed.map(String::as_str));
            for spec in project.secrets.iter().filter(|s| !s.is_external()) {
                if passed.is_some() && *key == spec.env_key {
                    hits.push(format!(
                        "{key} (no value given) takes secret {}'s value from the environment or .env",
                        spec.name
                    ));
                } else if referenced.is_some_and(|r| r.contains(&spec.env_key)) {
                    hits.push(format!(
                        "{key} interpolates ${{{}}} (secret {})",
                        spec.env_key, spec.name
                    ));
                } else if values
                    .get(spec.name.as_str())
                    .is_some_and(|v| value.is_some_and(|value| holds_value(value, &v.as_text())))
                {
                    hits.push(format!("{key} holds the value of secret {}", spec.name));
                }
            }
        }
        hits.extend(env_file_hits(f, project, service, &values));
        let subject = format!("service {}", service.name);
        if hits.is_empty() {
            f.add(
                Status::Pass,
                "leaks",
                subject,
                "no secret value in Compose `environment:` or `env_file`",
            );
        } else {
            f.add(
                Status::Fail,
                "leaks",
                subject,
                format!(
                    "the container's environment gets secrets: {}; mount the secret file instead",
                    hits.join("; ")
                ),
            );
        }
    }
}

/// What a service's `env_file`s pass into its environment: a secret's own `.env` key with a
/// value (the demo store given to a service as `env_file: .env`), or any value of a secret.
fn env_file_hits(
    f: &Findings,
    project: &Project,
    service: &crate::compose::ServiceSpec,
    values: &HashMap<&str, &SecretValue>,
) -> Vec<String> {
    let mut hits = Vec::new();
    for path in &service.env_files {
        let shown = f.path_subject(path);
        let entries = match project.read_env_file(path) {
            Ok(Some(entries)) => entries,
            Ok(None) => continue,
            Err(e) => {
                hits.push(format!("env_file {shown} cannot be read ({e})"));
                continue;
            }
        };
        for (key, value) in &entries {
            for spec in project.secrets.iter().filter(|s| !s.is_external()) {
                if spec.env_key == *key && !value.is_empty() {
                    hits.push(format!(
                        "env_file {shown} passes secret {} as {key}",
                        spec.name
                    ));
                } else if values
                    .get(spec.name.as_str())
                    .is_some_and(|v| holds_value(value, &v.as_text()))
                {
                    hits.push(format!(
                        "env_file {shown}: {key} holds the value of secret {}",
                        spec.name
                    ));
                }
            }
        }
    }
    hits
}

/// `.env` is 0600 and not a symlink.
pub fn check_env_file(f: &mut Findings, env_file: &Path) {
    let subject = f.path_subject(env_file);
    match crate::files::secret_dir::describe_mode(env_file) {
        Err(_) => f.add(Status::Skip, "leaks", subject, "no .env file"),
        Ok((_, _, _, true)) => f.add(
            Status::Fail,
            "leaks",
            subject,
            "is a symlink: its secrets live wherever it points; make it a regular 0600 file",
        ),
        Ok((mode, _, _, false)) if mode & 0o077 != 0 => f.add(
            Status::Fail,
            "leaks",
            subject,
            format!("mode {mode:04o}, expected 0600 (chmod 600)"),
        ),
        Ok((mode, _, _, false)) => {
            f.add(Status::Pass, "leaks", subject, format!("mode {mode:04o}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;

    #[test]
    fn a_secret_in_compose_environment_is_a_leak_literal_interpolated_or_by_reference() {
        let check = |env_line: &str, variables: &[(&str, &str)]| {
            let fx = Fixture::with_env(&COMPOSE.replace("PLAIN: hello", env_line), variables);
            let (_, locals) = fx.files();
            let mut f = Findings::default();
            check_compose_environment(&mut f, &fx.manifest, &locals);
            f
        };
        let f = check(&format!("PASSWORD: \"{VALUE}\""), &[]);
        assert_only(
            &f,
            "leaks",
            "service app",
            Status::Fail,
            "PASSWORD holds the value of secret db-password",
        );
        let f = check("PASSWORD: ${DB_PASSWORD}", &[]);
        assert_only(
            &f,
            "leaks",
            "service app",
            Status::Fail,
            "PASSWORD interpolates ${DB_PASSWORD} (secret db-password)",
        );
        let f = check("DSN: postgres://app:${PGPASS:-x}@db", &[("PGPASS", VALUE)]);
        assert_only(
            &f,
            "leaks",
            "service app",
            Status::Fail,
            "DSN holds the value of secret db-password",
        );
        // A bare key takes its value from the environment Compose runs with (`.env` too).
        let f = check("DB_PASSWORD:", &[("DB_PASSWORD", VALUE)]);
        assert_only(
            &f,
            "leaks",
            "service app",
            Status::Fail,
            "DB_PASSWORD (no value given) takes secret db-password's value",
        );
        let f = check("DB_PASSWORD:", &[]);
        assert_only(&f, "leaks", "service app", Status::Pass, "no secret value");
        // `$$` is a literal dollar, not a reference.
        let f = check(
            "PASSWORD_FILE: /run/secrets/db-password$${DB_PASSWORD}",
            &[],
        );
        assert_only(&f, "leaks", "service app", Status::Pass, "no secret value");
        assert_only(
            &f,
            "leaks",
            "service worker",
            Status::Pass,
            "no secret value",
        );
    }

    #[test]
    fn an_env_file_passing_a_secret_to_a_service_is_a_leak() {
        let compose = COMPOSE.replace(
            "  worker:\n    image: demo\n",
            "  worker:\n    image: demo\n    env_file: [.env, {path: conf/other.env, required: false}]\n",
        );
        let fx = Fixture::new(&compose);
        let check = || {
            let (_, locals) = fx.files();
            let mut f = Findings::relative_to(fx.dir.path());
            check_compose_environment(&mut f, &fx.manifest, &locals);
            f
        };
        let worker = |want, says| assert_only(&check(), "leaks", "service worker", want, says);
        // Missing env files pass nothing.
        worker(Status::Pass, "env_file");
        std::fs::write(
            fx.dir.path().join(".env"),
            "TZ=UTC\nDB_PASSWORD=generated\n",
        )
        .unwrap();
        worker(
            Status::Fail,
            "env_file .env passes secret db-password as DB_PASSWORD",
        );
        std::fs::write(fx.dir.path().join(".env"), "TZ=UTC\n").unwrap();
        std::fs::create_dir(fx.dir.path().join("conf")).unwrap();
        std::fs::write(
            fx.dir.path().join("conf/other.env"),
            format!("DSN=postgres://app:{VALUE}@db\n"),
        )
        .unwrap();
        worker(
            Status::Fail,
            "env_file conf/other.env: DSN holds the value of secret db-password",
        );
        assert_only(&check(), "leaks", "service app", Status::Pass, "");
    }

    #[test]
    fn a_readable_env_file_fails_until_0600() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join(".env");
        std::fs::write(&env, "A=b\n").unwrap();
        set_mode(&env, 0o644);
        let mut f = Findings::relative_to(dir.path());
        check_env_file(&mut f, &env);
        assert_only(
            &f,
            "leaks",
            ".env",
            Status::Fail,
            "mode 0644, expected 0600",
        );
        set_mode(&env, 0o600);
        let mut f = Findings::relative_to(dir.path());
        check_env_file(&mut f, &env);
        assert_only(&f, "leaks", ".env", Status::Pass, "0600");
        assert_eq!(f.checks[0].subject, ".env");
    }
}
