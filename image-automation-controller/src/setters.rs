//! The Setters update strategy: rewrite the YAML scalars marked with
//! `# {"$imagepolicy": "<namespace>:<policy>[:tag|:name|:digest]"}`.
//!
//! The edit is textual: only the bytes of a marked scalar change; comments, spacing, quoting,
//! key order and every other line of the file stay as they were. A scalar is marked when the
//! marker is the line comment of a block mapping value (`image: app:1.0 # {...}`) or a block
//! sequence item (`- app:1.0 # {...}`). Flow collections, block scalars (`|`, `>`), aliases and
//! files that are not valid YAML are left alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The image a policy selected (`status.latestRef`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyImage {
    /// Image name, e.g. `ghcr.io/org/app`.
    pub name: String,
    /// Selected tag, e.g. `1.2.4`.
    pub tag: String,
    /// Manifest digest, when the policy reflects digests.
    pub digest: Option<String>,
}

impl PolicyImage {
    /// The value of a marker for `field` (`None` for the whole image), or `None` when the policy
    /// has no value for it (a `:digest` marker without digest reflection).
    fn value(&self, field: Option<&str>) -> Option<String> {
        match field {
            None => Some(match &self.digest {
                Some(digest) => format!("{}:{}@{digest}", self.name, self.tag),
                None => format!("{}:{}", self.name, self.tag),
            }),
            Some("name") => Some(self.name.clone()),
            Some("tag") => Some(self.tag.clone()),
            Some("digest") => self.digest.clone(),
            Some(_) => None,
        }
    }
}

/// One replaced scalar.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// The value before.
    pub old_value: String,
    /// The value written.
    pub new_value: String,
    /// The marker's setter, e.g. `flux-system:app:tag`.
    pub setter: String,
}

/// The object (YAML document) a change was made in.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    /// `apiVersion` of the document.
    pub api_version: String,
    /// `kind` of the document.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
}

/// Changes per file (relative to the update path, `/`-separated) and object, as Flux's
/// `update.Result`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateResult {
    /// file → object → changes, in file order.
    pub files: BTreeMap<String, BTreeMap<ObjectId, Vec<Change>>>,
}

impl UpdateResult {
    /// Whether no file changed.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Every distinct change, in file and object order.
    pub fn changes(&self) -> Vec<Change> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for objects in self.files.values() {
            for changes in objects.values() {
                for change in changes {
                    if seen.insert(change.clone()) {
                        out.push(change.clone());
                    }
                }
            }
        }
        out
    }

    /// The changes per object, whatever file they are in.
    pub fn objects(&self) -> BTreeMap<ObjectId, Vec<Change>> {
        let mut out = BTreeMap::new();
        for objects in self.files.values() {
            for (object, changes) in objects {
                out.insert(object.clone(), changes.clone());
            }
        }
        out
    }
}

/// Why the update of a directory failed.
#[derive(Debug, thiserror::Error)]
pub enum SetterError {
    /// Reading or writing a file failed.
    #[error("{action} {path:?}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

/// A parsed marker: the policy key `namespace:name` and the optional field.
#[derive(Debug, PartialEq, Eq)]
struct Marker {
    policy: String,
    field: Option<String>,
    setter: String,
}

fn parse_marker(comment: &str) -> Option<Marker> {
    let value: serde_json::Value = serde_json::from_str(comment.trim()).ok()?;
    let setter = value.as_object()?.get("$imagepolicy")?.as_str()?.to_string();
    let parts: Vec<&str> = setter.split(':').collect();
    let (policy, field) = match parts.as_slice() {
        [namespace, name] => (format!("{namespace}:{name}"), None),
        [namespace, name, field] => (format!("{namespace}:{name}"), Some(field.to_string())),
        _ => return None,
    };
    if let Some(field) = &field
        && !matches!(field.as_str(), "tag" | "name" | "digest")
    {
        return None;
    }
    Some(Marker { policy, field, setter })
}

/// Where a quoted scalar may start: at the start of the line or after an indicator or space.
fn quote_may_open(before: Option<char>) -> bool {
    matches!(before, None | Some(' ' | '\t' | '[' | '{' | ','))
}

/// The byte offset of the line comment of `line`, skipping `#` inside quoted scalars and `#`
/// not preceded by whitespace (part of a plain scalar).
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut prev: Option<char> = None;
    let mut chars = line.char_indices().peekable();
    while let Some((idx, c)) = chars.next() {
        match quote {
            Some('"') => {
                if c == '\\' {
                    chars.next();
                    prev = Some('\\');
                    continue;
                }
                if c == '"' {
                    quote = None;
                }
            }
            Some(_) => {
                if c == '\'' {
                    if chars.peek().map(|(_, n)| *n) == Some('\'') {
                        chars.next();
                    } else {
                        quote = None;
                    }
                }
            }
            None => {
                if (c == '"' || c == '\'') && quote_may_open(prev) {
                    quote = Some(c);
                } else if c == '#' && matches!(prev, None | Some(' ' | '\t')) {
                    return Some(idx);
                }
            }
        }
        prev = Some(c);
    }
    None
}

/// The byte range of the scalar value of `left` (a line without its comment), or `None` when
/// the line holds no single block scalar.
fn scalar_span(left: &str) -> Option<(usize, usize)> {
    let end = left.trim_end().len();
    let mut pos = left.len() - left.trim_start().len();
    let mut in_sequence = false;
    // Block sequence indicators: `- `, possibly nested (`- - x`).
    loop {
        let rest = &left[pos..end];
        if rest == "-" {
            return None;
        }
        if rest.starts_with("- ") || rest.starts_with("-\t") {
            in_sequence = true;
            pos += 1;
            pos += left[pos..].len() - left[pos..].trim_start().len();
        } else {
            break;
        }
    }
    let rest = &left[pos..end];
    if rest.is_empty() || rest.starts_with('{') || rest.starts_with('[') {
        return None;
    }
    let value_start = match mapping_indicator(rest) {
        Some(colon) => {
            let after = pos + colon + 1;
            after + (left[after..end].len() - left[after..end].trim_start().len())
        }
        None if in_sequence => pos,
        None => return None,
    };
    let mut start = value_start;
    // Node properties: an anchor or a tag before the scalar.
    loop {
        let rest = &left[start..end];
        if rest.starts_with('&') || rest.starts_with('!') {
            let token = rest.find([' ', '\t'])?;
            start += token;
            start += left[start..end].len() - left[start..end].trim_start().len();
        } else {
            break;
        }
    }
    let value = &left[start..end];
    if value.is_empty() {
        return None;
    }
    let first = value.chars().next()?;
    if matches!(first, '{' | '[' | '|' | '>' | '*') {
        return None;
    }
    if first == '"' || first == '\'' {
        // The quoted scalar must span the rest of the line.
        let closing = quoted_end(value, first)?;
        if closing != value.len() {
            return None;
        }
    } else if mapping_indicator(value).is_some() {
        return None;
    }
    Some((start, end))
}

/// The end (exclusive) of the quoted scalar at the start of `text`.
fn quoted_end(text: &str, quote: char) -> Option<usize> {
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((idx, c)) = chars.next() {
        if quote == '"' {
            if c == '\\' {
                chars.next();
            } else if c == '"' {
                return Some(idx + 1);
            }
        } else if c == '\'' {
            if chars.peek().map(|(_, n)| *n) == Some('\'') {
                chars.next();
            } else {
                return Some(idx + 1);
            }
        }
    }
    None
}

/// The offset of the mapping value indicator (`:` followed by a space or the end) outside
/// quotes, in a line part that starts at a key.
fn mapping_indicator(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut idx = 0;
    if let Some(first @ ('"' | '\'')) = text.chars().next() {
        idx = quoted_end(text, first)?;
    }
    while idx < bytes.len() {
        if bytes[idx] == b':' && (idx + 1 == bytes.len() || matches!(bytes[idx + 1], b' ' | b'\t'))
        {
            return Some(idx);
        }
        idx += 1;
    }
    None
}

fn unquote(raw: &str) -> String {
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('0') => out.push('\0'),
                Some(other) => out.push(other),
                None => {}
            }
        }
        return out;
    }
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return inner.replace("''", "'");
    }
    raw.to_string()
}

/// Whether `value` written as a plain scalar would read back as something other than the same
/// string (a number, bool, null, or YAML syntax).
fn needs_quotes(value: &str) -> bool {
    if value.is_empty() || value.trim() != value {
        return true;
    }
    let first = value.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return true;
    }
    if value.contains(": ") || value.contains(" #") || value.ends_with(':') {
        return true;
    }
    if value.chars().any(|c| c.is_control()) {
        return true;
    }
    let lower = value.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
    ) {
        return true;
    }
    let number = regex::Regex::new(
        r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$|^0x[0-9a-fA-F_]+$|^0o?[0-7_]+$|^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$",
    );
    number.is_ok_and(|re| re.is_match(value))
}

/// `value` written in the style of `old_raw` (double, single or plain).
fn render(value: &str, old_raw: &str) -> String {
    let double = || {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    };
    if old_raw.starts_with('"') {
        double()
    } else if old_raw.starts_with('\'') {
        if value.chars().any(|c| c.is_control()) {
            double()
        } else {
            format!("'{}'", value.replace('\'', "''"))
        }
    } else if needs_quotes(value) {
        double()
    } else {
        value.to_string()
    }
}

/// Whether `left` (a line without its comment) opens a block scalar (`key: |`, `- >-`).
fn block_scalar_header(left: &str) -> bool {
    let trimmed = left.trim_end();
    let Some(last_space) = trimmed.rfind([' ', '\t']) else {
        return trimmed.starts_with(['|', '>']) && is_block_indicator(trimmed);
    };
    let token = &trimmed[last_space + 1..];
    let before = trimmed[..last_space].trim_end();
    is_block_indicator(token)
        && (before.ends_with(':') || before.ends_with('-') || before.is_empty())
}

fn is_block_indicator(token: &str) -> bool {
    let mut chars = token.chars();
    matches!(chars.next(), Some('|' | '>'))
        && chars.all(|c| c == '-' || c == '+' || c.is_ascii_digit())
}

/// Whether `line` starts or ends a YAML document.
fn is_document_marker(line: &str) -> bool {
    let content = line.trim_end();
    content == "---" || content.starts_with("--- ") || content == "..."
}

/// The identity of each document of `text` (split at `---`), or `None` when a document is not
/// valid YAML.
fn document_ids(text: &str) -> Option<Vec<ObjectId>> {
    let mut docs = vec![String::new()];
    for line in text.split_inclusive('\n') {
        if is_document_marker(line) {
            docs.push(String::new());
        } else if let Some(last) = docs.last_mut() {
            last.push_str(line);
        }
    }
    let mut ids = Vec::new();
    for doc in docs {
        let value: serde_json::Value = if doc.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_saphyr::from_str(&doc).ok()?
        };
        let text = |v: Option<&serde_json::Value>| {
            v.and_then(|v| v.as_str()).unwrap_or_default().to_string()
        };
        ids.push(ObjectId {
            api_version: text(value.get("apiVersion")),
            kind: text(value.get("kind")),
            name: text(value.pointer("/metadata/name")),
            namespace: text(value.pointer("/metadata/namespace")),
        });
    }
    Some(ids)
}

/// Rewrites the marked scalars of one YAML text.
///
/// `policies` maps `namespace:name` to the selected image; markers naming other policies are
/// left alone. Returns the new text and the changes with the index of their document, or
/// `None` when nothing changed or the text is not valid YAML.
pub fn update_text(
    text: &str,
    policies: &BTreeMap<String, PolicyImage>,
) -> Option<(String, Vec<(usize, Change)>)> {
    if !text.contains("$imagepolicy") {
        return None;
    }
    let ids = document_ids(text)?;
    let mut out = String::with_capacity(text.len());
    let mut changes = Vec::new();
    let mut document = 0;
    // Indentation of the line that opened a block scalar; deeper lines are its content.
    let mut block_parent: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let (content, ending) = match line.strip_suffix('\n') {
            Some(content) => match content.strip_suffix('\r') {
                Some(content) => (content, "\r\n"),
                None => (content, "\n"),
            },
            None => (line, ""),
        };
        let indent = content.len() - content.trim_start().len();
        if let Some(parent) = block_parent {
            if content.trim().is_empty() || indent > parent {
                out.push_str(line);
                continue;
            }
            block_parent = None;
        }
        if is_document_marker(content) {
            document += 1;
            out.push_str(line);
            continue;
        }
        let comment = comment_start(content);
        let left = &content[..comment.unwrap_or(content.len())];
        if block_scalar_header(left) {
            block_parent = Some(indent);
        }
        let replaced = comment.and_then(|hash| {
            let marker = parse_marker(&content[hash + 1..])?;
            let image = policies.get(&marker.policy)?;
            let new_value = image.value(marker.field.as_deref())?;
            let (start, end) = scalar_span(left)?;
            let raw = &left[start..end];
            let old_value = unquote(raw);
            if old_value == new_value {
                return None;
            }
            let rendered = render(&new_value, raw);
            let change = Change { old_value, new_value, setter: marker.setter };
            Some((format!("{}{rendered}{}", &content[..start], &content[end..]), change))
        });
        match replaced {
            Some((new_line, change)) => {
                out.push_str(&new_line);
                out.push_str(ending);
                changes.push((document.min(ids.len().saturating_sub(1)), change));
            }
            None => out.push_str(line),
        }
    }
    if changes.is_empty() {
        return None;
    }
    // The edit must leave valid YAML with the same documents.
    let after = document_ids(&out)?;
    if after.len() != ids.len() {
        return None;
    }
    let changes = changes.into_iter().collect();
    Some((out, changes))
}

/// Runs the setters over every `.yaml`/`.yml` file under `root` (symlinks and `.git` skipped),
/// writing the files that changed.
///
/// # Errors
/// When a file cannot be read or written.
pub fn update_dir(
    root: &Path,
    policies: &BTreeMap<String, PolicyImage>,
) -> Result<UpdateResult, SetterError> {
    let mut result = UpdateResult::default();
    let ids_cache = |text: &str| document_ids(text).unwrap_or_default();
    let mut stack = vec![root.to_path_buf()];
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| SetterError::Io {
            action: "reading directory",
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| SetterError::Io {
                action: "reading directory",
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|source| SetterError::Io {
                action: "reading file type of",
                path: path.clone(),
                source,
            })?;
            if kind.is_symlink() {
                continue;
            }
            if kind.is_dir() {
                if entry.file_name() != ".git" {
                    stack.push(path);
                }
            } else if kind.is_file()
                && path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let Some((updated, changes)) = update_text(&text, policies) else { continue };
        std::fs::write(&path, &updated).map_err(|source| SetterError::Io {
            action: "writing",
            path: path.clone(),
            source,
        })?;
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let ids = ids_cache(&text);
        let objects = result.files.entry(relative).or_default();
        for (document, change) in changes {
            let id = ids.get(document).cloned().unwrap_or_default();
            objects.entry(id).or_default().push(change);
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies() -> BTreeMap<String, PolicyImage> {
        BTreeMap::from([
            (
                "flux-system:app".to_string(),
                PolicyImage { name: "ghcr.io/org/app".into(), tag: "1.2.4".into(), digest: None },
            ),
            (
                "flux-system:db".to_string(),
                PolicyImage {
                    name: "ghcr.io/org/db".into(),
                    tag: "15.1".into(),
                    digest: Some("sha256:abc".into()),
                },
            ),
        ])
    }

    #[track_caller]
    fn check(input: &str, expected: &str) {
        let out = update_text(input, &policies()).map(|(text, _)| text);
        assert_eq!(out.as_deref().unwrap_or(input), expected);
    }

    #[test]
    fn only_marked_scalars_change() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "image with spacing and trailing comment",
                "spec:\n  image: ghcr.io/org/app:1.2.3   # {\"$imagepolicy\": \"flux-system:app\"}\n  other: ghcr.io/org/app:1.2.3\n",
                "spec:\n  image: ghcr.io/org/app:1.2.4   # {\"$imagepolicy\": \"flux-system:app\"}\n  other: ghcr.io/org/app:1.2.3\n",
            ),
            (
                "double-quoted tag keeps quotes",
                "tag: \"1.2.3\" # {\"$imagepolicy\": \"flux-system:app:tag\"}\n",
                "tag: \"1.2.4\" # {\"$imagepolicy\": \"flux-system:app:tag\"}\n",
            ),
            (
                "single-quoted name",
                "repository: 'ghcr.io/org/old' # {\"$imagepolicy\": \"flux-system:app:name\"}\n",
                "repository: 'ghcr.io/org/app' # {\"$imagepolicy\": \"flux-system:app:name\"}\n",
            ),
            (
                "plain value that would read as a number gets quoted",
                "tag: 15.0 # {\"$imagepolicy\": \"flux-system:db:tag\"}\n",
                "tag: \"15.1\" # {\"$imagepolicy\": \"flux-system:db:tag\"}\n",
            ),
            (
                "digest reflected in the image and digest markers",
                "- image: db:1 # {\"$imagepolicy\": \"flux-system:db\"}\n  digest: none # {\"$imagepolicy\": \"flux-system:db:digest\"}\n",
                "- image: ghcr.io/org/db:15.1@sha256:abc # {\"$imagepolicy\": \"flux-system:db\"}\n  digest: sha256:abc # {\"$imagepolicy\": \"flux-system:db:digest\"}\n",
            ),
            (
                "sequence item scalar",
                "args:\n  - ghcr.io/org/app:1.0.0 # {\"$imagepolicy\": \"flux-system:app\"}\n  - --verbose # keep\n",
                "args:\n  - ghcr.io/org/app:1.2.4 # {\"$imagepolicy\": \"flux-system:app\"}\n  - --verbose # keep\n",
            ),
            (
                "unknown policy and other comments untouched",
                "# header comment\nimage: x:1 # {\"$imagepolicy\": \"other:app\"}\nb: 2 # note: {\"$imagepolicy\": \"flux-system:app\"}\n",
                "# header comment\nimage: x:1 # {\"$imagepolicy\": \"other:app\"}\nb: 2 # note: {\"$imagepolicy\": \"flux-system:app\"}\n",
            ),
            (
                "flow style is left alone",
                "image: {name: app, tag: 1.0} # {\"$imagepolicy\": \"flux-system:app:tag\"}\nlist: [a:1] # {\"$imagepolicy\": \"flux-system:app\"}\n",
                "image: {name: app, tag: 1.0} # {\"$imagepolicy\": \"flux-system:app:tag\"}\nlist: [a:1] # {\"$imagepolicy\": \"flux-system:app\"}\n",
            ),
            (
                "marker text inside a block scalar is not a marker",
                "script: |\n  image: a:1 # {\"$imagepolicy\": \"flux-system:app\"}\nimage: a:1 # {\"$imagepolicy\": \"flux-system:app\"}\n",
                "script: |\n  image: a:1 # {\"$imagepolicy\": \"flux-system:app\"}\nimage: ghcr.io/org/app:1.2.4 # {\"$imagepolicy\": \"flux-system:app\"}\n",
            ),
            (
                "hash inside a quoted value is not a comment",
                "note: \"a # b\" # {\"$imagepolicy\": \"flux-system:app:tag\"}\n",
                "note: \"1.2.4\" # {\"$imagepolicy\": \"flux-system:app:tag\"}\n",
            ),
            (
                "CRLF line endings and quoted keys",
                "\"image\": a:1 # {\"$imagepolicy\": \"flux-system:app\"}\r\nx: 1\r\n",
                "\"image\": ghcr.io/org/app:1.2.4 # {\"$imagepolicy\": \"flux-system:app\"}\r\nx: 1\r\n",
            ),
            (
                "anchored value keeps its anchor",
                "image: &img a:1 # {\"$imagepolicy\": \"flux-system:app\"}\nother: *img\n",
                "image: &img ghcr.io/org/app:1.2.4 # {\"$imagepolicy\": \"flux-system:app\"}\nother: *img\n",
            ),
            (
                "unchanged value makes no change",
                "tag: 1.2.4 # {\"$imagepolicy\": \"flux-system:app:tag\"}\n",
                "tag: 1.2.4 # {\"$imagepolicy\": \"flux-system:app:tag\"}\n",
            ),
            (
                "digest marker without digest is left alone",
                "digest: old # {\"$imagepolicy\": \"flux-system:app:digest\"}\n",
                "digest: old # {\"$imagepolicy\": \"flux-system:app:digest\"}\n",
            ),
            (
                "invalid YAML is not edited",
                "a: [1\nimage: a:1 # {\"$imagepolicy\": \"flux-system:app\"}\n",
                "a: [1\nimage: a:1 # {\"$imagepolicy\": \"flux-system:app\"}\n",
            ),
        ];
        for (what, input, expected) in cases {
            let out = update_text(input, &policies()).map(|(text, _)| text);
            assert_eq!(out.as_deref().unwrap_or(input), *expected, "{what}");
        }
    }

    #[test]
    fn changes_are_attributed_to_documents() {
        let input = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: prod\nspec:\n  image: a:1 # {\"$imagepolicy\": \"flux-system:app\"}\n---\n# second\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  tag: \"1\" # {\"$imagepolicy\": \"flux-system:app:tag\"}\n";
        let (out, changes) = update_text(input, &policies()).unwrap();
        assert_eq!(
            out,
            input.replace("a:1 #", "ghcr.io/org/app:1.2.4 #").replace("\"1\"", "\"1.2.4\"")
        );
        let ids = document_ids(input).unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(
            ids[changes[0].0],
            ObjectId {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "web".into(),
                namespace: "prod".into()
            }
        );
        assert_eq!(ids[changes[1].0].kind, "ConfigMap");
        assert_eq!(
            changes[1].1,
            Change {
                old_value: "1".into(),
                new_value: "1.2.4".into(),
                setter: "flux-system:app:tag".into()
            }
        );
    }

    #[test]
    fn directories_are_walked_and_only_changed_files_written() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("apps/web")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        let marked = "image: a:1 # {\"$imagepolicy\": \"flux-system:app\"}\n";
        std::fs::write(root.join("apps/web/deploy.yaml"), marked).unwrap();
        std::fs::write(root.join("apps/web/notes.txt"), marked).unwrap();
        std::fs::write(root.join(".git/x.yaml"), marked).unwrap();
        std::fs::write(root.join("plain.yml"), "a: 1\n").unwrap();
        let result = update_dir(root, &policies()).unwrap();
        assert_eq!(result.files.keys().collect::<Vec<_>>(), ["apps/web/deploy.yaml"]);
        assert_eq!(
            std::fs::read_to_string(root.join("apps/web/deploy.yaml")).unwrap(),
            marked.replace("a:1", "ghcr.io/org/app:1.2.4")
        );
        assert_eq!(std::fs::read_to_string(root.join("apps/web/notes.txt")).unwrap(), marked);
        assert_eq!(std::fs::read_to_string(root.join(".git/x.yaml")).unwrap(), marked);
        assert_eq!(result.changes().len(), 1);
        // A second run finds nothing to do.
        assert!(update_dir(root, &policies()).unwrap().is_empty());
        check("a: 1\n", "a: 1\n");
    }

    #[test]
    fn markers_parse_as_flux_writes_them() {
        assert_eq!(
            parse_marker(r#" {"$imagepolicy": "ns:p:tag"}"#),
            Some(Marker {
                policy: "ns:p".into(),
                field: Some("tag".into()),
                setter: "ns:p:tag".into()
            })
        );
        assert_eq!(parse_marker(r#"{"$imagepolicy": "ns:p:bogus"}"#), None);
        assert_eq!(parse_marker(r#"{"$imagepolicy": "p"}"#), None);
        assert_eq!(parse_marker("just a comment"), None);
    }
}
