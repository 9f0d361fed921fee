//! image-automation-controller: reconciles `ImageRepository`, `ImagePolicy` and
//! `ImageUpdateAutomation` (`image.toolkit.fluxcd.io/v1`), the work of Flux's
//! image-reflector-controller and image-automation-controller in one binary.
//!
//! - [`reflector`]: ImageRepository scans the registry's tags (oci-client, `last=` pages,
//!   dockerconfigjson credentials, exclusion list) into the on-disk [`registry::TagStore`];
//!   ImagePolicy selects a tag from the store ([`policy`]) and writes `status.latestRef`. A new
//!   scan wakes the policies of the repository.
//! - [`automation`]: ImageUpdateAutomation clones the GitRepository, runs the [`setters`] over
//!   `spec.update.path`, commits with the [`template`] message and pushes. A policy whose
//!   `latestRef` moved wakes the automations of its namespace. Beyond Flux, [`pull_request`]
//!   opens a GitHub or Gitea pull request for the push branch when annotated to.
//!
//! The runtime gives the finalizer, the suspend gate, `observedGeneration`,
//! `lastHandledReconcileAt`, events and metrics.

pub mod automation;
pub mod policy;
pub mod pull_request;
pub mod reflector;
pub mod registry;
pub mod setters;
pub mod template;

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use sluice_api::image::{ImagePolicy, ImageRepository, ImageUpdateAutomation};
use sluice_runtime::{ReconcileError, Reconciler, Runtime, run_controller_with};

/// The controller name: event reporter, Lease `<name>-leader-election`, status field manager
/// `gotk-<name>`.
pub const CONTROLLER_NAME: &str = "image-automation-controller";

/// Flux's default for `--concurrent` in this controller.
pub const DEFAULT_CONCURRENT: &str = "4";

/// One-line description for `--help`.
pub const ABOUT: &str = "Reconciles Flux image automation: scans ImageRepositories, selects ImagePolicy tags and commits ImageUpdateAutomation updates";

/// Flags of this controller besides the runtime's.
#[derive(clap::Args, Debug, Clone)]
pub struct ImageArgs {
    /// Directory of the tag store (one JSON file per scanned image).
    #[arg(long, env = "STORAGE_PATH", default_value = "/data")]
    pub storage_path: PathBuf,
}

/// Errors of image-automation-controller reconciles.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reconcile step failed; the message names the object, field or server and the fix.
    #[error("{message}")]
    Failed {
        /// Flux's condition reason.
        reason: &'static str,
        /// The message for conditions and events.
        message: String,
        /// Whether only a spec change can help.
        stalled: bool,
        /// Look again after this delay instead of backing off (waiting for a dependency).
        retry_after: Option<Duration>,
    },
    /// Writing the status failed; retried with backoff.
    #[error("writing status")]
    Status(#[from] sluice_runtime::Error),
}

impl Error {
    /// A failure retried with backoff.
    pub fn retry(reason: &'static str, message: impl Into<String>) -> Error {
        Error::Failed { reason, message: message.into(), stalled: false, retry_after: None }
    }

    /// A failure that waits for a spec change.
    pub fn stall(reason: &'static str, message: impl Into<String>) -> Error {
        Error::Failed { reason, message: message.into(), stalled: true, retry_after: None }
    }

    /// A dependency that is not ready yet: looked at again after `after`.
    pub fn wait(reason: &'static str, message: impl Into<String>, after: Duration) -> Error {
        Error::Failed { reason, message: message.into(), stalled: false, retry_after: Some(after) }
    }
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Failed { reason, .. } => reason,
            Error::Status(_) => sluice_api::meta::reason::FAILED,
        }
    }

    fn is_stalled(&self) -> bool {
        match self {
            Error::Failed { stalled, .. } => *stalled,
            Error::Status(_) => false,
        }
    }
}

/// State shared by the reconcilers of this controller.
pub struct Context {
    /// The shared runtime: client, flags, events, metrics.
    pub runtime: Arc<Runtime>,
    /// Scanned tags.
    pub store: registry::TagStore,
}

/// Reads a Secret's data; `field` names the spec field that references it.
pub(crate) async fn secret_data(
    runtime: &Runtime,
    namespace: &str,
    name: &str,
    field: &str,
    reason: &'static str,
) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let api: Api<Secret> = Api::namespaced(runtime.client.clone(), namespace);
    let secret = api.get_opt(name).await.map_err(|err| {
        Error::retry(
            reason,
            format!(
                "reading Secret '{namespace}/{name}' ({field}): {}",
                sluice_runtime::conditions::error_message(&err)
            ),
        )
    })?;
    let secret = secret.ok_or_else(|| {
        Error::retry(
            reason,
            format!(
                "{field}: Secret '{namespace}/{name}' not found; create it or fix the reference"
            ),
        )
    })?;
    Ok(secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// Writes the status of a failed reconcile and turns the error into the next action.
pub(crate) async fn finish_failed<K: sluice_runtime::FluxObject>(
    status: sluice_runtime::StatusWriter<'_, K>,
    err: Error,
) -> Result<Action, Error> {
    match err {
        Error::Failed { stalled, retry_after, .. } => {
            status.finish(&sluice_runtime::Outcome::from_error(&err)).await?;
            if stalled {
                Ok(Action::await_change())
            } else if let Some(after) = retry_after {
                Ok(Action::requeue(after))
            } else {
                Err(err)
            }
        }
        Error::Status(_) => Err(err),
    }
}

impl Reconciler<ImageRepository> for Context {
    type Error = Error;

    fn reconcile(
        &self,
        obj: Arc<ImageRepository>,
    ) -> impl Future<Output = Result<Action, Error>> + Send {
        reflector::reconcile_image_repository(obj, self)
    }
}

impl Reconciler<ImagePolicy> for Context {
    type Error = Error;

    fn reconcile(
        &self,
        obj: Arc<ImagePolicy>,
    ) -> impl Future<Output = Result<Action, Error>> + Send {
        reflector::reconcile_image_policy(obj, self)
    }
}

impl Reconciler<ImageUpdateAutomation> for Context {
    type Error = Error;

    fn reconcile(
        &self,
        obj: Arc<ImageUpdateAutomation>,
    ) -> impl Future<Output = Result<Action, Error>> + Send {
        automation::reconcile(obj, self)
    }
}

fn hash_of(value: &impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The policies that use `repo`, woken when its scan result changes.
fn policies_of(store: &Store<ImagePolicy>, repo: &ImageRepository) -> Vec<ObjectRef<ImagePolicy>> {
    let namespace = repo.namespace().unwrap_or_default();
    let name = repo.name_any();
    store
        .state()
        .into_iter()
        .filter(|policy| {
            let reference = &policy.spec.image_repository_ref;
            let ref_namespace = reference
                .namespace
                .clone()
                .unwrap_or_else(|| policy.namespace().unwrap_or_default());
            reference.name == name && ref_namespace == namespace
        })
        .map(|policy| ObjectRef::from_obj(&*policy))
        .collect()
}

/// The automations of `policy`'s namespace that have not run with its current `latestRef`.
fn automations_of(
    store: &Store<ImageUpdateAutomation>,
    policy: &ImagePolicy,
) -> Vec<ObjectRef<ImageUpdateAutomation>> {
    let Some(latest) = policy.status.as_ref().and_then(|s| s.latest_ref.clone()) else {
        return Vec::new();
    };
    let namespace = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    store
        .state()
        .into_iter()
        .filter(|auto| auto.namespace().unwrap_or_default() == namespace)
        .filter(|auto| {
            auto.status
                .as_ref()
                .and_then(|s| s.observed_policies.as_ref())
                .and_then(|p| p.get(&name))
                != Some(&latest)
        })
        .map(|auto| ObjectRef::from_obj(&*auto))
        .collect()
}

/// Watches every kind of this controller until shutdown, then releases leadership.
///
/// # Errors
/// When leadership was lost or a controller could not start.
pub async fn run(runtime: Arc<Runtime>, args: ImageArgs) -> Result<(), sluice_runtime::Error> {
    let context = Arc::new(Context {
        runtime: runtime.clone(),
        store: registry::TagStore::new(args.storage_path),
    });
    let policy_runtime = runtime.clone();
    let automation_runtime = runtime.clone();
    let watched = futures::try_join!(
        run_controller_with::<ImageRepository, _, _>(runtime.clone(), context.clone(), |c| c),
        run_controller_with::<ImagePolicy, _, _>(runtime.clone(), context.clone(), move |c| {
            let store = c.store();
            // A new scan (revision, time or image) wakes the repository's policies.
            let scans = watcher(
                policy_runtime.watched_api::<ImageRepository>(),
                policy_runtime.watcher_config(),
            )
            .default_backoff()
            .applied_objects()
            .predicate_filter(
                |repo: &ImageRepository| {
                    let status = repo.status.as_ref()?;
                    let scan = status.last_scan_result.as_ref()?;
                    Some(hash_of(&(
                        &status.canonical_image_name,
                        &scan.revision,
                        scan.scan_time.as_ref().map(|t| t.0.to_string()),
                    )))
                },
                Default::default(),
            )
            .boxed();
            c.watches_stream(scans, move |repo| policies_of(&store, &repo))
        }),
        run_controller_with::<ImageUpdateAutomation, _, _>(
            runtime.clone(),
            context.clone(),
            move |c| {
                let store = c.store();
                c.watches(
                    automation_runtime.watched_api::<ImagePolicy>(),
                    automation_runtime.watcher_config(),
                    move |policy| automations_of(&store, &policy),
                )
            }
        ),
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
    fn errors_carry_reason_and_stall() {
        let error = Error::Status(sluice_runtime::Error::Unnamed { kind: "X".into() });
        assert_eq!(error.reason(), "Failed");
        assert!(!error.is_stalled());
        assert_eq!(
            sluice_runtime::conditions::error_message(&error),
            "writing status: X object has no metadata.name"
        );
        let stalled = Error::stall("ImageURLInvalid", "spec.image \"x:1\" must not contain a tag");
        assert_eq!((stalled.reason(), stalled.is_stalled()), ("ImageURLInvalid", true));
        let retried = Error::retry("AuthenticationFailed", "401");
        assert!(!retried.is_stalled());
    }
}
