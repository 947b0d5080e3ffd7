use super::*;
use crate::compose::ProjectOptions;
use crate::deploy::memory::MemoryEngine;
use crate::error::exit::{DOCKER, USAGE};

/// The running user's ids: the owners these tests expect must be ones this process can give.
fn me() -> (u32, u32) {
    (
        nix::unistd::Uid::effective().as_raw(),
        nix::unistd::Gid::effective().as_raw(),
    )
}

fn project(compose: &str) -> (tempfile::TempDir, Project) {
    crate::compose::tests::project(&[("compose.yaml", compose)])
}

fn compose(user: &str, owner: &str) -> String {
    format!(
        "services:\n  db:\n    image: local/db:1\n    user: \"{user}\"\n    secrets: [db-password]\n\
         secrets:\n  db-password:\n    file: ./.runtime/secrets/db-password\n{owner}"
    )
}

fn engine() -> MemoryEngine {
    let (uid, gid) = me();
    let engine = MemoryEngine::new();
    let passwd = format!("root:x:0:0::/root:/bin/sh\nappuser:x:{uid}:{gid}::/:/bin/sh\n");
    let group = format!("root:x:0:\nappgroup:x:{gid}:\n");
    engine.add_image(
        "local/db:1",
        &[
            ("/etc/passwd", passwd.as_bytes()),
            ("/etc/group", group.as_bytes()),
        ],
    );
    engine
}

#[tokio::test]
async fn a_named_user_takes_its_ids_from_the_image() {
    let (uid, gid) = me();
    for user in [
        "appuser",
        "appuser:appgroup",
        &format!("{uid}:appgroup"),
        &format!("appuser:{gid}"),
    ] {
        let (_dir, mut p) = project(&compose(user, ""));
        assert_eq!(p.secrets[0].owner_from, OwnerFrom::Runner, "{user}");
        let engine = engine();
        assert!(
            apply(&mut p, &engine, &mut Cache::default())
                .await
                .is_empty(),
            "{user}"
        );
        let s = &p.secrets[0];
        assert_eq!((s.owner_uid, s.owner_gid), (Some(uid), Some(gid)), "{user}");
        assert_eq!(
            s.owner_from,
            OwnerFrom::Image {
                image: "local/db:1".into(),
                user: user.to_string()
            }
        );
        assert_eq!(engine.image_reads(), 1, "one read per image");
    }
}

#[tokio::test]
async fn numeric_users_and_declared_owners_need_no_image() {
    let (uid, gid) = me();
    for (user, owner, from) in [
        (
            format!("{uid}:{gid}"),
            String::new(),
            OwnerFrom::ServiceUser,
        ),
        (
            "appuser".to_string(),
            format!("    x-compose-secrets:\n      owner: \"{uid}:{gid}\"\n"),
            OwnerFrom::Declared,
        ),
    ] {
        let (_dir, mut p) = project(&compose(&user, &owner));
        let engine = MemoryEngine::new();
        engine.set_unreachable(true);
        assert!(
            apply(&mut p, &engine, &mut Cache::default())
                .await
                .is_empty(),
            "{user}"
        );
        assert_eq!(engine.image_reads(), 0);
        assert_eq!(p.secrets[0].owner_from, from);
        assert_eq!(
            (p.secrets[0].owner_uid, p.secrets[0].owner_gid),
            (Some(uid), Some(gid))
        );
    }
}

#[tokio::test]
async fn a_missing_image_user_group_or_engine_is_an_error_naming_them() {
    let cases: [(&str, &str, u8, &str); 4] = [
        (
            "appuser",
            "local/other:2",
            DOCKER,
            "pull or build the image",
        ),
        ("postgres", "local/db:1", USAGE, "has no user `postgres`"),
        ("appuser:staff", "local/db:1", USAGE, "has no group `staff`"),
        ("appuser", "unreachable", DOCKER, "start Docker"),
    ];
    for (user, image, code, says) in cases {
        let text = compose(user, "").replace("local/db:1", image);
        let (_dir, mut p) = project(&text);
        let engine = engine();
        engine.set_unreachable(image == "unreachable");
        let errors = apply(&mut p, &engine, &mut Cache::default()).await;
        assert_eq!(errors.len(), 1, "{user} {image}");
        let message = errors[0].to_string();
        assert_eq!(errors[0].exit_code(), code, "{message}");
        for part in [
            says,
            "service `db`",
            &format!("user `{user}`"),
            image,
            "`db-password`",
        ] {
            assert!(message.contains(part), "{part}: {message}");
        }
        assert_eq!(p.secrets[0].owner_from, OwnerFrom::Runner, "left as it was");
        assert_eq!(p.secrets[0].owner_uid, None);
    }
}

#[tokio::test]
async fn a_built_service_is_looked_up_by_composes_image_name() {
    let text = compose("appuser", "").replace("image: local/db:1", "build: .");
    let (_dir, mut p) = project(&text);
    let engine = MemoryEngine::new();
    let errors = apply(&mut p, &engine, &mut Cache::default()).await;
    assert!(
        errors[0].to_string().contains("image unit-db "),
        "{}",
        errors[0]
    );
}

/// The compose file of `compose("appuser", "")` in `dir`, loaded again (a new run).
fn reload(dir: &tempfile::TempDir) -> Project {
    Project::load(&ProjectOptions {
        cwd: dir.path().to_path_buf(),
        project_name: Some("unit".into()),
        ..ProjectOptions::default()
    })
    .unwrap()
}

/// The project of `compose("appuser", "")` and its `.runtime` directory, where the cache goes.
fn project_with_runtime() -> (tempfile::TempDir, Project, std::path::PathBuf) {
    let (dir, p) = project(&compose("appuser", ""));
    let runtime = dir.path().join(".runtime");
    std::fs::create_dir(&runtime).unwrap();
    (dir, p, runtime)
}

/// One run's owners, through the cache in `runtime` (returned unsaved), found without error.
async fn owners_of(p: &mut Project, engine: &MemoryEngine, runtime: &std::path::Path) -> Cache {
    let mut cache = Cache::open(runtime);
    assert!(apply(p, engine, &mut cache).await.is_empty());
    cache
}

#[tokio::test]
async fn a_known_image_is_inspected_not_read_and_a_rebuilt_one_is_read_again() {
    let (uid, gid) = me();
    let (dir, mut p, runtime) = project_with_runtime();
    let engine = engine();
    owners_of(&mut p, &engine, &runtime).await.save();
    assert_eq!(engine.image_reads(), 1);
    assert_eq!(
        saved(&runtime),
        serde_json::json!({"format": 1, "images": {"sha256:memory-0": {"appuser": [uid, gid]}}})
    );

    // A later run: one inspect, no container.
    for _ in 0..3 {
        let mut p = reload(&dir);
        owners_of(&mut p, &engine, &runtime).await.save();
        assert_eq!(
            (p.secrets[0].owner_uid, p.secrets[0].owner_gid),
            (Some(uid), Some(gid))
        );
        assert!(matches!(p.secrets[0].owner_from, OwnerFrom::Image { .. }));
    }
    assert_eq!(engine.image_reads(), 1, "a known image is not read again");
    assert_eq!(engine.image_inspections(), 4);

    // Rebuilt with another uid for the same user: a new ID, read again, its ids used and
    // only its entry kept.
    let passwd = b"appuser:x:4242:4343::/:/bin/sh\n";
    engine.add_image(
        "local/db:1",
        &[("/etc/passwd", passwd), ("/etc/group", b"")],
    );
    let mut p = reload(&dir);
    let cache = owners_of(&mut p, &engine, &runtime).await;
    assert_eq!(engine.image_reads(), 2, "a rebuilt image is read again");
    if nix::unistd::Uid::effective().is_root() {
        assert_eq!(
            (p.secrets[0].owner_uid, p.secrets[0].owner_gid),
            (Some(4242), Some(4343))
        );
    } else {
        // Not root: an owner this process cannot give leaves the file to the runner.
        assert_eq!(p.secrets[0].owner_from, OwnerFrom::Runner);
    }
    cache.save();
    assert_eq!(
        saved(&runtime),
        serde_json::json!({"format": 1, "images": {"sha256:memory-1": {"appuser": [4242, 4343]}}})
    );
}

fn saved(runtime: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(runtime.join("owners.json")).unwrap()).unwrap()
}

#[tokio::test]
async fn a_read_only_run_uses_the_cache_and_writes_nothing() {
    let (dir, mut p, runtime) = project_with_runtime();
    let engine = engine();
    // Not saved, as verify and --dry-run do: the next run reads the image again.
    let cache = owners_of(&mut p, &engine, &runtime).await;
    assert!(!runtime.join("owners.json").exists());
    cache.save();
    let mut p = reload(&dir);
    owners_of(&mut p, &engine, &runtime).await;
    assert_eq!(engine.image_reads(), 1, "the saved cache is used");

    // A malformed cache is an empty one, not an error.
    std::fs::write(runtime.join("owners.json"), "{not json").unwrap();
    let mut p = reload(&dir);
    owners_of(&mut p, &engine, &runtime).await;
    assert_eq!(engine.image_reads(), 2);
}
