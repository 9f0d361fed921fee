//! notification-controller: the event server, Alerts and Providers, and webhook Receivers.
//!
//! - [`event`], [`ratelimit`], [`alert`]: the event API, rate limiting of identical events,
//!   which Alerts an event goes to and with which metadata (plus transition-only delivery);
//! - [`providers`]: the request each Provider type makes (Slack, Teams, generic, GitHub, …);
//! - [`delivery`]: per-Provider queues that retry with backoff and report every result;
//! - [`receiver`]: webhook paths and payload validation per Receiver type;
//! - [`server`]: the two HTTP servers and their Kubernetes reads and writes.
//!
//! Provider and Alert (v1beta3) have no status and are read when events arrive, as in Flux;
//! only Receiver is reconciled (Ready and `status.webhookPath`).

pub mod alert;
pub mod delivery;
pub mod event;
pub mod providers;
pub mod ratelimit;
pub mod receiver;
pub mod server;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use sluice_api::meta::reason;
use sluice_api::notification::Receiver;
use sluice_runtime::{Outcome, ReconcileError, Reconciler, Runtime, StatusWriter, run_controller};

pub use server::{EventServer, ReceiverServer, ServerConfig};

/// The controller name: event reporter, Lease `<name>-leader-election`, status field manager
/// `gotk-<name>`.
pub const CONTROLLER_NAME: &str = "notification-controller";

/// Flux's default for `--concurrent` in this controller.
pub const DEFAULT_CONCURRENT: &str = "4";

/// One-line description for `--help`.
pub const ABOUT: &str = "Reconciles Flux Receivers and dispatches events to notification Providers";

/// The Receiver reconcile interval when `spec.interval` is unset.
pub const DEFAULT_RECEIVER_INTERVAL: Duration = Duration::from_secs(600);

/// Errors of Receiver reconciles.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the status failed; retried with backoff.
    #[error("writing status")]
    Status(#[from] sluice_runtime::Error),
    /// The token Secret is missing or has no `token` key; retried, as the Secret may appear.
    #[error("{0}")]
    TokenNotFound(String),
    /// The spec cannot work until it changes.
    #[error("Reconciliation failed terminally due to configuration error: {0}")]
    InvalidSpec(String),
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Status(_) => reason::FAILED,
            Error::TokenNotFound(_) => "TokenNotFound",
            Error::InvalidSpec(_) => "ValidationFailed",
        }
    }

    fn is_stalled(&self) -> bool {
        matches!(self, Error::InvalidSpec(_))
    }
}

/// State shared by the reconcilers of this controller.
pub struct Context {
    /// The shared runtime: client, flags, events, metrics.
    pub runtime: Arc<Runtime>,
}

/// Checks the Receiver's spec and reads its token; returns the webhook path.
async fn webhook_path_of(obj: &Receiver, ctx: &Context) -> Result<String, Error> {
    if !receiver::SUPPORTED_TYPES.contains(&obj.spec.type_.as_str()) {
        return Err(Error::InvalidSpec(format!(
            "spec.type {:?} is not supported by this build; supported types: {}",
            obj.spec.type_,
            receiver::SUPPORTED_TYPES.join(", ")
        )));
    }
    if obj.spec.resource_filter.as_deref().is_some_and(|f| !f.is_empty()) {
        return Err(Error::InvalidSpec(
            "spec.resourceFilter (CEL) is not supported by this build; remove it".into(),
        ));
    }
    let namespace = obj.namespace().unwrap_or_default();
    let secret_name = &obj.spec.secret_ref.name;
    let secrets: Api<Secret> = Api::namespaced(ctx.runtime.client.clone(), &namespace);
    let secret = secrets.get(secret_name).await.map_err(|error| {
        Error::TokenNotFound(format!(
            "unable to read token from secret '{namespace}/{secret_name}' error: {}",
            sluice_runtime::conditions::error_message(&error)
        ))
    })?;
    let token = secret
        .data
        .as_ref()
        .and_then(|data| data.get("token"))
        .map(|token| String::from_utf8_lossy(&token.0).into_owned())
        .ok_or_else(|| {
            Error::TokenNotFound(format!(
                "invalid '{namespace}/{secret_name}' secret data: required fields 'token'"
            ))
        })?;
    Ok(receiver::webhook_path(&token, &obj.name_any(), &namespace))
}

/// Reconciles a Receiver: `Ready` with the webhook path, or why not.
///
/// # Errors
/// When the status cannot be written.
pub async fn reconcile_receiver(obj: Arc<Receiver>, ctx: &Context) -> Result<Action, Error> {
    let runtime = &ctx.runtime;
    let mut status =
        StatusWriter::new(&*obj, runtime.client.clone(), runtime.controller, &runtime.events);
    let interval = match obj.spec.interval.as_deref() {
        None => DEFAULT_RECEIVER_INTERVAL,
        Some(raw) => match sluice_runtime::object::parse_go_duration(raw) {
            Ok(interval) => interval,
            Err(message) => {
                let error = Error::InvalidSpec(format!("invalid spec.interval {raw:?}: {message}"));
                status.finish(&Outcome::from_error(&error)).await?;
                return Ok(Action::await_change());
            }
        },
    };
    match webhook_path_of(&obj, ctx).await {
        Ok(path) => {
            let message = format!("Receiver initialized for path: {path}");
            status.set_field("webhookPath", &path);
            status.finish(&Outcome::Ready { reason: reason::SUCCEEDED.into(), message }).await?;
            Ok(runtime.next_action(Some(interval)))
        }
        Err(error) => {
            // Without a token there is no valid path; a stale one must stop answering.
            status.set_field("webhookPath", "");
            let stalled = error.is_stalled();
            status.finish(&Outcome::from_error(&error)).await?;
            if stalled {
                Ok(Action::await_change())
            } else {
                Ok(Action::requeue(runtime.backoff().next_delay(&format!(
                    "Receiver/{}/{}",
                    obj.namespace().unwrap_or_default(),
                    obj.name_any()
                ))))
            }
        }
    }
}

impl Reconciler<Receiver> for Context {
    type Error = Error;

    fn reconcile(&self, obj: Arc<Receiver>) -> impl Future<Output = Result<Action, Error>> + Send {
        reconcile_receiver(obj, self)
    }
}

/// Where the servers listen; `None` disables one.
#[derive(Clone, Debug, Default)]
pub struct Addresses {
    /// The event server (`--events-addr`).
    pub events: Option<String>,
    /// The webhook receiver (`--receiverAddr`).
    pub receiver: Option<String>,
}

/// The bound addresses of the started servers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bound {
    /// The event server.
    pub events: Option<std::net::SocketAddr>,
    /// The webhook receiver.
    pub receiver: Option<std::net::SocketAddr>,
}

/// Starts the event and receiver servers (stopped on the runtime's shutdown).
///
/// # Errors
/// When an address cannot be bound.
pub async fn start_servers(
    runtime: &Arc<Runtime>,
    addresses: &Addresses,
    config: &ServerConfig,
) -> Result<Bound, sluice_runtime::Error> {
    let mut bound = Bound::default();
    if let Some(addr) = &addresses.events {
        let router = EventServer::new(runtime.clone(), config).router();
        bound.events = Some(
            sluice_runtime::runtime::serve("event server", addr, router, runtime.shutdown.clone())
                .await?,
        );
    }
    if let Some(addr) = &addresses.receiver {
        let router = ReceiverServer::new(runtime.clone()).router();
        bound.receiver = Some(
            sluice_runtime::runtime::serve(
                "webhook receiver",
                addr,
                router,
                runtime.shutdown.clone(),
            )
            .await?,
        );
    }
    Ok(bound)
}

/// Serves events and webhooks and reconciles Receivers until shutdown, then releases
/// leadership.
///
/// # Errors
/// When a server cannot bind, leadership was lost or the controller could not start.
pub async fn run(
    runtime: Arc<Runtime>,
    addresses: Addresses,
    config: ServerConfig,
) -> Result<(), sluice_runtime::Error> {
    if let Err(error) = start_servers(&runtime, &addresses, &config).await {
        runtime.shutdown.trigger();
        let _ = runtime.finish().await;
        return Err(error);
    }
    let context = Arc::new(Context { runtime: runtime.clone() });
    let watched = run_controller::<Receiver, _>(runtime.clone(), context).await;
    let finished = runtime.finish().await;
    watched?;
    finished
}

/// Turns `--events-addr` into a listen address: Flux's `:9090`, `host:port`, or a URL such as
/// `http://localhost:9090/` (the form other controllers post to), whose host and port are used.
pub fn events_listen_address(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let host_port = match trimmed.split_once("://") {
        Some((_, rest)) => rest.split('/').next().unwrap_or_default(),
        None => trimmed,
    };
    sluice_runtime::runtime::listen_address(host_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_know_how_they_surface() {
        let error = Error::Status(sluice_runtime::Error::Unnamed { kind: "X".into() });
        assert_eq!(error.reason(), "Failed");
        assert!(!error.is_stalled());
        assert!(!Error::TokenNotFound("x".into()).is_stalled());
        assert_eq!(Error::TokenNotFound("x".into()).reason(), "TokenNotFound");
        assert!(Error::InvalidSpec("x".into()).is_stalled());
    }

    #[test]
    fn events_addresses() {
        for (raw, expected) in [
            (":9090", Some("0.0.0.0:9090")),
            ("127.0.0.1:9090", Some("127.0.0.1:9090")),
            ("http://localhost:9090/", Some("localhost:9090")),
            ("http://127.0.0.1:9999", Some("127.0.0.1:9999")),
            ("", None),
            ("0", None),
        ] {
            assert_eq!(events_listen_address(raw).as_deref(), expected, "{raw}");
        }
    }
}
