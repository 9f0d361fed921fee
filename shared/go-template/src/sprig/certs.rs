//! Sprig certificate functions (`genCA`, `genSelfSignedCert`, `genSignedCert`, `genPrivateKey`,
//! `buildCustomCert` and the `…WithKey` variants), with X.509 DER written by hand.
//!
//! # Caveats
//! Sprig generates RSA-2048 keys; `ring` cannot generate RSA keys, so certificates here use
//! ECDSA P-256 keys (PKCS#8 `PRIVATE KEY` PEM). Consumers that only need a valid CA/leaf pair
//! are unaffected; `genPrivateKey "rsa"`/`"dsa"` return an error.

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

use super::{Funcs, arg_int, arg_str, fail, pure, sig, strval};
use crate::FuncError;
use crate::Param::{Any, Int, List, String as Str};
use crate::value::{Map, Value};

const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const OID_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
const OID_EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
const OID_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const OID_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

fn oid(bytes: &[u8]) -> Vec<u8> {
    der(0x06, bytes)
}

fn name(cn: &str) -> Vec<u8> {
    seq(&[der(0x31, &seq(&[oid(OID_CN), der(0x0c, cn.as_bytes())]))])
}

fn time(seconds: i64) -> Vec<u8> {
    let ts = jiff::Timestamp::from_second(seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let utc = ts.to_zoned(jiff::tz::TimeZone::UTC);
    if utc.year() < 2050 {
        der(0x17, utc.strftime("%y%m%d%H%M%SZ").to_string().as_bytes())
    } else {
        der(0x18, utc.strftime("%Y%m%d%H%M%SZ").to_string().as_bytes())
    }
}

fn pem(label: &str, der_bytes: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der_bytes);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = text[start..].find(&end)? + start;
    let body: String = text[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Reads one DER element at `pos`: (tag, content range, end).
fn der_read(data: &[u8], pos: usize) -> Option<(u8, std::ops::Range<usize>, usize)> {
    let tag = *data.get(pos)?;
    let first = *data.get(pos + 1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *data.get(pos + 2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let start = pos + header;
    let end = start.checked_add(len)?;
    (end <= data.len()).then_some((tag, start..end, end))
}

/// The subject Name (full DER element) of a certificate.
fn subject_of(cert: &[u8]) -> Option<Vec<u8>> {
    let (_, cert_body, _) = der_read(cert, 0)?;
    let (_, tbs, _) = der_read(cert, cert_body.start)?;
    let mut pos = tbs.start;
    let mut index = 0;
    // version [0], serial, signature alg, issuer, validity, subject
    let (tag, _, end) = der_read(cert, pos)?;
    if tag == 0xa0 {
        pos = end;
    }
    loop {
        let (_, _, end) = der_read(cert, pos)?;
        if index == 4 {
            return Some(cert[pos..end].to_vec());
        }
        pos = end;
        index += 1;
    }
}

struct Signer {
    key_pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
}

fn new_signer() -> Result<Signer, FuncError> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| FuncError::Call("error generating ECDSA key".to_string()))?;
    signer_from_pkcs8(pkcs8.as_ref())
}

fn signer_from_pkcs8(pkcs8: &[u8]) -> Result<Signer, FuncError> {
    let rng = SystemRandom::new();
    let key_pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng).map_err(|_| {
            FuncError::Call(
                "unsupported private key: expected an ECDSA P-256 PKCS#8 key".to_string(),
            )
        })?;
    Ok(Signer { key_pair, pkcs8: pkcs8.to_vec() })
}

fn signer_from_pem(text: &str) -> Result<Signer, FuncError> {
    match pem_decode(text, "PRIVATE KEY") {
        Some(der_bytes) => signer_from_pkcs8(&der_bytes),
        None => {
            fail("error decoding private key: expected a PEM \"PRIVATE KEY\" (ECDSA P-256 PKCS#8)")
        }
    }
}

struct CertSpec<'a> {
    cn: &'a str,
    ips: Vec<String>,
    dns: Vec<String>,
    days: i64,
    is_ca: bool,
}

fn build_cert(
    spec: &CertSpec<'_>,
    subject_key: &Signer,
    issuer: Option<(&[u8], &Signer)>,
) -> Result<Vec<u8>, FuncError> {
    let rng = SystemRandom::new();
    let mut serial = [0u8; 16];
    rng.fill(&mut serial)
        .map_err(|_| FuncError::Call("error generating serial number".to_string()))?;
    serial[0] &= 0x7f;
    let now = jiff::Timestamp::now().as_second();
    let subject = name(spec.cn);
    let issuer_name = issuer.map_or_else(|| subject.clone(), |(name, _)| name.to_vec());
    let sig_alg = seq(&[oid(OID_ECDSA_SHA256)]);
    let mut public_key = vec![0u8];
    public_key.extend_from_slice(subject_key.key_pair.public_key().as_ref());
    let spki = seq(&[seq(&[oid(OID_EC_PUBLIC_KEY), oid(OID_P256)]), der(0x03, &public_key)]);
    let mut extensions = Vec::new();
    let critical = der(0x01, &[0xff]);
    let key_usage_bits: u8 = if spec.is_ca { 0xa4 } else { 0xa0 };
    extensions.push(seq(&[
        oid(OID_KEY_USAGE),
        critical.clone(),
        der(0x04, &der(0x03, &[key_usage_bits.trailing_zeros() as u8, key_usage_bits])),
    ]));
    extensions.push(seq(&[
        oid(OID_EXT_KEY_USAGE),
        der(0x04, &seq(&[oid(OID_SERVER_AUTH), oid(OID_CLIENT_AUTH)])),
    ]));
    let basic = if spec.is_ca { seq(&[der(0x01, &[0xff])]) } else { seq(&[]) };
    extensions.push(seq(&[oid(OID_BASIC_CONSTRAINTS), critical, der(0x04, &basic)]));
    let mut names = Vec::new();
    for dns in &spec.dns {
        names.push(der(0x82, dns.as_bytes()));
    }
    for ip in &spec.ips {
        match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) => names.push(der(0x87, &v4.octets())),
            Ok(std::net::IpAddr::V6(v6)) => names.push(der(0x87, &v6.octets())),
            Err(_) => return fail(format!("error parsing ip: {ip}")),
        }
    }
    if !names.is_empty() {
        extensions.push(seq(&[oid(OID_SAN), der(0x04, &seq(&names))]));
    }
    let tbs = seq(&[
        der(0xa0, &der(0x02, &[2])),
        der(0x02, &serial),
        sig_alg.clone(),
        issuer_name,
        seq(&[time(now), time(now + spec.days.clamp(-36500, 36500) * 86_400)]),
        subject,
        spki,
        der(0xa3, &seq(&extensions)),
    ]);
    let signing_key = issuer.map_or(subject_key, |(_, key)| key);
    let signature = signing_key
        .key_pair
        .sign(&rng, &tbs)
        .map_err(|_| FuncError::Call("error signing certificate".to_string()))?;
    let mut bits = vec![0u8];
    bits.extend_from_slice(signature.as_ref());
    Ok(seq(&[tbs, sig_alg, der(0x03, &bits)]))
}

fn certificate(cert: &[u8], key: &Signer) -> Value {
    let map = Map::new();
    map.insert("Cert", Value::from(pem("CERTIFICATE", cert)));
    map.insert("Key", Value::from(pem("PRIVATE KEY", &key.pkcs8)));
    Value::Map(map.with_type_name("sprig.certificate"))
}

fn strings_of(value: &Value) -> Vec<String> {
    match value.resolved() {
        Value::List(items) => items.iter().filter(|v| !v.is_nil()).map(strval).collect(),
        _ => Vec::new(),
    }
}

fn ca_parts(value: &Value) -> Result<(Vec<u8>, Signer), FuncError> {
    let get = |field: &str| {
        value.as_map().and_then(|m| m.get(field)).map(|v| strval(&v)).unwrap_or_default()
    };
    let Some(cert) = pem_decode(&get("Cert"), "CERTIFICATE") else {
        return fail("error decoding certificate: the CA has no PEM \"CERTIFICATE\"");
    };
    let Some(subject) = subject_of(&cert) else {
        return fail("error parsing certificate: malformed DER");
    };
    Ok((subject, signer_from_pem(&get("Key"))?))
}

pub(super) fn register(funcs: &mut Funcs) {
    pure(funcs, "genPrivateKey", sig(&[Str]), |a| match arg_str(a, 0) {
        "ecdsa" => Ok(Value::from(pem("PRIVATE KEY", &new_signer()?.pkcs8))),
        "ed25519" => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| FuncError::Call("error generating ed25519 key".to_string()))?;
            Ok(Value::from(pem("PRIVATE KEY", pkcs8.as_ref())))
        }
        "rsa" | "dsa" | "" => fail(format!(
            "genPrivateKey {:?}: only \"ecdsa\" and \"ed25519\" keys can be generated by this engine",
            arg_str(a, 0)
        )),
        other => Ok(Value::from(format!("Unknown type {other}"))),
    });
    pure(funcs, "genCA", sig(&[Str, Int]), |a| {
        let key = new_signer()?;
        let spec = CertSpec {
            cn: arg_str(a, 0),
            ips: Vec::new(),
            dns: Vec::new(),
            days: arg_int(a, 1),
            is_ca: true,
        };
        Ok(certificate(&build_cert(&spec, &key, None)?, &key))
    });
    pure(funcs, "genCAWithKey", sig(&[Str, Int, Str]), |a| {
        let key = signer_from_pem(arg_str(a, 2))?;
        let spec = CertSpec {
            cn: arg_str(a, 0),
            ips: Vec::new(),
            dns: Vec::new(),
            days: arg_int(a, 1),
            is_ca: true,
        };
        Ok(certificate(&build_cert(&spec, &key, None)?, &key))
    });
    pure(funcs, "genSelfSignedCert", sig(&[Str, List, List, Int]), |a| {
        let key = new_signer()?;
        let spec = CertSpec {
            cn: arg_str(a, 0),
            ips: strings_of(&a[1]),
            dns: strings_of(&a[2]),
            days: arg_int(a, 3),
            is_ca: false,
        };
        Ok(certificate(&build_cert(&spec, &key, None)?, &key))
    });
    pure(funcs, "genSelfSignedCertWithKey", sig(&[Str, List, List, Int, Str]), |a| {
        let key = signer_from_pem(arg_str(a, 4))?;
        let spec = CertSpec {
            cn: arg_str(a, 0),
            ips: strings_of(&a[1]),
            dns: strings_of(&a[2]),
            days: arg_int(a, 3),
            is_ca: false,
        };
        Ok(certificate(&build_cert(&spec, &key, None)?, &key))
    });
    pure(funcs, "genSignedCert", sig(&[Str, List, List, Int, Any]), |a| {
        let (issuer, ca_key) = ca_parts(&a[4])?;
        let key = new_signer()?;
        let spec = CertSpec {
            cn: arg_str(a, 0),
            ips: strings_of(&a[1]),
            dns: strings_of(&a[2]),
            days: arg_int(a, 3),
            is_ca: false,
        };
        Ok(certificate(&build_cert(&spec, &key, Some((&issuer, &ca_key)))?, &key))
    });
    pure(funcs, "genSignedCertWithKey", sig(&[Str, List, List, Int, Any, Str]), |a| {
        let (issuer, ca_key) = ca_parts(&a[4])?;
        let key = signer_from_pem(arg_str(a, 5))?;
        let spec = CertSpec {
            cn: arg_str(a, 0),
            ips: strings_of(&a[1]),
            dns: strings_of(&a[2]),
            days: arg_int(a, 3),
            is_ca: false,
        };
        Ok(certificate(&build_cert(&spec, &key, Some((&issuer, &ca_key)))?, &key))
    });
    pure(funcs, "buildCustomCert", sig(&[Str, Str]), |a| {
        let decode = |text: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        let (Some(cert), Some(key)) = (decode(arg_str(a, 0)), decode(arg_str(a, 1))) else {
            return fail("unable to decode base64 certificate or key");
        };
        let map = Map::new();
        map.insert("Cert", Value::from(cert));
        map.insert("Key", Value::from(key));
        Ok(Value::Map(map.with_type_name("sprig.certificate")))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_certificate_names_its_ca_as_issuer() {
        let ca_key = new_signer().unwrap();
        let ca_spec = CertSpec { cn: "my-ca", ips: vec![], dns: vec![], days: 365, is_ca: true };
        let ca_cert = build_cert(&ca_spec, &ca_key, None).unwrap();
        let ca = certificate(&ca_cert, &ca_key);
        let (issuer, _) = ca_parts(&ca).unwrap();
        assert_eq!(issuer, name("my-ca"));
        let leaf_key = new_signer().unwrap();
        let spec = CertSpec {
            cn: "svc",
            ips: vec!["10.0.0.1".into()],
            dns: vec!["svc.ns".into()],
            days: 30,
            is_ca: false,
        };
        let leaf = build_cert(&spec, &leaf_key, Some((&issuer, &ca_key))).unwrap();
        assert_eq!(subject_of(&leaf).unwrap(), name("svc"));
        let text = pem("CERTIFICATE", &leaf);
        assert_eq!(pem_decode(&text, "CERTIFICATE").unwrap(), leaf);
    }
}
