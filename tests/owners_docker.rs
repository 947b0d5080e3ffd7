//! Owners from the image (issue 21, item 4), on the real engine: a service's named `user:` is
//! looked up in its image's /etc/passwd and /etc/group without running it, and its files get
//! those ids; a missing image, user or engine is an error naming them, and nothing is written.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::harness::{is_root, repo_root, Project};
use crate::support::docker::docker_available_or_skip;

/// A `FROM scratch` image holding nothing but an /etc/passwd and an /etc/group.
const SCRATCH: &str = "compose-secrets-test/owners-scratch:1";
const PASSWD: &str = "root:x:0:0:root:/root:/bin/false\napp:x:4242:4343::/:/bin/false\n";
const GROUP: &str = "root:x:0:\napp:x:4343:\nshared:x:5151:app\n";
/// A real Debian image (scripts/debian-image.sh), whose `www-data` is 33:33.
const NGINX: &str = "compose-secrets-test/nginx:bookworm";

fn image_exists(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Built with `docker import` of a tar made here, once (cached by tag).
fn scratch_image() -> &'static str {
    if !image_exists(SCRATCH) {
        import_scratch(SCRATCH, PASSWD);
    }
    SCRATCH
}

/// `docker import` of a tar holding `passwd` and [`GROUP`], tagged `tag`; its image ID.
fn import_scratch(tag: &str, passwd: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/passwd"), passwd).unwrap();
    std::fs::write(dir.path().join("etc/group"), GROUP).unwrap();
    let tar = Command::new("tar")
        .args(["-C", dir.path().to_str().unwrap(), "-cf", "-", "etc"])
        .output()
        .expect("tar");
    assert!(tar.status.success(), "tar failed");
    let mut import = Command::new("docker")
        .args(["import", "-", tag])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker import");
    import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    let out = import.wait_with_output().unwrap();
    assert!(out.status.success(), "docker import failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Now, as `docker events --since/--until` take it.
fn now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// How many lookup containers (label `io.compose-secrets.purpose`) the engine created of
/// image `id` between `since` and `until`; other tests' lookups (of other images) not counted.
fn lookups_created(id: &str, since: &str, until: &str) -> usize {
    let out = Command::new("docker")
        .args(["events", "--since", since, "--until", until])
        .args(["--filter", "type=container", "--filter", "event=create"])
        .args(["--filter", "label=io.compose-secrets.purpose"])
        .args(["--format", "{{.Actor.Attributes.image}}"])
        .output()
        .expect("docker events");
    assert!(out.status.success(), "docker events failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|image| *image == id)
        .count()
}

/// Containers of `image` left behind (the lookup removes the one it creates).
fn containers_of(image: &str) -> String {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=io.compose-secrets.purpose"])
        .args(["--filter", &format!("ancestor={image}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One service per (user, secret), all of `image`.
fn compose(image: &str, services: &[(&str, &str)]) -> String {
    let mut text = String::from("services:\n");
    for (i, (user, secret)) in services.iter().enumerate() {
        text.push_str(&format!(
            "  s{i}:\n    image: {image}\n    user: \"{user}\"\n    secrets: [{secret}]\n"
        ));
    }
    text.push_str("secrets:\n");
    for (_, secret) in services {
        text.push_str(&format!(
            "  {secret}:\n    file: ./.runtime/secrets/{secret}\n"
        ));
    }
    text
}

fn files_line(p: &Project, secret: &str) -> String {
    let out = p.cmd(&["verify", "--json"]).run();
    let json = out.json();
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == "files" && c["subject"] == secret)
        .map(|c| format!("{}: {}", c["status"], c["message"]))
        .unwrap_or_else(|| panic!("no files check for {secret}: {json:#}"))
}

#[test]
fn a_named_user_owns_its_files_with_the_ids_of_its_image() {
    if !docker_available_or_skip(
        "owners_docker::a_named_user_owns_its_files_with_the_ids_of_its_image",
    ) {
        return;
    }
    let image = scratch_image();
    let p = Project::empty();
    p.write(
        "compose.yaml",
        compose(
            image,
            &[("app", "a"), ("app:shared", "b"), ("1000:shared", "c")],
        ),
    );
    p.write(".env", "A=aaaaaaaa\nB=bbbbbbbb\nC=cccccccc\n");
    p.cmd(&["load"]).run().success();
    let (me_uid, me_gid) = (
        nix::unistd::Uid::effective().as_raw(),
        nix::unistd::Gid::effective().as_raw(),
    );
    for (secret, ids) in [
        ("a", (4242, 4343)),
        ("b", (4242, 5151)),
        ("c", (1000, 5151)),
    ] {
        let path = format!(".runtime/secrets/{secret}");
        assert_eq!(p.mode(&path), 0o400, "{secret}");
        // Only root may give a file away: anyone else keeps it, as with numeric users.
        let want = if is_root() { ids } else { (me_uid, me_gid) };
        assert_eq!(p.owner(&path), want, "{secret}");
    }
    assert_eq!(
        containers_of(image),
        "",
        "the lookup's container is removed"
    );
    if is_root() {
        let line = files_line(&p, "a");
        assert!(line.starts_with("\"pass\""), "{line}");
        assert!(
            line.contains(&format!(
                "4242:4343 (user `app` from image {image}'s /etc/passwd"
            )),
            "{line}"
        );
        assert!(files_line(&p, "c").contains("user `1000:shared` from image"));
        // verify reads the image too, and leaves nothing behind either.
        assert_eq!(containers_of(image), "");
    }
}

#[test]
fn a_user_the_image_lacks_is_an_error_and_nothing_is_written() {
    if !docker_available_or_skip(
        "owners_docker::a_user_the_image_lacks_is_an_error_and_nothing_is_written",
    ) {
        return;
    }
    let image = scratch_image();
    for (user, says) in [
        ("nobody2", "the image's /etc/passwd has no user `nobody2`"),
        ("app:staff", "the image's /etc/group has no group `staff`"),
    ] {
        let p = Project::empty();
        p.write("compose.yaml", compose(image, &[(user, "a")]));
        p.write(".env", "A=aaaaaaaa\n");
        let before = p.snapshot();
        let out = p.cmd(&["load"]).run().code(2);
        for part in [
            says,
            "service `s0`",
            &format!("user `{user}`"),
            image,
            "`a`",
        ] {
            assert!(out.stderr.contains(part), "{part}: {}", out.stderr);
        }
        crate::harness::assert_same_files(&before, &p.snapshot());
        assert!(!p.exists(".runtime/secrets/a"));
    }
    assert_eq!(containers_of(image), "");
}

#[test]
fn an_image_not_present_locally_is_an_error_and_nothing_is_written() {
    if !docker_available_or_skip(
        "owners_docker::an_image_not_present_locally_is_an_error_and_nothing_is_written",
    ) {
        return;
    }
    let image = "compose-secrets-test/owners-absent:never-built";
    assert!(!image_exists(image));
    let p = Project::empty();
    p.write("compose.yaml", compose(image, &[("postgres", "a")]));
    p.write(".env", "A=aaaaaaaa\n");
    let before = p.snapshot();
    let out = p.cmd(&["load"]).run().code(5);
    for part in [
        "not present locally",
        "pull or build the image",
        "service `s0`",
        "user `postgres`",
        image,
    ] {
        assert!(out.stderr.contains(part), "{part}: {}", out.stderr);
    }
    crate::harness::assert_same_files(&before, &p.snapshot());
    let verify = p.cmd(&["verify", "--json"]).run();
    assert_eq!(verify.code, 1, "{}", verify.stdout);
    assert!(
        verify.stdout.contains("not present locally"),
        "{}",
        verify.stdout
    );
}

/// No engine: a named user cannot be resolved (exit 5, saying so), but an explicit owner, or
/// a numeric user, needs no Docker at all.
#[test]
fn without_docker_a_named_user_fails_unless_the_owner_is_explicit() {
    let me = format!(
        "{}:{}",
        nix::unistd::Uid::effective(),
        nix::unistd::Gid::effective()
    );
    let p = Project::empty();
    p.write("compose.yaml", compose("any/image:1", &[("postgres", "a")]));
    p.write(".env", "A=aaaaaaaa\n");
    let before = p.snapshot();
    let no_docker = |p: &Project, args: &[&str]| {
        p.cmd(args).env(
            "DOCKER_HOST",
            "unix:///nonexistent/compose-secrets-test.sock",
        )
    };
    let out = no_docker(&p, &["load"]).run().code(5);
    for part in [
        "start Docker",
        "user `postgres`",
        "any/image:1",
        "x-compose-secrets.owner",
    ] {
        assert!(out.stderr.contains(part), "{part}: {}", out.stderr);
    }
    crate::harness::assert_same_files(&before, &p.snapshot());

    let declared = compose("any/image:1", &[("postgres", "a")]).replace(
        "file: ./.runtime/secrets/a\n",
        &format!("file: ./.runtime/secrets/a\n    x-compose-secrets: {{owner: \"{me}\"}}\n"),
    );
    p.write("compose.yaml", declared);
    no_docker(&p, &["load"]).run().success();
    p.write(
        "compose.yaml",
        compose("any/image:1", &[(me.as_str(), "b")]),
    );
    p.write(".env", "B=bbbbbbbb\n");
    no_docker(&p, &["load"]).run().success();
}

#[test]
fn www_data_of_a_real_debian_nginx_image_is_33() {
    let test = "owners_docker::www_data_of_a_real_debian_nginx_image_is_33";
    if !docker_available_or_skip(test) {
        return;
    }
    if !image_exists(NGINX) {
        let status = Command::new(repo_root().join("scripts/debian-image.sh"))
            .args([NGINX, "nginx-light"])
            .status()
            .expect("scripts/debian-image.sh");
        if status.code() == Some(3) {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (Debian's mirror cannot be reached to build {NGINX}): {test}"
            );
            return;
        }
        assert!(status.success(), "scripts/debian-image.sh failed");
    }
    let p = Project::empty();
    p.write("compose.yaml", compose(NGINX, &[("www-data", "tls-key")]));
    p.write(".env", "TLS_KEY=kkkkkkkk\n");
    p.cmd(&["load"]).run().success();
    if is_root() {
        assert_eq!(p.owner(".runtime/secrets/tls-key"), (33, 33));
    }
    assert_eq!(containers_of(NGINX), "");
}

/// With the cache warm, `load`, `rotate` and `sync` create no container: the image is only
/// inspected. The same tag rebuilt (a new image ID) with another uid is read again, and its
/// uid is the file's owner.
#[test]
fn a_known_image_is_not_read_again_and_a_rebuilt_one_is() {
    let test = "owners_docker::a_known_image_is_not_read_again_and_a_rebuilt_one_is";
    if !docker_available_or_skip(test) {
        return;
    }
    let tag = format!("compose-secrets-test/owners-cache:{}", std::process::id());
    let first = import_scratch(&tag, PASSWD);
    let p = Project::empty();
    p.write("compose.yaml", compose(&tag, &[("app", "a")]));
    p.write(".env", "A=aaaaaaaa\n");
    let t0 = now();
    p.cmd(&["load"]).run().success();
    let t1 = now();
    assert_eq!(
        lookups_created(&first, &t0, &t1),
        1,
        "a cold cache reads the image"
    );
    let cache = p.read_string(".runtime/owners.json");
    assert!(cache.contains(&first) && cache.contains("4242"), "{cache}");
    assert!(!cache.contains("/bin/false"), "ids only: {cache}");

    p.cmd(&["load"]).run().success();
    p.cmd(&["rotate", "a", "--no-restart"]).run().success();
    p.write(".env", "A=changed-by-hand-0123\n");
    p.cmd(&["sync"]).run().success();
    p.cmd(&["verify"]).run();
    let t2 = now();
    assert_eq!(
        lookups_created(&first, &t1, &t2),
        0,
        "a warm cache reads nothing"
    );
    assert_eq!(p.read_string(".runtime/secrets/a"), "changed-by-hand-0123");
    assert_eq!(p.mode(".runtime/secrets/a"), 0o400);
    if is_root() {
        assert_eq!(p.owner(".runtime/secrets/a"), (4242, 4343));
    }

    // Rebuilt: `app` is now 4545.
    let second = import_scratch(&tag, &PASSWD.replace("4242", "4545"));
    assert_ne!(first, second);
    p.cmd(&["rotate", "a", "--no-restart"]).run().success();
    let t3 = now();
    assert_eq!(
        lookups_created(&second, &t2, &t3),
        1,
        "a rebuilt image is read again"
    );
    if is_root() {
        assert_eq!(p.owner(".runtime/secrets/a"), (4545, 4343));
    }
    let cache = p.read_string(".runtime/owners.json");
    assert!(
        cache.contains(&second) && !cache.contains(&first),
        "{cache}"
    );
    assert_eq!(containers_of(&tag), "", "the lookup's container is removed");
    let _ = Command::new("docker")
        .args(["rmi", "--force", &tag, &first, &second])
        .output();
}

/// `verify` and `--dry-run` use the cache and never write it.
#[test]
fn a_read_only_run_writes_no_cache() {
    if !docker_available_or_skip("owners_docker::a_read_only_run_writes_no_cache") {
        return;
    }
    let image = scratch_image();
    let p = Project::empty();
    p.write("compose.yaml", compose(image, &[("app", "a")]));
    p.write(".env", "A=aaaaaaaa\n");
    p.cmd(&["load", "--dry-run"]).run().success();
    p.cmd(&["verify"]).run();
    assert!(!p.exists(".runtime/owners.json"));
    p.cmd(&["load"]).run().success();
    let before = p.snapshot();
    p.cmd(&["rotate", "a", "--dry-run"]).run().success();
    p.cmd(&["verify"]).run();
    crate::harness::assert_same_files(&before, &p.snapshot());
}
