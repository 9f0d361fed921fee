//! Rendering as Helm's engine does (`helm/helm:pkg/engine/engine.go`): every template of the
//! chart and its subcharts goes into one template set, each non-partial file is executed with
//! its chart's scope (`.Values`, `.Chart`, `.Files`, `.Release`, `.Capabilities`,
//! `.Subcharts`, `.Template`), and `<no value>` is removed from the output.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map as JsonMap, Value as Json};
use sluice_go_template::{
    Context, Func, FuncError, Map, MissingKey, Object, Options, Param, Signature, TemplateSet,
    Value, WriteWatch,
};

use crate::KubeVersion;
use crate::chart::{Chart, ChartFile};

/// Release and cluster facts for rendering.
#[derive(Debug, Clone)]
pub struct RenderContext {
    /// `.Release.Name`.
    pub release_name: String,
    /// `.Release.Namespace`.
    pub namespace: String,
    /// `.Release.IsUpgrade` (else IsInstall).
    pub is_upgrade: bool,
    /// `.Capabilities.KubeVersion`.
    pub kube_version: KubeVersion,
    /// `.Capabilities.APIVersions`.
    pub api_versions: Vec<String>,
    /// Answers `lookup`; empty maps without one.
    pub lookup: Option<std::sync::Arc<dyn crate::Lookup>>,
}

thread_local! {
    /// Active `include` calls per template name on this thread.
    static INCLUDE_COUNTS: std::cell::RefCell<std::collections::HashMap<String, usize>> =
        std::cell::RefCell::default();
}

/// Helm's include recursion limit per template name.
const MAX_INCLUDE_RECURSION: usize = 1000;
const WARN_START: &str = "HELM_ERR_START";
const WARN_END: &str = "HELM_ERR_END";

struct Renderable {
    text: String,
    scope: Map,
    base_path: String,
}

/// Render all templates of `chart` (with coalesced `values`) to a map from template path to output.
///
/// # Errors
/// Parse and execution errors, worded like Helm's (`parse error at (…)`, `execution error at
/// (NAME:LINE:COL): MSG`, or Go's template error chain).
pub fn render(
    chart: &Chart,
    values: &JsonMap<String, Json>,
    ctx: &RenderContext,
) -> Result<BTreeMap<String, String>, String> {
    let templates = build_scopes(chart, values, ctx);

    let mut set = TemplateSet::new();
    set.set_options(Options { missing_key: MissingKey::Zero, ..Options::default() });
    register_helm_functions(&mut set, ctx.lookup.clone());

    // Deepest paths first so that parent charts' defines win (`sortTemplates`).
    let mut names: Vec<&String> = templates.keys().collect();
    names.sort_by(|a, b| {
        let (ca, cb) = (a.matches('/').count(), b.matches('/').count());
        cb.cmp(&ca).then_with(|| b.cmp(a))
    });
    for name in &names {
        set.parse(name, &templates[name.as_str()].text)
            .map_err(|e| cleanup_parse_error(name, &e.to_string()))?;
    }
    let jobs: Vec<String> = names
        .iter()
        .filter(|name| !name.rsplit('/').next().unwrap_or(name).starts_with('_'))
        .map(|name| (*name).clone())
        .collect();
    drop(names);

    // Templates are independent unless one changes state the others see (`set` on `.Values`
    // or on the chart's scope): render them concurrently on a copy of each scope, and keep the
    // result only when no map that existed before was written; otherwise render in order on
    // fresh scopes, as Helm does.
    if crate::parallel::threads() > 1 && jobs.len() > 1 {
        let scopes: Vec<Value> = jobs
            .iter()
            .map(|name| {
                let renderable = &templates[name.as_str()];
                let scope = renderable.scope.shallow_copy();
                scope.insert("Template", template_value(name, &renderable.base_path));
                Value::Map(scope)
            })
            .collect();
        let indexes: Vec<usize> = (0..jobs.len()).collect();
        let watch = WriteWatch::start();
        let outputs = crate::parallel::map(&indexes, |&i| set.execute(&jobs[i], &scopes[i]));
        if !watch.old_maps_written() {
            let mut rendered = BTreeMap::new();
            for (name, output) in jobs.into_iter().zip(outputs) {
                let output = output.map_err(|e| reformat_exec_error(&name, &e))?;
                rendered.insert(name, strip_no_value(output));
            }
            return Ok(rendered);
        }
        drop(outputs);
        return render_in_order(&set, &build_scopes(chart, values, ctx), jobs);
    }
    render_in_order(&set, &templates, jobs)
}

/// Helm removes `<no value>` from every rendered text.
fn strip_no_value(text: String) -> String {
    if text.contains("<no value>") { text.replace("<no value>", "") } else { text }
}

/// `.Template`: the file's name and its chart's templates directory.
fn template_value(name: &str, base_path: &str) -> Value {
    let template = Map::new();
    template.insert("Name", Value::str(name));
    template.insert("BasePath", Value::str(base_path));
    Value::Map(template)
}

/// Every chart's scope (`.Values`, `.Chart`, `.Files`, …) and the templates that use it.
fn build_scopes(
    chart: &Chart,
    values: &JsonMap<String, Json>,
    ctx: &RenderContext,
) -> BTreeMap<String, Renderable> {
    let release = Map::new();
    release.insert("Name", Value::str(&ctx.release_name));
    release.insert("Namespace", Value::str(&ctx.namespace));
    release.insert("IsUpgrade", Value::Bool(ctx.is_upgrade));
    release.insert("IsInstall", Value::Bool(!ctx.is_upgrade));
    release.insert("Revision", Value::Int(1));
    release.insert("Service", Value::str("Helm"));
    let capabilities = Value::Object(Arc::new(Capabilities::new(ctx)));
    // Values from files are float64 (sigs.k8s.io/yaml); `--set` integers stay int64.
    let root_values = Value::Map(
        values.iter().map(|(k, v)| (k.clone(), Value::from_json_keep_ints(v))).collect(),
    );
    let mut templates: BTreeMap<String, Renderable> = BTreeMap::new();
    collect_templates(
        chart,
        chart.name(),
        true,
        &root_values,
        &Value::Map(release),
        &capabilities,
        &mut templates,
    );
    templates
}

/// Helm's loop: each template in order on its chart's shared scope, stopping at the first error.
fn render_in_order(
    set: &TemplateSet,
    templates: &BTreeMap<String, Renderable>,
    jobs: Vec<String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut rendered = BTreeMap::new();
    for name in jobs {
        let renderable = &templates[name.as_str()];
        renderable.scope.insert("Template", template_value(&name, &renderable.base_path));
        let output = set
            .execute(&name, &Value::Map(renderable.scope.clone()))
            .map_err(|e| reformat_exec_error(&name, &e))?;
        rendered.insert(name, strip_no_value(output));
    }
    Ok(rendered)
}

/// Build each chart's scope and collect its templates (`recAllTpls`); returns the scope.
fn collect_templates(
    chart: &Chart,
    full_path: &str,
    is_root: bool,
    values: &Value,
    release: &Value,
    capabilities: &Value,
    out: &mut BTreeMap<String, Renderable>,
) -> Map {
    let scope = Map::new();
    let metadata = metadata_as_go_map(chart);
    metadata.insert("IsRoot", Value::Bool(is_root));
    scope.insert("Chart", Value::Map(metadata));
    scope.insert("Files", Value::Object(Arc::new(Files::new(chart.files.clone()))));
    scope.insert("Release", release.clone());
    scope.insert("Capabilities", capabilities.clone());
    // Each chart's `.Values` is a `common.Values` (a named map type: Sprig's `dig` rejects it).
    let typed_values = match values {
        Value::Map(map) => Value::Map(map.clone().with_type_name("common.Values")),
        other => other.clone(),
    };
    scope.insert("Values", typed_values);
    let subcharts = Map::new();
    scope.insert("Subcharts", Value::Map(subcharts.clone()));
    for sub in &chart.subcharts {
        let sub_values = match values.as_map().and_then(|m| m.get(sub.name())) {
            Some(v @ Value::Map(_)) => v,
            _ => Value::Map(Map::new()),
        };
        let sub_path = format!("{full_path}/charts/{}", sub.name());
        let sub_scope =
            collect_templates(sub, &sub_path, false, &sub_values, release, capabilities, out);
        subcharts.insert(sub.name(), Value::Map(sub_scope));
    }
    for file in &chart.templates {
        let base = file.name.rsplit('/').next().unwrap_or(&file.name);
        if chart.is_library() && !base.starts_with('_') {
            continue;
        }
        out.insert(
            format!("{full_path}/{}", file.name),
            Renderable {
                text: String::from_utf8_lossy(&file.data).into_owned(),
                scope: scope.clone(),
                base_path: format!("{full_path}/templates"),
            },
        );
    }
    scope
}

/// `.Chart`: Chart.yaml with Go's field names (`structToMap` of `chart.Metadata`).
fn metadata_as_go_map(chart: &Chart) -> Map {
    let meta = &chart.metadata;
    let map = Map::new();
    let string = |key: &str| -> Value {
        match meta.get(key) {
            Some(Json::String(s)) => Value::str(s),
            Some(Json::Number(n)) => Value::str(&number_as_string(n)),
            Some(Json::Bool(b)) => Value::str(if *b { "true" } else { "false" }),
            _ => Value::str(""),
        }
    };
    let list = |key: &str| -> Value {
        match meta.get(key) {
            Some(Json::Array(items)) => Value::from_json(&Json::Array(items.clone())),
            _ => Value::list(Vec::new()),
        }
    };
    for (field, key) in [
        ("Name", "name"),
        ("Home", "home"),
        ("Version", "version"),
        ("Description", "description"),
        ("Icon", "icon"),
        ("APIVersion", "apiVersion"),
        ("Condition", "condition"),
        ("Tags", "tags"),
        ("AppVersion", "appVersion"),
        ("KubeVersion", "kubeVersion"),
        ("Type", "type"),
    ] {
        map.insert(field, string(key));
    }
    map.insert("Sources", list("sources"));
    map.insert("Keywords", list("keywords"));
    let maintainers: Vec<Value> = match meta.get("maintainers") {
        Some(Json::Array(items)) => items
            .iter()
            .map(|m| {
                let entry = Map::new();
                for (field, key) in [("Name", "name"), ("Email", "email"), ("URL", "url")] {
                    entry
                        .insert(field, Value::str(m.get(key).and_then(Json::as_str).unwrap_or("")));
                }
                Value::Map(entry)
            })
            .collect(),
        _ => Vec::new(),
    };
    map.insert("Maintainers", Value::list(maintainers));
    map.insert(
        "Deprecated",
        Value::Bool(meta.get("deprecated").and_then(Json::as_bool).unwrap_or(false)),
    );
    let annotations = Map::new();
    if let Some(Json::Object(items)) = meta.get("annotations") {
        for (k, v) in items {
            let text = match v {
                Json::String(s) => s.clone(),
                Json::Number(n) => number_as_string(n),
                other => other.to_string(),
            };
            annotations.insert(k.as_str(), Value::str(&text));
        }
    }
    map.insert("Annotations", Value::Map(annotations));
    let dependencies: Vec<Value> = chart
        .dependencies
        .iter()
        .map(|d| {
            let entry = Map::new();
            entry.insert("Name", Value::str(&d.name));
            entry.insert("Version", Value::str(&d.version));
            entry.insert("Repository", Value::str(&d.repository));
            entry.insert("Condition", Value::str(&d.condition));
            entry.insert("Tags", Value::list(d.tags.iter().map(|t| Value::str(t)).collect()));
            entry.insert("Enabled", Value::Bool(d.enabled));
            entry.insert("ImportValues", Value::from_json(&Json::Array(d.import_values.clone())));
            entry.insert("Alias", Value::str(&d.alias));
            Value::Map(entry)
        })
        .collect();
    map.insert("Dependencies", Value::list(dependencies));
    map
}

/// sigs.k8s.io/yaml turns a YAML number into a string field with Go's formatting.
fn number_as_string(n: &serde_json::Number) -> String {
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 { format!("{f}") } else { crate::yaml::go_float_g(f) }
}

fn func_error(message: impl Into<String>) -> FuncError {
    FuncError::call(message)
}

fn arg_str(args: &[Value], i: usize) -> String {
    match args.get(i) {
        Some(Value::String(s)) => s.to_string(),
        _ => String::new(),
    }
}

fn register_helm_functions(
    set: &mut TemplateSet,
    lookup: Option<std::sync::Arc<dyn crate::Lookup>>,
) {
    set.add_func(
        "include",
        Func::new(Signature::fixed(&[Param::String, Param::Any]), |ctx: &mut Context<'_>, args: &[Value]| {
            let name = arg_str(args, 0);
            let data = args.get(1).cloned().unwrap_or(Value::Nil);
            // Per thread: templates may render concurrently, each on one thread (deep nesting
            // hops threads, where the template depth limit applies first).
            let over_limit = INCLUDE_COUNTS.with(|counts| {
                let mut counts = counts.borrow_mut();
                // No key allocation for names already seen (include runs very often).
                if !counts.contains_key(name.as_str()) {
                    counts.insert(name.clone(), 0);
                }
                let Some(count) = counts.get_mut(name.as_str()) else { return false };
                if *count > MAX_INCLUDE_RECURSION {
                    return true;
                }
                *count += 1;
                false
            });
            if over_limit {
                return Err(func_error(format!(
                    "rendering template has a nested reference name: {name}: unable to execute template"
                )));
            }
            let result = ctx.execute_template(&name, &data);
            INCLUDE_COUNTS.with(|counts| {
                if let Some(count) = counts.borrow_mut().get_mut(&name) {
                    *count = count.saturating_sub(1);
                }
            });
            result.map(Value::from).map_err(FuncError::from)
        }),
    );
    set.add_func(
        "tpl",
        Func::new(
            Signature::fixed(&[Param::String, Param::Any]),
            |ctx: &mut Context<'_>, args: &[Value]| {
                let text = arg_str(args, 0);
                let data = args.get(1).cloned().unwrap_or(Value::Nil);
                let output = ctx.execute_text("gotpl", &text, &data).map_err(FuncError::from)?;
                Ok(Value::from(strip_no_value(output)))
            },
        ),
    );
    set.add_func(
        "required",
        Func::new(
            Signature::fixed(&[Param::String, Param::Any]),
            |_ctx: &mut Context<'_>, args: &[Value]| {
                let warn = arg_str(args, 0);
                let value = args.get(1).cloned().unwrap_or(Value::Nil);
                match &value {
                    Value::Nil | Value::Missing => {
                        Err(func_error(format!("{WARN_START}{warn}{WARN_END}")))
                    }
                    Value::String(s) if s.is_empty() => {
                        Err(func_error(format!("{WARN_START}{warn}{WARN_END}")))
                    }
                    _ => Ok(value),
                }
            },
        ),
    );
    set.add_func(
        "fail",
        Func::new(Signature::fixed(&[Param::String]), |_ctx: &mut Context<'_>, args: &[Value]| {
            Err(func_error(format!("{WARN_START}{}{WARN_END}", arg_str(args, 0))))
        }),
    );
    set.add_func(
        "lookup",
        Func::new(
            Signature::fixed(&[Param::String, Param::String, Param::String, Param::String]),
            move |_ctx: &mut Context<'_>, args: &[Value]| {
                let Some(lookup) = &lookup else { return Ok(Value::Map(Map::new())) };
                let found = lookup.lookup(
                    &arg_str(args, 0),
                    &arg_str(args, 1),
                    &arg_str(args, 2),
                    &arg_str(args, 3),
                );
                match found.map_err(func_error)? {
                    Some(object) => Ok(Value::from_json_keep_ints(&object)),
                    None => Ok(Value::Map(Map::new())),
                }
            },
        ),
    );
    let simple = |set: &mut TemplateSet, name: &str, f: fn(&Value) -> Value| {
        set.add_func(
            name,
            Func::new(
                Signature::fixed(&[Param::Any]),
                move |_ctx: &mut Context<'_>, args: &[Value]| {
                    Ok(f(args.first().unwrap_or(&Value::Nil)))
                },
            ),
        );
    };
    simple(set, "toYaml", |v| {
        Value::str(crate::yaml_emit::to_yaml(&v.to_json()).trim_end_matches('\n'))
    });
    simple(set, "toYamlPretty", |v| {
        Value::str(crate::yaml_emit::to_yaml_pretty(&v.to_json()).trim_end_matches('\n'))
    });
    simple(set, "toJson", |v| Value::str(&crate::encode::to_go_json(&v.to_json(), true)));
    simple(set, "toToml", |v| match crate::encode::to_toml(&v.to_json()) {
        Ok(s) | Err(s) => Value::str(&s),
    });
    set.add_func(
        "mustToYaml",
        Func::new(Signature::fixed(&[Param::Any]), |_ctx: &mut Context<'_>, args: &[Value]| {
            Ok(Value::str(
                crate::yaml_emit::to_yaml(&args.first().unwrap_or(&Value::Nil).to_json())
                    .trim_end_matches('\n'),
            ))
        }),
    );
    set.add_func(
        "mustToJson",
        Func::new(Signature::fixed(&[Param::Any]), |_ctx: &mut Context<'_>, args: &[Value]| {
            Ok(Value::str(&crate::encode::to_go_json(
                &args.first().unwrap_or(&Value::Nil).to_json(),
                true,
            )))
        }),
    );
    set.add_func(
        "mustToToml",
        Func::new(Signature::fixed(&[Param::Any]), |_ctx: &mut Context<'_>, args: &[Value]| {
            crate::encode::to_toml(&args.first().unwrap_or(&Value::Nil).to_json())
                .map(|s| Value::str(&s))
                .map_err(func_error)
        }),
    );
    let string_fn = |set: &mut TemplateSet, name: &str, f: fn(&str) -> Value| {
        set.add_func(
            name,
            Func::new(
                Signature::fixed(&[Param::String]),
                move |_ctx: &mut Context<'_>, args: &[Value]| Ok(f(&arg_str(args, 0))),
            ),
        );
    };
    string_fn(set, "fromYaml", from_yaml_map);
    string_fn(set, "fromYamlArray", from_yaml_array);
    string_fn(set, "fromJson", from_json_map);
    string_fn(set, "fromJsonArray", from_json_array);
    string_fn(set, "fromToml", from_toml_map);
}

fn error_map(message: String) -> Value {
    let map = Map::new();
    map.insert("Error", Value::str(&message));
    Value::Map(map)
}

fn from_yaml_map(text: &str) -> Value {
    match crate::yaml::from_yaml(text) {
        Ok(Json::Object(map)) => Value::from_json(&Json::Object(map)),
        Ok(Json::Null) => Value::Map(Map::new()),
        Ok(other) => error_map(format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(&other)
        )),
        Err(e) => error_map(format!("error converting YAML to JSON: {e}")),
    }
}

fn from_yaml_array(text: &str) -> Value {
    match crate::yaml::from_yaml(text) {
        Ok(Json::Array(items)) => Value::from_json(&Json::Array(items)),
        Ok(Json::Null) => Value::list(Vec::new()),
        Ok(other) => Value::list(vec![Value::str(&format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type []interface {{}}",
            json_kind(&other)
        ))]),
        Err(e) => Value::list(vec![Value::str(&format!("error converting YAML to JSON: {e}"))]),
    }
}

fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

fn from_json_map(text: &str) -> Value {
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Object(map)) => Value::from_json(&Json::Object(map)),
        Ok(Json::Null) => Value::Map(Map::new()),
        Ok(other) => error_map(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(&other)
        )),
        Err(e) => error_map(go_json_error(&e)),
    }
}

fn from_json_array(text: &str) -> Value {
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Array(items)) => Value::from_json(&Json::Array(items)),
        Ok(Json::Null) => Value::list(Vec::new()),
        Ok(other) => Value::list(vec![Value::str(&format!(
            "json: cannot unmarshal {} into Go value of type []interface {{}}",
            json_kind(&other)
        ))]),
        Err(e) => Value::list(vec![Value::str(&go_json_error(&e))]),
    }
}

fn go_json_error(error: &serde_json::Error) -> String {
    if error.is_eof() {
        "unexpected end of JSON input".to_string()
    } else {
        format!("invalid character: {error}")
    }
}

fn from_toml_map(text: &str) -> Value {
    match text.parse::<toml::Table>() {
        Ok(table) => match serde_json::to_value(&table) {
            Ok(json) => Value::from_json_keep_ints(&json),
            Err(e) => error_map(e.to_string()),
        },
        Err(e) => error_map(e.to_string()),
    }
}

/// `cleanupParseError`: `parse error at (NAME:LINE): MSG`.
fn cleanup_parse_error(filename: &str, message: &str) -> String {
    let tokens: Vec<&str> = message.split(": ").collect();
    if tokens.len() == 1 {
        return format!("parse error in ({filename}): {message}");
    }
    format!("parse error at ({}): {}", tokens[1], tokens[tokens.len() - 1])
}

/// `reformatExecErrorMsg`: required/fail become `execution error at (LOCATION): MSG`; other
/// errors become Helm's list of template locations, outermost first.
fn reformat_exec_error(filename: &str, error: &sluice_go_template::Error) -> String {
    use sluice_go_template::Error as TemplateError;
    let message = error.to_string();
    if let (Some(start), Some(end)) = (message.find(WARN_START), message.rfind(WARN_END)) {
        let warn = &message[start + WARN_START.len()..end];
        let tokens: Vec<&str> = message.splitn(3, ": ").collect();
        let location = tokens.get(1).copied().unwrap_or(filename);
        return format!("execution error at ({location}): {warn}");
    }
    let cut = |text: &str| -> String {
        match text.find(" template:") {
            Some(i) => text[..i].to_string(),
            None => text.to_string(),
        }
    };
    let mut entries: Vec<(String, String, String)> = Vec::new();
    let mut current = Some(error);
    while let Some(err) = current {
        let entry = match err {
            TemplateError::Exec { location, template, node, message, .. } => {
                (location.clone(), format!("executing {template:?} at <{node}>:"), cut(message))
            }
            TemplateError::Template { template, message } => {
                (template.clone(), String::new(), cut(message))
            }
            TemplateError::Parse { .. } | TemplateError::Message(_) => {
                (String::new(), String::new(), err.to_string())
            }
        };
        if entries.last() != Some(&entry) {
            entries.push(entry);
        }
        current = err.source_error();
    }
    let mut out = String::new();
    for (location, executed, message) in entries {
        if !location.is_empty() {
            out.push_str(&format!("{location}\n  "));
        }
        if !executed.is_empty() {
            out.push_str(&format!("{executed}\n    "));
        }
        if !message.is_empty() {
            out.push_str(&format!("{message}\n"));
        }
    }
    out.trim().to_string()
}

/// `.Files`: the chart's non-template files (`helm/helm:pkg/engine/files.go`).
struct Files {
    files: Vec<ChartFile>,
}

impl Files {
    fn new(files: Vec<ChartFile>) -> Self {
        Files { files }
    }

    fn get(&self, name: &str) -> Option<&ChartFile> {
        self.files.iter().find(|f| f.name == name)
    }

    fn glob(&self, pattern: &str) -> Files {
        let files = match glob_regex(pattern) {
            Some(re) => self.files.iter().filter(|f| re.is_match(&f.name)).cloned().collect(),
            None => Vec::new(),
        };
        Files { files }
    }

    fn as_map(&self, encode: fn(&[u8]) -> String) -> String {
        if self.files.is_empty() {
            return String::new();
        }
        let mut map = JsonMap::new();
        for file in &self.files {
            let base = file.name.rsplit('/').next().unwrap_or(&file.name).to_string();
            map.insert(base, Json::String(encode(&file.data)));
        }
        crate::yaml_emit::to_yaml(&Json::Object(map)).trim_end_matches('\n').to_string()
    }
}

/// Compile a gobwas/glob pattern with `/` as separator (what `.Files.Glob` uses): `*` and `?`
/// stop at `/`, `**` crosses it, `[...]`/`[!...]` classes and `{a,b}` alternatives.
fn glob_regex(pattern: &str) -> Option<regex::Regex> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from("^");
    let mut i = 0;
    let mut depth = 0usize;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                out.push_str(".*");
                i += 1;
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '[' => {
                let close = chars[i + 1..].iter().position(|&x| x == ']')? + i + 1;
                let mut class: String = chars[i + 1..close].iter().collect();
                if let Some(rest) = class.strip_prefix('!') {
                    class = format!("^{rest}");
                }
                out.push('[');
                out.push_str(&class.replace('\\', "\\\\"));
                out.push(']');
                i = close;
            }
            '{' => {
                depth += 1;
                out.push_str("(?:");
            }
            '}' if depth > 0 => {
                depth -= 1;
                out.push(')');
            }
            ',' if depth > 0 => out.push('|'),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                out.push_str(&regex::escape(&chars[i].to_string()));
            }
            other => out.push_str(&regex::escape(&other.to_string())),
        }
        i += 1;
    }
    if depth > 0 {
        return None;
    }
    out.push('$');
    regex::Regex::new(&out).ok()
}

fn base64_encode(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(TABLE[(n >> 18) as usize & 63] as char);
        out.push(TABLE[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { TABLE[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { TABLE[n as usize & 63] as char } else { '=' });
    }
    out
}

impl Object for Files {
    fn type_name(&self) -> &str {
        "engine.files"
    }

    fn field(&self, _name: &str) -> Option<Value> {
        None
    }

    fn call_method(
        &self,
        name: &str,
        args: &[Value],
        _ctx: &mut Context<'_>,
    ) -> Option<Result<Value, sluice_go_template::Error>> {
        let arg = || arg_str(args, 0);
        let value = match name {
            "Get" => Value::str(
                &self
                    .get(&arg())
                    .map(|f| String::from_utf8_lossy(&f.data).into_owned())
                    .unwrap_or_default(),
            ),
            "GetBytes" => Value::bytes(self.get(&arg()).map_or(&[][..], |f| &f.data[..])),
            "Glob" => Value::Object(Arc::new(self.glob(&arg()))),
            "Lines" => match self.get(&arg()) {
                None => Value::list(Vec::new()),
                Some(file) => {
                    let text = String::from_utf8_lossy(&file.data).into_owned();
                    let text = text.strip_suffix('\n').unwrap_or(&text);
                    Value::list(text.split('\n').map(Value::str).collect())
                }
            },
            "AsConfig" => Value::str(&self.as_map(|d| String::from_utf8_lossy(d).into_owned())),
            "AsSecrets" => Value::str(&self.as_map(base64_encode)),
            _ => return None,
        };
        Some(Ok(value))
    }

    fn to_value(&self) -> Value {
        let map = Map::new();
        for file in &self.files {
            map.insert(file.name.as_str(), Value::str(&String::from_utf8_lossy(&file.data)));
        }
        Value::Map(map)
    }
}

/// `.Capabilities`.
struct Capabilities {
    kube_version: Value,
    api_versions: Value,
    helm_version: Value,
}

impl Capabilities {
    fn new(ctx: &RenderContext) -> Self {
        let helm_version = Map::new();
        helm_version.insert("Version", Value::str("v4.2"));
        helm_version.insert("GitCommit", Value::str(""));
        helm_version.insert("GitTreeState", Value::str(""));
        helm_version.insert("GoVersion", Value::str("go1.25"));
        Capabilities {
            kube_version: Value::Object(Arc::new(KubeVersionObject(ctx.kube_version.clone()))),
            api_versions: Value::Object(Arc::new(ApiVersions(ctx.api_versions.clone()))),
            helm_version: Value::Map(helm_version),
        }
    }
}

impl Object for Capabilities {
    fn type_name(&self) -> &str {
        "*common.Capabilities"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "KubeVersion" => Some(self.kube_version.clone()),
            "APIVersions" => Some(self.api_versions.clone()),
            "HelmVersion" => Some(self.helm_version.clone()),
            _ => None,
        }
    }

    fn to_value(&self) -> Value {
        let map = Map::new();
        map.insert("KubeVersion", self.kube_version.clone());
        map.insert("APIVersions", self.api_versions.clone());
        map.insert("HelmVersion", self.helm_version.clone());
        Value::Map(map)
    }
}

struct KubeVersionObject(KubeVersion);

impl Object for KubeVersionObject {
    fn type_name(&self) -> &str {
        "common.KubeVersion"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Version" | "GitVersion" | "String" => Some(Value::str(&self.0.version)),
            "Major" => Some(Value::str(&self.0.major)),
            "Minor" => Some(Value::str(&self.0.minor)),
            _ => None,
        }
    }

    fn to_value(&self) -> Value {
        Value::str(&self.0.version)
    }
}

struct ApiVersions(Vec<String>);

impl Object for ApiVersions {
    fn type_name(&self) -> &str {
        "common.VersionSet"
    }

    fn field(&self, _name: &str) -> Option<Value> {
        None
    }

    fn call_method(
        &self,
        name: &str,
        args: &[Value],
        _ctx: &mut Context<'_>,
    ) -> Option<Result<Value, sluice_go_template::Error>> {
        match name {
            "Has" => {
                let wanted = arg_str(args, 0);
                Some(Ok(Value::Bool(self.0.contains(&wanted))))
            }
            _ => None,
        }
    }

    fn to_value(&self) -> Value {
        Value::list(self.0.iter().map(|v| Value::str(v)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_cleanup() {
        assert_eq!(
            cleanup_parse_error(
                "c/templates/a.yaml",
                "template: c/templates/a.yaml:3: unexpected \"}\" in operand"
            ),
            "parse error at (c/templates/a.yaml:3): unexpected \"}\" in operand"
        );
    }

    #[test]
    fn glob_like_gobwas() {
        for (pattern, name, expected) in [
            ("files/*", "files/a.txt", true),
            ("files/*", "files/a/b.txt", false),
            ("files/**.yaml", "files/a/b/c.yaml", true),
            ("**/*.txt", "files/a/2.txt", true),
            ("{conf,files}/*.{conf,txt}", "conf/app.conf", true),
            ("files/[0-9].txt", "files/1.txt", true),
            ("files/[!0-9].txt", "files/1.txt", false),
            ("a?c", "a/c", false),
        ] {
            assert_eq!(glob_regex(pattern).unwrap().is_match(name), expected, "{pattern} {name}");
        }
    }

    #[test]
    fn base64() {
        assert_eq!(base64_encode(b"hi"), "aGk=");
        assert_eq!(base64_encode(b"abc"), "YWJj");
    }
}
