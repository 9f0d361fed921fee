//! Writing chart packages (`.tgz`) the way `helm package` lays them out, reproducibly.
//!
//! A package is a gzip-compressed tar whose entries are `<chart name>/<path>`: `Chart.yaml`
//! first, then `values.yaml` and `values.schema.json` when present, then every other file in
//! byte order of its path. Only regular files are written (no directory entries). Headers are
//! normalised (mode `0644`, uid/gid 0, empty owner names, mtime 0) and the gzip header carries
//! no name and no time, so the same chart content always gives the same bytes and digest.
//!
//! [`package_dir`] reads a chart directory (honouring its `.helmignore` and Helm's rule that
//! hidden files under `templates/` are skipped), optionally replaces `values.yaml` and sets
//! the version in `Chart.yaml` (as source-controller does for `valuesFiles` and
//! `reconcileStrategy: Revision`), validates the result with [`crate::chart::load_files`] and
//! writes it. [`archive_files`] reads a package back into its files, for repackaging a chart
//! downloaded from a repository.

use std::io::Read;
use std::path::{Component, Path};

use serde_json::{Map, Value as Json};

use crate::chart::{ChartFile, MAX_CHART_SIZE, MAX_FILE_SIZE, go_path_match, load_files};

/// Why a chart could not be packaged.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// Reading the chart directory failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The chart is not valid.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> PackageError {
    PackageError::Invalid(message.into())
}

/// Changes applied while packaging.
#[derive(Debug, Clone, Default)]
pub struct PackageOptions {
    /// Replaces the chart's `values.yaml` with this text (merged `valuesFiles`).
    pub values_yaml: Option<String>,
    /// Replaces `version` in `Chart.yaml` (e.g. `1.2.3+4e5cbb7b97d0`).
    pub version: Option<String>,
}

/// A written package.
#[derive(Debug, Clone)]
pub struct Package {
    /// The chart name from `Chart.yaml`.
    pub name: String,
    /// The chart version written into the package.
    pub version: String,
    /// The `.tgz` bytes.
    pub data: Vec<u8>,
}

/// Packages the chart in `dir` with `options`.
///
/// # Errors
/// IO errors, size limits, `.helmignore` syntax errors and invalid charts (missing or broken
/// `Chart.yaml`, broken values).
pub fn package_dir(dir: &Path, options: &PackageOptions) -> Result<Package, PackageError> {
    let files = read_dir_files(dir)?;
    package_files(files, options)
}

/// Packages a chart given as its files (named relative to the chart root) with `options`.
///
/// # Errors
/// Invalid charts, as [`package_dir`].
pub fn package_files(
    mut files: Vec<ChartFile>,
    options: &PackageOptions,
) -> Result<Package, PackageError> {
    if let Some(values) = &options.values_yaml {
        files.retain(|f| f.name != "values.yaml");
        files.push(ChartFile { name: "values.yaml".into(), data: values.clone().into_bytes() });
    }
    if let Some(version) = &options.version {
        let chart_yaml = files
            .iter_mut()
            .find(|f| f.name == "Chart.yaml")
            .ok_or_else(|| invalid("Chart.yaml file is missing"))?;
        let text = std::str::from_utf8(&chart_yaml.data)
            .map_err(|_| invalid("Chart.yaml is not valid UTF-8"))?;
        let mut metadata = match crate::yaml::from_yaml(text)
            .map_err(|err| invalid(format!("cannot load Chart.yaml: {err}")))?
        {
            Json::Object(map) => map,
            _ => return Err(invalid("cannot load Chart.yaml: not a map")),
        };
        metadata.insert("version".into(), Json::String(version.clone()));
        chart_yaml.data = crate::yaml_emit::to_yaml(&Json::Object(metadata)).into_bytes();
    }
    // Validate exactly what is written: a package Helm could not load is never produced.
    let chart =
        load_files(files.clone()).map_err(|err| invalid(format!("invalid chart: {err}")))?;
    let name = chart.name().to_string();
    let version = chart.version();
    let data = write_archive(&name, files)?;
    Ok(Package { name, version, data })
}

/// Writes `files` as the package of chart `name` (see the module docs for the layout).
///
/// # Errors
/// When a file name is not a clean relative path.
pub fn write_archive(name: &str, mut files: Vec<ChartFile>) -> Result<Vec<u8>, PackageError> {
    let rank = |file: &ChartFile| match file.name.as_str() {
        "Chart.yaml" => 0,
        "values.yaml" => 1,
        "values.schema.json" => 2,
        _ => 3,
    };
    files.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.name.cmp(&b.name)));
    let encoder = flate2::GzBuilder::new()
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    let io = |source| PackageError::Io { path: format!("{name} package"), source };
    for file in &files {
        if !is_clean_relative(&file.name) {
            return Err(invalid(format!("chart file name {:?} is not a relative path", file.name)));
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(file.data.len() as u64);
        builder
            .append_data(&mut header, format!("{name}/{}", file.name), file.data.as_slice())
            .map_err(io)?;
    }
    let encoder = builder.into_inner().map_err(io)?;
    encoder.finish().map_err(io)
}

/// Reads the files of a package (`<chart>/<path>` entries) back, named relative to the chart
/// root, with Helm's size limits and without path traversal.
///
/// # Errors
/// Broken archives, entries outside the chart directory, and sizes over the limits.
pub fn archive_files(data: &[u8]) -> Result<Vec<ChartFile>, PackageError> {
    let io = |source| PackageError::Io { path: "chart archive".into(), source };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(data));
    let mut files = Vec::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(io)?.into_owned();
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => {
                    return Err(invalid(format!(
                        "chart archive entry {:?} leaves the chart directory",
                        path.display().to_string()
                    )));
                }
            }
        }
        if parts.len() < 2 {
            continue;
        }
        let name = parts[1..].join("/");
        let mut buf = Vec::new();
        entry.by_ref().take(MAX_FILE_SIZE + 1).read_to_end(&mut buf).map_err(io)?;
        total += buf.len() as u64;
        if buf.len() as u64 > MAX_FILE_SIZE {
            return Err(invalid(format!(
                "chart file {name} is larger than the maximum file size {MAX_FILE_SIZE}"
            )));
        }
        if total > MAX_CHART_SIZE {
            return Err(invalid(format!(
                "chart archive exceeds the maximum decompressed size {MAX_CHART_SIZE}"
            )));
        }
        files.push(ChartFile { name, data: buf });
    }
    Ok(files)
}

/// Merges values files in order: maps merge deeply, any other value of a later file replaces
/// the earlier one. Returns the merged values as YAML.
///
/// # Errors
/// A file that is not valid YAML or not a map, named by its `name`.
pub fn merge_values_files<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<String, PackageError> {
    let mut merged = Map::new();
    for (name, data) in files {
        let text = std::str::from_utf8(data)
            .map_err(|_| invalid(format!("values file {name:?} is not valid UTF-8")))?;
        let values = crate::chart::load_values(text)
            .map_err(|err| invalid(format!("values file {name:?}: {err}")))?;
        merge_maps(&mut merged, values);
    }
    Ok(crate::yaml_emit::to_yaml(&Json::Object(merged)))
}

fn merge_maps(into: &mut Map<String, Json>, from: Map<String, Json>) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Json::Object(existing)), Json::Object(incoming)) => {
                merge_maps(existing, incoming);
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

fn is_clean_relative(name: &str) -> bool {
    !name.is_empty() && Path::new(name).components().all(|c| matches!(c, Component::Normal(_)))
}

/// Reads a chart directory's files, applying `.helmignore` and skipping hidden files under
/// `templates/`, as Helm's directory loader does. Symlinks are followed inside the directory.
///
/// # Errors
/// IO errors, irregular files, size limits and `.helmignore` syntax errors.
pub fn read_dir_files(dir: &Path) -> Result<Vec<ChartFile>, PackageError> {
    let mut rules = Rules::default();
    if let Ok(text) = std::fs::read_to_string(dir.join(".helmignore")) {
        for line in text.lines() {
            rules.add(line)?;
        }
    }
    rules.add("templates/.?*")?;
    let mut files = Vec::new();
    let mut total = 0;
    walk(dir, "", &rules, &mut files, &mut total, 0)?;
    if !files.iter().any(|f| f.name == "Chart.yaml") {
        return Err(invalid(format!("no Chart.yaml in chart directory {}", dir.display())));
    }
    Ok(files)
}

fn walk(
    dir: &Path,
    prefix: &str,
    rules: &Rules,
    files: &mut Vec<ChartFile>,
    total: &mut u64,
    depth: usize,
) -> Result<(), PackageError> {
    if depth > 64 {
        return Err(invalid(format!("directory nesting too deep at {}", dir.display())));
    }
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| PackageError::Io { path, source }
    };
    let mut entries =
        std::fs::read_dir(dir).map_err(io(dir))?.collect::<Result<Vec<_>, _>>().map_err(io(dir))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let rel =
            if prefix.is_empty() { file_name.clone() } else { format!("{prefix}/{file_name}") };
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(io(&path))?;
        if rules.ignore(&rel, meta.is_dir()) {
            continue;
        }
        if meta.is_dir() {
            walk(&path, &rel, rules, files, total, depth + 1)?;
            continue;
        }
        if !meta.is_file() {
            return Err(invalid(format!("{rel} is not a regular file")));
        }
        if meta.len() > MAX_FILE_SIZE {
            return Err(invalid(format!(
                "chart file {rel} is larger than the maximum file size {MAX_FILE_SIZE}"
            )));
        }
        *total += meta.len();
        if *total > MAX_CHART_SIZE {
            return Err(invalid(format!(
                "chart directory exceeds the maximum size {MAX_CHART_SIZE}"
            )));
        }
        let data = std::fs::read(&path).map_err(io(&path))?;
        files.push(ChartFile { name: rel, data });
    }
    Ok(())
}

/// `.helmignore` rules: shell globs on the base name (no `/`), on the path (with `/`) or
/// anchored at the root (leading `/`); a trailing `/` matches directories only; `!` negates.
#[derive(Debug, Default)]
struct Rules {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    pattern: String,
    negate: bool,
    dir_only: bool,
    base_name: bool,
}

impl Rules {
    fn add(&mut self, line: &str) -> Result<(), PackageError> {
        let mut text = line.trim().trim_start_matches('\u{feff}');
        if text.is_empty() || text.starts_with('#') {
            return Ok(());
        }
        if text.contains("**") {
            return Err(invalid(".helmignore: double-star (**) syntax is not supported"));
        }
        let negate = text.starts_with('!');
        if negate {
            text = &text[1..];
        }
        let dir_only = text.ends_with('/');
        if dir_only {
            text = &text[..text.len() - 1];
        }
        let (base_name, pattern) = match text.strip_prefix('/') {
            Some(rooted) => (false, rooted),
            None => (!text.contains('/'), text),
        };
        self.rules.push(Rule { pattern: pattern.to_string(), negate, dir_only, base_name });
        Ok(())
    }

    fn ignore(&self, path: &str, is_dir: bool) -> bool {
        for rule in &self.rules {
            let target =
                if rule.base_name { path.rsplit('/').next().unwrap_or(path) } else { path };
            let matched = go_path_match(&rule.pattern, target);
            if rule.negate {
                // Helm: a negated rule ignores everything it does not match.
                if (rule.dir_only && !is_dir) || !matched {
                    return true;
                }
                continue;
            }
            if rule.dir_only && !is_dir {
                continue;
            }
            if matched {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory removed on drop.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new() -> Self {
            static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("sluice-helm-package-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Scratch(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn chart_dir() -> Scratch {
        let dir = Scratch::new();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("Chart.yaml", "apiVersion: v2\nname: demo\nversion: 1.2.3\n");
        write("values.yaml", "replicas: 1\nimage:\n  tag: v1\n  repo: demo\n");
        write("templates/cm.yaml", "kind: ConfigMap\n");
        write("templates/.hidden", "x");
        write("docs/notes.txt", "ignored");
        write("README.md", "kept");
        write(".helmignore", "# comment\ndocs/\n*.tmp\n");
        write("scratch.tmp", "ignored");
        dir
    }

    fn entries(data: &[u8]) -> Vec<(String, u32, u64)> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(data));
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (e.path().unwrap().display().to_string(), h.mode().unwrap(), h.mtime().unwrap())
            })
            .collect()
    }

    #[test]
    fn packages_like_helm_package_and_reproducibly() {
        let dir = chart_dir();
        let first = package_dir(dir.path(), &PackageOptions::default()).unwrap();
        assert_eq!((first.name.as_str(), first.version.as_str()), ("demo", "1.2.3"));
        let names: Vec<_> = entries(&first.data)
            .into_iter()
            .map(|(n, m, t)| {
                assert_eq!((m, t), (0o644, 0));
                n
            })
            .collect();
        assert_eq!(
            names,
            [
                "demo/Chart.yaml",
                "demo/values.yaml",
                "demo/.helmignore",
                "demo/README.md",
                "demo/templates/cm.yaml"
            ]
        );
        // Same content, same bytes, even after the files' times change.
        std::fs::write(dir.path().join("README.md"), "kept").unwrap();
        let second = package_dir(dir.path(), &PackageOptions::default()).unwrap();
        assert_eq!(first.data, second.data);
        // The package loads back as the same chart.
        let chart = crate::chart::load_archive(&first.data).unwrap();
        assert_eq!(chart.name(), "demo");
        assert_eq!(chart.templates.len(), 1);
    }

    #[test]
    fn sets_version_and_values() {
        let dir = chart_dir();
        let merged = merge_values_files([
            ("values.yaml", b"replicas: 1\nimage:\n  tag: v1\n  repo: demo\n".as_slice()),
            ("prod.yaml", b"replicas: 3\nimage:\n  tag: v2\n".as_slice()),
        ])
        .unwrap();
        let options = PackageOptions {
            values_yaml: Some(merged),
            version: Some("1.2.3+4e5cbb7b97d0".into()),
        };
        let package = package_dir(dir.path(), &options).unwrap();
        assert_eq!(package.version, "1.2.3+4e5cbb7b97d0");
        let chart = crate::chart::load_archive(&package.data).unwrap();
        assert_eq!(chart.version(), "1.2.3+4e5cbb7b97d0");
        assert_eq!(
            Json::Object(chart.values),
            serde_json::json!({"replicas": 3.0, "image": {"tag": "v2", "repo": "demo"}})
        );
        let files = archive_files(&package.data).unwrap();
        assert!(files.iter().any(|f| f.name == "templates/cm.yaml"));
    }

    #[test]
    fn rejects_broken_charts_and_values() {
        let dir = Scratch::new();
        std::fs::write(dir.path().join("values.yaml"), "a: 1\n").unwrap();
        let err = package_dir(dir.path(), &PackageOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no Chart.yaml"), "{err}");
        std::fs::write(dir.path().join("Chart.yaml"), "name: x\n").unwrap();
        let err = package_dir(dir.path(), &PackageOptions::default()).unwrap_err();
        assert!(err.to_string().contains("version is required"), "{err}");
        let err = merge_values_files([("bad.yaml", b"- a\n- b\n".as_slice())]).unwrap_err();
        assert!(err.to_string().contains("bad.yaml"), "{err}");
    }
}
