//! A tiny HTTP/1.1 server running `git http-backend` as CGI, with basic and bearer auth.
//!
//! `/public/<repo>` is anonymous (read only), `/private/<repo>` needs basic `alice:s3cret`,
//! `/bearer/<repo>` needs `Authorization: Bearer t0ken`.
//! It also acts as an HTTP proxy for absolute-form requests, which need
//! `Proxy-Authorization` for `proxy:pw123`; `proxied` counts them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// `alice:s3cret` in base64.
const BASIC: &str = "Basic YWxpY2U6czNjcmV0";
const BEARER: &str = "Bearer t0ken";
/// `proxy:pw123` in base64.
const PROXY_BASIC: &str = "Basic cHJveHk6cHcxMjM=";

pub struct HttpServer {
    pub port: u16,
    /// Requests that arrived in proxy (absolute) form with valid proxy credentials.
    pub proxied: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serve the repositories under `root` until dropped.
pub fn http_server(root: &Path) -> HttpServer {
    serve(root, None)
}

/// Serve over TLS with `tls`; see [`TlsFiles`].
pub fn https_server(root: &Path, tls: Arc<rustls::ServerConfig>) -> HttpServer {
    serve(root, Some(tls))
}

/// A test CA and a server certificate for 127.0.0.1 made with the `openssl` CLI.
pub struct TlsFiles {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The rustls server configuration using the server certificate.
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Make a CA and a 127.0.0.1 server certificate in `dir`, or `None` without `openssl`.
pub fn tls_files(dir: &Path) -> Option<TlsFiles> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let openssl = |args: &[&str]| -> bool {
        Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ok = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=sluice test CA",
    ]) && openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]) && openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.crt",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    if !ok {
        eprintln!("skipping: openssl could not make test certificates");
        return None;
    }
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("leaf.crt")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("leaf.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .unwrap();
    Some(TlsFiles {
        ca_pem: std::fs::read_to_string(dir.join("ca.crt")).unwrap(),
        server_config: Arc::new(server_config),
    })
}

fn serve(root: &Path, tls: Option<Arc<rustls::ServerConfig>>) -> HttpServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let root = root.to_owned();
    let backend = PathBuf::from(super::git(&root, &["--exec-path"])).join("git-http-backend");
    let thread_stop = Arc::clone(&stop);
    let proxied = Arc::new(AtomicUsize::new(0));
    let thread_proxied = Arc::clone(&proxied);
    let thread = std::thread::spawn(move || {
        for stream in listener.incoming() {
            if thread_stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let root = root.clone();
            let backend = backend.clone();
            let proxied = Arc::clone(&thread_proxied);
            let tls = tls.clone();
            std::thread::spawn(move || {
                let _ = match tls {
                    Some(config) => match rustls::ServerConnection::new(config) {
                        Ok(connection) => handle(
                            rustls::StreamOwned::new(connection, stream),
                            &root,
                            &backend,
                            &proxied,
                        ),
                        Err(_) => Ok(()),
                    },
                    None => handle(stream, &root, &backend, &proxied),
                };
            });
        }
    });
    HttpServer { port, proxied, stop, thread: Some(thread) }
}

fn handle(
    stream: impl Read + Write,
    root: &Path,
    backend: &Path,
    proxied: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("/").to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone())
        };
        let body = if header("transfer-encoding").is_some_and(|value| value.contains("chunked")) {
            read_chunked(&mut reader)?
        } else {
            let length: usize =
                header("content-length").and_then(|value| value.parse().ok()).unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            body
        };
        let target = match target.strip_prefix("http://") {
            Some(absolute) => {
                if header("proxy-authorization").as_deref() != Some(PROXY_BASIC) {
                    let response = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"proxy\"\r\nContent-Length: 0\r\n\r\n";
                    reader.get_mut().write_all(response.as_bytes())?;
                    reader.get_mut().flush()?;
                    continue;
                }
                proxied.fetch_add(1, Ordering::SeqCst);
                absolute
                    .find('/')
                    .map(|idx| absolute[idx..].to_owned())
                    .unwrap_or_else(|| "/".to_owned())
            }
            None => target,
        };
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let (area, path_info) = match path.strip_prefix('/').and_then(|rest| rest.split_once('/')) {
            Some((area, rest)) => (area.to_owned(), format!("/{rest}")),
            None => (String::new(), path.to_owned()),
        };
        let authorization = header("authorization");
        let (allowed, user) = match area.as_str() {
            "public" => (true, None),
            "private" => (authorization.as_deref() == Some(BASIC), Some("alice")),
            "bearer" => (authorization.as_deref() == Some(BEARER), Some("bearer")),
            _ => (false, None),
        };
        if !allowed {
            let response = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\n\r\n";
            reader.get_mut().write_all(response.as_bytes())?;
            reader.get_mut().flush()?;
            continue;
        }
        let mut command = Command::new(backend);
        command
            .env_clear()
            .env("GIT_PROJECT_ROOT", root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("REQUEST_METHOD", &method)
            .env("PATH_INFO", &path_info)
            .env("QUERY_STRING", query)
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("CONTENT_LENGTH", body.len().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(user) = user {
            command.env("REMOTE_USER", user);
        }
        if let Some(content_type) = header("content-type") {
            command.env("CONTENT_TYPE", content_type);
        }
        if let Some(encoding) = header("content-encoding") {
            command.env("HTTP_CONTENT_ENCODING", encoding);
        }
        if let Some(protocol) = header("git-protocol") {
            command.env("GIT_PROTOCOL", protocol);
        }
        let mut child = command.spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        let writer_thread = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let mut output = Vec::new();
        child.stdout.take().expect("piped").read_to_end(&mut output)?;
        let _ = writer_thread.join();
        child.wait()?;
        let split =
            output.windows(4).position(|window| window == b"\r\n\r\n").map(|idx| (idx, 4)).or_else(
                || output.windows(2).position(|window| window == b"\n\n").map(|idx| (idx, 2)),
            );
        let (head, content) = match split {
            Some((idx, len)) => {
                (String::from_utf8_lossy(&output[..idx]).into_owned(), output[idx + len..].to_vec())
            }
            None => (String::new(), output),
        };
        let mut status = "200 OK".to_owned();
        let mut response = Vec::new();
        for line in head.lines() {
            if let Some(value) = line.strip_prefix("Status:") {
                status = value.trim().to_owned();
            } else if !line.is_empty() {
                response.extend_from_slice(line.as_bytes());
                response.extend_from_slice(b"\r\n");
            }
        }
        let mut full =
            format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", content.len()).into_bytes();
        full.extend_from_slice(&response);
        full.extend_from_slice(b"\r\n");
        full.extend_from_slice(&content);
        reader.get_mut().write_all(&full)?;
        reader.get_mut().flush()?;
    }
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
            .unwrap_or(0);
        if size == 0 {
            // Trailer section ends with an empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let mut chunk = vec![0; size];
        reader.read_exact(&mut chunk)?;
        body.extend_from_slice(&chunk);
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}
