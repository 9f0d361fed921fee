//! `run_controller`: one kind's watch, work queue and reconcile loop on kube's `Controller`.
//!
//! It wires what every Flux reconciler gets for free: the namespace restriction
//! (`--watch-all-namespaces`), the label selector (`--watch-label-selector`), concurrency
//! (`--concurrent`), the `finalizers.fluxcd.io` finalizer through `kube::runtime::finalizer`,
//! the suspend gate and `gotk_suspend_status`, the reconcile duration histogram, exponential
//! failure backoff for transient errors (none for stalled ones) and graceful shutdown.
//!
//! Triggers are filtered like Flux's `GenerationChangedPredicate` OR
//! `ReconcileRequestedPredicate`: only a new generation, a new
//! `reconcile.fluxcd.io/requestedAt` value, a finalizer change or deletion wakes an object, so
//! the controller's own status patches do not loop back into reconciles.

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{
    Action, Config as ControllerConfig, Controller, Error as ControllerError,
};
use kube::runtime::finalizer::{Error as FinalizerError, Event, finalizer};
use kube::runtime::reflector;
use kube::runtime::watcher;
use kube::runtime::{PredicateConfig, WatchStreamExt};
use kube::{Resource, ResourceExt};
use sluice_api::meta::{FINALIZER, RECONCILE_REQUEST_ANNOTATION};
use tokio::time::Instant;
use tracing::Instrument;

use super::Runtime;
use crate::conditions::error_message;
use crate::error::{Error, ReconcileError};
use crate::metrics::ObjectLabels;
use crate::object::FluxObject;

/// The reconcile logic of one kind.
///
/// The runtime calls [`Reconciler::reconcile`] only for objects that carry the finalizer and
/// are not suspended, and [`Reconciler::cleanup`] once when such an object is deleted; the
/// finalizer is removed after `cleanup` succeeds.
pub trait Reconciler<K: FluxObject>: Send + Sync + 'static {
    /// The reconciler's error; it knows its reason and whether it stalls.
    type Error: ReconcileError;

    /// Brings the world in line with `obj` and writes its status (through
    /// [`crate::status::StatusWriter`]); returns when to look again.
    fn reconcile(&self, obj: Arc<K>) -> impl Future<Output = Result<Action, Self::Error>> + Send;

    /// Releases what `obj` owns before it is deleted. The default owns nothing.
    fn cleanup(&self, obj: Arc<K>) -> impl Future<Output = Result<Action, Self::Error>> + Send {
        drop(obj);
        async { Ok(Action::await_change()) }
    }
}

/// The trigger predicate: a hash of what should wake an object up.
///
/// Covers `metadata.generation`, the `reconcile.fluxcd.io/requestedAt` annotation, the
/// finalizers and whether the object is being deleted; status and other metadata changes
/// hash the same.
pub fn trigger_hash<K: Resource>(obj: &K) -> Option<u64> {
    let meta = obj.meta();
    let mut hasher = DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.annotations.as_ref().and_then(|a| a.get(RECONCILE_REQUEST_ANNOTATION)).hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    Some(hasher.finish())
}

struct Context<R> {
    runtime: Arc<Runtime>,
    reconciler: Arc<R>,
    /// The controller name in metrics and logs: the lower-case kind.
    name: String,
}

fn object_labels<K: FluxObject>(obj: &K) -> ObjectLabels {
    ObjectLabels {
        kind: K::kind(&()).into_owned(),
        name: obj.name_any(),
        namespace: obj.namespace().unwrap_or_default(),
    }
}

fn object_key<K: FluxObject>(obj: &K) -> String {
    format!("{}/{}/{}", K::kind(&()), obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Watches kind `K` and reconciles it with `reconciler` until [`Runtime::shutdown`] fires.
///
/// # Errors
/// None today: watch failures are retried with backoff and logged. The `Result` leaves room
/// for setup checks.
pub async fn run_controller<K, R>(runtime: Arc<Runtime>, reconciler: Arc<R>) -> Result<(), Error>
where
    K: FluxObject,
    R: Reconciler<K>,
{
    run_controller_with(runtime, reconciler, |controller| controller).await
}

/// [`run_controller`] with extra triggers: `configure` receives kube's `Controller` and may add
/// `watches` of related kinds (e.g. a source whose new artifact must wake its consumers).
///
/// Use [`Runtime::watched_api`] and [`Runtime::watcher_config`] for the related watches so
/// they honour `--watch-all-namespaces` and `--watch-label-selector`, and
/// `Controller::store()` inside `configure` to map a related object to the objects that
/// reference it. Related triggers bypass the generation predicate: map only real changes.
///
/// # Errors
/// As [`run_controller`].
pub async fn run_controller_with<K, R, F>(
    runtime: Arc<Runtime>,
    reconciler: Arc<R>,
    configure: F,
) -> Result<(), Error>
where
    K: FluxObject,
    R: Reconciler<K>,
    F: FnOnce(Controller<K>) -> Controller<K>,
{
    let api: Api<K> = runtime.watched_api();
    let watcher_config = runtime.watcher_config();
    let name = K::kind(&()).to_lowercase();
    runtime.metrics.set_max_concurrent(&name, runtime.args.concurrent);
    tracing::info!(controller = %name, concurrent = runtime.args.concurrent,
        namespace = if runtime.args.watch_all_namespaces { "*" } else { runtime.namespace.as_str() },
        "starting controller");

    let (reader, writer) = reflector::store();
    // The cache keeps no managedFields: the reconcilers never read them from the cache, and
    // they are often the largest part of an object (Flux's TransformStripManagedFields).
    let trigger = watcher(api, watcher_config)
        .default_backoff()
        .modify(|obj: &mut K| obj.meta_mut().managed_fields = None)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger_hash::<K>, PredicateConfig::default());
    let shutdown = runtime.shutdown.clone();
    let context = Arc::new(Context { runtime: runtime.clone(), reconciler, name: name.clone() });
    configure(Controller::for_stream(trigger, reader))
        .with_config(ControllerConfig::default().concurrency(runtime.args.concurrent))
        .graceful_shutdown_on(async move { shutdown.wait().await })
        .run(reconcile::<K, R>, error_policy::<K, R>, context)
        .for_each(|result| {
            if let Err(error) = result {
                match error {
                    // Reconcile failures were logged by the error policy.
                    ControllerError::ReconcilerFailed(..) => {}
                    other => tracing::warn!(controller = %name, error = %error_message(&other),
                        "controller error"),
                }
            }
            std::future::ready(())
        })
        .await;
    tracing::info!(controller = %K::kind(&()).to_lowercase(), "controller stopped");
    Ok(())
}

async fn reconcile<K, R>(
    obj: Arc<K>,
    ctx: Arc<Context<R>>,
) -> Result<Action, FinalizerError<R::Error>>
where
    K: FluxObject,
    R: Reconciler<K>,
{
    let labels = object_labels(&*obj);
    let span = tracing::info_span!("reconcile", controller = %ctx.name, kind = %labels.kind,
        namespace = %labels.namespace, name = %labels.name);
    async {
        let started = Instant::now();
        let metrics = &ctx.runtime.metrics;
        metrics.add_active_workers(&ctx.name, 1);
        let api: Api<K> = match obj.namespace() {
            Some(namespace) => Api::namespaced(ctx.runtime.client.clone(), &namespace),
            None => Api::default_namespaced(ctx.runtime.client.clone()),
        };
        let deleting = obj.meta().deletion_timestamp.is_some();
        let result = finalizer(&api, FINALIZER, obj.clone(), |event| async {
            match event {
                Event::Apply(obj) => {
                    let suspended = obj.is_suspended();
                    metrics.set_suspended(&labels, suspended);
                    if suspended {
                        tracing::info!("Reconciliation is suspended for this object");
                        return Ok(Action::await_change());
                    }
                    ctx.reconciler.reconcile(obj).await
                }
                Event::Cleanup(obj) => ctx.reconciler.cleanup(obj).await,
            }
        })
        .await;
        metrics.add_active_workers(&ctx.name, -1);
        if deleting {
            metrics.remove_object(&labels);
        } else {
            metrics.observe_reconcile(&labels, started.elapsed());
        }
        match &result {
            Ok(_) => {
                ctx.runtime.backoff().reset(&object_key(&*obj));
                metrics.count_result(&ctx.name, "success");
            }
            Err(_) => metrics.count_result(&ctx.name, "error"),
        }
        result
    }
    .instrument(span)
    .await
}

fn error_policy<K, R>(obj: Arc<K>, error: &FinalizerError<R::Error>, ctx: Arc<Context<R>>) -> Action
where
    K: FluxObject,
    R: Reconciler<K>,
{
    let (stalled, reason) = match error {
        FinalizerError::ApplyFailed(inner) | FinalizerError::CleanupFailed(inner) => {
            (inner.is_stalled(), inner.reason())
        }
        _ => (false, sluice_api::meta::reason::FAILED),
    };
    let labels = object_labels(&*obj);
    let message = error_message(error);
    if stalled {
        // A stalled error waits for a spec change, which the generation predicate delivers.
        tracing::error!(controller = %ctx.name, kind = %labels.kind, namespace = %labels.namespace,
            name = %labels.name, reason, error = %message, "reconciliation stalled");
        return Action::await_change();
    }
    let delay = ctx.runtime.backoff().next_delay(&object_key(&*obj));
    ctx.runtime.metrics.count_retry(&ctx.name, delay);
    tracing::error!(controller = %ctx.name, kind = %labels.kind, namespace = %labels.namespace,
        name = %labels.name, reason, error = %message, retry_in = ?delay, "reconciliation failed");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::api::ObjectMeta;
    use sluice_api::source::GitRepository;

    use super::*;

    fn repo(generation: i64) -> GitRepository {
        let mut obj = GitRepository::new("podinfo", Default::default());
        obj.metadata = ObjectMeta {
            name: Some("podinfo".into()),
            namespace: Some("flux-system".into()),
            generation: Some(generation),
            ..Default::default()
        };
        obj
    }

    #[test]
    fn triggers_follow_generation_requests_finalizers_and_deletion() {
        let base = repo(1);
        let hash = trigger_hash(&base);

        let mut status_only = base.clone();
        status_only.status = Some(Default::default());
        status_only.metadata.resource_version = Some("42".into());
        status_only.metadata.annotations =
            Some(BTreeMap::from([("unrelated".to_string(), "x".to_string())]));
        assert_eq!(trigger_hash(&status_only), hash, "status and other metadata do not trigger");

        type Change = Box<dyn Fn(&mut GitRepository)>;
        let cases: Vec<(&str, Change)> = vec![
            ("generation", Box::new(|o| o.metadata.generation = Some(2))),
            (
                "requestedAt",
                Box::new(|o| {
                    o.metadata.annotations = Some(BTreeMap::from([(
                        RECONCILE_REQUEST_ANNOTATION.to_string(),
                        "2026-11-23T10:00:00Z".to_string(),
                    )]))
                }),
            ),
            ("finalizer", Box::new(|o| o.metadata.finalizers = Some(vec![FINALIZER.to_string()]))),
            (
                "deletion",
                Box::new(|o| {
                    o.metadata.deletion_timestamp =
                        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                            jiff::Timestamp::from_second(1).unwrap(),
                        ))
                }),
            ),
        ];
        for (what, change) in cases {
            let mut changed = base.clone();
            change(&mut changed);
            assert_ne!(trigger_hash(&changed), hash, "{what} must trigger");
        }
    }

    #[test]
    fn keys_and_labels() {
        let obj = repo(1);
        assert_eq!(object_key(&obj), "GitRepository/flux-system/podinfo");
        let labels = object_labels(&obj);
        assert_eq!((labels.kind.as_str(), labels.name.as_str()), ("GitRepository", "podinfo"));
    }
}
