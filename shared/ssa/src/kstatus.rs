//! kstatus: the readiness of any Kubernetes object computed from its JSON, with the rules of
//! sigs.k8s.io/cli-utils `pkg/kstatus/status` (generic rules plus per-kind readers) that Flux
//! uses for health checks.

use serde_json::Value;

/// The computed status of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The object is being reconciled or rolled out.
    InProgress,
    /// The object failed and will not progress without a change.
    Failed,
    /// The object is ready.
    Current,
    /// The object is being deleted.
    Terminating,
    /// The object does not exist.
    NotFound,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::InProgress => "InProgress",
            Status::Failed => "Failed",
            Status::Current => "Current",
            Status::Terminating => "Terminating",
            Status::NotFound => "NotFound",
        })
    }
}

/// A status with a human-readable explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The status.
    pub status: Status,
    /// Why, in kstatus's words.
    pub message: String,
}

fn health(status: Status, message: impl Into<String>) -> Health {
    Health { status, message: message.into() }
}

fn int(value: &Value) -> Option<i64> {
    value.as_i64()
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

fn condition_is(obj: &Value, type_: &str, status: &str) -> bool {
    condition(obj, type_).is_some_and(|c| c["status"] == status)
}

fn condition_message(obj: &Value, type_: &str) -> String {
    condition(obj, type_)
        .and_then(|c| c["message"].as_str().or_else(|| c["reason"].as_str()))
        .unwrap_or_default()
        .to_string()
}

/// Computes the status of an object.
pub fn compute(obj: &Value) -> Health {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let group = obj["apiVersion"].as_str().and_then(|v| v.rsplit_once('/')).map_or("", |(g, _)| g);
    if obj["metadata"]["deletionTimestamp"].is_string() {
        return health(Status::Terminating, "Resource scheduled for deletion");
    }
    if let Some(generic) = generic_status(obj, kind) {
        return generic;
    }
    match (group, kind) {
        ("apps", "Deployment") => deployment(obj),
        ("apps", "StatefulSet") => statefulset(obj),
        ("apps", "DaemonSet") => daemonset(obj),
        ("apps", "ReplicaSet") => replicaset(obj),
        ("", "Pod") => pod(obj),
        ("", "PersistentVolumeClaim") => pvc(obj),
        ("", "Service") => service(obj),
        ("", "Namespace") => namespace(obj),
        ("batch", "Job") => job(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(obj),
        ("policy", "PodDisruptionBudget") => pdb(obj),
        _ => ready_condition(obj).unwrap_or_else(|| health(Status::Current, "Resource is current")),
    }
}

/// observedGeneration and the abnormal-true conditions Reconciling and Stalled.
fn generic_status(obj: &Value, kind: &str) -> Option<Health> {
    let generation = int(&obj["metadata"]["generation"]);
    let observed = int(&obj["status"]["observedGeneration"]);
    if let (Some(generation), Some(observed)) = (generation, observed)
        && observed < generation
    {
        return Some(health(
            Status::InProgress,
            format!(
                "{kind} generation is {generation}, but latest observed generation is {observed}"
            ),
        ));
    }
    if condition_is(obj, "Reconciling", "True") {
        return Some(health(Status::InProgress, condition_message(obj, "Reconciling")));
    }
    if condition_is(obj, "Stalled", "True") {
        return Some(health(Status::Failed, condition_message(obj, "Stalled")));
    }
    None
}

/// Objects with a `Ready` condition (Flux's own kinds and most operators).
fn ready_condition(obj: &Value) -> Option<Health> {
    let ready = condition(obj, "Ready")?;
    let message = condition_message(obj, "Ready");
    Some(match ready["status"].as_str() {
        Some("True") => health(Status::Current, message),
        Some("False") => health(Status::Failed, message),
        _ => health(Status::InProgress, message),
    })
}

fn spec_replicas(obj: &Value) -> i64 {
    int(&obj["spec"]["replicas"]).unwrap_or(1)
}

fn status_int(obj: &Value, field: &str) -> i64 {
    int(&obj["status"][field]).unwrap_or(0)
}

fn deployment(obj: &Value) -> Health {
    if obj["status"]["observedGeneration"].is_null() {
        return health(
            Status::InProgress,
            "Deployment has not been observed by its controller yet",
        );
    }
    if condition(obj, "Progressing").is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        return health(Status::Failed, "Progress deadline exceeded");
    }
    let desired = spec_replicas(obj);
    let updated = status_int(obj, "updatedReplicas");
    let replicas = status_int(obj, "replicas");
    let available = status_int(obj, "availableReplicas");
    let ready = status_int(obj, "readyReplicas");
    if updated < desired {
        return health(Status::InProgress, format!("Updated: {updated}/{desired}"));
    }
    if replicas > updated {
        return health(Status::InProgress, format!("Pending termination: {}", replicas - updated));
    }
    if available < updated {
        return health(Status::InProgress, format!("Available: {available}/{updated}"));
    }
    if ready < desired {
        return health(Status::InProgress, format!("Ready: {ready}/{desired}"));
    }
    if condition_is(obj, "Available", "False") {
        return health(Status::InProgress, "Deployment not Available");
    }
    health(Status::Current, format!("Deployment is available. Replicas: {replicas}"))
}

fn statefulset(obj: &Value) -> Health {
    if obj["status"]["observedGeneration"].is_null() {
        return health(
            Status::InProgress,
            "StatefulSet has not been observed by its controller yet",
        );
    }
    let desired = spec_replicas(obj);
    let ready = status_int(obj, "readyReplicas");
    let current = status_int(obj, "currentReplicas");
    let updated = status_int(obj, "updatedReplicas");
    if ready < desired {
        return health(Status::InProgress, format!("Ready: {ready}/{desired}"));
    }
    if obj["spec"]["updateStrategy"]["type"] == "OnDelete" {
        return health(Status::Current, format!("StatefulSet is ready. Replicas: {ready}"));
    }
    let partition = int(&obj["spec"]["updateStrategy"]["rollingUpdate"]["partition"]).unwrap_or(0);
    if partition > 0 {
        if updated < desired - partition {
            return health(
                Status::InProgress,
                format!("updated: {updated}/{}", desired - partition),
            );
        }
        return health(
            Status::Current,
            format!("Partitioned roll out complete. updated: {updated}/{}", desired - partition),
        );
    }
    if current < desired {
        return health(Status::InProgress, format!("current: {current}/{desired}"));
    }
    if obj["status"]["currentRevision"] != obj["status"]["updateRevision"] {
        return health(Status::InProgress, "Waiting for updated revision to match current");
    }
    health(Status::Current, format!("All replicas scheduled as expected. Replicas: {ready}"))
}

fn daemonset(obj: &Value) -> Health {
    if obj["status"]["observedGeneration"].is_null() {
        return health(Status::InProgress, "DaemonSet has not been observed by its controller yet");
    }
    let desired = status_int(obj, "desiredNumberScheduled");
    for (field, label) in [
        ("currentNumberScheduled", "Current"),
        ("updatedNumberScheduled", "Updated"),
        ("numberAvailable", "Available"),
        ("numberReady", "Ready"),
    ] {
        let value = status_int(obj, field);
        if value < desired {
            return health(Status::InProgress, format!("{label}: {value}/{desired}"));
        }
    }
    health(Status::Current, format!("All replicas scheduled as expected. Replicas: {desired}"))
}

fn replicaset(obj: &Value) -> Health {
    if condition_is(obj, "ReplicaFailure", "True") {
        return health(Status::Failed, condition_message(obj, "ReplicaFailure"));
    }
    let desired = spec_replicas(obj);
    let ready = status_int(obj, "readyReplicas");
    let available = status_int(obj, "availableReplicas");
    if available < desired {
        return health(Status::InProgress, format!("Available: {available}/{desired}"));
    }
    if ready < desired {
        return health(Status::InProgress, format!("Ready: {ready}/{desired}"));
    }
    health(Status::Current, format!("ReplicaSet is available. Replicas: {desired}"))
}

fn pod(obj: &Value) -> Health {
    match obj["status"]["phase"].as_str() {
        Some("Succeeded") => health(Status::Current, "Pod has completed successfully"),
        Some("Failed") => health(Status::Failed, "Pod has completed, but not successfully"),
        Some("Running") if condition_is(obj, "Ready", "True") => {
            health(Status::Current, "Pod is Ready")
        }
        _ => {
            let crash = obj["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["state"]["waiting"]["reason"] == "CrashLoopBackOff");
            if crash {
                health(Status::Failed, "Pod is in CrashLoopBackOff")
            } else {
                health(Status::InProgress, "Pod is not Ready")
            }
        }
    }
}

fn pvc(obj: &Value) -> Health {
    if obj["status"]["phase"] == "Bound" {
        health(Status::Current, "PVC is Bound")
    } else {
        health(Status::InProgress, "PVC is not Bound")
    }
}

fn service(obj: &Value) -> Health {
    if obj["spec"]["type"] == "LoadBalancer"
        && obj["status"]["loadBalancer"]["ingress"].as_array().is_none_or(|i| i.is_empty())
    {
        return health(Status::InProgress, "ExternalIP has not been assigned");
    }
    health(Status::Current, "Service is ready")
}

fn namespace(obj: &Value) -> Health {
    match obj["status"]["phase"].as_str() {
        Some("Terminating") => health(Status::Terminating, "Namespace is terminating"),
        _ => health(Status::Current, "Namespace is Active"),
    }
}

fn job(obj: &Value) -> Health {
    if condition_is(obj, "Failed", "True") {
        return health(
            Status::Failed,
            format!("Job Failed. failed: {}", status_int(obj, "failed")),
        );
    }
    if condition_is(obj, "Complete", "True") {
        return health(
            Status::Current,
            format!("Job Completed. succeeded: {}", status_int(obj, "succeeded")),
        );
    }
    health(Status::InProgress, format!("Job in progress. active: {}", status_int(obj, "active")))
}

fn crd(obj: &Value) -> Health {
    if condition_is(obj, "NamesAccepted", "False") {
        return health(Status::Failed, condition_message(obj, "NamesAccepted"));
    }
    if condition_is(obj, "Established", "True") {
        return health(Status::Current, "CRD is established");
    }
    health(Status::InProgress, "Install in progress")
}

fn pdb(obj: &Value) -> Health {
    let current = status_int(obj, "currentHealthy");
    let desired = status_int(obj, "desiredHealthy");
    if current < desired {
        return health(
            Status::InProgress,
            format!("Budget not met. healthy replicas: {current}/{desired}"),
        );
    }
    health(Status::Current, format!("Budget is met. Replicas: {current}/{desired}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(obj: Value, expected: Status) {
        let result = compute(&obj);
        assert_eq!(result.status, expected, "{}: {}", obj["kind"], result.message);
    }

    #[test]
    fn kstatus_rules() {
        check(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            Status::Current,
        );
        check(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}),
            Status::Terminating,
        );
        let deployment = |status: Value| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": status});
        check(deployment(json!({})), Status::InProgress);
        check(
            deployment(
                json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2}),
            ),
            Status::InProgress,
        );
        check(
            deployment(
                json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1}),
            ),
            Status::InProgress,
        );
        check(
            deployment(
                json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2}),
            ),
            Status::Current,
        );
        check(
            deployment(
                json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
            ),
            Status::Failed,
        );
        check(
            json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}}),
            Status::Current,
        );
        check(
            json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True"}]}}),
            Status::Failed,
        );
        check(
            json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"active": 1}}),
            Status::InProgress,
        );
        check(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "status": {"conditions": [{"type": "Established", "status": "True"}]}}),
            Status::Current,
        );
        check(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "status": {}}),
            Status::InProgress,
        );
        check(
            json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
            Status::Current,
        );
        check(
            json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
            Status::Failed,
        );
        check(
            json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"}, "status": {}}),
            Status::InProgress,
        );
        check(
            json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "ClusterIP"}}),
            Status::Current,
        );
        check(
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}}),
            Status::InProgress,
        );
        // Flux kinds: Reconciling/Stalled abnormal-true conditions, then Ready.
        let flux = |conditions: Value| json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": conditions}});
        check(flux(json!([{"type": "Ready", "status": "True"}])), Status::Current);
        check(
            flux(
                json!([{"type": "Ready", "status": "False"}, {"type": "Reconciling", "status": "True"}]),
            ),
            Status::InProgress,
        );
        check(
            flux(
                json!([{"type": "Ready", "status": "False"}, {"type": "Stalled", "status": "True"}]),
            ),
            Status::Failed,
        );
        check(flux(json!([{"type": "Ready", "status": "False"}])), Status::Failed);
        check(flux(json!([{"type": "Ready", "status": "Unknown"}])), Status::InProgress);
        check(
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "readyReplicas": 1, "currentReplicas": 1, "currentRevision": "a", "updateRevision": "a"}}),
            Status::Current,
        );
        check(
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "updatedNumberScheduled": 1}}),
            Status::InProgress,
        );
    }
}
