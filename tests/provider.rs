//! `compose-secrets compose up|down|stop|metadata` as Compose calls it (docker/compose
//! `docs/extension.md`), without Compose: what goes to stdout (JSON lines and nothing else),
//! what is written, and what is refused. `provider_docker` runs it under the real Compose.

use crate::harness::{assert_same_files, Project, DEMO_SECRETS};

/// Every stdout line is one `{"type", "message"}` object; their (type, message) pairs.
#[track_caller]
fn messages(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{stdout}"));
            let object = v.as_object().expect("an object");
            assert_eq!(object.len(), 2, "{line}");
            (
                v["type"].as_str().unwrap().to_string(),
                v["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The demo as Compose runs its provider: `COMPOSE_PROJECT_NAME` set as Compose sets it.
fn up(p: &Project, name: &str, extra: &[&str]) -> crate::harness::Output {
    let flag = format!("--project-name={name}");
    let mut args = vec!["compose", flag.as_str(), "up"];
    args.extend_from_slice(extra);
    args.push("secrets");
    p.cmd(&args).env("COMPOSE_PROJECT_NAME", name).run()
}

#[test]
fn metadata_describes_every_option_of_up_with_its_default() {
    let p = Project::empty();
    let out = p.cmd(&["compose", "metadata"]).run().success();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = doc["up"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(!p["default"].as_str().unwrap().is_empty(), "{p}");
            p["name"].as_str().unwrap()
        })
        .collect();
    for option in ["project-directory", "file", "env-file", "profile"] {
        assert!(names.contains(&option), "{option} missing from {names:?}");
    }
    // Declared, so that Compose calls `stop` too (and finds nothing to do).
    assert!(doc["stop"].is_object() && doc["down"].is_object(), "{doc}");
}

#[test]
fn up_on_a_fresh_demo_creates_env_and_writes_the_files_saying_so_in_json_lines() {
    let p = Project::demo();
    let name = p.name();
    let out = up(&p, &name, &[]).success();
    let values: Vec<String> = DEMO_SECRETS.iter().map(|(_, k)| p.env_value(k)).collect();
    out.assert_no_values(&values);
    let said = messages(&out.stdout);
    assert!(said.iter().all(|(t, _)| t == "info"), "{said:?}");
    let text: Vec<&str> = said.iter().map(|(_, m)| m.as_str()).collect();
    assert!(text.contains(&"created .env (from .env.demo)"), "{text:?}");
    for (name, _) in DEMO_SECRETS {
        assert!(
            text.contains(&format!("written {name} (in .runtime/secrets)").as_str()),
            "{text:?}"
        );
        assert_eq!(p.mode(&format!(".runtime/secrets/{name}")), 0o400);
    }
    // Idempotent: the second run rewrites no file.
    let inode = p.inode(".runtime/secrets/flask-secret-key");
    let again = up(&p, &name, &[]).success();
    let text: Vec<String> = messages(&again.stdout).into_iter().map(|m| m.1).collect();
    assert!(
        text.iter()
            .any(|m| m == "unchanged flask-secret-key (in .runtime/secrets)"),
        "{text:?}"
    );
    assert!(!text
        .iter()
        .any(|m| m.starts_with("written") || m.starts_with("created")));
    assert_eq!(p.inode(".runtime/secrets/flask-secret-key"), inode);
}

/// Compose passes only the name: a project found here under another name, or without this
/// provider service, is refused with one `error` line naming both, and nothing is written.
#[test]
fn another_project_or_service_is_refused_with_one_error_line_and_nothing_written() {
    let p = Project::demo();
    let name = p.name();
    let before = p.snapshot();
    let out = up(&p, "someone-else", &[]).code(2);
    let said = messages(&out.stdout);
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0].0, "error");
    assert!(
        said[0].1.contains("`someone-else`") && said[0].1.contains(&format!("`{name}`")),
        "{}",
        said[0].1
    );
    let out = p
        .cmd(&["compose", &format!("--project-name={name}"), "up", "app"])
        .env("COMPOSE_PROJECT_NAME", &name)
        .run()
        .code(2);
    let said = messages(&out.stdout);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].1.contains("not a provider service, named `app`"),
        "{said:?}"
    );
    assert_same_files(&before, &p.snapshot());
}

/// `project-directory` (a provider option) finds the project when Compose runs elsewhere.
#[test]
fn the_project_directory_option_finds_the_project_from_another_directory() {
    let p = Project::demo();
    let name = p.name();
    let elsewhere = tempfile::tempdir().unwrap();
    let dir = format!("--project-directory={}", p.dir.path().display());
    let flag = &format!("--project-name={name}");
    let mut run = p.cmd(&["compose", flag, "up", &dir, "secrets"]);
    run.cmd.current_dir(elsewhere.path());
    run.env("COMPOSE_PROJECT_NAME", &name).run().success();
    assert_eq!(p.mode(".runtime/secrets/flask-secret-key"), 0o400);
    assert!(std::fs::read_dir(elsewhere.path())
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn down_and_stop_change_nothing_and_say_so() {
    let p = Project::demo();
    let name = p.name();
    up(&p, &name, &[]).success();
    let before = p.snapshot();
    for verb in ["down", "stop"] {
        let out = p
            .cmd(&[
                "compose",
                &format!("--project-name={name}"),
                verb,
                "secrets",
            ])
            .run()
            .success();
        let said = messages(&out.stdout);
        assert_eq!(said.len(), 1, "{said:?}");
        assert_eq!(said[0].0, "info");
        assert!(said[0].1.contains("nothing changed"), "{said:?}");
    }
    assert_same_files(&before, &p.snapshot());
}

/// The provider service is not a container: load, rotate, sync and verify pass over it.
#[test]
fn the_provider_service_is_no_container_to_the_other_commands() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    let out = p
        .cmd(&["rotate", "flask-secret-key", "--no-restart"])
        .run()
        .success();
    assert!(!out.stdout.contains("service secrets"), "{}", out.stdout);
    p.cmd(&["sync"]).run().success();
    let out = p.cmd(&["verify", "--no-docker"]).run().success();
    assert!(!out.stdout.contains("service secrets"), "{}", out.stdout);
}

/// compose.legacy.yaml (Compose < 2.36 and v1) is compose.yaml without the provider service
/// and `name:`: the same secrets, the same app, so `load` on one serves `up` on the other.
#[test]
fn the_legacy_file_is_the_demo_without_the_provider() {
    let p = Project::demo();
    let name = p.name();
    p.write(
        "compose.legacy.yaml",
        std::fs::read(crate::harness::repo_root().join("compose.legacy.yaml")).unwrap(),
    );
    let model = |args: &[&str]| -> serde_json::Value {
        let out = p
            .cmd(args)
            .env("COMPOSE_PROJECT_NAME", &name)
            .run()
            .success();
        serde_json::from_str(&out.stdout).unwrap()
    };
    let current = model(&["debug", "model"]);
    let legacy = model(&["-f", "compose.legacy.yaml", "debug", "model"]);
    assert_eq!(current["secrets"], legacy["secrets"]);
    assert_eq!(current["services"]["app"], legacy["services"]["app"]);
    let services = |m: &serde_json::Value| -> Vec<String> {
        m["services"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(services(&current), ["app", "secrets"]);
    assert_eq!(services(&legacy), ["app"]);
    let yaml = p.read_string("compose.legacy.yaml");
    assert!(!yaml.contains("provider:") && !yaml.contains("\nname:"));
}
