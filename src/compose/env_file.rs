//! Reading `.env` files the way Compose does for interpolation (compose-go's dotenv parser):
//! `export`, `=` or `:`, inline comments, single and double quotes with escapes, bare keys
//! that inherit from the environment, and interpolation of values.
//!
//! This is not the `.env` compose-secrets writes (see `crate::dotenv`, which keeps every
//! byte): it is how Compose reads one, so that `${VAR}` in a Compose file means here
//! exactly what it means to `docker compose`.

use std::collections::BTreeMap;
use std::path::Path;

use super::interpolate::{substitute, Lookup, TemplateError};
use crate::error::{Error, Result};

/// A `.env` file is a few KB; refuse anything that could exhaust memory.
const MAX_ENV_FILE_BYTES: usize = 4 * 1024 * 1024;

/// Read `path` and parse it. `outer` is consulted first when a value interpolates a variable,
/// then the keys parsed so far (compose-go's `GetEnvFromFile`).
pub fn read(path: &Path, outer: &dyn Lookup, into: &mut BTreeMap<String, String>) -> Result<()> {
    let bytes = crate::dotenv::read_bounded(path, MAX_ENV_FILE_BYTES)?
        .ok_or_else(|| Error::config(path, "couldn't find env file"))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        line: bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1,
        message: "not valid UTF-8".into(),
    })?;
    parse(text, outer, into).map_err(|(line, message)| Error::Parse {
        path: path.to_path_buf(),
        line,
        message,
    })
}

/// Parse `.env` text into `into` (later keys win). Errors carry the 1-based line.
pub fn parse(
    text: &str,
    outer: &dyn Lookup,
    into: &mut BTreeMap<String, String>,
) -> std::result::Result<(), (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser { line: 1 };
    let mut rest = text;
    loop {
        rest = parser.statement_start(rest);
        if rest.is_empty() {
            return Ok(());
        }
        let (key, after, inherited) = parser.key(rest)?;
        if key.contains(' ') {
            return Err((parser.line, "key cannot contain a space".into()));
        }
        if inherited {
            if let Some(v) = outer.lookup(&key) {
                into.insert(key, v.to_string());
            }
            rest = after;
            continue;
        }
        // Errors in a value name its line, and its key only when the key starts its line:
        // a "key" that follows a closing quote on the same line is most likely the rest of a
        // value whose quotes were unbalanced, and a `.env` holds secrets.
        let before = &text[..text.len() - rest.len()];
        let starts_line = before
            .rsplit('\n')
            .next()
            .is_none_or(|indent| indent.chars().all(is_space));
        let (value, after) = parser.value(after, outer, into).map_err(|(line, m)| {
            if starts_line {
                (line, format!("{key}: {m}"))
            } else {
                (line, format!("after a closing quote: {m}"))
            }
        })?;
        into.insert(key, value);
        rest = after;
    }
}

struct Parser {
    line: usize,
}

/// compose-go's `isSpace`: whitespace that is not a line break.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

impl Parser {
    /// Skip blank lines and comments; the rest of the text from the next statement.
    fn statement_start<'a>(&mut self, src: &'a str) -> &'a str {
        let mut s = src;
        loop {
            let Some(pos) = s.find(|c: char| {
                if c == '\n' {
                    self.line += 1;
                }
                !c.is_whitespace()
            }) else {
                return "";
            };
            s = &s[pos..];
            if !s.starts_with('#') {
                return s;
            }
            match s.find('\n') {
                Some(nl) => s = &s[nl..],
                None => return "",
            }
        }
    }

    /// The key, the text after its separator, and whether it is a bare key (no value).
    fn key<'a>(
        &mut self,
        src: &'a str,
    ) -> std::result::Result<(String, &'a str, bool), (usize, String)> {
        let mut src = src;
        if let Some(after) = src.strip_prefix("export") {
            if after.starts_with(|c: char| c.is_whitespace()) {
                src = after.trim_start_matches(is_space);
            }
        }
        for (i, c) in src.char_indices() {
            if is_space(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    let key = src[..i].trim_end().to_string();
                    let inherited = c == '\n';
                    if inherited && !key.contains(' ') {
                        self.line += 1;
                    }
                    let after = src[i + 1..].trim_start_matches(is_space);
                    return Ok((key, after, inherited));
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() => {}
                // Neither the character nor the line is echoed: a malformed line may be a
                // value pasted without its key.
                _ => {
                    return Err((
                        self.line,
                        "unexpected character in a variable name (letters, digits, `_`, `.`, \
                         `-`, `[` and `]` only)"
                            .into(),
                    ))
                }
            }
        }
        // A last line holding only a key: it inherits like a bare key.
        Ok((src.trim_end().to_string(), "", true))
    }

    fn value<'a>(
        &mut self,
        src: &'a str,
        outer: &dyn Lookup,
        parsed: &BTreeMap<String, String>,
    ) -> std::result::Result<(String, &'a str), (usize, String)> {
        let lookup = Chained { outer, parsed };
        let expand = |value: &str, line: usize| {
            substitute(value, &lookup, &mut |_| {}).map_err(|e| (line, template_problem(e)))
        };
        let quote = match src.as_bytes().first() {
            Some(q @ (b'"' | b'\'')) => *q,
            _ => {
                let (value, rest) = src.split_once('\n').unwrap_or((src, ""));
                let line = self.line;
                self.line += 1;
                let value = value.split(" #").next().unwrap_or_default().trim_end();
                return Ok((expand(value, line)?, rest));
            }
        };
        let bytes = src.as_bytes();
        let start_line = self.line;
        let mut chars: Vec<u8> = Vec::new();
        let mut escaped = false;
        for i in 1..bytes.len() {
            let c = bytes[i];
            if c == b'\n' {
                self.line += 1;
            }
            if c != quote {
                if !escaped && c == b'\\' {
                    escaped = true;
                    continue;
                }
                if escaped {
                    escaped = false;
                    chars.push(b'\\');
                }
                chars.push(c);
                continue;
            }
            if escaped {
                escaped = false;
                chars.push(c);
                continue;
            }
            let value = String::from_utf8_lossy(&chars).into_owned();
            let value = if quote == b'"' {
                expand(&expand_escapes(&value), self.line)?
            } else {
                value
            };
            return Ok((value, &src[i + 1..]));
        }
        // Compose echoes the rest of the line here; it is a value, so only its line is named.
        Err((
            start_line,
            format!(
                "unterminated {} quote",
                if quote == b'"' { "double" } else { "single" }
            ),
        ))
    }
}

/// What is wrong with a value's interpolation, in words that never quote the value.
fn template_problem(e: TemplateError) -> String {
    match e {
        TemplateError::Invalid { .. } => {
            "invalid interpolation format in its value (escape a literal $ as $$)".to_string()
        }
        // Compose names the variable and its message: both are text of
        // the value, which may be a secret that merely looks like `${V:?}`.
        TemplateError::Required { .. } => "its value has a `${VAR:?...}` \
            reference to a variable that is missing a value (escape a literal \
            $ as $$)"
            .to_string(),
        TemplateError::Limit(limit) => {
            format!("resource limit: {}", limit.describe())
        }
    }
}

/// The outer environment first, then what this file set so far.
struct Chained<'a> {
    outer: &'a dyn Lookup,
    parsed: &'a BTreeMap<String, String>,
}

impl Lookup for Chained<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.outer
            .lookup(name)
            .or_else(|| self.parsed.get(name).map(String::as_str))
    }
}

/// Double-quoted escapes: `\a \b \c \f \n \r \t \v \$ \" \\` and `\0ooo`; `\$` stays a
/// literal `$` through interpolation (written `$$` for it).
fn expand_escapes(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('a') => out.push('\u{7}'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('v') => out.push('\u{b}'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('$') => out.push_str("$$"),
            Some('0') => {
                chars.next();
                let mut digits = String::new();
                while digits.len() < 3 && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                    digits.extend(chars.next());
                }
                match u8::from_str_radix(if digits.is_empty() { "0" } else { &digits }, 8) {
                    Ok(b) if b.is_ascii() => out.push(char::from(b)),
                    _ => {
                        out.push_str("\\0");
                        out.push_str(&digits);
                    }
                }
                continue;
            }
            // `\c` and anything else: Go's UnquoteChar refuses it and the match is kept.
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(text: &str, outer: &[(&str, &str)]) -> BTreeMap<String, String> {
        let outer: BTreeMap<String, String> = outer
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let mut out = BTreeMap::new();
        parse(text, &outer, &mut out).unwrap();
        out
    }

    #[test]
    fn the_forms_compose_reads() {
        let env = parse_with(
            "\u{feff}# comment\nA=plain_b\nexport B=${A}\nC: yaml\n D = spaced \nE=unq # inline\nF=unq#no\n\
             G=\"dq \\n ${A} \\$A\" trailing\nH='sq ${A} \\n'\nQ\nP=\nM=${UNDEFINED_X:-dflt}\nK=$$A\n",
            &[("Q", "qproc")],
        );
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("A"), Some("plain_b"));
        assert_eq!(get("B"), Some("plain_b"));
        assert_eq!(get("C"), Some("yaml"));
        assert_eq!(get("D"), Some("spaced"));
        assert_eq!(get("E"), Some("unq"));
        assert_eq!(get("F"), Some("unq#no"));
        assert_eq!(get("G"), Some("dq \n plain_b $A"));
        assert_eq!(get("H"), Some("sq ${A} \\n"));
        assert_eq!(get("Q"), Some("qproc"));
        assert_eq!(get("P"), Some(""));
        assert_eq!(get("M"), Some("dflt"));
        assert_eq!(get("K"), Some("$A"));
        assert_eq!(
            get("trailing"),
            None,
            "a bare key with no value outside inherits nothing"
        );
    }

    #[test]
    fn the_outer_environment_wins_inside_values() {
        let env = parse_with("A=x\nB=${A}\n", &[("A", "proc")]);
        assert_eq!(env["B"], "proc");
    }

    #[test]
    fn bad_lines_are_errors_with_their_line() {
        let mut out = BTreeMap::new();
        let outer = BTreeMap::new();
        let e = parse("OK=1\nA$=1\n", &outer, &mut out).unwrap_err();
        assert_eq!(e.0, 2, "{e:?}");
        assert!(e.1.contains("unexpected character"), "{e:?}");
        let e = parse("A B=1\n", &outer, &mut BTreeMap::new()).unwrap_err();
        assert!(e.1.contains("cannot contain a space"), "{e:?}");
        let e = parse("A=\"open\n", &outer, &mut BTreeMap::new()).unwrap_err();
        assert!(e.1.contains("unterminated"), "{e:?}");
    }

    /// Every way a value can fail names the line and the key and none of the value's text
    /// (issue 19: `KEY=pa${SECRET` echoed `pa${SECRET`).
    #[test]
    fn errors_in_values_name_the_key_never_the_value() {
        let outer = BTreeMap::new();
        let nested = format!("{}x{}", "${U:-".repeat(300), "}".repeat(300));
        for (line, key) in [
            ("KEY=pa${Mq7SECRETq7M", "KEY"),
            ("KEY=\"pa${Mq7SECRETq7M\"", "KEY"),
            ("KEY=${UNSET:?Mq7SECRETq7M}", "KEY"),
            ("KEY=${Mq7SECRETq7M:?}", "KEY"),
            ("KEY=\"Mq7SECRETq7M${Mq7SECRETq7M\"", "KEY"),
            ("KEY=\"Mq7SECRETq7M", ""),
            ("Mq7SECRETq7M$=1", ""),
            ("pa$Mq7SECRETq7M", ""),
            ("K=\"v\" Mq7SECRETq7M=\"open", "after a closing quote"),
            (&format!("KEY=Mq7SECRETq7M{nested}"), "KEY"),
        ] {
            let text = format!("OK=1\n{line}\n");
            let (n, message) = parse(&text, &outer, &mut BTreeMap::new()).unwrap_err();
            assert_eq!(n, 2, "{line}: {message}");
            assert!(message.starts_with(key), "{line}: {message}");
            assert!(
                !message.contains("Mq7"),
                "{line}: the value leaked: {message}"
            );
        }
    }
}
