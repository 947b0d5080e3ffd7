//! The settings resolver through the real binary: for each setting, a flag beats the process
//! environment, which beats `.env`, which beats the default (`debug settings --json` shows
//! the value and its source), and the commands act on what it resolved.

use crate::harness::{assert_same_files, Project};

/// The project directory as the binary sees it (the harness runs it there).
fn base(p: &Project) -> String {
    p.dir.path().display().to_string()
}

/// `(value, source)` of `name` in `debug settings --json`.
fn setting(p: &Project, args: &[&str], env: &[(&str, &str)], name: &str) -> (String, String) {
    let mut cmd = p.cmd(&[&["--json", "debug", "settings"], args].concat());
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let out = cmd.run().success();
    let rows = out.json()["settings"].as_array().unwrap().clone();
    let row = rows
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {rows:?}"));
    (
        row["value"].as_str().unwrap().to_string(),
        row["source"].as_str().unwrap().to_string(),
    )
}

/// One setting, and a value for each layer (`flag`: the arguments that set it, if it has one).
struct Layered {
    name: &'static str,
    var: &'static str,
    flag: Option<(&'static [&'static str], &'static str)>,
    env: (&'static str, &'static str),
    dotenv: (&'static str, &'static str),
    default: &'static str,
}

/// Each layer in turn, from the top: every layer below it is set too, and loses.
fn check_layers(s: &Layered) {
    let p = Project::demo();
    p.write(".env", format!("{}={}\n", s.var, s.dotenv.0));
    let b = base(&p);
    let show = |v: &str| v.replace("{base}", &b);
    let env = [(s.var, s.env.0)];
    if let Some((args, shown)) = s.flag {
        let got = setting(&p, args, &env, s.name);
        assert_eq!(got, (show(shown), "flag".into()), "{}: flag", s.name);
    }
    let got = setting(&p, &[], &env, s.name);
    assert_eq!(got, (show(s.env.1), "environment".into()), "{}", s.name);
    let got = setting(&p, &[], &[], s.name);
    assert_eq!(got, (show(s.dotenv.1), ".env".into()), "{}", s.name);
    p.write(".env", "");
    let got = setting(&p, &[], &[], s.name);
    assert_eq!(got, (show(s.default), "default".into()), "{}", s.name);
}

#[test]
fn every_setting_resolves_flag_then_environment_then_dotenv_then_default() {
    let table = [
        Layered {
            name: "target",
            var: "COMPOSE_SECRETS_TARGET",
            flag: Some((&["--target", "compose"], "compose")),
            env: ("auto", "auto"),
            dotenv: ("swarm", "swarm"),
            default: "auto",
        },
        Layered {
            name: "lock-timeout",
            var: "COMPOSE_SECRETS_LOCK_TIMEOUT",
            flag: Some((&["--lock-timeout", "3"], "3s")),
            env: ("4", "4s"),
            dotenv: ("5", "5s"),
            default: "30s",
        },
        Layered {
            name: "runtime-dir",
            var: "COMPOSE_SECRETS_RUNTIME_DIR",
            flag: Some((&["--runtime-dir", "f-rt"], "{base}/f-rt")),
            env: ("e-rt", "{base}/e-rt"),
            dotenv: ("d-rt", "{base}/d-rt"),
            default: "{base}/.runtime",
        },
        Layered {
            name: "secrets-dir",
            var: "COMPOSE_SECRETS_DIR",
            flag: Some((&["--secrets-dir", "f-s"], "{base}/f-s")),
            env: ("e-s", "{base}/e-s"),
            dotenv: ("d-s", "{base}/d-s"),
            default: "{base}/.runtime/secrets",
        },
        Layered {
            name: "template",
            var: "COMPOSE_SECRETS_TEMPLATE",
            // Its flag is `ensure --template`: see the test below.
            flag: None,
            env: ("e.tpl", "{base}/e.tpl"),
            dotenv: ("d.tpl", "{base}/d.tpl"),
            default: "{base}/.env.demo",
        },
        Layered {
            name: "use-keyvault",
            var: "AZURE_USE_KEYVAULT",
            flag: Some((&["--keyvault"], "true")),
            env: ("yes", "yes"),
            dotenv: ("on", "on"),
            default: "false",
        },
        Layered {
            name: "vault-url",
            var: "AZURE_KEYVAULT_URL",
            flag: Some((
                &["--vault-url", "https://127.0.0.1:8441"],
                "https://127.0.0.1:8441",
            )),
            env: ("https://127.0.0.1:8442", "https://127.0.0.1:8442"),
            dotenv: ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
            default: "",
        },
        Layered {
            name: "vault-name",
            var: "AZURE_KEYVAULT_NAME",
            flag: Some((&["--vault-name", "f"], "f")),
            env: ("e", "e"),
            dotenv: ("d", "d"),
            default: "",
        },
        Layered {
            name: "profiles",
            var: "COMPOSE_PROFILES",
            flag: Some((&["--profile", "f"], "f")),
            env: ("e", "e"),
            dotenv: ("d", "d"),
            default: "",
        },
        Layered {
            name: "project-name",
            var: "COMPOSE_PROJECT_NAME",
            flag: Some((&["-p", "from-flag"], "from-flag")),
            env: ("from-env", "from-env"),
            dotenv: ("from-dotenv", "from-dotenv"),
            default: "",
        },
        Layered {
            name: "hook-timeout",
            var: "COMPOSE_SECRETS_HOOK_TIMEOUT",
            flag: None,
            env: ("7", "7"),
            dotenv: ("8", "8"),
            default: "120s",
        },
    ];
    for s in &table {
        check_layers(s);
    }
}

#[test]
fn demo_flag_beats_keyvault_from_every_layer() {
    let p = Project::demo();
    p.write(".env", "AZURE_USE_KEYVAULT=true\n");
    let got = setting(
        &p,
        &["--demo"],
        &[("AZURE_USE_KEYVAULT", "true")],
        "use-keyvault",
    );
    assert_eq!(got, ("false".into(), "flag".into()));
}

#[test]
fn target_swarm_in_dotenv_is_honoured_and_the_flag_beats_it() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    let mut env = p.read_string(".env");
    env.push_str("COMPOSE_SECRETS_TARGET=swarm\n");
    p.write(".env", env);
    // With swarm required, an engine that cannot be reached is an error; auto would go on.
    p.cmd(&["load"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .run()
        .code(5);
    p.cmd(&["load", "--target", "compose"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .run()
        .success();
}

#[test]
fn a_bad_value_in_dotenv_names_the_variable_and_where_it_came_from() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    let mut env = p.read_string(".env");
    env.push_str("COMPOSE_SECRETS_LOCK_TIMEOUT=soon\n");
    p.write(".env", &env);
    let before = p.snapshot();
    p.cmd(&["load"])
        .run()
        .code(2)
        .stderr_has("COMPOSE_SECRETS_LOCK_TIMEOUT=soon (from .env)");
    assert_same_files(&before, &p.snapshot());
}

#[test]
fn ensure_template_flag_beats_the_environment() {
    let p = Project::demo();
    let mut mine = p.read_string(".env.demo");
    mine.push_str("FROM_MINE=yes\n");
    p.write("mine.tpl", &mine);
    p.cmd(&["ensure", "--template", "mine.tpl"])
        .env("COMPOSE_SECRETS_TEMPLATE", "missing.tpl")
        .run()
        .success();
    assert!(p.read_string(".env").contains("FROM_MINE=yes"));
}

#[test]
fn lock_timeout_from_dotenv_bounds_the_wait_of_ensure_and_load() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    p.cmd(&["load"]).run().success();
    let mut env = p.read_string(".env");
    env.push_str("COMPOSE_SECRETS_LOCK_TIMEOUT=0\n");
    p.write(".env", env);
    let lock_file = std::fs::OpenOptions::new()
        .write(true)
        .open(p.path(".runtime/.lock"))
        .expect("load created the lock file");
    let _held = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .expect("lock");
    p.cmd(&["ensure"]).run().code(8).stderr_has("lock");
    p.cmd(&["load"]).run().code(8).stderr_has("lock");
}

#[test]
fn debug_settings_never_shows_a_secret_value() {
    let p = Project::demo();
    p.cmd(&["ensure"]).run().success();
    let values: Vec<String> = p
        .read_string(".env")
        .lines()
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.to_string()))
        .filter(|v| v.len() >= 16)
        .collect();
    assert!(!values.is_empty());
    let out = p
        .cmd(&["debug", "settings"])
        .env("AZURE_CLIENT_SECRET", "client-secret-value-xyz")
        .run()
        .success();
    let mut all = values;
    all.push("client-secret-value-xyz".into());
    out.assert_no_values(&all);
}
