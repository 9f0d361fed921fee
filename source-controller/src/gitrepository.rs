//! The GitRepository reconcile: credentials → remote-head check → shallow checkout →
//! signature verification → reproducible archive → status.artifact → garbage collection.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use sluice_api::meta::{Artifact, reason};
use sluice_api::source::{GitRepository, GitRepositoryInclude, condition};
use sluice_artifact::{SourceIgnore, Storage};
use sluice_git::{Auth, CheckoutOptions, GitRef, HttpOptions, Proxy};
use sluice_runtime::object::parse_go_duration;
use sluice_runtime::{Outcome, ReconcileError, Runtime, StatusWriter};

/// Why a GitRepository reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A referenced Secret does not exist.
    #[error("{field} Secret '{namespace}/{name}' not found")]
    SecretNotFound {
        /// The spec field naming it.
        field: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The spec is invalid.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// A git operation failed.
    #[error("{0}")]
    Git(#[source] sluice_git::Error),
    /// The commit or tag signature did not verify against the trusted keys; retried, since a
    /// new signed commit or a key added to the Secret fixes it.
    #[error("signature verification of revision '{revision}' failed: {source}")]
    Verification {
        /// The revision that failed verification.
        revision: String,
        /// Why.
        #[source]
        source: sluice_git::Error,
    },
    /// Writing the artifact failed.
    #[error("storing artifact")]
    Storage(#[source] sluice_artifact::StorageError),
    /// Reading ignore rules failed.
    #[error("reading ignore rules: {0}")]
    Ignore(String),
    /// Reading from the API server failed.
    #[error("reading {what}: {message}")]
    Kube {
        /// What was read.
        what: String,
        /// The API server's message.
        message: String,
    },
    /// An included GitRepository has no usable artifact; retried.
    #[error("{0}")]
    IncludeUnavailable(String),
    /// A `spec.include` entry is invalid; waits for a change.
    #[error("invalid spec: {0}")]
    InvalidInclude(String),
    /// A blocking task failed.
    #[error("{0}")]
    Task(String),
    /// Writing the status failed.
    #[error("writing status")]
    Status(#[from] sluice_runtime::Error),
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::SecretNotFound { .. } => condition::AUTHENTICATION_FAILED,
            Error::InvalidSpec(_) => condition::URL_INVALID,
            Error::IncludeUnavailable(_) | Error::InvalidInclude(_) => {
                condition::INCLUDE_UNAVAILABLE
            }
            Error::Git(err) => err.reason(),
            Error::Verification { .. } => condition::VERIFICATION_ERROR,
            Error::Storage(_) | Error::Ignore(_) | Error::Task(_) => {
                condition::ARCHIVE_OPERATION_FAILED
            }
            Error::Kube { .. } | Error::Status(_) => reason::FAILED,
        }
    }

    fn is_stalled(&self) -> bool {
        match self {
            Error::InvalidSpec(_) | Error::InvalidInclude(_) => true,
            Error::Git(err) => err.is_stalled(),
            _ => false,
        }
    }
}

/// The context of the GitRepository reconciler.
pub struct Reconciler {
    /// The shared runtime.
    pub runtime: Arc<Runtime>,
    /// The artifact storage.
    pub storage: Storage,
}

async fn secret_data(
    runtime: &Runtime,
    namespace: &str,
    name: &str,
    field: &'static str,
) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let api: Api<Secret> = Api::namespaced(runtime.client.clone(), namespace);
    let secret = api.get_opt(name).await.map_err(|err| Error::Kube {
        what: format!("Secret {namespace}/{name}"),
        message: err.to_string(),
    })?;
    let secret = secret.ok_or_else(|| Error::SecretNotFound {
        field,
        namespace: namespace.into(),
        name: name.into(),
    })?;
    Ok(secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect())
}

fn parse_duration(field: &str, raw: Option<&str>, default: Duration) -> Result<Duration, Error> {
    match raw {
        None => Ok(default),
        Some(raw) => parse_go_duration(raw)
            .map_err(|message| Error::InvalidSpec(format!("spec.{field} {raw:?}: {message}"))),
    }
}

/// What a reconcile produced.
struct Stored {
    artifact: Artifact,
    /// The key fingerprints that verified the revision, when `spec.verify` is set.
    verified_by: Vec<String>,
    /// Whether the artifact changed in this reconcile.
    is_new: bool,
    commit_message: Option<String>,
    /// The artifacts of `spec.include`, in spec order.
    included: Vec<Artifact>,
}

/// The inputs of [`build_artifact`].
pub struct Build {
    /// Repository URL.
    pub url: String,
    /// Credentials.
    pub auth: Auth,
    /// The reference to check out.
    pub git_ref: GitRef,
    /// Checkout options (shallow, timeout, submodules, sparse paths, HTTP).
    pub options: CheckoutOptions,
    /// Namespace of the GitRepository (storage path).
    pub namespace: String,
    /// Name of the GitRepository (storage path).
    pub name: String,
    /// `spec.ignore`.
    pub ignore: Option<String>,
    /// Signature verification mode and trusted keys.
    pub verify: Option<(sluice_git::VerificationMode, sluice_git::TrustedKeys)>,
    /// The included GitRepositories and their artifacts.
    pub includes: Vec<(GitRepositoryInclude, Artifact)>,
}

/// The blocking core of a reconcile: shallow checkout into a temporary directory, signature
/// verification, includes, ignore rules, and the reproducible archive written into `storage`
/// as `gitrepository/<namespace>/<name>/<commit>.tar.gz` under its lock.
///
/// # Errors
/// When the checkout, verification, an include or the archive fails.
pub fn build_artifact(storage: &Storage, build: Build) -> Result<Built, Error> {
    let work = tempfile::Builder::new()
        .prefix("gitrepository-")
        .tempdir()
        .map_err(|err| Error::Task(err.to_string()))?;
    let checkout_dir = work.path().join("repo");
    let commit = sluice_git::checkout(
        &build.url,
        &build.auth,
        &build.git_ref,
        &checkout_dir,
        &build.options,
    )
    .map_err(Error::Git)?;
    let verified_by = match &build.verify {
        Some((mode, keys)) => commit.verify(*mode, keys).map_err(|source| Error::Verification {
            revision: commit.revision.to_string(),
            source,
        })?,
        None => Vec::new(),
    };
    for (include, artifact) in &build.includes {
        copy_include(storage, include, artifact, &checkout_dir, work.path())?;
    }
    let ignore = SourceIgnore::load(&checkout_dir, build.ignore.as_deref())
        .map_err(|err| Error::Ignore(err.to_string()))?;
    let path = Storage::artifact_path(
        "GitRepository",
        &build.namespace,
        &build.name,
        &format!("{}.tar.gz", commit.sha),
    );
    let _lock = storage.lock(&path).map_err(Error::Storage)?;
    let stored = storage.archive(&path, &checkout_dir, Some(&ignore)).map_err(Error::Storage)?;
    Ok(Built { commit, stored, verified_by })
}

/// What [`build_artifact`] produced.
pub struct Built {
    /// The checked-out commit.
    pub commit: sluice_git::Commit,
    /// The archive in storage.
    pub stored: sluice_artifact::storage::StoredFile,
    /// Fingerprints of the keys that verified the signatures (empty without `verify`).
    pub verified_by: Vec<String>,
}

/// Adds the watch that wakes a GitRepository when a GitRepository it includes stores a new
/// artifact (one its `status.includedArtifacts` does not have yet).
pub fn watch_includes(
    controller: Controller<GitRepository>,
    runtime: &Runtime,
) -> Controller<GitRepository> {
    let store = controller.store();
    controller.watches(
        runtime.watched_api::<GitRepository>(),
        runtime.watcher_config(),
        move |included: GitRepository| includers(&store, &included),
    )
}

/// The GitRepositories that include `included` and have not built with its current artifact.
fn includers(
    store: &Store<GitRepository>,
    included: &GitRepository,
) -> Vec<ObjectRef<GitRepository>> {
    let Some(artifact) = included.status.as_ref().and_then(|s| s.artifact.as_ref()) else {
        return Vec::new();
    };
    let namespace = included.namespace();
    let name = included.name_any();
    store
        .state()
        .into_iter()
        .filter(|repo| {
            repo.namespace() == namespace
                && repo.spec.include.iter().flatten().any(|i| i.repository.name == name)
                && !repo.status.as_ref().and_then(|s| s.included_artifacts.as_ref()).is_some_and(
                    |list| {
                        list.iter()
                            .any(|a| a.revision == artifact.revision && a.digest == artifact.digest)
                    },
                )
        })
        .map(|repo| ObjectRef::from_obj(&*repo))
        .collect()
}

/// Whether two artifact lists name the same revisions and digests.
fn same_artifacts(a: &[Artifact], b: &[Artifact]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| x.revision == y.revision && x.digest == y.digest)
}

/// `path` without `./` and trailing `/`, or `None` when it is absolute or climbs out.
fn relative_path(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Copies `fromPath` of an included artifact into `toPath` (default: the repository name) of
/// the checkout, as Flux's `include` does; files in the checkout are overwritten.
fn copy_include(
    storage: &Storage,
    include: &GitRepositoryInclude,
    artifact: &Artifact,
    checkout: &Path,
    work: &Path,
) -> Result<(), Error> {
    let name = &include.repository.name;
    let unavailable = |what: String| Error::IncludeUnavailable(format!("include '{name}': {what}"));
    let archive = storage.root().join(&artifact.path);
    let unpacked = work.join(format!("include-{name}"));
    std::fs::create_dir_all(&unpacked)
        .map_err(|err| unavailable(format!("creating {}: {err}", unpacked.display())))?;
    let file = std::fs::File::open(&archive)
        .map_err(|err| unavailable(format!("opening artifact {}: {err}", artifact.path)))?;
    sluice_artifact::unpack_tar_gz(
        std::io::BufReader::new(file),
        &unpacked,
        sluice_artifact::UnpackLimits::default(),
    )
    .map_err(|err| {
        unavailable(format!(
            "unpacking artifact {}: {}",
            artifact.path,
            sluice_runtime::conditions::error_message(&err)
        ))
    })?;
    let from = relative_path(include.from_path.as_deref().unwrap_or("./")).unwrap_or_default();
    let to = relative_path(include.to_path.as_deref().unwrap_or(name)).unwrap_or_default();
    // The destination must not pass through a symlink of the checkout (it could point outside).
    let mut prefix = checkout.to_path_buf();
    for part in to.components() {
        prefix.push(part);
        if std::fs::symlink_metadata(&prefix).is_ok_and(|m| m.is_symlink()) {
            return Err(Error::InvalidInclude(format!(
                "include '{name}': toPath '{}' passes through a symlink of the repository",
                to.display()
            )));
        }
    }
    let source = unpacked.join(&from);
    if !source.is_dir() {
        return Err(unavailable(format!(
            "fromPath '{}' is not a directory of the artifact of revision '{}'",
            from.display(),
            artifact.revision
        )));
    }
    copy_tree(&source, &checkout.join(&to)).map_err(|err| {
        Error::Task(format!("copying include '{name}' into '{}': {err}", to.display()))
    })
}

/// Copies regular files and directories of `from` into `to`, never following symlinks.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            if std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_symlink()) {
                std::fs::remove_file(&target)?;
            }
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

impl Reconciler {
    async fn reconcile_artifact(
        &self,
        obj: &GitRepository,
        status: &mut StatusWriter<'_, GitRepository>,
    ) -> Result<Stored, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let spec = &obj.spec;
        let timeout = parse_duration("timeout", spec.timeout.as_deref(), Duration::from_secs(60))?;
        let secret = match &spec.secret_ref {
            Some(reference) => {
                secret_data(&self.runtime, &namespace, &reference.name, "spec.secretRef").await?
            }
            None => BTreeMap::new(),
        };
        let auth = Auth::from_secret_data(&spec.url, &secret).map_err(Error::Git)?;
        let mut http = HttpOptions::from_secret_data(&secret);
        if let Some(reference) = &spec.proxy_secret_ref {
            let data =
                secret_data(&self.runtime, &namespace, &reference.name, "spec.proxySecretRef")
                    .await?;
            http.proxy = Some(Proxy::from_secret_data(&data).map_err(Error::Git)?);
        }
        let git_ref = GitRef::from_spec(spec.reference.as_ref());
        let ignore_spec = spec.ignore.clone();
        let includes = self.resolve_includes(obj).await?;
        let included: Vec<Artifact> = includes.iter().map(|(_, a)| a.clone()).collect();
        // The stored artifact of `view` when it was built with today's settings and is still in
        // storage: only then can an unchanged remote revision skip the clone.
        let reusable = |view: &GitRepository| -> Option<Artifact> {
            let status = view.status.as_ref()?;
            let settings_unchanged = status.observed_ignore == spec.ignore
                && status.observed_recurse_submodules.unwrap_or(false)
                    == spec.recurse_submodules.unwrap_or(false)
                && status.observed_sparse_checkout == spec.sparse_checkout
                && spec.verify.is_none()
                && status.observed_include == spec.include
                && same_artifacts(
                    status.included_artifacts.as_deref().unwrap_or_default(),
                    &included,
                );
            status
                .artifact
                .clone()
                .filter(|artifact| settings_unchanged && self.storage.exists(&artifact.path))
        };
        let mut current = obj.status.as_ref().and_then(|s| s.artifact.clone());

        let options = CheckoutOptions {
            shallow: true,
            recurse_submodules: spec.recurse_submodules.unwrap_or(false),
            timeout,
            sparse_paths: spec.sparse_checkout.clone().unwrap_or_default(),
            http,
        };

        // The cheap path: the remote ref still points at the stored revision, so no clone. The
        // cached copy is checked first; when it does not match, the API server's copy is checked
        // too, since the cache may not yet hold the status that the previous reconcile wrote
        // (rebuilding then would rewrite an artifact that consumers are downloading).
        let mut remote: Option<Option<String>> = None;
        for candidate in [Some(obj.clone()), None] {
            let view = match candidate {
                Some(view) => view,
                None => match crate::fresh(&self.runtime.client, obj).await {
                    Some(view) => view,
                    None => break,
                },
            };
            let Some(stored) = reusable(&view) else { continue };
            if remote.is_none() {
                let (url, auth, reference, options) =
                    (spec.url.clone(), auth.clone(), git_ref.clone(), options.clone());
                let revision = tokio::task::spawn_blocking(move || {
                    sluice_git::remote_revision(&url, &auth, &reference, &options)
                })
                .await
                .map_err(|err| Error::Task(err.to_string()))?
                .map_err(Error::Git)?;
                remote = Some(revision.map(|revision| revision.to_string()));
            }
            if remote.as_ref().is_some_and(|r| r.as_deref() == Some(stored.revision.as_str())) {
                return Ok(Stored {
                    artifact: stored,
                    verified_by: Vec::new(),
                    is_new: false,
                    commit_message: None,
                    included,
                });
            }
            current = view.status.as_ref().and_then(|s| s.artifact.clone());
        }

        status
            .progress(&format!("building artifact: fetching {}", sluice_git::redact_url(&spec.url)))
            .await?;
        let verify = match &spec.verify {
            Some(verify) => {
                let data = secret_data(
                    &self.runtime,
                    &namespace,
                    &verify.secret_ref.name,
                    "spec.verify.secretRef",
                )
                .await?;
                let keys = sluice_git::TrustedKeys::from_secret_data(&data).map_err(Error::Git)?;
                let mode = sluice_git::VerificationMode::parse(verify.mode.as_deref())
                    .map_err(Error::Git)?;
                Some((mode, keys))
            }
            None => None,
        };
        let storage = self.storage.clone();
        let build = Build {
            url: spec.url.clone(),
            auth,
            git_ref,
            options,
            namespace,
            name,
            ignore: ignore_spec,
            verify,
            includes: includes.clone(),
        };
        let Built { commit, stored, verified_by } =
            tokio::task::spawn_blocking(move || build_artifact(&storage, build))
                .await
                .map_err(|err| Error::Task(err.to_string()))??;
        let revision = commit.revision.to_string();
        let is_new = current.as_ref().is_none_or(|c| {
            c.digest.as_deref() != Some(stored.digest.as_str()) || c.revision != revision
        });
        let artifact = if is_new {
            self.storage.artifact(&stored, revision, None)
        } else {
            current.clone().unwrap_or_else(|| self.storage.artifact(&stored, revision, None))
        };
        let first_line = commit.message.lines().next().unwrap_or_default().to_string();
        Ok(Stored { artifact, verified_by, is_new, commit_message: Some(first_line), included })
    }

    /// The artifacts of `spec.include`, checked for presence in storage.
    async fn resolve_includes(
        &self,
        obj: &GitRepository,
    ) -> Result<Vec<(GitRepositoryInclude, Artifact)>, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let api: Api<GitRepository> = Api::namespaced(self.runtime.client.clone(), &namespace);
        let mut resolved = Vec::new();
        for (index, include) in obj.spec.include.iter().flatten().enumerate() {
            let name = &include.repository.name;
            if name == &obj.name_any() {
                return Err(Error::InvalidInclude(format!(
                    "spec.include[{index}] includes the GitRepository itself"
                )));
            }
            for (field, value) in [("fromPath", &include.from_path), ("toPath", &include.to_path)] {
                if let Some(path) = value
                    && relative_path(path).is_none()
                {
                    return Err(Error::InvalidInclude(format!(
                        "spec.include[{index}].{field} {path:?} must be a relative path inside the artifact (no '..', not absolute)"
                    )));
                }
            }
            let included = api.get_opt(name).await.map_err(|err| Error::Kube {
                what: format!("GitRepository {namespace}/{name}"),
                message: err.to_string(),
            })?;
            let Some(included) = included else {
                return Err(Error::IncludeUnavailable(format!(
                    "spec.include[{index}]: GitRepository '{namespace}/{name}' not found"
                )));
            };
            let artifact =
                included.status.and_then(|s| s.artifact).filter(|a| self.storage.exists(&a.path));
            let Some(artifact) = artifact else {
                return Err(Error::IncludeUnavailable(format!(
                    "spec.include[{index}]: GitRepository '{namespace}/{name}' has no artifact yet"
                )));
            };
            resolved.push((include.clone(), artifact));
        }
        Ok(resolved)
    }

    /// Reconciles a GitRepository and writes its status.
    pub async fn reconcile(&self, obj: Arc<GitRepository>) -> Result<Action, Error> {
        let mut status = StatusWriter::new(
            &*obj,
            self.runtime.client.clone(),
            self.runtime.controller,
            &self.runtime.events,
        );
        let interval =
            match parse_duration("interval", Some(&obj.spec.interval), Duration::from_secs(60)) {
                Ok(interval) => interval,
                Err(err) => {
                    status.finish(&Outcome::from_error(&err)).await?;
                    return Ok(Action::await_change());
                }
            };
        match self.reconcile_artifact(&obj, &mut status).await {
            Ok(stored) => {
                let artifact = stored.artifact;
                status.set_field("artifact", &artifact);
                status.set_field("observedIgnore", &obj.spec.ignore);
                status.set_field(
                    "observedRecurseSubmodules",
                    obj.spec.recurse_submodules.unwrap_or(false),
                );
                status.set_field("observedSparseCheckout", &obj.spec.sparse_checkout);
                status.set_field("observedInclude", &obj.spec.include);
                status.set_field(
                    "includedArtifacts",
                    (!stored.included.is_empty()).then_some(&stored.included),
                );
                if let Some(verify) = &obj.spec.verify {
                    status.set_field(
                        "sourceVerificationMode",
                        verify.mode.clone().unwrap_or_else(|| "HEAD".into()),
                    );
                    status.set_condition(
                        condition::SOURCE_VERIFIED,
                        sluice_runtime::conditions::Status::True,
                        reason::SUCCEEDED,
                        &format!(
                            "verified signature of revision '{}' with key '{}'",
                            artifact.revision,
                            stored.verified_by.join("', '")
                        ),
                    );
                } else {
                    status.remove_condition(condition::SOURCE_VERIFIED);
                }
                if let Some(message) = stored.commit_message.as_ref().filter(|_| stored.is_new) {
                    tracing::info!(gitrepository = %obj.name_any(), revision = %artifact.revision, commit = %message, "fetched commit");
                }
                let message = format!("stored artifact for revision '{}'", artifact.revision);
                status.remove_condition(condition::INCLUDE_UNAVAILABLE);
                let (runtime, storage) = (&self.runtime, &self.storage);
                let action = crate::finish_stored(
                    runtime,
                    storage,
                    "GitRepository",
                    &*obj,
                    status,
                    &artifact,
                    stored.is_new,
                    message,
                    interval,
                );
                Ok(action.await?)
            }
            Err(err) => {
                if let Error::Verification { .. } = &err {
                    status.set_condition(
                        condition::SOURCE_VERIFIED,
                        sluice_runtime::conditions::Status::False,
                        err.reason(),
                        &sluice_runtime::conditions::error_message(&err),
                    );
                }
                if let Error::IncludeUnavailable(message) | Error::InvalidInclude(message) = &err {
                    status.set_condition(
                        condition::INCLUDE_UNAVAILABLE,
                        sluice_runtime::conditions::Status::True,
                        err.reason(),
                        message,
                    );
                }
                let failure = match &err {
                    Error::Git(_) | Error::Verification { .. } | Error::SecretNotFound { .. } => {
                        Some(condition::FETCH_FAILED)
                    }
                    Error::Storage(_) | Error::Ignore(_) | Error::Task(_) => {
                        Some(condition::STORAGE_OPERATION_FAILED)
                    }
                    _ => None,
                };
                Ok(crate::finish_failed(&self.runtime, status, &err, failure, interval).await?)
            }
        }
    }

    /// Removes the object's artifacts when it is deleted.
    pub async fn cleanup(&self, obj: Arc<GitRepository>) -> Result<Action, Error> {
        let object_dir = Storage::object_dir(
            "GitRepository",
            &obj.namespace().unwrap_or_default(),
            &obj.name_any(),
        );
        self.storage.remove_all(&object_dir).map_err(Error::Storage)?;
        Ok(Action::await_change())
    }
}
