//! What to check out (`GitRef`) and how Flux writes the result (`Revision`).

use sluice_api::source::GitRepositoryRef;

use crate::Error;

/// The branch Flux checks out when `spec.ref` is omitted or empty.
pub const DEFAULT_BRANCH: &str = "master";

/// A reference to check out, already resolved by Flux's precedence
/// (commit > name > semver > tag > branch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// The tip of a branch, e.g. `main`.
    Branch(String),
    /// A tag, e.g. `v1.0.0`; annotated tags are peeled to their commit.
    Tag(String),
    /// The highest tag satisfying a Masterminds semver range, e.g. `>=1.0.0 <2.0.0`.
    Semver(String),
    /// A full reference name, e.g. `refs/heads/main` or `refs/pull/420/head`.
    Name(String),
    /// A commit, optionally required to be on `branch` (which is then fetched).
    Commit {
        /// The full 40-hex SHA-1.
        sha: String,
        /// The branch named next to the commit in `spec.ref`.
        branch: Option<String>,
    },
}

impl Default for GitRef {
    fn default() -> Self {
        GitRef::Branch(DEFAULT_BRANCH.to_owned())
    }
}

impl GitRef {
    /// Resolve `spec.ref` by Flux's precedence; `None` or an empty ref means the `master` branch.
    pub fn from_spec(reference: Option<&GitRepositoryRef>) -> GitRef {
        reference.map(GitRef::from).unwrap_or_default()
    }

    /// Check the names for what git accepts (`git check-ref-format`) and the SHA for 40 hex digits.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRef`] naming the value and the rule it breaks.
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            GitRef::Branch(branch) => validate_ref_name("branch", branch),
            GitRef::Tag(tag) => validate_ref_name("tag", tag),
            GitRef::Name(name) if name == "HEAD" => Ok(()),
            GitRef::Name(name) if !name.starts_with("refs/") => Err(Error::InvalidRef {
                kind: "reference",
                name: name.clone(),
                reason: "a full reference name starts with refs/",
            }),
            GitRef::Name(name) => validate_ref_name("reference", name),
            GitRef::Semver(_) => Ok(()),
            GitRef::Commit { sha, branch } => {
                if sha.len() != 40 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(Error::InvalidRef {
                        kind: "commit",
                        name: sha.clone(),
                        reason: "expected the full 40-hex-digit SHA-1",
                    });
                }
                branch.as_deref().map_or(Ok(()), |branch| validate_ref_name("branch", branch))
            }
        }
    }
}

/// The rules of `git check-ref-format` that matter for names from a spec.
pub(crate) fn validate_ref_name(kind: &'static str, name: &str) -> Result<(), Error> {
    let invalid = |reason| Err(Error::InvalidRef { kind, name: name.to_owned(), reason });
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.starts_with('-') || name.starts_with('/') || name.ends_with('/') || name.ends_with('.')
    {
        return invalid("it may not start with '-' or '/', or end with '/' or '.'");
    }
    if name.contains("..") || name.contains("//") || name.contains("@{") || name.ends_with(".lock")
    {
        return invalid("it may not contain '..', '//' or '@{', or end with '.lock'");
    }
    if name.chars().any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c)) {
        return invalid("it may not contain spaces, control characters or any of ~^:?*[\\");
    }
    Ok(())
}

impl From<&GitRepositoryRef> for GitRef {
    fn from(reference: &GitRepositoryRef) -> Self {
        let non_empty = |value: &Option<String>| value.clone().filter(|value| !value.is_empty());
        if let Some(sha) = non_empty(&reference.commit) {
            return GitRef::Commit { sha, branch: non_empty(&reference.branch) };
        }
        if let Some(name) = non_empty(&reference.name) {
            return GitRef::Name(name);
        }
        if let Some(range) = non_empty(&reference.semver) {
            return GitRef::Semver(range);
        }
        if let Some(tag) = non_empty(&reference.tag) {
            return GitRef::Tag(tag);
        }
        GitRef::Branch(non_empty(&reference.branch).unwrap_or_else(|| DEFAULT_BRANCH.to_owned()))
    }
}

impl From<GitRepositoryRef> for GitRef {
    fn from(reference: GitRepositoryRef) -> Self {
        GitRef::from(&reference)
    }
}

/// A checked-out revision as Flux writes it in `status.artifact.revision`.
///
/// `main@sha1:<40 hex>` for a branch, `v1.0.0@sha1:…` for a tag (semver included),
/// `refs/heads/x@sha1:…` for `ref.name`, and `sha1:<40 hex>` for a bare commit
/// (fluxcd/pkg `git/git.go` `Commit.String`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revision {
    /// The short (branch, tag) or absolute (`ref.name`) reference, absent for a bare commit.
    pub reference: Option<String>,
    /// The full commit SHA-1 in lower-case hex.
    pub sha: String,
}

impl Revision {
    /// Parse a revision in Flux's current format, or the legacy `main/<sha>` format.
    ///
    /// Returns `None` when `text` has no recognisable SHA.
    pub fn parse(text: &str) -> Option<Revision> {
        let is_hex = |sha: &str| !sha.is_empty() && sha.chars().all(|c| c.is_ascii_hexdigit());
        if let Some((reference, sha)) = text.rsplit_once("@sha1:") {
            return is_hex(sha).then(|| Revision {
                reference: Some(reference.to_owned()).filter(|reference| !reference.is_empty()),
                sha: sha.to_ascii_lowercase(),
            });
        }
        if let Some(sha) = text.strip_prefix("sha1:") {
            return is_hex(sha)
                .then(|| Revision { reference: None, sha: sha.to_ascii_lowercase() });
        }
        // Flux before v2.0 wrote `<branch>/<sha>`.
        if let Some((reference, sha)) = text.rsplit_once('/')
            && sha.len() == 40
            && is_hex(sha)
        {
            return Some(Revision {
                reference: Some(reference.to_owned()),
                sha: sha.to_ascii_lowercase(),
            });
        }
        (text.len() == 40 && is_hex(text))
            .then(|| Revision { reference: None, sha: text.to_ascii_lowercase() })
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reference {
            Some(reference) => write!(f, "{reference}@sha1:{}", self.sha),
            None => write!(f, "sha1:{}", self.sha),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "363a6a8fe6a7f13e05d34c163b0ef02a777da20a";

    #[track_caller]
    fn check_precedence(reference: GitRepositoryRef, expected: GitRef) {
        assert_eq!(GitRef::from(&reference), expected);
    }

    fn text(value: &str) -> Option<String> {
        Some(value.to_owned())
    }

    #[test]
    fn precedence_is_commit_name_semver_tag_branch() {
        let all = GitRepositoryRef {
            branch: text("dev"),
            tag: text("v1"),
            semver: text(">=1"),
            name: text("refs/heads/x"),
            commit: text(SHA),
        };
        check_precedence(all.clone(), GitRef::Commit { sha: SHA.into(), branch: text("dev") });
        let no_commit = GitRepositoryRef { commit: None, ..all.clone() };
        check_precedence(no_commit.clone(), GitRef::Name("refs/heads/x".into()));
        let no_name = GitRepositoryRef { name: None, ..no_commit };
        check_precedence(no_name.clone(), GitRef::Semver(">=1".into()));
        let no_semver = GitRepositoryRef { semver: None, ..no_name };
        check_precedence(no_semver.clone(), GitRef::Tag("v1".into()));
        let no_tag = GitRepositoryRef { tag: None, ..no_semver };
        check_precedence(no_tag, GitRef::Branch("dev".into()));
        check_precedence(GitRepositoryRef::default(), GitRef::Branch("master".into()));
        assert_eq!(GitRef::from_spec(None), GitRef::Branch("master".into()));
        let empty_strings =
            GitRepositoryRef { branch: text(""), commit: text(""), ..Default::default() };
        check_precedence(empty_strings, GitRef::Branch("master".into()));
    }

    #[test]
    fn malformed_refs_are_rejected() {
        let sha = SHA.to_owned();
        for valid in [
            GitRef::Branch("feature/x-1".into()),
            GitRef::Tag("v1.0.0".into()),
            GitRef::Name("refs/pull/420/head".into()),
            GitRef::Commit { sha: sha.clone(), branch: Some("main".into()) },
        ] {
            assert!(valid.validate().is_ok(), "{valid:?}");
        }
        for invalid in [
            GitRef::Branch("main:evil".into()),
            GitRef::Branch("-upload-pack".into()),
            GitRef::Branch("a..b".into()),
            GitRef::Tag("v1 0".into()),
            GitRef::Name("main".into()),
            GitRef::Commit { sha: "abc123".into(), branch: None },
            GitRef::Commit { sha, branch: Some("x~1".into()) },
        ] {
            assert!(invalid.validate().is_err(), "{invalid:?}");
        }
        let err = GitRef::Commit { sha: "abc123".into(), branch: None }.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid commit \"abc123\": expected the full 40-hex-digit SHA-1"
        );
    }

    #[test]
    fn revisions_are_written_as_flux_writes_them() {
        let branch = Revision { reference: text("main"), sha: SHA.into() };
        assert_eq!(branch.to_string(), format!("main@sha1:{SHA}"));
        let name = Revision { reference: text("refs/tags/tag-1"), sha: SHA.into() };
        assert_eq!(name.to_string(), format!("refs/tags/tag-1@sha1:{SHA}"));
        let bare = Revision { reference: None, sha: SHA.into() };
        assert_eq!(bare.to_string(), format!("sha1:{SHA}"));
    }

    #[test]
    fn revisions_parse_back() {
        for text in
            [format!("main@sha1:{SHA}"), format!("sha1:{SHA}"), format!("v1.0.0@sha1:{SHA}")]
        {
            assert_eq!(Revision::parse(&text).unwrap().to_string(), text);
        }
        let legacy = Revision::parse(&format!("main/{SHA}")).unwrap();
        assert_eq!(legacy.to_string(), format!("main@sha1:{SHA}"));
        assert_eq!(Revision::parse(SHA).unwrap().sha, SHA);
        assert_eq!(Revision::parse("main@sha1:xyz"), None);
        assert_eq!(Revision::parse("main"), None);
    }
}
