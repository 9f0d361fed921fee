//! Server-side apply as Flux does it (fluxcd/pkg `ssa`): staged apply with dry-run diffing,
//! drift correction by taking over kubectl's managed fields, inventories, pruning, and health
//! checks with kstatus.
//!
//! Used by the kustomize-controller (and the helm-controller's drift detection). Objects are
//! plain JSON (`serde_json::Value`); kinds are resolved by API discovery, so any CRD works.

pub mod apply;
pub mod kstatus;
pub mod order;

pub use apply::{
    Action, ApplyOptions, ChangeSet, ChangeSetEntry, Error, KindCache, ObjectId, ResourceManager,
    StatusReader,
};
pub use kstatus::{Health, Status};
