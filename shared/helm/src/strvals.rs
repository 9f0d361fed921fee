//! `--set` expressions (`a.b=c,list[0]=x`), typed like `helm/helm:pkg/strvals/parser.go`:
//! integers become int64, `true`/`false` booleans, `null` deletes, anything else a string.

use serde_json::{Map, Value as Json};

/// Parse one `--set` argument and merge it into `values`.
///
/// # Errors
/// Keys without a value and malformed list indexes.
pub fn parse_into(expression: &str, values: &mut Map<String, Json>) -> Result<(), String> {
    for pair in split_unescaped(expression, ',') {
        if pair.is_empty() {
            continue;
        }
        let Some((key, raw)) = split_once_unescaped(&pair, '=') else {
            return Err(format!("key \"{pair}\" has no value"));
        };
        let path = parse_path(&key)?;
        let value = match raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            // `name={a,b}` sets a list (the commas were protected by the braces).
            Some(items) => Json::Array(
                split_unescaped(items, ',').iter().map(|i| typed(&unescape(i))).collect(),
            ),
            None => typed(&unescape(&raw)),
        };
        set_path(values, &path, value)?;
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

fn split_unescaped(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    let mut braces = 0usize;
    while let Some(c) = chars.next() {
        if c == '{' {
            braces += 1;
        } else if c == '}' {
            braces = braces.saturating_sub(1);
        }
        if c == '\\' {
            if let Some(next) = chars.next() {
                let last = parts.last_mut().expect("non-empty");
                last.push('\\');
                last.push(next);
            }
        } else if c == separator && braces == 0 {
            parts.push(String::new());
        } else {
            parts.last_mut().expect("non-empty").push(c);
        }
    }
    parts
}

fn split_once_unescaped(text: &str, separator: char) -> Option<(String, String)> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            return Some((text[..i].to_string(), text[i + 1..].to_string()));
        }
    }
    None
}

fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_path(key: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    for part in split_unescaped(key, '.') {
        let mut rest = part.as_str();
        let name_end = rest.find('[').unwrap_or(rest.len());
        let name = unescape(&rest[..name_end]);
        if !name.is_empty() {
            segments.push(Segment::Key(name));
        }
        rest = &rest[name_end..];
        while let Some(inner) = rest.strip_prefix('[') {
            let close =
                inner.find(']').ok_or_else(|| format!("key \"{key}\" has an unclosed index"))?;
            let index: usize = inner[..close]
                .parse()
                .map_err(|_| format!("key \"{key}\" has an invalid index"))?;
            if index > 65536 {
                return Err(format!(
                    "index of {index} is greater than maximum supported index of 65536"
                ));
            }
            segments.push(Segment::Index(index));
            rest = &inner[close + 1..];
        }
    }
    if segments.is_empty() {
        return Err(format!("key \"{key}\" is empty"));
    }
    Ok(segments)
}

fn typed(raw: &str) -> Json {
    match raw {
        "true" => Json::Bool(true),
        "false" => Json::Bool(false),
        "null" => Json::Null,
        _ => match raw.parse::<i64>() {
            Ok(i) if !(raw.len() > 1 && raw.starts_with('0')) => Json::from(i),
            _ => Json::String(raw.to_string()),
        },
    }
}

fn set_path(values: &mut Map<String, Json>, path: &[Segment], value: Json) -> Result<(), String> {
    let Some(Segment::Key(first)) = path.first() else {
        return Err("a --set key must start with a name".to_string());
    };
    let slot = values.entry(first.clone()).or_insert(Json::Null);
    set_in(slot, &path[1..], value);
    Ok(())
}

fn set_in(slot: &mut Json, path: &[Segment], value: Json) {
    match path.first() {
        None => *slot = value,
        Some(Segment::Key(key)) => {
            if !slot.is_object() {
                *slot = Json::Object(Map::new());
            }
            if let Json::Object(map) = slot {
                let next = map.entry(key.clone()).or_insert(Json::Null);
                set_in(next, &path[1..], value);
            }
        }
        Some(Segment::Index(index)) => {
            if !slot.is_array() {
                *slot = Json::Array(Vec::new());
            }
            if let Json::Array(items) = slot {
                while items.len() <= *index {
                    items.push(Json::Null);
                }
                set_in(&mut items[*index], &path[1..], value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(expression: &str, expected: Json) {
        let mut values = Map::new();
        parse_into(expression, &mut values).unwrap();
        assert_eq!(Json::Object(values), expected);
    }

    #[test]
    fn set_expressions() {
        check("a=1,b=true,c=x", json!({"a": 1, "b": true, "c": "x"}));
        check("a.b.c=v", json!({"a": {"b": {"c": "v"}}}));
        check("l[1]=x", json!({"l": [null, "x"]}));
        check("a=x\\,y", json!({"a": "x,y"}));
        check("n=null", json!({"n": null}));
        check("z=007", json!({"z": "007"}));
        check("l={a,1,true},x=y", json!({"l": ["a", 1, true], "x": "y"}));
    }
}
