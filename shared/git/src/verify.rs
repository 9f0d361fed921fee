//! Verification of commit and tag signatures against trusted PGP and SSH public keys, in pure Rust.
//!
//! Flux's `spec.verify` names a Secret whose values are trusted keys: armoured PGP public keys
//! (`*.asc`) and OpenSSH authorized-keys lines (`*.sshpub`). A commit or tag passes when its
//! signature verifies with one of them; SSH signatures must use git's `git` namespace.

use std::collections::BTreeMap;

use crate::{AnnotatedTag, Commit, Error};

/// Which objects `spec.verify.mode` asks to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerificationMode {
    /// The checked-out commit (`HEAD`, also written `head`); the default.
    #[default]
    Head,
    /// The annotated tag that was checked out.
    Tag,
    /// Both the tag and the commit it points to.
    TagAndHead,
}

impl VerificationMode {
    /// Parse `spec.verify.mode`; `None` means the default, `HEAD`.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] naming the allowed values.
    pub fn parse(mode: Option<&str>) -> Result<VerificationMode, Error> {
        match mode {
            None | Some("HEAD" | "head" | "") => Ok(VerificationMode::Head),
            Some("Tag") => Ok(VerificationMode::Tag),
            Some("TagAndHEAD") => Ok(VerificationMode::TagAndHead),
            Some(other) => Err(Error::Verification {
                object: "spec.verify.mode".into(),
                reason: format!("unknown mode {other:?}; use HEAD, Tag or TagAndHEAD"),
            }),
        }
    }

    /// The value Flux records in `status.sourceVerificationMode`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationMode::Head => "HEAD",
            VerificationMode::Tag => "Tag",
            VerificationMode::TagAndHead => "TagAndHEAD",
        }
    }
}

/// The public keys a signature may be made with.
#[derive(Clone, Default)]
pub struct TrustedKeys {
    pgp: Vec<pgp::composed::SignedPublicKey>,
    ssh: Vec<ssh_key::PublicKey>,
}

impl std::fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedKeys {{ pgp: {}, ssh: {} }}", self.pgp.len(), self.ssh.len())
    }
}

impl TrustedKeys {
    /// Read the keys of a verification Secret: armoured PGP keys and OpenSSH public-key lines.
    ///
    /// Values are recognised by content, so key names need not follow `*.asc`/`*.sshpub`.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] naming the Secret key whose value is neither, or when no key is found.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<TrustedKeys, Error> {
        let mut keys = TrustedKeys::default();
        for (name, value) in data {
            let invalid = |reason: String| Error::Verification {
                object: format!("Secret key '{name}'"),
                reason,
            };
            let text = std::str::from_utf8(value).map_err(|_| invalid("not valid UTF-8".into()))?;
            if text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
                keys.add_pgp(text).map_err(invalid)?;
            } else {
                keys.add_ssh(text).map_err(invalid)?;
            }
        }
        if keys.pgp.is_empty() && keys.ssh.is_empty() {
            return Err(Error::Verification {
                object: "verification Secret".into(),
                reason: "it holds no public keys".into(),
            });
        }
        Ok(keys)
    }

    /// Add every key of an armoured PGP keyring.
    fn add_pgp(&mut self, armored: &str) -> Result<(), String> {
        use pgp::composed::Deserializable;
        let (parsed, _headers) = pgp::composed::SignedPublicKey::from_string_many(armored)
            .map_err(|err| format!("invalid PGP public key: {err}"))?;
        for key in parsed {
            self.pgp.push(key.map_err(|err| format!("invalid PGP public key: {err}"))?);
        }
        Ok(())
    }

    /// Add each OpenSSH public-key line, skipping blanks and comments.
    fn add_ssh(&mut self, text: &str) -> Result<(), String> {
        for line in
            text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#'))
        {
            let key = ssh_key::PublicKey::from_openssh(line)
                .map_err(|err| format!("neither a PGP key block nor an SSH public key: {err}"))?;
            self.ssh.push(key);
        }
        Ok(())
    }

    /// Verify `signature` over `payload`; returns the fingerprint of the key that made it.
    fn verify(&self, signature: &str, payload: &[u8]) -> Result<String, String> {
        if signature.contains("-----BEGIN SSH SIGNATURE-----") {
            return self.verify_ssh(signature, payload);
        }
        if signature.contains("-----BEGIN PGP SIGNATURE-----") {
            return self.verify_pgp(signature, payload);
        }
        Err("unsupported signature format (expected PGP or SSH)".into())
    }

    fn verify_ssh(&self, signature: &str, payload: &[u8]) -> Result<String, String> {
        let signature = ssh_key::SshSig::from_pem(signature.trim())
            .map_err(|err| format!("invalid SSH signature: {err}"))?;
        if signature.namespace() != "git" {
            return Err(format!(
                "SSH signature namespace is {:?}, not \"git\"",
                signature.namespace()
            ));
        }
        for key in &self.ssh {
            if key.key_data() == signature.public_key()
                && key.verify("git", payload, &signature).is_ok()
            {
                return Ok(key.fingerprint(ssh_key::HashAlg::Sha256).to_string());
            }
        }
        Err("no trusted SSH key verifies the signature".into())
    }

    fn verify_pgp(&self, signature: &str, payload: &[u8]) -> Result<String, String> {
        use pgp::composed::Deserializable;
        use pgp::types::KeyDetails;
        let (signature, _headers) = pgp::composed::DetachedSignature::from_string(signature)
            .map_err(|err| format!("invalid PGP signature: {err}"))?;
        for key in &self.pgp {
            if signature.verify(&key.primary_key, payload).is_ok() {
                return Ok(format!("{:X}", key.primary_key.fingerprint()));
            }
            for subkey in &key.public_subkeys {
                if signature.verify(&subkey.key, payload).is_ok() {
                    return Ok(format!("{:X}", subkey.key.fingerprint()));
                }
            }
        }
        Err("no trusted PGP key verifies the signature".into())
    }
}

/// An OpenPGP private key that signs commits (`spec.git.commit.signingKey` of image automation).
pub struct CommitSigningKey {
    key: pgp::composed::SignedSecretKey,
    passphrase: String,
}

impl std::fmt::Debug for CommitSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use pgp::types::KeyDetails;
        write!(f, "CommitSigningKey {{ fingerprint: {:X} }}", self.key.primary_key.fingerprint())
    }
}

impl CommitSigningKey {
    /// Read an armoured private key, decrypted with `passphrase` when it is protected.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAuth`] when the key does not parse or the passphrase does not unlock it.
    pub fn from_armored(
        armored: &str,
        passphrase: Option<&str>,
    ) -> Result<CommitSigningKey, Error> {
        use pgp::composed::Deserializable;
        let (key, _headers) =
            pgp::composed::SignedSecretKey::from_string(armored).map_err(|err| {
                Error::InvalidAuth {
                    reason: format!(
                        "Secret key 'git.asc' is not an armored PGP private key: {err}"
                    ),
                }
            })?;
        let signing_key =
            CommitSigningKey { key, passphrase: passphrase.unwrap_or_default().to_owned() };
        // Fail now, not at the first commit, when the passphrase is wrong.
        signing_key.sign(b"sluice signing key check")?;
        Ok(signing_key)
    }

    /// Read Flux's signing Secret: `git.asc` and optional `passphrase`.
    ///
    /// # Errors
    ///
    /// As [`CommitSigningKey::from_armored`], or when `git.asc` is missing.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<CommitSigningKey, Error> {
        let armored = data
            .get("git.asc")
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .ok_or_else(|| Error::InvalidAuth {
                reason: "Secret key 'git.asc' is required".into(),
            })?;
        let passphrase =
            data.get("passphrase").map(|value| String::from_utf8_lossy(value).into_owned());
        CommitSigningKey::from_armored(&armored, passphrase.as_deref())
    }

    /// Make an armoured detached signature of `payload`, as git stores in `gpgsig`.
    pub(crate) fn sign(&self, payload: &[u8]) -> Result<String, Error> {
        let failed = |err: pgp::errors::Error| Error::InvalidAuth {
            reason: format!("signing with the PGP key failed (wrong passphrase?): {err}"),
        };
        let password = pgp::types::Password::from(self.passphrase.as_str());
        let signature = pgp::composed::DetachedSignature::sign_binary_data(
            rand_pgp::thread_rng(),
            &self.key.primary_key,
            &password,
            pgp::crypto::hash::HashAlgorithm::Sha256,
            payload,
        )
        .map_err(failed)?;
        signature.to_armored_string(pgp::composed::ArmorOptions::default()).map_err(failed)
    }
}

fn check(
    object: String,
    signature: Option<&String>,
    payload: Option<&Vec<u8>>,
    keys: &TrustedKeys,
) -> Result<String, Error> {
    let (Some(signature), Some(payload)) = (signature, payload) else {
        return Err(Error::Verification { object, reason: "it is not signed".into() });
    };
    keys.verify(signature, payload).map_err(|reason| Error::Verification { object, reason })
}

impl Commit {
    /// Verify this commit's signature; returns the fingerprint of the trusted key that made it.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] when the commit is unsigned or no trusted key verifies it.
    pub fn verify_signature(&self, keys: &TrustedKeys) -> Result<String, Error> {
        let object = format!("commit {}", self.sha);
        check(object, self.signature.as_ref(), self.signed_payload.as_ref(), keys)
    }

    /// Verify what `mode` asks for; returns the fingerprints of the keys that signed.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] when a signature is missing or untrusted, or when `mode` asks for
    /// a tag but the checked-out reference is not an annotated tag.
    pub fn verify(&self, mode: VerificationMode, keys: &TrustedKeys) -> Result<Vec<String>, Error> {
        let mut fingerprints = Vec::new();
        if matches!(mode, VerificationMode::Tag | VerificationMode::TagAndHead) {
            let tag = self.tag.as_ref().ok_or_else(|| Error::Verification {
                object: format!("revision {}", self.revision),
                reason:
                    "verification mode Tag needs an annotated tag reference (ref.tag or ref.semver)"
                        .into(),
            })?;
            fingerprints.push(tag.verify_signature(keys)?);
        }
        if matches!(mode, VerificationMode::Head | VerificationMode::TagAndHead) {
            fingerprints.push(self.verify_signature(keys)?);
        }
        Ok(fingerprints)
    }
}

impl AnnotatedTag {
    /// Verify this tag's signature; returns the fingerprint of the trusted key that made it.
    ///
    /// # Errors
    ///
    /// [`Error::Verification`] when the tag is unsigned or no trusted key verifies it.
    pub fn verify_signature(&self, keys: &TrustedKeys) -> Result<String, Error> {
        let object = format!("tag '{}'", self.name);
        check(object, self.signature.as_ref(), self.signed_payload.as_ref(), keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_flux_spells_them() {
        for (text, mode) in [
            (None, VerificationMode::Head),
            (Some("head"), VerificationMode::Head),
            (Some("HEAD"), VerificationMode::Head),
            (Some("Tag"), VerificationMode::Tag),
            (Some("TagAndHEAD"), VerificationMode::TagAndHead),
        ] {
            assert_eq!(VerificationMode::parse(text).unwrap(), mode);
        }
        assert!(VerificationMode::parse(Some("tag")).is_err());
        assert_eq!(VerificationMode::TagAndHead.as_str(), "TagAndHEAD");
    }

    #[test]
    fn secret_without_keys_is_rejected() {
        let empty = BTreeMap::new();
        assert!(TrustedKeys::from_secret_data(&empty).is_err());
        let garbage: BTreeMap<String, Vec<u8>> =
            [("key.sshpub".to_owned(), b"hello".to_vec())].into();
        let err = TrustedKeys::from_secret_data(&garbage).unwrap_err().to_string();
        assert!(err.contains("Secret key 'key.sshpub'"), "{err}");
    }
}
