//! SOPS decryption, in-house: the documents `sops` writes (YAML and JSON trees, with the
//! `sops:` metadata branch) are decrypted with keys a Kustomization's decryption Secret holds.
//!
//! - The data key is recovered from `sops.age[].enc` with age X25519 identities (`*.agekey`)
//!   or from `sops.pgp[].enc` with OpenPGP secret keys (`*.asc`).
//! - Each value `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` is opened with AES-256-GCM (SOPS's
//!   32-byte nonces), the value's path (`key:key:`) as additional data, and typed back.
//! - Which values are encrypted follows the metadata: `unencrypted_suffix` (default
//!   `_unencrypted`), `encrypted_suffix`, `unencrypted_regex`, `encrypted_regex`.
//! - The MAC (SHA-512 over the cleartext values in document order, itself encrypted with the
//!   `lastmodified` time as additional data) can be verified; `mac_only_encrypted` is honoured.
//!
//! Trees come in as `serde_json::Value` (the caller parses YAML), so comments are not seen:
//! they are never part of the MAC, and the comment-regex rules fall back to decrypting every
//! value that is in SOPS's encrypted form.
//!
//! Error messages name the path and the key identities tried (age recipients, PGP
//! fingerprints), never a secret, a plaintext or a MAC.

use std::io::Read;
use std::str::FromStr;

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use regex::Regex;
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha512};

/// AES-256-GCM with the 32-byte nonces SOPS uses.
type SopsCipher = AesGcm<Aes256, U32>;

/// The key of the metadata branch.
pub const METADATA_KEY: &str = "sops";

/// SOPS's default suffix of keys whose values stay in clear text.
pub const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// The bytes a `mac_only_encrypted` MAC starts from (sha256 of "sops", as SOPS defines it).
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// Why decrypting failed. Messages never contain secrets or cleartext.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The document has no `sops` metadata.
    #[error("sops metadata not found: the document is not encrypted with SOPS")]
    MetadataNotFound,
    /// The `sops` metadata is malformed.
    #[error("invalid sops metadata: {0}")]
    InvalidMetadata(String),
    /// A key in the decryption Secret could not be parsed.
    #[error("failed to import '{name}': {message}")]
    InvalidKey {
        /// The Secret key (file name) that held it.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// None of the keys decrypts the data key.
    #[error("cannot get sops data key: no key in the decryption Secret matches: {0}")]
    NoMatchingKey(String),
    /// The document needs a key service this build does not support.
    #[error("cannot get sops data key: {0}")]
    Unsupported(String),
    /// A value could not be decrypted.
    #[error("could not decrypt value at '{path}': {message}")]
    Value {
        /// The value's path, `key:key:` as SOPS names it.
        path: String,
        /// Why.
        message: String,
    },
    /// The MAC does not match the decrypted values.
    #[error(
        "failed to verify sops data integrity: the MAC does not match the decrypted values (the document was changed after encryption)"
    )]
    MacMismatch,
}

/// Decryption keys, imported from the entries of a decryption Secret.
#[derive(Default)]
pub struct Keys {
    age: Vec<age::x25519::Identity>,
    pgp: Vec<pgp::composed::SignedSecretKey>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("age", &self.age.len()).field("pgp", &self.pgp.len()).finish()
    }
}

impl Keys {
    /// No keys.
    pub fn new() -> Self {
        Keys::default()
    }

    /// Whether no key was imported.
    pub fn is_empty(&self) -> bool {
        self.age.is_empty() && self.pgp.is_empty()
    }

    /// Imports the Secret entry `name` as Flux does by its extension: `*.agekey` holds age
    /// identities (one `AGE-SECRET-KEY-1…` a line, `#` comments), `*.asc` armored OpenPGP
    /// secret keys. Other entries are ignored. Returns whether the entry was a key file.
    ///
    /// # Errors
    /// A key file that does not parse, named by `name`.
    pub fn import(&mut self, name: &str, value: &[u8]) -> Result<bool, Error> {
        let invalid = |message: String| Error::InvalidKey { name: name.to_string(), message };
        if name.ends_with(".agekey") {
            let text = std::str::from_utf8(value)
                .map_err(|_| invalid("an age key file must be UTF-8 text".into()))?;
            let mut found = 0;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let identity = age::x25519::Identity::from_str(line).map_err(|_| {
                    invalid("a line is not an age identity (AGE-SECRET-KEY-1…)".into())
                })?;
                self.age.push(identity);
                found += 1;
            }
            if found == 0 {
                return Err(invalid("no age identity found".into()));
            }
            Ok(true)
        } else if name.ends_with(".asc") {
            let (keys, _) = pgp::composed::PublicOrSecret::from_armor_many(value)
                .map_err(|err| invalid(format!("not an armored OpenPGP key: {err}")))?;
            let mut found = 0;
            for key in keys {
                match key.map_err(|err| invalid(format!("not an armored OpenPGP key: {err}")))? {
                    pgp::composed::PublicOrSecret::Secret(key) => {
                        self.pgp.push(key);
                        found += 1;
                    }
                    pgp::composed::PublicOrSecret::Public(_) => {}
                }
            }
            if found == 0 {
                return Err(invalid(
                    "no OpenPGP secret key found (export it with gpg --export-secret-keys --armor)"
                        .into(),
                ));
            }
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

/// Whether `doc` carries SOPS metadata (a `sops` mapping with a `mac`), as an encrypted
/// resource does.
pub fn is_encrypted(doc: &Value) -> bool {
    doc.get(METADATA_KEY).is_some_and(|m| m.is_object() && m.get("mac").is_some())
}

/// The parsed `sops` metadata branch.
struct Metadata {
    last_modified: String,
    mac: String,
    mac_only_encrypted: bool,
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<Regex>,
    encrypted_regex: Option<Regex>,
    comment_rules: bool,
    age: Vec<String>,
    age_recipients: Vec<String>,
    pgp: Vec<String>,
    pgp_fingerprints: Vec<String>,
    other_key_services: Vec<&'static str>,
}

fn string_field(meta: &Map<String, Value>, key: &str) -> Option<String> {
    meta.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

fn regex_field(meta: &Map<String, Value>, key: &str) -> Result<Option<Regex>, Error> {
    string_field(meta, key)
        .map(|raw| {
            Regex::new(&raw).map_err(|err| Error::InvalidMetadata(format!("{key} {raw:?}: {err}")))
        })
        .transpose()
}

impl Metadata {
    fn parse(meta: &Value) -> Result<Metadata, Error> {
        let meta = meta.as_object().ok_or(Error::MetadataNotFound)?;
        let groups: Vec<&Map<String, Value>> = match meta.get("key_groups") {
            Some(Value::Array(groups)) if groups.len() > 1 => {
                return Err(Error::Unsupported(format!(
                    "the document splits its data key over {} key_groups (Shamir secret sharing), which is not supported: re-encrypt it with a single key group",
                    groups.len()
                )));
            }
            Some(Value::Array(groups)) => groups.iter().filter_map(Value::as_object).collect(),
            _ => vec![meta],
        };
        let mut parsed = Metadata {
            last_modified: string_field(meta, "lastmodified")
                .ok_or_else(|| Error::InvalidMetadata("sops.lastmodified is missing".into()))?,
            mac: string_field(meta, "mac").unwrap_or_default(),
            mac_only_encrypted: meta.get("mac_only_encrypted").and_then(Value::as_bool)
                == Some(true),
            unencrypted_suffix: string_field(meta, "unencrypted_suffix"),
            encrypted_suffix: string_field(meta, "encrypted_suffix"),
            unencrypted_regex: regex_field(meta, "unencrypted_regex")?,
            encrypted_regex: regex_field(meta, "encrypted_regex")?,
            comment_rules: string_field(meta, "unencrypted_comment_regex").is_some()
                || string_field(meta, "encrypted_comment_regex").is_some(),
            age: Vec::new(),
            age_recipients: Vec::new(),
            pgp: Vec::new(),
            pgp_fingerprints: Vec::new(),
            other_key_services: Vec::new(),
        };
        if parsed.unencrypted_suffix.is_none()
            && parsed.encrypted_suffix.is_none()
            && parsed.unencrypted_regex.is_none()
            && parsed.encrypted_regex.is_none()
            && !parsed.comment_rules
        {
            parsed.unencrypted_suffix = Some(DEFAULT_UNENCRYPTED_SUFFIX.to_string());
        }
        for group in groups {
            for entry in group.get("age").and_then(Value::as_array).into_iter().flatten() {
                if let Some(enc) = entry.get("enc").and_then(Value::as_str) {
                    parsed.age.push(enc.to_string());
                    parsed.age_recipients.push(
                        entry.get("recipient").and_then(Value::as_str).unwrap_or("?").to_string(),
                    );
                }
            }
            for entry in group.get("pgp").and_then(Value::as_array).into_iter().flatten() {
                if let Some(enc) = entry.get("enc").and_then(Value::as_str) {
                    parsed.pgp.push(enc.to_string());
                    parsed
                        .pgp_fingerprints
                        .push(entry.get("fp").and_then(Value::as_str).unwrap_or("?").to_string());
                }
            }
            for (key, service) in [
                ("kms", "AWS KMS"),
                ("gcp_kms", "GCP KMS"),
                ("azure_kv", "Azure Key Vault"),
                ("hc_vault", "HashiCorp Vault"),
            ] {
                if group.get(key).and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
                    parsed.other_key_services.push(service);
                }
            }
        }
        Ok(parsed)
    }

    /// SOPS's `shouldBeEncrypted` for the path-based rules.
    fn should_be_encrypted(&self, path: &[String]) -> bool {
        let mut encrypted = true;
        if let Some(suffix) = &self.unencrypted_suffix
            && path.iter().any(|p| p.ends_with(suffix.as_str()))
        {
            encrypted = false;
        }
        if let Some(suffix) = &self.encrypted_suffix {
            encrypted = path.iter().any(|p| p.ends_with(suffix.as_str()));
        }
        if let Some(regex) = &self.unencrypted_regex
            && path.iter().any(|p| regex.is_match(p))
        {
            encrypted = false;
        }
        if let Some(regex) = &self.encrypted_regex {
            encrypted = path.iter().any(|p| regex.is_match(p));
        }
        encrypted
    }

    /// Recovers the 32-byte data key with the first key that opens it: age first, then PGP
    /// (SOPS's default decryption order).
    fn data_key(&self, keys: &Keys) -> Result<Vec<u8>, Error> {
        let mut tried = Vec::new();
        for (enc, recipient) in self.age.iter().zip(&self.age_recipients) {
            if keys.age.is_empty() {
                tried.push(format!("age recipient {recipient}: no age key (*.agekey) given"));
                continue;
            }
            match decrypt_age(enc, &keys.age) {
                Ok(key) => return Ok(key),
                Err(message) => tried.push(format!("age recipient {recipient}: {message}")),
            }
        }
        for (enc, fingerprint) in self.pgp.iter().zip(&self.pgp_fingerprints) {
            if keys.pgp.is_empty() {
                tried.push(format!("PGP key {fingerprint}: no PGP key (*.asc) given"));
                continue;
            }
            match decrypt_pgp(enc, &keys.pgp) {
                Ok(key) => return Ok(key),
                Err(message) => tried.push(format!("PGP key {fingerprint}: {message}")),
            }
        }
        if tried.is_empty() {
            return Err(if self.other_key_services.is_empty() {
                Error::InvalidMetadata("no age or pgp master key in the sops metadata".into())
            } else {
                Error::Unsupported(format!(
                    "the data key is only encrypted with {}, which is not supported: add an age or PGP recipient",
                    self.other_key_services.join(", ")
                ))
            });
        }
        Err(Error::NoMatchingKey(tried.join("; ")))
    }
}

fn decrypt_age(enc: &str, identities: &[age::x25519::Identity]) -> Result<Vec<u8>, String> {
    let reader = age::armor::ArmoredReader::new(enc.as_bytes());
    let decryptor =
        age::Decryptor::new(reader).map_err(|err| format!("invalid age ciphertext: {err}"))?;
    let mut stream = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|err| match err {
            age::DecryptError::NoMatchingKeys => "no age identity matches".to_string(),
            other => other.to_string(),
        })?;
    let mut key = Vec::new();
    stream.read_to_end(&mut key).map_err(|err| format!("reading the age payload: {err}"))?;
    Ok(key)
}

fn decrypt_pgp(enc: &str, keys: &[pgp::composed::SignedSecretKey]) -> Result<Vec<u8>, String> {
    let (message, _) = pgp::composed::Message::from_string(enc)
        .map_err(|err| format!("invalid PGP message: {err}"))?;
    let password = pgp::types::Password::empty();
    let message = message
        .decrypt_with_keys(vec![&password; keys.len()], keys.iter().collect())
        .map_err(|err| format!("no PGP secret key matches: {err}"))?;
    let mut message = if message.is_compressed() {
        message.decompress().map_err(|err| format!("decompressing: {err}"))?
    } else {
        message
    };
    message.as_data_vec().map_err(|err| format!("reading the PGP payload: {err}"))
}

/// An `ENC[AES256_GCM,…]` value split into its parts.
struct EncryptedValue {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    kind: String,
}

fn parse_encrypted(value: &str) -> Option<EncryptedValue> {
    let inner = value.strip_prefix("ENC[AES256_GCM,")?.strip_suffix(']')?;
    let mut data = None;
    let mut iv = None;
    let mut tag = None;
    let mut kind = None;
    for part in inner.split(',') {
        let (key, raw) = part.split_once(':')?;
        match key {
            "data" => data = Some(STANDARD.decode(raw).ok()?),
            "iv" => iv = Some(STANDARD.decode(raw).ok()?),
            "tag" => tag = Some(STANDARD.decode(raw).ok()?),
            "type" => kind = Some(raw.to_string()),
            _ => return None,
        }
    }
    Some(EncryptedValue { data: data?, iv: iv?, tag: tag?, kind: kind? })
}

/// What a decrypted value became.
enum Plain {
    Value(Value),
    Comment,
}

fn decrypt_value(value: &str, key: &[u8], path: &str) -> Result<Plain, Error> {
    let fail = |message: &str| Error::Value { path: path.to_string(), message: message.into() };
    if value.is_empty() {
        return Ok(Plain::Value(Value::String(String::new())));
    }
    let parsed = parse_encrypted(value)
        .ok_or_else(|| fail("not in SOPS's ENC[AES256_GCM,data:…,iv:…,tag:…,type:…] form"))?;
    if parsed.iv.len() != 32 {
        return Err(fail("the IV is not 32 bytes"));
    }
    let cipher =
        SopsCipher::new_from_slice(key).map_err(|_| fail("the data key is not 32 bytes"))?;
    let mut message = parsed.data;
    message.extend_from_slice(&parsed.tag);
    let plain = cipher
        .decrypt(
            Nonce::<U32>::from_slice(&parsed.iv),
            Payload { msg: &message, aad: path.as_bytes() },
        )
        .map_err(|_| {
            fail("authentication failed (wrong data key, or the value was moved or altered)")
        })?;
    let text = || String::from_utf8(plain.clone()).map_err(|_| fail("the cleartext is not UTF-8"));
    Ok(Plain::Value(match parsed.kind.as_str() {
        "str" | "bytes" => Value::String(text()?),
        "int" => Value::Number(
            text()?.trim().parse::<i64>().map_err(|_| fail("the cleartext is not an int"))?.into(),
        ),
        "float" => {
            let float: f64 =
                text()?.trim().parse().map_err(|_| fail("the cleartext is not a float"))?;
            // Go prints an integral float64 without a fraction; so does the JSON out.
            if float.fract() == 0.0 && float.abs() < 9.0e15 {
                Value::Number((float as i64).into())
            } else {
                Value::Number(
                    Number::from_f64(float).ok_or_else(|| fail("the float is not finite"))?,
                )
            }
        }
        "bool" => Value::Bool(match text()?.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
            "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
            _ => return Err(fail("the cleartext is not a bool")),
        }),
        "comment" => return Ok(Plain::Comment),
        other => return Err(fail(&format!("unknown value type {other:?}"))),
    }))
}

/// SOPS's `ToBytes`: what a value contributes to the MAC.
fn mac_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Bool(true) => b"True".to_vec(),
        Value::Bool(false) => b"False".to_vec(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string().into_bytes(),
            (None, Some(u), _) => u.to_string().into_bytes(),
            (None, None, Some(f)) => format!("{f}").into_bytes(),
            _ => Vec::new(),
        },
        Value::Null | Value::Array(_) | Value::Object(_) => Vec::new(),
    }
}

struct Walker<'a> {
    metadata: &'a Metadata,
    key: &'a [u8],
    hash: Sha512,
}

impl Walker<'_> {
    fn walk(&mut self, value: &mut Value, path: &mut Vec<String>) -> Result<(), Error> {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    path.push(key.clone());
                    self.walk(child, path)?;
                    path.pop();
                }
                Ok(())
            }
            // List items share their parent's path, as in SOPS.
            Value::Array(items) => items.iter_mut().try_for_each(|item| self.walk(item, path)),
            // Nulls are not walked by SOPS: neither decrypted nor hashed.
            Value::Null => Ok(()),
            leaf => self.leaf(leaf, path),
        }
    }

    fn leaf(&mut self, value: &mut Value, path: &[String]) -> Result<(), Error> {
        let looks_encrypted = value.as_str().is_some_and(|s| s.starts_with("ENC[AES256_GCM,"));
        let encrypted = if self.metadata.comment_rules {
            looks_encrypted
        } else {
            self.metadata.should_be_encrypted(path)
        };
        if encrypted {
            let aad = format!("{}:", path.join(":"));
            let Some(text) = value.as_str() else {
                return Err(Error::Value {
                    path: aad,
                    message: "expected an encrypted string, found a clear value".into(),
                });
            };
            match decrypt_value(text, self.key, &aad)? {
                Plain::Value(plain) => *value = plain,
                Plain::Comment => return Ok(()),
            }
        }
        if !self.metadata.mac_only_encrypted || encrypted {
            self.hash.update(mac_bytes(value));
        }
        Ok(())
    }
}

/// Decrypts a SOPS-encrypted tree (a YAML or JSON document as a value) and returns it without
/// its `sops` metadata. With `verify_mac` the MAC must match the decrypted values; Flux does not
/// check it for resources, whose fields kustomize changes after encryption.
///
/// # Errors
/// Missing or malformed metadata, no key able to open the data key, a value that does not
/// decrypt, or a MAC mismatch.
pub fn decrypt(doc: &Value, keys: &Keys, verify_mac: bool) -> Result<Value, Error> {
    let meta = doc.get(METADATA_KEY).ok_or(Error::MetadataNotFound)?;
    let metadata = Metadata::parse(meta)?;
    let key = metadata.data_key(keys)?;
    if key.len() != 32 {
        return Err(Error::InvalidMetadata(format!(
            "the data key has {} bytes instead of 32",
            key.len()
        )));
    }
    let mut tree = doc.clone();
    if let Some(map) = tree.as_object_mut() {
        map.remove(METADATA_KEY);
    }
    let mut walker = Walker { metadata: &metadata, key: &key, hash: Sha512::new() };
    if metadata.mac_only_encrypted {
        walker.hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    walker.walk(&mut tree, &mut Vec::new())?;
    if verify_mac {
        let computed = hex::encode_upper(walker.hash.finalize());
        let stored = match decrypt_value(&metadata.mac, &key, &metadata.last_modified) {
            Ok(Plain::Value(Value::String(mac))) => mac,
            _ => return Err(Error::MacMismatch),
        };
        if stored != computed {
            return Err(Error::MacMismatch);
        }
    }
    Ok(tree)
}

/// The encrypted file formats recognised inside Secret data, by the marker bytes Flux looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A YAML tree (`mac: ENC[`).
    Yaml,
    /// A JSON tree, or SOPS's binary format, a JSON envelope with one `data` value
    /// (`"mac": "ENC[`).
    Json,
    /// A dotenv file (`sops_mac=ENC[`).
    Dotenv,
}

/// The format of SOPS-encrypted `data`, if it is one.
pub fn detect_format(data: &[u8]) -> Option<Format> {
    let contains = |marker: &[u8]| data.windows(marker.len()).any(|w| w == marker);
    if contains(b"sops_mac=ENC[") {
        Some(Format::Dotenv)
    } else if contains(b"\"mac\": \"ENC[") {
        Some(Format::Json)
    } else if contains(b"mac: ENC[") {
        Some(Format::Yaml)
    } else {
        None
    }
}

/// Sets `value` at a flattened dotenv metadata key (`age__list_0__map_enc`).
fn unflatten(root: &mut Value, key: &str, value: String) -> Result<(), Error> {
    let bad = || Error::InvalidMetadata(format!("dotenv metadata key sops_{key} is malformed"));
    let mut parts = key.split("__");
    let first = parts.next().filter(|p| !p.is_empty()).ok_or_else(bad)?;
    let mut node =
        root.as_object_mut().ok_or_else(bad)?.entry(first.to_string()).or_insert(Value::Null);
    for part in parts {
        if let Some(index) = part.strip_prefix("list_") {
            let index: usize = index.parse().map_err(|_| bad())?;
            if !node.is_array() {
                *node = Value::Array(Vec::new());
            }
            let list = node.as_array_mut().ok_or_else(bad)?;
            while list.len() <= index {
                list.push(Value::Null);
            }
            node = &mut list[index];
        } else if let Some(name) = part.strip_prefix("map_") {
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            node = node
                .as_object_mut()
                .ok_or_else(bad)?
                .entry(name.to_string())
                .or_insert(Value::Null);
        } else {
            return Err(bad());
        }
    }
    *node = match value.as_str() {
        "true" if key == "mac_only_encrypted" => Value::Bool(true),
        "false" if key == "mac_only_encrypted" => Value::Bool(false),
        _ => Value::String(value),
    };
    Ok(())
}

/// Reads a SOPS dotenv file into a tree: `KEY=VALUE` lines in order (`\n` escapes newlines),
/// the `sops_*` lines unflattened into the `sops` branch; `#` comments are skipped.
///
/// # Errors
/// A line without `=`, or malformed metadata keys.
pub fn dotenv_tree(text: &str) -> Result<Value, Error> {
    let mut tree = Map::new();
    let mut metadata = Value::Object(Map::new());
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            Error::InvalidMetadata(format!("dotenv line {} has no '='", number + 1))
        })?;
        let value = value.replace("\\n", "\n");
        match key.strip_prefix("sops_") {
            Some(meta) => unflatten(&mut metadata, meta, value)?,
            None => {
                tree.insert(key.to_string(), Value::String(value));
            }
        }
    }
    tree.insert(METADATA_KEY.to_string(), metadata);
    Ok(Value::Object(tree))
}

/// Writes a decrypted tree as dotenv, `KEY=VALUE` a line (newlines escaped as `\n`).
pub fn emit_dotenv(tree: &Value) -> String {
    let mut out = String::new();
    for (key, value) in tree.as_object().into_iter().flatten() {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("{key}={}\n", text.replace('\n', "\\n")));
    }
    out
}

#[cfg(test)]
mod tests;
