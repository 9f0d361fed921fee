//! Serializers behind Helm's template functions: Go's `encoding/json` (`toJson`) and
//! BurntSushi/toml (`toToml`), over JSON values where integers and float64 stay distinct.

use serde_json::Value as Json;

/// Go's `json.Marshal` output: map keys sorted, HTML characters escaped when `escape_html`.
pub fn to_go_json(value: &Json, escape_html: bool) -> String {
    let mut out = String::new();
    write_json(value, escape_html, &mut out);
    out
}

fn write_json(value: &Json, escape_html: bool, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&go_json_number(n)),
        Json::String(s) => write_json_string(s, escape_html, out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, escape_html, out);
            }
            out.push(']');
        }
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(key, escape_html, out);
                out.push(':');
                write_json(&map[key.as_str()], escape_html, out);
            }
            out.push('}');
        }
    }
}

/// Go's float64 JSON text (`'f'` format between 1e-6 and 1e21, `'e'` outside).
pub fn go_json_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    go_json_float(f)
}

/// Go's `encoding/json` formatting of a float64.
pub fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{f:e}");
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        // Go writes e+21 and e-7 (its "e-09 to e-9" clean-up).
        if exp < 0 { format!("{mantissa}e-{}", -exp) } else { format!("{mantissa}e+{exp:02}") }
    } else if f == 0.0 {
        if f.is_sign_negative() { "-0".to_string() } else { "0".to_string() }
    } else {
        format!("{f}")
    }
}

fn write_json_string(s: &str, escape_html: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '<' | '>' | '&' if escape_html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// BurntSushi/toml's encoding of a map (Helm's `toToml`).
///
/// # Errors
/// A non-map root, or values TOML cannot hold, with BurntSushi's wording.
pub fn to_toml(value: &Json) -> Result<String, String> {
    let Json::Object(_) = value else {
        return Err("toml: top-level values must be Go maps or structs".to_string());
    };
    let mut out = String::new();
    let mut has_written = false;
    write_table(&mut out, &mut has_written, &[], value)?;
    Ok(out)
}

fn is_table(value: &Json) -> bool {
    matches!(value, Json::Object(_))
}

fn is_array_of_tables(value: &Json) -> bool {
    matches!(value, Json::Array(items) if !items.is_empty() && items.iter().all(is_table))
}

fn toml_key(key: &str) -> String {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        key.to_string()
    } else {
        toml_string(key)
    }
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_inline(value: &Json) -> Result<String, String> {
    Ok(match value {
        Json::Bool(b) => b.to_string(),
        Json::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Json::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            let text = format!("{f}");
            if text.contains('.') || text.contains('e') { text } else { format!("{text}.0") }
        }
        Json::String(s) => toml_string(s),
        Json::Array(items) => {
            let parts: Result<Vec<String>, String> =
                items.iter().filter(|v| !v.is_null()).map(toml_inline).collect();
            format!("[{}]", parts?.join(", "))
        }
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut parts = Vec::new();
            for key in keys {
                if map[key.as_str()].is_null() {
                    continue;
                }
                parts.push(format!("{} = {}", toml_key(key), toml_inline(&map[key.as_str()])?));
            }
            format!("{{{}}}", parts.join(", "))
        }
        Json::Null => return Err("toml: cannot encode a nil value".to_string()),
    })
}

fn write_table(
    out: &mut String,
    has_written: &mut bool,
    path: &[String],
    value: &Json,
) -> Result<(), String> {
    let Json::Object(map) = value else { return Ok(()) };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let indent = "  ".repeat(path.len());
    for key in &keys {
        let v = &map[key.as_str()];
        if v.is_null() || is_table(v) || is_array_of_tables(v) {
            continue;
        }
        out.push_str(&format!("{indent}{} = {}\n", toml_key(key), toml_inline(v)?));
        *has_written = true;
    }
    for key in &keys {
        let v = &map[key.as_str()];
        let mut sub_path = path.to_vec();
        sub_path.push((*key).clone());
        let header: Vec<String> = sub_path.iter().map(|k| toml_key(k)).collect();
        if is_table(v) {
            if sub_path.len() == 1 && *has_written {
                out.push('\n');
            }
            out.push_str(&format!("{}[{}]\n", "  ".repeat(path.len()), header.join(".")));
            *has_written = true;
            write_table(out, has_written, &sub_path, v)?;
        } else if let Json::Array(items) = v
            && is_array_of_tables(v)
        {
            for item in items {
                if *has_written {
                    out.push('\n');
                }
                out.push_str(&format!("{}[[{}]]\n", "  ".repeat(path.len()), header.join(".")));
                *has_written = true;
                write_table(out, has_written, &sub_path, item)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_json() {
        assert_eq!(
            to_go_json(&json!({"b": 1.5, "a": "<&>"}), true),
            r#"{"a":"\u003c\u0026\u003e","b":1.5}"#
        );
        assert_eq!(
            to_go_json(&json!([1000000.0, 1e21, 1e-7, 10]), false),
            "[1000000,1e+21,1e-7,10]"
        );
    }

    #[test]
    fn toml_like_burntsushi() {
        assert_eq!(
            to_toml(&json!({"title": "t", "owner": {"name": "n"}})).unwrap(),
            "title = \"t\"\n\n[owner]\n  name = \"n\"\n"
        );
        assert_eq!(to_toml(&json!({"a": 1.0, "b": [1, 2]})).unwrap(), "a = 1.0\nb = [1, 2]\n");
    }
}
