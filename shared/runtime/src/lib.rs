//! The controller runtime every sluice controller binary uses.
//!
//! One concept per module, in the style of kube-runtime:
//! - [`conditions`]: Ready, Reconciling and Stalled with kstatus rules, and the test checker;
//! - [`status`]: [`status::StatusWriter`], the only code that patches `.status`;
//! - [`events`]: Kubernetes Events plus forwarding to notification-controller;
//! - [`metrics`]: `gotk_*` and controller metrics;
//! - [`runtime`]: flags, logging, probes, leader election, shutdown, jitter, backoff and
//!   [`runtime::run_controller`];
//! - [`object`]: what the runtime needs from each Flux kind;
//! - [`impersonate`]: the client an object acts with (`serviceAccountName`, `kubeConfig`);
//! - [`error`]: the [`error::ReconcileError`] contract and the runtime's own errors.

pub mod conditions;
pub mod error;
pub mod events;
pub mod impersonate;
pub mod metrics;
pub mod object;
pub mod runtime;
pub mod status;

#[cfg(test)]
mod fake_api;

pub use error::{Error, ReconcileError};
pub use object::FluxObject;
pub use runtime::{Reconciler, Runtime, RuntimeArgs, run_controller, run_controller_with};
pub use status::{Outcome, StatusWriter, reconcile_not_implemented};
