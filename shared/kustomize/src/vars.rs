//! Legacy `vars`: values taken from object fields and substituted into `$(NAME)` references.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::fieldspec::{self, Create};
use crate::resource::Resource;
use crate::transformers::get_field_value;
use crate::types::{FieldSpec, Var};

/// Resolves vars and substitutes them at the var reference field specs.
///
/// # Errors
/// When a var's object or field cannot be found.
pub(crate) fn resolve(resources: &mut [Resource], vars: &[Var], specs: &[FieldSpec]) -> Result<()> {
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    for v in vars {
        let holder = resources.iter().find(|r| r.ref_var_names.iter().any(|n| n == &v.name));
        let Some(holder) = holder else {
            return Err(Error::build(
                "resolving vars",
                format!(
                    "var '{}' cannot be mapped to a field in the set of known resources",
                    v.name
                ),
            ));
        };
        let value = get_field_value(&holder.obj, &v.fieldref.field_path).ok_or_else(|| {
            Error::build(
                "resolving vars",
                format!("field specified in var '{}' not found in corresponding resource", v.name),
            )
        })?;
        values.insert(v.name.clone(), value);
    }
    if values.is_empty() {
        return Ok(());
    }
    for r in resources.iter_mut() {
        for fs in specs {
            let id = r.cur_id();
            fieldspec::apply(&mut r.obj, fs, Create::Nothing, &mut |node| {
                substitute(node, &values);
                Ok(())
            })
            .map_err(|e| Error::build(format!("substituting vars in {id}"), e))?;
        }
    }
    Ok(())
}

fn substitute(node: &mut Value, values: &BTreeMap<String, Value>) {
    match node {
        Value::String(s) => *node = expand(s, values),
        Value::Array(items) => {
            for item in items {
                if let Value::String(s) = item {
                    *item = expand(s, values);
                }
            }
        }
        Value::Object(map) => {
            for v in map.values_mut() {
                if let Value::String(s) = v {
                    *v = expand(s, values);
                }
            }
        }
        _ => {}
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Expands `$(NAME)` (and `$$` escapes) in a string; a string that is exactly one reference takes the value's type.
pub(crate) fn expand(input: &str, values: &BTreeMap<String, Value>) -> Value {
    let bytes = input.as_bytes();
    let mut out = String::new();
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let (read, is_var, advance) = match rest.as_bytes()[0] {
                b'$' => ("$".to_string(), false, 1),
                b'(' => match rest[1..].find(')') {
                    Some(end) => (rest[1..1 + end].to_string(), true, end + 2),
                    None => ("$(".to_string(), false, 1),
                },
                _ => (
                    format!("${}", &rest[..rest.chars().next().map_or(1, char::len_utf8)]),
                    false,
                    rest.chars().next().map_or(1, char::len_utf8),
                ),
            };
            if is_var {
                let mapped = values
                    .get(&read)
                    .cloned()
                    .unwrap_or_else(|| Value::String(format!("$({read})")));
                if input == format!("$({read})") {
                    return mapped;
                }
                out.push_str(&text_of(&mapped));
            } else {
                out.push_str(&read);
            }
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint <= input.len() {
        out.push_str(&input[checkpoint.min(input.len())..]);
    }
    Value::String(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expands_references() {
        let mut values = BTreeMap::new();
        values.insert("A".to_string(), json!("x"));
        values.insert("N".to_string(), json!(3));
        assert_eq!(expand("$(A)-$(B)", &values), json!("x-$(B)"));
        assert_eq!(expand("$(N)", &values), json!(3));
        assert_eq!(expand("p $(N)", &values), json!("p 3"));
        assert_eq!(expand("$$(A)", &values), json!("$(A)"));
    }
}
