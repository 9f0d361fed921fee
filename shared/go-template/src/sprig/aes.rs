//! AES-256-CBC for Sprig's `encryptAES`/`decryptAES` (FIPS-197; the S-box is computed from
//! its definition rather than tabulated).

use std::sync::OnceLock;

struct Tables {
    sbox: [u8; 256],
    inv_sbox: [u8; 256],
}

fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        let carry = a & 0x80;
        a <<= 1;
        if carry != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    product
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut sbox = [0u8; 256];
        let mut inv_sbox = [0u8; 256];
        for x in 0..=255u8 {
            // Multiplicative inverse in GF(2^8) (0 maps to 0), then the affine transform.
            let inverse =
                if x == 0 { 0 } else { (1..=255u8).find(|y| gf_mul(x, *y) == 1).unwrap_or(0) };
            let b = inverse;
            let s = b
                ^ b.rotate_left(1)
                ^ b.rotate_left(2)
                ^ b.rotate_left(3)
                ^ b.rotate_left(4)
                ^ 0x63;
            sbox[usize::from(x)] = s;
            inv_sbox[usize::from(s)] = x;
        }
        Tables { sbox, inv_sbox }
    })
}

/// The 15 round keys of AES-256.
fn expand_key(key: &[u8; 32]) -> [[u8; 16]; 15] {
    let sbox = &tables().sbox;
    let mut words = [[0u8; 4]; 60];
    for (i, word) in words.iter_mut().take(8).enumerate() {
        word.copy_from_slice(&key[i * 4..i * 4 + 4]);
    }
    let mut rcon = 1u8;
    for i in 8..60 {
        let mut temp = words[i - 1];
        if i % 8 == 0 {
            temp = [
                sbox[usize::from(temp[1])] ^ rcon,
                sbox[usize::from(temp[2])],
                sbox[usize::from(temp[3])],
                sbox[usize::from(temp[0])],
            ];
            rcon = gf_mul(rcon, 2);
        } else if i % 8 == 4 {
            temp = temp.map(|b| sbox[usize::from(b)]);
        }
        for j in 0..4 {
            words[i][j] = words[i - 8][j] ^ temp[j];
        }
    }
    let mut round_keys = [[0u8; 16]; 15];
    for (r, round_key) in round_keys.iter_mut().enumerate() {
        for c in 0..4 {
            round_key[c * 4..c * 4 + 4].copy_from_slice(&words[r * 4 + c]);
        }
    }
    round_keys
}

fn add_round_key(state: &mut [u8; 16], key: &[u8; 16]) {
    for (s, k) in state.iter_mut().zip(key) {
        *s ^= k;
    }
}

fn shift_rows(state: &mut [u8; 16], inverse: bool) {
    let copy = *state;
    for row in 1..4 {
        for col in 0..4 {
            let from = if inverse { (col + 4 - row) % 4 } else { (col + row) % 4 };
            state[col * 4 + row] = copy[from * 4 + row];
        }
    }
}

fn mix_columns(state: &mut [u8; 16], inverse: bool) {
    let m: [u8; 4] = if inverse { [14, 11, 13, 9] } else { [2, 3, 1, 1] };
    for col in 0..4 {
        let c = [state[col * 4], state[col * 4 + 1], state[col * 4 + 2], state[col * 4 + 3]];
        for row in 0..4 {
            state[col * 4 + row] = gf_mul(c[row], m[0])
                ^ gf_mul(c[(row + 1) % 4], m[1])
                ^ gf_mul(c[(row + 2) % 4], m[2])
                ^ gf_mul(c[(row + 3) % 4], m[3]);
        }
    }
}

fn encrypt_block(block: &mut [u8; 16], keys: &[[u8; 16]; 15]) {
    let sbox = &tables().sbox;
    add_round_key(block, &keys[0]);
    for (round, key) in keys.iter().enumerate().skip(1) {
        for b in block.iter_mut() {
            *b = sbox[usize::from(*b)];
        }
        shift_rows(block, false);
        if round != 14 {
            mix_columns(block, false);
        }
        add_round_key(block, key);
    }
}

fn decrypt_block(block: &mut [u8; 16], keys: &[[u8; 16]; 15]) {
    let inv_sbox = &tables().inv_sbox;
    add_round_key(block, &keys[14]);
    for round in (0..14).rev() {
        shift_rows(block, true);
        for b in block.iter_mut() {
            *b = inv_sbox[usize::from(*b)];
        }
        add_round_key(block, &keys[round]);
        if round != 0 {
            mix_columns(block, true);
        }
    }
}

/// Sprig's key derivation: the password's bytes, zero-padded or truncated to 32.
fn sprig_key(password: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    let bytes = password.as_bytes();
    let n = bytes.len().min(32);
    key[..n].copy_from_slice(&bytes[..n]);
    key
}

/// AES-256-CBC with PKCS#7 padding and the IV prepended (Sprig's `encryptAES` layout).
pub(super) fn encrypt(password: &str, plaintext: &[u8], iv: [u8; 16]) -> Vec<u8> {
    let keys = expand_key(&sprig_key(password));
    let padding = 16 - plaintext.len() % 16;
    let mut content = plaintext.to_vec();
    content.extend(std::iter::repeat_n(padding as u8, padding));
    let mut out = iv.to_vec();
    let mut previous = iv;
    for chunk in content.chunks(16) {
        let mut block = [0u8; 16];
        for (b, (p, c)) in block.iter_mut().zip(previous.iter().zip(chunk)) {
            *b = p ^ c;
        }
        encrypt_block(&mut block, &keys);
        out.extend_from_slice(&block);
        previous = block;
    }
    out
}

/// Reverses [`encrypt`]; `None` when the input is not whole blocks after the IV.
pub(super) fn decrypt(password: &str, data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < 16 || !data.len().is_multiple_of(16) {
        return None;
    }
    let keys = expand_key(&sprig_key(password));
    let mut previous: [u8; 16] = data[..16].try_into().ok()?;
    let mut out = Vec::with_capacity(data.len() - 16);
    for chunk in data[16..].chunks(16) {
        let mut block: [u8; 16] = chunk.try_into().ok()?;
        let cipher = block;
        decrypt_block(&mut block, &keys);
        for (b, p) in block.iter_mut().zip(previous.iter()) {
            *b ^= p;
        }
        out.extend_from_slice(&block);
        previous = cipher;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fips_197_aes_256_vector() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let mut block: [u8; 16] = std::array::from_fn(|i| (i as u8) * 0x11);
        let keys = expand_key(&key);
        encrypt_block(&mut block, &keys);
        let hex: String = block.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "8ea2b7ca516745bfeafc49904b496089");
        decrypt_block(&mut block, &keys);
        assert_eq!(block, std::array::from_fn(|i| (i as u8) * 0x11));
    }

    #[test]
    fn cbc_round_trip() {
        let data = encrypt("secret", b"hello world, this is longer than a block", [7u8; 16]);
        assert_eq!(decrypt("secret", &data).unwrap().len(), 48);
    }
}
