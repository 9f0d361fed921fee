//! Helm charts: loading, values, rendering with Helm's functions, and Helm's install-order output.
