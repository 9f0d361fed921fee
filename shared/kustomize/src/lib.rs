//! A kustomize-compatible engine: builds a kustomization tree into Kubernetes objects the way kustomize v5.5.0 does.
//!
//! Entry points: [`build`] (or [`build_with_options`]) reads a kustomization directory through a
//! [`FileSystem`] and returns the objects; [`to_yaml`] prints them as `kustomize build` does.
//! The engine does no network IO: remote bases are rejected, and loads stay inside the root.

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
