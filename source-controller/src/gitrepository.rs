//! The GitRepository reconcile: credentials → remote-head check → shallow checkout →
//! signature verification → reproducible archive → status.artifact → garbage collection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use sluice_api::meta::{Artifact, reason};
use sluice_api::source::{GitRepository, condition};
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
            Error::Git(err) => err.reason(),
            Error::Storage(_) | Error::Ignore(_) | Error::Task(_) => {
                condition::ARCHIVE_OPERATION_FAILED
            }
            Error::Kube { .. } | Error::Status(_) => reason::FAILED,
        }
    }

    fn is_stalled(&self) -> bool {
        match self {
            Error::InvalidSpec(_) => true,
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
    /// Whether the artifact changed in this reconcile.
    is_new: bool,
    commit_message: Option<String>,
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
        let current = obj.status.as_ref().and_then(|s| s.artifact.clone());
        let settings_unchanged = obj.status.as_ref().is_some_and(|s| {
            s.observed_ignore == spec.ignore
                && s.observed_recurse_submodules.unwrap_or(false)
                    == spec.recurse_submodules.unwrap_or(false)
                && s.observed_sparse_checkout == spec.sparse_checkout
        }) && spec.verify.is_none()
            && spec.include.is_none();

        let options = CheckoutOptions {
            shallow: true,
            recurse_submodules: spec.recurse_submodules.unwrap_or(false),
            timeout,
            sparse_paths: spec.sparse_checkout.clone().unwrap_or_default(),
            http,
        };

        // The cheap path: the remote ref still points at the stored revision, so no clone.
        if let Some(current) = &current
            && settings_unchanged
            && self.storage.exists(&current.path)
        {
            let (url, auth, reference, options) =
                (spec.url.clone(), auth.clone(), git_ref.clone(), options.clone());
            let remote = tokio::task::spawn_blocking(move || {
                sluice_git::remote_revision(&url, &auth, &reference, &options)
            })
            .await
            .map_err(|err| Error::Task(err.to_string()))?
            .map_err(Error::Git)?;
            if remote.is_some_and(|revision| revision.to_string() == current.revision) {
                return Ok(Stored {
                    artifact: current.clone(),
                    is_new: false,
                    commit_message: None,
                });
            }
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
        let url = spec.url.clone();
        let (commit, stored) = tokio::task::spawn_blocking(move || -> Result<_, Error> {
            let work = tempfile::Builder::new()
                .prefix("gitrepository-")
                .tempdir()
                .map_err(|err| Error::Task(err.to_string()))?;
            let checkout_dir = work.path().join("repo");
            let commit = sluice_git::checkout(&url, &auth, &git_ref, &checkout_dir, &options)
                .map_err(Error::Git)?;
            if let Some((mode, keys)) = &verify {
                commit.verify(*mode, keys).map_err(Error::Git)?;
            }
            let ignore = SourceIgnore::load(&checkout_dir, ignore_spec.as_deref())
                .map_err(|err| Error::Ignore(err.to_string()))?;
            let path = Storage::artifact_path(
                "GitRepository",
                &namespace,
                &name,
                &format!("{}.tar.gz", commit.sha),
            );
            let _lock = storage.lock(&path).map_err(Error::Storage)?;
            let stored =
                storage.archive(&path, &checkout_dir, Some(&ignore)).map_err(Error::Storage)?;
            Ok((commit, stored))
        })
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
        Ok(Stored { artifact, is_new, commit_message: Some(first_line) })
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
                if let Some(verify) = &obj.spec.verify {
                    status.set_field(
                        "sourceVerificationMode",
                        verify.mode.clone().unwrap_or_else(|| "HEAD".into()),
                    );
                }
                status.set_event_metadata("revision", &artifact.revision);
                if stored.is_new {
                    let object_dir = Storage::object_dir(
                        "GitRepository",
                        &obj.namespace().unwrap_or_default(),
                        &obj.name_any(),
                    );
                    if let Err(err) = self.storage.garbage_collect(&object_dir, &artifact.path) {
                        tracing::warn!(gitrepository = %obj.name_any(), error = %sluice_runtime::conditions::error_message(&err), "garbage collection failed");
                    }
                    if let Some(message) = &stored.commit_message {
                        tracing::info!(gitrepository = %obj.name_any(), revision = %artifact.revision, commit = %message, "stored artifact");
                    }
                }
                let message = format!("stored artifact for revision '{}'", artifact.revision);
                status
                    .finish(&Outcome::Ready { reason: reason::SUCCEEDED.into(), message })
                    .await?;
                Ok(self.runtime.next_action(Some(interval)))
            }
            Err(err) => {
                let stalled = err.is_stalled();
                status.finish(&Outcome::from_error(&err)).await?;
                Ok(if stalled {
                    Action::await_change()
                } else {
                    self.runtime.next_action(Some(interval))
                })
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
