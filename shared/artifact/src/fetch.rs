//! Consumers' side of the artifact contract: download with retries, verify the digest, and
//! unpack safely (no path traversal, no symlinks, size limits).

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use sha2::Digest;

/// Why an artifact could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered 404: the source has no such artifact (yet).
    #[error("artifact {url} not found")]
    NotFound {
        /// The artifact URL.
        url: String,
    },
    /// The download failed after all retries.
    #[error("downloading {url} failed after {attempts} attempts: {message}")]
    Download {
        /// The artifact URL.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// The artifact is larger than allowed.
    #[error("artifact {url} exceeds the size limit of {limit} bytes")]
    TooLarge {
        /// The artifact URL.
        url: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The digest does not match `status.artifact.digest`.
    #[error("artifact {url} has digest {actual}, expected {expected}")]
    DigestMismatch {
        /// The artifact URL.
        url: String,
        /// The expected digest.
        expected: String,
        /// The digest of the downloaded bytes.
        actual: String,
    },
    /// The expected digest uses an unsupported algorithm.
    #[error("unsupported digest {0:?}: expected sha256:, sha384: or sha512:")]
    UnsupportedDigest(String),
    /// The archive is invalid or unsafe.
    #[error("unpacking artifact: {0}")]
    Unpack(String),
    /// Local IO failed.
    #[error("writing the artifact to {path}")]
    Io {
        /// The local path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Limits applied when unpacking an untrusted archive.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Maximum bytes of the compressed download.
    pub max_download_bytes: u64,
    /// Maximum total bytes of unpacked files.
    pub max_unpacked_bytes: u64,
    /// Maximum number of entries.
    pub max_entries: usize,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_download_bytes: 512 << 20,
            max_unpacked_bytes: 2 << 30,
            max_entries: 200_000,
        }
    }
}

/// Downloads, verifies and unpacks artifacts.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    retries: u32,
    retry_wait: Duration,
    limits: UnpackLimits,
}

impl Fetcher {
    /// A fetcher with `retries` retries (Flux's `--http-retry`, default 9) and the given limits.
    pub fn new(client: reqwest::Client, retries: u32, limits: UnpackLimits) -> Self {
        Fetcher { client, retries, retry_wait: Duration::from_secs(1), limits }
    }

    /// Sets the first wait between retries (doubled each time, capped at 30 s).
    pub fn with_retry_wait(mut self, wait: Duration) -> Self {
        self.retry_wait = wait;
        self
    }

    /// Downloads the artifact at `url`, checks it against `digest` (`sha256:<hex>`) and unpacks it
    /// into `dest` (which must exist).
    pub async fn fetch(&self, url: &str, digest: &str, dest: &Path) -> Result<(), FetchError> {
        let file = self.download(url, digest).await?;
        let dest = dest.to_path_buf();
        let limits = self.limits;
        tokio::task::spawn_blocking(move || {
            let reader = std::fs::File::open(file.path())
                .map_err(|source| FetchError::Io { path: file.path().to_path_buf(), source })?;
            unpack_tar_gz(reader, &dest, limits)
        })
        .await
        .map_err(|err| FetchError::Unpack(format!("unpack task failed: {err}")))?
    }

    /// Downloads the artifact at `url` into a temporary file and checks its digest.
    pub async fn download(
        &self,
        url: &str,
        digest: &str,
    ) -> Result<tempfile::NamedTempFile, FetchError> {
        let mut hasher = DigestHasher::for_digest(digest)?;
        let mut wait = self.retry_wait;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.download_once(url, &mut hasher).await {
                Ok(file) => {
                    let actual = hasher.finish();
                    if actual != digest {
                        return Err(FetchError::DigestMismatch {
                            url: url.to_string(),
                            expected: digest.to_string(),
                            actual,
                        });
                    }
                    return Ok(file);
                }
                Err(Attempt::Fatal(err)) => return Err(err),
                Err(Attempt::Retry(message)) => {
                    if attempt > self.retries {
                        return Err(FetchError::Download {
                            url: url.to_string(),
                            attempts: attempt,
                            message,
                        });
                    }
                    tracing::debug!(url, attempt, %message, "retrying artifact download");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                    hasher = DigestHasher::for_digest(digest)?;
                }
            }
        }
    }

    async fn download_once(
        &self,
        url: &str,
        hasher: &mut DigestHasher,
    ) -> Result<tempfile::NamedTempFile, Attempt> {
        let response =
            self.client.get(url).send().await.map_err(|err| Attempt::Retry(err.to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(Attempt::Fatal(FetchError::NotFound { url: url.to_string() }));
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(Attempt::Retry(format!("server answered {status}")));
        }
        if !status.is_success() {
            return Err(Attempt::Fatal(FetchError::Download {
                url: url.to_string(),
                attempts: 1,
                message: format!("server answered {status}"),
            }));
        }
        let mut file = tempfile::NamedTempFile::new().map_err(|source| {
            Attempt::Fatal(FetchError::Io { path: std::env::temp_dir(), source })
        })?;
        let mut size = 0u64;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| Attempt::Retry(err.to_string()))?;
            size += chunk.len() as u64;
            if size > self.limits.max_download_bytes {
                return Err(Attempt::Fatal(FetchError::TooLarge {
                    url: url.to_string(),
                    limit: self.limits.max_download_bytes,
                }));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(|source| {
                Attempt::Fatal(FetchError::Io { path: file.path().to_path_buf(), source })
            })?;
        }
        Ok(file)
    }
}

enum Attempt {
    Retry(String),
    Fatal(FetchError),
}

enum DigestHasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl DigestHasher {
    fn for_digest(digest: &str) -> Result<Self, FetchError> {
        match digest.split_once(':').map(|(algo, _)| algo) {
            Some("sha256") => Ok(DigestHasher::Sha256(sha2::Sha256::new())),
            Some("sha384") => Ok(DigestHasher::Sha384(sha2::Sha384::new())),
            Some("sha512") => Ok(DigestHasher::Sha512(sha2::Sha512::new())),
            _ => Err(FetchError::UnsupportedDigest(digest.to_string())),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(bytes),
            DigestHasher::Sha384(h) => h.update(bytes),
            DigestHasher::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(&mut self) -> String {
        match self {
            DigestHasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize_reset())),
            DigestHasher::Sha384(h) => format!("sha384:{}", hex::encode(h.finalize_reset())),
            DigestHasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize_reset())),
        }
    }
}

/// Unpacks an untrusted tar.gz into `dest`: regular files and directories only (symlinks,
/// hard links and devices are skipped), no entry outside `dest`, and the limits enforced.
pub fn unpack_tar_gz(
    reader: impl Read,
    dest: &Path,
    limits: UnpackLimits,
) -> Result<(), FetchError> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let entries = archive.entries().map_err(|err| FetchError::Unpack(err.to_string()))?;
    let mut total = 0u64;
    for (index, entry) in entries.enumerate() {
        if index >= limits.max_entries {
            return Err(FetchError::Unpack(format!("more than {} entries", limits.max_entries)));
        }
        let mut entry = entry.map_err(|err| FetchError::Unpack(err.to_string()))?;
        let path = entry.path().map_err(|err| FetchError::Unpack(err.to_string()))?.into_owned();
        if !path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(FetchError::Unpack(format!(
                "entry {} points outside the destination",
                path.display()
            )));
        }
        let entry_type = entry.header().entry_type();
        if !(entry_type.is_file() || entry_type.is_dir()) {
            continue;
        }
        total = total.saturating_add(entry.header().size().unwrap_or(0));
        if total > limits.max_unpacked_bytes {
            return Err(FetchError::Unpack(format!(
                "unpacked size exceeds the limit of {} bytes",
                limits.max_unpacked_bytes
            )));
        }
        let target = dest.join(&path);
        if entry_type.is_dir() {
            std::fs::create_dir_all(&target)
                .map_err(|source| FetchError::Io { path: target, source })?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| FetchError::Io { path: parent.to_path_buf(), source })?;
        }
        // Copy the bytes ourselves rather than `unpack`: permissions and ownership from an
        // untrusted archive are not applied, only its content.
        let mut out = std::fs::File::create(&target)
            .map_err(|source| FetchError::Io { path: target.clone(), source })?;
        let limit = entry.header().size().unwrap_or(0);
        let copied = std::io::copy(&mut (&mut entry).take(limit), &mut out)
            .map_err(|source| FetchError::Io { path: target.clone(), source })?;
        if copied != limit {
            return Err(FetchError::Unpack(format!("entry {} is truncated", path.display())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                header.set_link_name("/etc/passwd").unwrap();
            }
            // Write the raw name so traversal paths reach the reader unchanged.
            let name = path.as_bytes();
            header.as_old_mut().name[..name.len()].copy_from_slice(name);
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn unpacks_files_and_skips_symlinks() {
        let bytes = tar_gz(&[
            ("apps/a.yaml", tar::EntryType::Regular, b"a: 1\n"),
            ("link", tar::EntryType::Symlink, b""),
        ]);
        let dest = tempfile::tempdir().unwrap();
        unpack_tar_gz(&bytes[..], dest.path(), UnpackLimits::default()).unwrap();
        assert_eq!(std::fs::read_to_string(dest.path().join("apps/a.yaml")).unwrap(), "a: 1\n");
        assert!(!dest.path().join("link").exists());
    }

    #[test]
    fn refuses_path_traversal() {
        let bytes = tar_gz(&[("../escape.yaml", tar::EntryType::Regular, b"x")]);
        let dest = tempfile::tempdir().unwrap();
        let err = unpack_tar_gz(&bytes[..], dest.path(), UnpackLimits::default()).unwrap_err();
        assert!(err.to_string().contains("outside the destination"), "{err}");
    }

    #[test]
    fn enforces_size_limits() {
        let bytes = tar_gz(&[("big", tar::EntryType::Regular, &[0u8; 4096])]);
        let dest = tempfile::tempdir().unwrap();
        let limits = UnpackLimits { max_unpacked_bytes: 1024, ..UnpackLimits::default() };
        let err = unpack_tar_gz(&bytes[..], dest.path(), limits).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }

    async fn serve(root: PathBuf) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(
            async move { crate::server::serve(root, listener, std::future::pending()).await },
        );
        format!("http://{address}")
    }

    fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    #[tokio::test]
    async fn fetch_verifies_digest_and_reports_not_found() {
        let storage_dir = tempfile::tempdir().unwrap();
        let storage =
            crate::Storage::new(storage_dir.path(), "unused", Duration::from_secs(60), 2).unwrap();
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("k.yaml"), "kind: ConfigMap\n").unwrap();
        let stored = storage.archive("gitrepository/ns/r/abc.tar.gz", src.path(), None).unwrap();
        let base = serve(storage_dir.path().to_path_buf()).await;
        let fetcher = Fetcher::new(client(), 1, UnpackLimits::default())
            .with_retry_wait(Duration::from_millis(10));

        let dest = tempfile::tempdir().unwrap();
        fetcher
            .fetch(&format!("{base}/{}", stored.path), &stored.digest, dest.path())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.path().join("k.yaml")).unwrap(),
            "kind: ConfigMap\n"
        );

        let wrong = format!("sha256:{}", "0".repeat(64));
        let err = fetcher
            .fetch(&format!("{base}/{}", stored.path), &wrong, dest.path())
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::DigestMismatch { .. }), "{err}");

        let err = fetcher
            .fetch(
                &format!("{base}/gitrepository/ns/r/missing.tar.gz"),
                &stored.digest,
                dest.path(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::NotFound { .. }), "{err}");
    }
}
