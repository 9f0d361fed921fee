//! An S3 endpoint on loopback: moto's server (PyPI `moto[server]`, in `~/.cache/sluice/venv`).
//!
//! moto accepts any access key (it does not verify signatures by default) but treats unsigned
//! requests as anonymous and refuses their reads, so the helpers here sign path-style requests
//! with AWS Signature Version 4, as a real S3 client does.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::process::{self, Lifetime, ScratchDir, ServerProcess};

/// A running moto S3 server on 127.0.0.1.
#[derive(Debug)]
pub struct S3Server {
    port: u16,
    _process: ServerProcess,
    _dir: ScratchDir,
}

impl S3Server {
    /// An access key id moto accepts.
    pub const ACCESS_KEY: &'static str = "sluice-test-key";
    /// A secret key moto accepts.
    pub const SECRET_KEY: &'static str = "sluice-test-secret";
    /// The region.
    pub const REGION: &'static str = "us-east-1";

    /// Starts moto_server.
    ///
    /// # Errors
    /// When moto_server is missing (run `cargo xtask e2e`, which creates the venv) or it does
    /// not listen within 60 s.
    pub fn start() -> Result<S3Server> {
        let moto = crate::paths::moto_server();
        if !moto.is_file() {
            bail!(
                "{} not found: run `cargo xtask e2e` (creates the venv {} with moto[server]) or \
                 set SLUICE_MOTO_SERVER",
                moto.display(),
                crate::paths::cache_dir().join("venv").display()
            );
        }
        let dir = ScratchDir::new("sluice-s3-")?;
        let mut last_error = None;
        for _ in 0..3 {
            let port = process::free_port()?;
            let mut command = Command::new(&moto);
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]).current_dir(dir.path());
            let mut server = ServerProcess::spawn(
                "moto_server (S3)",
                command,
                &dir.path().join("moto.log"),
                Lifetime::Guarded,
            )?;
            match process::wait_for_port(&mut server, port, Duration::from_secs(60)) {
                Ok(()) => return Ok(S3Server { port, _process: server, _dir: dir }),
                Err(err) if server.failed_on_port_in_use() => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        bail!(
            "moto_server could not bind a free port: {:#}",
            last_error.unwrap_or_else(|| anyhow::anyhow!("unknown"))
        )
    }

    /// `127.0.0.1:<port>` (a Bucket's `spec.endpoint`, with `insecure: true`).
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server process id (for diagnostics).
    pub fn pid(&self) -> u32 {
        self._process.pid()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends a SigV4-signed path-style request (`path_and_query` like `/bucket/key?x=y`).
    ///
    /// # Errors
    /// When the request cannot be sent (any HTTP status is returned as a response).
    pub async fn signed_request(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<reqwest::Response> {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let headers = sigv4_headers(&SigV4Request {
            method: method.as_str(),
            host: &self.endpoint(),
            path,
            query,
            body,
            access_key: Self::ACCESS_KEY,
            secret_key: Self::SECRET_KEY,
            region: Self::REGION,
            amz_date: &jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string(),
        });
        let mut request =
            crate::http_client().request(method, format!("{}{path_and_query}", self.url()));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        Ok(request.body(body.to_vec()).send().await?)
    }

    /// Creates a bucket.
    ///
    /// # Errors
    /// When the server refuses.
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let response = self
            .signed_request(reqwest::Method::PUT, &format!("/{bucket}"), b"")
            .await
            .with_context(|| format!("creating bucket {bucket}"))?;
        check(response, &format!("creating bucket {bucket}")).await
    }

    /// Puts an object.
    ///
    /// # Errors
    /// When the server refuses.
    pub async fn put_object(&self, bucket: &str, key: &str, data: &[u8]) -> Result<()> {
        let response = self
            .signed_request(reqwest::Method::PUT, &format!("/{bucket}/{key}"), data)
            .await
            .with_context(|| format!("putting s3://{bucket}/{key}"))?;
        check(response, &format!("putting s3://{bucket}/{key}")).await
    }

    /// Gets an object's bytes.
    ///
    /// # Errors
    /// When the object does not exist (the message has the status) or the server fails.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        let response = self
            .signed_request(reqwest::Method::GET, &format!("/{bucket}/{key}"), b"")
            .await
            .with_context(|| format!("getting s3://{bucket}/{key}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("getting s3://{bucket}/{key}: {status}");
        }
        Ok(response.bytes().await?.to_vec())
    }

    /// The keys of a bucket (ListObjectsV2, first 1000).
    ///
    /// # Errors
    /// When the bucket does not exist or the server fails.
    pub async fn list_objects(&self, bucket: &str) -> Result<Vec<String>> {
        let response = self
            .signed_request(reqwest::Method::GET, &format!("/{bucket}?list-type=2"), b"")
            .await
            .with_context(|| format!("listing s3://{bucket}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("listing s3://{bucket}: {status}: {text}");
        }
        Ok(text
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect())
    }
}

/// The inputs of an AWS Signature Version 4 for S3.
struct SigV4Request<'a> {
    method: &'a str,
    host: &'a str,
    path: &'a str,
    query: &'a str,
    body: &'a [u8],
    access_key: &'a str,
    secret_key: &'a str,
    region: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    amz_date: &'a str,
}

/// The headers of a SigV4-signed request: `x-amz-date`, `x-amz-content-sha256`, `authorization`.
/// See AWS's "Create a signed AWS API request" (canonical request, string to sign, signing key).
fn sigv4_headers(request: &SigV4Request<'_>) -> Vec<(&'static str, String)> {
    let payload_hash = hex::encode(Sha256::digest(request.body));
    let date = &request.amz_date[..8];
    let canonical_uri = request.path.split('/').map(uri_encode).collect::<Vec<_>>().join("/");
    let mut query: Vec<(String, String)> = request
        .query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (uri_encode(key), uri_encode(value))
        })
        .collect();
    query.sort();
    let canonical_query =
        query.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join("&");
    let signed_headers = "host;x-amz-content-sha256;x-amz-date";
    let canonical_request = format!(
        "{}\n{canonical_uri}\n{canonical_query}\nhost:{}\nx-amz-content-sha256:{payload_hash}\n\
         x-amz-date:{}\n\n{signed_headers}\n{payload_hash}",
        request.method, request.host, request.amz_date
    );
    let scope = format!("{date}/{}/s3/aws4_request", request.region);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        request.amz_date,
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac_sha256(format!("AWS4{}", request.secret_key).as_bytes(), date.as_bytes());
    for part in [request.region, "s3", "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    vec![
        ("x-amz-date", request.amz_date.to_owned()),
        ("x-amz-content-sha256", payload_hash),
        (
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, \
                 Signature={signature}",
                request.access_key
            ),
        ),
    ]
}

/// RFC 2104 HMAC with SHA-256 (64-byte blocks).
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_pad: Vec<u8> = block.iter().map(|byte| byte ^ 0x36).collect();
    let outer_pad: Vec<u8> = block.iter().map(|byte| byte ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&inner_pad).chain_update(message).finalize();
    Sha256::new().chain_update(&outer_pad).chain_update(inner).finalize().to_vec()
}

/// SigV4 URI encoding: everything but `A-Z a-z 0-9 - _ . ~` as `%XX`.
fn uri_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

async fn check(response: reqwest::Response, what: &str) -> Result<()> {
    let status = response.status();
    if !status.is_success() {
        bail!("{what}: {status}: {}", response.text().await.unwrap_or_default());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn example_signature(path: &str, query: &str) -> String {
        let headers = sigv4_headers(&SigV4Request {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path,
            query,
            body: b"",
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
            amz_date: "20130524T000000Z",
        });
        let authorization = &headers[2].1;
        assert!(authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
        ));
        authorization.rsplit_once('=').map(|(_, signature)| signature.to_owned()).unwrap()
    }

    #[test]
    fn signatures_match_the_aws_s3_documentation_examples() {
        // AWS S3 API reference, "Signature Calculations for the Authorization Header":
        // the GET Bucket Lifecycle and GET Bucket (List Objects) examples.
        assert_eq!(
            example_signature("/", "lifecycle"),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
        assert_eq!(
            example_signature("/", "max-keys=2&prefix=J"),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn uri_encoding_keeps_unreserved_characters() {
        assert_eq!(uri_encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(uri_encode("a b/c=d"), "a%20b%2Fc%3Dd");
    }
}
