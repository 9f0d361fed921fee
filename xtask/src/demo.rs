//! `cargo xtask demo`: sluice doing its job on a real local control plane.
//!
//! It starts kube-apiserver v1.20.2 + etcd (built from Debian's source and cached), a git
//! server holding an example platform repository, and the source-controller and
//! kustomize-controller as local processes (the local control plane has no nodes, so the
//! controllers run beside it rather than as Pods). It points a GitRepository and a
//! Kustomization at the repository, shows them reconciling with `sluice get`, pushes a commit and
//! watches it flow to the cluster, then makes a manual change and watches sluice revert it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use sluice_e2e::cluster::{Cluster, ClusterOptions};
use sluice_e2e::process::{Lifetime, ServerProcess, free_port};
use sluice_e2e::{GitServer, wait_for};

/// Arguments of `cargo xtask demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep everything running at the end until Ctrl-C (prints the kubeconfig to use).
    #[arg(long)]
    pub keep: bool,
}

const BASE_KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
  - service.yaml
configMapGenerator:
  - name: podinfo-config
    literals:
      - message=hello from git
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  labels:
    app: podinfo
spec:
  replicas: 1
  selector:
    matchLabels:
      app: podinfo
  template:
    metadata:
      labels:
        app: podinfo
    spec:
      containers:
        - name: podinfo
          image: ghcr.io/stefanprodan/podinfo:6.5.0
          ports:
            - containerPort: 9898
          envFrom:
            - configMapRef:
                name: podinfo-config
";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: podinfo
spec:
  selector:
    app: podinfo
  ports:
    - port: 9898
";

const OVERLAY: &str = "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: demo
resources:
  - namespace.yaml
  - ../../base
labels:
  - pairs:
      env: ${cluster_env}
patches:
  - target:
      kind: Deployment
      name: podinfo
    patch: |
      - op: replace
        path: /spec/replicas
        value: 2
";

const NAMESPACE: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: demo
";

const SYNC: &str = "apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: platform
  namespace: flux-system
spec:
  interval: 1m
  url: GIT_URL
  ref:
    branch: main
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  path: ./apps/overlays/demo
  prune: true
  sourceRef:
    kind: GitRepository
    name: platform
  postBuild:
    substitute:
      cluster_env: demo
";

fn step(text: &str) {
    eprintln!("\n\u{25b6} {text}");
}

fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

/// Runs a command, echoing it and its output, and fails when it fails.
fn show(command: &mut Command) -> anyhow::Result<String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let display = Path::new(&program)
        .file_name()
        .map_or(program.clone(), |n| n.to_string_lossy().into_owned());
    eprintln!("$ {display} {}", args.join(" "));
    let output = command.output().with_context(|| format!("starting {program}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprint!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("`{display} {}` failed with {}", args.join(" "), output.status);
    }
    Ok(stdout)
}

/// Run `cargo xtask demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    step(
        "preparing the real control plane (kube-apiserver v1.20.2 built from Debian's source, cached)",
    );
    sluice_e2e::provision::build_kubernetes(false)?;
    sluice_e2e::provision::ensure_apt_packages(&[
        "git",
        "lighttpd",
        "apache2-utils",
        "etcd-server",
    ])?;

    step("building sluice");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    show(Command::new(&cargo).current_dir(&root).args([
        "build",
        "-p",
        "sluice-cli",
        "-p",
        "source-controller",
        "-p",
        "kustomize-controller",
    ]))?;
    let bin = target_dir(&root).join("debug");

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cluster = runtime.block_on(Cluster::start(ClusterOptions::default()))?;
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    step(&format!(
        "started kube-apiserver v1.20.2 + etcd on {} in {:.1?} (KUBECONFIG={})",
        cluster.server_url(),
        cluster.startup_time(),
        kubeconfig.display()
    ));

    let git = GitServer::start()?;
    git.create_repo(
        "platform",
        &[
            ("apps/base/kustomization.yaml", BASE_KUSTOMIZATION),
            ("apps/base/deployment.yaml", DEPLOYMENT),
            ("apps/base/service.yaml", SERVICE),
            ("apps/overlays/demo/kustomization.yaml", OVERLAY),
            ("apps/overlays/demo/namespace.yaml", NAMESPACE),
        ],
    )?;
    let git_url = git.url("platform");
    step(&format!("started a git server with the example platform repository: {git_url}"));

    let sluice = |args: &[&str]| -> anyhow::Result<String> {
        show(Command::new(bin.join("sluice")).env("KUBECONFIG", &kubeconfig).args(args))
    };
    let kubectl = |args: &[&str]| -> anyhow::Result<String> {
        show(Command::new("kubectl").env("KUBECONFIG", &kubeconfig).args(args))
    };

    step("installing sluice's CRDs and namespace");
    let manifests = Command::new(bin.join("sluice")).args(["install", "--export"]).output()?;
    let crds_and_namespace: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&manifests.stdout))?;
    let crds_and_namespace: Vec<serde_json::Value> = crds_and_namespace
        .into_iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition" || o["kind"] == "Namespace")
        .collect();
    let client = runtime.block_on(cluster.client())?;
    runtime.block_on(apply(&client, &crds_and_namespace))?;
    eprintln!("  {} objects applied", crds_and_namespace.len());

    step("starting source-controller and kustomize-controller as local processes");
    let demo_dir = cluster.dir().join("demo");
    std::fs::create_dir_all(&demo_dir)?;
    let storage_port = free_port()?;
    let storage_addr = format!("127.0.0.1:{storage_port}");
    let common = |name: &str| {
        let mut command = Command::new(bin.join(name));
        command.env("KUBECONFIG", &kubeconfig).env("RUNTIME_NAMESPACE", "flux-system").args([
            "--metrics-addr=127.0.0.1:0",
            "--health-addr=127.0.0.1:0",
            "--log-encoding=console",
            "--requeue-dependency=5s",
        ]);
        command
    };
    let mut source = common("source-controller");
    source.args([
        format!("--storage-path={}", demo_dir.join("storage").display()),
        format!("--storage-addr={storage_addr}"),
        format!("--storage-adv-addr={storage_addr}"),
    ]);
    let mut controllers = vec![
        ServerProcess::spawn(
            "source-controller",
            source,
            &demo_dir.join("source-controller.log"),
            Lifetime::Guarded,
        )?,
        ServerProcess::spawn(
            "kustomize-controller",
            common("kustomize-controller"),
            &demo_dir.join("kustomize-controller.log"),
            Lifetime::Guarded,
        )?,
    ];
    eprintln!("  logs: {}", demo_dir.display());

    step("pointing a GitRepository and a Kustomization at the repository");
    let sync: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&SYNC.replace("GIT_URL", &git_url))?;
    runtime.block_on(apply(&client, &sync))?;
    let result = runtime.block_on(walkthrough(&client, &git, &sluice, &kubectl));
    for controller in &mut controllers {
        if result.is_err() {
            eprintln!("--- last lines of {} ---\n{}", controller.name(), controller.log_tail(3000));
        }
    }
    result?;

    if args.keep {
        step(&format!(
            "everything keeps running; KUBECONFIG={} — Ctrl-C to stop",
            kubeconfig.display()
        ));
        sluice_e2e::cluster::wait_for_interrupt()?;
    }
    step("stopping the controllers, the git server and the control plane");
    for controller in &mut controllers {
        controller.stop(Duration::from_secs(5));
    }
    drop(git);
    drop(cluster);
    eprintln!("done");
    Ok(())
}

async fn apply(client: &kube::Client, objects: &[serde_json::Value]) -> anyhow::Result<()> {
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    use kube::discovery::Scope;
    for object in objects {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = kube::api::GroupVersionKind::gvk(
            group,
            version,
            object["kind"].as_str().unwrap_or_default(),
        );
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        // Only this object's group/version is looked up, and again until a CRD applied just
        // before starts serving it.
        let (resource, caps) =
            wait_for(Duration::from_secs(30), &format!("{api_version} to be served"), || async {
                Ok(kube::discovery::oneshot::pinned_kind(client, &gvk).await.ok())
            })
            .await?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                object["metadata"]["namespace"].as_str().unwrap_or("default"),
                &resource,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        api.patch(name, &PatchParams::apply("sluice-demo").force(), &Patch::Apply(object)).await?;
    }
    Ok(())
}

async fn ready(
    client: &kube::Client,
    plural: &str,
    group: &str,
    name: &str,
    revision_field: &str,
) -> anyhow::Result<String> {
    use kube::api::{Api, DynamicObject};
    use kube::discovery::ApiResource;
    let resource = ApiResource {
        group: group.into(),
        version: if group.starts_with("source") || group.starts_with("kustomize") {
            "v1".into()
        } else {
            "v2".into()
        },
        api_version: String::new(),
        kind: String::new(),
        plural: plural.into(),
    };
    let resource =
        ApiResource { api_version: format!("{}/{}", resource.group, resource.version), ..resource };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "flux-system", &resource);
    wait_for(Duration::from_secs(90), &format!("{plural} {name} to be Ready"), || {
        let api = api.clone();
        async move {
            let obj = api.get(name).await?;
            let status = &obj.data["status"];
            let ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready");
            if let Some(ready) = ready
                && ready["status"] == "False"
                && status["observedGeneration"] == obj.metadata.generation.unwrap_or_default()
                && ready["reason"] != "DependencyNotReady"
                && ready["reason"] != "ArtifactFailed"
            {
                anyhow::bail!("{name} failed: {}", ready["message"]);
            }
            let revision = revision_field.split('.').fold(status, |v, key| &v[key]);
            Ok(ready
                .filter(|r| r["status"] == "True")
                .and_then(|_| revision.as_str().map(str::to_string)))
        }
    })
    .await
}

async fn walkthrough(
    client: &kube::Client,
    git: &GitServer,
    sluice: &dyn Fn(&[&str]) -> anyhow::Result<String>,
    kubectl: &dyn Fn(&[&str]) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let revision = ready(
        client,
        "gitrepositories",
        "source.toolkit.fluxcd.io",
        "platform",
        "artifact.revision",
    )
    .await?;
    eprintln!("  GitRepository platform stored artifact for revision {revision}");
    let applied = ready(
        client,
        "kustomizations",
        "kustomize.toolkit.fluxcd.io",
        "apps",
        "lastAppliedRevision",
    )
    .await?;
    eprintln!("  Kustomization apps applied revision {applied}");
    sluice(&["get", "all", "-A"])?;
    kubectl(&["get", "deployments,services,configmaps", "-n", "demo", "-L", "env"])?;

    step("pushing a commit: 3 replicas and a new message");
    let overlay = OVERLAY.replace("value: 2", "value: 3");
    let base = BASE_KUSTOMIZATION.replace("hello from git", "hello again from git");
    let commit = git.repos().commit(
        "platform",
        &[
            ("apps/overlays/demo/kustomization.yaml", overlay.as_str()),
            ("apps/base/kustomization.yaml", base.as_str()),
        ],
        "Scale podinfo to 3 replicas",
    )?;
    eprintln!("  pushed {commit}");
    sluice(&["reconcile", "kustomization", "apps", "--with-source"])?;
    kubectl(&[
        "get",
        "deployment",
        "podinfo",
        "-n",
        "demo",
        "-o",
        "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas",
    ])?;
    kubectl(&["get", "configmaps", "-n", "demo"])?;

    step("a manual change: someone scales the Deployment to 10 by hand");
    kubectl(&["scale", "deployment", "podinfo", "-n", "demo", "--replicas=10"])?;
    kubectl(&[
        "get",
        "deployment",
        "podinfo",
        "-n",
        "demo",
        "-o",
        "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas",
    ])?;
    sluice(&["reconcile", "kustomization", "apps"])?;
    eprintln!("  sluice reverted the drift back to what Git declares:");
    kubectl(&[
        "get",
        "deployment",
        "podinfo",
        "-n",
        "demo",
        "-o",
        "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas",
    ])?;
    sluice(&["get", "kustomizations"])?;
    Ok(())
}
