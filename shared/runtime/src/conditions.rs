//! Ready, Reconciling and Stalled conditions with kstatus rules, and the checker tests use.
//!
//! Flux objects follow the kstatus conventions (fluxcd/pkg `runtime/conditions`): `Ready` is
//! always present once an object has been reconciled; `Reconciling` and `Stalled` are
//! "abnormal-true" conditions that are present only while True and removed otherwise. A
//! condition's `lastTransitionTime` changes only when its status changes.

use std::error::Error as StdError;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_api::meta::{Condition, READY, RECONCILING, STALLED};

/// The status of a condition, as the strings Kubernetes uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

impl Status {
    /// The string stored in `condition.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// Sets a condition of `type_`, replacing any previous one of that type.
///
/// `lastTransitionTime` is kept from the previous condition when the status did not change, as
/// `meta.SetStatusCondition` does in apimachinery.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: Status,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) {
    let previous = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match previous {
        Some(idx) if conditions[idx].status == status.as_str() => {
            conditions[idx].last_transition_time.clone()
        }
        _ => now,
    };
    let condition = Condition {
        type_: type_.to_string(),
        status: status.as_str().to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time,
    };
    match previous {
        Some(idx) => conditions[idx] = condition,
        None => conditions.push(condition),
    }
}

/// Removes the condition of `type_`, if present.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// Finds the condition of `type_`.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == Status::True.as_str())
}

/// Whether the object is Ready=True.
pub fn is_ready(conditions: &[Condition]) -> bool {
    is_true(conditions, READY)
}

/// Whether the object is Stalled=True.
pub fn is_stalled(conditions: &[Condition]) -> bool {
    is_true(conditions, STALLED)
}

/// Whether the object is Reconciling=True.
pub fn is_reconciling(conditions: &[Condition]) -> bool {
    is_true(conditions, RECONCILING)
}

/// Orders conditions the way Flux prints them: Ready first, then Reconciling, Stalled, then the
/// rest by type.
pub fn sort(conditions: &mut [Condition]) {
    fn rank(type_: &str) -> u8 {
        match type_ {
            READY => 0,
            RECONCILING => 1,
            STALLED => 2,
            _ => 3,
        }
    }
    conditions.sort_by(|a, b| rank(&a.type_).cmp(&rank(&b.type_)).then(a.type_.cmp(&b.type_)));
}

/// The message of a condition or event for an error: the error chain joined with `": "`.
///
/// Causes whose text already ends the previous message are skipped, so wrappers that repeat
/// their source do not print it twice. Credentials in URLs are removed
/// ([`crate::events::redact`]), since these messages reach status, events and logs.
pub fn error_message(error: &(dyn StdError + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    crate::events::redact(&message)
}

/// Holds a status to the kstatus rules; the shared checker of integration tests.
///
/// `generation` is the object's `metadata.generation`; `observed_generation` its
/// `status.observedGeneration` (`-1` when unset). Returns every broken rule, in a stable order.
///
/// # Rules
/// - `Ready` is present; no condition type appears twice;
/// - `Reconciling` and `Stalled` are present only when True, and never both;
/// - `Ready=True` excludes `Reconciling` and `Stalled`; `Stalled` implies `Ready=False`;
/// - when the reconcile is finished (no `Reconciling`), `observedGeneration` equals
///   `generation`;
/// - every condition has a CamelCase reason and an `observedGeneration` not ahead of
///   `generation`.
pub fn check(
    generation: i64,
    observed_generation: i64,
    conditions: &[Condition],
) -> Result<(), Vec<String>> {
    let mut broken = Vec::new();
    let ready = get(conditions, READY);
    if ready.is_none() {
        broken.push("Ready condition is missing".to_string());
    }
    for (idx, condition) in conditions.iter().enumerate() {
        if conditions[..idx].iter().any(|c| c.type_ == condition.type_) {
            broken.push(format!("{} condition appears more than once", condition.type_));
        }
        if !["True", "False", "Unknown"].contains(&condition.status.as_str()) {
            broken.push(format!(
                "{} condition has status {:?}, not True, False or Unknown",
                condition.type_, condition.status
            ));
        }
        if !is_camel_case_reason(&condition.reason) {
            broken.push(format!(
                "{} condition has reason {:?}, not a CamelCase word",
                condition.type_, condition.reason
            ));
        }
        if condition.observed_generation.is_some_and(|g| g > generation) {
            broken.push(format!(
                "{} condition observedGeneration {} is ahead of generation {generation}",
                condition.type_,
                condition.observed_generation.unwrap_or_default()
            ));
        }
    }
    for abnormal in [RECONCILING, STALLED] {
        if let Some(condition) = get(conditions, abnormal)
            && condition.status != "True"
        {
            broken.push(format!(
                "{abnormal} condition is present with status {}; it must be removed unless True",
                condition.status
            ));
        }
    }
    let reconciling = is_reconciling(conditions);
    let stalled = is_stalled(conditions);
    if reconciling && stalled {
        broken.push("Reconciling and Stalled are both True".to_string());
    }
    if let Some(ready) = ready {
        if ready.status == "True" && (reconciling || stalled) {
            broken.push("Ready is True while Reconciling or Stalled is True".to_string());
        }
        if stalled && ready.status != "False" {
            broken.push(format!("Stalled is True but Ready is {}, not False", ready.status));
        }
    }
    if !reconciling && observed_generation != generation {
        broken.push(format!(
            "reconcile finished but observedGeneration {observed_generation} != generation {generation}"
        ));
    }
    if broken.is_empty() { Ok(()) } else { Err(broken) }
}

/// Whether `reason` is a valid `metav1.Condition` reason: `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`.
fn is_camel_case_reason(reason: &str) -> bool {
    let bytes = reason.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphabetic()
        && (last.is_ascii_alphanumeric() || *last == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b',' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn cond(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: time(0),
        }
    }

    /// Parses `"Ready=True/Succeeded Reconciling=True/Progressing"` into conditions.
    fn parse(spec: &str) -> Vec<Condition> {
        spec.split_whitespace()
            .map(|item| {
                let (type_, rest) = item.split_once('=').unwrap();
                let (status, reason) = rest.split_once('/').unwrap();
                cond(type_, status, reason)
            })
            .collect()
    }

    #[track_caller]
    fn check_rules(generation: i64, observed: i64, spec: &str, expected: &[&str]) {
        let result = check(generation, observed, &parse(spec));
        let got = result.err().unwrap_or_default();
        assert_eq!(got, expected, "conditions {spec:?}");
    }

    #[test]
    fn kstatus_rules() {
        check_rules(1, 1, "Ready=True/Succeeded", &[]);
        check_rules(1, 1, "Ready=False/BuildFailed Stalled=True/BuildFailed", &[]);
        check_rules(2, 1, "Ready=False/Failed Reconciling=True/ProgressingWithRetry", &[]);
        check_rules(1, 1, "Ready=Unknown/Progressing Reconciling=True/Progressing", &[]);
        check_rules(1, 1, "", &["Ready condition is missing"]);
        check_rules(
            1,
            1,
            "Ready=True/Succeeded Reconciling=False/Succeeded",
            &["Reconciling condition is present with status False; it must be removed unless True"],
        );
        check_rules(
            1,
            1,
            "Ready=False/Failed Stalled=Unknown/Failed",
            &["Stalled condition is present with status Unknown; it must be removed unless True"],
        );
        check_rules(
            1,
            1,
            "Ready=False/Failed Reconciling=True/Progressing Stalled=True/Failed",
            &["Reconciling and Stalled are both True"],
        );
        check_rules(
            1,
            1,
            "Ready=True/Succeeded Reconciling=True/Progressing",
            &["Ready is True while Reconciling or Stalled is True"],
        );
        check_rules(
            1,
            1,
            "Ready=Unknown/Progressing Stalled=True/Failed",
            &["Stalled is True but Ready is Unknown, not False"],
        );
        check_rules(
            2,
            1,
            "Ready=True/Succeeded",
            &["reconcile finished but observedGeneration 1 != generation 2"],
        );
        check_rules(
            1,
            1,
            "Ready=True/Succeeded Ready=True/Succeeded",
            &["Ready condition appears more than once"],
        );
        check_rules(
            1,
            1,
            "Ready=Yes/Succeeded",
            &["Ready condition has status \"Yes\", not True, False or Unknown"],
        );
        check_rules(
            1,
            1,
            "Ready=False/build-failed",
            &["Ready condition has reason \"build-failed\", not a CamelCase word"],
        );
        check_rules(
            0,
            0,
            "Ready=True/Succeeded",
            &["Ready condition observedGeneration 1 is ahead of generation 0"],
        );
    }

    #[test]
    fn reasons() {
        for (reason, valid) in [
            ("Succeeded", true),
            ("Progressing_With:Retry", true),
            ("A", true),
            ("", false),
            ("1Failed", false),
            ("Failed,", false),
            ("Has Space", false),
        ] {
            assert_eq!(is_camel_case_reason(reason), valid, "{reason:?}");
        }
    }

    #[test]
    fn set_keeps_transition_time_when_status_is_unchanged() {
        let mut conditions = Vec::new();
        set(&mut conditions, READY, Status::False, "Failed", "first", Some(1), time(10));
        set(&mut conditions, READY, Status::False, "BuildFailed", "second", Some(2), time(20));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, time(10));
        assert_eq!(conditions[0].reason, "BuildFailed");
        assert_eq!(conditions[0].message, "second");
        assert_eq!(conditions[0].observed_generation, Some(2));
        set(&mut conditions, READY, Status::True, "Succeeded", "ok", Some(2), time(30));
        assert_eq!(conditions[0].last_transition_time, time(30));
        assert_eq!(conditions[0].status, "True");
    }

    #[test]
    fn remove_and_query() {
        let mut conditions = parse("Ready=False/Failed Stalled=True/Failed");
        assert!(is_stalled(&conditions));
        assert!(!is_ready(&conditions));
        remove(&mut conditions, STALLED);
        assert!(!is_stalled(&conditions));
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn sort_puts_ready_first() {
        let mut conditions = parse(
            "Healthy=True/Succeeded Stalled=True/X Ready=False/X ArtifactInStorage=True/Y Reconciling=True/Z",
        );
        sort(&mut conditions);
        let types: Vec<_> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Reconciling", "Stalled", "ArtifactInStorage", "Healthy"]);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("building manifests from \"./apps\"")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("kustomization.yaml not found")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("fetch failed: kustomization.yaml not found")]
    struct Repeating(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("cloning https://user:token@github.com/org/repo")]
    struct WithCredentials;

    #[test]
    fn error_message_redacts_credentials() {
        assert_eq!(error_message(&WithCredentials), "cloning https://github.com/org/repo");
    }

    #[test]
    fn error_message_joins_the_chain() {
        assert_eq!(
            error_message(&Outer(Inner)),
            "building manifests from \"./apps\": kustomization.yaml not found"
        );
        assert_eq!(error_message(&Repeating(Inner)), "fetch failed: kustomization.yaml not found");
    }
}
