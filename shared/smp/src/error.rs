//! Errors of strategic merge patch and schema loading.

/// A strategic merge patch or schema failure; messages name the field path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The patch is malformed at a field path (wrong directive value, wrong type).
    #[error("invalid patch at {path}: {message}")]
    InvalidPatch {
        /// Field path in the patch, e.g. `spec.template.spec.containers`.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The custom OpenAPI document passed to [`crate::Schema::extended`] is malformed.
    #[error("invalid openapi schema at {path}: {message}")]
    InvalidSchema {
        /// Location in the OpenAPI document, e.g. `definitions.com.example.v1.Foo`.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}
