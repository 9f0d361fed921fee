//! notification-controller: reconciles `Receiver` (`notification.toolkit.fluxcd.io/v1`).
//!
//! This build wires the shared runtime only. Every kind gets what the runtime gives for free:
//! the `finalizers.fluxcd.io` finalizer, the suspend gate, `observedGeneration`,
//! `lastHandledReconcileAt`, and an honest `Ready=Unknown` (`Progressing`) condition whose
//! message says the reconciliation of the kind is not implemented yet. Provider and Alert (v1beta3) have no status and are read when events arrive, as in Flux, so only Receiver is watched. The event server, webhook receiver and providers come with the notification-controller issue.

use std::future::Future;
use std::sync::Arc;

use kube::runtime::controller::Action;
use sluice_api::notification::Receiver;
use sluice_runtime::{
    ReconcileError, Reconciler, Runtime, reconcile_not_implemented, run_controller,
};

/// The controller name: event reporter, Lease `<name>-leader-election`, status field manager
/// `gotk-<name>`.
pub const CONTROLLER_NAME: &str = "notification-controller";

/// Flux's default for `--concurrent` in this controller.
pub const DEFAULT_CONCURRENT: &str = "4";

/// One-line description for `--help`.
pub const ABOUT: &str = "Reconciles Flux Receivers and dispatches events to notification Providers";

/// Errors of notification-controller reconciles.
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

/// Reconciles a Receiver.
///
/// The runtime has already added the finalizer and skipped suspended objects; the
/// Receiver-specific steps are not in this build, so the status says so.
pub async fn reconcile_receiver(obj: Arc<Receiver>, ctx: &Context) -> Result<Action, Error> {
    Ok(reconcile_not_implemented(&*obj, &ctx.runtime).await?)
}

impl Reconciler<Receiver> for Context {
    type Error = Error;

    fn reconcile(&self, obj: Arc<Receiver>) -> impl Future<Output = Result<Action, Error>> + Send {
        reconcile_receiver(obj, self)
    }
}

/// Watches every kind of this controller until shutdown, then releases leadership.
///
/// # Errors
/// When leadership was lost or a controller could not start.
pub async fn run(runtime: Arc<Runtime>) -> Result<(), sluice_runtime::Error> {
    let context = Arc::new(Context { runtime: runtime.clone() });
    let watched = run_controller::<Receiver, _>(runtime.clone(), context).await;
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
