//! Post-rendering of a release's manifest, as Flux's helm-controller does it
//! (`internal/postrender`): the `spec.postRenderers` in order, each a kustomize build of the
//! rendered objects with the renderer's `patches` and `images` (through `sluice-kustomize`),
//! then `spec.commonMetadata.annotations` added to every object.
//!
//! Like Helm's post-renderers, these see the release manifest only: hooks are rendered and
//! stored as the chart has them. The result is the manifest Helm stores in the release.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sha2::Digest;
use sluice_api::helm::PostRenderer;
use sluice_api::kustomize::{CommonMetadata, KustomizeImage, KustomizePatch, KustomizeSelector};

/// The directory of the in-memory kustomization a post-renderer builds.
const ROOT: &str = "/post-render";

/// Flux's digest of a value: `sha256:` of its JSON as Go's `json.Encoder` writes it (struct
/// fields in declaration order, a trailing newline). Empty when there is nothing to digest.
fn digest_of<T: serde::Serialize>(value: Option<&T>) -> String {
    let Some(value) = value else { return String::new() };
    let mut json = serde_json::to_vec(value).unwrap_or_default();
    json.push(b'\n');
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(&json)))
}

/// `status.observedPostRenderersDigest` for `spec.postRenderers` (empty when unset).
pub fn post_renderers_digest(renderers: Option<&Vec<PostRenderer>>) -> String {
    digest_of(renderers.filter(|r| !r.is_empty()))
}

/// `status.observedCommonMetadataDigest` for `spec.commonMetadata` (empty when unset).
pub fn common_metadata_digest(common: Option<&CommonMetadata>) -> String {
    digest_of(common)
}

fn selector(target: &KustomizeSelector) -> sluice_kustomize::Selector {
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    sluice_kustomize::Selector {
        gvk: sluice_kustomize::Gvk {
            group: text(&target.group),
            version: text(&target.version),
            kind: text(&target.kind),
        },
        name: text(&target.name),
        namespace: text(&target.namespace),
        label_selector: text(&target.label_selector),
        annotation_selector: text(&target.annotation_selector),
    }
}

fn patch(patch: &KustomizePatch) -> sluice_kustomize::Patch {
    sluice_kustomize::Patch {
        patch: patch.patch.clone(),
        target: patch.target.as_ref().map(selector),
        ..sluice_kustomize::Patch::default()
    }
}

fn image(image: &KustomizeImage) -> sluice_kustomize::Image {
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    sluice_kustomize::Image {
        name: image.name.clone(),
        new_name: text(&image.new_name),
        new_tag: text(&image.new_tag),
        digest: text(&image.digest),
        ..sluice_kustomize::Image::default()
    }
}

/// Runs one kustomize post-renderer over `manifest`; returns the objects as kustomize prints
/// them. `index` names the renderer in errors.
fn kustomize(manifest: &str, renderer: &PostRenderer, index: usize) -> Result<String, String> {
    let Some(spec) = &renderer.kustomize else { return Ok(manifest.to_string()) };
    let kustomization = sluice_kustomize::Kustomization {
        resources: vec!["resources.yaml".into()],
        patches: spec.patches.iter().flatten().map(patch).collect(),
        images: spec.images.iter().flatten().map(image).collect(),
        ..sluice_kustomize::Kustomization::default()
    };
    let fs = sluice_kustomize::MemoryFileSystem::new()
        .with_file(format!("{ROOT}/resources.yaml"), manifest.as_bytes().to_vec())
        .with_file(format!("{ROOT}/kustomization.yaml"), kustomization.to_yaml());
    let objects = sluice_kustomize::build(&fs, Path::new(ROOT))
        .map_err(|err| format!("spec.postRenderers[{index}].kustomize: {err}"))?;
    Ok(sluice_kustomize::to_yaml(&objects))
}

/// Adds `annotations` to the metadata of every object of `manifest`, keeping each document's
/// `# Source:` line.
fn annotate(manifest: &str, annotations: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    for doc in sluice_helm::output::split_manifests(manifest) {
        let source: Vec<&str> = doc.lines().take_while(|l| l.starts_with('#')).collect();
        let Some(mut obj) = sluice_kustomize::parse_documents(&doc)
            .map_err(|e| {
                format!("spec.commonMetadata: a rendered document is not valid YAML: {e}")
            })?
            .into_iter()
            .next()
        else {
            continue;
        };
        if let Some(metadata) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            let map = metadata
                .entry("annotations")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if !map.is_object() {
                *map = Value::Object(serde_json::Map::new());
            }
            if let Some(map) = map.as_object_mut() {
                for (key, value) in annotations {
                    map.insert(key.clone(), Value::String(value.clone()));
                }
            }
        }
        out.push_str("---\n");
        for line in source {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&sluice_kustomize::to_yaml_document(&obj));
    }
    Ok(out)
}

/// The manifest after `spec.postRenderers` (in order) and `spec.commonMetadata.annotations`.
///
/// # Errors
/// A renderer whose patch or image does not apply, or a manifest kustomize cannot read; the
/// message names the renderer (`spec.postRenderers[N].kustomize`).
pub fn post_render(
    manifest: &str,
    renderers: &[PostRenderer],
    common: Option<&CommonMetadata>,
) -> Result<String, String> {
    let mut manifest = manifest.to_string();
    if manifest.trim().is_empty() {
        return Ok(manifest);
    }
    for (index, renderer) in renderers.iter().enumerate() {
        manifest = kustomize(&manifest, renderer, index)?;
    }
    if let Some(annotations) = common.and_then(|c| c.annotations.as_ref()).filter(|a| !a.is_empty())
    {
        manifest = annotate(&manifest, annotations)?;
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MANIFEST: &str = "---\n# Source: demo/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n        - name: app\n          image: nginx:1.25\n---\n# Source: demo/templates/configmap.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  message: hello\n";

    fn renderers(value: Value) -> Vec<PostRenderer> {
        serde_json::from_value(value).unwrap()
    }

    fn objects(manifest: &str) -> Vec<Value> {
        sluice_helm::output::split_manifests(manifest)
            .iter()
            .flat_map(|d| sluice_kustomize::parse_documents(d).unwrap())
            .collect()
    }

    fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
        objects.iter().find(|o| o["kind"] == kind).unwrap()
    }

    #[test]
    fn strategic_merge_json6902_and_images_apply_in_order() {
        let renderers = renderers(json!([
            {"kustomize": {
                "patches": [
                    {"patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n"},
                    {"patch": "- op: add\n  path: /data/extra\n  value: added\n", "target": {"kind": "ConfigMap", "name": "web-.*"}}
                ],
                "images": [{"name": "nginx", "newName": "registry.local/nginx", "newTag": "1.27"}]
            }},
            {"kustomize": {"patches": [
                {"patch": "- op: replace\n  path: /spec/replicas\n  value: 5\n", "target": {"group": "apps", "kind": "Deployment", "labelSelector": "app=web"}}
            ]}}
        ]));
        let out = post_render(MANIFEST, &renderers, None).unwrap();
        let objs = objects(&out);
        assert_eq!(objs.len(), 2);
        let deployment = find(&objs, "Deployment");
        // The second renderer sees the first one's output.
        assert_eq!(deployment["spec"]["replicas"], 5);
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.local/nginx:1.27"
        );
        let cm = find(&objs, "ConfigMap");
        assert_eq!(cm["data"], json!({"message": "hello", "extra": "added"}));
    }

    #[test]
    fn a_digest_replaces_the_tag() {
        let renderers = renderers(json!([{"kustomize": {"images": [
            {"name": "nginx", "digest": "sha256:0123456789012345678901234567890123456789012345678901234567890123"}
        ]}}]));
        let out = post_render(MANIFEST, &renderers, None).unwrap();
        let deployment = find(&objects(&out), "Deployment").clone();
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx@sha256:0123456789012345678901234567890123456789012345678901234567890123"
        );
    }

    #[test]
    fn errors_name_the_renderer() {
        let renderers = renderers(json!([
            {"kustomize": {"patches": [{"patch": "- op: replace\n  path: /spec/missing/field\n  value: 1\n", "target": {"kind": "Deployment"}}]}}
        ]));
        let err = post_render(MANIFEST, &renderers, None).unwrap_err();
        assert!(err.starts_with("spec.postRenderers[0].kustomize: "), "{err}");
    }

    #[test]
    fn nothing_to_render_leaves_the_manifest_alone() {
        assert_eq!(post_render(MANIFEST, &[], None).unwrap(), MANIFEST);
        assert_eq!(post_render("", &renderers(json!([{"kustomize": {}}])), None).unwrap(), "");
    }

    #[test]
    fn common_annotations_go_on_every_object_and_keep_sources() {
        let common: CommonMetadata = serde_json::from_value(
            json!({"annotations": {"team": "payments"}, "labels": {"tier": "web"}}),
        )
        .unwrap();
        let out = post_render(MANIFEST, &[], Some(&common)).unwrap();
        assert!(out.contains("# Source: demo/templates/configmap.yaml\n"), "{out}");
        for obj in objects(&out) {
            assert_eq!(obj["metadata"]["annotations"]["team"], "payments", "{obj}");
        }
        assert!(out.contains("  replicas: 1\n"), "{out}");
    }

    #[test]
    fn digests_follow_flux() {
        assert_eq!(post_renderers_digest(None), "");
        assert_eq!(post_renderers_digest(Some(&Vec::new())), "");
        let one = renderers(json!([{"kustomize": {"images": [{"name": "nginx", "newTag": "1"}]}}]));
        // Go's json.Encoder output of the same list, newline included.
        let expected = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(
                b"[{\"kustomize\":{\"images\":[{\"name\":\"nginx\",\"newTag\":\"1\"}]}}]\n"
            ))
        );
        assert_eq!(post_renderers_digest(Some(&one)), expected);
        let two = renderers(json!([{"kustomize": {"images": [{"name": "nginx", "newTag": "2"}]}}]));
        assert_ne!(post_renderers_digest(Some(&two)), expected);
    }
}
