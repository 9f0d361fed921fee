//! kustomize-controller: reconciles `Kustomization` (`kustomize.toolkit.fluxcd.io/v1`).
//!
//! The runtime gives the finalizer, the suspend gate, `observedGeneration` and
//! `lastHandledReconcileAt`; [`kustomization`] fetches the source artifact, builds it with the
//! kustomize engine ([`build`]), server-side applies it in stages, prunes what left the source,
//! checks health and writes the status.

pub mod build;
pub mod kustomization;

use std::future::Future;
use std::sync::Arc;

use kube::runtime::controller::Action;
use sluice_api::kustomize::Kustomization;
use sluice_runtime::{Reconciler, Runtime, run_controller};

pub use kustomization::Error;

/// The controller name: event reporter, Lease `<name>-leader-election`, status field manager
/// `gotk-<name>`.
pub const CONTROLLER_NAME: &str = "kustomize-controller";

/// Flux's default for `--concurrent` in this controller.
pub const DEFAULT_CONCURRENT: &str = "4";

/// One-line description for `--help`.
pub const ABOUT: &str = "Reconciles Flux Kustomizations: builds artifacts with kustomize and applies them to the cluster";

/// State shared by the reconcilers of this controller.
pub type Context = kustomization::Reconciler;

/// Flux's default for `--http-retry`: retries of an artifact download.
pub const HTTP_RETRY: u32 = 9;

impl Reconciler<Kustomization> for Context {
    type Error = Error;

    fn reconcile(
        &self,
        obj: Arc<Kustomization>,
    ) -> impl Future<Output = Result<Action, Error>> + Send {
        kustomization::Reconciler::reconcile(self, obj)
    }

    fn cleanup(
        &self,
        obj: Arc<Kustomization>,
    ) -> impl Future<Output = Result<Action, Error>> + Send {
        kustomization::Reconciler::cleanup(self, obj)
    }
}

/// Watches every kind of this controller until shutdown, then releases leadership.
///
/// # Errors
/// When leadership was lost or a controller could not start.
pub async fn run(runtime: Arc<Runtime>) -> Result<(), sluice_runtime::Error> {
    let fetcher = sluice_artifact::Fetcher::new(
        reqwest::Client::new(),
        HTTP_RETRY,
        sluice_artifact::UnpackLimits::default(),
    );
    let context = Arc::new(Context { runtime: runtime.clone(), fetcher });
    let watched = run_controller::<Kustomization, _>(runtime.clone(), context).await;
    let finished = runtime.finish().await;
    watched?;
    finished
}
