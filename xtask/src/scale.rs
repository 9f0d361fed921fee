//! `cargo xtask bench scale --n N`: mean time to production for N app packages on the local real
//! cluster, measured as fluxcd/flux-benchmark measures Flux.
//!
//! Each app package is what Flux's harness deploys: a Deployment scaled to 0, a ServiceAccount,
//! a Service and an Ingress. The benchmark
//! 1. starts its own kube-apiserver v1.20.2 + etcd + controller-manager and a git server holding
//!    one repository per app;
//! 2. measures the floor: one plain client server-side-applying the same 4×N objects (into the
//!    namespace `floor`) with 20 requests in flight;
//! 3. starts the release builds of the controllers as local processes (Flux's harness settings:
//!    source-controller `--concurrent=10`, kustomize-controller `--concurrent=20`);
//! 4. creates N GitRepositories and N Kustomizations at once and polls until every one is Ready;
//! 5. reads each controller's peak RSS (`VmHWM`) and CPU time from `/proc`.
//!
//! It prints a table and writes it as JSON to `target/bench-scale-<N>.json`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use sluice_e2e::cluster::{Cluster, ClusterOptions};
use sluice_e2e::process::{Lifetime, ServerProcess, free_port};
use sluice_e2e::{GitServer, wait_for};

/// How long the controllers may take before the benchmark gives up.
const DEADLINE: Duration = Duration::from_secs(900);
/// Requests in flight for the plain-apply floor.
const FLOOR_CONCURRENCY: usize = 20;

fn app_files(index: usize, namespace: &str) -> Vec<(String, String)> {
    let name = format!("app-{index}");
    vec![
        (
            "deployment.yaml".into(),
            format!(
                "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: 0
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      serviceAccountName: {name}
      containers:
        - name: app
          image: ghcr.io/stefanprodan/podinfo:6.5.0
          ports:
            - containerPort: 9898
              protocol: TCP
"
            ),
        ),
        (
            "serviceaccount.yaml".into(),
            format!(
                "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
            ),
        ),
        (
            "service.yaml".into(),
            format!(
                "apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}
spec:
  selector:
    app: {name}
  ports:
    - port: 9898
      protocol: TCP
      targetPort: 9898
"
            ),
        ),
        (
            "ingress.yaml".into(),
            format!(
                "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: {namespace}
spec:
  rules:
    - host: {name}.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: {name}
                port:
                  number: 9898
"
            ),
        ),
    ]
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn resource_for(object: &Value) -> anyhow::Result<ApiResource> {
    let kind = object["kind"].as_str().unwrap_or_default();
    Ok(match kind {
        "Deployment" => resource("apps", "v1", kind, "deployments"),
        "ServiceAccount" => resource("", "v1", kind, "serviceaccounts"),
        "Service" => resource("", "v1", kind, "services"),
        "Ingress" => resource("networking.k8s.io", "v1", kind, "ingresses"),
        "Namespace" => resource("", "v1", kind, "namespaces"),
        "GitRepository" => resource("source.toolkit.fluxcd.io", "v1", kind, "gitrepositories"),
        "Kustomization" => resource("kustomize.toolkit.fluxcd.io", "v1", kind, "kustomizations"),
        "CustomResourceDefinition" => resource(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
        other => bail!("the scale benchmark does not create {other} objects"),
    })
}

/// Server-side applies one object with the field manager `sluice-bench`.
async fn apply_one(client: kube::Client, object: Value) -> anyhow::Result<()> {
    let resource = resource_for(&object)?;
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(namespace) => Api::namespaced_with(client, namespace, &resource),
        None => Api::all_with(client, &resource),
    };
    api.patch(&name, &PatchParams::apply("sluice-bench").force(), &Patch::Apply(&object))
        .await
        .with_context(|| format!("applying {} {name}", resource.kind))?;
    Ok(())
}

/// Applies `objects` with `concurrency` requests in flight; returns the wall time.
async fn apply_all(
    client: &kube::Client,
    objects: Vec<Value>,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for object in objects {
        let permit = limit.clone().acquire_owned().await?;
        let client = client.clone();
        tasks.spawn(async move {
            let result = apply_one(client, object).await;
            drop(permit);
            result
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(start.elapsed())
}

fn parse_objects(files: &[(String, String)]) -> anyhow::Result<Vec<Value>> {
    files
        .iter()
        .map(|(_, text)| serde_saphyr::from_str::<Value>(text).map_err(anyhow::Error::from))
        .collect()
}

/// Whether an object has `Ready=True` for its current generation.
fn is_ready(object: &DynamicObject) -> bool {
    let status = &object.data["status"];
    let generation = object.metadata.generation.unwrap_or(0);
    status["observedGeneration"].as_i64() == Some(generation)
        && status["conditions"].as_array().is_some_and(|conditions| {
            conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Counts Ready objects of one kind in `namespace`.
async fn count_ready(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: &str,
) -> anyhow::Result<usize> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    Ok(api.list(&ListParams::default()).await?.items.iter().filter(|o| is_ready(o)).count())
}

/// Peak resident memory (`VmHWM`) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU time of a process, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Arguments of the scale benchmark.
#[derive(Debug, Clone)]
pub struct ScaleArgs {
    /// Number of app packages.
    pub n: usize,
}

struct ControllerFigures {
    name: String,
    peak_mib: f64,
    cpu_seconds: f64,
}

/// Run `cargo xtask bench scale`.
pub fn run(args: ScaleArgs, root: &Path) -> anyhow::Result<()> {
    let n = args.n;
    if n == 0 {
        bail!("--n must be at least 1");
    }
    sluice_e2e::provision::build_kubernetes(false)?;
    sluice_e2e::provision::ensure_apt_packages(&[
        "git",
        "lighttpd",
        "apache2-utils",
        "etcd-server",
    ])?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    crate::tasks::run_cmd(
        root,
        &cargo,
        &["build", "--release", "-p", "source-controller", "-p", "kustomize-controller"],
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("release");

    eprintln!("== creating {n} git repositories");
    let git = GitServer::start()?;
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers = 4;
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                let git = &git;
                scope.spawn(move || -> anyhow::Result<()> {
                    for index in (worker..n).step_by(workers) {
                        let files = app_files(index, "apps");
                        let files: Vec<(&str, &str)> =
                            files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
                        git.create_repo(&format!("app-{index}"), &files)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle.join().map_err(|_| anyhow::anyhow!("a git worker panicked"))??;
        }
        Ok(())
    })?;
    eprintln!("   done in {:.1?}", started.elapsed());

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // The deployment and replicaset controllers give Deployments a status, so health checks
    // (`wait: true`) see them become Current as on a real cluster.
    let options = ClusterOptions {
        extra_controllers: vec!["deployment".into(), "replicaset".into()],
        ..ClusterOptions::default()
    };
    let cluster = runtime.block_on(Cluster::start(options))?;
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    let client = runtime.block_on(cluster.client())?;
    eprintln!("== cluster up on {} ({})", cluster.server_url(), kubeconfig.display());

    let result = runtime.block_on(measure(&client, &cluster, &git, &bin, &kubeconfig, n));
    drop(git);
    drop(cluster);
    let report = result?;
    let out = target.join(format!("bench-scale-{n}.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    eprintln!("   written to {}", out.display());
    Ok(())
}

async fn measure(
    client: &kube::Client,
    cluster: &Cluster,
    git: &GitServer,
    bin: &Path,
    kubeconfig: &Path,
    n: usize,
) -> anyhow::Result<Value> {
    // CRDs and namespaces.
    let crds = crate::codegen::generated_files()?
        .into_iter()
        .filter(|(path, _)| path.extension().is_some_and(|e| e == "yaml"))
        .filter(|(path, _)| !path.ends_with("kustomization.yaml"))
        .map(|(_, text)| serde_saphyr::from_str::<Value>(&text).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let crds: Vec<Value> =
        crds.into_iter().filter(|c| c["kind"] == "CustomResourceDefinition").collect();
    apply_all(client, crds, 4).await?;
    let namespaces = ["flux-system", "apps", "floor"]
        .iter()
        .map(|name| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        .collect();
    apply_all(client, namespaces, 3).await?;
    wait_for(Duration::from_secs(60), "the CRDs to be served", || async {
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "flux-system",
            &resource("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"),
        );
        Ok(api.list(&ListParams::default()).await.ok().map(|_| ()))
    })
    .await?;

    eprintln!("== floor: one client server-side-applies {} objects", 4 * n);
    let mut floor_objects = Vec::with_capacity(4 * n);
    for index in 0..n {
        floor_objects.extend(parse_objects(&app_files(index, "floor"))?);
    }
    let floor = apply_all(client, floor_objects, FLOOR_CONCURRENCY).await?;
    eprintln!("   {:.1?}", floor);

    eprintln!("== starting source-controller and kustomize-controller (release builds)");
    let dir = cluster.dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let storage_addr = format!("127.0.0.1:{}", free_port()?);
    let common = |name: &str, concurrent: u32| {
        let mut command = Command::new(bin.join(name));
        command
            .env("KUBECONFIG", kubeconfig)
            .env("RUNTIME_NAMESPACE", "flux-system")
            .env("RUST_LOG", "warn")
            .arg("--metrics-addr=127.0.0.1:0")
            .arg("--health-addr=127.0.0.1:0")
            .arg(format!("--concurrent={concurrent}"));
        command
    };
    let mut source = common("source-controller", 10);
    source.args([
        format!("--storage-path={}", dir.join("storage").display()),
        format!("--storage-addr={storage_addr}"),
        format!("--storage-adv-addr={storage_addr}"),
    ]);
    let mut controllers = vec![
        ServerProcess::spawn(
            "source-controller",
            source,
            &dir.join("source-controller.log"),
            Lifetime::Guarded,
        )?,
        ServerProcess::spawn(
            "kustomize-controller",
            common("kustomize-controller", 20),
            &dir.join("kustomize-controller.log"),
            Lifetime::Guarded,
        )?,
    ];
    // Let both controllers start their watches before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    eprintln!("== creating {n} GitRepositories and {n} Kustomizations");
    let mut objects = Vec::with_capacity(2 * n);
    for index in 0..n {
        let name = format!("app-{index}");
        objects.push(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"interval": "1h", "url": git.url(&name), "ref": {"branch": "main"}}
        }));
        objects.push(json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"interval": "1h", "path": "./", "prune": true, "wait": true,
                     "timeout": "5m",
                     "sourceRef": {"kind": "GitRepository", "name": name}}
        }));
    }
    let start = Instant::now();
    let created = apply_all(client, objects, FLOOR_CONCURRENCY).await?;
    eprintln!("   created in {created:.1?}");

    let sources = resource("source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories");
    let kustomizations =
        resource("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations");
    let mut sources_done: Option<Duration> = None;
    let mut kustomizations_done: Option<Duration> = None;
    let mut last_print = Instant::now();
    while kustomizations_done.is_none() {
        if start.elapsed() > DEADLINE {
            for controller in &controllers {
                eprintln!("--- {} ---\n{}", controller.name(), controller.log_tail(3000));
            }
            bail!("not every Kustomization was Ready within {DEADLINE:?}");
        }
        for controller in &mut controllers {
            controller.ensure_running()?;
        }
        let ready_sources = count_ready(client, &sources, "flux-system").await?;
        let ready_kustomizations = count_ready(client, &kustomizations, "flux-system").await?;
        if sources_done.is_none() && ready_sources == n {
            sources_done = Some(start.elapsed());
        }
        if ready_kustomizations == n {
            kustomizations_done = Some(start.elapsed());
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "   {:>5.1}s: {ready_sources}/{n} GitRepositories, {ready_kustomizations}/{n} Kustomizations Ready",
                start.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let figures: Vec<ControllerFigures> = controllers
        .iter()
        .map(|c| ControllerFigures {
            name: c.name().to_string(),
            peak_mib: peak_rss_kib(c.pid()).unwrap_or(0) as f64 / 1024.0,
            cpu_seconds: cpu_seconds(c.pid()).unwrap_or(0.0),
        })
        .collect();
    let apiserver_cpu: f64 = cluster
        .pids()
        .iter()
        .filter(|(name, _)| name.contains("apiserver"))
        .filter_map(|(_, pid)| cpu_seconds(*pid))
        .sum();
    for controller in &mut controllers {
        controller.stop(Duration::from_secs(5));
    }

    let sources_done = sources_done.unwrap_or_default();
    let kustomizations_done = kustomizations_done.unwrap_or_default();
    let ratio = kustomizations_done.as_secs_f64() / floor.as_secs_f64().max(0.001);
    println!();
    println!(
        "scale benchmark: {n} app packages (Deployment scaled to 0, ServiceAccount, Service, Ingress)"
    );
    println!("| what | time | peak RSS | CPU |");
    println!("|---|---|---|---|");
    println!(
        "| floor: one client applies {} objects ({FLOOR_CONCURRENCY} in flight) | {:.1}s | | |",
        4 * n,
        floor.as_secs_f64()
    );
    for f in &figures {
        let time = if f.name == "source-controller" { sources_done } else { kustomizations_done };
        let kind = if f.name == "source-controller" { "GitRepository" } else { "Kustomization" };
        println!(
            "| {n} {kind} Ready ({}) | {:.1}s | {:.1} MiB | {:.1}s |",
            f.name,
            time.as_secs_f64(),
            f.peak_mib,
            f.cpu_seconds
        );
    }
    println!("| kube-apiserver CPU over the whole run | | | {apiserver_cpu:.1}s |");
    println!("Kustomizations against the floor: {ratio:.2}x");
    Ok(json!({
        "n": n,
        "floor_seconds": floor.as_secs_f64(),
        "sources_ready_seconds": sources_done.as_secs_f64(),
        "kustomizations_ready_seconds": kustomizations_done.as_secs_f64(),
        "ratio_to_floor": ratio,
        "apiserver_cpu_seconds": apiserver_cpu,
        "controllers": figures.iter().map(|f| json!({
            "name": f.name, "peak_rss_mib": f.peak_mib, "cpu_seconds": f.cpu_seconds
        })).collect::<Vec<_>>(),
    }))
}
