//! Commit and tag signature verification with SSH and PGP keys made by ssh-keygen and gpg.
#![cfg(feature = "verify")]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use sluice_git::{Auth, CheckoutOptions, Error, GitRef, TrustedKeys, VerificationMode, checkout};
use support::{Fixture, generate_key, git, git_with_env};

fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs.iter().map(|(key, value)| (key.to_string(), value.as_bytes().to_vec())).collect()
}

/// Commit and annotated-tag `v3.0.0` on main signed with an SSH key; returns the public key line.
fn sign_with_ssh(fixture: &Fixture) -> String {
    let key_path = fixture.root.path().join("signing");
    let (_, public) = generate_key(&key_path, "");
    let signing = ["-c", "gpg.format=ssh", "-c"];
    let key_option = format!("user.signingkey={}", key_path.display());
    std::fs::write(fixture.work.join("signed.txt"), "signed").unwrap();
    git(&fixture.work, &["add", "signed.txt"]);
    let mut args = signing.to_vec();
    args.extend([key_option.as_str(), "commit", "--quiet", "-S", "-m", "signed commit"]);
    git(&fixture.work, &args);
    let mut args = signing.to_vec();
    args.extend([key_option.as_str(), "tag", "-s", "v3.0.0", "-m", "signed tag"]);
    git(&fixture.work, &args);
    git(&fixture.work, &["push", "--quiet", "origin", "main", "v3.0.0"]);
    public
}

#[track_caller]
fn check_verification(
    fixture: &Fixture,
    reference: GitRef,
    mode: VerificationMode,
    keys: &TrustedKeys,
) -> Result<Vec<String>, Error> {
    let dest = fixture.dest(&format!("verify-{}", rand_suffix()));
    let commit =
        checkout(&fixture.file_url(), &Auth::None, &reference, &dest, &CheckoutOptions::default())
            .unwrap();
    commit.verify(mode, keys)
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

#[test]
fn ssh_signed_commit_and_tag_verify_with_the_trusted_key_only() {
    let fixture = Fixture::new();
    let public = sign_with_ssh(&fixture);
    let keys = TrustedKeys::from_secret_data(&secret(&[("author.sshpub", &public)])).unwrap();
    let main = GitRef::Branch("main".into());
    let fingerprints =
        check_verification(&fixture, main.clone(), VerificationMode::Head, &keys).unwrap();
    assert_eq!(fingerprints.len(), 1);
    assert!(fingerprints[0].starts_with("SHA256:"), "{fingerprints:?}");
    let tag = GitRef::Tag("v3.0.0".into());
    let both =
        check_verification(&fixture, tag.clone(), VerificationMode::TagAndHead, &keys).unwrap();
    assert_eq!(both.len(), 2);
    let semver = GitRef::Semver(">=3.0.0".into());
    check_verification(&fixture, semver, VerificationMode::Tag, &keys).unwrap();

    // Another key does not verify.
    let (_, stranger) = generate_key(&fixture.root.path().join("stranger"), "");
    let untrusted = TrustedKeys::from_secret_data(&secret(&[("other.sshpub", &stranger)])).unwrap();
    let err = check_verification(&fixture, main, VerificationMode::Head, &untrusted).unwrap_err();
    assert!(err.to_string().ends_with("no trusted SSH key verifies the signature"), "{err}");
    assert_eq!(err.reason(), "VerificationError");

    // An unsigned commit and a lightweight tag fail with clear reasons.
    let unsigned = GitRef::Tag("v1.1.0".into());
    let err =
        check_verification(&fixture, unsigned.clone(), VerificationMode::Head, &keys).unwrap_err();
    assert!(err.to_string().ends_with("it is not signed"), "{err}");
    let err = check_verification(&fixture, unsigned, VerificationMode::Tag, &keys).unwrap_err();
    assert!(err.to_string().contains("needs an annotated tag"), "{err}");
    let err =
        check_verification(&fixture, GitRef::Tag("v1.0.0".into()), VerificationMode::Tag, &keys)
            .unwrap_err();
    assert_eq!(err.to_string(), "verifying signature of tag 'v1.0.0': it is not signed");
}

fn gpg(home: &Path, args: &[&str]) -> String {
    let output = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""])
        .args(args)
        .output()
        .expect("gpg runs");
    assert!(output.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn pgp_signed_commit_verifies_with_the_armored_key() {
    if Command::new("gpg").arg("--version").output().is_err() {
        eprintln!("skipping: gpg not installed");
        return;
    }
    let fixture = Fixture::new();
    let home = fixture.root.path().join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    let mut permissions = std::fs::metadata(&home).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o700);
    std::fs::set_permissions(&home, permissions).unwrap();
    gpg(&home, &["--quick-gen-key", "Flux Test <flux@example.com>", "ed25519", "sign", "never"]);
    let armored = gpg(&home, &["--armor", "--export", "flux@example.com"]);

    std::fs::write(fixture.work.join("pgp.txt"), "pgp").unwrap();
    git(&fixture.work, &["add", "pgp.txt"]);
    git_with_env(
        &fixture.work,
        &["-c", "user.signingkey=flux@example.com", "commit", "--quiet", "-S", "-m", "pgp signed"],
        &[("GNUPGHOME", &home)],
    );
    git(&fixture.work, &["push", "--quiet", "origin", "main"]);

    let keys = TrustedKeys::from_secret_data(&secret(&[("flux.asc", &armored)])).unwrap();
    let main = GitRef::Branch("main".into());
    let fingerprints =
        check_verification(&fixture, main.clone(), VerificationMode::Head, &keys).unwrap();
    assert_eq!(fingerprints.len(), 1);
    let listed = gpg(&home, &["--with-colons", "--fingerprint", "flux@example.com"]);
    assert!(listed.contains(&fingerprints[0]), "{fingerprints:?} not in {listed}");

    // An SSH-only key set does not verify a PGP signature.
    let (_, ssh_public) = generate_key(&fixture.root.path().join("ssh-only"), "");
    let ssh_only = TrustedKeys::from_secret_data(&secret(&[("a.sshpub", &ssh_public)])).unwrap();
    let err = check_verification(&fixture, main, VerificationMode::Head, &ssh_only).unwrap_err();
    assert!(err.to_string().ends_with("no trusted PGP key verifies the signature"), "{err}");
}

#[test]
fn signed_automation_commits_verify_in_sluice_and_in_git() {
    if Command::new("gpg").arg("--version").output().is_err() {
        eprintln!("skipping: gpg not installed");
        return;
    }
    let fixture = Fixture::new();
    let home = fixture.root.path().join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    let mut permissions = std::fs::metadata(&home).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o700);
    std::fs::set_permissions(&home, permissions).unwrap();
    let output = Command::new("gpg")
        .env("GNUPGHOME", &home)
        .args(["--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "s3cret-pass"])
        .args(["--quick-gen-key", "Flux Bot <bot@example.com>", "ed25519", "sign", "never"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let private = Command::new("gpg")
        .env("GNUPGHOME", &home)
        .args(["--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "s3cret-pass"])
        .args(["--armor", "--export-secret-keys", "bot@example.com"])
        .output()
        .unwrap();
    let private = String::from_utf8(private.stdout).unwrap();
    let public = gpg(&home, &["--armor", "--export", "bot@example.com"]);

    let wrong = sluice_git::CommitSigningKey::from_armored(&private, Some("nope")).unwrap_err();
    assert_eq!(wrong.reason(), "AuthenticationFailed");
    let signing_key = sluice_git::CommitSigningKey::from_secret_data(&secret(&[
        ("git.asc", &private),
        ("passphrase", "s3cret-pass"),
    ]))
    .unwrap();

    let dest = fixture.dest("signed-write");
    sluice_git::clone_for_write(
        &fixture.file_url(),
        &Auth::None,
        "main",
        &dest,
        &CheckoutOptions::default(),
    )
    .unwrap();
    std::fs::write(dest.join("image.yaml"), "image: app:2.0.0\n").unwrap();
    let author = sluice_git::Author { name: "Flux".into(), email: "bot@example.com".into() };
    let commit = sluice_git::commit_all_signed(&dest, &author, "Update image\n", &signing_key)
        .unwrap()
        .unwrap();
    assert!(commit.signature.as_deref().unwrap().contains("BEGIN PGP SIGNATURE"));
    let keys = TrustedKeys::from_secret_data(&secret(&[("bot.asc", &public)])).unwrap();
    commit.verify_signature(&keys).unwrap();
    // git itself accepts the signature.
    git_with_env(&dest, &["verify-commit", "HEAD"], &[("GNUPGHOME", &home)]);
    assert_eq!(git(&dest, &["log", "-1", "--format=%s"]), "Update image");
}
