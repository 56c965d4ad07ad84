//! Where the reconciler is and how to reach it: the `--server` URL (`wss://` or `https://`,
//! `ws://` only with `--allow-plaintext`), the rustls client configuration (a `--ca` bundle
//! as the only trust root, else the webpki roots; ring provider) and the TCP + TLS connection
//! both enrollment and the WebSocket run over.

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io;
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long connecting (TCP, TLS, HTTP or WebSocket handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server address or the TLS setup is refused.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("`{0}` is not a server URL: expected wss://HOST[:PORT] (or https://HOST[:PORT])")]
    Url(String),
    #[error(
        "`{0}` is plaintext: use wss:// (ws:// is accepted only with --allow-plaintext, for debugging)"
    )]
    Plaintext(String),
    #[error("cannot read the CA bundle {path}: {source}")]
    CaRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the CA bundle {path} holds no usable certificate{detail}")]
    CaEmpty { path: PathBuf, detail: String },
    #[error("cannot set up TLS: {0}")]
    Tls(#[source] rustls::Error),
}

/// The reconciler's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// TLS (false only for `ws://` with `--allow-plaintext`).
    pub tls: bool,
}

impl Endpoint {
    /// Parses `wss://host[:port][/]`, `https://...` (the same), or `ws://`/`http://` when
    /// `allow_plaintext`. A path, query, or user info is refused.
    pub fn parse(url: &str, allow_plaintext: bool) -> Result<Endpoint, EndpointError> {
        let bad = || EndpointError::Url(url.to_owned());
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "wss" | "https" => true,
            "ws" | "http" if allow_plaintext => false,
            "ws" | "http" => return Err(EndpointError::Plaintext(url.to_owned())),
            _ => return Err(bad()),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (host, port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
            None if tls => 443,
            None => 80,
        };
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            tls,
        })
    }

    /// `host:port` as an HTTP `Host` header (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The WebSocket URL of `path`.
    pub fn ws_url(&self, path: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{path}", self.authority())
    }
}

/// The TLS client configuration: `ca` (a PEM bundle) as the only trust root, or the webpki
/// roots. Always the ring provider, TLS 1.2 and 1.3.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, EndpointError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| EndpointError::CaRead {
                path: path.to_path_buf(),
                source,
            })?;
            let mut added = 0;
            let mut detail = String::new();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                match cert.map(|c| roots.add(c)) {
                    Ok(Ok(())) => added += 1,
                    Ok(Err(e)) => detail = format!(" ({e})"),
                    Err(e) => detail = format!(" ({e})"),
                }
            }
            if added == 0 {
                return Err(EndpointError::CaEmpty {
                    path: path.to_path_buf(),
                    detail,
                });
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(EndpointError::Tls)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A connection to the reconciler: TLS over TCP, or plain TCP (`--allow-plaintext`).
#[derive(Debug)]
pub enum Stream {
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Plain(TcpStream),
}

impl Stream {
    /// The TCP socket underneath (for timeouts).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tls(s) => &s.sock,
            Stream::Plain(s) => s,
        }
    }
}

impl io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tls(s) => s.read(buf),
            Stream::Plain(s) => s.read(buf),
        }
    }
}

impl io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tls(s) => s.write(buf),
            Stream::Plain(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tls(s) => s.flush(),
            Stream::Plain(s) => s.flush(),
        }
    }
}

/// Connects (TCP with a timeout, then the TLS handshake) and sets read and write timeouts
/// of [`CONNECT_TIMEOUT`].
pub fn connect(endpoint: &Endpoint, tls: &Arc<rustls::ClientConfig>) -> io::Result<Stream> {
    let addrs = (endpoint.host.as_str(), endpoint.port).to_socket_addrs()?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let tcp = tcp.ok_or(last)?;
    tcp.set_read_timeout(Some(CONNECT_TIMEOUT))?;
    tcp.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    tcp.set_nodelay(true)?;
    if !endpoint.tls {
        return Ok(Stream::Plain(tcp));
    }
    let name = ServerName::try_from(endpoint.host.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let conn = rustls::ClientConnection::new(tls.clone(), name).map_err(io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    // Handshake now, so certificate problems surface as connection errors here.
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(Stream::Tls(Box::new(stream)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse("wss://rec.example.com:8443", false).expect("wss");
        assert_eq!(e.authority(), "rec.example.com:8443");
        assert!(e.tls);
        assert_eq!(
            Endpoint::parse("https://rec/", false).expect("https").port,
            443
        );
        let v6 = Endpoint::parse("wss://[::1]:9000", false).expect("v6");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9000));
        assert_eq!(v6.ws_url("/x"), "wss://[::1]:9000/x");
        assert!(matches!(
            Endpoint::parse("ws://rec:80", false),
            Err(EndpointError::Plaintext(_))
        ));
        assert!(!Endpoint::parse("ws://rec:80", true).expect("plain").tls);
        for bad in [
            "rec:80",
            "ftp://rec",
            "wss://",
            "wss://rec:0",
            "wss://rec:x",
            "wss://u@rec",
            "wss://rec/path",
            "wss://[::1",
        ] {
            assert!(
                matches!(Endpoint::parse(bad, false), Err(EndpointError::Url(_))),
                "{bad}"
            );
        }
    }
}
