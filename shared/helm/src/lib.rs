//! Helm charts: loading, values, rendering with Helm's functions, and Helm's install-order output.

pub mod yaml;
pub mod yaml_emit;
