//! Tests of the loopback servers themselves: git over HTTP and SSH, OCI registry, S3, capture server.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use sluice_e2e::registry::Layer;
use sluice_e2e::{CaptureServer, GitServer, Registry, S3Server, SshGitServer};

fn git(cwd: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new("git")
        .current_dir(cwd)
        .args(args)
        .envs(envs.iter().copied())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn git_http_serves_anonymous_reads_and_authenticated_pushes() {
    let server = GitServer::start().unwrap();
    let commit = server.create_repo("app", &[("deploy/cm.yaml", "kind: ConfigMap\n")]).unwrap();
    let work = tempfile::tempdir().unwrap();

    let anonymous = git(work.path(), &["clone", "--quiet", &server.url("app"), "anon"], &[]);
    assert!(anonymous.status.success(), "{}", stderr(&anonymous));
    let content = std::fs::read_to_string(work.path().join("anon/deploy/cm.yaml")).unwrap();
    assert_eq!(content, "kind: ConfigMap\n");
    let head = git(&work.path().join("anon"), &["rev-parse", "HEAD"], &[]);
    assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), commit);

    let denied = git(work.path(), &["clone", "--quiet", &server.private_url("app"), "denied"], &[]);
    assert!(!denied.status.success());
    let message = stderr(&denied);
    assert!(message.contains("could not read Username") || message.contains("401"), "{message}");

    let url = server.private_url_with_credentials("app");
    let private = git(work.path(), &["clone", "--quiet", &url, "private"], &[]);
    assert!(private.status.success(), "{}", stderr(&private));

    // Push with credentials works; an anonymous push is refused.
    let clone = work.path().join("private");
    std::fs::write(clone.join("new.txt"), "pushed\n").unwrap();
    let identity = [
        ("GIT_AUTHOR_NAME", "t"),
        ("GIT_AUTHOR_EMAIL", "t@t"),
        ("GIT_COMMITTER_NAME", "t"),
        ("GIT_COMMITTER_EMAIL", "t@t"),
    ];
    assert!(git(&clone, &["add", "new.txt"], &[]).status.success());
    assert!(git(&clone, &["commit", "--quiet", "-m", "push test"], &identity).status.success());
    let push = git(&clone, &["push", "--quiet", "origin", "HEAD:main"], &[]);
    assert!(push.status.success(), "{}", stderr(&push));
    let pushed = git(&clone, &["rev-parse", "HEAD"], &[]);
    let pushed = String::from_utf8_lossy(&pushed.stdout).trim().to_owned();
    assert_eq!(server.repos().rev_parse("app", "main").unwrap(), pushed);
    let anonymous_push =
        git(&clone, &["push", "--quiet", &server.url("app"), "HEAD:refs/heads/other"], &[]);
    assert!(!anonymous_push.status.success(), "anonymous push must be refused");
}

#[test]
fn git_repos_add_commits_tags_and_branches() {
    let server = GitServer::start().unwrap();
    let repos = server.repos();
    let first = repos.create_repo("lib", &[("a.txt", "1")]).unwrap();
    repos.tag("lib", "v1.0.0").unwrap();
    let second = repos.commit("lib", &[("a.txt", "2")], "second").unwrap();
    repos.branch("lib", "release").unwrap();
    assert_ne!(first, second);
    assert_eq!(repos.rev_parse("lib", "v1.0.0").unwrap(), first);
    assert_eq!(repos.rev_parse("lib", "main").unwrap(), second);
    assert_eq!(repos.rev_parse("lib", "release").unwrap(), second);
    let work = tempfile::tempdir().unwrap();
    let remote = git(work.path(), &["ls-remote", &server.url("lib")], &[]);
    let refs = String::from_utf8_lossy(&remote.stdout);
    assert!(refs.contains("refs/tags/v1.0.0") && refs.contains("refs/heads/release"), "{refs}");
}

#[test]
fn git_ssh_clones_with_the_host_key_checked() {
    let server = SshGitServer::start().unwrap();
    server.create_repo("app", &[("README", "over ssh\n")]).unwrap();
    let work = tempfile::tempdir().unwrap();
    let ssh = server.git_ssh_command();
    let clone = git(
        work.path(),
        &["clone", "--quiet", &server.url("app"), "app"],
        &[("GIT_SSH_COMMAND", &ssh)],
    );
    assert!(clone.status.success(), "{}", stderr(&clone));
    assert_eq!(std::fs::read_to_string(work.path().join("app/README")).unwrap(), "over ssh\n");

    assert!(
        server.known_hosts().starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", server.port()))
    );
    assert!(server.client_private_key().unwrap().contains("OPENSSH PRIVATE KEY"));

    // A known_hosts entry with another key must make the clone fail.
    let other = SshGitServer::start().unwrap();
    let wrong_hosts = work.path().join("wrong_known_hosts");
    let line = other.known_hosts().replace(&other.port().to_string(), &server.port().to_string());
    std::fs::write(&wrong_hosts, line + "\n").unwrap();
    let wrong = format!(
        "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}",
        server.client_key_path().display(),
        wrong_hosts.display()
    );
    let refused = git(
        work.path(),
        &["clone", "--quiet", &server.url("app"), "refused"],
        &[("GIT_SSH_COMMAND", &wrong)],
    );
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("Host key verification failed"), "{}", stderr(&refused));
}

#[tokio::test]
async fn registry_accepts_a_flux_artifact_push() {
    let registry = Registry::start(false).unwrap();
    let layer = Layer {
        media_type: "application/vnd.cncf.flux.content.v1.tar+gzip".to_owned(),
        data: b"not really a tarball".to_vec(),
    };
    let mut annotations = serde_json::Map::new();
    annotations.insert("org.opencontainers.image.revision".into(), "main@sha1:abc".into());
    let digest = registry
        .push_artifact(
            "manifests/app",
            "v1.0.0",
            "application/vnd.cncf.flux.config.v1+json",
            b"{}",
            &[layer],
            &annotations,
        )
        .await
        .unwrap();
    assert!(digest.starts_with("sha256:"));
    assert_eq!(registry.tags("manifests/app").await.unwrap(), ["v1.0.0"]);
    let manifest = sluice_e2e::http_client()
        .get(format!("{}/v2/manifests/app/manifests/{digest}", registry.url()))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200);
    let manifest: serde_json::Value = manifest.json().await.unwrap();
    assert_eq!(manifest["annotations"]["org.opencontainers.image.revision"], "main@sha1:abc");
}

#[tokio::test]
async fn registry_with_auth_refuses_anonymous_requests() {
    let registry = Registry::start(true).unwrap();
    let http = sluice_e2e::http_client();
    let anonymous = http.get(format!("{}/v2/", registry.url())).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let (user, password) = registry.credentials().unwrap();
    let wrong = http
        .get(format!("{}/v2/", registry.url()))
        .basic_auth(user, Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let layer = Layer {
        media_type: "application/vnd.oci.image.layer.v1.tar".to_owned(),
        data: vec![1, 2, 3],
    };
    registry
        .push_artifact(
            "private/app",
            "latest",
            "application/vnd.oci.image.config.v1+json",
            b"{}",
            &[layer],
            &Default::default(),
        )
        .await
        .unwrap();
    let tags = http
        .get(format!("{}/v2/private/app/tags/list", registry.url()))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(tags.status(), 200);
}

#[tokio::test]
async fn s3_puts_and_gets_objects() {
    let s3 = S3Server::start().unwrap();
    s3.create_bucket("artifacts").await.unwrap();
    s3.put_object("artifacts", "dir/manifest.yaml", b"kind: ConfigMap\n").await.unwrap();
    assert_eq!(
        s3.get_object("artifacts", "dir/manifest.yaml").await.unwrap(),
        b"kind: ConfigMap\n"
    );
    let missing = s3.get_object("artifacts", "nope").await.unwrap_err();
    assert!(missing.to_string().contains("404"), "{missing:#}");
    // The listing a Bucket source would read.
    assert_eq!(s3.list_objects("artifacts").await.unwrap(), ["dir/manifest.yaml"]);
}

#[tokio::test]
async fn capture_server_records_requests_and_scripts_statuses() {
    let capture = CaptureServer::start().unwrap();
    capture.respond_sequence(&[500]);
    let http = sluice_e2e::http_client();
    let url = capture.url_for("/hooks/slack?x=1");
    let first = http
        .post(&url)
        .header("Authorization", "Bearer t0ken")
        .json(&serde_json::json!({ "text": "hello" }))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 500);
    let second = http.post(&url).body("again").send().await.unwrap();
    assert_eq!(second.status(), 200);
    capture.respond_with(404);
    assert_eq!(http.get(capture.url()).send().await.unwrap().status(), 404);

    let requests = capture.wait_for_requests(3, Duration::from_secs(5)).await.unwrap();
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/hooks/slack?x=1");
    assert_eq!(requests[0].header("authorization"), Some("Bearer t0ken"));
    assert_eq!(requests[0].header("Content-Type"), Some("application/json"));
    assert_eq!(requests[0].body_json().unwrap()["text"], "hello");
    assert_eq!(requests[1].body_text(), "again");
    assert_eq!(requests[2].method, "GET");
    capture.clear();
    assert!(capture.requests().is_empty());
}
