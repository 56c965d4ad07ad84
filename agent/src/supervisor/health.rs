//! Health probes of the built-in supervisor: an HTTP/1.1 `GET` (2xx or 3xx passes), a TCP
//! connect, or a command (exit 0 passes), each bounded by the check's timeout.

use state::Probe;
use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Largest HTTP response head read.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Runs one probe; `Err` says why it failed.
pub fn probe(probe: &Probe, timeout: Duration) -> Result<(), String> {
    match probe {
        Probe::Http { url } => http_get(url, timeout),
        Probe::Tcp { address } => connect(address, timeout).map(drop),
        Probe::Exec { command } => exec(command, timeout),
    }
}

fn connect(address: &str, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<_> = address
        .to_socket_addrs()
        .map_err(|e| format!("tcp {address}: {e}"))?
        .collect();
    let mut last = format!("tcp {address}: no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("tcp {address}: {e}"),
        }
    }
    Err(last)
}

/// `http://host[:port][/path]` -> (authority, host:port, path).
fn parse_http_url(url: &str) -> Result<(String, String, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        if url.starts_with("https://") {
            format!("{url}: https probes are not supported by the built-in supervisor")
        } else {
            format!("{url}: not an http:// URL")
        }
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{url}: bad host"));
    }
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let address = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority.to_owned(), address, path.to_owned()))
}

fn http_get(url: &str, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    let (authority, address, path) = parse_http_url(url)?;
    let mut stream = connect(&address, timeout).map_err(|e| format!("GET {url}: {e}"))?;
    let left = timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    let io = |e: std::io::Error| format!("GET {url}: {e}");
    stream.set_read_timeout(Some(left)).map_err(io)?;
    stream.set_write_timeout(Some(left)).map_err(io)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: centossrv-agent\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        if head.len() > MAX_HEAD_BYTES {
            return Err(format!("GET {url}: response head too large"));
        }
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("GET {url}: no HTTP status line"));
    };
    if !version.starts_with("HTTP/") {
        return Err(format!("GET {url}: not an HTTP response"));
    }
    match code.parse::<u16>() {
        Ok(c) if (200..400).contains(&c) => Ok(()),
        Ok(c) => Err(format!("GET {url}: HTTP {c}")),
        Err(_) => Err(format!("GET {url}: bad status `{code}`")),
    }
}

fn exec(command: &[String], timeout: Duration) -> Result<(), String> {
    let Some((program, args)) = command.split_first() else {
        return Err("exec probe without a command".to_owned());
    };
    let shown = command.join(" ");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("exec `{shown}`: {e}"))?;
    let deadline = Instant::now() + timeout;
    // Probes are short: poll the child at a modest rate until it ends or times out.
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("exec `{shown}`: {status}")),
            Ok(None) if Instant::now() >= deadline => {
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.wait();
                return Err(format!("exec `{shown}`: timed out after {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("exec `{shown}`: {e}")),
        }
    }
}

use std::os::unix::process::CommandExt as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:8080/healthz").expect("ok"),
            (
                "127.0.0.1:8080".into(),
                "127.0.0.1:8080".into(),
                "/healthz".into()
            )
        );
        assert_eq!(
            parse_http_url("http://localhost").expect("ok").1,
            "localhost:80"
        );
        assert!(
            parse_http_url("https://x/")
                .expect_err("https")
                .contains("not supported")
        );
    }

    #[test]
    fn exec_probes_pass_fail_and_time_out() {
        let t = Duration::from_secs(5);
        assert!(exec(&["true".into()], t).is_ok());
        let e = exec(&["false".into()], t).expect_err("fails");
        assert!(e.contains("exit status: 1"), "{e}");
        let e =
            exec(&["sleep".into(), "5".into()], Duration::from_millis(100)).expect_err("times out");
        assert!(e.contains("timed out"), "{e}");
    }

    #[test]
    fn tcp_and_http_probes_against_a_local_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            for code in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().expect("accept");
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ =
                    s.write_all(format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n").as_bytes());
            }
        });
        let t = Duration::from_secs(5);
        assert!(http_get(&format!("http://{addr}/"), t).is_ok());
        let e = http_get(&format!("http://{addr}/"), t).expect_err("503");
        assert!(e.contains("HTTP 503"), "{e}");
        server.join().expect("server");
        // Nothing listens there any more.
        assert!(
            probe(
                &Probe::Tcp {
                    address: addr.to_string()
                },
                t
            )
            .is_err()
        );
    }
}
