//! How reconcile errors surface, and the runtime's own error type.
//!
//! A controller's error enum implements [`ReconcileError`] so the runtime can turn any failure
//! into conditions and a retry decision without looking at `Debug` output (STYLE.md §4,
//! after fluxcd/source-controller `internal/error/error.go`).

use std::error::Error as StdError;

/// A reconcile error that knows its condition reason and whether it is terminal.
pub trait ReconcileError: StdError + Send + Sync + 'static {
    /// The condition and event reason, one of Flux's CamelCase reasons (e.g. `BuildFailed`).
    fn reason(&self) -> &'static str;

    /// Whether the error waits for a spec change (`Stalled=True`, no retry) rather than being
    /// retried with backoff.
    fn is_stalled(&self) -> bool;
}

/// Errors of the runtime itself: talking to the apiserver, serving, electing a leader.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An apiserver request failed.
    #[error("{action} {kind} {namespace}/{name}")]
    Kube {
        /// What was attempted, e.g. `patching status of`.
        action: &'static str,
        /// Kind of the object.
        kind: String,
        /// Namespace of the object (empty for cluster-scoped objects).
        namespace: String,
        /// Name of the object.
        name: String,
        /// The client error (boxed: kube's error is large).
        #[source]
        source: Box<kube::Error>,
    },
    /// The object has no name or namespace, so it cannot be addressed.
    #[error("{kind} object has no metadata.name")]
    Unnamed {
        /// Kind of the object.
        kind: String,
    },
    /// A flag has a value the runtime cannot use.
    #[error("flag --{flag}: {message}")]
    Flag {
        /// The flag name, without dashes.
        flag: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Binding or serving an HTTP listener failed.
    #[error("serving {what} on {addr}")]
    Serve {
        /// Which server: `metrics` or `health probes`.
        what: &'static str,
        /// The listen address.
        addr: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Building the kube client failed.
    #[error(
        "building the Kubernetes client (from KUBECONFIG, ~/.kube/config or in-cluster config)"
    )]
    Client(#[source] Box<kube::Error>),
    /// Leader election failed or leadership was lost.
    #[error("leader election on Lease {namespace}/{name}: {message}")]
    LeaderElection {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// What happened.
        message: String,
    },
    /// Setting up logging failed.
    #[error("setting up logging: {0}")]
    Logging(String),
}
