//! A small blocking Kafka client: one TCP connection, requests encoded with `kafka-protocol`,
//! responses read in order. Enough for the load generator's metadata, admin, produce and fetch.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::security::Security;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("broker error {name} ({code}): {context}")]
    Broker {
        code: i16,
        name: &'static str,
        context: String,
    },
}

pub use crate::errors::error_name;

/// The connection's byte stream: TCP, or TLS over TCP.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

pub struct Conn {
    stream: Stream,
    addr: String,
    next_correlation_id: i32,
    client_id: StrBytes,
    /// The previous response's whole frame: its allocation is reused for the next one once the
    /// caller dropped every slice of it (a fresh multi-MB allocation per fetch response cost a
    /// page fault per 4 KiB).
    prev: Option<Bytes>,
}

impl Conn {
    /// Connects as the process's default security says (plaintext unless a tool's
    /// `--command-config` set one: see [`crate::security::set_default`]).
    pub fn connect(addr: &str) -> Result<Conn, ClientError> {
        Conn::connect_with(addr, &crate::security::default_security())
    }

    /// Connects, then (per `security`) runs the TLS handshake and SASL authentication.
    pub fn connect_with(addr: &str, security: &Security) -> Result<Conn, ClientError> {
        let tcp = TcpStream::connect(addr).map_err(|source| ClientError::Io {
            addr: addr.into(),
            source,
        })?;
        tcp.set_nodelay(true).ok();
        let stream = if security.protocol.tls() {
            let config = security.tls_config().map_err(ClientError::Protocol)?;
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = rustls_pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| ClientError::Protocol(format!("server name {host:?}: {e}")))?;
            let tls = rustls::ClientConnection::new(config, name)
                .map_err(|e| ClientError::Protocol(format!("TLS: {e}")))?;
            let mut s = rustls::StreamOwned::new(tls, tcp);
            while s.conn.is_handshaking() {
                s.conn
                    .complete_io(&mut s.sock)
                    .map_err(|source| ClientError::Io {
                        addr: addr.into(),
                        source,
                    })?;
            }
            Stream::Tls(Box::new(s))
        } else {
            Stream::Plain(tcp)
        };
        let mut conn = Conn {
            stream,
            addr: addr.into(),
            next_correlation_id: 1,
            client_id: StrBytes::from_static_str("ringlet-loadgen"),
            prev: None,
        };
        if security.protocol.sasl() {
            conn.authenticate(security)?;
        }
        Ok(conn)
    }

    /// SaslHandshake v1, then SaslAuthenticate rounds for PLAIN or SCRAM.
    fn authenticate(&mut self, s: &Security) -> Result<(), ClientError> {
        use kafka_protocol::messages::{
            SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
            SaslHandshakeResponse,
        };
        let req = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(s.mechanism.clone()));
        let r: SaslHandshakeResponse = self.call(ApiKey::SaslHandshake, 1, &req)?;
        if r.error_code != 0 {
            return Err(ClientError::Broker {
                code: r.error_code,
                name: error_name(r.error_code),
                context: format!(
                    "SASL mechanism {} (the broker enables {:?})",
                    s.mechanism,
                    r.mechanisms.iter().map(|m| m.as_str()).collect::<Vec<_>>()
                ),
            });
        }
        let round = |conn: &mut Conn, token: Vec<u8>| -> Result<Bytes, ClientError> {
            let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
            let r: SaslAuthenticateResponse = conn.call(ApiKey::SaslAuthenticate, 2, &req)?;
            if r.error_code != 0 {
                return Err(ClientError::Broker {
                    code: r.error_code,
                    name: error_name(r.error_code),
                    context: r.error_message.map_or_else(String::new, |m| m.to_string()),
                });
            }
            Ok(r.auth_bytes)
        };
        match crate::scram::Mechanism::from_name(&s.mechanism) {
            None => {
                let token = format!("\0{}\0{}", s.username, s.password);
                round(self, token.into_bytes())?;
            }
            Some(m) => {
                let mut c = crate::scram::Client::new(m, &s.username, &s.password);
                let server_first = round(self, c.first_message().into_bytes())?;
                let server_first = String::from_utf8_lossy(&server_first).into_owned();
                let last = c
                    .final_message(&server_first)
                    .map_err(ClientError::Protocol)?;
                let server_final = round(self, last.into_bytes())?;
                c.verify_server(&String::from_utf8_lossy(&server_final))
                    .map_err(ClientError::Protocol)?;
            }
        }
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    /// A second handle on the same socket, for a reader thread.
    pub fn try_clone(&self) -> Result<Conn, ClientError> {
        let Stream::Plain(s) = &self.stream else {
            return Err(ClientError::Protocol(
                "a TLS connection cannot be shared by two threads".into(),
            ));
        };
        Ok(Conn {
            stream: Stream::Plain(s.try_clone().map_err(|e| self.io(e))?),
            addr: self.addr.clone(),
            next_correlation_id: self.next_correlation_id,
            client_id: self.client_id.clone(),
            prev: None,
        })
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) {
        self.stream.tcp().set_read_timeout(t).ok();
    }

    /// Encodes and sends one request; returns its correlation id.
    pub fn send<R: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> Result<i32, ClientError> {
        let corr = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&[0, 0, 0, 0]);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(self.client_id.clone()));
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        req.encode(&mut buf, version)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let len = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&buf).map_err(|e| self.io(e))?;
        Ok(corr)
    }

    /// Reads the next response frame; returns its correlation id and body.
    pub fn recv_frame(&mut self, key: ApiKey, version: i16) -> Result<(i32, Bytes), ClientError> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(|e| self.io(e))?;
        let size = i32::from_be_bytes(size);
        if !(4..=1 << 30).contains(&size) {
            return Err(ClientError::Protocol(format!("response size {size}")));
        }
        let mut buf: Vec<u8> = match self.prev.take().map(Bytes::try_into_mut) {
            Some(Ok(reclaimed)) => Vec::from(reclaimed),
            _ => Vec::new(),
        };
        buf.clear();
        buf.reserve(size as usize);
        // read_to_end fills the spare capacity without zeroing it first.
        let read = (&mut self.stream)
            .take(size as u64)
            .read_to_end(&mut buf)
            .map_err(|e| self.io(e))?;
        if read != size as usize {
            return Err(self.io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let mut body = Bytes::from(buf);
        self.prev = Some(body.clone());
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok((header.correlation_id, body))
    }

    pub fn recv<T: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
    ) -> Result<(i32, T), ClientError> {
        let (corr, mut body) = self.recv_frame(key, version)?;
        let t = T::decode(&mut body, version)
            .map_err(|e| ClientError::Protocol(format!("{key:?} v{version}: {e}")))?;
        if body.has_remaining() {
            tracing::debug!(?key, left = body.remaining(), "trailing bytes in response");
        }
        Ok((corr, t))
    }

    /// One request, one response.
    pub fn call<R: Encodable + HeaderVersion, T: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> Result<T, ClientError> {
        let corr = self.send(key, version, req)?;
        let (got, resp) = self.recv(key, version)?;
        if got != corr {
            return Err(ClientError::Protocol(format!(
                "correlation id {got}, expected {corr}"
            )));
        }
        Ok(resp)
    }
}

/// Versions the generator speaks: old enough for every maintained broker, new enough for record
/// batch v2.
pub const PRODUCE_VERSION: i16 = 7;
pub const FETCH_VERSION: i16 = 11;
pub const METADATA_VERSION: i16 = 8;
pub const LIST_OFFSETS_VERSION: i16 = 4;
pub const CREATE_TOPICS_VERSION: i16 = 4;
