//! The GitOps loop on the real apiserver: a git server, the source-controller turning a
//! GitRepository into an artifact, and the kustomize-controller applying it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use serde_json::json;
use sha2::Digest;
use sluice_api::kustomize::Kustomization;
use sluice_api::source::GitRepository;
use sluice_e2e::{GitServer, TestEnv, wait_for};
use sluice_runtime::Runtime;

#[derive(clap::Parser, Debug)]
struct Flags {
    #[command(flatten)]
    runtime: sluice_runtime::runtime::RuntimeArgs,
    #[command(flatten)]
    storage: source_controller::StorageArgs,
}

const COMMON: [&str; 3] =
    ["--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0", "--requeue-dependency=2s"];

async fn start_controllers(env: &TestEnv, storage: &std::path::Path) -> Vec<Arc<Runtime>> {
    let port = sluice_e2e::process::free_port().unwrap();
    let mut args = vec!["source-controller".to_string()];
    args.extend(COMMON.iter().map(|s| s.to_string()));
    args.push(format!("--storage-path={}", storage.display()));
    args.push(format!("--storage-addr=127.0.0.1:{port}"));
    args.push(format!("--storage-adv-addr=127.0.0.1:{port}"));
    let flags: Flags = sluice_runtime::runtime::parse_args_from("2", args);
    let source =
        Runtime::start_with_client("source-controller", flags.runtime, env.client()).await.unwrap();
    tokio::spawn(source_controller::run(source.clone(), flags.storage));

    let mut args = vec!["kustomize-controller".to_string()];
    args.extend(COMMON.iter().map(|s| s.to_string()));
    args.push("--storage-path=/unused".into());
    let flags: Flags = sluice_runtime::runtime::parse_args_from("4", args);
    let kustomize = Runtime::start_with_client("kustomize-controller", flags.runtime, env.client())
        .await
        .unwrap();
    tokio::spawn(kustomize_controller::run(kustomize.clone()));
    vec![source, kustomize]
}

fn git_repository(name: &str, url: &str, branch: &str, secret: Option<&str>) -> GitRepository {
    let mut spec = json!({"url": url, "interval": "10m", "ref": {"branch": branch}});
    if let Some(secret) = secret {
        spec["secretRef"] = json!({"name": secret});
    }
    serde_json::from_value(json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": name}, "spec": spec})).unwrap()
}

fn ready_condition(repo: &GitRepository) -> Option<(String, String, String)> {
    repo.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn commits_flow_from_git_to_the_cluster() {
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("loop").await.unwrap();
    let git = GitServer::start().unwrap();
    let cm = |color: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  color: {color}\n"
        )
    };
    let first = git
        .create_repo("platform", &[("apps/cm.yaml", &cm("blue")), ("logo.png", "binary")])
        .unwrap();
    let storage = tempfile::tempdir().unwrap();
    let runtimes = start_controllers(&env, storage.path()).await;

    // Private repository with basic auth from the Secret.
    let secrets: Api<Secret> = Api::namespaced(env.client(), ns.name());
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "git-auth"}, "stringData": {"username": GitServer::USERNAME, "password": GitServer::PASSWORD}})).unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    let repos: Api<GitRepository> = Api::namespaced(env.client(), ns.name());
    repos
        .create(
            &PostParams::default(),
            &git_repository("platform", &git.private_url("platform"), "main", Some("git-auth")),
        )
        .await
        .unwrap();
    let revision = format!("main@sha1:{first}");
    let repo =
        wait_for(Duration::from_secs(60), "the GitRepository to store an artifact", || async {
            let repo = repos.get("platform").await?;
            let stored = repo
                .status
                .as_ref()
                .and_then(|s| s.artifact.as_ref())
                .is_some_and(|a| a.revision == revision);
            Ok(stored.then_some(repo))
        })
        .await
        .unwrap();
    assert_eq!(
        ready_condition(&repo).unwrap(),
        ("True".into(), "Succeeded".into(), format!("stored artifact for revision '{revision}'"))
    );
    let artifact = repo.status.unwrap().artifact.unwrap();
    let bytes =
        sluice_e2e::http_client().get(&artifact.url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(
        artifact.digest.as_deref(),
        Some(format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes))).as_str())
    );
    assert_eq!(artifact.path, format!("gitrepository/{}/platform/{first}.tar.gz", ns.name()));

    // A Kustomization applies it.
    let kustomizations: Api<Kustomization> = Api::namespaced(env.client(), ns.name());
    let ks: Kustomization = serde_json::from_value(json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "apps"},
        "spec": {"interval": "10m", "prune": true, "path": "./apps", "targetNamespace": ns.name(), "sourceRef": {"kind": "GitRepository", "name": "platform"}}
    }))
    .unwrap();
    kustomizations.create(&PostParams::default(), &ks).await.unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client(), ns.name());
    wait_for(Duration::from_secs(60), "the ConfigMap from git", || async {
        Ok(configmaps
            .get_opt("app")
            .await?
            .and_then(|cm| cm.data)
            .filter(|d| d["color"] == "blue")
            .map(|_| ()))
    })
    .await
    .unwrap();

    // A new commit becomes a new revision and reaches the cluster.
    let second = git
        .repos()
        .commit("platform", &[("apps/cm.yaml", &cm("green"))], "Paint it green")
        .unwrap();
    sluice_e2e::request_reconcile(&repos, "platform").await;
    wait_for(Duration::from_secs(60), "the new revision to be stored", || async {
        let repo = repos.get("platform").await?;
        Ok(repo
            .status
            .and_then(|s| s.artifact)
            .filter(|a| a.revision == format!("main@sha1:{second}"))
            .map(|_| ()))
    })
    .await
    .unwrap();
    // No request on the Kustomization: the new artifact wakes its consumers.
    wait_for(Duration::from_secs(60), "the new revision to be applied", || async {
        Ok(configmaps
            .get_opt("app")
            .await?
            .and_then(|cm| cm.data)
            .filter(|d| d["color"] == "green")
            .map(|_| ()))
    })
    .await
    .unwrap();
    let second_revision = format!("main@sha1:{second}");
    wait_for(Duration::from_secs(30), "lastAppliedRevision to follow", || async {
        let status = kustomizations.get("apps").await?.status.unwrap_or_default();
        Ok((status.last_applied_revision.as_deref() == Some(second_revision.as_str()))
            .then_some(()))
    })
    .await
    .unwrap();

    // Wrong credentials and an unknown branch fail clearly, with no artifact.
    let wrong: Secret = serde_json::from_value(json!({"metadata": {"name": "wrong-auth"}, "stringData": {"username": "nobody", "password": "wrong"}})).unwrap();
    secrets.create(&PostParams::default(), &wrong).await.unwrap();
    repos
        .create(
            &PostParams::default(),
            &git_repository("denied", &git.private_url("platform"), "main", Some("wrong-auth")),
        )
        .await
        .unwrap();
    repos
        .create(
            &PostParams::default(),
            &git_repository("no-branch", &git.url("platform"), "does-not-exist", None),
        )
        .await
        .unwrap();
    for (name, expected_reason, expected_text) in [
        ("denied", "AuthenticationFailed", "authentication"),
        ("no-branch", "GitOperationFailed", "does-not-exist"),
    ] {
        let (status, reason, message) =
            wait_for(Duration::from_secs(60), &format!("{name} to fail"), || async {
                Ok(ready_condition(&repos.get(name).await?)
                    .filter(|(status, _, _)| status == "False"))
            })
            .await
            .unwrap();
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", expected_reason),
            "{name}: {message}"
        );
        assert!(message.to_lowercase().contains(expected_text), "{name}: {message}");
        assert!(
            !message.contains(GitServer::PASSWORD) && !message.contains("wrong"),
            "secrets leaked: {message}"
        );
        assert!(repos.get(name).await.unwrap().status.unwrap().artifact.is_none());
    }
    for runtime in runtimes {
        runtime.shutdown.trigger();
    }
}
