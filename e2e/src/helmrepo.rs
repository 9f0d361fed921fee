//! A static Helm chart repository on 127.0.0.1: `index.yaml` plus chart packages, optionally
//! behind basic auth.
//!
//! [`HelmRepoServer::publish`] adds a chart package (`<name>-<version>.tgz`) and regenerates
//! `index.yaml` as `helm repo index` would (entries by name, versions newest first, relative
//! URLs, sha256 digests). [`HelmRepoServer::set_index`] replaces the index with raw bytes, to
//! serve a broken or oversized one. [`chart_package`] builds a minimal chart `.tgz` in memory.
//! It runs on its own thread with its own tokio runtime and stops when dropped.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest;

#[derive(Debug, Default)]
struct Repo {
    /// Published charts: name → version → package bytes.
    charts: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// A raw index replacing the generated one.
    raw_index: Option<Vec<u8>>,
    /// `(username, password)` required on every request.
    auth: Option<(String, String)>,
    /// Paths requested so far.
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Repo>>;

fn lock(repo: &Shared) -> MutexGuard<'_, Repo> {
    repo.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running Helm repository server (see the module docs).
#[derive(Debug)]
pub struct HelmRepoServer {
    port: u16,
    repo: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HelmRepoServer {
    /// The username required when started with [`HelmRepoServer::start_with_auth`].
    pub const USERNAME: &'static str = "helm-user";
    /// The password required when started with [`HelmRepoServer::start_with_auth`].
    pub const PASSWORD: &'static str = "helm-secret-password";

    /// Starts an anonymous repository with an empty index.
    ///
    /// # Errors
    /// When loopback cannot be bound or the runtime cannot start.
    pub fn start() -> Result<HelmRepoServer> {
        Self::start_inner(None)
    }

    /// Starts a repository that answers 401 unless the request carries basic auth with
    /// [`HelmRepoServer::USERNAME`] and [`HelmRepoServer::PASSWORD`].
    ///
    /// # Errors
    /// As [`HelmRepoServer::start`].
    pub fn start_with_auth() -> Result<HelmRepoServer> {
        Self::start_inner(Some((Self::USERNAME.to_owned(), Self::PASSWORD.to_owned())))
    }

    fn start_inner(auth: Option<(String, String)>) -> Result<HelmRepoServer> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("binding the Helm repository to 127.0.0.1")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let repo = Arc::new(Mutex::new(Repo { auth, ..Repo::default() }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the Helm repository's runtime")?;
        let (shutdown, shutdown_signal) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new().fallback(serve).with_state(repo.clone());
        let thread = std::thread::Builder::new()
            .name(format!("helm-repo-{port}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = shutdown_signal.await;
                        })
                        .await;
                });
            })
            .context("starting the Helm repository thread")?;
        Ok(HelmRepoServer { port, repo, shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// `http://127.0.0.1:<port>` (the repository URL; the index is at `/index.yaml`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Publishes a chart package as `<name>-<version>.tgz` and regenerates the index.
    pub fn publish(&self, name: &str, version: &str, package: Vec<u8>) {
        lock(&self.repo)
            .charts
            .entry(name.to_owned())
            .or_default()
            .insert(version.to_owned(), package);
    }

    /// Serves `index` as `index.yaml` instead of the generated index (`None` goes back to it).
    pub fn set_index(&self, index: Option<Vec<u8>>) {
        lock(&self.repo).raw_index = index;
    }

    /// The index the server currently generates from its charts.
    pub fn generated_index(&self) -> String {
        generate_index(&lock(&self.repo).charts)
    }

    /// The paths requested so far, oldest first.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.repo).requests.clone()
    }
}

impl Drop for HelmRepoServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn generate_index(charts: &BTreeMap<String, BTreeMap<String, Vec<u8>>>) -> String {
    let mut out = String::from("apiVersion: v1\nentries:\n");
    for (name, versions) in charts {
        out.push_str(&format!("  {name}:\n"));
        let mut ordered: Vec<_> = versions.iter().collect();
        ordered.sort_by_key(|(version, _)| std::cmp::Reverse(version_key(version)));
        for (version, package) in ordered {
            let digest = hex::encode(sha2::Sha256::digest(package));
            out.push_str(&format!(
                "  - apiVersion: v2\n    name: {name}\n    version: {version}\n    digest: {digest}\n    created: \"2026-01-01T00:00:00Z\"\n    urls:\n    - charts/{name}-{version}.tgz\n"
            ));
        }
    }
    out.push_str("generated: \"2026-01-01T00:00:00Z\"\n");
    out
}

/// Numeric sort key of `x.y.z` (pre-releases are not used by the tests' generated indexes).
fn version_key(version: &str) -> Vec<u64> {
    version.split(['.', '-', '+']).map(|part| part.parse().unwrap_or(0)).collect()
}

fn authorized(repo: &Repo, request: &Request) -> bool {
    use base64::Engine;
    let Some((username, password)) = &repo.auth else { return true };
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .is_some_and(|value| value == expected)
}

async fn serve(State(repo): State<Shared>, request: Request) -> Response {
    let repo = &mut *lock(&repo);
    let path = request.uri().path().to_owned();
    repo.requests.push(path.clone());
    if !authorized(repo, &request) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"helm\"")],
            "unauthorized",
        )
            .into_response();
    }
    if path == "/index.yaml" {
        let body =
            repo.raw_index.clone().unwrap_or_else(|| generate_index(&repo.charts).into_bytes());
        return ([(header::CONTENT_TYPE, "text/yaml")], body).into_response();
    }
    let package = path.strip_prefix("/charts/").and_then(|file| {
        let file = file.strip_suffix(".tgz")?;
        repo.charts.iter().find_map(|(name, versions)| {
            let version = file.strip_prefix(name.as_str())?.strip_prefix('-')?;
            versions.get(version).cloned()
        })
    });
    match package {
        Some(bytes) => ([(header::CONTENT_TYPE, "application/gzip")], bytes).into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// A minimal chart package: `Chart.yaml` (apiVersion v2), `values.yaml` and one ConfigMap
/// template, plus `extra` files (`(path, content)` relative to the chart root), laid out as
/// `helm package` does (`<name>/…` entries).
///
/// # Errors
/// When writing the archive fails.
pub fn chart_package(name: &str, version: &str, extra: &[(&str, &str)]) -> Result<Vec<u8>> {
    let mut files: Vec<(String, String)> = vec![
        ("Chart.yaml".into(), format!("apiVersion: v2\nname: {name}\nversion: {version}\n")),
        ("values.yaml".into(), "message: hello\n".into()),
        (
            "templates/configmap.yaml".into(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  message: {{ .Values.message | quote }}\n  version: {{ .Chart.Version | quote }}\n".into(),
        ),
    ];
    for (path, content) in extra {
        files.retain(|(existing, _)| existing != path);
        files.push(((*path).to_owned(), (*content).to_owned()));
    }
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    for (path, content) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        header.set_mtime(0);
        builder
            .append_data(&mut header, format!("{name}/{path}"), content.as_bytes())
            .context("writing the chart archive")?;
    }
    Ok(builder.into_inner()?.finish()?)
}
