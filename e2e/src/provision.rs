//! Machine preparation for the harness: Debian packages, the kube-apiserver build, the moto venv.
//!
//! `cargo xtask cluster build` and `cargo xtask e2e` call these. Every step is idempotent
//! (skipped when its result is already there) and prints each command it runs with a `+ `
//! prefix, so it can be repeated by hand.
//!
//! The apiserver build follows `../shared/docs/test-infra.md` §1a: Debian bookworm's
//! `kubernetes` 1.20.2 source package (the full tree with `vendor/`), fetched with a private apt
//! configuration so the system sources stay untouched; the vendored reflect2 1.0.1 and
//! json-iterator are swapped for Debian's reflect2 1.0.2 / json-iterator 1.1.12 (1.0.1 crashes
//! under Go >= 1.18 on the first custom-resource create); then `make WHAT=…` with Go 1.19 and no
//! network. The binaries are cached in `~/.cache/sluice/k8s-v1.20.2/bin` and the 2.5 GB build
//! tree is deleted.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::paths::{self, ClusterBinaries, KUBERNETES_VERSION};

/// Debian packages needed to build and run the control plane.
pub const BUILD_PACKAGES: &[&str] = &[
    "golang-1.19-go",
    "etcd-server",
    "etcd-client",
    "rsync",
    "jq",
    "dpkg-dev",
    "golang-github-modern-go-reflect2-dev",
    "golang-github-json-iterator-go-dev",
    "openssl",
    "make",
];

/// Debian packages of the loopback servers (git over HTTP and SSH, OCI registry, htpasswd).
pub const SERVER_PACKAGES: &[&str] =
    &["docker-registry", "lighttpd", "openssh-server", "openssh-client", "apache2-utils", "git"];

/// The PyPI requirement of the S3 server.
pub const MOTO_REQUIREMENT: &str = "moto[server]";

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// Prints `+ <command>` (with the working directory and changed variables) and runs it with
/// inherited stdio.
///
/// # Errors
/// When it cannot start or exits non-zero.
pub fn run_logged(command: &mut Command) -> Result<()> {
    let line = describe(command);
    eprintln!("+ {line}");
    let status = command.status().with_context(|| format!("starting `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed with {status}");
    }
    Ok(())
}

fn describe(command: &Command) -> String {
    let mut parts = Vec::new();
    if let Some(dir) = command.get_current_dir() {
        parts.push(format!("cd {} &&", dir.display()));
    }
    for (key, value) in command.get_envs() {
        let value = value.unwrap_or(OsStr::new(""));
        parts.push(format!("{}={}", key.to_string_lossy(), value.to_string_lossy()));
    }
    parts.push(command.get_program().to_string_lossy().into_owned());
    parts.extend(command.get_args().map(|arg| shell_quote(&arg.to_string_lossy())));
    parts.join(" ")
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%[]".contains(c));
    if plain { arg.to_owned() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The packages of `packages` that dpkg does not report as installed.
pub fn missing_apt_packages(packages: &[&str]) -> Vec<String> {
    packages
        .iter()
        .filter(|package| {
            let installed = Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", package])
                .stderr(Stdio::null())
                .output()
                .map(|output| {
                    String::from_utf8_lossy(&output.stdout).contains("install ok installed")
                })
                .unwrap_or(false);
            !installed
        })
        .map(|package| (*package).to_owned())
        .collect()
}

/// Installs the missing packages of `packages` with apt-get (running `apt-get update` first,
/// once per process). Does nothing when all are installed.
///
/// # Errors
/// When packages are missing and this is not root (the message gives the command to run), or
/// apt-get fails.
pub fn ensure_apt_packages(packages: &[&str]) -> Result<()> {
    let missing = missing_apt_packages(packages);
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages: {}; run `sudo apt-get update && sudo apt-get install -y {}` \
             and try again",
            missing.join(" "),
            missing.join(" ")
        );
    }
    // Wait for other apt users instead of failing on the dpkg lock.
    let lock_wait = ["-o", "DPkg::Lock::Timeout=600"];
    if !APT_UPDATED.swap(true, Ordering::SeqCst) {
        run_logged(Command::new("apt-get").args(lock_wait).args(["-q", "update"]))
            .context("apt-get update failed: is deb.debian.org reachable?")?;
    }
    run_logged(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(lock_wait)
            .args(["-q", "install", "-y", "--no-install-recommends"])
            .args(&missing),
    )
    .with_context(|| format!("installing {}", missing.join(" ")))
}

/// Whether `binary --version` reports [`KUBERNETES_VERSION`].
fn has_expected_version(binary: &Path) -> bool {
    Command::new(binary)
        .arg("--version")
        .output()
        .map(|output| {
            String::from_utf8_lossy(&output.stdout)
                .contains(&format!("Kubernetes {KUBERNETES_VERSION}"))
        })
        .unwrap_or(false)
}

/// Builds kube-apiserver and kube-controller-manager v1.20.2 unless cached (or `force`), and
/// installs etcd; returns the binaries.
///
/// # Errors
/// When a step fails; the message names the step and the log above shows its output.
pub fn build_kubernetes(force: bool) -> Result<ClusterBinaries> {
    let bin_dir = paths::kubernetes_bin_dir();
    let binaries = ClusterBinaries {
        apiserver: bin_dir.join("kube-apiserver"),
        controller_manager: bin_dir.join("kube-controller-manager"),
        etcd: ClusterBinaries::configured().etcd,
    };
    let cached = has_expected_version(&binaries.apiserver)
        && has_expected_version(&binaries.controller_manager);
    if cached && !force {
        ensure_apt_packages(&["etcd-server", "openssl"])?;
        eprintln!("kube-apiserver {KUBERNETES_VERSION}: cached in {}", bin_dir.display());
        return Ok(binaries);
    }
    let started = Instant::now();
    ensure_apt_packages(BUILD_PACKAGES)?;
    let cache = paths::cache_dir();
    let _lock = BuildLock::acquire(&cache.join("build.lock"))?;
    let build_dir = cache.join("build");
    remove_dir(&build_dir)?;
    fs::create_dir_all(&build_dir)?;

    let apt_options = private_apt(&cache.join("apt"))?;
    run_logged(Command::new("apt-get").args(&apt_options).args(["-q", "update"]))
        .context("updating the private apt lists (deb-src of bookworm)")?;
    run_logged(Command::new("apt-get").current_dir(&build_dir).args(&apt_options).args([
        "source",
        "--download-only",
        "kubernetes",
    ]))
    .context("downloading Debian's kubernetes source package")?;
    let dsc = fs::read_dir(&build_dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "dsc"))
        .context("apt-get source left no .dsc file")?;
    run_logged(Command::new("dpkg-source").current_dir(&build_dir).arg("-x").arg(&dsc).arg("k8s"))?;
    let tree = build_dir.join("k8s");
    if !tree.join("vendor").is_dir() || !tree.join("cmd/kube-apiserver").is_dir() {
        bail!(
            "{} has no vendor/ or cmd/kube-apiserver: the source package is not bookworm's \
             kubernetes 1.20.2 (check {})",
            tree.display(),
            cache.join("apt/etc/src.sources").display()
        );
    }
    for package in ["github.com/modern-go/reflect2", "github.com/json-iterator/go"] {
        swap_vendored(&tree, package)?;
    }
    // GOPATH layout expected by the 1.20 build scripts (as in Debian's debian/rules).
    let gopath = tree.join(".go");
    fs::create_dir_all(gopath.join("src/k8s.io"))?;
    fs::create_dir_all(tree.join(".home"))?;
    std::os::unix::fs::symlink("../../..", gopath.join("src/k8s.io/kubernetes"))
        .context("linking .go/src/k8s.io/kubernetes")?;
    let path = format!("/usr/lib/go-1.19/bin:{}", std::env::var("PATH").unwrap_or_default());
    run_logged(
        Command::new("make")
            .current_dir(&tree)
            .env("PATH", path)
            .env("CGO_ENABLED", "0")
            .env("GOPROXY", "off")
            .env("GOPATH", &gopath)
            .env("HOME", tree.join(".home"))
            .arg("WHAT=cmd/kube-apiserver cmd/kube-controller-manager"),
    )
    .context("building kube-apiserver and kube-controller-manager (see the output above)")?;

    fs::create_dir_all(&bin_dir)?;
    for name in ["kube-apiserver", "kube-controller-manager"] {
        let built = tree.join("_output/bin").join(name);
        let partial = bin_dir.join(format!(".{name}.partial"));
        eprintln!("+ cp {} {}", built.display(), bin_dir.join(name).display());
        fs::copy(&built, &partial).with_context(|| format!("copying {}", built.display()))?;
        fs::rename(&partial, bin_dir.join(name))?;
    }
    remove_dir(&build_dir)?;
    for binary in [&binaries.apiserver, &binaries.controller_manager] {
        if !has_expected_version(binary) {
            bail!("{} does not report Kubernetes {KUBERNETES_VERSION}", binary.display());
        }
    }
    eprintln!(
        "built kube-apiserver and kube-controller-manager {KUBERNETES_VERSION} in {:.0?} into {}",
        started.elapsed(),
        bin_dir.display()
    );
    Ok(binaries)
}

/// Writes a private apt configuration with bookworm's deb-src and returns the apt-get options.
fn private_apt(dir: &Path) -> Result<Vec<String>> {
    for sub in ["etc", "lists/partial", "cache/archives/partial"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    fs::write(
        dir.join("etc/src.sources"),
        "Types: deb deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\
         Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
    )?;
    Ok(vec![
        "-o".into(),
        "Dir::Etc::SourceList=/dev/null".into(),
        "-o".into(),
        format!("Dir::Etc::SourceParts={}", dir.join("etc").display()),
        "-o".into(),
        format!("Dir::State::Lists={}", dir.join("lists").display()),
        "-o".into(),
        format!("Dir::Cache={}", dir.join("cache").display()),
    ])
}

/// Replaces `vendor/<package>` with Debian's newer copy from `/usr/share/gocode/src`.
fn swap_vendored(tree: &Path, package: &str) -> Result<()> {
    let source = Path::new("/usr/share/gocode/src").join(package);
    let target = tree.join("vendor").join(package);
    eprintln!(
        "+ replace {} with the .go/.s files of {} (no tests)",
        target.display(),
        source.display()
    );
    if !source.is_dir() {
        bail!(
            "{} missing: apt-get install the matching golang-github-*-dev package",
            source.display()
        );
    }
    remove_dir(&target)?;
    fs::create_dir_all(&target)?;
    for entry in fs::read_dir(&source)? {
        let path = entry?.path();
        let name =
            path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let wanted = (name.ends_with(".go") || name.ends_with(".s")) && !name.ends_with("_test.go");
        if wanted && path.is_file() {
            fs::copy(&path, target.join(&name))?;
        }
    }
    Ok(())
}

fn remove_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        eprintln!("+ rm -rf {}", dir.display());
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// A lock file holding the builder's PID; a stale lock (dead PID) is taken over.
struct BuildLock {
    path: PathBuf,
}

impl BuildLock {
    fn acquire(path: &Path) -> Result<BuildLock> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        if let Ok(pid) = fs::read_to_string(path) {
            let pid = pid.trim();
            if !pid.is_empty()
                && Path::new("/proc").join(pid).exists()
                && pid != std::process::id().to_string()
            {
                bail!(
                    "another build is running (pid {pid}, lock {}): wait for it, or remove the \
                     lock if that process is not a build",
                    path.display()
                );
            }
        }
        fs::write(path, std::process::id().to_string())?;
        Ok(BuildLock { path: path.to_owned() })
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Creates `~/.cache/sluice/venv` with `moto[server]` unless `moto_server` is already there;
/// returns the `moto_server` path.
///
/// # Errors
/// When Python's venv module is missing (and cannot be installed) or pip fails.
pub fn ensure_moto_venv() -> Result<PathBuf> {
    let moto = paths::moto_server();
    if moto.is_file() {
        return Ok(moto);
    }
    let venv = paths::cache_dir().join("venv");
    fs::create_dir_all(paths::cache_dir())?;
    let mut create = Command::new("python3");
    create.args(["-m", "venv"]).arg(&venv);
    if run_logged(&mut create).is_err() {
        // Debian's python3 ships venv separately.
        ensure_apt_packages(&["python3-venv"])?;
        remove_dir(&venv)?;
        run_logged(&mut create).context("creating the moto venv (python3 -m venv)")?;
    }
    run_logged(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(MOTO_REQUIREMENT),
    )
    .context("installing moto[server] from PyPI")?;
    if !moto.is_file() {
        bail!("{} missing after installing {MOTO_REQUIREMENT}", moto.display());
    }
    Ok(moto)
}

/// Everything the e2e tests need: control-plane binaries (built when missing), the server
/// packages and the moto venv.
///
/// # Errors
/// When any step fails.
pub fn prepare_e2e() -> Result<ClusterBinaries> {
    let binaries = build_kubernetes(false)?;
    ensure_apt_packages(SERVER_PACKAGES)?;
    if !on_path("kubectl") {
        // Debian's kubectl 1.20 matches the apiserver; a newer one on PATH is fine too.
        ensure_apt_packages(&["kubernetes-client"])?;
    }
    ensure_moto_venv()?;
    Ok(binaries)
}

/// Whether an executable named `program` is on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
