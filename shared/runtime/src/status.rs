//! `StatusWriter`: the only code that patches `.status`, building it whole from the outcome.
//!
//! A reconcile ends in one [`Outcome`]. [`StatusWriter::finish`] turns it into the Ready,
//! Reconciling and Stalled conditions (kstatus rules, see [`crate::conditions::check`]),
//! `observedGeneration` and `lastHandledReconcileAt`, adds the kind-specific fields the
//! reconciler set, merge-patches the status subresource with field manager
//! `gotk-<controller>`, and records the matching event.
//!
//! # Invariants
//! - `observedGeneration` moves to `metadata.generation` when the outcome is final for this
//!   generation (ready, stalled or progressing without error); a failure that will be retried
//!   keeps the previous value and sets `Reconciling=True` with reason `ProgressingWithRetry`.
//! - `Reconciling` and `Stalled` are removed unless True.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use sluice_api::meta::{Condition, READY, RECONCILING, STALLED, reason};

use crate::conditions::{self, Status};
use crate::error::{Error, ReconcileError};
use crate::events::{EventRecorder, Severity, redact};
use crate::object::FluxObject;

/// How a reconcile ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The object is ready: `Ready=True`.
    Ready {
        /// Condition reason, e.g. `Succeeded` or `ReconciliationSucceeded`.
        reason: String,
        /// Condition message, e.g. `stored artifact for revision 'main@sha1:…'`.
        message: String,
    },
    /// Work is under way and not done: `Ready=Unknown`, `Reconciling=True`, both `Progressing`.
    Progressing {
        /// What is happening.
        message: String,
    },
    /// A transient failure that will be retried: `Ready=False`, `Reconciling=True`
    /// (`ProgressingWithRetry`).
    Retrying {
        /// Condition reason of the failure.
        reason: String,
        /// The error chain.
        message: String,
    },
    /// A failure that waits for a spec change: `Ready=False`, `Stalled=True`.
    Stalled {
        /// Condition reason of the failure.
        reason: String,
        /// The error chain.
        message: String,
    },
}

impl Outcome {
    /// The outcome of a reconcile that failed with `error`.
    pub fn from_error(error: &dyn ReconcileError) -> Self {
        let reason = error.reason().to_string();
        let message = conditions::error_message(error);
        if error.is_stalled() {
            Outcome::Stalled { reason, message }
        } else {
            Outcome::Retrying { reason, message }
        }
    }

    /// The honest outcome of a kind whose reconcile logic is not part of this build yet.
    pub fn not_implemented(kind: &str) -> Self {
        Outcome::Progressing {
            message: format!("reconciliation of {kind} is not implemented yet in this build"),
        }
    }

    /// Whether `observedGeneration` moves to the current generation.
    fn observes_generation(&self) -> bool {
        !matches!(self, Outcome::Retrying { .. })
    }
}

/// The conditions after `outcome`, starting from `previous`; other condition types are kept.
pub fn next_conditions(
    previous: &[Condition],
    outcome: &Outcome,
    generation: Option<i64>,
    now: Time,
) -> Vec<Condition> {
    let mut next = previous.to_vec();
    // Messages may quote URLs from the spec; never let credentials into the status.
    let redacted = match outcome {
        Outcome::Ready { reason, message } => {
            Outcome::Ready { reason: reason.clone(), message: redact(message) }
        }
        Outcome::Progressing { message } => Outcome::Progressing { message: redact(message) },
        Outcome::Retrying { reason, message } => {
            Outcome::Retrying { reason: reason.clone(), message: redact(message) }
        }
        Outcome::Stalled { reason, message } => {
            Outcome::Stalled { reason: reason.clone(), message: redact(message) }
        }
    };
    match &redacted {
        Outcome::Ready { reason, message } => {
            conditions::set(&mut next, READY, Status::True, reason, message, generation, now);
            conditions::remove(&mut next, RECONCILING);
            conditions::remove(&mut next, STALLED);
        }
        Outcome::Progressing { message } => {
            let progressing = reason::PROGRESSING;
            conditions::set(
                &mut next,
                READY,
                Status::Unknown,
                progressing,
                message,
                generation,
                now.clone(),
            );
            conditions::set(
                &mut next,
                RECONCILING,
                Status::True,
                progressing,
                message,
                generation,
                now,
            );
            conditions::remove(&mut next, STALLED);
        }
        Outcome::Retrying { reason, message } => {
            conditions::set(
                &mut next,
                READY,
                Status::False,
                reason,
                message,
                generation,
                now.clone(),
            );
            conditions::set(
                &mut next,
                RECONCILING,
                Status::True,
                reason::PROGRESSING_WITH_RETRY,
                message,
                generation,
                now,
            );
            conditions::remove(&mut next, STALLED);
        }
        Outcome::Stalled { reason, message } => {
            conditions::set(
                &mut next,
                READY,
                Status::False,
                reason,
                message,
                generation,
                now.clone(),
            );
            conditions::set(&mut next, STALLED, Status::True, reason, message, generation, now);
            conditions::remove(&mut next, RECONCILING);
        }
    }
    conditions::sort(&mut next);
    next
}

/// The event to record for a transition from `previous_ready` to `outcome`, if any.
///
/// Failures are recorded every time (notification-controller rate-limits duplicates); success
/// only when Ready was not already True with the same message (a recovery or a new revision);
/// progress only as a trace when its message changes.
pub fn event_for(
    previous_ready: Option<&Condition>,
    outcome: &Outcome,
) -> Option<(Severity, String, String)> {
    let same_ready = |status: &str, message: &str| {
        previous_ready.is_some_and(|c| c.status == status && c.message == message)
    };
    match outcome {
        Outcome::Ready { reason, message } => (!same_ready("True", message))
            .then(|| (Severity::Info, reason.clone(), message.clone())),
        Outcome::Progressing { message } => (!same_ready("Unknown", message))
            .then(|| (Severity::Trace, reason::PROGRESSING.to_string(), message.clone())),
        Outcome::Retrying { reason, message } | Outcome::Stalled { reason, message } => {
            Some((Severity::Error, reason.clone(), message.clone()))
        }
    }
}

/// The merge patch body for the status subresource.
pub fn status_patch(
    conditions: &[Condition],
    observed_generation: Option<i64>,
    last_handled_reconcile_at: Option<&str>,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let mut status = fields.clone();
    status.insert("conditions".into(), serde_json::to_value(conditions).unwrap_or_default());
    if let Some(generation) = observed_generation {
        status.insert("observedGeneration".into(), generation.into());
    }
    if let Some(token) = last_handled_reconcile_at {
        status.insert("lastHandledReconcileAt".into(), token.into());
    }
    serde_json::json!({ "status": status })
}

/// Writes the status of one object during one reconcile.
pub struct StatusWriter<'a, K: FluxObject> {
    obj: &'a K,
    api: Api<K>,
    field_manager: String,
    recorder: &'a EventRecorder,
    conditions: Vec<Condition>,
    fields: serde_json::Map<String, serde_json::Value>,
    metadata: BTreeMap<String, String>,
}

impl<'a, K: FluxObject> StatusWriter<'a, K> {
    /// A writer for `obj`, patching through `client` as `gotk-<controller>`.
    pub fn new(
        obj: &'a K,
        client: kube::Client,
        controller: &str,
        recorder: &'a EventRecorder,
    ) -> Self {
        let api = match obj.meta().namespace.as_deref() {
            Some(namespace) => Api::namespaced(client, namespace),
            None => Api::default_namespaced(client),
        };
        StatusWriter {
            obj,
            api,
            field_manager: format!("gotk-{controller}"),
            recorder,
            conditions: obj.conditions().to_vec(),
            fields: serde_json::Map::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// Sets a kind-specific status field (e.g. `artifact`), written by the next patch.
    ///
    /// A value that cannot be serialized is written as `null`, which removes the field.
    pub fn set_field(&mut self, name: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.fields.insert(name.to_string(), value);
    }

    /// Sets a kind-specific condition (e.g. HelmRelease `Released`), written by the next patch;
    /// Ready, Reconciling and Stalled stay the outcome's. The message is redacted.
    pub fn set_condition(&mut self, type_: &str, status: Status, reason: &str, message: &str) {
        conditions::set(
            &mut self.conditions,
            type_,
            status,
            reason,
            &redact(message),
            self.obj.meta().generation,
            Time(jiff::Timestamp::now()),
        );
    }

    /// Removes a kind-specific condition, written by the next patch.
    pub fn remove_condition(&mut self, type_: &str) {
        conditions::remove(&mut self.conditions, type_);
    }

    /// Adds event metadata (e.g. `revision`), prefixed with the API group when recorded.
    pub fn set_event_metadata(&mut self, key: &str, value: &str) {
        self.metadata.insert(key.to_string(), value.to_string());
    }

    /// Marks the reconcile as in progress with `message` and patches the status now.
    ///
    /// # Errors
    /// When the patch is rejected.
    pub async fn progress(&mut self, message: &str) -> Result<(), Error> {
        let now = Time(jiff::Timestamp::now());
        let generation = self.obj.meta().generation;
        let progressing = reason::PROGRESSING;
        conditions::set(
            &mut self.conditions,
            READY,
            Status::Unknown,
            progressing,
            message,
            generation,
            now.clone(),
        );
        conditions::set(
            &mut self.conditions,
            RECONCILING,
            Status::True,
            progressing,
            message,
            generation,
            now,
        );
        conditions::remove(&mut self.conditions, STALLED);
        conditions::sort(&mut self.conditions);
        let patch = status_patch(&self.conditions, None, None, &self.fields);
        self.patch(&patch).await
    }

    /// Writes the whole status for `outcome` and records the matching event.
    ///
    /// # Errors
    /// When the patch is rejected; the event is not recorded then.
    pub async fn finish(self, outcome: &Outcome) -> Result<(), Error> {
        let now = Time(jiff::Timestamp::now());
        let generation = self.obj.meta().generation;
        let previous_ready = conditions::get(self.obj.conditions(), READY).cloned();
        let next = next_conditions(&self.conditions, outcome, generation, now);
        let observed_generation =
            if outcome.observes_generation() { Some(generation.unwrap_or_default()) } else { None };
        let patch =
            status_patch(&next, observed_generation, self.obj.reconcile_request(), &self.fields);
        self.patch(&patch).await?;
        if let Some((severity, reason, message)) = event_for(previous_ready.as_ref(), outcome) {
            self.recorder.record(self.obj, severity, &reason, &message, &self.metadata).await;
        }
        Ok(())
    }

    async fn patch(&self, patch: &serde_json::Value) -> Result<(), Error> {
        let meta = self.obj.meta();
        let name =
            meta.name.clone().ok_or_else(|| Error::Unnamed { kind: K::kind(&()).into_owned() })?;
        let params =
            PatchParams { field_manager: Some(self.field_manager.clone()), ..Default::default() };
        self.api.patch_status(&name, &params, &Patch::Merge(patch)).await.map_err(|source| {
            Error::Kube {
                action: "patching status of",
                kind: K::kind(&()).into_owned(),
                namespace: meta.namespace.clone().unwrap_or_default(),
                name: name.clone(),
                source: Box::new(source),
            }
        })?;
        Ok(())
    }
}

/// Reconciles a kind whose logic is not part of this build, honestly.
///
/// Records `observedGeneration` and `lastHandledReconcileAt`, sets `Ready=Unknown` and
/// `Reconciling=True` with reason `Progressing` and a message saying the reconciliation of this
/// kind is not implemented yet (never a fake success), and looks again after the jittered
/// `spec.interval`. An unparsable interval stalls the object with a message naming the field.
///
/// # Errors
/// When the status patch is rejected.
pub async fn reconcile_not_implemented<K: FluxObject>(
    obj: &K,
    runtime: &crate::runtime::Runtime,
) -> Result<kube::runtime::controller::Action, Error> {
    let status =
        StatusWriter::new(obj, runtime.client.clone(), runtime.controller, &runtime.events);
    match obj.interval() {
        Ok(interval) => {
            status.finish(&Outcome::not_implemented(&K::kind(&()))).await?;
            Ok(runtime.next_action(interval))
        }
        Err(message) => {
            status
                .finish(&Outcome::Stalled { reason: reason::FAILED.to_string(), message })
                .await?;
            Ok(kube::runtime::controller::Action::await_change())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::check;

    fn time(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn ready(reason: &str, message: &str) -> Outcome {
        Outcome::Ready { reason: reason.into(), message: message.into() }
    }

    fn summary(conditions: &[Condition]) -> String {
        conditions
            .iter()
            .map(|c| format!("{}={}/{}", c.type_, c.status, c.reason))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Applies `outcome` at generation 2 after `previous` and checks the conditions, the new
    /// observedGeneration (previous is 1), and the kstatus rules.
    #[track_caller]
    fn check_outcome(previous: &[Condition], outcome: Outcome, expected: &str, observed: i64) {
        let next = next_conditions(previous, &outcome, Some(2), time(100));
        assert_eq!(summary(&next), expected);
        let observed_generation = if outcome.observes_generation() { 2 } else { 1 };
        assert_eq!(observed_generation, observed);
        if let Err(broken) = check(2, observed_generation, &next) {
            panic!("kstatus rules broken by {outcome:?}: {broken:?}");
        }
    }

    #[test]
    fn outcomes_follow_kstatus() {
        let retrying = next_conditions(
            &[],
            &Outcome::Retrying { reason: "GitOperationFailed".into(), message: "x".into() },
            Some(1),
            time(0),
        );
        let stalled = next_conditions(
            &[],
            &Outcome::Stalled { reason: "InvalidURL".into(), message: "x".into() },
            Some(1),
            time(0),
        );
        check_outcome(&[], ready("Succeeded", "ok"), "Ready=True/Succeeded", 2);
        check_outcome(&retrying, ready("Succeeded", "ok"), "Ready=True/Succeeded", 2);
        check_outcome(&stalled, ready("Succeeded", "ok"), "Ready=True/Succeeded", 2);
        check_outcome(
            &[],
            Outcome::not_implemented("GitRepository"),
            "Ready=Unknown/Progressing Reconciling=True/Progressing",
            2,
        );
        check_outcome(
            &stalled,
            Outcome::Retrying { reason: "GitOperationFailed".into(), message: "timeout".into() },
            "Ready=False/GitOperationFailed Reconciling=True/ProgressingWithRetry",
            1,
        );
        check_outcome(
            &retrying,
            Outcome::Stalled { reason: "InvalidURL".into(), message: "bad".into() },
            "Ready=False/InvalidURL Stalled=True/InvalidURL",
            2,
        );
    }

    #[test]
    fn condition_messages_are_redacted() {
        let outcome = ready("Succeeded", "stored artifact from https://u:p@example.com/repo");
        let next = next_conditions(&[], &outcome, Some(1), time(0));
        assert_eq!(next[0].message, "stored artifact from https://example.com/repo");
    }

    #[test]
    fn other_condition_types_are_kept() {
        let previous = next_conditions(&[], &ready("Succeeded", "ok"), Some(1), time(0));
        let mut with_artifact = previous.clone();
        conditions::set(
            &mut with_artifact,
            "ArtifactInStorage",
            Status::True,
            "Succeeded",
            "",
            Some(1),
            time(0),
        );
        let next = next_conditions(&with_artifact, &ready("Succeeded", "ok"), Some(2), time(5));
        assert_eq!(summary(&next), "Ready=True/Succeeded ArtifactInStorage=True/Succeeded");
        // Ready stayed True, so its transition time is the first one.
        assert_eq!(next[0].last_transition_time, time(0));
        assert_eq!(next[0].observed_generation, Some(2));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("spec.url \"ftp://x\" is not http, https or ssh")]
    struct BadUrl;
    impl ReconcileError for BadUrl {
        fn reason(&self) -> &'static str {
            "URLInvalid"
        }
        fn is_stalled(&self) -> bool {
            true
        }
    }

    #[test]
    fn errors_map_to_stalled_or_retrying() {
        assert_eq!(
            Outcome::from_error(&BadUrl),
            Outcome::Stalled {
                reason: "URLInvalid".into(),
                message: "spec.url \"ftp://x\" is not http, https or ssh".into()
            }
        );
    }

    #[track_caller]
    fn check_event(previous: Option<(&str, &str)>, outcome: Outcome, expected: Option<Severity>) {
        let previous = previous.map(|(status, message)| Condition {
            type_: READY.into(),
            status: status.into(),
            reason: "X".into(),
            message: message.into(),
            observed_generation: None,
            last_transition_time: time(0),
        });
        let event = event_for(previous.as_ref(), &outcome);
        assert_eq!(event.map(|(severity, _, _)| severity), expected, "{outcome:?}");
    }

    #[test]
    fn events_on_interesting_transitions() {
        let failed = || Outcome::Retrying { reason: "BuildFailed".into(), message: "boom".into() };
        check_event(None, ready("Succeeded", "rev a"), Some(Severity::Info));
        check_event(Some(("True", "rev a")), ready("Succeeded", "rev a"), None);
        check_event(Some(("True", "rev a")), ready("Succeeded", "rev b"), Some(Severity::Info));
        check_event(Some(("False", "boom")), ready("Succeeded", "rev a"), Some(Severity::Info));
        check_event(None, failed(), Some(Severity::Error));
        check_event(Some(("False", "boom")), failed(), Some(Severity::Error));
        let waiting = || Outcome::not_implemented("Bucket");
        check_event(None, waiting(), Some(Severity::Trace));
        let message = "reconciliation of Bucket is not implemented yet in this build";
        check_event(Some(("Unknown", message)), waiting(), None);
    }

    const REPO_PATH: &str =
        "/apis/source.toolkit.fluxcd.io/v1/namespaces/apps/gitrepositories/podinfo";

    fn repository(generation: i64, request: &str) -> sluice_api::source::GitRepository {
        let mut obj = sluice_api::source::GitRepository::new("podinfo", Default::default());
        obj.spec.url = "https://github.com/stefanprodan/podinfo".into();
        obj.spec.interval = "5m".into();
        obj.metadata.namespace = Some("apps".into());
        obj.metadata.generation = Some(generation);
        obj.metadata.annotations = Some(BTreeMap::from([(
            sluice_api::meta::RECONCILE_REQUEST_ANNOTATION.to_string(),
            request.to_string(),
        )]));
        obj
    }

    fn stored_status(fake: &crate::fake_api::FakeApi) -> sluice_api::source::GitRepositoryStatus {
        let stored: sluice_api::source::GitRepository =
            serde_json::from_value(fake.get(REPO_PATH).unwrap()).unwrap();
        stored.status.unwrap()
    }

    #[tokio::test]
    async fn finish_merge_patches_the_status_subresource() {
        let (fake, client) = crate::fake_api::FakeApi::start().await;
        let obj = repository(3, "token-1");
        fake.insert(REPO_PATH, serde_json::to_value(&obj).unwrap());
        let recorder = EventRecorder::new("source-controller", "pod-0", None, None);
        let mut writer = StatusWriter::new(&obj, client.clone(), "source-controller", &recorder);
        writer.set_field("observedIgnore", "*.txt");
        writer.finish(&Outcome::not_implemented("GitRepository")).await.unwrap();

        let requests = fake.requests();
        assert_eq!(requests.len(), 1, "{requests:?}");
        let request = &requests[0];
        assert_eq!(request.method, axum::http::Method::PATCH);
        assert_eq!(request.path, format!("{REPO_PATH}/status"));
        assert_eq!(request.content_type, "application/merge-patch+json");
        assert!(request.query.contains("fieldManager=gotk-source-controller"), "{}", request.query);
        let patched: Vec<&String> = request.body["status"].as_object().unwrap().keys().collect();
        assert_eq!(
            patched,
            ["observedIgnore", "conditions", "observedGeneration", "lastHandledReconcileAt"]
        );

        let status = stored_status(&fake);
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.last_handled_reconcile_at.as_deref(), Some("token-1"));
        assert_eq!(status.observed_ignore.as_deref(), Some("*.txt"));
        let conditions = status.conditions.clone().unwrap();
        check(3, 3, &conditions).unwrap();
        let ready = conditions::get(&conditions, READY).unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("Unknown", "Progressing"));
        assert_eq!(
            ready.message,
            "reconciliation of GitRepository is not implemented yet in this build"
        );

        // A retried failure of the next generation keeps observedGeneration but records the
        // new request token.
        let mut next = repository(4, "token-2");
        next.status = Some(status);
        let failure =
            Outcome::Retrying { reason: "GitOperationFailed".into(), message: "timeout".into() };
        StatusWriter::new(&next, client, "source-controller", &recorder)
            .finish(&failure)
            .await
            .unwrap();
        let status = stored_status(&fake);
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.last_handled_reconcile_at.as_deref(), Some("token-2"));
        check(4, 3, status.conditions.as_deref().unwrap()).unwrap();
    }

    #[test]
    fn patch_body() {
        let conditions = next_conditions(&[], &ready("Succeeded", "ok"), Some(3), time(0));
        let mut fields = serde_json::Map::new();
        fields.insert("url".into(), "http://x".into());
        let patch = status_patch(&conditions, Some(3), Some("2026-11-23T10:00:00Z"), &fields);
        assert_eq!(patch["status"]["observedGeneration"], 3);
        assert_eq!(patch["status"]["lastHandledReconcileAt"], "2026-11-23T10:00:00Z");
        assert_eq!(patch["status"]["url"], "http://x");
        assert_eq!(patch["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(patch["status"]["conditions"][0]["lastTransitionTime"], "1970-01-01T00:00:00Z");
        let retry = status_patch(&conditions, None, None, &serde_json::Map::new());
        assert!(retry["status"].get("observedGeneration").is_none());
        assert!(retry["status"].get("lastHandledReconcileAt").is_none());
    }
}
