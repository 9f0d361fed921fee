//! `--set`, `--set-string`, `--set-file`, `--set-json` and `--set-literal` expressions
//! (`a.b=c,list[0]=x`), parsed with the rules of Helm's `pkg/strvals`:
//!
//! - keys are split on `.` and `[N]`; a backslash escapes the next character in keys and values;
//! - `--set` types values: `true`/`false`/`null` (any case) become booleans and nil, integers
//!   not starting with `0` (and `0` itself) become int64, anything else a string; `{a,b}` is a
//!   list;
//! - `--set-string` keeps every value a string; `--set-file` reads the value as a file path
//!   and stores the file's content; `--set-json` decodes each value as JSON (numbers are
//!   float64, as Go decodes them); `--set-literal` takes everything after the first `=` as one
//!   string, commas and backslashes included.
//!
//! Values merge into the map in place: existing maps and lists are extended, and a key path that
//! runs through a value of another type is an error, as in Helm.

use serde_json::{Map, Value as Json};

/// Highest list index accepted (`strvals.MaxIndex`).
pub const MAX_INDEX: usize = 65536;

/// Deepest key path accepted (`strvals.MaxNestedNameLevel`).
pub const MAX_NESTED_NAME_LEVEL: usize = 30;

/// Parse one `--set` argument (typed values) and merge it into `values`.
///
/// # Errors
/// Keys without a value, malformed list indexes, and paths through non-map or non-list values.
pub fn parse_into(expression: &str, values: &mut Map<String, Json>) -> Result<(), String> {
    Parser::new(expression, Mode::Typed).parse(values)
}

/// Parse one `--set-string` argument (every value a string) and merge it into `values`.
///
/// # Errors
/// As [`parse_into`].
pub fn parse_into_string(expression: &str, values: &mut Map<String, Json>) -> Result<(), String> {
    Parser::new(expression, Mode::String).parse(values)
}

/// Parse one `--set-json` argument in `key=JSON` form and merge it into `values`.
///
/// # Errors
/// As [`parse_into`], plus invalid JSON.
pub fn parse_json_into(expression: &str, values: &mut Map<String, Json>) -> Result<(), String> {
    Parser::new(expression, Mode::Json).parse(values)
}

/// Parse one `--set-file` argument: each value is a path, and `read` turns it into the value
/// stored (Helm stores the file's content as a string).
///
/// # Errors
/// As [`parse_into`], plus what `read` returns.
pub fn parse_file_into(
    expression: &str,
    values: &mut Map<String, Json>,
    read: &mut dyn FnMut(&str) -> Result<Json, String>,
) -> Result<(), String> {
    Parser::new(expression, Mode::File(read)).parse(values)
}

/// Parse one `--set-literal` argument: the key path up to the first `=`, then the rest of the
/// text as one string value (no escapes, no typing, commas kept).
///
/// # Errors
/// Keys without a value and malformed list indexes.
pub fn parse_literal_into(expression: &str, values: &mut Map<String, Json>) -> Result<(), String> {
    Parser::new(expression, Mode::Literal).parse(values)
}

enum Mode<'r> {
    Typed,
    String,
    Json,
    Literal,
    File(&'r mut dyn FnMut(&str) -> Result<Json, String>),
}

/// Why reading stopped: at a stop character, or at the end of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    At(char),
    End,
}

enum Step {
    /// One assignment done; more may follow.
    More,
    /// The input is exhausted.
    Done,
}

struct Parser<'r> {
    chars: Vec<char>,
    pos: usize,
    mode: Mode<'r>,
}

/// Go's name of a decoded value's type, for the "interface conversion" errors Helm reports when
/// a key path runs through a value of the wrong type.
fn go_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "nil",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_f64() => "float64",
        Json::Number(_) => "int64",
        Json::String(_) => "string",
        Json::Array(_) => "[]interface {}",
        Json::Object(_) => "map[string]interface {}",
    }
}

fn conversion_error(found: &Json, wanted: &str) -> String {
    format!("unable to parse key: interface conversion: interface {{}} is {}, not {wanted}", {
        go_type(found)
    })
}

impl<'r> Parser<'r> {
    fn new(text: &str, mode: Mode<'r>) -> Self {
        Parser { chars: text.chars().collect(), pos: 0, mode }
    }

    fn literal(&self) -> bool {
        matches!(self.mode, Mode::Literal)
    }

    fn parse(mut self, data: &mut Map<String, Json>) -> Result<(), String> {
        loop {
            match self.key(data, 0)? {
                Step::More => {}
                Step::Done => return Ok(()),
            }
        }
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Reads up to a stop character (consumed). Outside literal mode a backslash takes the next
    /// character as is.
    fn until(&mut self, stops: &[char]) -> (String, Stop) {
        let literal = self.literal();
        let mut out = String::new();
        while let Some(c) = self.next_char() {
            if stops.contains(&c) {
                return (out, Stop::At(c));
            }
            if c == '\\' && !literal {
                match self.next_char() {
                    Some(next) => out.push(next),
                    None => return (out, Stop::End),
                }
            } else {
                out.push(c);
            }
        }
        (out, Stop::End)
    }

    fn key(&mut self, data: &mut Map<String, Json>, level: usize) -> Result<Step, String> {
        let stops: &[char] = if self.literal() { &['=', '[', '.'] } else { &['=', '[', ',', '.'] };
        let (key, stop) = self.until(stops);
        match stop {
            Stop::End => {
                if key.is_empty() {
                    Ok(Step::Done)
                } else {
                    Err(format!("key {key:?} has no value"))
                }
            }
            Stop::At('[') => {
                let index = self.key_index()?;
                let list = match data.get(&key) {
                    None => Vec::new(),
                    Some(Json::Array(items)) => items.clone(),
                    Some(other) => return Err(conversion_error(other, "[]interface {}")),
                };
                let (list, result) = self.list_item(list, index, level);
                set(data, &key, Json::Array(list));
                result
            }
            Stop::At('=') => {
                let (value, step) = self.value()?;
                set(data, &key, value);
                Ok(step)
            }
            Stop::At(',') => {
                set(data, &key, Json::String(String::new()));
                Err(format!("key {key:?} has no value (cannot end with ,)"))
            }
            Stop::At(_) => {
                // '.': a nested map.
                let level = level + 1;
                if level > MAX_NESTED_NAME_LEVEL {
                    return Err(format!(
                        "value name nested level is greater than maximum supported nested level of {MAX_NESTED_NAME_LEVEL}"
                    ));
                }
                let (mut inner, existed) = match data.get_mut(&key) {
                    None => (Map::new(), false),
                    Some(Json::Object(map)) => (std::mem::take(map), true),
                    Some(other) => {
                        return Err(conversion_error(other, "map[string]interface {}"));
                    }
                };
                let result = self.key(&mut inner, level);
                let empty = inner.is_empty();
                if !empty || existed {
                    set(data, &key, Json::Object(inner));
                }
                if empty && matches!(result, Ok(Step::More)) {
                    return Err(format!("key map {key:?} has no value"));
                }
                result
            }
        }
    }

    /// The value after `=`, and whether the input may continue (Helm stops after `key=` at the
    /// very end, which sets the empty string).
    fn value(&mut self) -> Result<(Json, Step), String> {
        match self.mode {
            Mode::Literal => {
                let rest: String = self.chars[self.pos..].iter().collect();
                self.pos = self.chars.len();
                Ok((Json::String(rest), Step::More))
            }
            Mode::Json => {
                if self.empty_value() {
                    return Ok((Json::Null, Step::More));
                }
                let value = self.json_value()?;
                self.empty_value();
                Ok((value, Step::More))
            }
            _ => {
                if self.pos >= self.chars.len() {
                    // `key=` at the end: the empty string.
                    return Ok((Json::String(String::new()), Step::Done));
                }
                if self.chars[self.pos] == '{' {
                    self.pos += 1;
                    let list = self.value_list()?;
                    return Ok((Json::Array(list), Step::More));
                }
                let (raw, _) = self.until(&[',']);
                let value = self.convert(&raw)?;
                Ok((value, Step::More))
            }
        }
    }

    /// Skips blanks; true (and a comma consumed) when the value is empty.
    fn empty_value(&mut self) -> bool {
        while let Some(&c) = self.chars.get(self.pos) {
            if c == ',' {
                self.pos += 1;
                return true;
            }
            if !c.is_whitespace() {
                return false;
            }
            self.pos += 1;
        }
        true
    }

    /// Decodes one JSON value from the current position, numbers as float64 like Go.
    fn json_value(&mut self) -> Result<Json, String> {
        let rest: String = self.chars[self.pos..].iter().collect();
        let mut stream = serde_json::Deserializer::from_str(&rest).into_iter::<Json>();
        let value = match stream.next() {
            Some(Ok(value)) => value,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("unexpected end of JSON input".to_string()),
        };
        let consumed = rest[..stream.byte_offset()].chars().count();
        self.pos += consumed;
        Ok(json_as_go(value))
    }

    /// `{a,b,c}` after the opening brace.
    fn value_list(&mut self) -> Result<Vec<Json>, String> {
        let mut list = Vec::new();
        loop {
            let (raw, stop) = self.until(&[',', '}']);
            match stop {
                Stop::End => return Err("list must terminate with '}'".to_string()),
                Stop::At('}') => {
                    if self.chars.get(self.pos) == Some(&',') {
                        self.pos += 1;
                    }
                    list.push(self.convert(&raw)?);
                    return Ok(list);
                }
                Stop::At(_) => list.push(self.convert(&raw)?),
            }
        }
    }

    fn convert(&mut self, raw: &str) -> Result<Json, String> {
        match &mut self.mode {
            Mode::Typed => Ok(typed(raw)),
            Mode::String | Mode::Literal | Mode::Json => Ok(Json::String(raw.to_string())),
            Mode::File(read) => read(raw),
        }
    }

    fn key_index(&mut self) -> Result<usize, String> {
        let (text, stop) = self.until(&[']']);
        if stop == Stop::End {
            return Err("error parsing index: EOF".to_string());
        }
        match text.parse::<i64>() {
            Ok(i) if i < 0 => Err(format!("negative {i} index not allowed")),
            Ok(i) => Ok(i as usize),
            Err(_) => {
                Err(format!("error parsing index: strconv.Atoi: parsing {text:?}: invalid syntax"))
            }
        }
    }

    /// What follows `name[i]`: `=value`, `.key…` or another `[j]`. Returns the updated list
    /// even on error (Helm stores it before reporting).
    fn list_item(
        &mut self,
        mut list: Vec<Json>,
        index: usize,
        level: usize,
    ) -> (Vec<Json>, Result<Step, String>) {
        let (rest, stop) = self.until(&['[', '.', '=']);
        if !rest.is_empty() {
            return (list, Err(format!("unexpected data at end of array index: {rest:?}")));
        }
        match stop {
            Stop::End => (list, Ok(Step::Done)),
            Stop::At('=') => match self.value() {
                Err(e) => (list, Err(e)),
                Ok((value, step)) => match set_index(&mut list, index, value) {
                    Ok(()) => (list, Ok(step)),
                    Err(e) => (list, Err(e)),
                },
            },
            Stop::At('[') => {
                let next = match self.key_index() {
                    Ok(next) => next,
                    Err(e) => return (list, Err(e)),
                };
                let current = match list.get(index) {
                    None | Some(Json::Null) => Vec::new(),
                    Some(Json::Array(items)) => items.clone(),
                    Some(other) => {
                        let message = conversion_error(other, "[]interface {}");
                        return (list, Err(message));
                    }
                };
                let (inner, result) = self.list_item(current, next, level);
                if let Err(e) = result {
                    return (list, Err(e));
                }
                match set_index(&mut list, index, Json::Array(inner)) {
                    Ok(()) => (list, result),
                    Err(e) => (list, Err(e)),
                }
            }
            Stop::At(_) => {
                // '.': a map inside the list. Helm fills an existing entry in place and adds a
                // new one only when the key path ended normally.
                let from_list = index < list.len();
                let mut inner = match list.get_mut(index) {
                    Some(Json::Object(map)) => std::mem::take(map),
                    _ => Map::new(),
                };
                let result = self.key(&mut inner, level);
                match result {
                    Ok(Step::More) => match set_index(&mut list, index, Json::Object(inner)) {
                        Ok(()) => (list, result),
                        Err(e) => (list, Err(e)),
                    },
                    other => {
                        if from_list {
                            list[index] = Json::Object(inner);
                        }
                        (list, other)
                    }
                }
            }
        }
    }
}

fn set(data: &mut Map<String, Json>, key: &str, value: Json) {
    if !key.is_empty() {
        data.insert(key.to_string(), value);
    }
}

fn set_index(list: &mut Vec<Json>, index: usize, value: Json) -> Result<(), String> {
    if index > MAX_INDEX {
        return Err(format!(
            "index of {index} is greater than maximum supported index of {MAX_INDEX}"
        ));
    }
    if list.len() <= index {
        list.resize(index + 1, Json::Null);
    }
    list[index] = value;
    Ok(())
}

/// `typedVal`: booleans and null in any case, int64 for integers that do not start with `0`
/// (and `0` itself), else the string.
fn typed(raw: &str) -> Json {
    if raw.eq_ignore_ascii_case("true") {
        return Json::Bool(true);
    }
    if raw.eq_ignore_ascii_case("false") {
        return Json::Bool(false);
    }
    if raw.eq_ignore_ascii_case("null") {
        return Json::Null;
    }
    if raw == "0" {
        return Json::from(0i64);
    }
    if !raw.is_empty()
        && !raw.starts_with('0')
        && let Some(i) = go_parse_int(raw)
    {
        return Json::from(i);
    }
    Json::String(raw.to_string())
}

/// `strconv.ParseInt(s, 10, 64)`: an optional sign and decimal digits.
fn go_parse_int(raw: &str) -> Option<i64> {
    let digits = raw.strip_prefix(['+', '-']).unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<i64>().ok()
}

/// JSON decoded the way Go's `encoding/json` decodes into `interface{}`: every number a float64.
fn json_as_go(value: Json) -> Json {
    match value {
        Json::Number(n) if !n.is_f64() => {
            n.as_f64().and_then(serde_json::Number::from_f64).map_or(Json::Null, Json::Number)
        }
        Json::Array(items) => Json::Array(items.into_iter().map(json_as_go).collect()),
        Json::Object(map) => {
            Json::Object(map.into_iter().map(|(k, v)| (k, json_as_go(v))).collect())
        }
        other => other,
    }
}

/// `json.Unmarshal` of a whole `--set-json` argument that is a JSON object (`{"a": 1}`).
///
/// # Errors
/// Invalid JSON or a value that is not an object.
pub fn parse_json_object(text: &str) -> Result<Map<String, Json>, String> {
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Object(map)) => match json_as_go(Json::Object(map)) {
            Json::Object(map) => Ok(map),
            _ => Err("not a JSON object".to_string()),
        },
        Ok(_) => Err("not a JSON object".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn float(f: f64) -> Json {
        Json::Number(serde_json::Number::from_f64(f).unwrap())
    }

    #[track_caller]
    fn check(
        parse: fn(&str, &mut Map<String, Json>) -> Result<(), String>,
        expr: &str,
        want: Json,
    ) {
        let mut values = Map::new();
        parse(expr, &mut values).unwrap();
        assert_eq!(Json::Object(values), want, "{expr}");
    }

    #[track_caller]
    fn check_err(
        parse: fn(&str, &mut Map<String, Json>) -> Result<(), String>,
        expr: &str,
        want: &str,
    ) {
        let mut values = Map::new();
        let err = parse(expr, &mut values).unwrap_err();
        assert!(err.contains(want), "{expr}: {err}");
    }

    #[test]
    fn set_typed() {
        let p = parse_into;
        check(p, "a=1,b=true,c=x", json!({"a": 1, "b": true, "c": "x"}));
        check(p, "a=TRUE,b=False,c=NULL", json!({"a": true, "b": false, "c": null}));
        check(p, "a.b.c=v", json!({"a": {"b": {"c": "v"}}}));
        check(p, "l[1]=x", json!({"l": [null, "x"]}));
        check(p, "a=x\\,y", json!({"a": "x,y"}));
        check(p, "a\\.b=1", json!({"a.b": 1}));
        check(p, "n=null", json!({"n": null}));
        check(
            p,
            "z=007,o=0,m=-5,p=+5,f=1.5,e=1e3",
            json!({"z": "007", "o": 0, "m": -5, "p": 5, "f": "1.5", "e": "1e3"}),
        );
        check(p, "l={a,1,true},x=y", json!({"l": ["a", 1, true], "x": "y"}));
        check(p, "a=", json!({"a": ""}));
        check(p, "a=,b=c", json!({"a": "", "b": "c"}));
        check(p, "a=b=c", json!({"a": "b=c"}));
        check(
            p,
            "l[0].name=x,l[0].port=80,l[1][1]=y",
            json!({"l": [{"name": "x", "port": 80}, [null, "y"]]}),
        );
        check(p, "big=9223372036854775808", json!({"big": "9223372036854775808"}));
        check_err(p, "a", "key \"a\" has no value");
        check_err(p, "a,b=c", "key \"a\" has no value (cannot end with ,)");
        check_err(p, "l[x]=1", "error parsing index");
        check_err(p, "l[-1]=1", "negative -1 index not allowed");
        check_err(p, "l[65537]=1", "greater than maximum supported index of 65536");
        check_err(p, "l={a,b", "list must terminate with '}'");
        check_err(p, "l[0]x=1", "unexpected data at end of array index");
        let deep = format!("{}=1", vec!["k"; 32].join("."));
        check_err(p, &deep, "nested level");
    }

    #[test]
    fn set_merges_into_existing_values() {
        let mut values =
            json!({"a": {"keep": 1}, "l": [1, 2], "s": "text"}).as_object().unwrap().clone();
        parse_into("a.b=2,l[2]=3", &mut values).unwrap();
        assert_eq!(
            Json::Object(values.clone()),
            json!({"a": {"keep": 1, "b": 2}, "l": [1, 2, 3], "s": "text"})
        );
        let err = parse_into("s.x=1", &mut values).unwrap_err();
        assert_eq!(
            err,
            "unable to parse key: interface conversion: interface {} is string, not map[string]interface {}"
        );
        let err = parse_into("a[0]=1", &mut values).unwrap_err();
        assert!(err.contains("is map[string]interface {}, not []interface {}"), "{err}");
    }

    #[test]
    fn set_string_keeps_strings() {
        let p = parse_into_string;
        check(
            p,
            "a=1,b=true,c=null,d=007",
            json!({"a": "1", "b": "true", "c": "null", "d": "007"}),
        );
        check(p, "l={1,2}", json!({"l": ["1", "2"]}));
    }

    #[test]
    fn set_json_decodes_values() {
        let p = parse_json_into;
        check(p, "a=1", json!({"a": float(1.0)}));
        check(
            p,
            "a=[1,\"x\",{\"b\":true}],c={\"d\":null}",
            json!({"a": [float(1.0), "x", {"b": true}], "c": {"d": null}}),
        );
        check(p, "a.b=\"s,t\" ,c=2", json!({"a": {"b": "s,t"}, "c": float(2.0)}));
        check(p, "l[1]={\"x\":1}", json!({"l": [null, {"x": float(1.0)}]}));
        check(p, "a=", json!({"a": null}));
        check_err(p, "a={bad", "");
        assert_eq!(
            Json::Object(parse_json_object(r#"{"a": {"b": 2}}"#).unwrap()),
            json!({"a": {"b": float(2.0)}})
        );
    }

    #[test]
    fn set_literal_takes_the_rest() {
        let p = parse_literal_into;
        check(p, "a.b=x,y=z\\n", json!({"a": {"b": "x,y=z\\n"}}));
        check(p, "l[1]=1", json!({"l": [null, "1"]}));
        check(p, "a=", json!({"a": ""}));
        check_err(p, "a", "key \"a\" has no value");
    }

    #[test]
    fn set_file_reads_values() {
        let mut values = Map::new();
        let mut read = |path: &str| Ok(Json::String(format!("content of {path}")));
        parse_file_into("a=x.txt,b.c=y\\,z.txt", &mut values, &mut read).unwrap();
        assert_eq!(
            Json::Object(values),
            json!({"a": "content of x.txt", "b": {"c": "content of y,z.txt"}})
        );
        let mut values = Map::new();
        let mut fail = |path: &str| Err(format!("open {path}: no such file or directory"));
        let err = parse_file_into("a=missing", &mut values, &mut fail).unwrap_err();
        assert_eq!(err, "open missing: no such file or directory");
    }
}
