//! Leaks outside containers: secret values in Compose `environment:` and a readable `.env`.

use super::*;

/// Compose `environment:` must not carry a secret value, literally, through `${VAR}`
/// interpolation of another variable, or by interpolating a secret's own `.env` key.
///
/// The project holds each entry as Compose interpolated it, and which variables it named.
pub fn check_compose_environment(f: &mut Findings, project: &Project, locals: &[LocalSecret<'_>]) {
    let values: HashMap<&str, &SecretValue> = locals
        .iter()
        .filter_map(|l| Some((l.spec.name.as_str(), l.value.as_ref()?)))
        .filter(|(_, v)| v.len() >= MIN_LEAK_LEN)
        .collect();
    for service in project.services.values() {
        let mut hits: Vec<String> = Vec::new();
        for (key, value) in &service.environment {
            let referenced = service.environment_references.get(key);
            for spec in project.secrets.iter().filter(|s| !s.is_external()) {
                if referenced.is_some_and(|r| r.contains(&spec.env_key)) {
                    hits.push(format!(
                        "{key} interpolates ${{{}}} (secret {})",
                        spec.env_key, spec.name
                    ));
                } else if values.get(spec.name.as_str()).is_some_and(|v| {
                    value
                        .as_deref()
                        .is_some_and(|value| value.contains(v.expose()))
                }) {
                    hits.push(format!("{key} holds the value of secret {}", spec.name));
                }
            }
        }
        let subject = format!("service {}", service.name);
        if hits.is_empty() {
            f.add(
                Status::Pass,
                "leaks",
                subject,
                "no secret value in Compose `environment:`",
            );
        } else {
            f.add(
                Status::Fail,
                "leaks",
                subject,
                format!(
                    "Compose `environment:` {}; mount the secret file instead",
                    hits.join("; ")
                ),
            );
        }
    }
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
