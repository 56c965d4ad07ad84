//! TLS for the reconciler's HTTP side: a development CA and server certificate made with
//! rcgen (`centossrv certs init`), the operator's PEM chain and key loaded into a rustls
//! `ServerConfig` (ring provider, TLS 1.2 and 1.3), and serving an axum `Router` over it.
//! The only module that knows rcgen, rustls and axum-server.

use axum::Router;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// File names `certs init` writes into its directory.
pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";
pub const SERVER_CERT: &str = "server.pem";
pub const SERVER_KEY: &str = "server-key.pem";

/// Hosts the server certificate names when none are given.
pub const DEFAULT_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];

/// Years the development CA and the server certificate are valid.
const CA_YEARS: i32 = 10;
const SERVER_YEARS: i32 = 2;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("`{path}` already exists (pass --force to overwrite)")]
    Exists { path: PathBuf },
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read `{path}`: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("`{path}` holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("invalid host name `{host}` for a certificate: {detail}")]
    Host { host: String, detail: String },
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the certificate and key cannot be used: {0}")]
    Config(#[from] rustls::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What `certs init` wrote.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl CertFiles {
    pub fn in_dir(dir: &Path) -> CertFiles {
        CertFiles {
            ca_cert: dir.join(CA_CERT),
            ca_key: dir.join(CA_KEY),
            server_cert: dir.join(SERVER_CERT),
            server_key: dir.join(SERVER_KEY),
        }
    }
}

/// Generates a development CA and a server certificate for `hosts` (DNS names or IP
/// addresses; [`DEFAULT_HOSTS`] when empty) signed by it, into `dir` (created if missing).
/// Keys are written with mode 0600. Refuses to overwrite any of the four files unless
/// `force`.
pub fn init_certs(dir: &Path, hosts: &[String], force: bool) -> Result<CertFiles, TlsError> {
    let files = CertFiles::in_dir(dir);
    let all = [
        &files.ca_cert,
        &files.ca_key,
        &files.server_cert,
        &files.server_key,
    ];
    if !force && let Some(existing) = all.iter().find(|p| p.exists()) {
        return Err(TlsError::Exists {
            path: (*existing).clone(),
        });
    }
    let hosts: Vec<String> = if hosts.is_empty() {
        DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect()
    } else {
        hosts.to_vec()
    };
    for host in &hosts {
        check_host(host)?;
    }
    let today = today();

    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(DnType::CommonName, "centossrv development CA");
    ca.not_before = rcgen::date_time_ymd(today.0, today.1, today.2);
    ca.not_after = rcgen::date_time_ymd(today.0 + CA_YEARS, today.1, today.2);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;

    let mut server = CertificateParams::new(hosts.clone())?;
    server
        .distinguished_name
        .push(DnType::CommonName, hosts[0].clone());
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = rcgen::date_time_ymd(today.0, today.1, today.2);
    server.not_after = rcgen::date_time_ymd(today.0 + SERVER_YEARS, today.1, today.2);
    let server_key = KeyPair::generate()?;
    let issuer = Issuer::from_params(&ca, &ca_key);
    let server_cert = server.signed_by(&server_key, &issuer)?;

    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_owned(),
        source,
    })?;
    // Keys first and private from their first byte.
    write_file(&files.ca_key, &ca_key.serialize_pem(), 0o600, force)?;
    write_file(&files.server_key, &server_key.serialize_pem(), 0o600, force)?;
    write_file(&files.ca_cert, &ca_cert.pem(), 0o644, force)?;
    write_file(&files.server_cert, &server_cert.pem(), 0o644, force)?;
    Ok(files)
}

/// A host a certificate can name: an IP address, or a DNS name of letters, digits, `-` and
/// dots (a leading `*.` allowed).
fn check_host(host: &str) -> Result<(), TlsError> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    let ok = !name.is_empty()
        && host.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(TlsError::Host {
            host: host.to_owned(),
            detail: "expected an IP address or a DNS name (letters, digits, `-`, dots)".into(),
        })
    }
}

/// Today's UTC date, with the day capped at 28 so the same day some years on exists.
fn today() -> (i32, u8, u8) {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month as u8, day.min(28) as u8)
}

fn write_file(path: &Path, text: &str, mode: u32, force: bool) -> Result<(), TlsError> {
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    if force {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                TlsError::Exists {
                    path: path.to_owned(),
                }
            } else {
                err(e)
            }
        })?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

/// The ring crypto provider, installed as the process default once (for any rustls user
/// that asks for the default), and returned for explicit use.
pub fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Fails only when a default is installed already; that one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server configuration from a PEM certificate chain (leaf first) and a PEM private
/// key (PKCS#8, PKCS#1 or SEC1): ring provider, TLS 1.2 and 1.3, ALPN `http/1.1` (the agent
/// link upgrades HTTP/1.1 connections to WebSocket).
pub fn server_config(cert_chain: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |e: rustls::pki_types::pem::Error| TlsError::Read {
            path,
            detail: e.to_string(),
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_chain)
        .map_err(read_err(cert_chain))?
        .collect::<Result<_, _>>()
        .map_err(read_err(cert_chain))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_chain.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(read_err(key))?;
    let mut config = ServerConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A running TLS server.
#[derive(Debug)]
pub struct TlsServer {
    /// The address it listens on (the real port when asked for port 0).
    pub addr: SocketAddr,
    handle: Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TlsServer {
    /// Stops accepting, gives open requests `grace` to finish, and waits for the server.
    pub async fn shutdown(self, grace: Duration) -> std::io::Result<()> {
        self.handle.graceful_shutdown(Some(grace));
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Serves `router` over TLS on `addr` (port 0 picks a free port). Must be called inside a
/// tokio runtime. Handlers can extract `ConnectInfo<SocketAddr>`.
pub fn serve(
    router: Router,
    addr: SocketAddr,
    config: Arc<ServerConfig>,
) -> Result<TlsServer, TlsError> {
    let bind_err = |source| TlsError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    let bound = listener.local_addr().map_err(bind_err)?;
    let handle = Handle::new();
    let server = axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(config))
        .handle(handle.clone());
    let task =
        tokio::spawn(server.serve(router.into_make_service_with_connect_info::<SocketAddr>()));
    Ok(TlsServer {
        addr: bound,
        handle,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_init_writes_private_keys_and_refuses_to_overwrite() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let files = init_certs(dir.path(), &[], false).expect("init");
        for key in [&files.ca_key, &files.server_key] {
            let mode = std::fs::metadata(key).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
        let before = std::fs::read(&files.ca_key).expect("read");
        assert!(matches!(
            init_certs(dir.path(), &[], false),
            Err(TlsError::Exists { .. })
        ));
        assert_eq!(std::fs::read(&files.ca_key).expect("read"), before);
        init_certs(dir.path(), &["srv.example".into()], true).expect("forced");
        assert_ne!(std::fs::read(&files.ca_key).expect("read"), before);
        server_config(&files.server_cert, &files.server_key).expect("loads");
        assert!(matches!(
            server_config(&files.server_key, &files.server_key),
            Err(TlsError::NoCertificate { .. })
        ));
        assert!(matches!(
            init_certs(dir.path(), &["bad host!".into()], true),
            Err(TlsError::Host { .. })
        ));
    }

    #[test]
    fn today_is_a_real_date() {
        let (y, m, d) = today();
        assert!(y >= 2024 && (1..=12).contains(&m) && (1..=28).contains(&d));
    }
}
