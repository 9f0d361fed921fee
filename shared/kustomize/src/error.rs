//! Errors of a kustomize build, each naming the kustomization file, resource or field involved.

use std::path::PathBuf;

/// A build failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No kustomization file in a directory.
    #[error("unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory '{}'", dir.display())]
    MissingKustomization {
        /// The directory.
        dir: PathBuf,
    },
    /// More than one kustomization file in a directory.
    #[error("found multiple kustomization files under: {}", dir.display())]
    MultipleKustomizations {
        /// The directory.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("reading '{}': {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A path leaves the directory it must stay in.
    #[error("security; file '{}' is not in or below '{}'", path.display(), root.display())]
    OutsideRoot {
        /// The offending path.
        path: PathBuf,
        /// The root it must stay in.
        root: PathBuf,
    },
    /// A remote base or resource (URL, git repository) was given.
    #[error("remote resource '{url}' in '{}' is not supported: vendor it into the source instead", kustomization.display())]
    Remote {
        /// The kustomization file.
        kustomization: PathBuf,
        /// The URL.
        url: String,
    },
    /// A YAML or JSON document does not parse.
    #[error("{}: invalid YAML: {message}", path.display())]
    Yaml {
        /// The file (or a description of inline content).
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A kustomization file is invalid.
    #[error("invalid kustomization '{}': {message}", path.display())]
    InvalidKustomization {
        /// The kustomization file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Any other failure, with the context chain that led to it.
    #[error("{}", join_context(context, message))]
    Build {
        /// Where (kustomization file, resource id, field).
        context: String,
        /// What went wrong.
        message: String,
    },
}

fn join_context(context: &str, message: &str) -> String {
    if context.is_empty() { message.to_string() } else { format!("{context}: {message}") }
}

impl Error {
    /// An error with a context and a message.
    pub(crate) fn build(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Build { context: context.into(), message: message.into() }
    }

    /// Prefixes the error with more context (outermost first in the message).
    pub(crate) fn context(self, context: impl Into<String>) -> Self {
        Error::Build { context: context.into(), message: self.to_string() }
    }
}

/// Result with the engine's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
