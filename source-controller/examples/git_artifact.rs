//! Builds one GitRepository artifact with the reconcile's blocking core
//! ([`source_controller::gitrepository::build_artifact`]): shallow checkout, ignore rules and
//! the reproducible archive into a storage directory. `cargo xtask bench git` times it.
//!
//! Usage: `git_artifact <url> <storage-dir> [branch]`; prints the revision, the digest, the
//! size in bytes and the seconds taken.

use std::time::{Duration, Instant};

use anyhow::Context;
use sluice_artifact::Storage;
use sluice_git::{Auth, CheckoutOptions, GitRef};
use source_controller::gitrepository::{Build, Built, build_artifact};

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(storage_dir)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: git_artifact <url> <storage-dir> [branch]");
    };
    let branch = args.get(3).cloned().unwrap_or_else(|| "main".into());
    let storage = Storage::new(storage_dir, "localhost:9090", Duration::from_secs(60), 2)
        .context("opening the storage")?;
    let build = Build {
        url: url.clone(),
        auth: Auth::None,
        git_ref: GitRef::Branch(branch),
        options: CheckoutOptions {
            timeout: Duration::from_secs(600),
            ..CheckoutOptions::default()
        },
        namespace: "bench".into(),
        name: "repo".into(),
        ignore: None,
        verify: None,
        includes: Vec::new(),
    };
    let started = Instant::now();
    let Built { commit, stored, .. } = build_artifact(&storage, build)
        .map_err(|err| anyhow::anyhow!(sluice_runtime::conditions::error_message(&err)))?;
    println!(
        "{} {} {} {:.3}",
        commit.revision,
        stored.digest,
        stored.size,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
