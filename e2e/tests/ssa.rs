//! Server-side apply, drift correction, prune and health checks of `sluice-ssa` against the real apiserver.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use sluice_e2e::TestEnv;
use sluice_ssa::{Action, ApplyOptions, ObjectId, ResourceManager};

fn owner_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kustomize.toolkit.fluxcd.io/name".to_string(), name.to_string()),
        ("kustomize.toolkit.fluxcd.io/namespace".to_string(), "flux-system".to_string()),
    ])
}

fn config_map(namespace: &str, name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data})
}

fn actions(change_set: &sluice_ssa::ChangeSet) -> Vec<(String, Action)> {
    change_set.entries.iter().map(|e| (e.id.to_string(), e.action)).collect()
}

#[tokio::test]
async fn apply_is_staged_idempotent_and_reports_changes() {
    let env = TestEnv::shared().await.unwrap();
    let ns = env.namespace("ssa-apply").await.unwrap();
    let manager = ResourceManager::new(env.client(), "kustomize-controller", owner_labels("apps"));
    let namespace = format!("{}-extra", ns.name());
    let objects = vec![
        config_map(&namespace, "settings", json!({"mode": "prod"})),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
    ];
    let first = manager.apply_all_staged(&objects, &ApplyOptions::default()).await.unwrap();
    assert_eq!(
        actions(&first),
        vec![
            (format!("Namespace/{namespace}"), Action::Created),
            (format!("ConfigMap/{namespace}/settings"), Action::Created)
        ]
    );
    let second = manager.apply_all_staged(&objects, &ApplyOptions::default()).await.unwrap();
    assert!(!second.has_changes(), "{second:?}");
    let changed =
        vec![objects[1].clone(), config_map(&namespace, "settings", json!({"mode": "staging"}))];
    let third = manager.apply_all_staged(&changed, &ApplyOptions::default()).await.unwrap();
    assert_eq!(third.summary(), format!("ConfigMap/{namespace}/settings configured"));

    let live: Api<ConfigMap> = Api::namespaced(env.client(), &namespace);
    let cm = live.get("settings").await.unwrap();
    assert_eq!(cm.metadata.labels.unwrap()["kustomize.toolkit.fluxcd.io/name"], "apps");
    // The namespace is ours to remove.
    manager.delete_all(&[ObjectId::of(&objects[1]).unwrap()]).await.unwrap();
}

#[tokio::test]
async fn manual_edits_are_reverted_and_manual_fields_removed() {
    let env = TestEnv::shared().await.unwrap();
    let ns = env.namespace("ssa-drift").await.unwrap();
    let manager = ResourceManager::new(env.client(), "kustomize-controller", owner_labels("apps"));
    let desired = config_map(ns.name(), "app", json!({"color": "blue"}));
    manager
        .apply_all_staged(std::slice::from_ref(&desired), &ApplyOptions::default())
        .await
        .unwrap();

    // A person edits the object with kubectl (field manager "kubectl-edit", an Update).
    let api: Api<ConfigMap> = Api::namespaced(env.client(), ns.name());
    let edit = json!({"data": {"color": "red", "debug": "true"}});
    api.patch(
        "app",
        &PatchParams { field_manager: Some("kubectl-edit".into()), ..Default::default() },
        &Patch::Merge(&edit),
    )
    .await
    .unwrap();

    let change_set = manager
        .apply_all_staged(std::slice::from_ref(&desired), &ApplyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        actions(&change_set),
        vec![(format!("ConfigMap/{}/app", ns.name()), Action::Configured)]
    );
    let data = api.get("app").await.unwrap().data.unwrap();
    assert_eq!(data.get("color").map(String::as_str), Some("blue"));
    assert!(!data.contains_key("debug"), "the manually added key must be removed: {data:?}");
}

#[tokio::test]
async fn policies_and_prune_only_touch_owned_objects() {
    let env = TestEnv::shared().await.unwrap();
    let ns = env.namespace("ssa-prune").await.unwrap();
    let manager = ResourceManager::new(env.client(), "kustomize-controller", owner_labels("apps"));
    let mut keep = config_map(ns.name(), "keep", json!({"a": "1"}));
    keep["metadata"]["annotations"] = json!({"kustomize.toolkit.fluxcd.io/prune": "disabled"});
    let objects = vec![keep.clone(), config_map(ns.name(), "gone", json!({"a": "1"}))];
    manager.apply_all_staged(&objects, &ApplyOptions::default()).await.unwrap();

    // An object with the same name, not created by this owner, is never pruned.
    let other = ResourceManager::new(env.client(), "kustomize-controller", owner_labels("other"));
    other
        .apply_all_staged(&[config_map(ns.name(), "foreign", json!({}))], &ApplyOptions::default())
        .await
        .unwrap();

    let stale: Vec<ObjectId> = ["keep", "gone", "foreign", "never-existed"]
        .iter()
        .map(|name| ObjectId::of(&config_map(ns.name(), name, json!({}))).unwrap())
        .collect();
    let pruned = manager.delete_all(&stale).await.unwrap();
    assert_eq!(
        actions(&pruned),
        vec![
            (format!("ConfigMap/{}/keep", ns.name()), Action::Skipped),
            (format!("ConfigMap/{}/gone", ns.name()), Action::Deleted),
            (format!("ConfigMap/{}/foreign", ns.name()), Action::Skipped),
        ]
    );

    // reconcile: disabled and ssa: IfNotPresent leave live objects alone.
    let api: Api<ConfigMap> = Api::namespaced(env.client(), ns.name());
    let mut disabled = config_map(ns.name(), "keep", json!({"a": "changed"}));
    disabled["metadata"]["annotations"] =
        json!({"kustomize.toolkit.fluxcd.io/reconcile": "disabled"});
    let mut if_not_present = config_map(ns.name(), "foreign", json!({"b": "2"}));
    if_not_present["metadata"]["annotations"] =
        json!({"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"});
    let change_set = manager
        .apply_all_staged(&[disabled, if_not_present], &ApplyOptions::default())
        .await
        .unwrap();
    assert!(change_set.entries.iter().all(|e| e.action == Action::Skipped), "{change_set:?}");
    assert_eq!(api.get("keep").await.unwrap().data.unwrap()["a"], "1");
}

#[tokio::test]
async fn health_waits_for_crds_and_reports_unknown_kinds() {
    let env = TestEnv::shared().await.unwrap();
    let ns = env.namespace("ssa-health").await.unwrap();
    let manager = ResourceManager::new(env.client(), "kustomize-controller", owner_labels("apps"));
    let group = format!("{}.example.com", ns.name());
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let widget = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w", "namespace": ns.name()}, "spec": {"size": 3}});
    // The CRD and an object of its kind in one set: staging applies and waits for the CRD first.
    let change_set = manager
        .apply_all_staged(&[widget.clone(), crd.clone()], &ApplyOptions::default())
        .await
        .unwrap();
    assert_eq!(change_set.entries.len(), 2);
    manager.wait_for_set(&[crd.clone(), widget], Duration::from_secs(30)).await.unwrap();

    let unknown = json!({"apiVersion": "nothing.example.com/v1", "kind": "Nope", "metadata": {"name": "x", "namespace": ns.name()}});
    let err = manager.apply_all_staged(&[unknown], &ApplyOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("no matches for kind \"Nope\""), "{err}");
    manager.delete_all(&[ObjectId::of(&crd).unwrap()]).await.unwrap();
}
