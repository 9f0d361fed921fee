//! The `lookup` template function answered from the cluster, as Helm does during install and
//! upgrade: a GET (or a LIST when the name is empty) with the release's client, so an
//! impersonated or remote release sees what its service account sees. `sluice helm template`
//! keeps Helm's offline behaviour (every lookup is empty).

use std::panic::AssertUnwindSafe;

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::{Value, json};

/// Answers `lookup` through `client`; the render runs on blocking threads, which wait on
/// `handle` for each request.
pub struct ClusterLookup {
    // A panic in a lookup leaves nothing half-updated here: both are handles to shared state.
    client: AssertUnwindSafe<kube::Client>,
    handle: AssertUnwindSafe<tokio::runtime::Handle>,
}

impl std::fmt::Debug for ClusterLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterLookup")
    }
}

impl ClusterLookup {
    /// A lookup through `client` on the current Tokio runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn new(client: kube::Client) -> Self {
        ClusterLookup {
            client: AssertUnwindSafe(client),
            handle: AssertUnwindSafe(tokio::runtime::Handle::current()),
        }
    }

    async fn find(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, String> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) =
            kube::discovery::oneshot::pinned_kind(&self.client, &gvk).await.map_err(|err| {
                format!(
                    "unable to get apiresource from unstructured: {api_version}, Kind={kind}: {err}"
                )
            })?;
        let api: Api<DynamicObject> =
            if capabilities.scope == Scope::Namespaced && !namespace.is_empty() {
                Api::namespaced_with((*self.client).clone(), namespace, &resource)
            } else {
                Api::all_with((*self.client).clone(), &resource)
            };
        let message = |err: kube::Error| match err {
            kube::Error::Api(status) => status.message,
            other => other.to_string(),
        };
        if name.is_empty() {
            let list = api.list(&ListParams::default()).await.map_err(message)?;
            let items: Vec<Value> = list
                .items
                .into_iter()
                .map(|item| {
                    let mut value = serde_json::to_value(item).unwrap_or_default();
                    value["apiVersion"] = json!(api_version);
                    value["kind"] = json!(kind);
                    value
                })
                .collect();
            return Ok(Some(json!({
                "apiVersion": api_version,
                "kind": format!("{kind}List"),
                "metadata": {"resourceVersion": list.metadata.resource_version.unwrap_or_default()},
                "items": items,
            })));
        }
        match api.get_opt(name).await.map_err(message)? {
            Some(object) => Ok(Some(serde_json::to_value(object).map_err(|e| e.to_string())?)),
            None => Ok(None),
        }
    }
}

impl sluice_helm::Lookup for ClusterLookup {
    fn lookup(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, String> {
        self.handle.block_on(self.find(api_version, kind, namespace, name))
    }
}
