//! The invariants the fuzz targets hold the `.env` reader/writer and the Compose manifest
//! parser to. Shared by the cargo-fuzz targets and by the integration tests, which replay
//! every input kept under `fuzz/regressions/` through the same functions.
//!
//! Each function panics on a broken invariant (that is what the fuzzer records as a crash).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use compose_secrets::compose::{Project, ProjectOptions, SecretSource, SecretSpec};
use compose_secrets::dotenv::DotEnv;
use compose_secrets::error::exit;
use compose_secrets::files::layout::{Layout, Protected};
use compose_secrets::secret::{is_valid_env_key, SecretValue};
use compose_secrets::store::dotenv::DotenvStore;
use compose_secrets::store::SecretStore as _;

/// Where an input splits into the `.env` bytes and the value `set` writes: a byte that
/// cannot occur in UTF-8 text, so the file part stays free to be anything.
const SPLIT: u8 = 0xff;

/// `.env`: parsing never panics; an error is an input error naming the file; what parses
/// renders back to exactly its bytes; `set` of any key to any value reads back that value,
/// keeps every other key's value and leaves every other line byte-identical.
pub fn dotenv(data: &[u8]) {
    let (file, rest) = match data.iter().position(|&b| b == SPLIT) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let path = Path::new("fuzz.env");
    let mut env = match DotEnv::parse_bytes(path, file) {
        Ok(env) => env,
        Err(e) => {
            assert_eq!(e.exit_code(), exit::USAGE, "{e}");
            assert!(e.to_string().starts_with("fuzz.env:"), "{e}");
            return;
        }
    };
    assert_eq!(env.render().as_bytes(), file, "render is not lossless");

    let (pick, value) = rest.split_first().map_or((0, ""), |(p, v)| {
        (usize::from(*p), std::str::from_utf8(v).unwrap_or(""))
    });
    let keys: Vec<String> = env.keys().map(String::from).collect();
    let key = if keys.is_empty() || pick == 0xfe {
        "FUZZ_NEW_KEY".to_string()
    } else {
        keys[pick % keys.len()].clone()
    };
    let others: HashMap<String, String> = keys
        .iter()
        .filter(|k| **k != key)
        .map(|k| (k.clone(), env.get(k).unwrap().expose().to_string()))
        .collect();
    let changed_line = env.line_of(&key);
    let before = lines_of(std::str::from_utf8(file).unwrap());
    env.set(&key, &SecretValue::new(value.to_string()));
    let rendered = env.render();
    let again = DotEnv::parse(path, &rendered)
        .unwrap_or_else(|e| panic!("set produced a file that does not parse: {e}"));
    assert_eq!(again.get(&key).map(SecretValue::expose), Some(value));
    for (k, v) in &others {
        assert_eq!(
            again.get(k).map(SecretValue::expose),
            Some(v.as_str()),
            "key {k}"
        );
    }
    let after = lines_of(&rendered);
    match changed_line {
        Some(n) => {
            assert_eq!(before.len(), after.len());
            for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                assert!(i + 1 == n || b == a, "line {} changed", i + 1);
            }
        }
        None => {
            assert_eq!(after.len(), before.len() + 1);
            let last = before.len().saturating_sub(1);
            for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                if i == last && !b.ends_with('\n') {
                    assert!(a.starts_with(b), "the last line was rewritten");
                } else {
                    assert_eq!(b, a, "line {} changed", i + 1);
                }
            }
        }
    }
}

fn lines_of(text: &str) -> Vec<&str> {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .split_inclusive('\n')
        .collect()
}

/// Compose project: loading any bytes as `compose.yaml` never panics; an error is an input
/// error (exit 2) with a message; a project that loads keeps the promises below.
pub fn manifest(data: &[u8], project: &Path) {
    let file = project.join("compose.yaml");
    std::fs::write(&file, data).expect("write compose.yaml");
    let options = ProjectOptions {
        files: vec![file],
        cwd: project.to_path_buf(),
        process_env: BTreeMap::from([("X".to_string(), "x".to_string())]),
        ..ProjectOptions::default()
    };
    let manifest = match Project::load(&options) {
        Ok(m) => m,
        Err(e) => {
            let message = e.to_string();
            assert!(!message.trim().is_empty());
            assert_eq!(e.exit_code(), exit::USAGE, "{message}");
            return;
        }
    };
    manifest_promises(project, &manifest);
}

/// What a loaded project promises: valid modes, never two secrets on one file; the keys a
/// store would use (valid `.env` keys, no two alike) are accepted or refused as an input error; and
/// every secret file it would write lies inside the project (or is an input error).
pub fn manifest_promises(project: &Path, manifest: &Project) {
    let mut files = Vec::new();
    for s in &manifest.secrets {
        if s.is_external() {
            continue;
        }
        assert!(s.mode <= 0o777 && s.mode & 0o444 != 0, "mode {:o}", s.mode);
        if let SecretSource::File(p) = &s.source {
            let p = compose_secrets::files::lexical_normalize(p);
            assert!(!files.contains(&p), "two secrets on {}", p.display());
            files.push(p);
        }
    }
    let specs: Vec<&SecretSpec> = manifest.secrets.iter().collect();
    let store = DotenvStore::open(&[project.join(".env.none")]).expect("an absent .env opens");
    match store.check_keys(&specs) {
        Ok(()) => {
            for s in specs.iter().filter(|s| !s.is_external()) {
                assert!(is_valid_env_key(&s.env_key), "{}", s.env_key);
            }
        }
        Err(e) => assert_eq!(e.exit_code(), exit::USAGE, "{e}"),
    }
    let runtime = project.join(".runtime");
    let layout = Layout::plan(
        manifest,
        &runtime,
        &runtime.join("secrets"),
        &Protected {
            project: manifest,
            env_file: &project.join(".env"),
            template: &project.join(".env.demo"),
        },
    );
    match layout {
        Ok(layout) => {
            for p in &layout.placements {
                let name = &p.file_name;
                assert!(
                    !name.is_empty() && !name.contains('/') && name != ".." && name != ".",
                    "{name}"
                );
                assert!(
                    p.path.starts_with(&layout.project_dir)
                        || p.path.starts_with(&layout.secrets_dir),
                    "{} escapes the project",
                    p.path.display()
                );
            }
        }
        Err(e) => assert_eq!(e.exit_code(), exit::USAGE, "{e}"),
    }
}
