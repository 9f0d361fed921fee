//! helm-controller: reconciles `HelmRelease` (`helm.toolkit.fluxcd.io/v2`).
//!
//! This build wires the shared runtime only. Every kind gets what the runtime gives for free:
//! the `finalizers.fluxcd.io` finalizer, the suspend gate, `observedGeneration`,
//! `lastHandledReconcileAt`, and an honest `Ready=Unknown` (`Progressing`) condition whose
//! message says the reconciliation of the kind is not implemented yet. Release actions come with the helm-controller issue.

use std::future::Future;
use std::sync::Arc;

use kube::runtime::controller::Action;
use sluice_api::helm::HelmRelease;
use sluice_runtime::{
    ReconcileError, Reconciler, Runtime, reconcile_not_implemented, run_controller,
};

/// The controller name: event reporter, Lease `<name>-leader-election`, status field manager
/// `gotk-<name>`.
pub const CONTROLLER_NAME: &str = "helm-controller";

/// Flux's default for `--concurrent` in this controller.
pub const DEFAULT_CONCURRENT: &str = "4";

/// One-line description for `--help`.
pub const ABOUT: &str = "Reconciles Flux HelmReleases: installs, upgrades, tests, rolls back and uninstalls Helm charts";

/// Errors of helm-controller reconciles.
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

/// Reconciles a HelmRelease.
///
/// The runtime has already added the finalizer and skipped suspended objects; the
/// HelmRelease-specific steps are not in this build, so the status says so.
pub async fn reconcile_helm_release(obj: Arc<HelmRelease>, ctx: &Context) -> Result<Action, Error> {
    Ok(reconcile_not_implemented(&*obj, &ctx.runtime).await?)
}

impl Reconciler<HelmRelease> for Context {
    type Error = Error;

    fn reconcile(
        &self,
        obj: Arc<HelmRelease>,
    ) -> impl Future<Output = Result<Action, Error>> + Send {
        reconcile_helm_release(obj, self)
    }
}

/// Watches every kind of this controller until shutdown, then releases leadership.
///
/// # Errors
/// When leadership was lost or a controller could not start.
pub async fn run(runtime: Arc<Runtime>) -> Result<(), sluice_runtime::Error> {
    let context = Arc::new(Context { runtime: runtime.clone() });
    let watched = run_controller::<HelmRelease, _>(runtime.clone(), context).await;
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
