//! Clone-and-checkout of one reference with gix, and the ls-remote style head check.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::auth::{ClientSettings, HttpOptions, PreparedAuth};
use crate::semver_tag::{self, VersionTag};
use crate::tree::Tree;
use crate::url::RemoteUrl;
use crate::{Auth, Error, GitRef, Revision};

/// Options of [`checkout`].
#[derive(Debug, Clone)]
pub struct CheckoutOptions {
    /// Fetch only the tip commit (depth 1), as Flux does for GitRepository.
    pub shallow: bool,
    /// Also clone submodules (`spec.recurseSubmodules`), with the same credentials.
    pub recurse_submodules: bool,
    /// Limit for the whole operation (`spec.timeout`, Flux's default is 60 s).
    pub timeout: Duration,
    /// Directories to keep (`spec.sparseCheckout`); empty keeps the whole tree.
    pub sparse_paths: Vec<String>,
    /// CA certificates and proxy for `http(s)://` remotes.
    pub http: HttpOptions,
}

impl Default for CheckoutOptions {
    fn default() -> Self {
        CheckoutOptions {
            shallow: true,
            recurse_submodules: false,
            timeout: Duration::from_secs(60),
            sparse_paths: Vec::new(),
            http: HttpOptions::default(),
        }
    }
}

/// A person and time from a commit header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Name, e.g. `Flux`.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// Seconds since the Unix epoch.
    pub time: i64,
}

/// The commit that was checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full SHA-1 in lower-case hex.
    pub sha: String,
    /// The revision as Flux writes it, e.g. `main@sha1:…`.
    pub revision: Revision,
    /// The full commit message.
    pub message: String,
    /// The author.
    pub author: Signature,
    /// The committer.
    pub committer: Signature,
    /// The ASCII-armoured `gpgsig` header (PGP or SSH signature), when the commit is signed.
    pub signature: Option<String>,
    /// The bytes the signature covers (the commit object without its `gpgsig` header).
    pub signed_payload: Option<Vec<u8>>,
    /// The annotated tag that was checked out (tag and semver references), if it is one.
    pub tag: Option<AnnotatedTag>,
}

/// An annotated tag object, for `spec.verify.mode: Tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotatedTag {
    /// The tag name, e.g. `v1.0.0`.
    pub name: String,
    /// The SHA of the tag object itself.
    pub sha: String,
    /// The tag message, without its signature.
    pub message: String,
    /// The ASCII-armoured signature appended to the tag, when signed.
    pub signature: Option<String>,
    /// The bytes the signature covers (the tag object up to the signature).
    pub signed_payload: Option<Vec<u8>>,
}

/// What a reference resolves to on the remote.
struct Resolved {
    /// What to fetch: a full ref name, or a SHA for bare commits.
    fetch: String,
    /// The reference part of the revision string.
    revision_ref: Option<String>,
    /// The expected commit, when the listing told us.
    sha: Option<String>,
    /// A commit to check out after fetching the whole branch in `fetch` (`ref.commit` with
    /// `ref.branch`): Flux then requires the commit to be in the branch's history.
    commit_on_branch: Option<String>,
}

/// Check out `reference` of the repository at `url` into `dest`, which must be empty or absent.
///
/// Blocking: call it from `tokio::task::spawn_blocking`. A branch, tag or `ref.name` is fetched
/// in one connection; a semver range first lists the remote tags. On failure `dest` is removed
/// if this call created it.
///
/// # Errors
///
/// [`Error::RefNotFound`] or [`Error::NoMatchingTag`] when the reference does not exist,
/// [`Error::AuthenticationFailed`], [`Error::HostKeyMismatch`], [`Error::Timeout`], and
/// [`Error::Operation`] for anything else the transport reports.
pub fn checkout(
    url: &str,
    auth: &Auth,
    reference: &GitRef,
    dest: &Path,
    options: &CheckoutOptions,
) -> Result<Commit, Error> {
    Ok(fetch(url, auth, reference, dest, options, false)?.0)
}

/// Like [`checkout`], but without writing a worktree when it can: the commit is fetched into
/// `dest/.git` and its [`Tree`] is returned, to be read from the object database.
///
/// That is the case when a checkout would write exactly the tree's blobs: no `.gitattributes`
/// file in the tree and no `core.autocrlf` or `core.attributesFile` setting (no conversion of
/// contents), and no submodules or sparse paths asked for in `options`. Otherwise the commit is
/// checked out at `dest` as [`checkout`] does and the tree is `None`.
///
/// A branch, tag or `refs/…` name is fetched without gix's pack indexing, which maps the whole
/// received pack into memory: the pack is streamed to disk and indexed with positioned reads
/// (`pack.rs`), so the memory of a fetch does not grow with the size of the repository.
///
/// # Errors
///
/// As [`checkout`].
pub fn fetch_tree(
    url: &str,
    auth: &Auth,
    reference: &GitRef,
    dest: &Path,
    options: &CheckoutOptions,
) -> Result<(Commit, Option<Tree>), Error> {
    let want_tree = !options.recurse_submodules && options.sparse_paths.is_empty();
    fetch(url, auth, reference, dest, options, want_tree)
}

fn fetch(
    url: &str,
    auth: &Auth,
    reference: &GitRef,
    dest: &Path,
    options: &CheckoutOptions,
    want_tree: bool,
) -> Result<(Commit, Option<Tree>), Error> {
    let remote = RemoteUrl::parse(url)?;
    reference.validate()?;
    let prepared = Arc::new(PreparedAuth::new(auth, &remote, &options.http)?);
    let deadline = Deadline::start(options.timeout);
    let started = std::time::Instant::now();
    let resolved = match reference {
        GitRef::Semver(_) => resolve(&remote, &prepared, reference, &deadline)?,
        _ => resolve_without_listing(reference),
    };
    let unmapped =
        want_tree && resolved.commit_on_branch.is_none() && resolved.fetch.starts_with("refs/");
    let fetched = if unmapped {
        match fetch_unmapped(&remote, &prepared, &resolved, dest, options, &deadline) {
            Ok(Some(fetched)) => Ok(fetched),
            // A checkout is needed after all: start over with a clone.
            Ok(None) => {
                std::fs::remove_dir_all(dest)
                    .map_err(|err| Error::io("removing directory", dest, err))?;
                clone(&remote, &prepared, &resolved, dest, options, false, &deadline)
            }
            Err(err) => Err(err),
        }
    } else {
        clone(&remote, &prepared, &resolved, dest, options, want_tree, &deadline)
    };
    let (commit, tree) = match fetched {
        Ok(fetched) => fetched,
        Err(err @ Error::Operation { .. }) if resolved.sha.is_none() => {
            // Tell a missing ref apart from other failures; ls-remote gives a clear answer.
            if let GitRef::Commit { .. } = reference {
                return Err(missing_commit_or(err, reference, &remote, &prepared, &deadline));
            }
            resolve(&remote, &prepared, reference, &deadline)?;
            return Err(err);
        }
        Err(err) => return Err(err),
    };
    if options.recurse_submodules && dest.join(".gitmodules").is_file() {
        update_submodules(dest, &remote, &prepared, &deadline)?;
    }
    if !options.sparse_paths.is_empty() {
        keep_only_sparse_paths(dest, &options.sparse_paths)?;
    }
    tracing::debug!(
        url = %remote.to_redacted(),
        revision = %commit.revision,
        shallow = options.shallow,
        worktree = tree.is_none(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "checked out"
    );
    Ok((commit, tree))
}

/// Decide whether a failed fetch of a commit means the commit does not exist.
///
/// Servers refuse unknown wants ("not our ref") and may close the connection before the client
/// reads why, so the text is unreliable; when the server still answers an ls-remote, the
/// connection and credentials are fine and the commit is what is missing.
fn missing_commit_or(
    err: Error,
    reference: &GitRef,
    remote: &RemoteUrl,
    prepared: &Arc<PreparedAuth>,
    deadline: &Deadline,
) -> Error {
    let GitRef::Commit { sha, branch } = reference else { return err };
    if branch.is_some() {
        // The branch was fetched, so a missing branch is the answer if there is one.
        return match resolve(remote, prepared, reference, deadline) {
            Err(missing @ Error::RefNotFound { .. }) => missing,
            _ => err,
        };
    }
    match list_refs(remote, prepared, "HEAD", deadline) {
        Ok(_) => {
            Error::RefNotFound { kind: "commit", name: sha.clone(), url: remote.to_redacted() }
        }
        Err(_) => err,
    }
}

/// The commit the remote's `reference` currently points to, without cloning.
///
/// Returns `Some(sha)`; `None` only when the reference exists but points at no object (an unborn
/// symbolic ref). For a commit reference the commit itself is returned without contacting the
/// remote unless a branch is named too. Compare with the SHA of the stored artifact's revision
/// (see [`Revision::parse`]) to skip an unchanged clone, as Flux does.
///
/// # Errors
///
/// As [`checkout`]; a missing reference is [`Error::RefNotFound`].
pub fn remote_head(url: &str, auth: &Auth, reference: &GitRef) -> Result<Option<String>, Error> {
    Ok(remote_revision(url, auth, reference, &CheckoutOptions::default())?
        .map(|revision| revision.sha))
}

/// Like [`remote_head`], but returns the full [`Revision`] Flux would record, using the timeout
/// and HTTP settings of `options`.
///
/// # Errors
///
/// As [`remote_head`].
pub fn remote_revision(
    url: &str,
    auth: &Auth,
    reference: &GitRef,
    options: &CheckoutOptions,
) -> Result<Option<Revision>, Error> {
    let remote = RemoteUrl::parse(url)?;
    reference.validate()?;
    if let GitRef::Commit { sha, branch: None } = reference {
        return Ok(Some(Revision { reference: None, sha: sha.to_ascii_lowercase() }));
    }
    let prepared = Arc::new(PreparedAuth::new(auth, &remote, &options.http)?);
    let deadline = Deadline::start(options.timeout);
    let resolved = resolve(&remote, &prepared, reference, &deadline)?;
    Ok(resolved.sha.map(|sha| Revision { reference: resolved.revision_ref, sha }))
}

fn resolve_without_listing(reference: &GitRef) -> Resolved {
    match reference {
        GitRef::Branch(branch) => Resolved {
            fetch: format!("refs/heads/{branch}"),
            revision_ref: Some(branch.clone()),
            sha: None,
            commit_on_branch: None,
        },
        GitRef::Tag(tag) => Resolved {
            fetch: format!("refs/tags/{tag}"),
            revision_ref: Some(tag.clone()),
            sha: None,
            commit_on_branch: None,
        },
        GitRef::Name(name) => Resolved {
            fetch: name.clone(),
            revision_ref: Some(name.clone()),
            sha: None,
            commit_on_branch: None,
        },
        GitRef::Commit { sha, branch } => {
            match branch {
                // Fetch the branch's history and check the commit out of it, as Flux does.
                Some(branch) => Resolved {
                    fetch: format!("refs/heads/{branch}"),
                    revision_ref: Some(branch.clone()),
                    sha: None,
                    commit_on_branch: Some(sha.to_ascii_lowercase()),
                },
                None => Resolved {
                    fetch: sha.to_ascii_lowercase(),
                    revision_ref: None,
                    sha: None,
                    commit_on_branch: None,
                },
            }
        }
        // Ranges are resolved by listing tags first.
        GitRef::Semver(range) => {
            Resolved { fetch: range.clone(), revision_ref: None, sha: None, commit_on_branch: None }
        }
    }
}

/// List the remote's refs and resolve `reference` to a commit.
fn resolve(
    remote: &RemoteUrl,
    prepared: &Arc<PreparedAuth>,
    reference: &GitRef,
    deadline: &Deadline,
) -> Result<Resolved, Error> {
    let (kind, refspec, wanted) = match reference {
        GitRef::Branch(branch) => ("branch", format!("refs/heads/{branch}"), branch.clone()),
        GitRef::Tag(tag) => ("tag", format!("refs/tags/{tag}"), tag.clone()),
        GitRef::Name(name) => ("reference", name.clone(), name.clone()),
        GitRef::Commit { branch: Some(branch), .. } => {
            ("branch", format!("refs/heads/{branch}"), branch.clone())
        }
        GitRef::Commit { sha, branch: None } => {
            return Ok(Resolved {
                fetch: sha.clone(),
                revision_ref: None,
                sha: Some(sha.clone()),
                commit_on_branch: None,
            });
        }
        GitRef::Semver(_) => ("tag", "refs/tags/*:refs/tags/*".to_owned(), String::new()),
    };
    let refs = list_refs(remote, prepared, &refspec, deadline)?;
    let not_found = || Error::RefNotFound { kind, name: wanted.clone(), url: remote.to_redacted() };
    match reference {
        GitRef::Semver(range) => {
            let tags = refs.into_iter().filter_map(|listed| {
                let name = listed.name.strip_prefix("refs/tags/")?.to_owned();
                Some(VersionTag { name, sha: listed.sha? })
            });
            let tag = semver_tag::highest_matching(range, tags)?.ok_or_else(|| {
                Error::NoMatchingTag { range: range.clone(), url: remote.to_redacted() }
            })?;
            Ok(Resolved {
                fetch: format!("refs/tags/{}", tag.name),
                revision_ref: Some(tag.name),
                sha: Some(tag.sha),
                commit_on_branch: None,
            })
        }
        GitRef::Commit { sha, branch } => {
            refs.iter().find(|listed| listed.name == refspec).ok_or_else(not_found)?;
            Ok(Resolved {
                fetch: refspec,
                revision_ref: branch.clone(),
                sha: Some(sha.clone()),
                commit_on_branch: Some(sha.clone()),
            })
        }
        _ => {
            let listed =
                refs.into_iter().find(|listed| listed.name == refspec).ok_or_else(not_found)?;
            Ok(Resolved {
                fetch: refspec,
                revision_ref: Some(wanted),
                sha: listed.sha,
                commit_on_branch: None,
            })
        }
    }
}

/// One advertised ref: full name and the commit it peels to.
struct ListedRef {
    name: String,
    sha: Option<String>,
}

fn list_refs(
    remote: &RemoteUrl,
    prepared: &Arc<PreparedAuth>,
    refspec: &str,
    deadline: &Deadline,
) -> Result<Vec<ListedRef>, Error> {
    let transport_url = remote.to_transport_url();
    let refspec = refspec.to_owned();
    let worker_prepared = Arc::clone(prepared);
    ensure_crypto_provider();
    let outcome = deadline.run(move |_interrupt| -> Result<Vec<ListedRef>, String> {
        let scratch = tempfile::Builder::new()
            .prefix("sluice-ls-remote-")
            .tempdir()
            .map_err(|err| err.to_string())?;
        let mut repo = gix::init_bare(scratch.path()).map_err(|err| describe(&err))?;
        apply_config(&mut repo, &worker_prepared)?;
        let remote = repo
            .remote_at(transport_url.as_str())
            .and_then(|remote| {
                remote.with_refspecs([refspec.as_str()], gix::remote::Direction::Fetch)
            })
            .map_err(|err| describe(&err))?
            .with_fetch_tags(gix::remote::fetch::Tags::None);
        let mut connection =
            remote.connect(gix::remote::Direction::Fetch).map_err(|err| describe(&err))?;
        connection.set_credentials(refuse_credential_prompts);
        configure_http_client(&mut connection, &worker_prepared.client)
            .map_err(|err| describe(&err))?;
        let (ref_map, _handshake) = connection
            .ref_map(gix::progress::Discard, Default::default())
            .map_err(|err| describe(&err))?;
        let listed = ref_map
            .remote_refs
            .iter()
            .map(|remote_ref| {
                use gix::protocol::handshake::Ref;
                let (name, sha) = match remote_ref {
                    Ref::Peeled { full_ref_name, object, .. }
                    | Ref::Direct { full_ref_name, object }
                    | Ref::Symbolic { full_ref_name, object, .. } => {
                        (full_ref_name, Some(object.to_string()))
                    }
                    Ref::Unborn { full_ref_name, .. } => (full_ref_name, None),
                };
                ListedRef { name: name.to_string(), sha }
            })
            .collect();
        Ok(listed)
    });
    match outcome {
        Some(Ok(listed)) => Ok(listed),
        Some(Err(detail)) => Err(classify("ls-remote", &detail, remote, prepared, deadline)),
        None => Err(Error::Timeout {
            operation: "ls-remote",
            url: remote.to_redacted(),
            timeout: deadline.limit,
        }),
    }
}

/// Hand the CA certificates (the system's, loaded once, plus the Secret's) and the proxy to
/// gix's reqwest client (it ignores `http.sslCAInfo` and `http.proxy`).
fn configure_http_client<T: gix_transport::client::blocking_io::Transport>(
    connection: &mut gix::remote::Connection<'_, '_, '_, T>,
    client: &ClientSettings,
) -> gix::Result<()> {
    if let Some(options) = http_transport_options(connection, client)? {
        connection.set_transport_options(options);
    }
    Ok(())
}

/// The HTTP transport options of the connection's URL (from the repository's configuration)
/// with our client settings; `None` for other transports.
fn http_transport_options<T: gix_transport::client::blocking_io::Transport>(
    connection: &gix::remote::Connection<'_, '_, '_, T>,
    client: &ClientSettings,
) -> gix::Result<Option<Box<gix_transport::client::blocking_io::http::Options>>> {
    use gix_transport::client::blocking_io::http;
    let repo = connection.remote().repo();
    let Some(url) =
        connection.remote().url(gix::remote::Direction::Fetch).map(|url| url.to_bstring())
    else {
        return Ok(None);
    };
    let Some(options) = repo.transport_options(url.as_slice(), None)? else { return Ok(None) };
    let Ok(mut options) = options.downcast::<http::Options>() else { return Ok(None) };
    let client = client.clone();
    let backend = http::reqwest::Options {
        configure_client: Some(Box::new(move |builder| Ok(client.apply(builder)))),
        configure_request: None,
    };
    options.backend = Some(Arc::new(std::sync::Mutex::new(backend)));
    Ok(Some(options))
}

/// Install rustls' ring provider for gix's reqwest client, unless the process already chose one.
///
/// reqwest is built without a default provider (aws-lc-rs must stay out of the tree), and would
/// panic at the first client without one.
fn ensure_crypto_provider() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another installer is fine: a provider is then in place.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// Credentials are given up front as headers or keys; never fall back to helpers or prompts.
fn refuse_credential_prompts(
    _action: gix::credentials::helper::Action,
) -> gix::Result<Option<gix::credentials::protocol::Outcome>> {
    Ok(None)
}

fn clone(
    remote: &RemoteUrl,
    prepared: &Arc<PreparedAuth>,
    resolved: &Resolved,
    dest: &Path,
    options: &CheckoutOptions,
    want_tree: bool,
    deadline: &Deadline,
) -> Result<(Commit, Option<Tree>), Error> {
    let transport_url = remote.to_transport_url();
    let redacted_url = remote.to_redacted();
    let fetch = resolved.fetch.clone();
    let commit_on_branch = resolved.commit_on_branch.clone();
    // A commit is looked up in the branch's history, which a shallow fetch would cut.
    let shallow = options.shallow && commit_on_branch.is_none();
    let dest_owned: PathBuf = dest.to_owned();
    // gix wants the destination to exist; an empty directory it created is removed on failure.
    std::fs::create_dir_all(dest).map_err(|err| Error::io("creating directory", dest, err))?;
    let worker_prepared = Arc::clone(prepared);
    let client = prepared.client.clone();
    ensure_crypto_provider();
    let outcome = deadline.run(move |interrupt| -> Result<(Commit, Option<Tree>), CloneFailure> {
        let mut prepare = gix::prepare_clone(transport_url.as_str(), &dest_owned)
            .map_err(|err| describe(&err))?
            .with_in_memory_config_overrides(worker_prepared.config.iter().map(String::as_str))
            .with_revision(Some(fetch.as_str()))
            .map_err(|err| describe(&err))?
            .configure_connection(move |connection| {
                connection.set_credentials(refuse_credential_prompts);
                configure_http_client(connection, &client)?;
                Ok(())
            });
        if shallow {
            prepare =
                prepare.with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(NonZeroU32::MIN));
        }
        let (mut checkout, fetched) = prepare
            .fetch_then_checkout(gix::progress::Discard, &interrupt)
            .map_err(|err| describe(&err))?;
        if let Some(sha) = &commit_on_branch {
            detach_head_at(checkout.repo(), sha)?;
        }
        let tree =
            if want_tree { tree_without_filters(checkout.repo(), &redacted_url)? } else { None };
        let repo = if tree.is_some() {
            checkout.persist()
        } else {
            checkout
                .main_worktree(gix::progress::Discard, &interrupt)
                .map_err(|err| describe(&err))?
                .0
        };
        let mut commit = read_head_commit(&repo)?;
        let tag_id = fetched.ref_map.remote_refs.iter().find_map(|remote_ref| match remote_ref {
            gix::protocol::handshake::Ref::Peeled { full_ref_name, tag, .. }
                if *full_ref_name == fetch =>
            {
                Some(*tag)
            }
            _ => None,
        });
        if let Some(tag_id) = tag_id {
            commit.tag = Some(read_tag(&repo, tag_id)?);
        }
        Ok((commit, tree))
    });
    let revision_ref = resolved.revision_ref.clone();
    match outcome {
        Some(Err(CloneFailure::CommitNotOnBranch { sha })) => Err(Error::RefNotFound {
            kind: "commit",
            name: format!("{sha}' on branch '{}", revision_ref.unwrap_or_default()),
            url: remote.to_redacted(),
        }),
        Some(Err(CloneFailure::Other(detail))) => {
            Err(classify("clone", &detail, remote, prepared, deadline))
        }
        Some(Ok((mut commit, tree))) => {
            commit.revision = Revision { reference: revision_ref, sha: commit.sha.clone() };
            Ok((commit, tree))
        }
        None => Err(Error::Timeout {
            operation: "clone",
            url: remote.to_redacted(),
            timeout: deadline.limit,
        }),
    }
}

/// Fetch one ref into a new repository at `dest` (`HEAD` detached at its commit), indexing the
/// received pack with [`crate::pack`] rather than gix, whose indexing maps the whole pack into
/// memory. Returns `None` when the tree needs a checkout (see [`tree_without_filters`]).
fn fetch_unmapped(
    remote: &RemoteUrl,
    prepared: &Arc<PreparedAuth>,
    resolved: &Resolved,
    dest: &Path,
    options: &CheckoutOptions,
    deadline: &Deadline,
) -> Result<Option<(Commit, Option<Tree>)>, Error> {
    let transport_url = remote.to_transport_url();
    let redacted_url = remote.to_redacted();
    let fetch = resolved.fetch.clone();
    let shallow = options.shallow;
    let dest_owned: PathBuf = dest.to_owned();
    std::fs::create_dir_all(dest).map_err(|err| Error::io("creating directory", dest, err))?;
    let worker_prepared = Arc::clone(prepared);
    ensure_crypto_provider();
    let outcome =
        deadline.run(move |interrupt| -> Result<Option<(Commit, Option<Tree>)>, String> {
            use gix::protocol::handshake::Ref;
            let mut repo = gix::init(&dest_owned).map_err(|err| describe(&err))?;
            apply_config(&mut repo, &worker_prepared)?;
            let pack_dir = repo.objects.store_ref().path().join("pack");
            let shallow_file = repo.shallow_file().map_err(|err| describe(&err))?;
            let remote = repo
                .remote_at(transport_url.as_str())
                .map_err(|err| describe(&err))?
                .with_fetch_tags(gix::remote::fetch::Tags::None);
            let mut connection =
                remote.connect(gix::remote::Direction::Fetch).map_err(|err| describe(&err))?;
            let http_options = http_transport_options(&connection, &worker_prepared.client)
                .map_err(|err| describe(&err))?;
            let transport = connection.transport_mut();
            if let Some(options) = &http_options {
                transport.configure(&**options).map_err(|err| describe(&err))?;
            }
            let agent = ("agent", Some(format!("git/sluice-{}", env!("CARGO_PKG_VERSION"))));
            let mut handshake = gix::protocol::handshake(
                &mut *transport,
                gix_transport::Service::UploadPack,
                refuse_credential_prompts,
                Vec::new(),
                &mut gix::progress::Discard,
            )
            .map_err(|err| describe(&err))?;
            let refs = match handshake.refs.take() {
                Some(refs) => refs,
                None => {
                    gix::protocol::LsRefsCommand::new(None, &handshake.capabilities, agent.clone())
                        .invoke_blocking(&mut *transport, &mut gix::progress::Discard, false)
                        .map_err(|err| describe(&err))?
                }
            };
            let target = refs.iter().find_map(|listed| match listed {
                Ref::Peeled { full_ref_name, tag, object } if *full_ref_name == fetch => {
                    Some((*tag, *object, Some(*tag)))
                }
                Ref::Direct { full_ref_name, object } if *full_ref_name == fetch => {
                    Some((*object, *object, None))
                }
                Ref::Symbolic { full_ref_name, tag, object, .. } if *full_ref_name == fetch => {
                    Some((tag.unwrap_or(*object), *object, *tag))
                }
                _ => None,
            });
            let Some((want, commit_id, tag_id)) = target else {
                return Err(format!("the remote has no ref {fetch}"));
            };
            let depth = if shallow {
                gix::remote::fetch::Shallow::DepthAtRemote(NonZeroU32::MIN)
            } else {
                gix::remote::fetch::Shallow::NoChange
            };
            let mut negotiate = WantOne(want);
            gix::protocol::fetch(
                &mut negotiate,
                |pack, _progress, interrupt| {
                    crate::pack::write_pack(pack, &pack_dir, interrupt)
                        .map_err(|err| gix::Error::from_error(std::io::Error::other(err)))?;
                    Ok(true)
                },
                gix::progress::Discard,
                &interrupt,
                gix::protocol::fetch::Context {
                    handshake: &mut handshake,
                    transport: &mut *transport,
                    user_agent: agent,
                    trace_packetlines: false,
                },
                gix::protocol::fetch::Options {
                    shallow_file,
                    shallow: &depth,
                    tags: gix::remote::fetch::Tags::None,
                    reject_shallow_remote: false,
                },
            )
            .map_err(|err| describe(&err))?;
            if handshake.server_protocol_version == gix::protocol::transport::Protocol::V2 {
                let _ = gix::protocol::indicate_end_of_interaction(&mut *transport, false);
            }
            drop(connection);
            let git_dir = repo.git_dir().to_owned();
            drop(repo);
            std::fs::write(git_dir.join("HEAD"), format!("{commit_id}\n"))
                .map_err(|err| format!("writing HEAD: {err}"))?;
            let repo = gix::open(&git_dir).map_err(|err| describe(&err))?;
            let Some(tree) = tree_without_filters(&repo, &redacted_url)? else { return Ok(None) };
            let mut commit = read_head_commit(&repo)?;
            if let Some(tag_id) = tag_id {
                commit.tag = Some(read_tag(&repo, tag_id)?);
            }
            Ok(Some((commit, Some(tree))))
        });
    match outcome {
        Some(Ok(Some((mut commit, tree)))) => {
            let revision_ref = resolved.revision_ref.clone();
            commit.revision = Revision { reference: revision_ref, sha: commit.sha.clone() };
            Ok(Some((commit, tree)))
        }
        Some(Ok(None)) => Ok(None),
        Some(Err(detail)) => {
            let _ = std::fs::remove_dir_all(dest);
            Err(classify("clone", &detail, remote, prepared, deadline))
        }
        None => {
            let _ = std::fs::remove_dir_all(dest);
            Err(Error::Timeout {
                operation: "clone",
                url: remote.to_redacted(),
                timeout: deadline.limit,
            })
        }
    }
}

/// Negotiation of a fresh clone: one object wanted, nothing to offer.
struct WantOne(gix::ObjectId);

impl gix::protocol::fetch::Negotiate for WantOne {
    fn mark_complete_and_common_ref(
        &mut self,
    ) -> gix::Result<gix::protocol::fetch::negotiate::Action> {
        Ok(gix::protocol::fetch::negotiate::Action::MustNegotiate {
            remote_ref_target_known: vec![false],
        })
    }

    fn add_wants(
        &mut self,
        arguments: &mut gix::protocol::fetch::Arguments,
        _remote_ref_target_known: &[bool],
    ) -> bool {
        arguments.want(self.0);
        true
    }

    fn one_round(
        &mut self,
        _state: &mut gix::protocol::fetch::negotiate::one_round::State,
        _arguments: &mut gix::protocol::fetch::Arguments,
        _previous_response: Option<&gix::protocol::fetch::Response>,
    ) -> gix::Result<(gix::protocol::fetch::negotiate::Round, bool)> {
        let round = gix::protocol::fetch::negotiate::Round {
            haves_sent: 0,
            in_vain: 0,
            haves_to_send: 0,
            previous_response_had_at_least_one_in_common: false,
        };
        Ok((round, true))
    }
}

/// The tree of the fetched `HEAD`, unless a checkout could convert file contents.
fn tree_without_filters(repo: &gix::Repository, url: &str) -> Result<Option<Tree>, String> {
    let config = repo.config_snapshot();
    let autocrlf = config.string("core.autocrlf").is_some_and(|value| {
        !matches!(value.to_ascii_lowercase().as_slice(), b"false" | b"no" | b"off" | b"0")
    });
    if autocrlf || config.string("core.attributesFile").is_some() {
        return Ok(None);
    }
    let tree_id = repo
        .head_commit()
        .and_then(|commit| commit.tree_id())
        .map_err(|err| format!("reading HEAD tree: {}", describe(&err)))?
        .detach();
    let tree = Tree::list(repo.git_dir(), url, tree_id)?;
    Ok((!tree.has_attributes()).then_some(tree))
}

/// Why the clone worker failed.
enum CloneFailure {
    /// `ref.commit` is not in the history of `ref.branch`.
    CommitNotOnBranch { sha: String },
    /// Anything else, as text to classify.
    Other(String),
}

impl From<String> for CloneFailure {
    fn from(detail: String) -> Self {
        CloneFailure::Other(detail)
    }
}

/// Point `HEAD` of a fetched, not yet checked-out clone at `sha`, which must be in its history.
fn detach_head_at(repo: &gix::Repository, sha: &str) -> Result<(), CloneFailure> {
    use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit};
    let id = gix::ObjectId::from_hex(sha.as_bytes())
        .map_err(|err| CloneFailure::Other(format!("invalid commit {sha}: {err}")))?;
    // Only the branch's history was fetched, so presence means the commit is on the branch.
    if repo.find_commit(id).is_err() {
        return Err(CloneFailure::CommitNotOnBranch { sha: sha.to_owned() });
    }
    let head = "HEAD"
        .try_into()
        .map_err(|err: gix::refs::name::Error| CloneFailure::Other(err.to_string()))?;
    repo.edit_reference(RefEdit {
        change: Change::Update {
            log: LogChange::default(),
            expected: PreviousValue::Any,
            new: gix::refs::Target::Object(id),
        },
        name: head,
        deref: false,
    })
    .map_err(|err| CloneFailure::Other(format!("detaching HEAD at {sha}: {}", describe(&err))))?;
    Ok(())
}

/// Read `HEAD` of a freshly cloned repository (a detached commit, or a tag peeled to one).
pub(crate) fn read_head_commit(repo: &gix::Repository) -> Result<Commit, String> {
    let commit =
        repo.head_commit().map_err(|err| format!("reading HEAD commit: {}", describe(&err)))?;
    let signature_of = |signature: gix::actor::SignatureRef<'_>| Signature {
        name: signature.name.to_string(),
        email: signature.email.to_string(),
        time: signature.seconds(),
    };
    let author =
        commit.author().map_err(|err| format!("decoding commit author: {}", describe(&err)))?;
    let committer = commit
        .committer()
        .map_err(|err| format!("decoding commit committer: {}", describe(&err)))?;
    let (signature, signed_payload) = match commit.signature().map_err(|err| describe(&err))? {
        Some((signature, signed_data)) => {
            let payload = signed_data.to_bstring();
            (Some(signature.to_string()), Some(payload.to_vec()))
        }
        None => (None, None),
    };
    let sha = commit.id().to_string();
    Ok(Commit {
        revision: Revision { reference: None, sha: sha.clone() },
        sha,
        message: commit.message_raw_sloppy().to_string(),
        author: signature_of(author),
        committer: signature_of(committer),
        signature,
        signed_payload,
        tag: None,
    })
}

/// Read an annotated tag object and split off its signature.
fn read_tag(repo: &gix::Repository, tag_id: gix::ObjectId) -> Result<AnnotatedTag, String> {
    let object = repo
        .find_object(tag_id)
        .map_err(|err| format!("reading tag {tag_id}: {}", describe(&err)))?;
    let data = object.data.clone();
    let tag =
        object.try_into_tag().map_err(|err| format!("reading tag {tag_id}: {}", describe(&err)))?;
    let decoded =
        tag.decode().map_err(|err| format!("decoding tag {tag_id}: {}", describe(&err)))?;
    let (signature, signed_payload) = match decoded.signature {
        Some(signature) => {
            // The signature is the tail of the object; everything before it is signed.
            let signature_bytes: &[u8] = signature.as_ref();
            let start = data
                .windows(signature_bytes.len().max(1))
                .rposition(|window| window == signature_bytes)
                .unwrap_or(data.len());
            (Some(signature.to_string()), Some(data[..start].to_vec()))
        }
        None => (None, None),
    };
    Ok(AnnotatedTag {
        name: decoded.name.to_string(),
        sha: tag_id.to_string(),
        message: decoded.message.to_string(),
        signature,
        signed_payload,
    })
}

/// Render an error and its sources on one line, skipping sources already quoted.
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Map the text of a gix, git or ssh failure to an [`Error`], redacting secrets.
fn classify(
    operation: &'static str,
    detail: &str,
    remote: &RemoteUrl,
    prepared: &PreparedAuth,
    deadline: &Deadline,
) -> Error {
    classify_text(operation, detail, remote, prepared, deadline.is_expired(), deadline.limit)
}

/// Like `classify`, for a `git` CLI failure (which has its own timeout handling).
pub(crate) fn classify_cli(
    operation: &'static str,
    stderr: &str,
    remote: &RemoteUrl,
    prepared: &PreparedAuth,
) -> Error {
    classify_text(operation, stderr, remote, prepared, false, Duration::ZERO)
}

fn classify_text(
    operation: &'static str,
    detail: &str,
    remote: &RemoteUrl,
    prepared: &PreparedAuth,
    expired: bool,
    limit: Duration,
) -> Error {
    let ssh_log = prepared.ssh_log().unwrap_or_default();
    let combined = format!("{detail}\n{ssh_log}");
    let lower = combined.to_ascii_lowercase();
    let url = remote.to_redacted();
    if lower.contains("host key verification failed")
        || lower.contains("remote host identification has changed")
        || lower.contains("no matching host key")
    {
        return Error::HostKeyMismatch { host: remote.host_port() };
    }
    let detail = prepared.redact(first_useful_lines(detail, &ssh_log).as_str());
    if lower.contains("interrupted") && expired {
        return Error::Timeout { operation, url, timeout: limit };
    }
    let auth_markers = [
        "403 forbidden",
        "authentication",
        "permission denied",
        "unauthorized",
        "credentials",
        "could not read username",
        "incorrect passphrase",
    ];
    let proxy_refused = has_status(&lower, "407");
    let unauthorized = has_status(&lower, "401");
    if proxy_refused || unauthorized || auth_markers.iter().any(|marker| lower.contains(marker)) {
        let http_refused = lower.contains("no credentials were returned")
            || lower.contains("could not read username")
            || unauthorized;
        let detail = if proxy_refused {
            "the proxy rejected the request (HTTP 407 Proxy Authentication Required)".to_owned()
        } else if !ssh_log.trim().is_empty() {
            // ssh's own words ("Permission denied (publickey)") say more than the transport's.
            prepared.redact(&first_useful_lines("", &ssh_log))
        } else if http_refused && prepared.has_credentials {
            "the server rejected the credentials (HTTP 401 Unauthorized)".to_owned()
        } else if http_refused {
            "the server requires credentials (HTTP 401 Unauthorized) and none were given".to_owned()
        } else {
            detail
        };
        return Error::AuthenticationFailed { url, detail };
    }
    Error::Operation { operation, url, detail }
}

/// Whether `text` holds the HTTP status `code` as a number of its own: not part of a longer
/// number and not a port (`127.0.0.1:43407` and `host:401` are no 407 or 401).
fn has_status(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == ':')
            && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// The error text plus the ssh log's error lines, on one line each.
fn first_useful_lines(detail: &str, ssh_log: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !detail.trim().is_empty() {
        parts.push(detail.trim().replace('\n', ": "));
    }
    for line in ssh_log.lines().map(str::trim).filter(|line| !line.is_empty()).take(3) {
        parts.push(format!("ssh: {line}"));
    }
    parts.join(": ")
}

/// The time budget of one operation, shared by its steps.
pub(crate) struct Deadline {
    limit: Duration,
    until: std::time::Instant,
}

impl Deadline {
    pub(crate) fn start(limit: Duration) -> Deadline {
        Deadline { limit, until: std::time::Instant::now() + limit }
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.until.saturating_duration_since(std::time::Instant::now())
    }

    fn is_expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// Run blocking `work` on its own thread, returning `None` once the deadline passes.
    ///
    /// At the deadline the interrupt flag is raised (gix checks it between steps), and the worker
    /// gets a short grace period to stop and clean up before this returns.
    fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(Arc<AtomicBool>) -> T + Send + 'static,
    ) -> Option<T> {
        let interrupt = Arc::new(AtomicBool::new(false));
        let (sender, receiver) = std::sync::mpsc::channel();
        let worker_interrupt = Arc::clone(&interrupt);
        let spawned = std::thread::Builder::new().name("sluice-git".into()).spawn(move || {
            // The receiver may be gone after a timeout; the result is then dropped.
            let _ = sender.send(work(worker_interrupt));
        });
        if spawned.is_err() {
            return None;
        }
        match receiver.recv_timeout(self.remaining()) {
            Ok(value) => Some(value),
            Err(_) => {
                interrupt.store(true, Ordering::SeqCst);
                // Give gix a moment to notice the flag and remove a half-written clone.
                let _ = receiver.recv_timeout(Duration::from_secs(1));
                None
            }
        }
    }
}

fn update_submodules(
    dest: &Path,
    remote: &RemoteUrl,
    prepared: &PreparedAuth,
    deadline: &Deadline,
) -> Result<(), Error> {
    // gix has no submodule update; the git CLI does it with the same credentials in its environment.
    let output = crate::cli::run_git(
        dest,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "update",
            "--init",
            "--recursive",
            "--depth",
            "1",
        ],
        prepared,
        deadline.remaining(),
    )?;
    if output.success {
        return Ok(());
    }
    if output.timed_out {
        return Err(Error::Timeout {
            operation: "submodule update",
            url: remote.to_redacted(),
            timeout: deadline.limit,
        });
    }
    let detail = prepared.redact(output.stderr.trim());
    Err(classify("submodule update", &detail, remote, prepared, deadline))
}

/// Remove everything but `sparse_paths` (directories relative to the root) from the worktree.
///
/// The result equals what a cone-mode sparse checkout of those directories materialises,
/// which is what the artifact is built from.
fn keep_only_sparse_paths(dest: &Path, sparse_paths: &[String]) -> Result<(), Error> {
    let keep: Vec<PathBuf> = sparse_paths
        .iter()
        .map(|path| PathBuf::from(path.trim_start_matches("./").trim_end_matches('/')))
        .filter(|path| !path.as_os_str().is_empty())
        .collect();
    if keep.iter().any(|path| path.as_os_str() == ".") {
        return Ok(());
    }
    prune_dir(dest, Path::new(""), &keep)
}

fn prune_dir(root: &Path, relative: &Path, keep: &[PathBuf]) -> Result<(), Error> {
    let dir = root.join(relative);
    let entries =
        std::fs::read_dir(&dir).map_err(|err| Error::io("reading directory", &dir, err))?;
    for entry in entries {
        let entry = entry.map_err(|err| Error::io("reading directory", &dir, err))?;
        let child = relative.join(entry.file_name());
        if child.as_os_str() == ".git" || keep.iter().any(|kept| child.starts_with(kept)) {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().map(|kind| kind.is_dir()).unwrap_or(false);
        if is_dir && keep.iter().any(|kept| kept.starts_with(&child)) {
            prune_dir(root, &child, keep)?;
        } else if is_dir {
            std::fs::remove_dir_all(&path).map_err(|err| Error::io("removing", &path, err))?;
        } else {
            std::fs::remove_file(&path).map_err(|err| Error::io("removing", &path, err))?;
        }
    }
    Ok(())
}

/// Adds the credentials' in-memory git config (never written to disk) to `repo`.
fn apply_config(repo: &mut gix::Repository, prepared: &PreparedAuth) -> Result<(), String> {
    let mut config = repo.config_snapshot_mut();
    config
        .append_config(prepared.config.iter().map(String::as_str), gix::config::Source::Api)
        .map_err(|err| describe(&err))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::has_status;

    #[test]
    fn statuses_are_told_apart_from_ports_and_longer_numbers() {
        assert!(has_status("the requested url returned error: 401", "401"));
        assert!(has_status("received http code 407 from proxy after connect", "407"));
        assert!(has_status("407 proxy authentication required", "407"));
        assert!(!has_status("unable to access 'http://127.0.0.1:43407/private/app.git/'", "407"));
        assert!(!has_status("unable to access 'http://git.example:401/app.git/'", "401"));
        assert!(!has_status("object 4071 of 9000", "407"));
    }
}
