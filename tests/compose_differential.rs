//! Differential test: compose-secrets' Compose resolver against the real Docker Compose v2
//! on every case of `tests/corpus/compose/`.
//!
//! Each case is a directory with a small Compose project and a `case.json`:
//!
//! ```json
//! { "about": "what it covers", "cwd": "sub/dir", "args": ["-f", "a.yaml"],
//!   "env": {"VAR": "value"}, "error": "substring of Compose's error" }
//! ```
//!
//! The case is copied to a fresh temp dir, then `<args> config --format json` (Compose v2)
//! and `<args> debug model` (compose-secrets) run in its `cwd` with the same controlled
//! environment (`support::compose::controlled_env`). With `error`, both must fail
//! (compose-secrets with exit 2, naming a file of the case or a name from Compose's
//! error); without it, both must succeed and give the same normalized view:
//!
//! ```text
//! { "name": <project>,
//!   "secrets": { <key>: {"file": <abs>} | {"environment": <VAR>} | {"external": true, "name": <name>} },
//!   "services": { <enabled service>: [ {source, target, uid?, gid?, mode?}, … in order ] } }
//! ```
//!
//! Compose already drops disabled services and unused secrets; from compose-secrets' model
//! the view keeps enabled services and the secrets they use (`secrets[].source` or
//! `build_secrets`). All cases run, and every failure is reported at the end.
//!
//! `scripts/compose-corpus-check.sh` checks the Compose side of the corpus on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::harness::{repo_root, BIN};
use crate::support::compose::{
    compose_v2_or_skip, controlled_env, run_bounded, set_env, ComposeV2, Ran,
};

/// Fewer cases than this means the corpus went missing, not that everything passed.
const MIN_CASES: usize = 60;
/// Longest one run may take: a case must end with an answer, never hang.
const RUN_BOUND: Duration = Duration::from_secs(60);
/// Cases run on this many threads at most (the machines have few cores, shared).
const MAX_THREADS: usize = 4;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    about: String,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    error: Option<String>,
}

struct Case {
    name: String,
    dir: PathBuf,
    spec: CaseFile,
}

fn corpus_root() -> PathBuf {
    repo_root().join("tests/corpus/compose")
}

#[test]
fn compose_differential() {
    let Some(compose) = compose_v2_or_skip("compose_differential") else {
        return;
    };
    let mut failures = Vec::new();
    let mut cases = Vec::new();
    for loaded in load_cases() {
        match loaded {
            Ok(case) => cases.push(case),
            Err(failure) => failures.push(failure),
        }
    }

    let next = AtomicUsize::new(0);
    let found = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_THREADS);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                if let Err(why) = run_case(&compose, case) {
                    found.lock().unwrap().push((
                        case.name.clone(),
                        format!(
                            "── {} ({})\n   args: {:?}{}{}\n{}",
                            case.name,
                            case.spec.about,
                            case.spec.args,
                            case.spec
                                .cwd
                                .as_deref()
                                .map(|c| format!(", cwd: {c}"))
                                .unwrap_or_default(),
                            if case.spec.env.is_empty() {
                                String::new()
                            } else {
                                format!(", env: {:?}", case.spec.env)
                            },
                            why
                        ),
                    ));
                }
            });
        }
    });
    let mut found = found.into_inner().unwrap();
    found.sort();
    failures.extend(found.into_iter().map(|(_, text)| text));

    assert!(
        failures.is_empty(),
        "{} of {} Compose corpus cases disagree with {}:\n\n{}",
        failures.len(),
        cases.len(),
        compose.describe(),
        failures.join("\n\n")
    );
    assert!(
        cases.len() >= MIN_CASES,
        "only {} cases in {} (expected at least {MIN_CASES})",
        cases.len(),
        corpus_root().display()
    );
}

/// Every case directory, sorted; a case whose `case.json` is unusable is a failure.
fn load_cases() -> Vec<Result<Case, String>> {
    let root = corpus_root();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(dir.join("case.json"))
                .map_err(|e| format!("── {name}: case.json: {e}"))?;
            let spec: CaseFile =
                serde_json::from_str(&text).map_err(|e| format!("── {name}: case.json: {e}"))?;
            if let Some(cwd) = &spec.cwd {
                if !Path::new(cwd)
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
                {
                    return Err(format!(
                        "── {name}: cwd {cwd:?} must be a plain relative path"
                    ));
                }
            }
            Ok(Case { name, dir, spec })
        })
        .collect()
}

fn run_case(compose: &ComposeV2, case: &Case) -> Result<(), String> {
    let tmp = tempfile::Builder::new()
        .prefix("cs-compose-")
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?;
    // The physical path, so that PWD, the cwd and every path either tool prints agree.
    let root = tmp.path().canonicalize().map_err(|e| e.to_string())?;
    let project = root.join(&case.name);
    copy_case(&case.dir, &project).map_err(|e| format!("copying the case: {e}"))?;
    let home = root.join("home");
    std::fs::create_dir(&home).map_err(|e| e.to_string())?;
    // Only the normal components (load_cases allows no others but `.`), so PWD is clean.
    let mut cwd = project.clone();
    for part in Path::new(case.spec.cwd.as_deref().unwrap_or(".")).components() {
        if let Component::Normal(part) = part {
            cwd.push(part);
        }
    }
    if !cwd.is_dir() {
        return Err(format!(
            "cwd {} is not a directory of the case",
            cwd.display()
        ));
    }
    let env = controlled_env(&cwd, &home, &case.spec.env);

    let mut compose_args = case.spec.args.clone();
    compose_args.extend(["config", "--format", "json"].map(String::from));
    let theirs = run_bounded(compose.command(&compose_args, &cwd, &env), RUN_BOUND)?;

    let mut ours_cmd = Command::new(BIN);
    ours_cmd
        .args(&case.spec.args)
        .args(["debug", "model"])
        .current_dir(&cwd);
    set_env(&mut ours_cmd, &env);
    let ours = run_bounded(ours_cmd, RUN_BOUND)?;

    let shown = |text: &str| text.replace(&format!("{}/", root.display()), "<tmp>/");
    match &case.spec.error {
        Some(expected) => check_error_case(case, expected, &theirs, &ours).map_err(|e| shown(&e)),
        None => check_success_case(&theirs, &ours).map_err(|e| shown(&e)),
    }
}

fn check_error_case(case: &Case, expected: &str, theirs: &Ran, ours: &Ran) -> Result<(), String> {
    if theirs.code == 0 {
        return Err(format!(
            "   case.json expects an error ({expected:?}) but Compose v2 succeeded: fix the case"
        ));
    }
    if !theirs.stderr.contains(expected) {
        return Err(format!(
            "   Compose v2's error lacks {expected:?} (fix the case):\n{}",
            indent(&theirs.stderr)
        ));
    }
    if ours.code != 2 {
        return Err(format!(
            "   Compose v2 fails, compose-secrets exits {} (expected 2)\n   Compose v2:\n{}\n   compose-secrets stderr:\n{}",
            ours.code,
            indent(&theirs.stderr),
            indent(&ours.stderr)
        ));
    }
    let mut names = case_file_names(&case.dir);
    names.extend(names_in_error(&theirs.stderr));
    if !names.iter().any(|n| mentions(&ours.stderr, n)) {
        return Err(format!(
            "   compose-secrets fails (exit 2) but its error names none of {names:?}\n   Compose v2:\n{}\n   compose-secrets stderr:\n{}",
            indent(&theirs.stderr),
            indent(&ours.stderr)
        ));
    }
    Ok(())
}

fn check_success_case(theirs: &Ran, ours: &Ran) -> Result<(), String> {
    if theirs.code != 0 {
        return Err(format!(
            "   Compose v2 fails (fix the case, or give it an \"error\"):\n{}",
            indent(&theirs.stderr)
        ));
    }
    if ours.code != 0 {
        return Err(format!(
            "   Compose v2 succeeds, compose-secrets exits {}:\n{}",
            ours.code,
            indent(&ours.stderr)
        ));
    }
    let compose_json: Value = serde_json::from_str(&theirs.stdout)
        .map_err(|e| format!("   Compose v2's output is not JSON ({e})"))?;
    let model: Value = serde_json::from_str(&ours.stdout).map_err(|e| {
        format!(
            "   `debug model` output is not JSON ({e}):\n{}",
            indent(&ours.stdout)
        )
    })?;
    let want = view_from_compose(&compose_json);
    let got = view_from_model(&model)?;
    if want == got {
        return Ok(());
    }
    Err(format!(
        "   views differ (- Compose v2, + compose-secrets):\n{}",
        line_diff(
            &serde_json::to_string_pretty(&want).unwrap(),
            &serde_json::to_string_pretty(&got).unwrap()
        )
    ))
}

/// The normalized view of `docker compose config --format json`.
fn view_from_compose(doc: &Value) -> Value {
    let doc = undouble_dollars(doc);
    let mut secrets = BTreeMap::new();
    if let Some(map) = doc.get("secrets").and_then(Value::as_object) {
        for (key, def) in map {
            secrets.insert(key.clone(), secret_view(def));
        }
    }
    let mut services = BTreeMap::new();
    if let Some(map) = doc.get("services").and_then(Value::as_object) {
        for (name, svc) in map {
            services.insert(name.clone(), mounts_view(svc.get("secrets")));
        }
    }
    json!({"name": doc.get("name").cloned().unwrap_or(Value::Null), "secrets": secrets, "services": services})
}

/// The normalized view of compose-secrets' `debug model`: enabled services only, and only
/// the secrets they use, the way Compose prints its project.
fn view_from_model(model: &Value) -> Result<Value, String> {
    let shape = |what: &str| {
        format!(
            "   `debug model` output lacks {what}:\n{}",
            indent(&serde_json::to_string_pretty(model).unwrap_or_default())
        )
    };
    let name = model.get("name").ok_or_else(|| shape("\"name\""))?;
    let all_services = model
        .get("services")
        .and_then(Value::as_object)
        .ok_or_else(|| shape("a \"services\" object"))?;
    let all_secrets = model
        .get("secrets")
        .and_then(Value::as_object)
        .ok_or_else(|| shape("a \"secrets\" object"))?;
    let mut services = BTreeMap::new();
    let mut used = BTreeSet::new();
    for (svc_name, svc) in all_services {
        let enabled = svc
            .get("enabled")
            .and_then(Value::as_bool)
            .ok_or_else(|| shape(&format!("services.{svc_name}.enabled (a bool)")))?;
        if !enabled {
            continue;
        }
        let mounts = svc.get("secrets");
        for mount in mounts.and_then(Value::as_array).into_iter().flatten() {
            if let Some(source) = mount.get("source").and_then(Value::as_str) {
                used.insert(source.to_string());
            }
        }
        for source in svc
            .get("build_secrets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let source = source
                .as_str()
                .ok_or_else(|| shape(&format!("services.{svc_name}.build_secrets as strings")))?;
            used.insert(source.to_string());
        }
        services.insert(svc_name.clone(), mounts_view(mounts));
    }
    let secrets: BTreeMap<String, Value> = all_secrets
        .iter()
        .filter(|(key, _)| used.contains(key.as_str()))
        .map(|(key, def)| (key.clone(), secret_view(def)))
        .collect();
    Ok(json!({"name": name, "secrets": secrets, "services": services}))
}

/// One secret definition: `file`, `environment`, or external with its name.
fn secret_view(def: &Value) -> Value {
    if def.get("external").and_then(Value::as_bool) == Some(true) {
        json!({"external": true, "name": def.get("name").cloned().unwrap_or(Value::Null)})
    } else if let Some(file) = def.get("file") {
        json!({ "file": file })
    } else if let Some(var) = def.get("environment") {
        json!({ "environment": var })
    } else {
        json!({ "neither file, environment nor external": def })
    }
}

/// A service's secret mounts, in order, with only the compared fields.
fn mounts_view(mounts: Option<&Value>) -> Value {
    let list = mounts
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Value::Array(
        list.iter()
            .map(|m| {
                let kept: BTreeMap<&str, Value> = ["source", "target", "uid", "gid", "mode"]
                    .into_iter()
                    .filter_map(|k| m.get(k).filter(|v| !v.is_null()).map(|v| (k, v.clone())))
                    .collect();
                json!(kept)
            })
            .collect(),
    )
}

/// Compose doubles every `$` in its output (keys and values): undo it.
fn undouble_dollars(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("$$", "$")),
        Value::Array(items) => Value::Array(items.iter().map(undouble_dollars).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.replace("$$", "$"), undouble_dollars(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Names an error from compose-secrets may use to point at the problem: names Compose's
/// error quotes, or puts after `secrets.`, `services.`, `undefined secret`, `required
/// variable`, or in an extends cycle.
fn names_in_error(stderr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for quote in ['"', '\''] {
        for (i, piece) in stderr.split(quote).enumerate() {
            if i % 2 == 1 && !piece.contains('\n') {
                names.insert(piece.to_string());
            }
        }
    }
    let markers = [
        "secrets.",
        "services.",
        "undefined secret ",
        "undefined build secret ",
        "required variable ",
        "extends ",
    ];
    for marker in markers {
        for (at, _) in stderr.match_indices(marker) {
            let name: String = stderr[at + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            names.insert(name);
        }
    }
    // "Circular reference:\n  web in <file>\n  extends worker in <file>"
    for line in stderr.lines() {
        if let Some((service, _)) = line.trim().split_once(" in /") {
            let service = service.trim_start_matches("extends ");
            if !service.contains(' ') {
                names.insert(service.to_string());
            }
        }
    }
    names.retain(|n| n.len() >= 2);
    names
}

/// Whether `name` occurs in `text` as a whole word: `app` is in `service "app"` and in
/// `services.app.secrets`, not in `application`.
fn mentions(text: &str, name: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(name).any(|(at, _)| {
        !text[..at].chars().next_back().is_some_and(is_word)
            && !text[at + name.len()..].chars().next().is_some_and(is_word)
    })
}

/// Every file name in a case (not `case.json`, not `.keep` placeholders).
fn case_file_names(dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if name != "case.json" && name != ".keep" {
                names.insert(name);
            }
        }
    }
    names
}

/// Copy a case (files, directories, symlinks as symlinks), leaving out `case.json`.
fn copy_case(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if kind.is_dir() {
            copy_case(&from, &to)?;
        } else if src.join("case.json") != from {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|l| format!("     {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A line diff (longest common subsequence) of two short texts.
fn line_diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("       {}", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("     - {}", a[i]));
            i += 1;
        } else {
            out.push(format!("     + {}", b[j]));
            j += 1;
        }
    }
    out.join("\n")
}

#[test]
fn normalized_views_agree_on_a_hand_made_pair() {
    let compose = json!({
        "name": "proj",
        "secrets": {
            "db": {"name": "proj_db", "file": "/p/sec$$ret.txt"},
            "api": {"name": "proj_api", "environment": "API_KEY"},
            "ext": {"name": "ext_name", "external": true}
        },
        "services": {
            "app": {"image": "x", "secrets": [
                {"source": "db", "target": "/run/secrets/db", "uid": "1000", "mode": "0440"},
                {"source": "api", "target": "rel"}
            ]},
            "build": {"build": {"context": ".", "secrets": [{"source": "ext", "target": "ext"}]}}
        }
    });
    let model = json!({
        "name": "proj",
        "project_directory": "/p",
        "secrets": {
            "db": {"file": "/p/sec$ret.txt"},
            "api": {"environment": "API_KEY"},
            "ext": {"external": true, "name": "ext_name"},
            "unused": {"file": "/p/unused"},
            "only_disabled": {"file": "/p/x"}
        },
        "services": {
            "app": {"enabled": true, "secrets": [
                {"source": "db", "target": "/run/secrets/db", "uid": "1000", "mode": "0440"},
                {"source": "api", "target": "rel"}
            ], "build_secrets": []},
            "build": {"enabled": true, "secrets": [], "build_secrets": ["ext"]},
            "off": {"enabled": false, "secrets": [{"source": "only_disabled", "target": "/run/secrets/only_disabled"}], "build_secrets": []}
        }
    });
    assert_eq!(
        view_from_compose(&compose),
        view_from_model(&model).unwrap()
    );
}

#[test]
fn error_names_are_found() {
    let names = names_in_error(
        "Circular reference:\n  frontend in /t/compose.yaml\n  extends backend in /t/compose.yaml\n",
    );
    assert!(
        names.contains("frontend") && names.contains("backend"),
        "{names:?}"
    );
    let names = names_in_error(
        "validating /t/compose.yaml: services.app.secrets.0 additional properties 'permissions' not allowed",
    );
    assert!(
        names.contains("app") && names.contains("permissions"),
        "{names:?}"
    );
    let names = names_in_error(
        "validating /t/compose.yaml: secrets additional properties 'db password' not allowed",
    );
    assert!(names.contains("db password"), "{names:?}");
    assert!(mentions("error: service \"app\" refers to x", "app"));
    assert!(mentions("services.app.secrets.0.uid", "app"));
    assert!(!mentions("the application failed", "app"));
    assert!(mentions("/t/compose.yaml:3: bad", "compose.yaml"));
    let names = names_in_error("error while interpolating secrets.db.file: required variable DB_FILE is missing a value: set it");
    assert!(
        names.contains("db") && names.contains("DB_FILE"),
        "{names:?}"
    );
}

#[test]
fn line_diff_marks_each_side() {
    let diff = line_diff(
        "{\n  \"a\": 1,\n  \"b\": 2\n}",
        "{\n  \"a\": 1,\n  \"b\": 3\n}",
    );
    assert_eq!(
        diff,
        "       {\n         \"a\": 1,\n     -   \"b\": 2\n     +   \"b\": 3\n       }"
    );
}
