//! Checkout, remote head and revision strings against real repositories over file:// and git://.

mod support;

use std::time::Duration;

use sluice_git::{Auth, CheckoutOptions, Error, GitRef, checkout, remote_head};
use support::{Fixture, git, git_daemon};

fn full() -> CheckoutOptions {
    CheckoutOptions { shallow: false, ..CheckoutOptions::default() }
}

#[track_caller]
fn check_revision(
    fixture: &Fixture,
    reference: GitRef,
    expected_ref: Option<&str>,
    expected_rev: &str,
) {
    let dest = fixture.dest(&format!("{:x}", rand_suffix()));
    let commit =
        checkout(&fixture.file_url(), &Auth::None, &reference, &dest, &CheckoutOptions::default())
            .unwrap_or_else(|err| panic!("{reference:?}: {err}"));
    let sha = fixture.rev(expected_rev);
    assert_eq!(commit.sha, sha, "{reference:?}");
    let expected = match expected_ref {
        Some(name) => format!("{name}@sha1:{sha}"),
        None => format!("sha1:{sha}"),
    };
    assert_eq!(commit.revision.to_string(), expected, "{reference:?}");
    assert_eq!(git(&dest, &["rev-parse", "HEAD"]), sha, "worktree HEAD of {reference:?}");
}

fn rand_suffix() -> u128 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    u128::from(NEXT.fetch_add(1, Ordering::SeqCst))
}

#[test]
fn each_ref_kind_checks_out_with_flux_revision() {
    let fixture = Fixture::new();
    check_revision(&fixture, GitRef::Branch("main".into()), Some("main"), "main");
    check_revision(&fixture, GitRef::Branch("dev".into()), Some("dev"), "dev");
    check_revision(&fixture, GitRef::Tag("v1.0.0".into()), Some("v1.0.0"), "v1.0.0");
    check_revision(&fixture, GitRef::Tag("v1.1.0".into()), Some("v1.1.0"), "v1.1.0");
    check_revision(&fixture, GitRef::Name("refs/heads/dev".into()), Some("refs/heads/dev"), "dev");
    check_revision(
        &fixture,
        GitRef::Name("refs/tags/v1.0.0".into()),
        Some("refs/tags/v1.0.0"),
        "v1.0.0",
    );
    let old = fixture.rev("v1.0.0");
    check_revision(&fixture, GitRef::Commit { sha: old.clone(), branch: None }, None, "v1.0.0");
    check_revision(
        &fixture,
        GitRef::Commit { sha: old, branch: Some("main".into()) },
        Some("main"),
        "v1.0.0",
    );
}

#[test]
fn semver_range_picks_the_highest_matching_tag() {
    let fixture = Fixture::new();
    check_revision(&fixture, GitRef::Semver(">=1.0.0".into()), Some("v1.1.0"), "v1.1.0");
    check_revision(&fixture, GitRef::Semver("~1.0".into()), Some("v1.0.0"), "v1.0.0");
    check_revision(
        &fixture,
        GitRef::Semver(">=2.0.0-0".into()),
        Some("v2.0.0-rc.1"),
        "v2.0.0-rc.1",
    );
    let err = checkout(
        &fixture.file_url(),
        &Auth::None,
        &GitRef::Semver(">=3.0.0".into()),
        &fixture.dest("none"),
        &CheckoutOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::NoMatchingTag { .. }), "{err}");
}

#[test]
fn checkout_writes_files_and_commit_metadata() {
    let fixture = Fixture::new();
    let dest = fixture.dest("main");
    let commit =
        checkout(&fixture.file_url(), &Auth::None, &GitRef::Branch("main".into()), &dest, &full())
            .unwrap();
    assert_eq!(std::fs::read_to_string(dest.join("README.md")).unwrap(), "main tip\n");
    assert!(dest.join("apps/app.yaml").is_file());
    assert_eq!(commit.message, "main tip\n");
    assert_eq!(commit.author.name, "Test Author");
    assert_eq!(commit.author.email, "author@example.com");
    assert_eq!(commit.committer.name, "Test Committer");
    assert_eq!(commit.author.time, 1_704_164_645);
    assert_eq!(commit.signature, None);
    // A full clone has the whole history.
    assert_eq!(git(&dest, &["rev-list", "--count", "HEAD"]), "4");
}

#[test]
fn shallow_checkout_fetches_depth_one() {
    let fixture = Fixture::new();
    let dest = fixture.dest("shallow");
    let options = CheckoutOptions { shallow: true, ..CheckoutOptions::default() };
    checkout(&fixture.file_url(), &Auth::None, &GitRef::Branch("main".into()), &dest, &options)
        .unwrap();
    assert_eq!(git(&dest, &["rev-list", "--count", "HEAD"]), "1");
    assert!(dest.join(".git/shallow").is_file());
}

#[test]
fn unknown_refs_are_clear_errors() {
    let fixture = Fixture::new();
    let url = fixture.file_url();
    let cases: [(GitRef, &str); 3] = [
        (GitRef::Branch("nope".into()), "branch 'nope' not found in "),
        (GitRef::Tag("v9".into()), "tag 'v9' not found in "),
        (GitRef::Name("refs/heads/gone".into()), "reference 'refs/heads/gone' not found in "),
    ];
    for (idx, (reference, expected)) in cases.into_iter().enumerate() {
        let dest = fixture.dest(&format!("missing-{idx}"));
        let err = checkout(&url, &Auth::None, &reference, &dest, &CheckoutOptions::default())
            .unwrap_err();
        assert_eq!(err.to_string(), format!("{expected}{url}"));
        assert_eq!(err.reason(), "GitOperationFailed");
        assert!(!dest.exists(), "a failed checkout leaves nothing behind");
        let err = remote_head(&url, &Auth::None, &reference).unwrap_err();
        assert_eq!(err.to_string(), format!("{expected}{url}"));
    }
    // A commit that exists, but only on another branch, is not on `main`.
    let dev_only = fixture.rev("dev");
    let on_main = GitRef::Commit { sha: dev_only.clone(), branch: Some("main".into()) };
    let err = checkout(
        &url,
        &Auth::None,
        &on_main,
        &fixture.dest("dev-on-main"),
        &CheckoutOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), format!("commit '{dev_only}' on branch 'main' not found in {url}"));
    let on_nope = GitRef::Commit { sha: dev_only, branch: Some("nope".into()) };
    let err = checkout(
        &url,
        &Auth::None,
        &on_nope,
        &fixture.dest("dev-on-nope"),
        &CheckoutOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), format!("branch 'nope' not found in {url}"));
    let missing = "0123456789abcdef0123456789abcdef01234567".to_owned();
    let err = checkout(
        &url,
        &Auth::None,
        &GitRef::Commit { sha: missing, branch: None },
        &fixture.dest("missing-commit"),
        &CheckoutOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("commit '0123456789abcdef0123456789abcdef01234567' not found in {url}")
    );
    assert_eq!(err.reason(), "GitOperationFailed");
}

#[test]
fn remote_head_matches_checkout() {
    let fixture = Fixture::new();
    for reference in [
        GitRef::Branch("main".into()),
        GitRef::Tag("v1.0.0".into()),
        GitRef::Semver("1.x".into()),
        GitRef::Name("refs/heads/dev".into()),
    ] {
        let head = remote_head(&fixture.file_url(), &Auth::None, &reference).unwrap();
        let dest = fixture.dest(&format!("head-{}", rand_suffix()));
        let commit = checkout(
            &fixture.file_url(),
            &Auth::None,
            &reference,
            &dest,
            &CheckoutOptions::default(),
        )
        .unwrap();
        assert_eq!(head.as_deref(), Some(commit.sha.as_str()), "{reference:?}");
    }
    // A new commit moves the head.
    let before =
        remote_head(&fixture.file_url(), &Auth::None, &GitRef::Branch("main".into())).unwrap();
    let new_sha = fixture.commit("x.txt", "x", "more");
    git(&fixture.work, &["push", "--quiet", "origin", "main"]);
    let after =
        remote_head(&fixture.file_url(), &Auth::None, &GitRef::Branch("main".into())).unwrap();
    assert_ne!(before, after);
    assert_eq!(after, Some(new_sha));
}

#[test]
fn git_daemon_serves_checkout_and_remote_head() {
    let fixture = Fixture::new();
    let daemon = git_daemon(fixture.bare.parent().unwrap());
    let url = format!("git://127.0.0.1:{}/app.git", daemon.port);
    let reference = GitRef::Semver(">=1.0.0".into());
    let head = remote_head(&url, &Auth::None, &reference).unwrap();
    let commit = checkout(
        &url,
        &Auth::None,
        &reference,
        &fixture.dest("daemon"),
        &CheckoutOptions::default(),
    )
    .unwrap();
    assert_eq!(head.as_deref(), Some(commit.sha.as_str()));
    assert_eq!(commit.revision.to_string(), format!("v1.1.0@sha1:{}", fixture.rev("v1.1.0")));
    let err = checkout(
        &url,
        &Auth::None,
        &GitRef::Branch("nope".into()),
        &fixture.dest("daemon-missing"),
        &CheckoutOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), format!("branch 'nope' not found in {url}"));
    let refused = format!("git://127.0.0.1:{}/app.git", support::free_port());
    let err = remote_head(&refused, &Auth::None, &GitRef::Branch("main".into())).unwrap_err();
    assert_eq!(err.reason(), "GitOperationFailed", "{err}");
}

#[test]
fn sparse_paths_keep_only_those_directories() {
    let fixture = Fixture::new();
    let dest = fixture.dest("sparse");
    let options =
        CheckoutOptions { sparse_paths: vec!["apps/".into()], ..CheckoutOptions::default() };
    checkout(&fixture.file_url(), &Auth::None, &GitRef::Branch("main".into()), &dest, &options)
        .unwrap();
    assert!(dest.join("apps/app.yaml").is_file());
    assert!(!dest.join("infra").exists());
    assert!(!dest.join("README.md").exists());
}

#[test]
fn timeout_is_reported_as_timeout() {
    let fixture = Fixture::new();
    // Something that accepts but never answers: a listener nobody serves.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("git://127.0.0.1:{port}/app.git");
    let options =
        CheckoutOptions { timeout: Duration::from_millis(500), ..CheckoutOptions::default() };
    let err = checkout(
        &url,
        &Auth::None,
        &GitRef::Branch("main".into()),
        &fixture.dest("slow"),
        &options,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("timed out after 500ms"), "{err}");
}

#[test]
fn submodules_are_cloned_when_asked() {
    let fixture = Fixture::new();
    let repos = fixture.bare.parent().unwrap();
    let lib_work = fixture.root.path().join("lib-work");
    std::fs::create_dir_all(&lib_work).unwrap();
    git(&lib_work, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(lib_work.join("lib.yaml"), "kind: Library\n").unwrap();
    git(&lib_work, &["add", "lib.yaml"]);
    git(&lib_work, &["commit", "--quiet", "-m", "lib"]);
    git(repos, &["clone", "--quiet", "--bare", lib_work.to_str().unwrap(), "lib.git"]);
    let lib_url = format!("file://{}", repos.join("lib.git").display());
    git(
        &fixture.work,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "--quiet",
            &lib_url,
            "vendor/lib",
        ],
    );
    git(&fixture.work, &["commit", "--quiet", "-m", "add submodule"]);
    git(&fixture.work, &["push", "--quiet", "origin", "main"]);

    let reference = GitRef::Branch("main".into());
    let with = CheckoutOptions { recurse_submodules: true, ..CheckoutOptions::default() };
    let dest = fixture.dest("with-submodules");
    checkout(&fixture.file_url(), &Auth::None, &reference, &dest, &with).unwrap();
    assert_eq!(
        std::fs::read_to_string(dest.join("vendor/lib/lib.yaml")).unwrap(),
        "kind: Library\n"
    );

    let dest = fixture.dest("without-submodules");
    checkout(&fixture.file_url(), &Auth::None, &reference, &dest, &CheckoutOptions::default())
        .unwrap();
    assert!(!dest.join("vendor/lib/lib.yaml").exists());
}
