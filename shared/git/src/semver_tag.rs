//! Picking the highest tag that satisfies a semver range (`spec.ref.semver`).

use crate::Error;

// TODO(sluice-semver): switch to the shared crate once it exports `Constraints` and `Version`;
// this stand-in has the same API over the `semver` crate, translating Masterminds syntax.
use self::masterminds as sluice_semver;

/// A tag that parsed as a semantic version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersionTag {
    /// The tag name as on the remote, e.g. `v1.1.0`.
    pub(crate) name: String,
    /// The commit the tag points at (peeled).
    pub(crate) sha: String,
}

/// Return the tag with the highest version satisfying `range`, or `None` when no tag does.
///
/// Tags that are not versions are skipped, as Flux does (source-controller
/// `pkg/git/gogit/clone.go` `cloneSemVer`); a `v` prefix is accepted.
pub(crate) fn highest_matching(
    range: &str,
    tags: impl IntoIterator<Item = VersionTag>,
) -> Result<Option<VersionTag>, Error> {
    let constraints = sluice_semver::Constraints::parse(range)
        .map_err(|err| Error::InvalidSemver { range: range.to_owned(), reason: err.to_string() })?;
    let mut best: Option<(sluice_semver::Version, VersionTag)> = None;
    for tag in tags {
        let Ok(version) = sluice_semver::Version::parse(&tag.name) else { continue };
        if !constraints.check(&version) {
            continue;
        }
        match &best {
            Some((best_version, _)) if *best_version >= version => {}
            _ => best = Some((version, tag)),
        }
    }
    Ok(best.map(|(_, tag)| tag))
}

mod masterminds {
    //! Masterminds range syntax over `semver::VersionReq`: spaces and commas mean AND, `||` OR.

    /// A lenient version: `v` prefix and missing minor/patch accepted, as Masterminds `NewVersion`.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    pub(crate) struct Version(semver::Version);

    impl Version {
        pub(crate) fn parse(text: &str) -> Result<Version, semver::Error> {
            let text = text.strip_prefix('v').unwrap_or(text);
            let (core, suffix) = match text.find(['-', '+']) {
                Some(idx) => text.split_at(idx),
                None => (text, ""),
            };
            let n_parts = core.split('.').count();
            let padded = match n_parts {
                1 => format!("{core}.0.0{suffix}"),
                2 => format!("{core}.0{suffix}"),
                _ => text.to_owned(),
            };
            semver::Version::parse(&padded).map(Version)
        }
    }

    /// Alternatives (`||`) of conjunctions.
    pub(crate) struct Constraints(Vec<semver::VersionReq>);

    impl Constraints {
        pub(crate) fn parse(text: &str) -> Result<Constraints, semver::Error> {
            let mut alternatives = Vec::new();
            for alternative in text.split("||") {
                let normalized: Vec<String> = split_terms(alternative);
                let joined =
                    if normalized.is_empty() { "*".to_owned() } else { normalized.join(", ") };
                alternatives.push(semver::VersionReq::parse(&joined)?);
            }
            Ok(Constraints(alternatives))
        }

        pub(crate) fn check(&self, version: &Version) -> bool {
            self.0.iter().any(|req| req.matches(&version.0))
        }
    }

    /// Split one conjunction into terms, gluing a detached operator to its version and
    /// dropping `v` prefixes.
    fn split_terms(alternative: &str) -> Vec<String> {
        let mut terms = Vec::new();
        let mut pending_operator = String::new();
        for token in alternative.split([' ', ',']).filter(|token| !token.is_empty()) {
            if token.chars().all(|c| "<>=!~^".contains(c)) {
                pending_operator.push_str(token);
                continue;
            }
            let operator_end = token.find(|c: char| !"<>=!~^".contains(c)).unwrap_or(token.len());
            let (operator, version) = token.split_at(operator_end);
            let version = version.strip_prefix('v').unwrap_or(version);
            // A bare version is an exact match in Masterminds but a caret range in `semver`.
            let is_wildcard = version.contains(['x', 'X', '*']);
            let operator = if operator.is_empty() && pending_operator.is_empty() && !is_wildcard {
                "="
            } else {
                operator
            };
            terms.push(format!("{pending_operator}{operator}{version}"));
            pending_operator.clear();
        }
        terms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<VersionTag> {
        names
            .iter()
            .map(|name| VersionTag { name: name.to_string(), sha: format!("sha-{name}") })
            .collect()
    }

    #[track_caller]
    fn check(range: &str, names: &[&str], expected: Option<&str>) {
        let picked = highest_matching(range, tags(names)).unwrap();
        assert_eq!(picked.map(|tag| tag.name).as_deref(), expected, "range {range}");
    }

    #[test]
    fn picks_the_highest_matching_tag() {
        let all = ["v1.0.0", "v1.1.0", "v2.0.0-rc.1", "latest", "v0.9.0"];
        check(">=1.0.0", &all, Some("v1.1.0"));
        check("1.0.x", &all, Some("v1.0.0"));
        check("<1.0.0", &all, Some("v0.9.0"));
        check(">=2.0.0-rc.0", &all, Some("v2.0.0-rc.1"));
        check(">=3.0.0", &all, None);
    }

    #[test]
    fn invalid_range_is_reported() {
        let err = highest_matching("not a range!", tags(&["v1.0.0"])).unwrap_err();
        assert!(matches!(err, Error::InvalidSemver { .. }), "{err}");
    }
}
