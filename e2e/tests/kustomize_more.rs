//! The kustomize-controller's harder paths against the real apiserver (RBAC on): SOPS
//! decryption, failures that must change nothing (broken overlay, invalid object, missing
//! variable in strict mode, wrong SOPS key, forbidden namespace under impersonation),
//! impersonation and kubeConfig that work, CEL health expressions, dependsOn ordering, and a
//! controller killed in the middle of a big apply.
//!
//! Each test runs its own controller sharded with `--watch-label-selector`, so the tests of this
//! file run in parallel without reconciling each other's Kustomizations. The source side is an
//! artifact server and a GitRepository whose status the test writes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sluice_api::kustomize::Kustomization;
use sluice_api::source::GitRepository;
use sluice_artifact::Storage;
use sluice_e2e::{TestEnv, TestNamespace, wait_for};
use sluice_runtime::Runtime;
use tokio::task::JoinHandle;

const SHARD_LABEL: &str = "sluice-e2e/shard";
const SOPS_SECRET: &str = include_str!("../../shared/sops/testdata/secret.regex.enc.yaml");
const AGE_KEY: &str = include_str!("../../shared/sops/testdata/age.agekey");
const OTHER_AGE_KEY: &str = include_str!("../../shared/sops/testdata/other.agekey");

#[derive(clap::Parser, Debug)]
struct Flags {
    #[command(flatten)]
    runtime: sluice_runtime::runtime::RuntimeArgs,
}

/// A namespace with a GitRepository served by an in-process artifact server, and a controller
/// that only sees this fixture's Kustomizations.
struct Fixture {
    env: TestEnv,
    ns: TestNamespace,
    storage: Storage,
    sources: Api<GitRepository>,
    api: Api<Kustomization>,
    _storage_dir: tempfile::TempDir,
}

impl Fixture {
    async fn new(prefix: &str) -> Fixture {
        let env = TestEnv::shared().await.unwrap();
        env.install_crds().await.unwrap();
        let ns = env.namespace(prefix).await.unwrap();
        let storage_dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(sluice_artifact::server::serve(
            storage_dir.path().to_path_buf(),
            listener,
            std::future::pending(),
        ));
        let storage =
            Storage::new(storage_dir.path(), address.to_string(), Duration::from_secs(60), 2)
                .unwrap();
        let sources: Api<GitRepository> = Api::namespaced(env.client(), ns.name());
        let repo: GitRepository = serde_json::from_value(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "apps", "labels": {SHARD_LABEL: ns.name()}},
            "spec": {"url": "https://example.invalid/apps.git", "interval": "10m"}
        }))
        .unwrap();
        sources.create(&PostParams::default(), &repo).await.unwrap();
        let api = Api::namespaced(env.client(), ns.name());
        Fixture { env, ns, storage, sources, api, _storage_dir: storage_dir }
    }

    fn name(&self) -> &str {
        self.ns.name()
    }

    /// Starts a controller for this fixture's shard; the handle aborts it.
    async fn start_controller(&self, extra: &[&str]) -> (Arc<Runtime>, JoinHandle<()>) {
        let mut args = vec![
            "kustomize-controller".to_string(),
            "--metrics-addr=127.0.0.1:0".into(),
            "--health-addr=127.0.0.1:0".into(),
            "--requeue-dependency=1s".into(),
            format!("--watch-label-selector={SHARD_LABEL}={}", self.name()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let flags: Flags = sluice_runtime::runtime::parse_args_from("4", args);
        let runtime =
            Runtime::start_with_client("kustomize-controller", flags.runtime, self.env.client())
                .await
                .unwrap();
        let handle = tokio::spawn({
            let runtime = runtime.clone();
            async move {
                kustomize_controller::run(runtime).await.ok();
            }
        });
        (runtime, handle)
    }

    /// Publishes `files` as revision `main@sha1:<revision>`.
    async fn publish(&self, revision: &str, files: &[(&str, String)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
        let path = Storage::artifact_path(
            "GitRepository",
            self.name(),
            "apps",
            &format!("{revision}.tar.gz"),
        );
        let stored = self.storage.archive(&path, dir.path(), None).unwrap();
        let revision = format!("main@sha1:{revision}");
        let artifact = self.storage.artifact(&stored, revision.clone(), None);
        let status = json!({"status": {"artifact": artifact, "conditions": [{
            "type": "Ready", "status": "True", "reason": "Succeeded", "message": "stored artifact",
            "lastTransitionTime": "2024-01-01T00:00:00Z"}]}});
        self.sources
            .patch_status("apps", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        revision
    }

    /// Creates a Kustomization of this shard; `spec` is merged over the defaults.
    async fn create(&self, name: &str, spec: Value) {
        let mut full = json!({"interval": "10m", "prune": true,
            "sourceRef": {"kind": "GitRepository", "name": "apps"}});
        full.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
        let ks: Kustomization = serde_json::from_value(json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "labels": {SHARD_LABEL: self.name()}},
            "spec": full,
        }))
        .unwrap();
        self.api.create(&PostParams::default(), &ks).await.unwrap();
    }

    async fn ready_condition(&self, name: &str) -> Option<(String, String, String)> {
        let ks = self.api.get(name).await.ok()?;
        let condition = ks.status?.conditions?.into_iter().find(|c| c.type_ == "Ready")?;
        Some((condition.status, condition.reason, condition.message))
    }

    async fn wait_ready(&self, name: &str, revision: &str, timeout: Duration) -> Kustomization {
        let what = format!("{name} to apply {revision}");
        let result = wait_for(timeout, &what, || async {
            let ks = self.api.get(name).await?;
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
            Err(err) => panic!("{err:#}\nlast Ready: {:?}", self.ready_condition(name).await),
        }
    }

    /// Waits for Ready=False and returns (reason, message).
    async fn wait_failed(&self, name: &str) -> (String, String) {
        wait_for(Duration::from_secs(60), &format!("{name} to fail"), || async {
            Ok(self
                .ready_condition(name)
                .await
                .filter(|(status, _, _)| status == "False")
                .map(|(_, reason, message)| (reason, message)))
        })
        .await
        .unwrap()
    }

    /// The ConfigMaps and Secrets of `namespace` that the Kustomization `name` owns.
    async fn owned(&self, namespace: &str, name: &str) -> BTreeSet<String> {
        let selector = format!(
            "kustomize.toolkit.fluxcd.io/name={name},kustomize.toolkit.fluxcd.io/namespace={}",
            self.name()
        );
        let params = ListParams::default().labels(&selector);
        let mut found = BTreeSet::new();
        let cms: Api<ConfigMap> = Api::namespaced(self.env.client(), namespace);
        for cm in cms.list(&params).await.unwrap() {
            found.insert(format!("ConfigMap/{}", cm.metadata.name.unwrap()));
        }
        let secrets: Api<Secret> = Api::namespaced(self.env.client(), namespace);
        for secret in secrets.list(&params).await.unwrap() {
            found.insert(format!("Secret/{}", secret.metadata.name.unwrap()));
        }
        found
    }

    async fn secret(&self, name: &str, data: &[(&str, &str)]) {
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        }))
        .unwrap();
        Api::<Secret>::namespaced(self.env.client(), self.name())
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
}

fn config_map(name: &str, data: Value) -> String {
    serde_json::to_string(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": data}))
    .unwrap()
}

const REV1: &str = "1111111111111111111111111111111111111111";
const REV2: &str = "2222222222222222222222222222222222222222";

#[tokio::test]
async fn sops_secrets_are_decrypted_and_a_wrong_key_applies_nothing() {
    let fx = Fixture::new("ks-sops").await;
    let good = fx.env.namespace("ks-sops-good").await.unwrap();
    let wrong = fx.env.namespace("ks-sops-wrong").await.unwrap();
    fx.secret("sops-age", &[("identity.agekey", AGE_KEY)]).await;
    fx.secret("other-age", &[("identity.agekey", OTHER_AGE_KEY)]).await;
    let revision = fx
        .publish(
            REV1,
            &[
                ("secrets/db.yaml", SOPS_SECRET.to_string()),
                ("secrets/cm.yaml", config_map("settings", json!({"a": "b"}))),
            ],
        )
        .await;
    let (runtime, _) = fx.start_controller(&[]).await;

    fx.create(
        "good",
        json!({"path": "./secrets", "targetNamespace": good.name(),
               "decryption": {"provider": "sops", "secretRef": {"name": "sops-age"}}}),
    )
    .await;
    fx.create(
        "wrong",
        json!({"path": "./secrets", "targetNamespace": wrong.name(),
               "decryption": {"provider": "sops", "secretRef": {"name": "other-age"}}}),
    )
    .await;
    fx.create("undeclared", json!({"path": "./secrets", "targetNamespace": wrong.name()})).await;

    fx.wait_ready("good", &revision, Duration::from_secs(60)).await;
    let secret = Api::<Secret>::namespaced(fx.env.client(), good.name()).get("db").await.unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["password"].0, b"s3cr3t");
    assert_eq!(data["port"].0, b"5432");
    assert_eq!(data["token"].0, b"secret-token");
    assert_eq!(data["nested_unencrypted"].0, b"visible");

    let (reason, message) = fx.wait_failed("wrong").await;
    assert_eq!(reason, "BuildFailed");
    assert!(
        message.contains(&format!(
            "failed to decrypt and format '{}/db' Secret data: cannot get sops data key: no key in the decryption Secret matches: age recipient age1mgy6gkczu3huajrm7mg5whzzwr7kuu5lqp3dgltvkgpg6x2hh9nq45yl7g: no age identity matches",
            wrong.name()
        )),
        "{message}"
    );
    assert!(!message.contains("AGE-SECRET-KEY"), "{message}");
    let (reason, message) = fx.wait_failed("undeclared").await;
    assert_eq!(reason, "BuildFailed");
    assert!(message.contains("is encrypted with SOPS and spec.decryption is not set"), "{message}");
    // Neither the Secret nor its sibling ConfigMap was applied.
    assert!(fx.owned(wrong.name(), "wrong").await.is_empty());
    assert!(fx.owned(wrong.name(), "undeclared").await.is_empty());
    runtime.shutdown.trigger();
}

#[tokio::test]
async fn failures_leave_a_clear_message_and_change_nothing() {
    let fx = Fixture::new("ks-fail").await;
    let target = fx.env.namespace("ks-fail-target").await.unwrap();
    let cm = config_map("first", json!({"k": "v"}));
    let revision = fx
        .publish(
            REV1,
            &[
                // A broken overlay: its base does not exist.
                (
                    "overlay/kustomization.yaml",
                    "resources:\n- ../missing-base\n- cm.yaml\n".to_string(),
                ),
                ("overlay/cm.yaml", cm.clone()),
                // An invalid object next to a valid one.
                ("invalid/cm.yaml", cm.clone()),
                (
                    "invalid/bad.yaml",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  list: [1, 2]\n"
                        .to_string(),
                ),
                // A variable with no value in strict mode.
                ("vars/cm.yaml", cm.clone()),
                ("vars/needs.yaml", config_map("needs", json!({"x": "${not_set}"}))),
                // Objects the impersonated service account may not create.
                ("plain/cm.yaml", cm.clone()),
            ],
        )
        .await;
    let (runtime, _) = fx.start_controller(&[]).await;
    let t = target.name();
    fx.create("overlay", json!({"path": "./overlay", "targetNamespace": t})).await;
    fx.create("invalid", json!({"path": "./invalid", "targetNamespace": t})).await;
    fx.create(
        "vars",
        json!({"path": "./vars", "targetNamespace": t, "postBuild": {"substitute": {"set": "1"}}}),
    )
    .await;
    fx.create(
        "forbidden",
        json!({"path": "./plain", "targetNamespace": t, "serviceAccountName": "deployer"}),
    )
    .await;

    let (reason, message) = fx.wait_failed("overlay").await;
    assert_eq!(reason, "BuildFailed");
    assert!(message.contains(&format!("building manifests of revision {revision}")), "{message}");
    assert!(message.contains("missing-base"), "{message}");

    let (reason, message) = fx.wait_failed("invalid").await;
    assert_eq!(reason, "ReconciliationFailed");
    assert!(message.contains(&format!("ConfigMap/{t}/bad dry-run apply failed")), "{message}");

    let (reason, message) = fx.wait_failed("vars").await;
    assert_eq!(reason, "BuildFailed");
    assert!(
        message.contains("post build substitutions failed on ConfigMap/")
            && message.contains("variable not set (strict mode): \"not_set\""),
        "{message}"
    );

    let (reason, message) = fx.wait_failed("forbidden").await;
    assert_eq!(reason, "ReconciliationFailed");
    let user = format!("system:serviceaccount:{}:deployer", fx.name());
    assert!(message.contains(&format!("User \"{user}\" cannot")), "{message}");
    assert!(message.contains("forbidden"), "{message}");

    // Nothing of any of them reached the cluster, and no inventory was recorded.
    for name in ["overlay", "invalid", "vars", "forbidden"] {
        assert!(fx.owned(t, name).await.is_empty(), "{name} applied something");
        let ks = fx.api.get(name).await.unwrap();
        let status = ks.status.unwrap_or_default();
        assert!(status.inventory.is_none(), "{name} has an inventory");
        assert_eq!(status.last_attempted_revision.as_deref(), Some(revision.as_str()));
        assert!(status.last_applied_revision.is_none());
    }
    runtime.shutdown.trigger();
}

#[tokio::test]
async fn impersonation_kube_config_and_cel_health() {
    let fx = Fixture::new("ks-auth").await;
    let target = fx.env.namespace("ks-auth-target").await.unwrap();
    let t = target.name();
    // The service account may manage ConfigMaps in the target namespace and nothing else (an
    // explicit Role: the harness runs no clusterrole-aggregation controller, so `edit` is empty).
    let rbac = [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "deployer"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                       "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "deployer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": fx.name()}]}),
    ];
    for object in rbac {
        fx.env.create_yaml(t, &serde_json::to_string(&object).unwrap()).await.unwrap();
    }
    let kubeconfig = std::fs::read_to_string(fx.env.kubeconfig()).unwrap();
    fx.secret("remote", &[("value", &kubeconfig)]).await;
    let revision = fx
        .publish(
            REV1,
            &[
                ("sa/cm.yaml", config_map("by-sa", json!({"k": "v"}))),
                ("remote/cm.yaml", config_map("by-remote", json!({"k": "v"}))),
                ("healthy/cm.yaml", config_map("healthy", json!({"ready": "yes"}))),
                ("broken/cm.yaml", config_map("broken", json!({"ready": "broken"}))),
            ],
        )
        .await;
    let (runtime, _) = fx.start_controller(&[]).await;
    fx.create(
        "sa",
        json!({"path": "./sa", "targetNamespace": t, "serviceAccountName": "deployer"}),
    )
    .await;
    fx.create(
        "remote",
        json!({"path": "./remote", "targetNamespace": t, "kubeConfig": {"secretRef": {"name": "remote"}}}),
    )
    .await;
    let exprs = json!([{"apiVersion": "v1", "kind": "ConfigMap",
        "failed": "data.ready == 'broken'", "current": "data.ready == 'yes'"}]);
    fx.create(
        "healthy",
        json!({"path": "./healthy", "targetNamespace": t, "wait": true, "timeout": "20s",
               "healthCheckExprs": exprs}),
    )
    .await;
    fx.create(
        "broken",
        json!({"path": "./broken", "targetNamespace": t, "wait": true, "timeout": "20s",
               "healthCheckExprs": exprs}),
    )
    .await;

    fx.wait_ready("sa", &revision, Duration::from_secs(60)).await;
    assert_eq!(fx.owned(t, "sa").await, BTreeSet::from(["ConfigMap/by-sa".to_string()]));
    fx.wait_ready("remote", &revision, Duration::from_secs(60)).await;
    assert_eq!(fx.owned(t, "remote").await, BTreeSet::from(["ConfigMap/by-remote".to_string()]));
    fx.wait_ready("healthy", &revision, Duration::from_secs(60)).await;
    let (reason, message) = fx.wait_failed("broken").await;
    assert_eq!(reason, "HealthCheckFailed");
    assert!(
        message.contains(&format!("ConfigMap/{t}/broken status: 'Failed'"))
            && message.contains("failed expression \"data.ready == 'broken'\" is true"),
        "{message}"
    );
    runtime.shutdown.trigger();
}

#[tokio::test]
async fn depends_on_orders_two_kustomizations() {
    let fx = Fixture::new("ks-deps").await;
    let target = fx.env.namespace("ks-deps-target").await.unwrap();
    let t = target.name();
    let revision = fx
        .publish(
            REV1,
            &[
                ("first/cm.yaml", config_map("first", json!({"k": "v"}))),
                ("second/cm.yaml", config_map("second", json!({"k": "v"}))),
            ],
        )
        .await;
    let (runtime, _) = fx.start_controller(&[]).await;
    // The dependent first, and its dependency suspended: it must wait.
    fx.create(
        "second",
        json!({"path": "./second", "targetNamespace": t, "dependsOn": [{"name": "first"}]}),
    )
    .await;
    fx.create("first", json!({"path": "./first", "targetNamespace": t, "suspend": true})).await;
    let (reason, message) = fx.wait_failed("second").await;
    assert_eq!(reason, "DependencyNotReady");
    assert!(
        message.contains(&format!("dependency '{}/first' is not ready", fx.name())),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(fx.owned(t, "second").await.is_empty(), "second applied before first");

    fx.api
        .patch("first", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": false}})))
        .await
        .unwrap();
    let first = fx.wait_ready("first", &revision, Duration::from_secs(60)).await;
    let second = fx.wait_ready("second", &revision, Duration::from_secs(60)).await;
    let applied_at = |ks: &Kustomization| {
        ks.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.last_transition_time.0)
            .unwrap()
    };
    assert!(applied_at(&first) <= applied_at(&second));
    assert_eq!(fx.owned(t, "second").await, BTreeSet::from(["ConfigMap/second".to_string()]));
    runtime.shutdown.trigger();
}

#[tokio::test]
async fn killing_the_controller_mid_apply_converges_without_orphans() {
    const COUNT: usize = 300;
    let fx = Fixture::new("ks-kill").await;
    let target = fx.env.namespace("ks-kill-target").await.unwrap();
    let t = target.name();
    let files: Vec<(String, String)> = (0..COUNT)
        .map(|i| {
            (
                format!("big/cm-{i:03}.yaml"),
                config_map(&format!("cm-{i:03}"), json!({"i": i.to_string()})),
            )
        })
        .collect();
    let refs: Vec<(&str, String)> = files.iter().map(|(p, t)| (p.as_str(), t.clone())).collect();
    let revision = fx.publish(REV1, &refs).await;
    fx.create("big", json!({"path": "./big", "targetNamespace": t})).await;

    let (runtime, handle) = fx.start_controller(&[]).await;
    let cms: Api<ConfigMap> = Api::namespaced(fx.env.client(), t);
    let selector = format!(
        "kustomize.toolkit.fluxcd.io/name=big,kustomize.toolkit.fluxcd.io/namespace={}",
        fx.name()
    );
    let count = || async {
        cms.list(&ListParams::default().labels(&selector)).await.map(|l| l.items.len())
    };
    wait_for(Duration::from_secs(120), "the apply to start", || async {
        Ok((count().await? >= 10).then_some(()))
    })
    .await
    .unwrap();
    // Kill the controller in the middle of the apply.
    handle.abort();
    runtime.shutdown.trigger();
    let _ = handle.await;
    let partial = count().await.unwrap();
    assert!(partial < COUNT, "the apply finished before the kill ({partial} objects)");
    let ks = fx.api.get("big").await.unwrap();
    assert!(ks.status.and_then(|s| s.last_applied_revision).is_none());

    // A new controller finishes the job: every object applied and in the inventory.
    let (runtime, _) = fx.start_controller(&[]).await;
    let ks = fx.wait_ready("big", &revision, Duration::from_secs(180)).await;
    let inventory: BTreeSet<String> =
        ks.status.unwrap().inventory.unwrap().entries.into_iter().map(|e| e.id).collect();
    assert_eq!(inventory.len(), COUNT);
    let live: BTreeSet<String> = cms
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|cm| format!("{t}_{}__ConfigMap", cm.metadata.name.unwrap()))
        .collect();
    assert_eq!(live, inventory, "objects owned but not in the inventory would be orphans");

    // And the inventory is complete enough to prune: a smaller revision leaves nothing behind.
    let revision = fx.publish(REV2, &refs[..5]).await;
    let patch = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": REV2}}});
    fx.api.patch("big", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    fx.wait_ready("big", &revision, Duration::from_secs(180)).await;
    wait_for(Duration::from_secs(60), "the pruned ConfigMaps to go", || async {
        Ok((count().await? == 5).then_some(()))
    })
    .await
    .unwrap();
    runtime.shutdown.trigger();
}
