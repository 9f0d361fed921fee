//! Masterminds-compatible semantic version constraints (Helm, Flux HelmChart and ImagePolicy ranges) over `semver::Version`.
//!
//! Helm (`semverCompare`, Chart.yaml `kubeVersion`, dependency versions) and Flux (HelmChart
//! `version`, ImagePolicy `semver.range`) use github.com/Masterminds/semver v3, whose rules differ
//! from Cargo's: versions may be partial or `v`-prefixed (`v1.2` is 1.2.0), constraints take
//! `,`/space for AND, `||` for OR, hyphen ranges, `x`/`X`/`*` wildcards, `~`, `^`, and a
//! constraint group without a pre-release never matches a pre-release version.
//! [`Version`] and [`Constraints`] follow Masterminds v3.4 behaviour.

mod constraints;
mod version;

pub use constraints::Constraints;
pub use version::{Error, Version};

#[cfg(test)]
mod tests;
