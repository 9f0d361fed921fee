//! Tag selection for ImagePolicy: semver ranges, alphabetical and numerical order, and the
//! `filterTags` pattern with `extract`, as Flux's image-reflector-controller selects tags.

use std::collections::HashMap;

use sluice_api::image::{ImagePolicyChoice, TagFilter};
use sluice_semver::{Constraints, Version};

/// A spec problem: the policy cannot work until it is fixed (`InvalidPolicy`, stalled).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {0}")]
pub struct InvalidPolicy(pub String);

/// No tag could be selected (retried on the next scan).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// No tag is left after filtering, or none satisfies the policy.
    #[error("{0}")]
    NoMatch(String),
    /// A tag of a numerical policy is not a number.
    #[error("failed to parse invalid numeric value '{0}'")]
    NotNumeric(String),
}

/// Ordering direction of alphabetical and numerical policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Asc,
    Desc,
}

fn order(raw: Option<&str>, field: &str) -> Result<Order, InvalidPolicy> {
    match raw.unwrap_or("asc") {
        "asc" | "" => Ok(Order::Asc),
        "desc" => Ok(Order::Desc),
        other => Err(InvalidPolicy(format!(
            "spec.policy.{field}.order {other:?} must be 'asc' or 'desc'"
        ))),
    }
}

/// A parsed `spec.policy`.
#[derive(Debug)]
pub enum Policer {
    /// The highest version in a Masterminds range.
    Semver {
        /// The range as written.
        range: String,
        /// The parsed constraints.
        constraints: Constraints,
    },
    /// Byte-wise string order; `asc` picks the last.
    Alphabetical(bool),
    /// Numeric order of tags parsed as floats; `asc` picks the highest.
    Numerical(bool),
}

impl Policer {
    /// Parses `spec.policy`, which must set exactly one policy.
    ///
    /// # Errors
    /// [`InvalidPolicy`] naming the field.
    pub fn from_spec(choice: &ImagePolicyChoice) -> Result<Policer, InvalidPolicy> {
        let set =
            [choice.semver.is_some(), choice.alphabetical.is_some(), choice.numerical.is_some()]
                .iter()
                .filter(|set| **set)
                .count();
        if set != 1 {
            return Err(InvalidPolicy(
                "spec.policy must set exactly one of semver, alphabetical or numerical".into(),
            ));
        }
        if let Some(semver) = &choice.semver {
            let constraints = Constraints::parse(&semver.range).map_err(|err| {
                InvalidPolicy(format!("spec.policy.semver.range {:?}: {err}", semver.range))
            })?;
            return Ok(Policer::Semver { range: semver.range.clone(), constraints });
        }
        if let Some(alphabetical) = &choice.alphabetical {
            let asc = order(alphabetical.order.as_deref(), "alphabetical")? == Order::Asc;
            return Ok(Policer::Alphabetical(asc));
        }
        let numerical = choice.numerical.as_ref().map(|n| n.order.as_deref()).unwrap_or(None);
        Ok(Policer::Numerical(order(numerical, "numerical")? == Order::Asc))
    }

    /// The selected value among `values`.
    ///
    /// # Errors
    /// [`SelectError`] when the list is empty, nothing matches, or a numerical value is not a
    /// number.
    pub fn latest(&self, values: &[String]) -> Result<String, SelectError> {
        if values.is_empty() {
            return Err(SelectError::NoMatch(
                "no tag left to choose from (after filterTags and the exclusion list)".into(),
            ));
        }
        match self {
            Policer::Semver { range, constraints } => {
                let mut best: Option<(Version, &String)> = None;
                for value in values {
                    // Flux parses tags strictly, allowing only a leading `v`.
                    let bare = value.strip_prefix('v').unwrap_or(value);
                    if Version::parse_strict(bare).is_err() {
                        continue;
                    }
                    let Ok(version) = Version::parse(value) else { continue };
                    if !constraints.check(&version) {
                        continue;
                    }
                    if best.as_ref().is_none_or(|(b, _)| version.compare(b) > 0) {
                        best = Some((version, value));
                    }
                }
                best.map(|(_, value)| value.clone()).ok_or_else(|| {
                    SelectError::NoMatch(format!(
                        "no tag of the {} considered satisfies semver range '{range}'",
                        values.len()
                    ))
                })
            }
            Policer::Alphabetical(asc) => {
                let picked = if *asc { values.iter().max() } else { values.iter().min() };
                Ok(picked.cloned().unwrap_or_default())
            }
            Policer::Numerical(asc) => {
                let mut best: Option<(f64, &String)> = None;
                for value in values {
                    let number: f64 =
                        value.parse().map_err(|_| SelectError::NotNumeric(value.clone()))?;
                    let better = match &best {
                        None => true,
                        Some((b, _)) if *asc => number > *b,
                        Some((b, _)) => number < *b,
                    };
                    if better {
                        best = Some((number, value));
                    }
                }
                Ok(best.map(|(_, v)| v.clone()).unwrap_or_default())
            }
        }
    }
}

/// A compiled `spec.filterTags`.
#[derive(Debug)]
pub struct Filter {
    pattern: regex::Regex,
    extract: String,
}

impl Filter {
    /// Compiles `filterTags`; an empty pattern matches every tag.
    ///
    /// # Errors
    /// [`InvalidPolicy`] when the pattern is not a valid regular expression.
    pub fn new(filter: &TagFilter) -> Result<Filter, InvalidPolicy> {
        let pattern = filter.pattern.as_deref().unwrap_or("");
        let pattern = regex::Regex::new(pattern).map_err(|err| {
            InvalidPolicy(format!(
                "spec.filterTags.pattern {pattern:?} is not a valid regular expression: {err}"
            ))
        })?;
        Ok(Filter { pattern, extract: filter.extract.clone().unwrap_or_default() })
    }

    /// The values the policy orders (extracted, or the tags themselves) and the map back to
    /// the original tags.
    pub fn apply(&self, tags: &[String]) -> (Vec<String>, HashMap<String, String>) {
        let mut values = Vec::new();
        let mut original = HashMap::new();
        for tag in tags {
            let Some(captures) = self.pattern.captures(tag) else { continue };
            let value = if self.extract.is_empty() {
                tag.clone()
            } else {
                let mut out = String::new();
                captures.expand(&self.extract, &mut out);
                out
            };
            original.insert(value.clone(), tag.clone());
            values.push(value);
        }
        (values, original)
    }
}

/// The tag `policer` selects among `tags`, after `filter`.
///
/// # Errors
/// As [`Policer::latest`].
pub fn select(
    policer: &Policer,
    filter: Option<&Filter>,
    tags: &[String],
) -> Result<String, SelectError> {
    match filter {
        Some(filter) => {
            let (values, original) = filter.apply(tags);
            let latest = policer.latest(&values)?;
            Ok(original.get(&latest).cloned().unwrap_or(latest))
        }
        None => policer.latest(tags),
    }
}

#[cfg(test)]
mod tests {
    use sluice_api::image::{OrderPolicy, SemVerPolicy};

    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn semver(range: &str) -> Policer {
        Policer::from_spec(&ImagePolicyChoice {
            semver: Some(SemVerPolicy { range: range.into() }),
            ..Default::default()
        })
        .unwrap()
    }

    fn ordered(alphabetical: bool, order: Option<&str>) -> Policer {
        let policy = Some(OrderPolicy { order: order.map(str::to_string) });
        let choice = if alphabetical {
            ImagePolicyChoice { alphabetical: policy, ..Default::default() }
        } else {
            ImagePolicyChoice { numerical: policy, ..Default::default() }
        };
        Policer::from_spec(&choice).unwrap()
    }

    #[test]
    fn semver_ranges_as_flux() {
        let all =
            tags(&["1.2.3", "1.2.4", "v1.3.0", "1.4.0-rc.1", "2.0.0", "latest", "1.5", "1.2.4.1"]);
        let cases = [
            (">=1.0.0 <2.0.0", Some("v1.3.0")),
            ("~1.2", Some("1.2.4")),
            ("1.2.x", Some("1.2.4")),
            (">=1.4.0-0 <2.0.0", Some("1.4.0-rc.1")),
            ("*", Some("2.0.0")),
            (">=3.0.0", None),
        ];
        for (range, expected) in cases {
            assert_eq!(semver(range).latest(&all).ok().as_deref(), expected, "{range}");
        }
        // `1.5` is not a strict version, so it is never considered.
        assert!(semver("1.5.x").latest(&all).is_err());
        assert!(
            Policer::from_spec(&ImagePolicyChoice {
                semver: Some(SemVerPolicy { range: "not a range".into() }),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn alphabetical_and_numerical_orders() {
        let words = tags(&["RELEASE.2023-01-31", "RELEASE.2024-05-01", "RELEASE.2022-12-01"]);
        assert_eq!(ordered(true, None).latest(&words).unwrap(), "RELEASE.2024-05-01");
        assert_eq!(ordered(true, Some("desc")).latest(&words).unwrap(), "RELEASE.2022-12-01");
        let numbers = tags(&["9", "10", "2.5"]);
        assert_eq!(ordered(false, Some("asc")).latest(&numbers).unwrap(), "10");
        assert_eq!(ordered(false, Some("desc")).latest(&numbers).unwrap(), "2.5");
        assert_eq!(
            ordered(false, None).latest(&tags(&["1", "x"])),
            Err(SelectError::NotNumeric("x".into()))
        );
        assert!(ordered(true, None).latest(&[]).is_err());
        let both = ImagePolicyChoice {
            alphabetical: Some(OrderPolicy::default()),
            numerical: Some(OrderPolicy::default()),
            ..Default::default()
        };
        assert!(Policer::from_spec(&both).is_err());
    }

    #[test]
    fn filter_and_extract() {
        let all = tags(&["main-abc123-1700000001", "main-def456-1700000300", "dev-zzz-1800000000"]);
        let filter = Filter::new(&TagFilter {
            pattern: Some(r"^main-[a-f0-9]+-(?P<ts>[0-9]+)$".into()),
            extract: Some("$ts".into()),
        })
        .unwrap();
        let picked = select(&ordered(false, None), Some(&filter), &all).unwrap();
        assert_eq!(picked, "main-def456-1700000300");
        let semver_filter = Filter::new(&TagFilter {
            pattern: Some(r"^v(?P<v>.*)-alpine$".into()),
            extract: Some("$v".into()),
        })
        .unwrap();
        let images = tags(&["v1.0.0-alpine", "v1.1.0-alpine", "v2.0.0", "v1.2.0"]);
        assert_eq!(select(&semver("^1"), Some(&semver_filter), &images).unwrap(), "v1.1.0-alpine");
        assert!(Filter::new(&TagFilter { pattern: Some("(".into()), extract: None }).is_err());
    }
}
