//! Writing to a remote: clone a branch for editing, commit every change and push with the `git` CLI.
//!
//! gix cannot push (GitoxideLabs/gitoxide#306), so commits and pushes run `git`, with the
//! credentials passed as `GIT_CONFIG_*` variables or an ssh command, never in argv.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{HttpOptions, PreparedAuth};
use crate::checkout::{Deadline, read_head_commit};
use crate::cli::run_git;
use crate::url::RemoteUrl;
use crate::{Auth, CheckoutOptions, Commit, Error, GitRef, Revision};

/// The author and committer of a new commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// Name, e.g. `Flux`.
    pub name: String,
    /// E-mail address, e.g. `flux@example.com`.
    pub email: String,
}

/// How [`push`] updates the remote.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Overwrite the remote branch even when the push is not a fast-forward.
    pub force: bool,
    /// Push options (`git push -o`), e.g. GitLab merge-request options.
    pub push_options: Vec<String>,
    /// An extra refspec pushed too (`spec.git.push.refspec`), e.g. `HEAD:refs/for/main`.
    pub refspec: Option<String>,
    /// Limit for the push; 60 s when `None`.
    pub timeout: Option<Duration>,
    /// CA certificates and proxy for `http(s)://` remotes.
    pub http: HttpOptions,
}

/// Clone the full history of `branch` into `dest` for editing, with `origin` set to `url`.
///
/// Uses the timeout and HTTP settings of `options`; its shallow, submodule and sparse settings
/// do not apply.
///
/// When the remote has no such branch (a new or empty repository, as in bootstrap), `dest`
/// becomes an empty repository whose unborn branch is `branch`, ready for a first commit.
/// Returns the checked-out commit, or `None` for the empty case.
///
/// # Errors
///
/// As [`crate::checkout`].
pub fn clone_for_write(
    url: &str,
    auth: &Auth,
    branch: &str,
    dest: &Path,
    options: &CheckoutOptions,
) -> Result<Option<Commit>, Error> {
    let remote = RemoteUrl::parse(url)?;
    crate::reference::validate_ref_name("branch", branch)?;
    let prepared = Arc::new(PreparedAuth::new(auth, &remote, &options.http)?);
    let timeout = options.timeout;
    let exists =
        match crate::remote_revision(url, auth, &GitRef::Branch(branch.to_owned()), options) {
            Ok(_) => true,
            Err(Error::RefNotFound { .. }) => false,
            Err(err) => return Err(err),
        };
    let deadline = Deadline::start(timeout);
    std::fs::create_dir_all(dest).map_err(|err| Error::io("creating directory", dest, err))?;
    if !exists {
        let transport_url = remote.to_transport_url();
        for args in [
            vec!["init", "--quiet", "--initial-branch", branch],
            vec!["remote", "add", "origin", transport_url.as_str()],
        ] {
            let output = run_git(dest, &args, &prepared, deadline.remaining())?;
            if !output.success {
                return Err(Error::Repository {
                    path: dest.to_owned(),
                    detail: output.stderr.trim().to_owned(),
                });
            }
        }
        return Ok(None);
    }
    let transport_url = remote.to_transport_url();
    let args = [
        "clone",
        "--quiet",
        "--single-branch",
        "--branch",
        branch,
        "--no-tags",
        "--",
        transport_url.as_str(),
        ".",
    ];
    let output = run_git(dest, &args, &prepared, deadline.remaining())?;
    if output.timed_out {
        return Err(Error::Timeout { operation: "clone", url: remote.to_redacted(), timeout });
    }
    if !output.success {
        return Err(crate::checkout::classify_cli("clone", &output.stderr, &remote, &prepared));
    }
    let repo = gix::open(dest).map_err(|err| Error::Repository {
        path: dest.to_owned(),
        detail: crate::checkout::describe(&err),
    })?;
    let mut commit = read_head_commit(&repo)
        .map_err(|detail| Error::Repository { path: dest.to_owned(), detail })?;
    commit.revision = Revision { reference: Some(branch.to_owned()), sha: commit.sha.clone() };
    Ok(Some(commit))
}

/// Stage every change in `repo_dir`, commit it as `author` with `message`, and push to `branch`
/// of `origin`.
///
/// Returns `None` without committing when the worktree has no changes, so a no-op
/// automation run makes no commit.
///
/// # Errors
///
/// [`Error::PushRejected`] when the remote refuses (for example not a fast-forward),
/// [`Error::AuthenticationFailed`], [`Error::Timeout`], and [`Error::Repository`] for local failures.
pub fn commit_all_and_push(
    repo_dir: &Path,
    auth: &Auth,
    branch: &str,
    author: &Author,
    message: &str,
) -> Result<Option<Commit>, Error> {
    let Some(mut commit) = commit_all(repo_dir, author, message)? else { return Ok(None) };
    push(repo_dir, auth, branch, &PushOptions::default())?;
    commit.revision = Revision { reference: Some(branch.to_owned()), sha: commit.sha.clone() };
    Ok(Some(commit))
}

/// Stage every change in `repo_dir` and commit it; `None` when there is nothing to commit.
///
/// # Errors
///
/// [`Error::Repository`] when git fails, with its message.
pub fn commit_all(
    repo_dir: &Path,
    author: &Author,
    message: &str,
) -> Result<Option<Commit>, Error> {
    let local = PreparedAuth::local();
    let limit = Duration::from_secs(60);
    let git = |args: &[&str]| -> Result<String, Error> {
        let output = run_git(repo_dir, args, &local, limit)?;
        if output.success {
            Ok(output.stdout)
        } else {
            Err(Error::Repository {
                path: repo_dir.to_owned(),
                detail: output.stderr.trim().to_owned(),
            })
        }
    };
    git(&["add", "--all"])?;
    if git(&["status", "--porcelain"])?.trim().is_empty() {
        return Ok(None);
    }
    let message_dir = tempfile::tempdir()
        .map_err(|err| Error::io("creating temporary directory", std::env::temp_dir(), err))?;
    let message_path = message_dir.path().join("message");
    std::fs::write(&message_path, message)
        .map_err(|err| Error::io("writing", &message_path, err))?;
    let message_arg = message_path.to_string_lossy().into_owned();
    let name = format!("user.name={}", author.name);
    let email = format!("user.email={}", author.email);
    git(&[
        "-c",
        &name,
        "-c",
        &email,
        "-c",
        "commit.gpgsign=false",
        "commit",
        "--quiet",
        "--no-verify",
        "--cleanup=verbatim",
        "--file",
        &message_arg,
    ])?;
    let repo = gix::open(repo_dir).map_err(|err| Error::Repository {
        path: repo_dir.to_owned(),
        detail: crate::checkout::describe(&err),
    })?;
    let commit = read_head_commit(&repo)
        .map_err(|detail| Error::Repository { path: repo_dir.to_owned(), detail })?;
    Ok(Some(commit))
}

/// Like [`commit_all`], and sign the commit with an OpenPGP key (`gpgsig` header), as Flux's
/// image automation does with `spec.git.commit.signingKey`.
///
/// # Errors
///
/// As [`commit_all`], and [`Error::InvalidAuth`] when signing fails.
#[cfg(feature = "verify")]
pub fn commit_all_signed(
    repo_dir: &Path,
    author: &Author,
    message: &str,
    signing_key: &crate::CommitSigningKey,
) -> Result<Option<Commit>, Error> {
    if commit_all(repo_dir, author, message)?.is_none() {
        return Ok(None);
    }
    let local = PreparedAuth::local();
    let limit = Duration::from_secs(60);
    let git = |args: &[&str]| -> Result<String, Error> {
        let output = run_git(repo_dir, args, &local, limit)?;
        if output.success {
            Ok(output.stdout)
        } else {
            Err(Error::Repository {
                path: repo_dir.to_owned(),
                detail: output.stderr.trim().to_owned(),
            })
        }
    };
    let unsigned_sha = git(&["rev-parse", "HEAD"])?.trim().to_owned();
    let unsigned = git(&["cat-file", "commit", "HEAD"])?;
    let Some((header, body)) = unsigned.split_once("\n\n") else {
        return Err(Error::Repository {
            path: repo_dir.to_owned(),
            detail: "commit object has no message separator".into(),
        });
    };
    // The signature covers the commit exactly as it is without the gpgsig header.
    let signature = signing_key.sign(unsigned.as_bytes())?;
    let gpgsig = signature.trim_end().replace('\n', "\n ");
    let signed = format!("{header}\ngpgsig {gpgsig}\n\n{body}");
    let object_dir = tempfile::tempdir()
        .map_err(|err| Error::io("creating temporary directory", std::env::temp_dir(), err))?;
    let object_path = object_dir.path().join("commit");
    std::fs::write(&object_path, signed).map_err(|err| Error::io("writing", &object_path, err))?;
    let object_arg = object_path.to_string_lossy().into_owned();
    let signed_sha =
        git(&["hash-object", "-t", "commit", "-w", "--", &object_arg])?.trim().to_owned();
    git(&["update-ref", "-m", "sign commit", "HEAD", &signed_sha, &unsigned_sha])?;
    let repo = gix::open(repo_dir).map_err(|err| Error::Repository {
        path: repo_dir.to_owned(),
        detail: crate::checkout::describe(&err),
    })?;
    let commit = read_head_commit(&repo)
        .map_err(|detail| Error::Repository { path: repo_dir.to_owned(), detail })?;
    Ok(Some(commit))
}

/// Push `HEAD` of `repo_dir` to `branch` of its `origin` remote.
///
/// # Errors
///
/// As [`commit_all_and_push`].
pub fn push(
    repo_dir: &Path,
    auth: &Auth,
    branch: &str,
    options: &PushOptions,
) -> Result<(), Error> {
    crate::reference::validate_ref_name("branch", branch)?;
    let local = PreparedAuth::local();
    let origin =
        run_git(repo_dir, &["remote", "get-url", "origin"], &local, Duration::from_secs(30))?;
    if !origin.success {
        return Err(Error::Repository {
            path: repo_dir.to_owned(),
            detail: "no remote named 'origin'".into(),
        });
    }
    let remote = RemoteUrl::parse(origin.stdout.trim())?;
    let prepared = PreparedAuth::new(auth, &remote, &options.http)?;
    let timeout = options.timeout.unwrap_or(Duration::from_secs(60));
    let refspec = format!("{}HEAD:refs/heads/{branch}", if options.force { "+" } else { "" });
    let mut args = vec!["push", "--porcelain", "--no-verify"];
    for push_option in &options.push_options {
        args.push("--push-option");
        args.push(push_option);
    }
    // `--` ends option parsing, so a refspec can never be read as an option.
    args.extend(["--", "origin", refspec.as_str()]);
    if let Some(extra) = &options.refspec {
        if extra.is_empty() || extra.chars().any(|c| c.is_whitespace() || c.is_ascii_control()) {
            return Err(Error::InvalidRef {
                kind: "refspec",
                name: extra.clone(),
                reason: "a refspec may not be empty or contain spaces",
            });
        }
        args.push(extra.as_str());
    }
    let output = run_git(repo_dir, &args, &prepared, timeout)?;
    if output.timed_out {
        return Err(Error::Timeout { operation: "push", url: remote.to_redacted(), timeout });
    }
    if output.success {
        return Ok(());
    }
    let combined = format!("{}\n{}", output.stdout, output.stderr);
    if combined.contains("[rejected]")
        || combined.contains("[remote rejected]")
        || combined.contains("non-fast-forward")
    {
        let detail = combined
            .lines()
            .find(|line| line.contains("rejected"))
            .unwrap_or("rejected")
            .trim()
            .to_owned();
        return Err(Error::PushRejected {
            branch: branch.to_owned(),
            url: remote.to_redacted(),
            detail: prepared.redact(&detail),
        });
    }
    Err(crate::checkout::classify_cli("push", &output.stderr, &remote, &prepared))
}
