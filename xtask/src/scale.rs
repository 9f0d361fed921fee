//! `cargo xtask bench scale --n N`: mean time to production for N app packages on the local real
//! cluster, measured as fluxcd/flux-benchmark measures Flux.
//!
//! Each app package is what Flux's harness deploys: a Deployment scaled to 0, a ServiceAccount,
//! a Service and an Ingress. The benchmark
//! 1. starts its own kube-apiserver v1.20.2 + etcd + controller-manager (deployment and
//!    replicaset controllers, so waited Deployments get a status), a git server holding one
//!    repository per app and a Helm repository holding one chart that renders the same four
//!    objects;
//! 2. Kustomization half: measures the floor, one plain client server-side-applying the 4×N
//!    objects (into the namespace `floor`) with 20 requests in flight, then starts the release
//!    builds of source-controller (`--concurrent=10`) and kustomize-controller
//!    (`--concurrent=20`, Flux's harness settings), creates N GitRepositories and N
//!    Kustomizations (`wait: true`) at once and records when each one becomes Ready;
//! 3. HelmRelease half: the floor again (namespace `floor-helm`), then a fresh source-controller
//!    and helm-controller (`--concurrent=10`), one HelmRepository and N HelmReleases of its chart
//!    (each creating its HelmChart), and when each becomes Ready;
//! 4. reads each controller's peak RSS (`VmHWM`) and CPU time from `/proc`.
//!
//! Ready times come from watches (no polling lists that would load the apiserver being
//! measured). It prints a table and writes it as JSON to `target/bench-scale-<N>.json`; the
//! controllers' logs go to `target/bench-scale-<N>/` (`SLUICE_BENCH_LOG` sets their `RUST_LOG`,
//! `warn` by default; `SLUICE_BENCH_SKIP_BUILD=1` skips the release build).
//!
//! The controller-manager runs with `--kube-api-qps=300 --kube-api-burst=600` and 20
//! deployment/replicaset workers: at its default 20 QPS it needs ~0.2 s of client rate limit
//! per Deployment (ReplicaSet create + status updates), which would cap any applier that waits
//! for Deployments at ~5 per second regardless of the applier.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use sluice_e2e::cluster::{Cluster, ClusterOptions};
use sluice_e2e::process::{Lifetime, ServerProcess, free_port};
use sluice_e2e::registry::{Layer, Registry};
use sluice_e2e::{GitServer, HelmRepoServer, wait_for};

/// How long the controllers may take before the benchmark gives up.
const DEADLINE: Duration = Duration::from_secs(900);
/// Requests in flight for the plain-apply floor.
const FLOOR_CONCURRENCY: usize = 20;
/// The namespace of the HelmRepository and HelmReleases (and their releases' objects).
const HELM_NAMESPACE: &str = "helm-apps";

/// Which half of the benchmark to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Half {
    /// GitRepositories + Kustomizations.
    Kustomize,
    /// HelmRepository + HelmReleases.
    Helm,
    /// Both, one after the other on the same cluster.
    Both,
}

/// The kind of source of the Kustomization half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// One OCIRepository per app in a local registry, as Flux's harness does.
    Oci,
    /// One GitRepository per app on a local git http server.
    Git,
}

/// Arguments of the scale benchmark.
#[derive(Debug, Clone)]
pub struct ScaleArgs {
    /// Number of app packages.
    pub n: usize,
    /// Which half to run.
    pub half: Half,
    /// The sources of the Kustomization half.
    pub source: Source,
}

/// Where the Kustomization half's app packages are served from.
enum AppSources {
    Git(GitServer),
    Oci(Registry),
}

impl AppSources {
    /// The source object of app `name`.
    fn source_object(&self, name: &str) -> Value {
        let spec = match self {
            AppSources::Git(git) => {
                json!({"interval": "1h", "url": git.url(name), "ref": {"branch": "main"}})
            }
            AppSources::Oci(registry) => json!({
                "interval": "1h", "insecure": true,
                "url": format!("oci://{}/apps/{name}", registry.host()),
                "ref": {"tag": "latest"}
            }),
        };
        let resource = self.resource();
        json!({
            "apiVersion": resource.api_version, "kind": resource.kind,
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": spec,
        })
    }

    /// The kind's plural for the progress lines.
    fn label(&self) -> &'static str {
        match self {
            AppSources::Git(_) => "GitRepositories",
            AppSources::Oci(_) => "OCIRepositories",
        }
    }

    fn resource(&self) -> ApiResource {
        match self {
            AppSources::Git(_) => git_repositories(),
            AppSources::Oci(_) => oci_repositories(),
        }
    }
}

/// Pushes app `index` as a Flux OCI artifact `apps/app-<index>:latest`.
async fn push_app(registry: &Registry, scratch: &Path, index: usize) -> anyhow::Result<()> {
    let dir = scratch.join(format!("app-{index}"));
    std::fs::create_dir_all(&dir)?;
    for (file, text) in app_files(index, "apps") {
        std::fs::write(dir.join(file), text)?;
    }
    let mut layer = Vec::new();
    sluice_artifact::write_tar_gz(&dir, None, &mut layer)?;
    std::fs::remove_dir_all(&dir)?;
    let mut annotations = serde_json::Map::new();
    annotations.insert("org.opencontainers.image.source".into(), json!("https://example.com/apps"));
    annotations.insert(
        "org.opencontainers.image.revision".into(),
        json!(format!("main@sha1:{index:040x}")),
    );
    registry
        .push_artifact(
            &format!("apps/app-{index}"),
            "latest",
            "application/vnd.cncf.flux.config.v1+json",
            b"{}",
            &[Layer {
                media_type: "application/vnd.cncf.flux.content.v1.tar+gzip".into(),
                data: layer,
            }],
            &annotations,
        )
        .await?;
    Ok(())
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
  namespace: NAMESPACE
spec:
  replicas: 0
  selector:
    matchLabels:
      app: NAME
  template:
    metadata:
      labels:
        app: NAME
    spec:
      serviceAccountName: NAME
      containers:
        - name: app
          image: ghcr.io/stefanprodan/podinfo:6.5.0
          ports:
            - containerPort: 9898
              protocol: TCP
";

const SERVICE_ACCOUNT: &str = "apiVersion: v1
kind: ServiceAccount
metadata:
  name: NAME
  namespace: NAMESPACE
";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: NAME
  namespace: NAMESPACE
spec:
  selector:
    app: NAME
  ports:
    - port: 9898
      protocol: TCP
      targetPort: 9898
";

const INGRESS: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: NAME
  namespace: NAMESPACE
spec:
  rules:
    - host: NAME.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: NAME
                port:
                  number: 9898
";

/// The four manifests of one app package, `(file name, text)`, with `name` and `namespace`
/// substituted.
fn package_files(name: &str, namespace: &str) -> Vec<(String, String)> {
    [
        ("deployment.yaml", DEPLOYMENT),
        ("serviceaccount.yaml", SERVICE_ACCOUNT),
        ("service.yaml", SERVICE),
        ("ingress.yaml", INGRESS),
    ]
    .iter()
    .map(|(file, text)| {
        (file.to_string(), text.replace("NAMESPACE", namespace).replace("NAME", name))
    })
    .collect()
}

fn app_files(index: usize, namespace: &str) -> Vec<(String, String)> {
    package_files(&format!("app-{index}"), namespace)
}

/// The benchmark chart: the same four objects, named after the release.
fn chart_package() -> anyhow::Result<Vec<u8>> {
    let templates: Vec<(String, String)> =
        package_files("{{ .Release.Name }}", "{{ .Release.Namespace }}")
            .into_iter()
            .map(|(file, text)| (format!("templates/{file}"), text))
            .collect();
    let mut files: Vec<(&str, &str)> = vec![("values.yaml", "{}\n")];
    files.extend(templates.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    // Replace the default ConfigMap template with an empty one.
    files.push(("templates/configmap.yaml", ""));
    sluice_e2e::helmrepo::chart_package("app", "1.0.0", &files)
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
        "GitRepository" => git_repositories(),
        "Kustomization" => kustomizations(),
        "HelmRepository" => resource("source.toolkit.fluxcd.io", "v1", kind, "helmrepositories"),
        "HelmRelease" => helm_releases(),
        "OCIRepository" => oci_repositories(),
        "CustomResourceDefinition" => resource(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
        other => bail!("the scale benchmark does not create {other} objects"),
    })
}

fn oci_repositories() -> ApiResource {
    resource("source.toolkit.fluxcd.io", "v1", "OCIRepository", "ocirepositories")
}

fn git_repositories() -> ApiResource {
    resource("source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories")
}

fn kustomizations() -> ApiResource {
    resource("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations")
}

fn helm_charts() -> ApiResource {
    resource("source.toolkit.fluxcd.io", "v1", "HelmChart", "helmcharts")
}

fn helm_releases() -> ApiResource {
    resource("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases")
}

fn deployments() -> ApiResource {
    resource("apps", "v1", "Deployment", "deployments")
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

/// Whether the deployment controller has observed a Deployment's current generation.
fn is_observed(object: &DynamicObject) -> bool {
    object.data["status"]["observedGeneration"].as_i64() == object.metadata.generation
}

/// When each object of one kind in one namespace first met a condition, from a watch.
#[derive(Clone)]
struct Tracker {
    seen: Arc<Mutex<HashMap<String, Duration>>>,
    /// When each object was first seen at all (its creation, within the watch latency).
    created: Arc<Mutex<HashMap<String, Duration>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Tracker {
    /// Starts watching; times are measured from `start`.
    fn start(
        client: &kube::Client,
        resource: &ApiResource,
        namespace: &str,
        start: Instant,
        done: fn(&DynamicObject) -> bool,
    ) -> Tracker {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
        let seen: Arc<Mutex<HashMap<String, Duration>>> = Arc::default();
        let created: Arc<Mutex<HashMap<String, Duration>>> = Arc::default();
        let recorded = seen.clone();
        let first_seen = created.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(
                api,
                watcher::Config { page_size: None, ..watcher::Config::default().any_semantic() },
            )
            .default_backoff()
            .applied_objects()
            .boxed();
            while let Some(event) = stream.next().await {
                let Ok(object) = event else { continue };
                let name = object.metadata.name.clone().unwrap_or_default();
                first_seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(name.clone())
                    .or_insert_with(|| start.elapsed());
                if done(&object) {
                    let mut seen = recorded.lock().unwrap_or_else(|p| p.into_inner());
                    seen.entry(name).or_insert_with(|| start.elapsed());
                }
            }
        });
        Tracker { seen, created, task: Arc::new(task) }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn times(&self) -> HashMap<String, Duration> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How long each Ready object took from when it was first seen.
    fn since_created(&self) -> Vec<Duration> {
        let created = self.created.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.times()
            .iter()
            .filter_map(|(name, done)| Some(done.saturating_sub(*created.get(name)?)))
            .collect()
    }

    fn stop(&self) {
        self.task.abort();
    }
}

/// Percentiles of a set of durations, in seconds.
fn percentiles(values: impl IntoIterator<Item = Duration>) -> Value {
    let mut seconds: Vec<f64> = values.into_iter().map(|d| d.as_secs_f64()).collect();
    seconds.sort_by(|a, b| a.total_cmp(b));
    if seconds.is_empty() {
        return Value::Null;
    }
    let at = |q: f64| seconds[((seconds.len() - 1) as f64 * q).round() as usize];
    json!({"p50": at(0.5), "p90": at(0.9), "max": at(1.0), "min": at(0.0)})
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

/// The 1-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// CPU seconds of the cluster's processes whose name contains `name`.
fn cluster_cpu(cluster: &Cluster, name: &str) -> f64 {
    cluster
        .pids()
        .iter()
        .filter(|(process, _)| process.contains(name))
        .filter_map(|(_, pid)| cpu_seconds(*pid))
        .sum()
}

/// Requests the apiserver served, per `verb resource[/subresource][ dry-run]`: how many, and
/// the sum of their latencies in seconds, read from its `/metrics`. kube-apiserver v1.20
/// counts a GET of one custom resource as `LIST` (its audit log shows them as `get`).
type RequestProfile = HashMap<String, (f64, f64)>;

async fn request_profile(client: &kube::Client) -> anyhow::Result<RequestProfile> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let mut profile = RequestProfile::new();
    for line in text.lines() {
        let (rest, is_count) = if let Some(rest) = line.strip_prefix("apiserver_request_total{") {
            (rest, true)
        } else if let Some(rest) = line.strip_prefix("apiserver_request_duration_seconds_sum{") {
            (rest, false)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else { continue };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix("=\"")?.strip_suffix('"'))
                .unwrap_or("")
        };
        if label("verb") == "WATCH" || label("verb") == "CONNECT" {
            continue;
        }
        let mut key = format!("{} {}", label("verb"), label("resource"));
        if !label("subresource").is_empty() {
            key = format!("{key}/{}", label("subresource"));
        }
        if !label("dry_run").is_empty() {
            key.push_str(" dry-run");
        }
        let entry = profile.entry(key).or_default();
        if is_count {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    Ok(profile)
}

/// What was served between two profiles, the most expensive first.
fn profile_delta(before: &RequestProfile, after: &RequestProfile) -> Vec<(String, f64, f64)> {
    let mut delta: Vec<(String, f64, f64)> = after
        .iter()
        .map(|(key, (count, seconds))| {
            let (c0, s0) = before.get(key).copied().unwrap_or_default();
            (key.clone(), count - c0, seconds - s0)
        })
        .filter(|(_, count, _)| *count > 0.0)
        .collect();
    delta.sort_by(|a, b| b.2.total_cmp(&a.2));
    delta
}

/// Prints the requests of one phase and returns them as JSON.
fn report_requests(phase: &str, delta: &[(String, f64, f64)]) -> Value {
    let total: f64 = delta.iter().map(|d| d.1).sum();
    let seconds: f64 = delta.iter().map(|d| d.2).sum();
    eprintln!(
        "   apiserver requests during {phase}: {total:.0}, {seconds:.1} s summed latency; top:"
    );
    for (key, count, secs) in delta.iter().take(12) {
        eprintln!("     {count:>8.0} {secs:>8.1}s  {key}");
    }
    json!({
        "requests": total,
        "latency_seconds": seconds,
        "by_request": delta.iter().map(|(k, c, s)| json!({"request": k, "count": c, "latency_seconds": s})).collect::<Vec<_>>(),
    })
}

/// One line of the report.
struct Row {
    what: String,
    seconds: f64,
    controller: Option<String>,
    peak_mib: Option<f64>,
    cpu_seconds: Option<f64>,
}

impl Row {
    fn json(&self) -> Value {
        json!({"what": self.what, "seconds": self.seconds, "controller": self.controller,
               "peak_rss_mib": self.peak_mib, "cpu_seconds": self.cpu_seconds})
    }
}

/// Run `cargo xtask bench scale`.
pub fn run(args: ScaleArgs, root: &Path) -> anyhow::Result<()> {
    let n = args.n;
    if n == 0 {
        bail!("--n must be at least 1");
    }
    let kustomize = args.half != Half::Helm;
    let helm = args.half != Half::Kustomize;
    sluice_e2e::provision::build_kubernetes(false)?;
    sluice_e2e::provision::ensure_apt_packages(&[
        "git",
        "lighttpd",
        "apache2-utils",
        "etcd-server",
        "docker-registry",
    ])?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = vec!["build", "--release", "-p", "source-controller"];
    if kustomize {
        build.extend(["-p", "kustomize-controller"]);
    }
    if helm {
        build.extend(["-p", "helm-controller"]);
    }
    // SLUICE_BENCH_SKIP_BUILD=1 measures the release binaries already built.
    if std::env::var_os("SLUICE_BENCH_SKIP_BUILD").is_none() {
        crate::tasks::run_cmd(root, &cargo, &build)?;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("release");
    let logs = target.join(format!("bench-scale-{n}"));
    std::fs::create_dir_all(&logs)?;

    let sources = match (kustomize, args.source) {
        (false, _) => None,
        (true, Source::Git) => {
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
            Some(AppSources::Git(git))
        }
        (true, Source::Oci) => {
            eprintln!("== pushing {n} OCI artifacts");
            let registry = Registry::start(false)?;
            let started = Instant::now();
            let scratch = logs.join("oci-scratch");
            std::fs::create_dir_all(&scratch)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(
                    futures::stream::iter(0..n)
                        .map(|index| push_app(&registry, &scratch, index))
                        .buffer_unordered(8)
                        .collect::<Vec<anyhow::Result<()>>>(),
                )
                .into_iter()
                .collect::<anyhow::Result<Vec<()>>>()?;
            std::fs::remove_dir_all(&scratch)?;
            eprintln!("   done in {:.1?}", started.elapsed());
            Some(AppSources::Oci(registry))
        }
    };
    let charts = if helm {
        let charts = HelmRepoServer::start()?;
        charts.publish("app", "1.0.0", chart_package()?);
        Some(charts)
    } else {
        None
    };

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let options = ClusterOptions {
        extra_controllers: vec!["deployment".into(), "replicaset".into()],
        controller_manager_args: [
            "--kube-api-qps=300",
            "--kube-api-burst=600",
            "--concurrent-deployment-syncs=20",
            "--concurrent-replicaset-syncs=20",
        ]
        .map(String::from)
        .to_vec(),
        // 4 Services per app package and its floor: more than the default /24 holds.
        apiserver_args: {
            let mut args = vec!["--service-cluster-ip-range=10.96.0.0/16".to_string()];
            // SLUICE_BENCH_AUDIT=1: an audit log of every request but watches, to tell who
            // sends what.

            if std::env::var_os("SLUICE_BENCH_AUDIT").is_some() {
                let policy = logs.join("audit-policy.yaml");
                std::fs::write(
                    &policy,
                    "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n\
                     rules:\n- level: None\n  verbs: [watch]\n- level: Metadata\n",
                )?;
                args.push(format!("--audit-policy-file={}", policy.display()));
                args.push(format!("--audit-log-path={}", logs.join("audit.log").display()));
            }
            args
        },
        ..ClusterOptions::default()
    };
    let cluster = runtime.block_on(Cluster::start(options))?;
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    let client = runtime.block_on(cluster.client())?;
    eprintln!("== cluster up on {} ({})", cluster.server_url(), kubeconfig.display());

    let bench = Bench { client: &client, cluster: &cluster, bin: &bin, logs: &logs, n };
    let result = runtime.block_on(async {
        bench.prepare().await?;
        let mut rows = Vec::new();
        let mut report = serde_json::Map::new();
        report.insert("n".into(), json!(n));
        if let Some(sources) = &sources {
            let (half_rows, half) = bench.kustomize_half(sources).await?;
            rows.extend(half_rows);
            report.insert("kustomize".into(), half);
        }
        if let Some(charts) = &charts {
            let (half_rows, half) = bench.helm_half(charts).await?;
            rows.extend(half_rows);
            report.insert("helm".into(), half);
        }
        report.insert("rows".into(), rows.iter().map(Row::json).collect());
        report.insert("load_average_1m".into(), json!(load_average()));
        anyhow::Ok((rows, Value::Object(report)))
    });
    drop(sources);
    drop(charts);
    drop(cluster);
    let (rows, report) = result?;
    println!();
    println!(
        "scale benchmark: {n} app packages (Deployment scaled to 0, ServiceAccount, Service, Ingress)"
    );
    println!("| what | time | controller | peak RSS | CPU |");
    println!("|---|---|---|---|---|");
    let opt = |v: Option<f64>, unit: &str| v.map(|v| format!("{v:.1}{unit}")).unwrap_or_default();
    for row in &rows {
        println!(
            "| {} | {:.1}s | {} | {} | {} |",
            row.what,
            row.seconds,
            row.controller.as_deref().unwrap_or(""),
            opt(row.peak_mib, " MiB"),
            opt(row.cpu_seconds, "s"),
        );
    }
    for half in ["kustomize", "helm"] {
        if let Some(ratio) = report[half]["ratio_to_floor"].as_f64() {
            println!(
                "{half}: {ratio:.2}x the plain-apply floor (load average {:.1} → {:.1})",
                report[half]["load_before"].as_f64().unwrap_or(0.0),
                report[half]["load_after"].as_f64().unwrap_or(0.0)
            );
        }
    }
    let out = target.join(format!("bench-scale-{n}.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    eprintln!("   written to {} (controller logs in {})", out.display(), logs.display());
    Ok(())
}

struct Bench<'a> {
    client: &'a kube::Client,
    cluster: &'a Cluster,
    bin: &'a Path,
    logs: &'a Path,
    n: usize,
}

/// A floor measurement: the plain apply, and until the deployment controller observed every
/// Deployment (what `wait: true` waits for on top).
struct Floor {
    apply: Duration,
    settled: Duration,
    /// The apiserver's requests during the apply.
    requests: Value,
}

/// What [`Bench::finish`] subtracts: the state when the controllers' run started.
struct Before {
    apiserver_cpu: f64,
    manager_cpu: f64,
    etcd_cpu: f64,
    load: f64,
    requests: RequestProfile,
}

impl Bench<'_> {
    /// CRDs and namespaces.
    async fn prepare(&self) -> anyhow::Result<()> {
        let client = self.client;
        let crds = crate::codegen::generated_files()?
            .into_iter()
            .filter(|(path, _)| path.extension().is_some_and(|e| e == "yaml"))
            .filter(|(path, _)| !path.ends_with("kustomization.yaml"))
            .map(|(_, text)| serde_saphyr::from_str::<Value>(&text).map_err(anyhow::Error::from))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let crds: Vec<Value> =
            crds.into_iter().filter(|c| c["kind"] == "CustomResourceDefinition").collect();
        apply_all(client, crds, 4).await?;
        let namespaces = ["flux-system", "apps", "floor", "floor-helm", HELM_NAMESPACE]
            .iter()
            .map(
                |name| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            )
            .collect();
        apply_all(client, namespaces, 3).await?;
        wait_for(Duration::from_secs(60), "the CRDs to be served", || async {
            for resource in [kustomizations(), helm_releases()] {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), "flux-system", &resource);
                if api.list(&ListParams::default()).await.is_err() {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await
    }

    /// One plain client applies the 4×N objects into `namespace`.
    async fn floor(&self, namespace: &str) -> anyhow::Result<Floor> {
        let n = self.n;
        eprintln!("== floor: one client server-side-applies {} objects into {namespace}", 4 * n);
        let mut objects = Vec::with_capacity(4 * n);
        for index in 0..n {
            objects.extend(parse_objects(&app_files(index, namespace))?);
        }
        let profile = request_profile(self.client).await?;
        let start = Instant::now();
        let observed = Tracker::start(self.client, &deployments(), namespace, start, is_observed);
        let apply = apply_all(self.client, objects, FLOOR_CONCURRENCY).await?;
        let requests = report_requests(
            "the floor apply",
            &profile_delta(&profile, &request_profile(self.client).await?),
        );
        let deadline = Instant::now() + Duration::from_secs(300);
        while observed.count() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let settled = observed.times().into_values().max().unwrap_or_default();
        observed.stop();
        eprintln!("   applied in {apply:.1?}; every Deployment observed after {settled:.1?}");
        Ok(Floor { apply, settled, requests })
    }

    /// The cluster's CPU, the load and the apiserver's request counters when a run starts.
    async fn before(&self) -> anyhow::Result<Before> {
        Ok(Before {
            apiserver_cpu: cluster_cpu(self.cluster, "apiserver"),
            manager_cpu: cluster_cpu(self.cluster, "controller-manager"),
            etcd_cpu: cluster_cpu(self.cluster, "etcd"),
            load: load_average(),
            requests: request_profile(self.client).await?,
        })
    }

    /// Starts a controller watching only `namespace` (`--watch-all-namespaces=false`), so the
    /// helm half's source-controller does not rebuild the kustomize half's GitRepositories.
    fn spawn(
        &self,
        name: &str,
        log: &str,
        concurrent: u32,
        namespace: &str,
        args: &[String],
    ) -> anyhow::Result<ServerProcess> {
        let level = std::env::var("SLUICE_BENCH_LOG").unwrap_or_else(|_| "warn".into());
        let mut command = Command::new(self.bin.join(name));
        command
            .env("KUBECONFIG", self.cluster.kubeconfig_path())
            .env("RUNTIME_NAMESPACE", namespace)
            .arg("--watch-all-namespaces=false")
            .env("RUST_LOG", level)
            .arg("--metrics-addr=127.0.0.1:0")
            .arg("--health-addr=127.0.0.1:0")
            .arg(format!("--concurrent={concurrent}"))
            .args(args);
        ServerProcess::spawn(name, command, &self.logs.join(log), Lifetime::Guarded)
    }

    fn source_controller(&self, log: &str, namespace: &str) -> anyhow::Result<ServerProcess> {
        let storage = self.cluster.dir().join(format!("storage-{log}"));
        std::fs::create_dir_all(&storage)?;
        let addr = format!("127.0.0.1:{}", free_port()?);
        self.spawn(
            "source-controller",
            &format!("source-controller-{log}.log"),
            10,
            namespace,
            &[
                format!("--storage-path={}", storage.display()),
                format!("--storage-addr={addr}"),
                format!("--storage-adv-addr={addr}"),
            ],
        )
    }

    /// Waits until `trackers[i]` has `n` objects (or the deadline), printing progress.
    async fn wait_all(
        &self,
        start: Instant,
        trackers: &[(&str, &Tracker)],
        controllers: &mut [ServerProcess],
    ) -> anyhow::Result<()> {
        let n = self.n;
        let mut last_print = Instant::now();
        loop {
            let counts: Vec<usize> = trackers.iter().map(|(_, t)| t.count()).collect();
            if counts.iter().all(|c| *c >= n) {
                return Ok(());
            }
            for controller in controllers.iter_mut() {
                controller.ensure_running()?;
            }
            if start.elapsed() > DEADLINE {
                for controller in controllers.iter() {
                    eprintln!("--- {} ---\n{}", controller.name(), controller.log_tail(3000));
                }
                bail!("not every object was Ready within {DEADLINE:?}");
            }
            if last_print.elapsed() > Duration::from_secs(5) {
                let progress: Vec<String> = trackers
                    .iter()
                    .zip(&counts)
                    .map(|((kind, _), count)| format!("{count}/{n} {kind}"))
                    .collect();
                eprintln!(
                    "   {:>5.1}s: {} Ready (load {:.1})",
                    start.elapsed().as_secs_f64(),
                    progress.join(", "),
                    load_average()
                );
                last_print = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Figures of one run: the rows and the JSON of the half.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        label: &str,
        floor: Floor,
        sources: (&str, &Tracker),
        consumers: (&str, &Tracker),
        source_of: impl Fn(&str) -> String,
        mut controllers: Vec<ServerProcess>,
        before: Before,
    ) -> anyhow::Result<(Vec<Row>, Value)> {
        let n = self.n;
        let figures: Vec<(String, f64, f64)> = controllers
            .iter()
            .map(|c| {
                (
                    c.name().to_string(),
                    peak_rss_kib(c.pid()).unwrap_or(0) as f64 / 1024.0,
                    cpu_seconds(c.pid()).unwrap_or(0.0),
                )
            })
            .collect();
        let apiserver_cpu = cluster_cpu(self.cluster, "apiserver") - before.apiserver_cpu;
        let manager_cpu = cluster_cpu(self.cluster, "controller-manager") - before.manager_cpu;
        let etcd_cpu = cluster_cpu(self.cluster, "etcd") - before.etcd_cpu;
        let load_before = before.load;
        let load_after = load_average();
        let requests = report_requests(
            &format!("the {label} run"),
            &profile_delta(&before.requests, &request_profile(self.client).await?),
        );
        for controller in &mut controllers {
            controller.stop(Duration::from_secs(5));
        }
        sources.1.stop();
        consumers.1.stop();
        let source_times = sources.1.times();
        let consumer_times = consumers.1.times();
        let sources_done = source_times.values().max().copied().unwrap_or_default();
        let consumers_done = consumer_times.values().max().copied().unwrap_or_default();
        // How long each consumer took after its own source was Ready.
        let lags = consumer_times.iter().filter_map(|(name, done)| {
            source_times.get(&source_of(name)).map(|source| done.saturating_sub(*source))
        });
        let lags = percentiles(lags);
        let ratio = consumers_done.as_secs_f64() / floor.apply.as_secs_f64().max(0.001);
        let mut rows = vec![
            Row {
                what: format!("{label}: floor, one client applies {} objects", 4 * n),
                seconds: floor.apply.as_secs_f64(),
                controller: None,
                peak_mib: None,
                cpu_seconds: None,
            },
            Row {
                what: format!("{label}: floor + every Deployment observed"),
                seconds: floor.settled.as_secs_f64(),
                controller: Some("kube-controller-manager".into()),
                peak_mib: None,
                cpu_seconds: None,
            },
        ];
        for ((kind, _), done, figure) in
            [(sources, sources_done, &figures[0]), (consumers, consumers_done, &figures[1])]
        {
            rows.push(Row {
                what: format!("{label}: {n} {kind} Ready"),
                seconds: done.as_secs_f64(),
                controller: Some(figure.0.clone()),
                peak_mib: Some(figure.1),
                cpu_seconds: Some(figure.2),
            });
        }
        rows.push(Row {
            what: format!("{label}: kube-apiserver + etcd + controller-manager CPU during the run"),
            seconds: consumers_done.as_secs_f64(),
            controller: None,
            peak_mib: None,
            cpu_seconds: Some(apiserver_cpu + etcd_cpu + manager_cpu),
        });
        eprintln!(
            "   {label}: {} Ready at {}; after their source {lags}; {} after creation {}",
            consumers.0,
            percentiles(consumer_times.values().copied()),
            sources.0,
            percentiles(sources.1.since_created()),
        );
        let half = json!({
            "floor_seconds": floor.apply.as_secs_f64(),
            "floor_settled_seconds": floor.settled.as_secs_f64(),
            "sources_ready_seconds": sources_done.as_secs_f64(),
            "ready_seconds": consumers_done.as_secs_f64(),
            "ratio_to_floor": ratio,
            "source_ready": percentiles(source_times.values().copied()),
            "ready": percentiles(consumer_times.values().copied()),
            "ready_after_source": lags,
            "source_ready_after_created": percentiles(sources.1.since_created()),
            "ready_after_created": percentiles(consumers.1.since_created()),
            "apiserver_cpu_seconds": apiserver_cpu,
            "controller_manager_cpu_seconds": manager_cpu,
            "etcd_cpu_seconds": etcd_cpu,
            "floor_requests": floor.requests,
            "requests": requests,
            "load_before": load_before,
            "load_after": load_after,
            "controllers": figures.iter().map(|(name, peak, cpu)| json!({
                "name": name, "peak_rss_mib": peak, "cpu_seconds": cpu
            })).collect::<Vec<_>>(),
        });
        Ok((rows, half))
    }

    async fn kustomize_half(&self, app_sources: &AppSources) -> anyhow::Result<(Vec<Row>, Value)> {
        let n = self.n;
        let floor = self.floor("floor").await?;
        eprintln!("== starting source-controller and kustomize-controller (release builds)");
        let mut controllers = vec![
            self.source_controller("kustomize", "flux-system")?,
            self.spawn("kustomize-controller", "kustomize-controller.log", 20, "flux-system", &[])?,
        ];
        // Let both controllers start their watches before the clock starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = self.before().await?;

        let source_kind = app_sources.resource().kind;
        let plural = app_sources.label();
        eprintln!("== creating {n} {plural} and {n} Kustomizations");
        let mut objects = Vec::with_capacity(2 * n);
        for index in 0..n {
            let name = format!("app-{index}");
            objects.push(app_sources.source_object(&name));
            objects.push(json!({
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": name, "namespace": "flux-system"},
                "spec": {"interval": "1h", "path": "./", "prune": true, "wait": true,
                         "timeout": "5m",
                         "sourceRef": {"kind": source_kind, "name": name}}
            }));
        }
        let start = Instant::now();
        let sources =
            Tracker::start(self.client, &app_sources.resource(), "flux-system", start, is_ready);
        let ready = Tracker::start(self.client, &kustomizations(), "flux-system", start, is_ready);
        let created = apply_all(self.client, objects, FLOOR_CONCURRENCY).await?;
        eprintln!("   created in {created:.1?}");
        self.wait_all(start, &[(plural, &sources), ("Kustomizations", &ready)], &mut controllers)
            .await?;
        self.finish(
            "kustomize",
            floor,
            (&source_kind, &sources),
            ("Kustomization", &ready),
            |name| name.to_string(),
            controllers,
            before,
        )
        .await
    }

    async fn helm_half(&self, charts: &HelmRepoServer) -> anyhow::Result<(Vec<Row>, Value)> {
        let n = self.n;
        let floor = self.floor("floor-helm").await?;
        eprintln!("== starting source-controller and helm-controller (release builds)");
        let mut controllers = vec![
            self.source_controller("helm", HELM_NAMESPACE)?,
            self.spawn("helm-controller", "helm-controller.log", 10, HELM_NAMESPACE, &[])?,
        ];
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = self.before().await?;

        eprintln!("== creating 1 HelmRepository and {n} HelmReleases");
        let mut objects = Vec::with_capacity(n + 1);
        objects.push(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": "charts", "namespace": HELM_NAMESPACE},
            "spec": {"interval": "1h", "url": charts.url()}
        }));
        for index in 0..n {
            objects.push(json!({
                "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                "metadata": {"name": format!("app-{index}"), "namespace": HELM_NAMESPACE},
                "spec": {
                    "interval": "1h",
                    "timeout": "5m",
                    "chart": {"spec": {
                        "chart": "app", "version": "*", "interval": "1h",
                        "sourceRef": {"kind": "HelmRepository", "name": "charts"}
                    }}
                }
            }));
        }
        let start = Instant::now();
        let sources = Tracker::start(self.client, &helm_charts(), HELM_NAMESPACE, start, is_ready);
        let ready = Tracker::start(self.client, &helm_releases(), HELM_NAMESPACE, start, is_ready);
        let created = apply_all(self.client, objects, FLOOR_CONCURRENCY).await?;
        eprintln!("   created in {created:.1?}");
        self.wait_all(
            start,
            &[("HelmCharts", &sources), ("HelmReleases", &ready)],
            &mut controllers,
        )
        .await?;
        self.finish(
            "helm",
            floor,
            ("HelmChart", &sources),
            ("HelmRelease", &ready),
            |name| format!("{HELM_NAMESPACE}-{name}"),
            controllers,
            before,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_packages_hold_the_four_objects_of_flux_benchmark() {
        let objects = parse_objects(&app_files(7, "floor")).unwrap();
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Deployment", "ServiceAccount", "Service", "Ingress"]);
        for object in &objects {
            assert_eq!(object["metadata"]["name"], "app-7");
            assert_eq!(object["metadata"]["namespace"], "floor");
            resource_for(object).unwrap();
        }
        assert_eq!(objects[0]["spec"]["replicas"], 0);
        assert_eq!(objects[3]["spec"]["rules"][0]["host"], "app-7.example.com");
    }

    #[test]
    fn percentiles_of_ready_times() {
        let times = (1..=10).map(Duration::from_secs);
        let p = percentiles(times);
        assert_eq!((p["min"].as_f64(), p["max"].as_f64()), (Some(1.0), Some(10.0)));
        assert_eq!(p["p90"].as_f64(), Some(9.0));
        assert_eq!(percentiles(Vec::new()), Value::Null);
    }
}
