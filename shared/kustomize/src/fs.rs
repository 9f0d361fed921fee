//! The file system the engine reads through: on disk, or in memory for tests and callers with unpacked data.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Read-only file access used by the build; paths given to it are already normalised.
pub trait FileSystem: Send + Sync {
    /// Reads a whole file.
    ///
    /// # Errors
    /// Any IO error, `NotFound` when the file does not exist.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Whether `path` is a regular file.
    fn is_file(&self, path: &Path) -> bool;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskFileSystem;

impl FileSystem for DiskFileSystem {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
}

/// Files held in memory; directories exist implicitly as parents of files.
#[derive(Debug, Default, Clone)]
pub struct MemoryFileSystem {
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl MemoryFileSystem {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a file; `path` is normalised lexically.
    pub fn add_file(&mut self, path: impl AsRef<Path>, content: impl Into<Vec<u8>>) -> &mut Self {
        self.files.insert(normalize(path.as_ref()), content.into());
        self
    }

    /// Builder form of [`MemoryFileSystem::add_file`].
    pub fn with_file(mut self, path: impl AsRef<Path>, content: impl Into<Vec<u8>>) -> Self {
        self.add_file(path, content);
        self
    }
}

impl FileSystem for MemoryFileSystem {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files
            .get(&normalize(path))
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file or directory"))
    }
    fn is_dir(&self, path: &Path) -> bool {
        let dir = normalize(path);
        if dir.as_os_str().is_empty() || dir == Path::new("/") {
            return true;
        }
        self.files
            .range(dir.clone()..)
            .find(|(p, _)| **p != dir)
            .is_some_and(|(p, _)| p.starts_with(&dir))
    }
    fn is_file(&self, path: &Path) -> bool {
        self.files.contains_key(&normalize(path))
    }
}

/// In-memory files layered over another file system, e.g. a generated `kustomization.yaml`
/// placed over an unpacked artifact without writing to it.
pub struct OverlayFileSystem<'a> {
    base: &'a dyn FileSystem,
    overlay: MemoryFileSystem,
}

impl<'a> OverlayFileSystem<'a> {
    /// Layers `overlay` over `base`: its files win.
    pub fn new(base: &'a dyn FileSystem, overlay: MemoryFileSystem) -> Self {
        OverlayFileSystem { base, overlay }
    }
}

impl FileSystem for OverlayFileSystem<'_> {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        if self.overlay.is_file(path) { self.overlay.read(path) } else { self.base.read(path) }
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.base.is_dir(path)
            || (self.overlay.files.keys().any(|p| p.starts_with(normalize(path)))
                && !self.overlay.is_file(path))
    }
    fn is_file(&self, path: &Path) -> bool {
        self.overlay.is_file(path) || self.base.is_file(path)
    }
}

/// Lexically normalises a path: drops `.`, resolves `..` against earlier parts.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
