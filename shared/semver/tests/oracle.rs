//! Compare with outputs of Masterminds semver v3.4.0 recorded in `tests/data/masterminds-oracle.tsv`.

use sluice_semver::{Constraints, Version};

/// The line our implementation would print for a case, in the oracle's format.
fn evaluate(constraint: &str, version: &str) -> String {
    let Ok(constraints) = Constraints::parse(constraint) else {
        return "CERR".to_owned();
    };
    let Ok(version) = Version::parse(version) else {
        return "VERR".to_owned();
    };
    let (ok, reasons) = match constraints.validate(&version) {
        Ok(()) => (true, Vec::new()),
        Err(reasons) => (false, reasons),
    };
    format!("{}\t{}\t{}\t{}", constraints.check(&version), ok, version, reasons.join("|"))
}

#[test]
fn matches_masterminds_outputs() {
    let data = include_str!("data/masterminds-oracle.tsv");
    let mut failures = Vec::new();
    let mut n_cases = 0;
    for line in data.lines() {
        let mut fields = line.splitn(3, '\t');
        let (Some(constraint), Some(version), Some(expected)) =
            (fields.next(), fields.next(), fields.next())
        else {
            panic!("malformed oracle line {line:?}");
        };
        n_cases += 1;
        let got = evaluate(constraint, version);
        if got != expected {
            failures.push(format!("{constraint:?} {version:?}\n  want {expected}\n  got  {got}"));
        }
    }
    assert!(n_cases > 1000, "oracle file truncated: {n_cases} cases");
    assert!(
        failures.is_empty(),
        "{} of {n_cases} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
