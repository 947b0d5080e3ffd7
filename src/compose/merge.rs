//! Compose's merge rules for `-f` layering, `extends` and `include`: mappings merge key by key,
//! sequences append, scalars are replaced, and a few paths have rules of their own (a
//! service's secrets are unique by target, its environment by key, its profiles by value).

use serde_norway::{Mapping, Value};

use super::yaml::TreePath;

/// Where a path may be matched against a pattern whose `*` stands for any one key.
fn matches(path: &[&str], pattern: &[&str]) -> bool {
    path.len() == pattern.len() && path.iter().zip(pattern).all(|(p, q)| *q == "*" || p == q)
}

/// Merge `over` onto `base`. An error names the path whose types cannot be merged.
pub fn merge(base: Value, over: Value, path: &mut Vec<String>) -> Result<Value, String> {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    if matches(&p, &["services", "*", "environment"]) {
        let mut seq = into_sequence(base);
        seq.extend(into_sequence(over));
        return Ok(Value::Sequence(seq));
    }
    if matches(&p, &["services", "*", "build"]) {
        let to_build = |v: Value| match v {
            Value::String(context) => {
                let mut m = Mapping::new();
                m.insert("context".into(), Value::String(context));
                Value::Mapping(m)
            }
            other => other,
        };
        return merge_generic(to_build(base), to_build(over), path);
    }
    merge_generic(base, over, path)
}

fn merge_generic(base: Value, over: Value, path: &mut Vec<String>) -> Result<Value, String> {
    if over.is_null() {
        return Ok(base);
    }
    match base {
        Value::Mapping(mut map) => {
            let Value::Mapping(other) = over else {
                return Err(format!("cannot override {}", path.join(".")));
            };
            for (k, v) in other {
                let key = k.as_str().unwrap_or_default().to_string();
                match map.get_mut(&k) {
                    Some(existing) => {
                        let old = std::mem::replace(existing, Value::Null);
                        path.push(key);
                        let m = merge(old, v, path);
                        path.pop();
                        *existing = m?;
                    }
                    None => {
                        map.insert(k, v);
                    }
                }
            }
            Ok(Value::Mapping(map))
        }
        Value::Sequence(mut items) => {
            let Value::Sequence(other) = over else {
                return Err(format!("cannot override {}", path.join(".")));
            };
            items.extend(other);
            Ok(Value::Sequence(items))
        }
        _ => Ok(over),
    }
}

/// A mapping `{K: V}` as the sorted `K=V` list Compose turns it into before merging.
fn into_sequence(v: Value) -> Vec<Value> {
    match v {
        Value::Mapping(map) => {
            let mut seq: Vec<String> = Vec::new();
            for (k, val) in map {
                let key = k.as_str().unwrap_or_default().to_string();
                match val {
                    Value::Null => seq.push(key),
                    Value::Sequence(items) => {
                        for i in items {
                            seq.push(format!("{key}={}", scalar_text(&i)));
                        }
                    }
                    other => seq.push(format!("{key}={}", scalar_text(&other))),
                }
            }
            seq.sort();
            seq.into_iter().map(Value::String).collect()
        }
        Value::Sequence(items) => items,
        Value::String(s) => vec![Value::String(s)],
        _ => Vec::new(),
    }
}

/// A scalar as text, the way Go's `%v` prints it.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => serde_norway::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Make the lists Compose keeps unique unique again: a later entry replaces an earlier one
/// with the same key, in the earlier one's place.
pub fn enforce_unicity(doc: &mut Value) -> Result<(), String> {
    let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) else {
        return Ok(());
    };
    for (name, service) in services.iter_mut() {
        let name = name.as_str().unwrap_or_default().to_string();
        let Some(service) = service.as_mapping_mut() else {
            continue;
        };
        if let Some(Value::Sequence(items)) = service.get_mut("secrets") {
            let path = format!("services.{name}.secrets");
            dedup(items, |i, v| {
                mount_key(v).ok_or_else(|| unsupported(&path, i, v))
            })?;
        }
        if let Some(Value::Sequence(items)) = service
            .get_mut("build")
            .and_then(Value::as_mapping_mut)
            .and_then(|b| b.get_mut("secrets"))
        {
            let path = format!("services.{name}.build.secrets");
            dedup(items, |i, v| {
                mount_key(v).ok_or_else(|| unsupported(&path, i, v))
            })?;
        }
        if let Some(Value::Sequence(items)) = service.get_mut("environment") {
            dedup(items, |_, v| {
                let text = scalar_text(v);
                Ok(text
                    .split_once('=')
                    .map_or(text.clone(), |(k, _)| k.to_string()))
            })?;
        }
        if let Some(Value::Sequence(items)) = service.get_mut("profiles") {
            dedup(items, |_, v| Ok(scalar_text(v)))?;
        }
    }
    Ok(())
}

fn unsupported(path: &str, i: usize, v: &Value) -> String {
    format!(
        "{path}.[{i}]: unsupported secret entry `{}` (a name or a mapping with `source`)",
        scalar_text(v)
    )
}

/// The key a secret mount is unique by: its target, else `/run/secrets/<source>`.
fn mount_key(v: &Value) -> Option<String> {
    match v {
        Value::String(source) => Some(format!("/run/secrets/{source}")),
        Value::Mapping(m) => match m.get("target") {
            Some(t) => Some(scalar_text(t)),
            None => Some(format!(
                "/run/secrets/{}",
                m.get("source").map(scalar_text).unwrap_or_default()
            )),
        },
        _ => None,
    }
}

fn dedup(
    items: &mut Vec<Value>,
    key: impl Fn(usize, &Value) -> Result<String, String>,
) -> Result<(), String> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, item) in std::mem::take(items).into_iter().enumerate() {
        let k = key(i, &item)?;
        match seen.iter().find(|(s, _)| *s == k) {
            Some((_, at)) => out[*at] = item,
            None => {
                seen.push((k, out.len()));
                out.push(item);
            }
        }
    }
    *items = out;
    Ok(())
}

/// Delete each of `paths` (exact mapping paths) from `doc`: what a later document's `!reset`
/// or `!override` clears before it is merged. Sequence items are never deleted, as in Compose.
pub fn clear_paths(doc: &mut Value, paths: &[TreePath]) {
    for path in paths {
        clear(doc, path);
    }
}

fn clear(doc: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = doc;
    for key in parents {
        match node.get_mut(key.as_str()) {
            Some(next) => node = next,
            None => return,
        }
    }
    if let Some(map) = node.as_mapping_mut() {
        map.shift_remove(last.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }

    fn merged(a: &str, b: &str) -> Value {
        let mut v = merge(yaml(a), yaml(b), &mut Vec::new()).unwrap();
        enforce_unicity(&mut v).unwrap();
        v
    }

    #[test]
    fn secret_definitions_merge_field_by_field() {
        let v = merged(
            "secrets: {s1: {file: ./a, x-meta: {a: 1}}}",
            "secrets: {s1: {x-meta: {b: 2}}, s2: {environment: E}}",
        );
        assert_eq!(v["secrets"]["s1"]["file"].as_str(), Some("./a"));
        assert_eq!(v["secrets"]["s1"]["x-meta"]["a"].as_u64(), Some(1));
        assert_eq!(v["secrets"]["s1"]["x-meta"]["b"].as_u64(), Some(2));
        assert_eq!(v["secrets"]["s2"]["environment"].as_str(), Some("E"));
    }

    #[test]
    fn service_secrets_are_unique_by_target_later_wins_in_place() {
        let v = merged(
            "services: {app: {secrets: [s1, {source: s2, target: /run/secrets/t2}, {source: s3, target: rel3}]}}",
            "services: {app: {secrets: [{source: s1, target: /run/secrets/s1, uid: '5'}, s2, {source: s4, target: rel3}]}}",
        );
        let items = v["services"]["app"]["secrets"].as_sequence().unwrap();
        let keys: Vec<String> = items.iter().map(|i| mount_key(i).unwrap()).collect();
        assert_eq!(
            keys,
            [
                "/run/secrets/s1",
                "/run/secrets/t2",
                "rel3",
                "/run/secrets/s2"
            ]
        );
        assert_eq!(items[0]["uid"].as_str(), Some("5"));
        assert_eq!(items[2]["source"].as_str(), Some("s4"));
    }

    #[test]
    fn environment_profiles_and_scalars() {
        let v = merged(
            "services: {app: {environment: {A: 1, B: 2}, profiles: [p1], user: '1'}}",
            "services: {app: {environment: [B=22, C=3], profiles: [p2, p1], user: '2'}}",
        );
        let env: Vec<&str> = v["services"]["app"]["environment"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert_eq!(env, ["A=1", "B=22", "C=3"]);
        let profiles: Vec<&str> = v["services"]["app"]["profiles"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert_eq!(profiles, ["p1", "p2"]);
        assert_eq!(v["services"]["app"]["user"].as_str(), Some("2"));
    }

    #[test]
    fn type_clashes_and_nulls() {
        let e = merge(
            yaml("secrets: {s: {file: a}}"),
            yaml("secrets: [x]"),
            &mut Vec::new(),
        );
        assert_eq!(e.unwrap_err(), "cannot override secrets");
        let v = merged(
            "services: {app: {user: '1'}}",
            "services: {app: {user: null}}",
        );
        assert_eq!(v["services"]["app"]["user"].as_str(), Some("1"));
    }

    #[test]
    fn cleared_paths_are_removed() {
        let mut v = yaml("services: {app: {secrets: [a], user: '1'}}\nsecrets: {a: {file: x}}");
        clear_paths(
            &mut v,
            &[
                vec!["services".into(), "app".into(), "secrets".into()],
                vec!["secrets".into()],
            ],
        );
        assert!(v["services"]["app"].get("secrets").is_none());
        assert!(v.get("secrets").is_none());
        assert_eq!(v["services"]["app"]["user"].as_str(), Some("1"));
    }
}
