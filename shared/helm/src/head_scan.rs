//! A cheap line scan of a rendered document for what Helm's install-order sort reads of it
//! (`releaseutil.SimpleHead`: `kind` and the `helm.sh/hook` annotation).
//!
//! Helm parses every rendered document, so an invalid one fails the render; a full YAML parse
//! of every document is also most of the cost of sorting. Rendered manifests are almost always
//! plain block YAML: mappings and sequences by indentation, plain or one-line quoted scalars,
//! block scalars. [`scan`] recognises that subset conservatively and proves the document is
//! valid on the way; anything outside it (flow collections, anchors, aliases, tags, multi-line
//! flow scalars, tabs, non-ASCII text, numbers JSON cannot hold, unusual indentation) makes it
//! answer `None`, and the caller parses the document with the full parser, which gives the
//! result or Helm's error. The unit tests compare both on documents and mutations of them.

use serde_json::Value as Json;

/// What the sort needs of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The top-level `kind` (empty when there is none).
    pub kind: String,
    /// `metadata.annotations["helm.sh/hook"]`, when present.
    pub hook: Option<String>,
}

/// Documents longer than this are left to the parser (its node limit applies to them).
const MAX_LEN: usize = 1 << 20;
/// Deeper nesting is left to the parser.
const MAX_DEPTH: usize = 64;
/// Longer keys are left to the parser (YAML limits implicit keys to 1024 characters).
const MAX_KEY_LEN: usize = 256;

/// Which collection of the head a mapping is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Root,
    Metadata,
    Annotations,
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    /// Column of the mapping's keys or the sequence's dashes.
    indent: usize,
    is_map: bool,
    /// A sequence at its parent key's column (`key:\n- item`).
    indentless: bool,
    role: Role,
}

/// A node announced by `key:` or `-` with nothing after it: a nested collection on the next
/// lines, or null.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Column of the key or the dash.
    column: usize,
    /// Whether a sequence may start at `column` (only under a mapping key).
    indentless_ok: bool,
    role: Role,
}

/// A block scalar being skipped.
#[derive(Debug, Clone, Copy)]
struct BlockScalar {
    /// Its content must be indented more than this column.
    parent: usize,
    /// The content's indentation, once its first non-empty line was seen.
    indent: Option<usize>,
}

#[derive(Default)]
struct Found {
    kind: Option<String>,
    metadata_seen: bool,
    annotations_seen: bool,
    hook: Option<String>,
}

/// A node written after `key:` or `- ` on one line.
enum Scalar<'a> {
    /// Plain text (comment and trailing spaces removed).
    Plain(&'a str),
    /// A double-quoted string, as written between the quotes (escapes checked).
    Double(&'a str),
    /// A single-quoted string, as written between the quotes.
    Single(&'a str),
    /// `{}` (true) or `[]`.
    Empty(bool),
    /// A block scalar header (`|`, `>-`, …): its content follows on the next lines.
    Block,
}

impl Scalar<'_> {
    /// The string this scalar reads as, or `None` when it is not a string.
    fn string(&self) -> Option<String> {
        match self {
            Scalar::Plain(text) => crate::yaml::plain_is_string(text).then(|| text.to_string()),
            Scalar::Double(raw) => Some(unescape_double(raw)),
            Scalar::Single(raw) => Some(raw.replace("''", "'")),
            Scalar::Empty(_) | Scalar::Block => None,
        }
    }
}

/// The head of `doc` when it is plain block YAML the parser accepts; `None` means "parse it".
pub(crate) fn scan(doc: &str) -> Option<Head> {
    if doc.len() > MAX_LEN || !doc.bytes().all(|b| b == b'\n' || (0x20..0x7f).contains(&b)) {
        return None;
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut pending: Option<Pending> = None;
    let mut block: Option<BlockScalar> = None;
    let mut found = Found::default();
    for line in doc.split('\n') {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        if let Some(scalar) = &mut block {
            if rest.is_empty() {
                // Empty lines before the first content line must be truly empty (no spaces
                // beyond the content's indentation, which is not known yet).
                if scalar.indent.is_none() && !line.is_empty() {
                    return None;
                }
                continue;
            }
            let content_indent = *scalar.indent.get_or_insert(indent);
            if content_indent > scalar.parent && indent >= content_indent {
                continue;
            }
            block = None;
        }
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if indent == 0
            && (rest.starts_with("---") || rest.starts_with("...") || rest.starts_with('%'))
        {
            return None;
        }
        let is_dash = rest == "-" || rest.starts_with("- ");
        if let Some(p) = pending.take() {
            if indent > p.column || (indent == p.column && p.indentless_ok && is_dash) {
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(Frame {
                    indent,
                    is_map: !is_dash,
                    indentless: indent == p.column,
                    role: if is_dash { Role::Other } else { p.role },
                });
            } else if p.role != Role::Other {
                // `metadata:` or `annotations:` with a null value: leave it to the parser.
                return None;
            }
        }
        while let Some(top) = stack.last() {
            if top.indent > indent || (top.indent == indent && top.indentless && !is_dash) {
                stack.pop();
            } else {
                break;
            }
        }
        let frame = match stack.last() {
            Some(frame) if frame.indent == indent => *frame,
            Some(_) => return None,
            // The root mapping starts at the first content line; nothing pops it.
            None if indent == 0 && !is_dash => {
                let root = Frame { indent: 0, is_map: true, indentless: false, role: Role::Root };
                stack.push(root);
                root
            }
            None => return None,
        };
        let outcome = if frame.is_map {
            map_entry(rest, indent, frame.role, &mut found)?
        } else {
            if !is_dash {
                return None;
            }
            let after = &rest[1..];
            let content = after.trim_start_matches(' ');
            let column = indent + 1 + (after.len() - content.len());
            if content.is_empty() || content.starts_with('#') {
                Outcome::Pending(Pending {
                    column: indent,
                    indentless_ok: false,
                    role: Role::Other,
                })
            } else if content == "-" || content.starts_with("- ") {
                return None;
            } else if key_len(content).is_some() {
                // `- key: value` opens a mapping at the key's column.
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(Frame {
                    indent: column,
                    is_map: true,
                    indentless: false,
                    role: Role::Other,
                });
                map_entry(content, column, Role::Other, &mut found)?
            } else {
                match value(content)? {
                    Scalar::Block => Outcome::Block(indent),
                    _ => Outcome::Done,
                }
            }
        };
        match outcome {
            Outcome::Done => {}
            Outcome::Pending(p) => pending = Some(p),
            Outcome::Block(parent) => block = Some(BlockScalar { parent, indent: None }),
        }
    }
    if let Some(p) = pending
        && p.role != Role::Other
    {
        return None;
    }
    if stack.is_empty() {
        // Only comments: the parser decides.
        return None;
    }
    Some(Head { kind: found.kind.unwrap_or_default(), hook: found.hook })
}

/// What a line leaves open.
enum Outcome {
    Done,
    Pending(Pending),
    /// A block scalar whose content must be indented more than this column.
    Block(usize),
}

/// The length of the plain key at the start of `text` when `text` is `key:` or `key: …`.
fn key_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let first = *bytes.first()?;
    if !(first.is_ascii_alphanumeric() || first == b'_' || first == b'.' || first == b'/') {
        return None;
    }
    let len = bytes
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-')))
        .unwrap_or(bytes.len());
    if len > MAX_KEY_LEN || bytes.get(len) != Some(&b':') {
        return None;
    }
    match bytes.get(len + 1) {
        None | Some(b' ') => Some(len),
        _ => None,
    }
}

/// One `key: value` line of a mapping whose keys are at `column`.
fn map_entry(text: &str, column: usize, role: Role, found: &mut Found) -> Option<Outcome> {
    let len = key_len(text)?;
    let key = &text[..len];
    let after = text[len + 1..].trim_start_matches(' ');
    let child_role = match (role, key) {
        (Role::Root, "kind") => {
            if found.kind.is_some() {
                return None;
            }
            found.kind = Some(value(after)?.string()?);
            return Some(Outcome::Done);
        }
        (Role::Root, "metadata") => {
            if std::mem::replace(&mut found.metadata_seen, true) {
                return None;
            }
            Role::Metadata
        }
        (Role::Metadata, "annotations") => {
            if std::mem::replace(&mut found.annotations_seen, true) {
                return None;
            }
            Role::Annotations
        }
        (Role::Annotations, "helm.sh/hook") => {
            if found.hook.is_some() {
                return None;
            }
            found.hook = Some(value(after)?.string()?);
            return Some(Outcome::Done);
        }
        _ => Role::Other,
    };
    if after.is_empty() || after.starts_with('#') {
        return Some(Outcome::Pending(Pending { column, indentless_ok: true, role: child_role }));
    }
    match value(after)? {
        Scalar::Block if child_role != Role::Other => None,
        Scalar::Block => Some(Outcome::Block(column)),
        // A scalar `metadata` or `annotations`: the head has no annotations then, as with the
        // parser (a string has no fields).
        _ => Some(Outcome::Done),
    }
}

/// The node `text` (not a comment) on one line, or `None` when it is anything else.
fn value(text: &str) -> Option<Scalar<'_>> {
    let bytes = text.as_bytes();
    match *bytes.first()? {
        b'|' | b'>' => {
            let mut rest = &text[1..];
            if rest.starts_with('-') || rest.starts_with('+') {
                rest = &rest[1..];
            }
            line_end(rest)?;
            Some(Scalar::Block)
        }
        b'"' => {
            let end = double_quoted_end(text)?;
            line_end(&text[end + 1..])?;
            Some(Scalar::Double(&text[1..end]))
        }
        b'\'' => {
            let end = single_quoted_end(text)?;
            line_end(&text[end + 1..])?;
            Some(Scalar::Single(&text[1..end]))
        }
        b'{' | b'[' => {
            if !(text.starts_with("{}") || text.starts_with("[]")) {
                return None;
            }
            line_end(&text[2..])?;
            Some(Scalar::Empty(text.starts_with('{')))
        }
        b'-' => match bytes.get(1) {
            Some(b'-') if bytes.get(2) == Some(&b'-') => None,
            Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-') => plain(text),
            _ => None,
        },
        b if b.is_ascii_alphanumeric()
            || matches!(b, b'_' | b'.' | b'/' | b'$' | b'(' | b'+' | b'=' | b'~' | b'^') =>
        {
            plain(text)
        }
        _ => None,
    }
}

/// A plain scalar running to the end of the line (or a ` #` comment).
fn plain(text: &str) -> Option<Scalar<'_>> {
    let bytes = text.as_bytes();
    let mut end = bytes.len();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b':' if matches!(bytes.get(i + 1), None | Some(b' ')) => return None,
            b'#' if i > 0 && bytes[i - 1] == b' ' => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let value = text[..end].trim_end_matches(' ');
    if crate::yaml::plain_is_non_finite_number(value) {
        return None;
    }
    Some(Scalar::Plain(value))
}

/// After a scalar on its line: spaces, then the end of the line or a comment.
fn line_end(rest: &str) -> Option<()> {
    let trimmed = rest.trim_start_matches(' ');
    (trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < rest.len())).then_some(())
}

/// Escapes [`double_quoted_end`] accepts, and what they stand for.
fn escaped_char(c: u8) -> Option<char> {
    Some(match c {
        b'\\' => '\\',
        b'"' => '"',
        b'/' => '/',
        b'n' => '\n',
        b't' => '\t',
        b'r' => '\r',
        b'0' => '\0',
        b' ' => ' ',
        _ => return None,
    })
}

/// The offset of the quote closing the double-quoted scalar `text` starts with, when it closes
/// on this line and uses only the common escapes.
fn double_quoted_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some(i),
            b'\\' => {
                escaped_char(*bytes.get(i + 1)?)?;
                i += 2;
            }
            _ => i += 1,
        }
    }
    None
}

/// The text of a double-quoted scalar checked by [`double_quoted_end`].
fn unescape_double(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => out.extend(bytes.next().and_then(escaped_char)),
            b => out.push(char::from(b)),
        }
    }
    out
}

/// The offset of the quote closing the single-quoted scalar `text` starts with (`''` is a
/// quote), when it closes on this line.
fn single_quoted_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

/// A collection of [`load`] being built.
enum Node {
    /// A mapping and the key whose value comes on the next lines.
    Map(serde_json::Map<String, Json>, Option<String>),
    Seq(Vec<Json>),
}

struct Building {
    /// Column of the keys or dashes.
    indent: usize,
    /// A sequence at its parent key's column.
    indentless: bool,
    node: Node,
}

impl Building {
    /// Stores a value for the key or item announced last.
    fn attach(&mut self, value: Json) {
        match &mut self.node {
            Node::Map(map, key) => {
                if let Some(key) = key.take() {
                    // Later duplicates win and move to the end, as the parser's conversion does.
                    map.shift_remove(&key);
                    map.insert(key, value);
                }
            }
            Node::Seq(items) => items.push(value),
        }
    }

    fn finish(self) -> Json {
        match self.node {
            Node::Map(map, _) => Json::Object(map),
            Node::Seq(items) => Json::Array(items),
        }
    }
}

/// The JSON value of a one-line scalar (`None` for block scalars).
fn scalar_json(scalar: &Scalar<'_>) -> Option<Json> {
    Some(match scalar {
        Scalar::Plain(text) => crate::yaml::plain_json(text)?,
        Scalar::Double(raw) => Json::String(unescape_double(raw)),
        Scalar::Single(raw) => Json::String(raw.replace("''", "'")),
        Scalar::Empty(true) => Json::Object(serde_json::Map::new()),
        Scalar::Empty(false) => Json::Array(Vec::new()),
        Scalar::Block => return None,
    })
}

/// `doc` read as the parser reads it ([`crate::yaml::from_yaml`]), when it is one document of
/// plain block YAML without block scalars; `None` means "parse it".
pub(crate) fn load(doc: &str) -> Option<Json> {
    if doc.len() > MAX_LEN || !doc.bytes().all(|b| b == b'\n' || (0x20..0x7f).contains(&b)) {
        return None;
    }
    let mut stack: Vec<Building> = Vec::new();
    // The column of a `key:` or `-` whose value comes on the next lines, and whether a
    // sequence may start at that column.
    let mut pending: Option<(usize, bool)> = None;
    for line in doc.split('\n') {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if indent == 0
            && (rest.starts_with("---") || rest.starts_with("...") || rest.starts_with('%'))
        {
            return None;
        }
        let is_dash = rest == "-" || rest.starts_with("- ");
        if let Some((column, indentless_ok)) = pending.take() {
            if indent > column || (indent == column && indentless_ok && is_dash) {
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                let node = if is_dash {
                    Node::Seq(Vec::new())
                } else {
                    Node::Map(serde_json::Map::new(), None)
                };
                stack.push(Building { indent, indentless: indent == column, node });
            } else {
                stack.last_mut()?.attach(Json::Null);
            }
        }
        while let Some(top) = stack.last() {
            if top.indent > indent || (top.indent == indent && top.indentless && !is_dash) {
                let done = stack.pop()?.finish();
                stack.last_mut()?.attach(done);
            } else {
                break;
            }
        }
        match stack.last() {
            Some(top) if top.indent == indent => {}
            Some(_) => return None,
            None if indent == 0 && !is_dash => {
                let node = Node::Map(serde_json::Map::new(), None);
                stack.push(Building { indent: 0, indentless: false, node });
            }
            None => return None,
        }
        let mut text = rest;
        let mut column = indent;
        if matches!(stack.last()?.node, Node::Seq(_)) {
            if !is_dash {
                return None;
            }
            let after = &rest[1..];
            let content = after.trim_start_matches(' ');
            if content.is_empty() || content.starts_with('#') {
                pending = Some((indent, false));
                continue;
            }
            if content == "-" || content.starts_with("- ") {
                return None;
            }
            if key_len(content).is_none() {
                let value = scalar_json(&value(content)?)?;
                stack.last_mut()?.attach(value);
                continue;
            }
            // `- key: value` opens a mapping at the key's column.
            if stack.len() >= MAX_DEPTH {
                return None;
            }
            column = indent + 1 + (after.len() - content.len());
            let node = Node::Map(serde_json::Map::new(), None);
            stack.push(Building { indent: column, indentless: false, node });
            text = content;
        }
        let len = key_len(text)?;
        let key = crate::yaml::plain_key(&text[..len])?;
        let after = text[len + 1..].trim_start_matches(' ');
        let top = stack.last_mut()?;
        if let Node::Map(_, awaiting) = &mut top.node {
            *awaiting = Some(key);
        }
        if after.is_empty() || after.starts_with('#') {
            pending = Some((column, true));
            continue;
        }
        let value = scalar_json(&value(after)?)?;
        top.attach(value);
    }
    if pending.is_some() {
        stack.last_mut()?.attach(Json::Null);
    }
    while stack.len() > 1 {
        let done = stack.pop()?.finish();
        stack.last_mut()?.attach(done);
    }
    stack.pop().map(Building::finish)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head as the full parser reads it (`output::read_head`), `None` when it fails.
    fn parsed(doc: &str) -> Option<Head> {
        let head = crate::yaml::head_from_yaml(doc).ok()?;
        let kind = match head.get("kind") {
            Some(Json::String(s)) => s.clone(),
            None | Some(Json::Null) => String::new(),
            Some(_) => return None,
        };
        let hook = head
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(Json::as_object)
            .and_then(|a| a.get("helm.sh/hook"))
            .map(|v| match v {
                Json::String(s) => s.clone(),
                Json::Null => String::new(),
                other => other.to_string(),
            });
        Some(Head { kind, hook })
    }

    /// Whenever the scan answers, the parser accepts the document and agrees.
    #[track_caller]
    fn check_agrees(doc: &str) -> bool {
        let Some(head) = scan(doc) else { return false };
        assert_eq!(Some(head), parsed(doc), "scan and parser disagree on {doc:?}");
        true
    }

    const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo-bench-svc-0000
  namespace: prod
  labels:
    helm.sh/chart: bench-1.2.3
    app.kubernetes.io/name: bench
    app.kubernetes.io/version: "2.0.0"
  annotations:
    bench.example.com/env: "prod"
    bench.example.com/managed: "true"
spec:
  replicas: 2
  template:
    metadata:
      annotations:
        checksum/config: 5d41402abc4b2a76b9719d911017c592
    spec:
      containers:
      - name: svc-0000
        image: "registry.example.com/library/app:2.0.0"
        args:
        - --port=8080
        - -v
        ports:
        - name: http
          containerPort: 8080
          protocol: TCP
        env:
          - name: A
            value: 'it''s # not a comment'
          - name: B
            value: x # a comment
        resources: {}
        command: []
      nodeSelector:
        kubernetes.io/os: linux
"#;

    const HOOK_JOB: &str = "# leading comment\nkind: Job\nmetadata:\n  name: j\n  annotations:\n    \"helm.sh/hook-weight\": \"1\"\n    helm.sh/hook: pre-install,post-upgrade\n    helm.sh/hook-delete-policy: hook-succeeded\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n";

    const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  annotations:\n    helm.sh/hook: \"test\"\ndata:\n  settings.yaml: |\n    level1:\n      k: v: w\n    # not a comment\n\n    - x\n  folded: >-\n    a\n    b\n  keep: |+\n    text\n\n  empty: |\n  after: \"\\\"quoted\\\"\"\n  list:\n  -\n  - - nested\n";

    #[test]
    fn reads_rendered_manifests() {
        assert_eq!(
            scan(DEPLOYMENT),
            Some(Head { kind: "Deployment".into(), hook: None }),
            "the common shape is scanned"
        );
        assert!(check_agrees(DEPLOYMENT));
        assert_eq!(scan(HOOK_JOB), None, "quoted keys are left to the parser");
        let job = HOOK_JOB.replace("\"helm.sh/hook-weight\"", "helm.sh/hook-weight");
        assert_eq!(
            scan(&job),
            Some(Head { kind: "Job".into(), hook: Some("pre-install,post-upgrade".into()) })
        );
        assert!(check_agrees(&job));
        // `- - nested` is left to the parser.
        assert_eq!(scan(CONFIG_MAP), None);
        let cm = CONFIG_MAP.replace("  - - nested\n", "  - nested\n");
        assert_eq!(scan(&cm), Some(Head { kind: "ConfigMap".into(), hook: Some("test".into()) }));
        assert!(check_agrees(&cm));
    }

    #[test]
    fn leaves_what_it_cannot_prove_to_the_parser() {
        for doc in [
            "kind: A\nmetadata: &m\n  name: x\n",
            "kind: A\nx: *m\n",
            "kind: !!str A\n",
            "kind: A\nspec: {a: 1}\n",
            "kind: A\nspec: [1, 2]\n",
            "kind: A\nspec: a: b\n",
            "kind: A\nspec: a:\n",
            "kind: A\nspec: plain\n  continued\n",
            "kind: A\nspec: \"multi\n  line\"\n",
            "kind: A\n\tspec: 1\n",
            "kind: A\nspec: café\n",
            "kind: A\nspec: .nan\n",
            "kind: A\nspec: 1e999\n",
            "kind: 5\n",
            "kind: null\n",
            "kind: A\nkind: B\n",
            "kind: A\nmetadata:\n",
            "- a\n- b\n",
            "just text\n",
            "# only a comment\n",
            "kind: A\n---\nkind: B\n",
            "kind: A\nspec: |2\n    x\n",
            "kind: A\nspec: |\n      \n    x\n",
            "  kind: A\n",
            "kind: A\nspec:\n  a: 1\n b: 2\n",
            "kind: A\n<<: {a: 1}\n",
            "kind: A\n? complex\n: key\n",
            "kind: A\r\nspec: 1\r\n",
            "kind: A\nspec: @x\n",
            "kind: A\nspec: \"\\u0041\"\n",
        ] {
            assert_eq!(scan(doc), None, "{doc:?}");
        }
    }

    /// Edits of `doc`: every byte deleted, a set of characters inserted everywhere, and lines
    /// re-indented, duplicated or dropped.
    fn mutations(doc: &str) -> Vec<String> {
        let mut out = Vec::new();
        let boundaries: Vec<usize> = (0..=doc.len()).filter(|i| doc.is_char_boundary(*i)).collect();
        for window in boundaries.windows(2) {
            out.push(format!("{}{}", &doc[..window[0]], &doc[window[1]..]));
        }
        for &i in &boundaries {
            for insert in [
                " ", ":", "-", "#", "\"", "'", "|", ">", "{", "[", "\n", "a", "&", "*", "!", "?",
                ".", "0", "\\", ": ", "- ", " #", "\n- x", "\n  ",
            ] {
                out.push(format!("{}{insert}{}", &doc[..i], &doc[i..]));
            }
        }
        let lines: Vec<&str> = doc.split('\n').collect();
        for i in 0..lines.len() {
            let edit = |f: &dyn Fn(&str) -> Option<String>| -> String {
                lines
                    .iter()
                    .enumerate()
                    .filter_map(|(j, l)| if j == i { f(l) } else { Some(l.to_string()) })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            out.push(edit(&|l| Some(format!(" {l}"))));
            out.push(edit(&|l| Some(format!("  {l}"))));
            out.push(edit(&|l| Some(l.strip_prefix(' ').unwrap_or(l).to_string())));
            out.push(edit(&|l| Some(l.strip_prefix("  ").unwrap_or(l).to_string())));
            out.push(edit(&|l| Some(format!("{l}\n{l}"))));
            out.push(edit(&|_| None));
        }
        out
    }

    #[test]
    fn agrees_with_the_parser_on_mutated_documents() {
        let job = HOOK_JOB.replace("\"helm.sh/hook-weight\"", "helm.sh/hook-weight");
        let cm = CONFIG_MAP.replace("  - - nested\n", "  - nested\n");
        let mut scanned = 0;
        let mut total = 0;
        for base in [DEPLOYMENT, job.as_str(), cm.as_str()] {
            for doc in mutations(base).iter().step_by(3) {
                total += 1;
                if check_agrees(doc) {
                    scanned += 1;
                }
            }
        }
        // Most edits keep the document in the scanned subset or make it invalid.
        assert!(scanned > total / 5, "{scanned} of {total} scanned");
    }

    /// Every document the Helm conformance corpus expects (when `../shared` is present), and
    /// its mutations.
    #[test]
    fn agrees_with_the_parser_on_the_conformance_corpus() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/helm-conformance");
        let Ok(cases) = std::fs::read_dir(&corpus) else {
            eprintln!("skipped: {} not found", corpus.display());
            return;
        };
        let mut docs = Vec::new();
        for case in cases.flatten() {
            let Ok(expected) = std::fs::read_to_string(case.path().join("expected.yaml")) else {
                continue;
            };
            let text: String = expected
                .lines()
                .filter(|l| !l.starts_with("# Source: "))
                .map(|l| format!("{l}\n"))
                .collect();
            docs.extend(crate::output::split_manifests(&text));
        }
        assert!(!docs.is_empty());
        let mut scanned = 0;
        for doc in &docs {
            if check_agrees(doc) {
                scanned += 1;
            }
        }
        eprintln!("{scanned} of {} corpus documents scanned", docs.len());
        for doc in docs.iter().filter(|d| d.len() < 600).step_by(7).take(12) {
            for mutated in mutations(doc) {
                check_agrees(&mutated);
            }
        }
    }

    /// Whenever the loader answers, the parser reads the same value.
    #[track_caller]
    fn check_loads(doc: &str) -> bool {
        let Some(value) = load(doc) else { return false };
        let parsed = crate::yaml::parse_documents_fully(doc, false);
        assert!(
            matches!(&parsed, Ok(docs) if docs.len() == 1 && docs[0] == value),
            "loader and parser disagree on {doc:?}: {value:?} vs {parsed:?}"
        );
        // Key order too (later duplicates move to the end).
        assert_eq!(value.to_string(), parsed.unwrap()[0].to_string(), "{doc:?}");
        true
    }

    const VALUES: &str = "# values\nreplicas: 2\nname: \"a\\\"b\"\nratio: 0.5\nbig: 1e3\nflag: yes\nnothing:\nempty: ''\n'quoted': no\ny: 1\n1.0: one\nlist:\n- a\n- 010\n-\n- k: v\n  other: [] # c\n- {}\nnested:\n  deeper:\n    leaf: ~\n  list:\n    - x\n    - 0x1F\ndup: 1\ndup: 2\nenv:\n  A: \"1\\n2\"\n  B: 'it''s'\n";

    #[test]
    fn loads_plain_block_yaml_like_the_parser() {
        let simple = VALUES.replace("'quoted': no\n", "");
        assert!(check_loads(&simple), "values are loaded without the parser");
        assert_eq!(load(VALUES), None, "quoted keys are left to the parser");
        let mut loaded = 0;
        let mut total = 0;
        for doc in mutations(&simple) {
            total += 1;
            if check_loads(&doc) {
                loaded += 1;
            }
        }
        assert!(loaded > total / 5, "{loaded} of {total} loaded");
        for base in [DEPLOYMENT, CONFIG_MAP] {
            for doc in mutations(base).iter().step_by(9) {
                check_loads(doc);
            }
        }
    }

    /// The corpus's values files and expected documents (when `../shared` is present).
    #[test]
    fn loads_the_conformance_corpus_like_the_parser() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/helm-conformance");
        let Ok(cases) = std::fs::read_dir(&corpus) else {
            eprintln!("skipped: {} not found", corpus.display());
            return;
        };
        let mut loaded = 0;
        for case in cases.flatten() {
            let mut texts = Vec::new();
            for name in ["values.yaml", "chart/values.yaml", "chart/Chart.yaml", "expected.yaml"] {
                if let Ok(text) = std::fs::read_to_string(case.path().join(name)) {
                    texts.push(text);
                }
            }
            for text in texts {
                if check_loads(&text) {
                    loaded += 1;
                }
                for doc in crate::output::split_manifests(&text) {
                    check_loads(&doc);
                }
            }
        }
        eprintln!("{loaded} corpus files loaded without the parser");
    }
}
