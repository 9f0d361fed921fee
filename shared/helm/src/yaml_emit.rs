//! A YAML emitter byte-compatible with Helm's `toYaml` (sigs.k8s.io/yaml on go-yaml v2).
//!
//! `toYaml` marshals the value to JSON, parses that JSON with go-yaml v2 and marshals it again.
//! So numbers print as their JSON text re-resolved by YAML (`1000000`, `1.5`, `1e-06`), map keys
//! are sorted with go-yaml's natural order, and strings are quoted, folded at 80 columns and
//! written as literal blocks exactly as `go-yaml/yaml@v2:emitterc.go` does. Checksums of this
//! output appear in real manifests, so the port keeps the emitter's column and indentation
//! bookkeeping.

use serde_json::Value as Json;

use crate::yaml::{go_float_g, resolves_to_non_string};

const BEST_WIDTH: usize = 80;
const BEST_INDENT: i64 = 2;

/// Serialize `value` as go-yaml v2 would after a JSON round trip (always ends with `\n`).
pub fn to_yaml(value: &Json) -> String {
    emit_document(value, false)
}

/// Serialize `value` as Helm's `toYamlPretty` does (go-yaml v3 encoder, indent 2): sequences
/// are indented under their key, long strings are not folded and float64 values keep Go's
/// `%g` form (`1e+06`) because there is no JSON round trip.
pub fn to_yaml_pretty(value: &Json) -> String {
    emit_document(value, true)
}

fn emit_document(value: &Json, pretty: bool) -> String {
    let mut emitter = Emitter { pretty, ..Emitter::default() };
    emitter.emit_node(value, Context { root: true, ..Context::default() });
    // Document end: write_indent (the stream-level "..." is suppressed by the encoder).
    emitter.write_indent();
    emitter.out
}

/// Sort keys with go-yaml v2's `keyList.Less` (digit runs compare numerically).
pub fn sort_keys(keys: &mut [&String]) {
    keys.sort_by(|a, b| {
        if key_less(a, b) {
            std::cmp::Ordering::Less
        } else if key_less(b, a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
}

fn key_less(a: &str, b: &str) -> bool {
    // Compared rune by rune; ASCII keys (nearly all of them) need no decoding.
    if a.is_ascii() && b.is_ascii() {
        return runes_less(a.as_bytes(), b.as_bytes());
    }
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    runes_less(&ar, &br)
}

/// A rune of a key: a `char`, or a byte of an ASCII key.
trait Rune: Copy + PartialEq + PartialOrd {
    fn char(self) -> char;
}

impl Rune for char {
    fn char(self) -> char {
        self
    }
}

impl Rune for u8 {
    fn char(self) -> char {
        char::from(self)
    }
}

fn runes_less<R: Rune>(ar: &[R], br: &[R]) -> bool {
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].char().is_alphabetic();
        let bl = br[i].char().is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let mut an: i64 = 0;
        let mut bn: i64 = 0;
        if ar[i].char() == '0' || br[i].char() == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].char().is_ascii_digit() {
                j -= 1;
                if ar[j].char() != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].char().is_ascii_digit() {
            an = an.wrapping_mul(10).wrapping_add(i64::from(ar[ai].char() as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].char().is_ascii_digit() {
            bn = bn.wrapping_mul(10).wrapping_add(i64::from(br[bi].char() as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

#[derive(Clone, Copy, Default)]
struct Context {
    root: bool,
    mapping: bool,
    simple_key: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

struct Analysis {
    multiline: bool,
    flow_plain_allowed: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

struct Emitter {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
    indent: i64,
    indents: Vec<i64>,
    flow_level: usize,
    pretty: bool,
}

impl Default for Emitter {
    fn default() -> Self {
        Emitter {
            out: String::new(),
            column: 0,
            whitespace: true,
            indention: true,
            indent: -1,
            indents: Vec::new(),
            flow_level: 0,
            pretty: false,
        }
    }
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_printable(c: char) -> bool {
    let c = c as u32;
    c == 0x0A
        || (0x20..=0x7E).contains(&c)
        || (0xA0..=0xD7FF).contains(&c)
        || ((0xE000..=0xFFFD).contains(&c) && c != 0xFEFF)
}

fn is_blankz(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c == ' ' || c == '\t' || c == '\0' || is_break(c),
    }
}

fn analyze(value: &str) -> Analysis {
    if value.is_empty() {
        return Analysis {
            multiline: false,
            flow_plain_allowed: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let mut block_indicators = false;
    let mut flow_indicators = false;
    let mut line_breaks = false;
    let mut special_characters = false;
    let mut leading_space = false;
    let mut leading_break = false;
    let mut trailing_space = false;
    let mut trailing_break = false;
    let mut break_space = false;
    let mut space_break = false;
    let mut previous_space = false;
    let mut previous_break = false;
    if value.starts_with("---") || value.starts_with("...") {
        block_indicators = true;
        flow_indicators = true;
    }
    let mut preceded_by_whitespace = true;
    let mut chars = value.chars().peekable();
    let mut i = 0usize;
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let last = next.is_none();
        let followed_by_whitespace = is_blankz(next);
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                '?' | ':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                '-' if followed_by_whitespace => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        } else {
            match c {
                ',' | '?' | '[' | ']' | '{' | '}' => flow_indicators = true,
                ':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                '#' if preceded_by_whitespace => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        }
        if !is_printable(c) {
            special_characters = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if last {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if last {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blankz(Some(c));
        i += 1;
    }
    let mut analysis = Analysis {
        multiline: line_breaks,
        flow_plain_allowed: true,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        analysis.flow_plain_allowed = false;
        analysis.block_plain_allowed = false;
    }
    if trailing_space {
        analysis.block_allowed = false;
    }
    if break_space {
        analysis.flow_plain_allowed = false;
        analysis.block_plain_allowed = false;
        analysis.single_quoted_allowed = false;
    }
    if space_break || special_characters {
        analysis.flow_plain_allowed = false;
        analysis.block_plain_allowed = false;
        analysis.single_quoted_allowed = false;
        analysis.block_allowed = false;
    }
    if line_breaks {
        analysis.flow_plain_allowed = false;
        analysis.block_plain_allowed = false;
    }
    if flow_indicators {
        analysis.flow_plain_allowed = false;
    }
    if block_indicators {
        analysis.block_plain_allowed = false;
    }
    analysis
}

fn is_base60_float(s: &str) -> bool {
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let b = s.as_bytes();
    if b.is_empty() || !(b[0] == b'+' || b[0] == b'-' || b[0].is_ascii_digit()) || !s.contains(':')
    {
        return false;
    }
    let mut i = usize::from(b[0] == b'+' || b[0] == b'-');
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    i += 1;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 2 {
            i += 1;
        }
        let group = &s[start..i];
        let ok = match group.len() {
            1 => true,
            2 => group.as_bytes()[0] <= b'5',
            _ => false,
        };
        if !ok {
            // Backtrack case "[0-5]?[0-9]" with a 2-digit group starting above 5 fails.
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// The text a JSON number becomes after go-yaml v2 re-reads Go's `json.Marshal` output.
fn number_text(number: &serde_json::Number) -> String {
    if let Some(i) = number.as_i64() {
        return i.to_string();
    }
    if let Some(u) = number.as_u64() {
        return u.to_string();
    }
    let f = number.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        let text = format!("{f}");
        if let Ok(i) = text.parse::<i64>() {
            return i.to_string();
        }
        if text.parse::<u64>().is_ok() {
            return text;
        }
    }
    go_float_g(f)
}

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn write_str(&mut self, s: &str) {
        for c in s.chars() {
            self.put(c);
        }
    }

    fn write_break_char(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.out.push(c);
            self.column = 0;
        }
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        self.write_str(indicator);
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn emit_node(&mut self, value: &Json, ctx: Context) {
        match value {
            Json::Null => self.emit_scalar("null", Style::Plain, ctx),
            Json::Bool(b) => self.emit_scalar(if *b { "true" } else { "false" }, Style::Plain, ctx),
            Json::Number(n) => {
                let text = if self.pretty && !(n.is_i64() || n.is_u64()) {
                    go_float_g(n.as_f64().unwrap_or(0.0))
                } else {
                    number_text(n)
                };
                self.emit_scalar(&text, Style::Plain, ctx)
            }
            Json::String(s) => {
                let can_use_plain = !resolves_to_non_string(s) && !is_base60_float(s);
                let style = if s.contains('\n') {
                    Style::Literal
                } else if can_use_plain {
                    Style::Plain
                } else {
                    Style::Double
                };
                self.emit_scalar(s, style, ctx)
            }
            Json::Array(items) => {
                if items.is_empty() {
                    self.emit_empty_flow("[", "]");
                    return;
                }
                self.increase_indent(false, !self.pretty && ctx.mapping && !self.indention);
                for item in items {
                    self.write_indent();
                    self.write_indicator("-", true, false, true);
                    self.emit_node(item, Context::default());
                }
                self.pop_indent();
            }
            Json::Object(map) => {
                if map.is_empty() {
                    self.emit_empty_flow("{", "}");
                    return;
                }
                let mut keys: Vec<&String> = map.keys().collect();
                sort_keys(&mut keys);
                self.increase_indent(false, false);
                for key in keys {
                    self.write_indent();
                    let key_value = Json::String(key.clone());
                    let simple = !key.chars().any(is_break) && key.len() <= 128;
                    if simple {
                        self.emit_node(
                            &key_value,
                            Context { mapping: true, simple_key: true, ..Context::default() },
                        );
                        self.write_indicator(":", false, false, false);
                    } else {
                        self.write_indicator("?", true, false, true);
                        self.emit_node(&key_value, Context { mapping: true, ..Context::default() });
                        self.write_indent();
                        self.write_indicator(":", true, false, true);
                    }
                    self.emit_node(
                        &map[key.as_str()],
                        Context { mapping: true, ..Context::default() },
                    );
                }
                self.pop_indent();
            }
        }
    }

    fn emit_empty_flow(&mut self, open: &str, close: &str) {
        self.write_indicator(open, true, true, false);
        self.increase_indent(true, false);
        self.flow_level += 1;
        self.flow_level -= 1;
        self.pop_indent();
        self.write_indicator(close, false, false, false);
    }

    fn emit_scalar(&mut self, value: &str, requested: Style, ctx: Context) {
        let analysis = analyze(value);
        let mut style = requested;
        if ctx.simple_key && analysis.multiline {
            style = Style::Double;
        }
        if style == Style::Plain {
            if (self.flow_level > 0 && !analysis.flow_plain_allowed)
                || (self.flow_level == 0 && !analysis.block_plain_allowed)
            {
                style = Style::Single;
            }
            if value.is_empty() && (self.flow_level > 0 || ctx.simple_key) {
                style = Style::Single;
            }
        }
        if style == Style::Single && !analysis.single_quoted_allowed {
            style = Style::Double;
        }
        if style == Style::Literal
            && (!analysis.block_allowed || self.flow_level > 0 || ctx.simple_key)
        {
            style = Style::Double;
        }
        self.increase_indent(true, false);
        let allow_breaks = !ctx.simple_key;
        match style {
            Style::Plain => self.write_plain(value, allow_breaks),
            Style::Single => self.write_single(value, allow_breaks),
            Style::Double => self.write_double(value, allow_breaks),
            Style::Literal => self.write_literal(value),
        }
        let _ = ctx.root;
        self.pop_indent();
    }

    fn best_width(&self) -> usize {
        if self.pretty { usize::MAX } else { BEST_WIDTH }
    }

    fn write_plain(&mut self, value: &str, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        let mut breaks = false;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > self.best_width()
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break_char(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
            i += 1;
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single(&mut self, value: &str, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        let mut breaks = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > self.best_width()
                    && i > 0
                    && i < chars.len() - 1
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break_char(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.write_indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double(&mut self, value: &str, allow_breaks: bool) {
        let mut spaces = false;
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                match c {
                    '\0' => self.put('0'),
                    '\u{07}' => self.put('a'),
                    '\u{08}' => self.put('b'),
                    '\t' => self.put('t'),
                    '\n' => self.put('n'),
                    '\u{0b}' => self.put('v'),
                    '\u{0c}' => self.put('f'),
                    '\r' => self.put('r'),
                    '\u{1b}' => self.put('e'),
                    '"' => self.put('"'),
                    '\\' => self.put('\\'),
                    '\u{85}' => self.put('N'),
                    '\u{A0}' => self.put('_'),
                    '\u{2028}' => self.put('L'),
                    '\u{2029}' => self.put('P'),
                    _ => {
                        let v = c as u32;
                        let text = if v <= 0xFF {
                            format!("x{v:02X}")
                        } else if v <= 0xFFFF {
                            format!("u{v:04X}")
                        } else {
                            format!("U{v:08X}")
                        };
                        self.write_str(&text);
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > self.best_width()
                    && i > 0
                    && i < chars.len() - 1
                {
                    self.write_indent();
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_literal(&mut self, value: &str) {
        self.write_indicator("|", true, false, false);
        // Block scalar hints: an indentation indicator when the text starts with a space or a
        // break, and a chomping indicator from the trailing breaks.
        let first = value.chars().next();
        if matches!(first, Some(' ')) || first.is_some_and(is_break) {
            self.write_indicator(&BEST_INDENT.to_string(), false, false, false);
        }
        let mut rev = value.chars().rev();
        let chomp = match rev.next() {
            None => Some("-"),
            Some(last) if !is_break(last) => Some("-"),
            Some(_) => match rev.next() {
                None => Some("+"),
                Some(prev) if is_break(prev) => Some("+"),
                Some(_) => None,
            },
        };
        if let Some(chomp) = chomp {
            self.write_indicator(chomp, false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for c in value.chars() {
            if is_break(c) {
                self.write_break_char(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(value: Json, expected: &str) {
        assert_eq!(to_yaml(&value), expected);
    }

    #[test]
    fn scalars_and_quoting() {
        check(json!({"a": "true"}), "a: \"true\"\n");
        check(json!({"a": "yes"}), "a: \"yes\"\n");
        check(json!({"a": "1.0"}), "a: \"1.0\"\n");
        check(json!({"a": "12:30"}), "a: \"12:30\"\n");
        check(json!({"a": ""}), "a: \"\"\n");
        check(json!({"a": " x"}), "a: ' x'\n");
        check(json!({"a": "a: b"}), "a: 'a: b'\n");
        check(json!({"a": "it's"}), "a: it's\n");
        check(json!({"a": "- x"}), "a: '- x'\n");
        check(json!({"a": "*"}), "a: '*'\n");
        check(json!({"a": "tab\there"}), "a: \"tab\\there\"\n");
        check(json!({"a": "2024-01-02"}), "a: \"2024-01-02\"\n");
        check(
            json!({"a": null, "b": 1000000.0, "c": 1.5, "d": 0.000001}),
            "a: null\nb: 1000000\nc: 1.5\nd: 1e-06\n",
        );
    }

    #[test]
    fn collections() {
        check(json!({"a": [1, 2], "b": {"c": []}, "d": {}}), "a:\n- 1\n- 2\nb:\n  c: []\nd: {}\n");
        check(json!([{"a": 1, "b": 2}, [3]]), "- a: 1\n  b: 2\n- - 3\n");
    }

    #[test]
    fn literal_blocks() {
        check(json!({"a": "x\ny\n"}), "a: |\n  x\n  y\n");
        check(json!({"a": "x\ny"}), "a: |-\n  x\n  y\n");
        check(json!({"a": "x\n\n"}), "a: |+\n  x\n\n");
        check(json!({"a": "  x\ny"}), "a: |2-\n    x\n  y\n");
        check(json!({"k": {"a": "x \ny"}}), "k:\n  a: \"x \\ny\"\n");
    }

    #[test]
    fn long_strings_fold() {
        let long = "word ".repeat(20).trim_end().to_string();
        check(
            json!({ "key": long }),
            "key: word word word word word word word word word word word word word word word word\n  word word word word\n",
        );
    }

    #[test]
    fn pretty_indents_sequences_and_keeps_floats() {
        assert_eq!(
            to_yaml_pretty(&json!({"m": {"a": [1, 2]}, "num": 1000000.0})),
            "m:\n  a:\n    - 1\n    - 2\nnum: 1e+06\n"
        );
        assert_eq!(to_yaml_pretty(&json!([1, {"x": [2]}])), "- 1\n- x:\n    - 2\n");
    }

    #[test]
    fn natural_key_order() {
        check(json!({"a10": 1, "a2": 2, "B": 3, "_x": 4}), "_x: 4\nB: 3\na2: 2\na10: 1\n");
    }
}
