//! The image-automation-controller binary against a real kube-apiserver: finalizer, a stalled
//! status for an invalid image, reconcile requests, suspend, Kubernetes Events, leader
//! election, deletion and shutdown.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use sluice_api::image::{ImageRepository, ImageRepositorySpec};
use sluice_api::meta::{FINALIZER, RECONCILE_REQUEST_ANNOTATION};
use sluice_e2e::{TestEnv, wait_for};
use sluice_runtime::conditions;

const TIMEOUT: Duration = Duration::from_secs(30);

/// A free loopback port (bound then released; good enough on a test machine).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn image_repository(name: &str, request: &str) -> ImageRepository {
    let mut obj = ImageRepository::new(
        name,
        ImageRepositorySpec {
            image: Some("ghcr.io/org/app:1.0".into()),
            interval: "10m".into(),
            ..Default::default()
        },
    );
    obj.metadata.annotations =
        Some(BTreeMap::from([(RECONCILE_REQUEST_ANNOTATION.to_string(), request.to_string())]));
    obj
}

/// Whether `obj` has been reconciled for its current generation and request token.
fn is_reconciled(obj: &ImageRepository, request: &str) -> bool {
    let Some(status) = &obj.status else { return false };
    status.observed_generation == obj.metadata.generation
        && status.last_handled_reconcile_at.as_deref() == Some(request)
}

#[tokio::test]
async fn image_automation_controller_binary_reconciles_with_the_runtime() -> Result<()> {
    sluice_e2e::install_crypto_provider();
    let env = TestEnv::shared().await?;
    env.install_crds().await?;
    let ns = env.namespace("image-runtime").await?;
    let logs = tempfile::NamedTempFile::new()?;
    let storage = tempfile::tempdir()?;
    let metrics_port = free_port()?;
    let mut controller =
        tokio::process::Command::new(env!("CARGO_BIN_EXE_image-automation-controller"))
            .env("KUBECONFIG", env.kubeconfig())
            .env("RUNTIME_NAMESPACE", ns.name())
            .env("HOSTNAME", "test-pod")
            .args([
                "--watch-all-namespaces=false",
                "--enable-leader-election",
                "--log-encoding=console",
                "--log-level=debug",
                &format!("--metrics-addr=127.0.0.1:{metrics_port}"),
                "--health-addr=127.0.0.1:0",
                &format!("--storage-path={}", storage.path().display()),
            ])
            .stdout(Stdio::null())
            .stderr(logs.reopen()?)
            .kill_on_drop(true)
            .spawn()
            .context("starting image-automation-controller")?;

    let result = exercise(&env, ns.name(), metrics_port, &mut controller).await;
    if result.is_err() {
        let _ = controller.start_kill();
        eprintln!("image-automation-controller logs:\n{}", std::fs::read_to_string(logs.path())?);
    }
    result
}

async fn exercise(
    env: &TestEnv,
    namespace: &str,
    metrics_port: u16,
    controller: &mut tokio::process::Child,
) -> Result<()> {
    let client = env.client();
    let repos: Api<ImageRepository> = Api::namespaced(client.clone(), namespace);
    repos.create(&PostParams::default(), &image_repository("podinfo", "t1")).await?;

    // The finalizer is added and the status says why the image cannot be scanned.
    let reconciled = wait_for(TIMEOUT, "finalizer and status on ImageRepository", || async {
        let obj = repos.get("podinfo").await?;
        let has_finalizer = obj.metadata.finalizers.iter().flatten().any(|f| f == FINALIZER);
        Ok((has_finalizer && is_reconciled(&obj, "t1")).then_some(obj))
    })
    .await?;
    let status = reconciled.status.clone().unwrap_or_default();
    let found = status.conditions.clone().unwrap_or_default();
    if let Err(broken) = conditions::check(
        reconciled.metadata.generation.unwrap_or_default(),
        status.observed_generation.unwrap_or(-1),
        &found,
    ) {
        bail!("kstatus rules broken: {broken:?}");
    }
    let ready = conditions::get(&found, "Ready").context("no Ready condition")?;
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "ImageURLInvalid"));
    assert_eq!(ready.message, "spec.image \"ghcr.io/org/app:1.0\" must not contain a tag");
    let stalled = conditions::get(&found, "Stalled").context("no Stalled condition")?;
    assert_eq!(stalled.reason, "ImageURLInvalid");
    let managers: Vec<String> = reconciled
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|entry| entry.manager.clone())
        .collect();
    assert!(managers.iter().any(|m| m == "gotk-image-automation-controller"), "{managers:?}");

    // The status transition was recorded as a Kubernetes Event.
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    wait_for(TIMEOUT, "an ImageURLInvalid event for podinfo", || async {
        let list = events.list(&ListParams::default()).await?;
        Ok(list
            .items
            .iter()
            .any(|event| {
                event.reason.as_deref() == Some("ImageURLInvalid")
                    && event.reporting_controller.as_deref() == Some("image-automation-controller")
                    && event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("podinfo")
            })
            .then_some(()))
    })
    .await?;

    // A new request token is handled without a spec change.
    let request =
        serde_json::json!({"metadata": {"annotations": {RECONCILE_REQUEST_ANNOTATION: "t2"}}});
    repos.patch("podinfo", &PatchParams::default(), &Patch::Merge(&request)).await?;
    wait_for(TIMEOUT, "lastHandledReconcileAt t2", || async {
        Ok(is_reconciled(&repos.get("podinfo").await?, "t2").then_some(()))
    })
    .await?;

    // Suspended objects are left alone and reported in gotk_suspend_status.
    let suspend = serde_json::json!({"spec": {"suspend": true}});
    repos.patch("podinfo", &PatchParams::default(), &Patch::Merge(&suspend)).await?;
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let expected = format!(
        "gotk_suspend_status{{kind=\"ImageRepository\",name=\"podinfo\",namespace=\"{namespace}\"}} 1"
    );
    let http = sluice_e2e::http_client();
    wait_for(TIMEOUT, "gotk_suspend_status 1", || async {
        let text = http.get(&metrics_url).send().await?.text().await?;
        Ok(text.contains(&expected).then_some(()))
    })
    .await?;
    let suspended = repos.get("podinfo").await?;
    assert_eq!(suspended.metadata.generation, Some(2));
    assert_eq!(suspended.status.and_then(|s| s.observed_generation), Some(1));

    // The leader holds the Lease in the runtime namespace.
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let lease = leases.get("image-automation-controller-leader-election").await?;
    let holder = lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
    assert!(holder.starts_with("test-pod_"), "{holder}");

    // Deletion goes through the finalizer and completes.
    repos.delete("podinfo", &DeleteParams::default()).await?;
    wait_for(TIMEOUT, "ImageRepository podinfo to be deleted", || async {
        Ok(repos.get_opt("podinfo").await?.is_none().then_some(()))
    })
    .await?;

    // SIGTERM stops the controller cleanly and releases the Lease.
    let pid = controller.id().context("controller already exited")?;
    let status =
        tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
    assert!(status.success());
    let exit = tokio::time::timeout(TIMEOUT, controller.wait()).await??;
    assert!(exit.success(), "controller exited with {exit}");
    let lease = leases.get("image-automation-controller-leader-election").await?;
    assert_eq!(lease.spec.and_then(|s| s.holder_identity), None);
    Ok(())
}
