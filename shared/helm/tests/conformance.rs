//! Helm conformance corpus: render every case of `shared/helm-conformance` in-process and compare
//! with Helm's output the way the corpus runner does (a multiset of parsed documents keyed by
//! `# Source` path, kind and name; error cases must fail).
//!
//! `HELM_CONFORMANCE_FILTER=substring` limits the run; `HELM_CONFORMANCE_VERBOSE=1` prints diffs.
//! Cases listed in `tests/known-failures.txt` may fail; a listed case that passes fails the
//! test so the list is kept current.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use sluice_helm::{TemplateOptions, template_chart_dir};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/helm-conformance")
}

type DocKey = (String, String, String);

/// Split output into documents as run.sh does and canonicalise each one.
fn split_docs(text: &str) -> Vec<(DocKey, String, String)> {
    let mut raws: Vec<String> = vec![String::new()];
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end_matches('\n');
        let is_sep = if let Some(rest) = trimmed.strip_prefix("---") {
            let rest_trim = rest.trim_start_matches([' ', '\t']);
            rest_trim.is_empty() || rest_trim.starts_with('#') || rest.starts_with([' ', '\t'])
        } else {
            false
        };
        if is_sep {
            let rest = trimmed[3..].trim_start_matches([' ', '\t']);
            raws.push(String::new());
            if !rest.is_empty() && !rest.starts_with('#') {
                raws.last_mut().expect("pushed").push_str(rest);
                raws.last_mut().expect("pushed").push('\n');
            }
            continue;
        }
        raws.last_mut().expect("non-empty").push_str(line);
    }
    let mut docs = Vec::new();
    for raw in raws {
        let has_body =
            raw.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if !has_body {
            continue;
        }
        let source = raw
            .lines()
            .find_map(|l| {
                l.trim_start()
                    .strip_prefix('#')
                    .map(str::trim_start)
                    .and_then(|l| l.strip_prefix("Source:"))
            })
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let (canon, kind, name) = match sluice_helm::yaml::from_yaml(&raw) {
            Ok(value) => {
                let kind = value.get("kind").map(scalar_text).unwrap_or_default();
                let name = value
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .map(scalar_text)
                    .unwrap_or_default();
                (sluice_helm::encode::to_go_json(&value, false), kind, name)
            }
            Err(_) => (format!("UNPARSEABLE:{}", raw.trim()), String::new(), String::new()),
        };
        docs.push(((source, kind, name), canon, raw.trim().to_string()));
    }
    docs
}

fn scalar_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn compare(expected: &str, actual: &str, verbose: bool) -> Vec<String> {
    let e = split_docs(expected);
    let a = split_docs(actual);
    let mut counts: BTreeMap<(DocKey, String), i64> = BTreeMap::new();
    for (k, c, _) in &e {
        *counts.entry((k.clone(), c.clone())).or_default() += 1;
    }
    for (k, c, _) in &a {
        *counts.entry((k.clone(), c.clone())).or_default() -= 1;
    }
    let mut notes = Vec::new();
    for ((key, _), n) in counts {
        if n == 0 {
            continue;
        }
        let label = format!("{} {}/{}", key.0, key.1, key.2);
        notes.push(format!(
            "{} {label}",
            if n > 0 { "missing/differs:" } else { "unexpected/differs:" }
        ));
        if verbose && n > 0 {
            let exp = e.iter().find(|d| d.0 == key).map(|d| d.2.clone()).unwrap_or_default();
            let act = a.iter().find(|d| d.0 == key).map(|d| d.2.clone()).unwrap_or_default();
            for diff in similar_lines(&exp, &act).into_iter().take(40) {
                notes.push(format!("    {diff}"));
            }
        }
    }
    notes
}

fn similar_lines(expected: &str, actual: &str) -> Vec<String> {
    let el: Vec<&str> = expected.lines().collect();
    let al: Vec<&str> = actual.lines().collect();
    let mut out = Vec::new();
    for i in 0..el.len().max(al.len()) {
        let (x, y) = (el.get(i).copied(), al.get(i).copied());
        if x != y {
            out.push(format!("line {}: expected {:?}", i + 1, x.unwrap_or("<none>")));
            out.push(format!("line {}:   actual {:?}", i + 1, y.unwrap_or("<none>")));
            if out.len() > 6 {
                break;
            }
        }
    }
    out
}

fn run_case(case_dir: &Path) -> Result<(), Vec<String>> {
    let meta: Json = serde_json::from_str(
        &std::fs::read_to_string(case_dir.join("case.json")).map_err(|e| vec![e.to_string()])?,
    )
    .map_err(|e| vec![e.to_string()])?;
    let mut options = TemplateOptions {
        release_name: meta.get("release").and_then(Json::as_str).unwrap_or("demo").to_string(),
        namespace: meta.get("namespace").and_then(Json::as_str).unwrap_or("prod").to_string(),
        skip_tests: meta.get("skip_tests").and_then(Json::as_bool).unwrap_or(false),
        kube_version: meta.get("kube_version").and_then(Json::as_str).map(str::to_string),
        ..TemplateOptions::default()
    };
    if let Some(Json::Array(list)) = meta.get("api_versions") {
        options.api_versions = list.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
    }
    options.values_files.push(case_dir.join("values.yaml"));
    let chart_dir = case_dir.join("chart");
    let outcome = std::panic::catch_unwind(|| template_chart_dir(&chart_dir, &options));
    let expect_error = case_dir.join("expected-error.txt").exists();
    let verbose = std::env::var("HELM_CONFORMANCE_VERBOSE").is_ok();
    match outcome {
        Err(_) => Err(vec!["panicked".to_string()]),
        Ok(Err(err)) if expect_error => {
            let _ = err;
            Ok(())
        }
        Ok(Err(err)) => Err(vec![format!("error: {err}")]),
        Ok(Ok(_)) if expect_error => {
            Err(vec!["expected an error, rendered successfully".to_string()])
        }
        Ok(Ok(output)) => {
            let expected = std::fs::read_to_string(case_dir.join("expected.yaml"))
                .map_err(|e| vec![e.to_string()])?;
            if output == expected {
                return Ok(());
            }
            let notes = compare(&expected, &output, verbose);
            if notes.is_empty() { Ok(()) } else { Err(notes) }
        }
    }
}

#[test]
fn helm_conformance() {
    let corpus = corpus_dir();
    if !corpus.is_dir() {
        println!("helm conformance: corpus {} not found, skipped", corpus.display());
        return;
    }
    let filter = std::env::var("HELM_CONFORMANCE_FILTER").ok();
    let known_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/known-failures.txt"),
    )
    .unwrap_or_default();
    let known: Vec<&str> = known_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("read corpus")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    cases.sort();
    let (mut passed, mut failed) = (0, 0);
    let mut regressions = Vec::new();
    let mut fixed = Vec::new();
    for case in &cases {
        let name = case.file_name().expect("dir name").to_string_lossy().into_owned();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        match run_case(case) {
            Ok(()) => {
                passed += 1;
                if known.contains(&name.as_str()) {
                    fixed.push(name);
                }
            }
            Err(notes) => {
                failed += 1;
                println!("FAIL {name}");
                for note in notes.iter().take(30) {
                    println!("    {note}");
                }
                if !known.contains(&name.as_str()) {
                    regressions.push(name);
                }
            }
        }
    }
    println!("helm conformance: {passed} passed, {failed} failed");
    if filter.is_none() {
        assert!(
            fixed.is_empty(),
            "these cases now pass; remove them from shared/helm/tests/known-failures.txt: {fixed:?}"
        );
    }
    assert!(
        regressions.is_empty(),
        "cases failing that are not in known-failures.txt: {regressions:?}"
    );
}
