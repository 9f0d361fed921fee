//! The client a Kustomization applies with: the controller's own, one impersonating
//! `system:serviceaccount:<namespace>:<serviceAccountName>` (or `--default-service-account`),
//! or one for the remote cluster of `spec.kubeConfig.secretRef` (itself impersonating when
//! `serviceAccountName` is set).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::client::Body;
use kube::config::{KubeConfigOptions, Kubeconfig};
use sluice_api::kustomize::Kustomization;

/// A tower service that sends every request through `client` with the Impersonate-User
/// header; the API server adds the service account's groups itself.
#[derive(Clone)]
struct Impersonate {
    client: kube::Client,
    user: HeaderValue,
}

impl tower::Service<Request<Body>> for Impersonate {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, kube::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), kube::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        request.headers_mut().insert("Impersonate-User", self.user.clone());
        let client = self.client.clone();
        Box::pin(async move { client.send(request).await })
    }
}

/// The user name of a service account, as the API server spells it.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// `client`, acting as `user`.
///
/// # Errors
/// A user name that is not a valid header value.
pub fn impersonating(client: &kube::Client, user: &str) -> Result<kube::Client, String> {
    let user = HeaderValue::from_str(user)
        .map_err(|_| format!("{user:?} is not a valid user name to impersonate"))?;
    Ok(kube::Client::new(Impersonate { client: client.clone(), user }, client.default_namespace()))
}

/// Keys looked up in a kubeconfig Secret when `secretRef.key` is not set (Flux's order).
const KUBECONFIG_KEYS: &[&str] = &["value", "value.yaml"];

/// Builds the client for the cluster of `spec.kubeConfig.secretRef`.
///
/// # Errors
/// The Secret or key is missing, the kubeconfig does not parse, or it runs a program (exec or
/// auth-provider plugins are refused, as Flux does by default).
pub async fn remote_client(
    controller: &kube::Client,
    namespace: &str,
    secret_name: &str,
    key: Option<&str>,
) -> Result<kube::Client, String> {
    let secrets: Api<Secret> = Api::namespaced(controller.clone(), namespace);
    let secret = secrets
        .get_opt(secret_name)
        .await
        .map_err(|err| format!("reading kubeConfig Secret '{namespace}/{secret_name}': {err}"))?
        .ok_or_else(|| format!("kubeConfig Secret '{namespace}/{secret_name}' not found"))?;
    let data = secret.data.unwrap_or_default();
    let keys: Vec<&str> = key.map_or_else(|| KUBECONFIG_KEYS.to_vec(), |k| vec![k]);
    let bytes = keys.iter().find_map(|k| data.get(*k)).ok_or_else(|| {
        format!(
            "kubeConfig Secret '{namespace}/{secret_name}' has no key {}: set spec.kubeConfig.secretRef.key",
            keys.join(" or ")
        )
    })?;
    let text = std::str::from_utf8(&bytes.0)
        .map_err(|_| format!("kubeConfig Secret '{namespace}/{secret_name}' is not UTF-8"))?;
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(|err| {
        format!("kubeConfig Secret '{namespace}/{secret_name}' does not hold a kubeconfig: {err}")
    })?;
    if kubeconfig.auth_infos.iter().any(|a| {
        a.auth_info.as_ref().is_some_and(|i| i.exec.is_some() || i.auth_provider.is_some())
    }) {
        return Err(format!(
            "kubeConfig Secret '{namespace}/{secret_name}': exec and auth-provider credentials are not allowed: use a token or client certificate"
        ));
    }
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|err| format!("kubeConfig Secret '{namespace}/{secret_name}': {err}"))?;
    kube::Client::try_from(config)
        .map_err(|err| format!("kubeConfig Secret '{namespace}/{secret_name}': {err}"))
}

/// The service account a Kustomization acts as: its own `serviceAccountName`, else the
/// controller's `--default-service-account` for local clusters.
pub fn service_account<'a>(obj: &'a Kustomization, default: Option<&'a str>) -> Option<&'a str> {
    match obj.spec.service_account_name.as_deref().filter(|s| !s.is_empty()) {
        Some(name) => Some(name),
        None if obj.spec.kube_config.is_none() => default,
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ks(spec: serde_json::Value) -> Kustomization {
        let mut base = serde_json::json!({"interval": "1m", "prune": true,
            "sourceRef": {"kind": "GitRepository", "name": "repo"}});
        base.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "k", "namespace": "team"}, "spec": base,
        }))
        .unwrap()
    }

    #[test]
    fn the_service_account_comes_from_the_spec_or_the_default_flag() {
        let own = ks(serde_json::json!({"serviceAccountName": "deployer"}));
        assert_eq!(service_account(&own, Some("default-sa")), Some("deployer"));
        let none = ks(serde_json::json!({}));
        assert_eq!(service_account(&none, Some("default-sa")), Some("default-sa"));
        assert_eq!(service_account(&none, None), None);
        // The default applies to the local cluster only.
        let remote = ks(serde_json::json!({"kubeConfig": {"secretRef": {"name": "kc"}}}));
        assert_eq!(service_account(&remote, Some("default-sa")), None);
        assert_eq!(service_account_user("team", "deployer"), "system:serviceaccount:team:deployer");
    }
}
