//! The resource manager: staged server-side apply with dry-run diffing, drift correction,
//! pruning of inventories, and waiting for health.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::Value;
use sluice_api::kustomize::{
    FORCE_ANNOTATION, PRUNE_ANNOTATION, RECONCILE_ANNOTATION, ResourceRef, SSA_ANNOTATION,
};
use tokio::sync::RwLock;

use crate::kstatus::{self, Status};
use crate::order;

/// Requests one reconcile keeps in flight for dry-runs, applies and health reads (Flux's
/// `--concurrent-ssa` default).
const IN_FLIGHT: usize = 4;

/// Field managers whose fields are taken over so that manual edits are reverted.
pub const TAKEN_OVER_MANAGERS: &[&str] = &[
    "kubectl",
    "kubectl-client-side-apply",
    "kubectl-edit",
    "kubectl-patch",
    "before-first-apply",
];

/// Why applying, pruning or waiting failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object has no apiVersion, kind or name.
    #[error("object {index} of the set has no {field}")]
    Invalid {
        /// Position of the object in the set.
        index: usize,
        /// The missing field.
        field: &'static str,
    },
    /// The cluster does not serve the object's kind.
    #[error(
        "{id}: no matches for kind \"{kind}\" in version \"{api_version}\": is its CRD installed?"
    )]
    UnknownKind {
        /// The object.
        id: String,
        /// Its kind.
        kind: String,
        /// Its apiVersion.
        api_version: String,
    },
    /// A namespaced object has no namespace.
    #[error(
        "{id}: namespace not specified: set metadata.namespace or the Kustomization's spec.targetNamespace"
    )]
    MissingNamespace {
        /// The object.
        id: String,
    },
    /// The API server refused an operation.
    #[error("{id} {operation} failed: {message}")]
    Api {
        /// The object.
        id: String,
        /// What was attempted.
        operation: &'static str,
        /// The API server's message.
        message: String,
    },
    /// Health checks did not pass.
    #[error("health check failed after {elapsed:?}: {details}")]
    Unhealthy {
        /// How long we waited.
        elapsed: Duration,
        /// The objects that are not ready and why.
        details: String,
    },
    /// Discovery failed.
    #[error("discovering the Kubernetes API: {0}")]
    Discovery(String),
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Created.
    Created,
    /// Changed.
    Configured,
    /// Already as declared.
    Unchanged,
    /// Deleted (pruned).
    Deleted,
    /// Left alone by policy.
    Skipped,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
            Action::Skipped => "skipped",
        })
    }
}

/// Identity of an object: group, kind, namespace and name, plus the version used.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    /// API group ("" for core).
    pub group: String,
    /// API version (without group).
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectId {
    /// The id of a JSON object.
    pub fn of(obj: &Value) -> Option<ObjectId> {
        let api_version = obj["apiVersion"].as_str()?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Some(ObjectId {
            group: group.to_string(),
            version: version.to_string(),
            kind: obj["kind"].as_str()?.to_string(),
            namespace: obj["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
            name: obj["metadata"]["name"].as_str()?.to_string(),
        })
    }

    /// Parses an inventory entry (`<namespace>_<name>_<group>_<kind>`, version `v`).
    pub fn from_inventory(entry: &ResourceRef) -> Option<ObjectId> {
        let mut parts = entry.id.rsplitn(3, '_');
        let kind = parts.next()?.to_string();
        let group = parts.next()?.to_string();
        let rest = parts.next()?;
        // Names cannot contain '_', namespaces neither: split the first '_'.
        let (namespace, name) = rest.split_once('_')?;
        Some(ObjectId {
            group,
            version: entry.v.clone(),
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// The inventory entry of this object.
    pub fn to_inventory(&self) -> ResourceRef {
        ResourceRef {
            id: format!("{}_{}_{}_{}", self.namespace, self.name, self.group, self.kind),
            v: self.version.clone(),
        }
    }

    /// The apiVersion of this object.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

impl std::fmt::Display for ObjectId {
    /// `Kind/namespace/name`, as Flux writes it in change sets and events.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One line of a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetEntry {
    /// The object.
    pub id: ObjectId,
    /// What happened.
    pub action: Action,
}

/// What an apply or prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// The entries, in the order the objects were handled.
    pub entries: Vec<ChangeSetEntry>,
}

impl ChangeSet {
    /// Whether anything was created, configured or deleted.
    pub fn has_changes(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e.action, Action::Created | Action::Configured | Action::Deleted))
    }

    /// `Kind/ns/name action` lines of the changed objects, as Flux puts them in event messages.
    pub fn summary(&self) -> String {
        self.entries
            .iter()
            .filter(|e| matches!(e.action, Action::Created | Action::Configured | Action::Deleted))
            .map(|e| format!("{} {}", e.id, e.action))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Options of an apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Recreate objects whose immutable fields changed (the Kustomization's `spec.force`).
    pub force: bool,
    /// How long to wait for stage-one objects (CRDs, Namespaces) to become ready.
    pub wait_timeout: Option<Duration>,
}

type KindKey = (String, String, String);
type Resolved = (ApiResource, ApiCapabilities);

/// Resolved kinds by (group, version, kind), each kept for `ttl` after it was resolved.
///
/// A [`ResourceManager`] has one of its own; a controller that builds a manager per reconcile
/// shares one across them ([`ResourceManager::with_kind_cache`]) so each reconcile does not
/// query discovery again for the same kinds.
#[derive(Clone, Debug)]
pub struct KindCache {
    entries: std::sync::Arc<RwLock<BTreeMap<KindKey, (Resolved, std::time::Instant)>>>,
    ttl: Duration,
}

impl KindCache {
    /// An empty cache whose entries expire `ttl` after they were resolved, so a kind removed
    /// from the cluster (a deleted CRD) is looked up again.
    pub fn new(ttl: Duration) -> Self {
        KindCache { entries: Default::default(), ttl }
    }

    async fn get(&self, key: &KindKey) -> Option<Resolved> {
        let entries = self.entries.read().await;
        let (found, at) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| found.clone())
    }

    async fn insert(&self, key: KindKey, found: Resolved) {
        self.entries.write().await.insert(key, (found, std::time::Instant::now()));
    }

    async fn clear(&self) {
        self.entries.write().await.clear();
    }
}

/// A custom health reader: the health of the objects it knows (`None` for the others, which
/// kstatus computes). Flux's `healthCheckExprs` are one.
pub type StatusReader = std::sync::Arc<dyn Fn(&Value) -> Option<kstatus::Health> + Send + Sync>;

/// Applies, prunes and checks sets of objects for one owner.
pub struct ResourceManager {
    client: kube::Client,
    field_manager: String,
    owner_labels: BTreeMap<String, String>,
    /// Health of the kinds kstatus does not know, consulted first when waiting.
    status_reader: Option<StatusReader>,
    /// Resolved kinds; only the group/version of each kind is queried, so a group that
    /// disappears concurrently (a CRD being deleted) cannot fail unrelated lookups.
    discovery: KindCache,
    /// Objects whose apply (or dry-run, when unchanged) answer was already Current: a wait
    /// does not read them again (a ServiceAccount, a ClusterIP Service, a ConfigMap).
    current: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl std::fmt::Debug for ResourceManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceManager")
            .field("field_manager", &self.field_manager)
            .field("owner_labels", &self.owner_labels)
            .finish()
    }
}

fn annotation_is(obj: &Value, key: &str, value: &str) -> bool {
    let check = |map: &Value| map[key].as_str().is_some_and(|v| v.eq_ignore_ascii_case(value));
    check(&obj["metadata"]["annotations"]) || check(&obj["metadata"]["labels"])
}

fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

fn is_immutable_error(message: &str) -> bool {
    message.contains("field is immutable")
        || message.contains("cannot change")
        || message.contains("Forbidden: updates to")
}

/// Sets the defaults that server-side apply needs before the API server's defaulting runs:
/// `protocol: TCP` on container and Service ports, which are list-map keys (Flux's
/// `SetNativeKindsDefaults`). Without it the apply fails with "associative list with keys has
/// an element that omits key field \"protocol\"".
pub fn set_native_defaults(obj: &mut Value) {
    fn default_ports(ports: &mut Value) {
        for port in ports.as_array_mut().into_iter().flatten() {
            if let Some(port) = port.as_object_mut() {
                port.entry("protocol").or_insert_with(|| Value::String("TCP".into()));
            }
        }
    }
    fn default_pod_spec(spec: &mut Value) {
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            for container in spec[list].as_array_mut().into_iter().flatten() {
                if container.get("ports").is_some() {
                    default_ports(&mut container["ports"]);
                }
            }
        }
    }
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    match kind.as_str() {
        "Service" if obj["spec"].get("ports").is_some() => default_ports(&mut obj["spec"]["ports"]),
        "Pod" if obj.get("spec").is_some() => default_pod_spec(&mut obj["spec"]),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController"
            if obj["spec"]["template"].get("spec").is_some() =>
        {
            default_pod_spec(&mut obj["spec"]["template"]["spec"])
        }
        "CronJob" if obj["spec"]["jobTemplate"]["spec"]["template"].get("spec").is_some() => {
            default_pod_spec(&mut obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        }
        _ => {}
    }
}

/// Removes what the API server adds, so a dry-run result compares with the live object.
fn comparable(obj: &Value) -> Value {
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
    obj
}

/// Unions two managedFields `fieldsV1` tries.
fn merge_fields(into: &mut Value, from: &Value) {
    if let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) {
        for (key, value) in from {
            merge_fields(
                into.entry(key.clone()).or_insert_with(|| Value::Object(Default::default())),
                value,
            );
        }
    }
}

impl ResourceManager {
    /// A manager applying with `field_manager` and stamping `owner_labels` on every object.
    pub fn new(
        client: kube::Client,
        field_manager: impl Into<String>,
        owner_labels: BTreeMap<String, String>,
    ) -> Self {
        ResourceManager {
            client,
            field_manager: field_manager.into(),
            owner_labels,
            status_reader: None,
            discovery: KindCache::new(Duration::from_secs(3600)),
            current: Default::default(),
        }
    }

    /// Resolves kinds through `cache`, shared with other managers (see [`KindCache`]).
    #[must_use]
    pub fn with_kind_cache(mut self, cache: KindCache) -> Self {
        self.discovery = cache;
        self
    }

    /// Waits with `reader` consulted before kstatus for every existing object that is not
    /// being deleted.
    #[must_use]
    pub fn with_status_reader(mut self, reader: StatusReader) -> Self {
        self.status_reader = Some(reader);
        self
    }

    /// Remembers whether `obj`, as the API server answered its apply, is Current.
    fn note_health(&self, id: &ObjectId, obj: &Value) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if self.health_of(obj).status == Status::Current {
            current.insert(id.to_string());
        } else {
            current.remove(&id.to_string());
        }
    }

    fn health_of(&self, obj: &Value) -> kstatus::Health {
        let custom = if obj["metadata"]["deletionTimestamp"].is_string() {
            None
        } else {
            self.status_reader.as_ref().and_then(|reader| reader(obj))
        };
        custom.unwrap_or_else(|| kstatus::compute(obj))
    }

    async fn refresh_discovery(&self) -> Result<(), Error> {
        self.discovery.clear().await;
        Ok(())
    }

    async fn resolve(&self, id: &ObjectId) -> Result<(ApiResource, ApiCapabilities), Error> {
        let key = (id.group.clone(), id.version.clone(), id.kind.clone());
        if let Some(found) = self.discovery.get(&key).await {
            return Ok(found);
        }
        let gvk = kube::api::GroupVersionKind::gvk(&id.group, &id.version, &id.kind);
        match kube::discovery::oneshot::pinned_kind(&self.client, &gvk).await {
            Ok(found) => {
                self.discovery.insert(key, found.clone()).await;
                Ok(found)
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Err(Error::UnknownKind {
                id: id.to_string(),
                kind: id.kind.clone(),
                api_version: id.api_version(),
            }),
            Err(kube::Error::Discovery(_)) => Err(Error::UnknownKind {
                id: id.to_string(),
                kind: id.kind.clone(),
                api_version: id.api_version(),
            }),
            Err(err) => Err(Error::Discovery(err.to_string())),
        }
    }

    async fn api(&self, id: &ObjectId) -> Result<Api<DynamicObject>, Error> {
        let (resource, capabilities) = self.resolve(id).await?;
        Ok(match capabilities.scope {
            Scope::Namespaced => {
                if id.namespace.is_empty() {
                    return Err(Error::MissingNamespace { id: id.to_string() });
                }
                Api::namespaced_with(self.client.clone(), &id.namespace, &resource)
            }
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
        })
    }

    fn with_owner_labels(&self, obj: &Value) -> Value {
        let mut obj = obj.clone();
        set_native_defaults(&mut obj);
        if !self.owner_labels.is_empty() {
            let labels = obj["metadata"]
                .as_object_mut()
                .map(|m| m.entry("labels").or_insert_with(|| Value::Object(Default::default())));
            if let Some(Value::Object(labels)) = labels {
                for (key, value) in &self.owner_labels {
                    labels.insert(key.clone(), Value::String(value.clone()));
                }
            }
        }
        obj
    }

    /// Applies `objects` in Flux's stages: CRDs, Namespaces and ClusterRoles first (and waits for
    /// them), then `*Class` kinds, then the rest in kind order.
    pub async fn apply_all_staged(
        &self,
        objects: &[Value],
        options: &ApplyOptions,
    ) -> Result<ChangeSet, Error> {
        let mut ids = Vec::with_capacity(objects.len());
        for (index, obj) in objects.iter().enumerate() {
            for (field, ok) in [
                ("apiVersion", obj["apiVersion"].is_string()),
                ("kind", obj["kind"].is_string()),
                ("metadata.name", obj["metadata"]["name"].is_string()),
            ] {
                if !ok {
                    return Err(Error::Invalid { index, field });
                }
            }
            ids.push(ObjectId::of(obj));
        }
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let mut stages: [Vec<Value>; 3] = Default::default();
        for obj in objects {
            stages[order::stage(obj)].push(obj.clone());
        }
        let mut change_set = ChangeSet::default();
        for (stage_index, stage) in stages.iter_mut().enumerate() {
            order::sort_for_apply(stage);
            let dry_runs = self.validate_stage(stage, options).await?;
            // Up to IN_FLIGHT applies at once (Flux's `--concurrent-ssa`), reported in set
            // order; the first failure stops the stage.
            let applies: Vec<_> = stage
                .iter()
                .zip(dry_runs)
                .map(|(obj, dry_run)| self.apply_checked(obj, options, dry_run))
                .collect();
            let applied: Vec<ChangeSetEntry> =
                futures::stream::iter(applies).buffered(IN_FLIGHT).try_collect().await?;
            change_set.entries.extend(applied);
            if stage_index < 2 && !stage.is_empty() {
                let timeout = options.wait_timeout.unwrap_or(Duration::from_secs(60));
                self.wait_for_set(stage, timeout).await?;
                // New CRDs make new kinds resolvable.
                self.refresh_discovery().await?;
            }
        }
        Ok(change_set)
    }

    /// Server-side dry-runs every object of a stage, so that one invalid or forbidden object
    /// fails the stage before anything of it is applied (Flux's `ApplyAll` dry-runs the whole
    /// set first). Immutable-field errors pass when the object may be recreated.
    ///
    /// Returns each object's dry-run result, which [`Self::apply_checked`] compares with the
    /// live object instead of dry-running it a second time (`None` where it was not run).
    async fn validate_stage(
        &self,
        stage: &[Value],
        options: &ApplyOptions,
    ) -> Result<Vec<Option<Value>>, Error> {
        let params = PatchParams::apply(&self.field_manager).force().dry_run();
        let dry_run = |obj: &Value| {
            let params = params.clone();
            let obj = obj.clone();
            async move {
                if annotation_is(&obj, RECONCILE_ANNOTATION, "disabled")
                    || annotation_is(&obj, SSA_ANNOTATION, "Ignore")
                {
                    return Ok(None);
                }
                let Some(id) = ObjectId::of(&obj) else { return Ok(None) };
                let api = self.api(&id).await?;
                let desired = self.with_owner_labels(&obj);
                match api.patch(&id.name, &params, &Patch::Apply(&desired)).await {
                    Ok(result) => Ok(serde_json::to_value(result).ok()),
                    Err(err) => {
                        let message = api_message(&err);
                        let force =
                            options.force || annotation_is(&obj, FORCE_ANNOTATION, "enabled");
                        if force && is_immutable_error(&message) {
                            return Ok(None);
                        }
                        Err(Error::Api { id: id.to_string(), operation: "dry-run apply", message })
                    }
                }
            }
        };
        // Dry-runs change nothing, so they run side by side; the first failure in set order
        // is the one reported.
        futures::stream::iter(stage.iter().map(dry_run))
            .buffered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// Applies one object: skipped by policy, created, configured when the dry-run differs from
    /// the live object, or unchanged.
    pub async fn apply(
        &self,
        obj: &Value,
        options: &ApplyOptions,
    ) -> Result<ChangeSetEntry, Error> {
        self.apply_checked(obj, options, None).await
    }

    /// [`Self::apply`] with the object's dry-run result when the caller has one already.
    ///
    /// A dry-run that created the object (the API server gives a dry-run create no
    /// `resourceVersion`) means it does not exist: it is applied without reading it first.
    async fn apply_checked(
        &self,
        obj: &Value,
        options: &ApplyOptions,
        dry_run: Option<Value>,
    ) -> Result<ChangeSetEntry, Error> {
        let id = ObjectId::of(obj)
            .ok_or(Error::Invalid { index: 0, field: "apiVersion, kind or metadata.name" })?;
        let skipped = ChangeSetEntry { id: id.clone(), action: Action::Skipped };
        if annotation_is(obj, RECONCILE_ANNOTATION, "disabled")
            || annotation_is(obj, SSA_ANNOTATION, "Ignore")
        {
            return Ok(skipped);
        }
        let api = self.api(&id).await?;
        let desired = self.with_owner_labels(obj);
        let params = PatchParams::apply(&self.field_manager).force();
        let dry_run_created =
            dry_run.as_ref().is_some_and(|d| d["metadata"]["resourceVersion"].is_null());
        if dry_run_created {
            self.patch_apply(&api, &id, &desired, &params).await?;
            return Ok(ChangeSetEntry { id, action: Action::Created });
        }
        let existing = match api.get(&id.name).await {
            Ok(existing) => Some(serde_json::to_value(existing).unwrap_or_default()),
            Err(err) if is_not_found(&err) => None,
            Err(err) => {
                return Err(Error::Api {
                    id: id.to_string(),
                    operation: "get",
                    message: api_message(&err),
                });
            }
        };
        let Some(existing) = existing else {
            self.patch_apply(&api, &id, &desired, &params).await?;
            return Ok(ChangeSetEntry { id, action: Action::Created });
        };
        if annotation_is(&existing, RECONCILE_ANNOTATION, "disabled")
            || annotation_is(&existing, SSA_ANNOTATION, "Ignore")
            || annotation_is(obj, SSA_ANNOTATION, "IfNotPresent")
            || annotation_is(&existing, SSA_ANNOTATION, "IfNotPresent")
        {
            return Ok(skipped);
        }
        let merge_policy = annotation_is(obj, SSA_ANNOTATION, "Merge")
            || annotation_is(&existing, SSA_ANNOTATION, "Merge");
        let took_over = if merge_policy {
            false
        } else {
            self.take_over_managed_fields(&api, &id, &existing).await?
        };
        let dry_run = match dry_run {
            Some(result) if !took_over => Ok(result),
            _ => api
                .patch(&id.name, &params.clone().dry_run(), &Patch::Apply(&desired))
                .await
                .map(|result| serde_json::to_value(result).unwrap_or_default()),
        };
        let dry_run = match dry_run {
            Ok(result) => result,
            Err(err) => {
                let message = api_message(&err);
                let force = options.force || annotation_is(obj, FORCE_ANNOTATION, "enabled");
                if force && is_immutable_error(&message) {
                    self.recreate(&api, &id, &desired, &params).await?;
                    return Ok(ChangeSetEntry { id, action: Action::Configured });
                }
                return Err(Error::Api { id: id.to_string(), operation: "dry-run apply", message });
            }
        };
        if comparable(&dry_run) == comparable(&existing) && !took_over {
            self.note_health(&id, &dry_run);
            return Ok(ChangeSetEntry { id, action: Action::Unchanged });
        }
        self.patch_apply(&api, &id, &desired, &params).await?;
        let action = if comparable(&dry_run) == comparable(&existing) {
            Action::Unchanged
        } else {
            Action::Configured
        };
        Ok(ChangeSetEntry { id, action })
    }

    async fn patch_apply(
        &self,
        api: &Api<DynamicObject>,
        id: &ObjectId,
        desired: &Value,
        params: &PatchParams,
    ) -> Result<(), Error> {
        let applied = api.patch(&id.name, params, &Patch::Apply(desired)).await.map_err(|err| {
            Error::Api { id: id.to_string(), operation: "apply", message: api_message(&err) }
        })?;
        self.note_health(id, &serde_json::to_value(applied).unwrap_or_default());
        Ok(())
    }

    async fn recreate(
        &self,
        api: &Api<DynamicObject>,
        id: &ObjectId,
        desired: &Value,
        params: &PatchParams,
    ) -> Result<(), Error> {
        let delete = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        api.delete(&id.name, &delete).await.map_err(|err| Error::Api {
            id: id.to_string(),
            operation: "delete for recreate",
            message: api_message(&err),
        })?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while api.get_opt(&id.name).await.ok().flatten().is_some() {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Api {
                    id: id.to_string(),
                    operation: "recreate",
                    message: "object was not deleted within 30s".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.patch_apply(api, id, desired, params).await
    }

    /// Reassigns the fields owned by kubectl and other manual managers to our field manager, so
    /// the next apply reverts manual edits and removes manually added fields. Returns whether
    /// anything was taken over.
    async fn take_over_managed_fields(
        &self,
        api: &Api<DynamicObject>,
        id: &ObjectId,
        existing: &Value,
    ) -> Result<bool, Error> {
        let Some(entries) = existing["metadata"]["managedFields"].as_array() else {
            return Ok(false);
        };
        let is_manual =
            |e: &Value| e["manager"].as_str().is_some_and(|m| TAKEN_OVER_MANAGERS.contains(&m));
        if !entries.iter().any(is_manual) {
            return Ok(false);
        }
        let mut ours: Option<Value> = None;
        let mut kept = Vec::new();
        for entry in entries {
            let mine =
                entry["manager"] == self.field_manager.as_str() && entry["operation"] == "Apply";
            if is_manual(entry) || mine {
                let merged = ours.get_or_insert_with(|| {
                    let mut base = entry.clone();
                    base["manager"] = Value::String(self.field_manager.clone());
                    base["operation"] = Value::String("Apply".into());
                    base["fieldsV1"] = Value::Object(Default::default());
                    base
                });
                merge_fields(&mut merged["fieldsV1"], &entry["fieldsV1"]);
                if mine {
                    merged["apiVersion"] = entry["apiVersion"].clone();
                }
            } else {
                kept.push(entry.clone());
            }
        }
        kept.extend(ours);
        let patch = serde_json::json!({"metadata": {"managedFields": kept, "resourceVersion": existing["metadata"]["resourceVersion"]}});
        api.patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(
            |err| Error::Api {
                id: id.to_string(),
                operation: "taking over managed fields",
                message: api_message(&err),
            },
        )?;
        Ok(true)
    }

    /// Deletes the objects of `stale` that this owner still owns (owner labels match) and that
    /// are not annotated `prune: disabled`.
    pub async fn delete_all(&self, stale: &[ObjectId]) -> Result<ChangeSet, Error> {
        let mut change_set = ChangeSet::default();
        for id in stale {
            let api = match self.api(id).await {
                Ok(api) => api,
                // A kind that no longer exists has nothing left to delete.
                Err(Error::UnknownKind { .. }) => continue,
                Err(err) => return Err(err),
            };
            let existing = match api.get_opt(&id.name).await {
                Ok(Some(existing)) => serde_json::to_value(existing).unwrap_or_default(),
                Ok(None) => continue,
                Err(err) => {
                    return Err(Error::Api {
                        id: id.to_string(),
                        operation: "get",
                        message: api_message(&err),
                    });
                }
            };
            let owned = self
                .owner_labels
                .iter()
                .all(|(k, v)| existing["metadata"]["labels"][k] == v.as_str());
            if !owned || annotation_is(&existing, PRUNE_ANNOTATION, "disabled") {
                change_set.entries.push(ChangeSetEntry { id: id.clone(), action: Action::Skipped });
                continue;
            }
            let delete = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..Default::default()
            };
            match api.delete(&id.name, &delete).await {
                Ok(_) => change_set
                    .entries
                    .push(ChangeSetEntry { id: id.clone(), action: Action::Deleted }),
                Err(err) if is_not_found(&err) => {}
                Err(err) => {
                    return Err(Error::Api {
                        id: id.to_string(),
                        operation: "delete",
                        message: api_message(&err),
                    });
                }
            }
        }
        Ok(change_set)
    }

    /// Waits until every object is Current; fails fast when one is Failed, or after `timeout`.
    pub async fn wait_for_set(&self, objects: &[Value], timeout: Duration) -> Result<(), Error> {
        let ids: Vec<ObjectId> = objects.iter().filter_map(ObjectId::of).collect();
        self.wait_for_ids(&ids, timeout).await
    }

    /// Waits until every object in `ids` is Current.
    pub async fn wait_for_ids(&self, ids: &[ObjectId], timeout: Duration) -> Result<(), Error> {
        let start = tokio::time::Instant::now();
        // Controllers usually observe a fresh object within a few hundred milliseconds: look
        // again soon, then back off to the steady interval.
        let mut interval = Duration::from_millis(100);
        // Objects found Current, here or in their apply's answer, are not read again.
        let mut waiting: Vec<ObjectId> = {
            let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            ids.iter().filter(|id| !current.contains(&id.to_string())).cloned().collect()
        };
        loop {
            let reads: Vec<_> = waiting.iter().cloned().map(|id| self.health_now(id)).collect();
            let healths = futures::stream::iter(reads)
                .buffered(IN_FLIGHT)
                .collect::<Vec<Result<kstatus::Health, Error>>>()
                .await;
            let mut pending = Vec::new();
            let mut still_waiting = Vec::new();
            for (id, health) in waiting.into_iter().zip(healths) {
                let health = health?;
                match health.status {
                    Status::Current => {}
                    Status::Failed => {
                        return Err(Error::Unhealthy {
                            elapsed: start.elapsed(),
                            details: format!("{id} status: 'Failed': {}", health.message),
                        });
                    }
                    status => {
                        pending.push(format!("{id} status: '{status}'"));
                        still_waiting.push(id);
                    }
                }
            }
            waiting = still_waiting;
            if pending.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(Error::Unhealthy {
                    elapsed: start.elapsed(),
                    details: pending.join(", "),
                });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_millis(500));
        }
    }

    /// Reads one object's health now.
    async fn health_now(&self, id: ObjectId) -> Result<kstatus::Health, Error> {
        let api = self.api(&id).await?;
        match api.get_opt(&id.name).await {
            Ok(Some(obj)) => Ok(self.health_of(&serde_json::to_value(obj).unwrap_or_default())),
            Ok(None) => {
                Ok(kstatus::Health { status: Status::NotFound, message: "not found".into() })
            }
            Err(err) => {
                Err(Error::Api { id: id.to_string(), operation: "get", message: api_message(&err) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kind_cache_shares_entries_until_they_expire() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let key: KindKey = ("apps".into(), "v1".into(), "Deployment".into());
            let resolved: Resolved = (
                ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&()),
                ApiCapabilities {
                    scope: Scope::Namespaced,
                    subresources: Vec::new(),
                    operations: Vec::new(),
                },
            );
            let shared = KindCache::new(Duration::from_secs(60));
            shared.clone().insert(key.clone(), resolved.clone()).await;
            let found = shared.get(&key).await.expect("a clone shares the entries");
            assert_eq!(found.0.plural, "deployments");
            shared.clear().await;
            assert!(shared.get(&key).await.is_none(), "clear empties every clone");

            let expiring = KindCache::new(Duration::ZERO);
            expiring.insert(key.clone(), resolved).await;
            assert!(expiring.get(&key).await.is_none(), "an expired kind is resolved again");
        });
    }

    #[test]
    fn inventory_ids_round_trip() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "podinfo", "namespace": "default"}});
        let id = ObjectId::of(&obj).unwrap();
        let entry = id.to_inventory();
        assert_eq!(entry.id, "default_podinfo_apps_Deployment");
        assert_eq!(ObjectId::from_inventory(&entry), Some(id.clone()));
        assert_eq!(id.to_string(), "Deployment/default/podinfo");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}});
        let ns_id = ObjectId::of(&ns).unwrap();
        assert_eq!(ns_id.to_inventory().id, "_apps__Namespace");
        assert_eq!(ObjectId::from_inventory(&ns_id.to_inventory()), Some(ns_id));
    }

    #[test]
    fn policy_annotations_are_case_insensitive_on_labels_and_annotations() {
        let obj = json!({"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/reconcile": "Disabled"}}});
        assert!(annotation_is(&obj, RECONCILE_ANNOTATION, "disabled"));
        let obj =
            json!({"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/prune": "disabled"}}});
        assert!(annotation_is(&obj, PRUNE_ANNOTATION, "disabled"));
        assert!(!annotation_is(&json!({}), PRUNE_ANNOTATION, "disabled"));
    }

    #[test]
    fn managed_field_tries_merge() {
        let mut ours = json!({"f:metadata": {"f:labels": {"f:a": {}}}});
        merge_fields(
            &mut ours,
            &json!({"f:metadata": {"f:labels": {"f:b": {}}}, "f:data": {"f:x": {}}}),
        );
        assert_eq!(
            ours,
            json!({"f:metadata": {"f:labels": {"f:a": {}, "f:b": {}}}, "f:data": {"f:x": {}}})
        );
    }

    #[test]
    fn native_defaults_add_port_protocols() {
        let mut service = json!({"kind": "Service", "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}});
        set_native_defaults(&mut service);
        assert_eq!(
            service["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}])
        );
        let mut deployment = json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 8080}]}, {"name": "b"}]}}}});
        set_native_defaults(&mut deployment);
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
            "TCP"
        );
        assert!(deployment["spec"]["template"]["spec"]["containers"][1].get("ports").is_none());
    }

    #[test]
    fn comparable_ignores_server_fields() {
        let live = json!({"metadata": {"name": "a", "resourceVersion": "1", "managedFields": []}, "data": {"k": "v"}, "status": {}});
        let dry = json!({"metadata": {"name": "a", "resourceVersion": "2"}, "data": {"k": "v"}});
        assert_eq!(comparable(&live), comparable(&dry));
    }
}
