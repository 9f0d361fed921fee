//! `cargo xtask demo`: sluice doing its job on a real local control plane.
//!
//! It starts kube-apiserver v1.20.2 + etcd (built from Debian's source and cached), a Helm chart
//! repository and a git server holding an example platform repository (a base and an overlay, a
//! HelmRelease from the local HelmRepository), then runs `sluice bootstrap git`: sluice commits its
//! manifests to `clusters/demo/flux-system/`, installs its CRDs, creates the `flux-system`
//! GitRepository and Kustomization and waits for the sync. The source-, kustomize- and
//! helm-controller run as local processes (the local control plane has no nodes, hence
//! `--local-controllers`). It shows the objects with `sluice get` and `sluice tree`, previews a
//! change with `sluice diff`, pushes it and watches it flow to the cluster, then makes a manual
//! change and watches sluice revert it, and traces a Deployment back to its Git source.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use sluice_e2e::cluster::{Cluster, ClusterOptions};
use sluice_e2e::process::{Lifetime, ServerProcess, free_port};
use sluice_e2e::{GitServer, HelmRepoServer, wait_for};

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

/// The cluster's own directory: what the `flux-system` Kustomization applies besides sluice
/// itself. `bootstrap` adds `clusters/demo/flux-system/`.
const CLUSTER_APPS: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1
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
    name: flux-system
  postBuild:
    substitute:
      cluster_env: demo
";

/// A HelmRepository on the local chart server and a HelmRelease installing its `hello` chart.
const CLUSTER_CHARTS: &str = "apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata:
  name: charts
  namespace: flux-system
spec:
  interval: 10m
  url: HELM_URL
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: hello
  namespace: flux-system
spec:
  interval: 10m
  targetNamespace: demo
  install:
    createNamespace: true
  chart:
    spec:
      chart: hello
      version: 1.x
      sourceRef:
        kind: HelmRepository
        name: charts
  values:
    message: hello from a HelmRelease
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
        "-p",
        "helm-controller",
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

    let charts = HelmRepoServer::start()?;
    charts.publish("hello", "1.0.0", sluice_e2e::helmrepo::chart_package("hello", "1.0.0", &[])?);
    let cluster_charts = CLUSTER_CHARTS.replace("HELM_URL", &charts.url());
    let git = GitServer::start()?;
    git.create_repo(
        "platform",
        &[
            ("apps/base/kustomization.yaml", BASE_KUSTOMIZATION),
            ("apps/base/deployment.yaml", DEPLOYMENT),
            ("apps/base/service.yaml", SERVICE),
            ("apps/overlays/demo/kustomization.yaml", OVERLAY),
            ("apps/overlays/demo/namespace.yaml", NAMESPACE),
            ("clusters/demo/apps.yaml", CLUSTER_APPS),
            ("clusters/demo/charts.yaml", cluster_charts.as_str()),
        ],
    )?;
    let git_url = git.private_url("platform");
    step(&format!("started a git server with the example platform repository: {git_url}"));
    step(&format!("started a Helm chart repository with the chart hello 1.0.0: {}", charts.url()));

    let sluice = |args: &[&str]| -> anyhow::Result<String> {
        show(Command::new(bin.join("sluice")).env("KUBECONFIG", &kubeconfig).args(args))
    };
    let kubectl = |args: &[&str]| -> anyhow::Result<String> {
        show(Command::new("kubectl").env("KUBECONFIG", &kubeconfig).args(args))
    };

    step(
        "bootstrapping: sluice commits its manifests to the repository, applies them and waits for the sync",
    );
    let mut bootstrap = Command::new(bin.join("sluice"));
    bootstrap.env("KUBECONFIG", &kubeconfig).args([
        "bootstrap",
        "git",
        "--url",
        &git_url,
        "--branch=main",
        "--path=clusters/demo",
        "--username",
        GitServer::USERNAME,
        "--local-controllers",
    ]);
    // The password goes through the environment, never argv.
    bootstrap.env("GIT_PASSWORD", GitServer::PASSWORD);
    eprintln!(
        "$ sluice bootstrap git --url {git_url} --branch=main --path=clusters/demo --username {} --local-controllers   (GIT_PASSWORD set)",
        GitServer::USERNAME
    );
    let mut bootstrap = bootstrap.spawn().context("starting sluice bootstrap")?;
    let client = runtime.block_on(cluster.client())?;
    // The controllers watch sluice's kinds: start them once bootstrap has installed the CRDs.
    runtime.block_on(wait_served(
        &client,
        &[
            "source.toolkit.fluxcd.io/v1/GitRepository",
            "kustomize.toolkit.fluxcd.io/v1/Kustomization",
        ],
    ))?;

    step("starting source-controller, kustomize-controller and helm-controller as local processes");
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
        ServerProcess::spawn(
            "helm-controller",
            common("helm-controller"),
            &demo_dir.join("helm-controller.log"),
            Lifetime::Guarded,
        )?,
    ];
    eprintln!("  logs: {}", demo_dir.display());

    let status = bootstrap.wait()?;
    let result = if status.success() {
        runtime.block_on(walkthrough(
            &client,
            &git,
            &demo_dir,
            &bin,
            &kubeconfig,
            &sluice,
            &kubectl,
        ))
    } else {
        Err(anyhow::anyhow!("sluice bootstrap failed with {status}"))
    };
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
    drop(charts);
    drop(cluster);
    eprintln!("done");
    Ok(())
}

/// Waits until the apiserver serves each `group/version/Kind` (CRDs applied by bootstrap).
async fn wait_served(client: &kube::Client, kinds: &[&str]) -> anyhow::Result<()> {
    for text in kinds {
        let (api_version, kind) = text.rsplit_once('/').unwrap_or(("", text));
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        wait_for(Duration::from_secs(120), &format!("{text} to be served"), || async {
            Ok(kube::discovery::oneshot::pinned_kind(client, &gvk).await.ok())
        })
        .await?;
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
    demo_dir: &Path,
    bin: &Path,
    kubeconfig: &Path,
    sluice: &dyn Fn(&[&str]) -> anyhow::Result<String>,
    kubectl: &dyn Fn(&[&str]) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let revision = ready(
        client,
        "gitrepositories",
        "source.toolkit.fluxcd.io",
        "flux-system",
        "artifact.revision",
    )
    .await?;
    eprintln!("  GitRepository flux-system stored artifact for revision {revision}");
    let applied = ready(
        client,
        "kustomizations",
        "kustomize.toolkit.fluxcd.io",
        "apps",
        "lastAppliedRevision",
    )
    .await?;
    eprintln!("  Kustomization apps applied revision {applied}");
    let chart =
        ready(client, "helmreleases", "helm.toolkit.fluxcd.io", "hello", "lastAttemptedRevision")
            .await?;
    eprintln!("  HelmRelease hello installed chart version {chart} as release demo/demo-hello");
    sluice(&["get", "all", "-A"])?;
    sluice(&["tree", "kustomization", "flux-system", "--compact"])?;
    sluice(&["tree", "kustomization", "apps"])?;
    kubectl(&["get", "deployments,services,configmaps", "-n", "demo", "-L", "env"])?;
    kubectl(&[
        "get",
        "configmap",
        "demo-hello",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.message}{\"\\n\"}",
    ])?;

    step("a change through Git: clone, edit, `sluice diff`, push, reconcile");
    let checkout = demo_dir.join("checkout");
    let _ = std::fs::remove_dir_all(&checkout);
    let git_cli = |args: &[&str]| -> anyhow::Result<String> {
        show(
            Command::new("git")
                .current_dir(&checkout)
                .args(["-c", "user.name=Demo", "-c", "user.email=demo@example.com"])
                .args(args),
        )
    };
    std::fs::create_dir_all(&checkout)?;
    // The credentials stay out of the echoed command line.
    eprintln!("$ git clone {} .   (as {})", git.private_url("platform"), GitServer::USERNAME);
    let clone = Command::new("git")
        .current_dir(&checkout)
        .args(["clone", "--quiet", &git.private_url_with_credentials("platform"), "."])
        .output()?;
    if !clone.status.success() {
        bail!("git clone failed: {}", String::from_utf8_lossy(&clone.stderr));
    }
    let overlay = OVERLAY.replace("value: 2", "value: 3");
    let base = BASE_KUSTOMIZATION.replace("hello from git", "hello again from git");
    std::fs::write(checkout.join("apps/overlays/demo/kustomization.yaml"), overlay)?;
    std::fs::write(checkout.join("apps/base/kustomization.yaml"), base)?;
    let overlay_dir = checkout.join("apps/overlays/demo");
    let overlay_dir = overlay_dir.to_string_lossy();
    eprintln!("$ sluice diff kustomization apps --path {overlay_dir}");
    let diff = Command::new(bin.join("sluice"))
        .env("KUBECONFIG", kubeconfig)
        .args(["diff", "kustomization", "apps", "--path", &overlay_dir])
        .output()?;
    eprint!("{}{}", String::from_utf8_lossy(&diff.stdout), String::from_utf8_lossy(&diff.stderr));
    if diff.status.code() != Some(1) {
        bail!("sluice diff should report the pending change with exit code 1, got {}", diff.status);
    }
    eprintln!("  (exit code 1: the cluster differs from the working copy)");
    git_cli(&["commit", "--quiet", "-am", "Scale podinfo to 3 replicas"])?;
    git_cli(&["push", "--quiet", "origin", "main"])?;
    sluice(&["reconcile", "kustomization", "apps", "--with-source"])?;
    sluice(&["diff", "kustomization", "apps", "--path", &overlay_dir])?;
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
    sluice(&["trace", "deployment", "podinfo", "-n", "demo"])?;
    sluice(&["get", "kustomizations"])?;
    Ok(())
}
