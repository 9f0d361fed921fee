//! A kustomize-compatible engine: builds a kustomization tree into Kubernetes objects the way kustomize v5.5.0 does.
//!
//! Entry points: [`build`] (or [`build_with_options`]) reads a kustomization directory through a
//! [`FileSystem`] and returns the objects in output order; [`to_yaml`] prints them byte for byte as
//! `kubectl kustomize` does. [`Kustomization`] is the file format, for callers that generate or
//! amend a kustomization (place it over a tree with [`OverlayFileSystem`]).
//!
//! The pipeline follows `kubernetes-sigs/kustomize:api/internal/target/kusttarget.go`: per
//! kustomization, resources (files and bases, recursively), configurations, CRDs, generators,
//! components, then the builtin transformers in kustomize's order (strategic merge patches,
//! patches, namespace, prefix, suffix, labels, annotations, JSON 6902 patches, replicas, images,
//! replacements) and the `transformers:` plugin configurations; once for the whole tree, name
//! hashes, name reference fixing, vars, local-config removal and sorting.
//!
//! # Caveats
//! No network IO: remote bases are rejected. Only builtin plugins (`apiVersion: builtin`) run;
//! exec, Go and KRM function plugins, Helm charts and validators are errors. Paths stay inside
//! each kustomization's directory (kustomize's `LoadRestrictionsRootOnly`) and bases inside the
//! caller's root.
//! Strategic merge patches come from `sluice-smp`.

mod build;
mod config;
mod error;
mod fieldspec;
mod fs;
mod generators;
mod nameref;
mod resource;
mod selector;
mod transformers;
mod types;
mod vars;
mod yaml;

pub use build::{BuildOptions, build, build_with_options};
pub use error::{Error, Result};
pub use fs::{
    ConfinedDiskFileSystem, DiskFileSystem, FileSystem, MemoryFileSystem, OverlayFileSystem,
    normalize,
};
pub use resource::ResId;
pub use types::*;
pub use yaml::{parse_documents, to_yaml, to_yaml_document};
