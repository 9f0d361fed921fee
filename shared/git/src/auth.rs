//! Credentials from a Flux Secret and their safe hand-over to gix and the `git` CLI.
//!
//! Secrets never reach argv or messages: HTTP credentials become an `Authorization` header set
//! through in-memory config (gix) or `GIT_CONFIG_*` environment variables (git CLI), and SSH keys
//! are written with mode 0600 into a private temporary directory that is removed on drop.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::url::{RemoteUrl, Scheme};

/// How to authenticate to a remote.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// Anonymous access.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password or personal access token.
        password: String,
    },
    /// An HTTP `Authorization: Bearer` token.
    Bearer(String),
    /// SSH with a private key, checked against known host keys.
    Ssh {
        /// The private key in PEM or OpenSSH format.
        identity: String,
        /// known_hosts lines; the server's host key must be among them.
        known_hosts: String,
        /// The passphrase of an encrypted `identity`.
        password: Option<String>,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::Basic { username, .. } => {
                write!(f, "Auth::Basic {{ username: {username:?}, password: *** }}")
            }
            Auth::Bearer(_) => f.write_str("Auth::Bearer(***)"),
            Auth::Ssh { password, .. } => write!(
                f,
                "Auth::Ssh {{ identity: ***, known_hosts: …, password: {} }}",
                if password.is_some() { "***" } else { "none" }
            ),
        }
    }
}

impl Auth {
    /// Build credentials from the data of a GitRepository's `spec.secretRef` Secret, as Flux reads it.
    ///
    /// For `ssh://` URLs the keys are `identity`, `known_hosts` (both required) and `password`;
    /// otherwise `username` + `password` (basic) or `bearerToken`. No Secret data means anonymous.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAuth`] naming the missing or conflicting key.
    pub fn from_secret_data(url: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Auth, Error> {
        let text = |key: &str| -> Result<Option<String>, Error> {
            match data.get(key) {
                None => Ok(None),
                Some(bytes) if bytes.is_empty() => Ok(None),
                Some(bytes) => String::from_utf8(bytes.clone()).map(Some).map_err(|_| {
                    Error::InvalidAuth { reason: format!("Secret key '{key}' is not valid UTF-8") }
                }),
            }
        };
        let scheme = RemoteUrl::parse(url)?.scheme;
        if scheme == Scheme::Ssh {
            let identity = text("identity")?;
            let known_hosts = text("known_hosts")?;
            return match (identity, known_hosts) {
                (None, None) if data.is_empty() => Ok(Auth::None),
                (Some(identity), Some(known_hosts)) => {
                    Ok(Auth::Ssh { identity, known_hosts, password: text("password")? })
                }
                (None, _) => Err(Error::InvalidAuth {
                    reason: "Secret key 'identity' is required for ssh URLs".into(),
                }),
                (Some(_), None) => Err(Error::InvalidAuth {
                    reason: "Secret key 'known_hosts' is required for ssh URLs".into(),
                }),
            };
        }
        let username = text("username")?;
        let password = text("password")?;
        let bearer = text("bearerToken")?;
        match (username, password, bearer) {
            (None, None, None) => Ok(Auth::None),
            (None, None, Some(token)) => Ok(Auth::Bearer(token)),
            (Some(_) | None, Some(_) | None, Some(_)) => Err(Error::InvalidAuth {
                reason: "Secret sets both 'bearerToken' and 'username'/'password'; keep one".into(),
            }),
            (Some(username), Some(password), None) => Ok(Auth::Basic { username, password }),
            (Some(username), None, None) => Ok(Auth::Basic { username, password: String::new() }),
            (None, Some(_), None) => Err(Error::InvalidAuth {
                reason: "Secret key 'username' is required with 'password'".into(),
            }),
        }
    }

    /// The strings that must never appear in messages.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        match self {
            Auth::None => Vec::new(),
            Auth::Basic { password, .. } => vec![password.as_str()],
            Auth::Bearer(token) => vec![token.as_str()],
            Auth::Ssh { password, .. } => password.iter().map(String::as_str).collect(),
        }
    }
}

/// TLS and proxy settings for `http(s)://` remotes (Secret key `ca.crt`, `spec.proxySecretRef`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HttpOptions {
    /// Extra PEM CA certificates to trust besides the system roots.
    pub ca_certificate: Option<String>,
    /// The proxy to send requests through.
    pub proxy: Option<Proxy>,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("ca_certificate", &self.ca_certificate.as_ref().map(|_| "…"))
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl HttpOptions {
    /// Read the CA of a GitRepository Secret: `ca.crt`, or the older `caFile` key.
    ///
    /// The proxy comes from a separate Secret; see [`Proxy::from_secret_data`].
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> HttpOptions {
        let ca_certificate = ["ca.crt", "caFile"]
            .iter()
            .find_map(|key| data.get(*key).filter(|value| !value.is_empty()))
            .map(|value| String::from_utf8_lossy(value).into_owned());
        HttpOptions { ca_certificate, proxy: None }
    }
}

/// An HTTP proxy, as in a Flux proxy Secret (`address`, `username`, `password`).
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `http://host:port` of the proxy.
    pub address: String,
    /// User name for proxy authentication.
    pub username: Option<String>,
    /// Password for proxy authentication.
    pub password: Option<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Proxy {{ address: {:?}, username: {:?}, password: *** }}",
            crate::redact_url(&self.address),
            self.username
        )
    }
}

impl Proxy {
    /// Read a Flux proxy Secret: `address` is required, `username`/`password` optional.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAuth`] when `address` is missing or a value is not UTF-8.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Proxy, Error> {
        let text = |key: &str| -> Result<Option<String>, Error> {
            data.get(key)
                .filter(|bytes| !bytes.is_empty())
                .map(|bytes| {
                    String::from_utf8(bytes.clone()).map_err(|_| Error::InvalidAuth {
                        reason: format!("proxy Secret key '{key}' is not valid UTF-8"),
                    })
                })
                .transpose()
        };
        let address = text("address")?.ok_or_else(|| Error::InvalidAuth {
            reason: "proxy Secret key 'address' is required".into(),
        })?;
        Ok(Proxy { address, username: text("username")?, password: text("password")? })
    }
}

/// The system's CA certificates, loaded once: reqwest reads and parses them again for every
/// client it builds (tens of milliseconds of CPU), and gix builds a client per clone.
fn system_roots() -> &'static [reqwest::Certificate] {
    static ROOTS: std::sync::OnceLock<Vec<reqwest::Certificate>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        rustls_native_certs::load_native_certs()
            .certs
            .iter()
            .filter_map(|der| reqwest::Certificate::from_der(der).ok())
            .collect()
    })
}

/// Settings for gix's reqwest client, parsed up front so that errors name the Secret key.
#[derive(Clone, Default)]
pub(crate) struct ClientSettings {
    pub(crate) ca_certificates: Vec<reqwest::Certificate>,
    pub(crate) proxy: Option<reqwest::Proxy>,
}

impl ClientSettings {
    pub(crate) fn apply(
        &self,
        mut builder: reqwest::blocking::ClientBuilder,
    ) -> reqwest::blocking::ClientBuilder {
        // The system's roots plus the Secret's CAs, as reqwest would trust by default, but from
        // a copy loaded once.
        let roots = system_roots().iter().chain(&self.ca_certificates).cloned();
        builder = builder.tls_certs_only(roots);
        if let Some(proxy) = &self.proxy {
            builder = builder.proxy(proxy.clone());
        }
        builder
    }
}

/// Credentials made ready for one operation: config for gix, environment for the `git` CLI.
pub(crate) struct PreparedAuth {
    /// Holds the key files; removed on drop.
    dir: Option<tempfile::TempDir>,
    /// `key=value` git config entries (never written to disk by gix).
    pub(crate) config: Vec<String>,
    /// Secrets to redact from any text.
    pub(crate) secrets: Vec<String>,
    /// Whether any credentials are in use (for error wording).
    pub(crate) has_credentials: bool,
    /// CA and proxy for gix's HTTP client.
    pub(crate) client: ClientSettings,
    /// Inherited variables a `git` child must not see.
    pub(crate) unset_env: Vec<&'static str>,
    /// `scheme://host[:port]/` of an HTTP remote, the scope of its credentials for the git CLI.
    http_origin: Option<String>,
}

impl PreparedAuth {
    /// No credentials: for local git commands.
    pub(crate) fn local() -> PreparedAuth {
        PreparedAuth {
            dir: None,
            config: vec!["credential.helper=".into()],
            secrets: Vec::new(),
            has_credentials: false,
            client: ClientSettings::default(),
            unset_env: Vec::new(),
            http_origin: None,
        }
    }

    /// Prepare `auth` for `url`; credentials embedded in the URL count as basic auth when `auth` is `None`.
    pub(crate) fn new(
        auth: &Auth,
        url: &RemoteUrl,
        http: &HttpOptions,
    ) -> Result<PreparedAuth, Error> {
        let mut prepared = PreparedAuth {
            dir: None,
            config: Vec::new(),
            secrets: Vec::new(),
            has_credentials: false,
            client: ClientSettings::default(),
            unset_env: Vec::new(),
            http_origin: None,
        };
        prepared.config.push("credential.helper=".into());
        let from_url;
        let auth = match (auth, &url.username, url.scheme) {
            (Auth::None, Some(username), Scheme::Http | Scheme::Https) => {
                from_url = Auth::Basic {
                    username: username.clone(),
                    password: url.password.clone().unwrap_or_default(),
                };
                &from_url
            }
            _ => auth,
        };
        if let Some(password) = &url.password {
            prepared.secrets.push(password.clone());
        }
        prepared.secrets.extend(auth.secrets().into_iter().map(str::to_owned));
        prepared.has_credentials = *auth != Auth::None;
        match auth {
            Auth::None => {}
            Auth::Basic { username, password } => {
                let token = base64_encode(format!("{username}:{password}").as_bytes());
                prepared.secrets.push(token.clone());
                prepared.config.push(format!("http.extraHeader=Authorization: Basic {token}"));
            }
            Auth::Bearer(token) => {
                prepared.config.push(format!("http.extraHeader=Authorization: Bearer {token}"));
            }
            Auth::Ssh { identity, known_hosts, password } => {
                let dir = prepared.private_dir()?;
                let command = write_ssh_files(&dir, identity, known_hosts, password.as_deref())?;
                prepared.config.push(format!("core.sshCommand={command}"));
                prepared.config.push("ssh.variant=ssh".into());
            }
        }
        if matches!(url.scheme, Scheme::Http | Scheme::Https) {
            let scheme = if url.scheme == Scheme::Https { "https" } else { "http" };
            prepared.http_origin = Some(format!("{scheme}://{}/", url.host_port()));
            prepared.add_http_options(http)?;
        }
        Ok(prepared)
    }

    /// The private temporary directory, created on first use.
    fn private_dir(&mut self) -> Result<PathBuf, Error> {
        if self.dir.is_none() {
            let dir = tempfile::Builder::new().prefix("sluice-git-").tempdir().map_err(|err| {
                Error::io("creating temporary directory", std::env::temp_dir(), err)
            })?;
            self.dir = Some(dir);
        }
        Ok(self.dir.as_ref().map(|dir| dir.path().to_owned()).unwrap_or_default())
    }

    fn add_http_options(&mut self, http: &HttpOptions) -> Result<(), Error> {
        if let Some(pem) = &http.ca_certificate {
            let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .ok()
                .filter(|certificates| !certificates.is_empty())
                .ok_or_else(|| Error::InvalidAuth {
                    reason: "Secret key 'ca.crt' holds no PEM certificate".into(),
                })?;
            self.client.ca_certificates = certificates;
            // git's http.sslCAInfo replaces the system bundle, while Flux adds the CA to the
            // system roots: give git both.
            let mut bundle = system_ca_bundle();
            bundle.push_str(pem);
            let ca_path = self.private_dir()?.join("ca.crt");
            write_private_file(&ca_path, bundle.as_bytes(), 0o600)?;
            self.config.push(format!("http.sslCAInfo={}", ca_path.display()));
            // The environment would override the config.
            self.unset_env.push("GIT_SSL_CAINFO");
        }
        if let Some(proxy) = &http.proxy {
            let invalid = |reason: String| Error::InvalidAuth { reason };
            let address = RemoteUrl::parse(&proxy.address).map_err(|_| {
                invalid(format!(
                    "proxy address {:?} is not an http(s) URL",
                    crate::redact_url(&proxy.address)
                ))
            })?;
            let mut client_proxy = reqwest::Proxy::all(address.to_redacted()).map_err(|err| {
                invalid(format!("proxy address {:?}: {err}", address.to_redacted()))
            })?;
            let username = proxy.username.clone().or(address.username.clone());
            let password = proxy.password.clone().or(address.password.clone());
            let mut git_proxy = address.to_redacted();
            if let Some(username) = &username {
                let password = password.clone().unwrap_or_default();
                client_proxy = client_proxy.basic_auth(username, &password);
                let userinfo =
                    format!("{}:{}@", percent_encode(username), percent_encode(&password));
                git_proxy = git_proxy.replacen("://", &format!("://{userinfo}"), 1);
                if !password.is_empty() {
                    self.secrets.push(password);
                }
            }
            self.client.proxy = Some(client_proxy);
            self.config.push(format!("http.proxy={git_proxy}"));
        }
        Ok(())
    }

    /// The ssh log written by `ssh -E`, when SSH is in use.
    pub(crate) fn ssh_log(&self) -> Option<String> {
        let path = self.dir.as_ref()?.path().join("ssh.log");
        std::fs::read_to_string(path).ok()
    }

    /// Environment for a `git` CLI child: the same config passed as `GIT_CONFIG_*` variables.
    pub(crate) fn git_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("GIT_TERMINAL_PROMPT".to_owned(), "0".to_owned()),
            ("GIT_CONFIG_NOSYSTEM".to_owned(), "1".to_owned()),
            ("GIT_CONFIG_COUNT".to_owned(), self.config.len().to_string()),
        ];
        for (idx, entry) in self.config.iter().enumerate() {
            let (key, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            // Scope the Authorization header to the remote's origin, so that submodules on
            // other hosts never receive it.
            let key = match (&self.http_origin, key) {
                (Some(origin), "http.extraHeader") => format!("http.{origin}.extraHeader"),
                _ => key.to_owned(),
            };
            env.push((format!("GIT_CONFIG_KEY_{idx}"), key));
            env.push((format!("GIT_CONFIG_VALUE_{idx}"), value.to_owned()));
        }
        env
    }

    /// Redact every secret and URL userinfo from `text`.
    pub(crate) fn redact(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        crate::url::redact_text(text, &secrets)
    }
}

fn write_private_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|err| Error::io("creating", path, err))?;
    file.write_all(contents).map_err(|err| Error::io("writing", path, err))
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// Write the key material and return the `core.sshCommand` value that uses it.
fn write_ssh_files(
    dir: &Path,
    identity: &str,
    known_hosts: &str,
    password: Option<&str>,
) -> Result<String, Error> {
    let identity_path: PathBuf = dir.join("identity");
    let mut identity = identity.to_owned();
    if !identity.ends_with('\n') {
        // OpenSSH rejects a key file without the final newline ("invalid format").
        identity.push('\n');
    }
    write_private_file(&identity_path, identity.as_bytes(), 0o600)?;
    let known_hosts_path = dir.join("known_hosts");
    write_private_file(&known_hosts_path, known_hosts.as_bytes(), 0o600)?;
    let log_path = dir.join("ssh.log");
    let mut command = String::new();
    if let Some(password) = password {
        // ssh reads a passphrase only from a terminal or SSH_ASKPASS; the script prints a 0600 file.
        let password_path = dir.join("passphrase");
        write_private_file(&password_path, password.as_bytes(), 0o600)?;
        let askpass_path = dir.join("askpass");
        let script = format!("#!/bin/sh\ncat {}\n", shell_quote(&password_path));
        write_private_file(&askpass_path, script.as_bytes(), 0o700)?;
        command.push_str(&format!(
            "env SSH_ASKPASS_REQUIRE=force SSH_ASKPASS={} ",
            shell_quote(&askpass_path)
        ));
    }
    command.push_str(&format!(
        "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null \
         -o StrictHostKeyChecking=yes -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no \
         -o ConnectTimeout=30 -E {}",
        shell_quote(&identity_path),
        shell_quote(&known_hosts_path),
        shell_quote(&log_path),
    ));
    if password.is_none() {
        command.push_str(" -o BatchMode=yes");
    }
    Ok(command)
}

/// The system CA bundle as git would find it, or nothing.
fn system_ca_bundle() -> String {
    let candidates = [
        std::env::var("GIT_SSL_CAINFO").ok(),
        std::env::var("SSL_CERT_FILE").ok(),
        Some("/etc/ssl/certs/ca-certificates.crt".to_owned()),
    ];
    for path in candidates.into_iter().flatten() {
        if let Ok(mut bundle) = std::fs::read_to_string(&path) {
            if !bundle.ends_with('\n') {
                bundle.push('\n');
            }
            return bundle;
        }
    }
    String::new()
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (idx, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if idx <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(key, value)| (key.to_string(), value.as_bytes().to_vec())).collect()
    }

    #[test]
    fn secret_data_maps_to_auth() {
        let https = "https://example.com/r.git";
        assert_eq!(Auth::from_secret_data(https, &data(&[])).unwrap(), Auth::None);
        assert_eq!(
            Auth::from_secret_data(https, &data(&[("username", "u"), ("password", "p")])).unwrap(),
            Auth::Basic { username: "u".into(), password: "p".into() }
        );
        assert_eq!(
            Auth::from_secret_data(https, &data(&[("bearerToken", "t")])).unwrap(),
            Auth::Bearer("t".into())
        );
        let both = Auth::from_secret_data(https, &data(&[("username", "u"), ("bearerToken", "t")]));
        assert!(both.unwrap_err().to_string().contains("bearerToken"));
        let ssh = "ssh://git@example.com/r.git";
        let no_hosts = Auth::from_secret_data(ssh, &data(&[("identity", "KEY")])).unwrap_err();
        assert!(no_hosts.to_string().contains("known_hosts"), "{no_hosts}");
        let ok = Auth::from_secret_data(ssh, &data(&[("identity", "KEY"), ("known_hosts", "h k")]))
            .unwrap();
        assert!(matches!(ok, Auth::Ssh { password: None, .. }));
    }

    #[test]
    fn http_options_read_the_ca() {
        let with_ca = data(&[("username", "u"), ("ca.crt", "PEM")]);
        assert_eq!(HttpOptions::from_secret_data(&with_ca).ca_certificate.as_deref(), Some("PEM"));
        let legacy = data(&[("caFile", "OLD")]);
        assert_eq!(HttpOptions::from_secret_data(&legacy).ca_certificate.as_deref(), Some("OLD"));
        assert_eq!(HttpOptions::from_secret_data(&data(&[])), HttpOptions::default());
        let proxy =
            Proxy::from_secret_data(&data(&[("address", "http://p:3128"), ("password", "pw")]));
        assert_eq!(proxy.unwrap().address, "http://p:3128");
        let missing = Proxy::from_secret_data(&data(&[("username", "u")])).unwrap_err();
        assert!(missing.to_string().contains("'address'"), "{missing}");
    }

    #[test]
    fn git_cli_credentials_are_scoped_to_the_remote_host() {
        let url = RemoteUrl::parse("https://git.example.com:8443/org/app.git").unwrap();
        let auth = Auth::Bearer("t0ken".into());
        let prepared = PreparedAuth::new(&auth, &url, &HttpOptions::default()).unwrap();
        let env = prepared.git_env();
        let key =
            env.iter().find(|(_, value)| value.contains("Bearer")).map(|(name, _)| name).unwrap();
        let idx = key.trim_start_matches("GIT_CONFIG_VALUE_");
        let scoped = env.iter().find(|(name, _)| *name == format!("GIT_CONFIG_KEY_{idx}")).unwrap();
        assert_eq!(scoped.1, "http.https://git.example.com:8443/.extraHeader");
        assert!(env.iter().all(|(name, _)| !name.contains("t0ken")));
    }

    #[test]
    fn debug_hides_secrets() {
        let text =
            format!("{:?}", Auth::Basic { username: "u".into(), password: "hunter2".into() });
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!format!("{:?}", Auth::Bearer("tok123".into())).contains("tok123"));
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("alice:s3cret", "YWxpY2U6czNjcmV0"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected);
        }
    }

    #[test]
    fn ssh_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let url = RemoteUrl::parse("ssh://git@127.0.0.1:2222/r.git").unwrap();
        let auth = Auth::Ssh {
            identity: "KEY".into(),
            known_hosts: "h k".into(),
            password: Some("pw1".into()),
        };
        let prepared = PreparedAuth::new(&auth, &url, &HttpOptions::default()).unwrap();
        let dir = prepared.dir.as_ref().unwrap().path().to_owned();
        for name in ["identity", "known_hosts", "passphrase"] {
            let mode = std::fs::metadata(dir.join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        assert!(prepared.config.iter().any(|entry| entry.contains("StrictHostKeyChecking=yes")));
        assert!(!prepared.config.iter().any(|entry| entry.contains("pw1")));
        drop(prepared);
        assert!(!dir.exists());
    }
}
