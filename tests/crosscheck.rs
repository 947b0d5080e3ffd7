//! `verify`'s cross-check with the real Compose v2 on a project whose `config` output is
//! larger than a pipe holds: it must be read while Compose writes it, not after it exits.

use crate::harness::Project;

const SERVICES: usize = 170;

/// 170 services, each with two secrets and some environment: `config --format json` prints
/// well over 64 KiB. Before, Compose blocked on the full pipe, verify waited its 20 s
/// timeout and warned that the model could not be cross-checked.
#[test]
fn a_project_printing_more_than_a_pipe_holds_is_cross_checked() {
    let Some((_bin, path)) = crate::support::compose::path_with_compose_v2(
        "crosscheck::a_project_printing_more_than_a_pipe_holds_is_cross_checked",
    ) else {
        return;
    };
    let p = Project::empty();
    let mut compose = String::from("name: bigproject\nservices:\n");
    for i in 0..SERVICES {
        compose.push_str(&format!(
            "  service-{i:03}:\n    image: alpine\n    secrets: [shared, own-{i:03}]\n    environment:\n      \
             SERVICE_DESCRIPTION: \"service number {i} of a large generated project, with a long value\"\n      \
             SERVICE_INDEX: \"{i}\"\n"
        ));
    }
    compose.push_str("secrets:\n  shared: {file: ./shared.txt}\n");
    let mut env = String::from("SHARED=ssssssss\n");
    for i in 0..SERVICES {
        compose.push_str(&format!("  own-{i:03}: {{file: ./own/{i:03}.txt}}\n"));
        env.push_str(&format!("OWN_{i:03}=oooooooo{i:03}\n"));
    }
    p.write("compose.yaml", compose);
    p.write(".env", env);

    // The premise: Compose itself prints more than a pipe's 64 KiB for this project.
    let v2 = crate::support::compose::compose_v2_or_skip("crosscheck premise").unwrap();
    let home = tempfile::tempdir().unwrap();
    let env =
        crate::support::compose::controlled_env(p.dir.path(), home.path(), &Default::default());
    let out = v2
        .command(
            &["config".into(), "--format".into(), "json".into()],
            p.dir.path(),
            &env,
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.len() > 64 * 1024, "{} bytes", out.stdout.len());

    let out = p.cmd(&["verify", "--no-docker"]).env("PATH", &path).run();
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(" compose "))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        line.starts_with("PASS")
            && line.contains(&format!("secrets {}, services {SERVICES}", SERVICES + 1)),
        "{line}\n{}",
        out.stdout
    );
}
