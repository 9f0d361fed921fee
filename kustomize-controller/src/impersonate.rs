//! The client a Kustomization applies with: [`sluice_runtime::impersonate`] (shared with the
//! helm-controller) picks the controller's own, one impersonating
//! `system:serviceaccount:<namespace>:<serviceAccountName>` (or `--default-service-account`),
//! or one for the remote cluster of `spec.kubeConfig.secretRef`.

use sluice_api::kustomize::Kustomization;
pub use sluice_runtime::impersonate::{
    ClientError, client_for, impersonating, remote_client, service_account_user,
};

/// The service account a Kustomization acts as: its own `serviceAccountName`, else the
/// controller's `--default-service-account` for local clusters.
pub fn service_account<'a>(obj: &'a Kustomization, default: Option<&'a str>) -> Option<&'a str> {
    sluice_runtime::impersonate::service_account(
        obj.spec.service_account_name.as_deref(),
        obj.spec.kube_config.is_some(),
        default,
    )
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
