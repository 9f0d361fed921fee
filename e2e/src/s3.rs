//! An S3 endpoint on loopback: moto's server (PyPI `moto[server]`, in `~/.cache/sluice/venv`).
//!
//! moto accepts any access key and does not check signatures by default, so the helpers here
//! send plain path-style requests; controllers under test may sign with [`S3Server::ACCESS_KEY`].

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::process::{self, Lifetime, ServerProcess};

/// A running moto S3 server on 127.0.0.1.
#[derive(Debug)]
pub struct S3Server {
    port: u16,
    _process: ServerProcess,
    _dir: TempDir,
}

impl S3Server {
    /// An access key id moto accepts.
    pub const ACCESS_KEY: &'static str = "sluice-test-key";
    /// A secret key moto accepts.
    pub const SECRET_KEY: &'static str = "sluice-test-secret";
    /// The region.
    pub const REGION: &'static str = "us-east-1";

    /// Starts moto_server.
    ///
    /// # Errors
    /// When moto_server is missing (run `cargo xtask e2e`, which creates the venv) or it does
    /// not listen within 60 s.
    pub fn start() -> Result<S3Server> {
        let moto = crate::paths::moto_server();
        if !moto.is_file() {
            bail!(
                "{} not found: run `cargo xtask e2e` (creates the venv {} with moto[server]) or \
                 set SLUICE_MOTO_SERVER",
                moto.display(),
                crate::paths::cache_dir().join("venv").display()
            );
        }
        let dir = tempfile::Builder::new().prefix("sluice-s3-").tempdir()?;
        let mut last_error = None;
        for _ in 0..3 {
            let port = process::free_port()?;
            let mut command = Command::new(&moto);
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]).current_dir(dir.path());
            let mut server = ServerProcess::spawn(
                "moto_server (S3)",
                command,
                &dir.path().join("moto.log"),
                Lifetime::Guarded,
            )?;
            match process::wait_for_port(&mut server, port, Duration::from_secs(60)) {
                Ok(()) => return Ok(S3Server { port, _process: server, _dir: dir }),
                Err(err) if server.failed_on_port_in_use() => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        bail!(
            "moto_server could not bind a free port: {:#}",
            last_error.unwrap_or_else(|| anyhow::anyhow!("unknown"))
        )
    }

    /// `127.0.0.1:<port>` (a Bucket's `spec.endpoint`, with `insecure: true`).
    pub fn endpoint(&self) -> String {
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

    /// Creates a bucket.
    ///
    /// # Errors
    /// When the server refuses.
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let response = crate::http_client()
            .put(format!("{}/{bucket}", self.url()))
            .send()
            .await
            .with_context(|| format!("creating bucket {bucket}"))?;
        check(response, &format!("creating bucket {bucket}")).await
    }

    /// Puts an object.
    ///
    /// # Errors
    /// When the server refuses.
    pub async fn put_object(&self, bucket: &str, key: &str, data: &[u8]) -> Result<()> {
        let response = crate::http_client()
            .put(format!("{}/{bucket}/{key}", self.url()))
            .body(data.to_vec())
            .send()
            .await
            .with_context(|| format!("putting s3://{bucket}/{key}"))?;
        check(response, &format!("putting s3://{bucket}/{key}")).await
    }

    /// Gets an object's bytes.
    ///
    /// # Errors
    /// When the object does not exist or the server fails.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        let response = crate::http_client()
            .get(format!("{}/{bucket}/{key}", self.url()))
            .send()
            .await
            .with_context(|| format!("getting s3://{bucket}/{key}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("getting s3://{bucket}/{key}: {status}");
        }
        Ok(response.bytes().await?.to_vec())
    }
}

async fn check(response: reqwest::Response, what: &str) -> Result<()> {
    let status = response.status();
    if !status.is_success() {
        bail!("{what}: {status}: {}", response.text().await.unwrap_or_default());
    }
    Ok(())
}
