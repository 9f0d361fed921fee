//! Sprig hash and password functions.

use sha2::Digest as _;

use super::{Funcs, arg_str, pure, sig};
use crate::Param::{Int, String as Str};
use crate::value::Value;

pub(super) fn register(funcs: &mut Funcs) {
    pure(funcs, "sha1sum", sig(&[Str]), |a| Ok(Value::from(hex(&sha1(arg_str(a, 0).as_bytes())))));
    pure(funcs, "sha256sum", sig(&[Str]), |a| {
        Ok(Value::from(hex(&sha2::Sha256::digest(arg_str(a, 0).as_bytes()))))
    });
    pure(funcs, "sha512sum", sig(&[Str]), |a| {
        Ok(Value::from(hex(&sha2::Sha512::digest(arg_str(a, 0).as_bytes()))))
    });
    pure(funcs, "adler32sum", sig(&[Str]), |a| {
        Ok(Value::from(adler32(arg_str(a, 0).as_bytes()).to_string()))
    });
    pure(funcs, "derivePassword", sig(&[Int, Str, Str, Str, Str]), |a| {
        let counter = super::arg_int(a, 0) as u32;
        Ok(Value::from(derive_password(
            counter,
            arg_str(a, 1),
            arg_str(a, 2),
            arg_str(a, 3),
            arg_str(a, 4),
        )))
    });
    pure(funcs, "encryptAES", sig(&[Str, Str]), |a| {
        use base64::Engine as _;
        let plaintext = arg_str(a, 1);
        if plaintext.is_empty() {
            return Ok(Value::str(""));
        }
        let iv: [u8; 16] = rand::random();
        let data = super::aes::encrypt(arg_str(a, 0), plaintext.as_bytes(), iv);
        Ok(Value::from(base64::engine::general_purpose::STANDARD.encode(data)))
    });
    pure(funcs, "decryptAES", sig(&[Str, Str]), |a| {
        use base64::Engine as _;
        let encoded = arg_str(a, 1);
        if encoded.is_empty() {
            return Ok(Value::str(""));
        }
        let data = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|err| crate::FuncError::Call(super::misc::go_base64_error(&err, encoded)))?;
        let Some(decrypted) = super::aes::decrypt(arg_str(a, 0), &data) else {
            return Err(crate::FuncError::Call("crypto/cipher: input not full blocks".to_string()));
        };
        // Sprig strips as many bytes as the last byte says, without validating the padding.
        let strip = usize::from(*decrypted.last().unwrap_or(&0)).min(decrypted.len());
        Ok(Value::from(String::from_utf8_lossy(&decrypted[..decrypted.len() - strip]).into_owned()))
    });
    pure(funcs, "randBytes", sig(&[Int]), |a| {
        use base64::Engine as _;
        use rand::RngCore as _;
        let mut bytes = vec![0u8; super::arg_int(a, 0).clamp(0, 1 << 20) as usize];
        rand::rng().fill_bytes(&mut bytes);
        Ok(Value::from(base64::engine::general_purpose::STANDARD.encode(bytes)))
    });
    pure(funcs, "htpasswd", sig(&[Str, Str]), |a| {
        let (user, password) = (arg_str(a, 0), arg_str(a, 1));
        if user.contains(':') {
            return Ok(Value::from(format!("invalid username: {user}")));
        }
        // Sprig hashes with bcrypt at Go's default cost 10 and a random salt.
        let salt: [u8; 16] = rand::random();
        Ok(Value::from(format!("{user}:{}", super::bcrypt::hash(password.as_bytes(), 10, &salt))))
    });
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for byte in chunk {
            a += u32::from(*byte);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

/// SHA-1 (FIPS 180-4), for Sprig's `sha1sum`.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                block[i * 4],
                block[i * 4 + 1],
                block[i * 4 + 2],
                block[i * 4 + 3],
            ]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
    }
    let mut out = [0u8; 20];
    for (i, word) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_values() {
        assert_eq!(hex(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(adler32(b"Wikipedia"), 300286872);
    }
}

/// Master Password templates by password type (`Masterminds/sprig:crypto.go`).
fn password_templates(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "maximum" => &["anoxxxxxxxxxxxxxxxxx", "axxxxxxxxxxxxxxxxxno"],
        "long" => &[
            "CvcvnoCvcvCvcv",
            "CvcvCvcvnoCvcv",
            "CvcvCvcvCvcvno",
            "CvccnoCvcvCvcv",
            "CvccCvcvnoCvcv",
            "CvccCvcvCvcvno",
            "CvcvnoCvccCvcv",
            "CvcvCvccnoCvcv",
            "CvcvCvccCvcvno",
            "CvcvnoCvcvCvcc",
            "CvcvCvcvnoCvcc",
            "CvcvCvcvCvccno",
            "CvccnoCvccCvcv",
            "CvccCvccnoCvcv",
            "CvccCvccCvcvno",
            "CvcvnoCvccCvcc",
            "CvcvCvccnoCvcc",
            "CvcvCvccCvccno",
            "CvccnoCvcvCvcc",
            "CvccCvcvnoCvcc",
            "CvccCvcvCvccno",
        ],
        "medium" => &["CvcnoCvc", "CvcCvcno"],
        "short" => &["Cvcn"],
        "basic" => &["aaanaaan", "aannaaan", "aaannaaa"],
        "pin" => &["nnnn"],
        _ => return None,
    })
}

fn template_characters(class: char) -> &'static [u8] {
    match class {
        'V' => b"AEIOU",
        'C' => b"BCDFGHJKLMNPQRSTVWXYZ",
        'v' => b"aeiou",
        'c' => b"bcdfghjklmnpqrstvwxyz",
        'A' => b"AEIOUBCDFGHJKLMNPQRSTVWXYZ",
        'a' => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz",
        'n' => b"0123456789",
        'o' => b"@&%?,=[]_:-+*$#!'^~;()/.",
        _ => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz0123456789!@#$%^&*()",
    }
}

/// Sprig's `derivePassword`: the Master Password algorithm (scrypt N=32768 r=8 p=2).
pub(super) fn derive_password(
    counter: u32,
    kind: &str,
    password: &str,
    user: &str,
    site: &str,
) -> String {
    const SEED: &[u8] = b"com.lyndir.masterpassword";
    let Some(templates) = password_templates(kind) else {
        return format!("cannot find password template {kind}");
    };
    let mut salt = SEED.to_vec();
    salt.extend_from_slice(&(user.len() as u32).to_be_bytes());
    salt.extend_from_slice(user.as_bytes());
    let key = scrypt(password.as_bytes(), &salt, 32768, 8, 2, 64);
    let mut message = SEED.to_vec();
    message.extend_from_slice(&(site.len() as u32).to_be_bytes());
    message.extend_from_slice(site.as_bytes());
    message.extend_from_slice(&counter.to_be_bytes());
    let seed = hmac_sha256(&key, &message);
    let template = templates[usize::from(seed[0]) % templates.len()];
    template
        .chars()
        .enumerate()
        .map(|(i, class)| {
            let chars = template_characters(class);
            chars[usize::from(seed[i + 1]) % chars.len()] as char
        })
        .collect()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block_key = [0u8; 64];
    if key.len() > 64 {
        block_key[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let mut inner = sha2::Sha256::new();
    inner.update(block_key.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = sha2::Sha256::new();
    outer.update(block_key.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

fn pbkdf2_sha256_one_round(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut block = 1u32;
    while out.len() < len {
        let mut message = salt.to_vec();
        message.extend_from_slice(&block.to_be_bytes());
        out.extend_from_slice(&hmac_sha256(password, &message));
        block += 1;
    }
    out.truncate(len);
    out
}

fn salsa20_8(block: &mut [u32; 16]) {
    let mut x = *block;
    for _ in 0..4 {
        macro_rules! quarter {
            ($a:expr, $b:expr, $c:expr, $d:expr) => {
                x[$b] ^= x[$a].wrapping_add(x[$d]).rotate_left(7);
                x[$c] ^= x[$b].wrapping_add(x[$a]).rotate_left(9);
                x[$d] ^= x[$c].wrapping_add(x[$b]).rotate_left(13);
                x[$a] ^= x[$d].wrapping_add(x[$c]).rotate_left(18);
            };
        }
        quarter!(0, 4, 8, 12);
        quarter!(5, 9, 13, 1);
        quarter!(10, 14, 2, 6);
        quarter!(15, 3, 7, 11);
        quarter!(0, 1, 2, 3);
        quarter!(5, 6, 7, 4);
        quarter!(10, 11, 8, 9);
        quarter!(15, 12, 13, 14);
    }
    for (out, added) in block.iter_mut().zip(x.iter()) {
        *out = out.wrapping_add(*added);
    }
}

fn block_mix(input: &[u32], output: &mut [u32], r: usize) {
    let mut x = [0u32; 16];
    x.copy_from_slice(&input[(2 * r - 1) * 16..2 * r * 16]);
    for i in 0..2 * r {
        for (xj, bj) in x.iter_mut().zip(&input[i * 16..(i + 1) * 16]) {
            *xj ^= *bj;
        }
        salsa20_8(&mut x);
        let dest = if i % 2 == 0 { i / 2 } else { r + i / 2 };
        output[dest * 16..(dest + 1) * 16].copy_from_slice(&x);
    }
}

fn scrypt(password: &[u8], salt: &[u8], n: usize, r: usize, p: usize, len: usize) -> Vec<u8> {
    let block_len = 128 * r;
    let mut b = pbkdf2_sha256_one_round(password, salt, p * block_len);
    let words = 32 * r;
    let mut v = vec![0u32; n * words];
    let mut x = vec![0u32; words];
    let mut tmp = vec![0u32; words];
    for chunk in b.chunks_mut(block_len) {
        for (w, bytes) in x.iter_mut().zip(chunk.chunks(4)) {
            *w = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in 0..n {
            v[i * words..(i + 1) * words].copy_from_slice(&x);
            block_mix(&x, &mut tmp, r);
            std::mem::swap(&mut x, &mut tmp);
        }
        for _ in 0..n {
            let j = (x[(2 * r - 1) * 16] as usize) & (n - 1);
            for (xw, vw) in x.iter_mut().zip(&v[j * words..(j + 1) * words]) {
                *xw ^= *vw;
            }
            block_mix(&x, &mut tmp, r);
            std::mem::swap(&mut x, &mut tmp);
        }
        for (bytes, w) in chunk.chunks_mut(4).zip(x.iter()) {
            bytes.copy_from_slice(&w.to_le_bytes());
        }
    }
    pbkdf2_sha256_one_round(password, &b, len)
}

#[cfg(test)]
mod password_tests {
    use super::*;

    #[test]
    fn scrypt_matches_rfc7914_vector() {
        let key = scrypt(b"password", b"NaCl", 1024, 8, 16, 64);
        assert_eq!(hex(&key)[..32], *"fdbabe1c9d3472007856e7190d01e9fe");
    }
}
