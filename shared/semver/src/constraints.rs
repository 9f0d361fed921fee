//! Masterminds constraints: parsing, checking and validation with reasons.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use regex::Regex;

use crate::version::compare_prerelease;
use crate::{Error, Version};

/// Comparison operators, most specific alternatives placed so that leftmost-first matching
/// (Go's and `regex`'s) picks the same operator as Masterminds.
const OPERATORS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

/// A version inside a constraint: wildcards (`x`, `X`, `*`) allowed in the numbers. The
/// character class also admits `|`, as Masterminds' does; such versions fail to parse later.
fn constraint_version_pattern() -> String {
    let num = r"[0-9|xX*]+";
    let ident = r"[0-9A-Za-z-]+";
    format!(r"v?({num})(\.{num})?(\.{num})?(-{ident}(?:\.{ident})*)?(\+{ident}(?:\.{ident})*)?")
}

struct Patterns {
    /// One constraint, anchored: operator then version.
    single: Regex,
    /// A hyphen range `A - B`.
    range: Regex,
    /// Constraints inside an AND group.
    find: Regex,
    /// A whole AND group: constraints separated by spaces or commas.
    group: Regex,
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let cv = constraint_version_pattern();
        let ops = OPERATORS;
        // Go's `\s` is ASCII whitespace without `\v`; Rust's would also take Unicode spaces.
        let ws = r"[\t\n\f\r ]";
        let build = |p: String| Regex::new(&p).expect("static constraint pattern is valid");
        Patterns {
            single: build(format!(r"^{ws}*({ops}){ws}*({cv}){ws}*$")),
            range: build(format!(r"{ws}*({cv}){ws}+-{ws}+({cv}){ws}*")),
            find: build(format!(r"({ops}){ws}*({cv})")),
            group: build(format!(
                r"^(?:{ws}*(?:{ops}){ws}*(?:{cv}){ws}*)(?:(?:{ws}+|,{ws}*)(?:{ops}){ws}*(?:{cv}){ws}*)*$"
            )),
        }
    })
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    /// `=`, or no operator: exact, or tilde-like when the version has wildcards.
    TildeOrEqual,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

impl Operator {
    fn parse(text: &str) -> Option<Operator> {
        Some(match text {
            "" | "=" => Operator::TildeOrEqual,
            "!=" => Operator::NotEqual,
            ">" => Operator::Greater,
            "<" => Operator::Less,
            ">=" | "=>" => Operator::GreaterEqual,
            "<=" | "=<" => Operator::LessEqual,
            "~" | "~>" => Operator::Tilde,
            "^" => Operator::Caret,
            _ => return None,
        })
    }
}

/// One comparison, e.g. `>=1.2` or `~1.x`.
#[derive(Debug, Clone)]
struct Constraint {
    operator: Operator,
    /// The operator as written, for display.
    operator_text: String,
    /// The version as written (`1.x`), for messages and display.
    original: String,
    /// The version with wildcards and missing parts as zeros.
    version: Version,
    /// Some part is a wildcard or missing.
    dirty: bool,
    /// The minor (and so the patch) is a wildcard or missing.
    minor_dirty: bool,
    /// Only the patch is a wildcard or missing.
    patch_dirty: bool,
}

fn is_wildcard(text: &str) -> bool {
    matches!(text, "x" | "X" | "*")
}

/// Why a version does not satisfy one constraint: Masterminds' message.
type Reason = String;

impl Constraint {
    fn parse(text: &str) -> Result<Constraint, Error> {
        let improper = || Error::ImproperConstraint { constraint: text.to_owned() };
        let captures = patterns().single.captures(text).ok_or_else(improper)?;
        let group = |idx: usize| captures.get(idx).map_or("", |m| m.as_str());
        let operator_text = group(1);
        let operator = Operator::parse(operator_text).ok_or_else(improper)?;
        let (major, minor, patch, pre) = (group(3), group(4), group(5), group(6));
        let minor_digits = minor.trim_start_matches('.');
        let patch_digits = patch.trim_start_matches('.');
        let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
        let version_text = if is_wildcard(major) {
            dirty = true;
            format!("0.0.0{pre}")
        } else if minor.is_empty() || is_wildcard(minor_digits) {
            dirty = true;
            minor_dirty = true;
            format!("{major}.0.0{pre}")
        } else if patch.is_empty() || is_wildcard(patch_digits) {
            dirty = true;
            patch_dirty = true;
            format!("{major}{minor}.0{pre}")
        } else {
            group(2).to_owned()
        };
        let version = Version::parse(&version_text)
            .map_err(|_| Error::ConstraintVersion { constraint: text.to_owned() })?;
        Ok(Constraint {
            operator,
            operator_text: operator_text.to_owned(),
            original: group(2).to_owned(),
            version,
            dirty,
            minor_dirty,
            patch_dirty,
        })
    }

    /// Whether `v` satisfies this constraint; `include_pre` when the group admits pre-releases.
    fn check(&self, v: &Version, include_pre: bool) -> Result<(), Reason> {
        let c = &self.version;
        let orig = &self.original;
        if !v.prerelease().is_empty() && !include_pre {
            return Err(format!(
                "{:?} is a prerelease version and the constraint is only looking for release versions",
                v.to_string()
            ));
        }
        let vs = v.to_string();
        let fail = |what: &str| Err(format!("{vs:?} {what} {orig:?}"));
        match self.operator {
            Operator::NotEqual => {
                if self.dirty {
                    if c.major() != v.major() {
                        return Ok(());
                    }
                    if c.minor() != v.minor() && !self.minor_dirty {
                        return Ok(());
                    } else if self.minor_dirty {
                        return fail("is equal to");
                    } else if c.patch() != v.patch() && !self.patch_dirty {
                        return Ok(());
                    } else if self.patch_dirty {
                        if (!v.prerelease().is_empty() || !c.prerelease().is_empty())
                            && compare_prerelease(v.prerelease(), c.prerelease()) != Ordering::Equal
                        {
                            return Ok(());
                        }
                        return fail("is equal to");
                    }
                }
                if v == c { fail("is equal to") } else { Ok(()) }
            }
            Operator::Greater => {
                let greater = if !self.dirty {
                    v > c
                } else if v.major() != c.major() {
                    v.major() > c.major()
                } else if self.minor_dirty {
                    false
                } else if self.patch_dirty {
                    v.minor() > c.minor()
                } else {
                    v > c
                };
                if greater { Ok(()) } else { fail("is less than or equal to") }
            }
            Operator::Less => {
                if v < c {
                    Ok(())
                } else {
                    fail("is greater than or equal to")
                }
            }
            Operator::GreaterEqual => {
                if v >= c {
                    Ok(())
                } else {
                    fail("is less than")
                }
            }
            Operator::LessEqual => {
                let within = if !self.dirty {
                    v <= c
                } else if v.major() > c.major() {
                    false
                } else {
                    !(v.major() == c.major() && v.minor() > c.minor() && !self.minor_dirty)
                };
                if within { Ok(()) } else { fail("is greater than") }
            }
            Operator::Tilde => self.check_tilde(v, &fail),
            Operator::TildeOrEqual => {
                if self.dirty {
                    self.check_tilde(v, &fail)
                } else if v == c {
                    Ok(())
                } else {
                    fail("is not equal to")
                }
            }
            Operator::Caret => {
                if v < c {
                    return fail("is less than");
                }
                if c.major() > 0 || self.minor_dirty {
                    return if v.major() == c.major() {
                        Ok(())
                    } else {
                        fail("does not have same major version as")
                    };
                }
                if v.major() > 0 {
                    return fail("does not have same major version as");
                }
                if c.minor() > 0 || self.patch_dirty {
                    return if v.minor() == c.minor() {
                        Ok(())
                    } else {
                        Err(format!(
                            "{vs:?} does not have same minor version as {orig:?}. Expected minor versions to match when constraint major version is 0"
                        ))
                    };
                }
                if v.minor() > 0 {
                    return fail("does not have same minor version as");
                }
                if v.patch() == c.patch() {
                    Ok(())
                } else {
                    Err(format!(
                        "{vs:?} does not equal {orig:?}. Expect version and constraint to equal when major and minor versions are 0"
                    ))
                }
            }
        }
    }

    fn check_tilde(
        &self,
        v: &Version,
        fail: &dyn Fn(&str) -> Result<(), Reason>,
    ) -> Result<(), Reason> {
        let c = &self.version;
        if v < c {
            return fail("is less than");
        }
        // `~0`, `~*` and `*` admit everything from 0.0.0.
        if c.major() == 0
            && c.minor() == 0
            && c.patch() == 0
            && !self.minor_dirty
            && !self.patch_dirty
        {
            return Ok(());
        }
        if v.major() != c.major() {
            return fail("does not have same major version as");
        }
        if v.minor() != c.minor() && !self.minor_dirty {
            return fail("does not have same major and minor version as");
        }
        Ok(())
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.operator_text, self.original)
    }
}

/// A Masterminds constraint expression: `||`-separated groups of comparisons ANDed by spaces or
/// commas, e.g. `>=1.2 <2 || ^3.0`, `1.2 - 1.4.5`, `~1.x`.
#[derive(Debug, Clone)]
pub struct Constraints {
    groups: Vec<Group>,
    /// Admit pre-release versions in every group (Masterminds' `IncludePrerelease`).
    pub include_prerelease: bool,
}

#[derive(Debug, Clone)]
struct Group {
    constraints: Vec<Constraint>,
    /// Some constraint of the group names a pre-release, so the group admits pre-releases.
    has_prerelease: bool,
}

/// Replace each hyphen range `A - B` by `>= A, <= B`.
fn rewrite_ranges(text: &str) -> String {
    let range = &patterns().range;
    let mut out = text.to_owned();
    let replacements: Vec<(String, String)> = range
        .captures_iter(text)
        .map(|c| {
            let whole = c.get(0).map_or("", |m| m.as_str()).to_owned();
            let from = c.get(1).map_or("", |m| m.as_str());
            // The second version's group number follows the first version's six groups.
            let to = c.get(7).map_or("", |m| m.as_str());
            (whole, format!(">= {from}, <= {to} "))
        })
        .collect();
    for (whole, replacement) in replacements {
        out = out.replacen(&whole, &replacement, 1);
    }
    out
}

impl Constraints {
    /// Parse a constraint expression, as Masterminds' `NewConstraint`.
    ///
    /// # Errors
    /// [`Error::ImproperConstraint`] naming the group that does not parse, or
    /// [`Error::ConstraintVersion`] when a version inside is invalid.
    pub fn parse(text: &str) -> Result<Constraints, Error> {
        let rewritten = rewrite_ranges(text);
        let mut groups = Vec::new();
        for part in rewritten.split("||") {
            if !patterns().group.is_match(part) {
                return Err(Error::ImproperConstraint { constraint: part.to_owned() });
            }
            let mut constraints = Vec::new();
            let mut found = patterns().find.find_iter(part).map(|m| m.as_str()).peekable();
            if found.peek().is_none() {
                constraints.push(Constraint::parse(part)?);
            }
            for text in found {
                constraints.push(Constraint::parse(text)?);
            }
            let has_prerelease = constraints.iter().any(|c| !c.version.prerelease().is_empty());
            groups.push(Group { constraints, has_prerelease });
        }
        Ok(Constraints { groups, include_prerelease: false })
    }

    /// Whether `version` satisfies some group of the constraints.
    pub fn check(&self, version: &Version) -> bool {
        self.groups.iter().any(|group| {
            let include_pre = self.include_prerelease || group.has_prerelease;
            group.constraints.iter().all(|c| c.check(version, include_pre).is_ok())
        })
    }

    /// Like [`Constraints::check`], but on failure returns why, one reason per failed comparison
    /// (Masterminds' `Validate`, with its messages).
    ///
    /// # Errors
    /// The reasons, when no group is satisfied.
    pub fn validate(&self, version: &Version) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        let mut reported_prerelease = false;
        for group in &self.groups {
            let include_pre = self.include_prerelease || group.has_prerelease;
            let mut satisfied = true;
            for constraint in &group.constraints {
                if !include_pre && !version.prerelease().is_empty() {
                    if !reported_prerelease {
                        reasons.push(format!(
                            "{:?} is a prerelease version and the constraint is only looking for release versions",
                            version.to_string()
                        ));
                        reported_prerelease = true;
                    }
                    satisfied = false;
                } else if let Err(reason) = constraint.check(version, include_pre) {
                    reasons.push(reason);
                    satisfied = false;
                }
            }
            if satisfied {
                return Ok(());
            }
        }
        Err(reasons)
    }

    /// Shorthand: parse `version` leniently and check it.
    ///
    /// # Errors
    /// When `version` does not parse.
    pub fn matches(&self, version: &str) -> Result<bool, Error> {
        Ok(self.check(&Version::parse(version)?))
    }
}

impl fmt::Display for Constraints {
    /// Masterminds' `String`: groups joined by ` || `, comparisons by a space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|g| g.constraints.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" "))
            .collect();
        f.write_str(&groups.join(" || "))
    }
}

impl FromStr for Constraints {
    type Err = Error;

    fn from_str(text: &str) -> Result<Constraints, Error> {
        Constraints::parse(text)
    }
}
