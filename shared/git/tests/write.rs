//! Clone for write, commit and push against bare repositories over file:// and git://.

mod support;

use sluice_git::{
    Auth, Author, CheckoutOptions, Error, PushOptions, clone_for_write, commit_all_and_push, push,
};
use support::{Fixture, git, git_daemon};

fn author() -> Author {
    Author { name: "Flux".into(), email: "flux@example.com".into() }
}

#[test]
fn commit_and_push_updates_the_remote_branch() {
    let fixture = Fixture::new();
    let dest = fixture.dest("write");
    let cloned = clone_for_write(
        &fixture.file_url(),
        &Auth::None,
        "main",
        &dest,
        &CheckoutOptions::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(cloned.sha, fixture.rev("main"));
    assert_eq!(cloned.revision.to_string(), format!("main@sha1:{}", cloned.sha));
    // The full branch history is there.
    assert_eq!(git(&dest, &["rev-list", "--count", "HEAD"]), "4");

    std::fs::write(dest.join("apps/app.yaml"), "kind: ConfigMap\nimage: app:1.2.3\n").unwrap();
    std::fs::write(dest.join("new.yaml"), "kind: Secret\n").unwrap();
    let message = "Update from image update automation\n\nimage: app:1.2.3\n";
    let pushed =
        commit_all_and_push(&dest, &Auth::None, "main", &author(), message).unwrap().unwrap();
    assert_eq!(fixture.rev("main"), pushed.sha);
    assert_eq!(pushed.message, message);
    assert_eq!(pushed.author.name, "Flux");
    assert_eq!(pushed.author.email, "flux@example.com");
    assert_eq!(pushed.revision.to_string(), format!("main@sha1:{}", pushed.sha));
    assert_eq!(git(&fixture.bare, &["show", "main:new.yaml"]), "kind: Secret");

    // Nothing changed: no commit, no push.
    let again = commit_all_and_push(&dest, &Auth::None, "main", &author(), message).unwrap();
    assert_eq!(again, None);
    assert_eq!(fixture.rev("main"), pushed.sha);
}

#[test]
fn push_to_a_new_branch_and_non_fast_forward_rejection() {
    let fixture = Fixture::new();
    let dest = fixture.dest("write");
    clone_for_write(&fixture.file_url(), &Auth::None, "main", &dest, &CheckoutOptions::default())
        .unwrap();
    std::fs::write(dest.join("a.txt"), "a").unwrap();
    let pushed =
        commit_all_and_push(&dest, &Auth::None, "automation", &author(), "auto").unwrap().unwrap();
    assert_eq!(fixture.rev("automation"), pushed.sha);

    // Someone else moves main; our stale clone's push is rejected, then forced.
    fixture.commit("other.txt", "other", "concurrent change");
    git(&fixture.work, &["push", "--quiet", "origin", "main"]);
    let err = push(&dest, &Auth::None, "main", &PushOptions::default()).unwrap_err();
    assert!(matches!(err, Error::PushRejected { .. }), "{err}");
    assert!(err.to_string().starts_with("push of branch 'main' to file://"), "{err}");
    assert_eq!(err.reason(), "GitOperationFailed");
    push(&dest, &Auth::None, "main", &PushOptions { force: true, ..PushOptions::default() })
        .unwrap();
    assert_eq!(fixture.rev("main"), pushed.sha);

    // An extra refspec (Gerrit-style review ref) is pushed along with the branch.
    let options =
        PushOptions { refspec: Some("HEAD:refs/for/main".into()), ..PushOptions::default() };
    push(&dest, &Auth::None, "main", &options).unwrap();
    assert_eq!(git(&fixture.bare, &["rev-parse", "refs/for/main"]), pushed.sha);
    let injected =
        PushOptions { refspec: Some("--receive-pack=true".into()), ..PushOptions::default() };
    assert!(push(&dest, &Auth::None, "main", &injected).is_err());
}

#[test]
fn clone_for_write_of_an_empty_repository_starts_the_branch() {
    let fixture = Fixture::new();
    let repos = fixture.bare.parent().unwrap();
    git(repos, &["init", "--quiet", "--bare", "empty.git"]);
    let daemon = git_daemon(repos);
    let url = format!("git://127.0.0.1:{}/empty.git", daemon.port);
    let dest = fixture.dest("bootstrap");
    let cloned =
        clone_for_write(&url, &Auth::None, "main", &dest, &CheckoutOptions::default()).unwrap();
    assert_eq!(cloned, None);
    std::fs::create_dir_all(dest.join("clusters/my-cluster/flux-system")).unwrap();
    std::fs::write(dest.join("clusters/my-cluster/flux-system/gotk-components.yaml"), "---\n")
        .unwrap();
    let pushed =
        commit_all_and_push(&dest, &Auth::None, "main", &author(), "Add Flux sync manifests")
            .unwrap()
            .unwrap();
    let remote_sha = git(&repos.join("empty.git"), &["rev-parse", "main"]);
    assert_eq!(remote_sha, pushed.sha);
}
