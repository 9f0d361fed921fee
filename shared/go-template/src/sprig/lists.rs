//! Sprig list and dictionary functions.

use super::{
    FuncResult, Funcs, arg_int, arg_str, fail, is_empty, map_assertion_error, sig, strval,
    to_int64, var,
};
use crate::Param::{Any, Int, Map as MapP, String as Str};
use crate::value::{Map, Value};
use crate::{FuncError, Signature};

/// Host objects standing for Go slices or maps (Helm's `VersionSet`) act as their values here.
fn resolve_args(args: &[Value]) -> Option<Vec<Value>> {
    args.iter()
        .any(|v| matches!(v, Value::Object(_)))
        .then(|| args.iter().map(Value::resolved).collect())
}

fn pure(
    funcs: &mut Funcs,
    name: &str,
    signature: Signature,
    body: impl Fn(&[Value]) -> FuncResult + Send + Sync + 'static,
) {
    super::pure(funcs, name, signature, move |a| match resolve_args(a) {
        Some(resolved) => body(&resolved),
        None => body(a),
    });
}

fn must_pair(
    funcs: &mut Funcs,
    name: &str,
    signature: Signature,
    body: impl Fn(&[Value]) -> FuncResult + Send + Sync + Clone + 'static,
) {
    super::must_pair(funcs, name, signature, move |a| match resolve_args(a) {
        Some(resolved) => body(&resolved),
        None => body(a),
    });
}

fn as_list<'v>(value: &'v Value, op: &str) -> Result<Option<&'v [Value]>, FuncError> {
    match value {
        Value::List(items) => Ok(Some(items)),
        Value::Missing | Value::Nil => Ok(None),
        other => Err(FuncError::Call(format!("Cannot {op} on type {}", other.type_name()))),
    }
}

pub(super) fn register(funcs: &mut Funcs) {
    for name in ["list", "tuple"] {
        pure(funcs, name, var(&[], Any), |a| Ok(Value::list(a.to_vec())));
    }
    must_pair(funcs, "first", sig(&[Any]), |a| {
        Ok(as_list(&a[0], "find first")?.and_then(|l| l.first().cloned()).unwrap_or(Value::Nil))
    });
    must_pair(funcs, "last", sig(&[Any]), |a| {
        Ok(as_list(&a[0], "find last")?.and_then(|l| l.last().cloned()).unwrap_or(Value::Nil))
    });
    must_pair(funcs, "rest", sig(&[Any]), |a| {
        Ok(match as_list(&a[0], "find rest")? {
            Some(l) => Value::list(l.get(1..).unwrap_or(&[]).to_vec()),
            None => Value::Nil,
        })
    });
    must_pair(funcs, "initial", sig(&[Any]), |a| {
        Ok(match as_list(&a[0], "find initial")? {
            Some(l) => Value::list(l[..l.len().saturating_sub(1)].to_vec()),
            None => Value::Nil,
        })
    });
    for name in ["append", "push"] {
        must_pair(funcs, name, sig(&[Any, Any]), |a| {
            let Some(items) = as_list(&a[0], "push")? else {
                return fail(format!("Cannot push on type {}", a[0].type_name()));
            };
            let mut items = items.to_vec();
            items.push(a[1].clone());
            Ok(Value::list(items))
        });
    }
    must_pair(funcs, "prepend", sig(&[Any, Any]), |a| {
        let Some(items) = as_list(&a[0], "prepend")? else {
            return fail(format!("Cannot prepend on type {}", a[0].type_name()));
        };
        let mut out = vec![a[1].clone()];
        out.extend(items.iter().cloned());
        Ok(Value::list(out))
    });
    pure(funcs, "concat", var(&[], Any), |a| {
        let mut out = Vec::new();
        for list in a {
            match list {
                Value::List(items) => out.extend(items.iter().cloned()),
                Value::Missing | Value::Nil => {}
                other => return fail(format!("Cannot concat type {} as list", other.type_name())),
            }
        }
        Ok(Value::list(out))
    });
    must_pair(funcs, "reverse", sig(&[Any]), |a| {
        let items = as_list(&a[0], "find reverse")?.unwrap_or(&[]);
        Ok(Value::list(items.iter().rev().cloned().collect()))
    });
    must_pair(funcs, "uniq", sig(&[Any]), |a| {
        let items = as_list(&a[0], "find uniq")?.unwrap_or(&[]);
        let mut out: Vec<Value> = Vec::new();
        for item in items {
            if !out.iter().any(|o| o.deep_equal(item)) {
                out.push(item.clone());
            }
        }
        Ok(Value::list(out))
    });
    must_pair(funcs, "without", var(&[Any], Any), |a| {
        let items = as_list(&a[0], "find without")?.unwrap_or(&[]);
        let omit = &a[1..];
        Ok(Value::list(
            items.iter().filter(|i| !omit.iter().any(|o| o.deep_equal(i))).cloned().collect(),
        ))
    });
    must_pair(funcs, "has", sig(&[Any, Any]), |a| {
        let Some(items) = as_list(&a[1], "find has")? else {
            return Ok(Value::Bool(false));
        };
        Ok(Value::Bool(items.iter().any(|i| i.deep_equal(&a[0]))))
    });
    must_pair(funcs, "compact", sig(&[Any]), |a| {
        let items = as_list(&a[0], "compact")?.unwrap_or(&[]);
        Ok(Value::list(items.iter().filter(|i| !is_empty(i)).cloned().collect()))
    });
    must_pair(funcs, "slice", var(&[Any], Any), |a| {
        let len = match &a[0] {
            Value::List(items) => items.len(),
            other => {
                return fail(format!(
                    "list should be type of slice or array but {}",
                    other.type_name()
                ));
            }
        };
        let start = a.get(1).map_or(0, to_int64);
        let end = a.get(2).map_or(len as i64, to_int64);
        if start < 0 || end < start || end as usize > len {
            return fail("reflect: slice index out of range");
        }
        Ok(match &a[0] {
            Value::List(items) => Value::list(items[start as usize..end as usize].to_vec()),
            Value::String(s) => Value::from(
                String::from_utf8_lossy(&s.as_bytes()[start as usize..end as usize]).into_owned(),
            ),
            _ => Value::Nil,
        })
    });
    must_pair(funcs, "chunk", sig(&[Int, Any]), |a| {
        let size = arg_int(a, 0);
        let items = as_list(&a[1], "chunk")?.unwrap_or(&[]);
        if size <= 0 {
            return fail("runtime error: integer divide by zero");
        }
        Ok(Value::list(items.chunks(size as usize).map(|c| Value::list(c.to_vec())).collect()))
    });

    // Dictionaries.
    pure(funcs, "dict", var(&[], Any), |a| {
        let map = Map::new();
        {
            let mut entries = map.write();
            for pair in a.chunks(2) {
                let key = strval(&pair[0]);
                let value = pair.get(1).cloned().unwrap_or_else(|| Value::str(""));
                entries.insert(key, value);
            }
        }
        Ok(Value::Map(map))
    });
    pure(funcs, "get", sig(&[MapP, Str]), |a| {
        Ok(a[0].as_map().and_then(|m| m.get(arg_str(a, 1))).unwrap_or_else(|| Value::str("")))
    });
    pure(funcs, "set", sig(&[MapP, Str, Any]), |a| {
        // A nil map (nil or missing argument) cannot be written, as in Go.
        let Some(map) = a[0].as_map() else {
            return fail("assignment to entry in nil map");
        };
        map.insert(arg_str(a, 1), a[2].clone());
        Ok(a[0].clone())
    });
    pure(funcs, "unset", sig(&[MapP, Str]), |a| {
        if let Some(map) = a[0].as_map() {
            map.remove(arg_str(a, 1));
        }
        Ok(a[0].clone())
    });
    pure(funcs, "hasKey", sig(&[MapP, Str]), |a| {
        Ok(Value::Bool(a[0].as_map().is_some_and(|m| m.contains_key(arg_str(a, 1)))))
    });
    pure(funcs, "pluck", var(&[Str], MapP), |a| {
        let key = arg_str(a, 0);
        Ok(Value::list(a[1..].iter().filter_map(|d| d.as_map().and_then(|m| m.get(key))).collect()))
    });
    pure(funcs, "keys", var(&[], MapP), |a| {
        let mut keys = Vec::new();
        for dict in a {
            if let Some(map) = dict.as_map() {
                keys.extend(map.keys().into_iter().map(Value::from));
            }
        }
        Ok(Value::list(keys))
    });
    pure(funcs, "values", sig(&[MapP]), |a| {
        Ok(Value::list(
            a[0].as_map()
                .map(|m| m.entries().into_iter().map(|(_, v)| v).collect())
                .unwrap_or_default(),
        ))
    });
    pure(funcs, "pick", var(&[MapP], Str), |a| {
        let out = Map::new();
        if let Some(map) = a[0].as_map() {
            for key in &a[1..] {
                let key = strval(key);
                if let Some(value) = map.get(&key) {
                    out.insert(key, value);
                }
            }
        }
        Ok(Value::Map(out))
    });
    pure(funcs, "omit", var(&[MapP], Str), |a| {
        let omit: Vec<String> = a[1..].iter().map(strval).collect();
        let out = Map::new();
        if let Some(map) = a[0].as_map() {
            for (key, value) in map.entries() {
                if !omit.contains(&key) {
                    out.insert(key, value);
                }
            }
        }
        Ok(Value::Map(out))
    });
    pure(funcs, "dig", var(&[], Any), |a| {
        if a.len() < 3 {
            return fail("dig needs at least three arguments");
        }
        let dict = &a[a.len() - 1];
        let default = &a[a.len() - 2];
        let mut keys = Vec::new();
        for key in &a[..a.len() - 2] {
            match key {
                Value::String(s) => keys.push(s.to_string()),
                other => {
                    return fail(format!(
                        "interface conversion: interface {{}} is {}, not string",
                        if other.is_nil() { "nil".to_string() } else { other.type_name() }
                    ));
                }
            }
        }
        let mut current = match dict {
            Value::Map(m) if m.type_name().is_none() => m.clone(),
            other => return Err(map_assertion_error(other)),
        };
        for (idx, key) in keys.iter().enumerate() {
            let Some(step) = current.get(key) else {
                return Ok(default.clone());
            };
            if idx + 1 == keys.len() {
                return Ok(step);
            }
            current = match step {
                Value::Map(m) if m.type_name().is_none() => m,
                other => return Err(map_assertion_error(&other)),
            };
        }
        Ok(default.clone())
    });
    must_pair(funcs, "merge", var(&[MapP], MapP), |a| {
        // mergo allocates a map for a nil destination.
        let dst = a[0].as_map().cloned().unwrap_or_default();
        for src in &a[1..] {
            if let Some(src) = src.as_map() {
                merge_into(&dst, src, false, 0);
            }
        }
        Ok(Value::Map(dst))
    });
    must_pair(funcs, "mergeOverwrite", var(&[MapP], MapP), |a| {
        // mergo allocates a map for a nil destination.
        let dst = a[0].as_map().cloned().unwrap_or_default();
        for src in &a[1..] {
            if let Some(src) = src.as_map() {
                merge_into(&dst, src, true, 0);
            }
        }
        Ok(Value::Map(dst))
    });
    must_pair(funcs, "deepCopy", sig(&[Any]), |a| Ok(a[0].deep_copy()));
}

/// `mergo.Merge` (with `WithOverride` when `overwrite`) of `src` into `dst`, in place.
fn merge_into(dst: &Map, src: &Map, overwrite: bool, depth: usize) {
    if dst.ptr_eq(src) || depth > 64 {
        return;
    }
    for (key, src_value) in src.entries() {
        let dst_value = dst.get(&key);
        if src_value.is_nil() {
            if overwrite {
                dst.insert(key, Value::Nil);
            }
            continue;
        }
        if let (Value::Map(src_map), Some(Value::Map(dst_map))) = (&src_value, &dst_value) {
            merge_into(dst_map, src_map, overwrite, depth + 1);
            continue;
        }
        let replace = match &dst_value {
            None => true,
            Some(existing) => overwrite || is_empty(existing),
        };
        if replace {
            dst.insert(key, src_value);
        }
    }
}
