//! helm-controller: reconciles `HelmRelease` (`helm.toolkit.fluxcd.io/v2`).
//!
//! The runtime gives the finalizer, the suspend gate, `observedGeneration` and
//! `lastHandledReconcileAt`; [`helmrelease`] resolves the chart source (an owned HelmChart for
//! `spec.chart`, or `spec.chartRef`), fetches and verifies the chart, composes the values,
//! renders with `sluice-helm` and drives the release state machine whose Helm actions live in
//! [`action`]; releases are stored in Helm's Secret driver format by [`storage`].

pub mod action;
pub mod helmrelease;
pub mod lookup;
pub mod postrender;
pub mod storage;

use std::future::Future;
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use sluice_api::helm::HelmRelease;
use sluice_api::source::{HelmChart, OCIRepository};
use sluice_runtime::{Reconciler, Runtime, run_controller_with};

pub use helmrelease::Error;

/// The controller name: event reporter, Lease `<name>-leader-election`, status field manager
/// `gotk-<name>`.
pub const CONTROLLER_NAME: &str = "helm-controller";

/// Flux's default for `--concurrent` in this controller.
pub const DEFAULT_CONCURRENT: &str = "4";

/// One-line description for `--help`.
pub const ABOUT: &str = "Reconciles Flux HelmReleases: installs, upgrades, tests, rolls back and uninstalls Helm charts";

/// Flux's default for `--http-retry`: retries of a chart download.
pub const HTTP_RETRY: u32 = 9;

/// State shared by the reconcilers of this controller.
pub type Context = helmrelease::Reconciler;

impl Reconciler<HelmRelease> for Context {
    type Error = Error;

    fn reconcile(
        &self,
        obj: Arc<HelmRelease>,
    ) -> impl Future<Output = Result<Action, Error>> + Send {
        helmrelease::Reconciler::reconcile(self, obj)
    }

    fn cleanup(&self, obj: Arc<HelmRelease>) -> impl Future<Output = Result<Action, Error>> + Send {
        helmrelease::Reconciler::cleanup(self, obj)
    }
}

/// The reconciler context for `runtime`.
pub fn context(runtime: Arc<Runtime>) -> Context {
    let fetcher = sluice_artifact::Fetcher::new(
        reqwest::Client::new(),
        HTTP_RETRY,
        sluice_artifact::UnpackLimits::default(),
    );
    helmrelease::Reconciler { runtime, fetcher, kube_version: tokio::sync::OnceCell::new() }
}

/// Watches HelmReleases, and HelmCharts and OCIRepositories whose new artifacts wake the
/// HelmReleases using them, until shutdown; then releases leadership.
///
/// # Errors
/// When leadership was lost or a controller could not start.
pub async fn run(runtime: Arc<Runtime>) -> Result<(), sluice_runtime::Error> {
    let context = Arc::new(context(runtime.clone()));
    let watch_runtime = runtime.clone();
    let watched = run_controller_with::<HelmRelease, _, _>(runtime.clone(), context, move |c| {
        let store = c.store();
        let config = watch_runtime.watcher_config();
        c.watches(
            watch_runtime.watched_api::<HelmChart>(),
            config.clone(),
            consumers_of(store.clone(), |s: &HelmChart| s.status.as_ref()?.artifact.clone()),
        )
        .watches(
            watch_runtime.watched_api::<OCIRepository>(),
            config,
            consumers_of(store, |s: &OCIRepository| s.status.as_ref()?.artifact.clone()),
        )
    })
    .await;
    let finished = runtime.finish().await;
    watched?;
    finished
}

/// The watch mapper of a chart source kind: a new artifact wakes the HelmReleases using it
/// (through `spec.chartRef`, or the HelmChart created for `spec.chart`) that have not
/// attempted that revision yet.
fn consumers_of<S>(
    store: Store<HelmRelease>,
    artifact: fn(&S) -> Option<sluice_api::meta::Artifact>,
) -> impl Fn(S) -> Vec<ObjectRef<HelmRelease>> + Send + Sync + Clone + 'static
where
    S: kube::Resource<DynamicType = ()> + 'static,
{
    move |source: S| {
        let Some(artifact) = artifact(&source) else { return Vec::new() };
        let kind = S::kind(&()).to_string();
        let name = source.name_any();
        let namespace = source.namespace().unwrap_or_default();
        store
            .state()
            .into_iter()
            .filter(|hr| {
                let own_namespace = hr.namespace().unwrap_or_default();
                let uses = match (&hr.spec.chart_ref, &hr.spec.chart) {
                    (Some(r), _) => {
                        r.kind == kind
                            && r.name == name
                            && r.namespace.clone().unwrap_or_else(|| own_namespace.clone())
                                == namespace
                    }
                    (None, Some(template)) => {
                        kind == "HelmChart"
                            && helmrelease::helm_chart_name(hr) == name
                            && template
                                .spec
                                .source_ref
                                .namespace
                                .clone()
                                .unwrap_or_else(|| own_namespace.clone())
                                == namespace
                    }
                    (None, None) => false,
                };
                uses && hr.status.as_ref().and_then(|s| s.last_attempted_revision_digest.as_deref())
                    != artifact.digest.as_deref()
            })
            .map(|hr| ObjectRef::from_obj(&*hr))
            .collect()
    }
}
