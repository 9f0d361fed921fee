//! Chart loading from a directory or a `.tgz`, as `helm/helm:pkg/chart/v2/loader` does.
//!
//! Files are read into memory (with per-file and total size limits), `.helmignore` rules are
//! applied to directories, `charts/` entries become subcharts (directories and archives), and
//! `Chart.yaml`, `requirements.yaml`/`requirements.lock` (apiVersion v1), `values.yaml` and
//! `values.schema.json` are parsed.

use std::io::Read;
use std::path::{Component, Path};

use serde_json::{Map, Value as Json};

use crate::yaml::from_yaml;

/// Largest single file accepted in a chart (Helm's `MaxDecompressedFileSize` is 5 MiB).
pub const MAX_FILE_SIZE: u64 = 5 * 1024 * 1024;
/// Largest total decompressed size of a chart archive (Helm's `MaxDecompressedChartSize`).
pub const MAX_CHART_SIZE: u64 = 100 * 1024 * 1024;

/// A chart loading error.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file system could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The chart is malformed.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> LoadError {
    LoadError::Invalid(message.into())
}

/// One file of a chart, named relative to the chart root with `/` separators.
#[derive(Debug, Clone)]
pub struct ChartFile {
    /// Path relative to the chart root, e.g. `templates/deployment.yaml`.
    pub name: String,
    /// The file content.
    pub data: Vec<u8>,
}

/// A dependency declared in Chart.yaml (v2) or requirements.yaml (v1).
#[derive(Debug, Clone, Default)]
pub struct Dependency {
    /// Chart name.
    pub name: String,
    /// Version constraint.
    pub version: String,
    /// Repository URL.
    pub repository: String,
    /// Comma-separated list of values paths; the first that resolves to a bool enables it.
    pub condition: String,
    /// Tags enabling the dependency.
    pub tags: Vec<String>,
    /// Result of condition/tags processing.
    pub enabled: bool,
    /// `import-values` entries (strings or `{child, parent}` maps).
    pub import_values: Vec<Json>,
    /// Alias under which the chart is used.
    pub alias: String,
}

/// A loaded chart with its subcharts.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Chart.yaml as parsed (with `requirements.yaml` dependencies merged for v1 charts).
    pub metadata: Json,
    /// Declared dependencies.
    pub dependencies: Vec<Dependency>,
    /// Template files (`templates/…`).
    pub templates: Vec<ChartFile>,
    /// Default values from values.yaml.
    pub values: Map<String, Json>,
    /// values.schema.json, if present.
    pub schema: Option<Vec<u8>>,
    /// Every other file (for `.Files`), including `crds/`.
    pub files: Vec<ChartFile>,
    /// Subcharts from `charts/`.
    pub subcharts: Vec<Chart>,
}

impl Chart {
    /// The chart name from Chart.yaml.
    pub fn name(&self) -> &str {
        self.metadata.get("name").and_then(Json::as_str).unwrap_or("")
    }

    /// The chart version from Chart.yaml (a YAML number is read back as Go formats it).
    pub fn version(&self) -> String {
        match self.metadata.get("version") {
            Some(Json::String(s)) => s.clone(),
            Some(Json::Number(n)) => crate::yaml::go_float_g(n.as_f64().unwrap_or(0.0)),
            _ => String::new(),
        }
    }

    /// Whether Chart.yaml says `type: library`.
    pub fn is_library(&self) -> bool {
        self.metadata.get("type").and_then(Json::as_str) == Some("library")
    }

    /// The files under `crds/` (for `--include-crds`).
    pub fn crd_files(&self) -> impl Iterator<Item = &ChartFile> {
        self.files.iter().filter(|f| f.name.starts_with("crds/") && is_yaml_name(&f.name))
    }
}

fn is_yaml_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")
}

/// Load a chart from a directory or a `.tgz`/`.tar.gz` archive.
///
/// # Errors
/// IO errors, size limits, path traversal in archives, and malformed chart files.
pub fn load(path: &Path) -> Result<Chart, LoadError> {
    let meta = std::fs::metadata(path)
        .map_err(|source| LoadError::Io { path: path.display().to_string(), source })?;
    if meta.is_dir() {
        load_dir(path)
    } else {
        let data = std::fs::read(path)
            .map_err(|source| LoadError::Io { path: path.display().to_string(), source })?;
        load_archive(&data)
    }
}

/// Load a chart directory, applying its `.helmignore`.
///
/// # Errors
/// As [`load`].
pub fn load_dir(dir: &Path) -> Result<Chart, LoadError> {
    let mut rules = IgnoreRules::default();
    let ignore_file = dir.join(".helmignore");
    if let Ok(text) = std::fs::read_to_string(&ignore_file) {
        rules = IgnoreRules::parse(&text)?;
    }
    rules.add_defaults();
    let mut files = Vec::new();
    let mut total = 0u64;
    walk(dir, "", &rules, &mut files, &mut total, 0)?;
    load_files(files)
}

fn walk(
    dir: &Path,
    prefix: &str,
    rules: &IgnoreRules,
    files: &mut Vec<ChartFile>,
    total: &mut u64,
    depth: usize,
) -> Result<(), LoadError> {
    if depth > 64 {
        return Err(invalid(format!("directory nesting too deep at {}", dir.display())));
    }
    let io_err = |source| LoadError::Io { path: dir.display().to_string(), source };
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).map_err(io_err)?.collect::<Result<_, _>>().map_err(io_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let rel =
            if prefix.is_empty() { file_name.clone() } else { format!("{prefix}/{file_name}") };
        let path = entry.path();
        // Follow symlinks like Helm's sympath.Walk.
        let meta = std::fs::metadata(&path)
            .map_err(|source| LoadError::Io { path: path.display().to_string(), source })?;
        if meta.is_dir() {
            if rules.ignore(&rel, true) {
                continue;
            }
            walk(&path, &rel, rules, files, total, depth + 1)?;
            continue;
        }
        if rules.ignore(&rel, false) {
            continue;
        }
        if !meta.is_file() {
            return Err(invalid(format!(
                "cannot load irregular file {} as it has file mode type bits set",
                path.display()
            )));
        }
        if meta.len() > MAX_FILE_SIZE {
            return Err(invalid(format!(
                "chart file \"{file_name}\" is larger than the maximum file size {MAX_FILE_SIZE}"
            )));
        }
        *total += meta.len();
        if *total > MAX_CHART_SIZE {
            return Err(invalid(format!(
                "chart exceeds the maximum decompressed size {MAX_CHART_SIZE}"
            )));
        }
        let mut data = std::fs::read(&path)
            .map_err(|source| LoadError::Io { path: path.display().to_string(), source })?;
        if data.starts_with(&[0xEF, 0xBB, 0xBF]) {
            data.drain(..3);
        }
        files.push(ChartFile { name: rel, data });
    }
    Ok(())
}

/// Load a chart from gzip-compressed tar bytes (the first path component is the chart dir).
///
/// # Errors
/// As [`load`].
pub fn load_archive(data: &[u8]) -> Result<Chart, LoadError> {
    let decoder = flate2::read::GzDecoder::new(data);
    let mut archive = tar::Archive::new(decoder);
    let mut files = Vec::new();
    let mut total = 0u64;
    let entries = archive
        .entries()
        .map_err(|source| LoadError::Io { path: "chart archive".into(), source })?;
    for entry in entries {
        let mut entry =
            entry.map_err(|source| LoadError::Io { path: "chart archive".into(), source })?;
        let kind = entry.header().entry_type();
        if !kind.is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|source| LoadError::Io { path: "chart archive".into(), source })?
            .into_owned();
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => {
                    return Err(invalid(format!(
                        "chart illegally contains path {:?}",
                        path.display().to_string()
                    )));
                }
            }
        }
        if parts.len() < 2 {
            if parts.first().map(String::as_str) == Some("Chart.yaml") {
                return Err(invalid("chart yaml not in base directory"));
            }
            continue;
        }
        let name = parts[1..].join("/");
        let size = entry.header().size().unwrap_or(0);
        if size > MAX_FILE_SIZE {
            return Err(invalid(format!(
                "decompressed chart file {name} is larger than the maximum file size {MAX_FILE_SIZE}"
            )));
        }
        let mut buf = Vec::new();
        entry
            .by_ref()
            .take(MAX_FILE_SIZE + 1)
            .read_to_end(&mut buf)
            .map_err(|source| LoadError::Io { path: name.clone(), source })?;
        total += buf.len() as u64;
        if buf.len() as u64 > MAX_FILE_SIZE || total > MAX_CHART_SIZE {
            return Err(invalid(format!("chart archive exceeds the size limit at {name}")));
        }
        if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
            buf.drain(..3);
        }
        files.push(ChartFile { name, data: buf });
    }
    if files.is_empty() {
        return Err(invalid("no files in chart archive"));
    }
    load_files(files)
}

fn text(file: &ChartFile) -> Result<&str, LoadError> {
    std::str::from_utf8(&file.data)
        .map_err(|_| invalid(format!("{} is not valid UTF-8", file.name)))
}

/// Build a chart from its files (`helm/helm:pkg/chart/v2/loader/load.go` `LoadFiles`).
///
/// # Errors
/// Malformed Chart.yaml, values.yaml or requirements files, and invalid subcharts.
pub fn load_files(files: Vec<ChartFile>) -> Result<Chart, LoadError> {
    let mut metadata: Option<Json> = None;
    for file in &files {
        if file.name == "Chart.yaml" {
            let parsed = from_yaml(text(file)?)
                .map_err(|e| invalid(format!("cannot load Chart.yaml: {e}")))?;
            let mut map = match parsed {
                Json::Object(map) => map,
                Json::Null => Map::new(),
                _ => {
                    return Err(invalid(
                        "cannot load Chart.yaml: error unmarshaling JSON: not an object",
                    ));
                }
            };
            if map.get("apiVersion").and_then(Json::as_str).unwrap_or("").is_empty() {
                map.insert("apiVersion".into(), Json::String("v1".into()));
            }
            metadata = Some(Json::Object(map));
        }
    }
    let mut chart = Chart {
        metadata: Json::Null,
        dependencies: Vec::new(),
        templates: Vec::new(),
        values: Map::new(),
        schema: None,
        files: Vec::new(),
        subcharts: Vec::new(),
    };
    let mut requirements: Option<Json> = None;
    let mut subchart_files: Vec<(String, Vec<ChartFile>)> = Vec::new();
    let is_v1 =
        metadata.as_ref().and_then(|m| m.get("apiVersion")).and_then(Json::as_str) == Some("v1");
    for file in files {
        match file.name.as_str() {
            "Chart.yaml" | "Chart.lock" | "requirements.lock" => {
                if file.name == "requirements.lock" && is_v1 {
                    chart.files.push(file);
                }
            }
            "values.yaml" => {
                chart.values = load_values(text(&file)?)
                    .map_err(|e| invalid(format!("cannot load values.yaml: {e}")))?;
            }
            "values.schema.json" => chart.schema = Some(file.data),
            "requirements.yaml" => {
                let parsed = from_yaml(text(&file)?)
                    .map_err(|e| invalid(format!("cannot load requirements.yaml: {e}")))?;
                requirements = Some(parsed);
                if is_v1 {
                    chart.files.push(file);
                }
            }
            name if name.starts_with("templates/") => chart.templates.push(file),
            name if name.starts_with("charts/") => {
                if name.ends_with(".prov") {
                    chart.files.push(file);
                    continue;
                }
                let rest = &name["charts/".len()..];
                let chart_name = rest.split('/').next().unwrap_or("").to_string();
                let inner = ChartFile { name: rest.to_string(), data: file.data };
                match subchart_files.iter_mut().find(|(n, _)| *n == chart_name) {
                    Some((_, list)) => list.push(inner),
                    None => subchart_files.push((chart_name, vec![inner])),
                }
            }
            _ => chart.files.push(file),
        }
    }
    let Some(mut metadata) = metadata else {
        return Err(invalid("Chart.yaml file is missing"));
    };
    if let (Some(Json::Object(req)), Json::Object(meta)) = (requirements, &mut metadata)
        && let Some(deps) = req.get("dependencies")
    {
        meta.insert("dependencies".into(), deps.clone());
    }
    validate_metadata(&metadata)?;
    chart.dependencies = parse_dependencies(&metadata)?;
    chart.metadata = metadata;
    for (name, files) in subchart_files {
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        let sub = if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
            let Some(file) = files.into_iter().find(|f| f.name == name) else { continue };
            load_archive(&file.data)
        } else {
            let inner: Vec<ChartFile> = files
                .into_iter()
                .filter_map(|f| {
                    f.name
                        .split_once('/')
                        .map(|(_, rest)| ChartFile { name: rest.to_string(), data: f.data })
                })
                .collect();
            load_files(inner)
        };
        let sub = sub.map_err(|e| {
            invalid(format!("error unpacking subchart {name} in {}: {e}", chart.name()))
        })?;
        chart.subcharts.push(sub);
    }
    Ok(chart)
}

fn validate_metadata(metadata: &Json) -> Result<(), LoadError> {
    let field = |name: &str| metadata.get(name).and_then(Json::as_str).unwrap_or("").to_string();
    if field("name").is_empty() {
        return Err(invalid("validation: chart.metadata.name is required"));
    }
    if field("name").contains('/') || field("name").contains("..") {
        return Err(invalid(format!("chart.metadata.name \"{}\" is invalid", field("name"))));
    }
    let version = metadata.get("version");
    match version {
        None | Some(Json::Null) => {
            return Err(invalid("validation: chart.metadata.version is required"));
        }
        Some(Json::String(v)) if v.is_empty() => {
            return Err(invalid("validation: chart.metadata.version is required"));
        }
        _ => {}
    }
    let chart_type = field("type");
    if !chart_type.is_empty() && chart_type != "application" && chart_type != "library" {
        return Err(invalid(
            "validation: chart.metadata.type must be application or library".to_string(),
        ));
    }
    Ok(())
}

fn parse_dependencies(metadata: &Json) -> Result<Vec<Dependency>, LoadError> {
    let Some(Json::Array(list)) = metadata.get("dependencies") else { return Ok(Vec::new()) };
    let mut deps = Vec::new();
    for item in list {
        let Json::Object(map) = item else {
            return Err(invalid("validation: dependencies must be a list of maps"));
        };
        let s = |key: &str| match map.get(key) {
            Some(Json::String(s)) => s.clone(),
            Some(Json::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let tags = match map.get("tags") {
            Some(Json::Array(tags)) => {
                tags.iter().filter_map(|t| t.as_str().map(str::to_string)).collect()
            }
            _ => Vec::new(),
        };
        let import_values = match map.get("import-values") {
            Some(Json::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        deps.push(Dependency {
            name: s("name"),
            version: s("version"),
            repository: s("repository"),
            condition: s("condition"),
            tags,
            enabled: map.get("enabled").and_then(Json::as_bool).unwrap_or(false),
            import_values,
            alias: s("alias"),
        });
    }
    Ok(deps)
}

/// Parse a values file: every YAML document must be a map; documents are merged.
///
/// # Errors
/// Syntax errors, and documents that are not maps.
pub fn load_values(text: &str) -> Result<Map<String, Json>, String> {
    let docs = crate::yaml::from_yaml_documents(text).map_err(|e| e.to_string())?;
    let mut values = Map::new();
    for doc in docs {
        match doc {
            Json::Null => {}
            Json::Object(map) => merge_maps(&mut values, map),
            _ => {
                return Err(
                    "cannot unmarshal yaml document: error unmarshaling JSON: json: cannot unmarshal array into Go value of type map[string]interface {}"
                        .to_string(),
                );
            }
        }
    }
    Ok(values)
}

fn merge_maps(into: &mut Map<String, Json>, from: Map<String, Json>) {
    for (key, value) in from {
        if let Json::Object(from_map) = value {
            if let Some(Json::Object(existing)) = into.get_mut(&key) {
                merge_maps(existing, from_map);
                continue;
            }
            into.insert(key, Json::Object(from_map));
        } else {
            into.insert(key, value);
        }
    }
}

/// `.helmignore` rules (`helm/helm:pkg/ignore/rules.go`).
#[derive(Debug, Default)]
struct IgnoreRules {
    patterns: Vec<IgnorePattern>,
}

#[derive(Debug)]
struct IgnorePattern {
    pattern: String,
    negate: bool,
    must_dir: bool,
    kind: PatternKind,
}

#[derive(Debug, PartialEq)]
enum PatternKind {
    Root,
    Structural,
    Basename,
}

impl IgnoreRules {
    fn parse(text: &str) -> Result<Self, LoadError> {
        let mut rules = IgnoreRules::default();
        for line in text.lines() {
            rules.add(line)?;
        }
        Ok(rules)
    }

    fn add_defaults(&mut self) {
        // Helm ignores hidden files under templates/.
        let _ = self.add("templates/.?*");
    }

    fn add(&mut self, line: &str) -> Result<(), LoadError> {
        let mut rule = line.trim().trim_start_matches('\u{feff}');
        if rule.is_empty() || rule.starts_with('#') {
            return Ok(());
        }
        if rule.contains("**") {
            return Err(invalid("double-star (**) syntax is not supported"));
        }
        let negate = rule.starts_with('!');
        if negate {
            rule = &rule[1..];
        }
        let must_dir = rule.ends_with('/');
        if must_dir {
            rule = &rule[..rule.len() - 1];
        }
        let (kind, pattern) = if let Some(rest) = rule.strip_prefix('/') {
            (PatternKind::Root, rest)
        } else if rule.contains('/') {
            (PatternKind::Structural, rule)
        } else {
            (PatternKind::Basename, rule)
        };
        self.patterns.push(IgnorePattern { pattern: pattern.to_string(), negate, must_dir, kind });
        Ok(())
    }

    fn ignore(&self, path: &str, is_dir: bool) -> bool {
        if path.is_empty() || path == "." || path == "./" {
            return false;
        }
        for p in &self.patterns {
            let target = if p.kind == PatternKind::Basename {
                path.rsplit('/').next().unwrap_or(path)
            } else {
                path
            };
            let matched = go_path_match(&p.pattern, target);
            if p.negate {
                if p.must_dir && !is_dir {
                    return true;
                }
                if !matched {
                    return true;
                }
                continue;
            }
            if p.must_dir && !is_dir {
                continue;
            }
            if matched {
                return true;
            }
        }
        false
    }
}

/// Go's `filepath.Match` (`*` and `?` do not cross `/`; `[...]` classes; `\` escapes).
pub fn go_path_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    if p.is_empty() {
        return n.is_empty();
    }
    match p[0] {
        '*' => {
            let mut i = 0;
            loop {
                if match_from(&p[1..], &n[i..]) {
                    return true;
                }
                if i >= n.len() || n[i] == '/' {
                    return false;
                }
                i += 1;
            }
        }
        '?' => !n.is_empty() && n[0] != '/' && match_from(&p[1..], &n[1..]),
        '[' => {
            if n.is_empty() || n[0] == '/' {
                return false;
            }
            let c = n[0];
            let mut i = 1;
            let negated = i < p.len() && p[i] == '^';
            if negated {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            while i < p.len() && (p[i] != ']' || first) {
                first = false;
                let mut lo = p[i];
                if lo == '\\' && i + 1 < p.len() {
                    i += 1;
                    lo = p[i];
                }
                let mut hi = lo;
                if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                    hi = p[i + 2];
                    i += 2;
                }
                if lo <= c && c <= hi {
                    matched = true;
                }
                i += 1;
            }
            if i >= p.len() {
                return false;
            }
            matched != negated && match_from(&p[i + 1..], &n[1..])
        }
        '\\' if p.len() > 1 => !n.is_empty() && n[0] == p[1] && match_from(&p[2..], &n[1..]),
        c => !n.is_empty() && n[0] == c && match_from(&p[1..], &n[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_match_table() {
        for (pattern, name, expected) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "dir/a.txt", false),
            ("templates/.?*", "templates/.hidden", true),
            ("templates/.?*", "templates/a.yaml", false),
            ("a?c", "abc", true),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("ci/*", "ci/values.yaml", true),
        ] {
            assert_eq!(go_path_match(pattern, name), expected, "{pattern} {name}");
        }
    }

    #[test]
    fn helmignore_rules() {
        let mut rules = IgnoreRules::parse("# c\n*.md\n/ci/\n").unwrap();
        rules.add_defaults();
        assert!(rules.ignore("ci", true));
        assert!(!rules.ignore("ci", false));
        assert!(rules.ignore("templates/.x", false));
        assert!(rules.ignore("docs/a.md", false));
    }

    #[test]
    fn loads_files_with_subcharts_and_values() {
        let files = vec![
            ChartFile {
                name: "Chart.yaml".into(),
                data: b"apiVersion: v2\nname: top\nversion: 1.0.0\n".to_vec(),
            },
            ChartFile { name: "values.yaml".into(), data: b"a: 1\n---\nb: 2\n".to_vec() },
            ChartFile { name: "templates/cm.yaml".into(), data: b"x".to_vec() },
            ChartFile {
                name: "charts/sub/Chart.yaml".into(),
                data: b"name: sub\nversion: 0.1.0\n".to_vec(),
            },
            ChartFile { name: "files/a.txt".into(), data: b"hi".to_vec() },
        ];
        let chart = load_files(files).unwrap();
        assert_eq!(chart.name(), "top");
        assert_eq!(chart.values.len(), 2);
        assert_eq!(chart.subcharts.len(), 1);
        assert_eq!(chart.subcharts[0].metadata["apiVersion"], "v1");
        assert_eq!(chart.templates.len(), 1);
        assert_eq!(chart.files.len(), 1);
    }

    #[test]
    fn missing_chart_yaml_is_an_error() {
        let err =
            load_files(vec![ChartFile { name: "values.yaml".into(), data: vec![] }]).unwrap_err();
        assert_eq!(err.to_string(), "Chart.yaml file is missing");
    }
}
