//! Field specs telling each builtin transformer where to act: kustomize's defaults plus the
//! `configurations:` files of a kustomization.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use crate::resource::gvk_less;
use crate::types::{FieldSpec, Gvk};

/// A kind whose name is referenced from the fields of other kinds.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct NameBackReference {
    #[serde(flatten)]
    pub(crate) gvk: Gvk,
    #[serde(default, rename = "fieldSpecs")]
    pub(crate) referrers: Vec<FieldSpec>,
}

/// Field specs per builtin transformer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TransformerConfig {
    #[serde(default)]
    pub(crate) name_prefix: Vec<FieldSpec>,
    #[serde(default)]
    pub(crate) name_suffix: Vec<FieldSpec>,
    #[serde(default)]
    pub(crate) namespace: Vec<FieldSpec>,
    #[serde(default)]
    pub(crate) common_labels: Vec<FieldSpec>,
    #[serde(default)]
    pub(crate) labels: Vec<FieldSpec>,
    #[serde(default)]
    pub(crate) template_labels: Vec<FieldSpec>,
    #[serde(default)]
    pub(crate) common_annotations: Vec<FieldSpec>,
    #[serde(default)]
    pub(crate) name_reference: Vec<NameBackReference>,
    #[serde(default)]
    pub(crate) var_reference: Vec<FieldSpec>,
    #[serde(default)]
    pub(crate) images: Vec<FieldSpec>,
    #[serde(default)]
    pub(crate) replicas: Vec<FieldSpec>,
}

fn parse_gvk(s: &str) -> Gvk {
    let mut parts: Vec<&str> = s.rsplitn(3, '/').collect();
    parts.reverse();
    match parts.as_slice() {
        [g, v, k] => Gvk { group: g.to_string(), version: v.to_string(), kind: k.to_string() },
        _ => Gvk::default(),
    }
}

impl TransformerConfig {
    /// kustomize's default field specs.
    pub(crate) fn defaults() -> &'static TransformerConfig {
        static DEFAULTS: OnceLock<TransformerConfig> = OnceLock::new();
        DEFAULTS.get_or_init(|| {
            let mut tc = TransformerConfig::default();
            for line in include_str!("default_field_specs.txt").lines() {
                if line.starts_with('#') || line.trim().is_empty() {
                    continue;
                }
                let cols: Vec<&str> = line.split(' ').collect();
                if cols[0] == "nameReference" {
                    let target = parse_gvk(cols[1]);
                    let fs = FieldSpec {
                        gvk: parse_gvk(cols[2]),
                        path: cols[3].to_string(),
                        create: false,
                    };
                    match tc.name_reference.iter_mut().find(|b| b.gvk == target) {
                        Some(b) => b.referrers.push(fs),
                        None => tc
                            .name_reference
                            .push(NameBackReference { gvk: target, referrers: vec![fs] }),
                    }
                    continue;
                }
                let fs = FieldSpec {
                    gvk: parse_gvk(cols[1]),
                    path: cols[2].to_string(),
                    create: cols[3] == "1",
                };
                let list = match cols[0] {
                    "namePrefix" => &mut tc.name_prefix,
                    "nameSuffix" => &mut tc.name_suffix,
                    "namespace" => &mut tc.namespace,
                    "commonLabels" => &mut tc.common_labels,
                    "templateLabels" => &mut tc.template_labels,
                    "commonAnnotations" => &mut tc.common_annotations,
                    "varReference" => &mut tc.var_reference,
                    "images" => &mut tc.images,
                    "replicas" => &mut tc.replicas,
                    _ => continue,
                };
                list.push(fs);
            }
            tc.sort_fields();
            tc
        })
    }

    /// Parses a `configurations:` file.
    pub(crate) fn from_value(value: Value) -> Result<TransformerConfig, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// Merges another config into this one, as kustomize does (duplicates dropped, conflicts rejected).
    pub(crate) fn merge(&mut self, other: &TransformerConfig) -> Result<(), String> {
        merge_all(&mut self.name_prefix, &other.name_prefix)?;
        merge_all(&mut self.name_suffix, &other.name_suffix)?;
        merge_all(&mut self.namespace, &other.namespace)?;
        merge_all(&mut self.common_annotations, &other.common_annotations)?;
        merge_all(&mut self.common_labels, &other.common_labels)?;
        merge_all(&mut self.labels, &other.labels)?;
        merge_all(&mut self.template_labels, &other.template_labels)?;
        merge_all(&mut self.var_reference, &other.var_reference)?;
        for nbr in &other.name_reference {
            match self.name_reference.iter_mut().find(|b| b.gvk == nbr.gvk) {
                Some(b) => merge_all(&mut b.referrers, &nbr.referrers)?,
                None => self.name_reference.push(nbr.clone()),
            }
        }
        merge_all(&mut self.images, &other.images)?;
        merge_all(&mut self.replicas, &other.replicas)?;
        self.sort_fields();
        Ok(())
    }

    fn sort_fields(&mut self) {
        for list in [
            &mut self.name_prefix,
            &mut self.name_suffix,
            &mut self.namespace,
            &mut self.common_labels,
            &mut self.labels,
            &mut self.template_labels,
            &mut self.common_annotations,
            &mut self.var_reference,
            &mut self.images,
            &mut self.replicas,
        ] {
            list.sort_by(|a, b| gvk_order(&a.gvk, &b.gvk));
        }
        self.name_reference.sort_by(|a, b| gvk_order(&a.gvk, &b.gvk));
    }
}

impl TransformerConfig {
    /// Field specs from OpenAPI definitions of custom types (kustomize's `crds:` field): properties
    /// marked `x-kubernetes-object-ref-*` become name references, `x-kubernetes-annotation`,
    /// `x-kubernetes-label-selector` and `x-kubernetes-identity` annotation, label and prefix specs.
    pub(crate) fn from_crd_definitions(definitions: &Value) -> Result<TransformerConfig, String> {
        let map = definitions.as_object().ok_or("expected a map of OpenAPI definitions")?;
        let mut result = TransformerConfig::default();
        for (name, api) in map {
            let props = schema_properties(api);
            if !(props.contains_key("kind")
                && props.contains_key("apiVersion")
                && props.contains_key("metadata"))
            {
                continue;
            }
            let kind = name.rsplit('.').next().unwrap_or(name).to_string();
            let gvk = Gvk { kind, ..Gvk::default() };
            let mut tc = TransformerConfig::default();
            load_crd_type(&mut tc, &gvk, map, name, &[], 0)?;
            result.merge(&tc)?;
        }
        Ok(result)
    }
}

fn schema_properties(api: &Value) -> serde_json::Map<String, Value> {
    let schema = api.get("Schema").or_else(|| api.get("schema")).unwrap_or(api);
    schema.get("properties").and_then(Value::as_object).cloned().unwrap_or_default()
}

fn load_crd_type(
    tc: &mut TransformerConfig,
    gvk: &Gvk,
    map: &serde_json::Map<String, Value>,
    type_name: &str,
    path: &[String],
    depth: usize,
) -> Result<(), String> {
    // Definitions can refer to each other in cycles; kustomize's own schemas are shallow.
    if depth > 32 {
        return Ok(());
    }
    let Some(api) = map.get(type_name) else { return Ok(()) };
    for (prop_name, prop) in schema_properties(api) {
        let mut here: Vec<String> = path.to_vec();
        here.push(prop_name.clone());
        let fs = |p: &[String]| FieldSpec { gvk: gvk.clone(), path: p.join("/"), create: false };
        let ext = |k: &str| prop.get(k).and_then(Value::as_str).map(str::to_string);
        if ext("x-kubernetes-annotation").is_some() {
            merge_one(&mut tc.common_annotations, fs(&here))?;
        }
        if ext("x-kubernetes-label-selector").is_some() {
            merge_one(&mut tc.common_labels, fs(&here))?;
        }
        if ext("x-kubernetes-identity").is_some() {
            merge_one(&mut tc.name_prefix, fs(&here))?;
        }
        if let (Some(version), Some(kind)) =
            (ext("x-kubernetes-object-ref-api-version"), ext("x-kubernetes-object-ref-kind"))
        {
            let name_key = ext("x-kubernetes-object-ref-name-key").unwrap_or_else(|| "name".into());
            let mut p = here.clone();
            p.push(name_key);
            let nbr = NameBackReference {
                gvk: Gvk { group: String::new(), version, kind },
                referrers: vec![fs(&p)],
            };
            let other =
                TransformerConfig { name_reference: vec![nbr], ..TransformerConfig::default() };
            tc.merge(&other)?;
        }
        if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
            load_crd_type(tc, gvk, map, r, &here, depth + 1)?;
        }
    }
    Ok(())
}

fn gvk_order(a: &Gvk, b: &Gvk) -> std::cmp::Ordering {
    if gvk_less(a, b) {
        std::cmp::Ordering::Less
    } else if gvk_less(b, a) {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Equal
    }
}

/// Adds field specs not already present (same path, overlapping gvk).
pub(crate) fn merge_all(into: &mut Vec<FieldSpec>, incoming: &[FieldSpec]) -> Result<(), String> {
    for fs in incoming {
        merge_one(into, fs.clone())?;
    }
    Ok(())
}

pub(crate) fn merge_one(into: &mut Vec<FieldSpec>, fs: FieldSpec) -> Result<(), String> {
    if let Some(existing) = into.iter().find(|x| x.gvk.is_selected_by(&fs.gvk) && x.path == fs.path)
    {
        if existing.create != fs.create {
            return Err(format!("conflicting fieldspecs for path '{}' of {}", fs.path, fs.gvk));
        }
        return Ok(());
    }
    into.push(fs);
    Ok(())
}
