//! An OCI registry on loopback: Debian's docker-registry (distribution 2.8), optionally with htpasswd auth.
//!
//! Limits of distribution 2.8: no OCI 1.1 referrers API and no tag-list pagination.

use std::fs;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::paths::find_program;
use crate::process::{self, Lifetime, ScratchDir, ServerProcess};

/// A running docker-registry on 127.0.0.1.
#[derive(Debug)]
pub struct Registry {
    port: u16,
    auth: bool,
    _process: ServerProcess,
    _dir: ScratchDir,
}

/// One layer of an artifact to push: media type and content.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The layer's media type, e.g. `application/vnd.cncf.flux.content.v1.tar+gzip`.
    pub media_type: String,
    /// The layer's bytes.
    pub data: Vec<u8>,
}

impl Registry {
    /// The user when started with auth.
    pub const USERNAME: &'static str = "oci-user";
    /// The password when started with auth.
    pub const PASSWORD: &'static str = "oci-s3cret";

    /// Starts a registry with empty storage; with `auth`, every request needs basic auth with
    /// [`Registry::USERNAME`] / [`Registry::PASSWORD`].
    ///
    /// # Errors
    /// When docker-registry (or htpasswd, for auth) is missing or it does not listen in 15 s.
    pub fn start(auth: bool) -> Result<Registry> {
        let binary = find_program(&["/usr/bin/docker-registry"], "docker-registry")?;
        let dir = ScratchDir::new("sluice-registry-")?;
        let path = dir.path();
        let auth_config =
            if auth {
                let htpasswd =
                    process::run_tool(
                        Command::new(find_program(&["/usr/bin/htpasswd"], "apache2-utils")?)
                            .args(["-nbB", Self::USERNAME, Self::PASSWORD]),
                    )?;
                fs::write(path.join("htpasswd"), htpasswd.trim_end().to_owned() + "\n")?;
                format!(
                    "auth:\n  htpasswd:\n    realm: sluice-test\n    path: {}\n",
                    path.join("htpasswd").display()
                )
            } else {
                String::new()
            };
        let mut last_error = None;
        for _ in 0..3 {
            let port = process::free_port()?;
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
                 delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: sluice-e2e\n{auth_config}",
                path.join("data").display()
            );
            fs::write(path.join("config.yml"), config)?;
            let mut command = Command::new(&binary);
            command.arg("serve").arg(path.join("config.yml"));
            let mut server = ServerProcess::spawn(
                "docker-registry",
                command,
                &path.join("registry.log"),
                Lifetime::Guarded,
            )?;
            match process::wait_for_port(&mut server, port, Duration::from_secs(15)) {
                Ok(()) => return Ok(Registry { port, auth, _process: server, _dir: dir }),
                Err(err) if server.failed_on_port_in_use() => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        bail!(
            "docker-registry could not bind a free port: {:#}",
            last_error.unwrap_or_else(|| anyhow::anyhow!("unknown"))
        )
    }

    /// `127.0.0.1:<port>`, the host part of image references (`127.0.0.1:P/app:v1`).
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server process id (for diagnostics).
    pub fn pid(&self) -> u32 {
        self._process.pid()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The credentials, when started with auth.
    pub fn credentials(&self) -> Option<(&'static str, &'static str)> {
        self.auth.then_some((Self::USERNAME, Self::PASSWORD))
    }

    fn request(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let builder = http.request(method, format!("{}{path}", self.url()));
        match self.credentials() {
            Some((user, password)) => builder.basic_auth(user, Some(password)),
            None => builder,
        }
    }

    /// Uploads a blob (monolithic upload); returns its digest `sha256:…`.
    ///
    /// # Errors
    /// When the registry refuses it.
    pub async fn push_blob(&self, repository: &str, data: &[u8]) -> Result<String> {
        let http = crate::http_client();
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        let start = self
            .request(&http, reqwest::Method::POST, &format!("/v2/{repository}/blobs/uploads/"))
            .send()
            .await
            .context("starting a blob upload")?;
        if start.status() != reqwest::StatusCode::ACCEPTED {
            bail!("starting a blob upload to {repository}: {}", start.status());
        }
        let location = start
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .context("the registry sent no upload Location")?
            .to_owned();
        let mut upload_url = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.url())
        };
        upload_url.push(if upload_url.contains('?') { '&' } else { '?' });
        upload_url.push_str(&format!("digest={digest}"));
        let mut put = http.put(upload_url).body(data.to_vec());
        if let Some((user, password)) = self.credentials() {
            put = put.basic_auth(user, Some(password));
        }
        let done = put.send().await.context("uploading a blob")?;
        if done.status() != reqwest::StatusCode::CREATED {
            bail!("uploading blob {digest} to {repository}: {}", done.status());
        }
        Ok(digest)
    }

    /// Pushes an OCI artifact (config blob, layers, manifest with annotations) as
    /// `repository:tag`; returns the manifest digest.
    ///
    /// # Errors
    /// When the registry refuses a blob or the manifest.
    pub async fn push_artifact(
        &self,
        repository: &str,
        tag: &str,
        config_media_type: &str,
        config: &[u8],
        layers: &[Layer],
        annotations: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String> {
        let config_digest = self.push_blob(repository, config).await?;
        let mut layer_descriptors = Vec::new();
        for layer in layers {
            let digest = self.push_blob(repository, &layer.data).await?;
            layer_descriptors.push(json!({
                "mediaType": layer.media_type, "digest": digest, "size": layer.data.len(),
            }));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": config_media_type, "digest": config_digest, "size": config.len() },
            "layers": layer_descriptors,
            "annotations": annotations,
        });
        let body = serde_json::to_vec(&manifest)?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        let http = crate::http_client();
        let response = self
            .request(&http, reqwest::Method::PUT, &format!("/v2/{repository}/manifests/{tag}"))
            .header(reqwest::header::CONTENT_TYPE, "application/vnd.oci.image.manifest.v1+json")
            .body(body)
            .send()
            .await
            .context("pushing a manifest")?;
        if response.status() != reqwest::StatusCode::CREATED {
            let status = response.status();
            bail!(
                "pushing manifest {repository}:{tag}: {status}: {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(digest)
    }

    /// The tags of `repository`.
    ///
    /// # Errors
    /// When the registry answers with an error.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>> {
        let http = crate::http_client();
        let response = self
            .request(&http, reqwest::Method::GET, &format!("/v2/{repository}/tags/list"))
            .send()
            .await?
            .error_for_status()?;
        let list: serde_json::Value = response.json().await?;
        Ok(list["tags"]
            .as_array()
            .map(|tags| tags.iter().filter_map(|tag| tag.as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }
}
