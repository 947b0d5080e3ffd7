//! Containers: stale containers, values in container config, Docker health.

use super::*;

/// Stale containers, leaks into container config, and Docker health.
pub fn check_containers(
    f: &mut Findings,
    manifest: &Project,
    locals: &[LocalSecret<'_>],
    containers: &[ContainerInfo],
) {
    if containers.is_empty() {
        f.add(
            Status::Warn,
            "containers",
            format!("project {}", manifest.name),
            "no containers of this Compose project; nothing to check for staleness",
        );
    }
    for c in containers {
        let subject = format!("{} ({})", c.name, c.service);
        let leaked = leaks_in_container(c, locals);
        if leaked.is_empty() {
            f.add(
                Status::Pass,
                "leaks",
                &subject,
                "no secret value in env, labels or command",
            );
        } else {
            f.add(
                Status::Fail,
                "leaks",
                &subject,
                format!(
                    "secret value exposed: {}; recreate the container without it",
                    leaked.join("; ")
                ),
            );
        }
        if !c.running {
            f.add(
                Status::Warn,
                "containers",
                &subject,
                format!("not running ({})", or_unknown(&c.status)),
            );
            continue;
        }
        check_staleness(f, &subject, c, locals);
        match c.health.as_deref() {
            Some("healthy") => f.add(Status::Pass, "health", &subject, "Docker health: healthy"),
            Some("unhealthy") => {
                f.add(Status::Fail, "health", &subject, "Docker health: unhealthy")
            }
            Some(other) => f.add(
                Status::Warn,
                "health",
                &subject,
                format!("Docker health: {other}"),
            ),
            None => f.add(Status::Skip, "health", &subject, "no HEALTHCHECK"),
        }
    }
}

/// How far a file's mtime may lag the moment it was written. A new file's timestamp comes
/// from the kernel's coarse clock, which advances once a tick (4 ms at HZ=250, 10 ms at
/// HZ=100), while Docker's `StartedAt` is exact: a container started a few milliseconds
/// before a write can look as if it started after it (seen here: a rollback writing the
/// file 1-4 ms after the engine restarted the container).
const MTIME_SLACK_NS: i128 = 10_000_000;

/// A running container that started before one of its secret files was last written still
/// holds the old value (Compose bind-mounts the file; the app read it at start). Within the
/// mtime's slack the order cannot be told, and a container that might be stale is reported
/// as stale: `load` or `rotate` and a restart are never that close together.
fn check_staleness(f: &mut Findings, subject: &str, c: &ContainerInfo, locals: &[LocalSecret<'_>]) {
    let Some(started) = c
        .started_at
        .as_deref()
        .and_then(crate::clock::parse_rfc3339_ns)
    else {
        f.add(
            Status::Warn,
            "containers",
            subject,
            "Docker reports no start time; staleness not checked",
        );
        return;
    };
    let stale: Vec<&str> = locals
        .iter()
        .filter(|l| l.spec.services().contains(&c.service))
        .filter(|l| {
            l.mtime_ns
                .is_some_and(|written| written + MTIME_SLACK_NS > started)
        })
        .map(|l| l.spec.name.as_str())
        .collect();
    if stale.is_empty() {
        f.add(
            Status::Pass,
            "containers",
            subject,
            "started after its secret files were last written",
        );
    } else {
        f.add(
            Status::Fail,
            "containers",
            subject,
            format!(
                "service {} container {} started before secret {} was last written (or too close to the write to tell): \
                 it may still hold the old value; restart it (`load` and `rotate --no-restart` do not restart containers)",
                c.service,
                c.name,
                stale.join(", ")
            ),
        );
    }
}

/// Which secrets' values appear in a container's env, labels or command, and where.
fn leaks_in_container(c: &ContainerInfo, locals: &[LocalSecret<'_>]) -> Vec<String> {
    let mut leaked = Vec::new();
    for local in locals {
        let Some(value) = local.value.as_ref().filter(|v| v.len() >= MIN_LEAK_LEN) else {
            continue;
        };
        let text = value.as_text();
        let v = text.as_str();
        let places: Vec<&str> = [
            ("Config.Env", c.env.iter().any(|e| holds_value(e, v))),
            (
                "labels",
                c.labels
                    .iter()
                    .any(|(k, l)| holds_value(k, v) || holds_value(l, v)),
            ),
            ("command", c.command.iter().any(|a| holds_value(a, v))),
        ]
        .into_iter()
        .filter_map(|(place, hit)| hit.then_some(place))
        .collect();
        if !places.is_empty() {
            leaked.push(format!("{} in {}", local.spec.name, places.join(" and ")));
        }
    }
    leaked
}

/// Containers of the project as [`super::gather::containers`] found them: staleness, leaks,
/// Docker health. An unreachable engine is one failure naming it.
pub fn check_docker(
    f: &mut Findings,
    manifest: &Project,
    locals: &[LocalSecret<'_>],
    containers: &super::facts::Containers,
) {
    use super::facts::Containers;
    match containers {
        Containers::Unreachable { engine, why } => f.add(
            Status::Fail,
            "containers",
            engine,
            format!("{why} (or pass --no-docker)"),
        ),
        Containers::Failed(why) => f.add(
            Status::Fail,
            "containers",
            format!("project {}", manifest.name),
            why,
        ),
        Containers::Listed(listed) => {
            check_containers(f, manifest, locals, listed);
            // A start-first replacement that a crash interrupted: an extra container.
            for leftover in crate::deploy::replace::leftovers(listed) {
                let (_, name) = leftover.extra();
                f.add(
                    Status::Fail,
                    "containers",
                    name.to_string(),
                    leftover.describe(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::facts::Containers;
    use crate::checks::fixture::*;

    /// Over what the gather phase found, with no engine at all.
    #[test]
    fn an_unreachable_engine_or_a_failed_listing_is_one_failure() {
        let fx = Fixture::new(COMPOSE);
        let (_, locals) = fx.files();
        let unreachable = Containers::Unreachable {
            engine: "DOCKER_HOST=tcp://127.0.0.1:9".into(),
            why: "connection refused".into(),
        };
        let mut f = Findings::default();
        check_docker(&mut f, &fx.manifest, &locals, &unreachable);
        assert_eq!(f.checks.len(), 1, "{:#?}", f.checks);
        assert_only(
            &f,
            "containers",
            "DOCKER_HOST=tcp://127.0.0.1:9",
            Status::Fail,
            "connection refused (or pass --no-docker)",
        );
        assert!(unreachable.running().is_empty());

        let mut f = Findings::default();
        let failed = Containers::Failed("list containers: permission denied".into());
        check_docker(&mut f, &fx.manifest, &locals, &failed);
        assert_eq!(f.checks.len(), 1, "{:#?}", f.checks);
        assert_only(&f, "containers", PROJECT, Status::Fail, "permission denied");
    }

    async fn containers(engine: &MemoryEngine) -> Vec<ContainerInfo> {
        engine.project_containers(PROJECT).await.unwrap()
    }

    async fn check_all(
        fx: &Fixture,
        locals: &[LocalSecret<'_>],
        engine: &MemoryEngine,
    ) -> Findings {
        let mut f = Findings::default();
        check_containers(&mut f, &fx.manifest, locals, &containers(engine).await);
        f
    }

    #[tokio::test]
    async fn a_container_started_before_its_secret_was_written_is_stale_until_restarted() {
        let fx = Fixture::new(COMPOSE);
        let engine = MemoryEngine::new();
        let app = engine.add(PROJECT, "app", 1, true);
        let worker = engine.add(PROJECT, "worker", 1, false);
        engine.update(&app, |c| {
            c.started_at = Some("2001-02-03T04:05:06.789Z".into())
        });
        engine.update(&worker, |c| {
            c.started_at = Some("2001-02-03T04:05:06Z".into())
        });
        let (mut f, locals) = fx.files();
        check_containers(&mut f, &fx.manifest, &locals, &containers(&engine).await);
        assert_only(
            &f,
            "containers",
            "(app)",
            Status::Fail,
            "service app container unit_app_1 started before secret db-password",
        );
        // The worker mounts no secret: nothing it holds can be stale.
        assert_only(&f, "containers", "(worker)", Status::Pass, "started after");

        // The app's verdict when it started `after_ns` past its secret's mtime.
        let written = locals[0].mtime_ns.unwrap();
        let start_app_at = |after_ns: i128| {
            let started = time::OffsetDateTime::from_unix_timestamp_nanos(written + after_ns)
                .unwrap()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            engine.update(&app, |c| c.started_at = Some(started));
        };
        // 3 ms after the mtime is within the coarse clock's slack, so maybe before the write
        // itself: stale. Past the slack: restarted after the write.
        for (after_ns, status, message) in [
            (3_000_000, Status::Fail, "started before secret"),
            (MTIME_SLACK_NS + 1, Status::Pass, "started after"),
        ] {
            start_app_at(after_ns);
            let mut f = Findings::default();
            check_containers(&mut f, &fx.manifest, &locals, &containers(&engine).await);
            assert_only(&f, "containers", "(app)", status, message);
        }
    }

    /// A value that is not text (a certificate's `pfx`) can only be put in an environment
    /// variable encoded: its base64 there is a leak like any other.
    #[tokio::test]
    async fn a_binary_value_leaked_as_base64_is_found() {
        use base64::Engine as _;
        let fx = Fixture::new(COMPOSE);
        let pfx: Vec<u8> = (0u8..=255).rev().collect();
        fx.write_secret(&pfx);
        let (_, locals) = fx.files();
        let engine = MemoryEngine::new();
        let id = engine.add(PROJECT, "worker", 1, false);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&pfx);
        engine.set_env(&id, vec![format!("TLS_PFX={encoded}")]);
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "leaks",
            "(worker)",
            Status::Fail,
            "db-password in Config.Env",
        );
    }

    #[tokio::test]
    async fn a_value_in_env_labels_or_command_is_a_leak_named_without_the_value() {
        let fx = Fixture::new(COMPOSE);
        let (_, locals) = fx.files();
        let engine = MemoryEngine::new();
        let id = engine.add(PROJECT, "worker", 1, false);
        engine.set_env(&id, vec![format!("DB_URL=postgres://u:{VALUE}@db/app")]);
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "leaks",
            "(worker)",
            Status::Fail,
            "db-password in Config.Env",
        );
        engine.set_env(
            &id,
            vec!["DB_PASSWORD_FILE=/run/secrets/db-password".into()],
        );
        engine.update(&id, |c| {
            c.labels.insert("password".into(), VALUE.into());
        });
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "leaks",
            "(worker)",
            Status::Fail,
            "db-password in labels",
        );
        engine.update(&id, |c| {
            c.labels.remove("password");
            c.command = vec!["serve".into(), format!("--password={VALUE}")];
        });
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "leaks",
            "(worker)",
            Status::Fail,
            "db-password in command",
        );
        // A stopped container's config still holds what it was created with.
        engine.update(&id, |c| c.running = false);
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "leaks",
            "(worker)",
            Status::Fail,
            "command",
        );
        engine.update(&id, |c| c.command = vec!["serve".into()]);
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "leaks",
            "(worker)",
            Status::Pass,
            "no secret value",
        );
    }

    #[tokio::test]
    async fn docker_health_unhealthy_fails_starting_and_stopped_warn() {
        let fx = Fixture::new(COMPOSE);
        let (_, locals) = fx.files();
        let engine = MemoryEngine::new();
        let id = engine.add(PROJECT, "app", 1, true);
        engine.update(&id, |c| c.started_at = Some("2999-01-01T00:00:00Z".into()));
        for (health, status) in [
            ("unhealthy", Status::Fail),
            ("starting", Status::Warn),
            ("healthy", Status::Pass),
        ] {
            engine.update(&id, |c| c.health = Some(health.into()));
            let findings = check_all(&fx, &locals, &engine).await;
            assert_only(&findings, "health", "(app)", status, health);
        }
        engine.update(&id, |c| {
            c.running = false;
            c.status = "exited".into();
        });
        assert_only(
            &check_all(&fx, &locals, &engine).await,
            "containers",
            "(app)",
            Status::Warn,
            "not running (exited)",
        );

        let mut f = Findings::default();
        check_containers(&mut f, &fx.manifest, &locals, &[]);
        assert_only(
            &f,
            "containers",
            "project unit",
            Status::Warn,
            "no containers",
        );
    }
}
