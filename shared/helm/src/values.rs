//! Values: coalescing of user, chart and subchart values with globals, and dependency
//! processing (condition, tags, alias, import-values), following
//! `helm/helm:pkg/chart/common/util/coalesce.go` and `pkg/chart/v2/util/dependencies.go`.
//!
//! `null` in user values deletes a chart default (coalesce mode); import-values use merge mode,
//! which keeps nulls.

use serde_json::{Map, Value as Json};

use crate::chart::Chart;

/// Values as a JSON object.
pub type Values = Map<String, Json>;

const GLOBAL_KEY: &str = "global";

/// Coalesce user values `vals` with the chart's defaults and its subcharts' defaults
/// (`CoalesceValues`; `merge` = `MergeValues`, which keeps nulls).
pub fn coalesce_values(chart: &Chart, vals: &Values, merge: bool) -> Values {
    let mut dest = vals.clone();
    coalesce(chart, &mut dest, merge);
    dest
}

fn coalesce(chart: &Chart, dest: &mut Values, merge: bool) {
    coalesce_chart_values(chart, dest, merge);
    coalesce_deps(chart, dest, merge);
}

fn coalesce_deps(chart: &Chart, dest: &mut Values, merge: bool) {
    for sub in &chart.subcharts {
        let name = sub.name().to_string();
        match dest.get(&name) {
            None => {
                dest.insert(name.clone(), Json::Object(Map::new()));
            }
            Some(Json::Object(_)) => {}
            // Helm returns a "type mismatch" error here; keep the user's value untouched.
            Some(_) => continue,
        }
        let parent_globals = dest.get(GLOBAL_KEY).cloned();
        if let Some(Json::Object(sub_vals)) = dest.get_mut(&name) {
            coalesce_globals(sub_vals, parent_globals.as_ref());
            coalesce(sub, sub_vals, merge);
        }
    }
}

fn coalesce_globals(dest: &mut Values, parent_globals: Option<&Json>) {
    let mut dest_globals = match dest.get(GLOBAL_KEY) {
        None => Map::new(),
        Some(Json::Object(map)) => map.clone(),
        Some(_) => return,
    };
    let src_globals = match parent_globals {
        None => Map::new(),
        Some(Json::Object(map)) => map.clone(),
        Some(_) => return,
    };
    for (key, value) in src_globals {
        match value {
            Json::Object(table) => {
                let mut copied = table.clone();
                match dest_globals.get(&key) {
                    None => {
                        dest_globals.insert(key, Json::Object(copied));
                    }
                    Some(Json::Object(existing)) => {
                        coalesce_tables(&mut copied, existing.clone(), true);
                        dest_globals.insert(key, Json::Object(copied));
                    }
                    Some(_) => {}
                }
            }
            other => {
                if !matches!(dest_globals.get(&key), Some(Json::Object(_))) {
                    dest_globals.insert(key, other);
                }
            }
        }
    }
    dest.insert(GLOBAL_KEY.to_string(), Json::Object(dest_globals));
}

fn coalesce_chart_values(chart: &Chart, v: &mut Values, merge: bool) {
    for (key, val) in chart.values.clone() {
        match v.get_mut(&key) {
            Some(Json::Null) if !merge => {
                v.remove(&key);
            }
            Some(Json::Object(dest)) => {
                if let Json::Object(mut src) = val {
                    let child_merge = merge || chart.subcharts.iter().any(|s| s.name() == key);
                    if !child_merge {
                        clean_nil_values(&mut src);
                    }
                    coalesce_tables(dest, src, child_merge);
                }
            }
            Some(_) => {}
            None => {
                if !merge {
                    if val.is_null() {
                        continue;
                    }
                    let mut val = val;
                    if let Json::Object(sub) = &mut val {
                        clean_nil_values(sub);
                    }
                    v.insert(key, val);
                } else {
                    v.insert(key, val);
                }
            }
        }
    }
}

/// `coalesceTablesFullKey`: fill `dst` from `src`; `dst` wins.
pub fn coalesce_tables(dst: &mut Values, mut src: Values, merge: bool) {
    let src_non_nil: Vec<String> =
        src.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k.clone()).collect();
    for (key, val) in dst.iter() {
        if val.is_null() {
            src.insert(key.clone(), Json::Null);
        }
    }
    for (key, val) in src {
        match dst.get_mut(&key) {
            Some(Json::Null) if !merge && src_non_nil.contains(&key) => {
                dst.remove(&key);
            }
            None => {
                dst.insert(key, val);
            }
            Some(dv) => {
                if let Json::Object(src_table) = val
                    && let Json::Object(dst_table) = dv
                {
                    coalesce_tables(dst_table, src_table, merge);
                }
            }
        }
    }
}

fn clean_nil_values(map: &mut Values) {
    map.retain(|_, v| !v.is_null());
    for value in map.values_mut() {
        if let Json::Object(sub) = value {
            clean_nil_values(sub);
        }
    }
}

/// Look up a dotted path (`PathValue`); `None` when a segment is missing.
pub fn path_value<'a>(values: &'a Values, path: &str) -> Option<&'a Json> {
    let mut parts = path.split('.').peekable();
    let mut current = values;
    while let Some(part) = parts.next() {
        let value = current.get(part)?;
        if parts.peek().is_none() {
            return Some(value);
        }
        current = value.as_object()?;
    }
    None
}

/// Look up a dotted path that must name a table (`Values.Table`).
pub fn table<'a>(values: &'a Values, path: &str) -> Option<&'a Values> {
    let mut current = values;
    for part in path.split('.') {
        current = current.get(part)?.as_object()?;
    }
    Some(current)
}

/// Dependency processing before rendering: enable/disable by condition and tags, apply aliases,
/// then import values (`ProcessDependencies`).
///
/// # Errors
/// Subcharts whose version does not satisfy the declared constraint are skipped like Helm does;
/// errors are returned for malformed constraints only through the alias resolution.
pub fn process_dependencies(chart: &mut Chart, vals: &Values) {
    process_dependency_enabled(chart, vals, "");
    process_dependency_import_values(chart);
}

fn version_matches(constraint: &str, version: &str) -> bool {
    crate::semver_check(constraint, version).unwrap_or(false)
}

fn process_dependency_enabled(chart: &mut Chart, vals: &Values, path: &str) {
    if chart.dependencies.is_empty()
        && !chart.metadata.get("dependencies").is_some_and(Json::is_array)
    {
        return;
    }
    // Subcharts not named by any dependency are kept as they are.
    let mut kept: Vec<Chart> = chart
        .subcharts
        .iter()
        .filter(|existing| {
            !chart.dependencies.iter().any(|req| {
                existing.name() == req.name && version_matches(&req.version, &existing.version())
            })
        })
        .cloned()
        .collect();
    for req in &mut chart.dependencies {
        if let Some(found) = chart
            .subcharts
            .iter()
            .find(|c| c.name() == req.name && version_matches(&req.version, &c.version()))
        {
            let mut aliased = found.clone();
            if !req.alias.is_empty()
                && let Json::Object(meta) = &mut aliased.metadata
            {
                meta.insert("name".into(), Json::String(req.alias.clone()));
            }
            kept.push(aliased);
        }
        if !req.alias.is_empty() {
            req.name = req.alias.clone();
        }
    }
    chart.subcharts = kept;
    for req in &mut chart.dependencies {
        req.enabled = true;
    }
    let cvals = coalesce_values(chart, vals, false);
    // Tags.
    if let Some(Json::Object(tags)) = cvals.get("tags") {
        for req in &mut chart.dependencies {
            let mut has_true = false;
            let mut has_false = false;
            for tag in &req.tags {
                match tags.get(tag) {
                    Some(Json::Bool(true)) => has_true = true,
                    Some(Json::Bool(false)) => has_false = true,
                    _ => {}
                }
            }
            req.enabled = has_true || !has_false;
        }
    }
    // Conditions: the first path that holds a bool decides.
    for req in &mut chart.dependencies {
        for condition in req.condition.trim().split(',') {
            let condition = condition.trim();
            if condition.is_empty() {
                continue;
            }
            if let Some(Json::Bool(enabled)) = path_value(&cvals, &format!("{path}{condition}")) {
                req.enabled = *enabled;
                break;
            }
        }
    }
    let disabled: Vec<String> =
        chart.dependencies.iter().filter(|r| !r.enabled).map(|r| r.name.clone()).collect();
    chart.subcharts.retain(|c| !disabled.iter().any(|d| d == c.name()));
    chart.dependencies.retain(|r| r.enabled);
    for sub in &mut chart.subcharts {
        let subpath = format!("{path}{}.", sub.name());
        process_dependency_enabled(sub, &cvals, &subpath);
    }
}

fn process_dependency_import_values(chart: &mut Chart) {
    for sub in &mut chart.subcharts {
        process_dependency_import_values(sub);
    }
    process_import_values(chart);
}

fn path_to_map(path: &str, data: Values) -> Values {
    if path == "." {
        return data;
    }
    let mut current = data;
    for part in path.split('.').rev() {
        let mut wrapper = Map::new();
        wrapper.insert(part.to_string(), Json::Object(current));
        current = wrapper;
    }
    current
}

fn process_import_values(chart: &mut Chart) {
    if chart.dependencies.is_empty() {
        return;
    }
    let cvals = coalesce_values(chart, &Map::new(), true);
    let mut imported = Map::new();
    for req in &chart.dependencies {
        for item in &req.import_values {
            match item {
                Json::Object(map) => {
                    let child = go_sprint(map.get("child"));
                    let parent = go_sprint(map.get("parent"));
                    if let Some(table) = table(&cvals, &format!("{}.{child}", req.name)) {
                        coalesce_tables(&mut imported, path_to_map(&parent, table.clone()), true);
                    }
                }
                Json::String(name) => {
                    if let Some(table) = table(&cvals, &format!("{}.exports.{name}", req.name)) {
                        coalesce_tables(&mut imported, table.clone(), true);
                    }
                }
                _ => {}
            }
        }
    }
    let mut values = cvals;
    coalesce_tables(&mut values, imported, true);
    chart.values = values;
}

fn go_sprint(value: Option<&Json>) -> String {
    match value {
        None | Some(Json::Null) => "<nil>".to_string(),
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::{ChartFile, load_files};
    use serde_json::json;

    fn chart(files: &[(&str, &str)]) -> Chart {
        load_files(
            files
                .iter()
                .map(|(n, d)| ChartFile { name: n.to_string(), data: d.as_bytes().to_vec() })
                .collect(),
        )
        .unwrap()
    }

    fn obj(v: Json) -> Values {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn null_deletes_chart_defaults_and_globals_flow_down() {
        let c = chart(&[
            ("Chart.yaml", "apiVersion: v2\nname: top\nversion: 1.0.0\n"),
            ("values.yaml", "a: 1\nb: {c: 2, d: 3}\nglobal: {g: 1}\n"),
            ("charts/sub/Chart.yaml", "apiVersion: v2\nname: sub\nversion: 1.0.0\n"),
            ("charts/sub/values.yaml", "x: 1\nglobal: {g: 2, h: 3}\n"),
        ]);
        let out = coalesce_values(&c, &obj(json!({"a": null, "b": {"c": null}})), false);
        assert_eq!(
            Json::Object(out),
            json!({"b": {"d": 3.0}, "global": {"g": 1.0}, "sub": {"x": 1.0, "global": {"g": 1.0, "h": 3.0}}})
        );
    }

    #[test]
    fn conditions_tags_and_aliases() {
        let mut c = chart(&[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: top\nversion: 1.0.0\ndependencies:\n- name: sub\n  version: 1.0.0\n  condition: sub.enabled\n- name: sub\n  alias: other\n  version: 1.0.0\n  tags: [t]\n",
            ),
            ("values.yaml", "sub: {enabled: false}\ntags: {t: true}\n"),
            ("charts/sub/Chart.yaml", "apiVersion: v2\nname: sub\nversion: 1.0.0\n"),
        ]);
        process_dependencies(&mut c, &Map::new());
        let names: Vec<&str> = c.subcharts.iter().map(Chart::name).collect();
        assert_eq!(names, vec!["other"]);
    }

    #[test]
    fn import_values_exports_and_child_parent() {
        let mut c = chart(&[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: top\nversion: 1.0.0\ndependencies:\n- name: sub\n  version: 1.0.0\n  import-values: [data, {child: deep.x, parent: fromchild}]\n",
            ),
            ("values.yaml", "a: 1\n"),
            ("charts/sub/Chart.yaml", "apiVersion: v2\nname: sub\nversion: 1.0.0\n"),
            ("charts/sub/values.yaml", "exports: {data: {imported: yes}}\ndeep: {x: {k: v}}\n"),
        ]);
        process_dependencies(&mut c, &Map::new());
        assert_eq!(c.values.get("imported"), Some(&json!(true)));
        assert_eq!(c.values.get("fromchild"), Some(&json!({"k": "v"})));
    }
}
