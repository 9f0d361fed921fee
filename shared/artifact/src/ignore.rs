//! Source ignore rules as Flux applies them (fluxcd/pkg sourceignore): VCS files always, the
//! defaults unless the user gives rules, `.sourceignore` files anywhere in the tree, and `spec.ignore`.

use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Patterns that are always excluded.
pub const VCS_PATTERNS: &[&str] = &[".git/", ".gitignore", ".gitmodules", ".gitattributes"];

/// Patterns excluded when no `.sourceignore` or `spec.ignore` rule exists.
pub const DEFAULT_PATTERNS: &[&str] = &[
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.png",
    "*.wmv",
    "*.flv",
    "*.tar.gz",
    "*.zip",
    ".github/",
    ".circleci/",
    ".travis.yml",
    ".gitlab-ci.yml",
    "appveyor.yml",
    ".drone.yml",
    "cloudbuild.yaml",
    "codeship-services.yml",
    "codeship-steps.yml",
    "**/.goreleaser.yml",
    "**/.sops.yaml",
    "**/.flux.yaml",
];

/// Name of the per-directory ignore file.
pub const SOURCE_IGNORE_FILE: &str = ".sourceignore";

/// The ignore rules of one source tree.
#[derive(Debug)]
pub struct SourceIgnore {
    /// Matchers in precedence order: the root's first, deeper `.sourceignore` files later.
    matchers: Vec<(PathBuf, Gitignore)>,
}

impl SourceIgnore {
    /// Loads the rules for the tree at `root`: `.sourceignore` files found in the tree (not in
    /// ignored directories), then `spec_ignore` (the object's `spec.ignore`).
    pub fn load(root: &Path, spec_ignore: Option<&str>) -> Result<Self, ignore::Error> {
        let mut paths = Vec::new();
        collect_sourceignore_files(root, root, &mut paths);
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let contents =
                std::fs::read(&path).map_err(|err| with_path(&path, None, err.into()))?;
            files.push((path, contents));
        }
        Self::from_files(root, files, spec_ignore)
    }

    /// The rules of a tree that is not on disk (a Git tree read from the object database):
    /// `files` are the `.sourceignore` files of the tree as (path under `root`, contents), in
    /// any order. Gives the same rules as [`SourceIgnore::load`] of that tree checked out at `root`.
    pub fn from_files(
        root: &Path,
        mut files: Vec<(PathBuf, Vec<u8>)>,
        spec_ignore: Option<&str>,
    ) -> Result<Self, ignore::Error> {
        // The order `load` finds them in: depth first, each directory's entries sorted by name.
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let has_user_rules =
            !files.is_empty() || spec_ignore.is_some_and(|rules| rules.lines().any(is_rule));

        let mut base = GitignoreBuilder::new(root);
        for pattern in VCS_PATTERNS {
            base.add_line(None, pattern)?;
        }
        if !has_user_rules {
            for pattern in DEFAULT_PATTERNS {
                base.add_line(None, pattern)?;
            }
        }
        let mut matchers = vec![(root.to_path_buf(), base.build()?)];
        for (file, contents) in files {
            let dir = file.parent().unwrap_or(root).to_path_buf();
            let mut builder = GitignoreBuilder::new(&dir);
            add_file_lines(&mut builder, &file, &contents)?;
            matchers.push((dir, builder.build()?));
        }
        if let Some(rules) = spec_ignore {
            let mut builder = GitignoreBuilder::new(root);
            for line in rules.lines() {
                builder.add_line(None, line)?;
            }
            matchers.push((root.to_path_buf(), builder.build()?));
        }
        // Deeper directories take precedence over shallower ones, as with nested .gitignore files;
        // the stable sort keeps spec.ignore after the root's own file.
        matchers.sort_by_key(|(dir, _)| dir.components().count());
        Ok(SourceIgnore { matchers })
    }

    /// Whether `path` (absolute, inside the root) is excluded.
    pub fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        let mut ignored = false;
        for (dir, matcher) in &self.matchers {
            if !path.starts_with(dir) {
                continue;
            }
            match matcher.matched(path, is_dir) {
                Match::Ignore(_) => ignored = true,
                Match::Whitelist(_) => ignored = false,
                Match::None => {}
            }
        }
        ignored
    }
}

/// Adds the lines of an ignore file as `GitignoreBuilder::add` reads them from disk: split by
/// `BufRead::lines`, a UTF-8 BOM dropped from the first line, the first bad line an error.
fn add_file_lines(
    builder: &mut GitignoreBuilder,
    file: &Path,
    contents: &[u8],
) -> Result<(), ignore::Error> {
    use std::io::BufRead;
    for (i, line) in contents.lines().enumerate() {
        let line_number = Some(i as u64 + 1);
        let line = line.map_err(|err| with_path(file, line_number, err.into()))?;
        let line = if i == 0 { line.trim_start_matches('\u{feff}') } else { &line };
        builder
            .add_line(Some(file.to_path_buf()), line)
            .map_err(|err| with_path(file, line_number, err))?;
    }
    Ok(())
}

/// `err` tagged with the file (and line) it comes from.
fn with_path(file: &Path, line: Option<u64>, err: ignore::Error) -> ignore::Error {
    let err = match line {
        Some(line) => ignore::Error::WithLineNumber { line, err: Box::new(err) },
        None => err,
    };
    ignore::Error::WithPath { path: file.to_path_buf(), err: Box::new(err) }
}

fn is_rule(line: &str) -> bool {
    let line = line.trim();
    !line.is_empty() && !line.starts_with('#')
}

fn collect_sourceignore_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let Ok(file_type) = entry.file_type() else { continue };
        let path = entry.path();
        if file_type.is_dir() {
            if entry.file_name() != ".git" {
                collect_sourceignore_files(root, &path, out);
            }
        } else if file_type.is_file() && entry.file_name() == SOURCE_IGNORE_FILE {
            out.push(path);
        }
    }
    let _ = root;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, contents) in files.iter().map(|f| f.split_once('=').unwrap_or((f, ""))) {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, contents).unwrap();
        }
        dir
    }

    #[track_caller]
    fn check(files: &[&str], spec_ignore: Option<&str>, path: &str, expected_ignored: bool) {
        let dir = tree(files);
        let rules = SourceIgnore::load(dir.path(), spec_ignore).unwrap();
        let full = dir.path().join(path);
        assert_eq!(rules.is_ignored(&full, full.is_dir()), expected_ignored, "{path}");
    }

    #[test]
    fn rules() {
        check(&["a.yaml"], None, "a.yaml", false);
        check(&["logo.png"], None, "logo.png", true);
        check(&[".github/workflows/ci.yaml"], None, ".github", true);
        check(&[".gitignore"], None, ".gitignore", true);
        check(&["deep/dir/.sops.yaml"], None, "deep/dir/.sops.yaml", true);
        // User rules replace the defaults but never the VCS patterns.
        check(&["logo.png", ".sourceignore=*.md\n"], None, "logo.png", false);
        check(&[".gitignore", ".sourceignore=*.md\n"], None, ".gitignore", true);
        check(&["README.md", ".sourceignore=*.md\n"], None, "README.md", true);
        // spec.ignore, with negation.
        check(&["a/x.yaml", "b/y.yaml"], Some("/*\n!/b\n"), "a", true);
        check(&["a/x.yaml", "b/y.yaml"], Some("/*\n!/b\n"), "b", false);
        // A nested .sourceignore applies relative to its directory.
        check(
            &["apps/.sourceignore=/secret.yaml\n", "apps/secret.yaml", "secret.yaml"],
            None,
            "apps/secret.yaml",
            true,
        );
        check(
            &["apps/.sourceignore=/secret.yaml\n", "apps/secret.yaml", "secret.yaml"],
            None,
            "secret.yaml",
            false,
        );
    }
}
