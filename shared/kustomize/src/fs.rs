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

/// The real file system, confined to a root: paths that resolve (through symlinks) outside it are
/// refused, as kustomize's loader refuses them. Use it for untrusted trees such as Git artifacts.
#[derive(Debug, Clone)]
pub struct ConfinedDiskFileSystem {
    root: PathBuf,
}

impl ConfinedDiskFileSystem {
    /// Confines reads to `root` (which must exist).
    ///
    /// # Errors
    /// When `root` cannot be resolved.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        Ok(ConfinedDiskFileSystem { root: std::fs::canonicalize(root)? })
    }

    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        let real = std::fs::canonicalize(path)?;
        if real.starts_with(&self.root) {
            Ok(real)
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "'{}' resolves to '{}', outside '{}'",
                    path.display(),
                    real.display(),
                    self.root.display()
                ),
            ))
        }
    }
}

impl FileSystem for ConfinedDiskFileSystem {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(self.resolve(path)?)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.resolve(path).is_ok_and(|p| p.is_dir())
    }
    fn is_file(&self, path: &Path) -> bool {
        self.resolve(path).is_ok_and(|p| p.is_file())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confined_disk_refuses_symlinks_out_of_root() {
        let base = std::env::temp_dir().join(format!("sluice-kustomize-fs-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(base.join("secret.txt"), "s").unwrap();
        std::fs::write(root.join("ok.yaml"), "ok").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.yaml")).unwrap();
        let fs = ConfinedDiskFileSystem::new(&root).unwrap();
        assert_eq!(fs.read(&root.join("ok.yaml")).unwrap(), b"ok");
        #[cfg(unix)]
        assert_eq!(
            fs.read(&root.join("link.yaml")).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        assert!(!fs.is_file(&base.join("secret.txt")));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn memory_directories_are_implied_by_files() {
        let fs = MemoryFileSystem::new().with_file("/a/b/c.yaml", "x");
        assert!(fs.is_dir(Path::new("/a")) && fs.is_dir(Path::new("/a/b")));
        assert!(
            !fs.is_dir(Path::new("/a/b/c.yaml")) && fs.is_file(Path::new("/a/./b/../b/c.yaml"))
        );
        assert!(!fs.is_dir(Path::new("/a/bb")));
    }
}
