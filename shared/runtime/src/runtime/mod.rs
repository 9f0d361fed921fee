//! Controller setup: flags, logging, probes, metrics, leader election, shutdown and jitter.
//!
//! A binary parses its flags (with [`RuntimeArgs`] flattened in), calls [`init_logging`], then
//! [`Runtime::start`], which builds the client, serves `/healthz`, `/readyz` and `/metrics`,
//! installs signal handling and, when enabled, waits for leadership. It then runs one
//! [`run_controller`] per kind and ends with [`Runtime::finish`].

mod backoff;
mod controller;
mod flags;
mod jitter;
mod leader;
mod logging;
mod probes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

pub use backoff::{Backoff, backoff_delay};
pub use controller::{Reconciler, run_controller, run_controller_with, trigger_hash};
pub use flags::{LogEncoding, LogLevel, RuntimeArgs, parse_args, parse_args_from};
pub use jitter::{jitter, jittered};
pub use leader::{
    Decision, LeaderElectionConfig, LeaderElector, Observation, RecordKey, decide, desired_spec,
    released_spec,
};
pub use probes::{health_router, listen_address, metrics_router, serve};

use crate::error::Error;
use crate::events::{EventForwarder, EventRecorder};
use crate::metrics::Metrics;

/// Installs the global log subscriber from the `--log-level` and `--log-encoding` flags.
///
/// # Errors
/// When a subscriber is already installed or `RUST_LOG` is invalid.
pub fn init_logging(args: &RuntimeArgs) -> Result<(), Error> {
    logging::init_logging(args.log_level, args.log_encoding)
}

/// A shutdown signal shared by every task of the process.
#[derive(Clone, Debug)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Shutdown { sender: Arc::new(watch::channel(false).0) }
    }

    /// Fires the signal; every [`Shutdown::wait`] returns.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// Waits until the signal fires.
    pub async fn wait(&self) {
        let mut receiver = self.sender.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = receiver.wait_for(|fired| *fired).await;
    }

    /// Fires the signal on SIGTERM or Ctrl-C.
    pub fn on_signals(&self) {
        let shutdown = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received, stopping");
            shutdown.trigger();
        });
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the process");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Everything a controller binary shares between its reconcilers.
pub struct Runtime {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// The controller name, e.g. `source-controller`; status patches use `gotk-<controller>`.
    pub controller: &'static str,
    /// The parsed common flags.
    pub args: RuntimeArgs,
    /// The metrics registry served on `--metrics-addr`.
    pub metrics: Arc<Metrics>,
    /// The event recorder (Kubernetes Events and `--events-addr` forwarding).
    pub events: EventRecorder,
    /// The namespace this process runs in (RUNTIME_NAMESPACE, else the client's default).
    pub namespace: String,
    /// Fires on SIGTERM/Ctrl-C or when leadership is lost.
    pub shutdown: Shutdown,
    backoff: Backoff,
    ready: Arc<AtomicBool>,
    leadership: Mutex<Option<JoinHandle<Result<(), Error>>>>,
}

impl Runtime {
    /// Connects to the cluster (kubeconfig or in-cluster), serves probes and metrics, handles
    /// signals and, with `--enable-leader-election`, blocks until this process leads.
    ///
    /// # Errors
    /// Invalid flags, no usable cluster configuration, or a listen address already in use.
    pub async fn start(controller: &'static str, args: RuntimeArgs) -> Result<Arc<Self>, Error> {
        // Flag mistakes are reported before any cluster access.
        args.validate()?;
        let client =
            kube::Client::try_default().await.map_err(|error| Error::Client(Box::new(error)))?;
        Self::start_with_client(controller, args, client).await
    }

    /// [`Runtime::start`] with a client built by the caller (tests, custom configs).
    ///
    /// # Errors
    /// As [`Runtime::start`].
    pub async fn start_with_client(
        controller: &'static str,
        args: RuntimeArgs,
        client: kube::Client,
    ) -> Result<Arc<Self>, Error> {
        args.validate()?;
        let shutdown = Shutdown::new();
        shutdown.on_signals();
        let metrics = Arc::new(Metrics::new());
        let ready = Arc::new(AtomicBool::new(false));
        if let Some(addr) = listen_address(&args.metrics_addr) {
            serve("metrics", &addr, metrics_router(metrics.clone()), shutdown.clone()).await?;
        }
        if let Some(addr) = listen_address(&args.health_addr) {
            serve("health probes", &addr, health_router(ready.clone()), shutdown.clone()).await?;
        }
        let namespace = std::env::var("RUNTIME_NAMESPACE")
            .ok()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| client.default_namespace().to_string());
        let instance = hostname();
        let forwarder = match args.events_address() {
            Some(url) => Some(EventForwarder::new(url).map_err(|error| Error::Flag {
                flag: "events-addr",
                message: format!("cannot build the HTTP client: {error}"),
            })?),
            None => None,
        };
        let events = EventRecorder::new(controller, &instance, Some(client.clone()), forwarder);
        let backoff = Backoff::new(args.min_retry_delay, args.max_retry_delay);
        let runtime = Arc::new(Runtime {
            client,
            controller,
            args,
            metrics,
            events,
            namespace,
            shutdown,
            backoff,
            ready,
            leadership: Mutex::new(None),
        });
        // Ready before leading, as controller-runtime's ping check: a standby replica that
        // reported unready would block a rolling update that waits for it.
        runtime.ready.store(true, Ordering::Relaxed);
        if runtime.args.enable_leader_election {
            runtime.lead(&instance).await?;
        }
        Ok(runtime)
    }

    /// Acquires the `<controller>-leader-election` Lease and keeps renewing it in the
    /// background; losing it fires [`Runtime::shutdown`].
    async fn lead(&self, instance: &str) -> Result<(), Error> {
        let config = LeaderElectionConfig {
            lease_duration: self.args.leader_election_lease_duration,
            renew_deadline: self.args.leader_election_renew_deadline,
            retry_period: self.args.leader_election_retry_period,
            release_on_cancel: self.args.leader_election_release_on_cancel,
        };
        let name = format!("{}-leader-election", self.controller);
        let identity = format!("{instance}_{:016x}", rand::random::<u64>());
        let mut elector =
            LeaderElector::new(self.client.clone(), &self.namespace, &name, &identity, config);
        if !elector.acquire(&self.shutdown).await? {
            return Ok(());
        }
        let shutdown = self.shutdown.clone();
        let handle = tokio::spawn(async move {
            let result = elector.hold(&shutdown).await;
            if let Err(error) = &result {
                tracing::error!(error = %error, "stopping: leadership lost");
                shutdown.trigger();
            }
            result
        });
        *self.leadership.lock().await = Some(handle);
        Ok(())
    }

    /// Waits for the background tasks after shutdown (releasing the lease when configured).
    ///
    /// # Errors
    /// When leadership was lost, so the process exits with an error as controller-runtime does.
    pub async fn finish(&self) -> Result<(), Error> {
        self.shutdown.trigger();
        self.ready.store(false, Ordering::Relaxed);
        let handle = self.leadership.lock().await.take();
        if let Some(handle) = handle {
            match handle.await {
                Ok(result) => result?,
                Err(error) => tracing::error!(%error, "leader election task failed"),
            }
        }
        Ok(())
    }

    /// The delay until the next periodic reconcile: `interval` with the configured jitter.
    pub fn requeue_interval(&self, interval: Duration) -> Duration {
        jittered(interval, self.args.interval_jitter_percentage)
    }

    /// The action after a successful reconcile: look again after the jittered `interval`, or
    /// only on change when the kind has no interval.
    pub fn next_action(&self, interval: Option<Duration>) -> kube::runtime::controller::Action {
        match interval {
            Some(interval) if !interval.is_zero() => {
                kube::runtime::controller::Action::requeue(self.requeue_interval(interval))
            }
            _ => kube::runtime::controller::Action::await_change(),
        }
    }

    /// An `Api` over the namespaces this process watches: all of them, or only
    /// [`Runtime::namespace`] with `--watch-all-namespaces=false`.
    pub fn watched_api<W>(&self) -> kube::Api<W>
    where
        W: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        W::DynamicType: Default,
    {
        if self.args.watch_all_namespaces {
            kube::Api::all(self.client.clone())
        } else {
            kube::Api::namespaced(self.client.clone(), &self.namespace)
        }
    }

    /// The watcher configuration with `--watch-label-selector` applied.
    pub fn watcher_config(&self) -> kube::runtime::watcher::Config {
        // The initial list (and every re-list) is served from the API server's watch cache
        // (`resourceVersion=0`, unpaginated: kube drops `resourceVersion=0` from a paged list),
        // as client-go's reflectors do, instead of paging through etcd.
        let mut config = kube::runtime::watcher::Config::default().any_semantic();
        config.page_size = None;
        match self.args.label_selector() {
            Some(selector) => config.labels(selector),
            None => config,
        }
    }

    /// The failure backoff of this process.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// Checks a reference from an object in `namespace` to `ref_namespace` against
    /// `--no-cross-namespace-refs`.
    ///
    /// # Errors
    /// A message for the `AccessDenied` reason when the reference crosses namespaces and the
    /// flag forbids it.
    pub fn check_namespace_ref(
        &self,
        namespace: &str,
        ref_namespace: Option<&str>,
    ) -> Result<(), String> {
        match ref_namespace {
            Some(other) if other != namespace && self.args.no_cross_namespace_refs => Err(format!(
                "cannot access objects in namespace {other:?} from namespace {namespace:?}: \
                 cross-namespace references are disabled (--no-cross-namespace-refs)"
            )),
            _ => Ok(()),
        }
    }
}

/// The pod hostname (HOSTNAME), used as event reporting instance and lease identity prefix.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn shutdown_wakes_every_waiter() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_triggered());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let shutdown = shutdown.clone();
                tokio::spawn(async move { shutdown.wait().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.trigger();
        for waiter in waiters {
            waiter.await.unwrap();
        }
        // Waiting after the fact returns at once.
        shutdown.wait().await;
        assert!(shutdown.is_triggered());
    }
}
