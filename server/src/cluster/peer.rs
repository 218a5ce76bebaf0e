//! A broker-to-broker connection on a shard: Kafka requests over the shard's own reactor, so a
//! follower's fetches never block its thread. Over the inter-broker listener's protocol: TLS
//! (the listener's truststore and keystore) and SASL (PLAIN or SCRAM with the listener's JAAS
//! `username`/`password`), as Kafka's brokers connect to each other.

use crate::config::BrokerConfig;
use crate::response::Part;
use crate::transport::Transport;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use ringlet_engine::runtime::io;
use std::io::{Error, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

pub struct PeerConn {
    /// Owns the descriptor the transport uses.
    _sock: socket2::Socket,
    transport: Transport,
    pub addr: SocketAddr,
    next_correlation: i32,
    client_id: StrBytes,
}

/// SASL credentials for connections to the other brokers.
#[derive(Debug)]
pub struct SaslClient {
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

/// How this broker connects to the others (`inter.broker.listener.name`'s protocol).
#[derive(Debug, Default)]
pub struct PeerSecurity {
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub sasl: Option<SaslClient>,
}

impl PeerSecurity {
    /// From the inter-broker listener's settings; an error names what is missing.
    pub fn from_config(config: &BrokerConfig, listener: Option<&str>) -> Result<Self, String> {
        let Some(name) = listener else {
            return Ok(PeerSecurity::default());
        };
        let spec = config
            .listeners
            .iter()
            .find(|l| l.name == name)
            .ok_or_else(|| format!("the inter-broker listener {name} is not in `listeners`"))?;
        let props = &config.properties;
        let prefix = format!("listener.name.{}.", name.to_lowercase());
        let get = |k: &str| {
            props
                .get(&format!("{prefix}{k}"))
                .or_else(|| props.get(k))
                .cloned()
        };
        let mut out = PeerSecurity::default();
        if spec.protocol.tls() {
            let ssl = spec
                .ssl
                .as_ref()
                .ok_or_else(|| format!("listener {name}: no TLS settings"))?;
            let verify = get("ssl.endpoint.identification.algorithm")
                .is_none_or(|v| v.trim().eq_ignore_ascii_case("https"));
            out.tls =
                Some(crate::tls::client_config(name, ssl, verify).map_err(|e| e.to_string())?);
        }
        if spec.protocol.sasl() {
            let mechanism = props
                .get("sasl.mechanism.inter.broker.protocol")
                .map(|m| m.trim().to_string())
                .or_else(|| spec.sasl_mechanisms.first().cloned())
                .unwrap_or_default();
            if !spec.sasl_mechanisms.contains(&mechanism) {
                return Err(format!("sasl.mechanism.inter.broker.protocol={mechanism} is not enabled on listener {name} ({:?})", spec.sasl_mechanisms));
            }
            let jaas = get(&format!("{}.sasl.jaas.config", mechanism.to_lowercase()))
                .or_else(|| get("sasl.jaas.config"))
                .unwrap_or_default();
            let opt = |k: &str| ringlet_client::security::jaas_option(&jaas, k);
            let (Some(username), Some(password)) = (opt("username"), opt("password")) else {
                return Err(format!("listener {name} carries inter-broker traffic over SASL: its {}{}.sasl.jaas.config needs username=\"...\" password=\"...\" for this broker", prefix, mechanism.to_lowercase()));
            };
            out.sasl = Some(SaslClient {
                mechanism,
                username,
                password,
            });
        }
        Ok(out)
    }
}

/// Runs `f` unless `timeout` passes first.
pub async fn with_timeout<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    use futures_util::future::{select, Either};
    let f = std::pin::pin!(f);
    let t = std::pin::pin!(io::sleep(timeout));
    match select(f, t).await {
        Either::Left((r, _)) => r,
        Either::Right(_) => Err(Error::new(ErrorKind::TimedOut, "timed out")),
    }
}

impl PeerConn {
    /// Connects to another broker at `addr` (advertised as `host`), with TLS and SASL as
    /// `security` says.
    pub async fn connect(
        addr: SocketAddr,
        host: &str,
        security: &PeerSecurity,
        timeout: Duration,
        client_id: &str,
    ) -> std::io::Result<PeerConn> {
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        sock.set_nonblocking(true)?;
        sock.set_nodelay(true)?;
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                with_timeout(timeout, io::poll_ready(sock.as_raw_fd(), libc::POLLOUT)).await?;
                if let Some(e) = sock.take_error()? {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        let fd = sock.as_raw_fd();
        let transport = match &security.tls {
            None => Transport::plain(fd),
            Some(config) => {
                let t = Transport::tls_client(fd, config.clone(), host)
                    .map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
                with_timeout(timeout, async {
                    t.handshake()
                        .await
                        .map_err(|e| Error::new(ErrorKind::PermissionDenied, e))
                })
                .await?;
                t
            }
        };
        let mut conn = PeerConn {
            _sock: sock,
            transport,
            addr,
            next_correlation: 1,
            client_id: StrBytes::from_string(client_id.to_string()),
        };
        if let Some(sasl) = &security.sasl {
            conn.authenticate(sasl, timeout).await?;
        }
        Ok(conn)
    }

    /// SaslHandshake v1 and SaslAuthenticate v2: PLAIN, or SCRAM's three messages.
    async fn authenticate(&mut self, s: &SaslClient, timeout: Duration) -> std::io::Result<()> {
        use kafka_protocol::messages::{
            SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
            SaslHandshakeResponse,
        };
        let refused = |m: String| Error::new(ErrorKind::PermissionDenied, m);
        let req = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(s.mechanism.clone()));
        let r: SaslHandshakeResponse = self.call(ApiKey::SaslHandshake, 1, &req, timeout).await?;
        if r.error_code != 0 {
            return Err(refused(format!(
                "the other broker refuses SASL mechanism {} ({})",
                s.mechanism,
                crate::error_code::name(r.error_code)
            )));
        }
        let mut scram = ringlet_client::scram::Mechanism::from_name(&s.mechanism)
            .map(|m| ringlet_client::scram::Client::new(m, &s.username, &s.password));
        let mut token = match &scram {
            None => format!("\0{}\0{}", s.username, s.password),
            Some(c) => c.first_message(),
        };
        for step in 0.. {
            let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
            let r: SaslAuthenticateResponse = self
                .call(ApiKey::SaslAuthenticate, 2, &req, timeout)
                .await?;
            if r.error_code != 0 {
                return Err(refused(format!(
                    "SASL authentication as {} failed: {}",
                    s.username,
                    r.error_message.map_or_else(String::new, |m| m.to_string())
                )));
            }
            let answer = String::from_utf8_lossy(&r.auth_bytes).into_owned();
            match (&mut scram, step) {
                (None, _) => return Ok(()),
                (Some(c), 0) => token = c.final_message(&answer).map_err(refused)?,
                (Some(c), _) => return c.verify_server(&answer).map_err(refused),
            }
        }
        Ok(())
    }

    /// One request, one response, within `timeout`.
    pub async fn call<R: Encodable + HeaderVersion, T: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
        timeout: Duration,
    ) -> std::io::Result<T> {
        let corr = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&[0, 0, 0, 0]);
        let bad = |e: anyhow::Error| Error::new(ErrorKind::InvalidData, e.to_string());
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(self.client_id.clone()))
            .encode(&mut buf, R::header_version(version))
            .map_err(bad)?;
        req.encode(&mut buf, version).map_err(bad)?;
        let len = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        let transport = &self.transport;
        with_timeout(timeout, async move {
            let mut pipe = None;
            transport
                .write_parts(vec![Part::Bytes(buf.freeze())], &mut pipe, false)
                .await?;
            let mut frame: Vec<u8> = Vec::with_capacity(64 * 1024);
            if !transport.fill(&mut frame, 4).await {
                return Err(Error::new(ErrorKind::UnexpectedEof, "peer closed"));
            }
            let size = i32::from_be_bytes(frame[0..4].try_into().expect("4 bytes"));
            if !(4..=1 << 30).contains(&size) {
                return Err(Error::new(ErrorKind::InvalidData, "bad response size"));
            }
            let need = 4 + size as usize;
            frame.reserve(need.saturating_sub(frame.len()));
            if !transport.fill(&mut frame, need).await {
                return Err(Error::new(ErrorKind::UnexpectedEof, "peer closed"));
            }
            let mut body = Bytes::from(frame).slice(4..need);
            let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
                .map_err(bad)?;
            if header.correlation_id != corr {
                return Err(Error::new(
                    ErrorKind::InvalidData,
                    "correlation id mismatch",
                ));
            }
            T::decode(&mut body, version).map_err(bad)
        })
        .await
    }
}
