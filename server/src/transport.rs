//! A connection's byte stream: the socket itself, or TLS (rustls) over it. The reader and the
//! writer task of a connection share one `Transport`; under TLS they take turns on the socket's
//! write side (the reader writes during the handshake and for alerts and key updates), so TLS
//! records never interleave.
//!
//! Plaintext fetches splice file bytes to the socket; under TLS the file regions are read into
//! memory and encrypted (kernel TLS, which would keep splice, is not implemented).

use crate::response::{self, Part};
use bytes::Bytes;
use ringlet_engine::runtime::io;
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

/// Bytes received per read (and the connection's initial read buffer).
pub(crate) const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Ciphertext gathered before one send.
const TLS_SEND_BYTES: usize = 256 * 1024;

pub struct Transport {
    fd: RawFd,
    tls: Option<Tls>,
}

struct Tls {
    /// A client's connection to this broker, or this broker's to another (replication).
    conn: RefCell<rustls::Connection>,
    /// Ciphertext receive buffer, reused.
    rx: Cell<Vec<u8>>,
    /// Application data that arrived with the end of the handshake.
    early: Cell<Vec<u8>>,
    writing: Cell<bool>,
    waiters: RefCell<Vec<std::task::Waker>>,
}

/// Holds the TLS write side until dropped.
struct WriteTurn<'a>(&'a Tls);

impl Drop for WriteTurn<'_> {
    fn drop(&mut self) {
        self.0.writing.set(false);
        for w in self.0.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

impl Tls {
    async fn turn(&self) -> WriteTurn<'_> {
        std::future::poll_fn(|cx| {
            if self.writing.get() {
                self.waiters.borrow_mut().push(cx.waker().clone());
                std::task::Poll::Pending
            } else {
                self.writing.set(true);
                std::task::Poll::Ready(())
            }
        })
        .await;
        WriteTurn(self)
    }

    /// Moves decrypted bytes into `buf`; false once the peer closed the TLS session.
    fn read_plain(&self, buf: &mut Vec<u8>) -> bool {
        let mut c = self.conn.borrow_mut();
        let mut tmp = [0u8; 16 * 1024];
        loop {
            match c.reader().read(&mut tmp) {
                Ok(0) => return false,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }

    /// Takes the ciphertext rustls has queued.
    fn take_out(&self, out: &mut Vec<u8>) {
        let mut c = self.conn.borrow_mut();
        while c.wants_write() {
            if c.write_tls(out).is_err() {
                break;
            }
        }
    }
}

impl Transport {
    pub fn plain(fd: RawFd) -> Transport {
        Transport { fd, tls: None }
    }

    pub fn tls(fd: RawFd, config: Arc<rustls::ServerConfig>) -> Result<Transport, String> {
        let conn = rustls::ServerConnection::new(config).map_err(|e| format!("TLS: {e}"))?;
        Ok(Self::over(fd, conn.into()))
    }

    /// The client side of TLS, to `server` (a follower's connection to its leader).
    pub fn tls_client(
        fd: RawFd,
        config: Arc<rustls::ClientConfig>,
        server: &str,
    ) -> Result<Transport, String> {
        let name = rustls_pki_types::ServerName::try_from(server.to_string())
            .map_err(|e| format!("TLS server name {server}: {e}"))?;
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| format!("TLS: {e}"))?;
        Ok(Self::over(fd, conn.into()))
    }

    fn over(fd: RawFd, conn: rustls::Connection) -> Transport {
        Transport {
            fd,
            tls: Some(Tls {
                conn: RefCell::new(conn),
                rx: Cell::new(Vec::with_capacity(READ_BUFFER_BYTES)),
                early: Cell::new(Vec::new()),
                writing: Cell::new(false),
                waiters: RefCell::new(Vec::new()),
            }),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Runs the TLS handshake; returns the verified client certificate's subject, if any.
    pub async fn handshake(&self) -> Result<Option<String>, String> {
        let Some(t) = &self.tls else { return Ok(None) };
        while t.conn.borrow().is_handshaking() {
            self.flush_tls(t)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            if !t.conn.borrow().is_handshaking() {
                break;
            }
            let mut early = t.early.take();
            let r = self.receive_tls(t, &mut early).await;
            t.early.set(early);
            match r {
                Ok(true) => {}
                Ok(false) => {
                    return Err("the client closed the connection during the TLS handshake".into())
                }
                Err(e) => return Err(e),
            }
        }
        self.flush_tls(t)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        Ok(match &*t.conn.borrow() {
            rustls::Connection::Server(c) => crate::tls::client_principal(c),
            rustls::Connection::Client(_) => None,
        })
    }

    /// Receives ciphertext once and decrypts what it completes into `plain`; false on EOF.
    async fn receive_tls(&self, t: &Tls, plain: &mut Vec<u8>) -> Result<bool, String> {
        let mut rx = t.rx.take();
        rx.clear();
        if rx.capacity() < READ_BUFFER_BYTES {
            rx.reserve(READ_BUFFER_BYTES);
        }
        let (res, rx) = io::recv(self.fd, rx).await;
        let n = match res {
            Ok(0) => {
                t.rx.set(rx);
                return Ok(false);
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => {
                t.rx.set(rx);
                return Err(format!("receive failed: {e}"));
            }
        };
        let mut slice = &rx[..n];
        let mut failure = None;
        while !slice.is_empty() {
            let r = {
                let mut c = t.conn.borrow_mut();
                c.read_tls(&mut slice)
                    .map_err(|e| e.to_string())
                    .and_then(|_| {
                        c.process_new_packets()
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    })
            };
            if let Err(e) = r {
                failure = Some(e);
                break;
            }
            if !t.read_plain(plain) {
                break;
            }
        }
        t.rx.set(rx);
        // Handshake messages, alerts, key updates.
        let _ = self.flush_tls(t).await;
        match failure {
            Some(e) => Err(format!("TLS error: {e}")),
            None => Ok(true),
        }
    }

    async fn flush_tls(&self, t: &Tls) -> std::io::Result<()> {
        let _turn = t.turn().await;
        loop {
            let mut out = Vec::new();
            t.take_out(&mut out);
            if out.is_empty() {
                return Ok(());
            }
            io::write_all(self.fd, vec![Bytes::from(out)], None).await?;
        }
    }

    /// Reads until `buf` holds at least `want` bytes of plaintext; false on EOF or error.
    pub async fn fill(&self, buf: &mut Vec<u8>, want: usize) -> bool {
        match &self.tls {
            None => fill_plain(self.fd, buf, want).await,
            Some(t) => {
                let early = t.early.take();
                if !early.is_empty() {
                    buf.extend_from_slice(&early);
                }
                while buf.len() < want {
                    if !t.read_plain(buf) {
                        return false;
                    }
                    if buf.len() >= want {
                        break;
                    }
                    match self.receive_tls(t, buf).await {
                        Ok(true) => {}
                        Ok(false) => return false,
                        Err(e) => {
                            tracing::warn!(fd = self.fd, error = %e, "closing TLS connection");
                            return false;
                        }
                    }
                }
                true
            }
        }
    }

    /// Sends a response: plaintext as `response::write_parts` does; under TLS every part
    /// (file regions read into memory first) is encrypted and sent in large records.
    pub async fn write_parts(
        &self,
        parts: Vec<Part>,
        pipe: &mut Option<io::SplicePipe>,
        send_zc: bool,
    ) -> std::io::Result<()> {
        let Some(t) = &self.tls else {
            return response::write_parts(self.fd, parts, pipe, send_zc).await;
        };
        let _turn = t.turn().await;
        let mut out = Vec::with_capacity(TLS_SEND_BYTES + 32 * 1024);
        for part in parts {
            let data: Bytes = match part {
                Part::Bytes(b) => b,
                Part::Many(v) => Bytes::from(v.concat()),
                Part::File {
                    file,
                    position,
                    len,
                } => Bytes::from(io::read_at(file.as_raw_fd(), position, len).await?),
            };
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = t.conn.borrow_mut().writer().write(rest)?;
                rest = &rest[n..];
                t.take_out(&mut out);
                if out.len() >= TLS_SEND_BYTES || n == 0 {
                    io::write_all(self.fd, vec![Bytes::from(std::mem::take(&mut out))], None)
                        .await?;
                    out.reserve(TLS_SEND_BYTES);
                }
            }
        }
        t.take_out(&mut out);
        if !out.is_empty() {
            io::write_all(self.fd, vec![Bytes::from(out)], None).await?;
        }
        Ok(())
    }
}

/// Reads until `buf` holds at least `want` bytes; false on EOF or error.
async fn fill_plain(fd: i32, buf: &mut Vec<u8>, want: usize) -> bool {
    while buf.len() < want {
        if buf.capacity() == buf.len() {
            buf.reserve(READ_BUFFER_BYTES);
        }
        let (res, b) = io::recv(fd, std::mem::take(buf)).await;
        *buf = b;
        match res {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}
