//! Real-cluster test harness: a genuine kube-apiserver v1.20.2 and the servers a GitOps controller talks to.
//!
//! Nothing here is a mock. [`TestEnv::shared`] starts etcd 3.4 (Debian), kube-apiserver and
//! kube-controller-manager v1.20.2 (built from Debian's source by `cargo xtask cluster build`)
//! once per test process, on 127.0.0.1 with free ports. On demand, a test starts loopback
//! servers: [`GitServer`] (smart HTTP, anonymous read under `/git/`, basic auth under
//! `/private/`), [`SshGitServer`] (sshd with a generated host key), [`Registry`] (Debian's
//! docker-registry, optionally with htpasswd), [`S3Server`] (moto) and [`CaptureServer`]
//! (records requests, answers with scripted status codes).
//!
//! Every process is stopped by PID: servers when their handle drops, and everything (cluster
//! included) when the test process exits, even by a panic or `SIGKILL`, by a watchdog that
//! notices the process's death (see [`process`]). Prepare the machine with
//! `cargo xtask cluster prepare` (Debian packages, the apiserver build, the moto venv; each
//! step skipped when done); `cargo xtask e2e` prepares and then runs this crate's tests.
//!
//! ```no_run
//! use std::time::Duration;
//! use sluice_e2e::{GitServer, TestEnv, wait_for};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let env = TestEnv::shared().await?;          // cluster started once per test process
//! env.install_crds().await?;                   // config/crd/*.yaml, Established
//! let ns = env.namespace("git-clone").await?;  // fresh namespace, deleted on drop
//! let git = GitServer::start()?;
//! let commit = git.create_repo("app", &[("deploy/cm.yaml", "kind: ConfigMap\n")])?;
//! let url = git.url("app");                    // http://127.0.0.1:P/git/app.git
//! let private = git.private_url("app");        // basic auth: GitServer::USERNAME / PASSWORD
//! # let _ = (ns, commit, url, private);
//! wait_for(Duration::from_secs(30), "the repo to be listed", || async {
//!     Ok(Some(()))                             // Ok(None) = not yet, Err = give up
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! | API | what |
//! |---|---|
//! | [`TestEnv::shared`], [`TestEnv::client`], [`TestEnv::kubeconfig`], [`TestEnv::kubectl`] | the cluster |
//! | [`TestEnv::namespace`] | a fresh namespace per test |
//! | [`TestEnv::install_crds`] | the CRDs of `config/crd/` |
//! | [`TestEnv::dynamic_api`], [`TestEnv::create_yaml`] | objects of any kind, from YAML |
//! | [`check_kstatus`] | Flux's kstatus rules on an object's conditions and observedGeneration |
//! | [`Cluster::start`] | a cluster of one's own (`cargo xtask cluster up` uses it) |
//! | [`GitServer`], [`SshGitServer`], [`GitRepos`] | git over HTTP and SSH, repos with commits |
//! | [`Registry`] | OCI registry, [`Registry::push_artifact`] |
//! | [`S3Server`] | S3 (moto), buckets and objects |
//! | [`HelmRepoServer`], [`helmrepo::chart_package`] | Helm chart repository (index.yaml + packages, basic auth) |
//! | [`CaptureServer`] | webhook receiver recording requests |
//! | [`wait_for`] | poll with a deadline (never sleep to wait) |
//! | [`provision`] | apt packages, the apiserver build, the moto venv (used by xtask) |
//!
//! Binaries are found through the `SLUICE_*` variables described in [`paths`].

pub mod capture;
pub mod cluster;
pub mod env;
pub mod git;
pub mod helmrepo;
pub mod paths;
pub mod process;
pub mod provision;
pub mod registry;
pub mod s3;

use std::future::Future;
use std::time::Duration;

use anyhow::{Result, bail};

pub use capture::{CaptureServer, CapturedRequest};
pub use cluster::{Cluster, ClusterOptions};
pub use env::{TestEnv, TestNamespace, check_kstatus};
pub use git::{GitRepos, GitServer, SshGitServer};
pub use helmrepo::HelmRepoServer;
pub use registry::Registry;
pub use s3::S3Server;

/// Installs rustls's `ring` provider as the process default (idempotent).
///
/// kube and reqwest are built without a default provider in this workspace; without this call
/// the first TLS connection panics.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Polls `check` every 100 ms until it returns `Ok(Some(value))`, for at most `timeout`.
///
/// `Ok(None)` means "not yet"; an `Err` is remembered and retried (the apiserver may be
/// briefly unavailable). `what` names the awaited state in the timeout message, which also
/// carries the last error.
///
/// # Errors
/// When `timeout` passes first.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(err) => last_error = Some(err),
        }
        if tokio::time::Instant::now() >= deadline {
            match last_error {
                Some(err) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {err:#}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks for a reconcile of the Flux object `name` as `flux reconcile` does: the
/// `reconcile.fluxcd.io/requestedAt` annotation set to now.
///
/// # Panics
/// When the API server refuses the patch (a test failure).
pub async fn request_reconcile<K>(api: &kube::Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let now = jiff::Timestamp::now().to_string();
    let patch =
        serde_json::json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": now}}});
    let params = kube::api::PatchParams::default();
    api.patch(name, &params, &kube::api::Patch::Merge(&patch)).await.unwrap();
}

/// A plain reqwest client for the loopback servers (installs the crypto provider first).
pub fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}
