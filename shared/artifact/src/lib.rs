//! Source artifacts: reproducible tar.gz archives, content-addressed storage with locking and
//! retention, the HTTP server that publishes them, and the safe fetch-verify-unpack used by consumers.
//!
//! This is Flux's artifact contract (fluxcd/pkg `artifact/`): files live at
//! `<kind>/<namespace>/<name>/<file>` under the storage root, are served as-is over plain HTTP,
//! and `status.artifact.digest` is `sha256:<hex>` of the file bytes. The same content always
//! yields the same bytes, so the same digest.

pub mod archive;
pub mod fetch;
pub mod ignore;
pub mod server;
pub mod storage;

pub use archive::{ArchiveEntry, ArchiveError, EntryKind, write_tar_gz, write_tar_gz_entries};
pub use fetch::{FetchError, Fetcher, UnpackLimits, unpack_tar_gz};
pub use ignore::SourceIgnore;
pub use storage::{Storage, StorageError};

/// Formats a digest as Flux does: `sha256:<hex>`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}
