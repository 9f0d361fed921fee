//! Where the harness finds its binaries and caches: `~/.cache/sluice` and the `SLUICE_*` variables.
//!
//! | variable | default |
//! |---|---|
//! | `SLUICE_CACHE_DIR` | `$HOME/.cache/sluice` |
//! | `SLUICE_KUBE_APISERVER` | `$SLUICE_CACHE_DIR/k8s-v1.20.2/bin/kube-apiserver` |
//! | `SLUICE_KUBE_CONTROLLER_MANAGER` | `$SLUICE_CACHE_DIR/k8s-v1.20.2/bin/kube-controller-manager` |
//! | `SLUICE_ETCD` | `/usr/bin/etcd` (Debian `etcd-server` 3.4.23) |
//! | `SLUICE_MOTO_SERVER` | `$SLUICE_CACHE_DIR/venv/bin/moto_server` |
//! | `SLUICE_APISERVER_EXTRA_ARGS` | extra kube-apiserver flags, whitespace-separated (e.g. `--feature-gates=…`) |
//! | `SLUICE_CONTROLLER_MANAGER_EXTRA_ARGS` | extra kube-controller-manager flags |

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The Kubernetes version the harness builds and runs.
pub const KUBERNETES_VERSION: &str = "v1.20.2";

/// The harness's cache directory (`SLUICE_CACHE_DIR`, default `~/.cache/sluice`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let home =
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache").join("sluice")
}

/// The directory holding the built `kube-apiserver` and `kube-controller-manager`.
pub fn kubernetes_bin_dir() -> PathBuf {
    cache_dir().join(format!("k8s-{KUBERNETES_VERSION}")).join("bin")
}

fn from_env_or(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

/// The binaries a cluster needs.
#[derive(Debug, Clone)]
pub struct ClusterBinaries {
    /// `kube-apiserver` v1.20.2.
    pub apiserver: PathBuf,
    /// `kube-controller-manager` v1.20.2.
    pub controller_manager: PathBuf,
    /// `etcd` 3.4.
    pub etcd: PathBuf,
}

impl ClusterBinaries {
    /// The configured paths, whether or not the files exist.
    pub fn configured() -> ClusterBinaries {
        let bin = kubernetes_bin_dir();
        ClusterBinaries {
            apiserver: from_env_or("SLUICE_KUBE_APISERVER", bin.join("kube-apiserver")),
            controller_manager: from_env_or(
                "SLUICE_KUBE_CONTROLLER_MANAGER",
                bin.join("kube-controller-manager"),
            ),
            etcd: from_env_or("SLUICE_ETCD", PathBuf::from("/usr/bin/etcd")),
        }
    }

    /// The configured paths, checked to exist.
    ///
    /// # Errors
    /// When a binary is missing; the message says which command provides it.
    pub fn locate() -> Result<ClusterBinaries> {
        ClusterBinaries::configured().check()
    }

    /// These paths, checked to exist.
    ///
    /// # Errors
    /// When a binary is missing; the message says which command provides it.
    pub fn check(self) -> Result<ClusterBinaries> {
        let binaries = self;
        for (path, var) in [
            (&binaries.apiserver, "SLUICE_KUBE_APISERVER"),
            (&binaries.controller_manager, "SLUICE_KUBE_CONTROLLER_MANAGER"),
        ] {
            if !path.is_file() {
                bail!(
                    "{} not found: run `cargo xtask cluster build` (builds kube-apiserver and \
                     kube-controller-manager {KUBERNETES_VERSION} from Debian's source package, about \
                     4 minutes, cached in {}) or set {var}",
                    path.display(),
                    kubernetes_bin_dir().display()
                );
            }
        }
        if !binaries.etcd.is_file() {
            bail!(
                "{} not found: run `apt-get install etcd-server` (or `cargo xtask cluster build`, \
                 which installs it) or set SLUICE_ETCD",
                binaries.etcd.display()
            );
        }
        Ok(binaries)
    }
}

/// The `moto_server` executable (S3 emulator).
pub fn moto_server() -> PathBuf {
    from_env_or("SLUICE_MOTO_SERVER", cache_dir().join("venv").join("bin").join("moto_server"))
}

/// The first existing path among `candidates`, or an error naming the Debian package to install.
///
/// # Errors
/// When none exists.
pub fn find_program(candidates: &[&str], package: &str) -> Result<PathBuf> {
    for candidate in candidates {
        let path = Path::new(candidate);
        if path.is_file() {
            return Ok(path.to_owned());
        }
    }
    bail!(
        "none of {} exists: run `apt-get install {package}` (`cargo xtask e2e` installs it)",
        candidates.join(", ")
    )
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_names_the_command_that_provides_it() {
        let missing = PathBuf::from("/nonexistent/kube-apiserver");
        let binaries = ClusterBinaries {
            apiserver: missing.clone(),
            controller_manager: missing.clone(),
            etcd: missing.clone(),
        };
        let message = binaries.check().unwrap_err().to_string();
        assert!(message.contains("/nonexistent/kube-apiserver not found"), "{message}");
        assert!(message.contains("run `cargo xtask cluster build`"), "{message}");
        assert!(message.contains("SLUICE_KUBE_APISERVER"), "{message}");

        let message = find_program(&["/nonexistent/lighttpd"], "lighttpd").unwrap_err().to_string();
        assert!(message.contains("apt-get install lighttpd"), "{message}");
    }
}
