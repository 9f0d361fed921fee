//! Helm charts: loading, values, rendering with Helm's functions, and Helm's install-order output.
//!
//! The pipeline mirrors `helm template` (Helm v4.2.3, client-only): [`chart::load`] reads the
//! chart, [`values`] processes dependencies (condition, tags, alias, import-values) and coalesces
//! user values with chart defaults, [`schema`] validates values.schema.json files, [`engine`]
//! renders every template with Go text/template semantics (crate `sluice-go-template`) plus
//! Helm's functions, and [`output`] splits, sorts and prints the documents.
//!
//! Entry points: [`template_chart_dir`] (the `sluice helm template` command) and
//! [`render_chart`] (for helm-controller: returns manifests, hooks and notes separately).

pub mod chart;
pub mod encode;
pub mod engine;
mod head_scan;
pub mod output;
pub mod package;
mod parallel;
pub mod schema;
pub mod strvals;
pub mod values;
pub mod yaml;
pub mod yaml_emit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

pub use chart::{Chart, load as load_chart};
pub use output::{Document, OutputOptions, Sorted};

/// Kubernetes version used when none is given (client-go v0.36 in Helm v4.2.3 release builds).
pub const DEFAULT_KUBE_VERSION: &str = "v1.36.0";

/// The API versions Helm assumes offline (`chartutil.DefaultVersionSet` of Helm v4.2.3).
pub const DEFAULT_API_VERSIONS: &[&str] = &[
    "v1",
    "admissionregistration.k8s.io/v1",
    "admissionregistration.k8s.io/v1alpha1",
    "admissionregistration.k8s.io/v1beta1",
    "internal.apiserver.k8s.io/v1alpha1",
    "apps/v1",
    "apps/v1beta1",
    "apps/v1beta2",
    "authentication.k8s.io/v1",
    "authentication.k8s.io/v1alpha1",
    "authentication.k8s.io/v1beta1",
    "authorization.k8s.io/v1",
    "authorization.k8s.io/v1beta1",
    "autoscaling/v1",
    "autoscaling/v2",
    "batch/v1",
    "batch/v1beta1",
    "certificates.k8s.io/v1",
    "certificates.k8s.io/v1beta1",
    "certificates.k8s.io/v1alpha1",
    "coordination.k8s.io/v1alpha2",
    "coordination.k8s.io/v1beta1",
    "coordination.k8s.io/v1",
    "discovery.k8s.io/v1",
    "discovery.k8s.io/v1beta1",
    "events.k8s.io/v1",
    "events.k8s.io/v1beta1",
    "extensions/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1",
    "flowcontrol.apiserver.k8s.io/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1beta2",
    "flowcontrol.apiserver.k8s.io/v1beta3",
    "networking.k8s.io/v1",
    "networking.k8s.io/v1beta1",
    "node.k8s.io/v1",
    "node.k8s.io/v1alpha1",
    "node.k8s.io/v1beta1",
    "policy/v1",
    "policy/v1beta1",
    "rbac.authorization.k8s.io/v1",
    "rbac.authorization.k8s.io/v1beta1",
    "rbac.authorization.k8s.io/v1alpha1",
    "resource.k8s.io/v1",
    "resource.k8s.io/v1beta2",
    "resource.k8s.io/v1beta1",
    "resource.k8s.io/v1alpha3",
    "scheduling.k8s.io/v1alpha2",
    "scheduling.k8s.io/v1beta1",
    "scheduling.k8s.io/v1",
    "storage.k8s.io/v1beta1",
    "storage.k8s.io/v1",
    "storage.k8s.io/v1alpha1",
    "storagemigration.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1",
];

/// Errors of the Helm engine, worded like Helm's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The chart could not be loaded.
    #[error(transparent)]
    Load(#[from] chart::LoadError),
    /// A values file or `--set` expression is invalid.
    #[error("{0}")]
    Values(String),
    /// values.schema.json validation failed; the report lists every violation per chart.
    #[error(
        "values don't meet the specifications of the schema(s) in the following chart(s):\n{0}"
    )]
    Schema(String),
    /// The chart's kubeVersion constraint excludes the target Kubernetes version.
    #[error(
        "chart requires kubeVersion: {constraint} which is incompatible with Kubernetes {version}"
    )]
    KubeVersion {
        /// The constraint from Chart.yaml.
        constraint: String,
        /// The target version, e.g. `v1.21.0`.
        version: String,
    },
    /// A template failed to parse or execute.
    #[error("{0}")]
    Render(String),
    /// A rendered document is not valid YAML.
    #[error("{0}")]
    Manifest(String),
}

/// Options of `helm template`.
#[derive(Debug, Clone)]
pub struct TemplateOptions {
    /// Release name (`.Release.Name`).
    pub release_name: String,
    /// Release namespace (`.Release.Namespace`).
    pub namespace: String,
    /// `-f/--values` files, merged in order.
    pub values_files: Vec<PathBuf>,
    /// `--set` expressions (typed values), applied after the files and `--set-json`.
    pub set_values: Vec<String>,
    /// `--set-string` expressions (string values), applied after `--set`.
    pub set_string_values: Vec<String>,
    /// `--set-file` expressions (`key=PATH`: the file's content), applied after `--set-string`.
    pub set_file_values: Vec<String>,
    /// `--set-json` expressions (`key=JSON` or a JSON object), applied right after the files.
    pub set_json_values: Vec<String>,
    /// `--set-literal` expressions (`key=TEXT`, taken as is), applied last.
    pub set_literal_values: Vec<String>,
    /// `--kube-version`, e.g. `1.21.0` or `v1.21.0`.
    pub kube_version: Option<String>,
    /// `--api-versions`, added to the default list.
    pub api_versions: Vec<String>,
    /// `--skip-tests`: drop test hooks from the output.
    pub skip_tests: bool,
    /// `--include-crds`: print `crds/` files first.
    pub include_crds: bool,
    /// `--no-hooks`: leave hooks out of the output.
    pub no_hooks: bool,
    /// `.Release.IsUpgrade` (and not IsInstall).
    pub is_upgrade: bool,
    /// Answers `lookup` from a cluster; `None` (as `helm template`): every lookup is empty.
    pub lookup: Option<std::sync::Arc<dyn Lookup>>,
}

/// Answers the `lookup` template function (Helm asks the API server with the release's client).
///
/// Unwind safe so that [`TemplateOptions`] stays so (callers render under `catch_unwind`); an
/// implementation holding a client can wrap it in [`std::panic::AssertUnwindSafe`].
pub trait Lookup: Send + Sync + std::fmt::Debug + std::panic::RefUnwindSafe {
    /// The object `name` of `apiVersion`/`kind` in `namespace` (empty for cluster-scoped kinds
    /// or all namespaces), or, when `name` is empty, the list `{"items": [...], ...}`; `None`
    /// when it does not exist (the template sees an empty map).
    ///
    /// # Errors
    /// Any other failure, shown to the chart as the error of `lookup`.
    fn lookup(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Json>, String>;
}

impl Default for TemplateOptions {
    fn default() -> Self {
        TemplateOptions {
            release_name: "release-name".to_string(),
            namespace: "default".to_string(),
            values_files: Vec::new(),
            set_values: Vec::new(),
            set_string_values: Vec::new(),
            set_file_values: Vec::new(),
            set_json_values: Vec::new(),
            set_literal_values: Vec::new(),
            kube_version: None,
            api_versions: Vec::new(),
            skip_tests: false,
            include_crds: false,
            no_hooks: false,
            is_upgrade: false,
            lookup: None,
        }
    }
}

/// A parsed Kubernetes version for `.Capabilities.KubeVersion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeVersion {
    /// `v1.36.0`.
    pub version: String,
    /// `1`.
    pub major: String,
    /// `36`.
    pub minor: String,
}

impl KubeVersion {
    /// Parse `1.21`, `v1.21.0` or `1.21.0-gke.1` like `chartutil.ParseKubeVersion`.
    ///
    /// # Errors
    /// Text that is not a semantic version.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let trimmed = text.trim().trim_start_matches('v');
        let core = trimmed.split(['-', '+']).next().unwrap_or("");
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty()
            || parts.len() > 3
            || parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(Error::Values(format!(
                "invalid kube version '{text}': invalid semantic version"
            )));
        }
        let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0);
        let suffix = &trimmed[core.len()..];
        Ok(KubeVersion {
            version: format!("v{}.{}.{}{suffix}", num(0), num(1), num(2)),
            major: num(0).to_string(),
            minor: num(1).to_string(),
        })
    }
}

/// Everything `render_chart` produced.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Manifests and hooks in install order.
    pub sorted: Sorted,
    /// The root chart's rendered NOTES.txt.
    pub notes: String,
    /// CRD files of the chart and its subcharts, as (path, content).
    pub crds: Vec<(String, String)>,
}

impl Rendered {
    /// The release manifest as Helm stores it (`rel.Manifest`): every non-hook document as
    /// `---\n# Source: PATH\nDOC\n`, in install order.
    pub fn manifest(&self) -> String {
        self.sorted
            .manifests
            .iter()
            .map(|doc| format!("---\n# Source: {}\n{}\n", doc.path, doc.content))
            .collect()
    }
}

/// Read values files and `--set` expressions into one values map (`helm/helm:pkg/cli/values`).
///
/// # Errors
/// Unreadable files and invalid YAML or `--set` syntax.
pub fn read_user_values(
    files: &[PathBuf],
    set_values: &[String],
) -> Result<Map<String, Json>, Error> {
    merge_user_values(&TemplateOptions {
        values_files: files.to_vec(),
        set_values: set_values.to_vec(),
        ..TemplateOptions::default()
    })
}

/// The user-supplied values of `options` merged as Helm's `values.Options.MergeValues` does:
/// `-f` files in order, then `--set-json`, `--set`, `--set-string`, `--set-file` and
/// `--set-literal`.
///
/// # Errors
/// Unreadable files, invalid YAML or JSON, and invalid `--set*` syntax, each naming the flag.
pub fn merge_user_values(options: &TemplateOptions) -> Result<Map<String, Json>, Error> {
    let mut values = Map::new();
    for path in &options.values_files {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Values(format!("failed to read values file {}: {e}", path.display()))
        })?;
        let parsed = chart::load_values(&text)
            .map_err(|e| Error::Values(format!("failed to parse {}: {e}", path.display())))?;
        merge_maps(&mut values, parsed);
    }
    for expression in &options.set_json_values {
        let trimmed = expression.trim();
        if trimmed.starts_with('{') {
            let object = strvals::parse_json_object(trimmed).map_err(|e| {
                Error::Values(format!("failed parsing --set-json data JSON: {expression}: {e}"))
            })?;
            merge_maps(&mut values, object);
        } else {
            strvals::parse_json_into(expression, &mut values).map_err(|e| {
                Error::Values(format!("failed parsing --set-json data {expression}: {e}"))
            })?;
        }
    }
    for expression in &options.set_values {
        strvals::parse_into(expression, &mut values)
            .map_err(|e| Error::Values(format!("failed parsing --set data: {e}")))?;
    }
    for expression in &options.set_string_values {
        strvals::parse_into_string(expression, &mut values)
            .map_err(|e| Error::Values(format!("failed parsing --set-string data: {e}")))?;
    }
    for expression in &options.set_file_values {
        let mut read = |path: &str| -> Result<Json, String> {
            let data = if path.trim() == "-" {
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut data)
                    .map_err(|e| format!("read standard input: {e}"))?;
                data
            } else {
                std::fs::read(path).map_err(|e| format!("open {path}: {e}"))?
            };
            Ok(Json::String(String::from_utf8_lossy(&data).into_owned()))
        };
        strvals::parse_file_into(expression, &mut values, &mut read)
            .map_err(|e| Error::Values(format!("failed parsing --set-file data: {e}")))?;
    }
    for expression in &options.set_literal_values {
        strvals::parse_literal_into(expression, &mut values)
            .map_err(|e| Error::Values(format!("failed parsing --set-literal data: {e}")))?;
    }
    Ok(values)
}

fn merge_maps(into: &mut Map<String, Json>, from: Map<String, Json>) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Json::Object(existing)), Json::Object(from_map)) => {
                merge_maps(existing, from_map)
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// `helm template` for a chart directory or archive: the text Helm prints on stdout.
///
/// # Errors
/// Any [`Error`].
pub fn template_chart_dir(path: &Path, options: &TemplateOptions) -> Result<String, Error> {
    let chart = chart::load(path)?;
    let user_values = merge_user_values(options)?;
    let rendered = render_chart(chart, &user_values, options)?;
    let output_options = OutputOptions {
        skip_tests: options.skip_tests,
        no_hooks: options.no_hooks,
        crds: if options.include_crds { rendered.crds.clone() } else { Vec::new() },
    };
    Ok(output::format_output(&rendered.sorted, &output_options))
}

/// Render a loaded chart with user values the way `helm install --dry-run=client` does.
///
/// # Errors
/// Any [`Error`]: kubeVersion mismatch, schema violations, template errors, invalid YAML output.
pub fn render_chart(
    mut chart: Chart,
    user_values: &Map<String, Json>,
    options: &TemplateOptions,
) -> Result<Rendered, Error> {
    let kube_version =
        KubeVersion::parse(options.kube_version.as_deref().unwrap_or(DEFAULT_KUBE_VERSION))?;
    if chart.is_library() {
        return Err(Error::Values(format!(
            "library charts are not installable: chart {:?} has type library",
            chart.name()
        )));
    }
    values::process_dependencies(&mut chart, user_values);
    let values = values::coalesce_values(&chart, user_values, false);
    schema::validate(&chart, &values).map_err(Error::Schema)?;
    if let Some(constraint) = chart.metadata.get("kubeVersion").and_then(Json::as_str)
        && !constraint.is_empty()
        && semver_check(constraint, &kube_version.version) != Some(true)
    {
        return Err(Error::KubeVersion {
            constraint: constraint.to_string(),
            version: kube_version.version.clone(),
        });
    }
    let mut api_versions: Vec<String> =
        DEFAULT_API_VERSIONS.iter().map(|s| s.to_string()).collect();
    api_versions.extend(options.api_versions.iter().cloned());
    let context = engine::RenderContext {
        release_name: options.release_name.clone(),
        namespace: options.namespace.clone(),
        is_upgrade: options.is_upgrade,
        kube_version,
        api_versions,
        lookup: options.lookup.clone(),
    };
    let mut files: BTreeMap<String, String> =
        engine::render(&chart, &values, &context).map_err(Error::Render)?;
    let notes_key = format!("{}/templates/NOTES.txt", chart.name());
    let notes = files.get(&notes_key).cloned().unwrap_or_default();
    files.retain(|name, _| !name.ends_with("NOTES.txt"));
    let sorted = output::sort_manifests(&files).map_err(Error::Manifest)?;
    let mut crds = Vec::new();
    collect_crds(&chart, chart.name(), &mut crds);
    Ok(Rendered { sorted, notes, crds })
}

fn collect_crds(chart: &Chart, full_path: &str, out: &mut Vec<(String, String)>) {
    for file in chart.crd_files() {
        out.push((
            format!("{full_path}/{}", file.name),
            String::from_utf8_lossy(&file.data).into_owned(),
        ));
    }
    for sub in &chart.subcharts {
        collect_crds(sub, &format!("{full_path}/charts/{}", sub.name()), out);
    }
}

/// Check `version` against a Masterminds constraint (`IsCompatibleRange`); an empty constraint
/// matches.
///
/// Returns `None` when the constraint or the version cannot be parsed.
pub(crate) fn semver_check(constraint: &str, version: &str) -> Option<bool> {
    if constraint.trim().is_empty() {
        return Some(true);
    }
    let constraints = sluice_semver::Constraints::parse(constraint).ok()?;
    let version = sluice_semver::Version::parse(version).ok()?;
    Some(constraints.check(&version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::{ChartFile, load_files};

    fn chart(files: &[(&str, &str)]) -> Chart {
        load_files(
            files
                .iter()
                .map(|(n, d)| ChartFile { name: n.to_string(), data: d.as_bytes().to_vec() })
                .collect(),
        )
        .unwrap()
    }

    fn options() -> TemplateOptions {
        TemplateOptions {
            release_name: "demo".into(),
            namespace: "prod".into(),
            ..TemplateOptions::default()
        }
    }

    #[track_caller]
    fn check_render(files: &[(&str, &str)], expected: &str) {
        let rendered = render_chart(chart(files), &Map::new(), &options()).unwrap();
        assert_eq!(output::format_output(&rendered.sorted, &OutputOptions::default()), expected);
    }

    const CHART_YAML: (&str, &str) =
        ("Chart.yaml", "apiVersion: v2\nname: c\nversion: 1.0.0\nappVersion: \"2\"\n");

    #[test]
    fn renders_builtins_include_tpl_and_files() {
        check_render(
            &[
                CHART_YAML,
                ("values.yaml", "num: 1000000\nt: \"{{ .Release.Name }}-x\"\n"),
                ("templates/_h.tpl", "{{ define \"h\" }}name: {{ . }}{{ end }}"),
                ("files/a.txt", "hello\n"),
                (
                    "templates/cm.yaml",
                    "kind: ConfigMap\nmetadata:\n  {{ include \"h\" .Release.Name }}\ndata:\n  n: {{ .Values.num }}\n  t: {{ tpl .Values.t . }}\n  f: {{ .Files.Get \"files/a.txt\" | trim }}\n  k: {{ .Capabilities.KubeVersion.Minor }}\n  c: {{ .Chart.Name }}-{{ .Chart.AppVersion }}\n  p: {{ .Template.Name }}\n  m: {{ .Values.missing }}\n",
                ),
            ],
            "---\n# Source: c/templates/cm.yaml\nkind: ConfigMap\nmetadata:\n  name: demo\ndata:\n  n: 1e+06\n  t: demo-x\n  f: hello\n  k: 36\n  c: c-2\n  p: c/templates/cm.yaml\n  m:\n",
        );
    }

    #[test]
    fn hooks_follow_manifests_and_kinds_are_sorted() {
        check_render(
            &[
                CHART_YAML,
                (
                    "templates/a.yaml",
                    "kind: Deployment\nmetadata: {name: d}\n---\nkind: Job\nmetadata:\n  name: j\n  annotations: {\"helm.sh/hook\": pre-install}\n",
                ),
                ("templates/b.yaml", "kind: ServiceAccount\nmetadata: {name: s}\n"),
                ("templates/NOTES.txt", "notes"),
            ],
            "---\n# Source: c/templates/b.yaml\nkind: ServiceAccount\nmetadata: {name: s}\n\n---\n# Source: c/templates/a.yaml\nkind: Deployment\nmetadata: {name: d}\n---\n# Source: c/templates/a.yaml\nkind: Job\nmetadata:\n  name: j\n  annotations: {\"helm.sh/hook\": pre-install}\n\n",
        );
    }

    #[test]
    fn required_and_fail_use_helms_wording() {
        let err = render_chart(
            chart(&[
                CHART_YAML,
                ("templates/a.yaml", "x: {{ required \"x is required\" .Values.x }}"),
            ]),
            &Map::new(),
            &options(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "execution error at (c/templates/a.yaml:1:6): x is required");
    }

    #[test]
    fn kube_version_constraint_is_checked() {
        let err = render_chart(
            chart(&[(
                "Chart.yaml",
                "apiVersion: v2\nname: c\nversion: 1.0.0\nkubeVersion: \">= 1.30.0-0\"\n",
            )]),
            &Map::new(),
            &TemplateOptions { kube_version: Some("1.21.0".into()), ..options() },
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "chart requires kubeVersion: >= 1.30.0-0 which is incompatible with Kubernetes v1.21.0"
        );
    }

    #[test]
    fn templates_that_write_values_render_in_helms_order() {
        // Helm renders z-set.yaml before a-read.yaml (reverse order), and the `set` is visible.
        check_render(
            &[
                CHART_YAML,
                ("values.yaml", "x: initial\n"),
                (
                    "templates/z-set.yaml",
                    "{{ $_ := set .Values \"x\" \"from-z\" }}kind: ConfigMap\nmetadata:\n  name: z\n",
                ),
                (
                    "templates/a-read.yaml",
                    "kind: ConfigMap\nmetadata:\n  name: a\ndata:\n  x: {{ .Values.x }}\n",
                ),
                (
                    "templates/b-read.yaml",
                    "kind: Secret\nmetadata:\n  name: {{ .Template.Name | base }}\n",
                ),
            ],
            "---\n# Source: c/templates/b-read.yaml\nkind: Secret\nmetadata:\n  name: b-read.yaml\n\n---\n# Source: c/templates/a-read.yaml\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  x: from-z\n\n---\n# Source: c/templates/z-set.yaml\nkind: ConfigMap\nmetadata:\n  name: z\n",
        );
    }

    #[test]
    fn files_get_bytes_is_a_byte_slice() {
        check_render(
            &[
                CHART_YAML,
                ("f.txt", "hi"),
                (
                    "templates/cm.yaml",
                    "kind: ConfigMap\ndata:\n  v: {{ .Files.GetBytes \"f.txt\" }}\n  s: {{ .Files.GetBytes \"f.txt\" | toString }}\n  p: {{ printf \"%s\" (.Files.GetBytes \"f.txt\") }}\n  j: {{ .Files.GetBytes \"f.txt\" | toJson }}\n  t: {{ typeOf (.Files.GetBytes \"f.txt\") | quote }}\n  n: {{ len (.Files.GetBytes \"f.txt\") }}\n  m: {{ .Files.GetBytes \"missing\" }}\n",
                ),
            ],
            "---\n# Source: c/templates/cm.yaml\nkind: ConfigMap\ndata:\n  v: [104 105]\n  s: hi\n  p: hi\n  j: \"aGk=\"\n  t: \"[]uint8\"\n  n: 2\n  m: []\n",
        );
        let err = render_chart(
            chart(&[
                CHART_YAML,
                ("f.txt", "hi"),
                ("templates/a.yaml", "x: {{ .Files.GetBytes \"f.txt\" | b64enc }}"),
            ]),
            &Map::new(),
            &options(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("wrong type for value; expected string; got []uint8"),
            "{err}"
        );
    }

    #[test]
    fn set_flags_merge_in_helms_order_and_keep_int64() {
        let dir = std::env::temp_dir().join(format!("sluice-helm-set-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("v.txt");
        std::fs::write(&file, "from a file").unwrap();
        let values = merge_user_values(&TemplateOptions {
            set_json_values: vec!["j=[1,{\"k\":true}]".into(), "{\"o\": {\"p\": 2}}".into()],
            set_values: vec!["n=1000000,s=1,b=TRUE,o.q=x".into()],
            set_string_values: vec!["s=1".into()],
            set_file_values: vec![format!("f={}", file.display())],
            set_literal_values: vec!["l=a,b=c\\d".into()],
            ..options()
        })
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            crate::encode::to_go_json(&Json::Object(values.clone()), false),
            r#"{"b":true,"f":"from a file","j":[1,{"k":true}],"l":"a,b=c\\d","n":1000000,"o":{"p":2,"q":"x"},"s":"1"}"#
        );
        let rendered = render_chart(
            chart(&[
                CHART_YAML,
                ("values.yaml", "n: 5\nm: 1000000\n"),
                ("templates/a.yaml", "n: {{ .Values.n }}\nm: {{ .Values.m }}\nj: {{ index .Values.j 0 | printf \"%T\" }}\n"),
            ]),
            &values,
            &options(),
        )
        .unwrap();
        assert_eq!(
            output::format_output(&rendered.sorted, &OutputOptions::default()),
            "---\n# Source: c/templates/a.yaml\nn: 1000000\nm: 1e+06\nj: float64\n"
        );
        let err = merge_user_values(&TemplateOptions {
            set_file_values: vec!["f=/nonexistent/sluice".into()],
            ..options()
        })
        .unwrap_err();
        assert!(
            err.to_string().starts_with("failed parsing --set-file data: open /nonexistent/sluice"),
            "{err}"
        );
        let err = merge_user_values(&TemplateOptions { set_values: vec!["a".into()], ..options() })
            .unwrap_err();
        assert_eq!(err.to_string(), "failed parsing --set data: key \"a\" has no value");
    }

    #[test]
    fn kube_version_parsing() {
        let v = KubeVersion::parse("1.16").unwrap();
        assert_eq!(
            (v.version.as_str(), v.major.as_str(), v.minor.as_str()),
            ("v1.16.0", "1", "16")
        );
        assert_eq!(KubeVersion::parse("v1.21.3").unwrap().version, "v1.21.3");
        assert!(KubeVersion::parse("one").is_err());
    }

    /// A cluster of one ConfigMap, for the `lookup` hook.
    #[derive(Debug)]
    struct OneConfigMap;

    impl Lookup for OneConfigMap {
        fn lookup(
            &self,
            api_version: &str,
            kind: &str,
            namespace: &str,
            name: &str,
        ) -> Result<Option<Json>, String> {
            match (api_version, kind, namespace, name) {
                ("v1", "ConfigMap", "prod", "settings") => Ok(Some(serde_json::json!(
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"colour": "blue", "replicas": 3}}
                ))),
                ("v1", "Secret", _, _) => Err("secrets \"x\" is forbidden".into()),
                _ => Ok(None),
            }
        }
    }

    #[test]
    fn lookup_asks_the_hook_and_is_empty_without_one() {
        let template = (
            "templates/cm.yaml",
            concat!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: out\ndata:\n",
                "  colour: {{ $a := lookup \"v1\" \"ConfigMap\" .Release.Namespace \"settings\" }}{{ if $a }}{{ $a.data.colour }}{{ else }}none{{ end }}\n",
                "  replicas: {{ $b := lookup \"v1\" \"ConfigMap\" \"prod\" \"settings\" }}{{ if $b }}{{ add 1 $b.data.replicas | quote }}{{ else }}\"0\"{{ end }}\n",
                "  missing: {{ lookup \"v1\" \"ConfigMap\" \"prod\" \"other\" | len | quote }}\n",
            ),
        );
        let files = [CHART_YAML, template];
        let offline = render_chart(chart(&files), &Map::new(), &options()).unwrap();
        let text = output::format_output(&offline.sorted, &OutputOptions::default());
        assert!(text.contains("colour: none\n  replicas: \"0\"\n  missing: \"0\""), "{text}");
        let live = TemplateOptions { lookup: Some(std::sync::Arc::new(OneConfigMap)), ..options() };
        let rendered = render_chart(chart(&files), &Map::new(), &live).unwrap();
        let text = output::format_output(&rendered.sorted, &OutputOptions::default());
        assert!(text.contains("colour: blue\n  replicas: \"4\"\n  missing: \"0\""), "{text}");
        let failing = ("templates/secret.yaml", "{{ lookup \"v1\" \"Secret\" \"prod\" \"x\" }}\n");
        let err = render_chart(chart(&[CHART_YAML, failing]), &Map::new(), &live).unwrap_err();
        assert!(err.to_string().contains("is forbidden"), "{err}");
    }
}
