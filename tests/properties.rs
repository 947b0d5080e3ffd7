//! Property tests (proptest) for the two parsers that read user files: the `.env`
//! reader/writer (lossless round trips, `set` touches one value span only, arbitrary bytes
//! never panic) and the Compose manifest (`Manifest::load` and `interpolate` never panic,
//! and every error is a clean input error).
//!
//! `PROPTEST_CASES` sets the number of cases per property (default 256 here; `make stress`
//! runs 20 000). Failures are not persisted to files: each one found becomes a named
//! regression test at the bottom of this module.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use compose_secrets::testing::compose::{Project, ProjectOptions};
use compose_secrets::testing::dotenv::DotEnv;
use compose_secrets::testing::error::exit;

/// Compose interpolation with no unset-variable callback.
fn interpolate(
    input: &str,
    vars: &HashMap<String, String>,
) -> Result<String, compose_secrets::testing::compose::interpolate::TemplateError> {
    compose_secrets::testing::compose::interpolate::substitute(input, vars, &mut |_| {})
}
use compose_secrets::testing::secret::SecretValue;
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per property: `PROPTEST_CASES` if set, else `default`.
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// `.env`
// ---------------------------------------------------------------------------------------------

fn env_path() -> &'static Path {
    Path::new("prop.env")
}

/// Blanks that may surround keys, `=` and comments.
fn blank() -> impl Strategy<Value = String> {
    "[ \t]{0,3}"
}

/// Free text for comments: anything but line breaks.
fn comment_text() -> impl Strategy<Value = String> {
    "[^\n\r]{0,20}"
}

/// A value as it is written in the file: bare, single-quoted or double-quoted with escapes.
fn value_source() -> impl Strategy<Value = String> {
    let bare = "([^'\"\n\r \t#][^\n\r]{0,20})?";
    let single = "'[^'\n\r]{0,20}'";
    let double_piece = prop_oneof![
        "[^\"\\\\\n\r]",
        Just("\\n".to_string()),
        Just("\\r".to_string()),
        Just("\\t".to_string()),
        Just("\\\"".to_string()),
        Just("\\\\".to_string()),
        Just("$$".to_string()),
    ];
    let double =
        prop::collection::vec(double_piece, 0..12).prop_map(|p| format!("\"{}\"", p.concat()));
    prop_oneof![
        bare.prop_map(String::from),
        single.prop_map(String::from),
        double
    ]
}

/// One line's text (without its ending); assignments get a unique key from `index`.
fn line_body(index: usize) -> impl Strategy<Value = String> {
    let key = "[A-Za-z_][A-Za-z0-9_.]{0,8}".prop_map(move |k| format!("{k}_{index}"));
    let assignment = (
        blank(),
        prop::bool::ANY,
        key,
        blank(),
        blank(),
        value_source(),
        prop::option::of((blank(), comment_text())),
    )
        .prop_map(|(lead, export, key, before_eq, after_eq, value, comment)| {
            // A quoted value needs a blank before an inline comment only if bare; keep one always.
            let comment = comment
                .map(|(b, c)| format!(" {b}#{c}"))
                .unwrap_or_default();
            let export = if export { "export " } else { "" };
            format!("{lead}{export}{key}{before_eq}={after_eq}{value}{comment}")
        });
    prop_oneof![
        1 => blank(),
        1 => (blank(), comment_text()).prop_map(|(b, c)| format!("{b}#{c}")),
        4 => assignment,
    ]
}

/// A whole valid `.env` file: optional BOM, LF or CRLF per line, maybe no final newline.
fn env_file() -> impl Strategy<Value = String> {
    (0usize..12)
        .prop_flat_map(|n| {
            (
                prop::bool::ANY,
                (0..n)
                    .map(|i| (line_body(i), prop::bool::ANY))
                    .collect::<Vec<_>>(),
                prop::bool::ANY,
            )
        })
        .prop_map(|(bom, lines, final_newline)| {
            let mut text = String::new();
            if bom {
                text.push('\u{feff}');
            }
            let count = lines.len();
            for (i, (body, crlf)) in lines.into_iter().enumerate() {
                text.push_str(&body);
                if i + 1 < count || final_newline {
                    text.push_str(if crlf { "\r\n" } else { "\n" });
                }
            }
            text
        })
}

/// Any value a secret could hold, including quotes, `$`, `#`, backslashes, CR/LF and non-ASCII.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,24}",
        "[a-z0-9'\"$#\\\\ \t\r\n=]{0,24}",
        ".{0,24}",
        "(\\PC|[\r\n\t]){0,24}",
    ]
}

/// Lines of a rendered file, each with its ending.
fn lines_of(text: &str) -> Vec<&str> {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .split_inclusive('\n')
        .collect()
}

proptest! {
    #![proptest_config(config(512))]

    /// A valid file parses, and rendering it unchanged gives back exactly its bytes.
    #[test]
    fn dotenv_round_trip_is_byte_identical(text in env_file()) {
        let env = DotEnv::parse(env_path(), &text)
            .map_err(|e| TestCaseError::fail(format!("valid file refused: {e}")))?;
        prop_assert_eq!(&*env.render(), text.as_str());
    }

    /// `set` changes one value: the file reads back with the new value, every other line is
    /// byte-identical, and every other key keeps its value.
    #[test]
    fn dotenv_set_rewrites_only_that_value(
        text in env_file(),
        pick in any::<prop::sample::Index>(),
        new_key in prop::bool::ANY,
        value in any_value(),
    ) {
        let mut env = DotEnv::parse(env_path(), &text).unwrap();
        let keys: Vec<String> = env.keys().map(String::from).collect();
        let key = if new_key || keys.is_empty() {
            "NEW_KEY_FROM_SET".to_string()
        } else {
            keys[pick.index(keys.len())].clone()
        };
        let old: HashMap<String, String> = keys
            .iter()
            .map(|k| (k.clone(), env.get(k).unwrap().expose().to_string()))
            .collect();
        let changed_line = env.line_of(&key);
        env.set(&key, &SecretValue::new(value.clone()));
        let rendered = env.render();
        let again = DotEnv::parse(env_path(), &rendered)
            .map_err(|e| TestCaseError::fail(format!("set produced an unreadable file: {e}")))?;
        prop_assert_eq!(again.get(&key).map(|v| v.expose().to_string()), Some(value.clone()));
        for (k, v) in &old {
            if *k != key {
                prop_assert_eq!(again.get(k).unwrap().expose(), v.as_str(), "key {}", k);
            }
        }
        prop_assert_eq!(rendered.starts_with('\u{feff}'), text.starts_with('\u{feff}'));
        let before = lines_of(&text);
        let after = lines_of(&rendered);
        match changed_line {
            Some(n) => {
                prop_assert_eq!(before.len(), after.len());
                for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                    if i + 1 != n {
                        prop_assert_eq!(b, a, "line {} changed", i + 1);
                    }
                }
            }
            None => {
                // Appended: every old line is kept; a last line without an ending gains one.
                prop_assert_eq!(after.len(), before.len() + 1);
                for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                    if i + 1 == before.len() && !b.ends_with('\n') {
                        prop_assert!(a.starts_with(b) && a.len() <= b.len() + 2);
                    } else {
                        prop_assert_eq!(b, a, "line {} changed", i + 1);
                    }
                }
            }
        }
    }

    /// Arbitrary bytes never panic; whatever parses renders back to the same bytes.
    #[test]
    fn dotenv_arbitrary_bytes_never_panic_and_parse_losslessly(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            "[A-Za-z_=#'\" \t\r\n\\\\$.0-9é\u{feff}]{0,120}".prop_map(String::into_bytes),
        ]
    ) {
        match DotEnv::parse_bytes(env_path(), &bytes) {
            Ok(env) => {
                let rendered = env.render();
                prop_assert_eq!(rendered.as_bytes(), &bytes[..]);
            }
            Err(e) => {
                prop_assert_eq!(e.exit_code(), exit::USAGE, "{}", e);
                prop_assert!(e.to_string().starts_with("prop.env:"), "{}", e);
            }
        }
    }

    /// A broken line is reported by number, and no value in the file appears in the message.
    #[test]
    fn dotenv_errors_name_the_line_and_never_echo_values(
        values in prop::collection::vec("Val[a-z0-9]{10,16}", 1..6),
        broken_at in any::<prop::sample::Index>(),
        breakage in prop_oneof![
            Just("{v} pasted without a key"),
            Just("K_B='{v}"),
            Just("K_B=\"{v}"),
            Just("K_B='{v}' {v}"),
            Just("9{v}={v}"),
            Just("K_0={v}"),
        ],
    ) {
        let mut lines: Vec<String> = values.iter().enumerate().map(|(i, v)| format!("K_{i}={v}")).collect();
        let at = broken_at.index(lines.len() + 1);
        lines.insert(at, breakage.replace("{v}", &values[0]));
        let text = lines.join("\n") + "\n";
        let err = match DotEnv::parse(env_path(), &text) {
            Ok(_) => return Err(TestCaseError::fail("a broken line was accepted")),
            Err(e) => e.to_string(),
        };
        // A duplicate is reported where it repeats: on the original K_0 when inserted before it.
        let line = if breakage.starts_with("K_0=") && at == 0 { 2 } else { at + 1 };
        prop_assert!(err.starts_with(&format!("prop.env:{line}:")), "{}", err);
        for v in &values {
            prop_assert!(!err.contains(v.as_str()), "value echoed: {}", err);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compose manifest
// ---------------------------------------------------------------------------------------------

/// Scalars that have broken parsers before: traversal, interpolation, modes, owners, generators.
const HOSTILE_SCALARS: &[&str] = &[
    "",
    "a",
    "db",
    "DB_PASSWORD",
    "a_b",
    "A-B",
    "../x",
    "/etc/passwd",
    "./.runtime/secrets/a",
    "./.runtime/secrets/b",
    ".runtime/secrets/../secrets/a",
    "./.runtime/secrets/",
    "${X}",
    "${X}/a",
    "${X:-./.runtime/secrets}/c",
    "${X-.}/d",
    "${",
    "${}",
    "$$",
    "$",
    "${X:-${Y}}",
    "0400",
    "0440",
    "400",
    "0999",
    "0200",
    "7777",
    "-1",
    "1000:1000",
    "0",
    "root:root",
    ":",
    "hex:32",
    "hex:0",
    "hex:99999",
    "alnum:8",
    "base64:",
    "rot13:8",
    "true",
    "null",
    "~",
    "[]",
    "{}",
    "é",
    "\u{feff}",
    "a\tb",
    "line\nbreak",
    "quote\"d",
    "single'q",
    "#",
    "*",
    "&",
];

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(HOSTILE_SCALARS).prop_map(String::from),
        1 => "[a-z][a-z0-9-]{0,12}",
        1 => ".{0,16}",
    ]
}

/// A scalar in YAML: usually double-quoted (always valid), sometimes plain (may break the YAML).
fn yaml_scalar() -> impl Strategy<Value = String> {
    (scalar(), 0u8..4).prop_map(|(s, style)| match style {
        0 => s,
        _ => serde_json::to_string(&s).unwrap(),
    })
}

fn secret_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z][a-z0-9-]{0,10}",
        1 => prop::sample::select(HOSTILE_SCALARS).prop_map(|s| serde_json::to_string(s).unwrap()),
    ]
}

fn extension() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("vault-name"),
        Just("env-key"),
        Just("generator"),
        Just("owner"),
        Just("mode"),
        Just("version"),
        Just("rotation-hook"),
        Just("health-url"),
        Just("genrator"),
    ];
    prop::collection::vec((field, yaml_scalar()), 0..4).prop_map(|fields| {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("    x-compose-secrets: {{{}}}\n", body.join(", "))
    })
}

fn secret_entry() -> impl Strategy<Value = String> {
    let source = prop_oneof![
        3 => yaml_scalar().prop_map(|s| format!("    file: {s}\n")),
        1 => yaml_scalar().prop_map(|s| format!("    environment: {s}\n")),
        1 => Just("    external: true\n".to_string()),
        1 => Just(String::new()),
        1 => Just("    file: [not, a, string]\n".to_string()),
    ];
    (secret_name(), source, prop::option::of(extension()))
        .prop_map(|(name, source, ext)| format!("  {name}:\n{source}{}", ext.unwrap_or_default()))
}

fn service_entry() -> impl Strategy<Value = String> {
    let use_entry = prop_oneof![
        secret_name().prop_map(|n| format!("      - {n}\n")),
        (secret_name(), yaml_scalar(), yaml_scalar()).prop_map(|(s, t, m)| {
            format!("      - source: {s}\n        target: {t}\n        mode: {m}\n")
        }),
        Just("      - {target: x}\n".to_string()),
    ];
    (
        "[a-z][a-z0-9]{0,6}",
        prop::collection::vec(use_entry, 0..3),
        prop::option::of(yaml_scalar()),
        prop::option::of(yaml_scalar()),
    )
        .prop_map(|(name, uses, user, env)| {
            let mut s = format!("  {name}:\n    image: busybox\n");
            if !uses.is_empty() {
                s.push_str("    secrets:\n");
                s.push_str(&uses.concat());
            }
            if let Some(u) = user {
                s.push_str(&format!("    user: {u}\n"));
            }
            if let Some(e) = env {
                s.push_str(&format!("    environment:\n      - K={e}\n"));
            }
            s
        })
}

/// A Compose-like document, valid YAML most of the time, with hostile scalars throughout.
fn compose_doc() -> impl Strategy<Value = String> {
    (
        prop::option::of(yaml_scalar()),
        prop::collection::vec(service_entry(), 0..3),
        prop::collection::vec(secret_entry(), 0..5),
    )
        .prop_map(|(name, services, secrets)| {
            let mut doc = String::new();
            if let Some(n) = name {
                doc.push_str(&format!("name: {n}\n"));
            }
            if !services.is_empty() {
                doc.push_str("services:\n");
                doc.push_str(&services.concat());
            }
            doc.push_str("secrets:\n");
            if secrets.is_empty() {
                doc.push_str("  {}\n");
            }
            doc.push_str(&secrets.concat());
            doc
        })
}

/// Random edits with YAML's special characters: the document shapes parsers choke on.
fn mutated_doc() -> impl Strategy<Value = String> {
    let edit = (
        any::<prop::sample::Index>(),
        0u8..3,
        "[\n \t:{}\\[\\],&*!|>'\"#%@`$-]{1,3}",
    );
    (compose_doc(), prop::collection::vec(edit, 1..6)).prop_map(|(doc, edits)| {
        let mut chars: Vec<char> = doc.chars().collect();
        for (at, kind, text) in edits {
            let i = at.index(chars.len() + 1);
            match kind {
                0 => {
                    chars.splice(i..i, text.chars());
                }
                1 if i < chars.len() => {
                    chars.remove(i);
                }
                _ if i < chars.len() => {
                    chars[i] = text.chars().next().unwrap();
                }
                _ => {}
            }
        }
        chars.into_iter().collect()
    })
}

fn variables() -> impl Strategy<Value = HashMap<String, String>> {
    prop::collection::hash_map(
        prop_oneof![Just("X".to_string()), Just("Y".to_string()), "[A-Z]{1,3}"],
        scalar(),
        0..4,
    )
}

/// Write `text` as a project's compose.yaml and load it.
fn load_manifest(
    text: &[u8],
    variables: HashMap<String, String>,
) -> (
    tempfile::TempDir,
    compose_secrets::testing::error::Result<Project>,
) {
    let dir = tempfile::Builder::new()
        .prefix("cs-prop-")
        .tempdir()
        .unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, text).unwrap();
    let options = ProjectOptions {
        files: vec![file],
        cwd: dir.path().to_path_buf(),
        process_env: variables.into_iter().collect(),
        ..ProjectOptions::default()
    };
    let result = Project::load(&options);
    (dir, result)
}

/// What a successful load promises (the fuzz target's invariants, `fuzz/checks.rs`); a
/// panic there fails the property like any other.
fn check_manifest(dir: &Path, m: &Project) -> Result<(), TestCaseError> {
    crate::support::fuzz_checks::manifest_promises(dir, m);
    Ok(())
}

/// An error from UTF-8 input is an input error (exit 2) with a message, never a panic.
fn check_error(e: &compose_secrets::testing::error::Error) -> Result<(), TestCaseError> {
    let message = e.to_string();
    prop_assert!(!message.trim().is_empty());
    prop_assert_eq!(e.exit_code(), exit::USAGE, "{}", message);
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// Generated Compose documents never panic the loader; results keep its promises.
    #[test]
    fn manifest_load_never_panics_and_errors_are_input_errors(doc in compose_doc(), vars in variables()) {
        let (dir, result) = load_manifest(doc.as_bytes(), vars);
        match result {
            Ok(m) => check_manifest(dir.path(), &m)?,
            Err(e) => check_error(&e)?,
        }
    }

    /// Documents with random YAML punctuation spliced in: still no panic, still clean errors.
    #[test]
    fn manifest_load_survives_mutated_documents(doc in mutated_doc(), vars in variables()) {
        let (dir, result) = load_manifest(doc.as_bytes(), vars);
        match result {
            Ok(m) => check_manifest(dir.path(), &m)?,
            Err(e) => check_error(&e)?,
        }
    }

    /// Arbitrary bytes (mostly not UTF-8, not YAML): no panic, only an error or a manifest.
    #[test]
    fn manifest_load_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let (_dir, result) = load_manifest(&bytes, HashMap::new());
        if let Err(e) = result {
            prop_assert!(!e.to_string().trim().is_empty());
        }
    }

    /// Interpolation terminates without panicking on any mix of `$`, braces and defaults,
    /// and leaves text without `$` unchanged.
    #[test]
    fn interpolate_never_panics(input in "[$${}:?A-Za-z_0-9 ./é-]{0,40}", vars in variables()) {
        let result = interpolate(&input, &vars);
        if !input.contains('$') {
            prop_assert_eq!(result, Ok(input.clone()));
        }
    }

    /// `$$` is a literal dollar and a set variable is substituted whatever its value.
    #[test]
    fn interpolate_substitutes_and_escapes(value in ".{0,16}", prefix in "[a-z/]{0,5}") {
        let vars = HashMap::from([("V".to_string(), value.clone())]);
        prop_assert_eq!(interpolate(&format!("{prefix}${{V}}$$"), &vars), Ok(format!("{prefix}{value}$")));
        prop_assert_eq!(interpolate(&format!("{prefix}$V"), &vars), Ok(format!("{prefix}{value}")));
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: inputs the properties found, kept as plain tests.
// ---------------------------------------------------------------------------------------------

/// The fuzz targets' inputs kept in the repository (`fuzz/regressions/<target>/`: every crash
/// the fuzzer found, plus seeds for the tricky paths) and the hostile corpus still hold the
/// fuzz invariants (`fuzz/checks.rs`).
#[test]
fn fuzz_regressions_and_the_corpus_hold_the_fuzz_invariants() {
    let root = crate::harness::repo_root();
    let files_in = |dir: PathBuf| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    };
    // tests/corpus/<case>/<name> for every case that has one.
    let corpus = |name: &str| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("tests/corpus"))
            .unwrap()
            .map(|e| e.unwrap().path().join(name))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    };

    let dotenv = files_in(root.join("fuzz/regressions/dotenv"));
    assert!(!dotenv.is_empty(), "no .env regressions kept");
    for file in dotenv.iter().chain(&corpus(".env")) {
        let data = std::fs::read(file).unwrap();
        if std::panic::catch_unwind(|| crate::support::fuzz_checks::dotenv(&data)).is_err() {
            panic!("{} breaks a .env invariant", file.display());
        }
    }

    // The resolver's shapes (issue 19, item 4) and `.env` value hygiene (item 7).
    let project = tempfile::tempdir().unwrap();
    for file in files_in(root.join("fuzz/regressions/resolver")) {
        let data = std::fs::read(&file).unwrap();
        let dir = project.path();
        if std::panic::catch_unwind(|| crate::support::fuzz_checks::resolver(&data, dir)).is_err() {
            panic!("{} breaks a resolver invariant", file.display());
        }
    }
    let project = tempfile::tempdir().unwrap();
    let values = files_in(root.join("fuzz/regressions/dotenv_errors"));
    assert!(!values.is_empty(), "no .env error regressions kept");
    for file in values.iter().chain(&corpus(".env")) {
        let data = std::fs::read(file).unwrap();
        let dir = project.path();
        if std::panic::catch_unwind(|| crate::support::fuzz_checks::dotenv_errors(&data, dir))
            .is_err()
        {
            panic!("{} shows a value in an error", file.display());
        }
    }

    let manifests = files_in(root.join("fuzz/regressions/manifest"));
    assert!(!manifests.is_empty(), "no manifest regressions kept");
    let project = tempfile::tempdir().unwrap();
    for file in manifests.iter().chain(&corpus("compose.yaml")) {
        let data = std::fs::read(file).unwrap();
        let dir = project.path();
        if std::panic::catch_unwind(|| crate::support::fuzz_checks::manifest(&data, dir)).is_err() {
            panic!("{} breaks a manifest invariant", file.display());
        }
    }
}
