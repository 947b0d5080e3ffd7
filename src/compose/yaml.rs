//! Reading a Compose file into YAML documents: size cap, UTF-8, several `---` documents, merge
//! keys (`<<`), string keys only, and the paths Compose's `!reset` and `!override` tags mark.

use std::path::Path;

use serde::de::DeserializeSeed as _;
use serde_norway::Value;

use crate::error::{Error, Result};

/// Refuse Compose files larger than this before parsing: a real one is a few KB.
const MAX_COMPOSE_BYTES: usize = 4 * 1024 * 1024;

/// Nodes one document may hold once anchors and aliases are expanded (counted while
/// parsing, so an alias fan-out stops here instead of filling memory). The largest file in
/// tests/corpus/compose has 103 (143-real-general-manager-nested-subdir): this is about
/// 1,000 times that, and about 20 times a 170-service project.
pub const MAX_DOCUMENT_NODES: usize = 100_000;

/// `[` and `{` open at once, counted before the parser sees the text: the parser's cost
/// grows with the square of this (a million `[` took over 30 s). The deepest file in
/// tests/corpus/compose nests 7 levels (116-def-x-compose-secrets-extension), so 1,000 is
/// over 100 times that. Brackets inside quotes and comments are counted too, so this can
/// only over-estimate; the parser's own limit of 128 nested collections still applies.
pub const MAX_FLOW_DEPTH: usize = 1_000;

/// A dotted path into a document: mapping keys, and `[i]` for sequence items.
pub type TreePath = Vec<String>;

/// One YAML document of a Compose file.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    /// Paths tagged `!reset` (removed from this document) or `!override` (kept): both are
    /// deleted from what earlier files built before this document is merged.
    pub cleared: Vec<TreePath>,
    /// How many nodes it held once aliases were expanded (see [`MAX_DOCUMENT_NODES`]).
    pub nodes: usize,
}

/// Every document of the file at `path`, in order.
pub fn read(path: &Path) -> Result<Vec<Document>> {
    let bytes = crate::dotenv::read_bounded(path, MAX_COMPOSE_BYTES)?
        .ok_or_else(|| Error::config(path, "the Compose file does not exist"))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        line: line_of(&bytes[..e.valid_up_to()]),
        message: "not valid UTF-8".into(),
    })?;
    parse(path, text)
}

/// Parse `text` (the contents of `path`, named in errors).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Document>> {
    if let Some(line) = flow_too_deep(text) {
        return Err(Error::Parse {
            path: path.to_path_buf(),
            line,
            message: format!(
                "resource limit: more than {MAX_FLOW_DEPTH} brackets (`[`, `{{`, `${{`, counted in strings too) open at once; refusing to parse"
            ),
        });
    }
    let mut docs = Vec::new();
    for de in serde_norway::Deserializer::from_str(text) {
        let left = std::cell::Cell::new(MAX_DOCUMENT_NODES);
        let mut value = Counted { left: &left }
            .deserialize(de)
            .map_err(|e| yaml_error(path, &e))?;
        value.apply_merge().map_err(|e| yaml_error(path, &e))?;
        if value.is_null() {
            continue;
        }
        let mut cleared = Vec::new();
        let value = resolve_tags(value, &mut Vec::new(), &mut cleared).unwrap_or(Value::Null);
        check_keys(path, &value, &mut Vec::new())?;
        if !value.is_mapping() {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line: 1,
                message: "a Compose file must be a mapping at the top level".into(),
            });
        }
        docs.push(Document {
            value,
            cleared,
            nodes: MAX_DOCUMENT_NODES - left.get(),
        });
    }
    if docs.is_empty() {
        return Err(Error::config(path, "the Compose file is empty"));
    }
    Ok(docs)
}

/// The line where more than [`MAX_FLOW_DEPTH`] brackets are open, if any.
fn flow_too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1;
    for b in text.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Some(line);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'\n' => line += 1,
            _ => {}
        }
    }
    None
}

/// The message of a document with more than [`MAX_DOCUMENT_NODES`] nodes.
fn too_many_nodes() -> String {
    format!(
        "resource limit: more than {MAX_DOCUMENT_NODES} nodes once anchors and aliases are expanded"
    )
}

/// A [`Value`] deserialized with a budget of nodes: serde_norway's own impl, plus a count
/// that stops an alias fan-out (`[*a, *a, ...]` of a large `&a`) as it expands.
struct Counted<'a> {
    left: &'a std::cell::Cell<usize>,
}

impl Counted<'_> {
    fn take<E: serde::de::Error>(&self) -> std::result::Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(E::custom(too_many_nodes())),
        }
    }

    fn again(&self) -> Counted<'_> {
        Counted { left: self.left }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Counted<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Counted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> std::result::Result<Value, E> {
        self.take()?;
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: serde::de::Error>(self, i: i64) -> std::result::Result<Value, E> {
        self.take()?;
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, u: u64) -> std::result::Result<Value, E> {
        self.take()?;
        Ok(Value::Number(u.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> std::result::Result<Value, E> {
        self.take()?;
        Ok(Value::Number(f.into()))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<Value, E> {
        self.take()?;
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> std::result::Result<Value, E> {
        self.take()?;
        Ok(Value::String(s))
    }

    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Value, E> {
        self.take()?;
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> std::result::Result<Value, E> {
        self.take()?;
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, deserializer)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut data: A,
    ) -> std::result::Result<Value, A::Error> {
        self.take()?;
        let mut items = Vec::new();
        while let Some(item) = data.next_element_seed(self.again())? {
            items.push(item);
        }
        Ok(Value::Sequence(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut data: A,
    ) -> std::result::Result<Value, A::Error> {
        self.take()?;
        let mut map = serde_norway::Mapping::new();
        while let Some(key) = data.next_key_seed(self.again())? {
            if map.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate entry with key {:?}",
                    key_text(&key)
                )));
            }
            let value = data.next_value_seed(self.again())?;
            map.insert(key, value);
        }
        Ok(Value::Mapping(map))
    }

    fn visit_enum<A: serde::de::EnumAccess<'de>>(
        self,
        data: A,
    ) -> std::result::Result<Value, A::Error> {
        use serde::de::VariantAccess as _;
        self.take()?;
        let (tag, contents) = data.variant::<String>()?;
        if tag.is_empty() {
            return Err(serde::de::Error::custom("empty YAML tag is not allowed"));
        }
        let value = contents.newtype_variant_seed(self.again())?;
        Ok(Value::Tagged(Box::new(serde_norway::value::TaggedValue {
            tag: serde_norway::value::Tag::new(tag),
            value,
        })))
    }
}

/// Remove `!reset` nodes and unwrap `!override` ones, recording both paths. Other tags are
/// ignored, as Compose ignores them.
fn resolve_tags(value: Value, path: &mut TreePath, cleared: &mut Vec<TreePath>) -> Option<Value> {
    match value {
        Value::Tagged(tagged) => match tagged.tag.to_string().as_str() {
            "!reset" => {
                cleared.push(path.clone());
                None
            }
            "!override" => {
                cleared.push(path.clone());
                Some(tagged.value)
            }
            _ => resolve_tags(tagged.value, path, cleared),
        },
        Value::Mapping(map) => {
            let mut out = serde_norway::Mapping::new();
            for (k, v) in map {
                path.push(key_text(&k));
                if let Some(v) = resolve_tags(v, path, cleared) {
                    out.insert(k, v);
                }
                path.pop();
            }
            Some(Value::Mapping(out))
        }
        Value::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, v) in items.into_iter().enumerate() {
                path.push(i.to_string());
                if let Some(v) = resolve_tags(v, path, cleared) {
                    out.push(v);
                }
                path.pop();
            }
            Some(Value::Sequence(out))
        }
        other => Some(other),
    }
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_norway::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Compose refuses non-string mapping keys anywhere.
fn check_keys(file: &Path, value: &Value, path: &mut TreePath) -> Result<()> {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let Value::String(key) = k else {
                    let at = if path.is_empty() {
                        "at top level".to_string()
                    } else {
                        format!("in {}", path.join("."))
                    };
                    return Err(Error::config(
                        file,
                        format!("non-string key {at}: {}", key_text(k)),
                    ));
                };
                path.push(key.clone());
                check_keys(file, v, path)?;
                path.pop();
            }
            Ok(())
        }
        Value::Sequence(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                check_keys(file, v, path)?;
                path.pop();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn yaml_error(path: &Path, e: &serde_norway::Error) -> Error {
    let message = format!("invalid YAML: {}", yaml_message(e));
    match e.location() {
        Some(l) => Error::Parse {
            path: path.to_path_buf(),
            line: l.line(),
            message,
        },
        // Some errors (an alias bomb, too deep a nesting) have no single line to blame.
        None => Error::config(path, message),
    }
}

/// The parser's message without its trailing location (we print our own `file:line`).
fn yaml_message(e: &serde_norway::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn line_of(prefix: &[u8]) -> usize {
    prefix.iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Result<Vec<Document>> {
        parse(Path::new("compose.yaml"), text)
    }

    #[test]
    fn merge_keys_follow_compose_precedence() {
        let d = docs(
            "x: &a {u: '1', l: {from: a}}\ny: &b {u: '2', e: 3, l: {from: b}}\n\
             m1: {<<: *a, u: local}\nm2: {<<: [*a, *b]}\n",
        )
        .unwrap();
        let v = &d[0].value;
        assert_eq!(v["m1"]["u"].as_str(), Some("local"));
        assert_eq!(
            v["m2"]["u"].as_str(),
            Some("1"),
            "earlier merge sources win"
        );
        assert_eq!(v["m2"]["l"]["from"].as_str(), Some("a"), "shallow");
        assert_eq!(v["m2"]["e"].as_u64(), Some(3));
    }

    #[test]
    fn reset_and_override_paths_are_recorded() {
        let d = docs(
            "services:\n  app:\n    secrets: !reset []\n    user: !override '5'\n    labels: !foo {a: b}\n",
        )
        .unwrap();
        let doc = &d[0];
        assert!(doc.value["services"]["app"].get("secrets").is_none());
        assert_eq!(doc.value["services"]["app"]["user"].as_str(), Some("5"));
        assert_eq!(
            doc.value["services"]["app"]["labels"]["a"].as_str(),
            Some("b")
        );
        assert_eq!(
            doc.cleared,
            vec![
                vec!["services".to_string(), "app".into(), "secrets".into()],
                vec!["services".to_string(), "app".into(), "user".into()]
            ]
        );
    }

    #[test]
    fn documents_keys_and_errors() {
        assert_eq!(docs("a: 1\n---\nb: 2\n").unwrap().len(), 2);
        assert!(docs("").is_err());
        assert!(docs("# only a comment\n").is_err());
        assert!(docs("- a\n").is_err());
        let e = docs("a: 1\na: 2\n").unwrap_err().to_string();
        assert!(e.contains("duplicate"), "{e}");
        let e = docs("services:\n  1: {}\n").unwrap_err().to_string();
        assert!(e.contains("non-string key in services"), "{e}");
    }
}
