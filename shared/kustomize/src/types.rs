//! The `Kustomization` file format (kustomize.config.k8s.io/v1beta1) and its field types, with serde.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A map of strings read leniently: YAML numbers and booleans become their text, as kustomize does.
pub type StringMap = BTreeMap<String, String>;

fn scalar_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn de_string_map<'de, D: Deserializer<'de>>(d: D) -> Result<StringMap, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    let mut out = StringMap::new();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let s = scalar_to_string(&v).ok_or_else(|| {
                    serde::de::Error::custom(format!("value of {k:?} must be a string"))
                })?;
                out.insert(k, s);
            }
        }
        Some(_) => return Err(serde::de::Error::custom("expected a map of strings")),
    }
    Ok(out)
}

fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    match value {
        None => Ok(String::new()),
        Some(v) => {
            scalar_to_string(&v).ok_or_else(|| serde::de::Error::custom("expected a string"))
        }
    }
}

fn de_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                scalar_to_string(v)
                    .ok_or_else(|| serde::de::Error::custom("expected a list of strings"))
            })
            .collect(),
        Some(v) => scalar_to_string(&v)
            .map(|s| vec![s])
            .ok_or_else(|| serde::de::Error::custom("expected a list of strings")),
    }
}

/// A kustomization file: what to load, generate and transform.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kustomization {
    /// `kustomize.config.k8s.io/v1beta1` or `kustomize.config.k8s.io/v1alpha1` (components).
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub api_version: String,
    /// `Kustomization` (the default) or `Component`.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub kind: String,
    /// Metadata of the kustomization itself (ignored by the build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Custom OpenAPI schema: `path` to a schema file, or `version` of a built-in one.
    #[serde(
        default,
        skip_serializing_if = "StringMap::is_empty",
        deserialize_with = "de_string_map"
    )]
    pub openapi: StringMap,
    /// Prefix added to the names of resources.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub name_prefix: String,
    /// Suffix added to the names of resources.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub name_suffix: String,
    /// Namespace set on all namespaced resources.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub namespace: String,
    /// Labels added to all resources and to selectors.
    #[serde(
        default,
        skip_serializing_if = "StringMap::is_empty",
        deserialize_with = "de_string_map"
    )]
    pub common_labels: StringMap,
    /// Labels with control over selectors and templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    /// Annotations added to all resources.
    #[serde(
        default,
        skip_serializing_if = "StringMap::is_empty",
        deserialize_with = "de_string_map"
    )]
    pub common_annotations: StringMap,
    /// Legacy strategic merge patches: file paths or inline patches.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub patches_strategic_merge: Vec<String>,
    /// Legacy JSON 6902 patches with a target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches_json6902: Vec<Patch>,
    /// Patches (strategic merge or JSON 6902), optionally with a target selector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
    /// Image name, tag and digest overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    /// Legacy name of `images`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_tags: Vec<Image>,
    /// Field copies from a source to targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replacements: Vec<ReplacementField>,
    /// Replica count overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Replica>,
    /// Legacy variables substituted into `$(NAME)` references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<Var>,
    /// Output order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_options: Option<SortOptions>,
    /// Files and directories to include.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub resources: Vec<String>,
    /// Component directories applied after resources and generators.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub components: Vec<String>,
    /// CRD files whose schemas add name references.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub crds: Vec<String>,
    /// Legacy name of `resources` for directories.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub bases: Vec<String>,
    /// ConfigMaps to generate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_map_generator: Vec<GeneratorArgs>,
    /// Secrets to generate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_generator: Vec<GeneratorArgs>,
    /// Helm globals (not supported by this engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm_globals: Option<Value>,
    /// Helm charts (not supported by this engine).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub helm_charts: Vec<Value>,
    /// Legacy Helm chart inflation (not supported by this engine).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub helm_chart_inflation_generator: Vec<Value>,
    /// Options for all generators of this kustomization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_options: Option<GeneratorOptions>,
    /// Files with custom field specs for the builtin transformers.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub configurations: Vec<String>,
    /// Generator plugin configurations: files, directories or inline YAML.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub generators: Vec<String>,
    /// Transformer plugin configurations: files, directories or inline YAML.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub transformers: Vec<String>,
    /// Validator plugin configurations (not supported by this engine).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub validators: Vec<String>,
    /// `originAnnotations`, `transformerAnnotations`, `managedByLabel`.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub build_metadata: Vec<String>,
}

/// A group/version/kind triple; empty parts match anything in a selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Gvk {
    /// API group (empty for the core group).
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub group: String,
    /// API version.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub version: String,
    /// Kind.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub kind: String,
}

/// Where a transformer acts: a path in objects of a kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// The kinds this applies to.
    #[serde(flatten)]
    pub gvk: Gvk,
    /// Slash-separated path; `[]` marks a list; `\/` escapes a slash.
    #[serde(default, deserialize_with = "de_string")]
    pub path: String,
    /// Create the field when missing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create: bool,
}

/// A label entry of `labels:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Label {
    /// The labels.
    #[serde(default, deserialize_with = "de_string_map")]
    pub pairs: StringMap,
    /// Also set selectors (like `commonLabels`).
    #[serde(default)]
    pub include_selectors: bool,
    /// Also set pod templates.
    #[serde(default)]
    pub include_templates: bool,
    /// Extra field specs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldSpec>,
}

/// Selects resources by id, labels and annotations; name, namespace and gvk parts are regexes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// Group, version, kind.
    #[serde(flatten)]
    pub gvk: Gvk,
    /// Name (anchored regex).
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub name: String,
    /// Namespace (anchored regex).
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub namespace: String,
    /// Label selector (Kubernetes syntax).
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub label_selector: String,
    /// Annotation selector (label selector syntax).
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub annotation_selector: String,
}

/// A patch: a file `path` or an inline `patch`, strategic merge or JSON 6902, with an optional target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patch {
    /// File holding the patch.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub path: String,
    /// Inline patch.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub patch: String,
    /// Which resources to patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Selector>,
    /// `allowNameChange`, `allowKindChange`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, bool>,
}

/// An image override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Image name to match.
    #[serde(default, deserialize_with = "de_string")]
    pub name: String,
    /// Replacement name.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub new_name: String,
    /// Suffix appended to the tag.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub tag_suffix: String,
    /// Replacement tag.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub new_tag: String,
    /// Replacement digest.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub digest: String,
}

/// A replica count override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Replica {
    /// Name of the workload.
    #[serde(default, deserialize_with = "de_string")]
    pub name: String,
    /// Replicas.
    #[serde(default)]
    pub count: i64,
}

/// A legacy variable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Var {
    /// Name used in `$(NAME)`.
    #[serde(deserialize_with = "de_string")]
    pub name: String,
    /// The object the value comes from.
    pub objref: VarTarget,
    /// The field of that object (default `metadata.name`).
    #[serde(default)]
    pub fieldref: FieldSelector,
}

/// The object a var refers to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VarTarget {
    /// apiVersion (alternative to group/version).
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub api_version: String,
    /// Group, version, kind.
    #[serde(flatten)]
    pub gvk: Gvk,
    /// Name.
    #[serde(default, deserialize_with = "de_string")]
    pub name: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub namespace: String,
}

/// A field path of a var.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldSelector {
    /// Dotted path.
    #[serde(
        default,
        alias = "fieldpath",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "de_string"
    )]
    pub field_path: String,
}

/// An entry of `replacements:`: inline, or a `path` to a file of replacements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplacementField {
    /// The inline replacement.
    #[serde(flatten)]
    pub replacement: Replacement,
    /// File holding replacements.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub path: String,
}

/// A replacement: copy a source field into target fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replacement {
    /// Where the value comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSelector>,
    /// Where it goes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetSelector>,
}

/// The source of a replacement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceSelector {
    /// Group, version, kind.
    #[serde(flatten)]
    pub gvk: Gvk,
    /// Name.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub name: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub namespace: String,
    /// Dotted field path (default `metadata.name`).
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub field_path: String,
    /// Delimiter/index options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<FieldOptions>,
}

/// The targets of a replacement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetSelector {
    /// Which resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Selector>,
    /// Resources to leave alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reject: Vec<Selector>,
    /// Dotted field paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub field_paths: Vec<String>,
    /// Delimiter/index/create options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<FieldOptions>,
}

/// Options of a replacement source or target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldOptions {
    /// Split the value by this delimiter.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub delimiter: String,
    /// Which part after splitting.
    #[serde(default)]
    pub index: i64,
    /// Encoding (unused).
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub encoding: String,
    /// Create missing target fields.
    #[serde(default)]
    pub create: bool,
}

/// Arguments of a ConfigMap or Secret generator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorArgs {
    /// Namespace of the generated object.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub namespace: String,
    /// Name of the generated object.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub name: String,
    /// `create` (default), `merge` or `replace`.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub behavior: String,
    /// `KEY=VALUE` literals.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub literals: Vec<String>,
    /// Files (`[key=]path`).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub files: Vec<String>,
    /// Env files.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "de_string_list")]
    pub envs: Vec<String>,
    /// Legacy single env file.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub env: String,
    /// Secret type (secrets only).
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub r#type: String,
    /// Per-generator options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<GeneratorOptions>,
}

/// Options of generators.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorOptions {
    /// Labels on generated objects.
    #[serde(
        default,
        skip_serializing_if = "StringMap::is_empty",
        deserialize_with = "de_string_map"
    )]
    pub labels: StringMap,
    /// Annotations on generated objects.
    #[serde(
        default,
        skip_serializing_if = "StringMap::is_empty",
        deserialize_with = "de_string_map"
    )]
    pub annotations: StringMap,
    /// No content hash suffix on names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_name_suffix_hash: Option<bool>,
    /// Mark the object immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

/// Output order options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SortOptions {
    /// `legacy` or `fifo`.
    #[serde(default, skip_serializing_if = "String::is_empty", deserialize_with = "de_string")]
    pub order: String,
    /// Kind orders for `legacy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_sort_options: Option<LegacySortOptions>,
}

/// Kinds sorted first and last by the legacy order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacySortOptions {
    /// Kinds first, in this order.
    #[serde(default, deserialize_with = "de_string_list")]
    pub order_first: Vec<String>,
    /// Kinds last, in this order.
    #[serde(default, deserialize_with = "de_string_list")]
    pub order_last: Vec<String>,
}

impl Kustomization {
    /// The kustomization as YAML, e.g. to place a generated or amended one in a file system.
    pub fn to_yaml(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        crate::yaml::to_yaml_document(&value)
    }

    /// Parses a kustomization file's text (keys matched case-insensitively, as kustomize does).
    ///
    /// # Errors
    /// A message when the YAML is invalid or a field is unknown or mistyped.
    pub fn from_yaml(text: &str) -> Result<Kustomization, String> {
        let docs = crate::yaml::parse_documents_lenient(text)?;
        let value =
            crate::build::canonical_field_names(docs.into_iter().next().unwrap_or(Value::Null));
        let value = if value.is_null() { Value::Object(Default::default()) } else { value };
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// Whether this is a `kind: Component`.
    pub fn is_component(&self) -> bool {
        self.kind == "Component"
    }
}
