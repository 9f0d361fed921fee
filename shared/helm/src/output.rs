//! Assembly of `helm template` output from rendered files: document splitting, hook
//! separation and Helm's install-order sort (`helm/helm:pkg/release/v1/util/manifest_sorter.go`,
//! `kind_sorter.go`, and `pkg/action/action.go` `renderResources`).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::yaml::head_from_yaml;

/// Kinds in the order Helm installs them; unknown kinds go last, sorted by name.
pub const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

const HOOK_EVENTS: &[&str] = &[
    "pre-install",
    "post-install",
    "pre-delete",
    "post-delete",
    "pre-upgrade",
    "post-upgrade",
    "pre-rollback",
    "post-rollback",
    "test",
    "test-success",
];

/// One document of the rendered output.
#[derive(Debug, Clone)]
pub struct Document {
    /// The template path, e.g. `mychart/templates/deployment.yaml`.
    pub path: String,
    /// The document's text, without the leading separator.
    pub content: String,
    /// `kind` of the object.
    pub kind: String,
    /// Hook events, empty for ordinary manifests.
    pub hook_events: Vec<String>,
}

impl Document {
    /// Whether this is a test hook (`helm.sh/hook: test`).
    pub fn is_test_hook(&self) -> bool {
        self.hook_events.iter().any(|e| e == "test" || e == "test-success")
    }
}

/// Manifests and hooks in install order.
#[derive(Debug, Clone, Default)]
pub struct Sorted {
    /// Ordinary manifests.
    pub manifests: Vec<Document>,
    /// Hooks, test hooks included.
    pub hooks: Vec<Document>,
}

/// Split a rendered file into documents the way `releaseutil.SplitManifests` of Helm v4.2.3
/// does: the separator is `(?:^|\s*\n)---\s*`, so blank lines after `---` are consumed and a
/// `---` right after them stays in the next document's text.
pub fn split_manifests(text: &str) -> Vec<String> {
    static SEPARATOR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?:^|[\t\n\x0C\r ]*\n)---[\t\n\x0C\r ]*")
            .expect("valid separator regex")
    });
    let trimmed = text.trim_start();
    SEPARATOR
        .split(trimmed)
        .filter(|doc| !doc.trim().is_empty())
        .map(|doc| doc.trim_start().to_string())
        .collect()
}

fn kind_rank(kind: &str) -> Option<usize> {
    INSTALL_ORDER.iter().position(|k| *k == kind)
}

fn kind_less(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (kind_rank(a), kind_rank(b)) {
        (None, None) => a.cmp(b),
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.cmp(&y),
    }
}

/// Sort rendered files into manifests and hooks (`SortManifests`).
///
/// `files` maps template paths to rendered text; partials and blank files are skipped.
///
/// # Errors
/// `YAML parse error on PATH: …` when a document is not valid YAML.
pub fn sort_manifests(files: &BTreeMap<String, String>) -> Result<Sorted, String> {
    let mut docs: Vec<(&String, String)> = Vec::new();
    for (path, content) in files {
        let base = path.rsplit('/').next().unwrap_or(path);
        if base.starts_with('_') || content.trim().is_empty() {
            continue;
        }
        docs.extend(split_manifests(content).into_iter().map(|doc| (path, doc)));
    }
    // Parsing every document is most of the work here and each is independent: spread it over
    // the cores, then assemble in order so the first error reported is the first in file order.
    let heads = crate::parallel::map(&docs, |(path, doc)| read_head(path, doc));
    let mut sorted = Sorted::default();
    for ((path, doc), head) in docs.into_iter().zip(heads) {
        let (kind, hook) = head?;
        let Some(hook) = hook else {
            sorted.manifests.push(Document {
                path: path.clone(),
                content: doc,
                kind,
                hook_events: Vec::new(),
            });
            continue;
        };
        let mut events = Vec::new();
        let mut unknown = false;
        for event in hook.split(',') {
            let event = event.trim().to_lowercase();
            if !HOOK_EVENTS.contains(&event.as_str()) {
                unknown = true;
                break;
            }
            events.push(event);
        }
        if unknown {
            continue;
        }
        sorted.hooks.push(Document { path: path.clone(), content: doc, kind, hook_events: events });
    }
    sorted.manifests.sort_by(|a, b| kind_less(&a.kind, &b.kind));
    sorted.hooks.sort_by(|a, b| kind_less(&a.kind, &b.kind));
    Ok(sorted)
}

/// `releaseutil.SimpleHead` of one document: its kind and its `helm.sh/hook` annotation.
fn read_head(path: &str, doc: &str) -> Result<(String, Option<String>), String> {
    if let Some(head) = crate::head_scan::scan(doc) {
        return Ok((head.kind, head.hook));
    }
    let head = head_from_yaml(doc)
        .map_err(|e| format!("YAML parse error on {path}: error converting YAML to JSON: {e}"))?;
    let head = match head {
        Json::Object(map) => Json::Object(map),
        Json::Null => Json::Null,
        _ => {
            return Err(format!(
                "YAML parse error on {path}: error unmarshaling JSON: json: cannot unmarshal into Go value of type releaseutil.SimpleHead"
            ));
        }
    };
    let kind = match head.get("kind") {
        Some(Json::String(s)) => s.clone(),
        None | Some(Json::Null) => String::new(),
        Some(_) => {
            return Err(format!(
                "YAML parse error on {path}: error unmarshaling JSON: kind is not a string"
            ));
        }
    };
    let annotations =
        head.get("metadata").and_then(|m| m.get("annotations")).and_then(Json::as_object);
    let hook = annotations.and_then(|a| a.get("helm.sh/hook")).map(annotation_text);
    Ok((kind, hook))
}

fn annotation_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// Options of the output assembly.
#[derive(Debug, Clone, Default)]
pub struct OutputOptions {
    /// Drop test hooks (`--skip-tests`).
    pub skip_tests: bool,
    /// Leave hooks out (`--no-hooks`).
    pub no_hooks: bool,
    /// CRD files to print first (`--include-crds`), as (path, content).
    pub crds: Vec<(String, String)>,
}

/// Format sorted documents as `helm template` prints them.
pub fn format_output(sorted: &Sorted, options: &OutputOptions) -> String {
    let mut manifest = String::new();
    for (path, content) in &options.crds {
        manifest.push_str(&format!("---\n# Source: {path}\n{content}\n"));
    }
    for doc in &sorted.manifests {
        manifest.push_str(&format!("---\n# Source: {}\n{}\n", doc.path, doc.content));
    }
    let mut out = String::new();
    out.push_str(manifest.trim());
    out.push('\n');
    for hook in &sorted.hooks {
        if options.no_hooks {
            break;
        }
        if options.skip_tests && hook.is_test_hook() {
            continue;
        }
        out.push_str(&format!("---\n# Source: {}\n{}\n", hook.path, hook.content));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_like_helm() {
        assert_eq!(split_manifests("a: 1\n---\nb: 2\n"), vec!["a: 1", "b: 2\n"]);
        assert_eq!(split_manifests("\n---\n# c\na: 1\n--- \n\n"), vec!["# c\na: 1"]);
        assert_eq!(split_manifests("---\na: 1"), vec!["a: 1"]);
        assert_eq!(split_manifests("a: 1\n---\n\n---\nb: 2"), vec!["a: 1", "---\nb: 2"]);
    }

    #[test]
    fn sorts_by_kind_and_separates_hooks() {
        let mut files = BTreeMap::new();
        files.insert(
            "c/templates/a.yaml".to_string(),
            "kind: Deployment\nmetadata: {name: d}\n---\nkind: Service\nmetadata: {name: s}\n"
                .to_string(),
        );
        files.insert(
            "c/templates/b.yaml".to_string(),
            "kind: Job\nmetadata:\n  name: j\n  annotations: {helm.sh/hook: test}\n---\nkind: Zed\n---\nkind: Abc\n"
                .to_string(),
        );
        files.insert("c/templates/_h.tpl".to_string(), "kind: Secret".to_string());
        let sorted = sort_manifests(&files).unwrap();
        let kinds: Vec<&str> = sorted.manifests.iter().map(|d| d.kind.as_str()).collect();
        assert_eq!(kinds, vec!["Service", "Deployment", "Abc", "Zed"]);
        assert_eq!(sorted.hooks.len(), 1);
        let out =
            format_output(&sorted, &OutputOptions { skip_tests: true, ..OutputOptions::default() });
        assert!(out.starts_with("---\n# Source: c/templates/a.yaml\nkind: Service"));
        assert!(!out.contains("kind: Job"));
    }
}
