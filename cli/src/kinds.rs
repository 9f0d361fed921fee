//! The kinds the CLI knows, by the names flux users type (`source git`, `kustomization`, `hr`, …).

use kube::Resource;
use kube::core::ApiResource;
use sluice_api::{helm, image, kustomize, notification, source};

/// A kind the CLI can list and act on.
#[derive(Debug, Clone)]
pub struct Kind {
    /// The API resource (group, version, kind, plural).
    pub resource: ApiResource,
    /// How its revision column is read from the object.
    pub revision: RevisionField,
}

/// Where the REVISION column of `sluice get` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionField {
    /// `status.artifact.revision` (sources).
    Artifact,
    /// `status.lastAppliedRevision` (Kustomization).
    LastApplied,
    /// `status.history[0].chartVersion` (HelmRelease).
    ChartVersion,
    /// `status.latestRef.tag` (ImagePolicy).
    LatestTag,
    /// `status.lastScanResult.tagCount` tags (ImageRepository).
    TagCount,
    /// `status.lastPushCommit` (ImageUpdateAutomation).
    LastPush,
    /// No revision column.
    Empty,
}

fn kind<K: Resource<DynamicType = ()>>(revision: RevisionField) -> Kind {
    Kind { resource: ApiResource::erase::<K>(&()), revision }
}

/// Resolves the words after `get`/`reconcile`/`suspend` (e.g. `["source", "git"]`,
/// `["kustomization"]`, `["ks"]`) to a kind and the number of words used.
pub fn resolve(words: &[String]) -> Option<(Kind, usize)> {
    use RevisionField::*;
    let first = words.first()?.as_str();
    let second = words.get(1).map(String::as_str);
    let source = |name: Option<&str>| -> Option<Kind> {
        Some(match name? {
            "git" => kind::<source::GitRepository>(Artifact),
            "oci" => kind::<source::OCIRepository>(Artifact),
            "helm" => kind::<source::HelmRepository>(Artifact),
            "chart" => kind::<source::HelmChart>(Artifact),
            "bucket" => kind::<source::Bucket>(Artifact),
            _ => return None,
        })
    };
    let image = |name: Option<&str>| -> Option<Kind> {
        Some(match name? {
            "repository" => kind::<image::ImageRepository>(TagCount),
            "policy" => kind::<image::ImagePolicy>(LatestTag),
            "update" => kind::<image::ImageUpdateAutomation>(LastPush),
            _ => return None,
        })
    };
    let alert = |name: Option<&str>| -> Option<Kind> {
        Some(match name? {
            "provider" | "alert-provider" => kind::<notification::Provider>(Empty),
            _ => return None,
        })
    };
    match first {
        "source" | "sources" => source(second).map(|k| (k, 2)),
        "image" | "images" => image(second).map(|k| (k, 2)),
        "alert-provider" | "alert-providers" => Some((kind::<notification::Provider>(Empty), 1)),
        "alert" | "alerts" => {
            alert(second).map(|k| (k, 2)).or_else(|| Some((kind::<notification::Alert>(Empty), 1)))
        }
        "kustomization" | "kustomizations" | "ks" => {
            Some((kind::<kustomize::Kustomization>(LastApplied), 1))
        }
        "helmrelease" | "helmreleases" | "hr" => Some((kind::<helm::HelmRelease>(ChartVersion), 1)),
        "receiver" | "receivers" => Some((kind::<notification::Receiver>(Empty), 1)),
        _ => None,
    }
}

/// The Kustomization kind.
pub fn kustomization() -> Kind {
    kind::<kustomize::Kustomization>(RevisionField::LastApplied)
}

/// The GitRepository kind.
pub fn git_repository() -> Kind {
    kind::<source::GitRepository>(RevisionField::Artifact)
}

/// The kind of a `sourceRef.kind` (`GitRepository`, `OCIRepository`, `Bucket`, `HelmRepository`,
/// `HelmChart`), or of any sluice kind by its Kubernetes name.
pub fn by_kind_name(name: &str) -> Option<Kind> {
    all().into_iter().chain(notification()).find(|k| k.resource.kind.eq_ignore_ascii_case(name))
}

/// Alert and Provider (not listed by `get all`, as flux does).
pub fn notification() -> Vec<Kind> {
    vec![
        kind::<notification::Alert>(RevisionField::Empty),
        kind::<notification::Provider>(RevisionField::Empty),
    ]
}

/// An API for `kind` in `namespace` (all namespaces when `None`).
pub fn api(
    client: &kube::Client,
    kind: &Kind,
    namespace: Option<&str>,
) -> kube::Api<kube::api::DynamicObject> {
    match namespace {
        Some(ns) => kube::Api::namespaced_with(client.clone(), ns, &kind.resource),
        None => kube::Api::all_with(client.clone(), &kind.resource),
    }
}

/// Every kind, in the order `sluice get all` prints them.
pub fn all() -> Vec<Kind> {
    use RevisionField::*;
    vec![
        kind::<source::GitRepository>(Artifact),
        kind::<source::OCIRepository>(Artifact),
        kind::<source::HelmRepository>(Artifact),
        kind::<source::HelmChart>(Artifact),
        kind::<source::Bucket>(Artifact),
        kind::<kustomize::Kustomization>(LastApplied),
        kind::<helm::HelmRelease>(ChartVersion),
        kind::<notification::Receiver>(Empty),
        kind::<image::ImageRepository>(TagCount),
        kind::<image::ImagePolicy>(LatestTag),
        kind::<image::ImageUpdateAutomation>(LastPush),
    ]
}

/// The REVISION cell of an object.
pub fn revision(kind: &Kind, obj: &serde_json::Value) -> String {
    let status = &obj["status"];
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    match kind.revision {
        RevisionField::Artifact => text(&status["artifact"]["revision"]),
        RevisionField::LastApplied => text(&status["lastAppliedRevision"]),
        RevisionField::ChartVersion => text(&status["history"][0]["chartVersion"]),
        RevisionField::LatestTag => text(&status["latestRef"]["tag"]),
        RevisionField::TagCount => {
            status["lastScanResult"]["tagCount"].as_i64().map(|n| format!("{n} tags"))
        }
        RevisionField::LastPush => text(&status["lastPushCommit"]),
        RevisionField::Empty => None,
    }
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn resolves_flux_kind_words() {
        let cases = [
            ("source git", "GitRepository", 2),
            ("sources helm", "HelmRepository", 2),
            ("source chart", "HelmChart", 2),
            ("ks", "Kustomization", 1),
            ("kustomizations", "Kustomization", 1),
            ("hr", "HelmRelease", 1),
            ("image policy", "ImagePolicy", 2),
            ("alert-provider", "Provider", 1),
            ("alerts", "Alert", 1),
            ("receiver", "Receiver", 1),
        ];
        for (input, kind, used) in cases {
            let (resolved, n) = resolve(&words(input)).unwrap_or_else(|| panic!("{input}"));
            assert_eq!((resolved.resource.kind.as_str(), n), (kind, used), "{input}");
        }
        assert!(resolve(&words("source svn")).is_none());
    }

    #[test]
    fn revision_columns() {
        let (git, _) = resolve(&words("source git")).unwrap();
        let obj = serde_json::json!({"status": {"artifact": {"revision": "main@sha1:abc"}}});
        assert_eq!(revision(&git, &obj), "main@sha1:abc");
        let (hr, _) = resolve(&words("hr")).unwrap();
        let obj = serde_json::json!({"status": {"history": [{"chartVersion": "6.5.4"}]}});
        assert_eq!(revision(&hr, &obj), "6.5.4");
        assert_eq!(revision(&hr, &serde_json::json!({})), "");
    }
}
