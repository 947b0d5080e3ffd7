//! Compose's `${...}` interpolation, as compose-go's template package does it: `$V`, `${V}`,
//! `${V:-d}`, `${V-d}`, `${V:?msg}`, `${V?msg}`, `${V:+a}`, `${V+a}`, nesting and `$$`.
//!
//! The quirks are kept on purpose, because a value that differs from what `docker compose`
//! computes is a secret written to the wrong place: the argument of an operator runs to the
//! last `}` on the line and is then cut at the first balanced `}` (counting skips the
//! character after each `{`), and a `$` not followed by a name, `$` or `{` stays literal.

/// How deep `${V:-${W:-...}}` may nest. The deepest template in tests/corpus/compose nests 2
/// levels (095-interp-nested); each level costs a stack frame and a scan of what is left.
pub const MAX_NESTING: usize = 200;

/// The longest string that is interpolated (one holding a `$`). The longest template in
/// tests/corpus/compose is 78 bytes, and a Key Vault value is at most 25 KB, so a `.env`
/// value never comes near; a longer one is a blow-up, not a configuration.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// The longest result of one interpolation: 40 times a Key Vault value, 13,000 times the
/// longest string in tests/corpus/compose (78 bytes). `$A` repeated can otherwise multiply a
/// large variable many times over.
pub const MAX_EXPANDED_BYTES: usize = 1024 * 1024;

/// Which bound a template broke (see the constants above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Nesting,
    TemplateBytes,
    ExpandedBytes,
}

impl Limit {
    /// What was refused, naming the limit (never the text).
    pub fn describe(self) -> String {
        match self {
            Limit::Nesting => {
                format!("`${{...}}` nests more than {MAX_NESTING} levels deep")
            }
            Limit::TemplateBytes => {
                format!("a string to interpolate is longer than {MAX_TEMPLATE_BYTES} bytes")
            }
            Limit::ExpandedBytes => {
                format!("interpolation would produce more than {MAX_EXPANDED_BYTES} bytes")
            }
        }
    }
}

/// Why a template could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `${` without a valid name and closing brace; holds the template it was found in.
    Invalid { template: String },
    /// `${V:?msg}` or `${V?msg}` with `V` missing.
    Required { variable: String, reason: String },
    /// A resource limit: the template is refused before it can exhaust the stack or memory.
    Limit(Limit),
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
            TemplateError::Limit(limit) => {
                format!("resource limit: {path}: {}", limit.describe())
            }
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
    if template.len() > MAX_TEMPLATE_BYTES && template.contains('$') {
        return Err(TemplateError::Limit(Limit::TemplateBytes));
    }
    let mut expander = Expander { vars, unset };
    expander.expand(template, 0)
}

struct Expander<'a, 'b> {
    vars: &'a dyn Lookup,
    unset: &'b mut dyn FnMut(&str),
}

/// The end of the line a position is on and the last `}` on it from where it was computed:
/// every `${` on one line asks for the same two, so they are found once per line, not once
/// per reference (which made a long line of references quadratic).
#[derive(Default)]
struct LineScan {
    /// Positions before this one are on lines already scanned.
    line_end: usize,
    last_brace: Option<usize>,
}

impl LineScan {
    /// The last `}` in `template[from..]` before the end of `from`'s line.
    fn last_brace(&mut self, template: &str, from: usize) -> Option<usize> {
        if from >= self.line_end {
            self.line_end = template[from..]
                .find('\n')
                .map_or(template.len(), |n| from + n);
            self.last_brace = template[from..self.line_end].rfind('}').map(|n| from + n);
        }
        self.last_brace.filter(|&b| b >= from)
    }
}

impl Expander<'_, '_> {
    fn expand(&mut self, template: &str, depth: usize) -> Result<String, TemplateError> {
        if depth > MAX_NESTING {
            return Err(TemplateError::Limit(Limit::Nesting));
        }
        let bytes = template.as_bytes();
        let mut out = String::with_capacity(template.len().min(MAX_EXPANDED_BYTES));
        let mut lines = LineScan::default();
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
                    match self.vars.lookup(name) {
                        Some(v) => out.push_str(v),
                        None => (self.unset)(name),
                    }
                    i = end;
                }
                Some(b'{') => {
                    i = self.braced(template, at, depth, &mut lines, &mut out)?;
                }
                // `$1`, `$-`, a trailing `$`: not a reference, kept as written.
                _ => {
                    out.push('$');
                    i = next;
                }
            }
            if out.len() > MAX_EXPANDED_BYTES {
                return Err(TemplateError::Limit(Limit::ExpandedBytes));
            }
        }
        out.push_str(&template[i..]);
        if out.len() > MAX_EXPANDED_BYTES {
            return Err(TemplateError::Limit(Limit::ExpandedBytes));
        }
        Ok(out)
    }

    /// `${...}` starting at `at` (the `$`), expanded into `out`; returns where the text after
    /// it resumes.
    ///
    /// compose-go expands the text between the first balanced `}` and the last `}` of the line
    /// as a template of its own; resuming right after the balanced `}` gives the same result
    /// (that text ends the line's last `}`, so every reference in it sees the same line end)
    /// without a recursion per reference.
    fn braced(
        &mut self,
        template: &str,
        at: usize,
        depth: usize,
        lines: &mut LineScan,
        out: &mut String,
    ) -> Result<usize, TemplateError> {
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
            match self.vars.lookup(name) {
                Some(v) => out.push_str(v),
                None => (self.unset)(name),
            }
            return Ok(name_stop + 1);
        }
        // An operator must follow the name at once: `-`, `+`, `?`, optionally after a `:`.
        // Names hold no operator character, so compose-go's "first operator in the text" is
        // this one.
        let colon = bytes.get(name_stop) == Some(&b':');
        let after_colon = if colon { name_stop + 1 } else { name_stop };
        let operator = match bytes.get(after_colon) {
            Some(&op @ (b'-' | b'+' | b'?')) => op,
            _ => return Err(invalid()),
        };
        // The regex's `(.*)}` is greedy and `.` stops at a newline: the match runs to the last
        // `}` before the end of the line.
        let last_brace = lines
            .last_brace(template, after_colon)
            .ok_or_else(invalid)?;
        let matched = &template[at..=last_brace];
        let close = first_closing_brace(matched);
        let inner_end = close.unwrap_or(matched.len() - 1);
        let argument = &template[after_colon + 1..at + inner_end];
        let value = self.vars.lookup(name);
        let nested = self.expand(argument, depth + 1)?;
        match operator {
            b'-' => match value {
                Some(v) if !(colon && v.is_empty()) => out.push_str(v),
                _ => out.push_str(&nested),
            },
            b'+' => match value {
                Some(v) if colon && v.is_empty() => {}
                Some(_) => out.push_str(&nested),
                None => {}
            },
            _ => match value {
                Some(v) if !(colon && v.is_empty()) => out.push_str(v),
                _ => {
                    return Err(TemplateError::Required {
                        variable: name.to_string(),
                        reason: nested,
                    })
                }
            },
        }
        Ok(match close {
            Some(close) => at + close + 1,
            None => last_brace + 1,
        })
    }
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
    fn text_after_a_reference_resumes_as_compose_go_expands_it() {
        // compose-go expands the text between the first balanced `}` and the line's last `}`
        // as its own template; resuming in place must give the same.
        let cases = [
            ("${UNSET:-a}${SET}}b", "av}b"),
            ("${UNSET:-a}x${UNSET:-${SET}}y}\n${SET:-q}}", "axvy}\nv}"),
            ("${UNSET:-{}${SET:-c}}", "{}v"),
            ("${UNSET:-x}${UNSET:-x}${UNSET:-x}", "xxx"),
        ];
        for (t, want) in cases {
            assert_eq!(expand(t).unwrap(), want, "{t}");
        }
    }

    #[test]
    fn limits_refuse_deep_long_and_exploding_templates() {
        let nested = |n: usize| format!("{}x{}", "${UNSET:-".repeat(n), "}".repeat(n));
        assert_eq!(expand(&nested(MAX_NESTING)).unwrap(), "x");
        assert_eq!(
            expand(&nested(MAX_NESTING + 1)),
            Err(TemplateError::Limit(Limit::Nesting))
        );
        // 40,000 references in a row were a recursion each (a stack overflow); far under the
        // length limit the same shape expands in one pass.
        assert_eq!(
            expand(&"${UNSET:-x}".repeat(40_000)),
            Err(TemplateError::Limit(Limit::TemplateBytes))
        );
        assert_eq!(expand(&"${UNSET:-x}".repeat(5_000)).unwrap().len(), 5_000);
        // A string without `$` is never interpolated, so never refused for its length.
        let plain = "p".repeat(MAX_TEMPLATE_BYTES + 1);
        assert_eq!(expand(&plain).unwrap(), plain);
        let big = HashMap::from([("B".to_string(), "b".repeat(64 * 1024))]);
        let e = substitute(&"$B".repeat(17), &big, &mut |_| {}).unwrap_err();
        assert_eq!(e, TemplateError::Limit(Limit::ExpandedBytes));
        assert_eq!(
            e.message("services.app.labels.x"),
            "resource limit: services.app.labels.x: interpolation would produce more than \
             1048576 bytes"
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
