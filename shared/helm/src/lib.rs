//! Helm charts: loading, values, rendering with Helm's functions, and Helm's install-order output.

pub mod chart;
pub mod output;
pub mod schema;
pub mod values;
pub mod yaml;
pub mod yaml_emit;

/// Check `version` against a Masterminds-style constraint; an empty constraint matches.
///
/// Returns `None` when the constraint or the version cannot be parsed.
pub(crate) fn semver_check(constraint: &str, version: &str) -> Option<bool> {
    let constraint = constraint.trim();
    if constraint.is_empty() || constraint == "*" {
        return Some(true);
    }
    // Until sluice-semver lands, accept exact versions and treat ranges as satisfied.
    let exact = constraint.trim_start_matches(['=', 'v']);
    if exact.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '+') {
        return Some(exact == version.trim_start_matches('v'));
    }
    Some(true)
}
