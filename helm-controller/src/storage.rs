//! Helm release storage in Helm's Secret driver format (release format v1), so the helm CLI
//! and the Helm SDK read the releases sluice writes, and sluice adopts releases Helm wrote.
//!
//! One Secret per release revision, in the storage namespace:
//! - name `sh.helm.release.v1.<release>.v<revision>`, type `helm.sh/release.v1`;
//! - labels `owner=helm`, `name=<release>`, `status=<status>`, `version=<revision>`, plus
//!   `createdAt` (and `modifiedAt` on updates) in Unix seconds;
//! - `data.release` holds the text `base64(gzip(json(release)))`. Kubernetes base64-encodes
//!   Secret data once more on the wire, so the API server sees the release encoded twice, as
//!   with Helm's own driver.
//!
//! Fields sluice does not know (newer Helm versions, `info.resources`, chart `lock`) survive a
//! read-modify-write through the `extra` maps.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Secret type of Helm release v1 Secrets.
pub const SECRET_TYPE: &str = "helm.sh/release.v1";
/// The `owner` label value of release Secrets.
pub const OWNER: &str = "helm";
/// Go's zero `time.Time` as `encoding/json` writes it.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// The largest decompressed release accepted when decoding (Helm charts are capped at 100 MiB).
const MAX_RELEASE_BYTES: u64 = 128 * 1024 * 1024;

/// Release statuses as Helm names them.
pub mod status {
    /// The release is the live one.
    pub const DEPLOYED: &str = "deployed";
    /// A newer release replaced it.
    pub const SUPERSEDED: &str = "superseded";
    /// The action failed.
    pub const FAILED: &str = "failed";
    /// Uninstalled with `keepHistory`.
    pub const UNINSTALLED: &str = "uninstalled";
    /// Being uninstalled.
    pub const UNINSTALLING: &str = "uninstalling";
    /// Install in progress.
    pub const PENDING_INSTALL: &str = "pending-install";
    /// Upgrade in progress.
    pub const PENDING_UPGRADE: &str = "pending-upgrade";
    /// Rollback in progress.
    pub const PENDING_ROLLBACK: &str = "pending-rollback";

    /// Whether an action holds the release (`pending-*`).
    pub fn is_pending(status: &str) -> bool {
        matches!(status, PENDING_INSTALL | PENDING_UPGRADE | PENDING_ROLLBACK)
    }
}

/// Errors of the release storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The API server refused an operation on a release Secret.
    #[error("{operation} release Secret '{namespace}/{name}': {message}")]
    Kube {
        /// What was attempted.
        operation: &'static str,
        /// Storage namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The API server's message.
        message: String,
    },
    /// A release Secret could not be decoded.
    #[error("release Secret '{name}' is not a valid Helm release: {message}")]
    Decode {
        /// Secret name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A release could not be encoded.
    #[error("encoding release {name} v{version}: {message}")]
    Encode {
        /// Release name.
        name: String,
        /// Revision.
        version: i64,
        /// What went wrong.
        message: String,
    },
}

/// Helm's `release.Info`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Info {
    /// First deployment of the release.
    #[serde(default = "zero_time")]
    pub first_deployed: String,
    /// Deployment of this revision.
    #[serde(default = "zero_time")]
    pub last_deployed: String,
    /// Uninstall time (Go's zero time when not uninstalled).
    #[serde(default = "zero_time")]
    pub deleted: String,
    /// What happened.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `deployed`, `failed`, … (see [`status`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Rendered NOTES.txt.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    /// Fields of newer Helm versions, kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for Info {
    fn default() -> Self {
        Info {
            first_deployed: zero_time(),
            last_deployed: zero_time(),
            deleted: zero_time(),
            description: String::new(),
            status: String::new(),
            notes: String::new(),
            extra: Map::new(),
        }
    }
}

fn zero_time() -> String {
    ZERO_TIME.to_string()
}

/// Helm's `release.HookExecution`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HookExecution {
    /// Start of the last run.
    #[serde(default = "zero_time")]
    pub started_at: String,
    /// End of the last run.
    #[serde(default = "zero_time")]
    pub completed_at: String,
    /// `Unknown`, `Running`, `Succeeded` or `Failed` (empty when never run).
    #[serde(default)]
    pub phase: String,
}

impl Default for HookExecution {
    fn default() -> Self {
        HookExecution { started_at: zero_time(), completed_at: zero_time(), phase: String::new() }
    }
}

/// Helm's `release.Hook`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Hook {
    /// Object name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Object kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Template path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// The rendered document.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manifest: String,
    /// Hook events (`pre-install`, `test`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// The last run.
    #[serde(default)]
    pub last_run: HookExecution,
    /// `helm.sh/hook-weight`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub weight: i64,
    /// `helm.sh/hook-delete-policy` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delete_policies: Vec<String>,
    /// Fields of newer Helm versions, kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// Helm's `release.Release` (format v1).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Release {
    /// Release name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Status and times.
    #[serde(default)]
    pub info: Info,
    /// The chart as Helm serializes `chart.Chart` (see [`chart_json`]).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub chart: Value,
    /// User-supplied values.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    /// Rendered manifests without hooks.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manifest: String,
    /// Hooks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    /// Revision, from 1.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: i64,
    /// Namespace the release is installed in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Fields of newer Helm versions, kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Release {
    /// `chart.metadata.<field>` as a string.
    pub fn chart_field(&self, field: &str) -> String {
        self.chart["metadata"][field].as_str().unwrap_or_default().to_string()
    }

    /// The chart name.
    pub fn chart_name(&self) -> String {
        self.chart_field("name")
    }

    /// The chart version.
    pub fn chart_version(&self) -> String {
        self.chart_field("version")
    }

    /// The chart appVersion.
    pub fn app_version(&self) -> String {
        self.chart_field("appVersion")
    }
}

/// The Secret name of a release revision (`makeKey` of Helm's storage).
pub fn secret_name(release: &str, version: i64) -> String {
    format!("sh.helm.release.v1.{release}.v{version}")
}

/// `base64(gzip(json))`, as Helm's `encodeRelease` (best compression).
///
/// # Errors
/// When the release cannot be serialized.
pub fn encode(release: &Release) -> Result<String, StorageError> {
    let encode_error = |message: String| StorageError::Encode {
        name: release.name.clone(),
        version: release.version,
        message,
    };
    let json = serde_json::to_vec(release).map_err(|e| encode_error(e.to_string()))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&json).map_err(|e| encode_error(e.to_string()))?;
    let compressed = gz.finish().map_err(|e| encode_error(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(compressed))
}

/// The inverse of [`encode`]; like Helm's `decodeRelease`, uncompressed JSON is accepted too.
///
/// # Errors
/// Invalid base64, gzip or JSON.
pub fn decode(name: &str, data: &[u8]) -> Result<Release, StorageError> {
    let decode_error = |message: String| StorageError::Decode { name: name.to_string(), message };
    let text: Vec<u8> = data.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|e| decode_error(format!("data.release is not base64: {e}")))?;
    let json = if bytes.starts_with(&[0x1f, 0x8b, 0x08]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .take(MAX_RELEASE_BYTES)
            .read_to_end(&mut out)
            .map_err(|e| decode_error(format!("data.release is not valid gzip: {e}")))?;
        out
    } else {
        bytes
    };
    serde_json::from_slice(&json)
        .map_err(|e| decode_error(format!("data.release is not a release JSON document: {e}")))
}

/// The Secret Helm's driver writes for `release`.
///
/// # Errors
/// When the release cannot be encoded.
pub fn to_secret(release: &Release, created_at: i64) -> Result<Secret, StorageError> {
    let labels = BTreeMap::from([
        ("name".to_string(), release.name.clone()),
        ("owner".to_string(), OWNER.to_string()),
        ("status".to_string(), release.info.status.clone()),
        ("version".to_string(), release.version.to_string()),
        ("createdAt".to_string(), created_at.to_string()),
    ]);
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(&release.name, release.version)),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        type_: Some(SECRET_TYPE.to_string()),
        data: Some(BTreeMap::from([(
            "release".to_string(),
            ByteString(encode(release)?.into_bytes()),
        )])),
        ..Secret::default()
    })
}

/// Reads the release out of a release Secret.
///
/// # Errors
/// A Secret without `data.release` or with undecodable content.
pub fn from_secret(secret: &Secret) -> Result<Release, StorageError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let data = secret.data.as_ref().and_then(|d| d.get("release")).ok_or_else(|| {
        StorageError::Decode { name: name.clone(), message: "data.release is missing".into() }
    })?;
    decode(&name, &data.0)
}

/// Helm's `chart.Chart` JSON for a loaded chart: metadata, templates and files as base64
/// `{name, data}` entries, default values and the schema. Subcharts are not part of it, as in
/// Helm's stored releases.
pub fn chart_json(chart: &sluice_helm::Chart) -> Value {
    let b64 = |data: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(data));
    let files = |list: &[sluice_helm::chart::ChartFile]| -> Value {
        Value::Array(
            list.iter()
                .map(|f| serde_json::json!({"name": f.name, "data": b64(&f.data)}))
                .collect(),
        )
    };
    let mut metadata = chart.metadata.clone();
    // Chart.yaml scalars Helm reads into Go strings must stay strings in the JSON.
    if let Some(map) = metadata.as_object_mut() {
        for key in [
            "name",
            "home",
            "version",
            "description",
            "icon",
            "apiVersion",
            "condition",
            "tags",
            "appVersion",
            "kubeVersion",
            "type",
        ] {
            if let Some(value) = map.get_mut(key)
                && !value.is_string()
                && !value.is_null()
            {
                *value = Value::String(match (key, &*value) {
                    ("version", _) => chart.version(),
                    (_, Value::Number(n)) => {
                        sluice_helm::yaml::go_float_g(n.as_f64().unwrap_or_default())
                    }
                    (_, other) => other.to_string(),
                });
            }
        }
    }
    let lock = chart
        .files
        .iter()
        .find(|f| f.name == "Chart.lock")
        .and_then(|f| sluice_helm::chart::load_values(&String::from_utf8_lossy(&f.data)).ok())
        .map(Value::Object)
        .unwrap_or(Value::Null);
    serde_json::json!({
        "metadata": metadata,
        "lock": lock,
        "templates": files(&chart.templates),
        "values": chart.values,
        "schema": chart.schema.as_deref().map(b64).unwrap_or(Value::Null),
        "files": files(&chart.files),
    })
}

/// The release Secrets of one storage namespace.
#[derive(Clone)]
pub struct SecretStorage {
    api: Api<Secret>,
    namespace: String,
}

impl SecretStorage {
    /// Storage in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        SecretStorage { api: Api::namespaced(client, namespace), namespace: namespace.to_string() }
    }

    /// The storage namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn kube_error(&self, operation: &'static str, name: &str, err: kube::Error) -> StorageError {
        let message = match err {
            kube::Error::Api(status) => status.message,
            other => other.to_string(),
        };
        StorageError::Kube {
            operation,
            namespace: self.namespace.clone(),
            name: name.into(),
            message,
        }
    }

    /// Every revision of `release`, oldest first.
    ///
    /// Helm's driver lists the release's Secrets by label from etcd, which reads every Secret
    /// of the namespace: with N releases in one namespace each lookup costs O(N) and a
    /// reconcile of all of them O(N²). Here the list is served from the API server's watch
    /// cache (`resourceVersion=0`), and what the cache may not have seen yet is read by name
    /// from etcd: the newest revision it holds is re-read, and the next revisions are probed
    /// until one is missing. Revisions only ever get added above the newest, so that gives the
    /// newest revision exactly; an older one may show a status a moment stale. When the newest
    /// revision the cache holds is gone (an uninstall), the history is listed from etcd.
    ///
    /// # Errors
    /// A failed list or read, or an undecodable release Secret.
    pub async fn history(&self, release: &str) -> Result<Vec<Release>, StorageError> {
        let mut releases = self.list(release, true).await?;
        if let Some(newest) = releases.last_mut() {
            let name = secret_name(release, newest.version);
            match self.read(&name).await? {
                Some(fresh) => *newest = fresh,
                None => return self.list(release, false).await,
            }
        }
        let mut next = releases.last().map_or(1, |r| r.version + 1);
        while let Some(newer) = self.read(&secret_name(release, next)).await? {
            releases.push(newer);
            next += 1;
        }
        Ok(releases)
    }

    /// The release Secrets of `release` by label, oldest first; from the watch cache when
    /// `cached`, else from etcd.
    async fn list(&self, release: &str, cached: bool) -> Result<Vec<Release>, StorageError> {
        let mut params = ListParams::default().labels(&format!("owner={OWNER},name={release}"));
        if cached {
            params = params.match_any();
        }
        let list =
            self.api.list(&params).await.map_err(|e| self.kube_error("listing", release, e))?;
        let mut releases = Vec::with_capacity(list.items.len());
        for secret in &list.items {
            if secret.type_.as_deref() != Some(SECRET_TYPE) {
                continue;
            }
            releases.push(from_secret(secret)?);
        }
        releases.sort_by_key(|r| r.version);
        Ok(releases)
    }

    /// One revision by its Secret's name, `None` when it does not exist.
    async fn read(&self, name: &str) -> Result<Option<Release>, StorageError> {
        let secret =
            self.api.get_opt(name).await.map_err(|e| self.kube_error("reading", name, e))?;
        match secret {
            Some(secret) if secret.type_.as_deref() == Some(SECRET_TYPE) => {
                Ok(Some(from_secret(&secret)?))
            }
            _ => Ok(None),
        }
    }

    /// Stores a new revision.
    ///
    /// # Errors
    /// When the revision exists already or the API server refuses it.
    pub async fn create(&self, release: &Release) -> Result<(), StorageError> {
        let secret = to_secret(release, jiff::Timestamp::now().as_second())?;
        let name = secret.metadata.name.clone().unwrap_or_default();
        self.api
            .create(&PostParams::default(), &secret)
            .await
            .map_err(|e| self.kube_error("creating", &name, e))?;
        Ok(())
    }

    /// Rewrites an existing revision (status changes), keeping `createdAt` and adding
    /// `modifiedAt`.
    ///
    /// # Errors
    /// When the API server refuses it.
    pub async fn update(&self, release: &Release) -> Result<(), StorageError> {
        let name = secret_name(&release.name, release.version);
        let existing =
            self.api.get_opt(&name).await.map_err(|e| self.kube_error("reading", &name, e))?;
        let created_at = existing
            .as_ref()
            .and_then(|s| s.metadata.labels.as_ref()?.get("createdAt")?.parse().ok())
            .unwrap_or_else(|| jiff::Timestamp::now().as_second());
        let mut secret = to_secret(release, created_at)?;
        if let Some(labels) = secret.metadata.labels.as_mut() {
            labels.insert("modifiedAt".into(), jiff::Timestamp::now().as_second().to_string());
        }
        match existing {
            Some(existing) => {
                secret.metadata.resource_version = existing.metadata.resource_version;
                self.api
                    .replace(&name, &PostParams::default(), &secret)
                    .await
                    .map_err(|e| self.kube_error("updating", &name, e))?;
            }
            None => {
                self.api
                    .create(&PostParams::default(), &secret)
                    .await
                    .map_err(|e| self.kube_error("creating", &name, e))?;
            }
        }
        Ok(())
    }

    /// Deletes one revision; a missing one is not an error.
    ///
    /// # Errors
    /// When the API server refuses it.
    pub async fn delete(&self, release: &str, version: i64) -> Result<(), StorageError> {
        let name = secret_name(release, version);
        match self.api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(err) => Err(self.kube_error("deleting", &name, err)),
        }
    }
}

/// Revisions to delete so at most `max` remain (0 = unlimited): the oldest first, never the
/// newest nor the deployed one (Helm's history cleanup).
pub fn prune_candidates(history: &[Release], max: i64) -> Vec<i64> {
    if max <= 0 || history.len() as i64 <= max {
        return Vec::new();
    }
    let newest = history.iter().map(|r| r.version).max().unwrap_or(0);
    let excess = history.len() as i64 - max;
    let mut versions: Vec<&Release> = history
        .iter()
        .filter(|r| r.version != newest && r.info.status != status::DEPLOYED)
        .collect();
    versions.sort_by_key(|r| r.version);
    versions.into_iter().take(excess as usize).map(|r| r.version).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> Release {
        Release {
            name: "demo".into(),
            info: Info {
                first_deployed: "2026-01-02T03:04:05.123456789Z".into(),
                last_deployed: "2026-01-02T03:04:05.123456789Z".into(),
                description: "Install complete".into(),
                status: status::DEPLOYED.into(),
                ..Info::default()
            },
            chart: serde_json::json!({"metadata": {"name": "c", "version": "1.0.0"}}),
            config: serde_json::from_value(serde_json::json!({"a": 1})).unwrap(),
            manifest: "---\n# Source: c/templates/cm.yaml\nkind: ConfigMap\n".into(),
            hooks: vec![Hook {
                name: "t".into(),
                kind: "Pod".into(),
                events: vec!["test".into()],
                ..Hook::default()
            }],
            version: 3,
            namespace: "apps".into(),
            extra: Map::new(),
        }
    }

    #[test]
    fn encoding_is_base64_of_gzip_of_helm_json() {
        let rel = release();
        let text = encode(&rel).unwrap();
        let gz = base64::engine::general_purpose::STANDARD.decode(&text).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let mut json = String::new();
        flate2::read::GzDecoder::new(gz.as_slice()).read_to_string(&mut json).unwrap();
        let value: Value = serde_json::from_str(&json).unwrap();
        // Helm's JSON field names, Go's zero time for `deleted`, hooks' last_run always present.
        assert_eq!(value["info"]["first_deployed"], "2026-01-02T03:04:05.123456789Z");
        assert_eq!(value["info"]["deleted"], ZERO_TIME);
        assert_eq!(value["info"]["status"], "deployed");
        assert_eq!(value["hooks"][0]["last_run"]["phase"], "");
        assert_eq!(value["hooks"][0]["last_run"]["started_at"], ZERO_TIME);
        assert_eq!(value["version"], 3);
        assert!(value.get("notes").is_none());
        assert_eq!(decode("s", text.as_bytes()).unwrap(), rel);
    }

    #[test]
    fn decoding_keeps_unknown_fields_and_accepts_plain_json() {
        let json = r#"{"name":"x","info":{"status":"failed","resources":{"v1/Pod":[]}},"version":2,"labels":{"a":"b"}}"#;
        let text = base64::engine::general_purpose::STANDARD.encode(json);
        let rel = decode("s", text.as_bytes()).unwrap();
        assert_eq!(rel.info.status, "failed");
        assert!(rel.info.extra.contains_key("resources"));
        let back: Value = serde_json::from_str(&serde_json::to_string(&rel).unwrap()).unwrap();
        assert_eq!(back["labels"]["a"], "b");
        assert_eq!(back["info"]["resources"], serde_json::json!({"v1/Pod": []}));
        let err = decode("sh.helm.release.v1.x.v2", b"%%%").unwrap_err();
        assert!(err.to_string().contains("sh.helm.release.v1.x.v2"), "{err}");
    }

    #[test]
    fn secrets_have_helms_name_type_and_labels() {
        let secret = to_secret(&release(), 1700000000).unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("sh.helm.release.v1.demo.v3"));
        assert_eq!(secret.type_.as_deref(), Some("helm.sh/release.v1"));
        let labels = secret.metadata.labels.clone().unwrap();
        assert_eq!(labels["owner"], "helm");
        assert_eq!(labels["name"], "demo");
        assert_eq!(labels["status"], "deployed");
        assert_eq!(labels["version"], "3");
        assert_eq!(labels["createdAt"], "1700000000");
        assert_eq!(from_secret(&secret).unwrap(), release());
    }

    #[test]
    fn chart_json_has_helms_shape() {
        let chart = sluice_helm::chart::load_files(vec![
            sluice_helm::chart::ChartFile {
                name: "Chart.yaml".into(),
                data: b"apiVersion: v2\nname: c\nversion: 1.0\nappVersion: 2\n".to_vec(),
            },
            sluice_helm::chart::ChartFile {
                name: "templates/a.yaml".into(),
                data: b"kind: ConfigMap\n".to_vec(),
            },
            sluice_helm::chart::ChartFile { name: "README.md".into(), data: b"hi".to_vec() },
        ])
        .unwrap();
        let json = chart_json(&chart);
        assert_eq!(json["metadata"]["version"], chart.version().as_str());
        assert!(json["metadata"]["version"].is_string());
        assert_eq!(json["metadata"]["appVersion"], "2");
        assert_eq!(json["templates"][0]["name"], "templates/a.yaml");
        assert_eq!(json["templates"][0]["data"], "a2luZDogQ29uZmlnTWFwCg==");
        assert!(json["files"].as_array().unwrap().iter().any(|f| f["name"] == "README.md"));
        assert!(json["lock"].is_null() && json["schema"].is_null());
    }

    #[test]
    fn pruning_keeps_the_newest_and_the_deployed() {
        let rel = |version: i64, status: &str| Release {
            version,
            info: Info { status: status.into(), ..Info::default() },
            ..Release::default()
        };
        let history =
            vec![rel(1, "superseded"), rel(2, "deployed"), rel(3, "failed"), rel(4, "failed")];
        assert_eq!(prune_candidates(&history, 2), vec![1, 3]);
        assert!(prune_candidates(&history, 0).is_empty());
        assert!(prune_candidates(&history, 5).is_empty());
    }
}
