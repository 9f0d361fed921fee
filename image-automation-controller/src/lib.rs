//! image-automation-controller: reconciles `ImageRepository`, `ImagePolicy`, `ImageUpdateAutomation` (`image.toolkit.fluxcd.io/v1`).
//!
//! This build wires the shared runtime only. Every kind gets what the runtime gives for free:
//! the `finalizers.fluxcd.io` finalizer, the suspend gate, `observedGeneration`,
//! `lastHandledReconcileAt`, and an honest `Ready=Unknown` (`Progressing`) condition whose
//! message says the reconciliation of the kind is not implemented yet. Registry scanning, tag policies and Git updates come with the image automation issue.

use std::future::Future;
use std::sync::Arc;

use kube::runtime::controller::Action;
use sluice_api::image::{ImagePolicy, ImageRepository, ImageUpdateAutomation};
use sluice_runtime::{
    ReconcileError, Reconciler, Runtime, reconcile_not_implemented, run_controller,
};

/// The controller name: event reporter, Lease `<name>-leader-election`, status field manager
/// `gotk-<name>`.
pub const CONTROLLER_NAME: &str = "image-automation-controller";

/// Flux's default for `--concurrent` in this controller.
pub const DEFAULT_CONCURRENT: &str = "4";

/// One-line description for `--help`.
pub const ABOUT: &str = "Reconciles Flux image automation: scans ImageRepositories, selects ImagePolicy tags and commits ImageUpdateAutomation updates";

/// Errors of image-automation-controller reconciles.
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

/// Reconciles a ImageRepository.
///
/// The runtime has already added the finalizer and skipped suspended objects; the
/// ImageRepository-specific steps are not in this build, so the status says so.
pub async fn reconcile_image_repository(
    obj: Arc<ImageRepository>,
    ctx: &Context,
) -> Result<Action, Error> {
    Ok(reconcile_not_implemented(&*obj, &ctx.runtime).await?)
}

/// Reconciles a ImagePolicy.
///
/// The runtime has already added the finalizer and skipped suspended objects; the
/// ImagePolicy-specific steps are not in this build, so the status says so.
pub async fn reconcile_image_policy(obj: Arc<ImagePolicy>, ctx: &Context) -> Result<Action, Error> {
    Ok(reconcile_not_implemented(&*obj, &ctx.runtime).await?)
}

/// Reconciles a ImageUpdateAutomation.
///
/// The runtime has already added the finalizer and skipped suspended objects; the
/// ImageUpdateAutomation-specific steps are not in this build, so the status says so.
pub async fn reconcile_image_update_automation(
    obj: Arc<ImageUpdateAutomation>,
    ctx: &Context,
) -> Result<Action, Error> {
    Ok(reconcile_not_implemented(&*obj, &ctx.runtime).await?)
}

impl Reconciler<ImageRepository> for Context {
    type Error = Error;

    fn reconcile(
        &self,
        obj: Arc<ImageRepository>,
    ) -> impl Future<Output = Result<Action, Error>> + Send {
        reconcile_image_repository(obj, self)
    }
}

impl Reconciler<ImagePolicy> for Context {
    type Error = Error;

    fn reconcile(
        &self,
        obj: Arc<ImagePolicy>,
    ) -> impl Future<Output = Result<Action, Error>> + Send {
        reconcile_image_policy(obj, self)
    }
}

impl Reconciler<ImageUpdateAutomation> for Context {
    type Error = Error;

    fn reconcile(
        &self,
        obj: Arc<ImageUpdateAutomation>,
    ) -> impl Future<Output = Result<Action, Error>> + Send {
        reconcile_image_update_automation(obj, self)
    }
}

/// Watches every kind of this controller until shutdown, then releases leadership.
///
/// # Errors
/// When leadership was lost or a controller could not start.
pub async fn run(runtime: Arc<Runtime>) -> Result<(), sluice_runtime::Error> {
    let context = Arc::new(Context { runtime: runtime.clone() });
    let watched = futures::try_join!(
        run_controller::<ImageRepository, _>(runtime.clone(), context.clone()),
        run_controller::<ImagePolicy, _>(runtime.clone(), context.clone()),
        run_controller::<ImageUpdateAutomation, _>(runtime.clone(), context.clone()),
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
