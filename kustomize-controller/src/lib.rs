//! kustomize-controller: reconciles `Kustomization` (`kustomize.toolkit.fluxcd.io/v1`).
//!
//! The runtime gives the finalizer, the suspend gate, `observedGeneration` and
//! `lastHandledReconcileAt`; [`kustomization`] fetches the source artifact, builds it with the
//! kustomize engine ([`build`]), server-side applies it in stages, prunes what left the source,
//! checks health and writes the status.

pub mod build;
pub mod health;
pub mod impersonate;
pub mod kustomization;

use std::future::Future;
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use sluice_api::kustomize::Kustomization;
use sluice_api::source::{Bucket, GitRepository, OCIRepository};
use sluice_runtime::{Reconciler, Runtime, run_controller_with};

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

/// How long a resolved kind is trusted before discovery is asked again (a CRD may be deleted).
pub const KIND_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

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
    let context = Arc::new(Context {
        runtime: runtime.clone(),
        fetcher,
        kinds: sluice_ssa::KindCache::new(KIND_CACHE_TTL),
    });
    let watch_runtime = runtime.clone();
    let watched = run_controller_with::<Kustomization, _, _>(runtime.clone(), context, move |c| {
        let store = c.store();
        let config = watch_runtime.watcher_config();
        c.watches(
            watch_runtime.watched_api::<GitRepository>(),
            config.clone(),
            consumers_of(store.clone(), |s: &GitRepository| s.status.as_ref()?.artifact.clone()),
        )
        .watches(
            watch_runtime.watched_api::<OCIRepository>(),
            config.clone(),
            consumers_of(store.clone(), |s: &OCIRepository| s.status.as_ref()?.artifact.clone()),
        )
        .watches(
            watch_runtime.watched_api::<Bucket>(),
            config,
            consumers_of(store, |s: &Bucket| s.status.as_ref()?.artifact.clone()),
        )
    })
    .await;
    let finished = runtime.finish().await;
    watched?;
    finished
}

/// The watch mapper of a source kind: a source's new artifact wakes its consumers.
fn consumers_of<S>(
    store: Store<Kustomization>,
    artifact: fn(&S) -> Option<sluice_api::meta::Artifact>,
) -> impl Fn(S) -> Vec<ObjectRef<Kustomization>> + Send + Sync + Clone + 'static
where
    S: kube::Resource<DynamicType = ()> + 'static,
{
    move |source: S| {
        let revision = artifact(&source).map(|a| a.revision);
        let kind = S::kind(&());
        consumers(
            &store,
            &kind,
            &source.name_any(),
            &source.namespace().unwrap_or_default(),
            revision,
        )
    }
}

/// The Kustomizations that use a source and have not attempted its current revision yet, so a
/// new artifact wakes exactly its consumers (Flux's source index and map function).
fn consumers(
    store: &Store<Kustomization>,
    kind: &str,
    name: &str,
    namespace: &str,
    revision: Option<String>,
) -> Vec<ObjectRef<Kustomization>> {
    let Some(revision) = revision else { return Vec::new() };
    store
        .state()
        .into_iter()
        .filter(|ks| {
            let source = &ks.spec.source_ref;
            let source_namespace =
                source.namespace.clone().unwrap_or_else(|| ks.namespace().unwrap_or_default());
            source.kind == kind
                && source.name == name
                && source_namespace == namespace
                && ks.status.as_ref().and_then(|s| s.last_attempted_revision.as_deref())
                    != Some(revision.as_str())
        })
        .map(|ks| ObjectRef::from_obj(&*ks))
        .collect()
}
