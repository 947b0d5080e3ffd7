//! Model tests: the corpus differential test covers Compose fidelity at large; these cover
//! what `docker compose config` does not print (a service's env files, config files).

use super::*;

/// `files` written into a new directory, loaded as the project `unit`.
pub(crate) fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let project = Project::load(&ProjectOptions {
        cwd: dir.path().to_path_buf(),
        project_name: Some("unit".into()),
        ..ProjectOptions::default()
    })
    .unwrap();
    (dir, project)
}

#[test]
fn env_files_resolve_where_compose_resolves_them() {
    let (dir, p) = project(&[
        (
            "compose.yaml",
            "include: [lib/compose.yaml]\nservices:\n  app:\n    image: x\n    env_file: .env\n  \
             worker:\n    extends: {file: base/common.yaml, service: base}\n    env_file: [{path: w.env, required: false}]\n\
             configs:\n  page: {file: ./static/index.html}\n",
        ),
        ("compose.override.yaml", "services:\n  app:\n    env_file: [extra.env]\n"),
        ("base/common.yaml", "services:\n  base:\n    image: y\n    env_file: common.env\n"),
        ("lib/compose.yaml", "services:\n  lib:\n    image: z\n    env_file: lib.env\n"),
    ]);
    let root = dir.path();
    let files = |s: &str| p.services[s].env_files.clone();
    assert_eq!(
        files("app"),
        vec![root.join(".env"), root.join("extra.env")]
    );
    assert_eq!(
        files("worker"),
        vec![root.join("base/common.env"), root.join("w.env")]
    );
    assert_eq!(files("lib"), vec![root.join("lib/lib.env")]);
    assert_eq!(p.config_files, vec![root.join("static/index.html")]);
}
