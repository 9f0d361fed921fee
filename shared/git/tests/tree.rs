//! `fetch_tree`: the fetched commit's tree read from the object database, without a worktree,
//! and the checkout it falls back to.

mod support;

use sluice_git::{Auth, CheckoutOptions, GitRef, MAPPED_BUDGET, TreeEntryKind, fetch_tree};
use support::{Fixture, git};

fn branch(name: &str) -> GitRef {
    GitRef::Branch(name.into())
}

#[test]
fn tree_lists_files_symlinks_and_submodules_and_reads_them_without_a_worktree() {
    let fixture = Fixture::new();
    let work = &fixture.work;
    std::fs::create_dir_all(work.join("bin")).unwrap();
    std::fs::write(work.join("bin/run.sh"), "#!/bin/sh\n").unwrap();
    git(work, &["update-index", "--add", "--chmod=+x", "bin/run.sh"]);
    std::os::unix::fs::symlink("../README.md", work.join("bin/readme")).unwrap();
    git(work, &["add", "bin/readme"]);
    let gitlink = format!("160000,{},vendor/lib", "2".repeat(40));
    git(work, &["update-index", "--add", "--cacheinfo", &gitlink]);
    // More objects than one repository handle may read: the reader must reopen and go on.
    let per_object = 64 << 10;
    let count = MAPPED_BUDGET / per_object + 50;
    for index in 0..count {
        let dir = work.join(format!("many/{:02}", index % 10));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{index}.yaml")), format!("index: {index}\n")).unwrap();
    }
    git(work, &["add", "many"]);
    git(work, &["commit", "--quiet", "-m", "tree kinds"]);
    git(work, &["push", "--quiet", "origin", "main"]);

    let dest = fixture.dest("tree");
    let (commit, tree) =
        fetch_tree(&fixture.file_url(), &Auth::None, &branch("main"), &dest, &Default::default())
            .unwrap();
    assert_eq!(commit.sha, fixture.rev("main"));
    assert_eq!(commit.revision.to_string(), format!("main@sha1:{}", commit.sha));
    let tree = tree.expect("no worktree needed");
    // Only the repository was written, no worktree.
    let top: Vec<_> = std::fs::read_dir(&dest).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(top, vec![".git"]);

    let kind = |path: &str| {
        tree.entries().iter().find(|e| e.path == std::path::Path::new(path)).map(|e| e.kind)
    };
    assert_eq!(kind("README.md"), Some(TreeEntryKind::File));
    assert_eq!(kind("apps/app.yaml"), Some(TreeEntryKind::File));
    assert_eq!(kind("bin/run.sh"), Some(TreeEntryKind::Executable));
    assert_eq!(kind("bin/readme"), Some(TreeEntryKind::Symlink));
    assert_eq!(kind("vendor/lib"), Some(TreeEntryKind::Submodule));
    assert_eq!(kind("apps"), None, "directories are implied");

    let mut reader = tree.reader();
    let mut buf = Vec::new();
    let mut read = 0;
    for entry in tree.entries() {
        match entry.kind {
            TreeEntryKind::File | TreeEntryKind::Executable | TreeEntryKind::Symlink => {
                reader.read(entry, &mut buf).unwrap();
                let on_disk = match entry.kind {
                    TreeEntryKind::Symlink => std::fs::read_link(work.join(&entry.path))
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                    _ => std::fs::read(work.join(&entry.path)).unwrap(),
                };
                assert_eq!(buf, on_disk, "{}", entry.path.display());
                read += 1;
            }
            TreeEntryKind::Submodule => {
                let err = reader.read(entry, &mut buf).unwrap_err().to_string();
                assert!(err.contains("vendor/lib"), "{err}");
            }
        }
    }
    assert!(read as u64 > count, "{read} objects read");
}

#[test]
fn attributes_submodules_and_sparse_paths_get_a_checkout() {
    let fixture = Fixture::new();
    fixture.commit(".gitattributes", "*.txt eol=crlf\n", "attributes");
    fixture.commit("notes.txt", "one\ntwo\n", "notes");
    git(&fixture.work, &["push", "--quiet", "origin", "main"]);
    let url = fixture.file_url();

    let dest = fixture.dest("attributes");
    let (_, tree) =
        fetch_tree(&url, &Auth::None, &branch("main"), &dest, &Default::default()).unwrap();
    assert!(tree.is_none(), "a .gitattributes file may convert contents");
    assert_eq!(std::fs::read(dest.join("notes.txt")).unwrap(), b"one\r\ntwo\r\n");

    let sparse = CheckoutOptions { sparse_paths: vec!["apps".into()], ..Default::default() };
    let dest = fixture.dest("sparse");
    let (_, tree) = fetch_tree(&url, &Auth::None, &branch("main"), &dest, &sparse).unwrap();
    assert!(tree.is_none());
    assert!(dest.join("apps/app.yaml").is_file() && !dest.join("README.md").exists());

    let submodules = CheckoutOptions { recurse_submodules: true, ..Default::default() };
    let dest = fixture.dest("submodules");
    let (_, tree) = fetch_tree(&url, &Auth::None, &branch("main"), &dest, &submodules).unwrap();
    assert!(tree.is_none());
    assert!(dest.join("README.md").is_file());
}

#[test]
fn packs_with_deltas_tags_and_missing_refs_over_git_daemon() {
    let fixture = Fixture::new();
    // Versions of one file that differ a little: the server sends deltas for a full fetch.
    let mut body: String = (0..2000).map(|line| format!("line {line}\n")).collect();
    for version in 0..20 {
        body.push_str(&format!("version {version}\n"));
        fixture.commit("apps/big.txt", &body, &format!("version {version}"));
    }
    git(&fixture.work, &["tag", "-a", "v3.0.0", "-m", "release 3"]);
    git(&fixture.work, &["push", "--quiet", "origin", "main", "--tags"]);
    let daemon = support::git_daemon(fixture.bare.parent().unwrap());
    let url = format!("git://127.0.0.1:{}/app.git", daemon.port);

    let full = CheckoutOptions { shallow: false, ..Default::default() };
    let dest = fixture.dest("full");
    let (commit, tree) = fetch_tree(&url, &Auth::None, &branch("main"), &dest, &full).unwrap();
    assert_eq!(commit.sha, fixture.rev("main"));
    let tree = tree.unwrap();
    let entry = tree.entries().iter().find(|e| e.path.ends_with("big.txt")).unwrap();
    let mut buf = Vec::new();
    tree.reader().read(entry, &mut buf).unwrap();
    assert_eq!(buf, body.as_bytes());
    // git itself accepts the pack and the index written for it, deltas included.
    let verify = git(&dest, &["verify-pack", "-v", &pack_index(&dest)]);
    assert!(verify.contains("chain length = 1"), "deltas expected:\n{verify}");
    git(&dest, &["fsck", "--full", "--no-dangling"]);
    assert_eq!(git(&dest, &["rev-list", "--count", "HEAD"]), "24");

    let dest = fixture.dest("tag");
    let tag = GitRef::Tag("v3.0.0".into());
    let (commit, tree) = fetch_tree(&url, &Auth::None, &tag, &dest, &Default::default()).unwrap();
    assert!(tree.is_some());
    assert_eq!(commit.revision.to_string(), format!("v3.0.0@sha1:{}", fixture.rev("main")));
    assert_eq!(commit.tag.unwrap().message.trim(), "release 3");
    git(&dest, &["fsck", "--no-dangling"]);
    assert_eq!(std::fs::read_to_string(dest.join(".git/shallow")).unwrap().trim(), commit.sha);

    let err =
        fetch_tree(&url, &Auth::None, &branch("nope"), &fixture.dest("nope"), &full).unwrap_err();
    assert_eq!(err.to_string(), format!("branch 'nope' not found in {url}"));
    assert!(!fixture.dest("nope").exists(), "a failed fetch leaves nothing behind");
}

/// The path of the only pack index of a repository.
fn pack_index(dest: &std::path::Path) -> String {
    let dir = dest.join(".git/objects/pack");
    let mut indexes: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    indexes.pop().unwrap().display().to_string()
}
