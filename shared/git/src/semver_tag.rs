//! Picking the highest tag that satisfies a semver range (`spec.ref.semver`).

use crate::Error;

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
