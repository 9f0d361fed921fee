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
use sluice_artifact::storage::StoredFile;
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

/// The blocking core of a reconcile: shallow fetch into a temporary directory, signature
/// verification, ignore rules, and the reproducible archive written into `storage` as
/// `gitrepository/<namespace>/<name>/<commit>.tar.gz` under its lock.
///
/// The archive is written straight from the object database (no worktree) when nothing needs
/// one; with `spec.include` (artifacts copied into the tree), submodules, sparse paths or
/// content filters (`.gitattributes`) the commit is checked out and the worktree archived.
/// Both give the same bytes for the same tree.
///
/// # Errors
/// When the checkout, verification, an include or the archive fails.
pub fn build_artifact(storage: &Storage, build: Build) -> Result<Built, Error> {
    let work = tempfile::Builder::new()
        .prefix("gitrepository-")
        .tempdir()
        .map_err(|err| Error::Task(err.to_string()))?;
    let checkout_dir = work.path().join("repo");
    let (commit, tree) = if build.includes.is_empty() {
        sluice_git::fetch_tree(
            &build.url,
            &build.auth,
            &build.git_ref,
            &checkout_dir,
            &build.options,
        )
    } else {
        sluice_git::checkout(&build.url, &build.auth, &build.git_ref, &checkout_dir, &build.options)
            .map(|commit| (commit, None))
    }
    .map_err(Error::Git)?;
    let verified_by = match &build.verify {
        Some((mode, keys)) => commit.verify(*mode, keys).map_err(|source| Error::Verification {
            revision: commit.revision.to_string(),
            source,
        })?,
        None => Vec::new(),
    };
    let path = Storage::artifact_path(
        "GitRepository",
        &build.namespace,
        &build.name,
        &format!("{}.tar.gz", commit.sha),
    );
    let stored = match tree {
        Some(tree) => archive_tree(storage, &path, &tree, &commit.sha, build.ignore.as_deref())?,
        None => {
            for (include, artifact) in &build.includes {
                copy_include(storage, include, artifact, &checkout_dir, work.path())?;
            }
            archive_checkout(storage, &path, &checkout_dir, build.ignore.as_deref())?
        }
    };
    Ok(Built { commit, stored, verified_by })
}

/// Archives a worktree at `dir` into the artifact at `path`, with its ignore rules.
fn archive_checkout(
    storage: &Storage,
    path: &str,
    dir: &Path,
    spec_ignore: Option<&str>,
) -> Result<StoredFile, Error> {
    let ignore =
        SourceIgnore::load(dir, spec_ignore).map_err(|err| Error::Ignore(err.to_string()))?;
    let _lock = storage.lock(path).map_err(Error::Storage)?;
    storage.archive(path, dir, Some(&ignore)).map_err(Error::Storage)
}

/// Archives the tree of commit `sha` from the object database into the artifact at `path`,
/// with the ignore rules a checkout of it would have.
fn archive_tree(
    storage: &Storage,
    path: &str,
    tree: &sluice_git::Tree,
    sha: &str,
    spec_ignore: Option<&str>,
) -> Result<StoredFile, Error> {
    use sluice_artifact::{ArchiveEntry, EntryKind};
    use sluice_git::TreeEntryKind;
    let root = Path::new(sluice_artifact::storage::TREE_ROOT);
    let mut reader = tree.reader();
    let mut ignore_files = Vec::new();
    for entry in tree.entries() {
        let is_file = matches!(entry.kind, TreeEntryKind::File | TreeEntryKind::Executable);
        let name = entry.path.file_name().and_then(|name| name.to_str());
        if is_file && name == Some(sluice_artifact::ignore::SOURCE_IGNORE_FILE) {
            let mut contents = Vec::new();
            reader.read(entry, &mut contents).map_err(Error::Git)?;
            ignore_files.push((root.join(&entry.path), contents));
        }
    }
    let ignore = SourceIgnore::from_files(root, ignore_files, spec_ignore)
        .map_err(|err| Error::Ignore(err.to_string()))?;
    let entries = tree
        .entries()
        .iter()
        .enumerate()
        .map(|(key, entry)| ArchiveEntry {
            path: entry.path.clone(),
            kind: match entry.kind {
                TreeEntryKind::File => EntryKind::File { executable: false },
                TreeEntryKind::Executable => EntryKind::File { executable: true },
                TreeEntryKind::Symlink => EntryKind::Symlink,
                // A submodule is an empty directory in a checkout without submodules.
                TreeEntryKind::Submodule => EntryKind::Dir,
            },
            key,
        })
        .collect();
    let _lock = storage.lock(path).map_err(Error::Storage)?;
    storage
        .archive_entries(
            path,
            &format!("tree of commit {sha}"),
            entries,
            Some(&ignore),
            |key, buf| reader.read(&tree.entries()[key], buf).map_err(std::io::Error::other),
        )
        .map_err(Error::Storage)
}

/// What [`build_artifact`] produced.
pub struct Built {
    /// The checked-out commit.
    pub commit: sluice_git::Commit,
    /// The archive in storage.
    pub stored: StoredFile,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs git in `dir` without user or system config; panics with stderr on failure.
    #[track_caller]
    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// A repository whose single commit holds `files` (`path=contents`; a `+x` suffix on the
    /// path makes it executable, `path->target` a symlink, `path@` a submodule entry).
    fn repository(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        git(work, &["init", "--quiet", "--initial-branch=main"]);
        for spec in files {
            if let Some((path, target)) = spec.split_once("->") {
                let full = work.join(path);
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(target, full).unwrap();
            } else if spec.ends_with('@') {
                // Added to the index below, after `git add --all`.
            } else {
                let (path, contents) = spec.split_once('=').unwrap_or((spec, ""));
                let (path, executable) = match path.strip_suffix("+x") {
                    Some(path) => (path, true),
                    None => (path, false),
                };
                let full = work.join(path);
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(&full, contents).unwrap();
                if executable {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755))
                        .unwrap();
                }
            }
        }
        git(work, &["add", "--all"]);
        for path in files.iter().filter_map(|spec| spec.strip_suffix('@')) {
            // A gitlink to some commit, as `git submodule add` records it.
            let cacheinfo = format!("160000,{},{path}", "1".repeat(40));
            git(work, &["update-index", "--add", "--cacheinfo", &cacheinfo]);
        }
        git(work, &["commit", "--quiet", "--allow-empty", "-m", "tree"]);
        dir
    }

    fn build(url: &str, name: &str, ignore: Option<&str>) -> Build {
        Build {
            url: url.into(),
            auth: sluice_git::Auth::None,
            git_ref: GitRef::Branch("main".into()),
            options: CheckoutOptions::default(),
            namespace: "default".into(),
            name: name.into(),
            ignore: ignore.map(str::to_owned),
            verify: None,
            includes: Vec::new(),
        }
    }

    /// The artifact of the repository at `dir` built from the object database (asserting that
    /// path was taken when `expect_tree`) and from a checkout: (tree digest, checkout digest,
    /// the tree artifact's entries).
    fn both_paths(
        dir: &Path,
        ignore: Option<&str>,
        expect_tree: bool,
    ) -> (String, String, Vec<(String, u32)>) {
        let url = format!("file://{}", dir.display());
        let storage_dir = tempfile::tempdir().unwrap();
        let storage =
            Storage::new(storage_dir.path(), "localhost", Duration::from_secs(60), 2).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let probe = sluice_git::fetch_tree(
            &url,
            &sluice_git::Auth::None,
            &GitRef::Branch("main".into()),
            &scratch.path().join("probe"),
            &CheckoutOptions::default(),
        )
        .unwrap();
        assert_eq!(probe.1.is_some(), expect_tree, "tree path taken");

        let built = build_artifact(&storage, build(&url, "tree", ignore)).unwrap();

        let checkout_dir = scratch.path().join("checkout");
        let commit = sluice_git::checkout(
            &url,
            &sluice_git::Auth::None,
            &GitRef::Branch("main".into()),
            &checkout_dir,
            &CheckoutOptions::default(),
        )
        .unwrap();
        assert_eq!(commit.sha, built.commit.sha);
        let path = Storage::artifact_path("GitRepository", "default", "checkout", "a.tar.gz");
        let stored = archive_checkout(&storage, &path, &checkout_dir, ignore).unwrap();

        let bytes = std::fs::read(storage.root().join(&built.stored.path)).unwrap();
        assert_eq!(sluice_artifact::sha256_digest(&bytes), built.stored.digest);
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let entries = tar
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let mode = entry.header().mode().unwrap();
                (entry.path().unwrap().display().to_string(), mode)
            })
            .collect();
        (built.stored.digest, stored.digest, entries)
    }

    fn names(entries: &[(String, u32)]) -> Vec<&str> {
        entries.iter().map(|(name, _)| name.trim_end_matches('/')).collect()
    }

    #[test]
    fn tree_archive_is_byte_identical_to_the_checkout_archive_with_default_rules() {
        let long = format!("deep/{}/{}.yaml", "d".repeat(60), "f".repeat(80));
        let long_spec = format!("{long}=long\n");
        let repo = repository(&[
            "README.md=# readme\n",
            "logo.png=png",
            ".github/workflows/ci.yaml=on: push\n",
            ".gitignore=target\n",
            "deploy/app.yaml=kind: Deployment\n",
            "deploy/nested/deeper/cm.yaml=kind: ConfigMap\n",
            "deploy/.sops.yaml=creation_rules: []\n",
            "scripts/run.sh+x=#!/bin/sh\necho hi\n",
            "a-b.yaml=dash\n",
            "a/x.yaml=slash\n",
            "a.b/y.yaml=dot\n",
            "empty.txt",
            "only-ignored/pic.jpg=jpg",
            "link->deploy/app.yaml",
            "only-link/l->../README.md",
            "escape->/etc/passwd",
            "mods/sub@",
            &long_spec,
        ]);
        let (tree, checkout, entries) = both_paths(repo.path(), None, true);
        assert_eq!(tree, checkout);
        let names = names(&entries);
        // Depth first, each directory's names in byte order, symlinks and default ignores dropped.
        assert_eq!(
            names,
            vec![
                "README.md",
                "a",
                "a/x.yaml",
                "a-b.yaml",
                "a.b",
                "a.b/y.yaml",
                "deep",
                &format!("deep/{}", "d".repeat(60)),
                &long,
                "deploy",
                "deploy/app.yaml",
                "deploy/nested",
                "deploy/nested/deeper",
                "deploy/nested/deeper/cm.yaml",
                "empty.txt",
                "mods",
                "mods/sub",
                "only-ignored",
                "only-link",
                "scripts",
                "scripts/run.sh",
            ]
        );
        let mode =
            |name: &str| entries.iter().find(|(n, _)| n.trim_end_matches('/') == name).unwrap().1;
        assert_eq!(mode("scripts/run.sh"), sluice_artifact::archive::EXEC_MODE);
        assert_eq!(mode("README.md"), sluice_artifact::archive::FILE_MODE);
        assert_eq!(mode("deploy"), sluice_artifact::archive::DIR_MODE);
    }

    #[test]
    fn tree_archive_applies_sourceignore_files_and_spec_ignore_as_the_checkout_does() {
        let repo = repository(&[
            ".sourceignore=\u{feff}*.md\n!keep.md\r\n# comment\n/build/\n",
            "README.md=x",
            "keep.md=x",
            "logo.png=png",
            "build/out.yaml=x",
            "apps/.sourceignore=/secret.yaml\n",
            "apps/secret.yaml=x",
            "apps/deep/secret.yaml=x",
            "secret.yaml=x",
            "infra/a.yaml=x",
            "infra/b.yaml=x",
        ]);
        for spec_ignore in [None, Some("/infra/b.yaml\n"), Some("/*\n!/apps\n"), Some("/*\n")] {
            let (tree, checkout, entries) = both_paths(repo.path(), spec_ignore, true);
            assert_eq!(tree, checkout, "spec.ignore {spec_ignore:?}");
            let names = names(&entries);
            match spec_ignore {
                None => assert_eq!(
                    names,
                    vec![
                        ".sourceignore",
                        "apps",
                        "apps/.sourceignore",
                        "apps/deep",
                        "apps/deep/secret.yaml",
                        "infra",
                        "infra/a.yaml",
                        "infra/b.yaml",
                        "keep.md",
                        "logo.png",
                        "secret.yaml",
                    ]
                ),
                Some("/infra/b.yaml\n") => {
                    assert!(names.contains(&"infra/a.yaml") && !names.contains(&"infra/b.yaml"));
                }
                Some("/*\n") => assert!(names.is_empty(), "{names:?}"),
                Some(_) => assert_eq!(
                    names,
                    vec!["apps", "apps/.sourceignore", "apps/deep", "apps/deep/secret.yaml"]
                ),
            }
        }
    }

    #[test]
    fn gitattributes_and_empty_trees_keep_the_two_paths_equal() {
        // Attributes may convert contents on checkout: the worktree is archived then.
        let repo = repository(&[".gitattributes=*.txt eol=crlf\n", "a.txt=one\ntwo\n"]);
        let (tree, checkout, entries) = both_paths(repo.path(), None, false);
        assert_eq!(tree, checkout);
        assert_eq!(names(&entries), vec!["a.txt"]);

        let empty = repository(&[]);
        let (tree, checkout, entries) = both_paths(empty.path(), None, true);
        assert_eq!(tree, checkout);
        assert!(entries.is_empty());
    }
}
