//! A broker-to-broker connection on a shard: Kafka requests over the shard's own reactor, so a
//! follower's fetches never block its thread.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use ringlet_engine::runtime::io;
use std::io::{Error, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

pub struct PeerConn {
    sock: socket2::Socket,
    pub addr: SocketAddr,
    next_correlation: i32,
    client_id: StrBytes,
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
    pub async fn connect(
        addr: SocketAddr,
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
        Ok(PeerConn {
            sock,
            addr,
            next_correlation: 1,
            client_id: StrBytes::from_string(client_id.to_string()),
        })
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
        let fd = self.sock.as_raw_fd();
        with_timeout(timeout, async move {
            io::write_all(fd, vec![buf.freeze()], None).await?;
            let mut frame: Vec<u8> = Vec::with_capacity(64 * 1024);
            let mut need = 4usize;
            let mut have_len = false;
            loop {
                while frame.len() < need {
                    if frame.capacity() == frame.len() {
                        frame.reserve(need - frame.len());
                    }
                    let (r, b) = io::recv(fd, frame).await;
                    frame = b;
                    if r? == 0 {
                        return Err(Error::new(ErrorKind::UnexpectedEof, "peer closed"));
                    }
                }
                if have_len {
                    break;
                }
                let size = i32::from_be_bytes(frame[0..4].try_into().expect("4 bytes"));
                if !(4..=1 << 30).contains(&size) {
                    return Err(Error::new(ErrorKind::InvalidData, "bad response size"));
                }
                need = 4 + size as usize;
                have_len = true;
                frame.reserve(need.saturating_sub(frame.capacity()));
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
