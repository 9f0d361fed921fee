//! Runs the kustomize conformance corpus (`../shared/kustomize-conformance`) in-process and checks
//! the results against `tests/known-failures.txt`; set `KUSTOMIZE_CONFORMANCE_FILTER` to run some cases.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice_kustomize::{BuildOptions, DiskFileSystem, build_with_options, parse_documents};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kustomize-conformance")
}

/// Normalises a document for comparison the way the runner's PyYAML loader sees it.
fn normalise(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), normalise(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            if f == f.trunc() && f.abs() < 1e15 { Value::from(f as i64) } else { v.clone() }
        }
        other => other.clone(),
    }
}

fn run_case(case: &Path) -> Result<(), String> {
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(case.join("case.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let entry = meta.get("entry").and_then(Value::as_str).unwrap_or(".");
    let input = std::path::absolute(case.join("input")).map_err(|e| e.to_string())?;
    let options = BuildOptions { root: Some(input.clone()) };
    let result = build_with_options(&DiskFileSystem, &input.join(entry), &options);
    if case.join("expected-error.txt").exists() {
        return match result {
            Ok(_) => Err("expected an error, build succeeded".into()),
            Err(_) => Ok(()),
        };
    }
    let objects = result.map_err(|e| format!("build failed: {e}"))?;
    let expected_text =
        std::fs::read_to_string(case.join("expected.yaml")).map_err(|e| e.to_string())?;
    let expected: Vec<Value> = parse_documents(&expected_text)?.iter().map(normalise).collect();
    let actual: Vec<Value> =
        parse_documents(&sluice_kustomize::to_yaml(&objects))?.iter().map(normalise).collect();
    if expected.len() != actual.len() {
        return Err(format!("document count: expected {}, got {}", expected.len(), actual.len()));
    }
    for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
        if e != a {
            return Err(format!("doc {} differs:\n  expected: {e}\n  actual:   {a}", i + 1));
        }
    }
    Ok(())
}

#[test]
fn kustomize_conformance() {
    let corpus = corpus_dir();
    if !corpus.is_dir() {
        println!("kustomize conformance: skipped, no corpus at {}", corpus.display());
        return;
    }
    let filter = std::env::var("KUSTOMIZE_CONFORMANCE_FILTER").ok();
    let known: BTreeSet<String> = include_str!("known-failures.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("corpus dir is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.json").is_file())
        .collect();
    cases.sort();
    let (mut passed, mut failed) = (0, 0);
    let mut regressions = Vec::new();
    let mut fixed = Vec::new();
    for case in &cases {
        let name = case.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let outcome =
            std::panic::catch_unwind(|| run_case(case)).unwrap_or_else(|_| Err("panicked".into()));
        match outcome {
            Ok(()) => {
                passed += 1;
                if known.contains(&name) {
                    fixed.push(name);
                }
            }
            Err(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
                if !known.contains(&name) {
                    regressions.push(name);
                }
            }
        }
    }
    println!("kustomize conformance: {passed} passed, {failed} failed");
    assert!(
        regressions.is_empty(),
        "cases failing that are not in tests/known-failures.txt: {regressions:?}"
    );
    if filter.is_none() {
        assert!(
            fixed.is_empty(),
            "cases now passing: remove them from tests/known-failures.txt: {fixed:?}"
        );
    }
}
