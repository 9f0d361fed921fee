//! The Kustomization reconcile: source → dependencies → fetch → build → apply → prune →
//! health → status, in the shape of Flux's kustomize-controller.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::runtime::controller::Action;
use serde_json::Value;
use sluice_api::kustomize::{
    FIELD_MANAGER, Kustomization, KustomizationSpec, NAME_LABEL, NAMESPACE_LABEL, ResourceInventory,
};
use sluice_api::meta::{Artifact, HISTORY_MAX_SIZE, HistorySnapshot, reason};
use sluice_api::source::{Bucket, GitRepository, OCIRepository};
use sluice_runtime::object::parse_go_duration;
use sluice_runtime::{Outcome, ReconcileError, Runtime, StatusWriter};
use sluice_ssa::{ApplyOptions, ChangeSet, ObjectId, ResourceManager};

use crate::build::{self, BuildError};

/// Why a Kustomization reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source object does not exist.
    #[error("{kind} '{namespace}/{name}' not found")]
    SourceNotFound {
        /// Source kind.
        kind: String,
        /// Source namespace.
        namespace: String,
        /// Source name.
        name: String,
    },
    /// The source has no artifact yet.
    #[error("source artifact not found, retrying in {retry:?}")]
    ArtifactNotReady {
        /// When the next attempt happens.
        retry: Duration,
    },
    /// A dependency is not ready.
    #[error("dependency '{0}' is not ready")]
    DependencyNotReady(String),
    /// A cross-namespace reference was refused.
    #[error("{0}")]
    AccessDenied(String),
    /// The spec is invalid.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// Downloading the artifact failed.
    #[error("failed to download artifact")]
    Fetch(#[source] sluice_artifact::FetchError),
    /// Building the manifests failed.
    #[error("building manifests of revision {revision}")]
    Build {
        /// The artifact revision.
        revision: String,
        /// The cause.
        #[source]
        source: BuildError,
    },
    /// Reading substitution variables failed.
    #[error("{kind} '{namespace}/{name}' for postBuild.substituteFrom not found")]
    SubstituteFromNotFound {
        /// ConfigMap or Secret.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Applying failed.
    #[error("apply failed")]
    Apply(#[source] sluice_ssa::Error),
    /// Pruning failed.
    #[error("prune failed")]
    Prune(#[source] sluice_ssa::Error),
    /// Health checks failed.
    #[error("health check failed")]
    Health(#[source] sluice_ssa::Error),
    /// The reconcile took longer than `spec.timeout`.
    #[error("reconciliation timed out after {0:?}")]
    Timeout(Duration),
    /// The Kubernetes API refused a read.
    #[error("reading {what}: {message}")]
    Kube {
        /// What was read.
        what: String,
        /// The API server's message.
        message: String,
    },
    /// The keys of `spec.decryption` could not be read.
    #[error("{0}")]
    DecryptionKeys(String),
    /// The client to apply with (impersonation, kubeConfig) could not be built.
    #[error("{0}")]
    Client(String),
    /// Local IO failed.
    #[error("creating a temporary directory")]
    TempDir(#[source] std::io::Error),
    /// Writing the status failed.
    #[error("writing status")]
    Status(#[from] sluice_runtime::Error),
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::SourceNotFound { .. } | Error::ArtifactNotReady { .. } | Error::Fetch(_) => {
                reason::ARTIFACT_FAILED
            }
            Error::DependencyNotReady(_) => reason::DEPENDENCY_NOT_READY,
            Error::AccessDenied(_) => reason::ACCESS_DENIED,
            Error::InvalidSpec(_)
            | Error::Build { .. }
            | Error::SubstituteFromNotFound { .. }
            | Error::DecryptionKeys(_) => reason::BUILD_FAILED,
            Error::Prune(_) => reason::PRUNE_FAILED,
            Error::Health(_) | Error::Timeout(_) => reason::HEALTH_CHECK_FAILED,
            Error::Apply(_)
            | Error::Kube { .. }
            | Error::Client(_)
            | Error::TempDir(_)
            | Error::Status(_) => reason::RECONCILIATION_FAILED,
        }
    }

    fn is_stalled(&self) -> bool {
        matches!(self, Error::AccessDenied(_) | Error::InvalidSpec(_))
    }
}

/// What a successful reconcile applied.
struct Applied {
    revision: String,
    /// `sha256:` of the applied manifests (the history digest).
    digest: String,
    origin_revision: Option<String>,
    inventory: ResourceInventory,
    change_set: ChangeSet,
}

fn duration(field: &str, raw: Option<&str>, default: Duration) -> Result<Duration, Error> {
    match raw {
        None => Ok(default),
        Some(raw) => parse_go_duration(raw)
            .map_err(|message| Error::InvalidSpec(format!("spec.{field} {raw:?}: {message}"))),
    }
}

/// `spec.timeout`, defaulting to `interval - 30s` with a floor of 30s as Flux's `GetTimeout`.
fn timeout(spec: &KustomizationSpec, interval: Duration) -> Result<Duration, Error> {
    let default = interval.saturating_sub(Duration::from_secs(30)).max(Duration::from_secs(30));
    duration("timeout", spec.timeout.as_deref(), default)
}

fn kube_error(what: impl Into<String>, err: kube::Error) -> Error {
    let message = match &err {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    };
    Error::Kube { what: what.into(), message }
}

/// Reads the artifact of the source a Kustomization points at.
async fn source_artifact(obj: &Kustomization, runtime: &Runtime) -> Result<Artifact, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let source = &obj.spec.source_ref;
    runtime
        .check_namespace_ref(&namespace, source.namespace.as_deref())
        .map_err(Error::AccessDenied)?;
    let source_namespace = source.namespace.clone().unwrap_or_else(|| namespace.clone());
    let resource = match source.kind.as_str() {
        "GitRepository" => ApiResource::erase::<GitRepository>(&()),
        "OCIRepository" => ApiResource::erase::<OCIRepository>(&()),
        "Bucket" => ApiResource::erase::<Bucket>(&()),
        other => {
            return Err(Error::InvalidSpec(format!(
                "spec.sourceRef.kind {other:?} is not supported: use GitRepository, OCIRepository or Bucket"
            )));
        }
    };
    let api: Api<DynamicObject> =
        Api::namespaced_with(runtime.client.clone(), &source_namespace, &resource);
    let found = api
        .get_opt(&source.name)
        .await
        .map_err(|err| kube_error(format!("{} {}", source.kind, source.name), err))?;
    let Some(found) = found else {
        return Err(Error::SourceNotFound {
            kind: source.kind.clone(),
            namespace: source_namespace,
            name: source.name.clone(),
        });
    };
    let artifact = found.data["status"]["artifact"].clone();
    serde_json::from_value(artifact)
        .map_err(|_| Error::ArtifactNotReady { retry: runtime.args.requeue_dependency })
}

/// Checks `spec.dependsOn`: each Kustomization must be Ready for its current generation and,
/// when it uses the same source, have applied the same revision.
async fn check_dependencies(
    obj: &Kustomization,
    runtime: &Runtime,
    revision: &str,
) -> Result<(), Error> {
    let namespace = obj.namespace().unwrap_or_default();
    for dependency in obj.spec.depends_on.iter().flatten() {
        runtime
            .check_namespace_ref(&namespace, dependency.namespace.as_deref())
            .map_err(Error::AccessDenied)?;
        let dep_namespace = dependency.namespace.clone().unwrap_or_else(|| namespace.clone());
        let api: Api<Kustomization> = Api::namespaced(runtime.client.clone(), &dep_namespace);
        let id = format!("{dep_namespace}/{}", dependency.name);
        let Some(dep) = api.get_opt(&dependency.name).await.map_err(|err| kube_error(&id, err))?
        else {
            return Err(Error::DependencyNotReady(id));
        };
        let status = dep.status.clone().unwrap_or_default();
        let ready =
            status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
        let observed = status.observed_generation == dep.metadata.generation;
        let same_source = dep.spec.source_ref.kind == obj.spec.source_ref.kind
            && dep.spec.source_ref.name == obj.spec.source_ref.name
            && dep.spec.source_ref.namespace.clone().unwrap_or(dep_namespace.clone())
                == obj.spec.source_ref.namespace.clone().unwrap_or(namespace.clone());
        let revision_ok = !same_source || status.last_applied_revision.as_deref() == Some(revision);
        if !(ready && observed && revision_ok) {
            return Err(Error::DependencyNotReady(id));
        }
    }
    Ok(())
}

/// Collects `postBuild` variables: `substituteFrom` in order, then `substitute` on top.
async fn substitution_vars(
    obj: &Kustomization,
    runtime: &Runtime,
) -> Result<BTreeMap<String, String>, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let mut vars = BTreeMap::new();
    let Some(post_build) = &obj.spec.post_build else { return Ok(vars) };
    for reference in post_build.substitute_from.iter().flatten() {
        let optional = reference.optional.unwrap_or(false);
        let not_found = || Error::SubstituteFromNotFound {
            kind: reference.kind.clone(),
            namespace: namespace.clone(),
            name: reference.name.clone(),
        };
        let data: BTreeMap<String, String> = match reference.kind.as_str() {
            "ConfigMap" => {
                let api: Api<ConfigMap> = Api::namespaced(runtime.client.clone(), &namespace);
                match api
                    .get_opt(&reference.name)
                    .await
                    .map_err(|err| kube_error(&reference.name, err))?
                {
                    Some(cm) => cm.data.unwrap_or_default(),
                    None if optional => continue,
                    None => return Err(not_found()),
                }
            }
            "Secret" => {
                let api: Api<Secret> = Api::namespaced(runtime.client.clone(), &namespace);
                match api
                    .get_opt(&reference.name)
                    .await
                    .map_err(|err| kube_error(&reference.name, err))?
                {
                    Some(secret) => secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect(),
                    None if optional => continue,
                    None => return Err(not_found()),
                }
            }
            other => {
                return Err(Error::InvalidSpec(format!(
                    "postBuild.substituteFrom kind {other:?}: use ConfigMap or Secret"
                )));
            }
        };
        vars.extend(data);
    }
    vars.extend(post_build.substitute.clone().unwrap_or_default());
    sluice_envsubst::validate_names(vars.keys())
        .map_err(|err| Error::InvalidSpec(err.to_string()))?;
    Ok(vars)
}

/// Reads the keys of `spec.decryption.secretRef` (entries `*.agekey` and `*.asc`); `None` when
/// the Kustomization sets no decryption.
async fn decryption_keys(
    obj: &Kustomization,
    runtime: &Runtime,
) -> Result<Option<sluice_sops::Keys>, Error> {
    let Some(decryption) = &obj.spec.decryption else { return Ok(None) };
    if decryption.provider != "sops" {
        return Err(Error::InvalidSpec(format!(
            "spec.decryption.provider {:?} is not supported: use sops",
            decryption.provider
        )));
    }
    let mut keys = sluice_sops::Keys::new();
    let Some(reference) = &decryption.secret_ref else { return Ok(Some(keys)) };
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(runtime.client.clone(), &namespace);
    let id = format!("{namespace}/{}", reference.name);
    let secret = api
        .get_opt(&reference.name)
        .await
        .map_err(|err| kube_error(format!("sops decryption Secret '{id}'"), err))?
        .ok_or_else(|| {
            Error::DecryptionKeys(format!(
                "sops decryption Secret '{id}' not found: create it or fix spec.decryption.secretRef"
            ))
        })?;
    for (name, value) in secret.data.unwrap_or_default() {
        keys.import(&name, &value.0).map_err(|err| {
            Error::DecryptionKeys(format!("sops decryption Secret '{id}': {err}"))
        })?;
    }
    Ok(Some(keys))
}

/// The client that applies, prunes and checks health for `obj`: the controller's own, the
/// remote cluster's of `spec.kubeConfig`, impersonating the service account when one applies.
async fn apply_client(obj: &Kustomization, runtime: &Runtime) -> Result<kube::Client, Error> {
    crate::impersonate::client_for(
        &runtime.client,
        &obj.namespace().unwrap_or_default(),
        obj.spec.kube_config.as_ref(),
        obj.spec.service_account_name.as_deref(),
        runtime.args.default_service_account(),
    )
    .await
    .map_err(|err| match err {
        crate::impersonate::ClientError::Unsupported(message) => Error::InvalidSpec(message),
        crate::impersonate::ClientError::Client(message) => Error::Client(message),
    })
}

fn owner_labels(obj: &Kustomization) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), obj.name_any()),
        (NAMESPACE_LABEL.to_string(), obj.namespace().unwrap_or_default()),
    ])
}

/// Records a reconcile in the history (fluxcd/pkg apis/meta history.go): the snapshot with the
/// same digest and status is updated and moved first, others keep their order, at most
/// [`HISTORY_MAX_SIZE`] are kept.
fn upsert_history(
    mut history: Vec<HistorySnapshot>,
    digest: &str,
    status: &str,
    revision: &str,
    duration: Duration,
    now: jiff::Timestamp,
) -> Vec<HistorySnapshot> {
    let now = Time(now);
    let duration = format!("{:.3}s", duration.as_secs_f64());
    let position =
        history.iter().position(|s| s.digest == digest && s.last_reconciled_status == status);
    let snapshot = match position {
        Some(index) => {
            let mut snapshot = history.remove(index);
            snapshot.last_reconciled = now;
            snapshot.last_reconciled_duration = duration;
            snapshot.total_reconciliations += 1;
            snapshot
        }
        None => HistorySnapshot {
            digest: digest.to_string(),
            first_reconciled: now.clone(),
            last_reconciled: now,
            last_reconciled_duration: duration,
            last_reconciled_status: status.to_string(),
            total_reconciliations: 1,
            metadata: Some(BTreeMap::from([("revision".to_string(), revision.to_string())])),
        },
    };
    history.insert(0, snapshot);
    history.truncate(HISTORY_MAX_SIZE);
    history
}

/// The objects of the previous inventory.
fn inventory_ids(obj: &Kustomization) -> Vec<ObjectId> {
    obj.status
        .as_ref()
        .and_then(|s| s.inventory.as_ref())
        .map(|inventory| inventory.entries.iter().filter_map(ObjectId::from_inventory).collect())
        .unwrap_or_default()
}

/// The context of the Kustomization reconciler.
pub struct Reconciler {
    /// The shared runtime.
    pub runtime: Arc<Runtime>,
    /// Downloads source artifacts.
    pub fetcher: sluice_artifact::Fetcher,
    /// The kinds of the local cluster already resolved, shared by every reconcile (each would
    /// otherwise query discovery for the same kinds again).
    pub kinds: sluice_ssa::KindCache,
}

impl Reconciler {
    /// Fetches, builds, applies, prunes and checks health for the current source revision.
    async fn apply_revision(
        &self,
        obj: &Kustomization,
        status: &mut StatusWriter<'_, Kustomization>,
    ) -> Result<Applied, Error> {
        let artifact = source_artifact(obj, &self.runtime).await?;
        let revision = artifact.revision.clone();
        status.set_field("lastAttemptedRevision", &revision);
        // Failures carry the revision they were about too, as Flux's events do.
        status.set_event_metadata("revision", &revision);
        check_dependencies(obj, &self.runtime, &revision).await?;
        let interval = duration("interval", Some(&obj.spec.interval), Duration::from_secs(600))?;
        let timeout = timeout(&obj.spec, interval)?;
        status
            .progress(&format!(
                "Building manifests for revision {revision} with a timeout of {timeout:?}"
            ))
            .await?;
        let work = async {
            let dir = tempfile::Builder::new()
                .prefix("kustomization-")
                .tempdir()
                .map_err(Error::TempDir)?;
            let digest = artifact.digest.clone().unwrap_or_default();
            self.fetcher.fetch(&artifact.url, &digest, dir.path()).await.map_err(Error::Fetch)?;
            let vars = substitution_vars(obj, &self.runtime).await?;
            let keys = decryption_keys(obj, &self.runtime).await?;
            let health_reader =
                crate::health::reader(obj.spec.health_check_exprs.as_deref().unwrap_or_default())
                    .map_err(Error::InvalidSpec)?;
            let client = apply_client(obj, &self.runtime).await?;
            let spec = obj.spec.clone();
            let root = dir.path().to_path_buf();
            let build_revision = revision.clone();
            let objects = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, BuildError> {
                if let Some(keys) = &keys {
                    build::decrypt_dotenv_sources(&root, keys)?;
                }
                let mut objects = build::build_manifests(&root, &spec, &build_revision)?;
                // Flux decrypts before it substitutes variables.
                objects = build::decrypt_secrets(objects, keys.as_ref())?;
                let strategy_always =
                    spec.post_build.as_ref().and_then(|p| p.substitute_strategy.as_deref())
                        == Some("Always");
                let has_post_build = spec.post_build.is_some();
                if has_post_build {
                    objects = build::substitute(objects, &vars, strategy_always, true)?;
                }
                build::add_common_metadata(&mut objects, &spec);
                Ok(objects)
            })
            .await
            .map_err(|err| Error::InvalidSpec(format!("build task failed: {err}")))?
            .map_err(|source| Error::Build { revision: revision.clone(), source })?;
            drop(dir);

            let mut manager = ResourceManager::new(client, FIELD_MANAGER, owner_labels(obj));
            if obj.spec.kube_config.is_none() {
                manager = manager.with_kind_cache(self.kinds.clone());
            }
            if let Some(reader) = health_reader {
                manager = manager.with_status_reader(reader);
            }
            let options = ApplyOptions {
                force: obj.spec.force.unwrap_or(false),
                wait_timeout: Some(timeout),
            };
            let digest =
                sluice_artifact::sha256_digest(sluice_kustomize::to_yaml(&objects).as_bytes());
            let mut change_set =
                manager.apply_all_staged(&objects, &options).await.map_err(Error::Apply)?;
            let new_ids: BTreeSet<ObjectId> = objects.iter().filter_map(ObjectId::of).collect();
            let inventory =
                ResourceInventory { entries: new_ids.iter().map(ObjectId::to_inventory).collect() };
            if obj.spec.prune {
                let stale: Vec<ObjectId> = inventory_ids(obj)
                    .into_iter()
                    .filter(|id| {
                        !new_ids.iter().any(|n| {
                            n.group == id.group
                                && n.kind == id.kind
                                && n.namespace == id.namespace
                                && n.name == id.name
                        })
                    })
                    .collect();
                let pruned = manager.delete_all(&stale).await.map_err(Error::Prune)?;
                change_set.entries.extend(pruned.entries);
            }
            if obj.spec.wait.unwrap_or(false) {
                manager.wait_for_set(&objects, timeout).await.map_err(Error::Health)?;
            } else if let Some(checks) = &obj.spec.health_checks {
                let ids: Vec<ObjectId> = checks
                    .iter()
                    .map(|check| {
                        let api_version = check.api_version.clone().unwrap_or_else(|| "v1".into());
                        let (group, version) = api_version
                            .rsplit_once('/')
                            .map(|(g, v)| (g.to_string(), v.to_string()))
                            .unwrap_or((String::new(), api_version.clone()));
                        ObjectId {
                            group,
                            version,
                            kind: check.kind.clone(),
                            namespace: check
                                .namespace
                                .clone()
                                .unwrap_or_else(|| obj.namespace().unwrap_or_default()),
                            name: check.name.clone(),
                        }
                    })
                    .collect();
                manager.wait_for_ids(&ids, timeout).await.map_err(Error::Health)?;
            }
            let origin_revision = artifact
                .metadata
                .as_ref()
                .and_then(|m| m.get("org.opencontainers.image.revision"))
                .cloned();
            Ok(Applied {
                revision: revision.clone(),
                digest,
                origin_revision,
                inventory,
                change_set,
            })
        };
        match tokio::time::timeout(timeout + Duration::from_secs(5), work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }

    /// Reconciles a Kustomization and writes its status.
    pub async fn reconcile(&self, obj: Arc<Kustomization>) -> Result<Action, Error> {
        let started = tokio::time::Instant::now();
        let interval = duration("interval", Some(&obj.spec.interval), Duration::from_secs(600));
        let mut status = StatusWriter::new(
            &*obj,
            self.runtime.client.clone(),
            self.runtime.controller,
            &self.runtime.events,
        );
        let interval = match interval {
            Ok(interval) => interval,
            Err(err) => {
                status.finish(&Outcome::from_error(&err)).await?;
                return Ok(Action::await_change());
            }
        };
        let retry = duration("retryInterval", obj.spec.retry_interval.as_deref(), interval)
            .unwrap_or(interval);
        match self.apply_revision(&obj, &mut status).await {
            Ok(applied) => {
                status.set_field("lastAppliedRevision", &applied.revision);
                status.set_field("lastAttemptedRevision", &applied.revision);
                if let Some(origin) = &applied.origin_revision {
                    status.set_field("lastAppliedOriginRevision", origin);
                }
                status.set_field("inventory", &applied.inventory);
                let previous =
                    obj.status.as_ref().and_then(|s| s.history.clone()).unwrap_or_default();
                let history = upsert_history(
                    previous,
                    &applied.digest,
                    reason::RECONCILIATION_SUCCEEDED,
                    &applied.revision,
                    started.elapsed(),
                    jiff::Timestamp::now(),
                );
                status.set_field("history", &history);
                status.set_event_metadata("revision", &applied.revision);
                let message = format!("Applied revision: {}", applied.revision);
                if applied.change_set.has_changes() {
                    // The change set goes to the event; the condition keeps the short message.
                    self.runtime
                        .events
                        .record(
                            &*obj,
                            sluice_runtime::events::Severity::Info,
                            reason::RECONCILIATION_SUCCEEDED,
                            &applied.change_set.summary(),
                            &BTreeMap::from([("revision".to_string(), applied.revision.clone())]),
                        )
                        .await;
                }
                status
                    .finish(&Outcome::Ready {
                        reason: reason::RECONCILIATION_SUCCEEDED.into(),
                        message,
                    })
                    .await?;
                Ok(self.runtime.next_action(Some(interval)))
            }
            Err(err) => {
                let requeue = match err {
                    Error::SourceNotFound { .. }
                    | Error::ArtifactNotReady { .. }
                    | Error::DependencyNotReady(_) => self.runtime.args.requeue_dependency,
                    _ => retry,
                };
                let stalled = err.is_stalled();
                tracing::info!(kustomization = %obj.name_any(), error = %sluice_runtime::conditions::error_message(&err), "reconcile failed");
                status.finish(&Outcome::from_error(&err)).await?;
                Ok(if stalled { Action::await_change() } else { Action::requeue(requeue) })
            }
        }
    }

    /// Garbage-collects the inventory when a Kustomization with `prune: true` is deleted
    /// (`deletionPolicy` `MirrorPrune` or `Delete`; `Orphan` keeps everything).
    pub async fn cleanup(&self, obj: Arc<Kustomization>) -> Result<Action, Error> {
        let policy = obj.spec.deletion_policy.as_deref().unwrap_or("MirrorPrune");
        let prune = match policy {
            "Orphan" => false,
            "Delete" | "WaitForTermination" => true,
            _ => obj.spec.prune,
        };
        if prune && !obj.spec.suspend.unwrap_or(false) {
            let client = apply_client(&obj, &self.runtime).await?;
            let manager = ResourceManager::new(client, FIELD_MANAGER, owner_labels(&obj));
            manager.delete_all(&inventory_ids(&obj)).await.map_err(Error::Prune)?;
        }
        Ok(Action::await_change())
    }
}

/// The object reference used in logs.
pub fn object_ref(obj: &Kustomization) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(interval: &str, timeout: Option<&str>) -> KustomizationSpec {
        let mut spec: KustomizationSpec = serde_json::from_value(serde_json::json!({
            "interval": interval, "prune": true, "sourceRef": {"kind": "GitRepository", "name": "r"}
        }))
        .unwrap();
        spec.timeout = timeout.map(str::to_string);
        spec
    }

    #[test]
    fn timeout_defaults_like_flux() {
        assert_eq!(
            timeout(&spec("10m", None), Duration::from_secs(600)).unwrap(),
            Duration::from_secs(570)
        );
        assert_eq!(
            timeout(&spec("40s", None), Duration::from_secs(40)).unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(
            timeout(&spec("10m", Some("2m")), Duration::from_secs(600)).unwrap(),
            Duration::from_secs(120)
        );
        assert!(timeout(&spec("10m", Some("2 minutes")), Duration::from_secs(600)).is_err());
    }

    #[test]
    fn history_keeps_the_latest_first_and_counts_repeats() {
        let t = |s: i64| jiff::Timestamp::from_second(s).unwrap();
        let d = Duration::from_millis(1500);
        let h = upsert_history(
            Vec::new(),
            "sha256:a",
            "ReconciliationSucceeded",
            "main@sha1:1",
            d,
            t(1),
        );
        let h = upsert_history(h, "sha256:b", "ReconciliationSucceeded", "main@sha1:2", d, t(2));
        let h = upsert_history(h, "sha256:a", "ReconciliationSucceeded", "main@sha1:1", d, t(3));
        let digests: Vec<&str> = h.iter().map(|s| s.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:a", "sha256:b"]);
        assert_eq!(h[0].total_reconciliations, 2);
        assert_eq!(h[0].first_reconciled, Time(t(1)));
        assert_eq!(h[0].last_reconciled_duration, "1.500s");
        let many = (0..7).fold(h, |h, i| {
            upsert_history(h, &format!("sha256:{i}"), "ReconciliationSucceeded", "r", d, t(10 + i))
        });
        assert_eq!(many.len(), HISTORY_MAX_SIZE);
    }

    #[test]
    fn error_reasons_and_stalling() {
        assert_eq!(Error::DependencyNotReady("a/b".into()).reason(), "DependencyNotReady");
        assert_eq!(
            Error::ArtifactNotReady { retry: Duration::from_secs(30) }.reason(),
            "ArtifactFailed"
        );
        assert!(Error::InvalidSpec("x".into()).is_stalled());
        assert!(!Error::Timeout(Duration::from_secs(1)).is_stalled());
        assert_eq!(
            Error::ArtifactNotReady { retry: Duration::from_secs(30) }.to_string(),
            "source artifact not found, retrying in 30s"
        );
    }
}
