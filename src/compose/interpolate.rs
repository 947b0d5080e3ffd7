//! Compose's `${...}` interpolation, as compose-go's template package does it: `$V`, `${V}`,
//! `${V:-d}`, `${V-d}`, `${V:?msg}`, `${V?msg}`, `${V:+a}`, `${V+a}`, nesting and `$$`.
//!
//! The quirks are kept on purpose, because a value that differs from what `docker compose`
//! computes is a secret written to the wrong place: the argument of an operator runs to the
//! last `}` on the line and is then cut at the first balanced `}` (counting skips the
//! character after each `{`), and a `$` not followed by a name, `$` or `{` stays literal.

/// Why a template could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `${` without a valid name and closing brace; holds the template it was found in.
    Invalid { template: String },
    /// `${V:?msg}` or `${V?msg}` with `V` missing.
    Required { variable: String, reason: String },
}

impl TemplateError {
    /// Compose's wording, with the dotted path of the value (`services.app.secrets.[]`).
    pub fn message(&self, path: &str) -> String {
        match self {
            TemplateError::Invalid { template } => format!(
                "invalid interpolation format for {path}: `{template}` (escape a literal $ as $$)"
            ),
            TemplateError::Required { variable, reason } if reason.is_empty() => format!(
                "error while interpolating {path}: required variable {variable} is missing a value"
            ),
            TemplateError::Required { variable, reason } => format!(
                "error while interpolating {path}: required variable {variable} is missing a value: {reason}"
            ),
        }
    }
}

/// Where variables come from.
pub trait Lookup {
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl<S: std::hash::BuildHasher> Lookup for std::collections::HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Lookup for std::collections::BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// Expand `template`. `unset` is called once per plain reference to a missing variable
/// (Compose warns about those and substitutes an empty string).
pub fn substitute(
    template: &str,
    vars: &dyn Lookup,
    unset: &mut dyn FnMut(&str),
) -> Result<String, TemplateError> {
    let bytes = template.as_bytes();
    let mut out = String::with_capacity(template.len());
    let mut i = 0;
    while let Some(offset) = template[i..].find('$') {
        let at = i + offset;
        out.push_str(&template[i..at]);
        let next = at + 1;
        match bytes.get(next) {
            Some(b'$') => {
                out.push('$');
                i = next + 1;
            }
            Some(&c) if is_name_start(c) => {
                let end = name_end(bytes, next);
                let name = &template[next..end];
                match vars.lookup(name) {
                    Some(v) => out.push_str(v),
                    None => unset(name),
                }
                i = end;
            }
            Some(b'{') => {
                let (expanded, end) = braced(template, at, vars, unset)?;
                out.push_str(&expanded);
                i = end;
            }
            // `$1`, `$-`, a trailing `$`: not a reference, kept as written.
            _ => {
                out.push('$');
                i = next;
            }
        }
    }
    out.push_str(&template[i..]);
    Ok(out)
}

/// Every variable a template refers to, in defaults and messages too, each once.
pub fn referenced_variables(template: &str) -> Vec<String> {
    let recording = Recording::default();
    // Expanding against an empty set asks for every reference; an error only cuts the list short.
    let _ = substitute(template, &recording, &mut |_| {});
    recording.names.into_inner()
}

/// A lookup that knows no variable and remembers every name it was asked for.
#[derive(Default)]
struct Recording {
    names: std::cell::RefCell<Vec<String>>,
}

impl Lookup for Recording {
    fn lookup(&self, name: &str) -> Option<&str> {
        let mut names = self.names.borrow_mut();
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
        None
    }
}

fn is_name_start(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphabetic()
}

fn name_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start;
    while end < bytes.len() && (bytes[end] == b'_' || bytes[end].is_ascii_alphanumeric()) {
        end += 1;
    }
    end
}

/// Operators in the order compose-go tries them when two start at the same place (they cannot).
const OPERATORS: [&str; 6] = [":?", "?", ":-", "-", ":+", "+"];

/// `${...}` starting at `at` (the `$`): the expansion and where the text after it resumes.
fn braced(
    template: &str,
    at: usize,
    vars: &dyn Lookup,
    unset: &mut dyn FnMut(&str),
) -> Result<(String, usize), TemplateError> {
    let bytes = template.as_bytes();
    let invalid = || TemplateError::Invalid {
        template: template.to_string(),
    };
    let name_start = at + 2;
    if !bytes.get(name_start).copied().is_some_and(is_name_start) {
        return Err(invalid());
    }
    let name_stop = name_end(bytes, name_start);
    let name = &template[name_start..name_stop];
    if bytes.get(name_stop) == Some(&b'}') {
        match vars.lookup(name) {
            Some(v) => return Ok((v.to_string(), name_stop + 1)),
            None => {
                unset(name);
                return Ok((String::new(), name_stop + 1));
            }
        }
    }
    // An operator must follow the name at once: `-`, `+`, `?`, optionally after a `:`.
    let after_colon = if bytes.get(name_stop) == Some(&b':') {
        name_stop + 1
    } else {
        name_stop
    };
    if !matches!(bytes.get(after_colon), Some(b'-' | b'+' | b'?')) {
        return Err(invalid());
    }
    // The regex's `(.*)}` is greedy and `.` stops at a newline: the match runs to the last
    // `}` before the end of the line.
    let line_end = template[after_colon..]
        .find('\n')
        .map_or(template.len(), |n| after_colon + n);
    let last_brace = template[after_colon..line_end]
        .rfind('}')
        .map(|n| after_colon + n)
        .ok_or_else(invalid)?;
    let matched = &template[at..=last_brace];
    let (inner, rest) = match first_closing_brace(matched) {
        Some(close) => (&matched[..=close], &matched[close + 1..]),
        None => (matched, ""),
    };
    let substitution = &inner[2..inner.len() - 1];
    let operator = OPERATORS
        .iter()
        .filter_map(|op| substitution.find(op).map(|i| (i, *op)))
        .min_by_key(|(i, _)| *i)
        .map(|(_, op)| op)
        .ok_or_else(invalid)?;
    let (var, argument) = substitution
        .split_once(operator)
        .unwrap_or((substitution, ""));
    let value = vars.lookup(var);
    let expanded = match operator {
        ":-" | "-" => {
            let default = substitute(argument, vars, unset)?;
            match value {
                Some(v) if !(operator == ":-" && v.is_empty()) => v.to_string(),
                _ => default,
            }
        }
        ":+" | "+" => {
            let alternative = substitute(argument, vars, unset)?;
            match value {
                Some(v) if operator == ":+" && v.is_empty() => v.to_string(),
                Some(_) => alternative,
                None => String::new(),
            }
        }
        _ => {
            let reason = substitute(argument, vars, unset)?;
            match value {
                Some(v) if !(operator == ":?" && v.is_empty()) => v.to_string(),
                _ => {
                    return Err(TemplateError::Required {
                        variable: var.to_string(),
                        reason,
                    })
                }
            }
        }
    };
    let tail = substitute(rest, vars, unset)?;
    Ok((expanded + &tail, last_brace + 1))
}

/// compose-go's `getFirstBraceClosingIndex`: the `}` that balances the first `{`, where the
/// character after every `{` is skipped.
fn first_closing_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut open = 0i32;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'}' {
            open -= 1;
            if open == 0 {
                return Some(i);
            }
        }
        if bytes[i] == b'{' {
            open += 1;
            i += 1;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars() -> HashMap<String, String> {
        HashMap::from([
            ("SET".to_string(), "v".to_string()),
            ("EMPTY".to_string(), String::new()),
            ("SET_more".to_string(), "long".to_string()),
        ])
    }

    fn expand(t: &str) -> Result<String, TemplateError> {
        substitute(t, &vars(), &mut |_| {})
    }

    #[test]
    fn every_operator_as_compose_documents_it() {
        let cases = [
            ("${SET:-d}|${EMPTY:-d}|${UNSET:-d}", "v|d|d"),
            ("${SET-d}|${EMPTY-d}|${UNSET-d}", "v||d"),
            ("${SET:+a}|${EMPTY:+a}|${UNSET:+a}", "a||"),
            ("${SET+a}|${EMPTY+a}|${UNSET+a}", "a|a|"),
            ("${EMPTY?m}|${SET:?m}", "|v"),
            ("$SET_more ${SET}_more", "long v_more"),
            ("$$SET $$", "$SET $"),
            ("$1|$-|$ |$.|a$|$@", "$1|$-|$ |$.|a$|$@"),
        ];
        for (t, want) in cases {
            assert_eq!(expand(t).unwrap(), want, "{t}");
        }
    }

    #[test]
    fn nesting_and_the_brace_quirks() {
        let cases = [
            ("${UNSET:-${SET:-c}}", "v"),
            ("${UNSET:-${UNSET2:-c}}", "c"),
            ("${UNSET:-a${SET}b}", "avb"),
            ("${UNSET:-$SET}", "v"),
            ("${SET:-a:-b}", "v"),
            ("${UNSET:-a:-b}", "a:-b"),
            ("${UNSET:-a?b}", "a?b"),
            ("${SET}x}", "vx}"),
            ("${UNSET:-a}b}c", "ab}c"),
            ("${UNSET:-{}}|${UNSET:-a}}", "{}}|a"),
        ];
        for (t, want) in cases {
            assert_eq!(expand(t).unwrap(), want, "{t}");
        }
    }

    #[test]
    fn invalid_templates_and_required_variables_fail() {
        for bad in [
            "${A B}", "${}", "${1A}", "${A.B}", "${A:=x}", "${SET#x}", "${A", "${A-",
        ] {
            assert!(
                matches!(expand(bad), Err(TemplateError::Invalid { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            expand("${UNSET:?${SET} is $SET}").unwrap_err(),
            TemplateError::Required {
                variable: "UNSET".into(),
                reason: "v is v".into()
            }
        );
        let e = expand("${EMPTY:?}").unwrap_err();
        assert_eq!(
            e.message("secrets.s.file"),
            "error while interpolating secrets.s.file: required variable EMPTY is missing a value"
        );
    }

    #[test]
    fn unset_references_are_reported() {
        let mut seen = Vec::new();
        let out = substitute("$A ${B} ${C:-x} $SET", &vars(), &mut |n| {
            seen.push(n.to_string())
        })
        .unwrap();
        assert_eq!(out, "  x v");
        assert_eq!(seen, ["A", "B"]);
        assert_eq!(
            referenced_variables("${A:-$B} $$C ${D} $D"),
            ["A", "B", "D"]
        );
    }
}
