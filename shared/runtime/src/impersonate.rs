//! The client an object's changes are made with, shared by the kustomize-controller and the
//! helm-controller: the controller's own, one impersonating
//! `system:serviceaccount:<namespace>:<serviceAccountName>` (or `--default-service-account`),
//! or one for the remote cluster of `spec.kubeConfig.secretRef` (itself impersonating when
//! `serviceAccountName` is set), as Flux's `runtime/client` impersonator builds them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::client::Body;
use kube::config::{KubeConfigOptions, Kubeconfig};
use sluice_api::meta::KubeConfigReference;

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

/// The service account an object acts as: its own `serviceAccountName`, else the controller's
/// `--default-service-account` for local clusters (`remote`: the object sets `kubeConfig`).
pub fn service_account<'a>(
    own: Option<&'a str>,
    remote: bool,
    default: Option<&'a str>,
) -> Option<&'a str> {
    match own.filter(|s| !s.is_empty()) {
        Some(name) => Some(name),
        None if !remote => default,
        None => None,
    }
}

/// Why the client of an object could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The spec asks for something this build does not do; the message names the field.
    #[error("{0}")]
    Unsupported(String),
    /// The kubeconfig Secret or the impersonated user is unusable.
    #[error("{0}")]
    Client(String),
}

/// The client for an object in `namespace` with `spec.kubeConfig` and
/// `spec.serviceAccountName`: the remote cluster's when `kube_config` is set, else
/// `controller`; impersonating the service account that [`service_account`] picks.
///
/// # Errors
/// `kubeConfig.configMapRef` (workload identity) is [`ClientError::Unsupported`]; an unusable
/// kubeconfig Secret or user name is [`ClientError::Client`].
pub async fn client_for(
    controller: &kube::Client,
    namespace: &str,
    kube_config: Option<&KubeConfigReference>,
    service_account_name: Option<&str>,
    default_service_account: Option<&str>,
) -> Result<kube::Client, ClientError> {
    let base = match kube_config.and_then(|k| k.secret_ref.as_ref()) {
        Some(reference) => {
            remote_client(controller, namespace, &reference.name, reference.key.as_deref())
                .await
                .map_err(ClientError::Client)?
        }
        None if kube_config.is_some() => {
            return Err(ClientError::Unsupported(
                "spec.kubeConfig.configMapRef (workload identity) is not supported: use spec.kubeConfig.secretRef".into(),
            ));
        }
        None => controller.clone(),
    };
    match service_account(service_account_name, kube_config.is_some(), default_service_account) {
        Some(account) => impersonating(&base, &service_account_user(namespace, account))
            .map_err(ClientError::Client),
        None => Ok(base),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_account_comes_from_the_spec_or_the_default_flag() {
        assert_eq!(service_account(Some("deployer"), false, Some("default-sa")), Some("deployer"));
        assert_eq!(service_account(None, false, Some("default-sa")), Some("default-sa"));
        assert_eq!(service_account(Some(""), false, Some("default-sa")), Some("default-sa"));
        assert_eq!(service_account(None, false, None), None);
        // The default applies to the local cluster only.
        assert_eq!(service_account(None, true, Some("default-sa")), None);
        assert_eq!(service_account(Some("deployer"), true, None), Some("deployer"));
        assert_eq!(service_account_user("team", "deployer"), "system:serviceaccount:team:deployer");
    }

    #[tokio::test]
    async fn user_names_must_be_header_values() {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        assert!(impersonating(&client, "system:serviceaccount:a:b").is_ok());
        let err = impersonating(&client, "bad\nname").err().unwrap();
        assert!(err.contains("not a valid user name"), "{err}");
    }

    #[tokio::test]
    async fn a_config_map_kube_config_is_refused_with_the_field() {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let reference = KubeConfigReference {
            secret_ref: None,
            config_map_ref: Some(sluice_api::meta::LocalObjectReference { name: "x".into() }),
        };
        let err = client_for(&client, "team", Some(&reference), None, None).await.err().unwrap();
        assert!(
            matches!(&err, ClientError::Unsupported(m) if m.contains("spec.kubeConfig.configMapRef")),
            "{err}"
        );
    }
}
