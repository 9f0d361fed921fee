//! The builtin transformers: namespace, name prefix/suffix, labels, annotations, images, replicas,
//! strategic merge and JSON 6902 patches, replacements.

use serde_json::{Map, Value};

use crate::fieldspec::{self, Create};
use crate::resource::ResId;
use crate::resource::Resource;
use crate::selector::{id_selected_by, matches_requirements, parse_label_selector};
use crate::types::{FieldSpec, Gvk, Image, Replacement, Replica};

type Res<T> = Result<T, String>;

/// Sets string entries in the maps the field specs reach (labels, annotations).
pub(crate) fn set_map_entries(
    resources: &mut [Resource],
    entries: &[(String, String)],
    specs: &[FieldSpec],
) -> Res<()> {
    if entries.is_empty() {
        return Ok(());
    }
    for r in resources.iter_mut() {
        for fs in specs {
            let id = r.cur_id();
            fieldspec::apply(&mut r.obj, fs, Create::Map, &mut |node| {
                if node.is_null() {
                    *node = Value::Object(Map::new());
                }
                let map = node
                    .as_object_mut()
                    .ok_or_else(|| format!("expected a map at '{}'", fs.path))?;
                for (k, v) in entries {
                    map.insert(k.clone(), Value::String(v.clone()));
                }
                Ok(())
            })
            .map_err(|e| format!("{id}: {e}"))?;
        }
    }
    Ok(())
}

const PREFIX_SKIP: &[(&str, &str)] = &[
    ("", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("", "Namespace"),
];

/// Adds a prefix or suffix to names at the field specs.
pub(crate) fn add_name_affix(
    resources: &mut [Resource],
    affix: &str,
    is_prefix: bool,
    specs: &[FieldSpec],
) -> Res<()> {
    for r in resources.iter_mut() {
        let org = r.org_id();
        if PREFIX_SKIP.iter().any(|(g, k)| {
            org.gvk.is_selected_by(&Gvk {
                group: g.to_string(),
                version: String::new(),
                kind: k.to_string(),
            })
        }) {
            continue;
        }
        for fs in specs {
            if !org.gvk.is_selected_by(&fs.gvk) {
                continue;
            }
            if fs.path == "metadata/name" {
                if is_prefix {
                    r.prefixes.push(affix.to_string());
                } else {
                    r.suffixes.push(affix.to_string());
                }
                if !affix.is_empty() {
                    r.store_previous_id();
                }
            }
            fieldspec::apply(&mut r.obj, fs, Create::Nothing, &mut |node| {
                let cur = match &*node {
                    Value::String(s) => s.clone(),
                    Value::Null => return Ok(()),
                    other => other.to_string(),
                };
                *node = Value::String(if is_prefix {
                    format!("{affix}{cur}")
                } else {
                    format!("{cur}{affix}")
                });
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// How the namespace transformer treats RoleBinding subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubjectMode {
    DefaultOnly,
    AllServiceAccounts,
    None,
}

/// Sets the namespace of namespaced resources and of namespace fields.
pub(crate) fn set_namespace(
    resources: &mut [Resource],
    namespace: &str,
    specs: &[FieldSpec],
    unset_only: bool,
    subjects: SubjectMode,
) -> Res<()> {
    if namespace.is_empty() {
        return Ok(());
    }
    let set = |node: &mut Value| -> Res<()> {
        let is_empty = match node {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            _ => false,
        };
        if !unset_only || is_empty {
            *node = Value::String(namespace.to_string());
        }
        Ok(())
    };
    for r in resources.iter_mut() {
        if !r.obj.is_object() {
            continue;
        }
        r.store_previous_id();
        let gvk = r.gvk();
        let api_version = r.api_version().to_string();
        let is_rb = gvk.kind == "RoleBinding" || gvk.kind == "ClusterRoleBinding";
        if !gvk.is_cluster_scoped() {
            let meta = r.metadata_mut();
            let entry = meta.entry("namespace").or_insert(Value::Null);
            set(entry)?;
        }
        if is_rb
            && subjects != SubjectMode::None
            && let Some(Value::Array(subs)) = r.obj.get_mut("subjects")
        {
            {
                for s in subs.iter_mut() {
                    let selected = match subjects {
                        SubjectMode::DefaultOnly => {
                            s.get("name").and_then(Value::as_str) == Some("default")
                        }
                        _ => s.get("kind").and_then(Value::as_str) == Some("ServiceAccount"),
                    };
                    if selected && let Some(m) = s.as_object_mut() {
                        set(m.entry("namespace").or_insert(Value::Null))?;
                    }
                }
            }
        }
        for fs in specs {
            if fs.path == "metadata/namespace" {
                continue;
            }
            if api_version != "v1" && fs.path == "metadata/name" {
                continue;
            }
            if is_rb
                && fs.path == "subjects/namespace"
                && (fs.gvk.kind == "RoleBinding" || fs.gvk.kind == "ClusterRoleBinding")
            {
                continue;
            }
            let mut setter = set;
            fieldspec::apply(&mut r.obj, fs, Create::Scalar, &mut setter)
                .map_err(|e| format!("namespace transformation failed: {e}"))?;
        }
    }
    let mut seen = std::collections::HashSet::new();
    for r in resources.iter() {
        if !seen.insert(r.id_key()) {
            return Err(format!("namespace transformation produces ID conflict: {}", r.cur_id()));
        }
    }
    Ok(())
}

fn split_image(image: &str) -> (String, String, String) {
    let (search_from, offset) = match image.find('/') {
        Some(i) if i > 0 => (&image[i..], i),
        _ => (image, 0),
    };
    let id = search_from.find('@');
    let ic = search_from.find(':');
    match (ic, id) {
        (None, None) => (image.to_string(), String::new(), String::new()),
        (ic, Some(d)) if ic.is_none_or(|c| d < c) => {
            let d = d + offset;
            (image[..d].to_string(), String::new(), image[d + 1..].to_string())
        }
        (Some(c), Some(d)) => {
            let (c, d) = (c + offset, d + offset);
            (image[..c].to_string(), image[c + 1..d].to_string(), image[d + 1..].to_string())
        }
        (Some(c), None) => {
            let c = c + offset;
            (image[..c].to_string(), image[c + 1..].to_string(), String::new())
        }
        (None, Some(_)) => (image.to_string(), String::new(), String::new()),
    }
}

fn update_image(node: &mut Value, image: &Image, matcher: &regex::Regex) {
    let Value::String(value) = node else { return };
    if !matcher.is_match(value) {
        return;
    }
    let (mut name, mut tag, mut digest) = split_image(value);
    if !image.new_name.is_empty() {
        name = image.new_name.clone();
    }
    if !image.new_tag.is_empty() && !image.digest.is_empty() {
        tag = image.new_tag.clone();
        digest = image.digest.clone();
    } else if !image.new_tag.is_empty() {
        tag = image.new_tag.clone();
        digest.clear();
    } else if !image.digest.is_empty() {
        tag.clear();
        digest = image.digest.clone();
    } else if !image.tag_suffix.is_empty() {
        tag.push_str(&image.tag_suffix);
        digest.clear();
    }
    if !tag.is_empty() {
        name = format!("{name}:{tag}");
    }
    if !digest.is_empty() {
        name = format!("{name}@{digest}");
    }
    *node = Value::String(name);
}

fn walk_containers(node: &mut Value, image: &Image, matcher: &regex::Regex) {
    match node {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                walk_containers(child, image, matcher);
                if (key == "containers" || key == "initContainers")
                    && let Value::Array(items) = child
                {
                    for item in items {
                        if let Some(img) = item.get_mut("image") {
                            update_image(img, image, matcher);
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk_containers(item, image, matcher);
            }
        }
        _ => {}
    }
}

/// Applies one `images:` entry.
pub(crate) fn set_image(resources: &mut [Resource], image: &Image, specs: &[FieldSpec]) -> Res<()> {
    let matcher = regex::Regex::new(&format!(
        "^{}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$",
        image.name
    ))
    .map_err(|e| format!("invalid image name {:?}: {e}", image.name))?;
    for r in resources.iter_mut() {
        if r.kind() != "CustomResourceDefinition" {
            walk_containers(&mut r.obj, image, &matcher);
        }
        for fs in specs {
            fieldspec::apply(&mut r.obj, fs, Create::Nothing, &mut |node| {
                update_image(node, image, &matcher);
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// Applies one `replicas:` entry.
pub(crate) fn set_replicas(
    resources: &mut [Resource],
    replica: &Replica,
    specs: &[FieldSpec],
) -> Res<()> {
    let mut found = false;
    for fs in specs {
        for r in resources.iter_mut() {
            // Cheap name test first: ids are only built for resources that carry the name.
            let named =
                r.name() == replica.name || r.prev_ids.iter().any(|(_, n, _)| *n == replica.name);
            if !named
                || !r
                    .all_ids()
                    .iter()
                    .any(|id| id.name == replica.name && id.gvk.is_selected_by(&fs.gvk))
            {
                continue;
            }
            found = true;
            fieldspec::apply(&mut r.obj, fs, Create::Scalar, &mut |node| {
                *node = Value::from(replica.count);
                Ok(())
            })?;
        }
    }
    if !found {
        let gvks: Vec<String> = specs.iter().map(|fs| fs.gvk.to_string()).collect();
        return Err(format!(
            "resource with name {} does not match a config with the following GVK [{}]",
            replica.name,
            gvks.join(" ")
        ));
    }
    Ok(())
}

/// A strategic merge patch with kustomize's name/kind change options.
#[derive(Debug, Clone)]
pub(crate) struct SmPatch {
    pub(crate) patch: Value,
    pub(crate) allow_name_change: bool,
    pub(crate) allow_kind_change: bool,
}

impl SmPatch {
    pub(crate) fn id(&self) -> ResId {
        let r = Resource::new(self.patch.clone());
        r.cur_id()
    }
}

/// Applies a strategic merge patch to one resource; `Ok(false)` when the patch deletes it.
pub(crate) fn apply_sm_patch(
    r: &mut Resource,
    patch: &SmPatch,
    schema: &sluice_smp::Schema,
) -> Res<bool> {
    let (name, ns, kind) = (r.name().to_string(), r.namespace().to_string(), r.kind().to_string());
    if patch.allow_name_change || patch.allow_kind_change {
        r.store_previous_id();
    }
    // The patch takes the target's apiVersion (kustomize copies the gvk), but keeps its kind.
    let mut p = patch.patch.clone();
    if let Some(m) = p.as_object_mut()
        && r.obj.get("apiVersion").is_some()
    {
        m.insert("apiVersion".into(), Value::String(r.api_version().to_string()));
    }
    let merged = sluice_smp::merge(&r.obj, &p, schema).map_err(|e| e.to_string())?;
    let Some(merged) = merged else { return Ok(false) };
    if merged.as_object().is_none_or(Map::is_empty) {
        return Ok(false);
    }
    r.obj = merged;
    if !patch.allow_kind_change {
        r.set_kind(&kind);
    }
    if !patch.allow_name_change {
        r.set_name(&name);
    }
    r.set_namespace(&ns);
    Ok(true)
}

/// Applies a JSON 6902 patch (already decoded) to one resource.
pub(crate) fn apply_json_patch(r: &mut Resource, patch: &json_patch::Patch) -> Res<()> {
    r.store_previous_id();
    json_patch::patch(&mut r.obj, patch).map_err(|e| e.to_string())
}

/// Decodes a JSON 6902 patch given as JSON or YAML text.
pub(crate) fn decode_json_patch(text: &str) -> Res<json_patch::Patch> {
    let value: Value = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).or_else(|_| first_doc(text))?
    } else {
        first_doc(text)?
    };
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn first_doc(text: &str) -> Res<Value> {
    crate::yaml::parse_documents(text)?
        .into_iter()
        .next()
        .ok_or_else(|| "empty json patch operations".to_string())
}

/// The builtin ValueAddTransformer on one field: set it, or insert the value as a path part.
pub(crate) fn value_add(r: &mut Resource, field_path: &str, value: &str, position: i64) -> Res<()> {
    let fields = fieldspec::split_path(field_path);
    let mut node = &mut r.obj;
    for f in &fields {
        let map = match node {
            Value::Object(m) => m,
            Value::Null => {
                *node = Value::Object(Map::new());
                node.as_object_mut().ok_or("unreachable")?
            }
            _ => return Err(format!("ValueAddTransformer: '{field_path}' runs into a scalar")),
        };
        node = map.entry(f.clone()).or_insert(Value::Null);
    }
    let current = match &*node {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Object(_) | Value::Array(_) => {
            return Err(format!("ValueAddTransformer: '{field_path}' is not a scalar"));
        }
        other => other.to_string(),
    };
    let new_value = if position > 0 && !value.is_empty() {
        let mut parts: Vec<String> = current.split('/').map(str::to_string).collect();
        let mut pos = (position - 1).max(0) as usize;
        pos = pos.min(parts.len());
        if parts.first().is_some_and(String::is_empty) && pos < parts.len() {
            pos += 1;
        }
        parts.insert(pos, value.to_string());
        parts.join("/")
    } else {
        value.to_string()
    };
    *node = Value::String(new_value);
    Ok(())
}

// ---- replacements ----------------------------------------------------------------------------

/// Splits a dotted field path, keeping bracketed parts (`[name=x.y]`) whole.
pub(crate) fn split_dotted(path: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth -= 1;
                cur.push(c);
            }
            '.' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    // `ports[0]` and `containers[name=x]` address list elements after a field name.
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part.find('[') {
            Some(i) if i > 0 && part.ends_with(']') => {
                out.push(part[..i].to_string());
                let inner = &part[i + 1..part.len() - 1];
                if inner.parse::<usize>().is_ok() {
                    out.push(inner.to_string())
                } else {
                    out.push(part[i..].to_string())
                }
            }
            _ => out.push(part),
        }
    }
    out
}

/// Finds (and optionally creates) the nodes a dotted path reaches.
pub(crate) fn path_nodes<'a>(
    node: &'a mut Value,
    path: &[String],
    create: Option<&Value>,
) -> Vec<&'a mut Value> {
    if path.is_empty() {
        return vec![node];
    }
    let seg = path[0].as_str();
    let rest = &path[1..];
    if let Some(inner) = seg.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        if let Some((k, v)) = inner.split_once('=') {
            let Value::Array(items) = node else { return Vec::new() };
            let matches = |item: &Value| {
                item.get(k).is_some_and(|x| {
                    x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()) == v
                })
            };
            if !items.iter().any(matches) {
                if create.is_none() {
                    return Vec::new();
                }
                let mut m = Map::new();
                m.insert(k.to_string(), Value::String(v.to_string()));
                items.push(Value::Object(m));
            }
            return items
                .iter_mut()
                .filter(|i| matches(i))
                .flat_map(|i| path_nodes(i, rest, create))
                .collect();
        }
        return field_nodes(node, inner, rest, create);
    }
    if seg == "*" {
        return match node {
            Value::Array(items) => {
                items.iter_mut().flat_map(|i| path_nodes(i, rest, create)).collect()
            }
            Value::Object(m) => m.values_mut().flat_map(|i| path_nodes(i, rest, create)).collect(),
            _ => Vec::new(),
        };
    }
    if let Value::Array(items) = node {
        if seg == "-" {
            if create.is_none() {
                return Vec::new();
            }
            items.push(Value::Null);
            let last = items.len() - 1;
            return path_nodes(&mut items[last], rest, create);
        }
        if let Ok(i) = seg.parse::<usize>() {
            return match items.get_mut(i) {
                Some(item) => path_nodes(item, rest, create),
                None => Vec::new(),
            };
        }
        return Vec::new();
    }
    field_nodes(node, seg, rest, create)
}

fn field_nodes<'a>(
    node: &'a mut Value,
    name: &str,
    rest: &[String],
    create: Option<&Value>,
) -> Vec<&'a mut Value> {
    if node.is_null() && create.is_some() {
        *node = Value::Object(Map::new());
    }
    let Value::Object(map) = node else { return Vec::new() };
    if !map.contains_key(name) || map.get(name).is_some_and(Value::is_null) {
        let Some(leaf) = create else { return Vec::new() };
        let fresh = if rest.is_empty() {
            match leaf {
                Value::Object(_) => Value::Object(Map::new()),
                Value::Array(_) => Value::Array(Vec::new()),
                _ => Value::Null,
            }
        } else if rest[0].starts_with('[') || rest[0] == "-" || rest[0].parse::<usize>().is_ok() {
            Value::Array(Vec::new())
        } else {
            Value::Object(Map::new())
        };
        map.insert(name.to_string(), fresh);
    }
    match map.get_mut(name) {
        Some(child) => path_nodes(child, rest, create),
        None => Vec::new(),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Converts text to a scalar of the same type as `like` when it reads as one (kyaml keeps the target's tag).
fn retyped(text: &str, like: &Value) -> Value {
    match like {
        Value::Number(_) => serde_json::from_str::<serde_json::Number>(text)
            .map(Value::Number)
            .unwrap_or(Value::String(text.into())),
        Value::Bool(_) => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.into()),
        },
        _ => Value::String(text.into()),
    }
}

/// Applies replacements in order.
pub(crate) fn apply_replacements(
    resources: &mut [Resource],
    replacements: &[Replacement],
) -> Res<()> {
    for rep in replacements {
        let (Some(source), false) = (&rep.source, rep.targets.is_empty()) else {
            return Err("replacements must specify a source and at least one target".into());
        };
        let source_id = ResId {
            gvk: source.gvk.clone(),
            name: source.name.clone(),
            namespace: source.namespace.clone(),
        };
        let mut found: Option<usize> = None;
        for (i, r) in resources.iter().enumerate() {
            if r.all_ids().iter().any(|id| id_selected_by(id, &source_id)) {
                if found.is_some() {
                    return Err(format!("multiple matches for selector {source_id}"));
                }
                found = Some(i);
            }
        }
        let Some(src_idx) = found else { return Err(format!("nothing selected by {source_id}")) };
        let field_path =
            if source.field_path.is_empty() { "metadata.name" } else { &source.field_path };
        let mut src_obj = resources[src_idx].obj.clone();
        let path = split_dotted(field_path);
        let nodes = path_nodes(&mut src_obj, &path, None);
        let mut value = match nodes.into_iter().next() {
            Some(v)
                if !v.is_null()
                    && v != &Value::Object(Map::new())
                    && v != &Value::Array(vec![])
                    && v != &Value::String(String::new()) =>
            {
                v.clone()
            }
            _ => {
                return Err(format!(
                    "fieldPath `{field_path}` is missing for replacement source {source_id}"
                ));
            }
        };
        if let Some(opts) = source.options.as_ref().filter(|o| !o.delimiter.is_empty()) {
            if value.is_object() || value.is_array() {
                return Err("delimiter option can only be used with scalar nodes".into());
            }
            let text = scalar_text(&value);
            let parts: Vec<&str> = text.split(opts.delimiter.as_str()).collect();
            if opts.index < 0 || opts.index as usize >= parts.len() {
                return Err(format!(
                    "options.index {} is out of bounds for value {text}",
                    opts.index
                ));
            }
            value = Value::String(parts[opts.index as usize].to_string());
        }
        for target in &rep.targets {
            let Some(select) = &target.select else {
                return Err("target must specify resources to select".into());
            };
            let select_id = ResId {
                gvk: select.gvk.clone(),
                name: select.name.clone(),
                namespace: select.namespace.clone(),
            };
            let select_labels = parse_label_selector(&select.label_selector)?;
            let select_annos = parse_label_selector(&select.annotation_selector)?;
            let field_paths = if target.field_paths.is_empty() {
                vec!["metadata.name".to_string()]
            } else {
                target.field_paths.clone()
            };
            for r in resources.iter_mut() {
                if !matches_requirements(&select_labels, &r.labels())
                    || !matches_requirements(&select_annos, &r.annotations())
                {
                    continue;
                }
                let mut rejected = false;
                for reject in &target.reject {
                    if reject.annotation_selector.is_empty() && reject.label_selector.is_empty() {
                        continue;
                    }
                    let l = parse_label_selector(&reject.label_selector)?;
                    let a = parse_label_selector(&reject.annotation_selector)?;
                    if matches_requirements(&l, &r.labels())
                        && matches_requirements(&a, &r.annotations())
                    {
                        rejected = true;
                    }
                }
                if rejected {
                    continue;
                }
                let ids = r.all_ids();
                let reject_by_id = target.reject.iter().any(|rej| {
                    let rid = ResId {
                        gvk: rej.gvk.clone(),
                        name: rej.name.clone(),
                        namespace: rej.namespace.clone(),
                    };
                    rid != ResId::default() && ids.iter().any(|id| id_selected_by(id, &rid))
                });
                if !ids.iter().any(|id| id_selected_by(id, &select_id)) || reject_by_id {
                    continue;
                }
                let create = target.options.as_ref().is_some_and(|o| o.create);
                for fp in &field_paths {
                    let path = split_dotted(fp);
                    let nodes =
                        path_nodes(&mut r.obj, &path, if create { Some(&value) } else { None });
                    if nodes.is_empty() {
                        let what = if create {
                            "unable to find or create field"
                        } else {
                            "unable to find field"
                        };
                        return Err(format!("{what} {fp:?} in replacement target"));
                    }
                    for node in nodes {
                        set_target(node, &value, target.options.as_ref())?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn set_target(
    node: &mut Value,
    value: &Value,
    options: Option<&crate::types::FieldOptions>,
) -> Res<()> {
    let mut value = value.clone();
    if let Some(opts) = options.filter(|o| !o.delimiter.is_empty()) {
        if node.is_object() || node.is_array() {
            return Err("delimiter option can only be used with scalar nodes".into());
        }
        let cur = scalar_text(node);
        let mut parts: Vec<String> =
            cur.split(opts.delimiter.as_str()).map(str::to_string).collect();
        let v = scalar_text(&value);
        if opts.index < 0 {
            parts.insert(0, v);
        } else if opts.index as usize >= parts.len() {
            parts.push(v);
        } else {
            parts[opts.index as usize] = v;
        }
        value = Value::String(parts.join(&opts.delimiter));
    }
    let target_is_scalar = !(node.is_object() || node.is_array() || node.is_null());
    let value_is_scalar = !(value.is_object() || value.is_array());
    if target_is_scalar && value_is_scalar {
        *node = retyped(&scalar_text(&value), node);
    } else {
        *node = value;
    }
    Ok(())
}

/// The value at a dotted path, for vars.
pub(crate) fn get_field_value(obj: &Value, path: &str) -> Option<Value> {
    let mut o = obj.clone();
    let parts = split_dotted(path);
    path_nodes(&mut o, &parts, None).into_iter().next().map(|v| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_images() {
        for (input, expected) in [
            ("nginx", ("nginx", "", "")),
            ("nginx:1.2", ("nginx", "1.2", "")),
            ("nginx@sha256:abc", ("nginx", "", "sha256:abc")),
            ("my.reg:5000/nginx:1.2", ("my.reg:5000/nginx", "1.2", "")),
            ("reg/nginx:1.2@sha256:abc", ("reg/nginx", "1.2", "sha256:abc")),
        ] {
            let (n, t, d) = split_image(input);
            assert_eq!((n.as_str(), t.as_str(), d.as_str()), expected, "{input}");
        }
    }

    #[test]
    fn dotted_paths_keep_brackets() {
        assert_eq!(
            split_dotted("spec.containers.[name=a.b].image"),
            vec!["spec", "containers", "[name=a.b]", "image"]
        );
    }
}
