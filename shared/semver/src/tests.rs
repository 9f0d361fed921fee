//! Table tests of Masterminds semantics, written after the behaviour of its test tables.

use crate::{Constraints, Error, Version};

#[track_caller]
fn check(constraint: &str, version: &str, expected: bool) {
    let constraints = Constraints::parse(constraint)
        .unwrap_or_else(|e| panic!("constraint {constraint:?} does not parse: {e}"));
    let v = Version::parse(version).unwrap_or_else(|e| panic!("version {version:?}: {e}"));
    assert_eq!(constraints.check(&v), expected, "{constraint:?} on {version:?}");
    // `validate` agrees with `check`.
    assert_eq!(
        constraints.validate(&v).is_ok(),
        expected,
        "validate {constraint:?} on {version:?}"
    );
}

#[track_caller]
fn parse_ok(text: &str, display: &str) {
    let v = Version::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"));
    assert_eq!(v.to_string(), display, "{text:?}");
    assert_eq!(v.original(), text);
}

#[track_caller]
fn parse_err(text: &str, error: Error) {
    assert_eq!(Version::parse(text).map(|v| v.to_string()), Err(error), "{text:?}");
}

#[track_caller]
fn strict(text: &str, expected: Result<&str, Error>) {
    assert_eq!(
        Version::parse_strict(text).map(|v| v.to_string()),
        expected.map(str::to_owned),
        "{text:?}"
    );
}

#[track_caller]
fn order(a: &str, b: &str, expected: i32) {
    let (x, y) = (Version::parse(a).unwrap(), Version::parse(b).unwrap());
    assert_eq!(x.compare(&y), expected, "{a} vs {b}");
    assert_eq!(y.compare(&x), -expected, "{b} vs {a}");
}

#[test]
fn lenient_parsing() {
    parse_ok("1.2.3", "1.2.3");
    parse_ok("v1.2.3", "1.2.3");
    parse_ok("1.2", "1.2.0");
    parse_ok("v1", "1.0.0");
    parse_ok("1.0", "1.0.0");
    parse_ok("1.2.3-beta.1+build.5", "1.2.3-beta.1+build.5");
    parse_ok("1.2-5", "1.2.0-5");
    parse_ok("1.2-beta.5", "1.2.0-beta.5");
    parse_ok("1.2.0-x.Y.0+metadata", "1.2.0-x.Y.0+metadata");
    parse_ok("1.2.0-x.Y.0+metadata-width-hypen", "1.2.0-x.Y.0+metadata-width-hypen");
    parse_ok("1.2.3-rc1-with-hypen", "1.2.3-rc1-with-hypen");
    // Leading zeros in the numbers are accepted (calendar versions).
    parse_ok("01.02.03", "1.2.3");
    parse_ok("2024.01.05", "2024.1.5");
    parse_ok("1.2.3+0001", "1.2.3+0001");
    parse_ok("1.2.3-alpha.0.1", "1.2.3-alpha.0.1");
}

#[test]
fn lenient_parsing_errors() {
    parse_err("", Error::InvalidSemVer);
    parse_err("1.2.3.4", Error::InvalidSemVer);
    parse_err("v", Error::InvalidSemVer);
    parse_err("a.b.c", Error::InvalidSemVer);
    parse_err("1.2.3 ", Error::InvalidSemVer);
    parse_err("V1.2.3", Error::InvalidSemVer);
    parse_err("1.2.3-", Error::InvalidSemVer);
    parse_err("1.2.3-beta..1", Error::InvalidSemVer);
    parse_err("1.2.3-01", Error::SegmentStartsZero);
    parse_err("1.2.3-alpha.01", Error::SegmentStartsZero);
    parse_err("1.2.3+", Error::InvalidSemVer);
    parse_err("1.2.3-beta!", Error::InvalidSemVer);
    parse_err(
        "99999999999999999999.0.0",
        Error::SegmentOutOfRange { segment: "99999999999999999999".into() },
    );
}

#[test]
fn strict_parsing() {
    strict("1.2.3", Ok("1.2.3"));
    strict("1.2.3-beta.1+b.2", Ok("1.2.3-beta.1+b.2"));
    strict("0.0.0", Ok("0.0.0"));
    strict("", Err(Error::Empty));
    strict("1.2", Err(Error::InvalidSemVer));
    strict("v1.2.3", Err(Error::InvalidCharacters));
    strict("01.2.3", Err(Error::SegmentStartsZero));
    strict("1.02.3", Err(Error::SegmentStartsZero));
    strict("1.2.3-01", Err(Error::SegmentStartsZero));
    strict("1.2.3-be$ta", Err(Error::InvalidPrerelease));
    strict("1.2.3+me..ta", Err(Error::InvalidMetadata));
    strict("1.2.x", Err(Error::InvalidCharacters));
}

#[test]
fn precedence() {
    order("1.2.3", "1.2.3", 0);
    order("v1.2.3", "1.2.3+build", 0);
    order("1.2.3", "1.2.4", -1);
    order("1.2.3", "1.3.0", -1);
    order("2.0.0", "1.9.9", 1);
    order("1.2.3-alpha", "1.2.3", -1);
    order("1.2.3-alpha", "1.2.3-alpha.1", -1);
    order("1.2.3-alpha.1", "1.2.3-alpha.beta", -1);
    order("1.2.3-alpha.beta", "1.2.3-beta", -1);
    order("1.2.3-beta.2", "1.2.3-beta.11", -1);
    order("1.2.3-beta.11", "1.2.3-rc.1", -1);
    order("1.2.3-1", "1.2.3-alpha", -1);
    order("1.0.0-alpha", "1.0.0-alpha", 0);
    order("1.2", "1.2.0", 0);
    let mut list: Vec<Version> = ["1.2.3", "1.0", "1.3", "2", "0.4.2", "1.2.3-beta"]
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    list.sort();
    let sorted: Vec<String> = list.iter().map(|v| v.to_string()).collect();
    assert_eq!(sorted, ["0.4.2", "1.0.0", "1.2.3-beta", "1.2.3", "1.3.0", "2.0.0"]);
}

#[test]
fn increments() {
    let inc = |f: fn(&Version) -> Option<Version>, v: &str| f(&Version::parse(v).unwrap()).unwrap();
    assert_eq!(inc(Version::inc_patch, "1.2.3").to_string(), "1.2.4");
    assert_eq!(inc(Version::inc_patch, "1.2.3-beta+m").to_string(), "1.2.3");
    assert_eq!(inc(Version::inc_minor, "v1.2.3").original(), "v1.3.0");
    assert_eq!(inc(Version::inc_major, "1.2.3-beta").to_string(), "2.0.0");
    assert!(Version::new(u64::MAX, 0, 0, "", "").inc_major().is_none());
}

#[test]
fn comparison_operators() {
    check("= 2.0", "1.2.3", false);
    check("= 2.0", "2.0.0", true);
    check("=2.0.0", "2.0.0+build", true);
    check("4.1", "4.1.0", true);
    check("4.1", "4.1.7", true);
    check("4.1", "4.2.0", false);
    check("4.1.3", "4.1.3", true);
    check("4.1.3", "4.1.4", false);
    check("!=4.1", "4.1.0", false);
    check("!=4.1", "5.1.0", true);
    check("!=4.x", "5.1.0", true);
    check("!=4.x", "4.1.0", false);
    check("!=4.1.x", "4.2.0", true);
    check("!=4.2.x", "4.2.3", false);
    check("!=4.1-alpha", "4.1.0-alpha", false);
    check("!=4.1-alpha", "4.1.0", true);
    check(">1.1", "4.1.0", true);
    check(">1.1", "1.1.0", false);
    check(">1.1", "1.1.1", false);
    check(">1.1.0", "1.1.1", true);
    check(">1.x", "1.9.0", false);
    check(">1.x", "2.0.0", true);
    check("<1.1", "0.1.0", true);
    check("<1.1", "1.1.0", false);
    check("<1.x", "0.1.1", true);
    check("<1.x", "1.1.1", false);
    check("<1.1.x", "1.0.500", true);
    check("<1.1.x", "1.1.500", false);
    check(">=1.1", "1.1.0", true);
    check(">=1.1", "0.0.9", false);
    check("=>1.1", "1.1.0", true);
    check("<=1.1", "1.1.0", true);
    check("<=1.1", "1.1.1", true);
    check("<=1.1.0", "1.1.1", false);
    check("<=1.x", "1.1.0", true);
    check("<=2.x", "3.0.0", false);
    check("<=1.1.x", "1.2.500", false);
    check("=<4.5", "4.6.3", false);
    check("<=4.5", "3.7.0", true);
}

#[test]
fn wildcards_tilde_and_caret() {
    check("*", "1.2.3", true);
    check("x", "0.0.1", true);
    check("1.x", "1.4", true);
    check("1.X", "2.0.0", false);
    check("1.2.*", "1.2.9", true);
    check("0.x.x", "1.2.3", false);
    check("~0.0.0", "1.2.3", true);
    check("~*", "2.1.1", true);
    check("~1", "1.3.5", true);
    check("~1", "2.1.1", false);
    check("~1.x", "1.3.5", true);
    check("~1.1", "1.1.1", true);
    check("~1.1", "1.2.3", false);
    check("~1.2.3", "1.2.5", true);
    check("~1.2.3", "1.2.2", false);
    check("~1.2.3", "1.3.2", false);
    check("~>1.2.3", "1.2.9", true);
    check("~1.1-alpha", "1.1.1-beta", true);
    check("~1.1.1-beta", "1.1.1-alpha", false);
    check("~1.1.1-beta", "1.1.1", true);
    check("^1.1", "1.1.1", true);
    check("^1.1", "1.9.0", true);
    check("^1.1", "2.0.0", false);
    check("^1.x", "1.1.1", true);
    check("^2.x", "1.1.1", false);
    check("^0.2.3", "0.2.9", true);
    check("^0.2.3", "0.3.0", false);
    check("^0.0.3", "0.0.3", true);
    check("^0.0.3", "0.0.4", false);
    check("^0.0", "0.0.9", true);
    check("^0.0", "0.1.0", false);
    check("^0", "0.9.0", true);
    check("^0", "1.0.0", false);
    check("^0.0.0", "1.2.3", false);
    check("^1.1.2-alpha", "1.2.1-beta1", true);
    check("^1.2.x-alpha", "1.1.1-beta1", false);
}

#[test]
fn and_or_and_ranges() {
    check(">1.1, <2", "1.2.1", true);
    check(">1.1, <2", "1.1.1", false);
    check(">1.1 <2", "1.2.1", true);
    check(">1.1    <3", "4.3.2", false);
    check(">= 1.1, <     2, != 1.2.3", "1.2.3", false);
    check(">=1.1 <2 !=1.2.3 || > 3", "4.1.2", true);
    check(">=1.1 <2 !=1.2.3 || > 3", "3.0.0", false);
    check(">=1.1 <2 !=1.2.3 || >= 3", "3.0.0", true);
    check(">=1.2 <2 || ^3.0", "3.5.0", true);
    check("1.1 - 2", "1.1.1", true);
    check("1.1 - 2", "2.9.0", true);
    check("1.1 - 2", "3.0.0", false);
    check("1.5.0 - 4.5", "3.7.0", true);
    check("1.2 - 1.4.5", "1.4.6", false);
    check("1.0.0 - 2.0.0 <=2.0.0", "1.5.0", true);
    check("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", true);
    check("v1.2.3 - v1.4", "1.3.0", true);
    // Without spaces a hyphen starts a pre-release: `1.1-3` is `~1.1.0-3`.
    check("1.1-3", "4.3.2", false);
}

#[test]
fn prereleases_need_a_prerelease_constraint() {
    check(">=1.1", "4.1.0-beta", false);
    check("<=1.1", "0.1.0-alpha", false);
    check("<=1.1-a", "0.1.0-alpha", true);
    check("^1.x", "1.1.1-beta1", false);
    check("~1.1", "1.1.1-alpha", false);
    check(">= 1.0.0  <= 2.0.0-beta", "1.0.1-beta", true);
    check(">= 1.0.0  <= 2.0.0-beta || > 3", "3.0.1-beta", false);
    check(">= 1.0.0  <= 2.0.0-beta != 1.0.1-beta || > 3", "1.0.1-beta", false);
    check(">= 1.0.0-0  <= 2.0.0", "1.0.1-beta", true);
    check(">=1.0.0-0", "2.0.0-rc.1", true);
    check("*", "1.0.0-alpha", false);
    let mut constraints = Constraints::parse(">=1.0").unwrap();
    constraints.include_prerelease = true;
    assert!(constraints.check(&Version::parse("1.2.0-rc.1").unwrap()));
    assert!(!constraints.check(&Version::parse("0.9.0-rc.1").unwrap()));
}

#[test]
fn improper_constraints() {
    for bad in ["", "   ", ">", "foo", "1.2.3.4", ">=1.2 <", "1.2 && 1.3", ">= 1.2 ||", "1||2||"] {
        let err = Constraints::parse(bad).unwrap_err();
        assert!(matches!(err, Error::ImproperConstraint { .. }), "{bad:?}: {err}");
    }
    assert_eq!(Constraints::parse("foo").unwrap_err().to_string(), r#"improper constraint: "foo""#);
    assert!(matches!(Constraints::parse("1|2"), Err(Error::ConstraintVersion { .. })));
    // Only ASCII whitespace separates, as Go's `\s`.
    assert!(Constraints::parse(">=1.0\u{a0}<2").is_err());
    assert!(Constraints::parse(">=1.0\t<2").is_ok());
}

#[test]
fn display() {
    let show = |c: &str| Constraints::parse(c).unwrap().to_string();
    assert_eq!(show(">= 1.1, <2 || ~3"), ">=1.1 <2 || ~3");
    assert_eq!(show("1.2 - 1.4.5"), ">=1.2 <=1.4.5");
    assert_eq!(show("^v1.x"), "^v1.x");
}

#[test]
fn validate_gives_masterminds_reasons() {
    let reasons = |c: &str, v: &str| {
        Constraints::parse(c).unwrap().validate(&Version::parse(v).unwrap()).unwrap_err()
    };
    assert_eq!(reasons("<1.1", "1.1.0"), [r#""1.1.0" is greater than or equal to "1.1""#]);
    assert_eq!(reasons(">=2", "1.2.3"), [r#""1.2.3" is less than "2""#]);
    assert_eq!(reasons("!=1.2.3", "1.2.3"), [r#""1.2.3" is equal to "1.2.3""#]);
    assert_eq!(
        reasons("~1.2", "1.3.0"),
        [r#""1.3.0" does not have same major and minor version as "1.2""#]
    );
    assert_eq!(reasons("^1.2", "2.0.0"), [r#""2.0.0" does not have same major version as "1.2""#]);
    assert_eq!(reasons("1.2.3", "1.2.4"), [r#""1.2.4" is not equal to "1.2.3""#]);
    assert_eq!(
        reasons(">=1 <2", "2.0.0-beta"),
        [
            r#""2.0.0-beta" is a prerelease version and the constraint is only looking for release versions"#
        ]
    );
    assert_eq!(
        reasons(">2 || <1", "1.5.0"),
        [r#""1.5.0" is less than or equal to "2""#, r#""1.5.0" is greater than or equal to "1""#]
    );
    assert!(Constraints::parse(">1").unwrap().validate(&Version::parse("2").unwrap()).is_ok());
}

#[test]
fn matches_parses_leniently() {
    let c = Constraints::parse(">=1.20.0-0").unwrap();
    assert_eq!(c.matches("v1.21.3-gke.100"), Ok(true));
    assert_eq!(c.matches("v1.19.0"), Ok(false));
    assert!(c.matches("not-a-version").is_err());
}

#[test]
fn to_semver_keeps_parts() {
    let v = Version::parse("v1.2-rc.1+b5").unwrap().to_semver().unwrap();
    assert_eq!(v.to_string(), "1.2.0-rc.1+b5");
}
