//! The event API as the server sees it: Flux's event JSON, metadata cleanup and the rate-limit key.
//!
//! Controllers post `eventv1.Event` JSON (fluxcd/pkg `apis/event/v1beta1`); the runtime's
//! forwarder sends [`sluice_runtime::events::FluxEvent`]. The server reads it leniently into
//! [`Event`], as Go's decoder does: missing fields are empty, unknown fields are ignored.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use ring::digest;
use serde::{Deserialize, Serialize};

/// The API group whose metadata keys come from object annotations (`event.toolkit.fluxcd.io/`).
pub const EVENT_GROUP: &str = "event.toolkit.fluxcd.io";

/// Severity of failures.
pub const SEVERITY_ERROR: &str = "error";

/// Severity of everything else.
pub const SEVERITY_INFO: &str = "info";

/// Largest request body the event and receiver servers accept (Flux's 3 MiB).
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;

/// A Flux event as posted to the event server and forwarded by the generic providers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The object the event is about.
    #[serde(default)]
    pub involved_object: ObjectReference,
    /// `info` or `error`.
    #[serde(default)]
    pub severity: String,
    /// When the event happened (RFC 3339; kept as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<serde_json::Value>,
    /// Human-readable description.
    #[serde(default)]
    pub message: String,
    /// CamelCase reason, e.g. `ReconciliationSucceeded`.
    #[serde(default)]
    pub reason: String,
    /// Metadata such as `<group>/revision`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The controller that emitted the event.
    #[serde(default)]
    pub reporting_controller: String,
    /// The instance that emitted the event.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reporting_instance: String,
}

impl Event {
    /// The API group of the involved object (empty for the core group).
    pub fn object_group(&self) -> &str {
        let api_version = self.involved_object.api_version.as_deref().unwrap_or_default();
        match api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }

    /// `<Kind>/<namespace>/<name>`, as Flux names the involved object in messages.
    pub fn object_string(&self) -> String {
        let object = &self.involved_object;
        format!(
            "{}/{}/{}",
            object.kind.as_deref().unwrap_or_default(),
            object.namespace.as_deref().unwrap_or_default(),
            object.name.as_deref().unwrap_or_default()
        )
    }

    /// `<kind-lowercase>/<name>.<namespace>`, the title of chat messages.
    pub fn object_title(&self) -> String {
        let object = &self.involved_object;
        format!(
            "{}/{}.{}",
            object.kind.as_deref().unwrap_or_default().to_lowercase(),
            object.name.as_deref().unwrap_or_default(),
            object.namespace.as_deref().unwrap_or_default()
        )
    }

    /// Whether the event reports a failure.
    pub fn is_error(&self) -> bool {
        self.severity == SEVERITY_ERROR
    }

    /// The object-group metadata value of `key` (before [`combine`](crate::alert::combine_metadata)).
    pub fn group_metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(&format!("{}/{key}", self.object_group())).map(String::as_str)
    }
}

/// Keeps only metadata under `event.toolkit.fluxcd.io/` or the object's group, and drops the
/// `<group>/checksum` and `<group>/digest` keys (fluxcd/notification-controller
/// `internal/server/event_server.go` `cleanupMetadata`).
pub fn cleanup_metadata(event: &mut Event) {
    let event_prefix = format!("{EVENT_GROUP}/");
    let object_prefix = format!("{}/", event.object_group());
    let excluded = [format!("{object_prefix}checksum"), format!("{object_prefix}digest")];
    event.metadata.retain(|key, _| {
        !excluded.iter().any(|excluded| excluded.eq_ignore_ascii_case(key))
            && (key.starts_with(&event_prefix) || key.starts_with(&object_prefix))
    });
}

/// Removes metadata that only serves the event server (`<group>/token`).
pub fn exclude_internal_metadata(event: &mut Event) {
    let token_key = format!("{}/token", event.object_group());
    event.metadata.remove(&token_key);
}

/// The rate-limit key: sha256 of the object, the message and the revisions and token, so the
/// same message about the same object and revision is limited (Flux's `eventKeyFunc`).
pub fn rate_limit_key(event: &Event) -> String {
    let object = &event.involved_object;
    let mut parts = vec![
        "event".to_string(),
        format!("name={}", object.name.as_deref().unwrap_or_default()),
        format!("namespace={}", object.namespace.as_deref().unwrap_or_default()),
        format!("kind={}", object.kind.as_deref().unwrap_or_default()),
        format!("message={}", event.message),
    ];
    for (key, label) in
        [("originRevision", "originRevision"), ("revision", "revision"), ("token", "token")]
    {
        if let Some(value) = event.group_metadata(key) {
            parts.push(format!("{label}={value}"));
        }
    }
    hex::encode(digest::digest(&digest::SHA256, parts.join("/").as_bytes()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(metadata: serde_json::Value) -> Event {
        serde_json::from_value(json!({
            "involvedObject": {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                               "name": "webapp", "namespace": "apps"},
            "severity": "info", "timestamp": "2022-10-28T07:26:19Z", "message": "applied",
            "reason": "ReconciliationSucceeded", "metadata": metadata,
            "reportingController": "kustomize-controller"
        }))
        .unwrap()
    }

    #[track_caller]
    fn check_cleanup(metadata: serde_json::Value, expected: serde_json::Value) {
        let mut event = event(metadata);
        cleanup_metadata(&mut event);
        assert_eq!(serde_json::to_value(&event.metadata).unwrap(), expected);
    }

    #[test]
    fn cleanup_keeps_event_and_object_group_keys() {
        check_cleanup(json!({}), json!({}));
        check_cleanup(
            json!({"kustomize.toolkit.fluxcd.io/revision": "main@sha1:abc"}),
            json!({"kustomize.toolkit.fluxcd.io/revision": "main@sha1:abc"}),
        );
        check_cleanup(
            json!({"event.toolkit.fluxcd.io/env": "prod", "other.io/x": "y", "plain": "z"}),
            json!({"event.toolkit.fluxcd.io/env": "prod"}),
        );
        check_cleanup(
            json!({"kustomize.toolkit.fluxcd.io/checksum": "1", "kustomize.toolkit.fluxcd.io/digest": "2",
                   "kustomize.toolkit.fluxcd.io/token": "3"}),
            json!({"kustomize.toolkit.fluxcd.io/token": "3"}),
        );
        check_cleanup(
            json!({"source.toolkit.fluxcd.io/revision": "from another group"}),
            json!({}),
        );
    }

    #[test]
    fn lenient_decoding_and_round_trip() {
        let minimal: Event = serde_json::from_str(r#"{"message":"m","extra":1}"#).unwrap();
        assert_eq!(minimal.message, "m");
        assert_eq!(minimal.object_group(), "");
        let full = event(json!({"kustomize.toolkit.fluxcd.io/revision": "r"}));
        let text = serde_json::to_string(&full).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), full);
        assert_eq!(full.object_group(), "kustomize.toolkit.fluxcd.io");
        assert_eq!(full.object_string(), "Kustomization/apps/webapp");
        assert_eq!(full.object_title(), "kustomization/webapp.apps");
    }

    #[test]
    fn rate_limit_key_covers_object_message_and_revision() {
        let base = rate_limit_key(&event(json!({})));
        assert_eq!(base, rate_limit_key(&event(json!({}))));
        let with_revision =
            rate_limit_key(&event(json!({"kustomize.toolkit.fluxcd.io/revision": "a"})));
        assert_ne!(base, with_revision);
        let other_revision =
            rate_limit_key(&event(json!({"kustomize.toolkit.fluxcd.io/revision": "b"})));
        assert_ne!(with_revision, other_revision);
        let mut other_message = event(json!({}));
        other_message.message = "other".into();
        assert_ne!(base, rate_limit_key(&other_message));
        // The key is Flux's: sha256 over the '/'-joined components.
        let expected = hex::encode(digest::digest(
            &digest::SHA256,
            b"event/name=webapp/namespace=apps/kind=Kustomization/message=applied",
        ));
        assert_eq!(base, expected);
    }

    #[test]
    fn token_is_internal() {
        let mut event = event(json!({"kustomize.toolkit.fluxcd.io/token": "t",
                                     "kustomize.toolkit.fluxcd.io/revision": "r"}));
        exclude_internal_metadata(&mut event);
        assert_eq!(event.metadata.len(), 1);
    }
}
