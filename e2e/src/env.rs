//! The shared test cluster of a test process, fresh namespaces per test, and the CRDs of config/crd.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use tokio::sync::OnceCell;

use crate::cluster::{Cluster, ClusterOptions};

/// The field manager the harness applies with.
pub const FIELD_MANAGER: &str = "sluice-e2e";

static SHARED: OnceCell<Result<Cluster, String>> = OnceCell::const_new();
static CRDS: OnceCell<Result<Vec<String>, String>> = OnceCell::const_new();

/// The test process's cluster plus a kube client bound to the calling test's runtime.
///
/// `#[tokio::test]` gives every test its own runtime, and a kube client must not outlive the
/// runtime that created it, so each test calls [`TestEnv::shared`] and gets a fresh client to a
/// cluster started once per test process.
#[derive(Clone)]
pub struct TestEnv {
    cluster: &'static Cluster,
    client: kube::Client,
}

impl TestEnv {
    /// The cluster of this test process (started on first use, stopped when the process
    /// exits, even by a panic or `SIGKILL`), with a new client.
    ///
    /// # Errors
    /// When the cluster cannot start; every later call returns the same message.
    pub async fn shared() -> Result<TestEnv> {
        let cluster = SHARED
            .get_or_init(|| async {
                let cluster = Cluster::start(ClusterOptions::default())
                    .await
                    .map_err(|err| format!("{err:#}"))?;
                eprintln!(
                    "sluice-e2e: cluster {} ready in {:.1?} (kubeconfig {})",
                    cluster.server_url(),
                    cluster.startup_time(),
                    cluster.kubeconfig_path().display()
                );
                Ok(cluster)
            })
            .await
            .as_ref()
            .map_err(|err| anyhow!("starting the test cluster: {err}"))?;
        let client = cluster.client().await?;
        Ok(TestEnv { cluster, client })
    }

    /// A kube client (cheap to clone).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The cluster (URL, token, kubeconfig, logs).
    pub fn cluster(&self) -> &'static Cluster {
        self.cluster
    }

    /// The kubeconfig file of the cluster.
    pub fn kubeconfig(&self) -> &Path {
        self.cluster.kubeconfig_path()
    }

    /// A `kubectl` command pointed at the cluster (`KUBECONFIG` set).
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new("kubectl");
        command.env("KUBECONFIG", self.kubeconfig());
        command
    }

    /// Creates a namespace named `<prefix>-<random>`; it is deleted when the handle drops.
    ///
    /// # Errors
    /// When the apiserver refuses the create.
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace> {
        let name = format!("{prefix}-{}", crate::process::random_hex(3));
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": name, "labels": { "sluice-e2e": "true" } },
        }))?;
        Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(TestNamespace { name, kubeconfig: self.kubeconfig().to_owned() })
    }

    /// Applies every CRD of `config/crd/` (once per process) and waits until each is Established.
    /// Returns the CRD names.
    ///
    /// # Errors
    /// When a file does not parse, the apiserver rejects a CRD, or one is not Established in 30 s.
    pub async fn install_crds(&self) -> Result<Vec<String>> {
        let names = CRDS
            .get_or_init(|| async {
                install_crds_from(&self.client, &crd_dir()).await.map_err(|err| format!("{err:#}"))
            })
            .await
            .as_ref()
            .map_err(|err| anyhow!("installing the CRDs: {err}"))?;
        Ok(names.clone())
    }
}

/// The directory of the generated CRDs: `<workspace>/config/crd`.
pub fn crd_dir() -> PathBuf {
    crate::paths::workspace_root().join("config").join("crd")
}

/// The CRD files of `dir` (every `*.yaml` except `kustomization.yaml`), sorted.
///
/// # Errors
/// When the directory cannot be read or holds no CRD.
pub fn crd_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let is_yaml = path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml");
        let is_kustomization = path.file_stem().is_some_and(|stem| stem == "kustomization");
        if is_yaml && !is_kustomization {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("no CRD files in {}: run `cargo xtask codegen`", dir.display());
    }
    Ok(files)
}

/// Server-side applies the CRDs of `dir` and waits until each is Established; returns their names.
///
/// # Errors
/// When a file does not parse, the apiserver rejects a CRD, or one is not Established in 30 s.
pub async fn install_crds_from(client: &kube::Client, dir: &Path) -> Result<Vec<String>> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let mut names = Vec::new();
    for file in crd_files(dir)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&text)
            .with_context(|| format!("parsing {} as a CustomResourceDefinition", file.display()))?;
        let name = crd.metadata.name.clone().with_context(|| {
            format!("{}: the CustomResourceDefinition has no metadata.name", file.display())
        })?;
        api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&crd))
            .await
            .with_context(|| format!("applying {} ({name})", file.display()))?;
        names.push(name);
    }
    for name in &names {
        crate::wait_for(Duration::from_secs(30), &format!("CRD {name} to be Established"), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await?;
                let established =
                    crd.status.iter().flat_map(|status| &status.conditions).flatten().any(
                        |condition| condition.type_ == "Established" && condition.status == "True",
                    );
                Ok(established.then_some(()))
            }
        })
        .await?;
    }
    Ok(names)
}

/// A namespace created for one test; deleted (without waiting) when dropped.
#[derive(Debug)]
pub struct TestNamespace {
    name: String,
    kubeconfig: PathBuf,
}

impl TestNamespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::ops::Deref for TestNamespace {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be shutting down: delete from a
        // short-lived thread with its own runtime and client.
        let name = self.name.clone();
        let kubeconfig = self.kubeconfig.clone();
        let deleted = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let client = crate::cluster::client_from_kubeconfig(&kubeconfig).await?;
                Api::<Namespace>::all(client).delete(&name, &DeleteParams::background()).await?;
                Ok(())
            })
        })
        .join();
        if let Ok(Err(err)) = deleted {
            eprintln!("sluice-e2e: deleting namespace {}: {err:#}", self.name);
        }
    }
}
