//! Smart HTTP with basic and bearer auth, through gix's reqwest transport and the git CLI.

mod support;

use sluice_git::{
    Auth, Author, CheckoutOptions, Error, GitRef, HttpOptions, Proxy, checkout, clone_for_write,
    commit_all_and_push, remote_head,
};
use support::Fixture;
use support::http::http_server;

fn basic() -> Auth {
    Auth::Basic { username: "alice".into(), password: "s3cret".into() }
}

#[test]
fn http_basic_and_bearer_auth_checkout() {
    let fixture = Fixture::new();
    let server = http_server(fixture.bare.parent().unwrap());
    let base = format!("http://127.0.0.1:{}", server.port);
    let reference = GitRef::Branch("main".into());
    let main = fixture.rev("main");

    let public = format!("{base}/public/app.git");
    let commit = checkout(
        &public,
        &Auth::None,
        &reference,
        &fixture.dest("public"),
        &CheckoutOptions::default(),
    )
    .unwrap();
    assert_eq!(commit.sha, main);

    let private = format!("{base}/private/app.git");
    let head = remote_head(&private, &basic(), &reference).unwrap();
    assert_eq!(head.as_deref(), Some(main.as_str()));
    let commit = checkout(
        &private,
        &basic(),
        &GitRef::Semver(">=1.0.0".into()),
        &fixture.dest("basic"),
        &CheckoutOptions::default(),
    )
    .unwrap();
    assert_eq!(commit.revision.to_string(), format!("v1.1.0@sha1:{}", fixture.rev("v1.1.0")));
    // Credentials in the URL count as basic auth.
    let in_url = format!("http://alice:s3cret@127.0.0.1:{}/private/app.git", server.port);
    assert_eq!(
        remote_head(&in_url, &Auth::None, &reference).unwrap().as_deref(),
        Some(main.as_str())
    );

    let bearer = format!("{base}/bearer/app.git");
    let commit = checkout(
        &bearer,
        &Auth::Bearer("t0ken".into()),
        &reference,
        &fixture.dest("bearer"),
        &CheckoutOptions::default(),
    )
    .unwrap();
    assert_eq!(commit.sha, main);
}

#[test]
fn http_wrong_or_missing_credentials_fail_without_leaking_them() {
    let fixture = Fixture::new();
    let server = http_server(fixture.bare.parent().unwrap());
    let private = format!("http://127.0.0.1:{}/private/app.git", server.port);
    let reference = GitRef::Branch("main".into());
    let wrong = Auth::Basic { username: "alice".into(), password: "hunter22".into() };
    for auth in [wrong, Auth::None, Auth::Bearer("wr0ngtoken".into())] {
        let err = remote_head(&private, &auth, &reference).unwrap_err();
        assert!(matches!(err, Error::AuthenticationFailed { .. }), "{auth:?}: {err:?}");
        assert_eq!(err.reason(), "AuthenticationFailed");
        let expected = if auth == Auth::None {
            "the server requires credentials (HTTP 401 Unauthorized) and none were given"
        } else {
            "the server rejected the credentials (HTTP 401 Unauthorized)"
        };
        assert_eq!(err.to_string(), format!("authentication to {private} failed: {expected}"));
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter22") && !text.contains("wr0ngtoken"), "{text}");
        let dest = fixture.dest("denied");
        let err =
            checkout(&private, &auth, &reference, &dest, &CheckoutOptions::default()).unwrap_err();
        assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err:?}");
        assert!(!dest.exists());
    }
    let in_url = format!("http://alice:hunter22@127.0.0.1:{}/private/app.git", server.port);
    let err = remote_head(&in_url, &Auth::None, &reference).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter22"), "{text}");
}

#[test]
fn http_push_with_basic_auth() {
    let fixture = Fixture::new();
    let server = http_server(fixture.bare.parent().unwrap());
    let private = format!("http://127.0.0.1:{}/private/app.git", server.port);
    let dest = fixture.dest("push");
    clone_for_write(&private, &basic(), "main", &dest, &CheckoutOptions::default())
        .unwrap()
        .unwrap();
    // The stored remote URL carries no credentials.
    assert_eq!(support::git(&dest, &["remote", "get-url", "origin"]), private);
    std::fs::write(dest.join("http.txt"), "pushed over http").unwrap();
    let author = Author { name: "Flux".into(), email: "flux@example.com".into() };
    let pushed =
        commit_all_and_push(&dest, &basic(), "main", &author, "push over http").unwrap().unwrap();
    assert_eq!(fixture.rev("main"), pushed.sha);
    std::fs::write(dest.join("http.txt"), "second").unwrap();
    let wrong = Auth::Basic { username: "alice".into(), password: "hunter22".into() };
    let err = commit_all_and_push(&dest, &wrong, "main", &author, "denied").unwrap_err();
    assert_eq!(err.reason(), "AuthenticationFailed", "{err:?}");
    let expected = "the server rejected the credentials (HTTP 401 Unauthorized)";
    assert_eq!(err.to_string(), format!("authentication to {private} failed: {expected}"));
    assert!(!format!("{err:?}").contains("hunter22"));
}

#[test]
fn http_proxy_with_credentials_for_checkout_and_push() {
    use std::sync::atomic::Ordering;
    let fixture = Fixture::new();
    let server = http_server(fixture.bare.parent().unwrap());
    // Only reachable through the proxy: the host does not resolve.
    let url = "http://git.example.invalid/private/app.git";
    let proxy = Proxy {
        address: format!("http://127.0.0.1:{}", server.port),
        username: Some("proxy".into()),
        password: Some("pw123".into()),
    };
    let options = CheckoutOptions {
        http: HttpOptions { proxy: Some(proxy.clone()), ..HttpOptions::default() },
        ..CheckoutOptions::default()
    };
    let reference = GitRef::Branch("main".into());
    let commit = checkout(url, &basic(), &reference, &fixture.dest("proxied"), &options).unwrap();
    assert_eq!(commit.sha, fixture.rev("main"));
    assert!(server.proxied.load(Ordering::SeqCst) > 0);

    let dest = fixture.dest("proxied-write");
    clone_for_write(url, &basic(), "main", &dest, &options).unwrap().unwrap();
    std::fs::write(dest.join("proxied.txt"), "through the proxy").unwrap();
    let message = "push through proxy";
    let author = Author { name: "Flux".into(), email: "flux@example.com".into() };
    sluice_git::commit_all(&dest, &author, message).unwrap().unwrap();
    let push_options = sluice_git::PushOptions { http: options.http.clone(), ..Default::default() };
    sluice_git::push(&dest, &basic(), "main", &push_options).unwrap();
    assert_eq!(fixture.rev("main"), support::git(&dest, &["rev-parse", "HEAD"]));

    let wrong = Proxy { password: Some("wrongpw".into()), ..proxy };
    let options = CheckoutOptions {
        http: HttpOptions { proxy: Some(wrong), ..HttpOptions::default() },
        ..CheckoutOptions::default()
    };
    let err =
        checkout(url, &basic(), &reference, &fixture.dest("bad-proxy"), &options).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("wrongpw"), "{err:?}");
    let expected = "the proxy rejected the request (HTTP 407 Proxy Authentication Required)";
    assert_eq!(err.to_string(), format!("authentication to {url} failed: {expected}"));

    let no_pem = CheckoutOptions {
        http: HttpOptions {
            ca_certificate: Some("not a certificate".into()),
            ..HttpOptions::default()
        },
        ..CheckoutOptions::default()
    };
    let err = checkout(url, &basic(), &reference, &fixture.dest("bad-ca"), &no_pem).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid credentials: Secret key 'ca.crt' holds no PEM certificate"
    );
}

#[test]
fn https_with_a_private_ca_for_checkout_and_push() {
    let fixture = Fixture::new();
    let Some(tls) = support::http::tls_files(fixture.root.path()) else { return };
    let server =
        support::http::https_server(fixture.bare.parent().unwrap(), tls.server_config.clone());
    let url = format!("https://127.0.0.1:{}/private/app.git", server.port);
    let reference = GitRef::Branch("main".into());

    // The system roots do not know the test CA.
    let err = checkout(
        &url,
        &basic(),
        &reference,
        &fixture.dest("untrusted"),
        &CheckoutOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "GitOperationFailed", "{err:?}");

    let options = CheckoutOptions {
        http: HttpOptions { ca_certificate: Some(tls.ca_pem.clone()), ..HttpOptions::default() },
        ..CheckoutOptions::default()
    };
    let commit = checkout(&url, &basic(), &reference, &fixture.dest("trusted"), &options).unwrap();
    assert_eq!(commit.sha, fixture.rev("main"));
    let head = sluice_git::remote_revision(&url, &basic(), &reference, &options).unwrap().unwrap();
    assert_eq!(head.sha, commit.sha);

    let dest = fixture.dest("https-write");
    clone_for_write(&url, &basic(), "main", &dest, &options).unwrap().unwrap();
    std::fs::write(dest.join("tls.txt"), "over https").unwrap();
    let author = Author { name: "Flux".into(), email: "flux@example.com".into() };
    sluice_git::commit_all(&dest, &author, "push over https").unwrap().unwrap();
    let push_options = sluice_git::PushOptions { http: options.http.clone(), ..Default::default() };
    sluice_git::push(&dest, &basic(), "main", &push_options).unwrap();
    assert_eq!(fixture.rev("main"), support::git(&dest, &["rev-parse", "HEAD"]));
}

#[test]
fn fetch_tree_over_http_with_basic_bearer_proxy_and_private_ca() {
    use sluice_git::fetch_tree;
    let fixture = Fixture::new();
    let server = http_server(fixture.bare.parent().unwrap());
    let base = format!("http://127.0.0.1:{}", server.port);
    let reference = GitRef::Branch("main".into());
    let main = fixture.rev("main");
    let fetched = |url: &str, auth: &Auth, name: &str, options: &CheckoutOptions| {
        fetch_tree(url, auth, &reference, &fixture.dest(name), options)
    };

    let private = format!("{base}/private/app.git");
    let (commit, tree) = fetched(&private, &basic(), "basic", &Default::default()).unwrap();
    assert_eq!(commit.sha, main);
    assert!(tree.unwrap().entries().iter().any(|e| e.path.ends_with("app.yaml")));
    let bearer = format!("{base}/bearer/app.git");
    let auth = Auth::Bearer("t0ken".into());
    assert_eq!(fetched(&bearer, &auth, "bearer", &Default::default()).unwrap().0.sha, main);

    let wrong = Auth::Basic { username: "alice".into(), password: "wrongpw".into() };
    let err = fetched(&private, &wrong, "wrong", &Default::default()).unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("wrongpw"), "{err:?}");

    let proxy = Proxy {
        address: base.clone(),
        username: Some("proxy".into()),
        password: Some("pw123".into()),
    };
    let options = CheckoutOptions {
        http: HttpOptions { proxy: Some(proxy), ..HttpOptions::default() },
        ..CheckoutOptions::default()
    };
    let unresolvable = "http://git.example.invalid/private/app.git";
    assert_eq!(fetched(unresolvable, &basic(), "proxied", &options).unwrap().0.sha, main);

    let Some(tls) = support::http::tls_files(fixture.root.path()) else { return };
    let https =
        support::http::https_server(fixture.bare.parent().unwrap(), tls.server_config.clone());
    let url = format!("https://127.0.0.1:{}/private/app.git", https.port);
    let options = CheckoutOptions {
        http: HttpOptions { ca_certificate: Some(tls.ca_pem.clone()), ..HttpOptions::default() },
        ..CheckoutOptions::default()
    };
    assert_eq!(fetched(&url, &basic(), "https", &options).unwrap().0.sha, main);
    let err = fetched(&url, &basic(), "untrusted", &Default::default()).unwrap_err();
    assert_eq!(err.reason(), "GitOperationFailed", "{err:?}");
}
