//! Apply stages and the kind order within a stage (fluxcd/pkg ssa/sort.go).

use serde_json::Value;

/// Kinds applied before everything else and waited for, in this order.
const KIND_ORDER: &[&str] = &[
    "CustomResourceDefinition",
    "Namespace",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "ResourceQuota",
    "ServiceAccount",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "ConfigMap",
    "Secret",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];

/// Kinds applied last.
const LAST_KINDS: &[&str] = &["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"];

/// The stage of an object: 0 = CRDs, Namespaces, ClusterRoles; 1 = `*Class` kinds; 2 = the rest.
pub fn stage(obj: &Value) -> usize {
    let kind = obj["kind"].as_str().unwrap_or_default();
    match kind {
        "CustomResourceDefinition" | "Namespace" | "ClusterRole" => 0,
        _ if kind.ends_with("Class") => 1,
        _ => 2,
    }
}

fn rank(kind: &str) -> usize {
    if let Some(position) = KIND_ORDER.iter().position(|k| *k == kind) {
        position
    } else if let Some(position) = LAST_KINDS.iter().position(|k| *k == kind) {
        KIND_ORDER.len() + 1 + position
    } else {
        KIND_ORDER.len()
    }
}

/// Sorts objects for apply: by kind rank, then namespace, then name (stable).
pub fn sort_for_apply(objects: &mut [Value]) {
    objects.sort_by(|a, b| {
        let key = |o: &Value| {
            (
                rank(o["kind"].as_str().unwrap_or_default()),
                o["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
                o["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stages_and_order() {
        assert_eq!(stage(&json!({"kind": "CustomResourceDefinition"})), 0);
        assert_eq!(stage(&json!({"kind": "Namespace"})), 0);
        assert_eq!(stage(&json!({"kind": "IngressClass"})), 1);
        assert_eq!(stage(&json!({"kind": "Deployment"})), 2);
        let mut objects = vec![
            json!({"kind": "ValidatingWebhookConfiguration", "metadata": {"name": "v"}}),
            json!({"kind": "Deployment", "metadata": {"name": "d", "namespace": "a"}}),
            json!({"kind": "Widget", "metadata": {"name": "w"}}),
            json!({"kind": "Service", "metadata": {"name": "s", "namespace": "a"}}),
            json!({"kind": "Namespace", "metadata": {"name": "a"}}),
        ];
        sort_for_apply(&mut objects);
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["Namespace", "Service", "Deployment", "Widget", "ValidatingWebhookConfiguration"]
        );
    }
}
