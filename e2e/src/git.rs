//! Git servers on loopback: smart HTTP (lighttpd + git-http-backend) and SSH (sshd), with test repos.
//!
//! Both serve bare repositories from a [`GitRepos`] directory. Commits are made with the git CLI
//! in a work tree next to each bare repository, with a fixed author, on branch `main`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::paths::find_program;
use crate::process::{self, Lifetime, ScratchDir, ServerProcess};

/// Bare repositories plus their work trees, in one temporary directory.
#[derive(Debug)]
pub struct GitRepos {
    dir: ScratchDir,
}

impl GitRepos {
    /// An empty set of repositories in a fresh temporary directory.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn new() -> Result<GitRepos> {
        let dir = ScratchDir::new("sluice-git-")?;
        fs::create_dir_all(dir.path().join("repos"))?;
        fs::create_dir_all(dir.path().join("work"))?;
        Ok(GitRepos { dir })
    }

    /// The directory holding the bare repositories (`<name>.git`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("repos")
    }

    /// The bare repository `<name>.git`.
    pub fn bare_path(&self, name: &str) -> PathBuf {
        self.root().join(format!("{name}.git"))
    }

    /// The work tree the commits of `name` are made in.
    pub fn work_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("work").join(name)
    }

    /// Creates the bare repository `name` with one commit of `files` (path, content) on `main`;
    /// returns the commit SHA.
    ///
    /// # Errors
    /// When git fails (the message has its stderr).
    pub fn create_repo(&self, name: &str, files: &[(&str, &str)]) -> Result<String> {
        let bare = self.bare_path(name);
        if bare.exists() {
            bail!("git repository {name} already exists in {}", self.root().display());
        }
        git(&self.root(), &["init", "--quiet", "--bare", "--initial-branch=main"], &bare)?;
        let work = self.work_path(name);
        fs::create_dir_all(&work)?;
        git(&work, &["init", "--quiet", "--initial-branch=main"], Path::new("."))?;
        self.commit(name, files, "initial commit")
    }

    /// Writes `files` into the work tree of `name`, commits them on `main` and pushes; returns
    /// the commit SHA. An empty content string still creates the file.
    ///
    /// # Errors
    /// When the repository does not exist or git fails.
    pub fn commit(&self, name: &str, files: &[(&str, &str)], message: &str) -> Result<String> {
        let work = self.work_path(name);
        if !work.is_dir() {
            bail!("git repository {name} does not exist; call create_repo first");
        }
        for (path, content) in files {
            if path.split('/').any(|part| part == ".." || part.is_empty()) {
                bail!("file path {path:?} must be relative without `..` or empty parts");
            }
            let file = work.join(path);
            if let Some(parent) = file.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&file, content).with_context(|| format!("writing {}", file.display()))?;
        }
        git_in(&work, &["add", "--all"])?;
        git_in(&work, &["commit", "--quiet", "--allow-empty", "-m", message])?;
        self.push(name)?;
        Ok(git_in(&work, &["rev-parse", "HEAD"])?.trim().to_owned())
    }

    /// Tags the current `main` of `name` with an annotated tag and pushes it.
    ///
    /// # Errors
    /// When git fails.
    pub fn tag(&self, name: &str, tag: &str) -> Result<()> {
        git_in(&self.work_path(name), &["tag", "-a", "-m", tag, tag])?;
        self.push(name)
    }

    /// Creates (or moves) branch `branch` of `name` to the current commit and pushes it.
    ///
    /// # Errors
    /// When git fails.
    pub fn branch(&self, name: &str, branch: &str) -> Result<()> {
        let work = self.work_path(name);
        git_in(&work, &["branch", "--force", branch])?;
        let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
        let bare = self.bare_path(name);
        git_in(&work, &["push", "--quiet", "--force", &bare.to_string_lossy(), &refspec])?;
        Ok(())
    }

    /// The commit SHA a ref (`main`, `v1.0.0`, `refs/heads/x`) points at in the bare repository.
    ///
    /// # Errors
    /// When the ref does not exist.
    pub fn rev_parse(&self, name: &str, reference: &str) -> Result<String> {
        let commit = format!("{reference}^{{commit}}");
        Ok(git_in(&self.bare_path(name), &["rev-parse", &commit])?.trim().to_owned())
    }

    fn push(&self, name: &str) -> Result<()> {
        let work = self.work_path(name);
        let bare = self.bare_path(name);
        git_in(
            &work,
            &[
                "push",
                "--quiet",
                "--force",
                "--tags",
                &bare.to_string_lossy(),
                "HEAD:refs/heads/main",
            ],
        )?;
        Ok(())
    }
}

/// Runs `git <args> <target>` in `cwd`.
fn git(cwd: &Path, args: &[&str], target: &Path) -> Result<String> {
    let mut command = git_command(cwd);
    command.args(args).arg(target);
    process::run_tool(&mut command)
}

fn git_in(cwd: &Path, args: &[&str]) -> Result<String> {
    let mut command = git_command(cwd);
    command.args(args);
    process::run_tool(&mut command)
}

/// A git command with a fixed identity and no user or system configuration.
fn git_command(cwd: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(cwd)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Sluice Test")
        .env("GIT_AUTHOR_EMAIL", "test@sluice.invalid")
        .env("GIT_COMMITTER_NAME", "Sluice Test")
        .env("GIT_COMMITTER_EMAIL", "test@sluice.invalid")
        .env("GIT_TERMINAL_PROMPT", "0");
    command
}

/// Git over smart HTTP: lighttpd running `git http-backend` on 127.0.0.1.
///
/// `/git/<repo>.git` allows anonymous clone (push answers 403); `/private/<repo>.git` needs
/// basic auth with [`GitServer::USERNAME`] / [`GitServer::PASSWORD`] and allows push.
#[derive(Debug)]
pub struct GitServer {
    repos: GitRepos,
    port: u16,
    _process: ServerProcess,
    _config_dir: ScratchDir,
}

impl GitServer {
    /// The basic-auth user of `/private/`.
    pub const USERNAME: &'static str = "git-user";
    /// The basic-auth password of `/private/`.
    pub const PASSWORD: &'static str = "git-s3cret";

    /// Starts lighttpd with empty repositories.
    ///
    /// # Errors
    /// When lighttpd, htpasswd or git-http-backend is missing (the message names the package)
    /// or lighttpd does not listen within 15 s.
    pub fn start() -> Result<GitServer> {
        let lighttpd = find_program(&["/usr/sbin/lighttpd"], "lighttpd")?;
        let exec_path = process::run_tool(Command::new("git").arg("--exec-path"))?;
        let backend = Path::new(exec_path.trim()).join("git-http-backend");
        if !backend.is_file() {
            bail!("{} not found: install git (apt-get install git)", backend.display());
        }
        let repos = GitRepos::new()?;
        let config_dir = ScratchDir::new("sluice-lighttpd-")?;
        let conf_dir = config_dir.path();
        fs::create_dir_all(conf_dir.join("docroot"))?;
        let htpasswd = process::run_tool(
            Command::new(find_program(&["/usr/bin/htpasswd"], "apache2-utils")?).args([
                "-nbm",
                Self::USERNAME,
                Self::PASSWORD,
            ]),
        )?;
        fs::write(conf_dir.join("htpasswd"), htpasswd.trim_end().to_owned() + "\n")?;
        let mut last_error = None;
        for _ in 0..3 {
            let port = process::free_port()?;
            let config = format!(
                r#"server.document-root = "{docroot}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{log}"
server.modules = ("mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi")
alias.url = ( "/git/" => "{backend}/", "/private/" => "{backend}/" )
$HTTP["url"] =~ "^/(git|private)/" {{
  cgi.assign = ( "" => "" )
  setenv.add-environment = ( "GIT_PROJECT_ROOT" => "{root}", "GIT_HTTP_EXPORT_ALL" => "" )
}}
$HTTP["url"] =~ "^/private/" {{
  auth.backend = "htpasswd"
  auth.backend.htpasswd.userfile = "{htpasswd}"
  auth.require = ( "" => ( "method" => "basic", "realm" => "git", "require" => "valid-user" ) )
}}
"#,
                docroot = conf_dir.join("docroot").display(),
                log = conf_dir.join("error.log").display(),
                backend = backend.display(),
                root = repos.root().display(),
                htpasswd = conf_dir.join("htpasswd").display(),
            );
            let conf = conf_dir.join("lighttpd.conf");
            fs::write(&conf, config)?;
            let mut command = Command::new(&lighttpd);
            command.arg("-D").arg("-f").arg(&conf);
            let mut server = ServerProcess::spawn(
                "lighttpd (git smart HTTP)",
                command,
                &conf_dir.join("stdout.log"),
                Lifetime::Guarded,
            )?;
            match process::wait_for_port(&mut server, port, Duration::from_secs(15)) {
                Ok(()) => {
                    return Ok(GitServer {
                        repos,
                        port,
                        _process: server,
                        _config_dir: config_dir,
                    });
                }
                Err(err) => {
                    let error_log = process::log_tail(&conf_dir.join("error.log"), 2000);
                    if !error_log.to_lowercase().contains("address already in use") {
                        bail!("{err:#}\nlighttpd error log:\n{error_log}");
                    }
                    last_error = Some(err);
                }
            }
        }
        bail!(
            "lighttpd could not bind a free port: {:#}",
            last_error.unwrap_or_else(|| anyhow::anyhow!("unknown"))
        )
    }

    /// The repositories this server serves.
    pub fn repos(&self) -> &GitRepos {
        &self.repos
    }

    /// Creates repository `name` with one commit of `files`; returns the commit SHA.
    ///
    /// # Errors
    /// See [`GitRepos::create_repo`].
    pub fn create_repo(&self, name: &str, files: &[(&str, &str)]) -> Result<String> {
        self.repos.create_repo(name, files)
    }

    /// The server process id (for diagnostics).
    pub fn pid(&self) -> u32 {
        self._process.pid()
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Anonymous read-only URL: `http://127.0.0.1:<port>/git/<name>.git`.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/git/{name}.git", self.port)
    }

    /// Authenticated URL (credentials not included): `http://127.0.0.1:<port>/private/<name>.git`.
    pub fn private_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/private/{name}.git", self.port)
    }

    /// The authenticated URL with the credentials embedded (for the git CLI).
    pub fn private_url_with_credentials(&self, name: &str) -> String {
        format!(
            "http://{}:{}@127.0.0.1:{}/private/{name}.git",
            Self::USERNAME,
            Self::PASSWORD,
            self.port
        )
    }
}

/// Git over SSH: an sshd on 127.0.0.1 with a generated ed25519 host key and client key.
///
/// Clone with [`SshGitServer::url`]; verify the host with [`SshGitServer::known_hosts`]; log in
/// with [`SshGitServer::client_private_key`]. The login user is the current user (sshd can
/// only switch to another user as root).
#[derive(Debug)]
pub struct SshGitServer {
    repos: GitRepos,
    port: u16,
    user: String,
    dir: ScratchDir,
    host_public_key: String,
    _process: ServerProcess,
}

impl SshGitServer {
    /// Generates keys and starts sshd with empty repositories.
    ///
    /// # Errors
    /// When openssh-server is missing (the message names the package) or sshd does not listen.
    pub fn start() -> Result<SshGitServer> {
        let sshd = find_program(&["/usr/sbin/sshd"], "openssh-server")?;
        let repos = GitRepos::new()?;
        let dir = ScratchDir::new("sluice-sshd-")?;
        let path = dir.path();
        for key in ["host_key", "client_key"] {
            process::run_tool(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", key, "-f"])
                    .arg(path.join(key)),
            )?;
        }
        fs::copy(path.join("client_key.pub"), path.join("authorized_keys"))?;
        let host_public_key = fs::read_to_string(path.join("host_key.pub"))?
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let user = process::run_tool(Command::new("id").arg("-un"))?.trim().to_owned();
        let is_root = user == "root";
        if is_root {
            // sshd's privilege-separation directory.
            fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
        }
        let mut last_error = None;
        for _ in 0..3 {
            let port = process::free_port()?;
            let config = format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {host_key}\nPidFile {pid}\n\
                 AuthorizedKeysFile {authorized}\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPrintMotd no\n\
                 AllowUsers {user}\n",
                host_key = path.join("host_key").display(),
                pid = path.join("sshd.pid").display(),
                authorized = path.join("authorized_keys").display(),
            );
            let conf = path.join("sshd_config");
            fs::write(&conf, config)?;
            process::run_tool(Command::new(&sshd).arg("-t").arg("-f").arg(&conf))
                .context("checking the sshd configuration")?;
            let mut command = Command::new(&sshd);
            command.arg("-D").arg("-e").arg("-f").arg(&conf);
            let mut server =
                ServerProcess::spawn("sshd", command, &path.join("sshd.log"), Lifetime::Guarded)?;
            match process::wait_for_port(&mut server, port, Duration::from_secs(15)) {
                Ok(()) => {
                    let server =
                        SshGitServer { repos, port, user, host_public_key, _process: server, dir };
                    fs::write(server.dir.path().join("known_hosts"), server.known_hosts() + "\n")?;
                    return Ok(server);
                }
                Err(err) if server.failed_on_port_in_use() => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        bail!(
            "sshd could not bind a free port: {:#}",
            last_error.unwrap_or_else(|| anyhow::anyhow!("unknown"))
        )
    }

    /// The repositories this server serves.
    pub fn repos(&self) -> &GitRepos {
        &self.repos
    }

    /// Creates repository `name` with one commit of `files`; returns the commit SHA.
    ///
    /// # Errors
    /// See [`GitRepos::create_repo`].
    pub fn create_repo(&self, name: &str, files: &[(&str, &str)]) -> Result<String> {
        self.repos.create_repo(name, files)
    }

    /// The server process id (for diagnostics).
    pub fn pid(&self) -> u32 {
        self._process.pid()
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ssh://<user>@127.0.0.1:<port>/<absolute path>/<name>.git`.
    pub fn url(&self, name: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            self.repos.bare_path(name).display()
        )
    }

    /// The known_hosts line of the server: `[127.0.0.1]:<port> ssh-ed25519 AAAA…`.
    pub fn known_hosts(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_public_key)
    }

    /// The client's private key (OpenSSH format), authorized to log in.
    ///
    /// # Errors
    /// When the key file cannot be read.
    pub fn client_private_key(&self) -> Result<String> {
        Ok(fs::read_to_string(self.client_key_path())?)
    }

    /// The client's public key line (`ssh-ed25519 AAAA… client_key`).
    ///
    /// # Errors
    /// When the key file cannot be read.
    pub fn client_public_key(&self) -> Result<String> {
        Ok(fs::read_to_string(self.dir.path().join("client_key.pub"))?.trim().to_owned())
    }

    /// The path of the client's private key (mode 0600).
    pub fn client_key_path(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A `GIT_SSH_COMMAND` value that logs in with the client key and checks the host key.
    pub fn git_ssh_command(&self) -> String {
        format!(
            "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
             -o UserKnownHostsFile={}",
            self.client_key_path().display(),
            self.dir.path().join("known_hosts").display()
        )
    }
}
