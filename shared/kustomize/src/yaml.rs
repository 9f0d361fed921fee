//! YAML in (serde-saphyr into `serde_json::Value`) and out (kustomize's layout: sorted keys, block style).

use serde_json::Value;

/// Parses a stream of YAML documents; empty documents are dropped.
///
/// Scalars follow YAML 1.2 as kyaml reads them: only `true`/`false` are booleans.
///
/// # Errors
/// The parser's message (with line and column) when the text is not valid YAML.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    parse_with(text, serde_saphyr::options::DuplicateKeyPolicy::Error)
}

/// Like [`parse_documents`], but a repeated key keeps its last value (how kustomization files are read).
pub(crate) fn parse_documents_lenient(text: &str) -> Result<Vec<Value>, String> {
    parse_with(text, serde_saphyr::options::DuplicateKeyPolicy::LastWins)
}

fn parse_with(
    text: &str,
    duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy,
) -> Result<Vec<Value>, String> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        // kyaml (go-yaml v3) reads a leading-zero integer such as `0644` as octal.
        legacy_octal_numbers: true,
        duplicate_keys: duplicate_keys,
    };
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| e.to_string())?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Renders objects as a YAML stream separated by `---`, the way `kustomize build` prints them.
pub fn to_yaml(objects: &[Value]) -> String {
    let mut out = String::new();
    for (i, obj) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml_document(obj));
    }
    out
}

/// Renders one value as a YAML document (keys sorted, sequences not indented).
pub fn to_yaml_document(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, value, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            write_scalar(&mut out, scalar, 0);
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

fn sorted_entries(value: &Value) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> =
        value.as_object().map(|m| m.iter().collect()).unwrap_or_default();
    entries.sort_by(|a, b| go_yaml_key_order(a.0, b.0));
    entries
}

/// The key order of go-yaml v2 (which kustomize's output goes through): non-letters before
/// letters, and runs of digits compared as numbers.
pub(crate) fn go_yaml_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl { Ordering::Less } else { Ordering::Greater };
        }
        let (mut an, mut bn): (i64, i64) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an.saturating_mul(10).saturating_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn.saturating_mul(10).saturating_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

fn write_map(out: &mut String, value: &Value, level: usize) {
    for (i, (key, child)) in sorted_entries(value).into_iter().enumerate() {
        if i > 0 {
            indent(out, level);
        }
        write_key(out, key);
        out.push(':');
        write_child(out, child, level, false);
    }
}

fn write_child(out: &mut String, child: &Value, level: usize, _in_seq: bool) {
    match child {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            indent(out, level + 2);
            write_map(out, child, level + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            indent(out, level);
            write_seq(out, items, level);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar, level + 2);
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], level: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            indent(out, level);
        }
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => write_map(out, item, level + 2),
            Value::Array(inner) if !inner.is_empty() => write_seq(out, inner, level + 2),
            scalar => {
                write_scalar(out, scalar, level + 2);
                out.push('\n');
            }
        }
    }
}

fn write_key(out: &mut String, key: &str) {
    if key.contains('\n') {
        write_double_quoted(out, key, None);
    } else {
        write_string_inline(out, key, None);
    }
}

fn write_scalar(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&format_number(n)),
        Value::String(s) => write_string(out, s, level),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

/// Numbers as kustomize prints them after its JSON round trip: whole floats as integers, other
/// floats in Go's shortest `%g` form (exponent from 1e+06 up and below 1e-04).
fn format_number(n: &serde_json::Number) -> String {
    let Some(f) = n.as_f64().filter(|_| n.is_f64()) else { return n.to_string() };
    if f.is_finite() && f == f.trunc() && f.abs() < 1e21 {
        return format!("{}", f as i128);
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

fn write_string(out: &mut String, s: &str, level: usize) {
    if s.contains('\n') && literal_allowed(s) {
        write_literal(out, s, level);
    } else {
        write_string_inline(out, s, Some(level));
    }
}

fn literal_allowed(s: &str) -> bool {
    !s.chars().any(|c| (c.is_control() && c != '\n') || c == '\u{feff}')
        && !s.split('\n').any(|line| line.ends_with(' '))
}

fn write_literal(out: &mut String, s: &str, level: usize) {
    out.push('|');
    // An indentation indicator is needed when the text starts with a space or a line break.
    if s.starts_with(' ') || s.starts_with('\n') {
        out.push('2');
    }
    let trailing = s.len() - s.trim_end_matches('\n').len();
    match trailing {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    let body = if trailing > 0 { &s[..s.len() - 1] } else { s };
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            indent(out, level);
            out.push_str(line);
        }
    }
}

/// go-yaml's preferred line width: longer scalars are folded at spaces.
const BEST_WIDTH: usize = 80;

fn column(out: &str) -> usize {
    let line_start = out.rfind('\n').map_or(0, |i| i + 1);
    out[line_start..].chars().count()
}

/// Writes a flow scalar; `fold_indent` is the continuation indent when long lines may be folded.
fn write_string_inline(out: &mut String, s: &str, fold_indent: Option<usize>) {
    if s.chars().any(|c| c.is_control() || c == '\u{feff}') || resolves_to_non_string(s) {
        write_double_quoted(out, s, fold_indent);
    } else if is_plain_safe(s) {
        write_folded(out, s, fold_indent, false);
    } else {
        out.push('\'');
        write_folded(out, &s.replace('\'', "''"), fold_indent, true);
        out.push('\'');
    }
}

/// Plain or single-quoted text, broken at single spaces past the preferred width (go-yaml v2 style).
fn write_folded(out: &mut String, s: &str, fold_indent: Option<usize>, quoted: bool) {
    let Some(level) = fold_indent else {
        out.push_str(s);
        return;
    };
    let mut col = column(out);
    let chars: Vec<char> = s.chars().collect();
    let mut prev_space = false;
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let next_is_space = chars.get(i + 1) == Some(&' ');
            let inner = !quoted || (i != 0 && i + 1 != chars.len());
            if !prev_space && col > BEST_WIDTH && !next_is_space && inner {
                out.push('\n');
                indent(out, level);
                col = level;
                if quoted {
                    // A folded line break in a single-quoted scalar reads back as a space.
                }
            } else {
                out.push(c);
                col += 1;
            }
            prev_space = true;
        } else {
            out.push(c);
            col += 1;
            prev_space = false;
        }
    }
}

fn write_double_quoted(out: &mut String, s: &str, fold_indent: Option<usize>) {
    out.push('"');
    let mut col = column(out);
    let chars: Vec<char> = s.chars().collect();
    let mut prev_space = false;
    for (i, &c) in chars.iter().enumerate() {
        if c == ' '
            && let Some(level) = fold_indent
            && !prev_space
            && col > BEST_WIDTH
            && i != 0
            && i + 1 != chars.len()
        {
            out.push('\n');
            indent(out, level);
            col = level;
            if chars.get(i + 1) == Some(&' ') {
                out.push('\\');
                col += 1;
            }
            prev_space = true;
            continue;
        }
        prev_space = c == ' ';
        let before = out.len();
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{feff}' => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
        col += out[before..].chars().count();
    }
    out.push('"');
}

/// Whether a plain scalar with this text would be read back as something other than a string,
/// by a YAML 1.1 reader (sigs.k8s.io/yaml, PyYAML) or a YAML 1.2 one.
pub(crate) fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "yes",
        "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N",
        ".inf", ".Inf", ".INF", "-.inf", "-.Inf", "-.INF", "+.inf", ".nan", ".NaN", ".NAN", "<<",
        "=",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    looks_numeric(s) || looks_like_timestamp(s)
}

fn looks_numeric(s: &str) -> bool {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    if t.is_empty() {
        return false;
    }
    let first = t.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'.') {
        return false;
    }
    if t.starts_with("0x") || t.starts_with("0o") || t.starts_with("0b") {
        return t.len() > 2 && t[2..].chars().all(|c| c.is_ascii_hexdigit() || c == '_');
    }
    // Integers, floats, exponents, YAML 1.1 underscores and sexagesimal forms.
    let mut has_digit = false;
    for c in t.chars() {
        match c {
            '0'..='9' => has_digit = true,
            '.' | '_' | ':' | 'e' | 'E' | '+' | '-' => {}
            _ => return false,
        }
    }
    if !has_digit {
        return false;
    }
    t.parse::<f64>().is_ok() || t.chars().all(|c| c.is_ascii_digit() || c == '_' || c == ':')
}

/// go-yaml v2 quotes strings that its reader would take for a timestamp.
fn looks_like_timestamp(s: &str) -> bool {
    s.len() >= 8
        && s.as_bytes()[0].is_ascii_digit()
        && s.as_bytes()[4] == b'-'
        && to_rfc3339(s).is_some()
}

fn is_plain_safe(s: &str) -> bool {
    let first = match s.chars().next() {
        Some(c) => c,
        None => return false,
    };
    if matches!(
        first,
        '-' | '?'
            | ':'
            | ','
            | '['
            | ']'
            | '{'
            | '}'
            | '#'
            | '&'
            | '*'
            | '!'
            | '|'
            | '>'
            | '\''
            | '"'
            | '%'
            | '@'
            | '`'
            | ' '
    ) {
        // `-`, `?` and `:` are fine when followed by a non-space character.
        if matches!(first, '-' | '?' | ':') && s.len() > 1 {
            let second = s[1..].chars().next().unwrap_or(' ');
            if second == ' ' {
                return false;
            }
            if s == "---" || s.starts_with("--- ") {
                return false;
            }
        } else {
            return false;
        }
    }
    if s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.contains('\t') {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(value: Value, expected: &str) {
        assert_eq!(to_yaml_document(&value), expected);
    }

    #[test]
    fn emits_sorted_block_yaml() {
        check(json!({"kind": "A", "apiVersion": "v1"}), "apiVersion: v1\nkind: A\n");
        check(json!({"a": [1, {"b": "x", "a": true}]}), "a:\n- 1\n- a: true\n  b: x\n");
        check(json!({"a": {}, "b": [], "c": null}), "a: {}\nb: []\nc: null\n");
        check(
            json!({"a": "true", "b": "12", "c": "", "d": "x: y"}),
            "a: \"true\"\nb: \"12\"\nc: \"\"\nd: 'x: y'\n",
        );
        check(json!({"a": "l1\nl2\n"}), "a: |\n  l1\n  l2\n");
        check(json!({"a": {"b": "l1\nl2"}}), "a:\n  b: |-\n    l1\n    l2\n");
        check(json!({"a": [["x"]]}), "a:\n- - x\n");
    }

    #[test]
    fn sorts_keys_like_go_yaml() {
        let mut keys = vec!["b", "A_FIRST", "ANOTHER", "a10", "a9", "_x", "a"];
        keys.sort_by(|a, b| go_yaml_key_order(a, b));
        assert_eq!(keys, vec!["_x", "A_FIRST", "ANOTHER", "a", "a9", "a10", "b"]);
    }

    #[test]
    fn parses_yaml_12_scalars() {
        let docs = parse_documents("a: yes\nb: true\nc: 1\n---\n---\nd: x\n").unwrap();
        assert_eq!(docs, vec![json!({"a": "yes", "b": true, "c": 1}), json!({"d": "x"})]);
    }

    #[test]
    fn round_trips_quoted_strings() {
        for s in
            ["yes", "1e3", "0x1F", "-", "- a", "a #b", "2020-01-01", "*x", "@x", "a:b", "~", "1:30"]
        {
            let text = to_yaml_document(&json!({ "k": s }));
            let back = parse_documents(&text).unwrap();
            assert_eq!(back, vec![json!({ "k": s })], "{text}");
        }
    }
}

/// Marks a plain timestamp found by [`normalize_timestamps`] until [`resolve_timestamps`] runs.
const TIMESTAMP_MARK: char = '\u{E000}';

/// Replaces marked timestamps by their RFC 3339 form, except in `metadata.annotations`, which
/// kustomize rewrites from the original text.
pub(crate) fn resolve_timestamps(doc: &mut Value) {
    fn walk(v: &mut Value, in_annotations: bool) {
        match v {
            Value::String(s) => {
                if let Some(orig) = s.strip_prefix(TIMESTAMP_MARK) {
                    *s = if in_annotations {
                        orig.to_string()
                    } else {
                        to_rfc3339(orig).unwrap_or_else(|| orig.to_string())
                    };
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, false)),
            Value::Object(m) => m.values_mut().for_each(|i| walk(i, false)),
            _ => {}
        }
    }
    if let Some(Value::Object(meta)) = doc.get_mut("metadata") {
        for (k, v) in meta.iter_mut() {
            if k == "annotations"
                && let Value::Object(a) = v
            {
                a.values_mut().for_each(|x| walk(x, true));
            }
        }
    }
    walk(doc, false);
}

/// kyaml reads plain YAML timestamps (`2020-01-01`, `2020-01-01T10:00:00Z`) as times and writes
/// them back in RFC 3339; this rewrites such plain scalars in block context to that quoted form
/// before parsing (quoted scalars and block scalar contents are left alone).
pub(crate) fn normalize_timestamps(text: &str) -> std::borrow::Cow<'_, str> {
    use std::sync::OnceLock;
    static QUICK: OnceLock<regex::Regex> = OnceLock::new();
    static LINE: OnceLock<regex::Regex> = OnceLock::new();
    let quick = QUICK.get_or_init(|| {
        regex::Regex::new(r"(?m)(:|-)[ \t]+\d{4}-\d\d?-\d\d?").expect("valid regex")
    });
    if !quick.is_match(text) {
        return std::borrow::Cow::Borrowed(text);
    }
    let line_re = LINE.get_or_init(|| {
        regex::Regex::new(
            r"^(?P<lead>[ \t]*(?:- )*(?:[A-Za-z0-9_./-]+:[ \t]+|- ))(?P<ts>\d{4}-\d\d?-\d\d?(?:(?:[Tt]|[ \t]+)\d\d?:\d\d:\d\d(?:\.\d*)?(?:Z|[-+]\d\d?(?::\d\d)?)?)?)(?P<tail>[ \t]*(?:#.*)?)$",
        )
        .expect("valid regex")
    });
    let mut out = String::with_capacity(text.len() + 64);
    let mut block_indent: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let indent = body.len() - body.trim_start().len();
        if let Some(parent) = block_indent {
            if body.trim().is_empty() || indent > parent {
                out.push_str(line);
                continue;
            }
            block_indent = None;
        }
        let content = body.split(" #").next().unwrap_or(body).trim_end();
        if content.ends_with(['|', '>'])
            || content.rsplit_once(' ').is_some_and(|(_, last)| {
                last.starts_with(['|', '>'])
                    && last[1..].chars().all(|c| c == '-' || c == '+' || c.is_ascii_digit())
            })
        {
            block_indent = Some(indent);
        }
        let rewritten = line_re.captures(body).and_then(|c| {
            let ts = to_rfc3339(c.name("ts")?.as_str())?;
            Some((c, ts))
        });
        match rewritten {
            Some((caps, _)) => {
                out.push_str(&caps["lead"]);
                out.push('"');
                out.push(TIMESTAMP_MARK);
                out.push_str(&caps["ts"]);
                out.push('"');
                out.push_str(&caps["tail"]);
                out.push_str(&line[body.len()..]);
            }
            None => out.push_str(line),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Go's `time.Time` JSON form of a YAML timestamp accepted by go-yaml v3, or `None` when it would
/// stay a string.
fn to_rfc3339(ts: &str) -> Option<String> {
    let (date, rest) = match ts.find(['T', 't', ' ', '\t']) {
        Some(i) => (&ts[..i], ts[i..].trim_start_matches(['T', 't', ' ', '\t'])),
        None => (ts, ""),
    };
    let mut parts = date.split('-');
    let (y, m, d): (u32, u32, u32) =
        (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    if rest.is_empty() {
        return Some(format!("{y:04}-{m:02}-{d:02}T00:00:00Z"));
    }
    let zone_at = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
    let (clock, zone) = (&rest[..zone_at], &rest[zone_at..]);
    // go-yaml's formats: a space-separated time carries no zone.
    if ts.contains([' ', '\t']) && !zone.is_empty() {
        return None;
    }
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = hms.split(':');
    let (h, mi, s): (u32, u32, u32) =
        (hms.next()?.parse().ok()?, hms.next()?.parse().ok()?, hms.next()?.parse().ok()?);
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    let frac =
        if frac.is_empty() { String::new() } else { format!(".{}", &frac[..frac.len().min(9)]) };
    let zone = match zone {
        "" | "Z" => "Z".to_string(),
        z => {
            let sign = &z[..1];
            let (zh, zm) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
            let (zh, zm): (u32, u32) = (zh.parse().ok()?, zm.parse().ok()?);
            if zh == 0 && zm == 0 { "Z".to_string() } else { format!("{sign}{zh:02}:{zm:02}") }
        }
    };
    Some(format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}"))
}

#[cfg(test)]
mod timestamp_tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: &str) {
        let marked = normalize_timestamps(input);
        let resolved: String = marked
            .split('"')
            .map(|part| match part.strip_prefix(TIMESTAMP_MARK) {
                Some(orig) => to_rfc3339(orig).unwrap_or_default(),
                None => part.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\"");
        assert_eq!(resolved, expected);
    }

    #[test]
    fn plain_timestamps_become_rfc3339() {
        check("a: 2020-01-01\n", "a: \"2020-01-01T00:00:00Z\"\n");
        check("- 2020-1-2 # c\n", "- \"2020-01-02T00:00:00Z\" # c\n");
        check("a: 2001-12-14T21:59:43.10-05:00\n", "a: \"2001-12-14T21:59:43.1-05:00\"\n");
        check("a: 2001-12-14 21:59:43\n", "a: \"2001-12-14T21:59:43Z\"\n");
        check("a: \"2020-01-01\"\n", "a: \"2020-01-01\"\n");
        check(
            "a: |\n  b: 2020-01-01\nc: 2020-01-01\n",
            "a: |\n  b: 2020-01-01\nc: \"2020-01-01T00:00:00Z\"\n",
        );
        check("a: 2020-01-01x\n", "a: 2020-01-01x\n");
        check("a: 8.6.2\n", "a: 8.6.2\n");
    }
}
