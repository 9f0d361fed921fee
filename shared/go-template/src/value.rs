//! The dynamic [`Value`] type that templates operate on, with Go's `interface{}` semantics.
//!
//! Maps are shared and mutable like Go maps (Sprig's `set`, `unset` and `merge` change them in
//! place and every holder sees the change); lists and strings are immutable and cheap to clone.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::Error;
use crate::exec::Context;

/// A dynamically typed template value, modelled on Go's `interface{}` holding JSON-like data.
#[derive(Clone, Default)]
pub enum Value {
    /// Go's invalid `reflect.Value`: the result of a missing map key (with `missingkey=default`),
    /// a field of nothing, or a nil at the end of a pipeline. Printed as `<no value>`.
    #[default]
    Missing,
    /// A nil `interface{}` (JSON `null`). Printed as `<nil>` by `print`, `<no value>` by an action.
    Nil,
    /// A Go `bool`.
    Bool(bool),
    /// A Go `int` (64 bits), e.g. the result of `len`, `atoi`, `add` or an integer literal.
    Int(i64),
    /// A Go `float64`, e.g. every number read from YAML values or JSON.
    Float(f64),
    /// A Go `string`.
    String(Arc<str>),
    /// A Go `[]interface{}`.
    List(Arc<Vec<Value>>),
    /// A Go `map[string]interface{}`, shared by reference like Go maps.
    Map(Map),
    /// A host object with fields and methods (e.g. Helm's `.Files`, `.Capabilities`, `.Chart`).
    Object(Arc<dyn Object>),
}

/// A host object: a Go struct or named type with fields and methods, implemented by the caller.
pub trait Object: Send + Sync {
    /// The Go type name printed in errors and by `typeOf`, e.g. `*chart.Metadata`.
    fn type_name(&self) -> &str;
    /// The value of field or zero-argument method `name`, or `None` if the type has no such member.
    fn field(&self, name: &str) -> Option<Value>;
    /// Calls method `name` with arguments; `None` when there is no method of that name.
    ///
    /// Fields named by [`Object::field`] are tried first when no arguments are given.
    fn call_method(
        &self,
        name: &str,
        args: &[Value],
        ctx: &mut Context<'_>,
    ) -> Option<Result<Value, Error>> {
        let _ = (name, args, ctx);
        None
    }
    /// The value used when the object is printed or serialized (e.g. a map of its fields, or
    /// the list a Go slice type such as Helm's `VersionSet` holds).
    fn to_value(&self) -> Value {
        Value::Nil
    }
    /// The object as `Any`, for functions that need their own host types back (e.g. `time.Time`).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
    /// The (key, element) pairs `range` visits, for a Go map whose keys are not strings (e.g. a
    /// map keyed by a struct); `None` ranges over [`Object::to_value`].
    fn range_entries(&self) -> Option<Vec<(Value, Value)>> {
        None
    }
}

/// A Go `[]byte` (Helm's `.Files.GetBytes`): printed as a list of numbers by `print` and `%v`,
/// as text by `%s`, `toString` and `quote`, and as base64 by `toJson` and `toYaml`, like Go.
pub struct Bytes(pub Arc<[u8]>);

impl Object for Bytes {
    fn type_name(&self) -> &str {
        "[]uint8"
    }

    fn field(&self, _name: &str) -> Option<Value> {
        None
    }

    fn to_value(&self) -> Value {
        Value::list(self.0.iter().map(|b| Value::Int(i64::from(*b))).collect())
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// A shared, mutable map with string keys, iterated in sorted key order (as Go's templates do).
#[derive(Clone)]
pub struct Map {
    inner: Arc<RwLock<BTreeMap<String, Value>>>,
    type_name: Option<Arc<str>>,
    /// The [`WriteWatch`] epoch in which the map was created.
    born: u64,
}

static MAP_EPOCH: AtomicU64 = AtomicU64::new(0);
static OLD_MAP_WRITES: AtomicU64 = AtomicU64::new(0);

/// Detects writes to maps that existed before the watch started (Sprig's `set`, `unset`,
/// `merge` on shared values): lets a caller run independent executions concurrently and fall
/// back to running them in order when one changed state the others could see.
///
/// Writes anywhere in the process count, so a concurrent unrelated execution can only cause a
/// false alarm, never hide a write.
#[derive(Debug, Clone, Copy)]
pub struct WriteWatch {
    writes: u64,
}

impl WriteWatch {
    /// Starts watching: maps created before this call are "old" from now on.
    pub fn start() -> WriteWatch {
        MAP_EPOCH.fetch_add(1, AtomicOrdering::SeqCst);
        WriteWatch { writes: OLD_MAP_WRITES.load(AtomicOrdering::SeqCst) }
    }

    /// Whether a map created before [`WriteWatch::start`] was written since.
    pub fn old_maps_written(&self) -> bool {
        OLD_MAP_WRITES.load(AtomicOrdering::SeqCst) != self.writes
    }
}

impl Default for Map {
    fn default() -> Self {
        Map::new()
    }
}

impl Map {
    /// An empty `map[string]interface {}`.
    pub fn new() -> Self {
        Map::from_btree(BTreeMap::new())
    }

    /// Wraps an existing map.
    pub fn from_btree(map: BTreeMap<String, Value>) -> Self {
        Map {
            inner: Arc::new(RwLock::new(map)),
            type_name: None,
            born: MAP_EPOCH.load(AtomicOrdering::SeqCst),
        }
    }

    /// The same map (sharing contents) presented as a named Go type such as `common.Values`.
    ///
    /// A named map type is what `typeOf` prints, and Sprig functions that assert
    /// `map[string]interface {}` on an `interface{}` argument (e.g. `dig`) reject it as Go does.
    pub fn with_type_name(mut self, name: &str) -> Self {
        self.type_name = Some(Arc::from(name));
        self
    }

    /// The Go named type, if any (`None` means `map[string]interface {}`).
    pub fn type_name(&self) -> Option<&str> {
        self.type_name.as_deref()
    }

    /// Read access to the entries.
    pub fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Value>> {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Write access to the entries.
    ///
    /// # Caveats
    /// Do not hold a read guard of the same map while writing (snapshot first).
    pub fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Value>> {
        if self.born < MAP_EPOCH.load(AtomicOrdering::SeqCst) {
            OLD_MAP_WRITES.fetch_add(1, AtomicOrdering::SeqCst);
        }
        self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.read().get(key).cloned()
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.read().contains_key(key)
    }

    /// Stores `value` under `key`, visible to every holder of this map.
    pub fn insert(&self, key: impl Into<String>, value: Value) {
        self.write().insert(key.into(), value);
    }

    /// Removes `key`, returning the old value.
    pub fn remove(&self, key: &str) -> Option<Value> {
        self.write().remove(key)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The keys in sorted order.
    pub fn keys(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// A snapshot of the entries in sorted key order.
    pub fn entries(&self) -> Vec<(String, Value)> {
        self.read().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Whether both handles share the same storage.
    pub fn ptr_eq(&self, other: &Map) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A map with a copy of the entries (values shared, nested maps shared).
    pub fn shallow_copy(&self) -> Map {
        Map { type_name: self.type_name.clone(), ..Map::from_btree(self.read().clone()) }
    }
}

impl FromIterator<(String, Value)> for Map {
    fn from_iter<T: IntoIterator<Item = (String, Value)>>(iter: T) -> Self {
        Map::from_btree(iter.into_iter().collect())
    }
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::String(Arc::from(s))
    }

    /// A list value.
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    /// A Go `[]byte` value.
    pub fn bytes(data: &[u8]) -> Value {
        Value::Object(Arc::new(Bytes(Arc::from(data))))
    }

    /// The bytes if this is a Go `[]byte` ([`Value::bytes`]).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Object(o) => o.as_any().and_then(|a| a.downcast_ref::<Bytes>()).map(|b| &*b.0),
            _ => None,
        }
    }

    /// A new empty map value.
    pub fn new_map() -> Value {
        Value::Map(Map::new())
    }

    /// Whether this is `Missing` or `Nil`.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Missing | Value::Nil)
    }

    /// Go's template truth: false, 0, nil, empty string/list/map are false.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Missing | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            // A Go slice or map type (Helm's `VersionSet`) is false when empty; structs are true.
            Value::Object(o) => match o.to_value() {
                inner @ (Value::List(_) | Value::Map(_)) => inner.is_true(),
                _ => true,
            },
        }
    }

    /// The value itself, or for a host object the value it stands for ([`Object::to_value`]) when
    /// that is not nil: lets list and map functions accept Go slice and map types.
    pub fn resolved(&self) -> Value {
        match self {
            Value::Object(o) => match o.to_value() {
                Value::Nil | Value::Missing => self.clone(),
                inner => inner,
            },
            other => other.clone(),
        }
    }

    /// The string slice if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The map if this is a map.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The list items if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// Go's `reflect.Kind` name, as Sprig's `kindOf` prints it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Missing | Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "slice",
            Value::Map(_) => "map",
            Value::Object(o) if o.type_name().starts_with('*') => "ptr",
            Value::Object(o) => match o.to_value() {
                Value::List(_) => "slice",
                Value::Map(_) => "map",
                Value::String(_) => "string",
                _ => "ptr",
            },
        }
    }

    /// Go's type name, as `printf "%T"` and Sprig's `typeOf` print it.
    pub fn type_name(&self) -> String {
        match self {
            Value::Missing | Value::Nil => "<nil>".to_string(),
            Value::Bool(_) => "bool".to_string(),
            Value::Int(_) => "int".to_string(),
            Value::Float(_) => "float64".to_string(),
            Value::String(_) => "string".to_string(),
            Value::List(_) => "[]interface {}".to_string(),
            Value::Map(m) => m.type_name().unwrap_or("map[string]interface {}").to_string(),
            Value::Object(o) => o.type_name().to_string(),
        }
    }

    /// Converts from JSON; every number becomes a `float64`, as Go's `encoding/json` does.
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::str(s),
            serde_json::Value::Array(items) => {
                Value::list(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(map) => {
                Value::Map(map.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect())
            }
        }
    }

    /// Converts from JSON keeping integral numbers that fit `i64` as Go `int`.
    pub fn from_json_keep_ints(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::Array(items) => {
                Value::list(items.iter().map(Value::from_json_keep_ints).collect())
            }
            serde_json::Value::Object(map) => Value::Map(
                map.iter().map(|(k, v)| (k.clone(), Value::from_json_keep_ints(v))).collect(),
            ),
            other => Value::from_json(other),
        }
    }

    /// Converts to JSON (maps in sorted key order; objects through [`Object::to_value`];
    /// non-finite floats become `null`).
    pub fn to_json(&self) -> serde_json::Value {
        self.to_json_at(0)
    }

    fn to_json_at(&self, depth: usize) -> serde_json::Value {
        if depth > crate::gofmt::MAX_NESTING {
            return serde_json::Value::Null;
        }
        match self {
            Value::Missing | Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::List(l) => {
                serde_json::Value::Array(l.iter().map(|v| v.to_json_at(depth + 1)).collect())
            }
            Value::Map(m) => serde_json::Value::Object(
                m.entries().into_iter().map(|(k, v)| (k, v.to_json_at(depth + 1))).collect(),
            ),
            Value::Object(_) if self.as_bytes().is_some() => {
                // encoding/json writes a []byte as base64 text.
                use base64::Engine as _;
                let data = self.as_bytes().unwrap_or_default();
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(data))
            }
            Value::Object(o) => o.to_value().to_json_at(depth + 1),
        }
    }

    /// A deep copy: nested maps are new maps (Sprig's `deepCopy`).
    pub fn deep_copy(&self) -> Value {
        self.deep_copy_at(0)
    }

    fn deep_copy_at(&self, depth: usize) -> Value {
        if depth > crate::gofmt::MAX_NESTING {
            return self.clone();
        }
        match self {
            Value::List(l) => Value::list(l.iter().map(|v| v.deep_copy_at(depth + 1)).collect()),
            Value::Map(m) => {
                let copy: Map =
                    m.entries().into_iter().map(|(k, v)| (k, v.deep_copy_at(depth + 1))).collect();
                Value::Map(match m.type_name() {
                    Some(name) => copy.with_type_name(name),
                    None => copy,
                })
            }
            other => other.clone(),
        }
    }

    /// Go's `reflect.DeepEqual` over values (Sprig's `deepEqual`).
    pub fn deep_equal(&self, other: &Value) -> bool {
        self.deep_equal_at(other, 0)
    }

    fn deep_equal_at(&self, other: &Value, depth: usize) -> bool {
        if depth > crate::gofmt::MAX_NESTING {
            return false;
        }
        match (self, other) {
            (Value::Missing | Value::Nil, Value::Missing | Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len()
                    && a.iter().zip(b.iter()).all(|(x, y)| x.deep_equal_at(y, depth + 1))
            }
            (Value::Map(a), Value::Map(b)) => {
                if a.ptr_eq(b) {
                    return true;
                }
                let (a, b) = (a.entries(), b.entries());
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|((ka, va), (kb, vb))| ka == kb && va.deep_equal_at(vb, depth + 1))
            }
            (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Missing => f.write_str("Missing"),
            Value::Nil => f.write_str("Nil"),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Float(x) => write!(f, "Float({x})"),
            Value::String(s) => write!(f, "String({s:?})"),
            Value::List(l) => f.debug_list().entries(l.iter()).finish(),
            Value::Map(m) => f.debug_map().entries(m.entries()).finish(),
            Value::Object(o) => write!(f, "Object({})", o.type_name()),
        }
    }
}

/// Go's `fmt.Sprint` of a single value (`%v`).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        crate::gofmt::write_value(&mut out, self);
        f.write_str(&out)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::str(s)
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(Arc::from(s))
    }
}
impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::list(items)
    }
}
impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Map(m)
    }
}
impl From<&serde_json::Value> for Value {
    fn from(json: &serde_json::Value) -> Self {
        Value::from_json(json)
    }
}
