//! The strategic merge algorithm over `serde_json::Value`.
//!
//! The behaviour is kustomize v5.5.0's, which applies strategic merge patches with kyaml's
//! walker (`kubernetes-sigs/kustomize:kyaml/yaml/merge2/merge2.go`, `kyaml/yaml/walk/`) in its
//! "prepend" list direction (`api/filters/patchstrategicmerge/patchstrategicmerge.go`):
//!
//! - maps merge field by field; `null` in the patch deletes a field; new fields are appended in
//!   sorted order; every field of the original is walked too, so its merging lists are
//!   normalized (duplicates by key collapse, null and empty elements go) even where the patch
//!   does not touch them;
//! - lists whose schema has the `merge` strategy and merge keys merge element by element: the
//!   patch's elements first, then the original's others ([`ListOrder`]); element identity and
//!   the quirks of kyaml's matching are ported literally in `merge_by_keys`; lists of
//!   primitives with the `merge` strategy are merged as sets, in the same order;
//! - other lists, and every list of a kind the schema does not know, take the patch as it is;
//! - `$patch: delete|replace|merge` in a map, or as a list element `{$patch: …}` of a merging
//!   list, where kyaml honours them (not in lists the original lacks, nor in replaced lists).
//!
//! `tests/kustomize_oracle.rs` checks the result against recorded `kubectl kustomize` outputs.
//!
//! Beyond kyaml, which would copy them verbatim into the output, the directives of
//! `k8s.io/apimachinery/pkg/util/strategicpatch` are honoured: `$setElementOrder/<list>`,
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
    merger.walk(Some(original), Some(patch), false, None, &mut path)
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

/// Where the patch side of a list merge lives: its own list, or (kyaml aliasing both sources
/// to one node) the list being merged into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Patch,
    Dest,
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

/// Whether a patch key is a directive rather than a field (directives never reach the output).
fn is_directive_key(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

impl Merger<'_> {
    /// Merge one node (kyaml `Walker.Walk`). `None` in the result clears the field.
    ///
    /// `aliased` says that `dest` and `patch` are one node in kyaml (the patch merged into
    /// itself, as happens below a field the original lacks): then list directives of the patch
    /// are applied, which they are not when the original simply lacks the list.
    fn walk(
        &self,
        dest: Option<&Value>,
        patch: Option<&Value>,
        aliased: bool,
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
            Some(Shape::Map) | None => self.walk_map(dest, patch, aliased, schema, path),
            Some(Shape::List) => self.walk_list(dest, patch, aliased, schema, path),
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
        aliased: bool,
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
        let patch_is_dest = aliased || is_missing_or_null(dest) || directive == Directive::Replace;
        let mut result: Map<String, Value> = if aliased || is_missing_or_null(dest) {
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
        let empty = Map::new();
        let patch_map = patch_map.unwrap_or(&empty);
        // The original lists, for `$setElementOrder` (apimachinery orders the elements the
        // patch does not name by their place in the original).
        let original_map = if patch_is_dest { None } else { dest.and_then(Value::as_object) };
        if let Some(retain) = patch_map.get(RETAIN_KEYS) {
            self.retain_keys(&mut result, retain, patch_map, path)?;
        }

        // kyaml walks every field of both sides (`walk/map.go` `fieldNames`), so lists of the
        // original are normalized even where the patch does not touch them. A field new to the
        // result is appended in sorted order, except when the whole map comes from the patch:
        // then the patch's own order is kept.
        let mut names: Vec<String> =
            patch_map.keys().filter(|k| !is_directive_key(k)).cloned().collect();
        if !patch_is_dest {
            names.extend(result.keys().filter(|k| !patch_map.contains_key(*k)).cloned());
            names.sort();
        }
        for name in names {
            let patch_value = patch_map.get(&name);
            let field_schema = schema.and_then(|s| self.schema.field(s, &name));
            path.push(name.clone());
            let merged = if patch_is_dest {
                // kyaml continues with the patch as the destination: it merges into itself.
                self.walk(patch_value, patch_value, true, field_schema, path)?
            } else {
                self.walk(result.get(&name), patch_value, false, field_schema, path)?
            };
            path.pop();
            match merged {
                Some(value) if !value.is_null() || patch_value.is_none() => {
                    // An original null the patch does not mention is kept.
                    result.insert(name, value);
                }
                _ => {
                    result.shift_remove(&name);
                }
            }
        }

        self.apply_list_directives(&mut result, original_map, patch_map, schema, path)?;
        Ok(Some(Value::Object(result)))
    }

    /// apimachinery `applyRetainKeysDirective`: drop the original's fields not named in
    /// `$retainKeys`, after checking that the patch sets no field outside the list.
    fn retain_keys(
        &self,
        result: &mut Map<String, Value>,
        retain: &Value,
        patch_map: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<(), Error> {
        path.push(RETAIN_KEYS.to_owned());
        let keep: Option<HashSet<String>> = retain
            .as_array()
            .and_then(|items| items.iter().map(|item| item.as_str().map(str::to_owned)).collect());
        let Some(keep) = keep else {
            let err = invalid(path, "must be a list of field names");
            path.pop();
            return Err(err);
        };
        path.pop();
        for (key, value) in patch_map {
            if !value.is_null() && !is_directive_key(key) && !keep.contains(key) {
                return Err(invalid(
                    path,
                    format!("field {key:?} is set by the patch but not listed in $retainKeys"),
                ));
            }
        }
        result.retain(|k, _| keep.contains(k));
        Ok(())
    }

    /// Apply `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` of a patch map
    /// to the merged map.
    fn apply_list_directives(
        &self,
        result: &mut Map<String, Value>,
        original_map: Option<&Map<String, Value>>,
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
                // apimachinery orders by the single patch merge key, the first list-map key.
                let merge_key =
                    match schema.and_then(|s| self.schema.field(s, field)).map(Node::list_strategy)
                    {
                        Some(ListStrategy::MergeByKeys(keys)) => keys.into_iter().next(),
                        _ => None,
                    };
                let original_list = original_map
                    .and_then(|m| m.get(field))
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice);
                if let Some(Value::Array(list)) = result.get_mut(field) {
                    *list = set_element_order(
                        std::mem::take(list),
                        order,
                        original_list,
                        merge_key.as_deref(),
                    );
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
        aliased: bool,
        schema: Option<&Node>,
        path: &mut Vec<String>,
    ) -> Result<Option<Value>, Error> {
        let strategy = schema.map_or(ListStrategy::Replace, Node::list_strategy);
        let merge_keys = match strategy {
            // Non-associative lists: the patch list replaces the original as it is, list
            // directive elements included (kyaml `Merger.VisitList`); a null patch clears it.
            ListStrategy::Replace => {
                return Ok(match patch {
                    Some(Value::Null) => None,
                    Some(p) => Some(p.clone()),
                    None => dest.cloned(),
                });
            }
            ListStrategy::MergePrimitives => None,
            ListStrategy::MergeByKeys(keys) => Some(keys),
        };
        // kyaml `Merger.VisitList`: the list to merge into. Without an original the patch is
        // taken as it is, directives included, and merged into itself; with `$patch: replace`
        // the patch (without the directive) is merged into itself. "Into itself" matters for
        // kyaml's in-place edits: `Origin::Dest` makes lookups in the patch see them.
        let (dest_items, patch_items, origin) = match (dest, patch) {
            (_, Some(Value::Null)) => return Ok(None),
            (_, Some(Value::Array(items))) if aliased => match list_directive(items, path)? {
                (Directive::Delete, _) => return Ok(None),
                (_, items) => (items, Vec::new(), Origin::Dest),
            },
            (None | Some(Value::Null), Some(Value::Array(items))) => {
                (items.clone(), Vec::new(), Origin::Dest)
            }
            (Some(Value::Array(dest_items)), Some(Value::Array(items))) => {
                match list_directive(items, path)? {
                    (Directive::Delete, _) => return Ok(None),
                    (Directive::Replace, items) => (items, Vec::new(), Origin::Dest),
                    (Directive::Merge, items) => (dest_items.clone(), items, Origin::Patch),
                }
            }
            (Some(Value::Array(dest_items)), None) => {
                (dest_items.clone(), Vec::new(), Origin::Patch)
            }
            // Shapes were checked by the caller; nothing else reaches here.
            _ => return Ok(dest.cloned()),
        };
        let element_schema = schema.and_then(|s| self.schema.elements(s));
        let merged = match merge_keys {
            Some(keys) => {
                self.merge_by_keys(dest_items, &patch_items, origin, &keys, element_schema, path)?
            }
            None => match self.options.list_order {
                ListOrder::PatchFirst => merge_primitives(&patch_items, &dest_items),
                ListOrder::OriginalFirst => merge_primitives(&dest_items, &patch_items),
            },
        };
        Ok(Some(Value::Array(merged)))
    }

    /// Merge two lists of maps by merge keys: a port of kyaml's `walkAssociativeSequence` and
    /// `setAssociativeSequenceElements` (`kubernetes-sigs/kustomize:kyaml/yaml/walk/associative_sequence.go`),
    /// quirks included, since kustomize's output depends on them:
    ///
    /// - elements are identified by the text of their key fields; with several keys, a key
    ///   missing on one element is filled from another element that agrees on the rest
    ///   (`mergeValues`), and keys no element sets are ignored (`validateKeys`);
    /// - the merged elements are collected in the order of the first list walked (the patch in
    ///   kustomize's prepend mode), then the original's elements are set over them by key
    ///   (`appendListNode`): a patch element with `$patch: replace` is thus overwritten by the
    ///   original element of the same key in prepend mode, as in kustomize;
    /// - elements that end up null or empty are dropped.
    fn merge_by_keys(
        &self,
        mut dest_items: Vec<Value>,
        patch_items: &[Value],
        origin: Origin,
        keys: &[String],
        element_schema: Option<&Node>,
        path: &mut Vec<String>,
    ) -> Result<Vec<Value>, Error> {
        let patch_first = self.options.list_order == ListOrder::PatchFirst;
        // `elementValues`: the key values of every element, first list first, deduplicated.
        let mut values_list: Vec<Vec<String>> = Vec::new();
        let sources: [&[Value]; 2] =
            if patch_first { [patch_items, &dest_items] } else { [&dest_items, patch_items] };
        for source in sources {
            for item in source {
                let values: Vec<String> = keys.iter().map(|k| key_value_text(item, k)).collect();
                if !values_list.contains(&values) {
                    values_list.push(values);
                }
            }
        }
        if values_list.is_empty() {
            return Ok(dest_items);
        }
        if keys.len() > 1 {
            merge_values(&mut values_list);
        }
        let mut to_add: Vec<Value> = Vec::new();
        let mut valid_keys: Vec<String> = keys.to_vec();
        for values in &values_list {
            let (keys_now, values_now) = validate_keys(&values_list, values, keys);
            valid_keys = keys_now;
            let (lookup_keys, lookup_values) =
                validate_keys(std::slice::from_ref(&values_now), &values_now, &valid_keys);
            let dest_idx = element_list(&dest_items, &lookup_keys, &lookup_values);
            let dest_elem = dest_idx.map(|idx| &dest_items[idx]);
            let patch_elem = match origin {
                Origin::Patch => element_list(patch_items, &lookup_keys, &lookup_values)
                    .map(|idx| &patch_items[idx]),
                Origin::Dest => dest_elem,
            };
            // kyaml merges into the original element in place unless the patch element
            // replaces it; that in-place update is what `appendListNode` later copies.
            let merges_in_place = dest_elem.is_some()
                && (origin == Origin::Dest
                    || patch_elem
                        .is_none_or(|p| p.get(PATCH).and_then(Value::as_str) != Some("replace")));
            path.push(describe_element(&valid_keys, &values_now));
            let merged =
                self.walk(dest_elem, patch_elem, origin == Origin::Dest, element_schema, path)?;
            path.pop();
            let Some(mut merged) =
                merged.filter(|v| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()))
            else {
                element_setter(&mut dest_items, None, &valid_keys, &values_now);
                continue;
            };
            for (key, value) in valid_keys.iter().zip(&values_now) {
                if let Value::Object(map) = &mut merged
                    && !map.contains_key(key)
                    && !value.is_empty()
                {
                    map.insert(key.clone(), plain_scalar(value));
                }
            }
            if merges_in_place && let Some(idx) = dest_idx {
                dest_items[idx] = merged.clone();
            }
            element_setter(&mut to_add, Some(merged), &valid_keys, &values_now);
        }
        let result = if patch_first {
            append_list_node(to_add, &dest_items, &valid_keys)
        } else {
            append_list_node(dest_items, &to_add, &valid_keys)
        };
        Ok(result)
    }
}

/// kyaml `determineSequenceNodePatchStrategy`: the first map element with a `$patch` field is a
/// list directive when it has no other field; it is removed from the patch (with any other
/// element carrying the same directive, and null or empty elements, as kyaml's `ElementSetter`
/// does).
fn list_directive(items: &[Value], path: &[String]) -> Result<(Directive, Vec<Value>), Error> {
    let first = items.iter().find_map(|item| item.as_object().filter(|m| m.contains_key(PATCH)));
    let Some(first) = first.filter(|m| m.len() == 1) else {
        return Ok((Directive::Merge, items.to_vec()));
    };
    let value = &first[PATCH];
    let mut directive_path = path.to_vec();
    directive_path.push(PATCH.to_owned());
    let directive = parse_directive(value, &directive_path)?;
    let text = scalar_text(value).unwrap_or_default();
    let mut rest = items.to_vec();
    element_setter(&mut rest, None, &[PATCH.to_owned()], &[text]);
    Ok((directive, rest))
}

/// The YAML text of a node as kyaml's `yaml.Node.Value` holds it: scalars' text, `null` for
/// null, empty for maps and lists.
fn node_text(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Object(_) | Value::Array(_) => String::new(),
        other => scalar_text(other).unwrap_or_default(),
    }
}

/// kyaml `ElementValuesList` for one element and key: the field's text, empty when the field is
/// missing, null, empty or not scalar.
fn key_value_text(item: &Value, key: &str) -> String {
    match item.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::Object(m)) if m.is_empty() => String::new(),
        Some(Value::Array(a)) if a.is_empty() => String::new(),
        Some(value) => node_text(value),
    }
}

/// A scalar kyaml writes as plain YAML text, read back as YAML would.
fn plain_scalar(text: &str) -> Value {
    if let Ok(n) = text.parse::<i64>() {
        return Value::from(n);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(text.to_owned()),
    }
}

/// kyaml `match`: two key tuples match when they share a position with equal text and differ
/// only where one side is empty; the result fills the empty positions.
fn match_values(a: &[String], b: &[String]) -> Option<Vec<String>> {
    if a.len() != b.len() {
        return None;
    }
    let mut common = false;
    let mut merged = Vec::with_capacity(a.len());
    for (x, y) in a.iter().zip(b) {
        if x == y {
            common = true;
            merged.push(x.clone());
        } else if !x.is_empty() && !y.is_empty() {
            return None;
        } else if !x.is_empty() {
            merged.push(x.clone());
        } else {
            merged.push(y.clone());
        }
    }
    common.then_some(merged)
}

/// kyaml `mergeValues`: unify key tuples that match, pairwise, in place.
fn merge_values(values_list: &mut [Vec<String>]) {
    for i in 0..values_list.len() {
        for j in 0..values_list.len() {
            if let Some(merged) = match_values(&values_list[i], &values_list[j]) {
                values_list[i] = merged.clone();
                values_list[j] = merged;
            }
        }
    }
}

/// kyaml `validateKeys`: drop the keys that no tuple of `values_list` sets (all of them kept
/// when none is set), with the matching values.
fn validate_keys(
    values_list: &[Vec<String>],
    values: &[String],
    keys: &[String],
) -> (Vec<String>, Vec<String>) {
    let is_set = |idx: usize| values_list.iter().any(|v| v.get(idx).is_some_and(|s| !s.is_empty()));
    if !(0..keys.len()).any(is_set) {
        return (keys.to_vec(), values.to_vec());
    }
    let valid_keys = (0..keys.len()).filter(|&i| is_set(i)).map(|i| keys[i].clone()).collect();
    let valid_values = values
        .iter()
        .enumerate()
        .filter(|(i, v)| !v.is_empty() || (*i < keys.len() && is_set(*i)))
        .map(|(_, v)| v.clone())
        .collect();
    (valid_keys, valid_values)
}

/// kyaml `ElementList` (`ElementMatcher` with `MatchField`): the first map element whose key
/// fields have exactly these texts.
fn element_list(items: &[Value], keys: &[String], values: &[String]) -> Option<usize> {
    items.iter().position(|item| {
        let Value::Object(map) = item else { return false };
        keys.iter()
            .zip(values)
            .all(|(key, value)| map.get(key).is_some_and(|field| node_text(field) == *value))
    })
}

/// kyaml `FieldMatcher{Name, StringValue}` on one element: with a name, the field exists (and
/// has this text when the value is not empty); without a name, the scalar element has this
/// text.
fn field_matches(item: &Value, key: &str, value: &str) -> bool {
    if item.is_null() {
        return false;
    }
    if key.is_empty() {
        return !item.is_object() && !item.is_array() && node_text(item) == value;
    }
    match item.get(key) {
        Some(field) => value.is_empty() || node_text(field) == value,
        None => false,
    }
}

/// kyaml `ElementSetter`: replace the elements matching the keys by `element` (append it when
/// none matches), or delete them when `element` is `None`. Null and empty-map elements are
/// dropped on the way, as kyaml does.
fn element_setter(
    items: &mut Vec<Value>,
    element: Option<Value>,
    keys: &[String],
    values: &[String],
) {
    let default_keys = [String::new()];
    let keys = if keys.is_empty() { &default_keys[..] } else { keys };
    let mapping_setter = !keys[0].is_empty() && values.first().is_some_and(|v| !v.is_empty());
    let mut kept = Vec::with_capacity(items.len());
    let mut matched = false;
    for item in items.drain(..) {
        if item.is_null() || item.as_object().is_some_and(|m| m.is_empty()) {
            continue;
        }
        if !item.is_object() && mapping_setter {
            kept.push(item);
            continue;
        }
        // kyaml keeps the last comparison when there are more keys than values.
        let mut found = true;
        let mut last = false;
        for (idx, key) in keys.iter().enumerate() {
            if let Some(value) = values.get(idx) {
                last = field_matches(&item, key, value);
            }
            if !last {
                found = false;
                break;
            }
        }
        if !found {
            if !values.is_empty() {
                kept.push(item);
            }
            continue;
        }
        matched = true;
        if let Some(element) = &element {
            kept.push(element.clone());
        }
    }
    *items = kept;
    if let Some(element) = element
        && !element.is_null()
        && !matched
    {
        items.push(element);
    }
}

/// kyaml `appendListNode`: set each element of `source` into `target` by its key values.
fn append_list_node(mut target: Vec<Value>, source: &[Value], keys: &[String]) -> Vec<Value> {
    for item in source {
        if keys.first().is_none_or(String::is_empty) {
            element_setter(&mut target, Some(item.clone()), &[String::new()], &[node_text(item)]);
            continue;
        }
        let mut values = Vec::new();
        for key in keys {
            match item.get(key) {
                Some(field) if !item.is_null() => values.push(node_text(field)),
                // An element without the key is appended as is (and then set again below).
                _ => target.push(item.clone()),
            }
        }
        if keys.len() > 1 {
            element_setter(&mut target, None, keys, &values);
        }
        element_setter(&mut target, Some(item.clone()), keys, &values);
    }
    target
}

/// A path step naming a list element by its keys, e.g. `[name=nginx]`.
fn describe_element(keys: &[String], values: &[String]) -> String {
    let parts: Vec<String> = keys.iter().zip(values).map(|(k, v)| format!("{k}={v}")).collect();
    format!("[{}]", parts.join(","))
}

/// Merge lists of primitives as sets: the first list's values (deduplicated) then the second's
/// new ones, in order (kyaml `elementPrimitiveValues`).
fn merge_primitives(first: &[Value], second: &[Value]) -> Vec<Value> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut result = Vec::new();
    for item in first.iter().chain(second) {
        let text = scalar_text(item).unwrap_or_else(|| item.to_string());
        if seen.insert(text) {
            result.push(item.clone());
        }
    }
    result
}

/// Reorder a merged list by `$setElementOrder`, as apimachinery's `normalizeElementOrder`: the
/// elements named in `order` are sorted by it, the others by their place in the original, and
/// the two sequences are interleaved, an unnamed element going first only when the original
/// had it before the named one.
fn set_element_order(
    list: Vec<Value>,
    order: &[Value],
    original: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    // apimachinery `index`: compare maps by their merge key, other elements by value.
    let identity = |item: &Value| -> Value {
        match merge_key {
            Some(key) => item.get(key).cloned().unwrap_or(Value::Null),
            None => item.clone(),
        }
    };
    let index_in =
        |items: &[Value], item: &Value| items.iter().position(|i| identity(i) == identity(item));
    let (mut named, mut others): (Vec<Value>, Vec<Value>) =
        list.into_iter().partition(|item| index_in(order, item).is_some());
    named.sort_by_key(|item| index_in(order, item));
    // Stable: elements the original lacks keep their merge order, after the others.
    others.sort_by_key(|item| index_in(original, item).map_or(usize::MAX, |i| i));
    let mut result = Vec::with_capacity(named.len() + others.len());
    let (mut left, mut right) = (others.into_iter().peekable(), named.into_iter().peekable());
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                matches!((index_in(original, l), index_in(original, r)), (Some(li), Some(ri)) if li < ri)
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_left { left.next() } else { right.next() };
        result.extend(next);
    }
    result
}
