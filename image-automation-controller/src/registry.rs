//! Registry access for ImageRepository and ImagePolicy: image names as Flux canonicalises them,
//! docker config credentials, tag listing with `last=` pagination and manifest digests
//! (oci-client), and the on-disk tag store.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::Digest;

/// Docker Hub's registry host, as go-containerregistry names it.
pub const DOCKER_HUB: &str = "index.docker.io";

/// An image repository name split into registry and repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// Registry host (and port), e.g. `ghcr.io`, `127.0.0.1:5000`, `index.docker.io`.
    pub registry: String,
    /// Repository path, e.g. `org/app`, `library/nginx`.
    pub repository: String,
}

impl ImageName {
    /// Parses `spec.image`: no scheme, no tag, no digest; Docker Hub names get their implicit
    /// registry and `library/` prefix.
    ///
    /// # Errors
    /// A message saying what is wrong with the name.
    pub fn parse(image: &str) -> Result<ImageName, String> {
        if image.is_empty() {
            return Err(
                "spec.image is empty; set it to a repository such as ghcr.io/org/app".into()
            );
        }
        if image.contains("://") {
            return Err(format!(
                "spec.image {image:?} must not contain a scheme; use spec.insecure for plain HTTP"
            ));
        }
        if image.contains('@') {
            return Err(format!("spec.image {image:?} must not contain a digest"));
        }
        let (first, rest) = match image.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first), rest)
            }
            _ => (None, image),
        };
        if rest.rsplit('/').next().is_some_and(|last| last.contains(':')) {
            return Err(format!("spec.image {image:?} must not contain a tag"));
        }
        let segment = regex::Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
            .map_err(|err| err.to_string())?;
        if rest.is_empty() || !rest.split('/').all(|part| segment.is_match(part)) {
            return Err(format!(
                "spec.image {image:?} is not a valid repository name (lower-case letters, digits and \
                 separators '.', '_', '-', '/')"
            ));
        }
        let registry = match first {
            Some("docker.io") | None => DOCKER_HUB.to_string(),
            Some(host) => host.to_string(),
        };
        let repository = if registry == DOCKER_HUB && !rest.contains('/') {
            format!("library/{rest}")
        } else {
            rest.to_string()
        };
        Ok(ImageName { registry, repository })
    }

    /// `registry/repository`, Flux's `status.canonicalImageName`.
    pub fn canonical(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether the registry is reached over plain HTTP: with `spec.insecure`, or for loopback
    /// and `localhost` hosts as go-containerregistry does.
    pub fn plain_http(&self, insecure: bool) -> bool {
        let host = self.registry.rsplit_once(':').map_or(self.registry.as_str(), |(h, _)| h);
        insecure || host == "localhost" || host.starts_with("127.") || host == "[::1]"
    }

    fn reference(&self, tag: &str) -> Reference {
        Reference::with_tag(self.registry.clone(), self.repository.clone(), tag.to_string())
    }

    fn client(&self, insecure: bool, timeout: Duration) -> Client {
        let protocol = if self.plain_http(insecure) {
            oci_client::client::ClientProtocol::Http
        } else {
            oci_client::client::ClientProtocol::Https
        };
        Client::new(oci_client::client::ClientConfig {
            protocol,
            read_timeout: Some(timeout),
            connect_timeout: Some(timeout),
            ..Default::default()
        })
    }
}

/// Credentials for one registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// User name and password; `None` is anonymous.
    pub basic: Option<(String, String)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.basic {
            Some((user, _)) => write!(f, "Credentials {{ user: {user:?}, password: *** }}"),
            None => f.write_str("Credentials(anonymous)"),
        }
    }
}

impl Credentials {
    fn auth(&self) -> RegistryAuth {
        match &self.basic {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

/// The host part of a docker config `auths` key (`https://index.docker.io/v1/` → `index.docker.io`).
fn config_host(key: &str) -> String {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = without_scheme.split('/').next().unwrap_or_default();
    if host == "docker.io" || host == "registry-1.docker.io" {
        DOCKER_HUB.into()
    } else {
        host.into()
    }
}

/// The credentials for `registry` in a `kubernetes.io/dockerconfigjson` Secret's
/// `.dockerconfigjson` (or a legacy `.dockercfg`), `None` when it has no entry for it.
///
/// # Errors
/// A message naming what is malformed (never the credentials).
pub fn docker_config_credentials(
    data: &BTreeMap<String, Vec<u8>>,
    registry: &str,
) -> Result<Option<Credentials>, String> {
    let (key, auths) = if let Some(bytes) = data.get(".dockerconfigjson") {
        let json: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|err| format!("key '.dockerconfigjson' is not valid JSON: {err}"))?;
        (".dockerconfigjson", json.get("auths").cloned().unwrap_or_default())
    } else if let Some(bytes) = data.get(".dockercfg") {
        let json: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|err| format!("key '.dockercfg' is not valid JSON: {err}"))?;
        (".dockercfg", json)
    } else {
        return Err("the Secret has no '.dockerconfigjson' key; create it with \
                    `kubectl create secret docker-registry`"
            .into());
    };
    let Some(auths) = auths.as_object() else { return Ok(None) };
    for (host, entry) in auths {
        if config_host(host) != registry {
            continue;
        }
        let text = |name: &str| entry.get(name).and_then(|v| v.as_str()).unwrap_or_default();
        if !text("auth").is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(text("auth").trim())
                .map_err(|_| format!("key '{key}': auths.{host}.auth is not valid base64"))?;
            let decoded = String::from_utf8(decoded)
                .map_err(|_| format!("key '{key}': auths.{host}.auth is not UTF-8"))?;
            let (user, password) = decoded.split_once(':').ok_or_else(|| {
                format!("key '{key}': auths.{host}.auth must encode 'user:password'")
            })?;
            return Ok(Some(Credentials { basic: Some((user.into(), password.into())) }));
        }
        if !text("username").is_empty() {
            return Ok(Some(Credentials {
                basic: Some((text("username").into(), text("password").into())),
            }));
        }
        return Ok(Some(Credentials::default()));
    }
    Ok(None)
}

/// Why a registry request failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused the credentials (or asked for some).
    #[error("authentication to {registry} failed for {image}: {detail}")]
    Authentication {
        /// The registry host.
        registry: String,
        /// The canonical image name.
        image: String,
        /// What the registry said.
        detail: String,
    },
    /// The repository does not exist or the request failed otherwise.
    #[error("reading {what} of {image} failed: {detail}")]
    Read {
        /// `tags` or `manifest`.
        what: &'static str,
        /// The canonical image name (with the tag, for manifests).
        image: String,
        /// What went wrong.
        detail: String,
    },
    /// The request did not finish in time.
    #[error("reading {what} of {image} timed out after {timeout:?}")]
    Timeout {
        /// `tags` or `manifest`.
        what: &'static str,
        /// The canonical image name.
        image: String,
        /// The limit (`spec.timeout`).
        timeout: Duration,
    },
}

impl RegistryError {
    /// Flux's condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            RegistryError::Authentication { .. } => "AuthenticationFailed",
            _ => "ReadOperationFailed",
        }
    }
}

fn classify(
    err: OciDistributionError,
    name: &ImageName,
    what: &'static str,
    image: String,
) -> RegistryError {
    let auth = |detail: String| RegistryError::Authentication {
        registry: name.registry.clone(),
        image: name.canonical(),
        detail,
    };
    match err {
        OciDistributionError::UnauthorizedError { .. } => {
            auth("401 Unauthorized: check the credentials in spec.secretRef".into())
        }
        OciDistributionError::AuthenticationFailure(detail) => auth(detail),
        OciDistributionError::ServerError { code: 401 | 403, message, .. } => {
            auth(message.trim().to_string())
        }
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    oci_client::errors::OciErrorCode::Unauthorized
                        | oci_client::errors::OciErrorCode::Denied
                )
            }) =>
        {
            auth(envelope.errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; "))
        }
        OciDistributionError::RegistryError { envelope, .. } => RegistryError::Read {
            what,
            image,
            detail: envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        },
        other => RegistryError::Read {
            what,
            image,
            detail: sluice_runtime::conditions::error_message(&other),
        },
    }
}

/// Lists every tag of `name`, following `last=` pages until the registry returns nothing new.
///
/// # Errors
/// [`RegistryError`] with Flux's reason.
pub async fn list_tags(
    name: &ImageName,
    credentials: &Credentials,
    insecure: bool,
    timeout: Duration,
) -> Result<Vec<String>, RegistryError> {
    let client = name.client(insecure, timeout);
    let reference = name.reference("latest");
    let auth = credentials.auth();
    let image = name.canonical();
    let scan = async {
        let mut tags: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut last: Option<String> = None;
        // A registry that ignores `last` returns the same page again: stop at the first page
        // without a new tag. The page cap bounds a misbehaving registry.
        for _ in 0..10_000 {
            let page = client
                .list_tags(&reference, &auth, None, last.as_deref())
                .await
                .map_err(|err| classify(err, name, "tags", image.clone()))?;
            let fresh: Vec<String> =
                page.tags.into_iter().filter(|tag| seen.insert(tag.clone())).collect();
            if fresh.is_empty() {
                break;
            }
            last = fresh.last().cloned();
            tags.extend(fresh);
        }
        Ok(tags)
    };
    tokio::time::timeout(timeout, scan).await.map_err(|_| RegistryError::Timeout {
        what: "tags",
        image: image.clone(),
        timeout,
    })?
}

/// The manifest digest of `name:tag`.
///
/// # Errors
/// [`RegistryError`] with Flux's reason.
pub async fn manifest_digest(
    name: &ImageName,
    tag: &str,
    credentials: &Credentials,
    insecure: bool,
    timeout: Duration,
) -> Result<String, RegistryError> {
    let client = name.client(insecure, timeout);
    let reference = name.reference(tag);
    let image = format!("{}:{tag}", name.canonical());
    let auth = credentials.auth();
    let fetch = client.fetch_manifest_digest(&reference, &auth);
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| RegistryError::Timeout { what: "manifest", image: image.clone(), timeout })?
        .map_err(|err| classify(err, name, "manifest", image))
}

/// The 10 most recent tags as Flux shows them: reverse lexical order.
pub fn latest_tags(tags: &[String]) -> Vec<String> {
    let mut sorted = tags.to_vec();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.truncate(10);
    sorted
}

/// The revision of a tag set: sha256 of the sorted tags, one per line.
pub fn tags_revision(tags: &[String]) -> String {
    let mut sorted = tags.to_vec();
    sorted.sort();
    let mut hasher = sha2::Sha256::new();
    for tag in &sorted {
        hasher.update(tag.as_bytes());
        hasher.update(b"\n");
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Scanned tags on disk: one JSON file per canonical image name under `--storage-path`, so a
/// restart keeps them and policies read them without a registry call.
#[derive(Debug, Clone)]
pub struct TagStore {
    dir: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    image: String,
    tags: Vec<String>,
}

impl TagStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> TagStore {
        TagStore { dir }
    }

    fn path(&self, canonical: &str) -> PathBuf {
        let digest = hex::encode(sha2::Sha256::digest(canonical.as_bytes()));
        self.dir.join("tags").join(format!("{digest}.json"))
    }

    /// The stored tags of `canonical`, `None` when it was never scanned (or the file is
    /// unreadable, which a rescan repairs).
    pub fn get(&self, canonical: &str) -> Option<Vec<String>> {
        let bytes = std::fs::read(self.path(canonical)).ok()?;
        let stored: Stored = serde_json::from_slice(&bytes).ok()?;
        (stored.image == canonical).then_some(stored.tags)
    }

    /// Replaces the tags of `canonical` atomically.
    ///
    /// # Errors
    /// When the directory or file cannot be written.
    pub fn set(&self, canonical: &str, tags: &[String]) -> std::io::Result<()> {
        let path = self.path(canonical);
        let dir = path.parent().map(PathBuf::from).unwrap_or_else(|| self.dir.clone());
        std::fs::create_dir_all(&dir)?;
        let body = serde_json::to_vec(&Stored { image: canonical.into(), tags: tags.to_vec() })
            .map_err(std::io::Error::other)?;
        let mut file = tempfile::NamedTempFile::new_in(&dir)?;
        std::io::Write::write_all(&mut file, &body)?;
        file.persist(&path).map_err(|err| err.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_as_go_containerregistry() {
        let cases = [
            ("nginx", Ok("index.docker.io/library/nginx")),
            ("docker.io/fluxcd/flux", Ok("index.docker.io/fluxcd/flux")),
            ("ghcr.io/org/app", Ok("ghcr.io/org/app")),
            ("127.0.0.1:5000/team/app", Ok("127.0.0.1:5000/team/app")),
            ("localhost/app", Ok("localhost/app")),
        ];
        for (image, expected) in cases {
            assert_eq!(ImageName::parse(image).map(|n| n.canonical()), expected.map(String::from));
        }
        for bad in ["ghcr.io/org/app:1.0", "app@sha256:abc", "https://ghcr.io/app", "Upper/app", ""]
        {
            assert!(ImageName::parse(bad).is_err(), "{bad}");
        }
        assert!(ImageName::parse("127.0.0.1:5000/app").unwrap().plain_http(false));
        assert!(!ImageName::parse("ghcr.io/app").unwrap().plain_http(false));
        assert!(ImageName::parse("ghcr.io/app").unwrap().plain_http(true));
    }

    #[test]
    fn docker_config_secrets() {
        let auth = base64::engine::general_purpose::STANDARD.encode("user:p@ss:word");
        let config = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": auth},
            "127.0.0.1:5000": {"username": "u2", "password": "p2"},
        }});
        let data =
            BTreeMap::from([(".dockerconfigjson".to_string(), config.to_string().into_bytes())]);
        let hub = docker_config_credentials(&data, DOCKER_HUB).unwrap().unwrap();
        assert_eq!(hub.basic, Some(("user".into(), "p@ss:word".into())));
        assert!(!format!("{hub:?}").contains("p@ss"));
        let local = docker_config_credentials(&data, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(local.basic, Some(("u2".into(), "p2".into())));
        assert_eq!(docker_config_credentials(&data, "ghcr.io").unwrap(), None);
        assert!(docker_config_credentials(&BTreeMap::new(), "ghcr.io").is_err());
    }

    #[test]
    fn latest_tags_and_store() {
        let tags: Vec<String> = (0..12).map(|i| format!("1.0.{i}")).collect();
        let latest = latest_tags(&tags);
        assert_eq!(latest.len(), 10);
        assert_eq!(latest[0], "1.0.9");
        assert_eq!(latest[1], "1.0.8");
        assert_eq!(
            tags_revision(&tags),
            tags_revision(
                &latest_tags(&tags).iter().chain(&tags[..2]).cloned().collect::<Vec<_>>()
            )
        );
        let dir = tempfile::tempdir().unwrap();
        let store = TagStore::new(dir.path().to_path_buf());
        assert_eq!(store.get("ghcr.io/org/app"), None);
        store.set("ghcr.io/org/app", &tags).unwrap();
        assert_eq!(store.get("ghcr.io/org/app"), Some(tags.clone()));
        // A second store on the same directory (a restart) reads the same tags.
        assert_eq!(TagStore::new(dir.path().to_path_buf()).get("ghcr.io/org/app"), Some(tags));
    }
}
