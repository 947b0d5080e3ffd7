//! Before anything changes: the Docker engine is reachable (when containers will be restarted),
//! whether the stack is running at all (a warning, and a question on a terminal), and, for a dry
//! run, whether another run holds the lock.

use crate::deploy::{ContainerEngine as _, DockerEngine};
use crate::error::{Error, Result};
use crate::files::lock::RunLock;
use crate::files::runtime_dir::RuntimeDir;
use crate::output::{Report, ReportItem};
use crate::rotation::ServiceTarget;

/// Connect to Docker when containers will be restarted. A real run needs it before anything is
/// pushed (`rotate`) or applied (`sync`); a dry run only reports that the containers cannot be
/// listed. `next_step` ends the error of a real run, after "nothing was changed".
pub async fn connect_docker(
    restart: bool,
    dry_run: bool,
    report: &mut Report,
    next_step: &str,
) -> Result<Option<DockerEngine>> {
    if !restart {
        return Ok(None);
    }
    let connected = match DockerEngine::connect() {
        Ok(engine) => engine.ping().await.map(|()| engine),
        Err(e) => Err(e),
    };
    match connected {
        Ok(engine) => Ok(Some(engine)),
        Err(e) if dry_run => {
            report.push(
                ReportItem::new("docker", "unreachable")
                    .with_detail(format!("{e}; containers to restart are unknown")),
            );
            Ok(None)
        }
        Err(e) => Err(match e {
            Error::Docker { kind, message } => Error::Docker {
                kind,
                message: format!("{message}; nothing was changed{next_step}"),
            },
            other => other,
        }),
    }
}

/// A dry run takes no lock, but says when another run holds it.
pub fn lock_check(runtime: &RuntimeDir, report: &mut Report) -> crate::error::Result<()> {
    if RunLock::busy(runtime)? {
        report
            .push(ReportItem::new("lock", "busy").with_detail(
                "another compose-secrets is running; a real rotate would wait for it",
            ));
    }
    Ok(())
}

/// Secrets to rotate that no running container uses, though services mount them: the stack
/// (or those services) is down, so the rotation restarts nothing and the new file waits for the
/// next `docker compose up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NothingRunning {
    pub secrets: Vec<String>,
    /// The services that mount them, sorted.
    pub services: Vec<String>,
}

impl NothingRunning {
    /// The secrets (name, the services that mount it) whose every service was listed with no
    /// running container.
    pub fn find<'a>(
        plans: impl IntoIterator<Item = (&'a str, &'a [ServiceTarget])>,
    ) -> Option<NothingRunning> {
        let idle: Vec<(&str, &[ServiceTarget])> = plans
            .into_iter()
            .filter(|(_, services)| {
                !services.is_empty() && services.iter().all(|s| s.listed && s.containers.is_empty())
            })
            .collect();
        if idle.is_empty() {
            return None;
        }
        let mut services: Vec<String> = idle
            .iter()
            .flat_map(|(_, services)| services.iter().map(|s| s.service.clone()))
            .collect();
        services.sort();
        services.dedup();
        Some(NothingRunning {
            secrets: idle.iter().map(|(name, _)| name.to_string()).collect(),
            services,
        })
    }

    /// One line: what is not running, what the rotation will not do, what to run next.
    pub fn warning(&self) -> String {
        let (services, have, them) = match self.services.as_slice() {
            [one] => (format!("service {one}"), "has", one.as_str()),
            many => (format!("services {}", many.join(", ")), "have", "them"),
        };
        format!(
            "{services} {have} no running container, so rotating {} restarts nothing; \
             run `docker compose up -d` afterwards: it starts {them} with the new file{}",
            self.secrets.join(", "),
            if self.secrets.len() == 1 { "" } else { "s" }
        )
    }

    pub fn question(&self) -> String {
        format!("Rotate {} anyway? [y/N] ", self.secrets.join(", "))
    }
}

/// Whether to ask before rotating what nothing runs: only a person at a terminal can answer
/// (stdin and stderr both terminals), never a script, and not after `--yes`.
pub fn should_ask(yes: bool, stdin_is_tty: bool, stderr_is_tty: bool) -> bool {
    !yes && stdin_is_tty && stderr_is_tty
}

/// `y` or `yes` (any case) goes ahead; anything else, an empty line or end of input does not.
pub fn confirmed(answer: Option<&str>) -> bool {
    answer.is_some_and(|a| matches!(a.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// Ask `question` on stderr and read the answer from stdin (the default is no).
pub fn ask(question: &str) -> bool {
    use std::io::{BufRead as _, Write as _};
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(question.as_bytes());
    let _ = stderr.flush();
    drop(stderr);
    let mut line = String::new();
    let answer = match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.as_str()),
    };
    confirmed(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::ContainerTarget;

    fn service(name: &str, running: usize, listed: bool) -> ServiceTarget {
        ServiceTarget {
            service: name.into(),
            containers: (0..running)
                .map(|i| ContainerTarget {
                    id: format!("{name}{i}"),
                    name: format!("p-{name}-{i}"),
                    number: Some(i as u32 + 1),
                })
                .collect(),
            stopped: Vec::new(),
            listed,
            health_url: None,
            strategy: Default::default(),
        }
    }

    #[test]
    fn nothing_running_is_every_service_of_a_secret_listed_and_idle() {
        let down = vec![service("app", 0, true), service("worker", 0, true)];
        let half = vec![service("app", 0, true), service("web", 1, true)];
        let unlisted = vec![service("app", 0, false)];
        let unused = vec![];
        assert_eq!(
            NothingRunning::find([
                ("a", down.as_slice()),
                ("b", half.as_slice()),
                ("c", unlisted.as_slice()),
                ("d", unused.as_slice()),
            ]),
            Some(NothingRunning {
                secrets: vec!["a".into()],
                services: vec!["app".into(), "worker".into()],
            })
        );
        assert_eq!(
            NothingRunning::find([("b", half.as_slice()), ("c", unlisted.as_slice())]),
            None
        );
    }

    #[test]
    fn the_warning_names_services_secrets_and_the_next_step() {
        let one = NothingRunning {
            secrets: vec!["flask-secret-key".into()],
            services: vec!["app".into()],
        };
        assert_eq!(
            one.warning(),
            "service app has no running container, so rotating flask-secret-key restarts \
             nothing; run `docker compose up -d` afterwards: it starts app with the new file"
        );
        assert_eq!(one.question(), "Rotate flask-secret-key anyway? [y/N] ");
        let two = NothingRunning {
            secrets: vec!["a".into(), "b".into()],
            services: vec!["app".into(), "worker".into()],
        };
        assert_eq!(
            two.warning(),
            "services app, worker have no running container, so rotating a, b restarts \
             nothing; run `docker compose up -d` afterwards: it starts them with the new files"
        );
    }

    #[test]
    fn only_a_person_at_a_terminal_is_asked() {
        assert!(should_ask(false, true, true));
        assert!(!should_ask(true, true, true), "--yes");
        assert!(!should_ask(false, false, true), "stdin is a pipe");
        assert!(!should_ask(false, true, false), "stderr is redirected");
        assert!(!should_ask(false, false, false));
    }

    #[test]
    fn the_default_answer_is_no() {
        for yes in ["y", "Y", "yes", "YES\n", " y \n"] {
            assert!(confirmed(Some(yes)), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "yep", "sure", "oui"] {
            assert!(!confirmed(Some(no)), "{no:?}");
        }
        assert!(!confirmed(None), "end of input");
    }
}
