//! Remote URLs: parsing the parts sluice needs, stripping credentials and redacting messages.

use crate::Error;

/// The transport a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `https://`
    Https,
    /// `http://` (Flux sends credentials over it too).
    Http,
    /// `ssh://`, run through the external `ssh` binary.
    Ssh,
    /// `git://`, the unauthenticated git daemon protocol.
    Git,
    /// `file://`, used by tests and local mirrors.
    File,
}

/// A remote URL split into the parts sluice uses.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    /// The transport.
    pub scheme: Scheme,
    /// The user name of the userinfo, if any.
    pub username: Option<String>,
    /// The password of the userinfo, if any (never shown).
    pub password: Option<String>,
    /// Host name or address, without brackets for IPv6.
    pub host: String,
    /// Explicit port.
    pub port: Option<u16>,
    /// The path, starting with `/`.
    pub path: String,
}

impl std::fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_redacted())
    }
}

impl RemoteUrl {
    /// Parse `scheme://[user[:password]@]host[:port]/path`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for a missing or unsupported scheme, an empty host or a bad port;
    /// the message never contains the password.
    pub fn parse(url: &str) -> Result<RemoteUrl, Error> {
        let invalid =
            |reason: &str| Error::InvalidUrl { url: redact_url(url), reason: reason.into() };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            invalid("expected scheme://host/path (http, https, ssh, git or file)")
        })?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            "ssh" => Scheme::Ssh,
            "git" => Scheme::Git,
            "file" => Scheme::File,
            _ => return Err(invalid("unsupported scheme; use http, https or ssh")),
        };
        let (authority, path) = match rest.find('/') {
            Some(idx) => (&rest[..idx], &rest[idx..]),
            None => (rest, "/"),
        };
        if scheme == Scheme::File {
            if !authority.is_empty() && authority != "localhost" {
                return Err(invalid("file URLs must be file:///absolute/path"));
            }
            return Ok(RemoteUrl {
                scheme,
                username: None,
                password: None,
                host: String::new(),
                port: None,
                path: path.to_owned(),
            });
        }
        let (userinfo, host_port) = match authority.rfind('@') {
            Some(idx) => (Some(&authority[..idx]), &authority[idx + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            Some(info) => match info.split_once(':') {
                Some((user, pass)) => (Some(percent_decode(user)), Some(percent_decode(pass))),
                None => (Some(percent_decode(info)), None),
            },
            None => (None, None),
        };
        let (host, port) = split_host_port(host_port).ok_or_else(|| invalid("invalid port"))?;
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        Ok(RemoteUrl { scheme, username, password, host, port, path: path.to_owned() })
    }

    /// `host:port` as ssh and messages show it (`host` alone without an explicit port).
    pub fn host_port(&self) -> String {
        let host =
            if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        match self.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }

    fn scheme_str(&self) -> &'static str {
        match self.scheme {
            Scheme::Https => "https",
            Scheme::Http => "http",
            Scheme::Ssh => "ssh",
            Scheme::Git => "git",
            Scheme::File => "file",
        }
    }

    /// The URL handed to the transport: no password ever, and for HTTP no user either
    /// (credentials travel through the credential callback instead).
    pub fn to_transport_url(&self) -> String {
        let user = match (self.scheme, &self.username) {
            (Scheme::Ssh, Some(user)) => format!("{user}@"),
            _ => String::new(),
        };
        format!("{}://{}{}{}", self.scheme_str(), user, self.host_port(), self.path)
    }

    /// The URL for messages and logs: no userinfo at all.
    pub fn to_redacted(&self) -> String {
        format!("{}://{}{}", self.scheme_str(), self.host_port(), self.path)
    }
}

fn split_host_port(host_port: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match host_port.rsplit_once(':') {
        Some((host, "")) => Some((host.to_owned(), None)),
        Some((host, port)) => Some((host.to_owned(), Some(port.parse().ok()?))),
        None => Some((host_port.to_owned(), None)),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        if bytes[idx] == b'%'
            && idx + 2 < bytes.len()
            && let Some(byte) = std::str::from_utf8(&bytes[idx + 1..idx + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            idx += 3;
            continue;
        }
        out.push(bytes[idx]);
        idx += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Strip the userinfo from every `scheme://user:pass@host` in `text`.
///
/// Used on URLs and on any text that may quote one (git and gix error messages).
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(idx) = rest.find("://") {
        let (head, tail) = rest.split_at(idx + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => out.push_str(&authority[at + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// Replace each secret in `text` with `***`, then strip URL userinfo.
pub(crate) fn redact_text(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|secret| secret.len() >= 3) {
        text = text.replace(secret, "***");
    }
    redact_url(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_redact(input: &str, expected: &str) {
        assert_eq!(redact_url(input), expected);
    }

    #[test]
    fn redact_strips_userinfo() {
        check_redact("https://alice:s3cret@example.com/r.git", "https://example.com/r.git");
        check_redact("https://token@example.com", "https://example.com");
        check_redact("fatal: 'http://u:p@h:80/x' denied", "fatal: 'http://h:80/x' denied");
        check_redact("ssh://git@h:22/x and https://a:b@c/d", "ssh://h:22/x and https://c/d");
        check_redact("no url here", "no url here");
    }

    #[test]
    fn parse_splits_parts() {
        let url = RemoteUrl::parse("https://alice:s%40cret@example.com:8443/org/repo.git").unwrap();
        assert_eq!(url.scheme, Scheme::Https);
        assert_eq!(url.username.as_deref(), Some("alice"));
        assert_eq!(url.password.as_deref(), Some("s@cret"));
        assert_eq!(url.host_port(), "example.com:8443");
        assert_eq!(url.to_transport_url(), "https://example.com:8443/org/repo.git");
        assert_eq!(format!("{url:?}"), "https://example.com:8443/org/repo.git");

        let ssh = RemoteUrl::parse("ssh://git@127.0.0.1:2222/srv/app.git").unwrap();
        assert_eq!(ssh.to_transport_url(), "ssh://git@127.0.0.1:2222/srv/app.git");
        assert_eq!(ssh.host_port(), "127.0.0.1:2222");

        let file = RemoteUrl::parse("file:///tmp/x.git").unwrap();
        assert_eq!(file.to_transport_url(), "file:///tmp/x.git");
    }

    #[test]
    fn parse_errors_never_show_passwords() {
        let err = RemoteUrl::parse("ftp://u:hunter2@h/x").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(RemoteUrl::parse("example.com/x").is_err());
        assert!(RemoteUrl::parse("https://h:notaport/x").is_err());
        assert!(RemoteUrl::parse("https:///x").is_err());
    }
}
