//! HelmRepository and HelmChart on the real apiserver: a loopback Helm repository (with basic
//! auth) and a git server feed the in-process source-controller.

mod common;

use std::io::Read;
use std::time::Duration;

use common::{SUITE_LABEL, start_source_controller};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use sha2::Digest;
use sluice_api::meta::{Artifact, Condition};
use sluice_api::source::{GitRepository, HelmChart, HelmRepository};
use sluice_e2e::helmrepo::chart_package;
use sluice_e2e::{GitServer, HelmRepoServer, TestEnv, wait_for};

/// The index size limit of the controller under test: the tests' indexes are far smaller.
const INDEX_MAX_SIZE: usize = 64 * 1024;

/// The flags that set [`INDEX_MAX_SIZE`].
fn index_limit() -> Vec<String> {
    vec![format!("--helm-index-max-size={INDEX_MAX_SIZE}")]
}

fn ready(conditions: Option<&Vec<Condition>>) -> Option<Condition> {
    find_condition(conditions, "Ready")
}

fn find_condition(conditions: Option<&Vec<Condition>>, type_: &str) -> Option<Condition> {
    conditions?.iter().find(|c| c.type_ == type_).cloned()
}

async fn create_secret(env: &TestEnv, namespace: &str, name: &str, username: &str, password: &str) {
    let secrets: Api<Secret> = Api::namespaced(env.client(), namespace);
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"username": username, "password": password}})).unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();
}

/// Downloads an artifact and checks its bytes against `status.artifact.digest`.
async fn download(artifact: &Artifact) -> Vec<u8> {
    let response = sluice_e2e::http_client().get(&artifact.url).send().await.unwrap();
    assert!(response.status().is_success(), "GET {}: {}", artifact.url, response.status());
    let bytes = response.bytes().await.unwrap().to_vec();
    assert_eq!(
        artifact.digest.as_deref(),
        Some(format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes))).as_str()),
        "digest of {}",
        artifact.url
    );
    assert_eq!(artifact.size, Some(bytes.len() as i64));
    bytes
}

/// The files of a chart package, `<chart>/<path>` → content.
fn package_files(bytes: &[u8]) -> Vec<(String, String)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            (path, text)
        })
        .collect()
}

async fn wait_repo<F>(api: &Api<HelmRepository>, name: &str, what: &str, check: F) -> HelmRepository
where
    F: Fn(&HelmRepository) -> bool,
{
    wait_for(Duration::from_secs(60), what, || async {
        let repo = api.get(name).await?;
        Ok(check(&repo).then_some(repo))
    })
    .await
    .unwrap()
}

async fn wait_chart<F>(api: &Api<HelmChart>, name: &str, what: &str, check: F) -> HelmChart
where
    F: Fn(&HelmChart) -> bool,
{
    wait_for(Duration::from_secs(60), what, || async {
        let chart = api.get(name).await?;
        Ok(check(&chart).then_some(chart))
    })
    .await
    .unwrap()
}

/// What identifies a stored artifact (a periodic reconcile that raced a stale cache may
/// re-store the same bytes with a new lastUpdateTime).
fn identity(artifact: Option<Artifact>) -> Option<(String, String, Option<String>, Option<i64>)> {
    artifact.map(|a| (a.path, a.revision, a.digest, a.size))
}

fn repo_ready(repo: &HelmRepository) -> Option<Condition> {
    ready(repo.status.as_ref()?.conditions.as_ref())
}

fn chart_ready(chart: &HelmChart) -> Option<Condition> {
    ready(chart.status.as_ref()?.conditions.as_ref())
}

fn helm_chart(
    suite: &str,
    name: &str,
    chart: &str,
    version: &str,
    source: (&str, &str),
) -> HelmChart {
    serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
        "metadata": {"name": name, "labels": {SUITE_LABEL: suite}},
        "spec": {"chart": chart, "version": version, "interval": "2s",
                 "sourceRef": {"kind": source.0, "name": source.1}}
    }))
    .unwrap()
}

#[tokio::test]
async fn helm_repository_index_and_charts_from_it() {
    const SUITE: &str = "helm-repository";
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("helm-repo").await.unwrap();
    let server = HelmRepoServer::start_with_auth().unwrap();
    let first_package = chart_package("demo", "1.0.0", &[]).unwrap();
    server.publish("demo", "1.0.0", first_package.clone());
    server.publish("other", "0.1.0", chart_package("other", "0.1.0", &[]).unwrap());
    let storage = tempfile::tempdir().unwrap();
    let runtime = start_source_controller(&env, storage.path(), SUITE, &index_limit()).await;

    create_secret(&env, ns.name(), "helm-auth", HelmRepoServer::USERNAME, HelmRepoServer::PASSWORD)
        .await;
    let repos: Api<HelmRepository> = Api::namespaced(env.client(), ns.name());
    let repo: HelmRepository = serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository", "metadata": {"name": "charts", "labels": {SUITE_LABEL: SUITE}},
        "spec": {"url": server.url(), "interval": "2s", "secretRef": {"name": "helm-auth"}}
    }))
    .unwrap();
    repos.create(&PostParams::default(), &repo).await.unwrap();

    // The index is stored as index-<hex>.yaml; revision = digest of the stored bytes.
    let repo = wait_repo(&repos, "charts", "the HelmRepository to store its index", |r| {
        r.status.as_ref().and_then(|s| s.artifact.as_ref()).is_some()
    })
    .await;
    let index_artifact = repo.status.as_ref().unwrap().artifact.clone().unwrap();
    let hex = index_artifact.revision.strip_prefix("sha256:").expect("sha256 revision").to_string();
    assert_eq!(index_artifact.digest.as_deref(), Some(index_artifact.revision.as_str()));
    assert_eq!(
        index_artifact.path,
        format!("helmrepository/{}/charts/index-{hex}.yaml", ns.name())
    );
    let index = download(&index_artifact).await;
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    assert_eq!(index["entries"]["demo"][0]["version"], "1.0.0");
    let condition = repo_ready(&repo).unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str(), condition.message.as_str()),
        (
            "True",
            "Succeeded",
            format!("stored artifact: revision '{}'", index_artifact.revision).as_str()
        )
    );
    assert_eq!(repo.status.as_ref().unwrap().url.as_deref(), Some(index_artifact.url.as_str()));

    // A HelmChart pulls the highest matching version with the repository's credentials.
    let charts: Api<HelmChart> = Api::namespaced(env.client(), ns.name());
    charts
        .create(
            &PostParams::default(),
            &helm_chart(SUITE, "demo", "demo", "1.x", ("HelmRepository", "charts")),
        )
        .await
        .unwrap();
    let chart = wait_chart(&charts, "demo", "the HelmChart to pull demo 1.0.0", |c| {
        c.status.as_ref().and_then(|s| s.artifact.as_ref()).is_some_and(|a| a.revision == "1.0.0")
    })
    .await;
    let artifact = chart.status.as_ref().unwrap().artifact.clone().unwrap();
    assert_eq!(artifact.path, format!("helmchart/{}/demo/demo-1.0.0.tgz", ns.name()));
    assert_eq!(download(&artifact).await, first_package, "the pulled package is stored unchanged");
    let condition = chart_ready(&chart).unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str(), condition.message.as_str()),
        ("True", "ChartPullSucceeded", "pulled 'demo' chart with version '1.0.0'")
    );
    assert_eq!(chart.status.as_ref().unwrap().observed_chart_name.as_deref(), Some("demo"));
    assert!(server.requests().iter().any(|p| p == "/charts/demo-1.0.0.tgz"));

    // A new version in the index gives a new chart revision within an interval or two.
    server.publish("demo", "1.1.0", chart_package("demo", "1.1.0", &[]).unwrap());
    let published = tokio::time::Instant::now();
    let chart = wait_chart(&charts, "demo", "the HelmChart to pull demo 1.1.0", |c| {
        c.status.as_ref().and_then(|s| s.artifact.as_ref()).is_some_and(|a| a.revision == "1.1.0")
    })
    .await;
    eprintln!("new chart version picked up after {:?}", published.elapsed());
    assert!(published.elapsed() < Duration::from_secs(15), "took {:?}", published.elapsed());
    let artifact = chart.status.unwrap().artifact.unwrap();
    assert_eq!(artifact.path, format!("helmchart/{}/demo/demo-1.1.0.tgz", ns.name()));
    let files = package_files(&download(&artifact).await);
    assert!(files.iter().any(|(p, t)| p == "demo/Chart.yaml" && t.contains("version: 1.1.0")));

    // No version matching, unknown chart: clear conditions, no artifact.
    charts
        .create(
            &PostParams::default(),
            &helm_chart(SUITE, "too-new", "demo", ">=5.0.0", ("HelmRepository", "charts")),
        )
        .await
        .unwrap();
    charts
        .create(
            &PostParams::default(),
            &helm_chart(SUITE, "unknown", "missing", "*", ("HelmRepository", "charts")),
        )
        .await
        .unwrap();
    for (name, expected) in [
        ("too-new", "no 'demo' chart with version matching '>=5.0.0' found"),
        ("unknown", "no chart named 'missing' in the repository index"),
    ] {
        let chart = wait_chart(&charts, name, "the HelmChart to fail", |c| {
            chart_ready(c).is_some_and(|r| r.status == "False")
        })
        .await;
        let condition = chart_ready(&chart).unwrap();
        assert_eq!(condition.reason, "ChartPullError", "{name}: {condition:?}");
        assert!(condition.message.starts_with("chart pull error: "), "{}", condition.message);
        assert!(condition.message.contains(expected), "{name}: {}", condition.message);
        let conditions = chart.status.as_ref().unwrap().conditions.as_ref();
        let build_failed =
            find_condition(conditions, "BuildFailed").expect("BuildFailed condition");
        assert_eq!(
            (build_failed.status.as_str(), build_failed.reason.as_str()),
            ("True", "ChartPullError")
        );
        assert!(chart.status.unwrap().artifact.is_none());
    }

    // Wrong credentials: 401 named in the condition, the stored index is kept.
    let repo = repos.get("charts").await.unwrap();
    let good = repo.status.unwrap().artifact.unwrap();
    let secrets: Api<Secret> = Api::namespaced(env.client(), ns.name());
    let patch = json!({"stringData": {"password": "wrong"}});
    secrets.patch("helm-auth", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    sluice_e2e::request_reconcile(&repos, "charts").await;
    let repo = wait_repo(&repos, "charts", "the HelmRepository to fail with 401", |r| {
        repo_ready(r).is_some_and(|c| c.status == "False" && c.message.contains("401"))
    })
    .await;
    let condition = repo_ready(&repo).unwrap();
    assert_eq!(condition.reason, "Failed");
    assert!(
        condition.message.contains("check the credentials in spec.secretRef"),
        "{}",
        condition.message
    );
    assert!(
        !condition.message.contains("wrong"),
        "no secret in the condition: {}",
        condition.message
    );
    let conditions = repo.status.as_ref().unwrap().conditions.as_ref();
    let fetch_failed = find_condition(conditions, "FetchFailed").expect("FetchFailed condition");
    assert_eq!((fetch_failed.status.as_str(), fetch_failed.reason.as_str()), ("True", "Failed"));
    let stored =
        find_condition(conditions, "ArtifactInStorage").expect("ArtifactInStorage condition");
    assert_eq!(stored.status, "True", "the old artifact is still in storage");
    assert_eq!(identity(repo.status.unwrap().artifact), identity(Some(good.clone())), "kept");
    assert!(download(&good).await.len() > 10);

    // Oversized index: the limit is named, the stored index is kept.
    let patch = json!({"stringData": {"password": HelmRepoServer::PASSWORD}});
    secrets.patch("helm-auth", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let mut big = server.generated_index().into_bytes();
    while big.len() <= INDEX_MAX_SIZE {
        big.extend_from_slice(b"# padding to exceed the index size limit of the controller\n");
    }
    server.set_index(Some(big));
    sluice_e2e::request_reconcile(&repos, "charts").await;
    let repo = wait_repo(&repos, "charts", "the HelmRepository to refuse the big index", |r| {
        repo_ready(r).is_some_and(|c| c.status == "False" && c.message.contains("maximum size"))
    })
    .await;
    let condition = repo_ready(&repo).unwrap();
    assert!(
        condition.message.contains(&format!("exceeds the maximum size of {INDEX_MAX_SIZE} bytes"))
            && condition.message.contains("--helm-index-max-size"),
        "{}",
        condition.message
    );
    assert_eq!(identity(repo.status.unwrap().artifact), identity(Some(good.clone())));

    // Bad index YAML: IndexationFailed.
    server.set_index(Some(b"apiVersion: v1\nentries: [unclosed\n".to_vec()));
    sluice_e2e::request_reconcile(&repos, "charts").await;
    let repo = wait_repo(&repos, "charts", "the HelmRepository to reject the bad index", |r| {
        repo_ready(r).is_some_and(|c| c.reason == "IndexationFailed")
    })
    .await;
    let condition = repo_ready(&repo).unwrap();
    assert!(
        condition.message.contains("failed to load Helm repository index"),
        "{}",
        condition.message
    );
    assert_eq!(identity(repo.status.unwrap().artifact), identity(Some(good.clone())));

    // Back to a good index: Ready again with the stored index.
    server.set_index(None);
    sluice_e2e::request_reconcile(&repos, "charts").await;
    let repo = wait_repo(&repos, "charts", "the HelmRepository to recover", |r| {
        repo_ready(r).is_some_and(|c| c.status == "True")
    })
    .await;
    let conditions = repo.status.as_ref().unwrap().conditions.as_ref();
    assert!(
        find_condition(conditions, "FetchFailed").is_none(),
        "FetchFailed is removed on success"
    );
    runtime.shutdown.trigger();
}

#[tokio::test]
async fn helm_chart_packaged_from_a_git_repository() {
    const SUITE: &str = "helm-git";
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("helm-git").await.unwrap();
    let git = GitServer::start().unwrap();
    let chart_yaml = "apiVersion: v2\nname: app\nversion: 0.1.0\n";
    let first = git
        .create_repo(
            "platform",
            &[
                ("charts/app/Chart.yaml", chart_yaml),
                ("charts/app/values.yaml", "replicas: 1\nimage:\n  tag: v1\n  repository: app\n"),
                ("charts/app/templates/cm.yaml", "kind: ConfigMap\n"),
                ("charts/app/.helmignore", "notes.txt\n"),
                ("charts/app/notes.txt", "ignored by .helmignore\n"),
                ("values-prod.yaml", "replicas: 3\nimage:\n  tag: v2\n"),
            ],
        )
        .unwrap();
    let storage = tempfile::tempdir().unwrap();
    let runtime = start_source_controller(&env, storage.path(), SUITE, &index_limit()).await;
    let repos: Api<GitRepository> = Api::namespaced(env.client(), ns.name());
    let repo: GitRepository = serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "platform", "labels": {SUITE_LABEL: SUITE}},
        "spec": {"url": git.url("platform"), "interval": "2s", "ref": {"branch": "main"}}
    }))
    .unwrap();
    repos.create(&PostParams::default(), &repo).await.unwrap();

    let charts: Api<HelmChart> = Api::namespaced(env.client(), ns.name());
    let mut chart = helm_chart(SUITE, "app", "./charts/app", "*", ("GitRepository", "platform"));
    chart.spec.values_files =
        Some(vec!["charts/app/values.yaml".into(), "values-prod.yaml".into()]);
    chart.spec.reconcile_strategy = Some("Revision".into());
    charts.create(&PostParams::default(), &chart).await.unwrap();
    let plain = helm_chart(SUITE, "plain", "charts/app", "*", ("GitRepository", "platform"));
    charts.create(&PostParams::default(), &plain).await.unwrap();

    let version = format!("0.1.0+{}", &first[..12]);
    let chart = wait_chart(&charts, "app", "the HelmChart to package app", |c| {
        c.status.as_ref().and_then(|s| s.artifact.as_ref()).is_some_and(|a| a.revision == version)
    })
    .await;
    let status = chart.status.clone().unwrap();
    let artifact = status.artifact.unwrap();
    assert_eq!(artifact.path, format!("helmchart/{}/app/app-{version}.tgz", ns.name()));
    let condition = chart_ready(&chart).unwrap();
    assert_eq!(
        (condition.reason.as_str(), condition.message.as_str()),
        (
            "ChartPackageSucceeded",
            format!("packaged 'app' chart with version '{version}'").as_str()
        )
    );
    assert_eq!(status.observed_source_artifact_revision, Some(format!("main@sha1:{first}")));
    assert_eq!(
        status.observed_values_files,
        Some(vec!["charts/app/values.yaml".to_string(), "values-prod.yaml".to_string()])
    );
    let files = package_files(&download(&artifact).await);
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        ["app/Chart.yaml", "app/values.yaml", "app/.helmignore", "app/templates/cm.yaml"]
    );
    let values = &files[1].1;
    assert!(
        values.contains("replicas: 3")
            && values.contains("tag: v2")
            && values.contains("repository: app"),
        "{values}"
    );
    assert!(files[0].1.contains(&format!("version: {version}")), "{}", files[0].1);

    // ChartVersion strategy: version from Chart.yaml, chart values untouched.
    let plain = wait_chart(&charts, "plain", "the HelmChart to package plain", |c| {
        c.status.as_ref().and_then(|s| s.artifact.as_ref()).is_some_and(|a| a.revision == "0.1.0")
    })
    .await;
    let plain_artifact = plain.status.unwrap().artifact.unwrap();
    let files = package_files(&download(&plain_artifact).await);
    assert!(files.iter().any(|(p, t)| p == "app/values.yaml" && t.contains("replicas: 1")));

    // A new commit: a new revision for the Revision strategy; the same chart version is kept
    // for ChartVersion; a version bump is packaged.
    let second = git
        .repos()
        .commit(
            "platform",
            &[("charts/app/templates/cm.yaml", "kind: ConfigMap\n# changed\n")],
            "change",
        )
        .unwrap();
    let version = format!("0.1.0+{}", &second[..12]);
    wait_chart(&charts, "app", "the HelmChart to package the new commit", |c| {
        c.status.as_ref().and_then(|s| s.artifact.as_ref()).is_some_and(|a| a.revision == version)
    })
    .await;
    let plain = wait_chart(&charts, "plain", "plain to observe the new commit", |c| {
        c.status.as_ref().and_then(|s| s.observed_source_artifact_revision.as_deref())
            == Some(format!("main@sha1:{second}").as_str())
    })
    .await;
    assert_eq!(
        plain.status.unwrap().artifact.as_ref(),
        Some(&plain_artifact),
        "same version: kept"
    );
    git.repos()
        .commit(
            "platform",
            &[("charts/app/Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.2.0\n")],
            "bump",
        )
        .unwrap();
    wait_chart(&charts, "plain", "plain to package 0.2.0", |c| {
        c.status.as_ref().and_then(|s| s.artifact.as_ref()).is_some_and(|a| a.revision == "0.2.0")
    })
    .await;

    // Deleting a HelmChart removes its artifacts from the storage.
    let plain_dir = storage.path().join(format!("helmchart/{}/plain", ns.name()));
    assert!(plain_dir.is_dir(), "{} exists", plain_dir.display());
    charts.delete("plain", &Default::default()).await.unwrap();
    wait_for(Duration::from_secs(30), "the deleted HelmChart's artifacts to go", || async {
        let gone = charts.get_opt("plain").await?.is_none() && !plain_dir.exists();
        Ok(gone.then_some(()))
    })
    .await
    .unwrap();

    // A chart path that is not in the source, and a missing values file.
    charts
        .create(
            &PostParams::default(),
            &helm_chart(SUITE, "nowhere", "charts/nope", "*", ("GitRepository", "platform")),
        )
        .await
        .unwrap();
    let mut missing =
        helm_chart(SUITE, "missing-values", "charts/app", "*", ("GitRepository", "platform"));
    missing.spec.values_files = Some(vec!["values-staging.yaml".into()]);
    charts.create(&PostParams::default(), &missing).await.unwrap();
    let nowhere = wait_chart(&charts, "nowhere", "the HelmChart to stall", |c| {
        chart_ready(c).is_some_and(|r| r.status == "False")
    })
    .await;
    let condition = chart_ready(&nowhere).unwrap();
    assert!(
        condition.message.contains("no chart directory or package at path 'charts/nope'"),
        "{}",
        condition.message
    );
    let missing = wait_chart(&charts, "missing-values", "the HelmChart to fail", |c| {
        chart_ready(c).is_some_and(|r| r.status == "False")
    })
    .await;
    let condition = chart_ready(&missing).unwrap();
    assert_eq!(condition.reason, "ValuesFilesError");
    assert!(condition.message.contains("values-staging.yaml"), "{}", condition.message);
    // ignoreMissingValuesFiles tolerates it.
    let patch = json!({"spec": {"ignoreMissingValuesFiles": true}});
    charts.patch("missing-values", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    wait_chart(&charts, "missing-values", "the HelmChart to skip the missing file", |c| {
        chart_ready(c).is_some_and(|r| r.status == "True")
    })
    .await;
    runtime.shutdown.trigger();
}

#[tokio::test]
async fn helm_chart_from_an_oci_registry() {
    const SUITE: &str = "helm-oci";
    const CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
    const CHART_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("helm-oci").await.unwrap();
    let registry = sluice_e2e::Registry::start(true).unwrap();
    // Versions as Helm pushes them: `+` in a version becomes `_` in the tag.
    let mut packages = std::collections::BTreeMap::new();
    for (version, tag) in
        [("1.0.0", "1.0.0"), ("1.1.0+build.7", "1.1.0_build.7"), ("2.0.0", "2.0.0")]
    {
        let package = chart_package("demo", version, &[]).unwrap();
        let config =
            serde_json::to_vec(&json!({"apiVersion": "v2", "name": "demo", "version": version}))
                .unwrap();
        let layer =
            sluice_e2e::registry::Layer { media_type: CHART_LAYER.into(), data: package.clone() };
        registry
            .push_artifact("charts/demo", tag, CONFIG, &config, &[layer], &serde_json::Map::new())
            .await
            .unwrap();
        packages.insert(version, package);
    }
    let storage = tempfile::tempdir().unwrap();
    let runtime = start_source_controller(&env, storage.path(), SUITE, &index_limit()).await;
    let (user, password) = registry.credentials().unwrap();
    create_secret(&env, ns.name(), "oci-auth", user, password).await;
    create_secret(&env, ns.name(), "oci-wrong", user, "not-the-password").await;
    let repos: Api<HelmRepository> = Api::namespaced(env.client(), ns.name());
    for (name, secret) in [("oci", "oci-auth"), ("oci-denied", "oci-wrong")] {
        let repo: HelmRepository = serde_json::from_value(json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": name, "labels": {SUITE_LABEL: SUITE}},
            "spec": {"type": "oci", "url": format!("oci://{}/charts", registry.host()), "insecure": true,
                     "interval": "10m", "secretRef": {"name": secret}}
        }))
        .unwrap();
        repos.create(&PostParams::default(), &repo).await.unwrap();
    }
    let charts: Api<HelmChart> = Api::namespaced(env.client(), ns.name());
    for (name, version, repo) in [
        ("demo-1x", "1.x", "oci"),
        ("demo-exact", "2.0.0", "oci"),
        ("demo-missing", "3.x", "oci"),
        ("demo-denied", "1.x", "oci-denied"),
    ] {
        charts
            .create(
                &PostParams::default(),
                &helm_chart(SUITE, name, "demo", version, ("HelmRepository", repo)),
            )
            .await
            .unwrap();
    }
    for (name, version) in [("demo-1x", "1.1.0+build.7"), ("demo-exact", "2.0.0")] {
        let chart = wait_chart(&charts, name, &format!("{name} to pull {version}"), |c| {
            c.status
                .as_ref()
                .and_then(|s| s.artifact.as_ref())
                .is_some_and(|a| a.revision == version)
        })
        .await;
        let ready = chart_ready(&chart).unwrap();
        assert_eq!(ready.status, "True", "{name}: {}", ready.message);
        let artifact = chart.status.unwrap().artifact.unwrap();
        assert_eq!(
            artifact.path,
            format!("helmchart/{}/{name}/demo-{version}.tgz", ns.name()),
            "{name}"
        );
        // Pulled without valuesFiles: the registry's bytes, unchanged.
        assert_eq!(download(&artifact).await, packages[version], "{name}");
    }
    let failures = [
        ("demo-missing", "ChartPullError", "no 'demo' chart with version matching '3.x'"),
        ("demo-denied", "AuthenticationFailed", "401"),
    ];
    for (name, reason, text) in failures {
        let chart = wait_chart(&charts, name, &format!("{name} to fail"), |c| {
            chart_ready(c).is_some_and(|r| r.status == "False" && r.reason == reason)
        })
        .await;
        let ready = chart_ready(&chart).unwrap();
        assert!(ready.message.contains(text), "{name}: {}", ready.message);
        assert!(!ready.message.contains("not-the-password"), "secret leaked: {}", ready.message);
        assert!(chart.status.unwrap().artifact.is_none(), "{name} stored nothing");
    }
    runtime.shutdown.trigger();
}

/// The entry names of a chart package (binary entries such as vendored `.tgz` included).
fn package_entries(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let entries = archive.entries().unwrap();
    entries.map(|entry| entry.unwrap().path().unwrap().display().to_string()).collect()
}

#[tokio::test]
async fn helm_chart_dependencies_are_built() {
    const SUITE: &str = "helm-deps";
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("helm-deps").await.unwrap();
    // A private Helm repository holds `demo`; the HelmRepository of the same URL lends its
    // credentials to the dependency download.
    let server = HelmRepoServer::start_with_auth().unwrap();
    server.publish("demo", "1.0.0", chart_package("demo", "1.0.0", &[]).unwrap());
    server.publish("demo", "1.4.0", chart_package("demo", "1.4.0", &[]).unwrap());
    server.publish("demo", "2.0.0", chart_package("demo", "2.0.0", &[]).unwrap());
    let app = |range: &str| {
        format!(
            "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n- name: common\n  version: 0.1.0\n  repository: file://../common\n- name: demo\n  version: \"{range}\"\n  repository: {}\n",
            server.url()
        )
    };
    let git = GitServer::start().unwrap();
    git.create_repo(
        "platform",
        &[
            ("charts/app/Chart.yaml", &app("1.x")),
            ("charts/app/templates/cm.yaml", "kind: ConfigMap\n"),
            ("charts/common/Chart.yaml", "apiVersion: v2\nname: common\nversion: 0.1.0\ntype: library\n"),
            ("charts/common/templates/_helpers.tpl", "{{- define \"common.name\" -}}x{{- end -}}\n"),
            ("charts/broken/Chart.yaml", &app("9.x").replace("name: app", "name: broken")),
            ("charts/escape/Chart.yaml", "apiVersion: v2\nname: escape\nversion: 0.1.0\ndependencies:\n- name: common\n  version: 0.1.0\n  repository: file://../../../etc\n"),
        ],
    )
    .unwrap();
    create_secret(&env, ns.name(), "helm-auth", HelmRepoServer::USERNAME, HelmRepoServer::PASSWORD)
        .await;
    let storage = tempfile::tempdir().unwrap();
    let runtime = start_source_controller(&env, storage.path(), SUITE, &index_limit()).await;
    let helm_repos: Api<HelmRepository> = Api::namespaced(env.client(), ns.name());
    let helm_repo: HelmRepository = serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "private", "labels": {SUITE_LABEL: SUITE}},
        "spec": {"url": server.url(), "interval": "10m", "secretRef": {"name": "helm-auth"}}
    }))
    .unwrap();
    helm_repos.create(&PostParams::default(), &helm_repo).await.unwrap();
    let repos: Api<GitRepository> = Api::namespaced(env.client(), ns.name());
    let repo: GitRepository = serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "platform", "labels": {SUITE_LABEL: SUITE}},
        "spec": {"url": git.url("platform"), "interval": "10m", "ref": {"branch": "main"}}
    }))
    .unwrap();
    repos.create(&PostParams::default(), &repo).await.unwrap();
    let charts: Api<HelmChart> = Api::namespaced(env.client(), ns.name());
    for name in ["app", "broken", "escape"] {
        let chart =
            helm_chart(SUITE, name, &format!("charts/{name}"), "*", ("GitRepository", "platform"));
        charts.create(&PostParams::default(), &chart).await.unwrap();
    }

    let chart = wait_chart(&charts, "app", "app to be packaged with its dependencies", |c| {
        c.status.as_ref().and_then(|s| s.artifact.as_ref()).is_some()
    })
    .await;
    assert_eq!(chart_ready(&chart).unwrap().status, "True");
    let entries = package_entries(&download(&chart.status.unwrap().artifact.unwrap()).await);
    for expected in ["app/Chart.yaml", "app/charts/common-0.1.0.tgz", "app/charts/demo-1.4.0.tgz"] {
        assert!(entries.iter().any(|e| e == expected), "{expected} missing from {entries:?}");
    }

    for (name, text) in [
        ("broken", "dependency 'demo': no 'demo' chart with version matching '9.x'"),
        ("escape", "dependency 'common': file://../../../etc points outside the source artifact"),
    ] {
        let chart = wait_chart(&charts, name, &format!("{name} to fail"), |c| {
            chart_ready(c).is_some_and(|r| r.status == "False")
        })
        .await;
        let ready = chart_ready(&chart).unwrap();
        assert_eq!(ready.reason, "DependencyBuildError", "{name}: {}", ready.message);
        assert!(ready.message.contains(text), "{name}: {}", ready.message);
        assert!(
            !ready.message.contains(HelmRepoServer::PASSWORD),
            "secret leaked: {}",
            ready.message
        );
        assert!(chart.status.unwrap().artifact.is_none());
    }
    runtime.shutdown.trigger();
}
