//! Resource selection: patch targets and replacement selectors (regex ids, label and annotation selectors).

use regex::Regex;
use serde_json::{Map, Value};

use crate::resource::{ResId, Resource};
use crate::types::Selector;

/// A compiled patch target selector.
pub(crate) struct CompiledSelector {
    group: Option<Regex>,
    version: Option<Regex>,
    kind: Option<Regex>,
    name: Option<Regex>,
    namespace: Option<Regex>,
    labels: Vec<Requirement>,
    annotations: Vec<Requirement>,
}

fn anchored(pattern: &str) -> Result<Option<Regex>, String> {
    if pattern.is_empty() {
        return Ok(None);
    }
    Regex::new(&format!("^(?:{pattern})$"))
        .map(Some)
        .map_err(|e| format!("invalid regex {pattern:?}: {e}"))
}

fn is_match(re: &Option<Regex>, s: &str) -> bool {
    re.as_ref().is_none_or(|r| r.is_match(s))
}

impl CompiledSelector {
    pub(crate) fn new(s: &Selector) -> Result<CompiledSelector, String> {
        Ok(CompiledSelector {
            group: anchored(&s.gvk.group)?,
            version: anchored(&s.gvk.version)?,
            kind: anchored(&s.gvk.kind)?,
            name: anchored(&s.name)?,
            namespace: anchored(&s.namespace)?,
            labels: parse_label_selector(&s.label_selector)?,
            annotations: parse_label_selector(&s.annotation_selector)?,
        })
    }

    /// kustomize's `resmap.Select`: original or current name and namespace, current gvk, selectors.
    pub(crate) fn matches(&self, r: &Resource) -> bool {
        let cur = r.cur_id();
        let org = r.org_id();
        if !is_match(&self.namespace, org.effective_namespace())
            && !is_match(&self.namespace, cur.effective_namespace())
        {
            return false;
        }
        if !is_match(&self.name, &org.name) && !is_match(&self.name, &cur.name) {
            return false;
        }
        if !(is_match(&self.group, &cur.gvk.group)
            && is_match(&self.version, &cur.gvk.version)
            && is_match(&self.kind, &cur.gvk.kind))
        {
            return false;
        }
        matches_requirements(&self.labels, &r.labels())
            && matches_requirements(&self.annotations, &r.annotations())
    }
}

/// Plain (non-regex) id selection used by replacements: empty selector fields match anything.
pub(crate) fn id_selected_by(id: &ResId, selector: &ResId) -> bool {
    (selector.name.is_empty() || selector.name == id.name)
        && (selector.namespace.is_empty() || selector.is_ns_equal(id))
        && id.gvk.is_selected_by(&selector.gvk)
}

/// One requirement of a Kubernetes label selector.
#[derive(Debug, Clone)]
pub(crate) enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
pub(crate) fn parse_label_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    for part in parts {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("invalid label selector {s:?}: expected (values)"))?;
            Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
        };
        if let Some((k, v)) = p.split_once("!=") {
            out.push(Requirement::NotEquals(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once("==") {
            out.push(Requirement::Equals(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = p.split_once('=') {
            out.push(Requirement::Equals(k.trim().into(), v.trim().into()));
        } else if let Some((k, rest)) = p.split_once(" notin ") {
            out.push(Requirement::NotIn(k.trim().into(), set(rest)?));
        } else if let Some((k, rest)) = p.split_once(" in ") {
            out.push(Requirement::In(k.trim().into(), set(rest)?));
        } else if let Some(k) = p.strip_prefix('!') {
            out.push(Requirement::NotExists(k.trim().into()));
        } else {
            out.push(Requirement::Exists(p.into()));
        }
    }
    Ok(out)
}

/// Whether a label (or annotation) map satisfies all requirements.
pub(crate) fn matches_requirements(reqs: &[Requirement], map: &Map<String, Value>) -> bool {
    let get = |k: &str| {
        map.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
    };
    reqs.iter().all(|r| match r {
        Requirement::Equals(k, v) => get(k).as_deref() == Some(v.as_str()),
        Requirement::NotEquals(k, v) => get(k).as_deref() != Some(v.as_str()),
        Requirement::In(k, vs) => get(k).is_some_and(|x| vs.contains(&x)),
        Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(&x)),
        Requirement::Exists(k) => map.contains_key(k),
        Requirement::NotExists(k) => !map.contains_key(k),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(selector: &str, labels: Value, expected: bool) {
        let reqs = parse_label_selector(selector).unwrap();
        assert_eq!(
            matches_requirements(&reqs, labels.as_object().unwrap()),
            expected,
            "{selector}"
        );
    }

    #[test]
    fn label_selectors() {
        check("a=b", json!({"a": "b"}), true);
        check("a=b", json!({"a": "c"}), false);
        check("a!=b", json!({}), true);
        check("a in (x, y),c", json!({"a": "y", "c": ""}), true);
        check("a notin (x)", json!({"a": "x"}), false);
        check("!a", json!({"a": "x"}), false);
        check("", json!({}), true);
    }
}
