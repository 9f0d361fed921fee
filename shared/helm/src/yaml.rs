//! YAML reading with sigs.k8s.io/yaml semantics, the way Helm reads values, Chart.yaml and
//! `fromYaml` input.
//!
//! sigs.k8s.io/yaml parses with go-yaml v2 (YAML 1.1 scalar resolution: `yes`/`on`/`y` are
//! booleans, `0755` is octal, `1_000` is an int, timestamps stay strings), turns the result into
//! JSON (map keys become strings) and decodes that JSON into `interface{}`, so every number ends
//! up a float64. The scalar rules follow `go-yaml/yaml@v2:resolve.go`.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value as Json};

/// Largest number of nodes one document may expand to (alias bombs).
const MAX_NODES: usize = 2_000_000;

/// A YAML syntax or conversion error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// Go-like description, e.g. `yaml: line 3: mapping values are not allowed in this context`.
    pub message: String,
}

impl YamlError {
    fn new(message: impl Into<String>) -> Self {
        YamlError { message: message.into() }
    }
}

/// A scalar after YAML 1.1 resolution (before the JSON round trip).
#[derive(Debug, Clone)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Merge,
}

/// Parse the first document of `text` into a JSON value with sigs.k8s.io/yaml semantics.
///
/// An empty document gives `Json::Null`.
///
/// # Errors
/// Syntax errors, and values JSON cannot hold (NaN, infinities).
pub fn from_yaml(text: &str) -> Result<Json, YamlError> {
    let mut docs = parse_documents(text, true)?;
    Ok(docs.pop().unwrap_or(Json::Null))
}

/// What `releaseutil.SimpleHead` needs of the first document of `text`: the top-level `kind`
/// and `metadata` entries, converted as [`from_yaml`] converts them, and nothing else.
///
/// The whole document is still parsed and checked, so it fails exactly when [`from_yaml`]
/// fails, with the same error; a document that is not a mapping is converted whole.
///
/// # Errors
/// As [`from_yaml`].
pub fn head_from_yaml(text: &str) -> Result<Json, YamlError> {
    let mut builder =
        Builder { parser: Parser::new_from_str(text), anchors: HashMap::new(), n_nodes: 0 };
    while let Some(event) = builder.next()? {
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                builder.anchors.clear();
                return match builder.next()? {
                    Some(Event::DocumentEnd) | None => Ok(Json::Null),
                    Some(event) => {
                        let node = builder.node(event)?;
                        head_json(node)
                    }
                };
            }
            _ => {}
        }
    }
    Ok(Json::Null)
}

fn head_json(node: Node) -> Result<Json, YamlError> {
    let Node::Map(entries) = node else {
        return to_json(node);
    };
    let mut map = Map::new();
    for (key, value) in entries {
        let key = key_string(&key)?;
        if key == "kind" || key == "metadata" {
            let value = to_json(value)?;
            map.shift_remove(&key);
            map.insert(key, value);
        } else {
            check_json(&value)?;
        }
    }
    Ok(Json::Object(map))
}

/// Fails where [`to_json`] would fail, in the same order, without building anything.
fn check_json(node: &Node) -> Result<(), YamlError> {
    match node {
        Node::Scalar(Scalar::Float(f)) => float_json(*f).map(drop),
        Node::Scalar(_) => Ok(()),
        Node::Seq(items) => items.iter().try_for_each(check_json),
        Node::Map(entries) => entries.iter().try_for_each(|(key, value)| {
            if !matches!(key, Node::Scalar(_)) {
                key_string(key)?;
            }
            check_json(value)
        }),
    }
}

/// Parse every document of a multi-document stream (empty documents give `Json::Null`).
///
/// # Errors
/// Syntax errors.
pub fn from_yaml_documents(text: &str) -> Result<Vec<Json>, YamlError> {
    parse_documents(text, false)
}

fn parse_documents(text: &str, first_only: bool) -> Result<Vec<Json>, YamlError> {
    // Plain block YAML (most values files) is read by a line scan; the rest by the parser.
    if let Some(value) = crate::head_scan::load(text) {
        return Ok(vec![value]);
    }
    parse_documents_fully(text, first_only)
}

/// [`parse_documents`] through the YAML parser only.
pub(crate) fn parse_documents_fully(text: &str, first_only: bool) -> Result<Vec<Json>, YamlError> {
    let mut builder =
        Builder { parser: Parser::new_from_str(text), anchors: HashMap::new(), n_nodes: 0 };
    let mut docs = Vec::new();
    while let Some(event) = builder.next()? {
        match event {
            Event::StreamStart | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                builder.anchors.clear();
                let value = match builder.next()? {
                    Some(Event::DocumentEnd) => Json::Null,
                    Some(event) => {
                        let node = builder.node(event)?;
                        to_json(node)?
                    }
                    None => Json::Null,
                };
                docs.push(value);
                if first_only {
                    return Ok(docs);
                }
            }
            _ => {}
        }
    }
    Ok(docs)
}

/// A node as go-yaml v2 decodes it into `interface{}`.
#[derive(Debug, Clone)]
enum Node {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

struct Builder<'a> {
    parser: Parser<'a, granit_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    n_nodes: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<Option<Event<'a>>, YamlError> {
        loop {
            match self.parser.next_event() {
                None => return Ok(None),
                Some(Err(err)) => {
                    return Err(YamlError::new(format!(
                        "yaml: line {}: {}",
                        err.marker().line(),
                        libyaml_wording(&err.info())
                    )));
                }
                Some(Ok((event, _span))) => match event {
                    Event::Comment(..) | Event::Anchor(..) => continue,
                    other => return Ok(Some(other)),
                },
            }
        }
    }

    fn count(&mut self, n: usize) -> Result<(), YamlError> {
        self.n_nodes += n;
        if self.n_nodes > MAX_NODES {
            return Err(YamlError::new("yaml: document contains excessive aliasing"));
        }
        Ok(())
    }

    fn node(&mut self, event: Event<'a>) -> Result<Node, YamlError> {
        self.count(1)?;
        match event {
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| YamlError::new("yaml: unknown anchor referenced"))?;
                let size = node_size(&node);
                self.count(size)?;
                Ok(node)
            }
            Event::UnresolvedAlias(name) => {
                Err(YamlError::new(format!("yaml: unknown anchor '{name}' referenced")))
            }
            Event::Scalar(text, style, anchor, tag) => {
                let tag_suffix = tag.as_ref().map(|t| {
                    if t.is_yaml_core_schema() {
                        format!("!!{}", t.suffix())
                    } else {
                        format!("{}{}", t.handle(), t.suffix())
                    }
                });
                let scalar = resolve_tagged(&text, style, tag_suffix.as_deref())?;
                let node = Node::Scalar(scalar);
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                Ok(node)
            }
            Event::SequenceStart(_, anchor, _) => {
                let mut items = Vec::new();
                loop {
                    match self.next()? {
                        Some(Event::SequenceEnd) => break,
                        Some(event) => items.push(self.node(event)?),
                        None => return Err(YamlError::new("yaml: unexpected end of sequence")),
                    }
                }
                let node = Node::Seq(items);
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                Ok(node)
            }
            Event::MappingStart(_, anchor, _) => {
                let mut entries: Vec<(Node, Node)> = Vec::new();
                loop {
                    let key = match self.next()? {
                        Some(Event::MappingEnd) => break,
                        Some(event) => self.node(event)?,
                        None => return Err(YamlError::new("yaml: unexpected end of mapping")),
                    };
                    let value = match self.next()? {
                        Some(event) => self.node(event)?,
                        None => return Err(YamlError::new("yaml: unexpected end of mapping")),
                    };
                    if matches!(key, Node::Scalar(Scalar::Merge)) {
                        merge_into(&mut entries, value)?;
                    } else {
                        entries.push((key, value));
                    }
                }
                let node = Node::Map(entries);
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                Ok(node)
            }
            other => Err(YamlError::new(format!("yaml: unexpected event {other:?}"))),
        }
    }
}

/// libyaml's wording for the parser errors charts commonly hit (they show up in `fromYaml`).
fn libyaml_wording(info: &str) -> &str {
    match info {
        "unclosed bracket '['" => "did not find expected ',' or ']'",
        "unclosed bracket '{'" => "did not find expected ',' or '}'",
        other => other,
    }
}

fn node_size(node: &Node) -> usize {
    match node {
        Node::Scalar(_) => 1,
        Node::Seq(items) => 1 + items.iter().map(node_size).sum::<usize>(),
        Node::Map(entries) => {
            1 + entries.iter().map(|(k, v)| node_size(k) + node_size(v)).sum::<usize>()
        }
    }
}

/// go-yaml v2 merge (`<<`): a mapping, or a sequence of mappings where earlier ones win.
fn merge_into(entries: &mut Vec<(Node, Node)>, value: Node) -> Result<(), YamlError> {
    match value {
        Node::Map(merged) => entries.extend(merged),
        Node::Seq(items) => {
            for item in items.into_iter().rev() {
                match item {
                    Node::Map(merged) => entries.extend(merged),
                    _ => {
                        return Err(YamlError::new(
                            "yaml: map merge requires map or sequence of maps as the value",
                        ));
                    }
                }
            }
        }
        _ => {
            return Err(YamlError::new(
                "yaml: map merge requires map or sequence of maps as the value",
            ));
        }
    }
    Ok(())
}

fn resolve_tagged(text: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Scalar, YamlError> {
    match tag {
        None | Some("!") if style != ScalarStyle::Plain => Ok(Scalar::Str(text.to_string())),
        None => Ok(resolve_plain(text)),
        Some("!!str") => Ok(Scalar::Str(text.to_string())),
        Some("!!binary") => {
            Ok(Scalar::Str(decode_base64(text).unwrap_or_else(|| text.to_string())))
        }
        Some(tag @ ("!!int" | "!!float" | "!!bool" | "!!null" | "!!timestamp")) => {
            let resolved = resolve_plain(text);
            match (tag, &resolved) {
                ("!!int", Scalar::Int(_))
                | ("!!float", Scalar::Float(_))
                | ("!!bool", Scalar::Bool(_))
                | ("!!null", Scalar::Null)
                | ("!!timestamp", Scalar::Str(_)) => Ok(resolved),
                ("!!float", Scalar::Int(i)) => Ok(Scalar::Float(*i as f64)),
                _ => Err(YamlError::new(format!(
                    "yaml: cannot decode {} `{}` as a {}",
                    short_tag_of(&resolved),
                    text,
                    tag
                ))),
            }
        }
        Some(_) => Ok(Scalar::Str(text.to_string())),
    }
}

fn short_tag_of(scalar: &Scalar) -> &'static str {
    match scalar {
        Scalar::Null => "!!null",
        Scalar::Bool(_) => "!!bool",
        Scalar::Int(_) => "!!int",
        Scalar::Float(_) => "!!float",
        Scalar::Str(_) => "!!str",
        Scalar::Merge => "!!merge",
    }
}

fn decode_base64(text: &str) -> Option<String> {
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for b in clean {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Resolve a plain scalar as go-yaml v2 does (`resolve.go`).
fn resolve_plain(text: &str) -> Scalar {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Scalar::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Scalar::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        "<<" => return Scalar::Merge,
        _ => {}
    }
    match text.as_bytes()[0] {
        b'.' => {
            if let Some(f) = parse_go_float(text) {
                return Scalar::Float(f);
            }
        }
        b'+' | b'-' | b'0'..=b'9' => {
            if is_timestamp(text) {
                return Scalar::Str(text.to_string());
            }
            let plain = text.replace('_', "");
            if let Some(i) = parse_go_int(&plain) {
                return Scalar::Int(i);
            }
            if is_yaml_style_float(&plain)
                && let Some(f) = parse_go_float(&plain)
            {
                return Scalar::Float(f);
            }
        }
        _ => {}
    }
    Scalar::Str(text.to_string())
}

/// The JSON value of plain scalar `text` (`None` for NaN and infinities, which JSON cannot hold).
pub(crate) fn plain_json(text: &str) -> Option<Json> {
    scalar_to_json(resolve_plain(text)).ok()
}

/// The JSON object key plain scalar `text` becomes (`y` → `true`, `1.0` → `1`).
pub(crate) fn plain_key(text: &str) -> Option<String> {
    key_string(&Node::Scalar(resolve_plain(text))).ok()
}

/// Whether plain scalar `text` reads as a string (not a bool, number, null or merge key).
pub(crate) fn plain_is_string(text: &str) -> bool {
    matches!(resolve_plain(text), Scalar::Str(_))
}

/// Whether plain scalar `text` reads as a NaN or infinite number (which JSON cannot hold).
pub(crate) fn plain_is_non_finite_number(text: &str) -> bool {
    matches!(text.as_bytes().first(), Some(b'.' | b'+' | b'-' | b'0'..=b'9'))
        && matches!(resolve_plain(text), Scalar::Float(f) if !f.is_finite())
}

/// Whether `text` would resolve to something other than a string (used by the emitter).
pub(crate) fn resolves_to_non_string(text: &str) -> bool {
    if text.is_empty() {
        return true;
    }
    let first = text.as_bytes()[0];
    if (first == b'+' || first == b'-' || first.is_ascii_digit()) && is_timestamp(text) {
        return true;
    }
    // go-yaml's encoder leaves "<<" plain although its resolver calls it a merge key.
    !matches!(resolve_plain(text), Scalar::Str(_) | Scalar::Merge)
}

/// `strconv.ParseInt(s, 0, 64)` then `ParseUint`, including the `0b` forms of resolve.go.
fn parse_go_int(s: &str) -> Option<i128> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let (radix, digits) =
        if let Some(rest) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, rest)
        } else if let Some(rest) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (2, rest)
        } else if let Some(rest) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (8, rest)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    let value = if neg { -(magnitude as i128) } else { magnitude as i128 };
    if neg {
        (value >= i128::from(i64::MIN)).then_some(value)
    } else {
        (value <= i128::from(u64::MAX)).then_some(value)
    }
}

fn is_yaml_style_float(s: &str) -> bool {
    // ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

fn parse_go_float(s: &str) -> Option<f64> {
    if s.contains('_') || s.starts_with("0x") {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    if lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    s.parse::<f64>().ok()
}

/// The timestamp forms go-yaml v2 recognises (`2006-1-2`, with optional time and zone).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 6 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let mut i = 5;
    let num = |i: &mut usize, max_len: usize| -> Option<u32> {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() && *i - start < max_len {
            *i += 1;
        }
        if *i == start { None } else { s[start..*i].parse().ok() }
    };
    let Some(month) = num(&mut i, 2) else { return false };
    if i >= b.len() || b[i] != b'-' {
        return false;
    }
    i += 1;
    let Some(day) = num(&mut i, 2) else { return false };
    let year: u32 = s[..4].parse().unwrap_or(0);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return false;
    }
    if i == b.len() {
        return true;
    }
    let sep = b[i];
    if sep != b'T' && sep != b't' && sep != b' ' {
        return false;
    }
    i += 1;
    let Some(hour) = num(&mut i, 2) else { return false };
    if i >= b.len() || b[i] != b':' {
        return false;
    }
    i += 1;
    let Some(minute) = num(&mut i, 2) else { return false };
    if i >= b.len() || b[i] != b':' {
        return false;
    }
    i += 1;
    let Some(second) = num(&mut i, 2) else { return false };
    if hour > 23 || minute > 59 || second > 59 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if sep == b' ' {
        return i == b.len();
    }
    // Zone: Z or ±hh:mm.
    if i < b.len() && b[i] == b'Z' {
        return i + 1 == b.len();
    }
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        let rest = &s[i + 1..];
        let rb = rest.as_bytes();
        return rb.len() == 5
            && rb[2] == b':'
            && rb[..2].iter().chain(&rb[3..]).all(u8::is_ascii_digit);
    }
    false
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        _ => 28,
    }
}

fn to_json(node: Node) -> Result<Json, YamlError> {
    Ok(match node {
        Node::Scalar(scalar) => scalar_to_json(scalar)?,
        Node::Seq(items) => Json::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Node::Map(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let key = key_string(&key)?;
                let value = to_json(value)?;
                // Later duplicates win (go-yaml v2 into a Go map).
                map.shift_remove(&key);
                map.insert(key, value);
            }
            Json::Object(map)
        }
    })
}

fn scalar_to_json(scalar: Scalar) -> Result<Json, YamlError> {
    Ok(match scalar {
        Scalar::Null => Json::Null,
        Scalar::Bool(b) => Json::Bool(b),
        Scalar::Int(i) => float_json(i as f64)?,
        Scalar::Float(f) => float_json(f)?,
        Scalar::Str(s) => Json::String(s),
        Scalar::Merge => Json::String("<<".to_string()),
    })
}

fn float_json(f: f64) -> Result<Json, YamlError> {
    Number::from_f64(f)
        .map(Json::Number)
        .ok_or_else(|| YamlError::new(format!("json: unsupported value: {}", go_float_g(f))))
}

fn key_string(key: &Node) -> Result<String, YamlError> {
    match key {
        Node::Scalar(Scalar::Str(s)) => Ok(s.clone()),
        Node::Scalar(Scalar::Bool(b)) => Ok(b.to_string()),
        Node::Scalar(Scalar::Int(i)) => Ok(i.to_string()),
        Node::Scalar(Scalar::Float(f)) => Ok(go_float_g(*f)),
        Node::Scalar(Scalar::Null) => Ok("null".to_string()),
        Node::Scalar(Scalar::Merge) => Ok("<<".to_string()),
        _ => {
            Err(YamlError::new("error converting YAML to JSON: yaml: invalid map key: collection"))
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`.
pub fn go_float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".to_string() } else { "-Inf".to_string() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".to_string() } else { "0".to_string() };
    }
    // Shortest round-trip digits via Rust's `{:e}`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    // Go's shortest %g switches to the exponent form outside [1e-4, 1e6).
    let eprec = 6;
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let abs = exp.unsigned_abs();
        if abs < 10 {
            out.push('0');
        }
        out.push_str(&abs.to_string());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = (exp + 1) as usize;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(input: &str, expected: Json) {
        assert_eq!(from_yaml(input).unwrap(), expected, "input: {input}");
    }

    #[test]
    fn scalars_follow_yaml_1_1() {
        check("a: yes", json!({"a": true}));
        check("a: on", json!({"a": true}));
        check("a: y", json!({"a": true}));
        check("a: No", json!({"a": false}));
        check("a: '0755'", json!({"a": "0755"}));
        check("a: 0755", json!({"a": 493.0}));
        check("a: 0x1F", json!({"a": 31.0}));
        check("a: 1_000", json!({"a": 1000.0}));
        check("a: 1.5", json!({"a": 1.5}));
        check("a: 1e6", json!({"a": 1000000.0}));
        check("a: 12:30", json!({"a": "12:30"}));
        check("a: 2024-01-02", json!({"a": "2024-01-02"}));
        check("a: ~", json!({"a": null}));
        check("a:", json!({"a": null}));
        check("a: 08", json!({"a": 8.0}));
        check("a: .5", json!({"a": 0.5}));
        check("a: 1.10", json!({"a": 1.1}));
    }

    #[test]
    fn keys_are_resolved_then_stringified() {
        check("yes: 1\n\"123\": x\n1: z", json!({"true": 1.0, "123": "x", "1": "z"}));
        check("on: a\ntrue: b", json!({"true": "b"}));
    }

    #[test]
    fn anchors_and_merge_keys() {
        check(
            "d: &d {a: 1, b: 2}\nx:\n  <<: *d\n  b: 3\n",
            json!({"d": {"a": 1.0, "b": 2.0}, "x": {"a": 1.0, "b": 3.0}}),
        );
        check("a: &x [1]\nb: *x", json!({"a": [1.0], "b": [1.0]}));
    }

    #[test]
    fn block_scalars() {
        check("a: |\n  x\n  y\n", json!({"a": "x\ny\n"}));
        check("a: >-\n  x\n  y\n", json!({"a": "x y"}));
    }

    #[test]
    fn first_document_only_and_errors() {
        check("a: 1\n---\nb: 2\n", json!({"a": 1.0}));
        check("", Json::Null);
        assert!(from_yaml("a: [1\n").is_err());
        assert!(from_yaml("a: b: c\n").is_err());
    }

    #[test]
    fn go_float_formatting() {
        for (f, s) in [
            (1000000.0, "1e+06"),
            (1.5, "1.5"),
            (3.0, "3"),
            (123456.0, "123456"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.2345678901234567e19, "1.2345678901234567e+19"),
            (100.0, "100"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (1234567.0, "1.234567e+06"),
        ] {
            assert_eq!(go_float_g(f), s, "{f}");
        }
    }
}
