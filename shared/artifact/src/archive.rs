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
        if is_dir {
            append_directory(builder, relative)?;
            append_dir(builder, root, &path, ignore, n_files)?;
        } else {
            let mut header = file_header(is_executable(&metadata), metadata.len());
            let file = std::fs::File::open(&path)
                .map_err(|source| ArchiveError::Read { path: path.clone(), source })?;
            builder.append_data(&mut header, relative, file).map_err(ArchiveError::Write)?;
            *n_files += 1;
        }
    }
    Ok(())
}

/// The header of a regular file: zero mtime and ids, normalised mode.
fn file_header(executable: bool, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(if executable { EXEC_MODE } else { FILE_MODE });
    header.set_size(size);
    header
}

fn append_directory<W: Write>(
    builder: &mut tar::Builder<W>,
    relative: &Path,
) -> Result<(), ArchiveError> {
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(DIR_MODE);
    header.set_size(0);
    builder
        .append_data(&mut header, relative, std::io::empty())
        .map_err(|_| ArchiveError::Path { path: relative.to_path_buf() })
}

/// What an [`ArchiveEntry`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory (archived when not ignored, even when nothing in it is).
    Dir,
    /// A regular file.
    File {
        /// Archived with [`EXEC_MODE`] rather than [`FILE_MODE`].
        executable: bool,
    },
    /// A symbolic link: dropped, as [`write_tar_gz`] drops them.
    Symlink,
}

/// One entry of a tree that is not on disk, for [`write_tar_gz_entries`]. Parent directories
/// need not be listed; an empty directory must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// Path relative to the tree's root, one normal component per level.
    pub path: PathBuf,
    /// Directory, file or symlink.
    pub kind: EntryKind,
    /// The caller's handle of the entry, passed back when its contents are read.
    pub key: usize,
}

/// Writes a tree given as a list of entries (in any order) as the
/// reproducible tar.gz that [`write_tar_gz`] writes for the same tree checked out on disk,
/// byte for byte. `ignore` matches paths under `root` (any absolute directory: the tree's
/// paths are joined to it). `read(key, buf)` fills `buf` with a file's contents.
///
/// Returns the number of files written.
pub fn write_tar_gz_entries<W: Write>(
    mut entries: Vec<ArchiveEntry>,
    root: &Path,
    ignore: Option<&SourceIgnore>,
    mut read: impl FnMut(usize, &mut Vec<u8>) -> std::io::Result<()>,
    out: W,
) -> Result<usize, ArchiveError> {
    let mut dirs = std::collections::BTreeSet::new();
    for entry in &entries {
        let normal = entry.path.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if !normal || entry.path.as_os_str().is_empty() {
            return Err(ArchiveError::Path { path: entry.path.clone() });
        }
        if entry.kind == EntryKind::Dir {
            dirs.insert(entry.path.clone());
        }
    }
    // A directory exists on disk when anything is inside it: list the missing parents.
    let mut parents = Vec::new();
    for entry in &entries {
        for parent in entry.path.ancestors().skip(1) {
            if parent.as_os_str().is_empty() || !dirs.insert(parent.to_path_buf()) {
                break;
            }
            parents.push(ArchiveEntry { path: parent.to_path_buf(), kind: EntryKind::Dir, key: 0 });
        }
    }
    entries.extend(parents);
    // Component-wise order is the order of `write_tar_gz`: depth first, each directory's
    // entries sorted by name, a directory right before its contents.
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let gz = GzEncoder::new(out, Compression::default());
    let mut builder = tar::Builder::new(gz);
    builder.mode(tar::HeaderMode::Deterministic);
    let mut n_files = 0;
    let mut skipped_dir: Option<PathBuf> = None;
    let mut buf = Vec::new();
    for entry in &entries {
        if skipped_dir.as_ref().is_some_and(|dir| entry.path.starts_with(dir)) {
            continue;
        }
        skipped_dir = None;
        let is_dir = entry.kind == EntryKind::Dir;
        if entry.kind == EntryKind::Symlink {
            continue;
        }
        if ignore.is_some_and(|rules| rules.is_ignored(&root.join(&entry.path), is_dir)) {
            if is_dir {
                skipped_dir = Some(entry.path.clone());
            }
            continue;
        }
        match entry.kind {
            EntryKind::Dir => append_directory(&mut builder, &entry.path)?,
            EntryKind::File { executable } => {
                buf.clear();
                read(entry.key, &mut buf)
                    .map_err(|source| ArchiveError::Read { path: entry.path.clone(), source })?;
                let mut header = file_header(executable, buf.len() as u64);
                builder
                    .append_data(&mut header, &entry.path, buf.as_slice())
                    .map_err(ArchiveError::Write)?;
                n_files += 1;
            }
            EntryKind::Symlink => {}
        }
    }
    let gz = builder.into_inner().map_err(ArchiveError::Write)?;
    gz.finish().map_err(ArchiveError::Write)?.flush().map_err(ArchiveError::Write)?;
    Ok(n_files)
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

    /// The entries of a directory on disk, as a tree source would list them: files and
    /// symlinks only, plus the empty directories.
    fn list(root: &Path, dir: &Path, out: &mut Vec<(ArchiveEntry, PathBuf)>) {
        let mut empty = true;
        for entry in std::fs::read_dir(dir).unwrap() {
            empty = false;
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            let kind = if kind.is_dir() {
                list(root, &path, out);
                continue;
            } else if kind.is_symlink() {
                EntryKind::Symlink
            } else {
                EntryKind::File { executable: is_executable(&entry.metadata().unwrap()) }
            };
            let key = out.len();
            out.push((ArchiveEntry { path: relative, kind, key }, path));
        }
        if empty && dir != root {
            let key = out.len();
            let relative = dir.strip_prefix(root).unwrap().to_path_buf();
            out.push((ArchiveEntry { path: relative, kind: EntryKind::Dir, key }, dir.into()));
        }
    }

    #[cfg(unix)]
    #[test]
    fn entries_give_the_bytes_of_the_same_tree_on_disk() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let long = format!("{}/{}.yaml", "d".repeat(70), "f".repeat(90));
        for path in
            ["a-b", "a/x", "a.b/y", "z/deep/er/file", "logo.png", "keep/.sourceignore", &long]
        {
            write(dir.path(), path, path);
        }
        write(dir.path(), ".sourceignore", "/ignored/\n*.png\n!keep.png\n");
        write(dir.path(), "ignored/secret", "s");
        write(dir.path(), "keep.png", "p");
        std::fs::create_dir_all(dir.path().join("empty/inner")).unwrap();
        std::fs::set_permissions(dir.path().join("a/x"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("../a-b", dir.path().join("z/link")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("only-link")).unwrap();

        let ignore = SourceIgnore::load(dir.path(), Some("/z/deep/er\n")).unwrap();
        let mut on_disk = Vec::new();
        let n = write_tar_gz(dir.path(), Some(&ignore), &mut on_disk).unwrap();

        let mut listed = Vec::new();
        list(dir.path(), dir.path(), &mut listed);
        let root = Path::new("/virtual/root");
        let ignore_files = listed
            .iter()
            .filter(|(entry, _)| entry.path.file_name().unwrap() == ".sourceignore")
            .map(|(entry, full)| (root.join(&entry.path), std::fs::read(full).unwrap()))
            .collect();
        let ignore = SourceIgnore::from_files(root, ignore_files, Some("/z/deep/er\n")).unwrap();
        let entries = listed.iter().rev().map(|(entry, _)| entry.clone()).collect();
        let mut from_entries = Vec::new();
        let read = |key: usize, buf: &mut Vec<u8>| {
            buf.extend(std::fs::read(&listed[key].1)?);
            Ok(())
        };
        let m =
            write_tar_gz_entries(entries, root, Some(&ignore), read, &mut from_entries).unwrap();
        assert_eq!((n, crate::sha256_digest(&on_disk)), (m, crate::sha256_digest(&from_entries)));
        assert_eq!(n, 7, "a-b a/x a.b/y keep/.sourceignore keep.png .sourceignore long");
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
