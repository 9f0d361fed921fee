//! A fetched commit's tree read straight from the object database, without a worktree.
//!
//! gix memory-maps pack files and every page a read touches stays resident while the pack
//! stays mapped, so a walk over a large tree would keep the whole pack in the process's RSS.
//! [`ObjectReader`] therefore drops its repository handle (and with it the store's mappings)
//! and reopens it after each [`MAPPED_BUDGET`] of object data read.

use std::path::{Path, PathBuf};

use gix::objs::Find;
use gix::objs::tree::EntryKind;

use crate::Error;
use crate::checkout::describe;

/// Object bytes read through one repository handle before it is reopened. Each object is
/// charged its size plus [`FAULT_AROUND`], since the kernel maps that much around a fault.
pub const MAPPED_BUDGET: u64 = 24 << 20;

/// What the kernel maps around one page fault of a file mapping (`fault_around_bytes`).
const FAULT_AROUND: u64 = 64 << 10;

/// What a [`TreeEntry`] is in the worktree a checkout would write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeEntryKind {
    /// A regular file.
    File,
    /// A regular file with the executable bit.
    Executable,
    /// A symbolic link.
    Symlink,
    /// A submodule commit: an empty directory in a checkout without submodules.
    Submodule,
}

/// One non-directory entry of a tree; directories are implied by the paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Path from the root of the tree.
    pub path: PathBuf,
    /// What it is.
    pub kind: TreeEntryKind,
    id: gix::ObjectId,
}

/// The tree of a fetched commit: its entries, readable with [`Tree::reader`].
#[derive(Debug)]
pub struct Tree {
    git_dir: PathBuf,
    url: String,
    entries: Vec<TreeEntry>,
    has_attributes: bool,
}

impl Tree {
    /// Every file, symlink and submodule of the tree, depth first.
    pub fn entries(&self) -> &[TreeEntry] {
        &self.entries
    }

    /// A reader of the entries' contents.
    pub fn reader(&self) -> ObjectReader {
        ObjectReader::new(&self.git_dir, &self.url)
    }

    /// Whether a checkout could change file contents: a `.gitattributes` file anywhere in the
    /// tree (end-of-line conversion, `ident`, filter drivers).
    pub(crate) fn has_attributes(&self) -> bool {
        self.has_attributes
    }

    /// Lists the tree `tree_id` of the repository at `git_dir`.
    pub(crate) fn list(git_dir: &Path, url: &str, tree_id: gix::ObjectId) -> Result<Tree, String> {
        let mut reader = ObjectReader::new(git_dir, url);
        let mut entries = Vec::new();
        let mut has_attributes = false;
        let mut pending = vec![(tree_id, PathBuf::new())];
        let mut data = Vec::new();
        while let Some((id, dir)) = pending.pop() {
            reader.read_object(id, gix::object::Kind::Tree, &mut data)?;
            let tree = gix::objs::TreeRef::from_bytes(&data, gix::hash::Kind::Sha1)
                .map_err(|err| format!("decoding tree {id}: {}", describe(&err)))?;
            for entry in tree.entries {
                let name: &[u8] = entry.filename.as_ref();
                if !is_safe_component(name) {
                    return Err(format!(
                        "tree {id} has an entry named {:?}, which no checkout writes",
                        String::from_utf8_lossy(name)
                    ));
                }
                let Ok(component) = gix::path::from_byte_slice(name) else {
                    return Err(format!("tree {id} has an entry named {name:?} that is no path"));
                };
                let path = dir.join(component);
                if name == b".gitattributes" {
                    has_attributes = true;
                }
                let kind = match entry.mode.kind() {
                    EntryKind::Tree => {
                        pending.push((entry.oid.to_owned(), path));
                        continue;
                    }
                    EntryKind::Blob => TreeEntryKind::File,
                    EntryKind::BlobExecutable => TreeEntryKind::Executable,
                    EntryKind::Link => TreeEntryKind::Symlink,
                    EntryKind::Commit => TreeEntryKind::Submodule,
                };
                entries.push(TreeEntry { path, kind, id: entry.oid.to_owned() });
            }
        }
        Ok(Tree { git_dir: git_dir.to_owned(), url: url.to_owned(), entries, has_attributes })
    }
}

/// A name a checkout writes as is: not empty, `.`, `..` or `.git`, no `/` or NUL.
fn is_safe_component(name: &[u8]) -> bool {
    !(name.is_empty()
        || name == b"."
        || name == b".."
        || name.eq_ignore_ascii_case(b".git")
        || name.contains(&b'/')
        || name.contains(&0))
}

/// Reads objects of a repository, reopening it after [`MAPPED_BUDGET`] bytes so that the
/// pages of its packs do not accumulate in memory.
pub struct ObjectReader {
    git_dir: PathBuf,
    url: String,
    repo: Option<gix::Repository>,
    charged: u64,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader").field("git_dir", &self.git_dir).finish_non_exhaustive()
    }
}

impl ObjectReader {
    fn new(git_dir: &Path, url: &str) -> ObjectReader {
        ObjectReader {
            git_dir: git_dir.to_owned(),
            url: url.to_owned(),
            repo: None,
            charged: 0,
            scratch: Vec::new(),
        }
    }

    /// Fills `out` with the contents of a file or the target of a symlink.
    ///
    /// # Errors
    /// [`Error::Operation`] when the object is missing, corrupt or not a blob.
    pub fn read(&mut self, entry: &TreeEntry, out: &mut Vec<u8>) -> Result<(), Error> {
        self.read_object(entry.id, gix::object::Kind::Blob, out).map_err(|detail| {
            Error::Operation {
                operation: "reading objects",
                url: self.url.clone(),
                detail: format!("{}: {detail}", entry.path.display()),
            }
        })
    }

    fn read_object(
        &mut self,
        id: gix::ObjectId,
        kind: gix::object::Kind,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        if self.charged >= MAPPED_BUDGET {
            // Dropping the repository drops its object store and unmaps its packs.
            self.repo = None;
            self.charged = 0;
        }
        let repo = match &mut self.repo {
            Some(repo) => repo,
            None => {
                let repo = gix::open_opts(&self.git_dir, gix::open::Options::isolated()).map_err(
                    |err| format!("opening {}: {}", self.git_dir.display(), describe(&err)),
                )?;
                self.repo.insert(repo)
            }
        };
        let data = repo
            .objects
            .try_find(&id, &mut self.scratch)
            .map_err(|err| format!("reading object {id}: {}", describe(&err)))?
            .ok_or_else(|| format!("object {id} is missing"))?;
        if data.kind != kind {
            return Err(format!("object {id} is a {}, not a {kind}", data.kind));
        }
        out.clear();
        out.extend_from_slice(data.data);
        self.charged += out.len() as u64 + FAULT_AROUND;
        Ok(())
    }
}
