//! Flux's post-build variable substitution (fluxcd/pkg envsubst): bash-style `${var}`
//! expressions with defaults, substrings, replacement, length, case changes and prefix/suffix
//! trimming. `$var` without braces is left alone and `$${var}` escapes to a literal `${var}`.

use std::collections::BTreeMap;

/// Why a substitution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A variable is used but not set, and no default is given (strict mode).
    #[error("variable not set (strict mode): \"{0}\"")]
    NotSet(String),
    /// An expression is malformed.
    #[error("bad substitution at byte {offset}: {message}")]
    BadSubstitution {
        /// Byte offset of the `${` that starts the expression.
        offset: usize,
        /// What is wrong.
        message: String,
    },
    /// A variable name in the substitution map is invalid.
    #[error("'{0}' var name is invalid, must match '^[_[:alpha:]][_[:alpha:][:digit:]]*$'")]
    InvalidName(String),
}

/// Whether `name` is a valid variable name: `^[_[:alpha:]][_[:alpha:][:digit:]]*$`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Checks every name of a substitution map.
pub fn validate_names<'a>(names: impl IntoIterator<Item = &'a String>) -> Result<(), Error> {
    for name in names {
        if !is_valid_name(name) {
            return Err(Error::InvalidName(name.clone()));
        }
    }
    Ok(())
}

/// Substitutes `${…}` expressions in `text` with `vars`. In `strict` mode an unset variable
/// without a default is an error; otherwise it becomes the empty string.
pub fn substitute(
    text: &str,
    vars: &BTreeMap<String, String>,
    strict: bool,
) -> Result<String, Error> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut literal_start = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'$') && bytes.get(i + 2) == Some(&b'{') {
            // `$${` is an escaped `${`.
            out.push_str(&text[literal_start..i]);
            out.push('$');
            i += 2;
            let end = find_closing(bytes, i + 1).ok_or_else(|| unclosed(i))?;
            out.push_str(&text[i..=end]);
            i = end + 1;
            literal_start = i;
            continue;
        }
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            out.push_str(&text[literal_start..i]);
            let end = find_closing(bytes, i + 2).ok_or_else(|| unclosed(i))?;
            let expression = &text[i + 2..end];
            out.push_str(&evaluate(expression, vars, strict, i)?);
            i = end + 1;
            literal_start = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[literal_start..]);
    Ok(out)
}

fn unclosed(offset: usize) -> Error {
    Error::BadSubstitution { offset, message: "missing closing brace".into() }
}

/// Finds the `}` closing an expression whose body starts at `start`, allowing nested `${…}`.
fn find_closing(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn evaluate(
    expression: &str,
    vars: &BTreeMap<String, String>,
    strict: bool,
    offset: usize,
) -> Result<String, Error> {
    let bad = |message: &str| Error::BadSubstitution {
        offset,
        message: format!("{message} in ${{{expression}}}"),
    };
    if let Some(name) = expression.strip_prefix('#')
        && is_valid_name(name)
    {
        let value = lookup(name, vars, strict)?;
        return Ok(value.chars().count().to_string());
    }
    let name_len = expression
        .char_indices()
        .find(|(_, c)| !(*c == '_' || c.is_ascii_alphanumeric()))
        .map_or(expression.len(), |(index, _)| index);
    let (name, op) = expression.split_at(name_len);
    if !is_valid_name(name) {
        return Err(bad("invalid variable name"));
    }
    let value = vars.get(name);
    let nested = |default: &str| substitute(default, vars, strict);
    match op {
        "" => lookup(name, vars, strict),
        _ if op.starts_with(":-") || op.starts_with(":=") => match value {
            Some(v) if !v.is_empty() => Ok(v.clone()),
            _ => nested(&op[2..]),
        },
        _ if op.starts_with('-') || op.starts_with('=') => match value {
            Some(v) => Ok(v.clone()),
            None => nested(&op[1..]),
        },
        _ if op.starts_with(":+")
            || op.starts_with(":?")
            || op.starts_with('+')
            || op.starts_with('?') =>
        {
            Err(bad("unsupported operator"))
        }
        "^" => Ok(map_first(&lookup(name, vars, strict)?, |c| c.to_uppercase().collect())),
        "^^" => Ok(lookup(name, vars, strict)?.to_uppercase()),
        "," => Ok(map_first(&lookup(name, vars, strict)?, |c| c.to_lowercase().collect())),
        ",," => Ok(lookup(name, vars, strict)?.to_lowercase()),
        _ if op.starts_with("##") => Ok(trim_prefix(&lookup(name, vars, strict)?, &op[2..], true)),
        _ if op.starts_with('#') => Ok(trim_prefix(&lookup(name, vars, strict)?, &op[1..], false)),
        _ if op.starts_with("%%") => Ok(trim_suffix(&lookup(name, vars, strict)?, &op[2..], true)),
        _ if op.starts_with('%') => Ok(trim_suffix(&lookup(name, vars, strict)?, &op[1..], false)),
        _ if op.starts_with("//") => {
            let (pattern, replacement) = op[2..].split_once('/').unwrap_or((&op[2..], ""));
            Ok(lookup(name, vars, strict)?.replace(pattern, replacement))
        }
        _ if op.starts_with('/') => {
            let (pattern, replacement) = op[1..].split_once('/').unwrap_or((&op[1..], ""));
            Ok(lookup(name, vars, strict)?.replacen(pattern, replacement, 1))
        }
        _ if op.starts_with(':') => {
            let value: Vec<char> = lookup(name, vars, strict)?.chars().collect();
            let mut parts = op[1..].splitn(2, ':');
            let position: i64 =
                parts.next().unwrap_or("0").trim().parse().map_err(|_| bad("invalid offset"))?;
            let start = if position < 0 {
                value.len().saturating_sub(position.unsigned_abs() as usize)
            } else {
                (position as usize).min(value.len())
            };
            let end = match parts.next() {
                Some(length) => {
                    let length: usize = length.trim().parse().map_err(|_| bad("invalid length"))?;
                    (start + length).min(value.len())
                }
                None => value.len(),
            };
            Ok(value[start..end].iter().collect())
        }
        _ => Err(bad("unknown operator")),
    }
}

fn lookup(name: &str, vars: &BTreeMap<String, String>, strict: bool) -> Result<String, Error> {
    match vars.get(name) {
        Some(value) => Ok(value.clone()),
        None if strict => Err(Error::NotSet(name.to_string())),
        None => Ok(String::new()),
    }
}

fn map_first(value: &str, f: impl Fn(char) -> String) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(first) => f(first) + chars.as_str(),
        None => String::new(),
    }
}

/// Matches a shell glob with `*` and `?` against the whole of `text`.
fn glob_match(pattern: &[char], text: &[char]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some('*'), _) => {
            glob_match(&pattern[1..], text) || (!text.is_empty() && glob_match(pattern, &text[1..]))
        }
        (Some('?'), Some(_)) => glob_match(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => glob_match(&pattern[1..], &text[1..]),
        _ => false,
    }
}

fn trim_prefix(value: &str, pattern: &str, longest: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    let mut lengths: Vec<usize> = (0..=chars.len()).collect();
    if longest {
        lengths.reverse();
    }
    for length in lengths {
        if glob_match(&pattern, &chars[..length]) {
            return chars[length..].iter().collect();
        }
    }
    value.to_string()
}

fn trim_suffix(value: &str, pattern: &str, longest: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    let mut starts: Vec<usize> = (0..=chars.len()).rev().collect();
    if longest {
        starts.reverse();
    }
    for start in starts {
        if glob_match(&pattern, &chars[start..]) {
            return chars[..start].iter().collect();
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [
            ("env", "prod"),
            ("region", "eu-central-1"),
            ("empty", ""),
            ("name", "podinfo"),
            ("path", "/a/b/c.yaml"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[track_caller]
    fn check(input: &str, expected: &str) {
        assert_eq!(substitute(input, &vars(), true).as_deref(), Ok(expected), "{input}");
    }

    #[track_caller]
    fn check_err(input: &str, strict: bool, expected: &str) {
        let err = substitute(input, &vars(), strict).unwrap_err();
        assert!(err.to_string().contains(expected), "{input}: {err}");
    }

    #[test]
    fn expressions() {
        check("cluster: ${env}", "cluster: prod");
        check("${env}-${region}", "prod-eu-central-1");
        check("$env stays", "$env stays");
        check("$${env} escapes", "${env} escapes");
        check("${missing:=fallback}", "fallback");
        check("${missing:-fallback}", "fallback");
        check("${empty:-fallback}", "fallback");
        check("${empty-fallback}", "");
        check("${missing=fallback}", "fallback");
        check("${missing:-${env}}", "prod");
        check("${#name}", "7");
        check("${name:3}", "info");
        check("${name:0:3}", "pod");
        check("${name:-4}", "podinfo");
        check("${region/-/_}", "eu_central-1");
        check("${region//-/_}", "eu_central_1");
        check("${name^}", "Podinfo");
        check("${name^^}", "PODINFO");
        check("${env,,}", "prod");
        check("${path#*/}", "a/b/c.yaml");
        check("${path##*/}", "c.yaml");
        check("${path%/*}", "/a/b");
        check("${path%%.*}", "/a/b/c");
        check("no variables at all", "no variables at all");
    }

    #[test]
    fn errors() {
        check_err("${missing}", true, "variable not set (strict mode): \"missing\"");
        assert_eq!(substitute("a${missing}b", &vars(), false).as_deref(), Ok("ab"));
        check_err("${env", true, "missing closing brace");
        check_err("${env:+x}", true, "unsupported operator");
        check_err("${1abc}", true, "invalid variable name");
        assert!(validate_names([&"good_name".to_string()]).is_ok());
        assert_eq!(
            validate_names([&"bad-name".to_string()]).unwrap_err().to_string(),
            "'bad-name' var name is invalid, must match '^[_[:alpha:]][_[:alpha:][:digit:]]*$'"
        );
    }
}
