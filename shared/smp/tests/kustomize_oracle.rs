//! Compare `merge` with recorded `kubectl kustomize` (v5.5.0) outputs, `tests/data/kustomize-oracle.jsonl`.

use serde_json::Value;
use sluice_smp::{Schema, merge};

#[test]
fn matches_kustomize_outputs() {
    let data = include_str!("data/kustomize-oracle.jsonl");
    let mut failures = Vec::new();
    let mut n_cases = 0;
    for line in data.lines() {
        let case: Value = serde_json::from_str(line).expect("oracle line is JSON");
        n_cases += 1;
        let got = merge(&case["original"], &case["patch"], Schema::builtin());
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
    assert!(n_cases >= 200, "oracle file truncated: {n_cases} cases");
    assert!(
        failures.is_empty(),
        "{} of {n_cases} differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
