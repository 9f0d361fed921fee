//! GitRepository on the real apiserver against real git servers (http-backend and sshd):
//! refs by tag, semver and commit, ssh with a checked host key, signature verification,
//! reproducible digests, polling on the interval and artifact garbage collection.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{SUITE_LABEL, start_source_controller};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use sluice_api::meta::{Artifact, Condition};
use sluice_api::source::GitRepository;
use sluice_e2e::{GitServer, SshGitServer, TestEnv, wait_for};

const WAIT: Duration = Duration::from_secs(60);

fn git_repository(suite: &str, name: &str, spec: serde_json::Value) -> GitRepository {
    serde_json::from_value(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": name, "labels": {SUITE_LABEL: suite}}, "spec": spec
    }))
    .unwrap()
}

fn condition(repo: &GitRepository, type_: &str) -> Option<Condition> {
    repo.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_).cloned()
}

fn artifact(repo: &GitRepository) -> Option<Artifact> {
    repo.status.as_ref()?.artifact.clone()
}

/// Waits until `name` stores an artifact of `revision`; returns it.
async fn wait_revision(api: &Api<GitRepository>, name: &str, revision: &str) -> Artifact {
    wait_for(WAIT, &format!("{name} to store revision {revision}"), || async {
        let repo = api.get(name).await?;
        let ready = condition(&repo, "Ready").is_some_and(|c| c.status == "True");
        Ok(artifact(&repo).filter(|a| a.revision == revision && ready))
    })
    .await
    .unwrap()
}

/// Waits until `name` is Ready=False with a message mentioning `text`; returns the object.
async fn wait_failure(api: &Api<GitRepository>, name: &str, text: &str) -> GitRepository {
    wait_for(WAIT, &format!("{name} to fail with {text:?}"), || async {
        let repo = api.get(name).await?;
        let failed = condition(&repo, "Ready")
            .is_some_and(|c| c.status == "False" && c.message.to_lowercase().contains(text));
        Ok(failed.then_some(repo))
    })
    .await
    .unwrap()
}

async fn create_secret(env: &TestEnv, namespace: &str, name: &str, data: serde_json::Value) {
    let secrets: Api<Secret> = Api::namespaced(env.client(), namespace);
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();
}

async fn download_digest(artifact: &Artifact) -> String {
    use sha2::Digest;
    let bytes =
        sluice_e2e::http_client().get(&artifact.url).send().await.unwrap().bytes().await.unwrap();
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)))
}

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let output = Command::new(program).current_dir(dir).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// An ed25519 key pair made by ssh-keygen in `dir`; returns the private key path and the
/// public key line.
fn ssh_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    run(
        dir,
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", &path.to_string_lossy()],
    );
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_string())
}

/// Commits `file` in the work tree of `repo`, signed with the SSH key at `key` when given,
/// pushes it to the served bare repository and returns the commit SHA.
fn commit(server: &GitServer, repo: &str, file: &str, content: &str, key: Option<&Path>) -> String {
    let work = server.repos().work_path(repo);
    std::fs::write(work.join(file), content).unwrap();
    run(&work, "git", &["add", "--all"]);
    let mut args: Vec<String> = Vec::new();
    if let Some(key) = key {
        args.extend(["-c".into(), "gpg.format=ssh".into()]);
        args.extend(["-c".into(), format!("user.signingkey={}", key.display())]);
    }
    args.extend(["commit", "--quiet", "-m", file].map(String::from));
    if key.is_some() {
        args.push("-S".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&work, "git", &args);
    let bare = server.repos().bare_path(repo);
    run(&work, "git", &["push", "--quiet", &bare.to_string_lossy(), "HEAD:refs/heads/main"]);
    run(&work, "git", &["rev-parse", "HEAD"])
}

#[tokio::test]
async fn git_repositories_by_tag_semver_commit_and_over_ssh() {
    const SUITE: &str = "git-refs";
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("git").await.unwrap();
    let storage = tempfile::tempdir().unwrap();
    let runtime = start_source_controller(&env, storage.path(), SUITE, &[]).await;
    let api: Api<GitRepository> = Api::namespaced(env.client(), ns.name());

    // Tags v1.0.0, v1.1.0 and v2.0.0 on three commits of one repository.
    let http = GitServer::start().unwrap();
    let first = http.create_repo("app", &[("app.yaml", "version: 1.0.0\n")]).unwrap();
    http.repos().tag("app", "v1.0.0").unwrap();
    let second = http.repos().commit("app", &[("app.yaml", "version: 1.1.0\n")], "1.1").unwrap();
    http.repos().tag("app", "v1.1.0").unwrap();
    let third = http.repos().commit("app", &[("app.yaml", "version: 2.0.0\n")], "2.0").unwrap();
    http.repos().tag("app", "v2.0.0").unwrap();
    let url = http.url("app");
    let cases = [
        ("by-tag", json!({"tag": "v1.0.0"}), format!("v1.0.0@sha1:{first}")),
        ("by-semver", json!({"semver": ">=1.0.0 <2.0.0"}), format!("v1.1.0@sha1:{second}")),
        ("by-commit", json!({"commit": first}), format!("sha1:{first}")),
        ("by-branch", json!({"branch": "main"}), format!("main@sha1:{third}")),
        ("twin", json!({"branch": "main"}), format!("main@sha1:{third}")),
    ];
    for (name, reference, _) in &cases {
        let spec = json!({"url": url, "interval": "10m", "ref": reference});
        api.create(&PostParams::default(), &git_repository(SUITE, name, spec)).await.unwrap();
    }
    let mut digests = Vec::new();
    for (name, _, revision) in &cases {
        let stored = wait_revision(&api, name, revision).await;
        assert_eq!(download_digest(&stored).await, stored.digest.clone().unwrap(), "{name}");
        digests.push(stored.digest.unwrap());
    }
    // The same tree always yields the same archive, whichever object stored it.
    assert_eq!(digests[3], digests[4], "two GitRepositories of one commit: one digest");
    assert_ne!(digests[0], digests[1], "different trees: different digests");

    // Over ssh, with the identity and known_hosts from the Secret.
    let ssh = SshGitServer::start().unwrap();
    let ssh_first = ssh.create_repo("infra", &[("infra.yaml", "kind: ConfigMap\n")]).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (_, stranger) = ssh_key(keys.path(), "stranger");
    let wrong_known_hosts = format!("[127.0.0.1]:{} {}", ssh.port(), {
        let mut parts = stranger.split_whitespace();
        format!("{} {}", parts.next().unwrap(), parts.next().unwrap())
    });
    let identity = ssh.client_private_key().unwrap();
    create_secret(
        &env,
        ns.name(),
        "ssh-auth",
        json!({"identity": identity, "identity.pub": ssh.client_public_key().unwrap(), "known_hosts": ssh.known_hosts()}),
    )
    .await;
    create_secret(
        &env,
        ns.name(),
        "ssh-wrong-host",
        json!({"identity": identity, "known_hosts": wrong_known_hosts}),
    )
    .await;
    let spec = |secret: &str| json!({"url": ssh.url("infra"), "interval": "10m", "ref": {"branch": "main"}, "secretRef": {"name": secret}});
    api.create(&PostParams::default(), &git_repository(SUITE, "over-ssh", spec("ssh-auth")))
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &git_repository(SUITE, "wrong-host", spec("ssh-wrong-host")),
    )
    .await
    .unwrap();
    let stored = wait_revision(&api, "over-ssh", &format!("main@sha1:{ssh_first}")).await;
    let failed = wait_failure(&api, "wrong-host", "host key").await;
    let ready = condition(&failed, "Ready").unwrap();
    assert_eq!(ready.reason, "AuthenticationFailed", "{}", ready.message);
    assert!(artifact(&failed).is_none(), "a host key mismatch stores nothing");
    assert!(!ready.message.contains("BEGIN OPENSSH"), "the identity leaked: {}", ready.message);

    // The server's host key changes under a Ready object: it fails and keeps its artifact.
    let secrets: Api<Secret> = Api::namespaced(env.client(), ns.name());
    let patch = json!({"stringData": {"known_hosts": wrong_known_hosts}});
    secrets.patch("ssh-auth", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    sluice_e2e::request_reconcile(&api, "over-ssh").await;
    let failed = wait_failure(&api, "over-ssh", "host key").await;
    assert_eq!(artifact(&failed), Some(stored), "the stored artifact is kept");
    runtime.shutdown.trigger();
}

#[tokio::test]
async fn verification_polling_and_garbage_collection() {
    const SUITE: &str = "git-verify";
    let env = TestEnv::shared().await.unwrap();
    env.install_crds().await.unwrap();
    let ns = env.namespace("git-verify").await.unwrap();
    let storage = tempfile::tempdir().unwrap();
    let runtime = start_source_controller(&env, storage.path(), SUITE, &[]).await;
    let api: Api<GitRepository> = Api::namespaced(env.client(), ns.name());
    let http = GitServer::start().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (signing_key, signing_public) = ssh_key(keys.path(), "signing");

    // A signed head verifies; an unsigned commit on top fails verification and changes nothing.
    http.create_repo("signed", &[("README.md", "start\n")]).unwrap();
    let signed = commit(&http, "signed", "a.yaml", "a: 1\n", Some(&signing_key));
    create_secret(&env, ns.name(), "signing-keys", json!({"author.sshpub": signing_public})).await;
    let spec = json!({"url": http.url("signed"), "interval": "10m", "ref": {"branch": "main"},
        "verify": {"mode": "HEAD", "secretRef": {"name": "signing-keys"}}});
    api.create(&PostParams::default(), &git_repository(SUITE, "signed", spec)).await.unwrap();
    let verified = wait_revision(&api, "signed", &format!("main@sha1:{signed}")).await;
    let repo = api.get("signed").await.unwrap();
    let source_verified = condition(&repo, "SourceVerified").expect("SourceVerified condition");
    assert_eq!(
        (source_verified.status.as_str(), source_verified.reason.as_str()),
        ("True", "Succeeded")
    );
    assert!(source_verified.message.contains("SHA256:"), "{}", source_verified.message);
    assert_eq!(repo.status.unwrap().source_verification_mode.as_deref(), Some("HEAD"));

    let unsigned = commit(&http, "signed", "b.yaml", "b: 2\n", None);
    sluice_e2e::request_reconcile(&api, "signed").await;
    let failed = wait_failure(&api, "signed", "signature verification").await;
    let ready = condition(&failed, "Ready").unwrap();
    assert_eq!(ready.reason, "VerificationError", "{}", ready.message);
    assert!(ready.message.contains(&unsigned), "names the commit: {}", ready.message);
    let source_verified = condition(&failed, "SourceVerified").unwrap();
    assert_eq!(source_verified.status, "False");
    assert_eq!(artifact(&failed), Some(verified.clone()), "the verified artifact is kept");
    // Not stalled: a new signed commit is picked up without touching the spec.
    let resigned = commit(&http, "signed", "c.yaml", "c: 3\n", Some(&signing_key));
    sluice_e2e::request_reconcile(&api, "signed").await;
    wait_revision(&api, "signed", &format!("main@sha1:{resigned}")).await;

    // Polling: new commits are picked up on the interval alone, and superseded artifacts are
    // collected down to the retention count (2: the current one and the one before).
    let initial = http.create_repo("moving", &[("v.txt", "0\n")]).unwrap();
    let spec = json!({"url": http.url("moving"), "interval": "2s", "ref": {"branch": "main"}});
    api.create(&PostParams::default(), &git_repository(SUITE, "moving", spec)).await.unwrap();
    wait_revision(&api, "moving", &format!("main@sha1:{initial}")).await;
    let mut commits = vec![initial];
    for step in 1..=3 {
        let sha =
            http.repos().commit("moving", &[("v.txt", &format!("{step}\n"))], "step").unwrap();
        wait_revision(&api, "moving", &format!("main@sha1:{sha}")).await;
        commits.push(sha);
    }
    let dir = storage.path().join(format!("gitrepository/{}/moving", ns.name()));
    let mut kept: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.gz"))
        .collect();
    kept.sort();
    let mut expected = vec![format!("{}.tar.gz", commits[3]), format!("{}.tar.gz", commits[2])];
    expected.sort();
    assert_eq!(kept, expected, "GC keeps the current and the previous artifact");

    // Deleting the object removes its artifacts.
    api.delete("moving", &Default::default()).await.unwrap();
    wait_for(WAIT, "the storage directory of a deleted GitRepository to go", || async {
        Ok((!dir.exists()).then_some(()))
    })
    .await
    .unwrap();
    runtime.shutdown.trigger();
}
