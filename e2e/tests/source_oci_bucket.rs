//! source-controller on the real apiserver: OCIRepository against Debian's docker-registry,
//! Bucket against moto's S3, and GitRepository `spec.include` against the git server.
//!
//! Each kind becomes Ready with an artifact whose sha256 matches `status.artifact.digest`; a new
//! tag or object yields a new revision within one interval; failures (unknown tag, no semver
//! match, wrong credentials, missing bucket, missing include) leave a clear condition and the
//! previous artifact; the same content always yields the same digest.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{SUITE_LABEL, start_source_controller};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use sha2::Digest;
use sluice_api::meta::Artifact;
use sluice_api::source::{Bucket, GitRepository, OCIRepository};
use sluice_e2e::registry::Layer;
use sluice_e2e::{GitServer, Registry, S3Server, TestEnv, wait_for};

const FLUX_CONFIG: &str = "application/vnd.cncf.flux.config.v1+json";
const FLUX_CONTENT: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";
const WAIT: Duration = Duration::from_secs(60);

fn ready(
    conditions: Option<&Vec<sluice_api::meta::Condition>>,
) -> Option<(String, String, String)> {
    conditions?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// A reproducible tar.gz of `files`.
fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    let mut out = Vec::new();
    sluice_artifact::write_tar_gz(dir.path(), None, &mut out).unwrap();
    out
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Downloads an artifact, checks its digest and returns its files (path → content).
async fn download(artifact: &Artifact) -> BTreeMap<String, String> {
    let bytes = sluice_e2e::http_client()
        .get(&artifact.url)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(artifact.digest.as_deref(), Some(sha256(&bytes).as_str()), "{}", artifact.url);
    assert_eq!(artifact.size, Some(bytes.len() as i64));
    let dir = tempfile::tempdir().unwrap();
    sluice_artifact::unpack_tar_gz(&bytes[..], dir.path(), Default::default()).unwrap();
    let mut files = BTreeMap::new();
    collect(dir.path(), dir.path(), &mut files);
    files
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            out.insert(relative, std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

async fn create_secret(env: &TestEnv, namespace: &str, secret: serde_json::Value) {
    let secrets: Api<Secret> = Api::namespaced(env.client(), namespace);
    secrets.create(&PostParams::default(), &serde_json::from_value(secret).unwrap()).await.unwrap();
}

fn docker_config_secret(name: &str, host: &str, user: &str, password: &str) -> serde_json::Value {
    let config = json!({"auths": {host: {"username": user, "password": password}}});
    json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config.to_string()},
    })
}

fn oci_repository(
    name: &str,
    url: &str,
    reference: serde_json::Value,
    extra: serde_json::Value,
) -> OCIRepository {
    let mut spec = json!({"url": url, "interval": "2s", "insecure": true, "ref": reference, "secretRef": {"name": "registry-auth"}});
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        spec[key] = value;
    }
    serde_json::from_value(json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository", "metadata": {"name": name, "labels": {SUITE_LABEL: "oci"}}, "spec": spec})).unwrap()
}

async fn oci_artifact(api: &Api<OCIRepository>, name: &str, revision: &str) -> OCIRepository {
    wait_for(WAIT, &format!("OCIRepository {name} at {revision}"), || async {
        let repo = api.get(name).await?;
        let stored = repo
            .status
            .as_ref()
            .and_then(|s| s.artifact.as_ref())
            .is_some_and(|a| a.revision == revision);
        Ok(stored.then_some(repo))
    })
    .await
    .unwrap()
}

async fn oci_failure(api: &Api<OCIRepository>, name: &str) -> (String, String) {
    let (_, reason, message) = wait_for(WAIT, &format!("OCIRepository {name} to fail"), || async {
        let repo = api.get(name).await?;
        Ok(ready(repo.status.as_ref().and_then(|s| s.conditions.as_ref()))
            .filter(|(s, _, _)| s == "False"))
    })
    .await
    .unwrap();
    (reason, message)
}

#[tokio::test]
async fn oci_repositories_pull_tags_semver_and_digests() {
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("oci").await.unwrap();
    let registry = Registry::start(true).unwrap();
    let host = registry.host();
    let v1_layer = tar_gz(&[
        ("deploy/cm.yaml", "kind: ConfigMap\nmetadata:\n  name: v1\n"),
        ("logo.png", "x"),
    ]);
    let annotations = |revision: &str| {
        let mut map = serde_json::Map::new();
        map.insert("org.opencontainers.image.revision".into(), json!(revision));
        map.insert("org.opencontainers.image.source".into(), json!("https://example.com/app.git"));
        map
    };
    let v1 = registry
        .push_artifact(
            "org/app",
            "v1.0.0",
            FLUX_CONFIG,
            b"{}",
            &[Layer { media_type: FLUX_CONTENT.into(), data: v1_layer.clone() }],
            &annotations("main@sha1:1111"),
        )
        .await
        .unwrap();
    let (user, password) = registry.credentials().unwrap();
    create_secret(&env, ns.name(), docker_config_secret("registry-auth", &host, user, password))
        .await;
    create_secret(
        &env,
        ns.name(),
        docker_config_secret("wrong-auth", &host, user, "not-the-password"),
    )
    .await;
    let storage = tempfile::tempdir().unwrap();
    let runtime = start_source_controller(&env, storage.path(), "oci", &[]).await;
    let api: Api<OCIRepository> = Api::namespaced(env.client(), ns.name());
    let url = format!("oci://{host}/org/app");
    let create = |repo: OCIRepository| {
        let api = api.clone();
        async move { api.create(&PostParams::default(), &repo).await.unwrap() }
    };

    // A tag: Ready with Flux's revision, path, metadata and a downloadable artifact.
    create(oci_repository("by-tag", &url, json!({"tag": "v1.0.0"}), json!({}))).await;
    let revision = format!("v1.0.0@{v1}");
    let repo = oci_artifact(&api, "by-tag", &revision).await;
    let status = repo.status.clone().unwrap();
    assert_eq!(
        ready(status.conditions.as_ref()).unwrap(),
        ("True".into(), "Succeeded".into(), format!("stored artifact for digest '{revision}'"))
    );
    let has = |conditions: Option<&Vec<sluice_api::meta::Condition>>, type_: &str| {
        conditions.is_some_and(|list| list.iter().any(|c| c.type_ == type_ && c.status == "True"))
    };
    assert!(has(status.conditions.as_ref(), "ArtifactInStorage"), "{:?}", status.conditions);
    let artifact = status.artifact.unwrap();
    assert_eq!(
        artifact.path,
        format!("ocirepository/{}/by-tag/{}.tar.gz", ns.name(), v1.trim_start_matches("sha256:"))
    );
    assert_eq!(status.url.as_deref(), Some(artifact.url.as_str()));
    let metadata = artifact.metadata.clone().unwrap();
    assert_eq!(metadata["org.opencontainers.image.revision"], "main@sha1:1111");
    let files = download(&artifact).await;
    // The default ignore rules drop the image.
    assert_eq!(files.keys().collect::<Vec<_>>(), vec!["deploy/cm.yaml"]);
    assert!(files["deploy/cm.yaml"].contains("name: v1"));

    // A digest: the bare digest as revision, and the same content gives the same artifact digest.
    create(oci_repository("by-digest", &url, json!({"digest": v1}), json!({}))).await;
    let pinned = oci_artifact(&api, "by-digest", &v1).await;
    assert_eq!(pinned.status.unwrap().artifact.unwrap().digest, artifact.digest);

    // Copy: the layer stored as-is.
    create(oci_repository(
        "copy",
        &url,
        json!({"tag": "v1.0.0"}),
        json!({"layerSelector": {"mediaType": FLUX_CONTENT, "operation": "copy"}}),
    ))
    .await;
    let copied = oci_artifact(&api, "copy", &revision).await.status.unwrap().artifact.unwrap();
    assert_eq!(copied.digest.as_deref(), Some(sha256(&v1_layer).as_str()));
    assert!(copied.path.ends_with(".tgz"), "{}", copied.path);

    // A semver range follows new tags within one interval, without a reconcile request.
    create(oci_repository("by-semver", &url, json!({"semver": ">=1.0.0 <2.0.0"}), json!({}))).await;
    oci_artifact(&api, "by-semver", &revision).await;
    let v2_layer = tar_gz(&[("deploy/cm.yaml", "kind: ConfigMap\nmetadata:\n  name: v1-1\n")]);
    let v11 = registry
        .push_artifact(
            "org/app",
            "v1.1.0",
            FLUX_CONFIG,
            b"{}",
            &[Layer { media_type: FLUX_CONTENT.into(), data: v2_layer }],
            &annotations("main@sha1:2222"),
        )
        .await
        .unwrap();
    registry
        .push_artifact(
            "org/app",
            "v2.0.0",
            FLUX_CONFIG,
            b"{}",
            &[Layer { media_type: FLUX_CONTENT.into(), data: tar_gz(&[("x.yaml", "v2")]) }],
            &annotations("main@sha1:3333"),
        )
        .await
        .unwrap();
    let moved = oci_artifact(&api, "by-semver", &format!("v1.1.0@{v11}")).await;
    let moved = moved.status.unwrap().artifact.unwrap();
    assert!(download(&moved).await["deploy/cm.yaml"].contains("name: v1-1"));
    assert_ne!(moved.digest, artifact.digest);

    // Failures: clear conditions, no secret in them.
    create(oci_repository("unknown-tag", &url, json!({"tag": "v9.9.9"}), json!({}))).await;
    create(oci_repository("no-match", &url, json!({"semver": ">=5.0.0"}), json!({}))).await;
    create(oci_repository(
        "denied",
        &url,
        json!({"tag": "v1.0.0"}),
        json!({"secretRef": {"name": "wrong-auth"}}),
    ))
    .await;
    for (name, reason, text) in [
        ("unknown-tag", "OCIArtifactPullFailed", "tag 'v9.9.9' not found"),
        ("no-match", "OCIArtifactPullFailed", "matches semver range '>=5.0.0'"),
        ("denied", "OCIArtifactPullFailed", "401 unauthorized"),
    ] {
        let (got_reason, message) = oci_failure(&api, name).await;
        assert_eq!(got_reason, reason, "{name}: {message}");
        assert!(message.to_lowercase().contains(&text.to_lowercase()), "{name}: {message}");
        assert!(!message.contains(password) && !message.contains("not-the-password"), "{message}");
        let status = api.get(name).await.unwrap().status.unwrap();
        assert!(status.artifact.is_none());
        assert!(has(status.conditions.as_ref(), "FetchFailed"), "{:?}", status.conditions);
    }

    // Wrong credentials on a Ready object: failure, and the previous artifact stays.
    let patch = json!({"spec": {"secretRef": {"name": "wrong-auth"}}});
    api.patch("by-tag", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let (reason, message) = oci_failure(&api, "by-tag").await;
    assert_eq!(reason, "OCIArtifactPullFailed", "{message}");
    let kept = api.get("by-tag").await.unwrap().status.unwrap().artifact.unwrap();
    assert_eq!((kept.revision, kept.digest), (artifact.revision.clone(), artifact.digest.clone()));
    runtime.shutdown.trigger();
}

/// The revision Flux computes for a bucket listing, from moto's own listing.
async fn expected_bucket_revision(
    s3: &S3Server,
    bucket: &str,
    prefix: &str,
    skip: &[&str],
) -> String {
    let response = s3
        .signed_request(
            reqwest::Method::GET,
            &format!("/{bucket}?list-type=2&prefix={prefix}"),
            b"",
        )
        .await
        .unwrap();
    let body = response.text().await.unwrap();
    let mut lines = BTreeMap::new();
    for contents in body.split("<Contents>").skip(1) {
        let field = |name: &str| {
            contents
                .split_once(&format!("<{name}>"))
                .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
                .map(|(value, _)| value.replace("&quot;", "").replace('"', ""))
                .unwrap()
        };
        let key = field("Key");
        if !skip.contains(&key.as_str()) {
            lines.insert(key, field("ETag"));
        }
    }
    let text: String = lines.iter().map(|(k, e)| format!("{k} {e}\n")).collect();
    sha256(text.as_bytes())
}

fn bucket(name: &str, bucket_name: &str, endpoint: &str) -> Bucket {
    serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "Bucket", "metadata": {"name": name, "labels": {SUITE_LABEL: "bucket"}},
        "spec": {"provider": "generic", "bucketName": bucket_name, "endpoint": endpoint, "insecure": true,
                 "region": S3Server::REGION, "prefix": "apps/", "interval": "2s", "secretRef": {"name": "s3-auth"}}
    }))
    .unwrap()
}

#[tokio::test]
async fn buckets_become_artifacts() {
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("bucket").await.unwrap();
    let s3 = S3Server::start().unwrap();
    s3.create_bucket("manifests").await.unwrap();
    for (key, content) in [
        ("apps/cm.yaml", "kind: ConfigMap\n"),
        ("apps/README.md", "docs\n"),
        ("apps/logo.png", "png"),
        ("other/x.yaml", "kind: Secret\n"),
        (".sourceignore", "*.md\n"),
    ] {
        s3.put_object("manifests", key, content.as_bytes()).await.unwrap();
    }
    create_secret(&env, ns.name(), json!({"metadata": {"name": "s3-auth"}, "stringData": {"accesskey": S3Server::ACCESS_KEY, "secretkey": S3Server::SECRET_KEY}})).await;
    create_secret(&env, ns.name(), json!({"metadata": {"name": "half-auth"}, "stringData": {"accesskey": S3Server::ACCESS_KEY}})).await;
    let storage = tempfile::tempdir().unwrap();
    let runtime = start_source_controller(&env, storage.path(), "bucket", &[]).await;
    let api: Api<Bucket> = Api::namespaced(env.client(), ns.name());
    let wait_revision = |name: &'static str, revision: String| {
        let api = api.clone();
        async move {
            // Ready as well: with a 2 s interval the next reconcile may be in progress.
            wait_for(WAIT, &format!("Bucket {name} Ready at {revision}"), || async {
                let obj = api.get(name).await?;
                let is_ready = ready(obj.status.as_ref().and_then(|s| s.conditions.as_ref()))
                    .is_some_and(|(status, _, _)| status == "True");
                Ok(obj
                    .status
                    .clone()
                    .and_then(|s| s.artifact)
                    .filter(|a| a.revision == revision && is_ready)
                    .map(|a| (obj, a)))
            })
            .await
            .unwrap()
        }
    };

    api.create(&PostParams::default(), &bucket("apps", "manifests", &s3.endpoint())).await.unwrap();
    let revision = expected_bucket_revision(&s3, "manifests", "apps/", &["apps/README.md"]).await;
    let (obj, artifact) = wait_revision("apps", revision.clone()).await;
    assert_eq!(
        ready(obj.status.as_ref().and_then(|s| s.conditions.as_ref())).unwrap(),
        ("True".into(), "Succeeded".into(), format!("stored artifact for revision '{revision}'"))
    );
    assert_eq!(
        artifact.path,
        format!("bucket/{}/apps/{}.tar.gz", ns.name(), revision.trim_start_matches("sha256:"))
    );
    let files = download(&artifact).await;
    // The prefix selects apps/; .sourceignore drops *.md; no default exclusions for buckets.
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        vec![".sourceignore", "apps/cm.yaml", "apps/logo.png"]
    );

    // The same objects give the same revision and the same artifact digest.
    api.create(&PostParams::default(), &bucket("twin", "manifests", &s3.endpoint())).await.unwrap();
    let (_, twin) = wait_revision("twin", revision.clone()).await;
    assert_eq!(twin.digest, artifact.digest);

    // A new object: a new revision within one interval, no reconcile request.
    s3.put_object("manifests", "apps/new.yaml", b"kind: Namespace\n").await.unwrap();
    let next = expected_bucket_revision(&s3, "manifests", "apps/", &["apps/README.md"]).await;
    assert_ne!(next, revision);
    let (_, updated) = wait_revision("apps", next).await;
    assert!(download(&updated).await.contains_key("apps/new.yaml"));

    // A missing bucket and an incomplete Secret fail clearly and store nothing.
    api.create(&PostParams::default(), &bucket("missing", "no-such-bucket", &s3.endpoint()))
        .await
        .unwrap();
    let mut half = bucket("half", "manifests", &s3.endpoint());
    half.spec.secret_ref =
        Some(sluice_api::meta::LocalObjectReference { name: "half-auth".into() });
    api.create(&PostParams::default(), &half).await.unwrap();
    for (name, reason, text) in [
        ("missing", "BucketOperationFailed", "bucket 'no-such-bucket' not found"),
        ("half", "AuthenticationFailed", "needs both 'accesskey' and 'secretkey'"),
    ] {
        let (_, got_reason, message) =
            wait_for(WAIT, &format!("Bucket {name} to fail"), || async {
                let obj = api.get(name).await?;
                Ok(ready(obj.status.as_ref().and_then(|s| s.conditions.as_ref()))
                    .filter(|(s, _, _)| s == "False"))
            })
            .await
            .unwrap();
        assert_eq!(got_reason, reason, "{name}: {message}");
        assert!(message.contains(text), "{name}: {message}");
        assert!(!message.contains(S3Server::SECRET_KEY), "{message}");
        assert!(api.get(name).await.unwrap().status.unwrap().artifact.is_none());
    }

    // The twin follows the new object too, to the same artifact; breaking it keeps that artifact.
    let (_, twin) = wait_revision("twin", updated.revision.clone()).await;
    assert_eq!(twin.digest, updated.digest);
    let patch = json!({"spec": {"bucketName": "no-such-bucket"}});
    api.patch("twin", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    wait_for(WAIT, "twin to fail", || async {
        let obj = api.get("twin").await?;
        Ok(ready(obj.status.as_ref().and_then(|s| s.conditions.as_ref()))
            .filter(|(s, _, _)| s == "False"))
    })
    .await
    .unwrap();
    let kept = api.get("twin").await.unwrap().status.unwrap().artifact.unwrap();
    assert_eq!(kept.digest, twin.digest);
    runtime.shutdown.trigger();
}

fn git_repository(name: &str, url: &str, include: serde_json::Value) -> GitRepository {
    serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": name, "labels": {SUITE_LABEL: "git-include"}},
        "spec": {"url": url, "interval": "1h", "ref": {"branch": "main"}, "include": include}
    }))
    .unwrap()
}

#[tokio::test]
async fn git_repositories_include_other_repositories() {
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("include").await.unwrap();
    let git = GitServer::start().unwrap();
    git.create_repo("app", &[("deploy/app.yaml", "kind: Deployment\n")]).unwrap();
    git.create_repo("lib", &[("config/base.yaml", "replicas: 1\n"), ("README.txt", "lib\n")])
        .unwrap();
    let storage = tempfile::tempdir().unwrap();
    let runtime = start_source_controller(&env, storage.path(), "git-include", &[]).await;
    let api: Api<GitRepository> = Api::namespaced(env.client(), ns.name());
    api.create(&PostParams::default(), &git_repository("lib", &git.url("lib"), json!([])))
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &git_repository("app", &git.url("app"), json!([{"repository": {"name": "lib"}, "fromPath": "config", "toPath": "vendor/lib"}, {"repository": {"name": "lib"}}])),
    )
    .await
    .unwrap();
    let app = wait_for(WAIT, "app to include lib", || async {
        let app = api.get("app").await?;
        let included =
            app.status.as_ref().and_then(|s| s.included_artifacts.clone()).unwrap_or_default();
        Ok((included.len() == 2 && app.status.as_ref().and_then(|s| s.artifact.as_ref()).is_some())
            .then_some(app))
    })
    .await
    .unwrap();
    let status = app.status.unwrap();
    let lib = api.get("lib").await.unwrap().status.unwrap().artifact.unwrap();
    assert_eq!(status.included_artifacts.as_ref().unwrap()[0].revision, lib.revision);
    assert_eq!(status.observed_include.as_ref().map(Vec::len), Some(2));
    let artifact = status.artifact.unwrap();
    let files = download(&artifact).await;
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        vec!["deploy/app.yaml", "lib/README.txt", "lib/config/base.yaml", "vendor/lib/base.yaml"]
    );

    // A new commit in the included repository rebuilds the including one (watch, no request on app).
    let second =
        git.repos().commit("lib", &[("config/base.yaml", "replicas: 2\n")], "Scale up").unwrap();
    sluice_e2e::request_reconcile(&api, "lib").await;
    let rebuilt = wait_for(WAIT, "app to pick up the new lib revision", || async {
        let app = api.get("app").await?;
        let status = app.status.clone().unwrap_or_default();
        let included = status.included_artifacts.unwrap_or_default();
        Ok(included
            .first()
            .filter(|a| a.revision == format!("main@sha1:{second}"))
            .and(status.artifact))
    })
    .await
    .unwrap();
    // Same commit of app, new content: same revision, new digest.
    assert_eq!(rebuilt.revision, artifact.revision);
    assert_ne!(rebuilt.digest, artifact.digest);
    assert_eq!(download(&rebuilt).await["vendor/lib/base.yaml"], "replicas: 2\n");

    // A missing include is a clear, retried failure.
    api.create(
        &PostParams::default(),
        &git_repository("orphan", &git.url("app"), json!([{"repository": {"name": "nowhere"}}])),
    )
    .await
    .unwrap();
    let (_, reason, message) = wait_for(WAIT, "orphan to fail", || async {
        let obj = api.get("orphan").await?;
        Ok(ready(obj.status.as_ref().and_then(|s| s.conditions.as_ref()))
            .filter(|(s, _, _)| s == "False"))
    })
    .await
    .unwrap();
    assert_eq!(reason, "IncludeUnavailable", "{message}");
    assert!(
        message.contains("GitRepository")
            && message.contains("nowhere")
            && message.contains("not found"),
        "{message}"
    );
    runtime.shutdown.trigger();
}
