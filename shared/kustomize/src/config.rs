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
