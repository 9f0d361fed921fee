//! Helm actions against the cluster: install, upgrade, test, rollback, uninstall and unlock,
//! each recorded in the Secret release storage the way Helm records it.
//!
//! Objects are server-side applied with field manager `helm-controller`, carry Helm's
//! ownership metadata (`app.kubernetes.io/managed-by: Helm`, `meta.helm.sh/release-name`,
//! `meta.helm.sh/release-namespace`) and Flux's origin labels, and are waited for with kstatus.
//! Hooks run in weight order with their delete policies; Jobs and Pods are waited for until
//! they complete, other kinds count as done once created.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams, PropagationPolicy};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{ApiCapabilities, Scope};
use serde_json::{Map, Value};
use sluice_ssa::{ApplyOptions, ObjectId, ResourceManager};

use crate::storage::{self, Hook, Release, SecretStorage, StorageError, status};

/// Field manager of applied objects (Flux's helm-controller name).
pub const FIELD_MANAGER: &str = "helm-controller";
/// Helm's ownership label.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Helm's release name annotation.
pub const RELEASE_NAME_ANNOTATION: &str = "meta.helm.sh/release-name";
/// Helm's release namespace annotation.
pub const RELEASE_NAMESPACE_ANNOTATION: &str = "meta.helm.sh/release-namespace";
/// Annotation that keeps an object on uninstall and upgrade (`keep`).
pub const RESOURCE_POLICY_ANNOTATION: &str = "helm.sh/resource-policy";

/// Why a Helm action failed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The release storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Applying, deleting or waiting failed.
    #[error(transparent)]
    Ssa(#[from] sluice_ssa::Error),
    /// A manifest of the release is not valid YAML or lacks its identity.
    #[error("manifest {path}: {message}")]
    Manifest {
        /// Template path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A hook failed or timed out.
    #[error("{event} hook {kind}/{name} failed: {message}")]
    Hook {
        /// The hook event.
        event: String,
        /// Hook object kind.
        kind: String,
        /// Hook object name.
        name: String,
        /// Why.
        message: String,
    },
    /// The API server refused a request.
    #[error("{what}: {message}")]
    Kube {
        /// What was attempted.
        what: String,
        /// The API server's message.
        message: String,
    },
    /// The release to act on does not exist.
    #[error("release {0}")]
    NoRelease(String),
    /// The action was cut off by its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

fn kube_error(what: impl Into<String>, err: kube::Error) -> ActionError {
    let message = match err {
        kube::Error::Api(status) => status.message,
        other => other.to_string(),
    };
    ActionError::Kube { what: what.into(), message }
}

/// CRD policy of install and upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrdPolicy {
    /// Leave `crds/` alone.
    Skip,
    /// Create missing CRDs.
    Create,
    /// Create missing CRDs and replace existing ones.
    CreateReplace,
}

impl CrdPolicy {
    /// Parses `spec.install.crds` / `spec.upgrade.crds`.
    ///
    /// # Errors
    /// An unknown policy name.
    pub fn parse(field: &str, raw: Option<&str>, default: CrdPolicy) -> Result<Self, String> {
        match raw {
            None => Ok(default),
            Some("Skip") => Ok(CrdPolicy::Skip),
            Some("Create") => Ok(CrdPolicy::Create),
            Some("CreateReplace") => Ok(CrdPolicy::CreateReplace),
            Some(other) => Err(format!(
                "spec.{field} {other:?} is not a CRD policy: use Skip, Create or CreateReplace"
            )),
        }
    }
}

/// Settings shared by the actions of one reconcile.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Release name.
    pub release_name: String,
    /// Namespace objects go to.
    pub namespace: String,
    /// Labels stamped on every object (Flux's origin labels).
    pub owner_labels: BTreeMap<String, String>,
    /// Action timeout.
    pub timeout: Duration,
    /// Skip waiting for readiness.
    pub disable_wait: bool,
    /// Skip hooks.
    pub disable_hooks: bool,
    /// `spec.maxHistory` (0 = unlimited).
    pub max_history: i64,
    /// Recreate objects whose immutable fields changed (`upgrade.force`, `rollback.force`).
    pub force: bool,
    /// Delete the objects a failed upgrade or rollback created (`cleanupOnFail`).
    pub cleanup_on_fail: bool,
    /// How uninstall deletes objects (`uninstall.deletionPropagation`).
    pub deletion_propagation: PropagationPolicy,
}

/// Parses `spec.uninstall.deletionPropagation` (Helm's default: background).
///
/// # Errors
/// A value other than background, foreground or orphan.
pub fn deletion_propagation(raw: Option<&str>) -> Result<PropagationPolicy, String> {
    match raw {
        None | Some("background") => Ok(PropagationPolicy::Background),
        Some("foreground") => Ok(PropagationPolicy::Foreground),
        Some("orphan") => Ok(PropagationPolicy::Orphan),
        Some(other) => Err(format!(
            "spec.uninstall.deletionPropagation {other:?} is not a propagation policy: use background, foreground or orphan"
        )),
    }
}

/// What an install or upgrade deploys.
#[derive(Debug, Clone)]
pub struct Deploy {
    /// `chart.Chart` JSON.
    pub chart: Value,
    /// User-supplied values.
    pub config: Map<String, Value>,
    /// Release manifest text.
    pub manifest: String,
    /// Hooks (test hooks included).
    pub hooks: Vec<Hook>,
    /// NOTES.txt.
    pub notes: String,
    /// CRD files of the chart.
    pub crds: Vec<(String, String)>,
    /// CRD policy.
    pub crd_policy: CrdPolicy,
    /// Create the namespace first.
    pub create_namespace: bool,
}

/// Turns rendered hooks into release hooks (weights, delete policies).
pub fn hooks_of(rendered: &sluice_helm::Rendered) -> Vec<Hook> {
    rendered
        .sorted
        .hooks
        .iter()
        .map(|doc| {
            let obj = sluice_helm::yaml::from_yaml(&doc.content).unwrap_or(Value::Null);
            let annotations = &obj["metadata"]["annotations"];
            let weight = annotations["helm.sh/hook-weight"]
                .as_str()
                .and_then(|w| w.trim().parse().ok())
                .unwrap_or(0);
            let delete_policies = annotations["helm.sh/hook-delete-policy"]
                .as_str()
                .map(|p| {
                    p.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
                })
                .unwrap_or_default();
            Hook {
                name: obj["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                kind: doc.kind.clone(),
                path: doc.path.clone(),
                manifest: doc.content.clone(),
                events: doc.hook_events.clone(),
                weight,
                delete_policies,
                ..Hook::default()
            }
        })
        .collect()
}

/// Parses a release manifest (`---\n# Source: …` documents) into objects.
///
/// # Errors
/// A document that is not a YAML mapping with apiVersion, kind and metadata.name.
pub fn manifest_objects(manifest: &str) -> Result<Vec<Value>, ActionError> {
    let mut objects = Vec::new();
    for doc in sluice_helm::output::split_manifests(manifest) {
        let path = doc
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# Source: "))
            .unwrap_or("manifest")
            .to_string();
        let obj = sluice_helm::yaml::from_yaml(&doc)
            .map_err(|e| ActionError::Manifest { path: path.clone(), message: e.to_string() })?;
        if obj.is_null() {
            continue;
        }
        if ObjectId::of(&obj).is_none() {
            return Err(ActionError::Manifest {
                path,
                message: "document has no apiVersion, kind or metadata.name".into(),
            });
        }
        objects.push(obj);
    }
    Ok(objects)
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Runs Helm actions for one release.
pub struct Actions {
    client: kube::Client,
    storage: SecretStorage,
    settings: Settings,
    apply: ResourceManager,
    delete: ResourceManager,
    scopes: Mutex<HashMap<(String, String), bool>>,
}

impl Actions {
    /// Actions for `settings.release_name` with releases stored in `storage`.
    pub fn new(client: kube::Client, storage: SecretStorage, settings: Settings) -> Self {
        let apply =
            ResourceManager::new(client.clone(), FIELD_MANAGER, settings.owner_labels.clone());
        // Deletion follows the release manifest, not labels: releases Helm made lack ours.
        let delete = ResourceManager::new(client.clone(), FIELD_MANAGER, BTreeMap::new());
        Actions { client, storage, settings, apply, delete, scopes: Mutex::new(HashMap::new()) }
    }

    /// The release storage.
    pub fn storage(&self) -> &SecretStorage {
        &self.storage
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn resolve(&self, api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let found: Result<(ApiResource, ApiCapabilities), _> =
            kube::discovery::oneshot::pinned_kind(&self.client, &gvk).await;
        let (resource, capabilities) = found.ok()?;
        let namespaced = capabilities.scope == Scope::Namespaced;
        if let Ok(mut scopes) = self.scopes.lock() {
            scopes.insert((api_version.to_string(), kind.to_string()), namespaced);
        }
        Some((resource, namespaced))
    }

    async fn is_namespaced(&self, api_version: &str, kind: &str) -> bool {
        let cached = self
            .scopes
            .lock()
            .ok()
            .and_then(|s| s.get(&(api_version.to_string(), kind.to_string())).copied());
        match cached {
            Some(namespaced) => namespaced,
            // Unknown kinds (CRDs not served yet) are taken as namespaced, as Helm does.
            None => self.resolve(api_version, kind).await.is_none_or(|(_, n)| n),
        }
    }

    /// Adds the release namespace to namespaced objects without one and Helm's ownership
    /// metadata to every object.
    async fn prepare(&self, objects: &mut [Value]) {
        for obj in objects.iter_mut() {
            let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
            let kind = obj["kind"].as_str().unwrap_or_default().to_string();
            let namespaced = self.is_namespaced(&api_version, &kind).await;
            let Some(metadata) = obj["metadata"].as_object_mut() else { continue };
            if namespaced {
                if metadata.get("namespace").and_then(Value::as_str).is_none_or(str::is_empty) {
                    metadata
                        .insert("namespace".into(), Value::String(self.settings.namespace.clone()));
                }
            } else {
                metadata.remove("namespace");
            }
            let labels = metadata.entry("labels").or_insert_with(|| Value::Object(Map::new()));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(MANAGED_BY_LABEL.into(), Value::String("Helm".into()));
            }
            let annotations =
                metadata.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(
                    RELEASE_NAME_ANNOTATION.into(),
                    Value::String(self.settings.release_name.clone()),
                );
                annotations.insert(
                    RELEASE_NAMESPACE_ANNOTATION.into(),
                    Value::String(self.settings.namespace.clone()),
                );
            }
        }
    }

    /// The ids of a manifest's objects after namespace defaulting.
    async fn ids(&self, manifest: &str) -> Result<Vec<ObjectId>, ActionError> {
        let mut objects = manifest_objects(manifest)?;
        self.prepare(&mut objects).await;
        Ok(objects
            .iter()
            .filter(|o| {
                o["metadata"]["annotations"][RESOURCE_POLICY_ANNOTATION].as_str() != Some("keep")
            })
            .filter_map(ObjectId::of)
            .collect())
    }

    async fn ensure_namespace(&self) -> Result<(), ActionError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let name = &self.settings.namespace;
        if api
            .get_opt(name)
            .await
            .map_err(|e| kube_error(format!("reading namespace {name}"), e))?
            .is_none()
        {
            let ns: Namespace = serde_json::from_value(
                serde_json::json!({"metadata": {"name": name}}),
            )
            .map_err(|e| ActionError::Kube { what: "namespace".into(), message: e.to_string() })?;
            match api.create(&PostParams::default(), &ns).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(kube_error(format!("creating namespace {name}"), e)),
            }
        }
        Ok(())
    }

    async fn install_crds(
        &self,
        crds: &[(String, String)],
        policy: CrdPolicy,
    ) -> Result<(), ActionError> {
        if policy == CrdPolicy::Skip || crds.is_empty() {
            return Ok(());
        }
        let mut objects = Vec::new();
        for (path, text) in crds {
            let docs = sluice_helm::yaml::from_yaml_documents(text).map_err(|e| {
                ActionError::Manifest { path: path.clone(), message: e.to_string() }
            })?;
            objects.extend(docs.into_iter().filter(|d| d.is_object()));
        }
        if policy == CrdPolicy::Create {
            let mut missing = Vec::new();
            for obj in objects {
                let api_version = obj["apiVersion"].as_str().unwrap_or_default();
                let kind = obj["kind"].as_str().unwrap_or_default();
                let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                let exists = match self.resolve(api_version, kind).await {
                    Some((resource, _)) => {
                        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
                        api.get_opt(name)
                            .await
                            .map_err(|e| kube_error(format!("reading {kind} {name}"), e))?
                            .is_some()
                    }
                    None => false,
                };
                if !exists {
                    missing.push(obj);
                }
            }
            objects = missing;
        }
        if objects.is_empty() {
            return Ok(());
        }
        let options = ApplyOptions { force: false, wait_timeout: Some(self.settings.timeout) };
        self.apply.apply_all_staged(&objects, &options).await?;
        Ok(())
    }

    async fn apply_manifest(&self, manifest: &str) -> Result<Vec<Value>, ActionError> {
        let mut objects = manifest_objects(manifest)?;
        self.prepare(&mut objects).await;
        let options =
            ApplyOptions { force: self.settings.force, wait_timeout: Some(self.settings.timeout) };
        self.apply.apply_all_staged(&objects, &options).await?;
        Ok(objects)
    }

    async fn wait(&self, objects: &[Value]) -> Result<(), ActionError> {
        if self.settings.disable_wait || objects.is_empty() {
            return Ok(());
        }
        self.apply.wait_for_set(objects, self.settings.timeout).await?;
        Ok(())
    }

    /// Deletes the objects of `old` that `new` no longer has (Helm's upgrade clean-up).
    async fn delete_removed(&self, old: &str, new: &str) -> Result<(), ActionError> {
        let new_ids = self.ids(new).await?;
        let stale: Vec<ObjectId> = self
            .ids(old)
            .await?
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
        self.delete.delete_all(&stale).await?;
        Ok(())
    }

    /// The objects of `new` that `old` does not have: what an upgrade or rollback creates.
    async fn created_by(&self, old: &str, new: &str) -> Result<Vec<ObjectId>, ActionError> {
        let old_ids = self.ids(old).await?;
        Ok(self
            .ids(new)
            .await?
            .into_iter()
            .filter(|id| {
                !old_ids.iter().any(|o| {
                    o.group == id.group
                        && o.kind == id.kind
                        && o.namespace == id.namespace
                        && o.name == id.name
                })
            })
            .collect())
    }

    /// With `cleanup_on_fail`, deletes what a failed upgrade or rollback created (Helm's
    /// `--cleanup-on-fail`); a failure to clean up is added to the action's error.
    async fn cleanup_after_failure(&self, created: &[ObjectId], err: ActionError) -> ActionError {
        if !self.settings.cleanup_on_fail || created.is_empty() {
            return err;
        }
        let mut reversed = created.to_vec();
        reversed.reverse();
        match self.delete_with_propagation(&reversed).await {
            Ok(()) => err,
            Err(cleanup) => ActionError::Kube {
                what: err.to_string(),
                message: format!("cleanup on fail: {cleanup}"),
            },
        }
    }

    /// Deletes `ids` with the uninstall propagation policy; missing objects and kinds are
    /// already gone.
    async fn delete_with_propagation(&self, ids: &[ObjectId]) -> Result<(), ActionError> {
        let params = DeleteParams {
            propagation_policy: Some(self.settings.deletion_propagation.clone()),
            ..DeleteParams::default()
        };
        for id in ids {
            let Some(api) = self.dynamic_api(id).await else { continue };
            match api.delete(&id.name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(kube_error(format!("deleting {id}"), e)),
            }
        }
        Ok(())
    }

    /// The ids of a release's objects for `status.inventory`: the manifest's objects (hooks
    /// excluded) and the chart's CRDs, sorted by id.
    ///
    /// # Errors
    /// A manifest or CRD file that does not parse.
    pub async fn inventory(
        &self,
        manifest: &str,
        crds: &[(String, String)],
    ) -> Result<Vec<ObjectId>, ActionError> {
        let mut objects = manifest_objects(manifest)?;
        for (path, text) in crds {
            let docs = sluice_helm::yaml::from_yaml_documents(text).map_err(|e| {
                ActionError::Manifest { path: path.clone(), message: e.to_string() }
            })?;
            objects.extend(docs.into_iter().filter(|d| ObjectId::of(d).is_some()));
        }
        self.prepare(&mut objects).await;
        let mut ids: Vec<ObjectId> = objects.iter().filter_map(ObjectId::of).collect();
        ids.sort_by_key(|id| id.to_inventory().id);
        ids.dedup_by_key(|id| id.to_inventory().id);
        Ok(ids)
    }

    /// Runs the hooks of `event` in weight order, recording each run in `release.hooks`.
    async fn run_hooks(&self, release: &mut Release, event: &str) -> Result<(), ActionError> {
        self.run_hooks_filtered(release, event, &|_| true, false).await
    }

    async fn run_hooks_filtered(
        &self,
        release: &mut Release,
        event: &str,
        select: &(dyn Fn(&Hook) -> bool + Sync),
        always: bool,
    ) -> Result<(), ActionError> {
        if self.settings.disable_hooks && !always {
            return Ok(());
        }
        let mut order: Vec<usize> = (0..release.hooks.len())
            .filter(|&i| {
                release.hooks[i].events.iter().any(|e| e == event) && select(&release.hooks[i])
            })
            .collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&release.hooks[a], &release.hooks[b]);
            a.weight.cmp(&b.weight).then_with(|| a.name.cmp(&b.name))
        });
        for index in order {
            let hook = release.hooks[index].clone();
            let mut objects = manifest_objects(&hook.manifest)?;
            self.prepare(&mut objects).await;
            let Some(obj) = objects.into_iter().next() else { continue };
            let id = ObjectId::of(&obj).ok_or_else(|| ActionError::Manifest {
                path: hook.path.clone(),
                message: "hook has no identity".into(),
            })?;
            let policies = &hook.delete_policies;
            if policies.is_empty() || policies.iter().any(|p| p == "before-hook-creation") {
                self.delete_and_wait(&id).await?;
            }
            release.hooks[index].last_run = storage::HookExecution {
                started_at: now(),
                completed_at: storage::ZERO_TIME.into(),
                phase: "Running".into(),
            };
            let result = async {
                self.apply.apply(&obj, &ApplyOptions::default()).await?;
                self.wait_hook(&id).await
            }
            .await;
            let succeeded = result.is_ok();
            release.hooks[index].last_run.completed_at = now();
            release.hooks[index].last_run.phase =
                if succeeded { "Succeeded" } else { "Failed" }.into();
            let delete_now = if succeeded {
                policies.iter().any(|p| p == "hook-succeeded")
            } else {
                policies.iter().any(|p| p == "hook-failed")
            };
            if delete_now {
                self.delete.delete_all(std::slice::from_ref(&id)).await?;
            }
            if let Err(message) = result {
                return Err(ActionError::Hook {
                    event: event.to_string(),
                    kind: hook.kind.clone(),
                    name: hook.name.clone(),
                    message: message.to_string(),
                });
            }
        }
        Ok(())
    }

    async fn dynamic_api(&self, id: &ObjectId) -> Option<Api<DynamicObject>> {
        let (resource, namespaced) = self.resolve(&id.api_version(), &id.kind).await?;
        Some(if namespaced {
            Api::namespaced_with(self.client.clone(), &id.namespace, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        })
    }

    async fn delete_and_wait(&self, id: &ObjectId) -> Result<(), ActionError> {
        let Some(api) = self.dynamic_api(id).await else { return Ok(()) };
        let params = DeleteParams::background();
        match api.delete(&id.name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(kube_error(format!("deleting {id}"), e)),
        }
        let start = tokio::time::Instant::now();
        while start.elapsed() < self.settings.timeout {
            match api.get_opt(&id.name).await {
                Ok(None) => return Ok(()),
                Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(250)).await,
                Err(e) => return Err(kube_error(format!("reading {id}"), e)),
            }
        }
        Err(ActionError::Timeout(self.settings.timeout))
    }

    /// Waits for a hook: Jobs until Complete or Failed, Pods until Succeeded or Failed; other
    /// kinds are done once created.
    async fn wait_hook(&self, id: &ObjectId) -> Result<(), ActionError> {
        if id.kind != "Job" && id.kind != "Pod" {
            return Ok(());
        }
        let Some(api) = self.dynamic_api(id).await else { return Ok(()) };
        let start = tokio::time::Instant::now();
        loop {
            let obj = api
                .get_opt(&id.name)
                .await
                .map_err(|e| kube_error(format!("reading {id}"), e))?
                .map(|o| serde_json::to_value(o).unwrap_or_default())
                .unwrap_or_default();
            let outcome = hook_outcome(&id.kind, &obj);
            match outcome {
                Some(Ok(())) => return Ok(()),
                Some(Err(message)) => {
                    return Err(ActionError::Kube { what: id.to_string(), message });
                }
                None => {}
            }
            if start.elapsed() >= self.settings.timeout {
                return Err(ActionError::Timeout(self.settings.timeout));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn prune_history(&self) -> Result<(), ActionError> {
        let history = self.storage.history(&self.settings.release_name).await?;
        for version in storage::prune_candidates(&history, self.settings.max_history) {
            self.storage.delete(&self.settings.release_name, version).await?;
        }
        Ok(())
    }

    async fn fail(
        &self,
        mut release: Release,
        description: String,
    ) -> Result<Release, ActionError> {
        release.info.status = status::FAILED.into();
        release.info.description = description;
        release.info.last_deployed = now();
        self.storage.update(&release).await?;
        Ok(release)
    }

    /// Installs a new release (revision after `history`'s last, or 1).
    ///
    /// On failure the release is stored as `failed` and the error returned.
    ///
    /// # Errors
    /// Any step: CRDs, hooks, apply, wait.
    pub async fn install(
        &self,
        deploy: &Deploy,
        history: &[Release],
    ) -> Result<Release, ActionError> {
        let timestamp = now();
        let mut release = Release {
            name: self.settings.release_name.clone(),
            info: storage::Info {
                first_deployed: timestamp.clone(),
                last_deployed: timestamp,
                description: "Initial install underway".into(),
                status: status::PENDING_INSTALL.into(),
                notes: deploy.notes.clone(),
                ..storage::Info::default()
            },
            chart: deploy.chart.clone(),
            config: deploy.config.clone(),
            manifest: deploy.manifest.clone(),
            hooks: deploy.hooks.clone(),
            version: history.iter().map(|r| r.version).max().unwrap_or(0) + 1,
            namespace: self.settings.namespace.clone(),
            extra: Map::new(),
        };
        self.storage.create(&release).await?;
        let result = self.timed(async {
            if deploy.create_namespace {
                self.ensure_namespace().await?;
            }
            self.install_crds(&deploy.crds, deploy.crd_policy).await?;
            self.run_hooks(&mut release, "pre-install").await?;
            let objects = self.apply_manifest(&release.manifest).await?;
            self.wait(&objects).await?;
            self.run_hooks(&mut release, "post-install").await
        });
        let result = result.await;
        match result {
            Ok(()) => {
                release.info.status = status::DEPLOYED.into();
                release.info.description = "Install complete".into();
                self.storage.update(&release).await?;
                self.prune_history().await?;
                Ok(release)
            }
            Err(err) => {
                let message = format!("Release \"{}\" failed: {err}", release.name);
                self.fail(release, message).await?;
                self.prune_history().await?;
                Err(err)
            }
        }
    }

    async fn timed<F: std::future::Future<Output = Result<(), ActionError>>>(
        &self,
        work: F,
    ) -> Result<(), ActionError> {
        // Hooks and waits have their own timeouts; this bounds the whole action.
        let limit = self.settings.timeout * 3 + Duration::from_secs(30);
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => Err(ActionError::Timeout(limit)),
        }
    }

    /// Marks every `deployed` revision but `keep` as superseded.
    async fn supersede(&self, history: &[Release], keep: i64) -> Result<(), ActionError> {
        for old in history {
            if old.version != keep && old.info.status == status::DEPLOYED {
                let mut old = old.clone();
                old.info.status = status::SUPERSEDED.into();
                self.storage.update(&old).await?;
            }
        }
        Ok(())
    }

    /// Upgrades the release to `deploy` as a new revision.
    ///
    /// # Errors
    /// Any step; the new revision is then stored as `failed`.
    pub async fn upgrade(
        &self,
        deploy: &Deploy,
        history: &[Release],
    ) -> Result<Release, ActionError> {
        let current = history
            .iter()
            .rev()
            .find(|r| r.info.status == status::DEPLOYED)
            .or_else(|| history.last())
            .ok_or_else(|| {
                ActionError::NoRelease(format!(
                    "{} has no revision to upgrade",
                    self.settings.release_name
                ))
            })?
            .clone();
        let timestamp = now();
        let mut release = Release {
            name: self.settings.release_name.clone(),
            info: storage::Info {
                first_deployed: current.info.first_deployed.clone(),
                last_deployed: timestamp,
                description: "Preparing upgrade".into(),
                status: status::PENDING_UPGRADE.into(),
                notes: deploy.notes.clone(),
                ..storage::Info::default()
            },
            chart: deploy.chart.clone(),
            config: deploy.config.clone(),
            manifest: deploy.manifest.clone(),
            hooks: deploy.hooks.clone(),
            version: history.iter().map(|r| r.version).max().unwrap_or(0) + 1,
            namespace: self.settings.namespace.clone(),
            extra: Map::new(),
        };
        self.storage.create(&release).await?;
        let version = release.version;
        let result = self.timed(async {
            if deploy.create_namespace {
                self.ensure_namespace().await?;
            }
            self.install_crds(&deploy.crds, deploy.crd_policy).await?;
            self.run_hooks(&mut release, "pre-upgrade").await?;
            let objects = self.apply_manifest(&release.manifest).await?;
            self.delete_removed(&current.manifest, &release.manifest).await?;
            self.supersede(history, version).await?;
            self.wait(&objects).await?;
            self.run_hooks(&mut release, "post-upgrade").await
        });
        let result = result.await;
        match result {
            Ok(()) => {
                release.info.status = status::DEPLOYED.into();
                release.info.description = "Upgrade complete".into();
                self.storage.update(&release).await?;
                self.prune_history().await?;
                Ok(release)
            }
            Err(err) => {
                let created =
                    self.created_by(&current.manifest, &release.manifest).await.unwrap_or_default();
                let err = self.cleanup_after_failure(&created, err).await;
                let message = format!("Upgrade \"{}\" failed: {err}", release.name);
                self.fail(release, message).await?;
                self.prune_history().await?;
                Err(err)
            }
        }
    }

    /// Rolls back to revision `target` as a new revision.
    ///
    /// # Errors
    /// Any step; the new revision is then stored as `failed`.
    pub async fn rollback(&self, target: i64, history: &[Release]) -> Result<Release, ActionError> {
        let target_release = history
            .iter()
            .find(|r| r.version == target)
            .ok_or_else(|| {
                ActionError::NoRelease(format!(
                    "{} has no revision {target}",
                    self.settings.release_name
                ))
            })?
            .clone();
        let current = history.last().cloned().unwrap_or_else(|| target_release.clone());
        let mut release = target_release.clone();
        release.version = history.iter().map(|r| r.version).max().unwrap_or(0) + 1;
        release.info.status = status::PENDING_ROLLBACK.into();
        release.info.description = format!("Rollback to {target}");
        release.info.last_deployed = now();
        release.info.deleted = storage::ZERO_TIME.into();
        for hook in &mut release.hooks {
            hook.last_run = storage::HookExecution::default();
        }
        self.storage.create(&release).await?;
        let version = release.version;
        let result = self.timed(async {
            self.run_hooks(&mut release, "pre-rollback").await?;
            let objects = self.apply_manifest(&release.manifest).await?;
            self.delete_removed(&current.manifest, &release.manifest).await?;
            self.supersede(history, version).await?;
            self.wait(&objects).await?;
            self.run_hooks(&mut release, "post-rollback").await
        });
        match result.await {
            Ok(()) => {
                release.info.status = status::DEPLOYED.into();
                self.storage.update(&release).await?;
                self.prune_history().await?;
                Ok(release)
            }
            Err(err) => {
                let created =
                    self.created_by(&current.manifest, &release.manifest).await.unwrap_or_default();
                let err = self.cleanup_after_failure(&created, err).await;
                let message = format!("Rollback \"{}\" failed: {err}", release.name);
                self.fail(release, message).await?;
                self.prune_history().await?;
                Err(err)
            }
        }
    }

    /// Runs the test hooks of the latest release selected by `select` and records their runs.
    ///
    /// # Errors
    /// The first failing test; the runs are recorded either way.
    pub async fn test(
        &self,
        mut release: Release,
        select: &(dyn Fn(&Hook) -> bool + Sync),
    ) -> Result<Release, (Release, ActionError)> {
        // Test hooks run even when install/upgrade hooks are disabled.
        let result = self.timed(self.run_hooks_filtered(&mut release, "test", select, true)).await;
        if let Err(err) = self.storage.update(&release).await {
            return Err((release, err.into()));
        }
        match result {
            Ok(()) => Ok(release),
            Err(err) => Err((release, err)),
        }
    }

    /// Uninstalls the latest release: delete hooks, the manifest's objects, then the history
    /// (or marks it `uninstalled` with `keep_history`).
    ///
    /// # Errors
    /// Any step.
    pub async fn uninstall(
        &self,
        history: &[Release],
        keep_history: bool,
    ) -> Result<Option<Release>, ActionError> {
        let Some(mut release) = history.last().cloned() else { return Ok(None) };
        if release.info.status == status::UNINSTALLED {
            if !keep_history {
                for old in history {
                    self.storage.delete(&old.name, old.version).await?;
                }
            }
            return Ok(Some(release));
        }
        release.info.status = status::UNINSTALLING.into();
        self.storage.update(&release).await?;
        let result = self.timed(async {
            self.run_hooks(&mut release, "pre-delete").await?;
            let ids = self.ids(&release.manifest).await?;
            let mut reversed = ids.clone();
            reversed.reverse();
            self.delete_with_propagation(&reversed).await?;
            self.run_hooks(&mut release, "post-delete").await
        });
        match result.await {
            Ok(()) => {
                if keep_history {
                    release.info.status = status::UNINSTALLED.into();
                    release.info.deleted = now();
                    release.info.description = "Uninstallation complete".into();
                    self.storage.update(&release).await?;
                } else {
                    for old in history {
                        self.storage.delete(&old.name, old.version).await?;
                    }
                }
                Ok(Some(release))
            }
            Err(err) => {
                let message = format!("uninstallation completed with 1 error(s): {err}");
                self.fail(release, message).await?;
                Err(err)
            }
        }
    }

    /// Marks a release left in `pending-*` (a crashed action) as failed, so remediation can
    /// act on it (Flux's unlock).
    ///
    /// # Errors
    /// When the storage update fails.
    pub async fn unlock(&self, release: &Release) -> Result<Release, ActionError> {
        let mut release = release.clone();
        let previous = release.info.status.clone();
        release.info.status = status::FAILED.into();
        release.info.description = format!("Release unlocked from stale '{previous}' state");
        self.storage.update(&release).await?;
        Ok(release)
    }
}

/// An object of the release that differs from the cluster.
#[derive(Debug, Clone)]
pub struct Drift {
    /// The object.
    pub id: ObjectId,
    /// The object as the release wants it (ready to apply).
    pub desired: Value,
    /// `created` when missing, else `changed` with the first differing paths.
    pub change: String,
}

/// A drift ignore rule: JSON pointers removed from the selected objects before comparing.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRule {
    /// JSON pointers (`/spec/replicas`).
    pub paths: Vec<String>,
    /// Selected kind (all when `None`).
    pub kind: Option<String>,
    /// Selected name.
    pub name: Option<String>,
    /// Selected namespace.
    pub namespace: Option<String>,
    /// Selected API group.
    pub group: Option<String>,
}

impl IgnoreRule {
    fn selects(&self, id: &ObjectId) -> bool {
        self.kind.as_ref().is_none_or(|k| *k == id.kind)
            && self.name.as_ref().is_none_or(|n| *n == id.name)
            && self.namespace.as_ref().is_none_or(|n| *n == id.namespace)
            && self.group.as_ref().is_none_or(|g| *g == id.group)
    }
}

/// Removes what the API server adds, so a dry-run result compares with the live object.
fn comparable(obj: &Value, ignore: &[&IgnoreRule]) -> Value {
    let mut obj = obj.clone();
    if let Some(metadata) = obj["metadata"].as_object_mut() {
        for field in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
            "selfLink",
        ] {
            metadata.remove(field);
        }
    }
    if let Some(map) = obj.as_object_mut() {
        map.remove("status");
    }
    for rule in ignore {
        for path in &rule.paths {
            remove_pointer(&mut obj, path);
        }
    }
    obj
}

fn remove_pointer(obj: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else { return };
    let last = last.replace("~1", "/").replace("~0", "~");
    let parent = if parent.is_empty() { Some(obj) } else { obj.pointer_mut(parent) };
    match parent {
        Some(Value::Object(map)) => {
            map.remove(&last);
        }
        Some(Value::Array(items)) => {
            if let Ok(index) = last.parse::<usize>()
                && index < items.len()
            {
                items.remove(index);
            }
        }
        _ => {}
    }
}

/// The first JSON paths where `a` and `b` differ.
fn differences(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    if out.len() >= 5 {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let (l, r) =
                    (x.get(key).unwrap_or(&Value::Null), y.get(key).unwrap_or(&Value::Null));
                differences(l, r, &format!("{path}/{key}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (index, (l, r)) in x.iter().zip(y).enumerate() {
                differences(l, r, &format!("{path}/{index}"), out);
            }
        }
        (l, r) if l != r => out.push(if path.is_empty() { "/".into() } else { path.to_string() }),
        _ => {}
    }
}

impl Actions {
    /// Compares the release's objects with the cluster through server-side apply dry-runs
    /// (Flux's drift detection). Objects labelled or annotated
    /// `helm.toolkit.fluxcd.io/driftDetection: disabled` are skipped.
    ///
    /// # Errors
    /// A manifest that does not parse, or an API error other than not-found.
    pub async fn detect_drift(
        &self,
        manifest: &str,
        ignore: &[IgnoreRule],
    ) -> Result<Vec<Drift>, ActionError> {
        let mut objects = manifest_objects(manifest)?;
        self.prepare(&mut objects).await;
        let mut drifts = Vec::new();
        for mut obj in objects {
            let disabled = |map: &Value| {
                map[sluice_api::helm::DRIFT_DETECTION_ANNOTATION].as_str() == Some("disabled")
            };
            if disabled(&obj["metadata"]["annotations"]) || disabled(&obj["metadata"]["labels"]) {
                continue;
            }
            sluice_ssa::apply::set_native_defaults(&mut obj);
            if let Some(labels) = obj["metadata"]["labels"].as_object_mut() {
                for (key, value) in &self.settings.owner_labels {
                    labels.insert(key.clone(), Value::String(value.clone()));
                }
            }
            let Some(id) = ObjectId::of(&obj) else { continue };
            let Some(api) = self.dynamic_api(&id).await else {
                drifts.push(Drift { id, desired: obj, change: "created".into() });
                continue;
            };
            let live =
                api.get_opt(&id.name).await.map_err(|e| kube_error(format!("reading {id}"), e))?;
            let Some(live) = live else {
                drifts.push(Drift { id, desired: obj, change: "created".into() });
                continue;
            };
            let params = kube::api::PatchParams::apply(FIELD_MANAGER).force().dry_run();
            let dry = api
                .patch(&id.name, &params, &kube::api::Patch::Apply(&obj))
                .await
                .map_err(|e| kube_error(format!("dry-run apply of {id}"), e))?;
            let rules: Vec<&IgnoreRule> = ignore.iter().filter(|r| r.selects(&id)).collect();
            let live = comparable(&serde_json::to_value(live).unwrap_or_default(), &rules);
            let dry = comparable(&serde_json::to_value(dry).unwrap_or_default(), &rules);
            if live != dry {
                let mut paths = Vec::new();
                differences(&live, &dry, "", &mut paths);
                drifts.push(Drift {
                    id,
                    desired: obj,
                    change: format!("changed ({})", paths.join(", ")),
                });
            }
        }
        Ok(drifts)
    }

    /// Re-applies drifted objects (drift correction).
    ///
    /// # Errors
    /// When an apply fails.
    pub async fn correct_drift(&self, drifts: &[Drift]) -> Result<(), ActionError> {
        for drift in drifts {
            self.apply.apply(&drift.desired, &ApplyOptions::default()).await?;
        }
        Ok(())
    }
}

/// The result of a Job or Pod hook: `Some(Ok)` done, `Some(Err)` failed, `None` still running.
fn hook_outcome(kind: &str, obj: &Value) -> Option<Result<(), String>> {
    if obj.is_null() {
        return Some(Err("the hook object disappeared before completing".into()));
    }
    match kind {
        "Job" => {
            for condition in obj["status"]["conditions"].as_array().into_iter().flatten() {
                if condition["status"] != "True" {
                    continue;
                }
                match condition["type"].as_str() {
                    Some("Complete") => return Some(Ok(())),
                    Some("Failed") => {
                        return Some(Err(format!(
                            "job failed: {}",
                            condition["reason"].as_str().unwrap_or("BackoffLimitExceeded")
                        )));
                    }
                    _ => {}
                }
            }
            None
        }
        "Pod" => match obj["status"]["phase"].as_str() {
            Some("Succeeded") => Some(Ok(())),
            Some("Failed") => Some(Err("pod failed".into())),
            _ => None,
        },
        _ => Some(Ok(())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hook_outcomes_follow_job_and_pod_status() {
        assert_eq!(hook_outcome("Job", &json!({"status": {}})), None);
        assert_eq!(
            hook_outcome(
                "Job",
                &json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
            ),
            Some(Ok(()))
        );
        assert!(matches!(
            hook_outcome("Job", &json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}})),
            Some(Err(m)) if m.contains("DeadlineExceeded")
        ));
        assert_eq!(hook_outcome("Pod", &json!({"status": {"phase": "Running"}})), None);
        assert_eq!(hook_outcome("Pod", &json!({"status": {"phase": "Succeeded"}})), Some(Ok(())));
        assert!(hook_outcome("Pod", &Value::Null).unwrap().is_err());
    }

    #[test]
    fn manifests_parse_into_objects() {
        let manifest = "---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# Source: c/templates/b.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: b\n";
        let objects = manifest_objects(manifest).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1]["kind"], "Deployment");
        let err =
            manifest_objects("---\n# Source: c/templates/x.yaml\nkind: ConfigMap\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "manifest c/templates/x.yaml: document has no apiVersion, kind or metadata.name"
        );
    }

    #[test]
    fn hooks_carry_weights_and_policies() {
        let chart = sluice_helm::chart::load_files(vec![
            sluice_helm::chart::ChartFile { name: "Chart.yaml".into(), data: b"apiVersion: v2\nname: c\nversion: 1.0.0\n".to_vec() },
            sluice_helm::chart::ChartFile {
                name: "templates/t.yaml".into(),
                data: b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations:\n    helm.sh/hook: test\n    helm.sh/hook-weight: \"-2\"\n    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded\n".to_vec(),
            },
        ])
        .unwrap();
        let rendered =
            sluice_helm::render_chart(chart, &Map::new(), &sluice_helm::TemplateOptions::default())
                .unwrap();
        let hooks = hooks_of(&rendered);
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].name, "t");
        assert_eq!(hooks[0].weight, -2);
        assert_eq!(hooks[0].events, vec!["test".to_string()]);
        assert_eq!(
            hooks[0].delete_policies,
            vec!["before-hook-creation".to_string(), "hook-succeeded".to_string()]
        );
        assert_eq!(hooks[0].path, "c/templates/t.yaml");
    }

    #[test]
    fn comparison_drops_server_fields_and_ignored_paths() {
        let rule = IgnoreRule {
            paths: vec!["/spec/replicas".into(), "/metadata/annotations/a~1b".into()],
            kind: Some("Deployment".into()),
            ..IgnoreRule::default()
        };
        let live = json!({"metadata": {"name": "d", "resourceVersion": "3", "annotations": {"a/b": "x", "c": "y"}}, "spec": {"replicas": 3, "x": [1, 2]}, "status": {}});
        let dry = json!({"metadata": {"name": "d", "resourceVersion": "4", "annotations": {"a/b": "z", "c": "y"}}, "spec": {"replicas": 1, "x": [1, 2]}});
        assert_eq!(comparable(&live, &[&rule]), comparable(&dry, &[&rule]));
        assert_ne!(comparable(&live, &[]), comparable(&dry, &[]));
        let mut paths = Vec::new();
        differences(&comparable(&live, &[]), &comparable(&dry, &[]), "", &mut paths);
        assert_eq!(paths, ["/metadata/annotations/a/b", "/spec/replicas"]);
        let id = ObjectId::of(&json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"}})).unwrap();
        assert!(rule.selects(&id));
        assert!(!IgnoreRule { kind: Some("Service".into()), ..IgnoreRule::default() }.selects(&id));
    }

    #[test]
    fn crd_policies_parse() {
        assert_eq!(
            CrdPolicy::parse("install.crds", None, CrdPolicy::Create).unwrap(),
            CrdPolicy::Create
        );
        assert_eq!(
            CrdPolicy::parse("upgrade.crds", Some("CreateReplace"), CrdPolicy::Skip).unwrap(),
            CrdPolicy::CreateReplace
        );
        assert!(
            CrdPolicy::parse("install.crds", Some("Always"), CrdPolicy::Create)
                .unwrap_err()
                .contains("spec.install.crds")
        );
    }

    #[test]
    fn deletion_propagation_follows_helm() {
        assert_eq!(deletion_propagation(None).unwrap(), PropagationPolicy::Background);
        assert_eq!(deletion_propagation(Some("orphan")).unwrap(), PropagationPolicy::Orphan);
        assert_eq!(
            deletion_propagation(Some("foreground")).unwrap(),
            PropagationPolicy::Foreground
        );
        let err = deletion_propagation(Some("cascade")).unwrap_err();
        assert!(err.contains("spec.uninstall.deletionPropagation"), "{err}");
    }
}
