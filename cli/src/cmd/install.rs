//! `sluice install [--export]`: the CRDs, RBAC, controller Deployments, Services and NetworkPolicies.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};

use crate::client::KubeFlags;

/// `sluice install`
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Print the manifests instead of applying them.
    #[arg(long)]
    pub export: bool,
}

/// The static manifests of `config/`, in apply order (the CRDs come from the API types).
const STATIC_MANIFESTS: &[(&str, &str)] = &[
    ("namespace.yaml", include_str!("../../../config/namespace.yaml")),
    ("rbac/rbac.yaml", include_str!("../../../config/rbac/rbac.yaml")),
    (
        "manager/source-controller.yaml",
        include_str!("../../../config/manager/source-controller.yaml"),
    ),
    (
        "manager/kustomize-controller.yaml",
        include_str!("../../../config/manager/kustomize-controller.yaml"),
    ),
    ("manager/helm-controller.yaml", include_str!("../../../config/manager/helm-controller.yaml")),
    (
        "manager/notification-controller.yaml",
        include_str!("../../../config/manager/notification-controller.yaml"),
    ),
    (
        "manager/image-automation-controller.yaml",
        include_str!("../../../config/manager/image-automation-controller.yaml"),
    ),
    (
        "policies/network-policies.yaml",
        include_str!("../../../config/policies/network-policies.yaml"),
    ),
];

/// All objects sluice installs: the Namespace, the CRDs, then the rest of `config/`.
pub fn manifests() -> anyhow::Result<Vec<serde_json::Value>> {
    fn push_yaml(
        objects: &mut Vec<serde_json::Value>,
        file: &str,
        text: &str,
    ) -> anyhow::Result<()> {
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(text).with_context(|| format!("parsing config/{file}"))?;
        objects.extend(docs.into_iter().filter(|doc| !doc.is_null()));
        Ok(())
    }
    let mut objects = Vec::new();
    push_yaml(&mut objects, STATIC_MANIFESTS[0].0, STATIC_MANIFESTS[0].1)?;
    for crd in sluice_api::crds::all() {
        objects.push(serde_json::to_value(crd)?);
    }
    for (file, text) in &STATIC_MANIFESTS[1..] {
        push_yaml(&mut objects, file, text)?;
    }
    Ok(objects)
}

/// Writes objects as a YAML stream.
pub fn to_yaml_stream(objects: &[serde_json::Value]) -> anyhow::Result<String> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(object)?);
    }
    Ok(out)
}

/// Run `sluice install`.
pub async fn run(args: InstallArgs, flags: &KubeFlags) -> anyhow::Result<()> {
    let objects = manifests()?;
    if args.export {
        return crate::output::write_stdout(&to_yaml_stream(&objects)?);
    }
    let client = flags.client().await?;
    let (crds, rest): (Vec<_>, Vec<_>) = objects
        .into_iter()
        .partition(|o| o["kind"] == "CustomResourceDefinition" || o["kind"] == "Namespace");
    apply_all(&client, &crds).await?;
    wait_crds_established(&client, &crds).await?;
    apply_all(&client, &rest).await?;
    crate::say!("✔ install finished");
    Ok(())
}

/// Server-side applies objects with field manager `sluice`, resolving kinds by discovery.
pub async fn apply_all(client: &kube::Client, objects: &[serde_json::Value]) -> anyhow::Result<()> {
    let discovery = Discovery::new(client.clone()).run().await.context("discovering the API")?;
    let params = PatchParams::apply("sluice").force();
    for object in objects {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let Some((resource, capabilities)) = discovery.resolve_gvk(&gvk) else {
            bail!("the cluster does not serve {api_version} {kind} (needed by {name})");
        };
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => {
                let ns = object["metadata"]["namespace"].as_str().unwrap_or("default");
                Api::namespaced_with(client.clone(), ns, &resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .with_context(|| format!("applying {kind} {name}"))?;
        crate::say!("✔ {kind}/{name} applied");
    }
    Ok(())
}

async fn wait_crds_established(
    client: &kube::Client,
    objects: &[serde_json::Value],
) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for object in objects.iter().filter(|o| o["kind"] == "CustomResourceDefinition") {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        loop {
            let crd = api.get(name).await?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("CRD {name} did not become Established within 60s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_hold_everything_in_apply_order() {
        let objects = manifests().unwrap();
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds[0], "Namespace");
        assert_eq!(kinds.iter().filter(|k| **k == "CustomResourceDefinition").count(), 13);
        assert_eq!(kinds.iter().filter(|k| **k == "Deployment").count(), 5);
        assert!(kinds[1..14].iter().all(|k| *k == "CustomResourceDefinition"));
        let yaml = to_yaml_stream(&objects).unwrap();
        let back: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        assert_eq!(back.len(), objects.len());
    }
}
