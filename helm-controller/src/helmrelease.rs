//! The HelmRelease reconcile: chart source → dependencies → fetch and verify → values →
//! render → the release state machine (one Helm action per step, status patched between
//! steps) → status, in the shape of Flux's helm-controller (`internal/reconcile`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use kube::runtime::controller::Action;
use serde_json::{Map, Value};
use sha2::Digest;
use sluice_api::helm::{HelmRelease, NAME_LABEL, NAMESPACE_LABEL, Snapshot, condition};
use sluice_api::meta::{
    Artifact, FORCE_REQUEST_ANNOTATION, RECONCILE_REQUEST_ANNOTATION, RESET_REQUEST_ANNOTATION,
    reason,
};
use sluice_api::source::{HelmChart, OCIRepository};
use sluice_runtime::conditions::Status as CondStatus;
use sluice_runtime::events::Severity;
use sluice_runtime::object::parse_go_duration;
use sluice_runtime::{Outcome, ReconcileError, Runtime, StatusWriter};

use crate::action::{self, ActionError, Actions, CrdPolicy, Deploy, Settings};
use crate::storage::{self, Release, SecretStorage, StorageError, status};

/// Flux's default `spec.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Flux's default `spec.maxHistory`.
pub const DEFAULT_MAX_HISTORY: i64 = 5;
/// Most actions in one reconcile (a guard against loops; Flux bounds it the same way).
const MAX_STEPS: usize = 10;

/// Why a HelmRelease reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec cannot be acted on; fix the named field.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// A cross-namespace reference was refused.
    #[error("{0}")]
    AccessDenied(String),
    /// The chart source does not exist.
    #[error("{kind} '{namespace}/{name}' not found")]
    SourceNotFound {
        /// Source kind.
        kind: String,
        /// Source namespace.
        namespace: String,
        /// Source name.
        name: String,
    },
    /// The chart source has no (current) artifact yet.
    #[error("{0}, retrying")]
    ArtifactNotReady(String),
    /// Downloading the chart failed.
    #[error("failed to download chart artifact")]
    Fetch(#[source] sluice_artifact::FetchError),
    /// The chart could not be loaded or rendered.
    #[error("chart {chart}: {message}")]
    Chart {
        /// Chart name or revision.
        chart: String,
        /// Helm's message.
        message: String,
    },
    /// A `valuesFrom` reference could not be read.
    #[error("{0}")]
    Values(String),
    /// A post-renderer (`spec.postRenderers`, `spec.commonMetadata`) failed on the manifest.
    #[error("post-render: {0}")]
    PostRender(String),
    /// A dependency is not ready.
    #[error("dependency '{0}' is not ready")]
    DependencyNotReady(String),
    /// The release storage could not be read.
    #[error("release storage")]
    Storage(#[source] StorageError),
    /// A Helm action failed.
    #[error("{message}")]
    Action {
        /// Flux's reason (`InstallFailed`, `UpgradeFailed`, …).
        reason: &'static str,
        /// What failed.
        message: String,
    },
    /// Failures exceeded the remediation retries.
    #[error("{0}")]
    RetriesExhausted(String),
    /// An action failed under the `RetryOnFailure` strategy: no remediation, the action is
    /// tried again after `retryInterval`.
    #[error("{message}")]
    Retry {
        /// Flux's reason (`InstallFailed`, `UpgradeFailed`, `TestFailed`).
        reason: &'static str,
        /// What failed.
        message: String,
        /// `strategy.retryInterval`.
        after: Duration,
    },
    /// The Kubernetes API refused a request.
    #[error("{what}: {message}")]
    Kube {
        /// What was attempted.
        what: String,
        /// The API server's message.
        message: String,
    },
    /// Writing the status failed.
    #[error("writing status")]
    Status(#[from] sluice_runtime::Error),
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_)
            | Error::Values(_)
            | Error::Chart { .. }
            | Error::PostRender(_) => condition::INIT_FAILED,
            Error::AccessDenied(_) => reason::ACCESS_DENIED,
            Error::SourceNotFound { .. } | Error::ArtifactNotReady(_) | Error::Fetch(_) => {
                reason::ARTIFACT_FAILED
            }
            Error::DependencyNotReady(_) => reason::DEPENDENCY_NOT_READY,
            Error::Action { reason, .. } | Error::Retry { reason, .. } => reason,
            Error::RetriesExhausted(_) => condition::RETRIES_EXHAUSTED,
            Error::Storage(_) | Error::Kube { .. } | Error::Status(_) => {
                reason::RECONCILIATION_FAILED
            }
        }
    }

    fn is_stalled(&self) -> bool {
        matches!(self, Error::InvalidSpec(_) | Error::AccessDenied(_) | Error::RetriesExhausted(_))
    }
}

fn kube_error(what: impl Into<String>, err: kube::Error) -> Error {
    let message = match err {
        kube::Error::Api(status) => status.message,
        other => other.to_string(),
    };
    Error::Kube { what: what.into(), message }
}

fn duration(field: &str, raw: Option<&str>, default: Duration) -> Result<Duration, Error> {
    match raw {
        None => Ok(default),
        Some(raw) => parse_go_duration(raw)
            .map_err(|message| Error::InvalidSpec(format!("spec.{field} {raw:?}: {message}"))),
    }
}

/// `spec.releaseName`, else `[<targetNamespace>-]<name>`, shortened past 53 characters to
/// `<first 40>-<first 12 hex of its sha256>` as Flux does.
pub fn release_name(obj: &HelmRelease) -> String {
    if let Some(name) = obj.spec.release_name.as_deref().filter(|n| !n.is_empty()) {
        return name.to_string();
    }
    let name = match obj.spec.target_namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(target) => format!("{target}-{}", obj.name_any()),
        None => obj.name_any(),
    };
    if name.len() > 53 {
        let hash = hex::encode(sha2::Sha256::digest(name.as_bytes()));
        format!("{}-{}", &name[..40], &hash[..12])
    } else {
        name
    }
}

/// The name of the HelmChart created for `spec.chart`: `<namespace>-<name>`.
pub fn helm_chart_name(obj: &HelmRelease) -> String {
    format!("{}-{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// JSON with object keys sorted at every level, as Go's `encoding/json` writes maps.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), canonical(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// `sha256:<hex>` of the values' JSON with sorted keys (Flux's config digest).
pub fn config_digest(values: &Map<String, Value>) -> String {
    let json = serde_json::to_vec(&canonical(&Value::Object(values.clone()))).unwrap_or_default();
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(&json)))
}

/// Deep-merges `from` into `into` (maps merge, everything else replaces).
pub fn merge_values(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(from)) => merge_values(existing, from),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// Sets `path` (`--set` syntax) to `value` in `values`, for `valuesFrom[].targetPath`.
///
/// # Errors
/// A path the `--set` parser refuses.
pub fn set_target_path(
    values: &mut Map<String, Value>,
    path: &str,
    value: &str,
) -> Result<(), String> {
    // Commas would start a new --set assignment; the value is one scalar.
    let escaped = value.replace('\\', "\\\\").replace(',', "\\,");
    sluice_helm::strvals::parse_into(&format!("{path}={escaped}"), values)
}

/// Whether the live HelmChart already has the spec, labels and annotations `desired` gives it
/// (then applying it again would change nothing).
fn chart_is_current(existing: &DynamicObject, desired: &Value) -> bool {
    let same_map = |live: &Option<BTreeMap<String, String>>, want: &Value| {
        let want: BTreeMap<String, String> =
            serde_json::from_value(want.clone()).unwrap_or_default();
        live.clone().unwrap_or_default() == want
    };
    existing.metadata.deletion_timestamp.is_none()
        && existing.data["spec"] == desired["spec"]
        && same_map(&existing.metadata.labels, &desired["metadata"]["labels"])
        && same_map(&existing.metadata.annotations, &desired["metadata"]["annotations"])
}

/// The snapshot of a release for `status.history`.
pub fn snapshot(release: &Release) -> Snapshot {
    let time = |raw: &str| {
        raw.parse::<jiff::Timestamp>().map(Time).unwrap_or(Time(jiff::Timestamp::UNIX_EPOCH))
    };
    let encoded = serde_json::to_vec(release).unwrap_or_default();
    let test_hooks: BTreeMap<String, sluice_api::helm::TestHookStatus> = release
        .hooks
        .iter()
        .filter(|h| h.events.iter().any(|e| e == "test" || e == "test-success"))
        .map(|h| {
            let run = &h.last_run;
            let set = |t: &str| (t != storage::ZERO_TIME && !run.phase.is_empty()).then(|| time(t));
            (
                h.name.clone(),
                sluice_api::helm::TestHookStatus {
                    last_started: set(&run.started_at),
                    last_completed: set(&run.completed_at),
                    phase: (!run.phase.is_empty()).then(|| run.phase.clone()),
                },
            )
        })
        .collect();
    Snapshot {
        api_version: Some("helm.toolkit.fluxcd.io/v2".into()),
        digest: format!("sha256:{}", hex::encode(sha2::Sha256::digest(&encoded))),
        name: release.name.clone(),
        namespace: release.namespace.clone(),
        version: release.version,
        status: release.info.status.clone(),
        action: None,
        chart_name: release.chart_name(),
        chart_version: release.chart_version(),
        app_version: Some(release.app_version()).filter(|v| !v.is_empty()),
        config_digest: config_digest(&release.config),
        first_deployed: time(&release.info.first_deployed),
        last_deployed: time(&release.info.last_deployed),
        deleted: (release.info.deleted != storage::ZERO_TIME).then(|| time(&release.info.deleted)),
        test_hooks: (!test_hooks.is_empty()).then_some(test_hooks),
        oci_digest: None,
    }
}

/// `status.history`: the releases from the newest down to and including the previous
/// successful one.
pub fn history_snapshots(history: &[Release]) -> Vec<Snapshot> {
    let mut out = Vec::new();
    for (index, release) in history.iter().rev().enumerate() {
        out.push(snapshot(release));
        let successful =
            matches!(release.info.status.as_str(), status::DEPLOYED | status::SUPERSEDED);
        if index > 0 && successful {
            break;
        }
    }
    out
}

/// Whether a release is the one a HelmRelease manages (by its recorded history).
fn is_managed(obj: &HelmRelease, release: &Release) -> bool {
    obj.status.as_ref().and_then(|s| s.history.as_ref()).is_some_and(|h| {
        h.iter().any(|s| s.name == release.name && s.namespace == release.namespace)
    })
}

/// Failure counters kept in status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    failures: i64,
    install: i64,
    upgrade: i64,
}

impl Counters {
    fn write(&self, status: &mut StatusWriter<'_, HelmRelease>) {
        status.set_field("failures", self.failures);
        status.set_field("installFailures", self.install);
        status.set_field("upgradeFailures", self.upgrade);
    }
}

/// The remediation settings of the last attempted action.
#[derive(Debug, Clone)]
struct Remediation {
    retries: i64,
    remediate_last_failure: bool,
    ignore_test_failures: bool,
    /// `rollback` or `uninstall`.
    strategy: String,
}

impl Remediation {
    fn install(obj: &HelmRelease) -> Self {
        let r = obj.spec.install.as_ref().and_then(|i| i.remediation.clone()).unwrap_or_default();
        let retries = r.retries.unwrap_or(0);
        Remediation {
            retries,
            remediate_last_failure: r.remediate_last_failure.unwrap_or(retries > 0),
            ignore_test_failures: r.ignore_test_failures.unwrap_or(false),
            strategy: "uninstall".into(),
        }
    }

    fn upgrade(obj: &HelmRelease) -> Self {
        let r = obj.spec.upgrade.as_ref().and_then(|u| u.remediation.clone()).unwrap_or_default();
        let retries = r.retries.unwrap_or(0);
        Remediation {
            retries,
            remediate_last_failure: r.remediate_last_failure.unwrap_or(retries > 0),
            ignore_test_failures: r.ignore_test_failures.unwrap_or(false),
            strategy: r.strategy.unwrap_or_else(|| "rollback".into()),
        }
    }

    fn exhausted(&self, failures: i64) -> bool {
        self.retries >= 0 && failures > self.retries
    }
}

/// Flux's default `strategy.retryInterval`.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(300);

/// The retry interval when the strategy of `action` (`install` or `upgrade`, Flux's active
/// strategy of the last attempted action) is `RetryOnFailure`; `None` for
/// `RemediateOnFailure` (the default).
///
/// # Errors
/// An unknown strategy name or an unparsable `retryInterval`.
fn retry_strategy(obj: &HelmRelease, action: &str) -> Result<Option<Duration>, Error> {
    let (field, strategy) = if action == "install" {
        ("install.strategy", obj.spec.install.as_ref().and_then(|i| i.strategy.clone()))
    } else {
        ("upgrade.strategy", obj.spec.upgrade.as_ref().and_then(|u| u.strategy.clone()))
    };
    let Some(strategy) = strategy else { return Ok(None) };
    match strategy.name.as_str() {
        "RemediateOnFailure" => Ok(None),
        "RetryOnFailure" => duration(
            &format!("{field}.retryInterval"),
            strategy.retry_interval.as_deref(),
            DEFAULT_RETRY_INTERVAL,
        )
        .map(Some),
        other => Err(Error::InvalidSpec(format!(
            "spec.{field}.name {other:?} is not a strategy: use RemediateOnFailure or RetryOnFailure"
        ))),
    }
}

/// The state of the release compared with the HelmRelease (Flux's `ReleaseState`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Absent,
    Unmanaged,
    Locked,
    Failed,
    OutOfSync,
    Untested,
    TestFailed,
    InSync,
}

/// What one reconcile renders and compares against.
#[derive(Clone)]
struct Desired {
    deploy: Deploy,
    upgrade_deploy: Deploy,
    chart_name: String,
    chart_version: String,
    app_version: String,
    config_digest: String,
    revision: String,
    /// `sha256:` of `spec.postRenderers` (empty when none).
    post_renderers_digest: String,
    /// `sha256:` of `spec.commonMetadata` (empty when none).
    common_metadata_digest: String,
}

fn test_selected(obj: &HelmRelease, hook: &storage::Hook) -> bool {
    if !hook.events.iter().any(|e| e == "test" || e == "test-success") {
        return false;
    }
    let filters = obj.spec.test.as_ref().and_then(|t| t.filters.clone()).unwrap_or_default();
    let includes: Vec<&str> =
        filters.iter().filter(|f| !f.exclude.unwrap_or(false)).map(|f| f.name.as_str()).collect();
    if filters.iter().any(|f| f.exclude.unwrap_or(false) && f.name == hook.name) {
        return false;
    }
    includes.is_empty() || includes.contains(&hook.name.as_str())
}

fn test_enabled(obj: &HelmRelease) -> bool {
    obj.spec.test.as_ref().and_then(|t| t.enable).unwrap_or(false)
}

fn ignore_test_failures(obj: &HelmRelease, remediation: &Remediation) -> bool {
    obj.spec.test.as_ref().and_then(|t| t.ignore_failures).unwrap_or(false)
        || remediation.ignore_test_failures
}

/// Whether a new generation changed the post-renderers or common metadata the release was
/// deployed with: it is redeployed though the chart and values may be the same (Flux's check).
fn render_digests_changed(obj: &HelmRelease, desired: &Desired) -> bool {
    let status = obj.status.clone().unwrap_or_default();
    status.observed_generation != obj.metadata.generation
        && (status.observed_post_renderers_digest.unwrap_or_default()
            != desired.post_renderers_digest
            || status.observed_common_metadata_digest.unwrap_or_default()
                != desired.common_metadata_digest)
}

fn state_of(obj: &HelmRelease, history: &[Release], desired: &Desired, force: bool) -> State {
    let Some(latest) = history.last() else { return State::Absent };
    if latest.info.status == status::UNINSTALLED {
        return State::Absent;
    }
    if status::is_pending(&latest.info.status) {
        return State::Locked;
    }
    if !is_managed(obj, latest) {
        return State::Unmanaged;
    }
    // A forced action (the force request, a new chart or values on a failed release, or a
    // RetryOnFailure retry) upgrades a failed release instead of remediating it.
    if force {
        return State::OutOfSync;
    }
    if latest.info.status == status::FAILED || latest.info.status == status::UNINSTALLING {
        return State::Failed;
    }
    if render_digests_changed(obj, desired) {
        return State::OutOfSync;
    }
    if latest.chart_name() != desired.chart_name
        || latest.chart_version() != desired.chart_version
        || config_digest(&latest.config) != desired.config_digest
    {
        return State::OutOfSync;
    }
    if test_enabled(obj) {
        let tests: Vec<&storage::Hook> =
            latest.hooks.iter().filter(|h| test_selected(obj, h)).collect();
        if tests.iter().any(|h| h.last_run.phase.is_empty()) {
            return State::Untested;
        }
        if tests.iter().any(|h| h.last_run.phase == "Failed") {
            return State::TestFailed;
        }
    }
    State::InSync
}

/// The context of the HelmRelease reconciler.
pub struct Reconciler {
    /// The shared runtime.
    pub runtime: Arc<Runtime>,
    /// Downloads chart artifacts.
    pub fetcher: sluice_artifact::Fetcher,
    /// The API server's version (`.Capabilities.KubeVersion`), read once.
    pub kube_version: tokio::sync::OnceCell<String>,
}

struct Run<'a> {
    obj: &'a HelmRelease,
    runtime: &'a Runtime,
    status: StatusWriter<'a, HelmRelease>,
    counters: Counters,
}

/// The release actions whose outcome sets the `Released` condition.
#[derive(Debug, Clone, Copy)]
enum ReleaseAction {
    Install,
    Upgrade,
}

impl ReleaseAction {
    fn verb(self) -> &'static str {
        match self {
            ReleaseAction::Install => "install",
            ReleaseAction::Upgrade => "upgrade",
        }
    }

    /// The `Released` reasons (and event reasons) of a success and of a failure.
    fn reasons(self) -> (&'static str, &'static str) {
        match self {
            ReleaseAction::Install => (condition::INSTALL_SUCCEEDED, condition::INSTALL_FAILED),
            ReleaseAction::Upgrade => (condition::UPGRADE_SUCCEEDED, condition::UPGRADE_FAILED),
        }
    }
}

impl Run<'_> {
    async fn event(&self, severity: Severity, reason: &str, message: &str, revision: &str) {
        let metadata = BTreeMap::from([("revision".to_string(), revision.to_string())]);
        self.runtime.events.record(self.obj, severity, reason, message, &metadata).await;
    }

    /// Records the outcome of an install or upgrade: the `Released` condition, the event, the
    /// failure counters (reset on success), and a progress write of the status.
    async fn record_release_action(
        &mut self,
        action: ReleaseAction,
        result: Result<Release, ActionError>,
        target: &str,
        chart_label: &str,
        chart_version: &str,
    ) -> Result<Option<String>, Error> {
        let verb = action.verb();
        let (succeeded, failed) = action.reasons();
        match result {
            Ok(rel) => {
                let message = format!(
                    "Helm {verb} succeeded for release {}/{}.v{} with chart {chart_label}",
                    rel.namespace, rel.name, rel.version
                );
                self.status.set_condition(
                    condition::RELEASED,
                    CondStatus::True,
                    succeeded,
                    &message,
                );
                self.status.remove_condition(condition::REMEDIATED);
                self.status.remove_condition(condition::TEST_SUCCESS);
                self.event(Severity::Info, succeeded, &message, chart_version).await;
                self.counters = Counters::default();
                self.status.progress(&message).await?;
                Ok(None)
            }
            Err(err) => {
                let message = format!(
                    "Helm {verb} failed for release {target} with chart {chart_label}: {}",
                    sluice_runtime::conditions::error_message(&err)
                );
                self.counters.failures += 1;
                match action {
                    ReleaseAction::Install => self.counters.install += 1,
                    ReleaseAction::Upgrade => self.counters.upgrade += 1,
                }
                self.counters.write(&mut self.status);
                self.status.set_condition(condition::RELEASED, CondStatus::False, failed, &message);
                self.event(Severity::Error, failed, &message, chart_version).await;
                self.status.progress(&message).await?;
                Ok(Some(message))
            }
        }
    }
}

impl Reconciler {
    async fn cluster_version(&self) -> String {
        self.kube_version
            .get_or_init(|| async {
                match self.runtime.client.apiserver_version().await {
                    Ok(info) => info.git_version,
                    Err(_) => sluice_helm::DEFAULT_KUBE_VERSION.to_string(),
                }
            })
            .await
            .clone()
    }

    /// The client the release is stored, applied, tested and uninstalled with: the remote
    /// cluster's of `spec.kubeConfig`, impersonating `spec.serviceAccountName` (or
    /// `--default-service-account` locally), else the controller's own. Sources, values and
    /// status use the controller's client.
    async fn release_client(&self, obj: &HelmRelease) -> Result<kube::Client, Error> {
        sluice_runtime::impersonate::client_for(
            &self.runtime.client,
            &obj.namespace().unwrap_or_default(),
            obj.spec.kube_config.as_ref(),
            obj.spec.service_account_name.as_deref(),
            self.runtime.args.default_service_account(),
        )
        .await
        .map_err(|err| match err {
            sluice_runtime::impersonate::ClientError::Unsupported(message) => {
                Error::InvalidSpec(message)
            }
            sluice_runtime::impersonate::ClientError::Client(message) => {
                Error::Kube { what: "building the release client".into(), message }
            }
        })
    }

    /// Creates or updates the HelmChart of `spec.chart`; returns its namespace, name and the
    /// object as the API server has it.
    async fn ensure_helm_chart(
        &self,
        obj: &HelmRelease,
    ) -> Result<(String, String, DynamicObject), Error> {
        let Some(template) = &obj.spec.chart else {
            return Err(Error::InvalidSpec(
                "one of spec.chart or spec.chartRef is required".into(),
            ));
        };
        let namespace = obj.namespace().unwrap_or_default();
        let source = &template.spec.source_ref;
        self.runtime
            .check_namespace_ref(&namespace, source.namespace.as_deref())
            .map_err(Error::AccessDenied)?;
        if !matches!(source.kind.as_str(), "HelmRepository" | "GitRepository" | "Bucket") {
            return Err(Error::InvalidSpec(format!(
                "spec.chart.spec.sourceRef.kind {:?}: use HelmRepository, GitRepository or Bucket",
                source.kind
            )));
        }
        let chart_namespace = source.namespace.clone().unwrap_or_else(|| namespace.clone());
        let name = helm_chart_name(obj);
        let metadata = template.metadata.clone().unwrap_or_default();
        let mut labels = metadata.labels.unwrap_or_default();
        labels.insert(NAME_LABEL.into(), obj.name_any());
        labels.insert(NAMESPACE_LABEL.into(), namespace.clone());
        let mut spec = serde_json::json!({
            "chart": template.spec.chart,
            "version": template.spec.version.clone().unwrap_or_else(|| "*".into()),
            "sourceRef": {"kind": source.kind, "name": source.name},
            "interval": template.spec.interval.clone().unwrap_or_else(|| obj.spec.interval.clone()),
            "reconcileStrategy": template.spec.reconcile_strategy.clone().unwrap_or_else(|| "ChartVersion".into()),
        });
        if let Some(files) = &template.spec.values_files {
            spec["valuesFiles"] = serde_json::json!(files);
        }
        if let Some(ignore) = template.spec.ignore_missing_values_files {
            spec["ignoreMissingValuesFiles"] = ignore.into();
        }
        if let Some(verify) = &template.spec.verify {
            spec["verify"] = serde_json::to_value(verify).unwrap_or_default();
        }
        let body = serde_json::json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmChart",
            "metadata": {"name": name, "namespace": chart_namespace, "labels": labels, "annotations": metadata.annotations.unwrap_or_default()},
            "spec": spec,
        });
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.runtime.client.clone(),
            &chart_namespace,
            &ApiResource::erase::<HelmChart>(&()),
        );
        // Read first: an apply of an unchanged HelmChart costs the API server as much as a
        // change, and most reconciles change nothing.
        let existing = api
            .get_opt(&name)
            .await
            .map_err(|e| kube_error(format!("reading HelmChart {chart_namespace}/{name}"), e))?;
        if let Some(existing) = existing
            && chart_is_current(&existing, &body)
        {
            return Ok((chart_namespace, name, existing));
        }
        let applied = api
            .patch(&name, &PatchParams::apply(action::FIELD_MANAGER).force(), &Patch::Apply(&body))
            .await
            .map_err(|e| kube_error(format!("applying HelmChart {chart_namespace}/{name}"), e))?;
        Ok((chart_namespace, name, applied))
    }

    /// The chart artifact of `spec.chartRef` or of the managed HelmChart.
    async fn chart_artifact(
        &self,
        obj: &HelmRelease,
        status: &mut StatusWriter<'_, HelmRelease>,
    ) -> Result<Artifact, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let (kind, source_namespace, name, resource, known) = match (
            &obj.spec.chart,
            &obj.spec.chart_ref,
        ) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidSpec(
                    "spec.chart and spec.chartRef are exclusive: set only one".into(),
                ));
            }
            (None, None) => {
                return Err(Error::InvalidSpec(
                    "one of spec.chart or spec.chartRef is required".into(),
                ));
            }
            (Some(_), None) => {
                let (chart_namespace, chart_name, chart) = self.ensure_helm_chart(obj).await?;
                status.set_field("helmChart", format!("{chart_namespace}/{chart_name}"));
                (
                    "HelmChart".to_string(),
                    chart_namespace,
                    chart_name,
                    ApiResource::erase::<HelmChart>(&()),
                    Some(chart),
                )
            }
            (None, Some(reference)) => {
                self.runtime
                    .check_namespace_ref(&namespace, reference.namespace.as_deref())
                    .map_err(Error::AccessDenied)?;
                let resource = match reference.kind.as_str() {
                    "HelmChart" => ApiResource::erase::<HelmChart>(&()),
                    "OCIRepository" => ApiResource::erase::<OCIRepository>(&()),
                    other => {
                        return Err(Error::InvalidSpec(format!(
                            "spec.chartRef.kind {other:?} is not supported: use OCIRepository or HelmChart"
                        )));
                    }
                };
                status.set_field("helmChart", Value::Null);
                (
                    reference.kind.clone(),
                    reference.namespace.clone().unwrap_or_else(|| namespace.clone()),
                    reference.name.clone(),
                    resource,
                    None,
                )
            }
        };
        // The managed HelmChart was just read or applied; a referenced source is read here.
        let found = match known {
            Some(found) => found,
            None => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.runtime.client.clone(), &source_namespace, &resource);
                api.get_opt(&name)
                    .await
                    .map_err(|e| {
                        kube_error(format!("reading {kind} {source_namespace}/{name}"), e)
                    })?
                    .ok_or_else(|| Error::SourceNotFound {
                        kind: kind.clone(),
                        namespace: source_namespace.clone(),
                        name: name.clone(),
                    })?
            }
        };
        let generation = found.metadata.generation;
        let observed = found.data["status"]["observedGeneration"].as_i64();
        if kind == "HelmChart"
            && obj.spec.chart.is_some()
            && generation.is_some()
            && observed < generation
        {
            return Err(Error::ArtifactNotReady(format!(
                "HelmChart '{source_namespace}/{name}' is not reconciled for generation {} yet",
                generation.unwrap_or_default()
            )));
        }
        serde_json::from_value(found.data["status"]["artifact"].clone()).map_err(|_| {
            Error::ArtifactNotReady(format!("{kind} '{source_namespace}/{name}' has no artifact"))
        })
    }

    /// `valuesFrom` in order, then `values` on top, then the `targetPath` entries.
    async fn compose_values(&self, obj: &HelmRelease) -> Result<Map<String, Value>, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let mut result = Map::new();
        let mut targeted = Vec::new();
        for (index, reference) in obj.spec.values_from.iter().flatten().enumerate() {
            let field = format!("spec.valuesFrom[{index}]");
            let key = reference.values_key.clone().unwrap_or_else(|| "values.yaml".into());
            let optional = reference.optional.unwrap_or(false);
            let data: Option<BTreeMap<String, String>> = match reference.kind.as_str() {
                "ConfigMap" => {
                    let api: Api<ConfigMap> =
                        Api::namespaced(self.runtime.client.clone(), &namespace);
                    api.get_opt(&reference.name)
                        .await
                        .map_err(|e| {
                            kube_error(
                                format!("reading ConfigMap {namespace}/{}", reference.name),
                                e,
                            )
                        })?
                        .map(|cm| cm.data.unwrap_or_default())
                }
                "Secret" => {
                    let api: Api<Secret> = Api::namespaced(self.runtime.client.clone(), &namespace);
                    api.get_opt(&reference.name)
                        .await
                        .map_err(|e| {
                            kube_error(format!("reading Secret {namespace}/{}", reference.name), e)
                        })?
                        .map(|s| {
                            s.data
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                                .collect()
                        })
                }
                other => {
                    return Err(Error::InvalidSpec(format!(
                        "{field}.kind {other:?}: use ConfigMap or Secret"
                    )));
                }
            };
            let Some(data) = data else {
                if optional {
                    continue;
                }
                return Err(Error::Values(format!(
                    "could not find {} '{namespace}/{}' of {field}: create it or set optional: true",
                    reference.kind, reference.name
                )));
            };
            let Some(text) = data.get(&key) else {
                if optional {
                    continue;
                }
                return Err(Error::Values(format!(
                    "missing key '{key}' in {} '{namespace}/{}' of {field}: add it or set valuesKey",
                    reference.kind, reference.name
                )));
            };
            match reference.target_path.as_deref().filter(|p| !p.is_empty()) {
                Some(path) => targeted.push((
                    field,
                    path.to_string(),
                    text.trim_end_matches('\n').to_string(),
                )),
                None => {
                    // Secret contents never go into messages: only the reference is named.
                    let parsed = sluice_helm::chart::load_values(text).map_err(|_| {
                        Error::Values(format!(
                            "unable to read values from key '{key}' in {} '{namespace}/{}' of {field}: not a YAML map",
                            reference.kind, reference.name
                        ))
                    })?;
                    merge_values(&mut result, parsed);
                }
            }
        }
        if let Some(Value::Object(inline)) = &obj.spec.values {
            merge_values(&mut result, inline.clone());
        }
        for (field, path, value) in targeted {
            set_target_path(&mut result, &path, &value)
                .map_err(|e| Error::Values(format!("{field}.targetPath {path:?}: {e}")))?;
        }
        Ok(result)
    }

    async fn check_dependencies(&self, obj: &HelmRelease) -> Result<(), Error> {
        let namespace = obj.namespace().unwrap_or_default();
        for dependency in obj.spec.depends_on.iter().flatten() {
            self.runtime
                .check_namespace_ref(&namespace, dependency.namespace.as_deref())
                .map_err(Error::AccessDenied)?;
            let dep_namespace = dependency.namespace.clone().unwrap_or_else(|| namespace.clone());
            let id = format!("{dep_namespace}/{}", dependency.name);
            let api: Api<HelmRelease> =
                Api::namespaced(self.runtime.client.clone(), &dep_namespace);
            let Some(dep) = api.get_opt(&dependency.name).await.map_err(|e| kube_error(&id, e))?
            else {
                return Err(Error::DependencyNotReady(id));
            };
            let status = dep.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if !(ready && status.observed_generation == dep.metadata.generation) {
                return Err(Error::DependencyNotReady(id));
            }
        }
        Ok(())
    }

    async fn desired(
        &self,
        obj: &HelmRelease,
        artifact: &Artifact,
        release: &str,
        target_namespace: &str,
        preserved: Option<Map<String, Value>>,
        client: &kube::Client,
    ) -> Result<Desired, Error> {
        let digest = artifact.digest.clone().unwrap_or_default();
        let file = self.fetcher.download(&artifact.url, &digest).await.map_err(Error::Fetch)?;
        let values = self.compose_values(obj).await?;
        // `upgrade.preserveValues` (Helm's --reuse-values): an upgrade keeps the release's
        // values and merges the composed ones over them.
        let upgrade_values = match preserved {
            Some(mut previous) => {
                merge_values(&mut previous, values.clone());
                previous
            }
            None => values.clone(),
        };
        // `.Capabilities.KubeVersion` of the cluster the release goes to.
        let kube_version = if obj.spec.kube_config.is_some() {
            match client.apiserver_version().await {
                Ok(info) => info.git_version,
                Err(_) => sluice_helm::DEFAULT_KUBE_VERSION.to_string(),
            }
        } else {
            self.cluster_version().await
        };
        let revision = artifact.revision.clone();
        let install = obj.spec.install.clone().unwrap_or_default();
        let upgrade = obj.spec.upgrade.clone().unwrap_or_default();
        let install_crds = if install.skip_crds.unwrap_or(false) {
            CrdPolicy::Skip
        } else {
            CrdPolicy::parse("install.crds", install.crds.as_deref(), CrdPolicy::Create)
                .map_err(Error::InvalidSpec)?
        };
        let upgrade_crds =
            CrdPolicy::parse("upgrade.crds", upgrade.crds.as_deref(), CrdPolicy::Skip)
                .map_err(Error::InvalidSpec)?;
        let create_namespace = install.create_namespace.unwrap_or(false);
        let release = release.to_string();
        let namespace = target_namespace.to_string();
        let render_values = values.clone();
        let upgrade_render_values = upgrade_values.clone();
        let chart_revision = revision.clone();
        let post_renderers = obj.spec.post_renderers.clone().unwrap_or_default();
        let lookup: Arc<dyn sluice_helm::Lookup> =
            Arc::new(crate::lookup::ClusterLookup::new(client.clone()));
        let common_metadata = obj.spec.common_metadata.clone();
        let rendered = tokio::task::spawn_blocking(move || -> Result<_, Error> {
            let chart_error =
                |message: String| Error::Chart { chart: chart_revision.clone(), message };
            let bytes = std::fs::read(file.path()).map_err(|e| chart_error(e.to_string()))?;
            let chart =
                sluice_helm::chart::load_archive(&bytes).map_err(|e| chart_error(e.to_string()))?;
            let chart_json = storage::chart_json(&chart);
            let name = chart.name().to_string();
            let version = chart.version();
            let app_version = chart.metadata["appVersion"].as_str().unwrap_or_default().to_string();
            let mut renders = Vec::new();
            for is_upgrade in [false, true] {
                let options = sluice_helm::TemplateOptions {
                    release_name: release.clone(),
                    namespace: namespace.clone(),
                    kube_version: Some(kube_version.clone()),
                    is_upgrade,
                    lookup: Some(lookup.clone()),
                    ..sluice_helm::TemplateOptions::default()
                };
                let values = if is_upgrade { &upgrade_render_values } else { &render_values };
                let rendered = sluice_helm::render_chart(chart.clone(), values, &options)
                    .map_err(|e| chart_error(e.to_string()))?;
                let manifest = crate::postrender::post_render(
                    &rendered.manifest(),
                    &post_renderers,
                    common_metadata.as_ref(),
                )
                .map_err(Error::PostRender)?;
                renders.push((rendered, manifest));
            }
            Ok((chart_json, name, version, app_version, renders))
        })
        .await
        .map_err(|e| Error::Chart {
            chart: revision.clone(),
            message: format!("render task failed: {e}"),
        })??;
        let (chart_json, chart_name, chart_version, app_version, renders) = rendered;
        let deploy_of = |(rendered, manifest): &(sluice_helm::Rendered, String),
                         config: &Map<String, Value>,
                         crd_policy: CrdPolicy| Deploy {
            chart: chart_json.clone(),
            config: config.clone(),
            manifest: manifest.clone(),
            hooks: action::hooks_of(rendered),
            notes: rendered.notes.clone(),
            crds: rendered.crds.clone(),
            crd_policy,
            create_namespace,
        };
        Ok(Desired {
            deploy: deploy_of(&renders[0], &values, install_crds),
            upgrade_deploy: deploy_of(&renders[1], &upgrade_values, upgrade_crds),
            chart_name,
            chart_version,
            app_version,
            config_digest: config_digest(&upgrade_values),
            revision,
            post_renderers_digest: crate::postrender::post_renderers_digest(
                obj.spec.post_renderers.as_ref(),
            ),
            common_metadata_digest: crate::postrender::common_metadata_digest(
                obj.spec.common_metadata.as_ref(),
            ),
        })
    }

    /// Reconciles a HelmRelease and writes its status.
    pub async fn reconcile(&self, obj: Arc<HelmRelease>) -> Result<Action, Error> {
        let mut run = Run {
            obj: &obj,
            runtime: &self.runtime,
            status: StatusWriter::new(
                &*obj,
                self.runtime.client.clone(),
                self.runtime.controller,
                &self.runtime.events,
            ),
            counters: Counters::default(),
        };
        let interval =
            match duration("interval", Some(&obj.spec.interval), Duration::from_secs(600)) {
                Ok(interval) => interval,
                Err(err) => {
                    run.status.finish(&Outcome::from_error(&err)).await?;
                    return Ok(Action::await_change());
                }
            };
        match self.reconcile_release(&mut run).await {
            Ok(message) => {
                run.counters.write(&mut run.status);
                run.status
                    .finish(&Outcome::Ready { reason: message.0.into(), message: message.1 })
                    .await?;
                Ok(self.runtime.next_action(Some(interval)))
            }
            Err(err) => {
                run.counters.write(&mut run.status);
                let requeue = match err {
                    Error::SourceNotFound { .. }
                    | Error::ArtifactNotReady(_)
                    | Error::DependencyNotReady(_) => self.runtime.args.requeue_dependency,
                    Error::Retry { after, .. } => after,
                    _ => interval,
                };
                let stalled = err.is_stalled();
                tracing::info!(helmrelease = %format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()),
                    error = %sluice_runtime::conditions::error_message(&err), "reconcile failed");
                let Run { status, .. } = run;
                status.finish(&Outcome::from_error(&err)).await?;
                Ok(if stalled { Action::await_change() } else { Action::requeue(requeue) })
            }
        }
    }

    fn unsupported(obj: &HelmRelease) -> Option<String> {
        let spec = &obj.spec;
        if let Some(mode) = spec.drift_detection.as_ref().and_then(|d| d.mode.as_deref())
            && !matches!(mode, "disabled" | "warn" | "enabled")
        {
            return Some(format!(
                "spec.driftDetection.mode {mode:?} is not a drift detection mode: use disabled, warn or enabled"
            ));
        }
        None
    }

    /// Drift detection on an in-sync release (`spec.driftDetection`): `warn` reports the
    /// drifted objects, `enabled` also re-applies them.
    async fn drift(
        &self,
        run: &mut Run<'_>,
        actions: &Actions,
        latest: &Release,
        chart_version: &str,
    ) -> Result<(), Error> {
        let obj = run.obj;
        let detection = obj.spec.drift_detection.clone().unwrap_or_default();
        let mode = detection.mode.as_deref().unwrap_or("disabled");
        if mode == "disabled" {
            run.status.remove_condition(condition::DRIFTED);
            return Ok(());
        }
        let rules: Vec<action::IgnoreRule> = detection
            .ignore
            .iter()
            .flatten()
            .map(|rule| {
                let target = rule.target.clone().unwrap_or_default();
                action::IgnoreRule {
                    paths: rule.paths.clone(),
                    kind: target.kind,
                    name: target.name,
                    namespace: target.namespace,
                    group: target.group,
                }
            })
            .collect();
        let drifts = actions
            .detect_drift(&latest.manifest, &rules)
            .await
            .map_err(|e| action_error(reason::RECONCILIATION_FAILED, e))?;
        let release = format!("{}/{}.v{}", latest.namespace, latest.name, latest.version);
        if drifts.is_empty() {
            run.status.set_condition(
                condition::DRIFTED,
                CondStatus::False,
                condition::NO_DRIFT_DETECTED,
                &format!("No drift detected for release {release}"),
            );
            return Ok(());
        }
        let changes: Vec<String> =
            drifts.iter().map(|d| format!("{} {}", d.id, d.change)).collect();
        let changes = changes.join("\n");
        if mode == "warn" {
            let message = format!(
                "Cluster state of release {release} has drifted from the desired state:\n{changes}"
            );
            run.status.set_condition(
                condition::DRIFTED,
                CondStatus::True,
                condition::DRIFT_DETECTED,
                &message,
            );
            run.event(Severity::Info, condition::DRIFT_DETECTED, &message, chart_version).await;
            return Ok(());
        }
        actions
            .correct_drift(&drifts)
            .await
            .map_err(|e| action_error(condition::UPGRADE_FAILED, e))?;
        let message = format!("Cluster state of release {release} has been corrected:\n{changes}");
        run.status.set_condition(
            condition::DRIFTED,
            CondStatus::False,
            condition::DRIFT_DETECTED,
            &message,
        );
        run.event(Severity::Info, condition::DRIFT_DETECTED, &message, chart_version).await;
        Ok(())
    }

    async fn reconcile_release(&self, run: &mut Run<'_>) -> Result<(&'static str, String), Error> {
        let obj = run.obj;
        if let Some(message) = Self::unsupported(obj) {
            return Err(Error::InvalidSpec(message));
        }
        let namespace = obj.namespace().unwrap_or_default();
        let release = release_name(obj);
        let target_namespace =
            obj.spec.target_namespace.clone().unwrap_or_else(|| namespace.clone());
        let storage_namespace =
            obj.spec.storage_namespace.clone().unwrap_or_else(|| namespace.clone());
        let timeout = duration("timeout", obj.spec.timeout.as_deref(), DEFAULT_TIMEOUT)?;
        let previous = obj.status.clone().unwrap_or_default();
        run.counters = Counters {
            failures: previous.failures.unwrap_or(0),
            install: previous.install_failures.unwrap_or(0),
            upgrade: previous.upgrade_failures.unwrap_or(0),
        };
        let annotations = obj.annotations();
        if let Some(reset) = annotations.get(RESET_REQUEST_ANNOTATION)
            && previous.last_handled_reset_at.as_ref() != Some(reset)
        {
            run.counters = Counters::default();
            run.status.set_field("lastHandledResetAt", reset);
        }
        let force = match (
            annotations.get(FORCE_REQUEST_ANNOTATION),
            annotations.get(RECONCILE_REQUEST_ANNOTATION),
        ) {
            (Some(force), Some(requested))
                if force == requested && previous.last_handled_force_at.as_ref() != Some(force) =>
            {
                run.status.set_field("lastHandledForceAt", force);
                true
            }
            _ => false,
        };
        run.status.set_field("storageNamespace", &storage_namespace);
        let client = self.release_client(obj).await?;
        let storage = SecretStorage::new(client.clone(), &storage_namespace);
        let artifact = self.chart_artifact(obj, &mut run.status).await?;
        self.check_dependencies(obj).await?;
        let preserved =
            if obj.spec.upgrade.as_ref().and_then(|u| u.preserve_values).unwrap_or(false) {
                let history = storage.history(&release).await.map_err(Error::Storage)?;
                history
                    .last()
                    .filter(|r| r.info.status != status::UNINSTALLED)
                    .map(|r| r.config.clone())
            } else {
                None
            };
        let desired =
            self.desired(obj, &artifact, &release, &target_namespace, preserved, &client).await?;
        // A new generation, chart or values starts the failure counting afresh.
        if previous.last_attempted_generation != obj.metadata.generation
            || previous.last_attempted_config_digest.as_deref()
                != Some(desired.config_digest.as_str())
            || previous.last_attempted_revision.as_deref() != Some(desired.revision.as_str())
        {
            run.counters = Counters::default();
        }
        // Written with every progress patch, so a crash keeps the reset.
        run.counters.write(&mut run.status);
        run.status.set_field("lastAttemptedGeneration", obj.metadata.generation);
        run.status.set_field("lastAttemptedRevision", &desired.revision);
        run.status.set_field("lastAttemptedRevisionDigest", artifact.digest.clone());
        run.status.set_field("lastAttemptedConfigDigest", &desired.config_digest);
        run.status.set_event_metadata("revision", &desired.chart_version);
        if !desired.app_version.is_empty() {
            run.status.set_event_metadata("app-version", &desired.app_version);
        }
        let mut owner_labels = BTreeMap::from([
            (NAME_LABEL.to_string(), obj.name_any()),
            (NAMESPACE_LABEL.to_string(), namespace.clone()),
        ]);
        if let Some(common) = &obj.spec.common_metadata {
            owner_labels.extend(common.labels.clone().unwrap_or_default());
        }
        let install = obj.spec.install.clone().unwrap_or_default();
        let upgrade = obj.spec.upgrade.clone().unwrap_or_default();
        let max_history = obj.spec.max_history.unwrap_or(DEFAULT_MAX_HISTORY);
        let uninstall = obj.spec.uninstall.clone().unwrap_or_default();
        let deletion_propagation =
            action::deletion_propagation(uninstall.deletion_propagation.as_deref())
                .map_err(Error::InvalidSpec)?;
        let settings = |action_timeout: Option<&str>,
                        field: &str,
                        disable_wait: bool,
                        disable_hooks: bool|
         -> Result<Settings, Error> {
            Ok(Settings {
                release_name: release.clone(),
                namespace: target_namespace.clone(),
                owner_labels: owner_labels.clone(),
                timeout: duration(field, action_timeout, timeout)?,
                disable_wait,
                disable_hooks,
                max_history,
                force: false,
                cleanup_on_fail: false,
                deletion_propagation: deletion_propagation.clone(),
            })
        };
        let install_actions = Actions::new(
            client.clone(),
            storage.clone(),
            settings(
                install.timeout.as_deref(),
                "install.timeout",
                install.disable_wait.unwrap_or(false),
                install.disable_hooks.unwrap_or(false),
            )?,
        );
        let upgrade_actions = Actions::new(
            client.clone(),
            storage.clone(),
            Settings {
                force: upgrade.force.unwrap_or(false),
                cleanup_on_fail: upgrade.cleanup_on_fail.unwrap_or(false),
                ..settings(
                    upgrade.timeout.as_deref(),
                    "upgrade.timeout",
                    upgrade.disable_wait.unwrap_or(false),
                    upgrade.disable_hooks.unwrap_or(false),
                )?
            },
        );
        let test_spec = obj.spec.test.clone().unwrap_or_default();
        let test_actions = Actions::new(
            client.clone(),
            storage.clone(),
            settings(test_spec.timeout.as_deref(), "test.timeout", false, false)?,
        );
        let rollback = obj.spec.rollback.clone().unwrap_or_default();
        let rollback_actions = Actions::new(
            client.clone(),
            storage.clone(),
            Settings {
                force: rollback.force.unwrap_or(false),
                cleanup_on_fail: rollback.cleanup_on_fail.unwrap_or(false),
                ..settings(
                    rollback.timeout.as_deref(),
                    "rollback.timeout",
                    rollback.disable_wait.unwrap_or(false),
                    rollback.disable_hooks.unwrap_or(false),
                )?
            },
        );
        let uninstall_actions = Actions::new(
            client.clone(),
            storage.clone(),
            settings(
                uninstall.timeout.as_deref(),
                "uninstall.timeout",
                uninstall.disable_wait.unwrap_or(false),
                uninstall.disable_hooks.unwrap_or(false),
            )?,
        );

        let mut last_action = previous.last_attempted_release_action.clone().unwrap_or_default();
        let mut managed = obj.clone();
        let mut forced = force;
        // A failed release is upgraded for a new chart, values or post-renderers once per
        // reconcile; a second failure goes to remediation.
        let mut upgraded_change = false;
        let chart_label = format!("{}@{}", desired.chart_name, desired.chart_version);
        // The history read right after an install or upgrade is the next step's history: nothing
        // writes the release in between.
        let mut read_after_action: Option<Vec<Release>> = None;
        for _ in 0..MAX_STEPS {
            let history = match read_after_action.take() {
                Some(history) => history,
                None => storage.history(&release).await.map_err(Error::Storage)?,
            };
            let state = state_of(&managed, &history, &desired, forced);
            tracing::debug!(release = %release, ?state, "release state");
            let remediation = if last_action == "install" {
                Remediation::install(obj)
            } else {
                Remediation::upgrade(obj)
            };
            match state {
                State::InSync => {
                    let latest = history.last().cloned();
                    let message = match &latest {
                        Some(latest) => format!(
                            "Helm {} succeeded for release {}/{}.v{} with chart {chart_label}",
                            if latest.version == 1 { "install" } else { "upgrade" },
                            latest.namespace,
                            latest.name,
                            latest.version
                        ),
                        None => "release in sync".into(),
                    };
                    run.status.set_field("history", history_snapshots(&history));
                    let reason = if latest.as_ref().is_some_and(|l| l.version == 1) {
                        condition::INSTALL_SUCCEEDED
                    } else {
                        condition::UPGRADE_SUCCEEDED
                    };
                    let released =
                        obj.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
                            c.iter().any(|c| c.type_ == condition::RELEASED && c.status == "True")
                        });
                    if !released {
                        run.status.set_condition(
                            condition::RELEASED,
                            CondStatus::True,
                            reason,
                            &message,
                        );
                    }
                    if let Some(latest) = &latest {
                        let ids = upgrade_actions
                            .inventory(&latest.manifest, &desired.deploy.crds)
                            .await
                            .map_err(|e| action_error(reason::RECONCILIATION_FAILED, e))?;
                        let entries: Vec<_> = ids.iter().map(|id| id.to_inventory()).collect();
                        run.status.set_field("inventory", serde_json::json!({"entries": entries}));
                        self.drift(run, &upgrade_actions, latest, &desired.chart_version).await?;
                    }
                    return Ok((reason, message));
                }
                State::Locked => {
                    let latest = history.last().cloned().ok_or_else(|| {
                        Error::Storage(StorageError::Decode {
                            name: release.clone(),
                            message: "history vanished".into(),
                        })
                    })?;
                    let unlocked = upgrade_actions
                        .unlock(&latest)
                        .await
                        .map_err(|e| action_error(condition::UPGRADE_FAILED, e))?;
                    run.event(
                        Severity::Error,
                        condition::UPGRADE_FAILED,
                        &unlocked.info.description,
                        &desired.chart_version,
                    )
                    .await;
                    // The interrupted action counts as a failure of that action.
                    if latest.info.status == status::PENDING_INSTALL {
                        last_action = "install".into();
                    } else {
                        last_action = "upgrade".into();
                    }
                    managed = with_history(&managed, &history);
                    run.status.set_field("lastAttemptedReleaseAction", &last_action);
                    run.status.set_field(
                        "history",
                        history_snapshots(
                            &storage.history(&release).await.map_err(Error::Storage)?,
                        ),
                    );
                    run.status
                        .progress(&format!(
                            "unlocked release {}/{}.v{} from a stale pending state",
                            latest.namespace, latest.name, latest.version
                        ))
                        .await?;
                }
                State::Absent => {
                    let remediation = Remediation::install(obj);
                    if remediation.exhausted(run.counters.install)
                        && last_action == "install"
                        && retry_strategy(obj, "install")?.is_none()
                    {
                        return Err(Error::RetriesExhausted(format!(
                            "install retries exhausted ({} failures): cannot install release {release}",
                            run.counters.install
                        )));
                    }
                    last_action = "install".into();
                    run.status.set_field("lastAttemptedReleaseAction", "install");
                    run.status
                        .progress(&format!(
                            "Running 'install' action with timeout of {:?}",
                            install_actions.settings().timeout
                        ))
                        .await?;
                    let started = tokio::time::Instant::now();
                    let result = install_actions.install(&desired.deploy, &history).await;
                    run.status.set_field(
                        "lastAttemptedReleaseActionDuration",
                        format!("{:.3}s", started.elapsed().as_secs_f64()),
                    );
                    let history = storage.history(&release).await.map_err(Error::Storage)?;
                    managed = with_history(&managed, &history);
                    run.status.set_field("history", history_snapshots(&history));
                    read_after_action = Some(history);
                    if result.is_ok() {
                        observe_render_digests(&mut run.status, &mut managed, &desired);
                    }
                    let target = format!("{target_namespace}/{release}");
                    let failure = run
                        .record_release_action(
                            ReleaseAction::Install,
                            result,
                            &target,
                            &chart_label,
                            &desired.chart_version,
                        )
                        .await?;
                    if let (Some(message), Some(after)) = (failure, retry_strategy(obj, "install")?)
                    {
                        return Err(Error::Retry {
                            reason: condition::INSTALL_FAILED,
                            message,
                            after,
                        });
                    }
                }
                State::Unmanaged | State::OutOfSync => {
                    if state == State::OutOfSync
                        && !forced
                        && Remediation::upgrade(obj).exhausted(run.counters.upgrade)
                        && last_action == "upgrade"
                        && retry_strategy(obj, "upgrade")?.is_none()
                    {
                        return Err(Error::RetriesExhausted(format!(
                            "upgrade retries exhausted ({} failures): cannot upgrade release {release}",
                            run.counters.upgrade
                        )));
                    }
                    forced = false;
                    last_action = "upgrade".into();
                    run.status.set_field("lastAttemptedReleaseAction", "upgrade");
                    run.status
                        .progress(&format!(
                            "Running 'upgrade' action with timeout of {:?}",
                            upgrade_actions.settings().timeout
                        ))
                        .await?;
                    let started = tokio::time::Instant::now();
                    let result = upgrade_actions.upgrade(&desired.upgrade_deploy, &history).await;
                    run.status.set_field(
                        "lastAttemptedReleaseActionDuration",
                        format!("{:.3}s", started.elapsed().as_secs_f64()),
                    );
                    let history = storage.history(&release).await.map_err(Error::Storage)?;
                    managed = with_history(&managed, &history);
                    run.status.set_field("history", history_snapshots(&history));
                    read_after_action = Some(history);
                    if result.is_ok() {
                        observe_render_digests(&mut run.status, &mut managed, &desired);
                    }
                    let target = format!("{target_namespace}/{release}");
                    let failure = run
                        .record_release_action(
                            ReleaseAction::Upgrade,
                            result,
                            &target,
                            &chart_label,
                            &desired.chart_version,
                        )
                        .await?;
                    if let (Some(message), Some(after)) = (failure, retry_strategy(obj, "upgrade")?)
                    {
                        return Err(Error::Retry {
                            reason: condition::UPGRADE_FAILED,
                            message,
                            after,
                        });
                    }
                }
                State::Untested => {
                    let latest = history.last().cloned().unwrap_or_default();
                    run.status
                        .progress(&format!(
                            "Running 'test' action with timeout of {:?}",
                            test_actions.settings().timeout
                        ))
                        .await?;
                    let result = test_actions.test(latest, &|h| test_selected(obj, h)).await;
                    let history = storage.history(&release).await.map_err(Error::Storage)?;
                    managed = with_history(&managed, &history);
                    run.status.set_field("history", history_snapshots(&history));
                    match result {
                        Ok(rel) => {
                            let count = rel.hooks.iter().filter(|h| test_selected(obj, h)).count();
                            let message = format!(
                                "Helm test succeeded for release {}/{}.v{} with chart {chart_label}: {count} test hook(s) completed successfully",
                                rel.namespace, rel.name, rel.version
                            );
                            run.status.set_condition(
                                condition::TEST_SUCCESS,
                                CondStatus::True,
                                condition::TEST_SUCCEEDED,
                                &message,
                            );
                            run.event(
                                Severity::Info,
                                condition::TEST_SUCCEEDED,
                                &message,
                                &desired.chart_version,
                            )
                            .await;
                            run.status.progress(&message).await?;
                        }
                        Err((rel, err)) => {
                            let message = format!(
                                "Helm test failed for release {}/{}.v{} with chart {chart_label}: {}",
                                rel.namespace,
                                rel.name,
                                rel.version,
                                sluice_runtime::conditions::error_message(&err)
                            );
                            run.status.set_condition(
                                condition::TEST_SUCCESS,
                                CondStatus::False,
                                condition::TEST_FAILED,
                                &message,
                            );
                            run.event(
                                Severity::Error,
                                condition::TEST_FAILED,
                                &message,
                                &desired.chart_version,
                            )
                            .await;
                            if !ignore_test_failures(obj, &remediation) {
                                run.counters.failures += 1;
                                if last_action == "install" {
                                    run.counters.install += 1
                                } else {
                                    run.counters.upgrade += 1
                                }
                            }
                            run.counters.write(&mut run.status);
                            run.status.progress(&message).await?;
                            if !ignore_test_failures(obj, &remediation)
                                && let Some(after) = retry_strategy(obj, &last_action)?
                            {
                                return Err(Error::Retry {
                                    reason: condition::TEST_FAILED,
                                    message,
                                    after,
                                });
                            }
                        }
                    }
                }
                State::TestFailed if ignore_test_failures(obj, &remediation) => {
                    let latest = history.last().cloned().unwrap_or_default();
                    let message = format!(
                        "Helm {} succeeded for release {}/{}.v{} with chart {chart_label} (test failures ignored)",
                        last_action_or_upgrade(&last_action),
                        latest.namespace,
                        latest.name,
                        latest.version
                    );
                    run.status.set_field("history", history_snapshots(&history));
                    return Ok((
                        if last_action == "install" {
                            condition::INSTALL_SUCCEEDED
                        } else {
                            condition::UPGRADE_SUCCEEDED
                        },
                        message,
                    ));
                }
                State::Failed | State::TestFailed
                    if retry_strategy(obj, last_action_or_upgrade(&last_action))?.is_some()
                        && !forced =>
                {
                    // RetryOnFailure: no remediation; the failed release is upgraded in place
                    // (an interrupted or failed install too, as Flux retries it).
                    managed = with_history(&managed, &history);
                    forced = true;
                }
                State::Failed | State::TestFailed => {
                    let latest = history.last().cloned().unwrap_or_default();
                    let action_failures = if last_action == "install" {
                        run.counters.install
                    } else {
                        run.counters.upgrade
                    };
                    let exhausted = remediation.exhausted(action_failures);
                    let changed = latest.chart_version() != desired.chart_version
                        || config_digest(&latest.config) != desired.config_digest
                        || render_digests_changed(&managed, &desired);
                    if changed && !exhausted && state == State::Failed && !upgraded_change {
                        upgraded_change = true;
                        // A new chart or values: try again with an upgrade rather than remediating.
                        let mut next = managed.clone();
                        next.status.get_or_insert_with(Default::default).history =
                            Some(history_snapshots(&history));
                        managed = next;
                        forced = true;
                        continue;
                    }
                    if exhausted && !remediation.remediate_last_failure {
                        run.status.set_field("history", history_snapshots(&history));
                        return Err(Error::RetriesExhausted(format!(
                            "{} retries exhausted ({action_failures} failures): release {}/{}.v{} is {}",
                            last_action_or_upgrade(&last_action),
                            latest.namespace,
                            latest.name,
                            latest.version,
                            latest.info.status
                        )));
                    }
                    // Remediate: rollback to the previous successful revision, or uninstall.
                    let previous_ok = history
                        .iter()
                        .rev()
                        .find(|r| {
                            r.version < latest.version
                                && matches!(
                                    r.info.status.as_str(),
                                    status::DEPLOYED | status::SUPERSEDED
                                )
                        })
                        .map(|r| r.version);
                    let use_rollback = last_action != "install"
                        && remediation.strategy == "rollback"
                        && previous_ok.is_some();
                    if use_rollback {
                        let target = previous_ok.unwrap_or_default();
                        run.status
                            .progress(&format!(
                                "Running 'rollback' action with timeout of {:?}",
                                rollback_actions.settings().timeout
                            ))
                            .await?;
                        let result = rollback_actions.rollback(target, &history).await;
                        let history = storage.history(&release).await.map_err(Error::Storage)?;
                        run.status.set_field("history", history_snapshots(&history));
                        match result {
                            Ok(rel) => {
                                let message = format!(
                                    "Helm rollback to previous release {}/{}.v{target} with chart {}@{} succeeded",
                                    rel.namespace,
                                    rel.name,
                                    rel.chart_name(),
                                    rel.chart_version()
                                );
                                run.status.set_condition(
                                    condition::REMEDIATED,
                                    CondStatus::True,
                                    condition::ROLLBACK_SUCCEEDED,
                                    &message,
                                );
                                run.event(
                                    Severity::Info,
                                    condition::ROLLBACK_SUCCEEDED,
                                    &message,
                                    &rel.chart_version(),
                                )
                                .await;
                                run.status.progress(&message).await?;
                            }
                            Err(err) => {
                                let message = format!(
                                    "Helm rollback to previous release {target_namespace}/{release}.v{target} failed: {}",
                                    sluice_runtime::conditions::error_message(&err)
                                );
                                run.status.set_condition(
                                    condition::REMEDIATED,
                                    CondStatus::False,
                                    condition::ROLLBACK_FAILED,
                                    &message,
                                );
                                run.event(
                                    Severity::Error,
                                    condition::ROLLBACK_FAILED,
                                    &message,
                                    &desired.chart_version,
                                )
                                .await;
                                return Err(Error::Action {
                                    reason: condition::ROLLBACK_FAILED,
                                    message,
                                });
                            }
                        }
                    } else {
                        run.status
                            .progress(&format!(
                                "Running 'uninstall' remediation with timeout of {:?}",
                                uninstall_actions.settings().timeout
                            ))
                            .await?;
                        let result = uninstall_actions
                            .uninstall(&history, uninstall.keep_history.unwrap_or(false))
                            .await;
                        let history = storage.history(&release).await.map_err(Error::Storage)?;
                        run.status.set_field("history", history_snapshots(&history));
                        match result {
                            Ok(_) => {
                                let message = format!(
                                    "Helm uninstall remediation for release {}/{}.v{} with chart {}@{} succeeded",
                                    latest.namespace,
                                    latest.name,
                                    latest.version,
                                    latest.chart_name(),
                                    latest.chart_version()
                                );
                                run.status.set_condition(
                                    condition::REMEDIATED,
                                    CondStatus::True,
                                    condition::UNINSTALL_SUCCEEDED,
                                    &message,
                                );
                                run.event(
                                    Severity::Info,
                                    condition::UNINSTALL_SUCCEEDED,
                                    &message,
                                    &desired.chart_version,
                                )
                                .await;
                                run.status.progress(&message).await?;
                            }
                            Err(err) => {
                                let message = format!(
                                    "Helm uninstall remediation for release {target_namespace}/{release} failed: {}",
                                    sluice_runtime::conditions::error_message(&err)
                                );
                                run.status.set_condition(
                                    condition::REMEDIATED,
                                    CondStatus::False,
                                    condition::UNINSTALL_FAILED,
                                    &message,
                                );
                                run.event(
                                    Severity::Error,
                                    condition::UNINSTALL_FAILED,
                                    &message,
                                    &desired.chart_version,
                                )
                                .await;
                                return Err(Error::Action {
                                    reason: condition::UNINSTALL_FAILED,
                                    message,
                                });
                            }
                        }
                    }
                    if exhausted {
                        return Err(Error::RetriesExhausted(format!(
                            "{} retries exhausted ({action_failures} failures): the last failure was remediated",
                            last_action_or_upgrade(&last_action)
                        )));
                    }
                    // Retries remain: the next step retries the action on the remediated release.
                }
            }
        }
        Err(Error::Action {
            reason: reason::RECONCILIATION_FAILED,
            message: format!("release {release} did not settle after {MAX_STEPS} actions"),
        })
    }

    /// Uninstalls the release when the HelmRelease is deleted, and deletes the HelmChart
    /// created for `spec.chart`.
    pub async fn cleanup(&self, obj: Arc<HelmRelease>) -> Result<Action, Error> {
        if obj.spec.suspend.unwrap_or(false) {
            return Ok(Action::await_change());
        }
        let namespace = obj.namespace().unwrap_or_default();
        let release = release_name(&obj);
        let storage_namespace =
            obj.spec.storage_namespace.clone().unwrap_or_else(|| namespace.clone());
        let target_namespace =
            obj.spec.target_namespace.clone().unwrap_or_else(|| namespace.clone());
        let uninstall = obj.spec.uninstall.clone().unwrap_or_default();
        let timeout = duration("uninstall.timeout", uninstall.timeout.as_deref(), DEFAULT_TIMEOUT)
            .or_else(|_| duration("timeout", obj.spec.timeout.as_deref(), DEFAULT_TIMEOUT))
            .unwrap_or(DEFAULT_TIMEOUT);
        let client = self.release_client(&obj).await?;
        let storage = SecretStorage::new(client.clone(), &storage_namespace);
        let history = storage.history(&release).await.map_err(Error::Storage)?;
        // Only a release this object manages is uninstalled.
        if let Some(latest) = history.last()
            && is_managed(&obj, latest)
        {
            let actions = Actions::new(
                client.clone(),
                storage.clone(),
                Settings {
                    release_name: release.clone(),
                    namespace: target_namespace,
                    owner_labels: BTreeMap::new(),
                    timeout,
                    disable_wait: uninstall.disable_wait.unwrap_or(false),
                    disable_hooks: uninstall.disable_hooks.unwrap_or(false),
                    max_history: 0,
                    force: false,
                    cleanup_on_fail: false,
                    // A bad policy was refused while the object lived; delete anyway.
                    deletion_propagation: action::deletion_propagation(
                        uninstall.deletion_propagation.as_deref(),
                    )
                    .unwrap_or(kube::api::PropagationPolicy::Background),
                },
            );
            match actions.uninstall(&history, uninstall.keep_history.unwrap_or(false)).await {
                Ok(_) => {
                    let message = format!(
                        "Helm uninstall succeeded for release {}/{}.v{} with chart {}@{}",
                        latest.namespace,
                        latest.name,
                        latest.version,
                        latest.chart_name(),
                        latest.chart_version()
                    );
                    let metadata =
                        BTreeMap::from([("revision".to_string(), latest.chart_version())]);
                    self.runtime
                        .events
                        .record(
                            &*obj,
                            Severity::Info,
                            condition::UNINSTALL_SUCCEEDED,
                            &message,
                            &metadata,
                        )
                        .await;
                }
                Err(err) => {
                    let message = format!(
                        "Helm uninstall failed for release {}/{}: {}",
                        latest.namespace,
                        latest.name,
                        sluice_runtime::conditions::error_message(&err)
                    );
                    self.runtime
                        .events
                        .record(
                            &*obj,
                            Severity::Error,
                            condition::UNINSTALL_FAILED,
                            &message,
                            &BTreeMap::new(),
                        )
                        .await;
                    return Err(Error::Action { reason: condition::UNINSTALL_FAILED, message });
                }
            }
        }
        if let Some(template) = &obj.spec.chart {
            let chart_namespace =
                template.spec.source_ref.namespace.clone().unwrap_or_else(|| namespace.clone());
            let api: Api<HelmChart> =
                Api::namespaced(self.runtime.client.clone(), &chart_namespace);
            match api.delete(&helm_chart_name(&obj), &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(kube_error(
                        format!("deleting HelmChart {chart_namespace}/{}", helm_chart_name(&obj)),
                        e,
                    ));
                }
            }
        }
        Ok(Action::await_change())
    }
}

fn last_action_or_upgrade(action: &str) -> &str {
    if action.is_empty() { "upgrade" } else { action }
}

fn action_error(reason: &'static str, err: ActionError) -> Error {
    Error::Action { reason, message: sluice_runtime::conditions::error_message(&err) }
}

/// Records the post-renderer and common metadata digests a release was deployed with
/// (`status.observedPostRenderersDigest`, `status.observedCommonMetadataDigest`), in the status
/// and in the copy the state machine compares against.
fn observe_render_digests(
    status: &mut StatusWriter<'_, HelmRelease>,
    managed: &mut HelmRelease,
    desired: &Desired,
) {
    let field = |digest: &str| (!digest.is_empty()).then(|| digest.to_string());
    let post = field(&desired.post_renderers_digest);
    let common = field(&desired.common_metadata_digest);
    status.set_field("observedPostRenderersDigest", post.clone());
    status.set_field("observedCommonMetadataDigest", common.clone());
    let managed_status = managed.status.get_or_insert_with(Default::default);
    managed_status.observed_post_renderers_digest = post;
    managed_status.observed_common_metadata_digest = common;
}

/// A copy of `obj` whose status history lists `history` (the releases are now managed).
fn with_history(obj: &HelmRelease, history: &[Release]) -> HelmRelease {
    let mut next = obj.clone();
    next.status.get_or_insert_with(Default::default).history = Some(history_snapshots(history));
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unchanged_helm_chart_is_not_applied_again() {
        let desired = json!({
            "metadata": {"name": "apps-podinfo", "labels": {"helm.toolkit.fluxcd.io/name": "podinfo"},
                         "annotations": {}},
            "spec": {"chart": "podinfo", "version": "*", "interval": "5m",
                     "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                     "reconcileStrategy": "ChartVersion"},
        });
        let live = |change: &dyn Fn(&mut Value)| {
            let mut value = desired.clone();
            value["apiVersion"] = json!("source.toolkit.fluxcd.io/v1");
            value["kind"] = json!("HelmChart");
            value["status"] = json!({"observedGeneration": 1});
            change(&mut value);
            serde_json::from_value::<DynamicObject>(value).unwrap()
        };
        assert!(chart_is_current(&live(&|_| {}), &desired));
        assert!(!chart_is_current(&live(&|v| v["spec"]["version"] = json!("1.x")), &desired));
        assert!(!chart_is_current(
            &live(&|v| v["spec"]["valuesFiles"] = json!(["a.yaml"])),
            &desired
        ));
        assert!(!chart_is_current(
            &live(&|v| v["metadata"]["labels"]["team"] = json!("a")),
            &desired
        ));
        assert!(!chart_is_current(
            &live(&|v| v["metadata"]["annotations"]["a"] = json!("b")),
            &desired
        ));
        assert!(!chart_is_current(
            &live(&|v| v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z")),
            &desired
        ));
    }

    fn hr(spec: Value) -> HelmRelease {
        serde_json::from_value(json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "podinfo", "namespace": "apps"}, "spec": spec})).unwrap()
    }

    #[test]
    fn release_names_follow_flux() {
        assert_eq!(release_name(&hr(json!({"interval": "1m"}))), "podinfo");
        assert_eq!(
            release_name(&hr(json!({"interval": "1m", "targetNamespace": "prod"}))),
            "prod-podinfo"
        );
        assert_eq!(release_name(&hr(json!({"interval": "1m", "releaseName": "x"}))), "x");
        let long = release_name(&hr(
            json!({"interval": "1m", "targetNamespace": "a-very-long-target-namespace-name-for-testing-names"}),
        ));
        assert_eq!(long.len(), 53);
        assert!(long.starts_with("a-very-long-target-namespace-name-for-te-"));
        assert_eq!(helm_chart_name(&hr(json!({"interval": "1m"}))), "apps-podinfo");
    }

    #[test]
    fn config_digest_ignores_key_order() {
        let a: Map<String, Value> =
            serde_json::from_value(json!({"b": 1, "a": {"y": 2, "x": 3}})).unwrap();
        let b: Map<String, Value> =
            serde_json::from_value(json!({"a": {"x": 3, "y": 2}, "b": 1})).unwrap();
        assert_eq!(config_digest(&a), config_digest(&b));
        // sha256 of `{"a":{"x":3,"y":2},"b":1}`
        assert_eq!(
            config_digest(&a),
            format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(br#"{"a":{"x":3,"y":2},"b":1}"#))
            )
        );
        assert_ne!(config_digest(&a), config_digest(&Map::new()));
    }

    #[test]
    fn values_merge_and_target_paths() {
        let mut values: Map<String, Value> =
            serde_json::from_value(json!({"a": {"b": 1, "c": 2}, "l": [1]})).unwrap();
        merge_values(
            &mut values,
            serde_json::from_value(json!({"a": {"c": 3}, "l": [2]})).unwrap(),
        );
        assert_eq!(Value::Object(values.clone()), json!({"a": {"b": 1, "c": 3}, "l": [2]}));
        set_target_path(&mut values, "a.d", "x,y").unwrap();
        set_target_path(&mut values, "replicas", "3").unwrap();
        assert_eq!(values["a"]["d"], "x,y");
        assert_eq!(values["replicas"], 3);
    }

    fn release(version: i64, status: &str) -> Release {
        Release {
            name: "podinfo".into(),
            namespace: "apps".into(),
            version,
            info: storage::Info { status: status.into(), ..Default::default() },
            chart: json!({"metadata": {"name": "podinfo", "version": "1.0.0"}}),
            ..Release::default()
        }
    }

    #[test]
    fn history_runs_back_to_the_previous_success() {
        let h = vec![
            release(1, "superseded"),
            release(2, "superseded"),
            release(3, "failed"),
            release(4, "deployed"),
        ];
        let versions: Vec<i64> = history_snapshots(&h).iter().map(|s| s.version).collect();
        assert_eq!(versions, [4, 3, 2]);
        let versions: Vec<i64> = history_snapshots(&h[..1]).iter().map(|s| s.version).collect();
        assert_eq!(versions, [1]);
    }

    /// What podinfo 1.0.0 with no values and an empty manifest renders to.
    fn podinfo_desired() -> Desired {
        let deploy = || Deploy {
            chart: Value::Null,
            config: Map::new(),
            manifest: String::new(),
            hooks: vec![],
            notes: String::new(),
            crds: vec![],
            crd_policy: CrdPolicy::Skip,
            create_namespace: false,
        };
        Desired {
            deploy: deploy(),
            upgrade_deploy: deploy(),
            chart_name: "podinfo".into(),
            chart_version: "1.0.0".into(),
            app_version: String::new(),
            config_digest: config_digest(&Map::new()),
            revision: "1.0.0".into(),
            post_renderers_digest: String::new(),
            common_metadata_digest: String::new(),
        }
    }

    #[test]
    fn states_follow_storage_and_spec() {
        let desired = podinfo_desired();
        let unmanaged = hr(json!({"interval": "1m"}));
        let h = vec![release(1, "deployed")];
        let managed = with_history(&unmanaged, &h);
        assert_eq!(state_of(&managed, &[], &desired, false), State::Absent);
        assert_eq!(state_of(&unmanaged, &h, &desired, false), State::Unmanaged);
        assert_eq!(state_of(&managed, &h, &desired, false), State::InSync);
        assert_eq!(state_of(&managed, &h, &desired, true), State::OutOfSync);
        assert_eq!(
            state_of(&managed, &[release(1, "pending-upgrade")], &desired, false),
            State::Locked
        );
        assert_eq!(state_of(&managed, &[release(1, "failed")], &desired, false), State::Failed);
        assert_eq!(
            state_of(&managed, &[release(1, "uninstalled")], &desired, false),
            State::Absent
        );
        // A new generation with other post-renderers redeploys; the observed generation does not.
        let mut renderers = managed.clone();
        renderers.metadata.generation = Some(2);
        renderers.status.get_or_insert_with(Default::default).observed_generation = Some(1);
        let patched = Desired { post_renderers_digest: "sha256:1".into(), ..desired.clone() };
        assert_eq!(state_of(&renderers, &h, &patched, false), State::OutOfSync);
        renderers.status.get_or_insert_with(Default::default).observed_post_renderers_digest =
            Some("sha256:1".into());
        assert_eq!(state_of(&renderers, &h, &patched, false), State::InSync);
        let observed = with_history(&hr(json!({"interval": "1m"})), &h);
        assert_eq!(state_of(&observed, &h, &patched, false), State::InSync);
        let other = Desired { chart_version: "1.0.1".into(), ..desired };
        assert_eq!(state_of(&managed, &h, &other, false), State::OutOfSync);
    }

    #[test]
    fn retry_strategy_follows_the_last_action() {
        let obj = hr(json!({"interval": "1m",
            "install": {"strategy": {"name": "RetryOnFailure"}},
            "upgrade": {"strategy": {"name": "RetryOnFailure", "retryInterval": "30s"}}}));
        assert_eq!(retry_strategy(&obj, "install").unwrap(), Some(DEFAULT_RETRY_INTERVAL));
        assert_eq!(retry_strategy(&obj, "upgrade").unwrap(), Some(Duration::from_secs(30)));
        let remediate = hr(json!({"interval": "1m",
            "upgrade": {"strategy": {"name": "RemediateOnFailure"}}}));
        assert_eq!(retry_strategy(&remediate, "upgrade").unwrap(), None);
        assert_eq!(retry_strategy(&remediate, "install").unwrap(), None);
        let bad = hr(json!({"interval": "1m", "install": {"strategy": {"name": "Hope"}}}));
        let err = retry_strategy(&bad, "install").unwrap_err();
        assert!(err.to_string().contains("spec.install.strategy.name"), "{err}");
        let retry = Error::Retry {
            reason: "UpgradeFailed",
            message: "m".into(),
            after: DEFAULT_RETRY_INTERVAL,
        };
        assert!(!retry.is_stalled());
        assert_eq!(retry.reason(), "UpgradeFailed");
    }

    #[test]
    fn a_forced_action_upgrades_a_failed_release() {
        let unmanaged = hr(json!({"interval": "1m"}));
        let failed = vec![release(1, "deployed"), release(2, "failed")];
        let managed = with_history(&unmanaged, &failed);
        let desired = podinfo_desired();
        assert_eq!(state_of(&managed, &failed, &desired, false), State::Failed);
        assert_eq!(state_of(&managed, &failed, &desired, true), State::OutOfSync);
    }

    #[test]
    fn remediation_defaults_follow_flux() {
        let obj = hr(json!({"interval": "1m", "upgrade": {"remediation": {"retries": 2}}}));
        let upgrade = Remediation::upgrade(&obj);
        assert!(upgrade.remediate_last_failure);
        assert_eq!(upgrade.strategy, "rollback");
        assert!(!upgrade.exhausted(2));
        assert!(upgrade.exhausted(3));
        let install = Remediation::install(&obj);
        assert!(!install.remediate_last_failure);
        assert!(install.exhausted(1));
        let unlimited = Remediation::upgrade(&hr(
            json!({"interval": "1m", "upgrade": {"remediation": {"retries": -1}}}),
        ));
        assert!(!unlimited.exhausted(100));
    }

    #[test]
    fn errors_know_their_reasons() {
        assert_eq!(Error::RetriesExhausted("x".into()).reason(), "RetriesExhausted");
        assert!(Error::RetriesExhausted("x".into()).is_stalled());
        assert_eq!(
            Error::Action { reason: "UpgradeFailed", message: "m".into() }.reason(),
            "UpgradeFailed"
        );
        assert!(!Error::Action { reason: "UpgradeFailed", message: "m".into() }.is_stalled());
        assert_eq!(Error::ArtifactNotReady("x".into()).reason(), "ArtifactFailed");
    }
}
