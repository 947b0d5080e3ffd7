//! The model against Docker Compose v2: the same flags, the same directory, and every
//! difference in what decides secrets is a failure. Without Compose v2 the check is skipped
//! and says so.

use std::ffi::OsString;

use super::*;
use crate::compose::reference::{differences, view_of_config, view_of_project, ComposeV2};

pub async fn check_compose_model(
    f: &mut Findings,
    project: &Project,
    cwd: &Path,
    flags: &[OsString],
) {
    let subject = format!("project {}", project.name);
    let compose = match ComposeV2::find() {
        Ok(compose) => compose,
        Err(why) => {
            f.add(
                Status::Skip,
                "compose",
                subject,
                format!("{why}: the model was not cross-checked"),
            );
            return;
        }
    };
    let config = match compose.config(cwd, flags).await {
        Ok(config) => config,
        Err(why) => {
            f.add(
                Status::Warn,
                "compose",
                subject,
                format!(
                    "{} config fails on this project ({why}); compose-secrets could not cross-check its model",
                    compose.describe()
                ),
            );
            return;
        }
    };
    let ours = view_of_project(project);
    let found = differences(&view_of_config(&config), &ours);
    if found.is_empty() {
        let count = |section: &str| ours[section].as_object().map_or(0, serde_json::Map::len);
        f.add(
            Status::Pass,
            "compose",
            subject,
            format!(
                "the model matches `{} config`: secrets {}, services {}",
                compose.describe(),
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
                format!(
                    "{difference} (compared with `{} config`)",
                    compose.describe()
                ),
            );
        }
    }
}
