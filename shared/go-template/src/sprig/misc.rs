//! Sprig defaults, JSON, types, encodings, regular expressions, URLs, paths and semver.

use base64::Engine as _;

use super::{Funcs, arg_int, arg_str, fail, is_empty, must_pair, pure, sig, strval, var};
use crate::FuncError;
use crate::Param::{Any, Bool, Int, Map as MapP, String as Str};
use crate::json::to_go_json;
use crate::value::{Map, Value};

fn regex(pattern: &str) -> Result<regex::Regex, FuncError> {
    regex::Regex::new(pattern)
        .map_err(|err| FuncError::Call(format!("error parsing regexp: {err}")))
}

pub(super) fn register(funcs: &mut Funcs) {
    pure(funcs, "default", var(&[Any], Any), |a| match a.get(1) {
        Some(given) if !is_empty(given) => Ok(given.clone()),
        _ => Ok(a[0].clone()),
    });
    pure(funcs, "empty", sig(&[Any]), |a| Ok(Value::Bool(is_empty(&a[0]))));
    pure(funcs, "coalesce", var(&[], Any), |a| {
        Ok(a.iter().find(|v| !is_empty(v)).cloned().unwrap_or(Value::Nil))
    });
    pure(funcs, "all", var(&[], Any), |a| Ok(Value::Bool(a.iter().all(|v| !is_empty(v)))));
    pure(funcs, "any", var(&[], Any), |a| Ok(Value::Bool(a.iter().any(|v| !is_empty(v)))));
    pure(funcs, "ternary", sig(&[Any, Any, Bool]), |a| {
        Ok(if a[2].is_true() { a[0].clone() } else { a[1].clone() })
    });
    pure(funcs, "fail", sig(&[Str]), |a| fail(arg_str(a, 0)));

    // JSON.
    pure(funcs, "fromJson", sig(&[Str]), |a| Ok(from_json(arg_str(a, 0)).unwrap_or(Value::Nil)));
    pure(funcs, "mustFromJson", sig(&[Str]), |a| from_json(arg_str(a, 0)));
    must_pair(funcs, "toJson", sig(&[Any]), |a| Ok(Value::from(to_go_json(&a[0], true, 0))));
    must_pair(funcs, "toPrettyJson", sig(&[Any]), |a| Ok(Value::from(to_go_json(&a[0], true, 2))));
    must_pair(funcs, "toRawJson", sig(&[Any]), |a| Ok(Value::from(to_go_json(&a[0], false, 0))));

    // Types.
    pure(funcs, "typeOf", sig(&[Any]), |a| Ok(Value::from(a[0].type_name())));
    pure(funcs, "typeIs", sig(&[Str, Any]), |a| Ok(Value::Bool(arg_str(a, 0) == a[1].type_name())));
    pure(funcs, "typeIsLike", sig(&[Str, Any]), |a| {
        let t = a[1].type_name();
        let target = arg_str(a, 0);
        Ok(Value::Bool(target == t || format!("*{target}") == t))
    });
    pure(funcs, "kindOf", sig(&[Any]), |a| Ok(Value::str(a[0].kind_name())));
    pure(funcs, "kindIs", sig(&[Str, Any]), |a| Ok(Value::Bool(arg_str(a, 0) == a[1].kind_name())));
    pure(funcs, "deepEqual", sig(&[Any, Any]), |a| Ok(Value::Bool(a[0].deep_equal(&a[1]))));

    // Encodings.
    pure(funcs, "b64enc", sig(&[Str]), |a| {
        Ok(Value::from(base64::engine::general_purpose::STANDARD.encode(arg_str(a, 0))))
    });
    pure(funcs, "b64dec", sig(&[Str]), |a| {
        Ok(Value::from(match base64::engine::general_purpose::STANDARD.decode(arg_str(a, 0)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(err) => go_base64_error(&err, arg_str(a, 0)),
        }))
    });
    pure(funcs, "b32enc", sig(&[Str]), |a| {
        Ok(Value::from(base32_encode(arg_str(a, 0).as_bytes())))
    });
    pure(funcs, "b32dec", sig(&[Str]), |a| {
        Ok(Value::from(match base32_decode(arg_str(a, 0)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(message) => message,
        }))
    });

    // Regular expressions.
    pure(funcs, "regexMatch", sig(&[Str, Str]), |a| {
        Ok(Value::Bool(regex(arg_str(a, 0)).is_ok_and(|re| re.is_match(arg_str(a, 1)))))
    });
    pure(funcs, "mustRegexMatch", sig(&[Str, Str]), |a| {
        Ok(Value::Bool(regex(arg_str(a, 0))?.is_match(arg_str(a, 1))))
    });
    must_pair(funcs, "regexFindAll", sig(&[Str, Str, Int]), |a| {
        let re = regex(arg_str(a, 0))?;
        let n = arg_int(a, 2);
        let limit = if n < 0 { usize::MAX } else { n as usize };
        Ok(Value::list(
            re.find_iter(arg_str(a, 1)).take(limit).map(|m| Value::str(m.as_str())).collect(),
        ))
    });
    must_pair(funcs, "regexFind", sig(&[Str, Str]), |a| {
        let re = regex(arg_str(a, 0))?;
        Ok(Value::str(re.find(arg_str(a, 1)).map_or("", |m| m.as_str())))
    });
    must_pair(funcs, "regexReplaceAll", sig(&[Str, Str, Str]), |a| {
        let re = regex(arg_str(a, 0))?;
        Ok(Value::from(re.replace_all(arg_str(a, 1), arg_str(a, 2)).into_owned()))
    });
    must_pair(funcs, "regexReplaceAllLiteral", sig(&[Str, Str, Str]), |a| {
        let re = regex(arg_str(a, 0))?;
        Ok(Value::from(re.replace_all(arg_str(a, 1), regex::NoExpand(arg_str(a, 2))).into_owned()))
    });
    must_pair(funcs, "regexSplit", sig(&[Str, Str, Int]), |a| {
        let re = regex(arg_str(a, 0))?;
        Ok(Value::list(
            regex_split(&re, arg_str(a, 1), arg_int(a, 2)).into_iter().map(Value::from).collect(),
        ))
    });
    pure(funcs, "regexQuoteMeta", sig(&[Str]), |a| Ok(Value::from(regex::escape(arg_str(a, 0)))));

    // URLs and network.
    pure(funcs, "urlParse", sig(&[Str]), |a| url_parse(arg_str(a, 0)));
    pure(funcs, "urlJoin", sig(&[MapP]), |a| Ok(Value::from(url_join(&a[0]))));
    pure(funcs, "getHostByName", sig(&[Str]), |_| Ok(Value::str("")));

    // Paths (slash-separated, as Go's `path` package).
    pure(funcs, "base", sig(&[Str]), |a| Ok(Value::from(path_base(arg_str(a, 0)))));
    pure(funcs, "dir", sig(&[Str]), |a| Ok(Value::from(path_dir(arg_str(a, 0)))));
    pure(funcs, "clean", sig(&[Str]), |a| Ok(Value::from(path_clean(arg_str(a, 0)))));
    pure(funcs, "ext", sig(&[Str]), |a| Ok(Value::from(path_ext(arg_str(a, 0)))));
    pure(funcs, "isAbs", sig(&[Str]), |a| Ok(Value::Bool(arg_str(a, 0).starts_with('/'))));
    pure(funcs, "osBase", sig(&[Str]), |a| Ok(Value::from(path_base(arg_str(a, 0)))));
    pure(funcs, "osDir", sig(&[Str]), |a| Ok(Value::from(path_dir(arg_str(a, 0)))));
    pure(funcs, "osClean", sig(&[Str]), |a| Ok(Value::from(path_clean(arg_str(a, 0)))));
    pure(funcs, "osExt", sig(&[Str]), |a| Ok(Value::from(path_ext(arg_str(a, 0)))));
    pure(funcs, "osIsAbs", sig(&[Str]), |a| Ok(Value::Bool(arg_str(a, 0).starts_with('/'))));

    // Semantic versions (Masterminds/semver v3).
    pure(funcs, "semver", sig(&[Str]), |a| {
        let version = sluice_semver::Version::parse(arg_str(a, 0))
            .map_err(|err| FuncError::Call(err.to_string()))?;
        Ok(semver_value(&version))
    });
    pure(funcs, "semverCompare", sig(&[Str, Str]), |a| {
        let constraints = sluice_semver::Constraints::parse(arg_str(a, 0))
            .map_err(|err| FuncError::Call(err.to_string()))?;
        let version = sluice_semver::Version::parse(arg_str(a, 1))
            .map_err(|err| FuncError::Call(err.to_string()))?;
        Ok(Value::Bool(constraints.check(&version)))
    });
    pure(funcs, "uuidv4", sig(&[]), |_| Ok(Value::from(uuid_v4())));
}

fn from_json(text: &str) -> Result<Value, FuncError> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|err| FuncError::Call(err.to_string()))?;
    Ok(Value::from_json(&json))
}

pub(super) fn go_base64_error(err: &base64::DecodeError, input: &str) -> String {
    match err {
        base64::DecodeError::InvalidByte(offset, _) => {
            format!("illegal base64 data at input byte {offset}")
        }
        // An incomplete final quantum is reported at its start, as Go does.
        _ => format!("illegal base64 data at input byte {}", input.len() / 4 * 4),
    }
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let n_chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < n_chars {
                out.push(B32[((bits >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base32_decode(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim_end_matches('=');
    let mut bits = 0u64;
    let mut n_bits = 0;
    let mut out = Vec::new();
    for (idx, c) in trimmed.bytes().enumerate() {
        let Some(v) = B32.iter().position(|b| *b == c) else {
            return Err(format!("illegal base32 data at input byte {idx}"));
        };
        bits = (bits << 5) | v as u64;
        n_bits += 5;
        if n_bits >= 8 {
            n_bits -= 8;
            out.push((bits >> n_bits) as u8);
            bits &= (1 << n_bits) - 1;
        }
    }
    Ok(out)
}

/// Go's `Regexp.Split`.
fn regex_split(re: &regex::Regex, text: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if !re.as_str().is_empty() && text.is_empty() {
        return vec![String::new()];
    }
    let mut parts = Vec::new();
    let (mut beg, mut end) = (0, 0);
    for m in re.find_iter(text) {
        if n > 0 && parts.len() as i64 == n - 1 {
            break;
        }
        end = m.start();
        if m.end() != 0 {
            parts.push(text[beg..end].to_string());
        }
        beg = m.end();
    }
    if end != text.len() {
        parts.push(text[beg..].to_string());
    }
    parts
}

fn url_parse(text: &str) -> Result<Value, FuncError> {
    let (rest, fragment) = text.split_once('#').map_or((text, ""), |(a, b)| (a, b));
    let (rest, query) = rest.split_once('?').map_or((rest, ""), |(a, b)| (a, b));
    let (scheme, rest) = match rest.split_once(':') {
        Some((s, r))
            if !s.is_empty()
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (s, r)
        }
        _ => ("", rest),
    };
    let (authority, path, opaque) = if let Some(after) = rest.strip_prefix("//") {
        let idx = after.find('/').unwrap_or(after.len());
        (&after[..idx], &after[idx..], "")
    } else if !scheme.is_empty() && !rest.starts_with('/') {
        ("", "", rest)
    } else {
        ("", rest, "")
    };
    let (userinfo, host) = authority.rsplit_once('@').map_or(("", authority), |(u, h)| (u, h));
    let hostname = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    let map = Map::new();
    map.insert("scheme", Value::str(scheme));
    map.insert("host", Value::str(host));
    map.insert("hostname", Value::str(hostname));
    map.insert("path", Value::str(path));
    map.insert("query", Value::str(query));
    map.insert("opaque", Value::str(opaque));
    map.insert("fragment", Value::str(fragment));
    map.insert("userinfo", Value::str(userinfo));
    Ok(Value::Map(map))
}

fn url_join(value: &Value) -> String {
    let get =
        |key: &str| value.as_map().and_then(|m| m.get(key)).map(|v| strval(&v)).unwrap_or_default();
    let mut out = String::new();
    let scheme = get("scheme");
    if !scheme.is_empty() {
        out.push_str(&scheme);
        out.push(':');
    }
    let opaque = get("opaque");
    if !opaque.is_empty() {
        out.push_str(&opaque);
    } else {
        let host = get("host");
        let userinfo = get("userinfo");
        if !host.is_empty() || !scheme.is_empty() {
            out.push_str("//");
            if !userinfo.is_empty() {
                out.push_str(&userinfo);
                out.push('@');
            }
            out.push_str(&host);
        }
        out.push_str(&get("path"));
    }
    let query = get("query");
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    let fragment = get("fragment");
    if !fragment.is_empty() {
        out.push('#');
        out.push_str(&fragment);
    }
    out
}

/// Go's `path.Clean`.
fn path_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn path_base(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_string();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

fn path_dir(path: &str) -> String {
    let dir = match path.rfind('/') {
        Some(idx) => &path[..=idx],
        None => "",
    };
    path_clean(dir)
}

fn path_ext(path: &str) -> String {
    for (idx, c) in path.char_indices().rev() {
        if c == '/' {
            break;
        }
        if c == '.' {
            return path[idx..].to_string();
        }
    }
    String::new()
}

/// A Masterminds `*semver.Version`: methods `Major`…`Original`, printed and serialized in its
/// normalized form (`v2` → `2.0.0`).
struct SemverVersion(sluice_semver::Version);

impl SemverVersion {
    fn normalized(&self) -> String {
        let v = &self.0;
        let mut text = format!("{}.{}.{}", v.major(), v.minor(), v.patch());
        if !v.prerelease().is_empty() {
            text.push('-');
            text.push_str(v.prerelease());
        }
        if !v.metadata().is_empty() {
            text.push('+');
            text.push_str(v.metadata());
        }
        text
    }
}

impl crate::Object for SemverVersion {
    fn type_name(&self) -> &str {
        "*semver.Version"
    }

    fn field(&self, name: &str) -> Option<Value> {
        let v = &self.0;
        Some(match name {
            "Major" => Value::Int(v.major() as i64),
            "Minor" => Value::Int(v.minor() as i64),
            "Patch" => Value::Int(v.patch() as i64),
            "Prerelease" => Value::str(v.prerelease()),
            "Metadata" => Value::str(v.metadata()),
            "Original" => Value::str(v.original()),
            "String" => Value::from(self.normalized()),
            _ => return None,
        })
    }

    fn to_value(&self) -> Value {
        Value::from(self.normalized())
    }
}

fn semver_value(version: &sluice_semver::Version) -> Value {
    Value::Object(std::sync::Arc::new(SemverVersion(version.clone())))
}

fn uuid_v4() -> String {
    use rand::Rng;
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}
