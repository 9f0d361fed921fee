//! The strategic merge algorithm over `serde_json::Value`.
//!
//! The behaviour follows kustomize v5.5.0, which applies strategic merge patches with kyaml's
//! walker (`kubernetes-sigs/kustomize:kyaml/yaml/merge2/merge2.go` and `kyaml/yaml/walk/`):
//!
//! - maps merge field by field; `null` in the patch deletes a field; new fields are appended in
//!   sorted order, as kyaml does;
//! - lists whose schema has the `merge` strategy and merge keys merge element by element
//!   (matched on all keys, a key missing on one side matches any value); as in kustomize, the
//!   patch's elements come first, then the original's other elements ([`ListOrder`]); lists of
//!   primitives with the `merge` strategy are merged as sets, in the same order;
//! - other lists, and every list of a kind the schema does not know, are replaced;
//! - `$patch: delete|replace|merge` in a map or as a list element `{$patch: …}`.
//!
//! On top of kyaml, the directives of `k8s.io/apimachinery/pkg/util/strategicpatch` that kyaml
//! would copy verbatim into the output are honoured: `$setElementOrder/<list>`,
//! `$deleteFromPrimitiveList/<list>` and `$retainKeys`.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::schema::{ListStrategy, Node};
use crate::{Error, Schema};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Merge `patch` into `original`; types from original's apiVersion/kind. Ok(None) when the patch
/// deletes the whole object (`$patch: delete` at top level).
///
/// The kind is looked up in `schema` by the original's `apiVersion` and `kind` (the patch's when
/// the original has none). Unknown kinds merge maps but replace every list, as kustomize does.
///
/// # Errors
/// [`Error::InvalidPatch`] when a directive is malformed or the patch has another shape than the
/// original at some field (a map where the original has a list, …); the message names the path.
pub fn merge(original: &Value, patch: &Value, schema: &Schema) -> Result<Option<Value>, Error> {
    merge_with(original, patch, schema, &MergeOptions::default())
}

/// [`merge`] with options, e.g. [`ListOrder::OriginalFirst`] to append new list elements.
///
/// # Errors
/// As [`merge`].
pub fn merge_with(
    original: &Value,
    patch: &Value,
    schema: &Schema,
    options: &MergeOptions,
) -> Result<Option<Value>, Error> {
    let merger = Merger { schema, options };
    let mut path = Vec::new();
    merger.walk(Some(original), Some(patch), None, &mut path)
}

/// A shape of a JSON node, named as in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Map,
    List,
    Scalar,
}

impl Shape {
    fn of(value: &Value) -> Option<Shape> {
        match value {
            Value::Null => None,
            Value::Object(_) => Some(Shape::Map),
            Value::Array(_) => Some(Shape::List),
            _ => Some(Shape::Scalar),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Shape::Map => "a map",
            Shape::List => "a list",
            Shape::Scalar => "a scalar",
        }
    }
}

/// A `$patch` directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Merge,
    Replace,
    Delete,
}

struct Merger<'s> {
    schema: &'s Schema,
    options: &'s MergeOptions,
}

/// Where the elements of a patch list go relative to the original's in a merged list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListOrder {
    /// The patch's elements (merged with their matches) first, then the original's unmatched
    /// elements: kustomize's `patchesStrategicMerge` and `patches` (kyaml "prepend" direction,
    /// `kubernetes-sigs/kustomize:api/filters/patchstrategicmerge/patchstrategicmerge.go`).
    #[default]
    PatchFirst,
    /// The original's elements in place, new elements appended (kyaml's default "append").
    OriginalFirst,
}

/// Options of [`merge_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeOptions {
    /// Order of merged list elements; kustomize's by default.
    pub list_order: ListOrder,
}

fn path_string(path: &[String]) -> String {
    if path.is_empty() {
        return "<root>".to_owned();
    }
    let mut out = String::new();
    for step in path {
        if !out.is_empty() && !step.starts_with('[') {
            out.push('.');
        }
        out.push_str(step);
    }
    out
}

fn invalid(path: &[String], message: impl Into<String>) -> Error {
    Error::InvalidPatch { path: path_string(path), message: message.into() }
}

fn is_missing_or_null(value: Option<&Value>) -> bool {
    value.is_none_or(Value::is_null)
}

fn parse_directive(value: &Value, path: &[String]) -> Result<Directive, Error> {
    match value.as_str() {
        Some("merge") => Ok(Directive::Merge),
        Some("replace") => Ok(Directive::Replace),
        Some("delete") => Ok(Directive::Delete),
        _ => Err(invalid(
            path,
            format!("unknown patch strategy {value}: $patch must be one of merge, replace, delete"),
        )),
    }
}

/// The string kyaml compares scalars by: the YAML scalar text.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Object(_) | Value::Array(_) => None,
    }
}

/// Remove the apimachinery-only directive keys from a map (they never reach the output).
fn is_directive_key(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

impl Merger<'_> {
    /// Merge one node (kyaml `Walker.Walk`). `None` in the result clears the field.
    fn walk(
        &self,
        dest: Option<&Value>,
        patch: Option<&Value>,
        schema: Option<&Node>,
        path: &mut Vec<String>,
    ) -> Result<Option<Value>, Error> {
        let dest_shape = dest.and_then(Shape::of);
        let patch_shape = patch.and_then(Shape::of);
        if let (Some(d), Some(p)) = (dest_shape, patch_shape)
            && d != p
        {
            return Err(invalid(
                path,
                format!(
                    "the patch has {} where the original has {}; make the patch match the shape of the original",
                    p.name(),
                    d.name()
                ),
            ));
        }
        match dest_shape.or(patch_shape) {
            // Missing and null nodes are walked as maps, as kyaml does.
            Some(Shape::Map) | None => self.walk_map(dest, patch, schema, path),
            Some(Shape::List) => self.walk_list(dest, patch, schema, path),
            Some(Shape::Scalar) => Ok(match patch {
                Some(p) => Some(p.clone()),
                None => dest.cloned(),
            }),
        }
    }

    /// The schema of a map: the one passed down, or the kind's when the map has
    /// `apiVersion` and `kind` (kyaml `Walker.GetSchema`).
    fn map_schema<'a>(
        &'a self,
        schema: Option<&'a Node>,
        sources: [Option<&Value>; 2],
    ) -> Option<&'a Node> {
        if schema.is_some() {
            return schema;
        }
        sources.into_iter().flatten().find_map(|source| {
            let api_version = source.get("apiVersion")?.as_str()?;
            let kind = source.get("kind")?.as_str()?;
            self.schema.kind_node(api_version, kind)
        })
    }

    fn walk_map(
        &self,
        dest: Option<&Value>,
        patch: Option<&Value>,
        schema: Option<&Node>,
        path: &mut Vec<String>,
    ) -> Result<Option<Value>, Error> {
        let schema = self.map_schema(schema, [dest, patch]);
        let patch_map = patch.and_then(Value::as_object);
        let directive = match patch_map.and_then(|m| m.get(PATCH)) {
            Some(value) => {
                path.push(PATCH.to_owned());
                let directive = parse_directive(value, path);
                path.pop();
                directive?
            }
            None => Directive::Merge,
        };

        // kyaml `Merger.VisitMap`: decide the starting value of the result.
        let mut result: Map<String, Value> = if is_missing_or_null(dest) {
            if directive == Directive::Delete {
                return Ok(None);
            }
            match patch {
                // An explicit null in the original with nothing in the patch is kept.
                None => return Ok(dest.cloned()),
                Some(Value::Null) => return Ok(None),
                Some(_) => Map::new(),
            }
        } else {
            if patch.is_some_and(Value::is_null) {
                return Ok(None);
            }
            match directive {
                Directive::Delete => return Ok(None),
                Directive::Replace => Map::new(),
                Directive::Merge => dest.and_then(Value::as_object).cloned().unwrap_or_default(),
            }
        };
        let Some(patch_map) = patch_map else {
            return Ok(Some(Value::Object(result)));
        };
        let replacing = directive == Directive::Replace;

        // Fields of the patch, without directives. A field new to the result is appended in
        // sorted order, as kyaml's walker does (`walk/map.go` `fieldNames`), except when the
        // whole map comes from the patch: then the patch's own order is kept.
        let from_patch_only = result.is_empty();
        let mut names: Vec<&String> = patch_map.keys().filter(|k| !is_directive_key(k)).collect();
        if !from_patch_only {
            names.sort();
        }
        for name in names {
            let patch_value = &patch_map[name.as_str()];
            let field_schema = schema.and_then(|s| self.schema.field(s, name));
            path.push(name.clone());
            // A replaced map merges the patch into itself: directives inside are still applied.
            let dest_value = if replacing { None } else { result.get(name.as_str()) };
            let merged = self.walk(dest_value, Some(patch_value), field_schema, path)?;
            path.pop();
            match merged {
                Some(value) if !value.is_null() => {
                    result.insert(name.clone(), value);
                }
                _ => {
                    result.shift_remove(name.as_str());
                }
            }
        }

        self.apply_list_directives(&mut result, patch_map, schema, path)?;
        if let Some(retain) = patch_map.get(RETAIN_KEYS) {
            path.push(RETAIN_KEYS.to_owned());
            let keep = self.string_list(retain, path)?;
            path.pop();
            result.retain(|k, _| keep.contains(k));
        }
        Ok(Some(Value::Object(result)))
    }

    /// A directive value that must be a list of strings.
    fn string_list(&self, value: &Value, path: &[String]) -> Result<HashSet<String>, Error> {
        let items = value.as_array().ok_or_else(|| invalid(path, "must be a list"))?;
        items
            .iter()
            .map(|item| {
                scalar_text(item)
                    .ok_or_else(|| invalid(path, "must be a list of scalars, e.g. field names"))
            })
            .collect()
    }

    /// Apply `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` of a patch map
    /// to the merged map.
    fn apply_list_directives(
        &self,
        result: &mut Map<String, Value>,
        patch_map: &Map<String, Value>,
        schema: Option<&Node>,
        path: &mut Vec<String>,
    ) -> Result<(), Error> {
        for (key, value) in patch_map {
            if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                path.push(key.clone());
                let remove = value
                    .as_array()
                    .ok_or_else(|| invalid(path, "must be a list of the values to remove"))?;
                if let Some(Value::Array(list)) = result.get_mut(field) {
                    list.retain(|item| !remove.contains(item));
                }
                path.pop();
            } else if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
                path.push(key.clone());
                let order =
                    value.as_array().ok_or_else(|| invalid(path, "must be a list of elements"))?;
                let keys =
                    match schema.and_then(|s| self.schema.field(s, field)).map(Node::list_strategy)
                    {
                        Some(ListStrategy::MergeByKeys(keys)) => keys,
                        _ => Vec::new(),
                    };
                if let Some(Value::Array(list)) = result.get_mut(field) {
                    *list = set_element_order(std::mem::take(list), order, &keys);
                }
                path.pop();
            }
        }
        Ok(())
    }

    fn walk_list(
        &self,
        dest: Option<&Value>,
        patch: Option<&Value>,
        schema: Option<&Node>,
        path: &mut Vec<String>,
    ) -> Result<Option<Value>, Error> {
        let strategy = schema.map_or(ListStrategy::Replace, Node::list_strategy);
        let Some(patch) = patch else {
            return Ok(dest.cloned());
        };
        let Value::Array(patch_items) = patch else {
            // A null patch clears the list.
            return Ok(None);
        };
        // kyaml `determineSequenceNodePatchStrategy`: an element that is exactly `{$patch: X}`.
        let mut directive = Directive::Merge;
        let mut items: Vec<&Value> = Vec::with_capacity(patch_items.len());
        for item in patch_items {
            match item.as_object() {
                Some(map) if map.len() == 1 && map.contains_key(PATCH) => {
                    path.push(PATCH.to_owned());
                    let parsed = parse_directive(&map[PATCH], path);
                    path.pop();
                    directive = parsed?;
                }
                _ => items.push(item),
            }
        }
        if directive == Directive::Delete {
            return Ok(None);
        }
        let dest_items: &[Value] = match (directive, dest) {
            (Directive::Merge, Some(Value::Array(d))) => d,
            _ => &[],
        };
        let element_schema = schema.and_then(|s| self.schema.elements(s));
        let merged = match strategy {
            // Non-associative lists: the patch list replaces the original, as is.
            ListStrategy::Replace => items.into_iter().cloned().collect(),
            ListStrategy::MergePrimitives => match self.options.list_order {
                ListOrder::PatchFirst => {
                    let dest_refs: Vec<&Value> = dest_items.iter().collect();
                    let patch_owned: Vec<Value> = items.iter().map(|v| (*v).clone()).collect();
                    merge_primitives(&patch_owned, &dest_refs)
                }
                ListOrder::OriginalFirst => merge_primitives(dest_items, &items),
            },
            ListStrategy::MergeByKeys(keys) => {
                self.merge_by_keys(dest_items, &items, &keys, element_schema, path)?
            }
        };
        Ok(Some(Value::Array(merged)))
    }

    /// Merge two lists of maps by merge keys (kyaml `walkAssociativeSequence`).
    fn merge_by_keys(
        &self,
        dest_items: &[Value],
        patch_items: &[&Value],
        keys: &[String],
        element_schema: Option<&Node>,
        path: &mut Vec<String>,
    ) -> Result<Vec<Value>, Error> {
        // kyaml `validateKeys`: keys that no element on either side sets are ignored.
        let all: Vec<&Value> = dest_items.iter().chain(patch_items.iter().copied()).collect();
        let used: Vec<&String> =
            keys.iter().filter(|k| all.iter().any(|item| key_text(item, k).is_some())).collect();
        let keys: Vec<&String> = if used.is_empty() { keys.iter().collect() } else { used };
        let key_of = |item: &Value| -> Vec<Option<String>> {
            keys.iter().map(|k| key_text(item, k)).collect()
        };

        // `front` is the output so far; `rest` holds the original elements not yet matched, which
        // follow the patch's elements when the patch goes first (kyaml's "prepend" direction).
        let (mut front, mut rest): (Vec<Value>, Vec<Option<Value>>) = match self.options.list_order
        {
            ListOrder::PatchFirst => (Vec::new(), dest_items.iter().cloned().map(Some).collect()),
            ListOrder::OriginalFirst => (dest_items.to_vec(), Vec::new()),
        };
        for patch_item in patch_items {
            if !patch_item.is_object() {
                // Scalars in a list of maps cannot be matched: kept as they are.
                front.push((*patch_item).clone());
                continue;
            }
            let patch_key = key_of(patch_item);
            let matches = |item: &Value| keys_match(&key_of(item), &patch_key);
            let position = match front.iter().position(matches) {
                Some(i) => Some(Slot::Front(i)),
                None => {
                    rest.iter().position(|item| item.as_ref().is_some_and(matches)).map(Slot::Rest)
                }
            };
            let matched: Option<Value> = match position {
                Some(Slot::Front(i)) => Some(front[i].clone()),
                Some(Slot::Rest(i)) => rest[i].take(),
                None => None,
            };
            // The key fields as they were, to put back if the merge dropped them.
            let key_fields: Vec<(&String, Value)> = keys
                .iter()
                .filter_map(|k| {
                    let from_dest = matched.as_ref().and_then(|m| m.get(k.as_str()));
                    Some((*k, from_dest.or_else(|| patch_item.get(k.as_str()))?.clone()))
                })
                .collect();
            path.push(describe_element(&keys, &patch_key));
            let merged = self.walk(matched.as_ref(), Some(patch_item), element_schema, path)?;
            path.pop();
            // An element merged into nothing (`$patch: delete`, or an empty map) is removed.
            let merged = merged
                .filter(|v| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()))
                .map(|mut value| {
                    restore_keys(&mut value, &key_fields);
                    value
                });
            match (position, merged) {
                (Some(Slot::Front(i)), Some(value)) => front[i] = value,
                (Some(Slot::Front(i)), None) => {
                    front.remove(i);
                }
                (_, Some(value)) => front.push(value),
                (_, None) => {}
            }
        }
        front.extend(rest.into_iter().flatten());
        Ok(front)
    }
}

/// Where a patch element's match was found.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Front(usize),
    Rest(usize),
}

/// The text of a merge key of a list element; `None` when the element lacks it.
fn key_text(item: &Value, key: &str) -> Option<String> {
    item.get(key).and_then(scalar_text).filter(|s| !s.is_empty())
}

/// kyaml `match`: two keys match when they agree on at least one key and differ only where one
/// side lacks the key (a port without protocol matches the same port with `TCP`).
fn keys_match(a: &[Option<String>], b: &[Option<String>]) -> bool {
    let mut common = false;
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Some(x), Some(y)) if x == y => common = true,
            (None, None) => common = true,
            (Some(_), Some(_)) => return false,
            _ => {}
        }
    }
    common
}

/// kyaml sets the merge keys back on a merged element when the merge dropped them.
fn restore_keys(value: &mut Value, key_fields: &[(&String, Value)]) {
    if let Value::Object(map) = value {
        for (key, key_value) in key_fields {
            if !map.contains_key(key.as_str()) {
                map.insert((*key).clone(), key_value.clone());
            }
        }
    }
}

/// A path step naming a list element by its keys, e.g. `[name=nginx]`.
fn describe_element(keys: &[&String], values: &[Option<String>]) -> String {
    let parts: Vec<String> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("")))
        .collect();
    format!("[{}]", parts.join(","))
}

/// Merge lists of primitives as sets: the first list's values (deduplicated) then the second's
/// new ones, in order (kyaml `elementPrimitiveValues`).
fn merge_primitives(dest_items: &[Value], patch_items: &[&Value]) -> Vec<Value> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut result = Vec::new();
    for item in dest_items.iter().chain(patch_items.iter().copied()) {
        let text = scalar_text(item).unwrap_or_else(|| item.to_string());
        if seen.insert(text) {
            result.push(item.clone());
        }
    }
    result
}

/// Reorder a merged list by `$setElementOrder` (apimachinery `normalizeElementOrder`): the
/// elements named in `order` are sorted in that order among the slots they occupy, and the
/// other elements keep their places.
fn set_element_order(list: Vec<Value>, order: &[Value], keys: &[String]) -> Vec<Value> {
    let rank_of = |item: &Value| -> Option<usize> {
        order.iter().position(|o| {
            if keys.is_empty() {
                o == item
            } else {
                let order_key: Vec<Option<String>> = keys.iter().map(|k| key_text(o, k)).collect();
                let item_key: Vec<Option<String>> =
                    keys.iter().map(|k| key_text(item, k)).collect();
                keys_match(&order_key, &item_key)
            }
        })
    };
    let ranks: Vec<Option<usize>> = list.iter().map(rank_of).collect();
    let mut named: Vec<(usize, Value)> = Vec::new();
    let mut slots: Vec<Option<Value>> = Vec::with_capacity(list.len());
    for (item, rank) in list.into_iter().zip(&ranks) {
        match rank {
            Some(rank) => {
                named.push((*rank, item));
                slots.push(None);
            }
            None => slots.push(Some(item)),
        }
    }
    // A stable sort keeps elements with the same rank in merge order.
    named.sort_by_key(|(rank, _)| *rank);
    let mut named = named.into_iter().map(|(_, item)| item);
    slots.into_iter().filter_map(|slot| slot.or_else(|| named.next())).collect()
}
