//! Reproducible tar.gz archives of a directory: sorted entries, zero timestamps and ids,
//! normalised modes, symlinks and special files dropped (fluxcd/pkg artifact/storage/archive.go).

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::SourceIgnore;

/// Why an archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading the source tree failed.
    #[error("reading {path}")]
    Read {
        /// The path that could not be read.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing the archive failed.
    #[error("writing the archive")]
    Write(#[source] std::io::Error),
    /// A path in the tree is not valid UTF-8 or could not be put in a tar header.
    #[error("path {path} cannot be archived")]
    Path {
        /// The offending path.
        path: PathBuf,
    },
}

/// Mode of directories in the archive.
pub const DIR_MODE: u32 = 0o750;
/// Mode of regular files in the archive.
pub const FILE_MODE: u32 = 0o600;
/// Mode of executable files in the archive.
pub const EXEC_MODE: u32 = 0o700;

/// Writes `root` as a reproducible tar.gz to `out`, skipping what `ignore` excludes.
///
/// Entries are relative to `root`, in byte order of their paths, directories before their
/// contents. Returns the number of files written.
pub fn write_tar_gz<W: Write>(
    root: &Path,
    ignore: Option<&SourceIgnore>,
    out: W,
) -> Result<usize, ArchiveError> {
    let gz = GzEncoder::new(out, Compression::default());
    let mut builder = tar::Builder::new(gz);
    builder.mode(tar::HeaderMode::Deterministic);
    let mut n_files = 0;
    append_dir(&mut builder, root, root, ignore, &mut n_files)?;
    let gz = builder.into_inner().map_err(ArchiveError::Write)?;
    gz.finish().map_err(ArchiveError::Write)?.flush().map_err(ArchiveError::Write)?;
    Ok(n_files)
}

fn append_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    dir: &Path,
    ignore: Option<&SourceIgnore>,
    n_files: &mut usize,
) -> Result<(), ArchiveError> {
    let read_err = |source| ArchiveError::Read { path: dir.to_path_buf(), source };
    let mut entries: Vec<_> =
        std::fs::read_dir(dir)
            .map_err(read_err)?
            .collect::<Result<_, _>>()
            .map_err(|source| ArchiveError::Read { path: dir.to_path_buf(), source })?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        // symlink_metadata: symlinks are dropped, never followed out of the tree.
        let metadata = std::fs::symlink_metadata(&path)
            .map_err(|source| ArchiveError::Read { path: path.clone(), source })?;
        let is_dir = metadata.is_dir();
        if !(is_dir || metadata.is_file()) {
            continue;
        }
        if ignore.is_some_and(|rules| rules.is_ignored(&path, is_dir)) {
            continue;
        }
        let relative =
            path.strip_prefix(root).map_err(|_| ArchiveError::Path { path: path.clone() })?;
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        if is_dir {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(DIR_MODE);
            header.set_size(0);
            builder
                .append_data(&mut header, relative, std::io::empty())
                .map_err(|_| ArchiveError::Path { path: path.clone() })?;
            append_dir(builder, root, &path, ignore, n_files)?;
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if is_executable(&metadata) { EXEC_MODE } else { FILE_MODE });
            header.set_size(metadata.len());
            let file = std::fs::File::open(&path)
                .map_err(|source| ArchiveError::Read { path: path.clone(), source })?;
            builder.append_data(&mut header, relative, file).map_err(ArchiveError::Write)?;
            *n_files += 1;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, path: &str, contents: &str) {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, contents).unwrap();
    }

    fn archive(dir: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        write_tar_gz(dir, None, &mut out).unwrap();
        out
    }

    #[test]
    fn same_content_gives_same_bytes_whatever_the_mtimes_and_creation_order() {
        let a = tempfile::tempdir().unwrap();
        write(a.path(), "b/deploy.yaml", "kind: Deployment\n");
        write(a.path(), "a.yaml", "kind: Service\n");
        let b = tempfile::tempdir().unwrap();
        write(b.path(), "a.yaml", "kind: Service\n");
        write(b.path(), "b/deploy.yaml", "kind: Deployment\n");
        assert_eq!(
            crate::sha256_digest(&archive(a.path())),
            crate::sha256_digest(&archive(b.path()))
        );
        write(b.path(), "a.yaml", "kind: Service2\n");
        assert_ne!(
            crate::sha256_digest(&archive(a.path())),
            crate::sha256_digest(&archive(b.path()))
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_dropped_and_modes_normalised() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "x.yaml", "a: 1\n");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let bytes = archive(dir.path());
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let entries: Vec<(String, u32, u64)> = tar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (e.path().unwrap().display().to_string(), h.mode().unwrap(), h.mtime().unwrap())
            })
            .collect();
        assert_eq!(entries, vec![("x.yaml".to_string(), FILE_MODE, 0)]);
    }
}
