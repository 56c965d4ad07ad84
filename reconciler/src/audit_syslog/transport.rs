//! The sockets audit messages leave through, the only module that knows them: UDP (one
//! datagram per message), TCP with octet-counting framing (`LEN SP MSG`, RFC 6587 §3.4.1),
//! and a local socket (datagram, or octet-counted frames on a stream socket).

use super::settings::Destination;
use std::io;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpStream, UdpSocket, UnixDatagram, UnixStream};

/// How long connecting (name lookup included) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one message may take to be written.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// An open way to the destination.
#[derive(Debug)]
pub enum Connection {
    Udp(UdpSocket),
    Tcp(TcpStream),
    UnixDatagram(UnixDatagram),
    UnixStream(UnixStream),
}

impl Connection {
    /// Opens a connection (for UDP: a socket connected to the first address that works).
    pub async fn open(destination: &Destination) -> io::Result<Connection> {
        tokio::time::timeout(CONNECT_TIMEOUT, open(destination))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"))?
    }

    /// Sends one message; `Ok` once the kernel took all of it.
    pub async fn send(&mut self, message: &str) -> io::Result<()> {
        tokio::time::timeout(SEND_TIMEOUT, self.send_inner(message.as_bytes()))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "sending timed out"))?
    }

    /// Whether the receiver closed a stream connection (syslog receivers never send, so
    /// end-of-file or an error on reading means closed); checked before each message, so a
    /// message is not written into a connection already known dead. Datagrams: never.
    pub fn is_closed(&self) -> bool {
        let mut buf = [0u8; 256];
        let read = match self {
            Connection::Tcp(stream) => stream.try_read(&mut buf),
            Connection::UnixStream(stream) => stream.try_read(&mut buf),
            Connection::Udp(_) | Connection::UnixDatagram(_) => return false,
        };
        match read {
            Ok(n) => n == 0,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        }
    }

    async fn send_inner(&mut self, message: &[u8]) -> io::Result<()> {
        match self {
            Connection::Udp(socket) => whole(socket.send(message).await?, message),
            Connection::UnixDatagram(socket) => whole(socket.send(message).await?, message),
            Connection::Tcp(stream) => write_frame(stream, message).await,
            Connection::UnixStream(stream) => write_frame(stream, message).await,
        }
    }
}

fn whole(sent: usize, message: &[u8]) -> io::Result<()> {
    if sent == message.len() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("only {sent} of {} bytes sent", message.len()),
        ))
    }
}

/// `LEN SP MSG`: octet counting, so messages may hold any byte, newlines included.
async fn write_frame<W: tokio::io::AsyncWrite + Unpin>(
    out: &mut W,
    message: &[u8],
) -> io::Result<()> {
    let mut frame = Vec::with_capacity(message.len() + 8);
    frame.extend_from_slice(message.len().to_string().as_bytes());
    frame.push(b' ');
    frame.extend_from_slice(message);
    out.write_all(&frame).await?;
    out.flush().await
}

async fn open(destination: &Destination) -> io::Result<Connection> {
    match destination {
        Destination::Udp { host, port } => {
            let mut last = None;
            for addr in tokio::net::lookup_host((host.as_str(), *port)).await? {
                let local: std::net::SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let socket = UdpSocket::bind(local).await?;
                match socket.connect(addr).await {
                    Ok(()) => return Ok(Connection::Udp(socket)),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| no_address(host)))
        }
        Destination::Tcp { host, port } => {
            let mut last = None;
            for addr in tokio::net::lookup_host((host.as_str(), *port)).await? {
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        stream.set_nodelay(true)?;
                        return Ok(Connection::Tcp(stream));
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| no_address(host)))
        }
        Destination::Unix(path) => {
            let socket = UnixDatagram::unbound()?;
            match socket.connect(path) {
                Ok(()) => Ok(Connection::UnixDatagram(socket)),
                // A stream socket (rsyslog's imptcp/imuxsock configured so, syslog-ng's
                // unix-stream()) refuses datagrams.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PROTOTYPE.raw_os_error()) => {
                    Ok(Connection::UnixStream(UnixStream::connect(path).await?))
                }
                Err(e) => Err(e),
            }
        }
    }
}

fn no_address(host: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("`{host}` resolves to no address"),
    )
}
