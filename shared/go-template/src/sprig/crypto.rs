//! Sprig hash and password functions.

use sha2::Digest as _;

use super::{Funcs, arg_str, pure, sig};
use crate::Param::String as Str;
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
    pure(funcs, "htpasswd", sig(&[Str, Str]), |a| {
        let (user, password) = (arg_str(a, 0), arg_str(a, 1));
        if user.contains(':') {
            return Ok(Value::from(format!("invalid username: {user}")));
        }
        // Sprig hashes with bcrypt (random salt); without a bcrypt implementation here the
        // Apache `{SHA}` scheme is used, which htpasswd consumers also accept.
        use base64::Engine as _;
        let digest = base64::engine::general_purpose::STANDARD.encode(sha1(password.as_bytes()));
        Ok(Value::from(format!("{user}:{{SHA}}{digest}")))
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
