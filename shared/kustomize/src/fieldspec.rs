//! Walking an object along a field spec path (`spec/template/spec/containers[]/image`) and
//! applying a setter to what is found, creating missing fields when asked.

use serde_json::{Map, Value};

use crate::types::{FieldSpec, Gvk};

/// What to create for a missing last path element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    /// Create nothing: missing fields end the walk.
    Nothing,
    /// A scalar (handed to the setter as `null`).
    Scalar,
    /// A map.
    Map,
}

/// Splits a field spec path on `/`, keeping `\/` as a literal slash.
pub(crate) fn split_path(path: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'/') {
            cur.push('/');
            chars.next();
        } else if c == '/' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// Whether a field spec applies to an object (by its current apiVersion and kind).
pub(crate) fn matches_gvk(fs: &FieldSpec, obj: &Value) -> bool {
    let gvk = Gvk::from_api_version(
        obj.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
        obj.get("kind").and_then(Value::as_str).unwrap_or(""),
    );
    gvk.is_selected_by(&fs.gvk)
}

/// Applies `set` at every node the field spec path reaches in `obj` (when the gvk matches).
///
/// # Errors
/// The setter's error, or a message when the path runs into a scalar.
pub(crate) fn apply(
    obj: &mut Value,
    fs: &FieldSpec,
    create: Create,
    set: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<(), String> {
    if !matches_gvk(fs, obj) {
        return Ok(());
    }
    let path = split_path(&fs.path);
    let create = if fs.create { create } else { Create::Nothing };
    walk(obj, &path, create, set)
        .map_err(|e| format!("considering field '{}' of object: {e}", fs.path))
}

/// Walks `path` from `node`.
pub(crate) fn walk(
    node: &mut Value,
    path: &[String],
    create: Create,
    set: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<(), String> {
    if path.is_empty() {
        return set(node);
    }
    match node {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for item in items {
                walk(item, path, create, set)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            let (name, is_seq) = match path[0].strip_suffix("[]") {
                Some(n) => (n, true),
                None => (path[0].as_str(), false),
            };
            if name.is_empty() {
                return Err("cannot set or create an empty field name".into());
            }
            if !map.contains_key(name) {
                if create == Create::Nothing || is_seq {
                    return Ok(());
                }
                let fresh = if path.len() == 1 && create == Create::Scalar {
                    Value::Null
                } else {
                    Value::Object(Map::new())
                };
                map.insert(name.to_string(), fresh);
            } else if map.get(name).is_some_and(Value::is_null)
                && create != Create::Nothing
                && !is_seq
                && (path.len() > 1 || create == Create::Map)
            {
                map.insert(name.to_string(), Value::Object(Map::new()));
            }
            let child = map.get_mut(name).expect("present: checked or inserted above");
            walk(child, &path[1..], create, set)
        }
        _ => Err("expected sequence or mapping node".into()),
    }
}
