//! Resources under build: the object plus the bookkeeping kustomize keeps about it (previous ids,
//! prefixes, suffixes, generator behavior), and resource ids with kustomize's matching rules.

use std::fmt;

use serde_json::{Map, Value};

use crate::types::Gvk;

/// Kinds the Kubernetes API serves without a namespace, with their API group.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("apiregistration.k8s.io", "APIService"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("networking.k8s.io", "IngressClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("policy", "PodSecurityPolicy"),
    ("extensions", "PodSecurityPolicy"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("authentication.k8s.io", "TokenReview"),
    ("authorization.k8s.io", "SelfSubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectRulesReview"),
    ("authorization.k8s.io", "SubjectAccessReview"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
];

/// The effective namespace of cluster-scoped objects in id comparisons.
pub(crate) const NOT_A_NAMESPACE: &str = "_non_namespaceable_";

impl Gvk {
    /// Splits an apiVersion into group and version.
    pub fn from_api_version(api_version: &str, kind: &str) -> Gvk {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        Gvk { group: group.to_string(), version: version.to_string(), kind: kind.to_string() }
    }

    /// `group/version` or `version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether this gvk is selected by `selector` (empty selector parts match anything).
    pub fn is_selected_by(&self, selector: &Gvk) -> bool {
        (selector.group.is_empty() || selector.group == self.group)
            && (selector.version.is_empty() || selector.version == self.version)
            && (selector.kind.is_empty() || selector.kind == self.kind)
    }

    /// Whether objects of this kind are known to be cluster-scoped.
    pub fn is_cluster_scoped(&self) -> bool {
        CLUSTER_SCOPED.iter().any(|(g, k)| *k == self.kind && *g == self.group)
    }
}

impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or =
            |s: &str, d: &'static str| if s.is_empty() { d.to_string() } else { s.to_string() };
        write!(
            f,
            "{}.{}.{}",
            or(&self.kind, "[noKind]"),
            or(&self.version, "[noVer]"),
            or(&self.group, "[noGrp]")
        )
    }
}

/// A resource id: gvk, name and namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ResId {
    /// Group, version, kind.
    pub gvk: Gvk,
    /// Name.
    pub name: String,
    /// Namespace (may be empty).
    pub namespace: String,
}

impl ResId {
    /// The namespace used for comparisons: `default` for empty, a marker for cluster-scoped kinds.
    pub fn effective_namespace(&self) -> &str {
        if self.gvk.is_cluster_scoped() {
            NOT_A_NAMESPACE
        } else if self.namespace.is_empty() {
            "default"
        } else {
            &self.namespace
        }
    }

    /// Same effective namespace.
    pub fn is_ns_equal(&self, other: &ResId) -> bool {
        self.effective_namespace() == other.effective_namespace()
    }

    /// Same gvk and name.
    pub fn gvkn_equals(&self, other: &ResId) -> bool {
        self.gvk == other.gvk && self.name == other.name
    }

    /// Same gvk, name and effective namespace.
    pub fn equals(&self, other: &ResId) -> bool {
        self.gvkn_equals(other) && self.is_ns_equal(other)
    }
}

impl fmt::Display for ResId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() { "[noName]" } else { &self.name };
        let ns = if self.namespace.is_empty() { "[noNs]" } else { &self.namespace };
        write!(f, "{}/{}.{}", self.gvk, name, ns)
    }
}

/// How a generated object combines with an existing one of the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Behavior {
    #[default]
    Unspecified,
    Create,
    Merge,
    Replace,
}

impl Behavior {
    pub(crate) fn parse(s: &str) -> Option<Behavior> {
        match s {
            "" => Some(Behavior::Unspecified),
            "create" => Some(Behavior::Create),
            "merge" => Some(Behavior::Merge),
            "replace" => Some(Behavior::Replace),
            _ => None,
        }
    }
}

/// An object under build and the build's bookkeeping about it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resource {
    pub(crate) obj: Value,
    /// Ids before renames (prefix, suffix, namespace, hash), oldest first; namespaces are effective ones.
    pub(crate) prev_ids: Vec<(String, String, String)>,
    pub(crate) prefixes: Vec<String>,
    pub(crate) suffixes: Vec<String>,
    pub(crate) ref_by: Vec<ResId>,
    pub(crate) behavior: Behavior,
    pub(crate) needs_hash: bool,
    pub(crate) ref_var_names: Vec<String>,
    /// Rendered `alpha.config.kubernetes.io/transformations` list items, oldest first.
    pub(crate) transformations: Vec<String>,
}

pub(crate) fn str_at<'a>(obj: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = obj;
    for p in path {
        match cur.get(p) {
            Some(v) => cur = v,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

impl Resource {
    pub(crate) fn new(obj: Value) -> Resource {
        Resource { obj, ..Default::default() }
    }

    pub(crate) fn kind(&self) -> &str {
        str_at(&self.obj, &["kind"])
    }
    pub(crate) fn api_version(&self) -> &str {
        str_at(&self.obj, &["apiVersion"])
    }
    pub(crate) fn name(&self) -> &str {
        str_at(&self.obj, &["metadata", "name"])
    }
    pub(crate) fn namespace(&self) -> &str {
        str_at(&self.obj, &["metadata", "namespace"])
    }
    pub(crate) fn gvk(&self) -> Gvk {
        Gvk::from_api_version(self.api_version(), self.kind())
    }

    pub(crate) fn cur_id(&self) -> ResId {
        ResId {
            gvk: self.gvk(),
            name: self.name().to_string(),
            namespace: self.namespace().to_string(),
        }
    }

    /// A string unique per current id (gvk, name, effective namespace), for hashing.
    pub(crate) fn id_key(&self) -> String {
        let id = self.cur_id();
        format!("{}|{}|{}", id.gvk, id.name, id.effective_namespace())
    }

    pub(crate) fn prev_ids(&self) -> Vec<ResId> {
        let gvk = self.gvk();
        self.prev_ids
            .iter()
            .map(|(ns, name, kind)| ResId {
                gvk: Gvk { kind: kind.clone(), ..gvk.clone() },
                name: name.clone(),
                namespace: ns.clone(),
            })
            .collect()
    }

    /// The id the object had when first loaded.
    pub(crate) fn org_id(&self) -> ResId {
        self.prev_ids().into_iter().next().unwrap_or_else(|| self.cur_id())
    }

    /// Current id plus previous ids.
    pub(crate) fn all_ids(&self) -> Vec<ResId> {
        let mut ids = vec![self.cur_id()];
        ids.extend(self.prev_ids());
        ids
    }

    pub(crate) fn store_previous_id(&mut self) {
        let id = self.cur_id();
        self.prev_ids.push((id.effective_namespace().to_string(), id.name, id.gvk.kind));
    }

    pub(crate) fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        let obj = ensure_object(&mut self.obj);
        ensure_object(obj.entry("metadata").or_insert_with(|| Value::Object(Map::new())))
    }

    pub(crate) fn set_name(&mut self, name: &str) {
        self.metadata_mut().insert("name".into(), Value::String(name.to_string()));
    }

    pub(crate) fn set_namespace(&mut self, ns: &str) {
        if ns.is_empty() {
            self.metadata_mut().remove("namespace");
        } else {
            self.metadata_mut().insert("namespace".into(), Value::String(ns.to_string()));
        }
    }

    pub(crate) fn set_kind(&mut self, kind: &str) {
        ensure_object(&mut self.obj).insert("kind".into(), Value::String(kind.to_string()));
    }

    pub(crate) fn string_map(&self, field: &str) -> Map<String, Value> {
        self.obj
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn labels(&self) -> Map<String, Value> {
        self.string_map("labels")
    }
    pub(crate) fn annotations(&self) -> Map<String, Value> {
        self.string_map("annotations")
    }

    pub(crate) fn set_string_map(&mut self, field: &str, map: Map<String, Value>) {
        if map.is_empty() {
            self.metadata_mut().remove(field);
        } else {
            self.metadata_mut().insert(field.to_string(), Value::Object(map));
        }
    }

    pub(crate) fn set_annotation(&mut self, key: &str, value: &str) {
        let mut annotations = self.annotations();
        annotations.insert(key.to_string(), Value::String(value.to_string()));
        self.set_string_map("annotations", annotations);
    }

    pub(crate) fn remove_annotation(&mut self, key: &str) {
        let mut annotations = self.annotations();
        if annotations.remove(key).is_some() {
            self.set_string_map("annotations", annotations);
        }
    }

    /// Whether prefixes and suffixes agree with another resource's (name reference disambiguation).
    pub(crate) fn prefixes_suffixes_equal(&self, other: &Resource, allow_empty: bool) -> bool {
        if allow_empty {
            let either_prefix_empty = self.prefixes.is_empty() || other.prefixes.is_empty();
            let either_suffix_empty = self.suffixes.is_empty() || other.suffixes.is_empty();
            (either_prefix_empty || same_ending(&self.prefixes, &other.prefixes))
                && (either_suffix_empty || same_ending(&self.suffixes, &other.suffixes))
        } else {
            same_ending(&self.prefixes, &other.prefixes)
                && same_ending(&self.suffixes, &other.suffixes)
        }
    }
}

fn same_ending(a: &[String], b: &[String]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.is_empty() {
        return long.is_empty();
    }
    long[long.len() - short.len()..] == *short
}

/// Makes `v` an object (replacing a non-object) and returns its map.
pub(crate) fn ensure_object(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// kustomize's default kind order: these kinds first, in this order.
pub(crate) const ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
/// Kinds sorted last, in this order.
pub(crate) const ORDER_LAST: &[&str] =
    &["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];

fn type_order(kind: &str, first: &[String], last: &[String]) -> i64 {
    if let Some(i) = first.iter().position(|k| k == kind) {
        return i as i64 - first.len() as i64;
    }
    if let Some(i) = last.iter().position(|k| k == kind) {
        return 1 + i as i64;
    }
    0
}

fn gvk_sort_string(x: &Gvk) -> String {
    let or = |s: &str, d: &'static str| if s.is_empty() { d.to_string() } else { s.to_string() };
    format!("{}_{}_{}", or(&x.group, "~G"), or(&x.version, "~V"), or(&x.kind, "~K"))
}

/// The order kustomize gives gvks in field spec lists.
pub(crate) fn gvk_less(a: &Gvk, b: &Gvk) -> bool {
    let first: Vec<String> = ORDER_FIRST.iter().map(|s| s.to_string()).collect();
    let last: Vec<String> = ORDER_LAST.iter().map(|s| s.to_string()).collect();
    let (ia, ib) = (type_order(&a.kind, &first, &last), type_order(&b.kind, &first, &last));
    if ia != ib {
        return ia < ib;
    }
    gvk_sort_string(a) < gvk_sort_string(b)
}

/// Sorts resources in kustomize's legacy order (by kind order, then gvk, namespace and name).
pub(crate) fn legacy_sort(resources: &mut [Resource], first: &[String], last: &[String]) {
    let key = |r: &Resource| {
        let id = r.cur_id();
        let ns = if id.namespace.is_empty() { "~X".to_string() } else { id.namespace.clone() };
        let nm = if id.name.is_empty() { "~N".to_string() } else { id.name.clone() };
        (id.gvk.clone(), format!("{}|{}|{}", id.gvk, ns, nm))
    };
    resources.sort_by(|a, b| {
        let (ga, sa) = key(a);
        let (gb, sb) = key(b);
        if ga != gb {
            let (ia, ib) = (type_order(&ga.kind, first, last), type_order(&gb.kind, first, last));
            if ia != ib {
                return ia.cmp(&ib);
            }
            let (ka, kb) = (gvk_sort_string(&ga), gvk_sort_string(&gb));
            if ga.kind == "Namespace"
                && gb.kind == "Namespace"
                && (ga.group.is_empty() || gb.group.is_empty())
            {
                return kb.cmp(&ka);
            }
            return ka.cmp(&kb);
        }
        sa.cmp(&sb)
    });
}
