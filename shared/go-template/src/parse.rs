//! Lexer and parser for Go's text/template syntax, producing trees with byte positions.
//!
//! Follows `golang/go:src/text/template/parse/{lex,parse}.go`: trim markers `{{-`/`-}}`,
//! comments, `if`/`else if`/`with`/`range`/`break`/`continue`, `define`/`block`/`template`,
//! variable scoping checks and function existence checks at parse time.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::Error;

/// A sequence of nodes.
pub(crate) type List = Vec<Node>;

/// A node of a template body.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(Arc<str>),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Template { pos: usize, name: String, pipe: Option<Pipe> },
    Break,
    Continue,
}

/// The shared shape of `if`, `with` and `range`.
#[derive(Debug, Clone)]
pub(crate) struct Branch {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: List,
    pub else_list: Option<List>,
}

/// A pipeline with optional variable declarations.
#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

/// One command of a pipeline: a function call, field, constant…
#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

/// An operand.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Field { pos: usize, idents: Vec<String> },
    Variable { pos: usize, name: String, idents: Vec<String> },
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number(usize, Number),
    String { pos: usize, quoted: String, text: Arc<str> },
    Identifier(usize, String),
    Chain { pos: usize, node: Box<Arg>, fields: Vec<String> },
    Pipe(Box<Pipe>),
}

/// A numeric constant with Go's ideal-constant interpretation.
#[derive(Debug, Clone)]
pub(crate) struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
    /// Whether the constant is written as a float (`1.0`, `1e3`) rather than an integer.
    pub is_float_syntax: bool,
}

impl Arg {
    pub(crate) fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Dot(pos)
            | Arg::Nil(pos)
            | Arg::Bool(pos, _)
            | Arg::Number(pos, _)
            | Arg::String { pos, .. }
            | Arg::Identifier(pos, _)
            | Arg::Chain { pos, .. } => *pos,
            Arg::Pipe(pipe) => pipe.pos,
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field { idents, .. } => {
                for ident in idents {
                    write!(f, ".{ident}")?;
                }
                Ok(())
            }
            Arg::Variable { name, idents, .. } => {
                f.write_str(name)?;
                for ident in idents {
                    write!(f, ".{ident}")?;
                }
                Ok(())
            }
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Number(_, n) => f.write_str(&n.text),
            Arg::String { quoted, .. } => f.write_str(quoted),
            Arg::Identifier(_, name) => f.write_str(name),
            Arg::Chain { node, fields, .. } => {
                write!(f, "{node}")?;
                for field in fields {
                    write!(f, ".{field}")?;
                }
                Ok(())
            }
            Arg::Pipe(pipe) => write!(f, "({pipe})"),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (idx, arg) in self.args.iter().enumerate() {
            if idx > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{arg}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (idx, cmd) in self.cmds.iter().enumerate() {
            if idx > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{cmd}")?;
        }
        Ok(())
    }
}

/// A parsed template: its name, the file it came from and its body.
#[derive(Debug)]
pub(crate) struct Tree {
    /// The template name (`define` name, or the file name for a file's body).
    pub name: Arc<str>,
    /// The name given to `parse`, used in error locations.
    pub parse_name: Arc<str>,
    /// The source text, for computing line and column of errors.
    pub source: Arc<str>,
    pub root: List,
}

impl Tree {
    /// Go's `ErrorContext` location: `NAME:LINE:COL`.
    pub(crate) fn location(&self, pos: usize) -> String {
        let pos = pos.min(self.source.len());
        let before = &self.source[..pos];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(idx) => pos - idx - 1,
            None => pos,
        };
        format!("{}:{}:{}", self.parse_name, line, col)
    }
}

/// Whether a body has only whitespace text (Go's `parse.IsEmptyTree`).
pub(crate) fn is_empty_tree(list: &List) -> bool {
    list.iter().all(|node| matches!(node, Node::Text(text) if text.trim().is_empty()))
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Field(String),
    Variable(String),
    Dot,
    Ident(String),
    Keyword(&'static str),
    Bool(bool),
    Nil,
    Number(String),
    Char(String),
    Str(String),
    RawStr(String),
    Pipe,
    Declare,
    Assign,
    LeftParen,
    RightParen,
    Comma,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
    line: usize,
}

const KEYWORDS: &[&str] =
    &["block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"];

struct Lexer<'a> {
    name: &'a str,
    src: &'a str,
    pos: usize,
    line: usize,
    tokens: Vec<Token>,
}

fn lex_error(name: &str, line: usize, message: impl Into<String>) -> Error {
    Error::Parse { name: name.to_string(), line, message: message.into() }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

impl<'a> Lexer<'a> {
    fn push(&mut self, tok: Tok, pos: usize, line: usize) {
        self.tokens.push(Token { tok, pos, line });
    }

    fn run(mut self) -> Result<Vec<Token>, Error> {
        let bytes = self.src.as_bytes();
        loop {
            // Text up to the next left delimiter.
            let rest = &self.src[self.pos..];
            let Some(offset) = rest.find("{{") else {
                if !rest.is_empty() {
                    self.push(Tok::Text(rest.to_string()), self.pos, self.line);
                    self.line += rest.matches('\n').count();
                }
                let (pos, line) = (self.src.len(), self.line);
                self.push(Tok::Eof, pos, line);
                return Ok(self.tokens);
            };
            let delim = self.pos + offset;
            let trim_left = bytes.get(delim + 2) == Some(&b'-')
                && bytes.get(delim + 3).is_some_and(|c| is_space(*c));
            let mut text = &self.src[self.pos..delim];
            let text_line = self.line;
            self.line += text.matches('\n').count();
            if trim_left {
                text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            }
            if !text.is_empty() {
                self.push(Tok::Text(text.to_string()), self.pos, text_line);
            }
            self.pos = delim + 2;
            if trim_left {
                self.pos += 2;
            }
            // Comments.
            let after_space = {
                let mut p = self.pos;
                if trim_left {
                    while p < bytes.len() && is_space(bytes[p]) {
                        p += 1;
                    }
                }
                p
            };
            if self.src[after_space..].starts_with("/*") {
                let start_line = self.line;
                let Some(end) = self.src[after_space + 2..].find("*/") else {
                    return Err(lex_error(self.name, start_line, "unclosed comment"));
                };
                let end = after_space + 2 + end + 2;
                self.line += self.src[self.pos..end].matches('\n').count();
                self.pos = end;
                // Expect the right delimiter, possibly with a trim marker.
                let (trim_right, delim_len) = if self.src[self.pos..].starts_with(" -}}")
                    || self.src[self.pos..].starts_with("\t-}}")
                    || self.src[self.pos..].starts_with("\n-}}")
                    || self.src[self.pos..].starts_with("\r-}}")
                {
                    (true, 4)
                } else if self.src[self.pos..].starts_with("}}") {
                    (false, 2)
                } else {
                    return Err(lex_error(
                        self.name,
                        self.line,
                        "comment ends before closing delimiter",
                    ));
                };
                self.pos += delim_len;
                if trim_right {
                    self.skip_trailing_space();
                }
                continue;
            }
            let (pos, line) = (delim, self.line);
            self.push(Tok::LeftDelim, pos, line);
            self.lex_inside_action()?;
        }
    }

    fn skip_trailing_space(&mut self) {
        let bytes = self.src.as_bytes();
        while self.pos < bytes.len() && is_space(bytes[self.pos]) {
            if bytes[self.pos] == b'\n' {
                self.line += 1;
            }
            self.pos += 1;
        }
    }

    fn at_right_delim(&self) -> Option<(bool, usize)> {
        let rest = &self.src[self.pos..];
        let b = rest.as_bytes();
        if b.len() >= 4 && is_space(b[0]) && b[1] == b'-' && b[2] == b'}' && b[3] == b'}' {
            return Some((true, 4));
        }
        if rest.starts_with("}}") {
            return Some((false, 2));
        }
        None
    }

    fn lex_inside_action(&mut self) -> Result<(), Error> {
        let mut paren_depth = 0usize;
        loop {
            if let Some((trim, len)) = self.at_right_delim() {
                if paren_depth > 0 {
                    return Err(lex_error(self.name, self.line, "unclosed left paren"));
                }
                let (pos, line) = (self.pos, self.line);
                if trim {
                    // The space before the trim marker.
                    if self.src.as_bytes()[self.pos] == b'\n' {
                        self.line += 1;
                    }
                }
                self.push(Tok::RightDelim, pos, line);
                self.pos += len;
                if trim {
                    self.skip_trailing_space();
                }
                return Ok(());
            }
            let rest = &self.src[self.pos..];
            let Some(c) = rest.chars().next() else {
                return Err(lex_error(self.name, self.line, "unclosed action"));
            };
            let start = self.pos;
            let line = self.line;
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    let mut end = self.pos;
                    let bytes = self.src.as_bytes();
                    while end < bytes.len() && is_space(bytes[end]) {
                        // Stop before a trim marker's space.
                        if bytes.get(end + 1) == Some(&b'-')
                            && bytes.get(end + 2) == Some(&b'}')
                            && bytes.get(end + 3) == Some(&b'}')
                        {
                            break;
                        }
                        end += 1;
                    }
                    if end == self.pos {
                        // A lone space before " -}}": handled by at_right_delim next round,
                        // unless not followed by the marker.
                        end += 1;
                    }
                    self.line += self.src[self.pos..end].matches('\n').count();
                    self.pos = end;
                    self.push(Tok::Space, start, line);
                }
                '=' => {
                    self.pos += 1;
                    self.push(Tok::Assign, start, line);
                }
                ':' => {
                    if rest.starts_with(":=") {
                        self.pos += 2;
                        self.push(Tok::Declare, start, line);
                    } else {
                        return Err(lex_error(self.name, line, "expected :="));
                    }
                }
                '|' => {
                    self.pos += 1;
                    self.push(Tok::Pipe, start, line);
                }
                ',' => {
                    self.pos += 1;
                    self.push(Tok::Comma, start, line);
                }
                '"' => {
                    let mut end = self.pos + 1;
                    let bytes = self.src.as_bytes();
                    loop {
                        match bytes.get(end) {
                            None | Some(b'\n') => {
                                return Err(lex_error(
                                    self.name,
                                    line,
                                    "unterminated quoted string",
                                ));
                            }
                            Some(b'\\') => end += 2,
                            Some(b'"') => break,
                            Some(_) => end += 1,
                        }
                    }
                    self.pos = end + 1;
                    self.push(Tok::Str(self.src[start..self.pos].to_string()), start, line);
                }
                '`' => {
                    let Some(end) = rest[1..].find('`') else {
                        return Err(lex_error(self.name, line, "unterminated raw quoted string"));
                    };
                    self.pos += end + 2;
                    let raw = &self.src[start..self.pos];
                    self.line += raw.matches('\n').count();
                    self.push(Tok::RawStr(raw.to_string()), start, line);
                }
                '\'' => {
                    let mut end = self.pos + 1;
                    let bytes = self.src.as_bytes();
                    loop {
                        match bytes.get(end) {
                            None | Some(b'\n') => {
                                return Err(lex_error(
                                    self.name,
                                    line,
                                    "unterminated character constant",
                                ));
                            }
                            Some(b'\\') => end += 2,
                            Some(b'\'') => break,
                            Some(_) => end += 1,
                        }
                    }
                    self.pos = end + 1;
                    self.push(Tok::Char(self.src[start..self.pos].to_string()), start, line);
                }
                '$' => {
                    let ident_len: usize =
                        rest[1..].chars().take_while(|c| is_alnum(*c)).map(char::len_utf8).sum();
                    self.pos += 1 + ident_len;
                    self.push(Tok::Variable(self.src[start..self.pos].to_string()), start, line);
                }
                '.' => {
                    let next = rest[1..].chars().next();
                    if next.is_some_and(|d| d.is_ascii_digit()) {
                        self.lex_number()?;
                    } else if next.is_some_and(is_alnum) {
                        let ident_len: usize = rest[1..]
                            .chars()
                            .take_while(|c| is_alnum(*c))
                            .map(char::len_utf8)
                            .sum();
                        self.pos += 1 + ident_len;
                        self.push(
                            Tok::Field(self.src[start + 1..self.pos].to_string()),
                            start,
                            line,
                        );
                    } else {
                        self.pos += 1;
                        self.push(Tok::Dot, start, line);
                    }
                }
                '(' => {
                    paren_depth += 1;
                    self.pos += 1;
                    self.push(Tok::LeftParen, start, line);
                }
                ')' => {
                    if paren_depth == 0 {
                        return Err(lex_error(self.name, line, "unexpected right paren"));
                    }
                    paren_depth -= 1;
                    self.pos += 1;
                    self.push(Tok::RightParen, start, line);
                }
                '+' | '-' | '0'..='9' => self.lex_number()?,
                c if is_alnum(c) => {
                    let len: usize =
                        rest.chars().take_while(|c| is_alnum(*c)).map(char::len_utf8).sum();
                    self.pos += len;
                    let word = &self.src[start..self.pos];
                    let tok = if let Some(keyword) = KEYWORDS.iter().find(|k| **k == word) {
                        Tok::Keyword(keyword)
                    } else if word == "true" || word == "false" {
                        Tok::Bool(word == "true")
                    } else if word == "nil" {
                        Tok::Nil
                    } else {
                        Tok::Ident(word.to_string())
                    };
                    self.push(tok, start, line);
                }
                c => {
                    return Err(lex_error(
                        self.name,
                        line,
                        format!("unrecognized character in action: {c:?}"),
                    ));
                }
            }
        }
    }

    fn lex_number(&mut self) -> Result<(), Error> {
        let start = self.pos;
        let rest = &self.src[self.pos..];
        let mut len = 0;
        let bytes = rest.as_bytes();
        if matches!(bytes.first(), Some(b'+' | b'-')) {
            len += 1;
        }
        let mut prev = 0u8;
        while let Some(&b) = bytes.get(len) {
            let ok = b.is_ascii_alphanumeric()
                || b == b'.'
                || b == b'_'
                || ((b == b'+' || b == b'-') && matches!(prev, b'e' | b'E' | b'p' | b'P'));
            if !ok {
                break;
            }
            prev = b;
            len += 1;
        }
        self.pos += len;
        let text = &self.src[start..self.pos];
        if parse_number(text).is_none() {
            return Err(lex_error(self.name, self.line, format!("bad number syntax: {text:?}")));
        }
        self.push(Tok::Number(text.to_string()), start, self.line);
        Ok(())
    }
}

/// Parses Go number syntax into an ideal constant.
fn parse_number(text: &str) -> Option<Number> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let (negative, body) = match cleaned.strip_prefix('-') {
        Some(rest) => (true, rest.to_string()),
        None => (false, cleaned.strip_prefix('+').unwrap_or(&cleaned).to_string()),
    };
    let lower = body.to_ascii_lowercase();
    let int_value = if let Some(hex) = lower.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = lower.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()
    } else if let Some(bin) = lower.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.chars().all(|c| c.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse::<i64>().ok()
    };
    let is_hex = lower.starts_with("0x");
    let is_hex_float = is_hex && lower.contains('p');
    let float_value = if is_hex_float {
        parse_hex_float(&lower[2..])
    } else if is_hex {
        int_value.map(|i| i as f64)
    } else {
        lower.parse::<f64>().ok()
    };
    if int_value.is_none() && float_value.is_none() {
        return None;
    }
    let sign = if negative { -1 } else { 1 };
    let mut int = int_value.map(|i| i * sign);
    let float = float_value.map(|f| f * sign as f64);
    let is_float_syntax = if is_hex { is_hex_float } else { lower.contains(['.', 'e']) };
    // A float constant with an integral value is also an int (Go: 1e3 is an int constant too).
    if int.is_none()
        && let Some(f) = float
        && f.fract() == 0.0
        && f.abs() < 9.2e18
    {
        int = Some(f as i64);
    }
    Some(Number { text: text.to_string(), int, float, is_float_syntax })
}

/// Parses the part after `0x` of a Go hexadecimal float (`1.8p3`).
fn parse_hex_float(text: &str) -> Option<f64> {
    let (mantissa, exponent) = text.split_once('p')?;
    let exponent: i32 = exponent.parse().ok()?;
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut value = 0f64;
    for c in whole.chars() {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        value += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(value * 2f64.powi(exponent))
}

/// Unquotes a Go interpreted string literal (with the quotes).
fn unquote(quoted: &str) -> Option<String> {
    let inner = quoted.get(1..quoted.len().checked_sub(1)?)?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&hex, 16).ok()?));
            }
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            'U' => {
                let hex: String = chars.by_ref().take(8).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            d @ '0'..='7' => {
                let mut oct = String::from(d);
                oct.extend(chars.by_ref().take(2));
                out.push(char::from(u8::from_str_radix(&oct, 8).ok()?));
            }
            _ => return None,
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Parser

/// The result of parsing one file: its body and its `define`/`block` templates.
pub(crate) struct Parsed {
    pub trees: Vec<Tree>,
}

struct Parser<'a> {
    name: &'a str,
    source: Arc<str>,
    tokens: Vec<Token>,
    idx: usize,
    vars: Vec<String>,
    is_func: &'a dyn Fn(&str) -> bool,
    defined: Vec<Tree>,
    range_depth: usize,
    nesting: usize,
}

/// Maximum nesting of control structures and parentheses.
const MAX_PARSE_NESTING: usize = 100;

/// Parses `text` as the template file `name`; `is_func` tells which function names exist.
pub(crate) fn parse(
    name: &str,
    text: &str,
    is_func: &dyn Fn(&str) -> bool,
) -> Result<Parsed, Error> {
    let tokens = Lexer { name, src: text, pos: 0, line: 1, tokens: Vec::new() }.run()?;
    let source: Arc<str> = Arc::from(text);
    let mut parser = Parser {
        name,
        source: source.clone(),
        tokens,
        idx: 0,
        vars: vec!["$".to_string()],
        is_func,
        defined: Vec::new(),
        range_depth: 0,
        nesting: 0,
    };
    let (root, _) = parser.item_list(true)?;
    let mut trees = vec![Tree { name: Arc::from(name), parse_name: Arc::from(name), source, root }];
    trees.append(&mut parser.defined);
    Ok(Parsed { trees })
}

enum ListEnd {
    Eof,
    End,
    Else(usize),
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.idx.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if self.idx < self.tokens.len() {
            self.idx += 1;
        }
        token
    }

    fn next_non_space(&mut self) -> Token {
        loop {
            let token = self.next();
            if token.tok != Tok::Space {
                return token;
            }
        }
    }

    fn peek_non_space(&mut self) -> Token {
        while self.peek().tok == Tok::Space {
            self.idx += 1;
        }
        self.peek().clone()
    }

    fn error(&self, line: usize, message: impl Into<String>) -> Error {
        Error::Parse { name: self.name.to_string(), line, message: message.into() }
    }

    fn unexpected(&self, token: &Token, context: &str) -> Error {
        let desc = describe(&token.tok);
        self.error(token.line, format!("unexpected {desc} in {context}"))
    }

    /// Parses nodes until EOF (top level) or `{{end}}`/`{{else}}`.
    fn item_list(&mut self, top: bool) -> Result<(List, ListEnd), Error> {
        let mut list = List::new();
        loop {
            let token = self.next();
            match token.tok {
                Tok::Eof => {
                    if top {
                        return Ok((list, ListEnd::Eof));
                    }
                    return Err(self.error(token.line, "unexpected EOF"));
                }
                Tok::Text(text) => list.push(Node::Text(Arc::from(text))),
                Tok::LeftDelim => {
                    let keyword = self.peek_non_space();
                    match keyword.tok {
                        Tok::Keyword("end") => {
                            self.next_non_space();
                            if top {
                                return Err(self.error(keyword.line, "unexpected {{end}}"));
                            }
                            self.expect_right_delim("end")?;
                            return Ok((list, ListEnd::End));
                        }
                        Tok::Keyword("else") => {
                            self.next_non_space();
                            if top {
                                return Err(self.error(keyword.line, "unexpected {{else}}"));
                            }
                            // `else if` / `else with` chains are handled by the caller.
                            let after = self.peek_non_space();
                            if matches!(after.tok, Tok::Keyword("if" | "with")) {
                                return Ok((list, ListEnd::Else(keyword.pos)));
                            }
                            self.expect_right_delim("else")?;
                            return Ok((list, ListEnd::Else(keyword.pos)));
                        }
                        Tok::Keyword("define") => {
                            self.next_non_space();
                            if !top {
                                return Err(
                                    self.error(keyword.line, "unexpected <define> in command")
                                );
                            }
                            self.parse_define(keyword.line)?;
                        }
                        _ => {
                            if let Some(node) = self.action()? {
                                list.push(node);
                            }
                        }
                    }
                }
                other => {
                    return Err(self.error(token.line, format!("unexpected {}", describe(&other))));
                }
            }
        }
    }

    fn expect_right_delim(&mut self, context: &str) -> Result<(), Error> {
        let token = self.next_non_space();
        if token.tok != Tok::RightDelim {
            return Err(self.unexpected(&token, context));
        }
        Ok(())
    }

    fn parse_define(&mut self, line: usize) -> Result<(), Error> {
        let name_token = self.next_non_space();
        let name = match &name_token.tok {
            Tok::Str(q) => unquote(q).ok_or_else(|| self.error(line, "bad string in define"))?,
            Tok::RawStr(r) => r[1..r.len() - 1].to_string(),
            _ => return Err(self.unexpected(&name_token, "define clause")),
        };
        self.expect_right_delim("define clause")?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let (body, end) = self.item_list(false)?;
        self.vars = saved_vars;
        if !matches!(end, ListEnd::End) {
            return Err(self.error(line, "unexpected {{else}} in define"));
        }
        self.add_tree(name, body, line)
    }

    fn add_tree(&mut self, name: String, body: List, line: usize) -> Result<(), Error> {
        if let Some(existing) = self.defined.iter_mut().find(|t| *t.name == *name) {
            if is_empty_tree(&existing.root) {
                existing.root = body;
                return Ok(());
            }
            if !is_empty_tree(&body) {
                return Err(
                    self.error(line, format!("template: multiple definition of template {name:?}"))
                );
            }
            return Ok(());
        }
        self.defined.push(Tree {
            name: Arc::from(name),
            parse_name: Arc::from(self.name),
            source: self.source.clone(),
            root: body,
        });
        Ok(())
    }

    /// Parses an action after `{{`.
    fn action(&mut self) -> Result<Option<Node>, Error> {
        let token = self.peek_non_space();
        match token.tok {
            Tok::Keyword("block") => {
                self.next_non_space();
                return self.block(token.pos, token.line).map(Some);
            }
            Tok::Keyword("break") | Tok::Keyword("continue") => {
                self.next_non_space();
                let is_break = token.tok == Tok::Keyword("break");
                if self.range_depth == 0 {
                    let word = if is_break { "break" } else { "continue" };
                    return Err(
                        self.error(token.line, format!("{{{{{word}}}}} outside {{{{range}}}}"))
                    );
                }
                self.expect_right_delim(if is_break { "break" } else { "continue" })?;
                return Ok(Some(if is_break { Node::Break } else { Node::Continue }));
            }
            Tok::Keyword("if") => {
                self.next_non_space();
                return self.branch("if", token.pos).map(|b| Some(Node::If(b)));
            }
            Tok::Keyword("range") => {
                self.next_non_space();
                self.range_depth += 1;
                let branch = self.branch("range", token.pos);
                self.range_depth -= 1;
                return branch.map(|b| Some(Node::Range(b)));
            }
            Tok::Keyword("with") => {
                self.next_non_space();
                return self.branch("with", token.pos).map(|b| Some(Node::With(b)));
            }
            Tok::Keyword("template") => {
                self.next_non_space();
                return self.template(token.pos, token.line).map(Some);
            }
            Tok::Keyword(other) => {
                return Err(self.error(token.line, format!("unexpected <{other}> in command")));
            }
            _ => {}
        }
        let pipe = self.pipeline("command", true)?;
        Ok(Some(Node::Action(pipe)))
    }

    fn block(&mut self, pos: usize, line: usize) -> Result<Node, Error> {
        let name_token = self.next_non_space();
        let name = self.string_token(&name_token, "block clause")?;
        let pipe = self.pipeline("block clause", true)?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let (body, end) = self.item_list(false)?;
        self.vars = saved_vars;
        if !matches!(end, ListEnd::End) {
            return Err(self.error(line, "unexpected {{else}} in block clause"));
        }
        self.add_tree(name.clone(), body, line)?;
        Ok(Node::Template { pos, name, pipe: Some(pipe) })
    }

    fn string_token(&self, token: &Token, context: &str) -> Result<String, Error> {
        match &token.tok {
            Tok::Str(q) => unquote(q).ok_or_else(|| self.error(token.line, "bad string syntax")),
            Tok::RawStr(r) => Ok(r[1..r.len() - 1].to_string()),
            _ => Err(self.unexpected(token, context)),
        }
    }

    fn template(&mut self, pos: usize, _line: usize) -> Result<Node, Error> {
        let name_token = self.next_non_space();
        let name = self.string_token(&name_token, "template clause")?;
        let pipe = if self.peek_non_space().tok != Tok::RightDelim {
            Some(self.pipeline("template clause", true)?)
        } else {
            self.next_non_space();
            None
        };
        Ok(Node::Template { pos, name, pipe })
    }

    /// Guards the parser's (and so the executor's) recursion against hostile nesting.
    fn enter(&mut self, line: usize) -> Result<(), Error> {
        if self.nesting >= MAX_PARSE_NESTING {
            return Err(
                self.error(line, format!("template nesting exceeds {MAX_PARSE_NESTING} levels"))
            );
        }
        self.nesting += 1;
        Ok(())
    }

    fn branch(&mut self, context: &str, pos: usize) -> Result<Branch, Error> {
        self.enter(self.peek().line)?;
        let result = self.branch_inner(context, pos);
        self.nesting -= 1;
        result
    }

    fn branch_inner(&mut self, context: &str, pos: usize) -> Result<Branch, Error> {
        let vars_mark = self.vars.len();
        let pipe = self.pipeline(context, true)?;
        if pipe.cmds.is_empty() {
            return Err(self.error(self.peek().line, format!("missing value for {context}")));
        }
        let (list, end) = self.item_list(false)?;
        let else_list = match end {
            ListEnd::End => None,
            ListEnd::Eof => return Err(self.error(self.peek().line, "unexpected EOF")),
            ListEnd::Else(else_pos) => {
                let after = self.peek_non_space();
                if (context == "if" || context == "with")
                    && matches!(after.tok, Tok::Keyword("if" | "with"))
                    && after.tok == Tok::Keyword(if context == "if" { "if" } else { "with" })
                {
                    // `{{else if x}}` behaves like `{{else}}{{if x}}…{{end}}{{end}}` sharing one end.
                    self.next_non_space();
                    let nested = self.branch(context, else_pos)?;
                    let node = if context == "if" { Node::If(nested) } else { Node::With(nested) };
                    Some(vec![node])
                } else {
                    if matches!(after.tok, Tok::Keyword("if" | "with")) {
                        return Err(self.unexpected(&after, "else"));
                    }
                    let (else_list, end) = self.item_list(false)?;
                    if !matches!(end, ListEnd::End) {
                        return Err(self.error(
                            self.peek().line,
                            format!("expected end; found {{{{else}}}} in {context}"),
                        ));
                    }
                    Some(else_list)
                }
            }
        };
        self.vars.truncate(vars_mark);
        Ok(Branch { pos, pipe, list, else_list })
    }

    /// Parses a pipeline up to the right delimiter (or right paren when `!end_delim`).
    fn pipeline(&mut self, context: &str, end_delim: bool) -> Result<Pipe, Error> {
        let start = self.peek_non_space();
        let mut pipe =
            Pipe { pos: start.pos, is_assign: false, decl: Vec::new(), cmds: Vec::new() };
        // Declarations.
        if let Tok::Variable(name) = &start.tok {
            let save = self.idx;
            self.next_non_space();
            let after = self.peek_non_space();
            match after.tok {
                Tok::Declare | Tok::Assign => {
                    self.next_non_space();
                    pipe.is_assign = after.tok == Tok::Assign;
                    if pipe.is_assign && !self.vars.contains(name) {
                        return Err(self.error(start.line, format!("undefined variable {name:?}")));
                    }
                    pipe.decl.push(name.clone());
                }
                Tok::Comma if context == "range" => {
                    self.next_non_space();
                    let second = self.next_non_space();
                    let Tok::Variable(second_name) = &second.tok else {
                        return Err(self.error(second.line, "range can only initialize variables"));
                    };
                    let op = self.next_non_space();
                    if !matches!(op.tok, Tok::Declare | Tok::Assign) {
                        return Err(self.unexpected(&op, "range"));
                    }
                    pipe.is_assign = op.tok == Tok::Assign;
                    pipe.decl.push(name.clone());
                    pipe.decl.push(second_name.clone());
                }
                _ => self.idx = save,
            }
        }
        loop {
            let token = self.peek_non_space();
            match token.tok {
                Tok::RightDelim if end_delim => {
                    self.next_non_space();
                    break;
                }
                Tok::RightParen if !end_delim => {
                    self.next_non_space();
                    break;
                }
                Tok::RightDelim | Tok::RightParen | Tok::Eof => {
                    return Err(self.unexpected(&token, context));
                }
                _ => {
                    let cmd = self.command(end_delim)?;
                    pipe.cmds.push(cmd);
                }
            }
        }
        if !pipe.is_assign {
            for name in &pipe.decl {
                self.vars.push(name.clone());
            }
        }
        if pipe.cmds.is_empty() && (context != "template clause") {
            return Err(self.error(start.line, format!("missing value for {context}")));
        }
        self.check_pipeline(&pipe, start.line)?;
        Ok(pipe)
    }

    fn check_pipeline(&self, pipe: &Pipe, line: usize) -> Result<(), Error> {
        // Non-executable commands may only be first.
        for (idx, cmd) in pipe.cmds.iter().enumerate().skip(1) {
            if let Some(
                Arg::Bool(..) | Arg::Dot(_) | Arg::Nil(_) | Arg::Number(..) | Arg::String { .. },
            ) = cmd.args.first()
            {
                return Err(self
                    .error(line, format!("non executable command in pipeline stage {}", idx + 1)));
            }
        }
        Ok(())
    }

    fn command(&mut self, end_delim: bool) -> Result<Command, Error> {
        let start = self.peek_non_space();
        let mut cmd = Command { pos: start.pos, args: Vec::new() };
        loop {
            self.peek_non_space();
            let operand = self.operand()?;
            match operand {
                Some(arg) => cmd.args.push(arg),
                None => {
                    let token = self.peek().clone();
                    return Err(self.unexpected(&token, "operand"));
                }
            }
            let token = self.peek().clone();
            match token.tok {
                Tok::Space => {
                    let next = self.peek_non_space();
                    match next.tok {
                        Tok::Pipe => {
                            self.next();
                            break;
                        }
                        Tok::RightDelim | Tok::RightParen => break,
                        _ => continue,
                    }
                }
                Tok::RightDelim | Tok::RightParen => break,
                Tok::Pipe => {
                    self.next();
                    break;
                }
                _ => return Err(self.unexpected(&token, "operand")),
            }
        }
        let _ = end_delim;
        if cmd.args.is_empty() {
            return Err(self.error(start.line, "empty command"));
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> Result<Option<Arg>, Error> {
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        if let Tok::Field(_) = self.peek().tok {
            // Go positions the combined node at the first field after the term.
            let pos = self.peek().pos;
            let mut fields = Vec::new();
            while let Tok::Field(name) = &self.peek().tok {
                fields.push(name.clone());
                self.next();
            }
            return Ok(Some(match term {
                Arg::Field { mut idents, .. } => {
                    idents.extend(fields);
                    Arg::Field { pos, idents }
                }
                Arg::Variable { name, mut idents, .. } => {
                    idents.extend(fields);
                    Arg::Variable { pos, name, idents }
                }
                Arg::Bool(..)
                | Arg::String { .. }
                | Arg::Number(..)
                | Arg::Nil(_)
                | Arg::Dot(_) => {
                    let line = self.peek().line;
                    return Err(
                        self.error(line, format!("unexpected . after term {:?}", term.to_string()))
                    );
                }
                node => Arg::Chain { pos, node: Box::new(node), fields },
            }));
        }
        Ok(Some(term))
    }

    fn term(&mut self) -> Result<Option<Arg>, Error> {
        let token = self.next_non_space();
        let arg = match token.tok {
            Tok::Ident(name) => {
                if !(self.is_func)(&name) {
                    return Err(self.error(token.line, format!("function {name:?} not defined")));
                }
                Arg::Identifier(token.pos, name)
            }
            Tok::Dot => Arg::Dot(token.pos),
            Tok::Nil => Arg::Nil(token.pos),
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return Err(self.error(token.line, format!("undefined variable {name:?}")));
                }
                Arg::Variable { pos: token.pos, name, idents: Vec::new() }
            }
            Tok::Field(name) => Arg::Field { pos: token.pos, idents: vec![name] },
            Tok::Bool(b) => Arg::Bool(token.pos, b),
            Tok::Char(text) => {
                let inner =
                    unquote(&format!("\"{}\"", &text[1..text.len() - 1])).ok_or_else(|| {
                        self.error(token.line, format!("malformed character constant: {text}"))
                    })?;
                let mut chars = inner.chars();
                let (Some(c), None) = (chars.next(), chars.next()) else {
                    return Err(
                        self.error(token.line, format!("malformed character constant: {text}"))
                    );
                };
                Arg::Number(
                    token.pos,
                    Number {
                        text,
                        int: Some(c as i64),
                        float: Some(c as u32 as f64),
                        is_float_syntax: false,
                    },
                )
            }
            Tok::Number(text) => {
                let number = parse_number(&text).ok_or_else(|| {
                    self.error(token.line, format!("bad number syntax: {text:?}"))
                })?;
                Arg::Number(token.pos, number)
            }
            Tok::LeftParen => {
                self.enter(token.line)?;
                let pipe = self.pipeline("parenthesized pipeline", false);
                self.nesting -= 1;
                Arg::Pipe(Box::new(pipe?))
            }
            Tok::Str(quoted) => {
                let text = unquote(&quoted).ok_or_else(|| {
                    self.error(token.line, format!("bad string syntax: {quoted}"))
                })?;
                Arg::String { pos: token.pos, quoted, text: Arc::from(text) }
            }
            Tok::RawStr(raw) => {
                let text = raw[1..raw.len() - 1].to_string();
                Arg::String { pos: token.pos, quoted: raw, text: Arc::from(text) }
            }
            _ => {
                self.idx -= 1;
                return Ok(None);
            }
        };
        Ok(Some(arg))
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Text(t) => format!("{t:?}"),
        Tok::LeftDelim => "\"{{\"".to_string(),
        Tok::RightDelim => "\"}}\"".to_string(),
        Tok::Space => "space".to_string(),
        Tok::Field(f) => format!("<.{f}>"),
        Tok::Variable(v) => format!("<{v}>"),
        Tok::Dot => "<.>".to_string(),
        Tok::Ident(i) => format!("<{i}>"),
        Tok::Keyword(k) => format!("<{k}>"),
        Tok::Bool(b) => format!("<{b}>"),
        Tok::Nil => "<nil>".to_string(),
        Tok::Number(n) | Tok::Char(n) => format!("<{n}>"),
        Tok::Str(s) | Tok::RawStr(s) => format!("<{s}>"),
        Tok::Pipe => "<|>".to_string(),
        Tok::Declare => "\":=\"".to_string(),
        Tok::Assign => "\"=\"".to_string(),
        Tok::LeftParen => "\"(\"".to_string(),
        Tok::RightParen => "\")\"".to_string(),
        Tok::Comma => "\",\"".to_string(),
        Tok::Eof => "EOF".to_string(),
    }
}

/// Parsed trees indexed by template name, used by the executor.
pub(crate) type TreeMap =
    HashMap<String, Arc<Tree>, std::hash::BuildHasherDefault<crate::FnvHasher>>;
