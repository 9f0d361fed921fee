//! source-controller: reconciles `GitRepository`, `OCIRepository`, `Bucket`, `HelmRepository`, `HelmChart` (`source.toolkit.fluxcd.io/v1`).
//!
//! This build wires the shared runtime only. Every kind gets what the runtime gives for free:
//! the `finalizers.fluxcd.io` finalizer, the suspend gate, `observedGeneration`,
//! `lastHandledReconcileAt`, and an honest `Ready=Unknown` (`Progressing`) condition whose
//! message says the reconciliation of the kind is not implemented yet. Fetching sources and serving artifacts come with the source-controller issue.

use std::future::Future;
use std::sync::Arc;

use kube::runtime::controller::Action;
use sluice_api::source::{Bucket, GitRepository, HelmChart, HelmRepository, OCIRepository};
use sluice_runtime::{
    ReconcileError, Reconciler, Runtime, reconcile_not_implemented, run_controller,
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

/// State shared by the reconcilers of this controller.
pub struct Context {
    /// The shared runtime: client, flags, events, metrics.
    pub runtime: Arc<Runtime>,
}

/// Reconciles a GitRepository.
///
/// The runtime has already added the finalizer and skipped suspended objects; the
/// GitRepository-specific steps are not in this build, so the status says so.
pub async fn reconcile_git_repository(
    obj: Arc<GitRepository>,
    ctx: &Context,
) -> Result<Action, Error> {
    Ok(reconcile_not_implemented(&*obj, &ctx.runtime).await?)
}

/// Reconciles a OCIRepository.
///
/// The runtime has already added the finalizer and skipped suspended objects; the
/// OCIRepository-specific steps are not in this build, so the status says so.
pub async fn reconcile_oci_repository(
    obj: Arc<OCIRepository>,
    ctx: &Context,
) -> Result<Action, Error> {
    Ok(reconcile_not_implemented(&*obj, &ctx.runtime).await?)
}

/// Reconciles a Bucket.
///
/// The runtime has already added the finalizer and skipped suspended objects; the
/// Bucket-specific steps are not in this build, so the status says so.
pub async fn reconcile_bucket(obj: Arc<Bucket>, ctx: &Context) -> Result<Action, Error> {
    Ok(reconcile_not_implemented(&*obj, &ctx.runtime).await?)
}

/// Reconciles a HelmRepository.
///
/// The runtime has already added the finalizer and skipped suspended objects; the
/// HelmRepository-specific steps are not in this build, so the status says so.
pub async fn reconcile_helm_repository(
    obj: Arc<HelmRepository>,
    ctx: &Context,
) -> Result<Action, Error> {
    Ok(reconcile_not_implemented(&*obj, &ctx.runtime).await?)
}

/// Reconciles a HelmChart.
///
/// The runtime has already added the finalizer and skipped suspended objects; the
/// HelmChart-specific steps are not in this build, so the status says so.
pub async fn reconcile_helm_chart(obj: Arc<HelmChart>, ctx: &Context) -> Result<Action, Error> {
    Ok(reconcile_not_implemented(&*obj, &ctx.runtime).await?)
}

impl Reconciler<GitRepository> for Context {
    type Error = Error;

    fn reconcile(
        &self,
        obj: Arc<GitRepository>,
    ) -> impl Future<Output = Result<Action, Error>> + Send {
        reconcile_git_repository(obj, self)
    }
}

impl Reconciler<OCIRepository> for Context {
    type Error = Error;

    fn reconcile(
        &self,
        obj: Arc<OCIRepository>,
    ) -> impl Future<Output = Result<Action, Error>> + Send {
        reconcile_oci_repository(obj, self)
    }
}

impl Reconciler<Bucket> for Context {
    type Error = Error;

    fn reconcile(&self, obj: Arc<Bucket>) -> impl Future<Output = Result<Action, Error>> + Send {
        reconcile_bucket(obj, self)
    }
}

impl Reconciler<HelmRepository> for Context {
    type Error = Error;

    fn reconcile(
        &self,
        obj: Arc<HelmRepository>,
    ) -> impl Future<Output = Result<Action, Error>> + Send {
        reconcile_helm_repository(obj, self)
    }
}

impl Reconciler<HelmChart> for Context {
    type Error = Error;

    fn reconcile(&self, obj: Arc<HelmChart>) -> impl Future<Output = Result<Action, Error>> + Send {
        reconcile_helm_chart(obj, self)
    }
}

/// Watches every kind of this controller until shutdown, then releases leadership.
///
/// # Errors
/// When leadership was lost or a controller could not start.
pub async fn run(runtime: Arc<Runtime>) -> Result<(), sluice_runtime::Error> {
    let context = Arc::new(Context { runtime: runtime.clone() });
    let watched = futures::try_join!(
        run_controller::<GitRepository, _>(runtime.clone(), context.clone()),
        run_controller::<OCIRepository, _>(runtime.clone(), context.clone()),
        run_controller::<Bucket, _>(runtime.clone(), context.clone()),
        run_controller::<HelmRepository, _>(runtime.clone(), context.clone()),
        run_controller::<HelmChart, _>(runtime.clone(), context.clone()),
    )
    .map(|_| ());
    let finished = runtime.finish().await;
    watched?;
    finished
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
