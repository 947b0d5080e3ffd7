//! Races between commands that write: `load` against `rotate`, and `ensure --force` of one
//! secret against `rotate` of another. Each round starts both at once; afterwards no
//! committed rotation may be lost or undone. The number of rounds is
//! `COMPOSE_SECRETS_RACES` (default 25 here; `make stress` runs 200).

use std::process::{Child, Command, Stdio};

use crate::harness::{scrub, Project, BIN};

fn rounds() -> usize {
    std::env::var("COMPOSE_SECRETS_RACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25)
}

fn racing_pair() -> Project {
    let p = Project::empty();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    image: x\n    secrets: [a, b]\nsecrets:\n  a:\n    file: .runtime/secrets/a\n  b:\n    file: .runtime/secrets/b\n",
    );
    p.write(".env.demo", "");
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    p
}

fn start(p: &Project, args: &[&str]) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(p.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    scrub(&mut cmd);
    cmd.spawn().expect("spawn compose-secrets")
}

#[track_caller]
fn finish(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `load` reads `.env` only under the lock: it never writes back a value a rotation
/// committed over while it waited.
#[test]
fn load_racing_rotate_never_undoes_a_rotation() {
    let p = racing_pair();
    let rounds = rounds();
    for round in 0..rounds {
        let before = p.env_value("A");
        let rotate = start(&p, &["rotate", "a", "--no-restart"]);
        let load = start(&p, &["load"]);
        finish(rotate, "rotate");
        finish(load, "load");
        let after = p.env_value("A");
        assert_ne!(after, before, "round {round}: the rotation is not in .env");
        assert_eq!(
            p.read_string(".runtime/secrets/a"),
            after,
            "round {round}/{rounds}: load put a superseded value back in the file"
        );
    }
    p.cmd(&["verify", "--no-docker"]).run().stdout_has("intact");
}

/// `ensure --force b` holds the lock from its read of `.env` to its write: a rotation of `a`
/// committed meanwhile is never dropped from `.env`.
#[test]
fn ensure_force_racing_rotate_never_drops_a_rotation() {
    let p = racing_pair();
    let rounds = rounds();
    for round in 0..rounds {
        let (a_before, b_before) = (p.env_value("A"), p.env_value("B"));
        let rotate = start(&p, &["rotate", "a", "--no-restart"]);
        let ensure = start(&p, &["ensure", "--force", "b"]);
        finish(rotate, "rotate");
        finish(ensure, "ensure --force");
        assert_ne!(
            p.env_value("A"),
            a_before,
            "round {round}/{rounds}: the rotation of a was lost"
        );
        assert_ne!(
            p.env_value("B"),
            b_before,
            "round {round}: b was not regenerated"
        );
        assert_eq!(
            p.read_string(".runtime/secrets/a"),
            p.env_value("A"),
            "round {round}"
        );
    }
    p.cmd(&["verify", "--no-docker"]).run().stdout_has("intact");
}
