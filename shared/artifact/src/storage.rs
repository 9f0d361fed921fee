//! Artifact storage: `<kind>/<namespace>/<name>/<file>` under a root directory, atomic writes,
//! a file lock per artifact, retention garbage collection, and the `status.artifact` record.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sha2::Digest;
use sluice_api::meta::Artifact;

use crate::{ArchiveError, SourceIgnore};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A filesystem operation failed.
    #[error("{operation} {path}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Archiving a directory failed.
    #[error("archiving {path}")]
    Archive {
        /// The directory being archived.
        path: PathBuf,
        /// The cause.
        #[source]
        source: ArchiveError,
    },
    /// An artifact path would leave the storage root.
    #[error("artifact path {0:?} is not a relative path inside the storage")]
    InvalidPath(String),
}

/// The directory a tree that is not on disk is matched under by ignore rules: build the
/// [`SourceIgnore`] of such a tree with [`SourceIgnore::from_files`] at this root.
pub const TREE_ROOT: &str = "/sluice-tree";

/// A file written to storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Path relative to the storage root.
    pub path: String,
    /// `sha256:<hex>` of the file bytes.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// The artifact store of a source-controller.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
    advertised_address: String,
    retention_ttl: Duration,
    retention_records: usize,
}

/// Holds the lock of one artifact until dropped.
#[derive(Debug)]
pub struct ArtifactLock {
    _file: File,
}

impl Storage {
    /// Opens (creating it when missing) the storage at `root`, advertising artifacts at
    /// `advertised_address` (`host:port`, or a URL with a scheme).
    pub fn new(
        root: impl Into<PathBuf>,
        advertised_address: impl Into<String>,
        retention_ttl: Duration,
        retention_records: usize,
    ) -> Result<Self, StorageError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| StorageError::Io {
            operation: "creating the storage directory",
            path: root.clone(),
            source,
        })?;
        Ok(Storage {
            root,
            advertised_address: advertised_address.into(),
            retention_ttl,
            retention_records: retention_records.max(1),
        })
    }

    /// The storage root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of an object's artifacts, relative to the root: `<kind>/<namespace>/<name>`.
    pub fn object_dir(kind: &str, namespace: &str, name: &str) -> String {
        format!("{}/{namespace}/{name}", kind.to_lowercase())
    }

    /// The path of an artifact file relative to the root.
    pub fn artifact_path(kind: &str, namespace: &str, name: &str, file: &str) -> String {
        format!("{}/{file}", Self::object_dir(kind, namespace, name))
    }

    /// The URL of an artifact: `http://<advertised>/<path>`.
    pub fn url(&self, path: &str) -> String {
        let address = self.advertised_address.trim_end_matches('/');
        if address.contains("://") {
            format!("{address}/{path}")
        } else {
            format!("http://{address}/{path}")
        }
    }

    fn full_path(&self, path: &str) -> Result<PathBuf, StorageError> {
        let relative = Path::new(path);
        let safe = relative
            .components()
            .all(|component| matches!(component, std::path::Component::Normal(_)));
        if path.is_empty() || !safe {
            return Err(StorageError::InvalidPath(path.to_string()));
        }
        Ok(self.root.join(relative))
    }

    /// Whether the artifact file exists.
    pub fn exists(&self, path: &str) -> bool {
        self.full_path(path).is_ok_and(|full| full.is_file())
    }

    /// Takes the lock of an artifact (`<path>.lock`), blocking until it is free.
    pub fn lock(&self, path: &str) -> Result<ArtifactLock, StorageError> {
        let full = self.full_path(path)?;
        let lock_path = full.with_extension(format!(
            "{}.lock",
            full.extension().and_then(|e| e.to_str()).unwrap_or_default()
        ));
        create_parent(&lock_path)?;
        let file =
            File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(
                |source| StorageError::Io {
                    operation: "opening lock",
                    path: lock_path.clone(),
                    source,
                },
            )?;
        file.lock().map_err(|source| StorageError::Io {
            operation: "locking",
            path: lock_path,
            source,
        })?;
        Ok(ArtifactLock { _file: file })
    }

    /// Archives `dir` into the artifact at `path`, atomically.
    pub fn archive(
        &self,
        path: &str,
        dir: &Path,
        ignore: Option<&SourceIgnore>,
    ) -> Result<StoredFile, StorageError> {
        self.write_atomically(path, |out| {
            crate::write_tar_gz(dir, ignore, out)
                .map(|_| ())
                .map_err(|source| StorageError::Archive { path: dir.to_path_buf(), source })
        })
    }

    /// Archives a tree that is not on disk (see [`crate::archive::write_tar_gz_entries`]) into
    /// the artifact at `path`, atomically; `what` names the tree in errors.
    pub fn archive_entries(
        &self,
        path: &str,
        what: &str,
        entries: Vec<crate::archive::ArchiveEntry>,
        ignore: Option<&SourceIgnore>,
        read: impl FnMut(usize, &mut Vec<u8>) -> std::io::Result<()>,
    ) -> Result<StoredFile, StorageError> {
        self.write_atomically(path, |out| {
            crate::archive::write_tar_gz_entries(entries, Path::new(TREE_ROOT), ignore, read, out)
                .map(|_| ())
                .map_err(|source| StorageError::Archive { path: PathBuf::from(what), source })
        })
    }

    /// Stores `bytes` as the artifact at `path`, atomically.
    pub fn store_bytes(&self, path: &str, bytes: &[u8]) -> Result<StoredFile, StorageError> {
        let full = self.full_path(path)?;
        self.write_atomically(path, |out| {
            out.write_all(bytes).map_err(|source| StorageError::Io {
                operation: "writing",
                path: full.clone(),
                source,
            })
        })
    }

    fn write_atomically(
        &self,
        path: &str,
        write: impl FnOnce(&mut HashingWriter<File>) -> Result<(), StorageError>,
    ) -> Result<StoredFile, StorageError> {
        let full = self.full_path(path)?;
        let dir = create_parent(&full)?;
        let temp = tempfile::NamedTempFile::new_in(&dir).map_err(|source| StorageError::Io {
            operation: "creating a temporary file in",
            path: dir.clone(),
            source,
        })?;
        let (file, temp_path) = temp.into_parts();
        let mut writer = HashingWriter { inner: file, hasher: sha2::Sha256::new(), size: 0 };
        write(&mut writer)?;
        writer.inner.sync_all().map_err(|source| StorageError::Io {
            operation: "syncing",
            path: full.clone(),
            source,
        })?;
        temp_path.persist(&full).map_err(|err| StorageError::Io {
            operation: "renaming into",
            path: full.clone(),
            source: err.error,
        })?;
        Ok(StoredFile {
            path: path.to_string(),
            digest: format!("sha256:{}", hex::encode(writer.hasher.finalize())),
            size: writer.size,
        })
    }

    /// The `status.artifact` record of a stored file.
    pub fn artifact(
        &self,
        stored: &StoredFile,
        revision: impl Into<String>,
        metadata: Option<BTreeMap<String, String>>,
    ) -> Artifact {
        Artifact {
            path: stored.path.clone(),
            url: self.url(&stored.path),
            revision: revision.into(),
            digest: Some(stored.digest.clone()),
            last_update_time: Time(jiff::Timestamp::now()),
            size: i64::try_from(stored.size).ok(),
            metadata,
        }
    }

    /// Deletes old artifacts of an object: files other than `current` that are older than the
    /// retention TTL or beyond the newest `retention records`. Returns the deleted paths.
    pub fn garbage_collect(
        &self,
        object_dir: &str,
        current: &str,
    ) -> Result<Vec<String>, StorageError> {
        let dir = self.full_path(object_dir)?;
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
        let mut files: Vec<(SystemTime, String)> = entries
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let modified = entry.metadata().ok()?.modified().ok()?;
                (!name.ends_with(".lock") && !name.starts_with(".tmp")).then_some((modified, name))
            })
            .collect();
        files.sort_by(|a, b| b.cmp(a));
        let now = SystemTime::now();
        let current_name = current.rsplit('/').next().unwrap_or(current);
        let mut deleted = Vec::new();
        for (rank, (modified, name)) in files.iter().enumerate() {
            if name == current_name {
                continue;
            }
            let expired = now.duration_since(*modified).unwrap_or_default() > self.retention_ttl;
            if expired || rank >= self.retention_records {
                let full = dir.join(name);
                std::fs::remove_file(&full).map_err(|source| StorageError::Io {
                    operation: "deleting",
                    path: full.clone(),
                    source,
                })?;
                let _ = std::fs::remove_file(dir.join(format!("{name}.lock")));
                deleted.push(format!("{object_dir}/{name}"));
            }
        }
        Ok(deleted)
    }

    /// Removes all artifacts of an object (on deletion of the object).
    pub fn remove_all(&self, object_dir: &str) -> Result<(), StorageError> {
        let dir = self.full_path(object_dir)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StorageError::Io { operation: "removing", path: dir, source }),
        }
    }
}

fn create_parent(path: &Path) -> Result<PathBuf, StorageError> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(|source| StorageError::Io {
        operation: "creating directory",
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// A writer that hashes and counts what passes through it.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls_follow_flux() {
        assert_eq!(
            Storage::artifact_path("GitRepository", "default", "podinfo", "abc.tar.gz"),
            "gitrepository/default/podinfo/abc.tar.gz"
        );
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::new(
            dir.path(),
            "source-controller.flux-system.svc.cluster.local.",
            Duration::from_secs(60),
            2,
        )
        .unwrap();
        assert_eq!(
            storage.url("gitrepository/default/podinfo/abc.tar.gz"),
            "http://source-controller.flux-system.svc.cluster.local./gitrepository/default/podinfo/abc.tar.gz"
        );
        let with_scheme =
            Storage::new(dir.path(), "https://artifacts.example/", Duration::from_secs(60), 2)
                .unwrap();
        assert_eq!(with_scheme.url("a/b/c/d"), "https://artifacts.example/a/b/c/d");
    }

    #[test]
    fn paths_outside_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            Storage::new(dir.path(), "localhost:9090", Duration::from_secs(60), 2).unwrap();
        for bad in ["../x", "/etc/passwd", "a/../../x", ""] {
            assert!(
                matches!(storage.store_bytes(bad, b"x"), Err(StorageError::InvalidPath(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn stored_digest_is_the_sha256_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            Storage::new(dir.path(), "localhost:9090", Duration::from_secs(60), 2).unwrap();
        let stored =
            storage.store_bytes("helmrepository/ns/repo/index-x.yaml", b"entries: {}\n").unwrap();
        let on_disk = std::fs::read(dir.path().join(&stored.path)).unwrap();
        assert_eq!(stored.digest, crate::sha256_digest(&on_disk));
        assert_eq!(stored.size, on_disk.len() as u64);
        let artifact = storage.artifact(&stored, "sha256:x", None);
        assert_eq!(artifact.url, "http://localhost:9090/helmrepository/ns/repo/index-x.yaml");
        assert_eq!(artifact.digest.as_deref(), Some(stored.digest.as_str()));
    }

    #[test]
    fn garbage_collection_keeps_the_current_and_newest_records() {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            Storage::new(dir.path(), "localhost:9090", Duration::from_secs(3600), 2).unwrap();
        let object = Storage::object_dir("GitRepository", "ns", "repo");
        for i in 0..4 {
            storage
                .store_bytes(&format!("{object}/{i}.tar.gz"), format!("{i}").as_bytes())
                .unwrap();
            let _lock = storage.lock(&format!("{object}/{i}.tar.gz")).unwrap();
            // Distinct modification times without sleeping.
            let file = File::options()
                .write(true)
                .open(dir.path().join(format!("{object}/{i}.tar.gz")))
                .unwrap();
            file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + i)).unwrap();
        }
        // Everything is "expired" (1970), but the current one is never deleted.
        let deleted = storage.garbage_collect(&object, &format!("{object}/1.tar.gz")).unwrap();
        assert_eq!(deleted.len(), 3);
        assert!(storage.exists(&format!("{object}/1.tar.gz")));
        storage.remove_all(&object).unwrap();
        assert!(!dir.path().join(&object).exists());
    }

    #[test]
    fn archive_records_digest_of_written_file() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("a.yaml"), "a: 1\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let storage =
            Storage::new(dir.path(), "localhost:9090", Duration::from_secs(60), 2).unwrap();
        let first = storage.archive("gitrepository/ns/r/1.tar.gz", src.path(), None).unwrap();
        let second = storage.archive("gitrepository/ns/r/2.tar.gz", src.path(), None).unwrap();
        assert_eq!(first.digest, second.digest);
        assert_eq!(
            first.digest,
            crate::sha256_digest(&std::fs::read(dir.path().join(&first.path)).unwrap())
        );
    }
}
