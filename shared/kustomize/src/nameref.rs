//! Name reference fixing: after renames (prefix, suffix, hash, namespace), update the fields that
//! refer to renamed objects, e.g. a Deployment's `configMapRef.name`.
//!
//! Follows `kubernetes-sigs/kustomize:api/filters/nameref/nameref.go` (v5.5.0).

use std::collections::HashMap;

use serde_json::Value;

use crate::config::NameBackReference;
use crate::error::{Error, Result};
use crate::fieldspec::{self, Create};
use crate::resource::{ResId, Resource};
use crate::types::{FieldSpec, Gvk};

/// What the fixer needs to know about each possible referral.
struct Candidate {
    idx: usize,
    cur: ResId,
    prev: Vec<ResId>,
    /// Namespace of the original id (kustomize's `OrgId().Namespace`).
    org_namespace: String,
}

/// All possible referrals, indexed by previous name and original namespace.
struct Index {
    candidates: Vec<Candidate>,
    by_prev_name: HashMap<String, Vec<usize>>,
    by_org_namespace: HashMap<String, Vec<usize>>,
}

impl Index {
    fn new(resources: &[Resource]) -> Index {
        let mut by_prev_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_org_namespace: HashMap<String, Vec<usize>> = HashMap::new();
        let candidates: Vec<Candidate> = resources
            .iter()
            .enumerate()
            .map(|(idx, r)| {
                let prev = r.prev_ids();
                let cur = r.cur_id();
                let org_namespace = prev.first().unwrap_or(&cur).namespace.clone();
                Candidate { idx, cur, prev, org_namespace }
            })
            .collect();
        for (i, c) in candidates.iter().enumerate() {
            let mut names: Vec<&str> = c.prev.iter().map(|id| id.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            for n in names {
                by_prev_name.entry(n.to_string()).or_default().push(i);
            }
            by_org_namespace.entry(c.org_namespace.clone()).or_default().push(i);
        }
        Index { candidates, by_prev_name, by_org_namespace }
    }
}

/// Updates name references in all resources.
///
/// # Errors
/// When a reference is ambiguous (several renamed objects could be meant).
pub(crate) fn fix_back_references(
    resources: &mut [Resource],
    back_refs: &[NameBackReference],
) -> Result<()> {
    let index = Index::new(resources);
    // Bookkeeping only (prefixes, suffixes), without cloning the objects.
    let meta: Vec<Resource> = resources
        .iter()
        .map(|r| Resource {
            prefixes: r.prefixes.clone(),
            suffixes: r.suffixes.clone(),
            ..Resource::default()
        })
        .collect();
    let org_ids: Vec<ResId> = resources.iter().map(Resource::org_id).collect();
    for i in 0..resources.len() {
        let mut filters: Vec<(&FieldSpec, &Gvk)> = Vec::new();
        for br in back_refs {
            for spec in &br.referrers {
                if org_ids[i].gvk.is_selected_by(&spec.gvk) {
                    filters.push((spec, &br.gvk));
                }
            }
        }
        if filters.is_empty() {
            continue;
        }
        let referrer_id = resources[i].cur_id();
        let rb_namespaces = role_binding_namespaces(&resources[i], &referrer_id)?;
        let mut obj = std::mem::take(&mut resources[i].obj);
        let mut ref_by: Vec<usize> = Vec::new();
        for (spec, target_gvk) in filters {
            let role_ref_gvk =
                if spec.path.ends_with("roleRef/name") { role_ref_gvk(&obj) } else { None };
            let spec_here =
                FieldSpec { gvk: Gvk::default(), path: spec.path.clone(), create: false };
            let ctx = Ctx {
                referrer: &meta[i],
                referrer_id: &referrer_id,
                target: target_gvk,
                role_ref: role_ref_gvk.as_ref(),
                index: &index,
                rb_namespaces: &rb_namespaces,
                meta: &meta,
            };
            let result = fieldspec::apply(&mut obj, &spec_here, Create::Nothing, &mut |node| {
                ctx.set(node, &mut ref_by)
            });
            if let Err(e) = result {
                resources[i].obj = obj;
                return Err(Error::build(
                    format!(
                        "updating name reference in '{}' field of '{}'",
                        spec.path, referrer_id
                    ),
                    e,
                ));
            }
        }
        resources[i].obj = obj;
        for idx in ref_by {
            resources[idx].ref_by.push(referrer_id.clone());
        }
    }
    Ok(())
}

fn role_ref_gvk(obj: &Value) -> Option<Gvk> {
    let rr = obj.get("roleRef")?;
    Some(Gvk {
        group: rr.get("apiGroup")?.as_str()?.to_string(),
        version: String::new(),
        kind: rr.get("kind")?.as_str()?.to_string(),
    })
}

/// Namespaces of ServiceAccount subjects of a RoleBinding: objects there may be referred to too.
fn role_binding_namespaces(referrer: &Resource, rid: &ResId) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    if referrer.kind() == "RoleBinding"
        && let Some(Value::Array(subjects)) = referrer.obj.get("subjects")
    {
        for s in subjects {
            if let (Some(ns), Some(kind)) = (s.get("namespace"), s.get("kind"))
                && kind.as_str() == Some("ServiceAccount")
            {
                match ns.as_str() {
                    Some(n) => out.push(n.to_string()),
                    None => {
                        return Err(Error::build(
                            "",
                            format!("Invalid Input: namespace is blank for resource \"{rid}\""),
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

struct Ctx<'a> {
    referrer: &'a Resource,
    referrer_id: &'a ResId,
    target: &'a Gvk,
    role_ref: Option<&'a Gvk>,
    index: &'a Index,
    rb_namespaces: &'a [String],
    meta: &'a [Resource],
}

impl Ctx<'_> {
    /// kustomize's `SubsetThatCouldBeReferencedByResource`.
    fn referable(&self, c: &Candidate) -> bool {
        self.referrer_id.gvk.is_cluster_scoped()
            || c.cur.gvk.is_cluster_scoped()
            || c.cur.is_ns_equal(self.referrer_id)
            || self.rb_namespaces.contains(&c.cur.namespace)
    }

    fn named(&self, old: &str) -> Vec<&Candidate> {
        self.index
            .by_prev_name
            .get(old)
            .map(|list| {
                list.iter()
                    .map(|&i| &self.index.candidates[i])
                    .filter(|c| self.referable(c))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn set(&self, node: &mut Value, ref_by: &mut Vec<usize>) -> Result<(), String> {
        match node {
            Value::Null => Ok(()),
            Value::String(_) => self.set_scalar(node, ref_by),
            Value::Object(_) => self.set_mapping(node, ref_by),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::String(_) => self.set_scalar(item, ref_by)?,
                        Value::Object(_) => self.set_mapping(item, ref_by)?,
                        _ => {}
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn set_scalar(&self, node: &mut Value, ref_by: &mut Vec<usize>) -> Result<(), String> {
        let old = node.as_str().unwrap_or("").to_string();
        if let Some(c) = self.select(&old, self.named(&old), false)? {
            ref_by.push(c.idx);
            if c.cur.name != old {
                *node = Value::String(c.cur.name.clone());
            }
        }
        Ok(())
    }

    fn set_mapping(&self, node: &mut Value, ref_by: &mut Vec<usize>) -> Result<(), String> {
        let Some(name) = node.get("name") else {
            return Err("path config error; no 'name' field in node".into());
        };
        let old = match name {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let candidates: Vec<&Candidate> =
            match node.get("namespace").map(|n| n.as_str().unwrap_or("").to_string()) {
                None => self.named(&old),
                Some(ns) => {
                    // Candidates in the original namespace when there are any, else in the current one.
                    let group_exists = self.index.by_org_namespace.get(&ns).is_some_and(|list| {
                        list.iter().any(|&i| self.referable(&self.index.candidates[i]))
                    });
                    self.named(&old)
                        .into_iter()
                        .filter(|c| {
                            if group_exists { c.org_namespace == ns } else { c.cur.namespace == ns }
                        })
                        .collect()
                }
            };
        let Some(c) = self.select(&old, candidates, true)? else { return Ok(()) };
        ref_by.push(c.idx);
        if c.cur.name == old && c.cur.namespace.is_empty() {
            return Ok(());
        }
        if let Some(m) = node.as_object_mut() {
            m.insert("name".into(), Value::String(c.cur.name.clone()));
            if !c.cur.namespace.is_empty() {
                m.insert("namespace".into(), Value::String(c.cur.namespace.clone()));
            }
        }
        Ok(())
    }

    fn select<'c>(
        &self,
        old: &str,
        candidates: Vec<&'c Candidate>,
        with_ns: bool,
    ) -> Result<Option<&'c Candidate>, String> {
        let mut cs: Vec<&Candidate> = candidates
            .into_iter()
            .filter(|c| c.prev.iter().any(|id| id.name == old))
            .filter(|c| c.prev.iter().any(|id| id.gvk.is_selected_by(self.target)))
            .filter(|c| {
                self.role_ref.is_none_or(|g| c.prev.iter().any(|id| id.gvk.is_selected_by(g)))
            })
            .filter(|c| {
                self.referrer_id.gvk.is_cluster_scoped()
                    || c.cur.gvk.is_cluster_scoped()
                    || c.cur.gvk.kind == "ServiceAccount"
                    || self.referrer_id.is_ns_equal(&c.cur)
            })
            .collect();
        if cs.len() == 1 {
            return Ok(Some(cs[0]));
        }
        cs.retain(|c| self.meta[c.idx].prefixes_suffixes_equal(self.referrer, true));
        if cs.len() > 1 {
            cs.retain(|c| self.meta[c.idx].prefixes_suffixes_equal(self.referrer, false));
        }
        match cs.len() {
            0 => Ok(None),
            1 => Ok(Some(cs[0])),
            _ => {
                let first = &cs[0].cur;
                let identical = cs.iter().all(|c| {
                    c.cur.name == first.name && (!with_ns || c.cur.namespace == first.namespace)
                });
                if identical {
                    return Ok(Some(cs[0]));
                }
                let ids: Vec<String> = cs.iter().map(|c| c.cur.to_string()).collect();
                Err(format!("found multiple possible referrals: {}", ids.join(", ")))
            }
        }
    }
}
