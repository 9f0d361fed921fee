//! Sprig string functions.

use super::{Funcs, arg_int, arg_str, fail, pure, sig, strslice, strval, var};
use crate::Param::{Any, Int, String as Str};
use crate::gofmt;
use crate::value::Value;

/// Largest string a function may build, guarding `repeat` and friends.
const MAX_STRING: usize = 64 << 20;

fn s(v: String) -> Result<Value, crate::FuncError> {
    Ok(Value::from(v))
}

pub(super) fn register(funcs: &mut Funcs) {
    pure(funcs, "upper", sig(&[Str]), |a| s(arg_str(a, 0).chars().map(go_upper).collect()));
    pure(funcs, "lower", sig(&[Str]), |a| s(arg_str(a, 0).chars().map(go_lower).collect()));
    pure(funcs, "title", sig(&[Str]), |a| s(title(arg_str(a, 0))));
    pure(funcs, "untitle", sig(&[Str]), |a| s(untitle(arg_str(a, 0))));
    pure(funcs, "trim", sig(&[Str]), |a| {
        s(arg_str(a, 0).trim_matches(char::is_whitespace).to_string())
    });
    for name in ["trimAll", "trimall"] {
        pure(funcs, name, sig(&[Str, Str]), |a| {
            let cut: Vec<char> = arg_str(a, 0).chars().collect();
            s(arg_str(a, 1).trim_matches(|c| cut.contains(&c)).to_string())
        });
    }
    pure(funcs, "trimPrefix", sig(&[Str, Str]), |a| {
        s(arg_str(a, 1).strip_prefix(arg_str(a, 0)).unwrap_or(arg_str(a, 1)).to_string())
    });
    pure(funcs, "trimSuffix", sig(&[Str, Str]), |a| {
        s(arg_str(a, 1).strip_suffix(arg_str(a, 0)).unwrap_or(arg_str(a, 1)).to_string())
    });
    pure(funcs, "repeat", sig(&[Int, Str]), |a| {
        let count = arg_int(a, 0);
        let text = arg_str(a, 1);
        if count < 0 {
            return fail("strings: negative Repeat count");
        }
        if (count as u128) * (text.len() as u128) > MAX_STRING as u128 {
            return fail("strings: Repeat output length overflow");
        }
        s(text.repeat(count as usize))
    });
    pure(funcs, "substr", sig(&[Int, Int, Str]), |a| {
        substr(arg_int(a, 0), arg_int(a, 1), arg_str(a, 2)).map(Value::from)
    });
    pure(funcs, "nospace", sig(&[Str]), |a| {
        s(arg_str(a, 0).chars().filter(|c| !c.is_whitespace()).collect())
    });
    pure(funcs, "trunc", sig(&[Int, Str]), |a| s(trunc(arg_int(a, 0), arg_str(a, 1))));
    pure(funcs, "abbrev", sig(&[Int, Str]), |a| s(abbrev(arg_int(a, 0), arg_str(a, 1))));
    pure(funcs, "abbrevboth", sig(&[Int, Int, Str]), |a| {
        s(abbreviate_full(arg_str(a, 2), arg_int(a, 0), arg_int(a, 1)))
    });
    pure(funcs, "initials", sig(&[Str]), |a| {
        s(arg_str(a, 0).split_whitespace().filter_map(|w| w.chars().next()).collect())
    });
    pure(funcs, "wrap", sig(&[Int, Str]), |a| {
        s(wrap_custom(arg_str(a, 1), arg_int(a, 0), "\n", false))
    });
    pure(funcs, "wrapWith", sig(&[Int, Str, Str]), |a| {
        s(wrap_custom(arg_str(a, 2), arg_int(a, 0), arg_str(a, 1), true))
    });
    pure(funcs, "contains", sig(&[Str, Str]), |a| {
        Ok(Value::Bool(arg_str(a, 1).contains(arg_str(a, 0))))
    });
    pure(funcs, "hasPrefix", sig(&[Str, Str]), |a| {
        Ok(Value::Bool(arg_str(a, 1).starts_with(arg_str(a, 0))))
    });
    pure(funcs, "hasSuffix", sig(&[Str, Str]), |a| {
        Ok(Value::Bool(arg_str(a, 1).ends_with(arg_str(a, 0))))
    });
    pure(funcs, "quote", var(&[], Any), |a| {
        let parts: Vec<String> =
            a.iter().filter(|v| !v.is_nil()).map(|v| gofmt::quote(&strval(v))).collect();
        s(parts.join(" "))
    });
    pure(funcs, "squote", var(&[], Any), |a| {
        let parts: Vec<String> =
            a.iter().filter(|v| !v.is_nil()).map(|v| format!("'{}'", strval(v))).collect();
        s(parts.join(" "))
    });
    pure(funcs, "cat", var(&[], Any), |a| {
        let parts: Vec<Value> = a.iter().filter(|v| !v.is_nil()).cloned().collect();
        let mut out = String::new();
        for (idx, part) in parts.iter().enumerate() {
            if idx > 0 {
                out.push(' ');
            }
            gofmt::write_value(&mut out, part);
        }
        s(out)
    });
    pure(funcs, "indent", sig(&[Int, Str]), |a| s(indent(arg_int(a, 0), arg_str(a, 1))));
    pure(funcs, "nindent", sig(&[Int, Str]), |a| {
        s(format!("\n{}", indent(arg_int(a, 0), arg_str(a, 1))))
    });
    pure(funcs, "replace", sig(&[Str, Str, Str]), |a| {
        let (old, new, src) = (arg_str(a, 0), arg_str(a, 1), arg_str(a, 2));
        if old.is_empty() {
            // Go inserts `new` around every rune when `old` is empty.
            let mut out = String::from(new);
            for c in src.chars() {
                out.push(c);
                out.push_str(new);
            }
            return s(out);
        }
        s(src.replace(old, new))
    });
    pure(funcs, "plural", sig(&[Str, Str, Int]), |a| {
        Ok(Value::str(if arg_int(a, 2) == 1 { arg_str(a, 0) } else { arg_str(a, 1) }))
    });
    pure(funcs, "snakecase", sig(&[Str]), |a| s(delimited_case(arg_str(a, 0), '_')));
    pure(funcs, "kebabcase", sig(&[Str]), |a| s(delimited_case(arg_str(a, 0), '-')));
    pure(funcs, "camelcase", sig(&[Str]), |a| s(camel_case(arg_str(a, 0))));
    pure(funcs, "swapcase", sig(&[Str]), |a| s(swap_case(arg_str(a, 0))));
    pure(funcs, "shuffle", sig(&[Str]), |a| {
        use rand::seq::SliceRandom;
        let mut chars: Vec<char> = arg_str(a, 0).chars().collect();
        chars.shuffle(&mut rand::rng());
        s(chars.into_iter().collect())
    });
    pure(funcs, "toString", sig(&[Any]), |a| s(strval(&a[0])));
    pure(funcs, "toStrings", sig(&[Any]), |a| {
        Ok(Value::list(strslice(&a[0]).into_iter().map(Value::from).collect()))
    });
    pure(funcs, "join", sig(&[Str, Any]), |a| s(strslice(&a[1]).join(arg_str(a, 0))));
    pure(funcs, "sortAlpha", sig(&[Any]), |a| {
        let mut items = match &a[0] {
            Value::List(_) => strslice(&a[0]),
            other => vec![strval(other)],
        };
        items.sort();
        Ok(Value::list(items.into_iter().map(Value::from).collect()))
    });
    pure(funcs, "split", sig(&[Str, Str]), |a| {
        let parts = go_split(arg_str(a, 1), arg_str(a, 0), -1);
        Ok(Value::Map(
            parts.into_iter().enumerate().map(|(i, p)| (format!("_{i}"), Value::from(p))).collect(),
        ))
    });
    pure(funcs, "splitn", sig(&[Str, Int, Str]), |a| {
        let parts = go_split(arg_str(a, 2), arg_str(a, 0), arg_int(a, 1));
        Ok(Value::Map(
            parts.into_iter().enumerate().map(|(i, p)| (format!("_{i}"), Value::from(p))).collect(),
        ))
    });
    pure(funcs, "splitList", sig(&[Str, Str]), |a| {
        Ok(Value::list(
            go_split(arg_str(a, 1), arg_str(a, 0), -1).into_iter().map(Value::from).collect(),
        ))
    });
    pure(funcs, "hello", sig(&[]), |_| Ok(Value::str("Hello!")));
    for (name, random_kind) in
        [("randAlphaNum", 0), ("randAlpha", 1), ("randNumeric", 2), ("randAscii", 3)]
    {
        pure(funcs, name, sig(&[Int]), move |a| {
            let count = arg_int(a, 0).clamp(0, 1 << 20) as usize;
            s(random_string(count, random_kind))
        });
    }
}

/// Go's `strings.SplitN(s, sep, n)` (n < 0: all).
pub(super) fn go_split(text: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        let mut parts: Vec<String> = text.chars().map(String::from).collect();
        if n > 0 && parts.len() > n as usize {
            let rest: String = parts[n as usize - 1..].concat();
            parts.truncate(n as usize - 1);
            parts.push(rest);
        }
        return parts;
    }
    if n < 0 {
        return text.split(sep).map(str::to_string).collect();
    }
    text.splitn(n as usize, sep).map(str::to_string).collect()
}

fn random_string(count: usize, kind: u8) -> String {
    use rand::Rng;
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..count)
        .map(|_| match kind {
            0 => ALNUM[rng.random_range(0..ALNUM.len())] as char,
            1 => ALNUM[rng.random_range(0..52)] as char,
            2 => ALNUM[rng.random_range(52..62)] as char,
            _ => rng.random_range(32u8..127) as char,
        })
        .collect()
}

/// Go's `unicode.ToUpper`: one rune to one rune (`ß` stays `ß`).
pub(super) fn go_upper(c: char) -> char {
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Go's `unicode.ToLower`: one rune to one rune (`İ` becomes `i`).
pub(super) fn go_lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// Go's `unicode.ToTitle`: like upper case except for the four Latin digraphs.
fn go_title(c: char) -> char {
    match c {
        'Ǆ' | 'ǅ' | 'ǆ' => 'ǅ',
        'Ǉ' | 'ǈ' | 'ǉ' => 'ǈ',
        'Ǌ' | 'ǋ' | 'ǌ' => 'ǋ',
        'Ǳ' | 'ǲ' | 'ǳ' => 'ǲ',
        other => go_upper(other),
    }
}

/// Go's deprecated `strings.Title`.
fn title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev_separator = true;
    for c in text.chars() {
        if prev_separator && c.is_alphabetic() {
            out.push(go_title(c));
        } else {
            out.push(c);
        }
        prev_separator =
            if c.is_ascii() { !(c.is_ascii_alphanumeric() || c == '_') } else { c.is_whitespace() };
    }
    out
}

/// Sprig's `untitle`: lower-cases the first letter of each word.
fn untitle(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_space = true;
    for c in text.chars() {
        if last_space && c.is_alphabetic() {
            out.push(go_lower(c));
        } else {
            out.push(c);
        }
        last_space = c.is_whitespace();
    }
    out
}

/// Sprig's `substr` on bytes; out-of-range bounds fail like Go's slice expression panics.
fn substr(start: i64, end: i64, text: &str) -> Result<String, crate::FuncError> {
    let bytes = text.as_bytes();
    let len = bytes.len() as i64;
    let slice = |a: i64, b: i64| -> Result<String, crate::FuncError> {
        if a < 0 || b < a || b > len {
            return fail(format!("runtime error: slice bounds out of range [{a}:{b}]"));
        }
        Ok(String::from_utf8_lossy(&bytes[a as usize..b as usize]).into_owned())
    };
    if start < 0 {
        return slice(0, end);
    }
    if end < 0 || end > len {
        return slice(start, len);
    }
    slice(start, end)
}

fn trunc(count: i64, text: &str) -> String {
    let len = text.len() as i64;
    let bytes = text.as_bytes();
    if count < 0 && len + count > 0 {
        return String::from_utf8_lossy(&bytes[(len + count) as usize..]).into_owned();
    }
    if count >= 0 && len > count {
        return String::from_utf8_lossy(&bytes[..count as usize]).into_owned();
    }
    text.to_string()
}

fn abbrev(width: i64, text: &str) -> String {
    if width < 4 {
        return text.to_string();
    }
    abbreviate_full(text, 0, width)
}

/// `goutils.AbbreviateFull`.
fn abbreviate_full(text: &str, offset: i64, max_width: i64) -> String {
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len() as i64;
    if text.is_empty() || max_width < 4 {
        return text.to_string();
    }
    if len <= max_width {
        return text.to_string();
    }
    let mut offset = offset.min(len);
    if len - offset < max_width - 3 {
        offset = len - (max_width - 3);
    }
    let take = |from: i64, n: i64| -> String {
        chars.iter().skip(from.max(0) as usize).take(n.max(0) as usize).collect()
    };
    if offset <= 4 {
        return format!("{}...", take(0, max_width - 3));
    }
    if max_width < 7 {
        return text.to_string();
    }
    if offset + max_width - 3 < len {
        return format!("...{}", abbreviate_full(&take(offset, len), 0, max_width - 3));
    }
    format!("...{}", take(len - (max_width - 3), max_width))
}

/// `goutils.WrapCustom`.
fn wrap_custom(text: &str, wrap_length: i64, new_line: &str, wrap_long_words: bool) -> String {
    if text.is_empty() {
        return String::new();
    }
    let wrap_length = if wrap_length < 1 { 1 } else { wrap_length as usize };
    let chars: Vec<char> = text.chars().collect();
    let input_len = chars.len();
    let mut offset = 0usize;
    let mut out = String::new();
    while input_len - offset > wrap_length {
        if chars[offset] == ' ' {
            offset += 1;
            continue;
        }
        let end = (wrap_length + offset + 1).min(input_len);
        let window: String = chars[offset..end].iter().collect();
        let space_pos =
            window.chars().rev().position(|c| c == ' ').map(|p| window.chars().count() - 1 - p);
        match space_pos {
            Some(pos) if pos > 0 => {
                out.extend(&chars[offset..offset + pos]);
                out.push_str(new_line);
                offset += pos + 1;
            }
            _ => {
                if wrap_long_words {
                    out.extend(&chars[offset..offset + wrap_length]);
                    out.push_str(new_line);
                    offset += wrap_length;
                } else {
                    let rest: String = chars[offset + wrap_length..].iter().collect();
                    match rest.find(' ') {
                        Some(idx) => {
                            let idx = rest[..idx].chars().count() + wrap_length + offset;
                            out.extend(&chars[offset..idx]);
                            out.push_str(new_line);
                            offset = idx + 1;
                        }
                        None => {
                            out.extend(&chars[offset..]);
                            offset = input_len;
                        }
                    }
                }
            }
        }
    }
    out.extend(&chars[offset.min(input_len)..]);
    out
}

pub(super) fn indent(spaces: i64, text: &str) -> String {
    let pad = " ".repeat(spaces.clamp(0, 1 << 16) as usize);
    let mut out = String::with_capacity(text.len() + pad.len() * 4);
    out.push_str(&pad);
    for (idx, line) in text.split('\n').enumerate() {
        if idx > 0 {
            out.push('\n');
            out.push_str(&pad);
        }
        out.push_str(line);
    }
    out
}

/// `xstrings.ToSnakeCase`/`ToKebabCase`: words split at case changes, spaces, `_` and `-`.
fn delimited_case(text: &str, delimiter: char) -> String {
    let words = split_words(text);
    words.iter().map(|w| w.to_lowercase()).collect::<Vec<_>>().join(&delimiter.to_string())
}

fn split_words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (idx, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' || c == ' ' || c == '.' || c.is_whitespace() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        if c.is_uppercase() && !current.is_empty() {
            let prev = chars[idx - 1];
            let next_lower = chars.get(idx + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                words.push(std::mem::take(&mut current));
            }
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// `xstrings.ToCamelCase`: `foo_bar baz` → `FooBarBaz`; leading and trailing connectors stay.
fn camel_case(text: &str) -> String {
    let is_connector = |c: char| c == '-' || c == '_' || c.is_whitespace();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    let mut r0 = None;
    for c in chars.by_ref() {
        if !is_connector(c) {
            r0 = Some(go_upper(c));
            break;
        }
        out.push(c);
    }
    let Some(mut r0) = r0 else {
        return out;
    };
    for c in chars {
        let r1 = r0;
        r0 = c;
        if is_connector(r0) && is_connector(r1) {
            out.push(r1);
            continue;
        }
        if is_connector(r1) {
            r0 = go_upper(r0);
        } else {
            out.push(r1);
        }
    }
    out.push(r0);
    out
}

fn swap_case(text: &str) -> String {
    text.chars()
        .flat_map(|c| -> Vec<char> {
            if c.is_uppercase() {
                vec![go_lower(c)]
            } else if c.is_lowercase() {
                vec![go_upper(c)]
            } else {
                vec![c]
            }
        })
        .collect()
}
