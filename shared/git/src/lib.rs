//! Git for sluice: checkout with gix, remote-head checks, Flux revision strings, commit and push.
//!
//! The source-controller fetches a [`GitRef`] with [`fetch_tree`] (the commit's [`Tree`] read
//! from the object database, no worktree; a checkout as [`checkout`] makes when one is needed)
//! and records the returned [`Commit::revision`]; before cloning it asks [`remote_revision`] (or [`remote_head`]) whether
//! the ref moved, and with the `verify` feature checks signatures with [`Commit::verify`].
//! Image automation and bootstrap use [`clone_for_write`], [`commit_all`] (or
//! `commit_all_signed`), [`push`] and [`commit_all_and_push`].
//! Everything here is blocking: call it from `tokio::task::spawn_blocking`.
//!
//! Transports: `https`/`http` through gix's reqwest backend (rustls with the ring provider,
//! installed on first use if the process has none), `ssh` through the external `ssh` binary with
//! the Secret's key and known_hosts (strict host key checking), `git://` and `file://` through
//! `git-upload-pack`. Pushing, submodules and commits run the `git` CLI, with credentials in its
//! environment (`GIT_CONFIG_*`), never in argv.
//!
//! ```no_run
//! use sluice_git::{Auth, CheckoutOptions, GitRef, checkout, remote_revision};
//!
//! # fn main() -> Result<(), sluice_git::Error> {
//! let url = "https://github.com/stefanprodan/podinfo";
//! let reference = GitRef::Semver(">=6.0.0".into());
//! let options = CheckoutOptions::default();
//! let head = remote_revision(url, &Auth::None, &reference, &options)?;
//! let commit = checkout(url, &Auth::None, &reference, "/tmp/podinfo".as_ref(), &options)?;
//! assert_eq!(head, Some(commit.revision.clone()));
//! println!("{}", commit.revision); // e.g. 6.9.2@sha1:…
//! # Ok(())
//! # }
//! ```

mod auth;
mod checkout;
mod cli;
mod error;
mod pack;
mod reference;
mod semver_tag;
mod tree;
mod url;
#[cfg(feature = "verify")]
mod verify;
mod write;

pub use auth::{Auth, HttpOptions, Proxy};
pub use checkout::{
    AnnotatedTag, CheckoutOptions, Commit, Signature, checkout, fetch_tree, remote_head,
    remote_revision,
};
pub use error::Error;
pub use reference::{DEFAULT_BRANCH, GitRef, Revision};
pub use tree::{MAPPED_BUDGET, ObjectReader, Tree, TreeEntry, TreeEntryKind};
pub use url::{RemoteUrl, Scheme, redact_url};
#[cfg(feature = "verify")]
pub use verify::{CommitSigningKey, TrustedKeys, VerificationMode};
#[cfg(feature = "verify")]
pub use write::commit_all_signed;
pub use write::{Author, PushOptions, clone_for_write, commit_all, commit_all_and_push, push};
