//! The invariants the fuzz targets hold the `.env` reader/writer and the Compose manifest
//! parser to. Shared by the cargo-fuzz targets and by the integration tests, which replay
//! every input kept under `fuzz/regressions/` through the same functions.
//!
//! Each function panics on a broken invariant (that is what the fuzzer records as a crash).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use compose_secrets::testing::compose::{Project, ProjectOptions, SecretSource, SecretSpec};
use compose_secrets::testing::dotenv::DotEnv;
use compose_secrets::testing::error::exit;
use compose_secrets::testing::files::layout::{Layout, Protected};
use compose_secrets::testing::secret::{is_valid_env_key, SecretValue};
use compose_secrets::testing::store::dotenv::DotenvStore;
use compose_secrets::testing::store::SecretStore as _;

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
            let p = compose_secrets::testing::files::lexical_normalize(p);
            assert!(!files.contains(&p), "two secrets on {}", p.display());
            files.push(p);
        }
    }
    let specs: Vec<&SecretSpec> = manifest.secrets.iter().collect();
    let key = compose_secrets::testing::secret::FingerprintKey::random();
    let store =
        DotenvStore::open(&[project.join(".env.none")], &key).expect("an absent .env opens");
    match store.naming().check_keys(&specs) {
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

/// Where the resolver's shapes (issue 19, item 4) stop being a configuration: each generated
/// input says whether it passes one of these, and then must be refused as a resource limit.
const LIMIT_NODES: usize = 100_000;
const LIMIT_BRACKETS: usize = 1_000;
const LIMIT_NESTING: usize = 200;
const LIMIT_TEMPLATE_BYTES: usize = 64 * 1024;
const LIMIT_FILE_LOADS: usize = 1_000;

/// A little reader over the fuzz input: numbers and text fragments, zero when it runs out.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self
            .data
            .split_first()
            .map_or((0, &[][..]), |(b, r)| (*b, r));
        self.data = rest;
        b
    }

    /// 0..=max, spread so that both small and large values are reached.
    fn upto(&mut self, max: usize) -> usize {
        let raw = usize::from(self.byte()) << 8 | usize::from(self.byte());
        match self.byte() % 4 {
            0 => raw % 16,
            1 => raw % 512,
            _ => (raw * max / 0xffff).min(max),
        }
    }

    /// A short fragment of the input as text: what fills the generated shapes.
    fn fragment(&mut self) -> String {
        let n = usize::from(self.byte() % 12);
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        String::from_utf8_lossy(head)
            .chars()
            .map(|c| if c.is_control() { 'x' } else { c })
            .collect()
    }
}

/// One generated project: its files, and whether it passes a limit (so must be refused).
struct Shape {
    files: Vec<(String, String)>,
    over_limit: bool,
}

const HEAD: &str = "services:\n  app:\n    image: x\n    secrets: [a]\n";
const SECRETS: &str = "secrets:\n  a:\n    file: ./.runtime/secrets/a\n";

/// The item-4 shapes, sized and filled from the input.
fn shape(input: &mut Input) -> Shape {
    let main = |extra: String| {
        vec![(
            "compose.yaml".to_string(),
            format!("{HEAD}{SECRETS}{extra}"),
        )]
    };
    match input.byte() % 6 {
        // Nested `${V:-...}`, in a quoted scalar.
        0 => {
            let depth = input.upto(3_000);
            let op = [":-", "-", ":+", "+", ":?", "?"][usize::from(input.byte() % 6)];
            let fill = input.fragment().replace(['"', '\\', '$', '{', '}'], "");
            let text = format!(
                "{}{fill}{}",
                format!("${{V{op}").repeat(depth),
                "}".repeat(depth)
            );
            Shape {
                over_limit: depth > LIMIT_NESTING,
                files: main(format!("x-n: \"{text}\"\n")),
            }
        }
        // A long run of defaults side by side.
        1 => {
            let count = input.upto(20_000);
            let fill = input.fragment().replace(['"', '\\', '$', '{', '}'], "");
            let one = format!("${{V:-{fill}}}");
            Shape {
                over_limit: one.len() * count > LIMIT_TEMPLATE_BYTES,
                files: main(format!("x-c: \"{}\"\n", one.repeat(count))),
            }
        }
        // An anchor of `items` aliased `aliases` times, optionally one level more.
        2 => {
            let items = input.upto(5_000).max(1);
            let aliases = input.upto(5_000);
            let again = input.upto(50);
            let mut text = format!(
                "x-a: &a [{}]\nx-b: &b [{}]\n",
                vec!["1"; items].join(","),
                vec!["*a"; aliases].join(",")
            );
            if again > 0 {
                text.push_str(&format!("x-c: [{}]\n", vec!["*b"; again].join(",")));
            }
            let nodes = items * aliases * again.max(1);
            Shape {
                over_limit: nodes > 2 * LIMIT_NODES,
                files: main(text),
            }
        }
        // Deep flow collections, `[` and `{k: ` mixed.
        3 => {
            let depth = input.upto(900_000);
            let pattern = input.fragment().into_bytes();
            let mut open = String::with_capacity(depth * 4);
            for i in 0..depth {
                open.push_str(
                    if pattern
                        .get(i % pattern.len().max(1))
                        .is_some_and(|b| b % 2 == 1)
                    {
                        "{k: "
                    } else {
                        "["
                    },
                );
            }
            Shape {
                over_limit: depth > LIMIT_BRACKETS,
                files: main(format!("x-d: {open}\n")),
            }
        }
        // A chain of files, each including the next `fan` times.
        4 => {
            let levels = input.upto(30);
            let fan = input.upto(4).max(1);
            let mut files = main(if levels > 0 {
                "include: [f0.yaml]\n".to_string()
            } else {
                String::new()
            });
            for i in 0..levels {
                let body = if i + 1 < levels {
                    (0..fan)
                        .map(|j| {
                            if j % 2 == 0 {
                                format!("  - f{}.yaml\n", i + 1)
                            } else {
                                format!("  - path: f{}.yaml\n", i + 1)
                            }
                        })
                        .collect::<String>()
                } else {
                    String::new()
                };
                let body = if body.is_empty() {
                    "services: {}\n".to_string()
                } else {
                    format!("include:\n{body}")
                };
                files.push((format!("f{i}.yaml"), body));
            }
            // compose.yaml once, f0 once, then f(i) fan^i times.
            let loads: usize = (0..levels).fold(1usize, |sum, l| {
                sum.saturating_add(fan.saturating_pow(u32::try_from(l).unwrap_or(u32::MAX)))
            });
            Shape {
                over_limit: loads > LIMIT_FILE_LOADS,
                files,
            }
        }
        // The rest of the input as a Compose file of its own.
        _ => Shape {
            over_limit: false,
            files: vec![(
                "compose.yaml".to_string(),
                String::from_utf8_lossy(input.data).into_owned(),
            )],
        },
    }
}

/// The resolver over the item-4 shapes: loading never panics or aborts (the fuzzer's time and
/// memory limits catch a blow-up), every error is an input error (exit 2), and a shape past one
/// of the documented limits is refused as a resource limit, never expanded.
pub fn resolver(data: &[u8], project: &Path) {
    let mut input = Input { data };
    let shape = shape(&mut input);
    for entry in std::fs::read_dir(project).expect("project dir").flatten() {
        let _ = std::fs::remove_file(entry.path());
    }
    for (name, text) in &shape.files {
        std::fs::write(project.join(name), text).expect("write a project file");
    }
    std::fs::write(project.join(".env"), "A=1\n").expect("write .env");
    let options = ProjectOptions {
        files: vec![project.join("compose.yaml")],
        cwd: project.to_path_buf(),
        process_env: BTreeMap::from([("X".to_string(), "x".to_string())]),
        ..ProjectOptions::default()
    };
    match Project::load(&options) {
        Ok(m) => {
            assert!(!shape.over_limit, "a shape past a limit was expanded");
            manifest_promises(project, &m);
        }
        Err(e) => {
            let message = e.to_string();
            assert_eq!(e.exit_code(), exit::USAGE, "{message}");
            assert!(!message.trim().is_empty());
            if shape.over_limit {
                assert!(
                    message.contains("resource limit"),
                    "past a limit, but not refused as one: {message}"
                );
            }
        }
    }
}

/// What is put into the value side of `.env` lines: no error may show any 4 bytes of it.
const VALUE_MARKER: &str = "Mq7FUZZq7M";

/// `text` with [`VALUE_MARKER`] in the value side of every `KEY=` or `KEY:` line, at the
/// offset `at` picks (the same for each line).
fn mark_values(text: &str, at: u8) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.split_inclusive('\n') {
        // Compose's own settings (`COMPOSE_FILE`, `COMPOSE_PROJECT_NAME`, ...) are paths and
        // names that errors must show; they are never secrets.
        let key = line.trim_start();
        let key = key.strip_prefix("export").map_or(key, str::trim_start);
        let setting = key.starts_with("COMPOSE_");
        match line.find(['=', ':']).filter(|_| !setting) {
            Some(sep) => {
                let (start, end) = value_span(line, sep + 1);
                let mut offset = start + usize::from(at) % (end - start + 1);
                while !line.is_char_boundary(offset) {
                    offset -= 1;
                }
                out.push_str(&line[..offset]);
                out.push_str(VALUE_MARKER);
                out.push_str(&line[offset..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Where in `line` a marker is surely part of the value that starts at `from`: never past the
/// line's end (it would start the next key), and inside the quotes of a quoted value (text
/// after a closing quote is a new statement to Compose).
fn value_span(line: &str, from: usize) -> (usize, usize) {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let body = body.strip_suffix('\r').unwrap_or(body);
    let lead = body[from..].len() - body[from..].trim_start_matches([' ', '\t']).len();
    let start = from + lead;
    match body.as_bytes().get(start) {
        Some(&q @ (b'"' | b'\'')) => {
            let close = body[start + 1..]
                .find(char::from(q))
                .map_or(body.len(), |n| start + 1 + n);
            (start + 1, close)
        }
        _ => (from, body.len()),
    }
}

#[track_caller]
fn assert_value_free(what: &str, message: &str) {
    for part in VALUE_MARKER.as_bytes().windows(4) {
        let part = std::str::from_utf8(part).unwrap();
        assert!(
            !message.contains(part),
            "{what}: an error shows part of a value ({part}): {message}"
        );
    }
}

/// `.env` error paths: with a marker in every value, no error from the lossless reader, from
/// Compose's reading of `.env` (discovery, interpolation) or from the demo store shows any
/// part of it, as text or as `--json` would print it.
pub fn dotenv_errors(data: &[u8], project: &Path) {
    let (at, rest) = data.split_first().map_or((0, &[][..]), |(a, r)| (*a, r));
    let raw = String::from_utf8_lossy(rest);
    // libFuzzer learns the marker's bytes from the comparisons below and writes them into keys
    // and comments, which errors rightly show: an input that already holds part of the marker
    // cannot tell a leaked value from its own text, so it proves nothing either way.
    if VALUE_MARKER
        .as_bytes()
        .windows(4)
        .any(|part| raw.as_bytes().windows(4).any(|w| w == part))
    {
        return;
    }
    let text = mark_values(&raw, at);
    if let Err(e) = DotEnv::parse_bytes(Path::new("fuzz.env"), text.as_bytes()) {
        assert_value_free("lossless reader", &e.to_string());
        assert_value_free("lossless reader --json", &e.to_json().to_string());
    }
    std::fs::write(project.join(".env"), &text).expect("write .env");
    let compose = project.join("compose.yaml");
    if !compose.exists() {
        std::fs::write(&compose, format!("{HEAD}{SECRETS}")).expect("write compose.yaml");
    }
    let options = ProjectOptions {
        cwd: project.to_path_buf(),
        process_env: BTreeMap::from([("X".to_string(), "x".to_string())]),
        ..ProjectOptions::default()
    };
    if let Err(e) = Project::load(&options) {
        assert_eq!(e.exit_code(), exit::USAGE, "{e}");
        assert_value_free("Compose's reading", &e.to_string());
        assert_value_free("Compose's reading --json", &e.to_json().to_string());
    }
    let key = compose_secrets::testing::secret::FingerprintKey::random();
    if let Err(e) = DotenvStore::open(&[project.join(".env")], &key) {
        assert_value_free("demo store", &e.to_string());
    }
}
