//! `.env` files: a lossless reader and writer that changes only the values it is asked to.
//!
//! Every line is kept as its original bytes (comments, blank lines, order, CRLF
//! endings, a leading BOM); `set` rewrites just the value span of one line, so a
//! round trip without changes is byte-identical.

use std::collections::HashMap;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::SecretValue;

const BOM: &str = "\u{feff}";

/// Largest `.env` we read: far above any real one, small enough to refuse garbage.
pub const MAX_DOTENV_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone)]
struct Line {
    /// The full original text of the line, including its line ending.
    raw: Zeroizing<String>,
    entry: Option<Entry>,
}

#[derive(Clone)]
struct Entry {
    key: String,
    /// Byte range of the value's source text (quotes included) within `raw`.
    span: (usize, usize),
    value: SecretValue,
}

/// A parsed `.env` file.
#[derive(Clone)]
pub struct DotEnv {
    bom: bool,
    lines: Vec<Line>,
    index: HashMap<String, usize>,
}

impl DotEnv {
    /// Read and parse a file; `Ok(None)` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<DotEnv>> {
        let Some(bytes) = read_bounded(path, MAX_DOTENV_BYTES)? else {
            return Ok(None);
        };
        Self::parse_bytes(path, &bytes).map(Some)
    }

    pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<DotEnv> {
        if bytes.len() > MAX_DOTENV_BYTES {
            return Err(Error::config(
                path,
                format!("file is larger than {MAX_DOTENV_BYTES} bytes"),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            Error::Parse {
                path: path.to_path_buf(),
                line,
                message: "not valid UTF-8".into(),
            }
        })?;
        Self::parse(path, text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<DotEnv> {
        let (bom, body) = match text.strip_prefix(BOM) {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut lines = Vec::new();
        let mut index = HashMap::new();
        for (i, raw) in body.split_inclusive('\n').enumerate() {
            let number = i + 1;
            let entry = parse_line(raw).map_err(|message| Error::Parse {
                path: path.to_path_buf(),
                line: number,
                message,
            })?;
            if let Some(entry) = &entry {
                if let Some(&first) = index.get(&entry.key) {
                    return Err(Error::Parse {
                        path: path.to_path_buf(),
                        line: number,
                        message: format!(
                            "duplicate key `{}` (first set on line {}); remove one so the value is unambiguous",
                            entry.key,
                            first + 1
                        ),
                    });
                }
                index.insert(entry.key.clone(), i);
            }
            lines.push(Line {
                raw: Zeroizing::new(raw.to_string()),
                entry,
            });
        }
        Ok(DotEnv { bom, lines, index })
    }

    pub fn get(&self, key: &str) -> Option<&SecretValue> {
        self.index
            .get(key)
            .and_then(|&i| self.lines[i].entry.as_ref())
            .map(|e| &e.value)
    }

    /// 1-based line number of a key, for messages.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.index.get(key).map(|i| i + 1)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .filter_map(|l| l.entry.as_ref().map(|e| e.key.as_str()))
    }

    /// Set a value, rewriting only its span, or append `KEY=value` when the key is absent.
    pub fn set(&mut self, key: &str, value: &SecretValue) {
        if let Some(&i) = self.index.get(key) {
            let line = &mut self.lines[i];
            if let Some(entry) = &mut line.entry {
                let (start, end) = entry.span;
                // `'old'#note` is legal after a quote; an unquoted value there would swallow
                // the `#note` into itself.
                let encoded = encode_value(value.expose(), line.raw[end..].starts_with('#'));
                let mut raw = Zeroizing::new(String::with_capacity(line.raw.len() + encoded.len()));
                raw.push_str(&line.raw[..start]);
                raw.push_str(&encoded);
                raw.push_str(&line.raw[end..]);
                entry.span = (start, start + encoded.len());
                entry.value = value.clone();
                line.raw = raw;
            }
            return;
        }
        let ending = self.line_ending();
        if let Some(last) = self.lines.last_mut() {
            if last.raw.ends_with('\r') {
                // A last line cut after its CR: completing the CRLF keeps its value; another
                // CRLF would leave that CR inside it.
                last.raw.push('\n');
            } else if !last.raw.ends_with('\n') {
                last.raw.push_str(ending);
            }
        }
        let encoded = encode_value(value.expose(), false);
        let prefix = format!("{key}=");
        let mut raw = Zeroizing::new(format!("{prefix}{}{ending}", &*encoded));
        raw.shrink_to_fit();
        self.index.insert(key.to_string(), self.lines.len());
        self.lines.push(Line {
            raw,
            entry: Some(Entry {
                key: key.to_string(),
                span: (prefix.len(), prefix.len() + encoded.len()),
                value: value.clone(),
            }),
        });
    }

    /// The file's bytes as they would be written.
    pub fn render(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        if self.bom {
            out.push_str(BOM);
        }
        for line in &self.lines {
            out.push_str(&line.raw);
        }
        out
    }

    fn line_ending(&self) -> &'static str {
        if self.lines.iter().any(|l| l.raw.ends_with("\r\n")) {
            "\r\n"
        } else {
            "\n"
        }
    }
}

/// Read at most `max` bytes of a regular file; a longer one is refused without being read
/// into memory. `Ok(None)` when the file does not exist.
///
/// The file is opened non-blocking and checked with `fstat` before any read: a FIFO (whose
/// open or read would wait for a writer for ever), a device or a directory is refused, naming
/// the file. Symlinks are followed, as Compose follows them for its files and `.env`: what
/// matters is that the file finally read is a regular one.
pub fn read_bounded(path: &Path, max: usize) -> Result<Option<Zeroizing<Vec<u8>>>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, "read")(e)),
    };
    let kind = file
        .metadata()
        .map_err(Error::io(path, "read"))?
        .file_type();
    if !kind.is_file() {
        return Err(Error::config(
            path,
            format!(
                "is {}, not a regular file; refusing to read it",
                describe_kind(kind)
            ),
        ));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io(path, "read"))?;
    if bytes.len() > max {
        return Err(Error::config(
            path,
            format!("file is larger than {max} bytes; refusing to read it"),
        ));
    }
    Ok(Some(bytes))
}

/// "a FIFO", "a directory", ... for errors about a file that is not a regular one.
fn describe_kind(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Whether a value can be written bare: Compose and shells read it back unchanged.
fn is_bare_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.,:/+=@%^~".contains(&b))
}

/// The source text for `value`; `quoted` forces quotes even where a bare value would do.
fn encode_value(value: &str, quoted: bool) -> Zeroizing<String> {
    if !quoted && is_bare_safe(value) {
        return Zeroizing::new(value.to_string());
    }
    // Single quotes are literal in Compose, shells and systemd: no `$` expansion.
    if !value.contains(['\'', '\n', '\r']) {
        return Zeroizing::new(format!("'{value}'"));
    }
    let mut out = Zeroizing::new(String::with_capacity(value.len() + 8));
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn parse_line(raw: &str) -> std::result::Result<Option<Entry>, String> {
    let body = raw.strip_suffix('\n').unwrap_or(raw);
    let body = body.strip_suffix('\r').unwrap_or(body);
    let trimmed = body.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let offset = body.len() - trimmed.len();
    let (after_export, export_len) = match trimmed.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => {
            (rest.trim_start(), trimmed.len() - rest.trim_start().len())
        }
        _ => (trimmed, 0),
    };
    let eq = after_export
        .find('=')
        .ok_or_else(|| "expected KEY=VALUE".to_string())?;
    let key = after_export[..eq].trim_end();
    if !is_key(key) {
        // The text is not echoed: on a malformed line it may be part of a value.
        return Err(
            "invalid key before `=`: keys are letters, digits and `_`, not starting with a digit"
                .into(),
        );
    }
    let value_region_start = offset + export_len + eq + 1;
    let region = &body[value_region_start..];
    let lead = region.len() - region.trim_start_matches([' ', '\t']).len();
    let start = value_region_start + lead;
    let text = &body[start..];
    if lead > 0 && text.starts_with('#') {
        // `KEY= # note`: an empty value followed by a comment; a new value goes right after `=`.
        return Ok(Some(Entry {
            key: key.to_string(),
            span: (value_region_start, value_region_start),
            value: SecretValue::new(String::new()),
        }));
    }
    let (value, len) = parse_value(text)?;
    Ok(Some(Entry {
        key: key.to_string(),
        span: (start, start + len),
        value: SecretValue::new(value),
    }))
}

fn is_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Parse a value's source text; returns the value and how many bytes of `text` it spans.
fn parse_value(text: &str) -> std::result::Result<(String, usize), String> {
    match text.chars().next() {
        Some('\'') => {
            let close = text[1..].find('\'').ok_or_else(|| {
                "unterminated single quote (multi-line values are not supported)".to_string()
            })?;
            let len = close + 2;
            check_trailing(&text[len..])?;
            Ok((text[1..=close].to_string(), len))
        }
        Some('"') => {
            let mut value = String::new();
            let mut chars = text.char_indices().skip(1);
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        let len = i + 1;
                        check_trailing(&text[len..])?;
                        return Ok((value, len));
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 'r')) => value.push('\r'),
                        Some((_, 't')) => value.push('\t'),
                        Some((_, other)) => value.push(other),
                        None => break,
                    },
                    '$' if text[i + 1..].starts_with('$') => {
                        chars.next();
                        value.push('$');
                    }
                    c => value.push(c),
                }
            }
            Err("unterminated double quote (multi-line values are not supported)".into())
        }
        _ => {
            // An unquoted value ends at ` #` (an inline comment) and loses trailing blanks.
            let end = text
                .find(" #")
                .or_else(|| text.find("\t#"))
                .unwrap_or(text.len());
            let value = text[..end].trim_end_matches([' ', '\t']);
            Ok((value.to_string(), value.len()))
        }
    }
}

fn check_trailing(rest: &str) -> std::result::Result<(), String> {
    let rest = rest.trim_start_matches([' ', '\t']);
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err("unexpected text after the closing quote".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DotEnv {
        DotEnv::parse(Path::new(".env"), text).unwrap()
    }

    #[test]
    fn round_trip_is_byte_identical() {
        let text = "\u{feff}# c\r\nA=1\r\n\r\nexport B = 'two words' # note\r\nC=\"x\\ny\"\r\nD=plain # c\r\nE=";
        assert_eq!(&*parse(text).render(), text);
    }

    #[test]
    fn values() {
        let env = parse("A=1\nB='$x y'\nC=\"q\\\"$$\"\nD=v # c\nE=\n");
        assert_eq!(env.get("A").unwrap().expose(), "1");
        assert_eq!(env.get("B").unwrap().expose(), "$x y");
        assert_eq!(env.get("C").unwrap().expose(), "q\"$");
        assert_eq!(env.get("D").unwrap().expose(), "v");
        assert_eq!(env.get("E").unwrap().expose(), "");
    }

    #[test]
    fn set_rewrites_only_the_value() {
        let mut env = parse("# top\nA= # keep\r\nB=old\n");
        env.set("A", &SecretValue::new("abc".into()));
        env.set("B", &SecretValue::new("has space".into()));
        env.set("NEW", &SecretValue::new("n".into()));
        assert_eq!(
            &*env.render(),
            "# top\nA=abc # keep\r\nB='has space'\nNEW=n\r\n"
        );
        let again = DotEnv::parse(Path::new(".env"), &env.render()).unwrap();
        assert_eq!(again.get("B").unwrap().expose(), "has space");
    }

    #[test]
    fn a_comment_right_after_a_closing_quote_stays_a_comment() {
        // Found by the `dotenv` fuzz target: a bare value here read back as "abc#note".
        for value in ["abc", ""] {
            let mut env = parse("K='old'#note\n");
            env.set("K", &SecretValue::new(value.into()));
            assert_eq!(*env.render(), format!("K='{value}'#note\n"));
            let again = DotEnv::parse(Path::new(".env"), &env.render()).unwrap();
            assert_eq!(again.get("K").unwrap().expose(), value);
        }
    }

    #[test]
    fn appending_after_a_last_line_that_ends_in_a_bare_cr_keeps_its_value() {
        // Found by the `dotenv` fuzz target: the old value read back as "old\r".
        for text in ["A=old\r", "A=x\r\nB=old\r"] {
            let mut env = parse(text);
            env.set("NEW", &SecretValue::new("n".into()));
            let again = DotEnv::parse(Path::new(".env"), &env.render()).unwrap();
            let last = if text.starts_with("A=x") { "B" } else { "A" };
            assert_eq!(again.get(last).unwrap().expose(), "old");
            assert_eq!(again.get("NEW").unwrap().expose(), "n");
        }
    }

    #[test]
    fn encodes_awkward_values_losslessly() {
        for v in ["a'b$c", "line\nbreak", "quote\"d", "back\\slash'"] {
            let mut env = parse("K=\n");
            env.set("K", &SecretValue::new(v.into()));
            let again = DotEnv::parse(Path::new(".env"), &env.render()).unwrap();
            assert_eq!(again.get("K").unwrap().expose(), v);
        }
    }

    #[test]
    fn read_gives_the_files_entries_and_none_when_it_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        assert!(DotEnv::read(&path).unwrap().is_none());
        std::fs::write(&path, "A=1\n").unwrap();
        let env = DotEnv::read(&path).unwrap().expect("read");
        assert_eq!(env.get("A").unwrap().expose(), "1");
    }

    /// A second `set` of the same key (a rollback after a rotation, in one run) replaces the
    /// first one's value exactly, whether the key was in the file or appended.
    #[test]
    fn setting_a_key_twice_replaces_the_first_value() {
        let mut env = parse("# c\nA=old # note\nB=x\n");
        for (key, first, second) in [("A", "first-value", "2"), ("NEW", "n1", "second-value")] {
            env.set(key, &SecretValue::new(first.into()));
            env.set(key, &SecretValue::new(second.into()));
            assert_eq!(env.get(key).unwrap().expose(), second);
        }
        assert_eq!(&*env.render(), "# c\nA=2 # note\nB=x\nNEW=second-value\n");
    }

    /// Messages point at the key's line, counting comments and blank lines.
    #[test]
    fn line_of_is_the_keys_one_based_line() {
        let env = parse("# c\n\nA=1\nB=2\n");
        assert_eq!(env.line_of("A"), Some(3));
        assert_eq!(env.line_of("B"), Some(4));
        assert_eq!(env.line_of("C"), None);
    }

    /// A file at the limit (4 MiB) is read; one byte more is refused.
    #[test]
    fn the_size_limit_is_four_mebibytes_inclusive() {
        assert_eq!(MAX_DOTENV_BYTES, 4 * 1024 * 1024);
        let line = "K=v\n";
        let mut at_limit = "#".repeat(MAX_DOTENV_BYTES - line.len() - 1);
        at_limit.push('\n');
        at_limit.push_str(line);
        assert_eq!(at_limit.len(), MAX_DOTENV_BYTES);
        let env = DotEnv::parse_bytes(Path::new(".env"), at_limit.as_bytes()).unwrap();
        assert_eq!(env.get("K").unwrap().expose(), "v");
        let over = format!("{at_limit}#");
        let err = DotEnv::parse_bytes(Path::new(".env"), over.as_bytes())
            .err()
            .expect("refused");
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    /// `read_bounded` reads up to the limit, refuses one byte more, calls only a missing file
    /// missing (any other error is an error), and never reads a stream past the limit.
    #[test]
    fn read_bounded_reads_to_the_limit_and_refuses_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(&**read_bounded(&path, 10).unwrap().unwrap(), b"0123456789");
        let err = read_bounded(&path, 9).expect_err("one byte over");
        assert!(err.to_string().contains("larger than 9 bytes"), "{err}");
        assert!(read_bounded(&dir.path().join("missing"), 10)
            .unwrap()
            .is_none());
        // ENOTDIR: a path through a file is an error, not a missing file.
        assert!(read_bounded(&path.join("below"), 10).is_err());
        // An endless device is refused before a byte is read.
        let err = read_bounded(Path::new("/dev/zero"), 1024).expect_err("endless");
        assert!(err.to_string().contains("character device"), "{err}");
    }

    /// A FIFO without a writer would block `open` and `read` for ever: refused at once, named.
    #[test]
    fn read_bounded_refuses_a_fifo_and_a_directory_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join(".env");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_bounded(&fifo, 1024).expect_err("a FIFO");
        assert_eq!(err.exit_code(), crate::error::exit::USAGE);
        assert_eq!(
            err.to_string(),
            format!(
                "{}: is a FIFO (named pipe), not a regular file; refusing to read it",
                fifo.display()
            )
        );
        let err = read_bounded(dir.path(), 1024).expect_err("a directory");
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    /// Keys are letters, digits, `_` and `.`, not starting with a digit; anything else is an
    /// error naming the line, never a silently skipped or misread entry.
    #[test]
    fn keys_follow_the_compose_rules() {
        let env = parse("A_B.c=1\n_x=2\nz9=3\n");
        assert_eq!(env.keys().collect::<Vec<_>>(), ["A_B.c", "_x", "z9"]);
        for bad in ["1A=x\n", "A-B=x\n", "=x\n", "A B=x\n", "Ä=x\n"] {
            let err = DotEnv::parse(Path::new("x.env"), bad).err().expect(bad);
            assert!(
                err.to_string().starts_with("x.env:1: invalid key"),
                "{bad:?}: {err}"
            );
        }
    }

    /// In double quotes `$$` is one `$` and a lone `$` stays itself; text after a closing
    /// quote (other than a comment) is an error, not part of the value.
    #[test]
    fn dollars_in_double_quotes_and_text_after_the_quote() {
        let env = parse("A=\"a$b\"\nB=\"c$$d\"\nC=\"e$\"\n");
        assert_eq!(env.get("A").unwrap().expose(), "a$b");
        assert_eq!(env.get("B").unwrap().expose(), "c$d");
        assert_eq!(env.get("C").unwrap().expose(), "e$");
        for bad in ["K='a'junk\n", "K=\"a\"junk\n", "K='a' junk\n"] {
            let err = DotEnv::parse(Path::new("x.env"), bad).err().expect(bad);
            assert_eq!(
                err.to_string(),
                "x.env:1: unexpected text after the closing quote"
            );
        }
    }

    /// Bad UTF-8 is reported on the line that holds it.
    #[test]
    fn invalid_utf8_names_its_line() {
        for (bytes, line) in [(&b"\xff=1\n"[..], 1), (&b"A=1\nB=2\nC=\xff\n"[..], 3)] {
            let err = DotEnv::parse_bytes(Path::new("x.env"), bytes)
                .err()
                .expect("refused");
            assert_eq!(err.to_string(), format!("x.env:{line}: not valid UTF-8"));
        }
    }

    /// `#` starts a comment only after a blank, as in Compose: `KEY=#value` is a value, and
    /// taking it for an empty one would let `ensure` replace the user's secret.
    #[test]
    fn a_hash_right_after_the_equals_sign_is_part_of_the_value() {
        let env = parse("A=#value\nB=x#y\nC=x #note\nD= #note\n");
        assert_eq!(env.get("A").unwrap().expose(), "#value");
        assert_eq!(env.get("B").unwrap().expose(), "x#y");
        assert_eq!(env.get("C").unwrap().expose(), "x");
        assert_eq!(env.get("D").unwrap().expose(), "");
    }

    /// `export` is a keyword only when a blank follows it: `exporter_x` is a key.
    #[test]
    fn a_key_that_starts_with_export_keeps_its_name() {
        let env = parse("exporter_x=1\nexport y=2\nexport\tz=3\nexport_w=4\n");
        let keys: Vec<&str> = env.keys().collect();
        assert_eq!(keys, ["exporter_x", "y", "z", "export_w"]);
        assert_eq!(env.get("exporter_x").unwrap().expose(), "1");
        assert_eq!(env.get("z").unwrap().expose(), "3");
        let mut env = env;
        env.set("y", &SecretValue::new("two".into()));
        assert_eq!(
            &*env.render(),
            "exporter_x=1\nexport y=two\nexport\tz=3\nexport_w=4\n"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let err = DotEnv::parse(Path::new("x.env"), "A=1\nnot a pair\n")
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "x.env:2: expected KEY=VALUE");
        let err = DotEnv::parse(Path::new("x.env"), "A=1\nA=2\n")
            .err()
            .unwrap();
        assert!(
            err.to_string().starts_with("x.env:2: duplicate key `A`"),
            "{err}"
        );
        let err = DotEnv::parse(Path::new("x.env"), "A='open\n")
            .err()
            .unwrap();
        assert!(
            err.to_string().starts_with("x.env:1: unterminated"),
            "{err}"
        );
    }
}
