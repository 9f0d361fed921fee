//! Events: Kubernetes Events plus forwarding of Flux event JSON to notification-controller.
//!
//! [`EventRecorder::record`] mirrors fluxcd/pkg `runtime/events/recorder.go`: it always emits a
//! Kubernetes Event (events.k8s.io/v1, through kube's recorder) and, unless the severity is
//! [`Severity::Trace`], POSTs the Flux event JSON to `--events-addr`. Messages pass through
//! [`redact`] first so credentials embedded in URLs never leave the process.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use serde::{Deserialize, Serialize};

/// Annotation prefix whose object annotations are copied into event metadata.
pub const EVENT_ANNOTATION_PREFIX: &str = "event.toolkit.fluxcd.io/";

/// Longest message posted to notification-controller, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 39_000;

/// Longest note of a Kubernetes Event, in bytes (events.k8s.io/v1 validation limit).
pub const MAX_NOTE_BYTES: usize = 1024;

/// Timeout of one POST to notification-controller.
pub const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// Well-known metadata keys; the recorder prefixes them with the object's API group.
pub mod metadata {
    /// The source revision, e.g. `main@sha1:<hex>`.
    pub const REVISION: &str = "revision";
    /// The origin revision of an OCI artifact.
    pub const ORIGIN_REVISION: &str = "originRevision";
    /// The artifact digest.
    pub const DIGEST: &str = "digest";
    /// A token that deduplicates events in notification-controller.
    pub const TOKEN: &str = "token";
    /// A Git commit made by image automation.
    pub const COMMIT: &str = "commit";
}

/// Severity of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Informational; a Kubernetes `Normal` event, posted as `info`.
    Info,
    /// A failure; a Kubernetes `Warning` event, posted as `error`.
    Error,
    /// Progress detail; a Kubernetes `Normal` event, never posted.
    Trace,
}

impl Severity {
    /// The `severity` string of the Flux event JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Error => "error",
            Severity::Trace => "trace",
        }
    }

    fn event_type(self) -> EventType {
        match self {
            Severity::Error => EventType::Warning,
            Severity::Info | Severity::Trace => EventType::Normal,
        }
    }
}

/// The event JSON posted to notification-controller (fluxcd/pkg `apis/event/v1beta1` Event).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FluxEvent {
    /// The object the event is about.
    pub involved_object: ObjectReference,
    /// `info` or `error`.
    pub severity: String,
    /// When the event happened.
    pub timestamp: Time,
    /// Human-readable description, redacted and truncated to [`MAX_MESSAGE_BYTES`].
    pub message: String,
    /// CamelCase reason, e.g. `ReconciliationSucceeded`.
    pub reason: String,
    /// Metadata such as `<group>/revision`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The controller that emitted the event, e.g. `kustomize-controller`.
    pub reporting_controller: String,
    /// The instance (pod hostname) that emitted the event.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reporting_instance: String,
}

/// Why forwarding an event failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The request could not be sent or timed out.
    #[error("posting event to {url}")]
    Request {
        /// The events address.
        url: String,
        /// The HTTP error.
        #[source]
        source: reqwest::Error,
    },
    /// The receiver answered with a non-success status.
    #[error("posting event to {url}: notification-controller answered {status}")]
    Status {
        /// The events address.
        url: String,
        /// The HTTP status.
        status: reqwest::StatusCode,
    },
}

/// Posts Flux events to notification-controller's events address.
#[derive(Clone, Debug)]
pub struct EventForwarder {
    client: reqwest::Client,
    url: String,
    retries: u32,
}

impl EventForwarder {
    /// A forwarder posting to `url` (the `--events-addr` value, used as is).
    ///
    /// # Errors
    /// Fails when the HTTP client cannot be built (no rustls crypto provider installed).
    pub fn new(url: &str) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(POST_TIMEOUT).build()?;
        Ok(EventForwarder { client, url: url.to_string(), retries: 4 })
    }

    /// Sets how many times a failed POST is retried (server errors and connection failures
    /// only; a 429 or other 4xx answer is never retried).
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Posts one event, retrying transient failures with a doubling wait from 1 s.
    ///
    /// # Errors
    /// The last failure when every attempt failed, or the first non-retryable answer.
    pub async fn forward(&self, event: &FluxEvent) -> Result<(), ForwardError> {
        let mut wait = Duration::from_secs(1);
        let mut attempt = 0;
        loop {
            let result = self.client.post(&self.url).json(event).send().await;
            let error = match result {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let error = ForwardError::Status { url: self.url.clone(), status };
                    // notification-controller answers 429 for duplicates it rate-limits;
                    // retrying would only be limited again (fluxcd/pkg recorder.go).
                    if !status.is_server_error() {
                        return Err(error);
                    }
                    error
                }
                Err(source) => ForwardError::Request { url: self.url.clone(), source },
            };
            if attempt >= self.retries {
                return Err(error);
            }
            attempt += 1;
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }
}

/// Records events for one controller: Kubernetes Events and, when configured, Flux event POSTs.
#[derive(Clone)]
pub struct EventRecorder {
    controller: String,
    instance: String,
    recorder: Option<Recorder>,
    forwarder: Option<EventForwarder>,
}

impl EventRecorder {
    /// A recorder for `controller` that writes Kubernetes Events with `client` (when given) and
    /// posts to `forwarder` (when given). `instance` is the pod hostname.
    pub fn new(
        controller: &str,
        instance: &str,
        client: Option<kube::Client>,
        forwarder: Option<EventForwarder>,
    ) -> Self {
        let recorder = client.map(|client| {
            Recorder::new(
                client,
                Reporter {
                    controller: controller.to_string(),
                    instance: Some(instance.to_string()),
                },
            )
        });
        EventRecorder {
            controller: controller.to_string(),
            instance: instance.to_string(),
            recorder,
            forwarder,
        }
    }

    /// Builds the Flux event for `obj`; the pure part of [`EventRecorder::record`].
    ///
    /// `metadata` keys are prefixed with the object's API group; annotations of the object that
    /// start with [`EVENT_ANNOTATION_PREFIX`] are added as they are.
    pub fn build_event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        severity: Severity,
        reason: &str,
        message: &str,
        metadata: &BTreeMap<String, String>,
        now: Time,
    ) -> FluxEvent {
        let group = K::group(&());
        let mut all_metadata = BTreeMap::new();
        if let Some(annotations) = &obj.meta().annotations {
            for (key, value) in annotations {
                if key.starts_with(EVENT_ANNOTATION_PREFIX) {
                    all_metadata.insert(key.clone(), value.clone());
                }
            }
        }
        for (key, value) in metadata {
            all_metadata.insert(format!("{group}/{key}"), value.clone());
        }
        FluxEvent {
            involved_object: obj.object_ref(&()),
            severity: severity.as_str().to_string(),
            timestamp: now,
            message: truncate(&redact(message), MAX_MESSAGE_BYTES).to_string(),
            reason: reason.to_string(),
            metadata: all_metadata,
            reporting_controller: self.controller.clone(),
            reporting_instance: self.instance.clone(),
        }
    }

    /// Records an event about `obj`: a Kubernetes Event, and a POST unless `severity` is
    /// [`Severity::Trace`] or no events address is configured.
    ///
    /// Failures are logged, never returned: an unreachable notification-controller must not
    /// fail a reconcile. The POST runs in the background.
    pub async fn record<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        severity: Severity,
        reason: &str,
        message: &str,
        metadata: &BTreeMap<String, String>,
    ) {
        let now = Time(jiff::Timestamp::now());
        let event = self.build_event(obj, severity, reason, message, metadata, now);
        if let Some(recorder) = &self.recorder {
            let kube_event = KubeEvent {
                type_: severity.event_type(),
                reason: reason.to_string(),
                note: Some(truncate(&event.message, MAX_NOTE_BYTES).to_string()),
                action: reason.to_string(),
                secondary: None,
            };
            if let Err(error) = recorder.publish(&kube_event, &event.involved_object).await {
                tracing::warn!(
                    reason,
                    error = %crate::conditions::error_message(&error),
                    "failed to record Kubernetes event"
                );
            }
        }
        if severity == Severity::Trace {
            return;
        }
        if let Some(forwarder) = self.forwarder.clone() {
            tokio::spawn(async move {
                if let Err(error) = forwarder.forward(&event).await {
                    tracing::warn!(
                        reason = %event.reason,
                        error = %crate::conditions::error_message(&error),
                        "failed to forward event"
                    );
                }
            });
        }
    }
}

/// Removes credentials from URLs in `text`: `scheme://user:secret@host` becomes `scheme://host`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(idx) = rest.find("://") {
        let (head, tail) = rest.split_at(idx + 3);
        out.push_str(head);
        // The authority ends at the first character that cannot be part of it.
        let authority_end = tail
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\''
            })
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use kube::api::ObjectMeta;
    use sluice_api::kustomize::Kustomization;

    use super::*;

    #[track_caller]
    fn check_redact(input: &str, expected: &str) {
        assert_eq!(redact(input), expected, "{input:?}");
    }

    #[test]
    fn redact_strips_userinfo() {
        check_redact("plain message", "plain message");
        check_redact("https://user:s3cret@example.com/repo.git", "https://example.com/repo.git");
        check_redact(
            "clone 'https://tok@github.com/o/r' failed",
            "clone 'https://github.com/o/r' failed",
        );
        check_redact("ssh://git@host:22/path", "ssh://host:22/path");
        check_redact("a http://x@y b https://p:q@r/s", "a http://y b https://r/s");
        check_redact("oci://ghcr.io/org/app", "oci://ghcr.io/org/app");
        check_redact("email a@b.c outside URLs", "email a@b.c outside URLs");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    fn kustomization() -> Kustomization {
        let mut obj = Kustomization::new("webapp", Default::default());
        obj.metadata = ObjectMeta {
            name: Some("webapp".into()),
            namespace: Some("apps".into()),
            uid: Some("uid-1".into()),
            annotations: Some(BTreeMap::from([
                ("event.toolkit.fluxcd.io/env".to_string(), "prod".to_string()),
                ("other/annotation".to_string(), "x".to_string()),
            ])),
            ..Default::default()
        };
        obj
    }

    #[test]
    fn build_event_prefixes_metadata_with_the_group() {
        let recorder = EventRecorder::new("kustomize-controller", "pod-1", None, None);
        let metadata = BTreeMap::from([("revision".to_string(), "main@sha1:abc".to_string())]);
        let now = Time(jiff::Timestamp::from_second(1_666_941_979).unwrap());
        let event = recorder.build_event(
            &kustomization(),
            Severity::Info,
            "ReconciliationSucceeded",
            "applied https://u:p@example.com",
            &metadata,
            now,
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "involvedObject": {"apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                    "kind": "Kustomization", "name": "webapp", "namespace": "apps", "uid": "uid-1"},
                "severity": "info",
                "timestamp": "2022-10-28T07:26:19Z",
                "message": "applied https://example.com",
                "reason": "ReconciliationSucceeded",
                "metadata": {"event.toolkit.fluxcd.io/env": "prod",
                    "kustomize.toolkit.fluxcd.io/revision": "main@sha1:abc"},
                "reportingController": "kustomize-controller",
                "reportingInstance": "pod-1"
            })
        );
    }

    type Captured = Arc<Mutex<Vec<(HeaderMap, serde_json::Value)>>>;

    /// Serves POST / on 127.0.0.1:0, recording requests and answering `status`.
    async fn capture_server(status: StatusCode) -> (String, Captured) {
        let captured: Captured = Arc::default();
        let sink = captured.clone();
        let app = Router::new().route(
            "/",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    sink.lock().unwrap().push((headers, json));
                    status
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/"), captured)
    }

    fn install_crypto() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    #[tokio::test]
    async fn forward_posts_the_event_json() {
        install_crypto();
        let (url, captured) = capture_server(StatusCode::ACCEPTED).await;
        let forwarder = EventForwarder::new(&url).unwrap();
        let recorder = EventRecorder::new("kustomize-controller", "pod-1", None, None);
        let now = Time(jiff::Timestamp::from_second(0).unwrap());
        let event = recorder.build_event(
            &kustomization(),
            Severity::Error,
            "BuildFailed",
            "kustomization.yaml not found",
            &BTreeMap::new(),
            now,
        );
        forwarder.forward(&event).await.unwrap();
        let requests = captured.lock().unwrap();
        assert_eq!(requests.len(), 1);
        let (headers, body) = &requests[0];
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body["severity"], "error");
        assert_eq!(body["reason"], "BuildFailed");
        assert_eq!(body["involvedObject"]["kind"], "Kustomization");
        assert_eq!(body["metadata"]["event.toolkit.fluxcd.io/env"], "prod");
        let parsed: FluxEvent = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(parsed, event);
    }

    #[tokio::test]
    async fn forward_does_not_retry_rate_limited_events() {
        install_crypto();
        let (url, captured) = capture_server(StatusCode::TOO_MANY_REQUESTS).await;
        let forwarder = EventForwarder::new(&url).unwrap();
        let recorder = EventRecorder::new("c", "", None, None);
        let now = Time(jiff::Timestamp::from_second(0).unwrap());
        let event =
            recorder.build_event(&kustomization(), Severity::Info, "R", "m", &BTreeMap::new(), now);
        let error = forwarder.forward(&event).await.unwrap_err();
        assert!(matches!(error, ForwardError::Status { status, .. } if status == 429));
        assert_eq!(captured.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn forward_retries_server_errors() {
        install_crypto();
        let (url, captured) = capture_server(StatusCode::INTERNAL_SERVER_ERROR).await;
        let forwarder = EventForwarder::new(&url).unwrap().with_retries(1);
        let recorder = EventRecorder::new("c", "", None, None);
        let now = Time(jiff::Timestamp::from_second(0).unwrap());
        let event =
            recorder.build_event(&kustomization(), Severity::Info, "R", "m", &BTreeMap::new(), now);
        assert!(forwarder.forward(&event).await.is_err());
        assert_eq!(captured.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn trace_events_are_not_posted() {
        install_crypto();
        let (url, captured) = capture_server(StatusCode::ACCEPTED).await;
        let forwarder = EventForwarder::new(&url).unwrap();
        let recorder = EventRecorder::new("c", "", None, Some(forwarder));
        recorder
            .record(&kustomization(), Severity::Trace, "Progressing", "m", &BTreeMap::new())
            .await;
        recorder.record(&kustomization(), Severity::Info, "Succeeded", "m", &BTreeMap::new()).await;
        // The info POST runs in the background; wait for it with a deadline.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while captured.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let requests = captured.lock().unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].1["reason"], "Succeeded");
    }
}
