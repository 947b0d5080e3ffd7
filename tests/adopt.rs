//! `ensure` adopts an existing secret file's value only from inside the project: a
//! `COMPOSE_SECRETS_DIR` in `.env` may point anywhere, and a file there is not the project's.

use crate::harness::Project;

#[test]
fn a_file_outside_the_project_is_not_adopted_into_env() {
    let p = Project::empty();
    let outside = tempfile::tempdir().unwrap();
    let host_file = outside.path().join("host-key");
    std::fs::write(&host_file, "HOST-ONLY-SECRET-VALUE\n").unwrap();
    std::fs::set_permissions(
        &host_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o400),
    )
    .unwrap();
    p.write(
        "compose.yaml",
        format!(
            "services:\n  app:\n    image: x\n    secrets: [k, fresh]\nsecrets:\n  k:\n    file: {}\n  fresh:\n    file: {}\n",
            host_file.display(),
            outside.path().join("fresh").display()
        ),
    );
    let env = format!("COMPOSE_SECRETS_DIR={}\nK=\n", outside.path().display());
    p.write(".env", &env);
    let before = p.snapshot();
    for args in [&["ensure", "--dry-run"][..], &["ensure"][..]] {
        let out = p.cmd(args).run().code(2);
        assert!(
            out.stderr.contains(&host_file.display().to_string())
                && out.stderr.contains("outside the project directory")
                && out.stderr.contains("set K in .env yourself"),
            "{}",
            out.stderr
        );
        assert!(
            !out.stdout.contains("HOST-ONLY") && !out.stderr.contains("HOST-ONLY"),
            "{out:?}"
        );
        crate::harness::assert_same_files(&before, &p.snapshot());
    }
    assert_eq!(p.read_string(".env"), env);
    // Without that file, a value is generated for it as for any missing one.
    std::fs::remove_file(&host_file).unwrap();
    p.cmd(&["ensure"]).run().success().stdout_has("generated");
    assert!(!p.read_string(".env").contains("HOST-ONLY"));
}
