//! Go text/template with Sprig functions, with Go's semantics and error messages.
//!
//! The engine parses files into one [`TemplateSet`] (every `define` is visible to every file, a
//! later definition of a name replaces an earlier one as Go's `AddParseTree` does, except that an
//! empty body never replaces a non-empty one) and executes a named template with a [`Value`].
//!
//! ```
//! use sluice_go_template::{TemplateSet, Value};
//! let mut set = TemplateSet::new();
//! set.parse("demo/templates/cm.yaml", r#"{{ define "greet" }}hi {{ . }}{{ end }}{{ include "greet" "you" }}"#)
//!     .unwrap_err(); // `include` is Helm's function, not registered by default
//! set.parse("a.txt", r#"{{ define "greet" }}hi {{ . }}{{ end }}{{ template "greet" "you" }}"#).unwrap();
//! assert_eq!(set.execute("a.txt", &Value::Nil).unwrap(), "hi you");
//! ```
//!
//! # Extending
//! Callers (Helm) register functions with [`TemplateSet::add_func`]. A function receives the
//! evaluated arguments, already checked against its [`Signature`] like Go's reflection call, and
//! a [`Context`] through which it can execute a named template of the same set
//! ([`Context::execute_template`], for `include`) or parse and execute a string that sees the
//! set's defines ([`Context::execute_text`], for `tpl`). Host objects with fields and methods
//! (`.Files`, `.Capabilities`) implement [`Object`].
//!
//! # Errors
//! [`Error`] renders exactly like Go: `template: NAME:LINE:COL: executing "NAME" at <NODE>: MSG`
//! and `template: NAME:LINE: MSG` for parse errors; the nested error of a function (e.g. an
//! `include` that failed) stays available as data through [`Error::source_error`] and
//! [`Error::frames`].
//!
//! # Limits
//! Nesting of `template`/`include`/`tpl` is capped by [`Options::max_depth`] (deep nesting moves
//! to fresh large-stack threads, so the cap holds even on small tokio stacks); parsing caps
//! control/paren nesting at 100; output, loop steps, `until`/`seq` sizes and `repeat` are
//! bounded; printing, JSON, `deepCopy` and `deepEqual` stop at 100 levels (cyclic maps built with
//! `set` do not hang).
//!
//! # Caveats
//! Known differences from Helm v4.2.3 (Go 1.24, Sprig v3.3):
//! - Go's `int` and `int64` are both [`Value::Int`]: `typeOf (add 1 2)` prints `int`, and
//!   `duration` of an integer literal formats it instead of Go's `0s`.
//! - Strings are UTF-8: byte-slicing functions (`trunc`, `substr`) cannot split a rune the way
//!   Go does, and typed Go slices (`[]string` from `splitList`, `[]int` from `until`) print
//!   `[]interface {}` under `typeOf`.
//! - `genCA`/`genSelfSignedCert`/`genSignedCert`/`genPrivateKey` make ECDSA P-256 keys
//!   (Sprig: RSA-2048); `genPrivateKey "rsa"`/`"dsa"` fail with a clear error.
//! - `printf "%x"` of a float prints `%g`, not Go's hexadecimal float.

mod error;
mod exec;
mod funcs;
pub mod gofmt;
pub mod json;
mod parse;
mod sprig;
mod value;

use std::collections::HashMap;
use std::sync::Arc;

pub use error::{Error, Frame, FuncError};
pub use exec::Context;
pub use value::{Bytes, Map, Object, Value, WriteWatch};

use parse::TreeMap;

/// What a missing map key evaluates to (Go's `missingkey` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// `missingkey=default`/`invalid`: no value (printed `<no value>`; a field of it is no value).
    #[default]
    Default,
    /// `missingkey=zero`: the zero value of `interface{}` (nil); a field of it is an error
    /// "nil pointer evaluating interface {}.x". Helm uses this unless `--strict`.
    Zero,
    /// `missingkey=error`: execution stops with "map has no entry for key".
    Error,
}

/// Execution options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Missing map key behaviour.
    pub missing_key: MissingKey,
    /// Maximum nesting of template calls (`template`, `include`, `tpl`); Go allows 100000 but
    /// each level uses native stack here.
    pub max_depth: usize,
    /// Maximum bytes of output of one execution, including nested executions' results.
    pub max_output: usize,
    /// Maximum number of range iterations and template calls in one execution.
    pub max_steps: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            missing_key: MissingKey::Default,
            max_depth: 200,
            max_output: 256 << 20,
            max_steps: 200_000_000,
        }
    }
}

/// The Go type of a function parameter, used to check and convert arguments like Go's
/// reflection call does (`wrong type for value; expected string; got int`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// `interface{}`: anything; a missing value becomes nil.
    Any,
    /// `string`.
    String,
    /// `int` (integer constants and ints; floats are rejected like Go does).
    Int,
    /// `float64` (number constants and floats).
    Float,
    /// `bool`.
    Bool,
    /// `map[string]interface{}` (a missing value becomes an empty map like a Go nil map).
    Map,
    /// `[]interface{}` (a missing value becomes an empty list).
    List,
    /// `reflect.Value`: passed as is, a missing value stays [`Value::Missing`].
    Reflect,
}

/// A function's parameter list: fixed parameters, then an optional variadic one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The fixed parameters.
    pub params: Vec<Param>,
    /// The type of each variadic argument, if the function is variadic.
    pub variadic: Option<Param>,
}

impl Signature {
    /// A fixed-arity signature.
    pub fn fixed(params: &[Param]) -> Signature {
        Signature { params: params.to_vec(), variadic: None }
    }

    /// A variadic signature: `params` followed by any number of `rest`.
    pub fn variadic(params: &[Param], rest: Param) -> Signature {
        Signature { params: params.to_vec(), variadic: Some(rest) }
    }
}

/// The body of a template function.
pub type FuncBody = dyn Fn(&mut Context<'_>, &[Value]) -> Result<Value, FuncError> + Send + Sync;

/// A registered template function.
#[derive(Clone)]
pub struct Func {
    pub(crate) signature: Signature,
    pub(crate) body: Arc<FuncBody>,
}

impl Func {
    /// A function with a signature and a body.
    pub fn new(
        signature: Signature,
        body: impl Fn(&mut Context<'_>, &[Value]) -> Result<Value, FuncError> + Send + Sync + 'static,
    ) -> Func {
        Func { signature, body: Arc::new(body) }
    }
}

/// Function names are hashed on every call; FNV-1a is much cheaper than SipHash for short keys
/// (the table is built by the caller, so hash flooding is not a concern).
#[derive(Default, Clone, Copy)]
pub(crate) struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// The function table.
pub(crate) type FuncMap = HashMap<String, Func, std::hash::BuildHasherDefault<FnvHasher>>;

/// The names of Go's builtin template functions (handled by the executor).
pub const BUILTINS: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

/// A set of parsed templates sharing functions and options.
#[derive(Clone)]
pub struct TemplateSet {
    pub(crate) trees: TreeMap,
    pub(crate) funcs: Arc<FuncMap>,
    pub(crate) options: Options,
    pub(crate) text_cache: Arc<std::sync::Mutex<HashMap<String, Arc<ParsedText>>>>,
}

impl Default for TemplateSet {
    fn default() -> Self {
        TemplateSet::new()
    }
}

impl TemplateSet {
    /// A set with Go's builtins and every Sprig v3 function Helm exposes (minus `env` and
    /// `expandenv`).
    pub fn new() -> TemplateSet {
        let mut funcs = FuncMap::default();
        sprig::register(&mut funcs);
        TemplateSet {
            trees: TreeMap::default(),
            funcs: Arc::new(funcs),
            options: Options::default(),
            text_cache: Arc::default(),
        }
    }

    /// A set with only Go's builtin functions.
    pub fn without_sprig() -> TemplateSet {
        TemplateSet {
            trees: TreeMap::default(),
            funcs: Arc::new(FuncMap::default()),
            options: Options::default(),
            text_cache: Arc::default(),
        }
    }

    /// Sets the execution options.
    pub fn set_options(&mut self, options: Options) {
        self.options = options;
    }

    /// The execution options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Registers (or replaces) function `name`. Register functions before parsing templates
    /// that call them: like Go, parsing rejects unknown function names.
    pub fn add_func(&mut self, name: &str, func: Func) {
        Arc::make_mut(&mut self.funcs).insert(name.to_string(), func);
        // Parses depend on which functions exist.
        self.text_cache = Arc::default();
    }

    /// Removes function `name` (e.g. Helm removes Sprig's `env` and `expandenv`).
    pub fn remove_func(&mut self, name: &str) {
        Arc::make_mut(&mut self.funcs).remove(name);
        self.text_cache = Arc::default();
    }

    /// Whether function `name` is registered (builtins included).
    pub fn has_func(&self, name: &str) -> bool {
        BUILTINS.contains(&name) || self.funcs.contains_key(name)
    }

    /// Parses `text` as template `name` and adds it and its `define`/`block` templates to the set.
    ///
    /// # Errors
    /// A parse error, formatted `template: NAME:LINE: MESSAGE`.
    pub fn parse(&mut self, name: &str, text: &str) -> Result<(), Error> {
        let funcs = &self.funcs;
        let is_func = |f: &str| BUILTINS.contains(&f) || funcs.contains_key(f);
        let parsed = parse::parse(name, text, &is_func)?;
        for tree in parsed.trees {
            add_tree(&mut self.trees, tree);
        }
        Ok(())
    }

    /// Whether a template `name` exists (a file or a `define`).
    pub fn has_template(&self, name: &str) -> bool {
        self.trees.contains_key(name)
    }

    /// The names of all templates, sorted.
    pub fn template_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.trees.keys().cloned().collect();
        names.sort();
        names
    }

    /// Executes template `name` with `data` as dot and `$`.
    ///
    /// # Errors
    /// An execution error in Go's format, or `template: no template "NAME" associated with
    /// template "NAME"` when the name is unknown.
    pub fn execute(&self, name: &str, data: &Value) -> Result<String, Error> {
        exec::execute(self, name, data)
    }
}

/// A string parsed for `Context::execute_text`: its body and its defines.
pub(crate) struct ParsedText {
    pub(crate) body: Arc<parse::Tree>,
    pub(crate) overlay: Arc<TreeMap>,
}

/// Entries kept in the `execute_text` parse cache before it is cleared.
const TEXT_CACHE_LIMIT: usize = 4096;

impl TemplateSet {
    /// Parses text for `execute_text`, reusing earlier parses of the same name and text (charts
    /// call `tpl` on the same strings many times).
    pub(crate) fn parse_text(&self, name: &str, text: &str) -> Result<Arc<ParsedText>, Error> {
        let key = format!("{name}\0{text}");
        if let Some(hit) = self.text_cache.lock().ok().and_then(|cache| cache.get(&key).cloned()) {
            return Ok(hit);
        }
        let funcs = &self.funcs;
        let is_func = |f: &str| BUILTINS.contains(&f) || funcs.contains_key(f);
        let mut trees = parse::parse(name, text, &is_func)?.trees.into_iter();
        let body = match trees.next() {
            Some(tree) => Arc::new(tree),
            None => return Err(Error::Message(format!("template: {name}: empty parse result"))),
        };
        let mut overlay = TreeMap::default();
        for tree in trees {
            add_tree(&mut overlay, tree);
        }
        let parsed = Arc::new(ParsedText { body, overlay: Arc::new(overlay) });
        if let Ok(mut cache) = self.text_cache.lock() {
            if cache.len() >= TEXT_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key, parsed.clone());
        }
        Ok(parsed)
    }
}

/// Adds a tree following Go's `associate`: an empty body does not replace an existing template.
pub(crate) fn add_tree(trees: &mut TreeMap, tree: parse::Tree) {
    if let Some(old) = trees.get(&*tree.name)
        && parse::is_empty_tree(&tree.root)
        && !parse::is_empty_tree(&old.root)
    {
        return;
    }
    trees.insert(tree.name.to_string(), Arc::new(tree));
}
