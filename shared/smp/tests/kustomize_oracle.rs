//! Compare `merge` with recorded `kubectl kustomize` (v5.5.0) outputs, `tests/data/kustomize-oracle.jsonl`.

use serde_json::Value;
use sluice_smp::{Schema, merge};

#[test]
fn matches_kustomize_outputs() {
    check_oracle(include_str!("data/kustomize-oracle.jsonl"), Schema::builtin(), 250);
}

#[test]
fn matches_kustomize_outputs_with_custom_openapi() {
    let doc: Value =
        serde_json::from_str(include_str!("data/crd-openapi.json")).expect("schema is JSON");
    // kustomize's `openapi: path:` replaces the built-in schema.
    let schema = Schema::from_openapi(&doc).expect("schema loads");
    check_oracle(include_str!("data/kustomize-oracle-crd.jsonl"), &schema, 80);
}

fn check_oracle(data: &str, schema: &Schema, min_cases: usize) {
    let mut failures = Vec::new();
    let mut n_cases = 0;
    for line in data.lines() {
        let case: Value = serde_json::from_str(line).expect("oracle line is JSON");
        n_cases += 1;
        let got = merge(&case["original"], &case["patch"], schema);
        let expected = &case["expected"];
        let same = match &got {
            Ok(Some(value)) => value == expected,
            Ok(None) => expected.is_null(),
            Err(_) => false,
        };
        if !same {
            failures.push(format!(
                "original: {}\npatch:    {}\nexpected: {expected}\ngot:      {got:?}",
                case["original"], case["patch"]
            ));
        }
    }
    assert!(n_cases >= min_cases, "oracle file truncated: {n_cases} cases");
    assert!(
        failures.is_empty(),
        "{} of {n_cases} differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
