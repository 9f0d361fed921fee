//! The shared test cluster of a test process, fresh namespaces per test, and the CRDs of config/crd.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
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

    /// An API for `api_version`/`kind` objects (resolved by discovery), in `namespace` or
    /// cluster-wide when `None`.
    ///
    /// # Errors
    /// When the apiserver does not serve that kind (e.g. CRDs not installed).
    pub async fn dynamic_api(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Api<DynamicObject>> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .with_context(|| format!("the apiserver does not serve {api_version} {kind}"))?;
        Ok(match namespace {
            Some(namespace) => Api::namespaced_with(self.client(), namespace, &resource),
            None => Api::all_with(self.client(), &resource),
        })
    }

    /// Creates every object of a (multi-document) YAML text in `namespace`; returns them as
    /// the apiserver stored them.
    ///
    /// # Errors
    /// When a document does not parse or the apiserver refuses an object.
    pub async fn create_yaml(&self, namespace: &str, yaml: &str) -> Result<Vec<DynamicObject>> {
        let mut created = Vec::new();
        for (index, document) in yaml.split("\n---").enumerate() {
            if document
                .lines()
                .all(|line| line.trim().is_empty() || line.trim_start().starts_with('#'))
            {
                continue;
            }
            let object: DynamicObject = serde_saphyr::from_str(document)
                .with_context(|| format!("parsing YAML document {index}"))?;
            let types = object
                .types
                .clone()
                .with_context(|| format!("YAML document {index} has no apiVersion/kind"))?;
            let api = self.dynamic_api(&types.api_version, &types.kind, Some(namespace)).await?;
            let name = object.metadata.name.clone().unwrap_or_default();
            created.push(
                api.create(&PostParams::default(), &object)
                    .await
                    .with_context(|| format!("creating {} {name}", types.kind))?,
            );
        }
        Ok(created)
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

/// Checks an object's status against the kstatus rules Flux's tests hold every object to
/// (`fluxcd/pkg:runtime/conditions/check`): `Ready` is present; `Reconciling` and `Stalled` appear
/// only with status `True`, never together, and not next to `Ready=True`; and
/// `status.observedGeneration` equals `metadata.generation`.
///
/// # Errors
/// Lists every rule the object breaks.
pub fn check_kstatus(object: &serde_json::Value) -> Result<()> {
    let name = format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or("object"),
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("")
    );
    let conditions = object["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let status_of = |kind: &str| {
        conditions
            .iter()
            .find(|condition| condition["type"] == kind)
            .map(|condition| condition["status"].as_str().unwrap_or("").to_owned())
    };
    let mut problems = Vec::new();
    let ready = status_of("Ready");
    if ready.is_none() {
        problems.push("no Ready condition".to_owned());
    }
    for negative in ["Reconciling", "Stalled"] {
        if let Some(status) = status_of(negative)
            && status != "True"
        {
            problems.push(format!(
                "{negative} is present with status {status:?} (only True is allowed)"
            ));
        }
    }
    if status_of("Reconciling").is_some() && status_of("Stalled").is_some() {
        problems.push("Reconciling and Stalled are both present".to_owned());
    }
    if ready.as_deref() == Some("True") {
        for negative in ["Reconciling", "Stalled"] {
            if status_of(negative).is_some() {
                problems.push(format!("Ready is True while {negative} is present"));
            }
        }
    }
    let generation = object["metadata"]["generation"].as_i64();
    let observed = object["status"]["observedGeneration"].as_i64();
    if generation != observed {
        problems.push(format!(
            "status.observedGeneration {observed:?} differs from metadata.generation {generation:?}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{name} breaks kstatus rules: {}", problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::check_kstatus;

    fn object(conditions: serde_json::Value, observed: i64) -> serde_json::Value {
        json!({
            "kind": "GitRepository",
            "metadata": { "name": "app", "namespace": "ns", "generation": 2 },
            "status": { "observedGeneration": observed, "conditions": conditions },
        })
    }

    #[track_caller]
    fn check(conditions: serde_json::Value, observed: i64, expected_problem: Option<&str>) {
        let result = check_kstatus(&object(conditions, observed));
        match expected_problem {
            None => assert!(result.is_ok(), "{result:?}"),
            Some(problem) => {
                let message = result.unwrap_err().to_string();
                assert!(message.contains(problem), "{message}");
            }
        }
    }

    #[test]
    fn kstatus_rules() {
        check(json!([{ "type": "Ready", "status": "True" }]), 2, None);
        check(
            json!([{ "type": "Ready", "status": "False" }, { "type": "Stalled", "status": "True" }]),
            2,
            None,
        );
        check(
            json!([{ "type": "Ready", "status": "Unknown" }, { "type": "Reconciling", "status": "True" }]),
            2,
            None,
        );
        check(json!([]), 2, Some("no Ready condition"));
        check(
            json!([{ "type": "Ready", "status": "True" }]),
            1,
            Some("observedGeneration Some(1)"),
        );
        check(
            json!([{ "type": "Ready", "status": "False" }, { "type": "Stalled", "status": "False" }]),
            2,
            Some("Stalled is present with status \"False\""),
        );
        check(
            json!([{ "type": "Ready", "status": "True" }, { "type": "Reconciling", "status": "True" }]),
            2,
            Some("Ready is True while Reconciling is present"),
        );
        check(
            json!([{ "type": "Ready", "status": "False" }, { "type": "Reconciling", "status": "True" },
                   { "type": "Stalled", "status": "True" }]),
            2,
            Some("both present"),
        );
    }
}
