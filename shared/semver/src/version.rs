//! Masterminds semantic versions: lenient and strict parsing, precedence, display.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::OnceLock;

use regex::Regex;

/// A version or constraint that does not parse; messages match Masterminds' wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The version string is empty (strict parsing).
    #[error("version string empty")]
    Empty,
    /// The text is not a semantic version.
    #[error("invalid semantic version")]
    InvalidSemVer,
    /// A numeric part holds something other than digits (strict parsing).
    #[error("invalid characters in version")]
    InvalidCharacters,
    /// A numeric part or identifier has a leading zero.
    #[error("version segment starts with 0")]
    SegmentStartsZero,
    /// The build metadata is malformed.
    #[error("invalid metadata string")]
    InvalidMetadata,
    /// The pre-release is malformed.
    #[error("invalid prerelease string")]
    InvalidPrerelease,
    /// A numeric part does not fit in 64 bits.
    #[error("error parsing version segment: {segment:?} is out of range")]
    SegmentOutOfRange {
        /// The digits that overflowed.
        segment: String,
    },
    /// A constraint does not parse.
    #[error("improper constraint: {constraint:?}")]
    ImproperConstraint {
        /// The offending part of the constraint.
        constraint: String,
    },
    /// A constraint's version does not parse.
    #[error("constraint parser error: {constraint:?} has an invalid version")]
    ConstraintVersion {
        /// The offending constraint.
        constraint: String,
    },
}

/// A semantic version as Masterminds parses it.
///
/// Equality, ordering and hashing follow Masterminds' `Compare`: build metadata and the original
/// text are ignored, so `1.2.3+a == v1.2.3+b`.
#[derive(Debug, Clone)]
pub struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
    metadata: String,
    original: String,
}

fn loose_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let ident = r"[0-9A-Za-z-]+";
        let pattern = format!(
            r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(?:-({ident}(?:\.{ident})*))?(?:\+({ident}(?:\.{ident})*))?$"
        );
        Regex::new(&pattern).expect("static version pattern is valid")
    })
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_identifier_chars(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn parse_segment(digits: &str) -> Result<u64, Error> {
    digits.parse().map_err(|_| Error::SegmentOutOfRange { segment: digits.to_owned() })
}

fn validate_prerelease(pre: &str) -> Result<(), Error> {
    for part in pre.split('.') {
        if part.is_empty() {
            return Err(Error::InvalidPrerelease);
        } else if is_digits(part) {
            if part.len() > 1 && part.starts_with('0') {
                return Err(Error::SegmentStartsZero);
            }
        } else if !is_identifier_chars(part) {
            return Err(Error::InvalidPrerelease);
        }
    }
    Ok(())
}

fn validate_metadata(metadata: &str) -> Result<(), Error> {
    if metadata.split('.').any(|part| part.is_empty() || !is_identifier_chars(part)) {
        return Err(Error::InvalidMetadata);
    }
    Ok(())
}

impl Version {
    /// Parse leniently, as Masterminds' `NewVersion`: an optional `v`, missing minor and patch
    /// (`1.2` is 1.2.0), leading zeros in the numbers (`01.2.3`), then a pre-release and build
    /// metadata checked by the SemVer rules.
    ///
    /// # Errors
    /// [`Error::InvalidSemVer`] and the other variants, with Masterminds' messages.
    pub fn parse(text: &str) -> Result<Version, Error> {
        let captures = loose_regex().captures(text).ok_or(Error::InvalidSemVer)?;
        let number = |idx: usize| -> Result<u64, Error> {
            match captures.get(idx) {
                Some(m) => parse_segment(m.as_str().trim_start_matches('.')),
                None => Ok(0),
            }
        };
        let version = Version {
            major: number(1)?,
            minor: number(2)?,
            patch: number(3)?,
            pre: captures.get(4).map_or("", |m| m.as_str()).to_owned(),
            metadata: captures.get(5).map_or("", |m| m.as_str()).to_owned(),
            original: text.to_owned(),
        };
        if !version.pre.is_empty() {
            validate_prerelease(&version.pre)?;
        }
        if !version.metadata.is_empty() {
            validate_metadata(&version.metadata)?;
        }
        Ok(version)
    }

    /// Parse strictly, as Masterminds' `StrictNewVersion`: exactly `MAJOR.MINOR.PATCH` with
    /// optional pre-release and metadata, no `v` prefix, no leading zeros.
    ///
    /// # Errors
    /// [`Error::Empty`], [`Error::InvalidSemVer`], [`Error::InvalidCharacters`],
    /// [`Error::SegmentStartsZero`], [`Error::InvalidPrerelease`], [`Error::InvalidMetadata`].
    pub fn parse_strict(text: &str) -> Result<Version, Error> {
        if text.is_empty() {
            return Err(Error::Empty);
        }
        let parts: Vec<&str> = text.splitn(3, '.').collect();
        let [major, minor, rest] = parts[..] else {
            return Err(Error::InvalidSemVer);
        };
        let (rest, metadata) = match rest.split_once('+') {
            Some((rest, metadata)) => {
                validate_metadata(metadata)?;
                (rest, metadata)
            }
            None => (rest, ""),
        };
        let (patch, pre) = match rest.split_once('-') {
            Some((patch, pre)) => {
                validate_prerelease(pre)?;
                (patch, pre)
            }
            None => (rest, ""),
        };
        for part in [major, minor, patch] {
            if !is_digits(part) {
                return Err(Error::InvalidCharacters);
            }
            if part.len() > 1 && part.starts_with('0') {
                return Err(Error::SegmentStartsZero);
            }
        }
        Ok(Version {
            major: parse_segment(major)?,
            minor: parse_segment(minor)?,
            patch: parse_segment(patch)?,
            pre: pre.to_owned(),
            metadata: metadata.to_owned(),
            original: text.to_owned(),
        })
    }

    /// A version from its parts, as Masterminds' `New`.
    pub fn new(major: u64, minor: u64, patch: u64, pre: &str, metadata: &str) -> Version {
        let mut version = Version {
            major,
            minor,
            patch,
            pre: pre.to_owned(),
            metadata: metadata.to_owned(),
            original: String::new(),
        };
        version.original = version.to_string();
        version
    }

    /// The major number.
    pub fn major(&self) -> u64 {
        self.major
    }

    /// The minor number.
    pub fn minor(&self) -> u64 {
        self.minor
    }

    /// The patch number.
    pub fn patch(&self) -> u64 {
        self.patch
    }

    /// The pre-release without its `-`, empty when none.
    pub fn prerelease(&self) -> &str {
        &self.pre
    }

    /// The build metadata without its `+`, empty when none.
    pub fn metadata(&self) -> &str {
        &self.metadata
    }

    /// The text the version was parsed from (`v1.2` for `v1.2`, whose display is `1.2.0`).
    pub fn original(&self) -> &str {
        &self.original
    }

    /// Masterminds' `Compare`: -1, 0 or 1 by SemVer precedence, metadata ignored.
    pub fn compare(&self, other: &Version) -> i32 {
        match self.cmp(other) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    }

    /// The same version as a `semver::Version` (the numbers, pre-release and metadata).
    ///
    /// # Errors
    /// When `semver` rejects the pre-release or metadata (it should not for parsed versions).
    pub fn to_semver(&self) -> Result<semver::Version, semver::Error> {
        Ok(semver::Version {
            major: self.major,
            minor: self.minor,
            patch: self.patch,
            pre: semver::Prerelease::new(&self.pre)?,
            build: semver::BuildMetadata::new(&self.metadata)?,
        })
    }

    fn original_v_prefix(&self) -> &'static str {
        if self.original.starts_with('v') { "v" } else { "" }
    }

    /// The next patch version (Masterminds `IncPatch`): a pre-release drops its pre-release
    /// (1.2.3-beta → 1.2.3), otherwise the patch grows; metadata is dropped. `None` on overflow.
    pub fn inc_patch(&self) -> Option<Version> {
        let patch = if self.pre.is_empty() { self.patch.checked_add(1)? } else { self.patch };
        Some(self.bumped(self.major, self.minor, patch))
    }

    /// The next minor version (Masterminds `IncMinor`). `None` on overflow.
    pub fn inc_minor(&self) -> Option<Version> {
        Some(self.bumped(self.major, self.minor.checked_add(1)?, 0))
    }

    /// The next major version (Masterminds `IncMajor`). `None` on overflow.
    pub fn inc_major(&self) -> Option<Version> {
        Some(self.bumped(self.major.checked_add(1)?, 0, 0))
    }

    fn bumped(&self, major: u64, minor: u64, patch: u64) -> Version {
        let mut next = Version::new(major, minor, patch, "", "");
        next.original = format!("{}{next}", self.original_v_prefix());
        next
    }
}

/// Masterminds `comparePrePart`: numeric identifiers are lower than alphanumeric ones; a missing
/// identifier is lower than any.
fn compare_pre_part(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    if a.is_empty() {
        return Ordering::Less;
    }
    if b.is_empty() {
        return Ordering::Greater;
    }
    // Go's ParseUint: digits only (no sign), within 64 bits.
    let numeric = |s: &str| if is_digits(s) { s.parse::<u64>().ok() } else { None };
    match (numeric(a).ok_or(()), numeric(b).ok_or(())) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

pub(crate) fn compare_prerelease(a: &str, b: &str) -> Ordering {
    let a_parts: Vec<&str> = a.split('.').collect();
    let b_parts: Vec<&str> = b.split('.').collect();
    for idx in 0..a_parts.len().max(b_parts.len()) {
        let x = a_parts.get(idx).copied().unwrap_or("");
        let y = b_parts.get(idx).copied().unwrap_or("");
        match compare_pre_part(x, y) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    Ordering::Equal
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        self.major
            .cmp(&other.major)
            .then(self.minor.cmp(&other.minor))
            .then(self.patch.cmp(&other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_prerelease(&self.pre, &other.pre),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Consistent with `Eq`: pre-releases equal by precedence are equal as text too, except
        // for numeric identifiers with leading zeros, which parsing rejects.
        (self.major, self.minor, self.patch, &self.pre).hash(state);
    }
}

impl fmt::Display for Version {
    /// The normalized form, `MAJOR.MINOR.PATCH[-PRE][+META]` without `v`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.metadata.is_empty() {
            write!(f, "+{}", self.metadata)?;
        }
        Ok(())
    }
}

impl FromStr for Version {
    type Err = Error;

    fn from_str(text: &str) -> Result<Version, Error> {
        Version::parse(text)
    }
}
