//! ConfigMap and Secret generators, and the content hash kustomize appends to generated names.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::types::{GeneratorArgs, GeneratorOptions};

/// Where generator inputs (env files, files) are read from.
pub(crate) trait KvLoader {
    fn load(&self, path: &str) -> Result<Vec<u8>, String>;
}

/// Merges kustomization-wide generator options under per-generator ones.
pub(crate) fn merge_options(
    local: Option<&GeneratorOptions>,
    global: Option<&GeneratorOptions>,
) -> GeneratorOptions {
    let mut out = GeneratorOptions::default();
    if let Some(g) = global {
        out = g.clone();
    }
    if let Some(l) = local {
        out.labels.extend(l.labels.clone());
        out.annotations.extend(l.annotations.clone());
        if l.disable_name_suffix_hash.is_some() {
            out.disable_name_suffix_hash = l.disable_name_suffix_hash;
        }
        if l.immutable.is_some() {
            out.immutable = l.immutable;
        }
    }
    out
}

fn parse_literal(source: &str) -> Result<(String, String), String> {
    match source.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), remove_quotes(v).to_string())),
        _ => Err(format!("invalid literal source {source}, expected key=value")),
    }
}

fn remove_quotes(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

fn parse_file_source(source: &str) -> Result<(String, String), String> {
    let n = source.matches('=').count();
    if n == 0 {
        let base = source.trim_end_matches('/').rsplit('/').next().unwrap_or(source);
        return Ok((base.to_string(), source.to_string()));
    }
    if n > 1 {
        return Err(format!("source {source:?} key name or file path contains '='"));
    }
    let (k, p) = source.split_once('=').unwrap_or_default();
    if k.is_empty() {
        return Err(format!("missing key name for file path {p:?} in source {source:?}"));
    }
    if p.is_empty() {
        return Err(format!("missing file path for key name {k:?} in source {source:?}"));
    }
    Ok((k.to_string(), p.to_string()))
}

fn env_pairs(content: &[u8], file: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let text = std::str::from_utf8(content)
        .map_err(|_| format!("env file {file} has invalid utf8 bytes"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        if key.is_empty()
            || key.chars().any(|c| c.is_whitespace())
            || key.chars().next().is_some_and(|c| c.is_ascii_digit())
        {
            return Err(format!("invalid env var name {key:?} in env file {file}"));
        }
        out.push((key.to_string(), value.as_bytes().to_vec()));
    }
    Ok(out)
}

/// Makes a ConfigMap (`is_secret` false) or Secret from generator arguments.
pub(crate) fn generate(
    args: &GeneratorArgs,
    options: &GeneratorOptions,
    is_secret: bool,
    loader: &dyn KvLoader,
) -> Result<Value, String> {
    let kind = if is_secret { "Secret" } else { "ConfigMap" };
    if args.name.is_empty() {
        return Err(format!("a {} must have a name", kind.to_lowercase()));
    }
    let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut envs = args.envs.clone();
    if !args.env.is_empty() {
        envs.push(args.env.clone());
    }
    for env in &envs {
        let content = loader.load(env)?;
        pairs.extend(env_pairs(&content, env)?);
    }
    for lit in &args.literals {
        let (k, v) = parse_literal(lit)?;
        pairs.push((k, v.into_bytes()));
    }
    for file in &args.files {
        let (k, p) = parse_file_source(file)?;
        pairs.push((k, loader.load(&p)?));
    }
    let mut data = Map::new();
    let mut binary = Map::new();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in pairs {
        if !is_valid_key(&k) {
            return Err(format!(
                "{k:?} is not a valid key name: a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
            ));
        }
        if !seen.insert(k.clone()) {
            return Err(format!("configmap {} illegally repeats the key `{k}`", args.name));
        }
        if is_secret {
            data.insert(k, Value::String(base64_wrapped(&v)));
        } else {
            match String::from_utf8(v) {
                Ok(s) => {
                    data.insert(k, Value::String(s));
                }
                Err(e) => {
                    binary.insert(k, Value::String(base64_wrapped(e.as_bytes())));
                }
            }
        }
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(args.name));
    if !args.namespace.is_empty() {
        metadata.insert("namespace".into(), json!(args.namespace));
    }
    if !options.labels.is_empty() {
        metadata.insert("labels".into(), json!(options.labels));
    }
    if !options.annotations.is_empty() {
        metadata.insert("annotations".into(), json!(options.annotations));
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!("v1"));
    obj.insert("kind".into(), json!(kind));
    obj.insert("metadata".into(), Value::Object(metadata));
    if is_secret {
        obj.insert(
            "type".into(),
            json!(if args.r#type.is_empty() { "Opaque" } else { &args.r#type }),
        );
    }
    if !data.is_empty() {
        obj.insert("data".into(), Value::Object(data));
    }
    if !binary.is_empty() {
        obj.insert("binaryData".into(), Value::Object(binary));
    }
    if options.immutable == Some(true) {
        obj.insert("immutable".into(), json!(true));
    }
    Ok(Value::Object(obj))
}

fn is_valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Base64 broken into 70-character lines (each ending in a newline) once it is that long, as kyaml writes Secret data.
pub(crate) fn base64_wrapped(data: &[u8]) -> String {
    const LINE: usize = 70;
    let encoded = base64(data);
    if encoded.len() < LINE {
        return encoded;
    }
    let mut out = String::with_capacity(encoded.len() + encoded.len() / LINE + 1);
    for chunk in encoded.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Standard base64 with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { ALPHABET[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { ALPHABET[n as usize & 63] as char } else { '=' });
    }
    out
}

/// Decodes standard base64 (used by replacements and vars only through this crate's own output).
pub(crate) fn go_json(value: &Value) -> String {
    let mut out = String::new();
    write_go_json(&mut out, value);
    out
}

/// Go's `encoding/json` output: sorted keys, HTML characters escaped.
fn write_go_json(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(out, k);
                out.push(':');
                write_go_json(out, &map[k.as_str()]);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(out, item);
            }
            out.push(']');
        }
        Value::String(s) => write_go_string(out, s),
        other => out.push_str(&other.to_string()),
    }
}

fn write_go_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// kustomize's name hash of an object: 10 characters from the sha256 of its relevant content.
pub(crate) fn hash_object(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    // kustomize looks `metadata/name` up as one (absent) key, so the name hashes as "".
    let name = json!("");
    let field = |f: &str| obj.get(f).cloned().unwrap_or(json!(""));
    let encoded = match kind {
        "ConfigMap" => {
            let mut m = Map::new();
            m.insert("kind".into(), json!("ConfigMap"));
            m.insert("name".into(), name);
            m.insert("data".into(), field("data"));
            if let Some(b @ Value::Object(_)) = obj.get("binaryData") {
                m.insert("binaryData".into(), b.clone());
            }
            go_json(&Value::Object(m))
        }
        "Secret" => {
            let mut m = Map::new();
            m.insert("kind".into(), json!("Secret"));
            m.insert("type".into(), field("type"));
            m.insert("name".into(), name);
            m.insert("data".into(), field("data"));
            if let Some(b @ Value::Object(_)) = obj.get("stringData") {
                m.insert("stringData".into(), b.clone());
            }
            go_json(&Value::Object(m))
        }
        _ => go_json(obj),
    };
    let digest = Sha256::digest(encoded.as_bytes());
    let hex = hex::encode(digest);
    hex[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (input, expected) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn go_json_sorts_and_escapes() {
        assert_eq!(
            go_json(&json!({"b": "<&>", "a": [1, null]})),
            r#"{"a":[1,null],"b":"\u003c\u0026\u003e"}"#
        );
    }

    #[test]
    fn literal_sources_strip_quotes() {
        assert_eq!(parse_literal("a='x y'").unwrap(), ("a".into(), "x y".into()));
        assert_eq!(parse_literal("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_literal("=x").is_err());
        assert!(parse_literal("x").is_err());
    }
}
