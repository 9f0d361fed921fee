//! Which Alerts an event goes to, and the metadata each Alert sends.
//!
//! Matching follows fluxcd/notification-controller `internal/server/event_handlers.go`: an
//! Alert that is not suspended matches when one of its `eventSources` has the event's kind and
//! namespace (default: the Alert's), the name or `*`, and, with `matchLabels`, the object's
//! labels; its `eventSeverity` is `info` (everything) or equal to the event's; and the message
//! passes `inclusionList` and `exclusionList` (Go regexps).
//!
//! Beyond Flux, an Alert annotated [`TRANSITIONS_ONLY_ANNOTATION`]`: "true"` sends a failure
//! once and then the recovery: repeated error events about the same object are dropped until
//! an info event arrives ([`TransitionTracker`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use kube::ResourceExt;
use sluice_api::notification::{Alert, CrossNamespaceObjectReference};

use crate::event::{EVENT_GROUP, Event, SEVERITY_INFO};

/// Alert annotation that turns on transition-only delivery (value `"true"`).
pub const TRANSITIONS_ONLY_ANNOTATION: &str = "notification.sluice.dev/transitions-only";

/// The answer of [`source_matches`]: no, yes, or yes if the object carries these labels.
#[derive(Debug, PartialEq, Eq)]
pub enum SourceMatch<'a> {
    /// The source does not match.
    No,
    /// The source matches.
    Yes,
    /// The source matches when the involved object has these labels.
    IfLabels(&'a BTreeMap<String, String>),
}

/// Whether `source` of `alert` selects `event`, without looking at labels.
pub fn source_matches<'a>(
    alert: &Alert,
    source: &'a CrossNamespaceObjectReference,
    event: &Event,
) -> SourceMatch<'a> {
    let alert_namespace = alert.namespace().unwrap_or_default();
    let namespace = source.namespace.as_deref().unwrap_or(&alert_namespace);
    let object = &event.involved_object;
    if object.namespace.as_deref() != Some(namespace)
        || object.kind.as_deref() != Some(&source.kind)
    {
        return SourceMatch::No;
    }
    let severity = alert.spec.event_severity.as_deref().unwrap_or(SEVERITY_INFO);
    if severity != SEVERITY_INFO && event.severity != severity {
        return SourceMatch::No;
    }
    if source.name != "*" && object.name.as_deref() != Some(&source.name) {
        return SourceMatch::No;
    }
    match &source.match_labels {
        None => SourceMatch::Yes,
        Some(labels) => SourceMatch::IfLabels(labels),
    }
}

/// Whether `labels` carries every pair of `wanted`.
pub fn labels_match(wanted: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(key, value)| labels.get(key) == Some(value))
}

/// A regular expression of an Alert that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRegex {
    /// `inclusion` or `exclusion`.
    pub list: &'static str,
    /// The expression.
    pub expression: String,
}

/// Whether the message passes the Alert's inclusion and exclusion lists; expressions that do
/// not compile are skipped and returned so the caller can report them.
pub fn message_allowed(alert: &Alert, message: &str) -> (bool, Vec<InvalidRegex>) {
    let mut invalid = Vec::new();
    let mut matches_any = |list: &'static str, expressions: &[String]| {
        let mut matched = false;
        for expression in expressions {
            match regex::Regex::new(expression) {
                Ok(regex) => matched |= regex.is_match(message),
                Err(_) => invalid.push(InvalidRegex { list, expression: expression.clone() }),
            }
        }
        matched
    };
    let included = match alert.spec.inclusion_list.as_deref() {
        None | Some([]) => true,
        Some(list) => matches_any("inclusion", list),
    };
    let excluded = match alert.spec.exclusion_list.as_deref() {
        None | Some([]) => false,
        Some(list) => matches_any("exclusion", list),
    };
    (included && !excluded, invalid)
}

/// The metadata an Alert sends with `event`, and the keys set by more than one source.
///
/// Precedence from low to high (Flux RFC 0008): `event.toolkit.fluxcd.io/*` keys stripped of
/// the prefix, `spec.eventMetadata`, `spec.summary` as `summary`, and the object group's keys
/// stripped of the prefix.
pub fn combine_metadata(event: &Event, alert: &Alert) -> (BTreeMap<String, String>, Vec<String>) {
    let mut metadata = BTreeMap::new();
    let mut sources: BTreeMap<String, usize> = BTreeMap::new();
    let mut put = |metadata: &mut BTreeMap<String, String>, key: &str, value: &str| {
        metadata.insert(key.to_string(), value.to_string());
        *sources.entry(key.to_string()).or_default() += 1;
    };
    let event_prefix = format!("{EVENT_GROUP}/");
    for (key, value) in &event.metadata {
        if let Some(stripped) = key.strip_prefix(&event_prefix) {
            put(&mut metadata, stripped, value);
        }
    }
    for (key, value) in alert.spec.event_metadata.iter().flatten() {
        put(&mut metadata, key, value);
    }
    if let Some(summary) = alert.spec.summary.as_deref().filter(|s| !s.is_empty()) {
        put(&mut metadata, "summary", summary);
    }
    let object_prefix = format!("{}/", event.object_group());
    if object_prefix != event_prefix {
        for (key, value) in &event.metadata {
            if let Some(stripped) = key.strip_prefix(&object_prefix) {
                put(&mut metadata, stripped, value);
            }
        }
    }
    let conflicts = sources.into_iter().filter(|(_, n)| *n > 1).map(|(key, _)| key).collect();
    (metadata, conflicts)
}

/// Whether the Alert asks for transition-only delivery.
pub fn is_transitions_only(alert: &Alert) -> bool {
    alert.annotations().get(TRANSITIONS_ONLY_ANNOTATION).is_some_and(|v| v == "true")
}

/// Remembers, per Alert and object, whether the last event sent was a failure.
#[derive(Debug, Default)]
pub struct TransitionTracker {
    failing: Mutex<HashMap<(String, String), bool>>,
}

impl TransitionTracker {
    /// Whether an event of `is_error` about `object` should go out for `alert_key`.
    ///
    /// A failure goes out when the object was not already failing; an info event always goes
    /// out (a recovery or news such as a new revision).
    pub fn should_send(&self, alert_key: &str, object: &str, is_error: bool) -> bool {
        let failing = self.failing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let was_failing =
            failing.get(&(alert_key.to_string(), object.to_string())).copied().unwrap_or(false);
        !(is_error && was_failing)
    }

    /// Records that an event of `is_error` about `object` went out for `alert_key`; an info
    /// event ends the failure.
    pub fn record_sent(&self, alert_key: &str, object: &str, is_error: bool) {
        let mut failing = self.failing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (alert_key.to_string(), object.to_string());
        if is_error {
            failing.insert(key, true);
        } else {
            failing.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn alert(spec: serde_json::Value) -> Alert {
        serde_json::from_value(json!({
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Alert",
            "metadata": {"name": "a", "namespace": "apps"}, "spec": spec
        }))
        .unwrap()
    }

    fn event(kind: &str, namespace: &str, name: &str, severity: &str) -> Event {
        serde_json::from_value(json!({
            "involvedObject": {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": kind,
                               "name": name, "namespace": namespace},
            "severity": severity, "message": "health check failed", "reason": "R",
            "reportingController": "kustomize-controller"
        }))
        .unwrap()
    }

    #[track_caller]
    fn check_source(severity: &str, source: serde_json::Value, event: Event, expected: bool) {
        let alert = alert(json!({"providerRef": {"name": "p"}, "eventSeverity": severity,
                                 "eventSources": [source]}));
        let got = source_matches(&alert, &alert.spec.event_sources[0], &event);
        assert_eq!(got != SourceMatch::No, expected, "{got:?}");
    }

    #[test]
    fn sources_by_kind_namespace_name_and_severity() {
        let ks = |ns, name, sev| event("Kustomization", ns, name, sev);
        let by_name = json!({"kind": "Kustomization", "name": "web"});
        check_source("info", by_name.clone(), ks("apps", "web", "info"), true);
        check_source("info", by_name.clone(), ks("apps", "web", "error"), true);
        check_source("error", by_name.clone(), ks("apps", "web", "info"), false);
        check_source("error", by_name.clone(), ks("apps", "web", "error"), true);
        check_source("info", by_name.clone(), ks("apps", "api", "info"), false);
        check_source("info", by_name.clone(), ks("other", "web", "info"), false);
        check_source("info", by_name, event("HelmRelease", "apps", "web", "info"), false);
        let wildcard = json!({"kind": "Kustomization", "name": "*"});
        check_source("info", wildcard.clone(), ks("apps", "anything", "info"), true);
        check_source("info", wildcard, ks("other", "anything", "info"), false);
        let other_ns = json!({"kind": "Kustomization", "name": "*", "namespace": "other"});
        check_source("info", other_ns.clone(), ks("other", "x", "info"), true);
        check_source("info", other_ns, ks("apps", "x", "info"), false);
    }

    #[test]
    fn match_labels_defer_to_the_object() {
        let alert = alert(json!({"providerRef": {"name": "p"}, "eventSources": [
            {"kind": "Kustomization", "name": "*", "matchLabels": {"team": "a"}}]}));
        let got = source_matches(
            &alert,
            &alert.spec.event_sources[0],
            &event("Kustomization", "apps", "x", "info"),
        );
        let SourceMatch::IfLabels(wanted) = got else { panic!("{got:?}") };
        let labels = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()
        };
        assert!(labels_match(wanted, &labels(&[("team", "a"), ("x", "y")])));
        assert!(!labels_match(wanted, &labels(&[("team", "b")])));
        assert!(!labels_match(wanted, &labels(&[])));
    }

    #[track_caller]
    fn check_message(lists: serde_json::Value, message: &str, expected: bool) {
        let mut spec = json!({"providerRef": {"name": "p"}, "eventSources": []});
        spec.as_object_mut().unwrap().extend(lists.as_object().unwrap().clone());
        assert_eq!(message_allowed(&alert(spec), message).0, expected, "{message}");
    }

    #[test]
    fn inclusion_and_exclusion_lists() {
        check_message(json!({}), "anything", true);
        check_message(json!({"inclusionList": [".*succeeded.*"]}), "apply succeeded", true);
        check_message(json!({"inclusionList": [".*succeeded.*"]}), "apply failed", false);
        check_message(json!({"exclusionList": ["^Dependencies"]}), "Dependencies not ready", false);
        check_message(json!({"exclusionList": ["^Dependencies"]}), "applied", true);
        check_message(
            json!({"inclusionList": ["apply"], "exclusionList": ["failed"]}),
            "apply failed",
            false,
        );
        let (allowed, invalid) = message_allowed(
            &alert(json!({"providerRef": {"name": "p"}, "eventSources": [],
                          "exclusionList": ["(unclosed", "x"]})),
            "abc",
        );
        assert!(allowed);
        assert_eq!(invalid, [InvalidRegex { list: "exclusion", expression: "(unclosed".into() }]);
    }

    #[test]
    fn metadata_precedence_and_conflicts() {
        let mut event = event("Kustomization", "apps", "web", "info");
        event.metadata = BTreeMap::from([
            ("event.toolkit.fluxcd.io/env".into(), "from-annotation".into()),
            ("event.toolkit.fluxcd.io/summary".into(), "annotation summary".into()),
            ("kustomize.toolkit.fluxcd.io/revision".into(), "main@sha1:abc".into()),
            ("kustomize.toolkit.fluxcd.io/env".into(), "from-controller".into()),
        ]);
        let alert = alert(json!({"providerRef": {"name": "p"}, "eventSources": [],
            "eventMetadata": {"cluster": "prod-1", "env": "from-alert"}, "summary": "deprecated"}));
        let (metadata, conflicts) = combine_metadata(&event, &alert);
        assert_eq!(
            serde_json::to_value(&metadata).unwrap(),
            json!({"cluster": "prod-1", "env": "from-controller", "revision": "main@sha1:abc",
                   "summary": "deprecated"})
        );
        assert_eq!(conflicts, ["env", "summary"]);
    }

    #[test]
    fn transitions_send_a_failure_once_then_the_recovery() {
        let tracker = TransitionTracker::default();
        // (alert, object, is_error, sent)
        let cases = [
            ("a", "ks/web", false, true),
            ("a", "ks/web", true, true),
            ("a", "ks/web", true, false),
            ("a", "ks/web", true, false),
            ("b", "ks/web", true, true),
            ("a", "ks/api", true, true),
            ("a", "ks/web", false, true),
            ("a", "ks/web", false, true),
            ("a", "ks/web", true, true),
        ];
        for (step, (alert, object, is_error, sent)) in cases.into_iter().enumerate() {
            assert_eq!(tracker.should_send(alert, object, is_error), sent, "step {step}");
            if sent {
                tracker.record_sent(alert, object, is_error);
            }
        }
        // A failure that could not be queued is not remembered: the next one goes out.
        assert!(tracker.should_send("c", "ks/web", true));
        assert!(tracker.should_send("c", "ks/web", true));
    }

    #[test]
    fn transitions_only_is_an_annotation() {
        let mut a = alert(json!({"providerRef": {"name": "p"}, "eventSources": []}));
        assert!(!is_transitions_only(&a));
        a.metadata.annotations =
            Some(BTreeMap::from([(TRANSITIONS_ONLY_ANNOTATION.into(), "true".into())]));
        assert!(is_transitions_only(&a));
    }
}
