//! Chart dependencies missing from a chart's `charts/` directory, built as `helm dependency
//! build` builds them, for HelmCharts packaged from a GitRepository or Bucket:
//! - `file://<path>`: the chart at that path, relative to the chart and inside the source
//!   artifact, packaged;
//! - `http(s)://…`: the repository's index, the highest version matching the constraint,
//!   downloaded with the credentials of a HelmRepository of the same URL in the HelmChart's
//!   namespace (anonymously when there is none);
//! - `oci://…`: the tags of `<repository>/<name>`, pulled likewise.
//!
//! Each becomes `charts/<name>-<version>.tgz` in the package.

use std::path::{Component, Path, PathBuf};

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use sluice_api::source::{HelmChart, HelmRepository};
use sluice_helm::chart::{ChartFile, Dependency};
use sluice_helm::package::{PackageOptions, archive_files, package_files, read_dir_files};

use crate::helmchart::{DEPENDENCY_BUILD_ERROR, Error, OciChart, Reconciler, build_error};
use crate::helmrepository::{self, RepositoryClient};

/// The dependencies of the chart in `files` that its `charts/` directory does not hold.
///
/// # Errors
/// When the chart cannot be loaded.
pub(crate) fn missing(files: &[ChartFile]) -> Result<Vec<Dependency>, Error> {
    let chart = sluice_helm::chart::load_files(files.to_vec())
        .map_err(|err| build_error(crate::helmchart::CHART_PACKAGE_ERROR, err.to_string()))?;
    let mut missing: Vec<Dependency> = Vec::new();
    for dep in &chart.dependencies {
        let vendored = chart.subcharts.iter().any(|sub| sub.name() == dep.name);
        let seen = missing.iter().any(|m| m.name == dep.name && m.repository == dep.repository);
        if !vendored && !seen {
            missing.push(dep.clone());
        }
    }
    Ok(missing)
}

fn dependency_error(dep: &Dependency, message: impl std::fmt::Display) -> Error {
    build_error(DEPENDENCY_BUILD_ERROR, format!("dependency '{}': {message}", dep.name))
}

/// `chart_dir` joined with `relative`, normalised, and required to stay inside `root`.
fn inside(root: &Path, chart_dir: &Path, relative: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    for component in chart_dir.join(relative).components() {
        match component {
            Component::ParentDir => {
                if !path.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => path.push(other),
        }
    }
    path.starts_with(root).then_some(path)
}

/// A HelmRepository of the HelmChart's namespace with the dependency's URL, or a bare one
/// (anonymous, default settings) standing for it.
fn repository_for(repos: &[HelmRepository], namespace: &str, url: &str) -> HelmRepository {
    let wanted = url.trim_end_matches('/');
    if let Some(repo) = repos.iter().find(|r| r.spec.url.trim_end_matches('/') == wanted) {
        return repo.clone();
    }
    let mut spec =
        sluice_api::source::HelmRepositorySpec { url: url.to_string(), ..Default::default() };
    if url.starts_with("oci://") {
        spec.type_ = Some("oci".into());
    }
    let mut repo = HelmRepository::new("dependency", spec);
    repo.metadata.namespace = Some(namespace.to_string());
    repo
}

/// Builds every dependency in `deps` into `charts/<name>-<version>.tgz` files; `root` is the
/// unpacked source artifact and `chart_dir` the chart inside it.
///
/// # Errors
/// A repository that cannot be reached or has no matching version, a `file://` path outside
/// the source, an unsupported repository reference: each names the dependency.
pub(crate) async fn build(
    reconciler: &Reconciler,
    obj: &HelmChart,
    root: &Path,
    chart_dir: &Path,
    deps: &[Dependency],
) -> Result<Vec<ChartFile>, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let mut repos: Option<Vec<HelmRepository>> = None;
    let mut built: Vec<ChartFile> = Vec::new();
    for dep in deps {
        let repository = dep.repository.trim();
        let (version, data) = if let Some(relative) = repository.strip_prefix("file://") {
            local(root, chart_dir, relative, dep)?
        } else if repository.starts_with("oci://")
            || repository.starts_with("https://")
            || repository.starts_with("http://")
        {
            if repos.is_none() {
                let api: Api<HelmRepository> =
                    Api::namespaced(reconciler.runtime.client.clone(), &namespace);
                let list = api.list(&ListParams::default()).await.map_err(|err| {
                    dependency_error(
                        dep,
                        format!("listing HelmRepositories in '{namespace}': {err}"),
                    )
                })?;
                repos = Some(list.items);
            }
            let repo = repository_for(repos.as_deref().unwrap_or_default(), &namespace, repository);
            remote(reconciler, &repo, repository, dep).await?
        } else if repository.is_empty() {
            return Err(dependency_error(
                dep,
                "not in charts/ and no repository is set: vendor it or set its repository URL",
            ));
        } else {
            return Err(dependency_error(
                dep,
                format!(
                    "repository '{repository}' is not supported: use an http(s)://, oci:// or file:// URL (repository names such as '@stable' are not resolved)"
                ),
            ));
        };
        let name = format!("charts/{}-{version}.tgz", dep.name);
        if !built.iter().any(|file| file.name == name) {
            built.push(ChartFile { name, data });
        }
    }
    Ok(built)
}

/// A `file://` dependency: the chart directory (or package) at that path, packaged.
fn local(
    root: &Path,
    chart_dir: &Path,
    relative: &str,
    dep: &Dependency,
) -> Result<(String, Vec<u8>), Error> {
    let Some(path) = inside(root, chart_dir, relative) else {
        return Err(dependency_error(
            dep,
            format!("file://{relative} points outside the source artifact"),
        ));
    };
    let files = if path.is_dir() {
        read_dir_files(&path).map_err(|err| dependency_error(dep, err))?
    } else if path.is_file() {
        let data = std::fs::read(&path).map_err(|err| dependency_error(dep, err))?;
        archive_files(&data).map_err(|err| dependency_error(dep, err))?
    } else {
        return Err(dependency_error(
            dep,
            format!("no chart at file://{relative} (relative to the chart) in the source artifact"),
        ));
    };
    let package = package_files(files, &PackageOptions::default())
        .map_err(|err| dependency_error(dep, err))?;
    if package.name != dep.name {
        return Err(dependency_error(
            dep,
            format!("the chart at file://{relative} is named '{}'", package.name),
        ));
    }
    Ok((package.version, package.data))
}

/// A dependency from an HTTP(S) repository index or an OCI registry.
async fn remote(
    reconciler: &Reconciler,
    repo: &HelmRepository,
    url: &str,
    dep: &Dependency,
) -> Result<(String, Vec<u8>), Error> {
    let range = dep.version.clone();
    if url.starts_with("oci://") {
        let address = format!("{}/{}", url.trim_end_matches('/'), dep.name);
        let oci = OciChart::open(reconciler, repo, &address).await?;
        let (version, tag) = oci.select(&dep.name, &range).await?;
        let data = oci.pull(&tag, &version, reconciler.limits.chart_max_size).await?;
        return Ok((version, data));
    }
    let client = RepositoryClient::for_repository(&reconciler.runtime, repo, reconciler.limits)
        .await
        .map_err(|err| dependency_error(dep, sluice_runtime::conditions::error_message(&err)))?;
    let (_, raw) = client
        .fetch_index()
        .await
        .map_err(|err| dependency_error(dep, sluice_runtime::conditions::error_message(&err)))?;
    let name = dep.name.clone();
    let selected = tokio::task::spawn_blocking(move || {
        let index = helmrepository::normalize_index(&raw)?;
        let versions = helmrepository::chart_versions(&index, &name)?;
        helmrepository::select_version(&versions, &name, &range).cloned()
    })
    .await
    .map_err(|err| Error::Task(err.to_string()))?
    .map_err(|message| dependency_error(dep, format!("{message} in {url}")))?;
    let Some(reference) = selected.urls.first() else {
        return Err(dependency_error(
            dep,
            format!("version '{}' has no download URL in the index of {url}", selected.version),
        ));
    };
    let download = client.resolve(reference).map_err(Error::Repository)?;
    let data = client
        .fetch_chart(download)
        .await
        .map_err(|err| dependency_error(dep, sluice_runtime::conditions::error_message(&err)))?;
    Ok((selected.version, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_dependencies_stay_inside_the_source() {
        let root = Path::new("/work/src");
        let chart = Path::new("/work/src/charts/app");
        assert_eq!(
            inside(root, chart, "../common"),
            Some(PathBuf::from("/work/src/charts/common"))
        );
        assert_eq!(inside(root, chart, "./sub"), Some(PathBuf::from("/work/src/charts/app/sub")));
        assert_eq!(inside(root, chart, "../../../etc"), None);
        assert_eq!(inside(root, chart, "/etc/passwd"), None);
    }

    #[test]
    fn a_repository_of_the_same_url_lends_its_settings() {
        let mut known = HelmRepository::new(
            "charts",
            sluice_api::source::HelmRepositorySpec {
                url: "https://charts.example.com/stable/".into(),
                ..Default::default()
            },
        );
        known.spec.secret_ref =
            Some(sluice_api::meta::LocalObjectReference { name: "auth".into() });
        let repos = vec![known];
        let found = repository_for(&repos, "apps", "https://charts.example.com/stable");
        assert_eq!(found.name_any(), "charts");
        let bare = repository_for(&repos, "apps", "oci://registry.example.com/charts");
        assert_eq!(bare.spec.type_.as_deref(), Some("oci"));
        assert!(bare.spec.secret_ref.is_none());
        assert_eq!(bare.namespace().as_deref(), Some("apps"));
    }
}
