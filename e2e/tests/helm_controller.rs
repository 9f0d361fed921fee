//! helm-controller on the real apiserver: install, upgrade on a values change, tests, a failing
//! upgrade remediated by rollback, a controller killed mid-upgrade leaving no pending release,
//! uninstall on deletion, and the Helm Go SDK (PyPI `helm-python-sdk`) reading sluice's
//! releases and handing one over to sluice.
//!
//! The chart comes through the real source-controller: a HelmRepository served over HTTP by
//! the harness's chart repository, and the HelmChart the helm-controller creates for
//! `spec.chart`.

mod helm_common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use helm_common::{condition, latest_version, settled, start_controller};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sluice_api::helm::HelmRelease;
use sluice_api::source::HelmChart;
use sluice_e2e::{TestEnv, wait_for};
use sluice_runtime::Runtime;

/// The shard of the main test.
const SHARD: &str = "helm-main";
/// The shard of the Helm repository test.
const REPO_SHARD: &str = "helm-repo";

const VALUES: &str = "message: hello\nreplicas: 0\nslow: false\n";
const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n  message: {{ .Values.message | quote }}\n  chart: {{ .Chart.Version | quote }}\n";
const DEPLOYMENT: &str = "{{- if .Values.replicas }}\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels:\n      app: {{ .Release.Name }}\n  template:\n    metadata:\n      labels:\n        app: {{ .Release.Name }}\n    spec:\n      automountServiceAccountToken: false\n      containers:\n        - name: app\n          image: registry.invalid/app:1\n{{- end }}\n";
const HOOKS: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hook\n  annotations:\n    helm.sh/hook: pre-install,pre-upgrade\n    helm.sh/hook-weight: \"-5\"\n    helm.sh/hook-delete-policy: before-hook-creation\ndata:\n  upgrade: {{ .Release.IsUpgrade | quote }}\n{{- if .Values.slow }}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-slow\n  annotations:\n    helm.sh/hook: pre-upgrade\n    helm.sh/hook-delete-policy: hook-succeeded\nspec:\n  automountServiceAccountToken: false\n  containers:\n    - name: wait\n      image: registry.invalid/wait:1\n{{- end }}\n";
const TEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n  annotations:\n    helm.sh/hook: test\n    helm.sh/hook-delete-policy: before-hook-creation\nspec:\n  automountServiceAccountToken: false\n  restartPolicy: Never\n  containers:\n    - name: test\n      image: registry.invalid/test:1\n";

/// The `demo` chart at `version`, packaged as `helm package` lays it out.
fn demo_package(version: &str) -> Vec<u8> {
    let chart_yaml =
        format!("apiVersion: v2\nname: demo\nversion: {version}\nappVersion: \"2.0\"\n");
    let files = [
        ("Chart.yaml", chart_yaml.as_str()),
        ("values.yaml", VALUES),
        ("templates/configmap.yaml", CONFIGMAP),
        ("templates/deployment.yaml", DEPLOYMENT),
        ("templates/hooks.yaml", HOOKS),
        ("templates/tests/test.yaml", TEST),
        ("templates/NOTES.txt", "Thanks for installing {{ .Release.Name }}.\n"),
    ];
    sluice_e2e::helmrepo::chart_package("demo", version, &files).unwrap()
}

/// The HelmRepository `charts` for `url`, in `shard`.
async fn create_helm_repository(env: &TestEnv, namespace: &str, url: &str, shard: &str) {
    use sluice_api::source::HelmRepository;
    let repos: Api<HelmRepository> = Api::namespaced(env.client(), namespace);
    let helm_repository: HelmRepository = serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "charts", "labels": {"sharding.fluxcd.io/key": shard}},
        "spec": {"url": url, "interval": "1m"}
    }))
    .unwrap();
    repos.create(&PostParams::default(), &helm_repository).await.unwrap();
}

/// `spec.chart` for `chart` from the HelmRepository `charts`, its HelmChart in `shard`.
fn chart_template(chart: &str, shard: &str) -> Value {
    json!({"metadata": {"labels": {"sharding.fluxcd.io/key": shard}},
        "spec": {"chart": chart, "version": "*", "interval": "1m",
                 "sourceRef": {"kind": "HelmRepository", "name": "charts"}}})
}

/// Release Secrets of `release`: version → (status label, decoded release JSON).
async fn releases(env: &TestEnv, namespace: &str, release: &str) -> Vec<(i64, String, Value)> {
    use base64::Engine;
    use std::io::Read;
    let secrets: Api<Secret> = Api::namespaced(env.client(), namespace);
    let list = secrets
        .list(&ListParams::default().labels(&format!("owner=helm,name={release}")))
        .await
        .unwrap();
    let mut out: Vec<(i64, String, Value)> = list
        .items
        .iter()
        .map(|s| {
            assert_eq!(s.type_.as_deref(), Some("helm.sh/release.v1"));
            let labels = s.metadata.labels.clone().unwrap();
            let version: i64 = labels["version"].parse().unwrap();
            assert_eq!(
                s.metadata.name.as_deref(),
                Some(format!("sh.helm.release.v1.{release}.v{version}").as_str())
            );
            // data.release is base64(gzip(json)) as text; the API adds its own base64 layer.
            let text = &s.data.as_ref().unwrap()["release"].0;
            let gz = base64::engine::general_purpose::STANDARD.decode(text).unwrap();
            let mut json = String::new();
            flate2::read::GzDecoder::new(gz.as_slice()).read_to_string(&mut json).unwrap();
            let value: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(value["info"]["status"], labels["status"].as_str());
            (version, labels["status"].clone(), value)
        })
        .collect();
    out.sort_by_key(|r| r.0);
    out
}

async fn event_reasons(env: &TestEnv, namespace: &str, name: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(env.client(), namespace);
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

/// Marks hook Pods as Succeeded (there is no kubelet): the test Pod always, the slow
/// pre-upgrade Pod only once `gate` is open.
fn pod_completer(
    env: &TestEnv,
    namespace: &str,
    gate: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let pods: Api<Pod> = Api::namespaced(env.client(), namespace);
    tokio::spawn(async move {
        loop {
            if let Ok(list) = pods.list(&ListParams::default()).await {
                for pod in list.items {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let phase =
                        pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
                    let wanted = name.ends_with("-test")
                        || (name.ends_with("-slow") && gate.load(Ordering::SeqCst));
                    if wanted && phase != "Succeeded" {
                        let patch = json!({"status": {"phase": "Succeeded"}});
                        let _ = pods
                            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

const ORACLE: &str = r#"
import json, sys
try:
    import helm_python as helm
except Exception as e:
    print(json.dumps({"skip": "helm-python-sdk cannot be imported: %s" % e}))
    sys.exit(0)
cmd, kubeconfig, ns = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = helm.Config(kubeconfig_path=kubeconfig, namespace=ns)
if cmd == "inspect":
    name = sys.argv[4]
    out = {
        "list": cfg.list(all_states=True),
        "history": cfg.history(name),
        "status": cfg.status(name),
        "values": cfg.get_values(name),
    }
elif cmd == "install":
    chart, name, values = sys.argv[4], sys.argv[5], json.loads(sys.argv[6])
    out = {"install": cfg.install(chart, name, values)}
else:
    raise SystemExit("unknown command " + cmd)
print(json.dumps(out, default=str))
"#;

/// Runs the Helm SDK oracle; `None` (with the reason printed) when the package is missing.
fn oracle(env: &TestEnv, args: &[&str]) -> Option<Value> {
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), ORACLE).unwrap();
    // The venv `cargo xtask bench helm` installs the SDK into, else the system's python3 (CI
    // installs it there).
    let venv = sluice_e2e::paths::cache_dir().join("venv-helm/bin/python3");
    let python = if venv.exists() { venv } else { "python3".into() };
    let output = std::process::Command::new(python)
        .arg(script.path())
        .arg(args[0])
        .arg(env.kubeconfig())
        .args(&args[1..])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "helm SDK oracle failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let value: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("oracle output is not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout))
    });
    if let Some(reason) = value.get("skip") {
        println!("skipping the Helm SDK oracle: {reason}");
        return None;
    }
    Some(value)
}

/// The first value of `key` anywhere in `value` (the SDK's value summaries nest differently).
fn find_key<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(key).or_else(|| map.values().find_map(|v| find_key(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find_key(v, key)),
        _ => None,
    }
}

fn history_statuses(oracle: &Value) -> Vec<(i64, String)> {
    oracle["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let version = r["version"].as_i64().or_else(|| r["revision"].as_i64()).unwrap_or(-1);
            let status = r["info"]["status"]
                .as_str()
                .or_else(|| r["status"].as_str())
                .unwrap_or("")
                .to_string();
            (version, status)
        })
        .collect()
}

#[tokio::test]
async fn helm_releases_install_upgrade_test_remediate_and_uninstall() {
    sluice_e2e::install_crypto_provider();
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("helm").await.unwrap();
    let namespace = ns.name().to_string();
    // Pods need the namespace's default ServiceAccount; this cluster has no token controller.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(env.client(), &namespace);
    let account = serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    if let Err(err) = accounts.create(&PostParams::default(), &account).await {
        assert!(matches!(&err, kube::Error::Api(s) if s.code == 409), "{err}");
    }

    // The chart repository and the real source-controller.
    let repo = sluice_e2e::HelmRepoServer::start().unwrap();
    let package = demo_package("1.0.0");
    repo.publish("demo", "1.0.0", package.clone());
    let chart_dir = tempfile::tempdir().unwrap();
    let chart_file = chart_dir.path().join("demo-1.0.0.tgz");
    std::fs::write(&chart_file, &package).unwrap();
    let storage = tempfile::tempdir().unwrap();
    let _source = start_source_controller(&env, storage.path(), SHARD).await;
    create_helm_repository(&env, &namespace, &repo.url(), SHARD).await;

    let gate = Arc::new(AtomicBool::new(false));
    let completer = pod_completer(&env, &namespace, gate.clone());
    let mut controller = start_controller(&env, SHARD).await;

    let hrs: Api<HelmRelease> = Api::namespaced(env.client(), &namespace);
    let hr: HelmRelease = serde_json::from_value(json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "demo", "labels": {"sharding.fluxcd.io/key": SHARD}},
        "spec": {
            "interval": "10m",
            "timeout": "15s",
            "chart": chart_template("demo", SHARD),
            "values": {"message": "one"},
            "test": {"enable": true},
            "upgrade": {"remediation": {"retries": 0, "remediateLastFailure": true}}
        }
    }))
    .unwrap();
    hrs.create(&PostParams::default(), &hr).await.unwrap();

    // 1. Install, then the test hook runs.
    let installed = settled(
        wait_for(Duration::from_secs(90), "the release to install and pass its tests", || async {
            let hr = hrs.get("demo").await?;
            let ready = condition(&hr, "Ready").is_some_and(|c| c.0 == "True");
            let tested = condition(&hr, "TestSuccess").is_some_and(|c| c.0 == "True");
            Ok((ready && tested).then_some(hr))
        })
        .await,
        &hrs,
    )
    .await;
    let released = condition(&installed, "Released").unwrap();
    assert_eq!((released.0.as_str(), released.1.as_str()), ("True", "InstallSucceeded"));
    assert_eq!(
        released.2,
        format!("Helm install succeeded for release {namespace}/demo.v1 with chart demo@1.0.0")
    );
    assert_eq!(condition(&installed, "TestSuccess").unwrap().1, "TestSucceeded");
    let status = installed.status.clone().unwrap();
    assert_eq!(status.storage_namespace.as_deref(), Some(namespace.as_str()));
    assert_eq!(status.last_attempted_revision.as_deref(), Some("1.0.0"));
    assert_eq!(status.last_attempted_release_action.as_deref(), Some("install"));
    assert!(status.last_attempted_config_digest.as_deref().unwrap().starts_with("sha256:"));
    let snapshot = &status.history.as_ref().unwrap()[0];
    assert_eq!(
        (
            snapshot.version,
            snapshot.status.as_str(),
            snapshot.chart_name.as_str(),
            snapshot.chart_version.as_str()
        ),
        (1, "deployed", "demo", "1.0.0")
    );
    assert_eq!(snapshot.app_version.as_deref(), Some("2.0"));
    assert_eq!(snapshot.config_digest, status.last_attempted_config_digest.clone().unwrap());
    assert_eq!(
        snapshot.test_hooks.as_ref().unwrap()["demo-test"].phase.as_deref(),
        Some("Succeeded")
    );
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client(), &namespace);
    let cm = configmaps.get("demo-config").await.unwrap();
    assert_eq!(cm.data.as_ref().unwrap()["message"], "one");
    let labels = cm.metadata.labels.clone().unwrap();
    assert_eq!(labels["helm.toolkit.fluxcd.io/name"], "demo");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    assert_eq!(cm.metadata.annotations.as_ref().unwrap()["meta.helm.sh/release-name"], "demo");
    let hook = configmaps.get("demo-hook").await.unwrap();
    assert_eq!(hook.data.as_ref().unwrap()["upgrade"], "false");
    let stored = releases(&env, &namespace, "demo").await;
    assert_eq!(stored.len(), 1);
    let (_, _, rel) = &stored[0];
    assert_eq!(rel["name"], "demo");
    assert_eq!(rel["namespace"], namespace.as_str());
    assert_eq!(rel["version"], 1);
    assert_eq!(rel["config"], json!({"message": "one"}));
    assert_eq!(rel["chart"]["metadata"]["version"], "1.0.0");
    assert_eq!(rel["info"]["description"], "Install complete");
    assert_eq!(rel["info"]["notes"].as_str().unwrap().trim(), "Thanks for installing demo.");
    assert!(rel["manifest"].as_str().unwrap().contains("# Source: demo/templates/configmap.yaml"));
    let test_hook =
        rel["hooks"].as_array().unwrap().iter().find(|h| h["name"] == "demo-test").unwrap();
    assert_eq!(test_hook["events"], json!(["test"]));
    assert_eq!(test_hook["last_run"]["phase"], "Succeeded");
    let pre = rel["hooks"].as_array().unwrap().iter().find(|h| h["name"] == "demo-hook").unwrap();
    assert_eq!(pre["weight"], -5);
    assert_eq!(pre["delete_policies"], json!(["before-hook-creation"]));
    let reasons = event_reasons(&env, &namespace, "demo").await;
    assert!(reasons.iter().any(|r| r == "InstallSucceeded"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "TestSucceeded"), "{reasons:?}");

    // 2. Upgrade on a values change.
    let patch = json!({"spec": {"values": {"message": "two"}}});
    hrs.patch("demo", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let upgraded = settled(
        wait_for(Duration::from_secs(90), "the upgrade", || async {
            let hr = hrs.get("demo").await?;
            let ready = condition(&hr, "Ready").is_some_and(|c| c.0 == "True");
            let tested = condition(&hr, "TestSuccess").is_some_and(|c| c.0 == "True");
            Ok((ready && tested && latest_version(&hr) == Some(2)).then_some(hr))
        })
        .await,
        &hrs,
    )
    .await;
    assert_eq!(condition(&upgraded, "Released").unwrap().1, "UpgradeSucceeded");
    assert_eq!(configmaps.get("demo-config").await.unwrap().data.unwrap()["message"], "two");
    assert_eq!(configmaps.get("demo-hook").await.unwrap().data.unwrap()["upgrade"], "true");
    let stored = releases(&env, &namespace, "demo").await;
    let statuses: Vec<(i64, &str)> = stored.iter().map(|r| (r.0, r.1.as_str())).collect();
    assert_eq!(statuses, [(1, "superseded"), (2, "deployed")]);
    assert_eq!(stored[1].2["info"]["first_deployed"], stored[0].2["info"]["first_deployed"]);
    let history: Vec<i64> = upgraded
        .status
        .as_ref()
        .unwrap()
        .history
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(history, [2, 1]);

    // 2b. Drift detection corrects an object changed behind the release's back.
    let tamper = json!({"data": {"message": "tampered"}});
    configmaps.patch("demo-config", &PatchParams::default(), &Patch::Merge(&tamper)).await.unwrap();
    let patch = json!({"spec": {"driftDetection": {"mode": "enabled", "ignore": [{"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}}]}}});
    hrs.patch("demo", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let corrected = settled(
        wait_for(Duration::from_secs(60), "the drift to be corrected", || async {
            let hr = hrs.get("demo").await?;
            let cm = configmaps.get("demo-config").await?;
            let restored =
                cm.data.unwrap_or_default().get("message").map(String::as_str) == Some("two");
            Ok((restored && condition(&hr, "Drifted").is_some()).then_some(hr))
        })
        .await,
        &hrs,
    )
    .await;
    let drifted = condition(&corrected, "Drifted").unwrap();
    assert_eq!(
        (drifted.0.as_str(), drifted.1.as_str()),
        ("False", "DriftDetected"),
        "{}",
        drifted.2
    );
    assert!(
        drifted.2.contains(&format!("ConfigMap/{namespace}/demo-config changed (/data/message)")),
        "{}",
        drifted.2
    );
    assert_eq!(latest_version(&corrected), Some(2), "drift correction is not a new release");

    // 3. A failing upgrade (readiness never reached) is rolled back; retries are exhausted.
    let patch = json!({"spec": {"values": {"message": "two", "replicas": 1}}});
    hrs.patch("demo", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let failed = settled(
        wait_for(Duration::from_secs(120), "the failed upgrade to be rolled back", || async {
            let hr = hrs.get("demo").await?;
            let stalled = condition(&hr, "Stalled").is_some_and(|c| c.0 == "True");
            Ok(stalled.then_some(hr))
        })
        .await,
        &hrs,
    )
    .await;
    let ready = condition(&failed, "Ready").unwrap();
    assert_eq!((ready.0.as_str(), ready.1.as_str()), ("False", "RetriesExhausted"));
    let released = condition(&failed, "Released").unwrap();
    assert_eq!((released.0.as_str(), released.1.as_str()), ("False", "UpgradeFailed"));
    assert!(
        released.2.contains("Deployment/") && released.2.contains(&namespace),
        "{}",
        released.2
    );
    let remediated = condition(&failed, "Remediated").unwrap();
    assert_eq!((remediated.0.as_str(), remediated.1.as_str()), ("True", "RollbackSucceeded"));
    let status = failed.status.clone().unwrap();
    assert_eq!((status.failures, status.upgrade_failures), (Some(1), Some(1)));
    let stored = releases(&env, &namespace, "demo").await;
    let statuses: Vec<(i64, &str)> = stored.iter().map(|r| (r.0, r.1.as_str())).collect();
    assert_eq!(statuses, [(1, "superseded"), (2, "superseded"), (3, "failed"), (4, "deployed")]);
    assert_eq!(stored[3].2["info"]["description"], "Rollback to 2");
    assert!(
        stored[2].2["info"]["description"].as_str().unwrap().starts_with("Upgrade \"demo\" failed")
    );
    let deployments: Api<Deployment> = Api::namespaced(env.client(), &namespace);
    // The Deployment only the failed revision had is gone again.
    let deployment = deployments.get_opt("demo").await.unwrap();
    assert!(deployment.is_none_or(|d| d.metadata.deletion_timestamp.is_some()));
    let reasons = event_reasons(&env, &namespace, "demo").await;
    assert!(reasons.iter().any(|r| r == "UpgradeFailed"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "RollbackSucceeded"), "{reasons:?}");

    // 4. The controller is killed in the middle of an upgrade (waiting for a pre-upgrade hook);
    // after a restart no release is left pending and the upgrade completes.
    let patch = json!({"spec": {"values": {"message": "three", "slow": true, "replicas": null}}});
    hrs.patch("demo", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(env.client(), &namespace);
    settled(
        wait_for(Duration::from_secs(60), "the upgrade to wait for its slow hook", || async {
            let pending =
                releases(&env, &namespace, "demo").await.iter().any(|r| r.1 == "pending-upgrade");
            Ok((pending && pods.get_opt("demo-slow").await?.is_some()).then_some(()))
        })
        .await,
        &hrs,
    )
    .await;
    controller.abort();
    let _ = (&mut controller).await;
    let stuck = releases(&env, &namespace, "demo").await;
    assert!(stuck.iter().any(|r| r.1 == "pending-upgrade"), "the kill left the upgrade pending");
    gate.store(true, Ordering::SeqCst);
    controller = start_controller(&env, SHARD).await;
    let recovered = settled(
        wait_for(
            Duration::from_secs(120),
            "the restarted controller to finish the upgrade",
            || async {
                let hr = hrs.get("demo").await?;
                let ready = condition(&hr, "Ready").is_some_and(|c| c.0 == "True");
                let cm = configmaps.get("demo-config").await?;
                let three =
                    cm.data.unwrap_or_default().get("message").map(String::as_str) == Some("three");
                Ok((ready && three).then_some(hr))
            },
        )
        .await,
        &hrs,
    )
    .await;
    let stored = releases(&env, &namespace, "demo").await;
    assert!(
        stored.iter().all(|r| !r.1.starts_with("pending-")),
        "{:?}",
        stored.iter().map(|r| (r.0, r.1.clone())).collect::<Vec<_>>()
    );
    let unlocked = stored
        .iter()
        .find(|r| {
            r.2["info"]["description"].as_str().unwrap_or_default().starts_with("Release unlocked")
        })
        .expect("the pending release was unlocked");
    assert_eq!(unlocked.1, "failed");
    assert_eq!(stored.last().unwrap().1, "deployed");
    assert_eq!(latest_version(&recovered), Some(stored.last().unwrap().0));

    // 5. The Helm SDK reads sluice's releases.
    if let Some(seen) = oracle(&env, &["inspect", &namespace, "demo"]) {
        let ours: Vec<(i64, String)> = stored.iter().map(|r| (r.0, r.1.clone())).collect();
        assert_eq!(history_statuses(&seen), ours, "{seen}");
        assert_eq!(find_key(&seen["values"], "message"), Some(&json!("three")), "{seen}");
        let listed = seen["list"].as_array().unwrap();
        assert!(listed.iter().any(|r| r["name"] == "demo"), "{seen}");

        // A release the SDK installed is adopted and upgraded by sluice.
        let installed = oracle(
            &env,
            &[
                "install",
                &namespace,
                chart_file.to_str().unwrap(),
                "adopted",
                r#"{"message": "from-helm"}"#,
            ],
        )
        .unwrap();
        assert_eq!(installed["install"]["name"], "adopted", "{installed}");
        assert_eq!(
            configmaps.get("adopted-config").await.unwrap().data.unwrap()["message"],
            "from-helm"
        );
        let adopted: HelmRelease = serde_json::from_value(json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "adopted", "labels": {"sharding.fluxcd.io/key": SHARD}},
            "spec": {"interval": "10m", "timeout": "30s", "chart": chart_template("demo", SHARD), "values": {"message": "from-sluice"}}
        }))
        .unwrap();
        hrs.create(&PostParams::default(), &adopted).await.unwrap();
        settled(
            wait_for(Duration::from_secs(90), "sluice to adopt the SDK's release", || async {
                let hr = hrs.get("adopted").await?;
                Ok((condition(&hr, "Ready").is_some_and(|c| c.0 == "True")
                    && latest_version(&hr) == Some(2))
                .then_some(()))
            })
            .await,
            &hrs,
        )
        .await;
        assert_eq!(
            configmaps.get("adopted-config").await.unwrap().data.unwrap()["message"],
            "from-sluice"
        );
        let seen = oracle(&env, &["inspect", &namespace, "adopted"]).unwrap();
        assert_eq!(
            history_statuses(&seen),
            [(1, "superseded".to_string()), (2, "deployed".to_string())],
            "{seen}"
        );
        assert_eq!(find_key(&seen["values"], "message"), Some(&json!("from-sluice")), "{seen}");
    }

    // 6. Deleting the HelmRelease uninstalls the release.
    hrs.delete("demo", &DeleteParams::default()).await.unwrap();
    settled(
        wait_for(
            Duration::from_secs(90),
            "the HelmRelease to be uninstalled and deleted",
            || async { Ok(hrs.get_opt("demo").await?.is_none().then_some(())) },
        )
        .await,
        &hrs,
    )
    .await;
    assert!(releases(&env, &namespace, "demo").await.is_empty());
    assert!(configmaps.get_opt("demo-config").await.unwrap().is_none());
    let deployment = deployments.get_opt("demo").await.unwrap();
    assert!(deployment.is_none_or(|d| d.metadata.deletion_timestamp.is_some()));
    let reasons = event_reasons(&env, &namespace, "demo").await;
    assert!(reasons.iter().any(|r| r == "UninstallSucceeded"), "{reasons:?}");

    controller.abort();
    completer.abort();
}

#[derive(clap::Parser, Debug)]
struct SourceFlags {
    #[command(flatten)]
    runtime: sluice_runtime::runtime::RuntimeArgs,
    #[command(flatten)]
    storage: source_controller::StorageArgs,
}

async fn start_source_controller(env: &TestEnv, storage: &Path, shard: &str) -> Arc<Runtime> {
    let port = sluice_e2e::process::free_port().unwrap();
    let args = vec![
        "source-controller".to_string(),
        format!("--watch-label-selector=sharding.fluxcd.io/key={shard}"),
        "--metrics-addr=127.0.0.1:0".into(),
        "--health-addr=127.0.0.1:0".into(),
        format!("--storage-path={}", storage.display()),
        format!("--storage-addr=127.0.0.1:{port}"),
        format!("--storage-adv-addr=127.0.0.1:{port}"),
    ];
    let flags: SourceFlags = sluice_runtime::runtime::parse_args_from("4", args);
    let runtime =
        Runtime::start_with_client("source-controller", flags.runtime, env.client()).await.unwrap();
    tokio::spawn(source_controller::run(runtime.clone(), flags.storage));
    runtime
}

async fn request_reconcile<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": jiff::Timestamp::now().to_string()}}});
    let _ = api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await;
}

/// `spec.chart` from a HelmRepository served over HTTP: the controller creates and owns the
/// HelmChart `<namespace>-<name>`, the real source-controller builds it, a new chart version in
/// the repository upgrades the release, and deleting the HelmRelease removes the HelmChart.
#[tokio::test]
async fn helm_release_from_a_helm_repository() {
    use sluice_api::source::HelmRepository;
    sluice_e2e::install_crypto_provider();
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("helmrepo").await.unwrap();
    let namespace = ns.name().to_string();
    let repo = sluice_e2e::HelmRepoServer::start().unwrap();
    repo.publish("web", "1.0.0", sluice_e2e::helmrepo::chart_package("web", "1.0.0", &[]).unwrap());
    let storage = tempfile::tempdir().unwrap();
    let _source = start_source_controller(&env, storage.path(), REPO_SHARD).await;
    let controller = start_controller(&env, REPO_SHARD).await;

    let repos: Api<HelmRepository> = Api::namespaced(env.client(), &namespace);
    let helm_repository: HelmRepository = serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "charts", "labels": {"sharding.fluxcd.io/key": REPO_SHARD}}, "spec": {"url": repo.url(), "interval": "1m"}
    }))
    .unwrap();
    repos.create(&PostParams::default(), &helm_repository).await.unwrap();
    let hrs: Api<HelmRelease> = Api::namespaced(env.client(), &namespace);
    let hr: HelmRelease = serde_json::from_value(json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "web", "labels": {"sharding.fluxcd.io/key": REPO_SHARD}},
        "spec": {
            "interval": "10m",
            "chart": {"metadata": {"labels": {"sharding.fluxcd.io/key": REPO_SHARD}}, "spec": {"chart": "web", "version": "*", "sourceRef": {"kind": "HelmRepository", "name": "charts"}, "interval": "1m"}},
            "values": {"message": "hi"}
        }
    }))
    .unwrap();
    hrs.create(&PostParams::default(), &hr).await.unwrap();
    let installed = settled(
        wait_for(Duration::from_secs(120), "the release from the Helm repository", || async {
            let hr = hrs.get("web").await?;
            Ok((condition(&hr, "Ready").is_some_and(|c| c.0 == "True")).then_some(hr))
        })
        .await,
        &hrs,
    )
    .await;
    let chart_name = format!("{namespace}-web");
    assert_eq!(
        installed.status.as_ref().unwrap().helm_chart.as_deref(),
        Some(format!("{namespace}/{chart_name}").as_str())
    );
    let charts: Api<HelmChart> = Api::namespaced(env.client(), &namespace);
    let chart = charts.get(&chart_name).await.unwrap();
    assert_eq!(chart.metadata.labels.as_ref().unwrap()["helm.toolkit.fluxcd.io/name"], "web");
    assert_eq!(chart.spec.chart, "web");
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client(), &namespace);
    let data = configmaps.get("web").await.unwrap().data.unwrap();
    assert_eq!((data["message"].as_str(), data["version"].as_str()), ("hi", "1.0.0"));

    // A new chart version in the repository upgrades the release.
    repo.publish("web", "1.1.0", sluice_e2e::helmrepo::chart_package("web", "1.1.0", &[]).unwrap());
    settled(
        wait_for(Duration::from_secs(120), "the upgrade to chart 1.1.0", || async {
            request_reconcile(&repos, "charts").await;
            request_reconcile(&charts, &chart_name).await;
            let hr = hrs.get("web").await?;
            let snapshot = hr
                .status
                .as_ref()
                .and_then(|s| s.history.as_ref())
                .and_then(|h| h.first().cloned());
            let upgraded = snapshot.is_some_and(|s| {
                s.chart_version == "1.1.0" && s.status == "deployed" && s.version == 2
            });
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(upgraded.then_some(()))
        })
        .await,
        &hrs,
    )
    .await;
    assert_eq!(configmaps.get("web").await.unwrap().data.unwrap()["version"], "1.1.0");

    // Deleting the HelmRelease uninstalls it and deletes its HelmChart.
    hrs.delete("web", &DeleteParams::default()).await.unwrap();
    settled(
        wait_for(Duration::from_secs(60), "the HelmRelease and its HelmChart to go", || async {
            let gone =
                hrs.get_opt("web").await?.is_none() && charts.get_opt(&chart_name).await?.is_none();
            Ok(gone.then_some(()))
        })
        .await,
        &hrs,
    )
    .await;
    assert!(configmaps.get_opt("web").await.unwrap().is_none());
    assert!(releases(&env, &namespace, "web").await.is_empty());
    controller.abort();
}
