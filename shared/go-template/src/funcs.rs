//! Go's builtin template functions: `and or not len index slice print printf println html js
//! urlquery eq ne lt le gt ge call` (`golang/go:src/text/template/funcs.go`).

use std::cmp::Ordering;

use crate::Param;
use crate::gofmt;
use crate::value::Value;

/// A builtin function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    And,
    Or,
    Not,
    Len,
    Index,
    Slice,
    Print,
    Printf,
    Println,
    Html,
    Js,
    Urlquery,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Call,
}

/// An error from a builtin: either returned (`error calling NAME: …`) or direct.
pub(crate) enum BuiltinError {
    Call(String),
}

impl BuiltinError {
    pub(crate) fn into_message(self, name: &str) -> String {
        match self {
            BuiltinError::Call(message) => format!("error calling {name}: {message}"),
        }
    }
}

pub(crate) fn builtin(name: &str) -> Option<Builtin> {
    Some(match name {
        "and" => Builtin::And,
        "or" => Builtin::Or,
        "not" => Builtin::Not,
        "len" => Builtin::Len,
        "index" => Builtin::Index,
        "slice" => Builtin::Slice,
        "print" => Builtin::Print,
        "printf" => Builtin::Printf,
        "println" => Builtin::Println,
        "html" => Builtin::Html,
        "js" => Builtin::Js,
        "urlquery" => Builtin::Urlquery,
        "eq" => Builtin::Eq,
        "ne" => Builtin::Ne,
        "lt" => Builtin::Lt,
        "le" => Builtin::Le,
        "gt" => Builtin::Gt,
        "ge" => Builtin::Ge,
        "call" => Builtin::Call,
        _ => return None,
    })
}

/// Minimum and maximum number of arguments.
pub(crate) fn builtin_arity(builtin: Builtin) -> (usize, Option<usize>) {
    match builtin {
        Builtin::And | Builtin::Or => (1, None),
        Builtin::Not | Builtin::Len => (1, Some(1)),
        Builtin::Index | Builtin::Slice => (1, None),
        Builtin::Print | Builtin::Println | Builtin::Html | Builtin::Js | Builtin::Urlquery => {
            (0, None)
        }
        Builtin::Printf => (1, None),
        Builtin::Eq => (1, None),
        Builtin::Ne | Builtin::Lt | Builtin::Le | Builtin::Gt | Builtin::Ge => (2, Some(2)),
        Builtin::Call => (1, None),
    }
}

/// The parameter type of the builtin's arguments.
pub(crate) fn builtin_param(builtin: Builtin) -> Param {
    match builtin {
        Builtin::Print
        | Builtin::Printf
        | Builtin::Println
        | Builtin::Html
        | Builtin::Js
        | Builtin::Urlquery => Param::Any,
        _ => Param::Reflect,
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, BuiltinError> {
    Err(BuiltinError::Call(message.into()))
}

pub(crate) fn call_builtin_values(builtin: Builtin, args: &[Value]) -> Result<Value, BuiltinError> {
    match builtin {
        Builtin::And | Builtin::Or => {
            // Only reached for a bare `and`/`or` argument, which has no operands.
            Ok(args.last().cloned().unwrap_or(Value::Missing))
        }
        Builtin::Not => Ok(Value::Bool(!args.first().is_some_and(Value::is_true))),
        Builtin::Len => len(args.first().unwrap_or(&Value::Missing)).map(Value::Int),
        Builtin::Index => index(args),
        Builtin::Slice => slice(args),
        Builtin::Print => Ok(Value::from(gofmt::sprint(args))),
        Builtin::Println => Ok(Value::from(gofmt::sprintln(args))),
        Builtin::Printf => {
            let format = args.first().and_then(Value::as_str).unwrap_or("");
            Ok(Value::from(gofmt::sprintf(format, &args[1.min(args.len())..])))
        }
        Builtin::Html => Ok(Value::from(html_escape(&eval_args(args)))),
        Builtin::Js => Ok(Value::from(js_escape(&eval_args(args)))),
        Builtin::Urlquery => Ok(Value::from(query_escape(&eval_args(args)))),
        Builtin::Eq => {
            let Some((first, rest)) = args.split_first() else {
                return err("missing argument for comparison");
            };
            if rest.is_empty() {
                return err("missing argument for comparison");
            }
            for other in rest {
                if equal(first, other)? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        Builtin::Ne => Ok(Value::Bool(!equal(&args[0], &args[1])?)),
        Builtin::Lt => Ok(Value::Bool(compare(&args[0], &args[1])? == Ordering::Less)),
        Builtin::Le => Ok(Value::Bool(compare(&args[0], &args[1])? != Ordering::Greater)),
        Builtin::Gt => Ok(Value::Bool(compare(&args[0], &args[1])? == Ordering::Greater)),
        Builtin::Ge => Ok(Value::Bool(compare(&args[0], &args[1])? != Ordering::Less)),
        Builtin::Call => {
            err("call of a non-function value: templates here have no function values")
        }
    }
}

/// Go's evalArgs for the escapers: a single string as is, otherwise `fmt.Sprint`.
fn eval_args(args: &[Value]) -> String {
    if let [Value::String(s)] = args {
        return s.to_string();
    }
    gofmt::sprint(args)
}

fn len(item: &Value) -> Result<i64, BuiltinError> {
    match item {
        Value::String(s) => Ok(s.len() as i64),
        Value::List(l) => Ok(l.len() as i64),
        Value::Map(m) => Ok(m.len() as i64),
        Value::Nil => err("len of nil pointer"),
        Value::Missing => err("len of untyped nil"),
        Value::Object(o) => match o.to_value() {
            Value::Nil => err(format!("len of type {}", o.type_name())),
            inner => len(&inner),
        },
        other => err(format!("len of type {}", other.type_name())),
    }
}

fn index_arg(index: &Value, cap: usize) -> Result<usize, BuiltinError> {
    let x = match index {
        Value::Int(i) => *i,
        Value::Missing | Value::Nil => return err("cannot index slice/array with nil"),
        other => return err(format!("cannot index slice/array with type {}", other.type_name())),
    };
    if x < 0 || x as u64 > cap as u64 {
        return err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn index(args: &[Value]) -> Result<Value, BuiltinError> {
    let mut item = args[0].clone();
    if item.is_nil() {
        return err("index of untyped nil");
    }
    for index in &args[1..] {
        if let Value::Object(o) = &item {
            item = o.to_value();
        }
        item = match &item {
            Value::Nil => return err("index of nil pointer"),
            Value::List(list) => {
                let x = index_arg(index, list.len())?;
                match list.get(x) {
                    Some(value) => value.clone(),
                    None => return err("reflect: slice index out of range"),
                }
            }
            Value::String(s) => {
                let x = index_arg(index, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Value::Int(i64::from(*b)),
                    None => return err("reflect: string index out of range"),
                }
            }
            Value::Map(map) => {
                let key = match index {
                    Value::String(k) => k.clone(),
                    Value::Missing | Value::Nil => {
                        return err("value is nil; should be of type string");
                    }
                    other => {
                        return err(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        ));
                    }
                };
                map.get(&key).unwrap_or(Value::Nil)
            }
            other => return err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn slice(args: &[Value]) -> Result<Value, BuiltinError> {
    let item = &args[0];
    let indexes = &args[1..];
    if item.is_nil() {
        return err("slice of untyped nil");
    }
    if indexes.len() > 3 {
        return err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match item {
        Value::String(s) => {
            if indexes.len() == 3 {
                return err("cannot 3-index slice a string");
            }
            s.len()
        }
        Value::List(l) => l.len(),
        other => return err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut idx = [0usize, len, len];
    for (i, index) in indexes.iter().enumerate() {
        idx[i] = index_arg(index, len)?;
    }
    if idx[0] > idx[1] {
        return err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() < 3 {
        idx[2] = len;
    } else if idx[1] > idx[2] {
        return err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    match item {
        Value::String(s) => match s.get(idx[0]..idx[1]) {
            Some(sub) => Ok(Value::str(sub)),
            None => {
                Ok(Value::from(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).into_owned()))
            }
        },
        Value::List(l) => Ok(Value::list(l[idx[0]..idx[1]].to_vec())),
        _ => err("can't slice"),
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    String,
    Other,
}

fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Missing | Value::Nil => Kind::Invalid,
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::String(_) => Kind::String,
        _ => Kind::Other,
    }
}

/// Go's `eq` for one pair.
pub(crate) fn equal(a: &Value, b: &Value) -> Result<bool, BuiltinError> {
    let (ka, kb) = (basic_kind(a), basic_kind(b));
    if ka != kb {
        if ka != Kind::Invalid && kb != Kind::Invalid {
            return err("incompatible types for comparison");
        }
        return Ok(false);
    }
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Missing | Value::Nil, Value::Missing | Value::Nil) => true,
        (Value::Object(x), Value::Object(y)) => std::sync::Arc::ptr_eq(x, y),
        (Value::Map(_), _) | (_, Value::Map(_)) => {
            return err(format!("non-comparable type {a}: {}", a.type_name()));
        }
        (Value::List(_), _) | (_, Value::List(_)) => {
            return err(format!("non-comparable type {a}: {}", a.type_name()));
        }
        _ => return err("incompatible types for comparison"),
    })
}

/// Go's `lt` ordering.
fn compare(a: &Value, b: &Value) -> Result<Ordering, BuiltinError> {
    let (ka, kb) = (basic_kind(a), basic_kind(b));
    if matches!(ka, Kind::Invalid | Kind::Bool | Kind::Other)
        || matches!(kb, Kind::Invalid | Kind::Bool | Kind::Other)
    {
        return err("invalid type for comparison");
    }
    if ka != kb {
        return err("incompatible types for comparison");
    }
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Greater),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => return err("invalid type for comparison"),
    })
}

/// Go's `template.HTMLEscapeString`.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub(crate) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 || !gofmt::is_printable(c) => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
