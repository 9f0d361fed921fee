//! The error type of Git operations, with Flux condition reasons and messages free of credentials.

use std::path::PathBuf;
use std::time::Duration;

/// A failed Git operation.
///
/// # Invariants
///
/// No message contains credentials: URLs are stored with their userinfo stripped (see
/// [`crate::redact_url`]) and text from git, ssh or gix is redacted before it is stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL cannot be parsed or uses an unsupported scheme.
    #[error("invalid Git URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL, without userinfo.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The Secret data does not describe usable credentials.
    #[error("invalid credentials: {reason}")]
    InvalidAuth {
        /// What is missing or malformed, naming the Secret key.
        reason: String,
    },
    /// The server refused the credentials, or asked for some and none were given.
    #[error("authentication to {url} failed: {detail}")]
    AuthenticationFailed {
        /// The URL, without userinfo.
        url: String,
        /// What the server or the transport said, redacted.
        detail: String,
    },
    /// The SSH server's host key is not the one in known_hosts.
    #[error("ssh host key of {host} does not match known_hosts")]
    HostKeyMismatch {
        /// `host:port` of the server.
        host: String,
    },
    /// A branch, tag, reference name or commit SHA is malformed.
    #[error("invalid {kind} {name:?}: {reason}")]
    InvalidRef {
        /// `branch`, `tag`, `reference` or `commit`.
        kind: &'static str,
        /// The value from the spec.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The requested branch, tag, reference or commit does not exist on the remote.
    #[error("{kind} '{name}' not found in {url}")]
    RefNotFound {
        /// `branch`, `tag`, `reference` or `commit`.
        kind: &'static str,
        /// The name or SHA that was asked for.
        name: String,
        /// The URL, without userinfo.
        url: String,
    },
    /// The semver range is not valid.
    #[error("invalid semver range {range:?}: {reason}")]
    InvalidSemver {
        /// The range from `spec.ref.semver`.
        range: String,
        /// Why it does not parse.
        reason: String,
    },
    /// No tag of the remote satisfies the semver range.
    #[error("no tag in {url} matches semver range {range:?}")]
    NoMatchingTag {
        /// The range from `spec.ref.semver`.
        range: String,
        /// The URL, without userinfo.
        url: String,
    },
    /// The operation did not finish in time.
    #[error("{operation} of {url} timed out after {timeout:?}")]
    Timeout {
        /// What was running (`clone`, `ls-remote`, `push`).
        operation: &'static str,
        /// The URL, without userinfo.
        url: String,
        /// The configured limit.
        timeout: Duration,
    },
    /// Any other failure of a Git operation: network, protocol, server or object errors.
    #[error("{operation} of {url} failed: {detail}")]
    Operation {
        /// What was running (`clone`, `ls-remote`, `checkout`, `fetch`, `push`, …).
        operation: &'static str,
        /// The URL, without userinfo.
        url: String,
        /// What went wrong, redacted.
        detail: String,
    },
    /// The push was rejected, for example because it is not a fast-forward.
    #[error("push of branch '{branch}' to {url} was rejected: {detail}")]
    PushRejected {
        /// The target branch.
        branch: String,
        /// The URL, without userinfo.
        url: String,
        /// What the server said, redacted.
        detail: String,
    },
    /// A commit or tag signature is missing or not made by a trusted key.
    #[error("verifying signature of {object}: {reason}")]
    Verification {
        /// What was verified, e.g. `commit 363a…` or `tag 'v1.0.0'`.
        object: String,
        /// Why it failed.
        reason: String,
    },
    /// A local file or directory could not be created, read or written.
    #[error("{action} {path:?}")]
    Io {
        /// What was being done, e.g. `creating directory`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The local repository is in a state the operation cannot handle.
    #[error("repository {path:?}: {detail}")]
    Repository {
        /// The repository directory.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl Error {
    /// The Flux condition reason for this error (`AuthenticationFailed`, `GitOperationFailed`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidUrl { .. } => "URLInvalid",
            Error::InvalidAuth { .. } | Error::AuthenticationFailed { .. } => {
                "AuthenticationFailed"
            }
            Error::HostKeyMismatch { .. } => "AuthenticationFailed",
            Error::Io { .. } => "DirectoryCreationFailed",
            Error::Verification { .. } => "VerificationError",
            Error::RefNotFound { .. }
            | Error::InvalidRef { .. }
            | Error::InvalidSemver { .. }
            | Error::NoMatchingTag { .. }
            | Error::Timeout { .. }
            | Error::Operation { .. }
            | Error::PushRejected { .. }
            | Error::Repository { .. } => "GitOperationFailed",
        }
    }

    /// Whether retrying without a change of spec or Secret cannot help.
    ///
    /// Authentication, host keys, malformed URLs or ranges stall; a missing ref may appear later,
    /// so it is transient, as are network failures and timeouts.
    pub fn is_stalled(&self) -> bool {
        matches!(
            self,
            Error::InvalidUrl { .. }
                | Error::InvalidRef { .. }
                | Error::InvalidAuth { .. }
                | Error::InvalidSemver { .. }
                | Error::Verification { .. }
        )
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io { action, path: path.into(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_flux() {
        let auth = Error::AuthenticationFailed { url: "https://h/r".into(), detail: "401".into() };
        assert_eq!(auth.reason(), "AuthenticationFailed");
        let missing =
            Error::RefNotFound { kind: "branch", name: "x".into(), url: "https://h/r".into() };
        assert_eq!(missing.reason(), "GitOperationFailed");
        assert_eq!(missing.to_string(), "branch 'x' not found in https://h/r");
        let url = Error::InvalidUrl { url: "ftp://h".into(), reason: "unsupported".into() };
        assert_eq!(url.reason(), "URLInvalid");
        assert!(url.is_stalled());
        let host = Error::HostKeyMismatch { host: "127.0.0.1:2222".into() };
        assert_eq!(host.to_string(), "ssh host key of 127.0.0.1:2222 does not match known_hosts");
    }
}
