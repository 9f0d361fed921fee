//! Test support: repositories made with the `git` CLI in temporary directories, and a `git daemon`.

#![allow(dead_code, reason = "each test binary uses a different subset")]

pub mod http;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Run git in `dir` with a fixed identity and no user or system config; panic with stderr on failure.
#[track_caller]
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_with_env(dir, args, &[])
}

/// Like [`git`], with extra environment variables.
#[track_caller]
pub fn git_with_env(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> String {
    let output = Command::new("git")
        .envs(env.iter().map(|(key, value)| (key, value)))
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .env("GIT_AUTHOR_DATE", "2024-01-02T03:04:05Z")
        .env("GIT_COMMITTER_DATE", "2024-01-02T03:04:05Z")
        .stdin(Stdio::null())
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} in {dir:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A bare remote with history on `main` and `dev`, and tags `v1.0.0` (annotated), `v1.1.0`,
/// `v2.0.0-rc.1` and `not-a-version`.
pub struct Fixture {
    pub root: tempfile::TempDir,
    /// `<root>/repos/app.git`
    pub bare: PathBuf,
    /// The working clone the history was made in.
    pub work: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let repos = root.path().join("repos");
        std::fs::create_dir_all(&repos).unwrap();
        let bare = repos.join("app.git");
        git(&repos, &["init", "--quiet", "--bare", "--initial-branch=main", "app.git"]);
        let work = root.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "--quiet", "--initial-branch=main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        let fixture = Fixture { root, bare, work };
        fixture.commit("README.md", "v1.0.0\n", "first");
        git(&fixture.work, &["tag", "-a", "v1.0.0", "-m", "release 1.0.0"]);
        fixture.commit("apps/app.yaml", "kind: ConfigMap\n", "add app");
        fixture.commit("infra/infra.yaml", "kind: Namespace\n", "add infra");
        git(&fixture.work, &["tag", "v1.1.0"]);
        git(&fixture.work, &["tag", "not-a-version"]);
        git(&fixture.work, &["checkout", "--quiet", "-b", "dev"]);
        fixture.commit("dev.txt", "dev\n", "dev work");
        git(&fixture.work, &["tag", "v2.0.0-rc.1"]);
        git(&fixture.work, &["checkout", "--quiet", "main"]);
        fixture.commit("README.md", "main tip\n", "main tip");
        git(&fixture.work, &["push", "--quiet", "origin", "main", "dev", "--tags"]);
        fixture
    }

    /// Write `path` with `contents` in the work clone and commit it; returns the new SHA.
    pub fn commit(&self, path: &str, contents: &str, message: &str) -> String {
        let file = self.work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, contents).unwrap();
        git(&self.work, &["add", path]);
        git(&self.work, &["commit", "--quiet", "-m", message]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// `file://` URL of the bare remote.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// The commit `rev` resolves to in the bare remote.
    pub fn rev(&self, rev: &str) -> String {
        git(&self.bare, &["rev-parse", &format!("{rev}^{{commit}}")])
    }

    /// A fresh directory (absent) to check out into.
    pub fn dest(&self, name: &str) -> PathBuf {
        self.root.path().join("checkouts").join(name)
    }
}

/// A free loopback port (bound and released; a race with other processes is unlikely in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Wait until something accepts connections on `port`.
pub fn wait_for_port(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..200 {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

/// A child process killed (by its PID) and reaped on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `git daemon` serving every repository under `base` on a free loopback port, push enabled.
pub fn git_daemon(base: &Path) -> Server {
    let port = free_port();
    // Run git-daemon itself: `git daemon` would fork it as a grandchild that SIGKILL leaves behind.
    let exec_path = git(base, &["--exec-path"]);
    let child = Command::new(Path::new(&exec_path).join("git-daemon"))
        .args([
            "--reuseaddr",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &format!("--base-path={}", base.display()),
            "--export-all",
            "--enable=receive-pack",
            "--informative-errors",
        ])
        .arg(base)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git daemon starts");
    let server = Server { child, port };
    wait_for_port(port);
    server
}

/// An `sshd` on a loopback port accepting one client key, with the keys and known_hosts to use.
pub struct SshServer {
    pub server: Server,
    pub dir: tempfile::TempDir,
    /// The client's private key (OpenSSH format).
    pub identity: String,
    /// A known_hosts line for the server's host key.
    pub known_hosts: String,
    /// The local user name to log in as.
    pub user: String,
}

/// `ssh-keygen` a new ed25519 key pair at `path` with `passphrase`; returns (private, public).
pub fn generate_key(path: &Path, passphrase: &str) -> (String, String) {
    git_free_command(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", passphrase, "-C", "test", "-f", path.to_str().unwrap()],
    );
    let private = std::fs::read_to_string(path).unwrap();
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (private, public)
}

#[track_caller]
fn git_free_command(program: &str, args: &[&str]) -> String {
    let output =
        Command::new(program).args(args).stdin(Stdio::null()).output().expect("program runs");
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Start sshd, or return `None` when the machine has no OpenSSH server (`apt-get install openssh-server`).
pub fn ssh_server() -> Option<SshServer> {
    let sshd = Path::new("/usr/sbin/sshd");
    if !sshd.is_file() {
        eprintln!("skipping: /usr/sbin/sshd not installed");
        return None;
    }
    // sshd refuses to start without its privilege-separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let dir = tempfile::tempdir().unwrap();
    let host_key = dir.path().join("hostkey");
    let (_, host_public) = generate_key(&host_key, "");
    let client_key = dir.path().join("clientkey");
    let (identity, client_public) = generate_key(&client_key, "");
    let authorized = dir.path().join("authorized_keys");
    std::fs::write(&authorized, &client_public).unwrap();
    let port = free_port();
    let config = dir.path().join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n",
            host_key.display(),
            dir.path().join("sshd.pid").display(),
            authorized.display(),
        ),
    )
    .unwrap();
    let child = Command::new(sshd)
        .arg("-D")
        .arg("-f")
        .arg(&config)
        .arg("-E")
        .arg(dir.path().join("sshd.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sshd starts");
    let server = Server { child, port };
    wait_for_port(port);
    let mut host_parts = host_public.split_whitespace();
    let known_hosts = format!(
        "[127.0.0.1]:{port} {} {}\n",
        host_parts.next().unwrap(),
        host_parts.next().unwrap()
    );
    let user = git_free_command("id", &["-un"]);
    Some(SshServer { server, dir, identity, known_hosts, user })
}
