//! The OCIRepository reconcile: credentials → reference resolution (tag, semver, digest) →
//! manifest digest check (no download when the stored revision still matches) → layer selection
//! → extract or copy → reproducible archive → `status.artifact` → garbage collection.
//!
//! Revisions are Flux's: `<tag>@sha256:<manifest digest>` for tags and semver ranges, the bare
//! `sha256:<digest>` for `ref.digest`. The artifact file is `<manifest digest hex>.tar.gz`
//! (`.tgz` for `layerSelector.operation: copy`), its metadata the manifest's annotations.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sluice_api::meta::{Artifact, reason};
use sluice_api::source::{OCILayerSelector, OCIRepository, condition};
use sluice_artifact::{SourceIgnore, Storage, UnpackLimits};
use sluice_runtime::object::parse_go_duration;
use sluice_runtime::{Outcome, ReconcileError, Runtime, StatusWriter};

/// Kind name in storage paths and messages.
const KIND: &str = "OCIRepository";
/// Flux's `layerSelector.operation` values.
const EXTRACT: &str = "extract";
const COPY: &str = "copy";
/// Tags fetched per page when listing.
const TAG_PAGE: usize = 1000;

/// Why an OCIRepository reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A referenced Secret or ServiceAccount does not exist.
    #[error("{field} {what} '{namespace}/{name}' not found")]
    NotFound {
        /// The spec field naming it.
        field: &'static str,
        /// `Secret` or `ServiceAccount`.
        what: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A credentials Secret is unusable.
    #[error("{field} Secret '{namespace}/{name}': {message}")]
    InvalidSecret {
        /// The spec field naming it.
        field: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The spec is invalid; waits for a change.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// Signature verification was requested but is not supported by this build.
    #[error(
        "spec.verify: {0} signature verification is not supported by this build; remove spec.verify to pull unverified artifacts"
    )]
    VerifyUnsupported(String),
    /// Talking to the registry failed.
    #[error("{0}")]
    Pull(String),
    /// The selected layer could not be found, downloaded or unpacked.
    #[error("{0}")]
    Layer(String),
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
            Error::NotFound { .. } | Error::InvalidSecret { .. } => {
                condition::AUTHENTICATION_FAILED
            }
            Error::InvalidSpec(_) => condition::URL_INVALID,
            Error::VerifyUnsupported(_) => condition::VERIFICATION_ERROR,
            Error::Pull(_) => condition::OCI_ARTIFACT_PULL_FAILED,
            Error::Layer(_) => condition::OCI_ARTIFACT_LAYER_OPERATION_FAILED,
            Error::Storage(_) | Error::Ignore(_) | Error::Task(_) => {
                condition::ARCHIVE_OPERATION_FAILED
            }
            Error::Kube { .. } | Error::Status(_) => reason::FAILED,
        }
    }

    fn is_stalled(&self) -> bool {
        matches!(self, Error::InvalidSpec(_) | Error::VerifyUnsupported(_))
    }
}

impl Error {
    /// The Flux source condition this failure sets (`FetchFailed` or `StorageOperationFailed`).
    fn condition_type(&self) -> Option<&'static str> {
        match self {
            Error::Status(_) | Error::Kube { .. } => None,
            Error::Storage(_) | Error::Ignore(_) | Error::Task(_) => {
                Some(condition::STORAGE_OPERATION_FAILED)
            }
            _ => Some(condition::FETCH_FAILED),
        }
    }
}

/// The context of the OCIRepository reconciler.
pub struct Reconciler {
    /// The shared runtime.
    pub runtime: Arc<Runtime>,
    /// The artifact storage.
    pub storage: Storage,
}

/// A Secret's data, or `None` when it does not exist.
pub(crate) async fn get_secret(
    runtime: &Runtime,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
    let api: Api<Secret> = Api::namespaced(runtime.client.clone(), namespace);
    let secret = api.get_opt(name).await.map_err(|err| err.to_string())?;
    Ok(secret.map(|s| s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()))
}

fn parse_duration(field: &str, raw: Option<&str>, default: Duration) -> Result<Duration, Error> {
    match raw {
        None => Ok(default),
        Some(raw) => parse_go_duration(raw)
            .map_err(|message| Error::InvalidSpec(format!("spec.{field} {raw:?}: {message}"))),
    }
}

/// `oci://host[:port]/repo/path` split into registry and repository.
pub fn parse_url(url: &str) -> Result<(String, String), Error> {
    let rest = url.strip_prefix("oci://").ok_or_else(|| {
        Error::InvalidSpec(format!(
            "spec.url {url:?} must start with oci://, e.g. oci://ghcr.io/org/app"
        ))
    })?;
    let (registry, repository) = rest.trim_end_matches('/').split_once('/').ok_or_else(|| {
        Error::InvalidSpec(format!(
            "spec.url {url:?} has no repository path after the registry host, e.g. oci://ghcr.io/org/app"
        ))
    })?;
    let valid_repository = !repository.is_empty()
        && repository.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
    if registry.is_empty()
        || !valid_repository
        || repository.contains('@')
        || repository.contains(':')
    {
        return Err(Error::InvalidSpec(format!(
            "spec.url {url:?} is not a valid OCI repository address: use lowercase path components, and put tags and digests in spec.ref"
        )));
    }
    Ok((registry.to_string(), repository.to_string()))
}

/// Registry credentials from a `kubernetes.io/dockerconfigjson` (or legacy `.dockercfg`)
/// Secret, for `registry`; `Ok(None)` when the Secret has no entry for it.
pub fn auth_from_docker_config(
    data: &BTreeMap<String, Vec<u8>>,
    registry: &str,
) -> Result<Option<RegistryAuth>, String> {
    let (raw, legacy) = match (data.get(".dockerconfigjson"), data.get(".dockercfg")) {
        (Some(raw), _) => (raw, false),
        (None, Some(raw)) => (raw, true),
        (None, None) => {
            return Err(
                "has no .dockerconfigjson key: create it with `kubectl create secret docker-registry`"
                    .into(),
            );
        }
    };
    let config: serde_json::Value = serde_json::from_slice(raw)
        .map_err(|err| format!("the docker config is not valid JSON: {err}"))?;
    let auths = if legacy { Some(&config) } else { config.get("auths") };
    let Some(auths) = auths.and_then(|a| a.as_object()) else {
        return Err("the docker config has no \"auths\" object".into());
    };
    for (host, entry) in auths {
        if normalize_registry_host(host) != normalize_registry_host(registry) {
            continue;
        }
        let username = entry.get("username").and_then(|v| v.as_str()).unwrap_or_default();
        let password = entry.get("password").and_then(|v| v.as_str()).unwrap_or_default();
        if !username.is_empty() || !password.is_empty() {
            return Ok(Some(RegistryAuth::Basic(username.into(), password.into())));
        }
        if let Some(token) = entry.get("registrytoken").and_then(|v| v.as_str()) {
            return Ok(Some(RegistryAuth::Bearer(token.into())));
        }
        if let Some(encoded) = entry.get("auth").and_then(|v| v.as_str()) {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| format!("the \"auth\" of {host} is not valid base64"))?;
            let decoded = String::from_utf8(decoded)
                .map_err(|_| format!("the \"auth\" of {host} is not UTF-8"))?;
            let (user, pass) = decoded
                .split_once(':')
                .ok_or_else(|| format!("the \"auth\" of {host} is not base64 of user:password"))?;
            return Ok(Some(RegistryAuth::Basic(user.into(), pass.into())));
        }
    }
    Ok(None)
}

/// A docker config key (`https://host/v1/`, `host`) reduced to its host, Docker Hub's aliases folded.
fn normalize_registry_host(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        _ => host,
    }
}

/// The highest tag matching `range` (after `filter`), as Flux picks it.
pub fn pick_semver_tag(
    tags: &[String],
    range: &str,
    filter: Option<&str>,
) -> Result<Option<String>, Error> {
    let constraints = sluice_semver::Constraints::parse(range).map_err(|err| {
        Error::InvalidSpec(format!("spec.ref.semver {range:?} is not a valid semver range: {err}"))
    })?;
    let filter = filter
        .map(|pattern| {
            regex::Regex::new(pattern).map_err(|err| {
                Error::InvalidSpec(format!(
                    "spec.ref.semverFilter {pattern:?} is not a valid regular expression: {err}"
                ))
            })
        })
        .transpose()?;
    let mut best: Option<(sluice_semver::Version, &String)> = None;
    for tag in tags {
        if filter.as_ref().is_some_and(|re| !re.is_match(tag)) {
            continue;
        }
        let Ok(version) = sluice_semver::Version::parse(tag) else { continue };
        if !constraints.check(&version) {
            continue;
        }
        if best.as_ref().is_none_or(|(current, _)| version.compare(current) > 0) {
            best = Some((version, tag));
        }
    }
    Ok(best.map(|(_, tag)| tag.clone()))
}

fn registry_error(what: &str, reference: &str, err: OciDistributionError) -> Error {
    let message = match &err {
        OciDistributionError::UnauthorizedError { .. } => {
            "401 Unauthorized: check the credentials in spec.secretRef".to_string()
        }
        OciDistributionError::AuthenticationFailure(detail) => {
            format!("authentication failed ({detail}): check the credentials in spec.secretRef")
        }
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .map(|e| format!("{:?}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        OciDistributionError::ServerError { code, message, .. } => {
            format!("HTTP {code}: {}", message.trim())
        }
        other => sluice_runtime::conditions::error_message(other),
    };
    Error::Pull(format!("{what} '{reference}': {message}"))
}

/// What the spec points at, resolved against the registry.
struct Resolved {
    /// The reference pinned to the manifest digest.
    reference: Reference,
    /// Flux's revision string.
    revision: String,
    /// `sha256:<hex>` of the manifest.
    digest: String,
}

/// Whether the content-affecting settings match those of the stored artifact.
fn settings_unchanged(obj: &OCIRepository) -> bool {
    obj.status.as_ref().is_some_and(|status| {
        status.observed_ignore == obj.spec.ignore
            && status.observed_layer_selector == obj.spec.layer_selector
    })
}

impl Reconciler {
    pub(crate) fn client(insecure: bool, registry: &str, timeout: Duration) -> Client {
        let protocol = if insecure {
            ClientProtocol::HttpsExcept(vec![registry.to_string()])
        } else {
            ClientProtocol::Https
        };
        Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(timeout),
            read_timeout: Some(timeout),
            ..ClientConfig::default()
        })
    }

    async fn credentials(
        &self,
        obj: &OCIRepository,
        registry: &str,
    ) -> Result<RegistryAuth, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        if let Some(reference) = &obj.spec.secret_ref {
            let data = get_secret(&self.runtime, &namespace, &reference.name)
                .await
                .map_err(|message| Error::Kube {
                    what: format!("Secret {namespace}/{}", reference.name),
                    message,
                })?
                .ok_or_else(|| Error::NotFound {
                    field: "spec.secretRef",
                    what: "Secret",
                    namespace: namespace.clone(),
                    name: reference.name.clone(),
                })?;
            let invalid = |message| Error::InvalidSecret {
                field: "spec.secretRef",
                namespace: namespace.clone(),
                name: reference.name.clone(),
                message,
            };
            return match auth_from_docker_config(&data, registry).map_err(invalid)? {
                Some(auth) => Ok(auth),
                None => Err(Error::InvalidSecret {
                    field: "spec.secretRef",
                    namespace: namespace.clone(),
                    name: reference.name.clone(),
                    message: format!("has no credentials for registry '{registry}' in its auths"),
                }),
            };
        }
        if let Some(account) = &obj.spec.service_account_name {
            let api: Api<ServiceAccount> = Api::namespaced(self.runtime.client.clone(), &namespace);
            let sa = api
                .get_opt(account)
                .await
                .map_err(|err| Error::Kube {
                    what: format!("ServiceAccount {namespace}/{account}"),
                    message: err.to_string(),
                })?
                .ok_or_else(|| Error::NotFound {
                    field: "spec.serviceAccountName",
                    what: "ServiceAccount",
                    namespace: namespace.clone(),
                    name: account.clone(),
                })?;
            for pull_secret in sa.image_pull_secrets.unwrap_or_default() {
                let name = pull_secret.name;
                let Some(data) =
                    get_secret(&self.runtime, &namespace, &name).await.map_err(|message| {
                        Error::Kube { what: format!("Secret {namespace}/{name}"), message }
                    })?
                else {
                    continue;
                };
                if let Ok(Some(auth)) = auth_from_docker_config(&data, registry) {
                    return Ok(auth);
                }
            }
        }
        Ok(RegistryAuth::Anonymous)
    }

    async fn resolve(
        &self,
        obj: &OCIRepository,
        client: &Client,
        auth: &RegistryAuth,
        registry: &str,
        repository: &str,
    ) -> Result<Resolved, Error> {
        let reference = obj.spec.reference.clone().unwrap_or_default();
        let url = &obj.spec.url;
        if let Some(digest) = reference.digest.as_deref().filter(|d| !d.is_empty()) {
            let valid = digest
                .strip_prefix("sha256:")
                .is_some_and(|hex| hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()));
            if !valid {
                return Err(Error::InvalidSpec(format!(
                    "spec.ref.digest {digest:?} is not a sha256 digest (sha256:<64 hex>)"
                )));
            }
            let pinned = Reference::with_digest(registry.into(), repository.into(), digest.into());
            let found = client.fetch_manifest_digest(&pinned, auth).await.map_err(|err| {
                registry_error("resolving digest", &format!("{url}@{digest}"), err)
            })?;
            return Ok(Resolved { reference: pinned, revision: found.clone(), digest: found });
        }
        let tag = match reference.semver.as_deref().filter(|s| !s.is_empty()) {
            Some(range) => {
                let tags = Self::list_tags(client, auth, registry, repository, url).await?;
                pick_semver_tag(&tags, range, reference.semver_filter.as_deref())?.ok_or_else(
                    || {
                        let filter = reference
                            .semver_filter
                            .as_deref()
                            .map(|f| format!(" and filter '{f}'"))
                            .unwrap_or_default();
                        Error::Pull(format!(
                            "no tag of '{url}' matches semver range '{range}'{filter} ({} tags listed)",
                            tags.len()
                        ))
                    },
                )?
            }
            None => {
                reference.tag.clone().filter(|t| !t.is_empty()).unwrap_or_else(|| "latest".into())
            }
        };
        let tagged = Reference::with_tag(registry.into(), repository.into(), tag.clone());
        let digest =
            client.fetch_manifest_digest(&tagged, auth).await.map_err(|err| match err {
                OciDistributionError::RegistryError { ref envelope, .. }
                    if envelope.errors.iter().any(|e| {
                        matches!(
                            e.code,
                            oci_client::errors::OciErrorCode::ManifestUnknown
                                | oci_client::errors::OciErrorCode::NameUnknown
                        )
                    }) =>
                {
                    Error::Pull(format!(
                        "tag '{tag}' not found in '{url}': check spec.ref.tag or push the tag"
                    ))
                }
                other => registry_error("resolving tag", &format!("{url}:{tag}"), other),
            })?;
        let pinned = Reference::with_digest(registry.into(), repository.into(), digest.clone());
        Ok(Resolved { reference: pinned, revision: format!("{tag}@{digest}"), digest })
    }

    pub(crate) async fn list_tags(
        client: &Client,
        auth: &RegistryAuth,
        registry: &str,
        repository: &str,
        url: &str,
    ) -> Result<Vec<String>, Error> {
        let image = Reference::with_tag(registry.into(), repository.into(), "latest".into());
        let mut tags: Vec<String> = Vec::new();
        let mut last: Option<String> = None;
        // Registries that ignore `n`/`last` return everything at once; stop when a page adds nothing.
        for _ in 0..100 {
            let page = client
                .list_tags(&image, auth, Some(TAG_PAGE), last.as_deref())
                .await
                .map_err(|err| registry_error("listing tags of", url, err))?;
            let before = tags.len();
            for tag in page.tags {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            if tags.len() == before || tags.len() - before < TAG_PAGE {
                break;
            }
            last = tags.last().cloned();
        }
        Ok(tags)
    }

    async fn reconcile_artifact(
        &self,
        obj: &OCIRepository,
        status: &mut StatusWriter<'_, OCIRepository>,
    ) -> Result<(Artifact, bool), Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let spec = &obj.spec;
        let timeout = parse_duration("timeout", spec.timeout.as_deref(), Duration::from_secs(60))?;
        let (registry, repository) = parse_url(&spec.url)?;
        let selector = spec.layer_selector.clone().unwrap_or_default();
        let operation = selector.operation.clone().unwrap_or_else(|| EXTRACT.into());
        if operation != EXTRACT && operation != COPY {
            return Err(Error::InvalidSpec(format!(
                "spec.layerSelector.operation {operation:?} must be 'extract' or 'copy'"
            )));
        }
        if let Some(verify) = &spec.verify {
            return Err(Error::VerifyUnsupported(verify.provider.clone()));
        }
        if spec.provider.as_deref().is_some_and(|p| p != "generic") {
            return Err(Error::InvalidSpec(format!(
                "spec.provider {:?}: only 'generic' (credentials from spec.secretRef or spec.serviceAccountName) is supported by this build",
                spec.provider.as_deref().unwrap_or_default()
            )));
        }
        let auth = self.credentials(obj, &registry).await?;
        let client = Self::client(spec.insecure.unwrap_or(false), &registry, timeout);

        let resolved = tokio::time::timeout(
            timeout,
            self.resolve(obj, &client, &auth, &registry, &repository),
        )
        .await
        .map_err(|_| {
            Error::Pull(format!("resolving '{}' timed out after {timeout:?}", spec.url))
        })??;

        // The cheap path: same manifest, same content settings, file still in storage; judged
        // again on the API server's copy before rebuilding (the cached one may be stale).
        let stored = |view: &OCIRepository| {
            view.status.as_ref().and_then(|s| s.artifact.clone()).filter(|current| {
                current.revision == resolved.revision
                    && settings_unchanged(view)
                    && self.storage.exists(&current.path)
            })
        };
        let current = obj.status.as_ref().and_then(|s| s.artifact.clone());
        if let Some(current) = stored(obj) {
            return Ok((current, false));
        }
        if let Some(current) =
            crate::fresh(&self.runtime.client, obj).await.as_ref().and_then(stored)
        {
            return Ok((current, false));
        }

        status
            .progress(&format!("building artifact: new revision '{}'", resolved.revision))
            .await?;
        let (manifest, _) =
            tokio::time::timeout(timeout, client.pull_image_manifest(&resolved.reference, &auth))
                .await
                .map_err(|_| {
                    Error::Pull(format!("pulling the manifest of '{}' timed out", spec.url))
                })?
                .map_err(|err| registry_error("pulling manifest", &resolved.revision, err))?;
        let layer = select_layer(&manifest, &selector)?;

        let work = tempfile::Builder::new()
            .prefix("ocirepository-")
            .tempdir()
            .map_err(|err| Error::Task(err.to_string()))?;
        let blob_path = work.path().join("layer");
        let file = tokio::fs::File::create(&blob_path)
            .await
            .map_err(|err| Error::Task(format!("creating {}: {err}", blob_path.display())))?;
        tokio::time::timeout(timeout, client.pull_blob(&resolved.reference, &layer, file))
            .await
            .map_err(|_| Error::Layer(format!("downloading layer {} timed out", layer.digest)))?
            .map_err(|err| {
                Error::Layer(format!(
                    "downloading layer {}: {}",
                    layer.digest,
                    sluice_runtime::conditions::error_message(&err)
                ))
            })?;

        let hex = resolved.digest.trim_start_matches("sha256:").to_string();
        let storage = self.storage.clone();
        let ignore_spec = spec.ignore.clone();
        let work_path = work.path().to_path_buf();
        let stored = tokio::task::spawn_blocking(move || -> Result<_, Error> {
            if operation == COPY {
                let path = Storage::artifact_path(KIND, &namespace, &name, &format!("{hex}.tgz"));
                let _lock = storage.lock(&path).map_err(Error::Storage)?;
                let bytes = std::fs::read(&blob_path)
                    .map_err(|err| Error::Layer(format!("reading the downloaded layer: {err}")))?;
                return storage.store_bytes(&path, &bytes).map_err(Error::Storage);
            }
            let content = work_path.join("content");
            extract_layer(&blob_path, &content)?;
            let ignore = SourceIgnore::load(&content, ignore_spec.as_deref())
                .map_err(|err| Error::Ignore(err.to_string()))?;
            let path = Storage::artifact_path(KIND, &namespace, &name, &format!("{hex}.tar.gz"));
            let _lock = storage.lock(&path).map_err(Error::Storage)?;
            storage.archive(&path, &content, Some(&ignore)).map_err(Error::Storage)
        })
        .await
        .map_err(|err| Error::Task(err.to_string()))??;
        drop(work);

        let is_new = current.as_ref().is_none_or(|c| {
            c.digest.as_deref() != Some(stored.digest.as_str()) || c.revision != resolved.revision
        });
        let metadata = manifest.annotations.clone().filter(|a| !a.is_empty());
        let artifact = match &current {
            Some(current) if !is_new => current.clone(),
            _ => self.storage.artifact(&stored, resolved.revision.clone(), metadata),
        };
        Ok((artifact, is_new))
    }

    /// Reconciles an OCIRepository and writes its status.
    pub async fn reconcile(&self, obj: Arc<OCIRepository>) -> Result<Action, Error> {
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
            Ok((artifact, is_new)) => {
                status.set_field("artifact", &artifact);
                status.set_field("url", &artifact.url);
                status.set_field("observedIgnore", &obj.spec.ignore);
                status.set_field("observedLayerSelector", &obj.spec.layer_selector);
                let message = format!("stored artifact for digest '{}'", artifact.revision);
                let (runtime, storage) = (&self.runtime, &self.storage);
                let action = crate::finish_stored(
                    runtime, storage, KIND, &*obj, status, &artifact, is_new, message, interval,
                );
                Ok(action.await?)
            }
            Err(err) => {
                let failure = err.condition_type();
                Ok(crate::finish_failed(&self.runtime, status, &err, failure, interval).await?)
            }
        }
    }

    /// Removes the object's artifacts when it is deleted.
    pub async fn cleanup(&self, obj: Arc<OCIRepository>) -> Result<Action, Error> {
        let object_dir =
            Storage::object_dir(KIND, &obj.namespace().unwrap_or_default(), &obj.name_any());
        self.storage.remove_all(&object_dir).map_err(Error::Storage)?;
        Ok(Action::await_change())
    }
}

/// The layer `selector` picks: the first with its media type, or the first layer.
fn select_layer(
    manifest: &OciImageManifest,
    selector: &OCILayerSelector,
) -> Result<OciDescriptor, Error> {
    let wanted = selector.media_type.as_deref().filter(|m| !m.is_empty());
    let layer = match wanted {
        Some(media_type) => manifest.layers.iter().find(|l| l.media_type == media_type),
        None => manifest.layers.first(),
    };
    layer.cloned().ok_or_else(|| match wanted {
        Some(media_type) => Error::Layer(format!(
            "no layer with media type '{media_type}' in the artifact (layers: {}): check spec.layerSelector.mediaType",
            manifest.layers.iter().map(|l| l.media_type.as_str()).collect::<Vec<_>>().join(", ")
        )),
        None => Error::Layer("the artifact has no layers".into()),
    })
}

/// Unpacks a gzipped tarball layer safely into `dest`.
fn extract_layer(blob: &Path, dest: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dest)
        .map_err(|err| Error::Layer(format!("creating {}: {err}", dest.display())))?;
    let file = std::fs::File::open(blob)
        .map_err(|err| Error::Layer(format!("reading the downloaded layer: {err}")))?;
    sluice_artifact::unpack_tar_gz(std::io::BufReader::new(file), dest, UnpackLimits::default())
        .map_err(|err| {
            Error::Layer(format!(
                "extracting the layer (is it a tar+gzip? use layerSelector.operation: copy otherwise): {}",
                sluice_runtime::conditions::error_message(&err)
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_registry_and_repository() {
        assert_eq!(
            parse_url("oci://127.0.0.1:5000/org/app").unwrap(),
            ("127.0.0.1:5000".to_string(), "org/app".to_string())
        );
        assert_eq!(
            parse_url("oci://ghcr.io/stefanprodan/manifests/podinfo").unwrap(),
            ("ghcr.io".to_string(), "stefanprodan/manifests/podinfo".to_string())
        );
        for bad in ["https://ghcr.io/a", "oci://ghcr.io", "oci://ghcr.io/App", "oci://ghcr.io/a:v1"]
        {
            let err = parse_url(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidSpec(_)), "{bad}");
            assert!(err.is_stalled());
            assert!(err.to_string().contains("spec.url"), "{err}");
        }
    }

    #[test]
    fn docker_config_credentials_are_found_by_host() {
        let config = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
            "127.0.0.1:5000": {"username": "u", "password": "p"},
        }});
        let data = BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            serde_json::to_vec(&config).unwrap(),
        )]);
        assert_eq!(
            auth_from_docker_config(&data, "127.0.0.1:5000").unwrap(),
            Some(RegistryAuth::Basic("u".into(), "p".into()))
        );
        assert_eq!(
            auth_from_docker_config(&data, "docker.io").unwrap(),
            Some(RegistryAuth::Basic("hub".into(), "secret".into()))
        );
        assert_eq!(auth_from_docker_config(&data, "ghcr.io").unwrap(), None);
        let message = auth_from_docker_config(&BTreeMap::new(), "ghcr.io").unwrap_err();
        assert!(message.contains(".dockerconfigjson"), "{message}");
        // Secrets never appear in messages.
        let bad = BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            b"{\"auths\": {\"h\": {\"auth\": \"!!\"}}}".to_vec(),
        )]);
        let message = auth_from_docker_config(&bad, "h").unwrap_err();
        assert!(!message.contains("!!"), "{message}");
    }

    #[test]
    fn semver_picks_the_highest_matching_tag() {
        let tags: Vec<String> =
            ["latest", "v1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1", "2.0.0", "1.11.0-dev"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        assert_eq!(
            pick_semver_tag(&tags, ">=1.0.0 <2.0.0", None).unwrap().as_deref(),
            Some("1.10.0")
        );
        assert_eq!(pick_semver_tag(&tags, "*", None).unwrap().as_deref(), Some("2.0.0"));
        assert_eq!(pick_semver_tag(&tags, "~1.0", None).unwrap().as_deref(), Some("v1.0.0"));
        assert_eq!(
            pick_semver_tag(&tags, ">=1.0.0-0", Some("-dev$")).unwrap().as_deref(),
            Some("1.11.0-dev")
        );
        assert_eq!(pick_semver_tag(&tags, ">=3.0.0", None).unwrap(), None);
        assert!(matches!(pick_semver_tag(&tags, "not a range", None), Err(Error::InvalidSpec(_))));
        assert!(matches!(pick_semver_tag(&tags, "*", Some("(")), Err(Error::InvalidSpec(_))));
    }

    #[test]
    fn layers_are_selected_by_media_type() {
        let layer = |media_type: &str, digest: &str| OciDescriptor {
            media_type: media_type.into(),
            digest: digest.into(),
            ..OciDescriptor::default()
        };
        let manifest = OciImageManifest {
            layers: vec![
                layer("application/vnd.cncf.flux.content.v1.tar+gzip", "sha256:a"),
                layer("application/vnd.cncf.helm.chart.content.v1.tar+gzip", "sha256:b"),
            ],
            ..OciImageManifest::default()
        };
        let pick = |media_type: Option<&str>| {
            select_layer(
                &manifest,
                &OCILayerSelector { media_type: media_type.map(Into::into), operation: None },
            )
        };
        assert_eq!(pick(None).unwrap().digest, "sha256:a");
        assert_eq!(
            pick(Some("application/vnd.cncf.helm.chart.content.v1.tar+gzip")).unwrap().digest,
            "sha256:b"
        );
        let err = pick(Some("text/plain")).unwrap_err();
        assert_eq!(err.reason(), "OCIArtifactLayerOperationFailed");
        assert!(err.to_string().contains("spec.layerSelector.mediaType"), "{err}");
        assert!(select_layer(&OciImageManifest::default(), &OCILayerSelector::default()).is_err());
    }
}
