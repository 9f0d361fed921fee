//! Masterminds-compatible semantic version constraints (Helm, Flux HelmChart and ImagePolicy ranges) over `semver::Version`.
