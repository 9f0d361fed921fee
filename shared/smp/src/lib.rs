//! Strategic merge patch for Kubernetes objects, with merge keys and strategies from the Kubernetes OpenAPI schema.
//!
//! The entry point is [`merge`]: it merges a patch into an object, looking up list merge keys and
//! patch strategies in a [`Schema`] by the object's `apiVersion` and `kind`. The result is the one
//! kustomize v5.5.0 gives for `patchesStrategicMerge` and `patches`, quirks included; see the
//! `merge` module docs for the rules.
//!
//! For kustomize's `openapi: path:`, use [`Schema::from_openapi`]: kustomize then knows only the
//! document's kinds, not the built-in ones. [`Schema::extended`] gives both.

mod error;
mod merge;
mod schema;

pub use error::Error;
pub use merge::{ListOrder, MergeOptions, merge, merge_with};
pub use schema::Schema;

#[cfg(test)]
mod tests;
