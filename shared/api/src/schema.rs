//! Schema helpers for CRD generation: free-form JSON fields and shared patterns.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Pattern of a Go duration as Flux validates it (`1m`, `1h30m`, `500ms`).
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";
/// Pattern of a timeout without hours.
pub const TIMEOUT_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m))+$";

/// Schema of a free-form JSON value kept as-is by the apiserver.
pub fn preserve_unknown_fields(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Schema of a free-form JSON object kept as-is by the apiserver.
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
