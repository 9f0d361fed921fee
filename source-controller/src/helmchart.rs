//! The HelmChart reconcile: a chart from a HelmRepository (pulled) or from a GitRepository or
//! Bucket artifact (packaged), stored as `<chart>-<version>.tgz` with revision = chart version.
//!
//! - HelmRepository source: the repository's stored index (its artifact) gives the versions of
//!   `spec.chart`; the highest one matching `spec.version` (default `*`) is downloaded with the
//!   repository's credentials. With `valuesFiles` (paths inside the chart) the chart is
//!   repackaged with the merged values.
//! - GitRepository/Bucket source: the source artifact is fetched and verified, the chart
//!   directory at `spec.chart` is read, `valuesFiles` (paths from the source root) are merged
//!   into its values.yaml and it is packaged reproducibly. With `reconcileStrategy: Revision`
//!   the version gets `+<first 12 hex of the source revision>`.
//!
//! As in Flux, an artifact with the same chart name and version is kept (no rebuild) unless
//! the HelmChart's generation changed. A new source artifact wakes the HelmCharts using it
//! ([`watch_sources`]).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use sluice_api::meta::{Artifact, reason};
use sluice_api::source::{Bucket, GitRepository, HelmChart, HelmRepository, condition};
use sluice_artifact::{Fetcher, Storage};
use sluice_helm::package::{PackageOptions, archive_files, merge_values_files, package_files};
use sluice_runtime::conditions::Status;
use sluice_runtime::object::FluxObject;
use sluice_runtime::{Outcome, ReconcileError, Runtime, StatusWriter};

use crate::helmrepository::{self, Limits, RepositoryClient};

/// Reason: the source object could not be read.
pub const SOURCE_UNAVAILABLE: &str = "SourceUnavailable";
/// Reason: the source has no artifact yet.
pub const NO_SOURCE_ARTIFACT: &str = "NoSourceArtifact";
/// Reason: the source kind is not supported.
pub const UNSUPPORTED_SOURCE_KIND: &str = "UnsupportedSourceKind";
/// Reason: `spec.chart` does not name a chart.
pub const INVALID_CHART_REFERENCE: &str = "InvalidChartReference";
/// Reason: pulling the chart from its repository failed.
pub const CHART_PULL_ERROR: &str = "ChartPullError";
/// Reason: merging the values files failed.
pub const VALUES_FILES_ERROR: &str = "ValuesFilesError";
/// Reason: packaging the chart failed.
pub const CHART_PACKAGE_ERROR: &str = "ChartPackageError";
/// Reason: the chart's dependencies could not be built.
pub const DEPENDENCY_BUILD_ERROR: &str = "DependencyBuildError";

/// Why a HelmChart reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is invalid.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The source kind is not supported.
    #[error("{0}")]
    Unsupported(String),
    /// The source object could not be read.
    #[error("failed to get source {kind} '{namespace}/{name}': {message}")]
    SourceUnavailable {
        /// Source kind.
        kind: String,
        /// Source namespace.
        namespace: String,
        /// Source name.
        name: String,
        /// Why.
        message: String,
    },
    /// The source has no artifact yet.
    #[error("no artifact available for {kind} source '{name}'")]
    NoSourceArtifact {
        /// Source kind.
        kind: String,
        /// Source name.
        name: String,
    },
    /// Building the chart failed.
    #[error("{summary}: {message}")]
    Build {
        /// Condition reason (`ChartPullError`, `ValuesFilesError`, …).
        reason: &'static str,
        /// Short summary (`chart pull error`, …).
        summary: &'static str,
        /// Details.
        message: String,
    },
    /// Talking to the Helm repository failed.
    #[error("chart pull error")]
    Repository(#[source] helmrepository::Error),
    /// Fetching the source artifact failed.
    #[error("failed to fetch source artifact")]
    Fetch(#[source] sluice_artifact::FetchError),
    /// Writing the artifact failed.
    #[error("storing artifact")]
    Storage(#[source] sluice_artifact::StorageError),
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
            Error::InvalidSpec(_) => INVALID_CHART_REFERENCE,
            Error::Unsupported(_) => UNSUPPORTED_SOURCE_KIND,
            Error::SourceUnavailable { .. } => SOURCE_UNAVAILABLE,
            Error::NoSourceArtifact { .. } => NO_SOURCE_ARTIFACT,
            Error::Build { reason, .. } => reason,
            Error::Repository(err) => match err.reason() {
                condition::AUTHENTICATION_FAILED => condition::AUTHENTICATION_FAILED,
                _ => CHART_PULL_ERROR,
            },
            Error::Fetch(_) => reason::ARTIFACT_FAILED,
            Error::Storage(_) | Error::Task(_) => condition::ARCHIVE_OPERATION_FAILED,
            Error::Status(_) => reason::FAILED,
        }
    }

    fn is_stalled(&self) -> bool {
        matches!(self, Error::InvalidSpec(_) | Error::Unsupported(_))
    }
}

/// One chart repository in an OCI registry (`oci://host/path/<chart>`), opened with the
/// credentials and `insecure`/`timeout` settings of a HelmRepository.
pub(crate) struct OciChart {
    client: oci_client::Client,
    auth: oci_client::secrets::RegistryAuth,
    registry: String,
    repository: String,
    url: String,
    timeout: std::time::Duration,
}

impl OciChart {
    /// Opens `url` with the settings of `repo`.
    pub(crate) async fn open(
        reconciler: &Reconciler,
        repo: &HelmRepository,
        url: &str,
    ) -> Result<OciChart, Error> {
        let (registry, repository) = crate::ocirepository::parse_url(url).map_err(|err| {
            Error::InvalidSpec(format!(
                "chart address '{url}' of HelmRepository '{}': {}",
                repo.name_any(),
                sluice_runtime::conditions::error_message(&err)
            ))
        })?;
        let timeout = match repo.spec.timeout.as_deref() {
            Some(raw) => sluice_runtime::object::parse_go_duration(raw).map_err(|err| {
                Error::InvalidSpec(format!(
                    "spec.timeout {raw:?} of HelmRepository '{}': {err}",
                    repo.name_any()
                ))
            })?,
            None => std::time::Duration::from_secs(60),
        };
        let auth = reconciler.oci_auth(repo, &registry).await?;
        let client = crate::ocirepository::Reconciler::client(
            repo.spec.insecure.unwrap_or(false),
            &registry,
            timeout,
        );
        Ok(OciChart { client, auth, registry, repository, url: url.to_string(), timeout })
    }

    fn timed_out(&self) -> Error {
        build_error(
            CHART_PULL_ERROR,
            format!("'{}' did not answer within {:?}", self.url, self.timeout),
        )
    }

    /// The highest version of `chart` matching `range` (exact versions too) and its tag.
    pub(crate) async fn select(&self, chart: &str, range: &str) -> Result<(String, String), Error> {
        use crate::ocirepository::Reconciler as Oci;
        let listing =
            Oci::list_tags(&self.client, &self.auth, &self.registry, &self.repository, &self.url);
        let tags = tokio::time::timeout(self.timeout, listing)
            .await
            .map_err(|_| self.timed_out())?
            .map_err(|err| {
                oci_pull_error(&self.url, &sluice_runtime::conditions::error_message(&err))
            })?;
        let versions: Vec<helmrepository::ChartVersion> = tags
            .iter()
            .map(|tag| helmrepository::ChartVersion {
                name: chart.to_string(),
                version: tag.replace('_', "+"),
                urls: vec![tag.clone()],
            })
            .collect();
        let selected = helmrepository::select_version(&versions, chart, range).map_err(|err| {
            build_error(
                CHART_PULL_ERROR,
                format!(
                    "failed to get chart version for remote reference: {err} in '{}'",
                    self.url
                ),
            )
        })?;
        Ok((selected.version.clone(), selected.urls[0].clone()))
    }

    /// The chart layer of `tag`, refused over `max_size` bytes.
    pub(crate) async fn pull(
        &self,
        tag: &str,
        version: &str,
        max_size: u64,
    ) -> Result<Vec<u8>, Error> {
        let reference = oci_client::Reference::with_tag(
            self.registry.clone(),
            self.repository.clone(),
            tag.to_string(),
        );
        let pull_error = |err: oci_client::errors::OciDistributionError| {
            oci_pull_error(&self.url, &sluice_runtime::conditions::error_message(&err))
        };
        let (manifest, _) = tokio::time::timeout(
            self.timeout,
            self.client.pull_image_manifest(&reference, &self.auth),
        )
        .await
        .map_err(|_| self.timed_out())?
        .map_err(pull_error)?;
        let layer = manifest
            .layers
            .iter()
            .find(|layer| HELM_CHART_LAYERS.contains(&layer.media_type.as_str()))
            .ok_or_else(|| {
                build_error(
                    CHART_PULL_ERROR,
                    format!(
                        "'{}:{tag}' is not a Helm chart: no layer of media type {}",
                        self.url, HELM_CHART_LAYERS[0]
                    ),
                )
            })?;
        if u64::try_from(layer.size).unwrap_or(u64::MAX) > max_size {
            return Err(build_error(
                CHART_PULL_ERROR,
                format!(
                    "'{}' version '{version}' is {} bytes, over the limit of {max_size} bytes (--helm-chart-max-size)",
                    self.url, layer.size
                ),
            ));
        }
        let mut data: Vec<u8> = Vec::new();
        tokio::time::timeout(self.timeout, self.client.pull_blob(&reference, layer, &mut data))
            .await
            .map_err(|_| self.timed_out())?
            .map_err(pull_error)?;
        Ok(data)
    }
}

/// Media types of a Helm chart's content layer in an OCI artifact (current and pre-3.8).
const HELM_CHART_LAYERS: [&str; 2] =
    ["application/vnd.cncf.helm.chart.content.v1.tar+gzip", "application/tar+gzip"];

/// A registry failure while pulling a chart; a 401 becomes AuthenticationFailed.
fn oci_pull_error(url: &str, message: &str) -> Error {
    if message.contains("401") || message.to_lowercase().contains("unauthorized") {
        return Error::Build {
            reason: condition::AUTHENTICATION_FAILED,
            summary: "authentication error",
            message: format!("pulling '{url}': {message}"),
        };
    }
    build_error(CHART_PULL_ERROR, format!("pulling '{url}': {message}"))
}

pub(crate) fn build_error(reason: &'static str, message: impl Into<String>) -> Error {
    let summary = match reason {
        CHART_PULL_ERROR => "chart pull error",
        VALUES_FILES_ERROR => "values files merge error",
        CHART_PACKAGE_ERROR => "chart package error",
        DEPENDENCY_BUILD_ERROR => "dependency build error",
        _ => "chart build error",
    };
    Error::Build { reason, summary, message: message.into() }
}

/// The context of the HelmChart reconciler.
pub struct Reconciler {
    /// The shared runtime.
    pub runtime: Arc<Runtime>,
    /// The artifact storage (the HelmRepository indexes are read from it).
    pub storage: Storage,
    /// Fetches GitRepository and Bucket artifacts.
    pub fetcher: Fetcher,
    /// Download size limits.
    pub limits: Limits,
}

/// The result of a build.
struct Built {
    artifact: Artifact,
    chart_name: String,
    source_revision: String,
    values_files: Vec<String>,
    /// `pulled` or `packaged`.
    verb: &'static str,
    is_new: bool,
}

/// What the previous reconcile left, for the "same name and version: keep it" rule.
struct Previous {
    artifact: Option<Artifact>,
    chart_name: Option<String>,
    values_files: Vec<String>,
    same_generation: bool,
}

impl Previous {
    fn of(obj: &HelmChart) -> Self {
        let status = obj.status.as_ref();
        Previous {
            artifact: status.and_then(|s| s.artifact.clone()),
            chart_name: status.and_then(|s| s.observed_chart_name.clone()),
            values_files: status.and_then(|s| s.observed_values_files.clone()).unwrap_or_default(),
            same_generation: obj.meta().generation == Some(obj.observed_generation()),
        }
    }

    /// The kept artifact when `name`/`version` equal the stored ones and nothing forces a build.
    fn reusable(&self, storage: &Storage, name: &str, version: &str) -> Option<Artifact> {
        let artifact = self.artifact.as_ref()?;
        (self.same_generation
            && self.chart_name.as_deref() == Some(name)
            && artifact.revision == version
            && storage.exists(&artifact.path))
        .then(|| artifact.clone())
    }
}

/// A clean relative path (no `..`, not absolute) from a spec field.
fn relative_path(field: &str, raw: &str) -> Result<PathBuf, Error> {
    let trimmed = raw.trim_start_matches("./");
    let path = Path::new(trimmed);
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            _ => {
                return Err(Error::InvalidSpec(format!(
                    "{field} {raw:?} must be a relative path inside the source, without '..'"
                )));
            }
        }
    }
    Ok(clean)
}

impl Reconciler {
    async fn build(&self, obj: &HelmChart) -> Result<Built, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let spec = &obj.spec;
        if spec.chart.trim().is_empty() {
            return Err(Error::InvalidSpec(
                "spec.chart is empty: set the chart name or path".into(),
            ));
        }
        let source = &spec.source_ref;
        let unavailable = |message: String| Error::SourceUnavailable {
            kind: source.kind.clone(),
            namespace: namespace.clone(),
            name: source.name.clone(),
            message,
        };
        let client = self.runtime.client.clone();
        match source.kind.as_str() {
            "HelmRepository" => {
                let api: Api<HelmRepository> = Api::namespaced(client, &namespace);
                let repo = api
                    .get_opt(&source.name)
                    .await
                    .map_err(|err| unavailable(err.to_string()))?
                    .ok_or_else(|| unavailable("not found".into()))?;
                self.build_from_repository(obj, &repo).await
            }
            "GitRepository" => {
                let api: Api<GitRepository> = Api::namespaced(client, &namespace);
                let repo = api
                    .get_opt(&source.name)
                    .await
                    .map_err(|err| unavailable(err.to_string()))?
                    .ok_or_else(|| unavailable("not found".into()))?;
                let artifact = repo.status.and_then(|s| s.artifact);
                self.build_from_tarball(obj, artifact).await
            }
            "Bucket" => {
                let api: Api<Bucket> = Api::namespaced(client, &namespace);
                let bucket = api
                    .get_opt(&source.name)
                    .await
                    .map_err(|err| unavailable(err.to_string()))?
                    .ok_or_else(|| unavailable("not found".into()))?;
                let artifact = bucket.status.and_then(|s| s.artifact);
                self.build_from_tarball(obj, artifact).await
            }
            other => Err(Error::Unsupported(format!(
                "unsupported source kind '{other}' in spec.sourceRef: use HelmRepository, GitRepository or Bucket"
            ))),
        }
    }

    async fn build_from_repository(
        &self,
        obj: &HelmChart,
        repo: &HelmRepository,
    ) -> Result<Built, Error> {
        let spec = &obj.spec;
        let chart = spec.chart.as_str();
        if helmrepository::is_oci(repo) {
            return self.build_from_oci(obj, repo).await;
        }
        let artifact = repo
            .status
            .as_ref()
            .and_then(|s| s.artifact.clone())
            .filter(|a| self.storage.exists(&a.path))
            .ok_or_else(|| Error::NoSourceArtifact {
                kind: "HelmRepository".into(),
                name: repo.name_any(),
            })?;
        let index_path = self.storage.root().join(&artifact.path);
        let index = tokio::fs::read(&index_path).await.map_err(|_| Error::NoSourceArtifact {
            kind: "HelmRepository".into(),
            name: repo.name_any(),
        })?;
        let range = spec.version.clone().unwrap_or_default();
        let chart_name = chart.to_string();
        let selected = tokio::task::spawn_blocking(move || {
            let versions = helmrepository::chart_versions(&index, &chart_name)?;
            helmrepository::select_version(&versions, &chart_name, &range).cloned()
        })
        .await
        .map_err(|err| Error::Task(err.to_string()))?
        .map_err(|message| {
            build_error(
                CHART_PULL_ERROR,
                format!(
                    "failed to get chart version for remote reference: {message} in HelmRepository '{}'",
                    repo.name_any()
                ),
            )
        })?;
        let values_files = spec.values_files.clone().unwrap_or_default();
        let verb = if values_files.is_empty() { "pulled" } else { "packaged" };
        let previous = Previous::of(obj);
        if let Some(artifact) = previous.reusable(&self.storage, chart, &selected.version) {
            return Ok(Built {
                artifact,
                chart_name: chart.to_string(),
                source_revision: artifact_revision(repo),
                values_files: previous.values_files,
                verb,
                is_new: false,
            });
        }
        let Some(reference) = selected.urls.first() else {
            return Err(build_error(
                CHART_PULL_ERROR,
                format!(
                    "chart '{chart}' version '{}' has no download URL in the index",
                    selected.version
                ),
            ));
        };
        let client = RepositoryClient::for_repository(&self.runtime, repo, self.limits)
            .await
            .map_err(Error::Repository)?;
        let url = client.resolve(reference).map_err(Error::Repository)?;
        let data = client.fetch_chart(url).await.map_err(Error::Repository)?;
        self.finish_pull(obj, repo, &selected.version, data).await
    }

    /// A chart from an OCI HelmRepository (`type: oci`): the repository `<url>/<chart>`, its
    /// version picked among the tags (Helm pushes `+` in versions as `_`), the chart layer
    /// pulled within `--helm-chart-max-size`.
    async fn build_from_oci(&self, obj: &HelmChart, repo: &HelmRepository) -> Result<Built, Error> {
        let chart = obj.spec.chart.as_str();
        let url = format!("{}/{chart}", repo.spec.url.trim_end_matches('/'));
        let oci = OciChart::open(self, repo, &url).await?;
        let range = obj.spec.version.clone().unwrap_or_default();
        let (version, tag) = oci.select(chart, &range).await?;
        let previous = Previous::of(obj);
        if let Some(artifact) = previous.reusable(&self.storage, chart, &version) {
            let verb = if obj.spec.values_files.as_ref().is_none_or(Vec::is_empty) {
                "pulled"
            } else {
                "packaged"
            };
            return Ok(Built {
                artifact,
                chart_name: chart.to_string(),
                source_revision: String::new(),
                values_files: previous.values_files,
                verb,
                is_new: false,
            });
        }
        let data = oci.pull(&tag, &version, self.limits.chart_max_size).await?;
        let mut built = self.finish_pull(obj, repo, &version, data).await?;
        built.source_revision = String::new();
        Ok(built)
    }

    /// Registry credentials of an OCI HelmRepository: a `kubernetes.io/dockerconfigjson`
    /// Secret, or `username` and `password` keys, from `spec.secretRef`.
    async fn oci_auth(
        &self,
        repo: &HelmRepository,
        registry: &str,
    ) -> Result<oci_client::secrets::RegistryAuth, Error> {
        use oci_client::secrets::RegistryAuth;
        let Some(reference) = &repo.spec.secret_ref else { return Ok(RegistryAuth::Anonymous) };
        let namespace = repo.namespace().unwrap_or_default();
        let secret = format!(
            "Secret '{namespace}/{}' (spec.secretRef of HelmRepository '{}')",
            reference.name,
            repo.name_any()
        );
        let auth_error = |message: String| Error::Build {
            reason: condition::AUTHENTICATION_FAILED,
            summary: "authentication error",
            message,
        };
        let data = crate::ocirepository::get_secret(&self.runtime, &namespace, &reference.name)
            .await
            .map_err(|err| auth_error(format!("reading {secret}: {err}")))?
            .ok_or_else(|| auth_error(format!("{secret} not found")))?;
        if data.contains_key(".dockerconfigjson") || data.contains_key(".dockercfg") {
            return crate::ocirepository::auth_from_docker_config(&data, registry)
                .map_err(|err| auth_error(format!("{secret} {err}")))?
                .ok_or_else(|| {
                    auth_error(format!("{secret} has no credentials for registry '{registry}'"))
                });
        }
        let text = |key: &str| {
            data.get(key).map(|v| String::from_utf8_lossy(v).trim().to_string()).unwrap_or_default()
        };
        match (text("username"), text("password")) {
            (user, pass) if !user.is_empty() && !pass.is_empty() => {
                Ok(RegistryAuth::Basic(user, pass))
            }
            _ => Err(auth_error(format!(
                "{secret} needs a .dockerconfigjson key or both 'username' and 'password'"
            ))),
        }
    }

    /// The common end of a pull from a HelmRepository: the chart is checked, `valuesFiles`
    /// are merged into a repackaged chart when set, and the result is stored.
    async fn finish_pull(
        &self,
        obj: &HelmChart,
        repo: &HelmRepository,
        version: &str,
        data: Vec<u8>,
    ) -> Result<Built, Error> {
        let spec = &obj.spec;
        let chart = spec.chart.as_str();
        let values_files = spec.values_files.clone().unwrap_or_default();
        let verb = if values_files.is_empty() { "pulled" } else { "packaged" };
        let ignore_missing = spec.ignore_missing_values_files.unwrap_or(false);
        let version = version.to_string();
        let expected = chart.to_string();
        let (data, merged_files) = tokio::task::spawn_blocking(move || -> Result<_, Error> {
            let loaded = sluice_helm::chart::load_archive(&data).map_err(|err| {
                build_error(CHART_PULL_ERROR, format!("downloaded chart is not a valid chart: {err}"))
            })?;
            if loaded.name() != expected {
                return Err(build_error(
                    CHART_PULL_ERROR,
                    format!("downloaded chart is named '{}', expected '{expected}'", loaded.name()),
                ));
            }
            if values_files.is_empty() {
                return Ok((data, Vec::new()));
            }
            let files = archive_files(&data)
                .map_err(|err| build_error(CHART_PULL_ERROR, err.to_string()))?;
            let mut found = Vec::new();
            for name in &values_files {
                let wanted = name.trim_start_matches("./");
                match files.iter().find(|f| f.name == wanted) {
                    Some(file) => found.push((name.clone(), file.data.clone())),
                    None if ignore_missing => {}
                    None => {
                        return Err(build_error(
                            VALUES_FILES_ERROR,
                            format!("no values file found at path '{name}' in chart '{expected}' (set ignoreMissingValuesFiles to skip it)"),
                        ));
                    }
                }
            }
            let merged =
                merge_values_files(found.iter().map(|(n, d)| (n.as_str(), d.as_slice())))
                    .map_err(|err| build_error(VALUES_FILES_ERROR, err.to_string()))?;
            let options = PackageOptions { values_yaml: Some(merged), version: None };
            let package = package_files(files, &options)
                .map_err(|err| build_error(CHART_PACKAGE_ERROR, err.to_string()))?;
            Ok((package.data, found.into_iter().map(|(n, _)| n).collect()))
        })
        .await
        .map_err(|err| Error::Task(err.to_string()))??;
        let artifact = self.store(obj, chart, &version, data).await?;
        Ok(Built {
            artifact,
            chart_name: chart.to_string(),
            source_revision: artifact_revision(repo),
            values_files: merged_files,
            verb,
            is_new: true,
        })
    }

    async fn build_from_tarball(
        &self,
        obj: &HelmChart,
        artifact: Option<Artifact>,
    ) -> Result<Built, Error> {
        let spec = &obj.spec;
        let source = &spec.source_ref;
        let Some(source_artifact) = artifact else {
            return Err(Error::NoSourceArtifact {
                kind: source.kind.clone(),
                name: source.name.clone(),
            });
        };
        let chart_path = relative_path("spec.chart", &spec.chart)?;
        let mut values_paths = Vec::new();
        for raw in spec.values_files.clone().unwrap_or_default() {
            values_paths.push((raw.clone(), relative_path("spec.valuesFiles", &raw)?));
        }
        let previous = Previous::of(obj);
        let observed_source =
            obj.status.as_ref().and_then(|s| s.observed_source_artifact_revision.as_deref());
        // Nothing moved: same source revision, same generation, artifact still stored.
        if previous.same_generation
            && observed_source == Some(source_artifact.revision.as_str())
            && let (Some(artifact), Some(name)) = (&previous.artifact, &previous.chart_name)
            && self.storage.exists(&artifact.path)
        {
            return Ok(Built {
                artifact: artifact.clone(),
                chart_name: name.clone(),
                source_revision: source_artifact.revision.clone(),
                values_files: previous.values_files.clone(),
                verb: "packaged",
                is_new: false,
            });
        }
        let work = tempfile::Builder::new()
            .prefix("helmchart-")
            .tempdir()
            .map_err(|err| Error::Task(format!("creating a work directory: {err}")))?;
        let digest = source_artifact.digest.clone().unwrap_or_default();
        self.fetcher
            .fetch(&source_artifact.url, &digest, work.path())
            .await
            .map_err(Error::Fetch)?;
        let version_metadata = (spec.reconcile_strategy.as_deref() == Some("Revision"))
            .then(|| revision_metadata(&source.kind, &source_artifact.revision));
        let ignore_missing = spec.ignore_missing_values_files.unwrap_or(false);
        let root = work.path().to_path_buf();
        let chart_dir = root.join(&chart_path);
        let raw_chart = spec.chart.clone();
        let read = tokio::task::spawn_blocking(move || -> Result<_, Error> {
            let dir = root.join(&chart_path);
            let files = if dir.is_dir() {
                sluice_helm::package::read_dir_files(&dir)
                    .map_err(|err| build_error(CHART_PACKAGE_ERROR, err.to_string()))?
            } else if dir.is_file() {
                let data = std::fs::read(&dir)
                    .map_err(|err| build_error(CHART_PACKAGE_ERROR, err.to_string()))?;
                archive_files(&data)
                    .map_err(|err| build_error(CHART_PACKAGE_ERROR, err.to_string()))?
            } else {
                return Err(Error::InvalidSpec(format!(
                    "spec.chart: no chart directory or package at path '{raw_chart}' in the source artifact"
                )));
            };
            let mut found = Vec::new();
            for (raw, path) in &values_paths {
                match std::fs::read(root.join(path)) {
                    Ok(data) => found.push((raw.clone(), data)),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound && ignore_missing => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                        return Err(build_error(
                            VALUES_FILES_ERROR,
                            format!("no values file found at path '{raw}' in the source artifact (set ignoreMissingValuesFiles to skip it)"),
                        ));
                    }
                    Err(err) => {
                        return Err(build_error(VALUES_FILES_ERROR, format!("reading '{raw}': {err}")));
                    }
                }
            }
            let values_yaml = if values_paths.is_empty() {
                None
            } else {
                Some(
                    merge_values_files(found.iter().map(|(n, d)| (n.as_str(), d.as_slice())))
                        .map_err(|err| build_error(VALUES_FILES_ERROR, err.to_string()))?,
                )
            };
            // The version with the source revision as build metadata, when asked for.
            let version = match &version_metadata {
                None => None,
                Some(metadata) => {
                    let loaded = sluice_helm::chart::load_files(files.clone())
                        .map_err(|err| build_error(CHART_PACKAGE_ERROR, err.to_string()))?;
                    let base = loaded.version();
                    let core = base.split('+').next().unwrap_or_default().to_string();
                    Some(format!("{core}+{metadata}"))
                }
            };
            let missing = crate::helmdeps::missing(&files)?;
            let found = found.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
            Ok((files, PackageOptions { values_yaml, version }, found, missing))
        })
        .await
        .map_err(|err| Error::Task(err.to_string()))??;
        let (mut files, options, values_files, missing) = read;
        if !missing.is_empty() {
            let root = work.path();
            files.extend(crate::helmdeps::build(self, obj, root, &chart_dir, &missing).await?);
        }
        let package = tokio::task::spawn_blocking(move || package_files(files, &options))
            .await
            .map_err(|err| Error::Task(err.to_string()))?
            .map_err(|err| build_error(CHART_PACKAGE_ERROR, err.to_string()))?;
        if let Some(artifact) = previous.reusable(&self.storage, &package.name, &package.version) {
            return Ok(Built {
                artifact,
                chart_name: package.name,
                source_revision: source_artifact.revision,
                values_files: previous.values_files,
                verb: "packaged",
                is_new: false,
            });
        }
        let artifact = self.store(obj, &package.name, &package.version, package.data).await?;
        Ok(Built {
            artifact,
            chart_name: package.name,
            source_revision: source_artifact.revision,
            values_files,
            verb: "packaged",
            is_new: true,
        })
    }

    async fn store(
        &self,
        obj: &HelmChart,
        chart: &str,
        version: &str,
        data: Vec<u8>,
    ) -> Result<Artifact, Error> {
        let path = Storage::artifact_path(
            "HelmChart",
            &obj.namespace().unwrap_or_default(),
            &obj.name_any(),
            &format!("{chart}-{version}.tgz"),
        );
        let storage = self.storage.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let _lock = storage.lock(&path)?;
            storage.store_bytes(&path, &data)
        })
        .await
        .map_err(|err| Error::Task(err.to_string()))?
        .map_err(Error::Storage)?;
        Ok(self.storage.artifact(&stored, version, None))
    }

    /// Reconciles a HelmChart and writes its status.
    ///
    /// # Errors
    /// When the status cannot be written.
    pub async fn reconcile(&self, obj: Arc<HelmChart>) -> Result<Action, Error> {
        let mut status = StatusWriter::new(
            &*obj,
            self.runtime.client.clone(),
            self.runtime.controller,
            &self.runtime.events,
        );
        let interval = match obj.interval() {
            Ok(interval) => interval,
            Err(message) => {
                status.finish(&Outcome::from_error(&Error::InvalidSpec(message))).await?;
                return Ok(Action::await_change());
            }
        };
        match self.build(&obj).await {
            Ok(built) => {
                let artifact = built.artifact;
                status.set_field("artifact", &artifact);
                status.set_field("url", &artifact.url);
                status.set_field("observedChartName", &built.chart_name);
                status.set_field("observedSourceArtifactRevision", &built.source_revision);
                status.set_field(
                    "observedValuesFiles",
                    (!built.values_files.is_empty()).then_some(&built.values_files),
                );
                status.set_event_metadata("revision", &artifact.revision);
                if built.is_new {
                    let object_dir = Storage::object_dir(
                        "HelmChart",
                        &obj.namespace().unwrap_or_default(),
                        &obj.name_any(),
                    );
                    if let Err(err) = self.storage.garbage_collect(&object_dir, &artifact.path) {
                        tracing::warn!(helmchart = %obj.name_any(), error = %sluice_runtime::conditions::error_message(&err), "garbage collection failed");
                    }
                    tracing::info!(helmchart = %obj.name_any(), revision = %artifact.revision, "stored chart");
                }
                let (reason, verb) = match built.verb {
                    "pulled" => (condition::CHART_PULL_SUCCEEDED, "pulled"),
                    _ => (condition::CHART_PACKAGE_SUCCEEDED, "packaged"),
                };
                let message = format!(
                    "{verb} '{}' chart with version '{}'",
                    built.chart_name, artifact.revision
                );
                status.set_condition(
                    condition::ARTIFACT_IN_STORAGE,
                    Status::True,
                    reason,
                    &message,
                );
                for failed in [
                    condition::FETCH_FAILED,
                    condition::BUILD_FAILED,
                    condition::STORAGE_OPERATION_FAILED,
                ] {
                    status.remove_condition(failed);
                }
                status.finish(&Outcome::Ready { reason: reason.into(), message }).await?;
                Ok(self.runtime.next_action(interval))
            }
            Err(err) => {
                let stalled = err.is_stalled();
                let failed = match err {
                    Error::Build { .. } | Error::InvalidSpec(_) => condition::BUILD_FAILED,
                    Error::Storage(_) | Error::Task(_) => condition::STORAGE_OPERATION_FAILED,
                    _ => condition::FETCH_FAILED,
                };
                let message = sluice_runtime::conditions::error_message(&err);
                status.set_condition(failed, Status::True, err.reason(), &message);
                status.finish(&Outcome::from_error(&err)).await?;
                Ok(if stalled {
                    Action::await_change()
                } else {
                    self.runtime.next_action(interval)
                })
            }
        }
    }

    /// Removes the object's artifacts when it is deleted.
    ///
    /// # Errors
    /// When the storage directory cannot be removed.
    pub async fn cleanup(&self, obj: Arc<HelmChart>) -> Result<Action, Error> {
        let object_dir =
            Storage::object_dir("HelmChart", &obj.namespace().unwrap_or_default(), &obj.name_any());
        self.storage.remove_all(&object_dir).map_err(Error::Storage)?;
        Ok(Action::await_change())
    }
}

/// Refuses a chart whose declared dependencies are not vendored in `charts/`: this controller
/// does not download dependencies yet, and a package without them would fail to render.
fn artifact_revision(repo: &HelmRepository) -> String {
    repo.status
        .as_ref()
        .and_then(|s| s.artifact.as_ref())
        .map(|a| a.revision.clone())
        .unwrap_or_default()
}

/// The build metadata `reconcileStrategy: Revision` appends: the first 12 hex characters of
/// the commit (GitRepository, from `<ref>@sha1:<hex>`) or of the digest (Bucket).
pub fn revision_metadata(kind: &str, revision: &str) -> String {
    let hex = match kind {
        "GitRepository" => revision.rsplit(':').next().unwrap_or(revision),
        _ => revision.split_once(':').map_or(revision, |(_, hex)| hex),
    };
    hex.chars().filter(char::is_ascii_alphanumeric).take(12).collect()
}

/// The extra triggers of the HelmChart controller: a source (HelmRepository, GitRepository,
/// Bucket) with a new artifact revision wakes the HelmCharts that use it and have not built
/// from that revision yet.
pub fn watch_sources(
    runtime: Arc<Runtime>,
) -> impl FnOnce(Controller<HelmChart>) -> Controller<HelmChart> {
    move |controller| {
        let store = controller.store();
        let config = runtime.watcher_config();
        controller
            .watches(
                runtime.watched_api::<HelmRepository>(),
                config.clone(),
                charts_of(store.clone(), |s: &HelmRepository| s.status.as_ref()?.artifact.clone()),
            )
            .watches(
                runtime.watched_api::<GitRepository>(),
                config.clone(),
                charts_of(store.clone(), |s: &GitRepository| s.status.as_ref()?.artifact.clone()),
            )
            .watches(
                runtime.watched_api::<Bucket>(),
                config,
                charts_of(store, |s: &Bucket| s.status.as_ref()?.artifact.clone()),
            )
    }
}

fn charts_of<S>(
    store: Store<HelmChart>,
    artifact: fn(&S) -> Option<Artifact>,
) -> impl Fn(S) -> Vec<ObjectRef<HelmChart>> + Send + Sync + Clone + 'static
where
    S: kube::Resource<DynamicType = ()> + 'static,
{
    move |source: S| {
        let Some(revision) = artifact(&source).map(|a| a.revision) else { return Vec::new() };
        let kind = S::kind(&());
        let name = source.name_any();
        let namespace = source.namespace().unwrap_or_default();
        store
            .state()
            .into_iter()
            .filter(|chart| {
                chart.spec.source_ref.kind == kind
                    && chart.spec.source_ref.name == name
                    && chart.namespace().unwrap_or_default() == namespace
                    && chart
                        .status
                        .as_ref()
                        .and_then(|s| s.observed_source_artifact_revision.as_deref())
                        != Some(revision.as_str())
            })
            .map(|chart| ObjectRef::from_obj(&*chart))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_metadata_is_twelve_hex() {
        assert_eq!(
            revision_metadata(
                "GitRepository",
                "main@sha1:4e5cbb7b97d00a8039b8810b90b922f4256fd3bd"
            ),
            "4e5cbb7b97d0"
        );
        assert_eq!(
            revision_metadata("GitRepository", "sha1:4e5cbb7b97d00a8039b8810b90b922f4256fd3bd"),
            "4e5cbb7b97d0"
        );
        assert_eq!(revision_metadata("Bucket", "sha256:0123456789abcdef0123"), "0123456789ab");
    }

    #[test]
    fn spec_paths_stay_inside_the_source() {
        assert_eq!(
            relative_path("spec.chart", "./charts/app").unwrap(),
            PathBuf::from("charts/app")
        );
        assert!(relative_path("spec.chart", "../etc").is_err());
        assert!(relative_path("spec.chart", "/etc").is_err());
        let err = relative_path("spec.valuesFiles", "a/../../b").unwrap_err();
        assert!(err.to_string().contains("spec.valuesFiles"), "{err}");
    }

    #[test]
    fn only_unvendored_dependencies_are_built() {
        use sluice_helm::chart::ChartFile;
        let file = |name: &str, text: &str| ChartFile { name: name.into(), data: text.into() };
        let chart = "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- name: db\n  version: 1.x\n  repository: https://charts.example.com\n- name: db\n  alias: replica\n  version: 1.x\n  repository: https://charts.example.com\n";
        let missing = crate::helmdeps::missing(&[file("Chart.yaml", chart)]).unwrap();
        assert_eq!(missing.len(), 1, "one download for two aliases of one chart");
        assert_eq!((missing[0].name.as_str(), missing[0].version.as_str()), ("db", "1.x"));
        let vendored = [
            file("Chart.yaml", chart),
            file("charts/db/Chart.yaml", "apiVersion: v2\nname: db\nversion: 1.2.0\n"),
        ];
        assert!(crate::helmdeps::missing(&vendored).unwrap().is_empty());
    }

    #[test]
    fn errors_carry_flux_reasons() {
        let err = build_error(CHART_PULL_ERROR, "no 'x' chart with version matching '9' found");
        assert_eq!(err.reason(), "ChartPullError");
        assert_eq!(
            sluice_runtime::conditions::error_message(&err),
            "chart pull error: no 'x' chart with version matching '9' found"
        );
        assert!(!err.is_stalled());
        assert!(Error::InvalidSpec("x".into()).is_stalled());
        assert_eq!(
            Error::NoSourceArtifact { kind: "GitRepository".into(), name: "app".into() }.reason(),
            "NoSourceArtifact"
        );
    }
}
