//! `run_controller_with` on a real kube-apiserver: finalizer, reconcile, retry with backoff,
//! a related-kind trigger, the label selector, and cleanup on deletion.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use sluice_api::meta::FINALIZER;
use sluice_api::source::{GitRepository, GitRepositorySpec};
use sluice_e2e::{TestEnv, wait_for};
use sluice_runtime::runtime::parse_args_from;
use sluice_runtime::{
    Outcome, ReconcileError, Reconciler, Runtime, RuntimeArgs, StatusWriter, conditions,
    run_controller_with,
};

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
#[error("remote {0} did not answer")]
struct Unreachable(String);

impl ReconcileError for Unreachable {
    fn reason(&self) -> &'static str {
        "GitOperationFailed"
    }
    fn is_stalled(&self) -> bool {
        false
    }
}

/// Records its calls; objects named `flaky` fail on their first reconcile.
struct TestReconciler {
    runtime: Arc<Runtime>,
    calls: Mutex<Vec<String>>,
}

impl TestReconciler {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn count(&self, call: &str) -> usize {
        self.calls().iter().filter(|c| *c == call).count()
    }
}

impl Reconciler<GitRepository> for TestReconciler {
    type Error = Unreachable;

    async fn reconcile(&self, obj: Arc<GitRepository>) -> Result<Action, Unreachable> {
        let call = format!("reconcile {}", obj.name_any());
        let first = self.count(&call) == 0;
        self.calls.lock().unwrap().push(call);
        if obj.name_any() == "flaky" && first {
            return Err(Unreachable(obj.spec.url.clone()));
        }
        let runtime = &self.runtime;
        let status =
            StatusWriter::new(&*obj, runtime.client.clone(), runtime.controller, &runtime.events);
        let outcome = Outcome::Ready { reason: "Succeeded".into(), message: "ok".into() };
        status.finish(&outcome).await.map_err(|error| Unreachable(error.to_string()))?;
        Ok(Action::await_change())
    }

    async fn cleanup(&self, obj: Arc<GitRepository>) -> Result<Action, Unreachable> {
        self.calls.lock().unwrap().push(format!("cleanup {}", obj.name_any()));
        Ok(Action::await_change())
    }
}

fn labels(selector_value: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([("sluice-test".to_string(), selector_value.to_string())]))
}

fn repository(name: &str, selector_value: &str) -> GitRepository {
    let mut obj = GitRepository::new(
        name,
        GitRepositorySpec {
            url: "https://example.com/repo.git".into(),
            interval: "10m".into(),
            ..Default::default()
        },
    );
    obj.metadata.labels = labels(selector_value);
    obj
}

async fn ready_generation(repos: &Api<GitRepository>, name: &str) -> Result<Option<i64>> {
    let obj = repos.get(name).await?;
    let Some(status) = obj.status else { return Ok(None) };
    let found = status.conditions.unwrap_or_default();
    Ok(conditions::is_ready(&found).then_some(status.observed_generation.unwrap_or(-1)))
}

#[tokio::test]
async fn run_controller_with_reconciles_retries_triggers_and_cleans_up() -> Result<()> {
    sluice_e2e::install_crypto_provider();
    let env = TestEnv::shared().await?;
    env.install_crds().await?;
    let ns = env.namespace("runtime").await?;
    let selector_value = ns.name().to_string();
    let args: RuntimeArgs = parse_args_from::<Cli, _, _>(
        "4",
        [
            "test",
            "--metrics-addr=0",
            "--health-addr=0",
            "--min-retry-delay=100ms",
            &format!("--watch-label-selector=sluice-test={selector_value}"),
        ],
    )
    .runtime;
    let runtime = Runtime::start_with_client("runtime-test", args, env.client()).await?;
    let reconciler =
        Arc::new(TestReconciler { runtime: runtime.clone(), calls: Mutex::new(Vec::new()) });

    let configmaps: Api<ConfigMap> = runtime.watched_api();
    let watcher_config = runtime.watcher_config();
    let controller =
        tokio::spawn(run_controller_with(runtime.clone(), reconciler.clone(), move |c| {
            // A ConfigMap wakes the GitRepository of the same name.
            c.watches(configmaps, watcher_config, |cm: ConfigMap| {
                Some(ObjectRef::new(&cm.name_any()).within(&cm.namespace().unwrap_or_default()))
            })
        }));

    let repos: Api<GitRepository> = Api::namespaced(env.client(), &ns);
    repos.create(&PostParams::default(), &repository("podinfo", &selector_value)).await?;
    repos.create(&PostParams::default(), &repository("flaky", &selector_value)).await?;
    repos.create(&PostParams::default(), &repository("unlabelled", "other")).await?;

    for name in ["podinfo", "flaky"] {
        wait_for(TIMEOUT, &format!("{name} to be Ready"), || async {
            Ok(ready_generation(&repos, name).await?.filter(|g| *g == 1))
        })
        .await?;
        let obj = repos.get(name).await?;
        assert_eq!(obj.finalizers(), [FINALIZER.to_string()]);
    }
    // The transient failure was retried after the backoff.
    assert_eq!(reconciler.count("reconcile flaky"), 2, "{:?}", reconciler.calls());
    // Objects outside the label selector are never seen.
    assert!(repos.get("unlabelled").await?.metadata.finalizers.is_none());
    assert!(!reconciler.calls().iter().any(|c| c.ends_with("unlabelled")));

    // The status patch of our own reconcile did not trigger another one; a related
    // ConfigMap does.
    assert_eq!(reconciler.count("reconcile podinfo"), 1, "{:?}", reconciler.calls());
    let configmap = ConfigMap {
        metadata: ObjectMeta {
            name: Some("podinfo".into()),
            labels: labels(&selector_value),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(env.client(), &ns)
        .create(&PostParams::default(), &configmap)
        .await?;
    wait_for(TIMEOUT, "the ConfigMap to trigger podinfo", || async {
        Ok((reconciler.count("reconcile podinfo") >= 2).then_some(()))
    })
    .await?;

    // Deletion runs cleanup, then the finalizer is removed.
    repos.delete("podinfo", &DeleteParams::default()).await?;
    wait_for(TIMEOUT, "podinfo to be deleted", || async {
        Ok(repos.get_opt("podinfo").await?.is_none().then_some(()))
    })
    .await?;
    assert_eq!(reconciler.count("cleanup podinfo"), 1);

    runtime.finish().await?;
    tokio::time::timeout(TIMEOUT, controller).await???;
    Ok(())
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeArgs,
}
