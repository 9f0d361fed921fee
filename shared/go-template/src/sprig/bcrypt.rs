//! bcrypt (`$2a$`, as Go's `golang.org/x/crypto/bcrypt`) for Sprig's `htpasswd`.
//!
//! Blowfish's initial state is the fractional hexadecimal expansion of π; it is computed once
//! with the Bailey–Borwein–Plouffe series in fixed point instead of being tabulated.

use std::sync::OnceLock;

/// P-array (18 words) followed by the four S-boxes (4 × 256 words).
const STATE_WORDS: usize = 18 + 4 * 256;

/// The first `STATE_WORDS` 32-bit words of π's fractional part.
fn pi_words() -> &'static [u32] {
    static WORDS: OnceLock<Vec<u32>> = OnceLock::new();
    WORDS.get_or_init(|| {
        let limbs = STATE_WORDS + 3; // guard limbs absorb truncation error
        // acc[i] holds the coefficient of 2^(-32 i); acc[0] is the integer part.
        let mut acc = vec![0i64; limbs + 1];
        let max_k = limbs * 8;
        for k in 0..max_k {
            let limb = k / 8 + 1;
            let shift = (4 * k % 32) as u32;
            for (j, factor, sign) in [(1u64, 4u64, 1i64), (4, 2, -1), (5, 1, -1), (6, 1, -1)] {
                let m = 8 * k as u64 + j;
                // 16^-k · factor / m = (factor · 2^(32 - shift) / m) · 2^(-32 · limb)
                let mut remainder = factor << (32 - shift);
                let mut idx = limb;
                while idx <= limbs && remainder != 0 {
                    let q = remainder / m;
                    remainder = (remainder % m) << 32;
                    acc[idx] += sign * q as i64;
                    idx += 1;
                }
            }
        }
        // Normalise: carry from the least significant limb upwards.
        for idx in (1..=limbs).rev() {
            let carry = acc[idx].div_euclid(1 << 32);
            acc[idx] = acc[idx].rem_euclid(1 << 32);
            acc[idx - 1] += carry;
        }
        acc[1..=STATE_WORDS].iter().map(|w| *w as u32).collect()
    })
}

struct Blowfish {
    p: [u32; 18],
    s: [[u32; 256]; 4],
}

impl Blowfish {
    fn initial() -> Blowfish {
        let words = pi_words();
        let mut p = [0u32; 18];
        p.copy_from_slice(&words[..18]);
        let mut s = [[0u32; 256]; 4];
        for (b, sbox) in s.iter_mut().enumerate() {
            sbox.copy_from_slice(&words[18 + b * 256..18 + (b + 1) * 256]);
        }
        Blowfish { p, s }
    }

    fn f(&self, x: u32) -> u32 {
        let [a, b, c, d] = x.to_be_bytes();
        (self.s[0][usize::from(a)].wrapping_add(self.s[1][usize::from(b)])
            ^ self.s[2][usize::from(c)])
        .wrapping_add(self.s[3][usize::from(d)])
    }

    fn encrypt(&self, mut l: u32, mut r: u32) -> (u32, u32) {
        for i in 0..16 {
            l ^= self.p[i];
            r ^= self.f(l);
            std::mem::swap(&mut l, &mut r);
        }
        std::mem::swap(&mut l, &mut r);
        r ^= self.p[16];
        l ^= self.p[17];
        (l, r)
    }

    /// bcrypt's `expandstate` (`salt` empty for plain key expansion).
    fn expand(&mut self, key: &[u8], salt: &[u8]) {
        let mut key_pos = 0;
        for i in 0..18 {
            self.p[i] ^= stream_word(key, &mut key_pos);
        }
        let mut salt_pos = 0;
        let (mut l, mut r) = (0u32, 0u32);
        let mut next = |l: &mut u32, r: &mut u32, this: &Blowfish| {
            if !salt.is_empty() {
                *l ^= stream_word(salt, &mut salt_pos);
                *r ^= stream_word(salt, &mut salt_pos);
            }
            let (nl, nr) = this.encrypt(*l, *r);
            *l = nl;
            *r = nr;
        };
        for i in (0..18).step_by(2) {
            next(&mut l, &mut r, self);
            self.p[i] = l;
            self.p[i + 1] = r;
        }
        for b in 0..4 {
            for i in (0..256).step_by(2) {
                next(&mut l, &mut r, self);
                self.s[b][i] = l;
                self.s[b][i + 1] = r;
            }
        }
    }
}

/// The next big-endian word of a cyclic byte stream.
fn stream_word(data: &[u8], pos: &mut usize) -> u32 {
    let mut word = 0u32;
    for _ in 0..4 {
        word = (word << 8) | u32::from(data[*pos % data.len()]);
        *pos = (*pos + 1) % data.len();
    }
    word
}

const BCRYPT_ALPHABET: &[u8; 64] =
    b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn bcrypt_base64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(BCRYPT_ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
fn bcrypt_unbase64(text: &str) -> Option<Vec<u8>> {
    let values: Vec<u32> = text
        .bytes()
        .map(|c| BCRYPT_ALPHABET.iter().position(|a| *a == c).map(|p| p as u32))
        .collect::<Option<_>>()?;
    let mut out = Vec::new();
    for chunk in values.chunks(4) {
        let mut n = 0u32;
        for (i, v) in chunk.iter().enumerate() {
            n |= v << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// `$2a$COST$SALTHASH` for `password` with a 16-byte `salt`.
pub(super) fn hash(password: &[u8], cost: u32, salt: &[u8; 16]) -> String {
    let mut key = password.to_vec();
    key.push(0);
    key.truncate(72);
    let mut state = Blowfish::initial();
    state.expand(&key, salt);
    for _ in 0..(1u64 << cost) {
        state.expand(&key, &[]);
        state.expand(salt, &[]);
    }
    let magic = b"OrpheanBeholderScryDoubt";
    let mut words: Vec<u32> =
        magic.chunks(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
    for _ in 0..64 {
        for pair in words.chunks_mut(2) {
            let (l, r) = state.encrypt(pair[0], pair[1]);
            pair[0] = l;
            pair[1] = r;
        }
    }
    let digest: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    format!("$2a${cost:02}${}{}", bcrypt_base64(salt), bcrypt_base64(&digest[..23]))
}

/// The salt of an existing bcrypt hash (for verification in tests).
#[cfg(test)]
fn salt_of(hash: &str) -> Option<[u8; 16]> {
    let salt = bcrypt_unbase64(hash.get(7..29)?)?;
    salt.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pi_state_starts_and_ends_like_blowfish() {
        let words = pi_words();
        assert_eq!(words[0], 0x243f_6a88);
        assert_eq!(words[17], 0x8979_fb1b);
        assert_eq!(words[18], 0xd131_0ba6);
        assert_eq!(words[STATE_WORDS - 1], 0x3ac3_72e6);
    }

    #[test]
    fn reproduces_a_helm_htpasswd_hash() {
        // From Helm v4.2.3: {{ htpasswd "user" "secret" }} (cost 10, random salt).
        let helm = "$2a$10$jzpdergULNSvgWC7vA2x8erL5L8/ly5TkZUeldaRfJSKc/k9IFvWC";
        let salt = salt_of(helm).unwrap();
        assert_eq!(hash(b"secret", 10, &salt), helm);
        let helm = "$2a$10$kmC8auu.RO8K6.DxCLpSp.qSVLII1N6rUE8.k/CXdLhIdeUNEDUGS";
        let salt = salt_of(helm).unwrap();
        let password = "a much longer password with spaces and ünïcode";
        assert_eq!(hash(password.as_bytes(), 10, &salt), helm);
    }
}
