//! Sprig v3 functions (`Masterminds/sprig`), as Helm exposes them, with Go's conversion rules
//! (`spf13/cast` for numbers, `strval` for strings, `empty` for defaults).

use crate::error::FuncError;
use crate::exec::Context;
use crate::gofmt;
use crate::value::Value;
use crate::{Func, Param, Signature};

mod aes;
mod bcrypt;
mod certs;
mod crypto;
mod dates;
mod lists;
mod misc;
mod numbers;
mod strings;

type Funcs = crate::FuncMap;
type FuncResult = Result<Value, FuncError>;

/// Registers a function in the map.
fn add(
    funcs: &mut Funcs,
    name: &str,
    signature: Signature,
    body: impl Fn(&mut Context<'_>, &[Value]) -> FuncResult + Send + Sync + 'static,
) {
    funcs.insert(name.to_string(), Func::new(signature, body));
}

/// Registers a function that needs no context.
fn pure(
    funcs: &mut Funcs,
    name: &str,
    signature: Signature,
    body: impl Fn(&[Value]) -> FuncResult + Send + Sync + 'static,
) {
    add(funcs, name, signature, move |_ctx, args| body(args));
}

/// Registers `name` and `mustName`: the first turns errors into `fallback`, the second
/// returns them.
fn must_pair(
    funcs: &mut Funcs,
    name: &str,
    signature: Signature,
    body: impl Fn(&[Value]) -> FuncResult + Send + Sync + Clone + 'static,
) {
    let must_name = format!("must{}{}", name[..1].to_uppercase(), &name[1..]);
    let lenient = body.clone();
    pure(funcs, &must_name, signature.clone(), body);
    pure(funcs, name, signature, move |args| lenient(args));
}

fn sig(params: &[Param]) -> Signature {
    Signature::fixed(params)
}

fn var(params: &[Param], rest: Param) -> Signature {
    Signature::variadic(params, rest)
}

fn fail<T>(message: impl Into<String>) -> Result<T, FuncError> {
    Err(FuncError::Call(message.into()))
}

/// Registers every Sprig function Helm exposes.
pub(crate) fn register(funcs: &mut Funcs) {
    strings::register(funcs);
    numbers::register(funcs);
    lists::register(funcs);
    misc::register(funcs);
    crypto::register(funcs);
    certs::register(funcs);
    dates::register(funcs);
}

/// Sprig's `strval`: strings as is, everything else with `%v`.
pub(crate) fn strval(value: &Value) -> String {
    match value {
        Value::String(s) => s.to_string(),
        Value::Object(_) if value.as_bytes().is_some() => {
            String::from_utf8_lossy(value.as_bytes().unwrap_or_default()).into_owned()
        }
        Value::Object(o) => {
            let inner = o.to_value();
            if inner.is_nil() { o.type_name().to_string() } else { strval(&inner) }
        }
        other => {
            let mut out = String::new();
            gofmt::write_value(&mut out, other);
            out
        }
    }
}

/// The string argument at `idx` (signatures guarantee strings where declared).
fn arg_str(args: &[Value], idx: usize) -> &str {
    args.get(idx).and_then(Value::as_str).unwrap_or("")
}

/// The int argument at `idx`.
fn arg_int(args: &[Value], idx: usize) -> i64 {
    match args.get(idx) {
        Some(Value::Int(i)) => *i,
        Some(Value::Float(f)) => *f as i64,
        _ => 0,
    }
}

/// Sprig's `strslice`: a list of strings from a list (nil elements skipped) or one value.
fn strslice(value: &Value) -> Vec<String> {
    match &value.resolved() {
        Value::List(items) => items.iter().filter(|v| !v.is_nil()).map(strval).collect(),
        Value::Missing | Value::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
fn parse_go_int(text: &str) -> Option<i64> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if body.is_empty() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower.clone())
    };
    // Base-0 parsing allows `_` between digits (`1_000`), as Go literals do.
    if digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let digits = digits.replace('_', "");
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(&digits, radix).ok()?;
    let signed = if negative { -magnitude } else { magnitude };
    i64::try_from(signed).ok()
}

/// `spf13/cast`'s trimZeroDecimal: `"5.000"` → `"5"`.
fn trim_zero_decimal(text: &str) -> &str {
    let mut found_zero = false;
    for (idx, b) in text.bytes().enumerate().rev() {
        match b {
            b'.' => {
                if found_zero {
                    return &text[..idx];
                }
            }
            b'0' => found_zero = true,
            _ => return text,
        }
    }
    text
}

/// `cast.ToInt64`: floats truncate, strings parse with base prefixes, failures give 0.
pub(crate) fn to_int64(value: &Value) -> i64 {
    match value {
        Value::Int(i) => *i,
        // Go's out-of-range float conversion yields the minimum int64 on amd64.
        Value::Float(f) if f.is_nan() || *f >= i64::MAX as f64 || *f < i64::MIN as f64 => i64::MIN,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::String(s) => parse_go_int(trim_zero_decimal(s)).unwrap_or(0),
        _ => 0,
    }
}

/// `cast.ToFloat64`.
pub(crate) fn to_float64(value: &Value) -> f64 {
    match value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => s.parse::<f64>().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Sprig's `empty`.
pub(crate) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Missing | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Float(f) => *f == 0.0,
        Value::String(s) => s.is_empty(),
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        Value::Object(_) => match value.resolved() {
            Value::Object(_) => false,
            inner => is_empty(&inner),
        },
    }
}

/// The Go panic text of a failed `interface{}` → `map[string]interface{}` assertion.
fn map_assertion_error(value: &Value) -> FuncError {
    let got = match value {
        Value::Missing | Value::Nil => "nil".to_string(),
        other => other.type_name(),
    };
    FuncError::Call(format!(
        "interface conversion: interface {{}} is {got}, not map[string]interface {{}}"
    ))
}
