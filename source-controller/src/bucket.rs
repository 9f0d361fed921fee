//! The Bucket reconcile: credentials → bucket check → `.sourceignore` + `spec.ignore` → object
//! index (key → etag) → revision → download (skipped when the revision is unchanged) →
//! reproducible archive → `status.artifact` → garbage collection.
//!
//! Providers `generic` and `aws` (static keys) speak S3 through signed requests built by
//! rusty-s3 and sent with reqwest. The revision is Flux's: `sha256:` of the lines
//! `<key> <etag>\n` of the kept objects in key order; the artifact is
//! `bucket/<namespace>/<name>/<revision hex>.tar.gz`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Credentials, S3Action, UrlStyle};
use sha2::Digest;
use sluice_api::meta::{Artifact, reason};
use sluice_api::source::{Bucket, condition};
use sluice_artifact::Storage;
use sluice_runtime::object::parse_go_duration;
use sluice_runtime::{Outcome, ReconcileError, Runtime, StatusWriter};

/// Kind name in storage paths and messages.
const KIND: &str = "Bucket";
/// The per-bucket ignore file, read from the bucket's root.
const IGNORE_FILE: &str = ".sourceignore";
/// Objects downloaded at once.
const CONCURRENT_FETCHES: usize = 8;
/// Lifetime of the presigned request URLs.
const SIGNATURE_TTL: Duration = Duration::from_secs(600);

/// Why a Bucket reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The referenced Secret does not exist.
    #[error("spec.secretRef Secret '{namespace}/{name}' not found")]
    SecretNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The credentials Secret is unusable.
    #[error("spec.secretRef Secret '{namespace}/{name}': {message}")]
    InvalidSecret {
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
    /// The provider is not supported by this build; waits for a change.
    #[error(
        "spec.provider '{0}' is not supported by this build: use 'generic' or 'aws' (S3 with static keys)"
    )]
    UnsupportedProvider(String),
    /// The bucket does not exist.
    #[error("bucket '{bucket}' not found at endpoint '{endpoint}': check spec.bucketName")]
    BucketNotFound {
        /// The bucket.
        bucket: String,
        /// The endpoint.
        endpoint: String,
    },
    /// An S3 operation failed.
    #[error("{0}")]
    Operation(String),
    /// Writing the artifact failed.
    #[error("storing artifact")]
    Storage(#[source] sluice_artifact::StorageError),
    /// Parsing ignore rules failed.
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
    /// A local file operation or task failed.
    #[error("{0}")]
    Task(String),
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
            Error::InvalidSpec(_) => condition::URL_INVALID,
            Error::UnsupportedProvider(_) => "InvalidProviderConfiguration",
            Error::BucketNotFound { .. } | Error::Operation(_) => {
                condition::BUCKET_OPERATION_FAILED
            }
            Error::Storage(_) | Error::Ignore(_) | Error::Task(_) => {
                condition::ARCHIVE_OPERATION_FAILED
            }
            Error::Kube { .. } | Error::Status(_) => reason::FAILED,
        }
    }

    fn is_stalled(&self) -> bool {
        matches!(self, Error::InvalidSpec(_) | Error::UnsupportedProvider(_))
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

/// The context of the Bucket reconciler.
pub struct Reconciler {
    /// The shared runtime.
    pub runtime: Arc<Runtime>,
    /// The artifact storage.
    pub storage: Storage,
}

fn parse_duration(field: &str, raw: Option<&str>, default: Duration) -> Result<Duration, Error> {
    match raw {
        None => Ok(default),
        Some(raw) => parse_go_duration(raw)
            .map_err(|message| Error::InvalidSpec(format!("spec.{field} {raw:?}: {message}"))),
    }
}

/// The S3 endpoint URL: `host[:port]` gets `http://` when `insecure`, else `https://`.
pub fn endpoint_url(endpoint: &str, insecure: bool) -> Result<reqwest::Url, Error> {
    let with_scheme = if endpoint.contains("://") {
        endpoint.to_string()
    } else if insecure {
        format!("http://{endpoint}")
    } else {
        format!("https://{endpoint}")
    };
    let url = reqwest::Url::parse(&with_scheme).map_err(|err| {
        Error::InvalidSpec(format!(
            "spec.endpoint {endpoint:?} is not a host[:port] address: {err}"
        ))
    })?;
    if url.scheme() == "http" && !insecure {
        return Err(Error::InvalidSpec(format!(
            "spec.endpoint {endpoint:?} is plain HTTP: set spec.insecure: true to allow it"
        )));
    }
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::InvalidSpec(format!(
            "spec.endpoint {endpoint:?} must be host[:port] (or an http(s) URL)"
        )));
    }
    Ok(url)
}

/// Flux's Bucket revision: `sha256:` of `<key> <etag>\n` per object, keys sorted.
pub fn index_revision(index: &BTreeMap<String, String>) -> String {
    let mut hasher = sha2::Sha256::new();
    for (key, etag) in index {
        hasher.update(key.as_bytes());
        hasher.update(b" ");
        hasher.update(etag.as_bytes());
        hasher.update(b"\n");
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// The ignore matcher of a bucket: the root `.sourceignore`, then `spec.ignore` (which wins).
/// Unlike Git sources, no default exclusions apply (Flux's Bucket behaviour).
pub fn ignore_matcher(
    sourceignore: Option<&str>,
    spec_ignore: Option<&str>,
) -> Result<Gitignore, Error> {
    let mut builder = GitignoreBuilder::new("/");
    for text in [sourceignore, spec_ignore].into_iter().flatten() {
        for line in text.lines() {
            builder
                .add_line(None, line)
                .map_err(|err| Error::Ignore(format!("pattern {line:?}: {err}")))?;
        }
    }
    builder.build().map_err(|err| Error::Ignore(err.to_string()))
}

/// Whether an object key is kept in the index.
pub fn keep_key(matcher: &Gitignore, key: &str) -> bool {
    if key.ends_with('/') || key == IGNORE_FILE {
        return false;
    }
    let path = Path::new("/").join(key);
    !matcher.matched_path_or_any_parents(&path, false).is_ignore()
}

/// A key as a relative path inside the download directory, or `None` when it would escape it.
fn safe_relative_path(key: &str) -> Option<PathBuf> {
    let path = Path::new(key);
    let normal = path.components().all(|c| matches!(c, Component::Normal(_)));
    (normal && !key.is_empty()).then(|| path.to_path_buf())
}

/// The `<Code>` and `<Message>` of an S3 XML error body.
fn s3_error(body: &str) -> (String, String) {
    let element = |name: &str| {
        body.split_once(&format!("<{name}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
            .map(|(value, _)| value.trim().to_string())
            .unwrap_or_default()
    };
    (element("Code"), element("Message"))
}

/// A connected S3 bucket.
struct S3 {
    http: reqwest::Client,
    bucket: rusty_s3::Bucket,
    credentials: Option<Credentials>,
    endpoint: String,
}

impl S3 {
    /// Fails with a clear message for a non-success response.
    async fn check(
        &self,
        response: reqwest::Response,
        what: &str,
    ) -> Result<reqwest::Response, Error> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let (code, message) = s3_error(&body);
        let bucket = self.bucket.name().to_string();
        if code == "NoSuchBucket" || (status == reqwest::StatusCode::NOT_FOUND && code.is_empty()) {
            return Err(Error::BucketNotFound { bucket, endpoint: self.endpoint.clone() });
        }
        let hint = match status.as_u16() {
            401 | 403 => ": check the accesskey and secretkey in spec.secretRef",
            _ => "",
        };
        let detail = match (code.is_empty(), message.is_empty()) {
            (false, false) => format!("{code}: {message}"),
            (false, true) => code,
            _ => status.to_string(),
        };
        Err(Error::Operation(format!("{what} of bucket '{bucket}' failed: {detail}{hint}")))
    }

    async fn send(&self, url: reqwest::Url, what: &str) -> Result<reqwest::Response, Error> {
        // Never put the URL in messages: presigned URLs carry the access key and signature.
        let response = self.http.get(url).send().await.map_err(|err| {
            let kind = if err.is_timeout() {
                "timed out"
            } else if err.is_connect() {
                "could not connect"
            } else {
                "failed"
            };
            Error::Operation(format!(
                "{what} of bucket '{}' at '{}' {kind}",
                self.bucket.name(),
                self.endpoint
            ))
        })?;
        self.check(response, what).await
    }

    async fn exists(&self) -> Result<(), Error> {
        let url = self.bucket.head_bucket(self.credentials.as_ref()).sign(SIGNATURE_TTL);
        let response = self.http.head(url).send().await.map_err(|_| {
            Error::Operation(format!(
                "checking bucket '{}' at '{}': could not connect",
                self.bucket.name(),
                self.endpoint
            ))
        })?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(Error::BucketNotFound {
                bucket: self.bucket.name().into(),
                endpoint: self.endpoint.clone(),
            });
        }
        self.check(response, "checking the existence").await.map(|_| ())
    }

    /// An object's bytes, or `None` when it does not exist.
    async fn get_optional(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let url = self.bucket.get_object(self.credentials.as_ref(), key).sign(SIGNATURE_TTL);
        let response = self.http.get(url).send().await.map_err(|_| {
            Error::Operation(format!("getting '{key}' from bucket '{}' failed", self.bucket.name()))
        })?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.check(response, &format!("getting '{key}'")).await?;
        let bytes = response.bytes().await.map_err(|_| {
            Error::Operation(format!("reading '{key}' from bucket '{}' failed", self.bucket.name()))
        })?;
        Ok(Some(bytes.to_vec()))
    }

    /// Downloads `key` into `dest`; returns its etag, or `None` when it vanished.
    async fn download(&self, key: &str, dest: &Path) -> Result<Option<String>, Error> {
        let url = self.bucket.get_object(self.credentials.as_ref(), key).sign(SIGNATURE_TTL);
        let response = self.http.get(url).send().await.map_err(|_| {
            Error::Operation(format!("getting '{key}' from bucket '{}' failed", self.bucket.name()))
        })?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.check(response, &format!("getting '{key}'")).await?;
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_string());
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|err| Error::Task(format!("creating {}: {err}", parent.display())))?;
        }
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|err| Error::Task(format!("creating {}: {err}", dest.display())))?;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| {
                Error::Operation(format!(
                    "reading '{key}' from bucket '{}' failed",
                    self.bucket.name()
                ))
            })?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(|err| Error::Task(format!("writing {}: {err}", dest.display())))?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(|err| Error::Task(format!("writing {}: {err}", dest.display())))?;
        Ok(etag)
    }

    /// Every key under `prefix` with its etag (quotes removed).
    async fn list(&self, prefix: Option<&str>) -> Result<Vec<(String, String)>, Error> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = self.bucket.list_objects_v2(self.credentials.as_ref());
            if let Some(prefix) = prefix.filter(|p| !p.is_empty()) {
                action.with_prefix(prefix);
            }
            if let Some(token) = &token {
                action.with_continuation_token(token.as_str());
            }
            let url = action.sign(SIGNATURE_TTL);
            let response = self.send(url, "listing the objects").await?;
            let body = response.text().await.map_err(|_| {
                Error::Operation(format!("reading the listing of bucket '{}'", self.bucket.name()))
            })?;
            let page = ListObjectsV2::parse_response(&body).map_err(|err| {
                Error::Operation(format!(
                    "the listing of bucket '{}' is not valid S3 XML: {err}",
                    self.bucket.name()
                ))
            })?;
            for object in page.contents {
                let etag = object.etag.unwrap_or_default().trim_matches('"').to_string();
                objects.push((object.key, etag));
            }
            match page.next_continuation_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => break,
            }
        }
        Ok(objects)
    }
}

impl Reconciler {
    async fn connect(&self, obj: &Bucket, timeout: Duration) -> Result<S3, Error> {
        let spec = &obj.spec;
        let provider = spec.provider.as_deref().unwrap_or("generic");
        if !matches!(provider, "generic" | "aws") {
            return Err(Error::UnsupportedProvider(provider.into()));
        }
        if spec.sts.is_some() {
            return Err(Error::InvalidSpec(
                "spec.sts is not supported by this build: use static keys in spec.secretRef".into(),
            ));
        }
        if spec.bucket_name.is_empty() {
            return Err(Error::InvalidSpec("spec.bucketName is empty".into()));
        }
        let insecure = spec.insecure.unwrap_or(false);
        let endpoint = endpoint_url(&spec.endpoint, insecure)?;
        let namespace = obj.namespace().unwrap_or_default();
        let credentials = match &spec.secret_ref {
            Some(reference) => {
                let data =
                    crate::ocirepository::get_secret(&self.runtime, &namespace, &reference.name)
                        .await
                        .map_err(|message| Error::Kube {
                            what: format!("Secret {namespace}/{}", reference.name),
                            message,
                        })?
                        .ok_or_else(|| Error::SecretNotFound {
                            namespace: namespace.clone(),
                            name: reference.name.clone(),
                        })?;
                let value = |key: &str| {
                    data.get(key)
                        .map(|v| String::from_utf8_lossy(v).trim().to_string())
                        .filter(|v| !v.is_empty())
                };
                match (value("accesskey"), value("secretkey")) {
                    (Some(access), Some(secret)) => Some(Credentials::new(access, secret)),
                    _ => {
                        return Err(Error::InvalidSecret {
                            namespace,
                            name: reference.name.clone(),
                            message: "needs both 'accesskey' and 'secretkey' keys".into(),
                        });
                    }
                }
            }
            None => None,
        };
        let host = endpoint.host_str().unwrap_or_default().to_string();
        let style =
            if host.ends_with("amazonaws.com") { UrlStyle::VirtualHost } else { UrlStyle::Path };
        let region =
            spec.region.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| "us-east-1".into());
        let bucket = rusty_s3::Bucket::new(endpoint, style, spec.bucket_name.clone(), region)
            .map_err(|err| {
                Error::InvalidSpec(format!(
                    "spec.bucketName {:?} with spec.endpoint {:?}: {err}",
                    spec.bucket_name, spec.endpoint
                ))
            })?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|err| Error::Task(format!("building the HTTP client: {err}")))?;
        Ok(S3 { http, bucket, credentials, endpoint: spec.endpoint.clone() })
    }

    async fn reconcile_artifact(
        &self,
        obj: &Bucket,
        status: &mut StatusWriter<'_, Bucket>,
    ) -> Result<(Artifact, bool), Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let spec = &obj.spec;
        let timeout = parse_duration("timeout", spec.timeout.as_deref(), Duration::from_secs(60))?;
        let s3 = self.connect(obj, timeout).await?;
        s3.exists().await?;

        let work = tempfile::Builder::new()
            .prefix("bucket-")
            .tempdir()
            .map_err(|err| Error::Task(err.to_string()))?;
        let content = work.path().join("content");
        std::fs::create_dir_all(&content)
            .map_err(|err| Error::Task(format!("creating {}: {err}", content.display())))?;
        let sourceignore = s3.get_optional(IGNORE_FILE).await?;
        let ignore_text = sourceignore.as_deref().map(String::from_utf8_lossy);
        let matcher = ignore_matcher(ignore_text.as_deref(), spec.ignore.as_deref())?;
        let mut index: BTreeMap<String, String> = s3
            .list(spec.prefix.as_deref())
            .await?
            .into_iter()
            .filter(|(key, _)| keep_key(&matcher, key))
            .collect();
        let revision = index_revision(&index);

        // The cheap path: same objects and etags, same ignore rules, file still in storage;
        // judged again on the API server's copy before rebuilding (the cached one may be stale).
        let stored = |view: &Bucket| {
            let status = view.status.as_ref()?;
            status.artifact.clone().filter(|current| {
                current.revision == revision
                    && status.observed_ignore == spec.ignore
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
            .progress(&format!(
                "building artifact: new revision '{revision}' ({} objects)",
                index.len()
            ))
            .await?;
        if let Some(bytes) = &sourceignore {
            std::fs::write(content.join(IGNORE_FILE), bytes)
                .map_err(|err| Error::Task(format!("writing {IGNORE_FILE}: {err}")))?;
        }
        let mut jobs = Vec::new();
        for key in index.keys() {
            let relative = safe_relative_path(key).ok_or_else(|| {
                Error::Operation(format!(
                    "object key '{key}' of bucket '{}' is not a safe relative path; exclude it with spec.ignore",
                    spec.bucket_name
                ))
            })?;
            jobs.push((key.clone(), content.join(relative)));
        }
        let s3 = &s3;
        let results: Vec<(String, Result<Option<String>, Error>)> = futures::stream::iter(jobs)
            .map(|(key, dest)| async move {
                let result = s3.download(&key, &dest).await;
                (key, result)
            })
            .buffer_unordered(CONCURRENT_FETCHES)
            .collect()
            .await;
        for (key, result) in results {
            match result? {
                // Vanished between listing and download: left out, as Flux does.
                None => {
                    index.remove(&key);
                }
                Some(etag) if !etag.is_empty() => {
                    index.insert(key, etag);
                }
                Some(_) => {}
            }
        }
        let revision = index_revision(&index);
        let hex = revision.trim_start_matches("sha256:").to_string();
        let storage = self.storage.clone();
        let stored = tokio::task::spawn_blocking(move || -> Result<_, Error> {
            let path = Storage::artifact_path(KIND, &namespace, &name, &format!("{hex}.tar.gz"));
            let _lock = storage.lock(&path).map_err(Error::Storage)?;
            storage.archive(&path, &content, None).map_err(Error::Storage)
        })
        .await
        .map_err(|err| Error::Task(err.to_string()))??;
        drop(work);
        let is_new = current.as_ref().is_none_or(|c| {
            c.digest.as_deref() != Some(stored.digest.as_str()) || c.revision != revision
        });
        let artifact = match &current {
            Some(current) if !is_new => current.clone(),
            _ => self.storage.artifact(&stored, revision, None),
        };
        Ok((artifact, is_new))
    }

    /// Reconciles a Bucket and writes its status.
    pub async fn reconcile(&self, obj: Arc<Bucket>) -> Result<Action, Error> {
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
                let message = format!("stored artifact for revision '{}'", artifact.revision);
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
    pub async fn cleanup(&self, obj: Arc<Bucket>) -> Result<Action, Error> {
        let object_dir =
            Storage::object_dir(KIND, &obj.namespace().unwrap_or_default(), &obj.name_any());
        self.storage.remove_all(&object_dir).map_err(Error::Storage)?;
        Ok(Action::await_change())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_is_the_digest_of_sorted_key_etag_lines() {
        let index = BTreeMap::from([
            ("b/deploy.yaml".to_string(), "etag2".to_string()),
            ("a.yaml".to_string(), "etag1".to_string()),
        ]);
        let expected = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(b"a.yaml etag1\nb/deploy.yaml etag2\n"))
        );
        assert_eq!(index_revision(&index), expected);
        // The empty index is the digest of nothing.
        assert_eq!(
            index_revision(&BTreeMap::new()),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn ignore_rules_filter_keys() {
        let matcher = ignore_matcher(Some("*.md\nsecret/\n"), Some("!README.md\n/tmp\n")).unwrap();
        let kept: Vec<&str> = [
            "apps/deploy.yaml",
            "docs/guide.md",
            "README.md",
            "secret/key.yaml",
            "apps/secret/x.yaml",
            "tmp/x",
            "apps/tmp/x",
            "dir/",
            ".sourceignore",
        ]
        .into_iter()
        .filter(|key| keep_key(&matcher, key))
        .collect();
        assert_eq!(kept, vec!["apps/deploy.yaml", "README.md", "apps/tmp/x"]);
        // No rules: everything but directory markers and the ignore file itself.
        let none = ignore_matcher(None, None).unwrap();
        assert!(keep_key(&none, "logo.png"));
        assert!(keep_key(&none, ".github/workflows/ci.yaml"));
    }

    #[test]
    fn endpoints_need_insecure_for_plain_http() {
        assert_eq!(
            endpoint_url("127.0.0.1:9000", true).unwrap().as_str(),
            "http://127.0.0.1:9000/"
        );
        assert_eq!(
            endpoint_url("s3.amazonaws.com", false).unwrap().as_str(),
            "https://s3.amazonaws.com/"
        );
        let err = endpoint_url("http://minio:9000", false).unwrap_err();
        assert!(err.is_stalled());
        assert!(err.to_string().contains("spec.insecure"), "{err}");
        assert!(endpoint_url("ftp://x", true).is_err());
    }

    #[test]
    fn unsafe_keys_are_refused() {
        assert_eq!(safe_relative_path("a/b.yaml"), Some(PathBuf::from("a/b.yaml")));
        for bad in ["../x", "/etc/passwd", "a/../../x", ""] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn s3_errors_are_parsed() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        assert_eq!(
            s3_error(body),
            ("NoSuchBucket".to_string(), "The specified bucket does not exist".to_string())
        );
        assert_eq!(s3_error(""), (String::new(), String::new()));
    }
}
