//! A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager.
//!
//! Everything binds 127.0.0.1 on free ports. The apiserver runs with RBAC, a static admin token
//! (`system:masters`) and service-account signing keys; it serves a self-signed certificate, so
//! the kubeconfig says `insecure-skip-tls-verify: true`. The controller-manager runs the
//! garbagecollector, namespace and serviceaccount-token controllers, so owner references are
//! collected and namespaces really terminate. Stopping goes controller-manager, then apiserver,
//! then etcd (an apiserver whose etcd is gone hangs on retries).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::paths::ClusterBinaries;
use crate::process::{self, Lifetime, ServerProcess};

/// How long the apiserver may take to answer `/readyz` with `ok`.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Options of [`Cluster::start`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The state directory (etcd data, certificates, logs, kubeconfig). A fresh temporary
    /// directory, removed at the end, when `None`.
    pub dir: Option<PathBuf>,
    /// Whether to run kube-controller-manager as well (default true).
    pub controller_manager: bool,
    /// [`Lifetime::Guarded`] for tests; [`Lifetime::Detached`] for `cargo xtask cluster up --detach`.
    pub lifetime: Lifetime,
    /// kube-controller-manager controllers to run besides garbagecollector, namespace and
    /// serviceaccount-token (e.g. `deployment` and `replicaset` for the scale benchmark, so
    /// Deployments get a status).
    pub extra_controllers: Vec<String>,
    /// Extra kube-controller-manager flags (e.g. `--kube-api-qps=200` for the scale benchmark).
    pub controller_manager_args: Vec<String>,
    /// Extra kube-apiserver flags; a repeated flag overrides the default (e.g. a larger
    /// `--service-cluster-ip-range` than the /24 for thousands of Services).
    pub apiserver_args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            dir: None,
            controller_manager: true,
            lifetime: Lifetime::Guarded,
            extra_controllers: Vec::new(),
            controller_manager_args: Vec::new(),
            apiserver_args: Vec::new(),
        }
    }
}

/// A running control plane. Dropping it stops the processes in order.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    remove_dir: bool,
    server_url: String,
    token: String,
    kubeconfig: PathBuf,
    /// etcd, apiserver, controller-manager: stopped in reverse order.
    processes: Vec<ServerProcess>,
    startup: Duration,
}

impl Cluster {
    /// Starts etcd, the apiserver and (optionally) the controller-manager and waits for `/readyz`.
    ///
    /// # Errors
    /// When a binary is missing (the message says how to build it), a server exits early (the
    /// message has the end of its log), or the apiserver is not ready in time.
    pub async fn start(options: ClusterOptions) -> Result<Cluster> {
        crate::install_crypto_provider();
        let started = Instant::now();
        let binaries = ClusterBinaries::locate()?;
        let (dir, remove_dir) = match &options.dir {
            Some(dir) => {
                fs::create_dir_all(dir)
                    .with_context(|| format!("creating cluster directory {}", dir.display()))?;
                (dir.clone(), false)
            }
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("sluice-cluster-")
                    .tempdir()
                    .context("creating a temporary directory for the cluster")?
                    .keep();
                (dir, true)
            }
        };
        if remove_dir && options.lifetime == Lifetime::Guarded {
            process::remove_dir_at_exit(&dir)?;
        }
        let mut cluster = Cluster {
            dir: dir.clone(),
            remove_dir,
            server_url: String::new(),
            token: process::random_hex(16),
            kubeconfig: dir.join("kubeconfig"),
            processes: Vec::new(),
            startup: Duration::ZERO,
        };
        cluster.write_credentials()?;
        let etcd_url = cluster.start_etcd(&binaries, options.lifetime)?;
        cluster
            .start_apiserver(&binaries, &etcd_url, options.lifetime, &options.apiserver_args)
            .await?;
        cluster.write_kubeconfig()?;
        if options.controller_manager {
            cluster.start_controller_manager(
                &binaries,
                options.lifetime,
                &options.extra_controllers,
                &options.controller_manager_args,
            )?;
        }
        cluster.startup = started.elapsed();
        Ok(cluster)
    }

    fn write_credentials(&self) -> Result<()> {
        // Generating an RSA key takes up to a second on a busy machine: make one per cache.
        let (key, public) = service_account_keys()?;
        fs::copy(&key, self.dir.join("sa.key")).context("copying the service-account key")?;
        fs::copy(&public, self.dir.join("sa.pub")).context("copying the service-account key")?;
        fs::write(
            self.dir.join("tokens.csv"),
            format!("{},admin,admin-uid,\"system:masters\"\n", self.token),
        )
        .context("writing tokens.csv")?;
        Ok(())
    }

    fn start_etcd(&mut self, binaries: &ClusterBinaries, lifetime: Lifetime) -> Result<String> {
        for attempt in 1..=3 {
            let client_port = process::free_port()?;
            let peer_port = process::free_port()?;
            let client_url = format!("http://127.0.0.1:{client_port}");
            let peer_url = format!("http://127.0.0.1:{peer_port}");
            let data_dir = self.dir.join("etcd");
            let _ = fs::remove_dir_all(&data_dir);
            let mut command = Command::new(&binaries.etcd);
            command
                .args(["--name", "sluice"])
                .arg("--data-dir")
                .arg(&data_dir)
                .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &format!("sluice={peer_url}")])
                .args(["--unsafe-no-fsync", "--log-level", "warn", "--logger", "zap"]);
            let mut etcd =
                ServerProcess::spawn("etcd", command, &self.dir.join("etcd.log"), lifetime)?;
            match process::wait_for_port(&mut etcd, client_port, Duration::from_secs(30)) {
                Ok(()) => {
                    self.processes.push(etcd);
                    return Ok(client_url);
                }
                Err(err) if attempt < 3 && etcd.failed_on_port_in_use() => {
                    eprintln!("sluice-e2e: etcd port taken, retrying: {err}");
                }
                Err(err) => return Err(err),
            }
        }
        bail!("etcd could not bind a free port after 3 attempts")
    }

    async fn start_apiserver(
        &mut self,
        binaries: &ClusterBinaries,
        etcd_url: &str,
        lifetime: Lifetime,
        extra_flags: &[String],
    ) -> Result<()> {
        for attempt in 1..=3 {
            let port = process::free_port()?;
            let dir = &self.dir;
            let mut command = Command::new(&binaries.apiserver);
            command
                .args(["--etcd-servers", etcd_url])
                .args(["--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1"])
                .args(["--secure-port", &port.to_string()])
                .arg(format!("--cert-dir={}", dir.join("certs").display()))
                .arg(format!("--token-auth-file={}", dir.join("tokens.csv").display()))
                .args(["--authorization-mode", "RBAC"])
                .args(["--service-account-issuer", "https://kubernetes.default.svc"])
                .arg(format!("--service-account-key-file={}", dir.join("sa.pub").display()))
                .arg(format!("--service-account-signing-key-file={}", dir.join("sa.key").display()))
                // Configuration only: nothing routes traffic to service IPs here.
                .args(["--service-cluster-ip-range", "10.0.0.0/24"])
                .args(["--allow-privileged=true", "-v", "1"])
                .args(extra_flags)
                .args(extra_args("SLUICE_APISERVER_EXTRA_ARGS"));
            let mut apiserver = ServerProcess::spawn(
                "kube-apiserver",
                command,
                &dir.join("kube-apiserver.log"),
                lifetime,
            )?;
            self.server_url = format!("https://127.0.0.1:{port}");
            match self.wait_ready(&mut apiserver).await {
                Ok(()) => {
                    self.processes.push(apiserver);
                    return Ok(());
                }
                Err(err) if attempt < 3 && apiserver.failed_on_port_in_use() => {
                    eprintln!("sluice-e2e: apiserver port taken, retrying: {err}");
                }
                Err(err) => return Err(err),
            }
        }
        bail!("kube-apiserver could not bind a free port after 3 attempts")
    }

    /// Polls `GET /readyz` until it answers `ok`.
    async fn wait_ready(&self, apiserver: &mut ServerProcess) -> Result<()> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(5))
            .build()
            .context("building an HTTP client")?;
        let url = format!("{}/readyz", self.server_url);
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            apiserver.ensure_running()?;
            let last = match http.get(&url).bearer_auth(&self.token).send().await {
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    if status.is_success() && body.trim() == "ok" {
                        return Ok(());
                    }
                    format!("{status}: {}", body.trim())
                }
                Err(err) => err.to_string(),
            };
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "kube-apiserver at {url} not ready within {READY_TIMEOUT:?} (last answer: \
                     {last}); end of its log {}:\n{}",
                    apiserver.log_path().display(),
                    apiserver.log_tail(3000)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn write_kubeconfig(&self) -> Result<()> {
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sluice-e2e\n  cluster:\n    server: {}\n    \
             insecure-skip-tls-verify: true\nusers:\n- name: admin\n  user:\n    token: {}\n\
             contexts:\n- name: sluice-e2e\n  context:\n    cluster: sluice-e2e\n    user: admin\n    \
             namespace: default\ncurrent-context: sluice-e2e\n",
            self.server_url, self.token
        );
        fs::write(&self.kubeconfig, kubeconfig)
            .with_context(|| format!("writing {}", self.kubeconfig.display()))
    }

    fn start_controller_manager(
        &mut self,
        binaries: &ClusterBinaries,
        lifetime: Lifetime,
        extra_controllers: &[String],
        extra_flags: &[String],
    ) -> Result<()> {
        let mut controllers = vec!["garbagecollector", "namespace", "serviceaccount-token"];
        controllers.extend(extra_controllers.iter().map(String::as_str));
        let mut command = Command::new(&binaries.controller_manager);
        command
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(["--leader-elect=false", "--port=0", "--secure-port=0"])
            .args(["--bind-address", "127.0.0.1"])
            .args(["--controllers", &controllers.join(",")])
            .arg(format!(
                "--service-account-private-key-file={}",
                self.dir.join("sa.key").display()
            ))
            .args(["-v", "1"])
            .args(extra_flags)
            .args(extra_args("SLUICE_CONTROLLER_MANAGER_EXTRA_ARGS"));
        let mut controller_manager = ServerProcess::spawn(
            "kube-controller-manager",
            command,
            &self.dir.join("kube-controller-manager.log"),
            lifetime,
        )?;
        controller_manager.ensure_running()?;
        self.processes.push(controller_manager);
        Ok(())
    }

    /// The apiserver URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The admin bearer token (member of `system:masters`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The kubeconfig file (token auth, `insecure-skip-tls-verify: true`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The state directory (logs: `etcd.log`, `kube-apiserver.log`, `kube-controller-manager.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long [`Cluster::start`] took until `/readyz` answered and the kubeconfig was written.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The running processes as `(name, pid)`, in start order (etcd first).
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.processes.iter().map(|process| (process.name().to_owned(), process.pid())).collect()
    }

    /// A new kube client for this cluster, bound to the calling tokio runtime.
    ///
    /// # Errors
    /// When the kubeconfig cannot be read.
    pub async fn client(&self) -> Result<kube::Client> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// Fails when a control-plane process has exited.
    ///
    /// # Errors
    /// Names the process and shows the end of its log.
    pub fn ensure_running(&mut self) -> Result<()> {
        self.processes.iter_mut().try_for_each(ServerProcess::ensure_running)
    }

    /// Leaves the processes running (for `--detach`) and returns their `(name, pid)`.
    pub fn detach(mut self) -> Vec<(String, u32)> {
        let pids = self.pids();
        self.remove_dir = false;
        for process in std::mem::take(&mut self.processes) {
            process.release();
        }
        pids
    }

    /// Stops controller-manager, apiserver, etcd in that order and removes a temporary directory.
    pub fn stop(&mut self) {
        while let Some(mut process) = self.processes.pop() {
            process.stop(Duration::from_secs(10));
        }
        if self.remove_dir {
            self.remove_dir = false;
            let _ = fs::remove_dir_all(&self.dir);
            process::forget_dir(&self.dir);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A kube client from a kubeconfig file (installs the rustls `ring` provider first).
///
/// # Errors
/// When the file cannot be read or parsed.
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client> {
    crate::install_crypto_provider();
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    kube::Client::try_from(config).context("building a kube client")
}

/// The service-account signing key pair `(private, public)`, generated once into the cache.
fn service_account_keys() -> Result<(PathBuf, PathBuf)> {
    let cache = crate::paths::cache_dir();
    let dir = cache.join("sa-keys");
    let pair = |dir: &Path| (dir.join("sa.key"), dir.join("sa.pub"));
    if dir.join("sa.pub").is_file() {
        return Ok(pair(&dir));
    }
    // Generate in a private directory and rename it into place: concurrent test processes
    // then see either no pair or a complete, matching one.
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let staging = cache.join(format!("sa-keys.{}", process::random_hex(4)));
    fs::create_dir_all(&staging)?;
    let (key, public) = pair(&staging);
    process::run_tool(Command::new("openssl").args(["genrsa", "-out"]).arg(&key).arg("2048"))
        .context("generating the service-account signing key (apt-get install openssl)")?;
    process::run_tool(
        Command::new("openssl")
            .args(["rsa", "-in"])
            .arg(&key)
            .args(["-pubout", "-out"])
            .arg(&public),
    )?;
    if fs::rename(&staging, &dir).is_err() {
        // Another process won the race; use its pair.
        let _ = fs::remove_dir_all(&staging);
    }
    Ok(pair(&dir))
}

/// Extra command-line arguments from a whitespace-separated environment variable.
fn extra_args(var: &str) -> Vec<String> {
    std::env::var(var)
        .map(|value| value.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Runs [`Cluster::start`] on a runtime of its own (for synchronous callers such as xtask).
///
/// # Errors
/// See [`Cluster::start`].
pub fn start_blocking(options: ClusterOptions) -> Result<Cluster> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a tokio runtime")?
        .block_on(Cluster::start(options))
}

/// Blocks until Ctrl-C (`SIGINT`) or `SIGTERM` arrives.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn wait_for_interrupt() -> Result<()> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = terminate.recv() => {}
        }
        Ok(())
    })
}

/// The apiserver's answer to `GET /readyz` (`ok` when ready).
///
/// # Errors
/// When the request fails or the apiserver answers with an error status.
pub async fn readyz(client: &kube::Client) -> Result<String> {
    let request = axum::http::Request::get("/readyz").body(Vec::new())?;
    Ok(client.request_text(request).await?)
}

/// [`readyz`] for the cluster of `kubeconfig`, on a runtime of its own (synchronous callers).
///
/// # Errors
/// When the kubeconfig cannot be read or the request fails.
pub fn readyz_blocking(kubeconfig: &Path) -> Result<String> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
        let client = client_from_kubeconfig(kubeconfig).await?;
        readyz(&client).await
    })
}
