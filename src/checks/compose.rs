//! The model against Docker Compose v2: the same flags, the same directory, and every
//! difference in what decides secrets is a failure. Without Compose v2 the check is skipped
//! and says so.

use super::facts::ComposeReference;
use super::*;
use crate::compose::reference::{differences, view_of_config, view_of_project};

/// The model against what [`super::gather::compose_reference`] found.
pub fn check_compose_model(f: &mut Findings, project: &Project, reference: &ComposeReference) {
    let subject = format!("project {}", project.name);
    let (compose, config) = match reference {
        ComposeReference::Missing(why) => {
            f.add(
                Status::Skip,
                "compose",
                subject,
                format!("{why}: the model was not cross-checked"),
            );
            return;
        }
        ComposeReference::Refused { compose, why } => {
            f.add(
                Status::Warn,
                "compose",
                subject,
                format!(
                    "{compose} config fails on this project ({why}); compose-secrets could not cross-check its model"
                ),
            );
            return;
        }
        ComposeReference::Config { compose, config } => (compose, config),
    };
    let ours = view_of_project(project);
    let found = differences(&view_of_config(config), &ours);
    if found.is_empty() {
        let count = |section: &str| ours[section].as_object().map_or(0, serde_json::Map::len);
        f.add(
            Status::Pass,
            "compose",
            subject,
            format!(
                "the model matches `{compose} config`: secrets {}, services {}",
                count("secrets"),
                count("services")
            ),
        );
    } else {
        for difference in found {
            f.add(
                Status::Fail,
                "compose",
                &subject,
                format!("{difference} (compared with `{compose} config`)"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixture::*;

    /// Over what the gather phase found: no Compose v2, or one that refuses the project.
    #[test]
    fn without_compose_v2_the_model_is_skipped_and_a_refusal_warns() {
        let fx = Fixture::new(COMPOSE);
        let mut f = Findings::default();
        let missing = ComposeReference::Missing("no docker compose v2 on PATH".into());
        check_compose_model(&mut f, &fx.manifest, &missing);
        assert_only(&f, "compose", PROJECT, Status::Skip, "not cross-checked");

        let mut f = Findings::default();
        let refused = ComposeReference::Refused {
            compose: "docker compose 2.29".into(),
            why: "services.app.image: invalid".into(),
        };
        check_compose_model(&mut f, &fx.manifest, &refused);
        assert_only(
            &f,
            "compose",
            PROJECT,
            Status::Warn,
            "docker compose 2.29 config fails",
        );
    }
}
