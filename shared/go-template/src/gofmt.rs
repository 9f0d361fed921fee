//! Go's `fmt` formatting of values: `Sprint`, `Sprintln`, `Sprintf` verbs and `strconv` floats.

use std::fmt::Write as _;

use crate::value::Value;

/// Shortest decimal digits and decimal point position of a finite, non-negative float:
/// the value is `0.DIGITS × 10^point`.
fn shortest_digits(x: f64) -> (String, i32) {
    if x == 0.0 {
        return ("0".to_string(), 1);
    }
    let sci = format!("{x:e}");
    split_sci(&sci)
}

/// Splits Rust's `{:e}` output (`1.2345e6`) into digits and point position.
fn split_sci(sci: &str) -> (String, i32) {
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    (digits.to_string(), exponent + 1)
}

/// Digits rounded to `n_digits` significant digits.
fn rounded_digits(x: f64, n_digits: usize) -> (String, i32) {
    if x == 0.0 {
        return ("0".repeat(n_digits.max(1)), 1);
    }
    let sci = format!("{:.*e}", n_digits.saturating_sub(1), x);
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exponent + 1)
}

fn push_exponent(out: &mut String, exp: i32, upper: bool) {
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    let abs = exp.unsigned_abs();
    if abs < 10 {
        out.push('0');
    }
    let _ = write!(out, "{abs}");
}

/// Formats `digits × 10^(point)` as `%e` with `frac_digits` digits after the point.
fn fmt_e(out: &mut String, digits: &str, point: i32, frac_digits: usize, upper: bool) {
    let mut chars = digits.chars();
    out.push(chars.next().unwrap_or('0'));
    if frac_digits > 0 {
        out.push('.');
        let rest: String = chars.collect();
        out.push_str(&rest);
        for _ in rest.len()..frac_digits {
            out.push('0');
        }
    }
    let exp =
        if digits.starts_with('0') && digits.chars().all(|c| c == '0') { 0 } else { point - 1 };
    push_exponent(out, exp, upper);
}

/// Formats as `%f` with exactly `frac_digits` digits after the point.
fn fmt_f_digits(out: &mut String, digits: &str, point: i32, frac_digits: usize) {
    if point <= 0 {
        out.push('0');
    } else {
        for i in 0..point as usize {
            out.push(digits.as_bytes().get(i).map_or('0', |b| *b as char));
        }
    }
    if frac_digits > 0 {
        out.push('.');
        for i in 0..frac_digits as i32 {
            let idx = point + i;
            let c = if idx < 0 {
                '0'
            } else {
                digits.as_bytes().get(idx as usize).map_or('0', |b| *b as char)
            };
            out.push(c);
        }
    }
}

/// Go's `strconv.FormatFloat(x, fmt, prec, 64)` for `fmt` in `e E f F g G` (`prec` -1 = shortest).
pub fn format_float(x: f64, verb: char, prec: i32) -> String {
    let mut out = String::new();
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf".to_string() } else { "-Inf".to_string() };
    }
    if x.is_sign_negative() && x != 0.0 || (x == 0.0 && x.is_sign_negative()) {
        out.push('-');
    }
    let abs = x.abs();
    let shortest = prec < 0;
    match verb {
        'e' | 'E' => {
            let (digits, point) = if shortest {
                shortest_digits(abs)
            } else {
                rounded_digits(abs, prec as usize + 1)
            };
            let frac = if shortest { digits.len() - 1 } else { prec as usize };
            fmt_e(&mut out, &digits, point, frac, verb == 'E');
        }
        'f' | 'F' => {
            if shortest {
                let (digits, point) = shortest_digits(abs);
                let frac = (digits.len() as i32 - point).max(0) as usize;
                fmt_f_digits(&mut out, &digits, point, frac);
            } else {
                let _ = write!(out, "{:.*}", prec as usize, abs);
            }
        }
        _ => {
            // 'g' / 'G'
            let (digits, point, eprec) = if shortest {
                let (digits, point) = shortest_digits(abs);
                (digits, point, 6)
            } else {
                let prec = if prec == 0 { 1 } else { prec };
                let (digits, point) = rounded_digits(abs, prec as usize);
                let digits = digits.trim_end_matches('0');
                let digits = if digits.is_empty() { "0".to_string() } else { digits.to_string() };
                let mut eprec = prec;
                if eprec > digits.len() as i32 && digits.len() as i32 >= point {
                    eprec = digits.len() as i32;
                }
                (digits, point, eprec)
            };
            let exp = point - 1;
            let is_zero = digits == "0";
            if !is_zero && (exp < -4 || exp >= eprec) {
                fmt_e(&mut out, &digits, point, digits.len() - 1, verb == 'G');
            } else {
                let point = if is_zero { 1 } else { point };
                let frac = (digits.len() as i32 - point).max(0) as usize;
                fmt_f_digits(&mut out, &digits, point, frac);
            }
        }
    }
    out
}

/// Go's `%v` of a float64.
pub fn format_float_v(x: f64) -> String {
    format_float(x, 'g', -1)
}

/// Appends Go's `%v` of a value.
pub fn write_value(out: &mut String, value: &Value) {
    write_value_at(out, value, 0);
}

/// Nesting beyond which values print as `...` (cyclic maps built with `set` stay printable).
pub(crate) const MAX_NESTING: usize = 100;

fn write_value_at(out: &mut String, value: &Value, depth: usize) {
    if depth > MAX_NESTING {
        out.push_str("...");
        return;
    }
    match value {
        Value::Missing | Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(x) => out.push_str(&format_float_v(*x)),
        Value::String(s) => out.push_str(s),
        Value::List(items) => {
            out.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push(' ');
                }
                write_value_at(out, item, depth + 1);
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push_str("map[");
            for (idx, (key, item)) in map.entries().iter().enumerate() {
                if idx > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                write_value_at(out, item, depth + 1);
            }
            out.push(']');
        }
        Value::Object(object) => {
            let inner = object.to_value();
            if inner.is_nil() {
                out.push_str("&{}");
            } else {
                write_value_at(out, &inner, depth + 1);
            }
        }
    }
}

/// Go's `fmt.Sprint(args...)`: spaces between operands when neither side is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (idx, arg) in args.iter().enumerate() {
        if idx > 0 && !matches!(arg, Value::String(_)) && !matches!(args[idx - 1], Value::String(_))
        {
            out.push(' ');
        }
        write_value(&mut out, arg);
    }
    out
}

/// Go's `fmt.Sprintln(args...)`: spaces between all operands and a final newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (idx, arg) in args.iter().enumerate() {
        if idx > 0 {
            out.push(' ');
        }
        write_value(&mut out, arg);
    }
    out.push('\n');
    out
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_quoted_char(&mut out, c, '"', false);
    }
    out.push('"');
    out
}

fn push_quoted_char(out: &mut String, c: char, quote: char, ascii_only: bool) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if ascii_only && !c.is_ascii() || !is_printable(c) => {
            if (c as u32) < 0x10000 {
                let _ = write!(out, "\\u{:04x}", c as u32);
            } else {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
        c => out.push(c),
    }
}

pub(crate) fn is_printable(c: char) -> bool {
    // An approximation of Go's unicode.IsPrint: control and format characters and
    // unassigned/private-use planes are escaped.
    let code = c as u32;
    !(c.is_control()
        || (0x80..0xa0).contains(&code)
        || code == 0xad
        || (0x200b..=0x200f).contains(&code)
        || (0x2028..=0x202e).contains(&code)
        || (0x2060..=0x206f).contains(&code)
        || code == 0xfeff
        || (0xe000..=0xf8ff).contains(&code)
        || (0xfff0..=0xfffb).contains(&code)
        || code >= 0xf0000)
}

/// Go's `%q` of a rune.
fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    push_quoted_char(&mut out, c, '\'', false);
    out.push('\'');
    out
}

#[derive(Default, Clone, Copy)]
struct Flags {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(out: &mut String, body: &str, flags: &Flags) {
    let len = body.chars().count();
    let width = flags.width.unwrap_or(0);
    if len >= width {
        out.push_str(body);
        return;
    }
    let fill = width - len;
    if flags.minus {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if flags.zero {
        // Zero padding goes after the sign.
        let (sign, rest) = match body.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (Some(c), &body[1..]),
            _ => (None, body),
        };
        if let Some(sign) = sign {
            out.push(sign);
        }
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(rest);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(body);
    }
}

fn bad_verb(out: &mut String, verb: char, value: &Value) {
    let _ = write!(out, "%!{verb}(");
    match value {
        Value::Missing | Value::Nil => out.push_str("<nil>"),
        other => {
            out.push_str(&other.type_name());
            out.push('=');
            write_value(out, other);
        }
    }
    out.push(')');
}

fn fmt_integer(out: &mut String, i: i64, verb: char, flags: &Flags) {
    let negative = i < 0;
    let abs = i.unsigned_abs();
    let mut digits = match verb {
        'd' | 'v' => abs.to_string(),
        'b' => format!("{abs:b}"),
        'o' | 'O' => format!("{abs:o}"),
        'x' => format!("{abs:x}"),
        'X' => format!("{abs:X}"),
        _ => abs.to_string(),
    };
    if let Some(prec) = flags.prec {
        if prec == 0 && abs == 0 {
            digits.clear();
        }
        while digits.len() < prec {
            digits.insert(0, '0');
        }
    }
    let mut body = String::new();
    if negative {
        body.push('-');
    } else if flags.plus {
        body.push('+');
    } else if flags.space {
        body.push(' ');
    }
    if flags.sharp {
        match verb {
            'x' => body.push_str("0x"),
            'X' => body.push_str("0X"),
            'o' if !digits.starts_with('0') => body.push('0'),
            'b' => body.push_str("0b"),
            _ => {}
        }
    }
    if verb == 'O' {
        body.push_str("0o");
    }
    body.push_str(&digits);
    let flags = Flags { zero: flags.zero && flags.prec.is_none(), ..*flags };
    pad(out, &body, &flags);
}

fn fmt_float_verb(out: &mut String, x: f64, verb: char, flags: &Flags) {
    let prec = flags.prec.map_or(-1, |p| p as i32);
    let mut body = match verb {
        'v' => format_float(x, 'g', prec),
        'e' | 'E' => format_float(x, verb, if prec < 0 { 6 } else { prec }),
        'f' | 'F' => format_float(x, 'f', if prec < 0 { 6 } else { prec }),
        'g' | 'G' => format_float(x, verb, prec),
        _ => format_float(x, 'g', prec),
    };
    if flags.plus && !body.starts_with('-') && !body.starts_with('+') {
        body.insert(0, '+');
    } else if flags.space && !body.starts_with('-') && !body.starts_with('+') {
        body.insert(0, ' ');
    } else if !flags.plus && body == "+Inf" {
        body = "+Inf".to_string();
    }
    let flags = Flags { zero: flags.zero && x.is_finite(), ..*flags };
    pad(out, &body, &flags);
}

fn fmt_string(out: &mut String, s: &str, verb: char, flags: &Flags) {
    let s = match flags.prec {
        Some(prec) => s.chars().take(prec).collect::<String>(),
        None => s.to_string(),
    };
    let body = match verb {
        'q' => {
            if flags.sharp && !s.contains('`') {
                format!("`{s}`")
            } else if flags.plus {
                let mut out = String::from("\"");
                for c in s.chars() {
                    push_quoted_char(&mut out, c, '"', true);
                }
                out.push('"');
                out
            } else {
                quote(&s)
            }
        }
        'x' | 'X' => {
            let mut hex = String::new();
            for (idx, b) in s.bytes().enumerate() {
                if flags.space && idx > 0 {
                    hex.push(' ');
                }
                if verb == 'x' {
                    let _ = write!(hex, "{b:02x}");
                } else {
                    let _ = write!(hex, "{b:02X}");
                }
            }
            hex
        }
        _ => s,
    };
    pad(out, &body, flags);
}

/// Formats one operand with one verb.
fn fmt_arg(out: &mut String, value: &Value, verb: char, flags: &Flags) {
    fmt_arg_at(out, value, verb, flags, 0);
}

fn fmt_arg_at(out: &mut String, value: &Value, verb: char, flags: &Flags, depth: usize) {
    if depth > MAX_NESTING {
        out.push_str("...");
        return;
    }
    if verb == 'T' {
        pad(out, &value.type_name(), flags);
        return;
    }
    if matches!(verb, 's' | 'q' | 'x' | 'X')
        && let Some(bytes) = value.as_bytes()
    {
        // Go formats a []byte like a string under the string verbs.
        fmt_string(out, &String::from_utf8_lossy(bytes), verb, flags);
        return;
    }
    match value {
        Value::Missing | Value::Nil => match verb {
            'v' | 's' | 'q' | 'x' | 'X' | 'd' | 't' | 'f' | 'g' | 'e' => {
                if verb == 'v' {
                    pad(out, "<nil>", flags);
                } else {
                    out.push_str(&format!("%!{verb}(<nil>)"));
                }
            }
            _ => out.push_str(&format!("%!{verb}(<nil>)")),
        },
        Value::Bool(b) => match verb {
            'v' | 't' => pad(out, if *b { "true" } else { "false" }, flags),
            _ => bad_verb(out, verb, value),
        },
        Value::Int(i) => match verb {
            'v' | 'd' | 'b' | 'o' | 'O' | 'x' | 'X' => fmt_integer(out, *i, verb, flags),
            'c' => pad(out, &char::from_u32(*i as u32).unwrap_or('\u{fffd}').to_string(), flags),
            'q' => pad(out, &quote_rune(char::from_u32(*i as u32).unwrap_or('\u{fffd}')), flags),
            'U' => pad(out, &format!("U+{:04X}", i), flags),
            'e' | 'E' | 'f' | 'F' | 'g' | 'G' => bad_verb(out, verb, value),
            _ => bad_verb(out, verb, value),
        },
        Value::Float(x) => match verb {
            'v' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G' => fmt_float_verb(out, *x, verb, flags),
            'x' | 'X' => fmt_float_verb(out, *x, 'g', flags),
            _ => bad_verb(out, verb, value),
        },
        Value::String(s) => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => fmt_string(out, s, verb, flags),
            _ => bad_verb(out, verb, value),
        },
        Value::List(items) => {
            out.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push(' ');
                }
                fmt_arg_at(out, item, verb, flags, depth + 1);
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push_str("map[");
            for (idx, (key, item)) in map.entries().iter().enumerate() {
                if idx > 0 {
                    out.push(' ');
                }
                fmt_arg(out, &Value::str(key), verb, flags);
                out.push(':');
                fmt_arg_at(out, item, verb, flags, depth + 1);
            }
            out.push(']');
        }
        Value::Object(object) => {
            let inner = object.to_value();
            if inner.is_nil() {
                pad(out, "&{}", flags);
            } else {
                fmt_arg_at(out, &inner, verb, flags, depth + 1);
            }
        }
    }
}

/// Go's `fmt.Sprintf(format, args...)`, including `%!verb(MISSING)` and `%!(EXTRA …)` markers.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut arg_idx = 0;
    let mut reordered = false;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = Flags::default();
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => flags.minus = true,
                '+' => flags.plus = true,
                '#' => flags.sharp = true,
                ' ' => flags.space = true,
                '0' => flags.zero = !flags.minus,
                _ => break,
            }
            chars.next();
        }
        // Explicit argument indexes: `%[2]d`.
        let mut take_index = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
                              arg_idx: &mut usize| {
            if let Some(&(_, '[')) = chars.peek() {
                let mut lookahead = chars.clone();
                lookahead.next();
                let digits: String =
                    lookahead.clone().map(|(_, c)| c).take_while(char::is_ascii_digit).collect();
                for _ in 0..digits.len() {
                    lookahead.next();
                }
                if let (Ok(n), Some((_, ']'))) = (digits.parse::<usize>(), lookahead.next())
                    && n >= 1
                {
                    *arg_idx = n - 1;
                    reordered = true;
                    *chars = lookahead;
                }
            }
        };
        take_index(&mut chars, &mut arg_idx);
        // Width.
        if let Some(&(_, '*')) = chars.peek() {
            chars.next();
            if let Some(Value::Int(w)) = args.get(arg_idx) {
                if *w < 0 {
                    flags.minus = true;
                }
                flags.width = Some(w.unsigned_abs() as usize);
            } else {
                out.push_str("%!(BADWIDTH)");
            }
            arg_idx += 1;
        } else {
            let mut width = String::new();
            while let Some(&(_, d)) = chars.peek() {
                if d.is_ascii_digit() {
                    width.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            if !width.is_empty() {
                flags.width = width.parse().ok();
            }
        }
        // Precision.
        if let Some(&(_, '.')) = chars.peek() {
            chars.next();
            if let Some(&(_, '*')) = chars.peek() {
                chars.next();
                if let Some(Value::Int(p)) = args.get(arg_idx) {
                    flags.prec = if *p < 0 { None } else { Some(*p as usize) };
                } else {
                    out.push_str("%!(BADPREC)");
                }
                arg_idx += 1;
            } else {
                let mut prec = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        prec.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                flags.prec = Some(prec.parse().unwrap_or(0));
            }
        }
        if flags.minus {
            flags.zero = false;
        }
        take_index(&mut chars, &mut arg_idx);
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(arg_idx) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        arg_idx += 1;
        if flags.sharp && verb == 'v' {
            out.push_str(&go_syntax(arg));
            continue;
        }
        fmt_arg(&mut out, arg, verb, &flags);
    }
    if !reordered && arg_idx < args.len() {
        out.push_str("%!(EXTRA ");
        for (idx, arg) in args[arg_idx..].iter().enumerate() {
            if idx > 0 {
                out.push_str(", ");
            }
            if arg.is_nil() {
                out.push_str("<nil>");
            } else {
                out.push_str(&arg.type_name());
                out.push('=');
                write_value(&mut out, arg);
            }
        }
        out.push(')');
    }
    out
}

/// Go's `%#v` (Go syntax) of a value.
fn go_syntax(value: &Value) -> String {
    match value {
        Value::Missing | Value::Nil => "<nil>".to_string(),
        Value::String(s) => quote(s),
        Value::Float(x) => format_float_v(*x),
        Value::List(items) => {
            let inner: Vec<String> = items.iter().map(go_syntax).collect();
            format!("[]interface {{}}{{{}}}", inner.join(", "))
        }
        Value::Map(map) => {
            let inner: Vec<String> = map
                .entries()
                .iter()
                .map(|(k, v)| format!("{}:{}", quote(k), go_syntax(v)))
                .collect();
            format!("{}{{{}}}", value.type_name(), inner.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_float(x: f64, verb: char, prec: i32, expected: &str) {
        assert_eq!(format_float(x, verb, prec), expected, "{x} {verb} {prec}");
    }

    #[test]
    fn floats_format_like_strconv() {
        check_float(1000000.0, 'g', -1, "1e+06");
        check_float(1.5, 'g', -1, "1.5");
        check_float(3.0, 'g', -1, "3");
        check_float(123456.0, 'g', -1, "123456");
        check_float(1234567.0, 'g', -1, "1.234567e+06");
        check_float(0.0001, 'g', -1, "0.0001");
        check_float(0.00001, 'g', -1, "1e-05");
        check_float(0.0, 'g', -1, "0");
        check_float(-2.5, 'g', -1, "-2.5");
        check_float(1e21, 'g', -1, "1e+21");
        check_float(3.14659, 'f', 2, "3.15");
        check_float(2.5, 'f', 0, "2");
        check_float(1234.5678, 'e', 3, "1.235e+03");
        check_float(1.0, 'e', -1, "1e+00");
        check_float(100.0, 'g', 2, "1e+02");
        check_float(123.456, 'g', 4, "123.5");
        check_float(0.1, 'f', -1, "0.1");
        check_float(f64::INFINITY, 'g', -1, "+Inf");
    }

    #[track_caller]
    fn check_printf(format: &str, args: &[Value], expected: &str) {
        assert_eq!(sprintf(format, args), expected, "{format}");
    }

    #[test]
    fn printf_verbs() {
        check_printf("%s-%d", &[Value::str("a"), Value::Int(3)], "a-3");
        check_printf("%d", &[Value::Float(80.0)], "%!d(float64=80)");
        check_printf("%v", &[Value::Float(80.0)], "80");
        check_printf(
            "%5d|%-5d|%05d",
            &[Value::Int(42), Value::Int(42), Value::Int(-42)],
            "   42|42   |-0042",
        );
        check_printf("%q", &[Value::str("a\"b\n")], "\"a\\\"b\\n\"");
        check_printf("%x", &[Value::Int(255)], "ff");
        check_printf("%x", &[Value::str("hi")], "6869");
        check_printf("%.2f", &[Value::Float(3.14659)], "3.15");
        check_printf("%t", &[Value::Bool(true)], "true");
        check_printf("%c", &[Value::Int(65)], "A");
        check_printf("%s", &[], "%!s(MISSING)");
        check_printf("a", &[Value::Int(1)], "a%!(EXTRA int=1)");
        check_printf("%v", &[Value::Nil], "<nil>");
        check_printf("%s", &[Value::Nil], "%!s(<nil>)");
        check_printf(
            "%T %T",
            &[Value::Float(1.0), Value::new_map()],
            "float64 map[string]interface {}",
        );
        check_printf("%6.2f%%", &[Value::Float(12.345)], " 12.35%");
        check_printf("%s", &[Value::list(vec![Value::str("a"), Value::str("b")])], "[a b]");
        check_printf("%.3s", &[Value::str("abcdef")], "abc");
        check_printf("%+d", &[Value::Int(5)], "+5");
        check_printf("%[1]d %[1]d", &[Value::Int(5)], "5 5");
        check_printf("%[2]s-%[1]s", &[Value::str("a"), Value::str("b")], "b-a");
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(sprint(&[Value::Int(1), Value::Int(2)]), "1 2");
        assert_eq!(sprint(&[Value::str("a"), Value::Int(2)]), "a2");
        assert_eq!(sprint(&[Value::str("a"), Value::str("b")]), "ab");
        assert_eq!(sprintln(&[Value::str("a"), Value::str("b")]), "a b\n");
    }
}
