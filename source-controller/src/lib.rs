//! source-controller: reconciles `GitRepository`, `OCIRepository`, `Bucket`, `HelmRepository`, `HelmChart` (`source.toolkit.fluxcd.io/v1`).
//!
//! The runtime gives the finalizer, the suspend gate, `observedGeneration` and
//! `lastHandledReconcileAt`. [`gitrepository`], [`ocirepository`] and [`bucket`] turn
//! GitRepositories, OCIRepositories and Buckets into artifacts stored in a
//! [`sluice_artifact::Storage`] served over HTTP on `--storage-addr`. [`helmrepository`]
//! stores Helm repository indexes and [`helmchart`] pulls or packages charts as artifacts.

pub mod bucket;
pub mod gitrepository;
pub mod helmchart;
mod helmdeps;
pub mod helmrepository;
pub mod ocirepository;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use sluice_api::source::{Bucket, GitRepository, HelmChart, HelmRepository, OCIRepository};
use sluice_runtime::{
    Outcome, ReconcileError, Reconciler, Runtime, StatusWriter, run_controller, run_controller_with,
};

/// The controller name: event reporter, Lease `<name>-leader-election`, status field manager
/// `gotk-<name>`.
pub const CONTROLLER_NAME: &str = "source-controller";

/// Flux's default for `--concurrent` in this controller.
pub const DEFAULT_CONCURRENT: &str = "2";

/// One-line description for `--help`.
pub const ABOUT: &str = "Reconciles Flux sources (GitRepository, OCIRepository, Bucket, HelmRepository, HelmChart) into artifacts";

/// Errors of source-controller reconciles.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the status failed; retried with backoff.
    #[error("writing status")]
    Status(#[from] sluice_runtime::Error),
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Status(_) => sluice_api::meta::reason::FAILED,
        }
    }

    fn is_stalled(&self) -> bool {
        match self {
            Error::Status(_) => false,
        }
    }
}

/// Flags of the artifact storage (fluxcd/pkg artifact/config).
#[derive(clap::Args, Debug, Clone)]
pub struct StorageArgs {
    /// Local directory of the artifact storage.
    #[arg(long, env = "STORAGE_PATH", default_value = "/data")]
    pub storage_path: std::path::PathBuf,
    /// Address the artifact server listens on.
    #[arg(long, env = "STORAGE_ADDRESS", default_value = ":9090")]
    pub storage_addr: String,
    /// Address advertised in artifact URLs (default: the listen address).
    #[arg(long, env = "STORAGE_ADV_ADDR", default_value = "")]
    pub storage_adv_addr: String,
    /// How long superseded artifacts are kept.
    #[arg(long, default_value = "1m", value_parser = parse_duration_flag)]
    pub artifact_retention_ttl: Duration,
    /// How many artifacts per object are kept.
    #[arg(long, default_value_t = 2)]
    pub artifact_retention_records: usize,
    /// Largest Helm repository index accepted, in bytes.
    #[arg(long, default_value_t = helmrepository::DEFAULT_INDEX_MAX_SIZE)]
    pub helm_index_max_size: u64,
    /// Largest Helm chart package accepted, in bytes.
    #[arg(long, default_value_t = helmrepository::DEFAULT_CHART_MAX_SIZE)]
    pub helm_chart_max_size: u64,
}

fn parse_duration_flag(raw: &str) -> Result<Duration, String> {
    sluice_runtime::object::parse_go_duration(raw)
}

impl StorageArgs {
    /// The listen address as a socket address (`:9090` listens on all interfaces).
    pub fn listen_address(&self) -> String {
        if self.storage_addr.starts_with(':') {
            format!("0.0.0.0{}", self.storage_addr)
        } else {
            self.storage_addr.clone()
        }
    }

    /// The address put in artifact URLs.
    pub fn advertised_address(&self) -> String {
        if !self.storage_adv_addr.is_empty() {
            return self.storage_adv_addr.clone();
        }
        match self.storage_addr.strip_prefix(':') {
            Some(port) => format!(
                "{}:{port}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into())
            ),
            None => self.storage_addr.clone(),
        }
    }
}

/// State shared by the reconcilers of this controller.
pub struct Context {
    /// The shared runtime: client, flags, events, metrics.
    pub runtime: Arc<Runtime>,
    /// The GitRepository reconciler.
    pub git: gitrepository::Reconciler,
    /// The OCIRepository reconciler.
    pub oci: ocirepository::Reconciler,
    /// The Bucket reconciler.
    pub bucket: bucket::Reconciler,
    /// The HelmRepository reconciler.
    pub helm_repository: helmrepository::Reconciler,
    /// The HelmChart reconciler.
    pub helm_chart: helmchart::Reconciler,
}

impl Reconciler<GitRepository> for Context {
    type Error = gitrepository::Error;

    fn reconcile(
        &self,
        obj: Arc<GitRepository>,
    ) -> impl Future<Output = Result<Action, gitrepository::Error>> + Send {
        self.git.reconcile(obj)
    }

    fn cleanup(
        &self,
        obj: Arc<GitRepository>,
    ) -> impl Future<Output = Result<Action, gitrepository::Error>> + Send {
        self.git.cleanup(obj)
    }
}

impl Reconciler<OCIRepository> for Context {
    type Error = ocirepository::Error;

    fn reconcile(
        &self,
        obj: Arc<OCIRepository>,
    ) -> impl Future<Output = Result<Action, ocirepository::Error>> + Send {
        self.oci.reconcile(obj)
    }

    fn cleanup(
        &self,
        obj: Arc<OCIRepository>,
    ) -> impl Future<Output = Result<Action, ocirepository::Error>> + Send {
        self.oci.cleanup(obj)
    }
}

impl Reconciler<Bucket> for Context {
    type Error = bucket::Error;

    fn reconcile(
        &self,
        obj: Arc<Bucket>,
    ) -> impl Future<Output = Result<Action, bucket::Error>> + Send {
        self.bucket.reconcile(obj)
    }

    fn cleanup(
        &self,
        obj: Arc<Bucket>,
    ) -> impl Future<Output = Result<Action, bucket::Error>> + Send {
        self.bucket.cleanup(obj)
    }
}

impl Reconciler<HelmRepository> for Context {
    type Error = helmrepository::Error;

    fn reconcile(
        &self,
        obj: Arc<HelmRepository>,
    ) -> impl Future<Output = Result<Action, helmrepository::Error>> + Send {
        self.helm_repository.reconcile(obj)
    }

    fn cleanup(
        &self,
        obj: Arc<HelmRepository>,
    ) -> impl Future<Output = Result<Action, helmrepository::Error>> + Send {
        self.helm_repository.cleanup(obj)
    }
}

impl Reconciler<HelmChart> for Context {
    type Error = helmchart::Error;

    fn reconcile(
        &self,
        obj: Arc<HelmChart>,
    ) -> impl Future<Output = Result<Action, helmchart::Error>> + Send {
        self.helm_chart.reconcile(obj)
    }

    fn cleanup(
        &self,
        obj: Arc<HelmChart>,
    ) -> impl Future<Output = Result<Action, helmchart::Error>> + Send {
        self.helm_chart.cleanup(obj)
    }
}

/// Watches every kind of this controller until shutdown, then releases leadership.
///
/// # Errors
/// When leadership was lost or a controller could not start.
pub async fn run(
    runtime: Arc<Runtime>,
    storage_args: StorageArgs,
) -> Result<(), sluice_runtime::Error> {
    let storage = sluice_artifact::Storage::new(
        &storage_args.storage_path,
        storage_args.advertised_address(),
        storage_args.artifact_retention_ttl,
        storage_args.artifact_retention_records,
    )
    .map_err(|err| sluice_runtime::Error::Flag {
        flag: "storage-path",
        message: sluice_runtime::conditions::error_message(&err),
    })?;
    let listen = storage_args.listen_address();
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|source| {
        sluice_runtime::Error::Serve { what: "artifacts", addr: listen.clone(), source }
    })?;
    tracing::info!(address = %listen, path = %storage_args.storage_path.display(), "serving artifacts");
    let shutdown = runtime.shutdown.clone();
    tokio::spawn(sluice_artifact::server::serve(
        storage_args.storage_path.clone(),
        listener,
        async move { shutdown.wait().await },
    ));
    let oci = ocirepository::Reconciler { runtime: runtime.clone(), storage: storage.clone() };
    let bucket = bucket::Reconciler { runtime: runtime.clone(), storage: storage.clone() };
    let helm_limits = helmrepository::Limits {
        index_max_size: storage_args.helm_index_max_size,
        chart_max_size: storage_args.helm_chart_max_size,
    };
    let helm_repository = helmrepository::Reconciler {
        runtime: runtime.clone(),
        storage: storage.clone(),
        limits: helm_limits,
    };
    let helm_chart = helmchart::Reconciler {
        runtime: runtime.clone(),
        storage: storage.clone(),
        fetcher: sluice_artifact::Fetcher::new(
            reqwest::Client::new(),
            2,
            sluice_artifact::UnpackLimits::default(),
        ),
        limits: helm_limits,
    };
    let git = gitrepository::Reconciler { runtime: runtime.clone(), storage };
    let context = Arc::new(Context {
        runtime: runtime.clone(),
        git,
        oci,
        bucket,
        helm_repository,
        helm_chart,
    });
    let include_runtime = runtime.clone();
    let watched = futures::try_join!(
        run_controller_with::<GitRepository, _, _>(runtime.clone(), context.clone(), move |c| {
            gitrepository::watch_includes(c, &include_runtime)
        }),
        run_controller::<OCIRepository, _>(runtime.clone(), context.clone()),
        run_controller::<Bucket, _>(runtime.clone(), context.clone()),
        run_controller::<HelmRepository, _>(runtime.clone(), context.clone()),
        run_controller_with::<HelmChart, _, _>(
            runtime.clone(),
            context.clone(),
            helmchart::watch_sources(runtime.clone()),
        ),
    )
    .map(|_| ());
    let finished = runtime.finish().await;
    watched?;
    finished
}

/// The end of a reconcile that stored, or kept, `artifact`: when it is new, the object's
/// superseded artifacts are garbage-collected; then `ArtifactInStorage` is set, the failure
/// conditions are cleared, Ready is written with `message`, and the next run is after `interval`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn finish_stored<K: sluice_runtime::object::FluxObject>(
    runtime: &Runtime,
    storage: &sluice_artifact::Storage,
    kind: &str,
    obj: &K,
    mut status: StatusWriter<'_, K>,
    artifact: &sluice_api::meta::Artifact,
    is_new: bool,
    message: String,
    interval: Duration,
) -> Result<Action, sluice_runtime::Error> {
    use kube::ResourceExt;
    use sluice_api::source::condition;
    if is_new {
        let namespace = obj.namespace().unwrap_or_default();
        let object_dir = sluice_artifact::Storage::object_dir(kind, &namespace, &obj.name_any());
        if let Err(err) = storage.garbage_collect(&object_dir, &artifact.path) {
            tracing::warn!(kind, namespace = %namespace, name = %obj.name_any(), error = %sluice_runtime::conditions::error_message(&err), "garbage collection failed");
        }
        tracing::info!(kind, namespace = %namespace, name = %obj.name_any(), revision = %artifact.revision, "stored artifact");
    }
    status.set_event_metadata("revision", &artifact.revision);
    status.set_condition(
        condition::ARTIFACT_IN_STORAGE,
        sluice_runtime::conditions::Status::True,
        sluice_api::meta::reason::SUCCEEDED,
        &message,
    );
    status.remove_condition(condition::FETCH_FAILED);
    status.remove_condition(condition::STORAGE_OPERATION_FAILED);
    status
        .finish(&Outcome::Ready { reason: sluice_api::meta::reason::SUCCEEDED.into(), message })
        .await?;
    Ok(runtime.next_action(Some(interval)))
}

/// The end of a failed reconcile: the `failure` condition (`FetchFailed`,
/// `StorageOperationFailed`, …) is set when given and Ready=False written; a stalled error waits
/// for a change of the object, any other is retried after `interval`.
pub(crate) async fn finish_failed<K: sluice_runtime::object::FluxObject, E: ReconcileError>(
    runtime: &Runtime,
    mut status: StatusWriter<'_, K>,
    err: &E,
    failure: Option<&str>,
    interval: Duration,
) -> Result<Action, sluice_runtime::Error> {
    if let Some(type_) = failure {
        let message = sluice_runtime::conditions::error_message(err);
        status.set_condition(
            type_,
            sluice_runtime::conditions::Status::True,
            err.reason(),
            &message,
        );
    }
    status.finish(&Outcome::from_error(err)).await?;
    Ok(if err.is_stalled() { Action::await_change() } else { runtime.next_action(Some(interval)) })
}

/// The object as the API server has it now, or `None` when it cannot be read.
///
/// A reconcile queued while another one ran starts as soon as that one ends, often before the
/// watch has delivered the status it wrote; judging "is this revision already stored?" from that
/// stale copy would rebuild, and rewrite, an artifact that consumers are downloading. The
/// source reconcilers call this before rebuilding, so a rebuild happens only when the stored
/// status really differs.
pub(crate) async fn fresh<K>(client: &kube::Client, obj: &K) -> Option<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    use kube::ResourceExt;
    let api: kube::Api<K> =
        kube::Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    api.get_opt(&obj.name_any()).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_are_retried() {
        let error = Error::Status(sluice_runtime::Error::Unnamed { kind: "X".into() });
        assert_eq!(error.reason(), "Failed");
        assert!(!error.is_stalled());
        assert_eq!(
            sluice_runtime::conditions::error_message(&error),
            "writing status: X object has no metadata.name"
        );
    }
}
