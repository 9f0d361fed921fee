//! What the helm-controller tests share: an in-process helm-controller limited to one shard
//! (the tests of a file run in parallel against one apiserver), and readers of HelmRelease
//! status.

use kube::api::{Api, ListParams};
use sluice_api::helm::HelmRelease;
use sluice_e2e::TestEnv;
use sluice_runtime::Runtime;

#[derive(clap::Parser, Debug)]
struct Flags {
    #[command(flatten)]
    runtime: sluice_runtime::runtime::RuntimeArgs,
}

/// Starts helm-controller for the objects labelled `sharding.fluxcd.io/key: <shard>`, so the
/// tests of a file (one process, run in parallel) do not act on each other's objects.
pub async fn start_controller(env: &TestEnv, shard: &str) -> tokio::task::JoinHandle<()> {
    let selector = format!("--watch-label-selector=sharding.fluxcd.io/key={shard}");
    let args = [
        "helm-controller",
        "--metrics-addr=127.0.0.1:0",
        "--health-addr=127.0.0.1:0",
        "--requeue-dependency=2s",
        selector.as_str(),
    ];
    let flags: Flags = sluice_runtime::runtime::parse_args_from("4", args);
    let runtime =
        Runtime::start_with_client("helm-controller", flags.runtime, env.client()).await.unwrap();
    tokio::spawn(async move {
        let _ = helm_controller::run(runtime).await;
    })
}

/// The value of `result`, or a panic that first prints every HelmRelease's status.
pub async fn settled<T>(result: anyhow::Result<T>, hrs: &Api<HelmRelease>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => {
            for hr in hrs.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
                eprintln!(
                    "{}: {}",
                    hr.metadata.name.clone().unwrap_or_default(),
                    serde_json::to_string_pretty(&hr.status).unwrap_or_default()
                );
            }
            panic!("{err:#}");
        }
    }
}

/// Status, reason and message of the condition `type_`.
pub fn condition(hr: &HelmRelease, type_: &str) -> Option<(String, String, String)> {
    hr.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The release version of the newest `status.history` entry.
pub fn latest_version(hr: &HelmRelease) -> Option<i64> {
    hr.status.as_ref()?.history.as_ref()?.first().map(|s| s.version)
}
