//! helm-controller options on the real apiserver: `postRenderers` (kustomize patches and
//! images), `commonMetadata`, `status.inventory`, `lookup` answered from the cluster, the
//! `serviceAccountName` impersonation, `kubeConfig` remote clusters and the `RetryOnFailure`
//! install strategy.
//!
//! The chart artifacts are published by the test itself (sluice-artifact storage and server)
//! and recorded in HelmChart statuses, the way source-controller would; the full source path is
//! covered by `helm_controller.rs`.

mod helm_common;

use std::time::Duration;

use helm_common::{condition, latest_version, settled, start_controller};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sluice_api::helm::HelmRelease;
use sluice_api::source::HelmChart;
use sluice_e2e::{TestEnv, wait_for};

/// An artifact server for charts published by the test.
struct Charts {
    storage: sluice_artifact::Storage,
    _dir: tempfile::TempDir,
}

impl Charts {
    async fn start() -> Charts {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let storage =
            sluice_artifact::Storage::new(dir.path(), address, Duration::from_secs(60), 2).unwrap();
        tokio::spawn(sluice_artifact::server::serve(
            dir.path().to_path_buf(),
            listener,
            std::future::pending(),
        ));
        Charts { storage, _dir: dir }
    }

    /// Publishes chart `name` 1.0.0 with `files` as the HelmChart `name` of `shard`.
    async fn publish(
        &self,
        env: &TestEnv,
        namespace: &str,
        shard: &str,
        name: &str,
        files: &[(&str, &str)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(name);
        std::fs::create_dir_all(root.join("templates")).unwrap();
        let chart_yaml = format!("apiVersion: v2\nname: {name}\nversion: 1.0.0\n");
        for (path, content) in [("Chart.yaml", chart_yaml.as_str())].iter().chain(files) {
            std::fs::write(root.join(path), content).unwrap();
        }
        let path = sluice_artifact::Storage::artifact_path(
            "HelmChart",
            namespace,
            name,
            &format!("{name}-1.0.0.tgz"),
        );
        let stored = self.storage.archive(&path, dir.path(), None).unwrap();
        let artifact = self.storage.artifact(&stored, "1.0.0", None);
        let charts: Api<HelmChart> = Api::namespaced(env.client(), namespace);
        let chart: HelmChart = serde_json::from_value(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
            "metadata": {"name": name, "labels": {"sharding.fluxcd.io/key": shard}},
            "spec": {"chart": name, "interval": "10m", "sourceRef": {"kind": "HelmRepository", "name": "unused"}}
        }))
        .unwrap();
        charts.create(&PostParams::default(), &chart).await.unwrap();
        let status = json!({"status": {"observedGeneration": 1, "artifact": artifact, "conditions": [
            {"type": "Ready", "status": "True", "reason": "ChartPullSucceeded", "message": "pulled", "lastTransitionTime": jiff::Timestamp::now().to_string()}
        ]}});
        charts.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    }
}

/// Waits until `name` is Ready for `version` of its release.
async fn wait_ready(hrs: &Api<HelmRelease>, name: &str, version: i64) -> HelmRelease {
    settled(
        wait_for(Duration::from_secs(90), &format!("{name} v{version} to be Ready"), || async {
            let hr = hrs.get(name).await?;
            let ready = condition(&hr, "Ready").is_some_and(|c| c.0 == "True");
            Ok((ready && latest_version(&hr) == Some(version)).then_some(hr))
        })
        .await,
        hrs,
    )
    .await
}

/// The decoded release JSON of `sh.helm.release.v1.<release>.v<version>`.
async fn stored_release(env: &TestEnv, namespace: &str, release: &str, version: i64) -> Value {
    use base64::Engine;
    use std::io::Read;
    let secrets: Api<Secret> = Api::namespaced(env.client(), namespace);
    let secret = secrets.get(&format!("sh.helm.release.v1.{release}.v{version}")).await.unwrap();
    let text = &secret.data.as_ref().unwrap()["release"].0;
    let gz = base64::engine::general_purpose::STANDARD.decode(text).unwrap();
    let mut json = String::new();
    flate2::read::GzDecoder::new(gz.as_slice()).read_to_string(&mut json).unwrap();
    serde_json::from_str(&json).unwrap()
}

fn helm_release(name: &str, shard: &str, chart: &str, spec: Value) -> HelmRelease {
    let mut base = json!({"interval": "10m", "timeout": "20s",
        "chartRef": {"kind": "HelmChart", "name": chart}});
    base.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
    serde_json::from_value(json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": name, "labels": {"sharding.fluxcd.io/key": shard}},
        "spec": base,
    }))
    .unwrap()
}

async fn create_settings(env: &TestEnv, namespace: &str, colour: &str) {
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client(), namespace);
    let settings = serde_json::from_value(
        json!({"metadata": {"name": "settings"}, "data": {"colour": colour}}),
    )
    .unwrap();
    configmaps.create(&PostParams::default(), &settings).await.unwrap();
}

/// A ConfigMap whose `colour` comes from the `settings` ConfigMap through `lookup`.
const LOOKUP_CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n  colour: {{ $s := lookup \"v1\" \"ConfigMap\" .Release.Namespace \"settings\" }}{{ if $s }}{{ $s.data.colour | quote }}{{ else }}\"unknown\"{{ end }}\n";
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: {{ .Release.Name }}\n  template:\n    metadata:\n      labels:\n        app: {{ .Release.Name }}\n    spec:\n      automountServiceAccountToken: false\n      containers:\n        - name: app\n          image: {{ .Values.image }}\n";

const SHARD: &str = "helm-options";

#[tokio::test]
async fn post_renderers_common_metadata_inventory_and_lookup() {
    sluice_e2e::install_crypto_provider();
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("helm-opts").await.unwrap();
    let namespace = ns.name().to_string();
    create_settings(&env, &namespace, "blue").await;
    let charts = Charts::start().await;
    charts
        .publish(
            &env,
            &namespace,
            SHARD,
            "opts",
            &[
                ("values.yaml", "image: nginx:1.0\n"),
                ("templates/configmap.yaml", LOOKUP_CONFIGMAP),
                ("templates/deployment.yaml", DEPLOYMENT),
            ],
        )
        .await;
    let controller = start_controller(&env, SHARD).await;
    let hrs: Api<HelmRelease> = Api::namespaced(env.client(), &namespace);
    let post_renderers = |tag: &str| {
        json!([{"kustomize": {
            "patches": [
                {"target": {"kind": "Deployment"}, "patch": "- op: replace\n  path: /spec/replicas\n  value: 0\n"},
                {"patch": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: opts-config\n  labels:\n    patched: \"yes\"\n"}
            ],
            "images": [{"name": "nginx", "newName": "registry.local/nginx", "newTag": tag}]
        }}])
    };
    let hr = helm_release(
        "opts",
        SHARD,
        "opts",
        json!({
            "install": {"disableWait": true}, "upgrade": {"disableWait": true},
            "postRenderers": post_renderers("1.1"),
            "commonMetadata": {"annotations": {"team": "payments"}, "labels": {"tier": "web"}},
        }),
    );
    hrs.create(&PostParams::default(), &hr).await.unwrap();
    let installed = wait_ready(&hrs, "opts", 1).await;

    let deployments: Api<Deployment> = Api::namespaced(env.client(), &namespace);
    let deployment = deployments.get("opts").await.unwrap();
    let spec = deployment.spec.clone().unwrap();
    assert_eq!(spec.replicas, Some(0), "the JSON 6902 patch applies");
    let image = spec.template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("registry.local/nginx:1.1"));
    assert_eq!(deployment.metadata.annotations.as_ref().unwrap()["team"], "payments");
    assert_eq!(deployment.metadata.labels.as_ref().unwrap()["tier"], "web");
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client(), &namespace);
    let cm = configmaps.get("opts-config").await.unwrap();
    assert_eq!(cm.data.as_ref().unwrap()["colour"], "blue", "lookup reads the cluster");
    assert_eq!(cm.metadata.labels.as_ref().unwrap()["patched"], "yes");
    assert_eq!(cm.metadata.annotations.as_ref().unwrap()["team"], "payments");
    let status = installed.status.clone().unwrap();
    assert!(status.observed_post_renderers_digest.as_deref().unwrap().starts_with("sha256:"));
    assert!(status.observed_common_metadata_digest.as_deref().unwrap().starts_with("sha256:"));
    let inventory: Vec<String> =
        status.inventory.unwrap().entries.into_iter().map(|e| e.id).collect();
    assert_eq!(
        inventory,
        [
            format!("{namespace}_opts-config__ConfigMap"),
            format!("{namespace}_opts_apps_Deployment")
        ]
    );
    let rel = stored_release(&env, &namespace, "opts", 1).await;
    let manifest = rel["manifest"].as_str().unwrap();
    assert!(manifest.contains("image: registry.local/nginx:1.1"), "{manifest}");
    assert!(manifest.contains("team: payments"), "{manifest}");

    // New post-renderers alone (same chart and values) upgrade the release.
    let patch = json!({"spec": {"postRenderers": post_renderers("1.2")}});
    hrs.patch("opts", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let upgraded = wait_ready(&hrs, "opts", 2).await;
    assert_eq!(condition(&upgraded, "Released").unwrap().1, "UpgradeSucceeded");
    let deployment = deployments.get("opts").await.unwrap();
    let image = deployment.spec.unwrap().template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("registry.local/nginx:1.2"));
    assert_ne!(
        upgraded.status.unwrap().observed_post_renderers_digest,
        installed.status.unwrap().observed_post_renderers_digest
    );

    // A patch that cannot apply fails the render with the renderer named, and deploys nothing.
    let broken = json!({"spec": {"postRenderers": [{"kustomize": {"patches": [
        {"target": {"kind": "Deployment"}, "patch": "- op: replace\n  path: /spec/missing/field\n  value: 1\n"}
    ]}}]}});
    hrs.patch("opts", &PatchParams::default(), &Patch::Merge(&broken)).await.unwrap();
    let failed = settled(
        wait_for(Duration::from_secs(60), "the broken post-renderer to be reported", || async {
            let hr = hrs.get("opts").await?;
            Ok(condition(&hr, "Ready").filter(|c| c.0 == "False").map(|c| (hr, c)))
        })
        .await,
        &hrs,
    )
    .await;
    assert!(failed.1.2.contains("spec.postRenderers[0].kustomize"), "{}", failed.1.2);
    assert_eq!(latest_version(&failed.0), Some(2));
    controller.abort();
}

#[tokio::test]
async fn impersonation_remote_cluster_and_retry_on_failure() {
    sluice_e2e::install_crypto_provider();
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("helm-sa").await.unwrap();
    let namespace = ns.name().to_string();
    let shard = "helm-sa";
    create_settings(&env, &namespace, "green").await;
    // `deployer` may manage ConfigMaps and the release Secrets of this namespace; `late` may
    // only read them at first (so it can read its release history but not install), and gets
    // the same rights as `deployer` later.
    let role = |name: &str, verbs: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": verbs}]})
    };
    let binding = |name: &str, account: &str, role: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})
    };
    for object in [
        role("releaser", json!(["get", "list", "watch", "create", "update", "patch", "delete"])),
        role("reader", json!(["get", "list", "watch"])),
        binding("deployer", "deployer", "releaser"),
        binding("late-reader", "late", "reader"),
    ] {
        env.create_yaml(&namespace, &serde_json::to_string(&object).unwrap()).await.unwrap();
    }
    let kubeconfig = std::fs::read_to_string(env.kubeconfig()).unwrap();
    let secrets: Api<Secret> = Api::namespaced(env.client(), &namespace);
    let remote: Secret = serde_json::from_value(
        json!({"metadata": {"name": "remote"}, "stringData": {"value": kubeconfig}}),
    )
    .unwrap();
    secrets.create(&PostParams::default(), &remote).await.unwrap();
    let charts = Charts::start().await;
    charts
        .publish(
            &env,
            &namespace,
            shard,
            "plain",
            &[("templates/configmap.yaml", LOOKUP_CONFIGMAP)],
        )
        .await;
    let controller = start_controller(&env, shard).await;
    let hrs: Api<HelmRelease> = Api::namespaced(env.client(), &namespace);
    for hr in [
        helm_release("as-deployer", shard, "plain", json!({"serviceAccountName": "deployer"})),
        helm_release(
            "as-late",
            shard,
            "plain",
            json!({"serviceAccountName": "late",
                   "install": {"strategy": {"name": "RetryOnFailure", "retryInterval": "2s"}}}),
        ),
        helm_release(
            "remote",
            shard,
            "plain",
            json!({"kubeConfig": {"secretRef": {"name": "remote"}}}),
        ),
    ] {
        hrs.create(&PostParams::default(), &hr).await.unwrap();
    }
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client(), &namespace);

    wait_ready(&hrs, "as-deployer", 1).await;
    let cm = configmaps.get("as-deployer-config").await.unwrap();
    assert_eq!(cm.data.unwrap()["colour"], "green", "lookup through the impersonated client");
    assert_eq!(
        stored_release(&env, &namespace, "as-deployer", 1).await["info"]["status"],
        "deployed"
    );
    wait_ready(&hrs, "remote", 1).await;
    assert!(configmaps.get_opt("remote-config").await.unwrap().is_some());

    // The service account without rights fails; RetryOnFailure neither remediates nor stalls,
    // and the retry succeeds once the rights exist.
    let refused = settled(
        wait_for(Duration::from_secs(60), "the unauthorised install to fail", || async {
            let hr = hrs.get("as-late").await?;
            Ok(condition(&hr, "Ready").filter(|c| c.0 == "False").map(|_| hr))
        })
        .await,
        &hrs,
    )
    .await;
    let ready = condition(&refused, "Ready").unwrap();
    assert_eq!((ready.0.as_str(), ready.1.as_str()), ("False", "InstallFailed"), "{}", ready.2);
    assert!(ready.2.contains("forbidden"), "{}", ready.2);
    assert!(ready.2.contains("system:serviceaccount:") && ready.2.contains(":late"), "{}", ready.2);
    assert!(condition(&refused, "Stalled").is_none_or(|c| c.0 != "True"));
    assert!(configmaps.get_opt("as-late-config").await.unwrap().is_none());
    let grant = binding("late", "late", "releaser");
    env.create_yaml(&namespace, &serde_json::to_string(&grant).unwrap()).await.unwrap();
    let retried = wait_ready(&hrs, "as-late", 1).await;
    assert_eq!(condition(&retried, "Released").unwrap().1, "InstallSucceeded");
    assert!(configmaps.get_opt("as-late-config").await.unwrap().is_some());
    controller.abort();
}

const JOB: &str = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{ .Release.Name }}-job\nspec:\n  template:\n    spec:\n      automountServiceAccountToken: false\n      restartPolicy: Never\n      containers:\n        - name: run\n          image: {{ .Values.image }}\n";
const VALUES_CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-values\ndata:\n  a: {{ .Values.a | default \"none\" | quote }}\n  b: {{ .Values.b | default \"none\" | quote }}\n";
const EXTRA: &str = "{{- if .Values.extra }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-extra\ndata:\n  k: v\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-slow\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: slow\n  template:\n    metadata:\n      labels:\n        app: slow\n    spec:\n      automountServiceAccountToken: false\n      containers:\n        - name: app\n          image: registry.invalid/slow:1\n{{- end }}\n";

/// `upgrade.force` recreates a Job whose template changed, `preserveValues` keeps the values
/// of the release, and `cleanupOnFail` deletes what a failed upgrade created.
#[tokio::test]
async fn upgrade_force_preserve_values_and_cleanup_on_fail() {
    sluice_e2e::install_crypto_provider();
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("helm-upg").await.unwrap();
    let namespace = ns.name().to_string();
    let shard = "helm-upg";
    let charts = Charts::start().await;
    charts
        .publish(
            &env,
            &namespace,
            shard,
            "upg",
            &[
                ("values.yaml", "image: busybox:1\n"),
                ("templates/job.yaml", JOB),
                ("templates/values.yaml", VALUES_CONFIGMAP),
                ("templates/extra.yaml", EXTRA),
            ],
        )
        .await;
    let controller = start_controller(&env, shard).await;
    let hrs: Api<HelmRelease> = Api::namespaced(env.client(), &namespace);
    let upgrade = json!({"disableWait": true, "force": true, "preserveValues": true});
    let hr = helm_release(
        "upg",
        shard,
        "upg",
        json!({"install": {"disableWait": true}, "upgrade": upgrade, "values": {"a": "1"}}),
    );
    hrs.create(&PostParams::default(), &hr).await.unwrap();
    wait_ready(&hrs, "upg", 1).await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(env.client(), &namespace);
    let first = jobs.get("upg-job").await.unwrap();

    // A new image in the immutable Job template: force recreates the Job; the values of the
    // release (`a`) stay under the new ones.
    let patch = json!({"spec": {"values": {"a": null, "image": "busybox:2", "b": "2"}}});
    hrs.patch("upg", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    wait_ready(&hrs, "upg", 2).await;
    let second = jobs.get("upg-job").await.unwrap();
    assert_ne!(second.metadata.uid, first.metadata.uid, "the Job was recreated");
    let image = second.spec.unwrap().template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("busybox:2"));
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client(), &namespace);
    let data = configmaps.get("upg-values").await.unwrap().data.unwrap();
    assert_eq!((data["a"].as_str(), data["b"].as_str()), ("1", "2"));
    let config = &stored_release(&env, &namespace, "upg", 2).await["config"];
    assert_eq!(config, &json!({"a": "1", "b": "2", "image": "busybox:2"}));

    // An upgrade whose Deployment never becomes ready fails; cleanupOnFail deletes what it
    // created, and without remediation the release stays failed.
    let patch = json!({"spec": {"values": {"extra": true},
        "upgrade": {"disableWait": false, "timeout": "5s", "cleanupOnFail": true,
                    "force": true, "preserveValues": true}}});
    hrs.patch("upg", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let failed = settled(
        wait_for(Duration::from_secs(90), "the failed upgrade to stall", || async {
            let hr = hrs.get("upg").await?;
            Ok(condition(&hr, "Stalled").filter(|c| c.0 == "True").map(|_| hr))
        })
        .await,
        &hrs,
    )
    .await;
    assert_eq!(latest_version(&failed), Some(3));
    assert_eq!(condition(&failed, "Released").unwrap().1, "UpgradeFailed");
    assert_eq!(stored_release(&env, &namespace, "upg", 3).await["info"]["status"], "failed");
    assert!(configmaps.get_opt("upg-extra").await.unwrap().is_none(), "cleaned up on failure");
    let deployments: Api<Deployment> = Api::namespaced(env.client(), &namespace);
    let slow = deployments.get_opt("upg-slow").await.unwrap();
    assert!(slow.is_none_or(|d| d.metadata.deletion_timestamp.is_some()));

    // RetryOnFailure: the failed release is upgraded again after retryInterval, without
    // remediation and without stalling; the retry after the fix succeeds.
    let patch = json!({"spec": {"upgrade": {"strategy": {"name": "RetryOnFailure", "retryInterval": "1s"}}}});
    hrs.patch("upg", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let retrying = settled(
        wait_for(Duration::from_secs(90), "a retried upgrade to fail again", || async {
            let hr = hrs.get("upg").await?;
            let failed = condition(&hr, "Ready").is_some_and(|c| c.0 == "False");
            Ok((failed && latest_version(&hr) >= Some(4)).then_some(hr))
        })
        .await,
        &hrs,
    )
    .await;
    assert_eq!(condition(&retrying, "Ready").unwrap().1, "UpgradeFailed");
    assert!(condition(&retrying, "Stalled").is_none_or(|c| c.0 != "True"));
    // The Job never completes here (no job controller): the fixed upgrade skips the wait.
    let patch = json!({"spec": {"values": {"extra": false}, "upgrade": {"disableWait": true}}});
    hrs.patch("upg", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let fixed = settled(
        wait_for(Duration::from_secs(90), "the retried upgrade to succeed", || async {
            let hr = hrs.get("upg").await?;
            let ready = condition(&hr, "Ready").is_some_and(|c| c.0 == "True");
            Ok(ready.then_some(hr))
        })
        .await,
        &hrs,
    )
    .await;
    let version = latest_version(&fixed).unwrap();
    assert!(version >= 5, "{version}");
    // maxHistory (5) keeps the last five revisions.
    for v in (version - 4).max(3)..version {
        let rel = stored_release(&env, &namespace, "upg", v).await;
        let description = rel["info"]["description"].as_str().unwrap_or_default().to_string();
        assert!(!description.starts_with("Rollback"), "v{v} is a rollback: {description}");
    }
    assert!(condition(&fixed, "Remediated").is_none());
    assert!(configmaps.get_opt("upg-extra").await.unwrap().is_none());
    controller.abort();
}
