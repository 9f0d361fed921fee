//! Git for sluice: checkout with gix, remote-head checks, Flux revision strings, commit and push.
//!
//! The source-controller checks out a [`GitRef`] with [`checkout`] and records the returned
//! [`Commit::revision`]; before cloning it asks [`remote_head`] whether the ref moved.
//! Image automation and bootstrap use [`clone_for_write`] and [`commit_all_and_push`].
//! Everything here is blocking: call it from `tokio::task::spawn_blocking`.
//!
//! Transports: `https`/`http` through gix's reqwest backend (rustls with the ring provider),
//! `ssh` through the external `ssh` binary with the Secret's key and known_hosts (strict host key
//! checking), `git://` and `file://` through `git-upload-pack`. Pushing runs the `git` CLI.

mod auth;
mod checkout;
mod cli;
mod error;
mod reference;
mod semver_tag;
mod url;
#[cfg(feature = "verify")]
mod verify;
mod write;

pub use auth::{Auth, HttpOptions, Proxy};
pub use checkout::{
    AnnotatedTag, CheckoutOptions, Commit, Signature, checkout, remote_head, remote_revision,
};
pub use error::Error;
pub use reference::{DEFAULT_BRANCH, GitRef, Revision};
pub use url::{RemoteUrl, Scheme, redact_url};
#[cfg(feature = "verify")]
pub use verify::{CommitSigningKey, TrustedKeys, VerificationMode};
#[cfg(feature = "verify")]
pub use write::commit_all_signed;
pub use write::{Author, PushOptions, clone_for_write, commit_all, commit_all_and_push, push};
