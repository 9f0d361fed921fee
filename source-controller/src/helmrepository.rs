//! The HelmRepository reconcile: credentials → `GET <url>/index.yaml` (size-limited) → parse,
//! validate and stably sort the index → store it as `index-<hex>.yaml` → `status.artifact`.
//!
//! The stored index is the parsed index with its entries sorted (names in byte order, versions
//! newest first) written as JSON (a YAML subset), so the revision — `sha256:<hex>` of the
//! stored bytes, equal to the artifact digest — changes only when the repository's content
//! does, not when a server reorders its YAML. `type: oci` repositories are data only: they are
//! Ready and store no artifact (HelmCharts from them are not supported yet).
//!
//! [`RepositoryClient`] is shared with the HelmChart reconcile, which downloads chart packages
//! with the same credentials, TLS settings, timeout and `passCredentials` rule.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use serde_json::{Map, Value as Json};
use sluice_api::meta::{Artifact, reason};
use sluice_api::source::{HelmRepository, condition};
use sluice_artifact::Storage;
use sluice_runtime::object::{FluxObject, parse_go_duration};
use sluice_runtime::{Outcome, ReconcileError, Runtime, StatusWriter};

/// Flux's default `--helm-index-max-size`: 50 MiB.
pub const DEFAULT_INDEX_MAX_SIZE: u64 = 50 * 1024 * 1024;
/// Flux's default `--helm-chart-max-size`: 10 MiB.
pub const DEFAULT_CHART_MAX_SIZE: u64 = 10 * 1024 * 1024;

/// Size limits of Helm downloads.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest repository index accepted, in bytes.
    pub index_max_size: u64,
    /// Largest chart package accepted, in bytes.
    pub chart_max_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { index_max_size: DEFAULT_INDEX_MAX_SIZE, chart_max_size: DEFAULT_CHART_MAX_SIZE }
    }
}

/// Why a HelmRepository reconcile (or a download from a repository) failed.
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
    /// A referenced Secret lacks or has malformed keys.
    #[error("invalid {field} Secret '{name}': {message}")]
    InvalidSecret {
        /// The spec field naming it.
        field: &'static str,
        /// Its name.
        name: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The spec is invalid.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The URL is invalid.
    #[error("invalid spec.url {url:?}: {message}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// A download failed (connection, timeout or an HTTP error status).
    #[error("failed to fetch {what} from {url}: {message}")]
    Fetch {
        /// What was downloaded.
        what: &'static str,
        /// The URL (without credentials).
        url: String,
        /// Why.
        message: String,
    },
    /// A download was larger than its limit.
    #[error(
        "{what} from {url} exceeds the maximum size of {limit} bytes (raise --{flag} to accept it)"
    )]
    TooLarge {
        /// What was downloaded.
        what: &'static str,
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
        /// The flag setting the limit.
        flag: &'static str,
    },
    /// The index is not a valid Helm repository index.
    #[error("failed to load Helm repository index from {url}: {message}")]
    Index {
        /// The URL of the index.
        url: String,
        /// Why.
        message: String,
    },
    /// Writing the artifact failed.
    #[error("storing artifact")]
    Storage(#[source] sluice_artifact::StorageError),
    /// Reading from the API server failed.
    #[error("reading {what}: {message}")]
    Kube {
        /// What was read.
        what: String,
        /// The API server's message.
        message: String,
    },
    /// Writing the status failed.
    #[error("writing status")]
    Status(#[from] sluice_runtime::Error),
}

impl ReconcileError for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::SecretNotFound { .. } | Error::InvalidSecret { .. } => {
                condition::AUTHENTICATION_FAILED
            }
            Error::InvalidSpec(_) | Error::InvalidUrl { .. } => condition::URL_INVALID,
            Error::Index { .. } => condition::INDEXATION_FAILED,
            Error::Storage(_) => condition::ARCHIVE_OPERATION_FAILED,
            Error::Fetch { .. }
            | Error::TooLarge { .. }
            | Error::Kube { .. }
            | Error::Status(_) => reason::FAILED,
        }
    }

    fn is_stalled(&self) -> bool {
        matches!(self, Error::InvalidSpec(_) | Error::InvalidUrl { .. })
    }
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

/// An HTTP client for one Helm repository: its credentials, TLS settings and timeout.
#[derive(Clone)]
pub struct RepositoryClient {
    client: reqwest::Client,
    /// The repository URL, ending with `/`.
    base: reqwest::Url,
    basic_auth: Option<(String, String)>,
    pass_credentials: bool,
    limits: Limits,
}

/// The HTTP client of the repositories without TLS settings of their own, one per timeout.
///
/// Building a client loads and parses the system's CA certificates (tens of milliseconds of
/// CPU); per HelmChart reconcile that was most of source-controller's time with many charts.
/// Credentials are per request, so sharing the client shares nothing secret.
fn plain_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    static CLIENTS: std::sync::LazyLock<
        std::sync::Mutex<std::collections::HashMap<Duration, reqwest::Client>>,
    > = std::sync::LazyLock::new(Default::default);
    let mut clients = CLIENTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(client) = clients.get(&timeout) {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder().timeout(timeout).build()?;
    clients.insert(timeout, client.clone());
    Ok(client)
}

impl std::fmt::Debug for RepositoryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryClient")
            .field("base", &self.base.as_str())
            .field("basic_auth", &self.basic_auth.as_ref().map(|_| "<redacted>"))
            .field("pass_credentials", &self.pass_credentials)
            .finish_non_exhaustive()
    }
}

impl RepositoryClient {
    /// The client of `repo`, reading its Secrets.
    ///
    /// # Errors
    /// Invalid URL or timeout, missing or malformed Secrets.
    pub async fn for_repository(
        runtime: &Runtime,
        repo: &HelmRepository,
        limits: Limits,
    ) -> Result<RepositoryClient, Error> {
        let namespace = repo.namespace().unwrap_or_default();
        let spec = &repo.spec;
        let mut base = reqwest::Url::parse(&spec.url)
            .map_err(|err| Error::InvalidUrl { url: spec.url.clone(), message: err.to_string() })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::InvalidUrl {
                url: spec.url.clone(),
                message: format!(
                    "scheme {:?} is not supported for a HelmRepository of type default: use http or https",
                    base.scheme()
                ),
            });
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let timeout = match spec.timeout.as_deref() {
            None => Duration::from_secs(60),
            Some(raw) => parse_go_duration(raw).map_err(|message| {
                Error::InvalidSpec(format!("spec.timeout {raw:?}: {message}"))
            })?,
        };
        let mut builder = reqwest::Client::builder().timeout(timeout);
        // Whether the Secrets configure TLS; without, a shared client serves (see plain_client).
        let mut custom_tls = false;
        let mut basic_auth = None;
        if let Some(reference) = &spec.secret_ref {
            let field = "spec.secretRef";
            let data = secret_data(runtime, &namespace, &reference.name, field).await?;
            let text = |key: &str| {
                data.get(key).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
            };
            let (username, password) = (text("username"), text("password"));
            match (username.is_empty(), password.is_empty()) {
                (false, false) => basic_auth = Some((username, password)),
                (true, true) => {}
                _ => {
                    return Err(Error::InvalidSecret {
                        field,
                        name: reference.name.clone(),
                        message: "set both 'username' and 'password' for basic auth".into(),
                    });
                }
            }
            // The deprecated TLS keys in the auth Secret, used when there is no certSecretRef.
            if spec.cert_secret_ref.is_none() {
                custom_tls = true;
                builder = apply_tls(
                    builder,
                    &data,
                    field,
                    &reference.name,
                    "caFile",
                    "certFile",
                    "keyFile",
                )?;
            }
        }
        if let Some(reference) = &spec.cert_secret_ref {
            let field = "spec.certSecretRef";
            let data = secret_data(runtime, &namespace, &reference.name, field).await?;
            custom_tls = true;
            builder =
                apply_tls(builder, &data, field, &reference.name, "ca.crt", "tls.crt", "tls.key")?;
        }
        let client = if custom_tls { builder.build() } else { plain_client(timeout) };
        let client = client.map_err(|err| {
            Error::InvalidSpec(format!(
                "building the HTTP client: {}",
                sluice_runtime::conditions::error_message(&err)
            ))
        })?;
        Ok(RepositoryClient {
            client,
            base,
            basic_auth,
            pass_credentials: spec.pass_credentials.unwrap_or(false),
            limits,
        })
    }

    /// The URL of `reference` (absolute, or relative to the repository URL).
    ///
    /// # Errors
    /// When it is not a valid URL.
    pub fn resolve(&self, reference: &str) -> Result<reqwest::Url, Error> {
        self.base.join(reference).map_err(|err| Error::Fetch {
            what: "chart",
            url: reference.to_string(),
            message: format!("invalid chart URL in the index: {err}"),
        })
    }

    /// Downloads the repository index (`<url>/index.yaml`).
    ///
    /// # Errors
    /// Connection failures, error statuses and the index size limit.
    pub async fn fetch_index(&self) -> Result<(String, Vec<u8>), Error> {
        let url = self.resolve("index.yaml")?;
        let bytes = self
            .get(
                url.clone(),
                "Helm repository index",
                self.limits.index_max_size,
                "helm-index-max-size",
            )
            .await?;
        Ok((redact(&url), bytes))
    }

    /// Downloads a chart package from `url`.
    ///
    /// # Errors
    /// Connection failures, error statuses and the chart size limit.
    pub async fn fetch_chart(&self, url: reqwest::Url) -> Result<Vec<u8>, Error> {
        self.get(url, "chart", self.limits.chart_max_size, "helm-chart-max-size").await
    }

    async fn get(
        &self,
        url: reqwest::Url,
        what: &'static str,
        limit: u64,
        flag: &'static str,
    ) -> Result<Vec<u8>, Error> {
        let shown = redact(&url);
        let fetch_error = |message: String| Error::Fetch { what, url: shown.clone(), message };
        let mut request = self.client.get(url.clone());
        if let Some((username, password)) = &self.basic_auth
            && sends_credentials(&self.base, &url, self.pass_credentials)
        {
            request = request.basic_auth(username, Some(password));
        }
        let mut response = request
            .send()
            .await
            .map_err(|err| fetch_error(sluice_runtime::conditions::error_message(&err)))?;
        let status = response.status();
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 | 403 => ": check the credentials in spec.secretRef",
                404 => ": check spec.url",
                _ => "",
            };
            return Err(fetch_error(format!("{status}{hint}")));
        }
        let too_large = || Error::TooLarge { what, url: shown.clone(), limit, flag };
        if response.content_length().is_some_and(|length| length > limit) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| fetch_error(sluice_runtime::conditions::error_message(&err)))?
        {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Whether credentials go with a request to `url`: always to the repository's own origin
/// (scheme, host and port), elsewhere only with `passCredentials`.
pub fn sends_credentials(base: &reqwest::Url, url: &reqwest::Url, pass_credentials: bool) -> bool {
    pass_credentials
        || (url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default())
}

fn apply_tls(
    mut builder: reqwest::ClientBuilder,
    data: &BTreeMap<String, Vec<u8>>,
    field: &'static str,
    name: &str,
    ca_key: &str,
    cert_key: &str,
    key_key: &str,
) -> Result<reqwest::ClientBuilder, Error> {
    let invalid = |message: String| Error::InvalidSecret { field, name: name.to_string(), message };
    if let Some(ca) = data.get(ca_key) {
        let certificates = reqwest::Certificate::from_pem_bundle(ca)
            .map_err(|_| invalid(format!("'{ca_key}' is not a PEM certificate bundle")))?;
        if certificates.is_empty() {
            return Err(invalid(format!("'{ca_key}' contains no PEM certificate")));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    match (data.get(cert_key), data.get(key_key)) {
        (Some(cert), Some(key)) => {
            let mut pem = cert.clone();
            pem.push(b'\n');
            pem.extend_from_slice(key);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
                invalid(format!("'{cert_key}' and '{key_key}' are not a PEM certificate and key"))
            })?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => {
            return Err(invalid(format!(
                "set both '{cert_key}' and '{key_key}' for TLS client authentication"
            )));
        }
    }
    Ok(builder)
}

/// `url` without user info.
pub fn redact(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// One chart version of an index.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartVersion {
    /// The chart name.
    pub name: String,
    /// The version string.
    pub version: String,
    /// Download URLs (absolute or relative to the repository URL).
    pub urls: Vec<String>,
}

/// Parses, validates and normalises a repository index: returns the bytes to store.
///
/// # Errors
/// Invalid YAML, a missing `apiVersion`, and malformed `entries`.
pub fn normalize_index(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| "the index is not valid UTF-8".to_string())?;
    let parsed = sluice_helm::yaml::from_yaml(text).map_err(|err| err.to_string())?;
    let Json::Object(mut index) = parsed else {
        return Err("the index is not a YAML map".into());
    };
    if index.get("apiVersion").and_then(Json::as_str).is_none_or(str::is_empty) {
        return Err("no API version specified (apiVersion is missing)".into());
    }
    let entries = match index.remove("entries") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(entries)) => entries,
        Some(_) => return Err("'entries' is not a map of chart names to versions".into()),
    };
    let mut sorted = Map::new();
    let mut names: Vec<String> = entries.keys().cloned().collect();
    names.sort();
    let mut entries = entries;
    for name in names {
        let Some(Json::Array(versions)) = entries.remove(&name) else {
            return Err(format!("entries.{name} is not a list of chart versions"));
        };
        let mut versions: Vec<Json> = versions
            .into_iter()
            .filter(|v| {
                v.get("version").is_some_and(|x| !version_text(x).is_empty())
                    && v.get("name").is_some_and(Json::is_string)
            })
            .map(|mut v| {
                if let Some(x) = v.get("version").cloned() {
                    v["version"] = Json::String(version_text(&x));
                }
                v
            })
            .collect();
        versions.sort_by(|a, b| {
            let parse = |v: &Json| {
                sluice_semver::Version::parse(v["version"].as_str().unwrap_or_default()).ok()
            };
            match (parse(a), parse(b)) {
                (Some(a), Some(b)) => b.compare(&a).cmp(&0),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
        });
        sorted.insert(name, Json::Array(versions));
    }
    index.insert("entries".into(), Json::Object(sorted));
    let mut normalized = Json::Object(index);
    sort_keys(&mut normalized);
    serde_json::to_vec(&normalized).map_err(|err| err.to_string())
}

fn version_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Number(n) => sluice_helm::yaml::go_float_g(n.as_f64().unwrap_or(0.0)),
        _ => String::new(),
    }
}

fn sort_keys(value: &mut Json) {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<(String, Json)> = std::mem::take(map).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, mut inner) in entries {
                sort_keys(&mut inner);
                map.insert(key, inner);
            }
        }
        Json::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

/// The versions of `chart` in a normalised index, newest first.
///
/// # Errors
/// When the index cannot be read or has no entry named `chart`.
pub fn chart_versions(index: &[u8], chart: &str) -> Result<Vec<ChartVersion>, String> {
    let index: Json = serde_json::from_slice(index).map_err(|err| err.to_string())?;
    let Some(Json::Array(versions)) = index.get("entries").and_then(|e| e.get(chart)) else {
        return Err(format!("no chart named '{chart}' in the repository index"));
    };
    Ok(versions
        .iter()
        .map(|v| ChartVersion {
            name: chart.to_string(),
            version: v["version"].as_str().unwrap_or_default().to_string(),
            urls: match v.get("urls") {
                Some(Json::Array(urls)) => {
                    urls.iter().filter_map(|u| u.as_str().map(str::to_string)).collect()
                }
                _ => Vec::new(),
            },
        })
        .collect())
}

/// The highest version of `versions` matching the constraint `range` (`*` when empty), as
/// Helm picks it: an exact version string wins, then the newest match.
///
/// # Errors
/// An invalid constraint, or no version matching it.
pub fn select_version<'a>(
    versions: &'a [ChartVersion],
    chart: &str,
    range: &str,
) -> Result<&'a ChartVersion, String> {
    let range = if range.trim().is_empty() { "*" } else { range.trim() };
    if let Some(exact) = versions.iter().find(|v| v.version == range) {
        return Ok(exact);
    }
    let constraints = sluice_semver::Constraints::parse(range)
        .map_err(|err| format!("invalid version constraint '{range}': {err}"))?;
    let mut best: Option<(&ChartVersion, sluice_semver::Version)> = None;
    for candidate in versions {
        let Ok(version) = sluice_semver::Version::parse(&candidate.version) else { continue };
        if !constraints.check(&version) {
            continue;
        }
        if best.as_ref().is_none_or(|(_, current)| version.compare(current) > 0) {
            best = Some((candidate, version));
        }
    }
    best.map(|(chart, _)| chart)
        .ok_or_else(|| format!("no '{chart}' chart with version matching '{range}' found"))
}

/// The context of the HelmRepository reconciler.
pub struct Reconciler {
    /// The shared runtime.
    pub runtime: Arc<Runtime>,
    /// The artifact storage.
    pub storage: Storage,
    /// Download size limits.
    pub limits: Limits,
}

/// Whether a HelmRepository is of `type: oci`.
pub fn is_oci(repo: &HelmRepository) -> bool {
    repo.spec.type_.as_deref() == Some("oci")
}

impl Reconciler {
    async fn reconcile_artifact(&self, obj: &HelmRepository) -> Result<(Artifact, bool), Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let client = RepositoryClient::for_repository(&self.runtime, obj, self.limits).await?;
        let (url, raw) = client.fetch_index().await?;
        let normalized = tokio::task::spawn_blocking(move || normalize_index(&raw))
            .await
            .map_err(|err| Error::Index { url: url.clone(), message: err.to_string() })?
            .map_err(|message| Error::Index { url: url.clone(), message })?;
        let digest = sluice_artifact::sha256_digest(&normalized);
        let hex = digest.trim_start_matches("sha256:").to_string();
        // Already stored? Judged again on the API server's copy before rebuilding (the cached
        // one may predate the status the previous reconcile wrote).
        let stored = |view: &HelmRepository| {
            view.status
                .as_ref()
                .and_then(|s| s.artifact.clone())
                .filter(|current| current.revision == digest && self.storage.exists(&current.path))
        };
        if let Some(current) = stored(obj) {
            return Ok((current, false));
        }
        if let Some(current) =
            crate::fresh(&self.runtime.client, obj).await.as_ref().and_then(stored)
        {
            return Ok((current, false));
        }
        let path = Storage::artifact_path(
            "HelmRepository",
            &namespace,
            &name,
            &format!("index-{hex}.yaml"),
        );
        let storage = self.storage.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let _lock = storage.lock(&path)?;
            storage.store_bytes(&path, &normalized)
        })
        .await
        .map_err(|err| Error::Kube { what: "storage task".into(), message: err.to_string() })?
        .map_err(Error::Storage)?;
        Ok((self.storage.artifact(&stored, digest, None), true))
    }

    /// Reconciles a HelmRepository and writes its status.
    ///
    /// # Errors
    /// When the status cannot be written.
    pub async fn reconcile(&self, obj: Arc<HelmRepository>) -> Result<Action, Error> {
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
        if is_oci(&obj) {
            // Data only: HelmCharts read the URL and credentials; nothing is fetched or stored.
            status.set_field("artifact", Json::Null);
            status.set_field("url", Json::Null);
            let message = "Helm repository is ready".to_string();
            status.finish(&Outcome::Ready { reason: reason::SUCCEEDED.into(), message }).await?;
            return Ok(self.runtime.next_action(interval));
        }
        let Some(interval) = interval else {
            let err = Error::InvalidSpec(
                "spec.interval is required for a HelmRepository of type default, e.g. '10m'".into(),
            );
            status.finish(&Outcome::from_error(&err)).await?;
            return Ok(Action::await_change());
        };
        match self.reconcile_artifact(&obj).await {
            Ok((artifact, is_new)) => {
                status.set_field("artifact", &artifact);
                status.set_field("url", &artifact.url);
                let message = format!("stored artifact: revision '{}'", artifact.revision);
                let (runtime, storage) = (&self.runtime, &self.storage);
                let action = crate::finish_stored(
                    runtime,
                    storage,
                    "HelmRepository",
                    &*obj,
                    status,
                    &artifact,
                    is_new,
                    message,
                    interval,
                );
                Ok(action.await?)
            }
            Err(err) => {
                let failure = match err {
                    Error::Storage(_) => condition::STORAGE_OPERATION_FAILED,
                    _ => condition::FETCH_FAILED,
                };
                Ok(crate::finish_failed(&self.runtime, status, &err, Some(failure), interval)
                    .await?)
            }
        }
    }

    /// Removes the object's artifacts when it is deleted.
    ///
    /// # Errors
    /// When the storage directory cannot be removed.
    pub async fn cleanup(&self, obj: Arc<HelmRepository>) -> Result<Action, Error> {
        let object_dir = Storage::object_dir(
            "HelmRepository",
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

    const INDEX: &str = r#"apiVersion: v1
entries:
  zeta:
  - name: zeta
    version: 0.1.0
    urls: [zeta-0.1.0.tgz]
  demo:
  - name: demo
    version: 1.0.0
    urls: [charts/demo-1.0.0.tgz]
  - name: demo
    version: 1.10.0
    urls: [https://cdn.example.com/demo-1.10.0.tgz]
  - name: demo
    version: 2.0.0-rc.1
    urls: [demo-2.0.0-rc.1.tgz]
  - name: demo
    version: 1.2.0
    urls: [demo-1.2.0.tgz]
generated: "2026-01-01T00:00:00Z"
"#;

    #[test]
    fn normalizing_sorts_and_is_stable() {
        let normalized = normalize_index(INDEX.as_bytes()).unwrap();
        let versions = chart_versions(&normalized, "demo").unwrap();
        let order: Vec<_> = versions.iter().map(|v| v.version.as_str()).collect();
        assert_eq!(order, ["2.0.0-rc.1", "1.10.0", "1.2.0", "1.0.0"]);
        // The same content in another order stores the same bytes.
        let reordered = INDEX.replace(
            "  zeta:\n  - name: zeta\n    version: 0.1.0\n    urls: [zeta-0.1.0.tgz]\n",
            "",
        ) + "  zeta:\n  - name: zeta\n    version: 0.1.0\n    urls: [zeta-0.1.0.tgz]\n";
        let reordered = reordered.replace("generated: \"2026-01-01T00:00:00Z\"\n", "");
        let original = INDEX.replace("generated: \"2026-01-01T00:00:00Z\"\n", "");
        assert_eq!(
            normalize_index(original.as_bytes()).unwrap(),
            normalize_index(reordered.as_bytes()).unwrap()
        );
    }

    #[test]
    fn tls_secret_errors_name_the_keys_and_hide_the_data() {
        let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
            pairs.iter().map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec())).collect()
        };
        let apply = |pairs: &[(&str, &str)]| {
            apply_tls(
                reqwest::Client::builder(),
                &data(pairs),
                "spec.certSecretRef",
                "tls",
                "ca.crt",
                "tls.crt",
                "tls.key",
            )
            .map(|_| ())
        };
        apply(&[]).unwrap();
        let err = apply(&[("ca.crt", "not a certificate secret-material")]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("invalid spec.certSecretRef Secret 'tls'"), "{message}");
        assert!(message.contains("'ca.crt'") && !message.contains("secret-material"), "{message}");
        let err = apply(&[("tls.crt", "x")]).unwrap_err();
        assert!(err.to_string().contains("set both 'tls.crt' and 'tls.key'"), "{err}");
        assert_eq!(err.reason(), "AuthenticationFailed");
    }

    #[test]
    fn credentials_stay_with_the_repository_host() {
        let base = reqwest::Url::parse("https://charts.example.com/stable/").unwrap();
        let same = base.join("demo-1.0.0.tgz").unwrap();
        let elsewhere = reqwest::Url::parse("https://cdn.example.net/demo-1.0.0.tgz").unwrap();
        let other_port = reqwest::Url::parse("https://charts.example.com:8443/x.tgz").unwrap();
        assert!(sends_credentials(&base, &same, false));
        assert!(!sends_credentials(&base, &elsewhere, false));
        assert!(!sends_credentials(&base, &other_port, false));
        assert!(sends_credentials(&base, &elsewhere, true));
    }

    #[test]
    fn bad_indexes_are_named() {
        assert!(normalize_index(b"entries: {}\n").unwrap_err().contains("apiVersion"));
        assert!(
            normalize_index(b"apiVersion: v1\nentries: [1]\n").unwrap_err().contains("entries")
        );
        assert!(normalize_index(b"apiVersion: v1\nentries: {a: [\n").is_err());
    }

    #[test]
    fn versions_are_selected_as_helm_does() {
        let normalized = normalize_index(INDEX.as_bytes()).unwrap();
        let versions = chart_versions(&normalized, "demo").unwrap();
        let pick =
            |range: &str| select_version(&versions, "demo", range).map(|v| v.version.clone());
        assert_eq!(pick("").unwrap(), "1.10.0");
        assert_eq!(pick("*").unwrap(), "1.10.0");
        assert_eq!(pick("<1.5").unwrap(), "1.2.0");
        assert_eq!(pick("1.0.0").unwrap(), "1.0.0");
        assert_eq!(pick(">=2.0.0-0").unwrap(), "2.0.0-rc.1");
        assert_eq!(pick(">=3").unwrap_err(), "no 'demo' chart with version matching '>=3' found");
        assert!(pick("not a range").unwrap_err().contains("invalid version constraint"));
        assert!(chart_versions(&normalized, "nope").unwrap_err().contains("no chart named 'nope'"));
    }
}
