//! What the runtime needs to know about a reconciled kind: suspend, interval and status.

use std::fmt::Debug;
use std::time::Duration;

use kube::Resource;
use kube::core::NamespaceResourceScope;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_api::meta::{Condition, ObjectStatus, RECONCILE_REQUEST_ANNOTATION};

/// A Flux kind with a status that the runtime reconciles.
pub trait FluxObject:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Whether `spec.suspend` is true.
    fn is_suspended(&self) -> bool;

    /// The raw `spec.interval`, when the kind has one set.
    fn interval_spec(&self) -> Option<&str>;

    /// The status, when one has been written.
    fn object_status(&self) -> Option<&dyn ObjectStatus>;

    /// The parsed `spec.interval`.
    ///
    /// # Errors
    /// A message naming the field when the value is not a Go duration such as `10m` or `1h30m`.
    fn interval(&self) -> Result<Option<Duration>, String> {
        let Some(raw) = self.interval_spec() else { return Ok(None) };
        parse_go_duration(raw)
            .map(Some)
            .map_err(|message| format!("spec.interval {raw:?}: {message}"))
    }

    /// The current conditions (empty without status).
    fn conditions(&self) -> &[Condition] {
        self.object_status().map(|s| s.conditions()).unwrap_or_default()
    }

    /// `status.observedGeneration`, `-1` when unset.
    fn observed_generation(&self) -> i64 {
        self.object_status().map_or(-1, |s| s.observed_generation())
    }

    /// The value of the `reconcile.fluxcd.io/requestedAt` annotation, if any.
    fn reconcile_request(&self) -> Option<&str> {
        self.meta().annotations.as_ref()?.get(RECONCILE_REQUEST_ANNOTATION).map(String::as_str)
    }
}

/// Parses a Go duration (`1h30m`, `500ms`, `10s`), as `time.ParseDuration` does.
///
/// # Errors
/// A message saying what is wrong with the value.
pub fn parse_go_duration(raw: &str) -> Result<Duration, String> {
    if raw.is_empty() {
        // Go rejects an empty duration; kube's parser would read it as zero.
        return Err("empty duration; use a value such as 30s, 5m or 1h".to_string());
    }
    let parsed: kube::core::Duration =
        raw.parse().map_err(|error: kube::core::duration::ParseError| error.to_string())?;
    if parsed.is_negative() {
        return Err("must not be negative".to_string());
    }
    Ok(parsed.into())
}

macro_rules! impl_flux_object {
    ($kind:ty, interval: required) => {
        impl FluxObject for $kind {
            fn is_suspended(&self) -> bool {
                self.spec.suspend.unwrap_or(false)
            }
            fn interval_spec(&self) -> Option<&str> {
                Some(self.spec.interval.as_str())
            }
            fn object_status(&self) -> Option<&dyn ObjectStatus> {
                self.status.as_ref().map(|s| s as &dyn ObjectStatus)
            }
        }
    };
    ($kind:ty, interval: optional) => {
        impl FluxObject for $kind {
            fn is_suspended(&self) -> bool {
                self.spec.suspend.unwrap_or(false)
            }
            fn interval_spec(&self) -> Option<&str> {
                self.spec.interval.as_deref()
            }
            fn object_status(&self) -> Option<&dyn ObjectStatus> {
                self.status.as_ref().map(|s| s as &dyn ObjectStatus)
            }
        }
    };
}

impl_flux_object!(sluice_api::source::GitRepository, interval: required);
impl_flux_object!(sluice_api::source::OCIRepository, interval: required);
impl_flux_object!(sluice_api::source::Bucket, interval: required);
impl_flux_object!(sluice_api::source::HelmRepository, interval: optional);
impl_flux_object!(sluice_api::source::HelmChart, interval: required);
impl_flux_object!(sluice_api::kustomize::Kustomization, interval: required);
impl_flux_object!(sluice_api::helm::HelmRelease, interval: required);
impl_flux_object!(sluice_api::notification::Receiver, interval: optional);
impl_flux_object!(sluice_api::image::ImageRepository, interval: required);
impl_flux_object!(sluice_api::image::ImagePolicy, interval: optional);
impl_flux_object!(sluice_api::image::ImageUpdateAutomation, interval: required);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for (raw, expected) in [
            ("10m", Ok(Duration::from_secs(600))),
            ("1h30m", Ok(Duration::from_secs(5400))),
            ("500ms", Ok(Duration::from_millis(500))),
            ("1.5s", Ok(Duration::from_millis(1500))),
        ] {
            assert_eq!(parse_go_duration(raw), expected, "{raw}");
        }
        for raw in ["", "10", "ten minutes", "-5s"] {
            assert!(parse_go_duration(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn interval_error_names_the_field() {
        let mut repo = sluice_api::source::GitRepository::new("podinfo", Default::default());
        repo.spec.interval = "5x".into();
        let error = repo.interval().unwrap_err();
        assert!(error.starts_with("spec.interval \"5x\": "), "{error}");
        repo.spec.interval = "5m".into();
        assert_eq!(repo.interval(), Ok(Some(Duration::from_secs(300))));
    }
}
