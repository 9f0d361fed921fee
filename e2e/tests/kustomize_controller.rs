//! The kustomize-controller against the real apiserver: apply, prune, drift correction,
//! failure conditions and garbage collection on deletion.
//!
//! The source side is an artifact server of `sluice-artifact` and a GitRepository whose status
//! this test writes, so the controller is tested alone.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use sluice_api::kustomize::Kustomization;
use sluice_api::source::GitRepository;
use sluice_artifact::Storage;
use sluice_e2e::{TestEnv, wait_for};
use sluice_runtime::Runtime;

struct Source {
    storage: Storage,
    api: Api<GitRepository>,
    name: String,
}

impl Source {
    async fn create(env: &TestEnv, namespace: &str, storage: Storage) -> Source {
        let api: Api<GitRepository> = Api::namespaced(env.client(), namespace);
        let repo: GitRepository = serde_json::from_value(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "apps"},
            "spec": {"url": "https://example.invalid/apps.git", "interval": "10m"}
        }))
        .unwrap();
        api.create(&PostParams::default(), &repo).await.unwrap();
        Source { storage, api, name: "apps".into() }
    }

    /// Publishes `files` as a new revision and writes it into the GitRepository's status.
    async fn publish(&self, revision: &str, files: &[(&str, &str)]) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
        let path = Storage::artifact_path(
            "GitRepository",
            "ns",
            &self.name,
            &format!("{revision}.tar.gz"),
        );
        let stored = self.storage.archive(&path, dir.path(), None).unwrap();
        let artifact = self.storage.artifact(&stored, format!("main@sha1:{revision}"), None);
        let status = json!({"status": {"artifact": artifact, "conditions": [{
            "type": "Ready", "status": "True", "reason": "Succeeded", "message": "stored artifact",
            "lastTransitionTime": "2024-01-01T00:00:00Z"}]}});
        self.api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }
}

async fn start_controller(env: &TestEnv) -> Arc<Runtime> {
    let args: sluice_runtime::runtime::RuntimeArgs =
        sluice_runtime::runtime::parse_args_from::<Flags, _, _>(
            "4",
            [
                "kustomize-controller",
                "--metrics-addr=127.0.0.1:0",
                "--health-addr=127.0.0.1:0",
                "--requeue-dependency=2s",
                "--log-level=debug",
            ],
        )
        .runtime;
    let runtime =
        Runtime::start_with_client("kustomize-controller", args, env.client()).await.unwrap();
    tokio::spawn(kustomize_controller::run(runtime.clone()));
    runtime
}

#[derive(clap::Parser, Debug)]
struct Flags {
    #[command(flatten)]
    runtime: sluice_runtime::runtime::RuntimeArgs,
}

fn kustomization(name: &str, path: &str, target_namespace: &str) -> Kustomization {
    serde_json::from_value(json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": name},
        "spec": {"interval": "10m", "prune": true, "path": path, "targetNamespace": target_namespace,
                 "sourceRef": {"kind": "GitRepository", "name": "apps"}}
    }))
    .unwrap()
}

async fn wait_ready(api: &Api<Kustomization>, name: &str, revision: &str) -> Kustomization {
    let result =
        wait_for(Duration::from_secs(60), &format!("{name} to apply {revision}"), || async {
            let ks = api.get(name).await?;
            let status = ks.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            Ok((ready && status.last_applied_revision.as_deref() == Some(revision)).then_some(ks))
        })
        .await;
    match result {
        Ok(ks) => ks,
        Err(err) => {
            let last =
                api.get(name).await.ok().and_then(|ks| serde_json::to_string_pretty(&ks).ok());
            panic!("{err:#}\nlast state: {}", last.unwrap_or_default());
        }
    }
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: ${color:=blue}\n";
const SVC: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n";

#[tokio::test]
async fn kustomization_applies_prunes_corrects_drift_and_garbage_collects() {
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("ks-loop").await.unwrap();
    let storage_dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(sluice_artifact::server::serve(
        storage_dir.path().to_path_buf(),
        listener,
        std::future::pending(),
    ));
    let storage =
        Storage::new(storage_dir.path(), address.to_string(), Duration::from_secs(60), 2).unwrap();
    let source = Source::create(&env, ns.name(), storage).await;
    source
        .publish(
            "1111111111111111111111111111111111111111",
            &[("apps/cm.yaml", CM), ("apps/svc.yaml", SVC), ("README.md", "hi")],
        )
        .await;
    let runtime = start_controller(&env).await;

    let api: Api<Kustomization> = Api::namespaced(env.client(), ns.name());
    let mut ks = kustomization("apps", "./apps", ns.name());
    ks.spec.post_build =
        Some(serde_json::from_value(json!({"substitute": {"unused": "x"}})).unwrap());
    api.create(&PostParams::default(), &ks).await.unwrap();
    let applied =
        wait_ready(&api, "apps", "main@sha1:1111111111111111111111111111111111111111").await;
    let status = applied.status.unwrap();
    let history = status.history.clone().unwrap_or_default();
    assert_eq!(history.len(), 1);
    assert!(history[0].digest.starts_with("sha256:"));
    assert_eq!(
        history[0].metadata.as_ref().unwrap()["revision"],
        "main@sha1:1111111111111111111111111111111111111111"
    );
    let ids: Vec<String> = status.inventory.unwrap().entries.into_iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        [format!("{}_settings__ConfigMap", ns.name()), format!("{}_web__Service", ns.name())]
    );
    let cms: Api<ConfigMap> = Api::namespaced(env.client(), ns.name());
    let cm = cms.get("settings").await.unwrap();
    assert_eq!(cm.data.as_ref().unwrap()["color"], "blue");
    assert_eq!(cm.metadata.labels.as_ref().unwrap()["kustomize.toolkit.fluxcd.io/name"], "apps");

    // A manual edit is reverted on the next reconcile.
    let edit = json!({"data": {"color": "red"}});
    cms.patch(
        "settings",
        &PatchParams { field_manager: Some("kubectl-edit".into()), ..Default::default() },
        &Patch::Merge(&edit),
    )
    .await
    .unwrap();
    sluice_e2e::request_reconcile(&api, "apps").await;
    wait_for(Duration::from_secs(30), "the manual edit to be reverted", || async {
        Ok((cms.get("settings").await?.data.unwrap_or_default()["color"] == "blue").then_some(()))
    })
    .await
    .unwrap();

    // A new revision without the Service prunes it.
    source.publish("2222222222222222222222222222222222222222", &[("apps/cm.yaml", CM)]).await;
    sluice_e2e::request_reconcile(&api, "apps").await;
    wait_ready(&api, "apps", "main@sha1:2222222222222222222222222222222222222222").await;
    let services: Api<Service> = Api::namespaced(env.client(), ns.name());
    wait_for(Duration::from_secs(30), "the Service to be pruned", || async {
        Ok(services.get_opt("web").await?.is_none().then_some(()))
    })
    .await
    .unwrap();

    // A bad path fails with a condition naming the field, and keeps the last applied revision.
    let bad = kustomization("bad", "./nowhere", ns.name());
    api.create(&PostParams::default(), &bad).await.unwrap();
    let message = wait_for(Duration::from_secs(30), "the bad Kustomization to fail", || async {
        let ks = api.get("bad").await?;
        let ready = ks
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready");
        Ok(ready.filter(|c| c.status == "False").map(|c| (c.reason, c.message)))
    })
    .await
    .unwrap();
    assert_eq!(message.0, "BuildFailed");
    assert!(message.1.contains("spec.path \"./nowhere\" not found"), "{}", message.1);

    // Deleting the Kustomization garbage-collects what it applied.
    api.delete("apps", &DeleteParams::default()).await.unwrap();
    wait_for(Duration::from_secs(30), "the ConfigMap to be garbage-collected", || async {
        Ok(cms.get_opt("settings").await?.is_none().then_some(()))
    })
    .await
    .unwrap();
    runtime.shutdown.trigger();
}
