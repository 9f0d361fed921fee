//! Flux-compatible API types of every sluice kind, their conditions and reasons, and CRD generation.
//!
//! The kinds are those of Flux v2 at their storage versions: `source.toolkit.fluxcd.io/v1`,
//! `kustomize.toolkit.fluxcd.io/v1`, `helm.toolkit.fluxcd.io/v2`,
//! `notification.toolkit.fluxcd.io/v1beta3` (Provider, Alert) and `v1` (Receiver), and
//! `image.toolkit.fluxcd.io/v1`. Field names, defaults and validation follow Flux's CRDs so a
//! Flux user's objects parse unchanged.

/// Implements [`meta::ObjectStatus`] for status types with the usual Flux fields.
#[macro_export]
macro_rules! impl_object_status {
    ($($status:ty),*) => {$(
        impl $crate::meta::ObjectStatus for $status {
            fn conditions(&self) -> &[$crate::meta::Condition] {
                self.conditions.as_deref().unwrap_or_default()
            }
            fn observed_generation(&self) -> i64 {
                self.observed_generation.unwrap_or(-1)
            }
            fn last_handled_reconcile_at(&self) -> Option<&str> {
                self.last_handled_reconcile_at.as_deref()
            }
        }
    )*};
}

pub mod crds;
pub mod helm;
pub mod image;
pub mod kustomize;
pub mod meta;
pub mod notification;
pub mod schema;
pub mod source;
