//! The `--audit-syslog` settings: where to send (`udp://HOST:PORT`, `tcp://HOST:PORT`,
//! `unix:PATH`) and the syslog facility, parsed and checked once at startup.

use std::fmt;
use std::path::PathBuf;

/// Where forwarded audit entries go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// One datagram per message (RFC 5426).
    Udp { host: String, port: u16 },
    /// One connection, octet-counting framing (RFC 6587 §3.4.1).
    Tcp { host: String, port: u16 },
    /// A local socket such as `/dev/log`: one datagram per message, or octet-counted frames
    /// when the socket is a stream socket.
    Unix(PathBuf),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Udp { host, port } => write!(f, "udp://{}:{port}", bracket(host)),
            Destination::Tcp { host, port } => write!(f, "tcp://{}:{port}", bracket(host)),
            Destination::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

impl std::str::FromStr for Destination {
    type Err = String;

    fn from_str(text: &str) -> Result<Destination, String> {
        let form = "expected udp://HOST:PORT, tcp://HOST:PORT or unix:PATH";
        if let Some(path) = text.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if !path.starts_with('/') {
                return Err(format!(
                    "`{text}`: the socket path must be absolute ({form})"
                ));
            }
            return Ok(Destination::Unix(PathBuf::from(path)));
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("`{text}`: {form}"))?;
        let (host, port) = host_port(rest).ok_or_else(|| format!("`{text}`: {form}"))?;
        match scheme {
            "udp" => Ok(Destination::Udp { host, port }),
            "tcp" => Ok(Destination::Tcp { host, port }),
            other => Err(format!(
                "`{text}`: unknown scheme `{other}` ({form}; TLS is not supported)"
            )),
        }
    }
}

/// `HOST:PORT` or `[IPV6]:PORT`, port 1 to 65535, nothing after it.
fn host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':')?)
    } else {
        let (host, port) = text.rsplit_once(':')?;
        if host.contains(':') {
            return None;
        }
        (host, port)
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    let port: u16 = port.parse().ok()?;
    (valid_host && port != 0).then(|| (host.to_owned(), port))
}

/// Syslog facilities (RFC 5424 §6.2.1), by their usual names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(u8);

const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

impl Facility {
    /// `auth` (4): security and authorization messages.
    pub const DEFAULT: Facility = Facility(4);

    /// The facility's number, 0 to 23.
    pub fn code(self) -> u8 {
        self.0
    }

    pub fn name(self) -> &'static str {
        FACILITIES[usize::from(self.0)]
    }
}

impl Default for Facility {
    fn default() -> Self {
        Facility::DEFAULT
    }
}

impl std::str::FromStr for Facility {
    type Err = String;

    fn from_str(text: &str) -> Result<Facility, String> {
        let lower = text.to_ascii_lowercase();
        FACILITIES
            .iter()
            .position(|name| *name == lower)
            .and_then(|i| u8::try_from(i).ok())
            .map(Facility)
            .ok_or_else(|| {
                format!(
                    "unknown syslog facility `{text}` (one of {})",
                    FACILITIES.join(", ")
                )
            })
    }
}

/// Audit forwarding as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSettings {
    pub destination: Destination,
    pub facility: Facility,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_or_say_why_not() {
        let ok = [
            (
                "udp://127.0.0.1:514",
                Destination::Udp {
                    host: "127.0.0.1".into(),
                    port: 514,
                },
            ),
            (
                "tcp://siem.example.net:6514",
                Destination::Tcp {
                    host: "siem.example.net".into(),
                    port: 6514,
                },
            ),
            (
                "udp://[::1]:5514",
                Destination::Udp {
                    host: "::1".into(),
                    port: 5514,
                },
            ),
            ("unix:/dev/log", Destination::Unix("/dev/log".into())),
            (
                "unix:///run/x.sock",
                Destination::Unix("/run/x.sock".into()),
            ),
        ];
        for (text, want) in ok {
            let got: Destination = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
            assert_eq!(
                got.to_string().replace("unix:///", "unix:/"),
                text.replace("unix:///", "unix:/")
            );
        }
        for (text, why) in [
            ("udp://host", "expected udp://"),
            ("udp://host:0", "expected udp://"),
            ("udp://host:99999", "expected udp://"),
            ("tls://host:6514", "unknown scheme `tls`"),
            ("unix:relative.sock", "must be absolute"),
            ("udp://a b:514", "expected udp://"),
            ("udp://::1:514", "expected udp://"),
            ("syslog.example.net:514", "expected udp://"),
        ] {
            let err = text.parse::<Destination>().expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn facilities_by_name() {
        for (name, code) in [
            ("kern", 0),
            ("auth", 4),
            ("AUTHPRIV", 10),
            ("local0", 16),
            ("local7", 23),
        ] {
            assert_eq!(
                name.parse::<Facility>().map(Facility::code),
                Ok(code),
                "{name}"
            );
        }
        assert_eq!(Facility::default().name(), "auth");
        let err = "local8".parse::<Facility>().expect_err("unknown");
        assert!(err.contains("local7"), "{err}");
    }
}
