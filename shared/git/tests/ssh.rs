//! SSH transport against a loopback sshd: keys and known_hosts from the "Secret", strict host keys.

mod support;

use sluice_git::{
    Auth, CheckoutOptions, Error, GitRef, checkout, clone_for_write, commit_all_and_push,
    remote_head,
};
use support::{Fixture, generate_key, ssh_server};

fn ssh_url(ssh: &support::SshServer, fixture: &Fixture) -> String {
    format!("ssh://{}@127.0.0.1:{}{}", ssh.user, ssh.server.port, fixture.bare.display())
}

#[test]
fn ssh_checkout_remote_head_and_push() {
    let Some(ssh) = ssh_server() else { return };
    let fixture = Fixture::new();
    let url = ssh_url(&ssh, &fixture);
    let auth = Auth::Ssh {
        identity: ssh.identity.clone(),
        known_hosts: ssh.known_hosts.clone(),
        password: None,
    };
    let reference = GitRef::Branch("main".into());
    let head = remote_head(&url, &auth, &reference).unwrap();
    let commit =
        checkout(&url, &auth, &reference, &fixture.dest("ssh"), &CheckoutOptions::default())
            .unwrap();
    assert_eq!(head.as_deref(), Some(commit.sha.as_str()));
    assert_eq!(commit.sha, fixture.rev("main"));
    let (fetched, tree) = sluice_git::fetch_tree(
        &url,
        &auth,
        &reference,
        &fixture.dest("ssh-tree"),
        &CheckoutOptions::default(),
    )
    .unwrap();
    assert_eq!(fetched.sha, commit.sha);
    assert!(tree.is_some(), "fetched without a worktree over ssh");

    let dest = fixture.dest("ssh-write");
    clone_for_write(&url, &auth, "main", &dest, &CheckoutOptions::default()).unwrap();
    std::fs::write(dest.join("pushed.txt"), "over ssh").unwrap();
    let author = sluice_git::Author { name: "Flux".into(), email: "flux@example.com".into() };
    let pushed =
        commit_all_and_push(&dest, &auth, "main", &author, "push over ssh").unwrap().unwrap();
    assert_eq!(fixture.rev("main"), pushed.sha);
}

#[test]
fn ssh_host_key_mismatch_is_a_clear_failure() {
    let Some(ssh) = ssh_server() else { return };
    let fixture = Fixture::new();
    let url = ssh_url(&ssh, &fixture);
    let (_, other_public) = generate_key(&ssh.dir.path().join("otherhost"), "");
    let mut parts = other_public.split_whitespace();
    let wrong_hosts = format!(
        "[127.0.0.1]:{} {} {}\n",
        ssh.server.port,
        parts.next().unwrap(),
        parts.next().unwrap()
    );
    let port = ssh.server.port;
    for known_hosts in [wrong_hosts, String::new(), format!("[127.0.0.2]:{port} {other_public}")] {
        let auth = Auth::Ssh { identity: ssh.identity.clone(), known_hosts, password: None };
        let err = remote_head(&url, &auth, &GitRef::Branch("main".into())).unwrap_err();
        assert!(matches!(err, Error::HostKeyMismatch { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("ssh host key of 127.0.0.1:{port} does not match known_hosts")
        );
        assert_eq!(err.reason(), "AuthenticationFailed");
        let dest = fixture.dest("mismatch");
        let err = checkout(
            &url,
            &auth,
            &GitRef::Branch("main".into()),
            &dest,
            &CheckoutOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::HostKeyMismatch { .. }), "{err:?}");
        assert!(!dest.exists());
        let dest = fixture.dest("mismatch-tree");
        let reference = GitRef::Branch("main".into());
        let err = sluice_git::fetch_tree(&url, &auth, &reference, &dest, &Default::default())
            .unwrap_err();
        assert!(matches!(err, Error::HostKeyMismatch { .. }), "{err:?}");
        assert!(!dest.exists());
    }
}

#[test]
fn ssh_wrong_key_is_authentication_failure_and_passphrase_keys_work() {
    let Some(ssh) = ssh_server() else { return };
    let fixture = Fixture::new();
    let url = ssh_url(&ssh, &fixture);
    let (stranger, _) = generate_key(&ssh.dir.path().join("stranger"), "");
    let auth =
        Auth::Ssh { identity: stranger, known_hosts: ssh.known_hosts.clone(), password: None };
    let err = remote_head(&url, &auth, &GitRef::Branch("main".into())).unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err:?}");
    assert_eq!(err.reason(), "AuthenticationFailed");
    assert!(err.to_string().ends_with("Permission denied (publickey)."), "{err}");

    // An encrypted key authorised on the server, with its passphrase from the Secret.
    let (encrypted, encrypted_public) =
        generate_key(&ssh.dir.path().join("encrypted"), "correct horse");
    let authorized = ssh.dir.path().join("authorized_keys");
    let mut keys = std::fs::read_to_string(&authorized).unwrap();
    keys.push_str(&encrypted_public);
    std::fs::write(&authorized, keys).unwrap();
    let auth = Auth::Ssh {
        identity: encrypted.clone(),
        known_hosts: ssh.known_hosts.clone(),
        password: Some("correct horse".into()),
    };
    let head = remote_head(&url, &auth, &GitRef::Branch("main".into())).unwrap();
    assert_eq!(head, Some(fixture.rev("main")));
    let wrong = Auth::Ssh {
        identity: encrypted,
        known_hosts: ssh.known_hosts.clone(),
        password: Some("nope".into()),
    };
    let err = remote_head(&url, &wrong, &GitRef::Branch("main".into())).unwrap_err();
    assert_eq!(err.reason(), "AuthenticationFailed", "{err:?}");
    assert!(!err.to_string().contains("nope"));
}
