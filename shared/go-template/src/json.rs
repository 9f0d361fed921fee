//! Go's `encoding/json` output for [`Value`]: key order, number format and HTML escaping.

use std::fmt::Write as _;

use crate::gofmt;
use crate::value::Value;

/// Encodes like Go's `json.Marshal` (with `escape_html`) or an `Encoder` with
/// `SetEscapeHTML(false)`; `indent` > 0 behaves like `json.MarshalIndent(v, "", indent spaces)`.
pub fn to_go_json(value: &Value, escape_html: bool, indent: usize) -> String {
    let mut out = String::new();
    write_json(&mut out, value, escape_html, indent, 0);
    out
}

/// Go's float64 JSON format: like `strconv 'f'` unless the exponent is < -6 or >= 21.
pub fn format_json_float(x: f64) -> String {
    if !x.is_finite() {
        return "null".to_string();
    }
    let abs = x.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = gofmt::format_float(x, 'e', -1);
        // Go trims "e-07" to "e-7".
        if let Some(idx) = s.find('e') {
            let (mantissa, exp) = s.split_at(idx);
            let exp = &exp[1..];
            let (sign, digits) = exp.split_at(1);
            let digits = digits.trim_start_matches('0');
            return format!("{mantissa}e{sign}{digits}");
        }
        return s;
    }
    gofmt::format_float(x, 'f', -1)
}

fn newline(out: &mut String, indent: usize, level: usize) {
    if indent > 0 {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', indent * level));
    }
}

fn write_json(out: &mut String, value: &Value, escape_html: bool, indent: usize, level: usize) {
    if level > crate::gofmt::MAX_NESTING {
        out.push_str("null");
        return;
    }
    match value {
        Value::Missing | Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(x) => out.push_str(&format_json_float(*x)),
        Value::String(s) => write_json_string(out, s, escape_html),
        Value::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_json(out, item, escape_html, indent, level + 1);
            }
            newline(out, indent, level);
            out.push(']');
        }
        Value::Map(map) => {
            let entries = map.entries();
            if entries.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (idx, (key, item)) in entries.iter().enumerate() {
                if idx > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_json_string(out, key, escape_html);
                out.push(':');
                if indent > 0 {
                    out.push(' ');
                }
                write_json(out, item, escape_html, indent, level + 1);
            }
            newline(out, indent, level);
            out.push('}');
        }
        Value::Object(_) if value.as_bytes().is_some() => {
            use base64::Engine as _;
            let data = value.as_bytes().unwrap_or_default();
            let text = base64::engine::general_purpose::STANDARD.encode(data);
            write_json_string(out, &text, escape_html);
        }
        Value::Object(object) => {
            write_json(out, &object.to_value(), escape_html, indent, level + 1)
        }
    }
}

/// Writes a JSON string the way Go does (`\u00XX` for controls, optional HTML escaping,
/// U+2028/U+2029 escaped).
pub fn write_json_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if escape_html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_go() {
        let value =
            Value::from_json(&serde_json::json!({"b": [1, 2.5, "x<y"], "a": null, "c": 1e21}));
        assert_eq!(to_go_json(&value, true, 0), r#"{"a":null,"b":[1,2.5,"x\u003cy"],"c":1e+21}"#);
        assert_eq!(to_go_json(&value, false, 0), r#"{"a":null,"b":[1,2.5,"x<y"],"c":1e+21}"#);
        assert_eq!(
            to_go_json(&Value::from_json(&serde_json::json!({"a": [1]})), false, 2),
            "{\n  \"a\": [\n    1\n  ]\n}"
        );
        assert_eq!(format_json_float(0.0000001), "1e-7");
        assert_eq!(format_json_float(1000000.0), "1000000");
    }
}
