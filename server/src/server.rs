//! The network side of a shard: its `SO_REUSEPORT` listener, connections, request framing and
//! back-pressure, plus the shard's maintenance tasks (retention, time-based flush) and shutdown.

use crate::broker::Broker;
use crate::coordinator;
use crate::handlers;
use crate::metrics;
use crate::security::Session;
use crate::transport::{Transport, READ_BUFFER_BYTES};
use bytes::Bytes;
use ringlet_engine::runtime::{self, io};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Produce requests one connection may have queued but not yet answered. Every other request is
/// handled alone (after the responses before it were sent), as Kafka does; produce requests are
/// pipelined so that one producer's in-flight requests can share a group commit. Responses always
/// leave in request order.
const PIPELINED_PRODUCE_MAX: usize = 16;

/// Binds `host:port` once without `SO_REUSEPORT` and lets it go: fails with EADDRINUSE when
/// another process (say, a second broker) holds the port, which the `SO_REUSEPORT` binds of the
/// shard listeners would otherwise share silently.
pub fn ensure_free(host: &str, port: u16) -> std::io::Result<()> {
    let s = bind_socket(host, port, false)?;
    drop(s);
    Ok(())
}

/// A non-blocking listening socket with `SO_REUSEPORT`, one per shard.
pub fn bind_listener(host: &str, port: u16) -> std::io::Result<Socket> {
    bind_socket(host, port, true)
}

pub fn bind_socket(host: &str, port: u16, reuse_port: bool) -> std::io::Result<Socket> {
    let ip: std::net::IpAddr = if host.is_empty() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        match host.parse() {
            Ok(ip) => ip,
            Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
                .next()
                .map(|a| a.ip())
                .ok_or_else(|| std::io::Error::other(format!("cannot resolve {host}")))?,
        }
    };
    let addr = std::net::SocketAddr::new(ip, port);
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(reuse_port)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s)
}

/// The main task of one shard: open its partitions, serve until shutdown, close its logs.
pub async fn shard_main(
    broker: Arc<Broker>,
    listeners: Vec<Socket>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let shard = runtime::shard_id();
    if broker.cluster.is_some() {
        crate::cluster::replica::set_clustered();
        coordinator::follow_leadership(broker.clone());
        crate::txn::follow_leadership(broker.config.transactions.state_log_num_partitions);
        crate::share::follow_leadership();
    }
    match broker.open_local_partitions() {
        Ok(n) => {
            // In a cluster, groups are loaded when this broker becomes an offsets leader.
            let offsets = if broker.cluster.is_none() {
                let txns = crate::txn::load_local().await;
                if txns > 0 {
                    tracing::info!(shard, records = txns, "transaction state loaded");
                }
                coordinator::load_local(&broker).await
            } else {
                0
            };
            tracing::info!(shard, partitions = n, committed_offsets_loaded = offsets, backend = ?runtime::backend_kind(), "shard started");
            let _ = ready.send(Ok(()));
        }
        Err(e) => {
            let _ = ready.send(Err(format!("shard {shard}: {e}")));
            return;
        }
    }
    let accept_tasks: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(index, listener)| {
            let broker = broker.clone();
            let listener = Rc::new(listener);
            runtime::spawn(async move { accept_loop(broker, listener, index).await })
        })
        .collect();
    let reaper = {
        let broker = broker.clone();
        runtime::spawn(async move { idle_reaper(broker).await })
    };
    let coordinator_ticks = {
        let broker = broker.clone();
        runtime::spawn(async move { coordinator::tick_loop(broker).await })
    };
    let txn_ticks = {
        let broker = broker.clone();
        runtime::spawn(async move { crate::txn::tick_loop(broker).await })
    };
    let replication = broker.cluster.clone().map(|c| {
        let maintenance =
            runtime::spawn(async move { crate::cluster::replica::maintenance_loop(c).await });
        let reconciler = (shard == 0).then(|| {
            let b = broker.clone();
            runtime::spawn(async move { crate::broker::reconcile::reconcile_loop(b).await })
        });
        (maintenance, reconciler)
    });
    if shard == 0
        && broker.cluster.is_none()
        && broker.owner(coordinator::OFFSETS_TOPIC, 0).is_none()
    {
        let broker = broker.clone();
        runtime::spawn(async move {
            let n = broker.config.offsets_topic_num_partitions;
            if let Err((code, msg)) = broker.create_topic(coordinator::OFFSETS_TOPIC, n, 1, coordinator::offsets_topic_configs(), false).await {
                tracing::error!(error = crate::error_code::name(code), %msg, "cannot create the offsets topic");
            }
        })
        .detach();
    }
    let maintenance = {
        let broker = broker.clone();
        runtime::spawn(async move { maintenance_loop(broker).await })
    };
    broker
        .shutdown_begun
        .wait_until(|| broker.shutting_down.load(Ordering::Acquire))
        .await;
    drop(accept_tasks);
    drop(replication);
    drop(maintenance);
    drop(coordinator_ticks);
    drop(txn_ticks);
    drop(reaper);
    // Let in-flight requests finish (bounded), then close the logs.
    let drained = broker
        .request_finished
        .wait_until(|| broker.requests_in_flight.load(Ordering::Acquire) == 0);
    let bound = io::sleep(Duration::from_secs(10));
    futures_util::future::select(std::pin::pin!(drained), std::pin::pin!(bound)).await;
    let (_, failed) = ringlet_engine::log_manager::close_all();
    for (tp, e) in &failed {
        tracing::error!(partition = %tp, error = %e, "closing log failed");
    }
    if !failed.is_empty() {
        broker.unclean.store(true, Ordering::Release);
    }
    tracing::info!(shard, "shard stopped");
}

async fn accept_loop(broker: Arc<Broker>, listener: Rc<Socket>, index: usize) {
    loop {
        let sock = match io::accept(listener.as_raw_fd()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                io::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let n = broker.connections.fetch_add(1, Ordering::AcqRel);
        if n >= broker.config.max_connections {
            broker.connections.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(
                max = broker.config.max_connections,
                "max.connections reached; closing new connection"
            );
            continue;
        }
        let ip = SockRef::from(&sock)
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.ip());
        if let Some(ip) = ip {
            if !admit_ip(&broker, ip) {
                broker.connections.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            // KIP-612: connection_creation_rate of the address (or the ip default).
            if !broker.quotas.admit_connection(ip) {
                tracing::warn!(%ip, "connection_creation_rate quota exceeded; closing new connection");
                release_ip(&broker, ip);
                broker.connections.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
        }
        configure_socket(&broker, &sock);
        let broker = broker.clone();
        runtime::spawn(async move {
            let sock = Rc::new(sock);
            let _watched = Watched::new(&sock);
            serve_connection(&broker, &sock, index).await;
            broker.connections.fetch_sub(1, Ordering::AcqRel);
            if let Some(ip) = ip {
                release_ip(&broker, ip);
            }
        })
        .detach();
    }
}

/// Counts a new connection from `ip` against `max.connections.per.ip` (and its overrides);
/// false (and a log line) when the address is at its limit.
fn admit_ip(broker: &Broker, ip: std::net::IpAddr) -> bool {
    let limit = broker
        .config
        .max_connections_per_ip_overrides
        .get(&ip)
        .copied()
        .unwrap_or(broker.config.max_connections_per_ip);
    let mut per_ip = broker.connections_per_ip.lock().expect("per-ip counts");
    let n = per_ip.entry(ip).or_insert(0);
    if *n >= limit {
        tracing::warn!(%ip, max = limit, "max.connections.per.ip reached; closing new connection");
        return false;
    }
    *n += 1;
    true
}

fn release_ip(broker: &Broker, ip: std::net::IpAddr) {
    let mut per_ip = broker.connections_per_ip.lock().expect("per-ip counts");
    if let Some(n) = per_ip.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            per_ip.remove(&ip);
        }
    }
}

/// What the idle reaper knows of one connection on this shard.
struct Activity {
    sock: Rc<OwnedFd>,
    /// When the connection last finished a response (or was accepted).
    since: Cell<Instant>,
    /// A request is being processed: never idle then (a fetch may wait on purpose).
    busy: Cell<bool>,
}

thread_local! {
    static CONNECTIONS: RefCell<HashMap<RawFd, Rc<Activity>>> = RefCell::new(HashMap::new());
}

/// Registers a connection with the idle reaper for as long as it lives.
struct Watched(RawFd);

impl Watched {
    fn new(sock: &Rc<OwnedFd>) -> Watched {
        let fd = sock.as_raw_fd();
        CONNECTIONS.with(|c| {
            c.borrow_mut().insert(
                fd,
                Rc::new(Activity {
                    sock: sock.clone(),
                    since: Cell::new(Instant::now()),
                    busy: Cell::new(false),
                }),
            )
        });
        Watched(fd)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        CONNECTIONS.with(|c| c.borrow_mut().remove(&self.0));
    }
}

fn activity(fd: RawFd) -> Option<Rc<Activity>> {
    CONNECTIONS.with(|c| c.borrow().get(&fd).cloned())
}

/// Closes connections idle for `connections.max.idle.ms` between requests, or that took that long
/// to send one request since their previous response (a slow-loris trickle counts as idle). The
/// socket is shut down, which ends the connection's pending receive.
async fn idle_reaper(broker: Arc<Broker>) {
    let max_idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let period = (max_idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        io::sleep(period).await;
        let now = Instant::now();
        let stale: Vec<Rc<Activity>> = CONNECTIONS.with(|c| {
            c.borrow()
                .values()
                .filter(|a| !a.busy.get() && now.duration_since(a.since.get()) >= max_idle)
                .cloned()
                .collect()
        });
        for a in stale {
            tracing::info!(peer = %peer(&a.sock), idle_ms = now.duration_since(a.since.get()).as_millis() as u64, "connections.max.idle.ms passed without a complete request; closing connection");
            let _ = SockRef::from(&*a.sock).shutdown(std::net::Shutdown::Both);
            // Count it once: the connection task removes it when it ends.
            a.since.set(now);
        }
    }
}

fn configure_socket(broker: &Broker, sock: &OwnedFd) {
    let s = SockRef::from(sock);
    let _ = s.set_nodelay(true);
    if broker.config.socket_send_buffer_bytes > 0 {
        let _ = s.set_send_buffer_size(broker.config.socket_send_buffer_bytes as usize);
    }
    if broker.config.socket_receive_buffer_bytes > 0 {
        let _ = s.set_recv_buffer_size(broker.config.socket_receive_buffer_bytes as usize);
    }
}

fn peer(sock: &OwnedFd) -> String {
    SockRef::from(sock)
        .peer_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or_else(|| "?".into(), |a| a.to_string())
}

/// The responses of one connection's requests that are started but not yet sent, oldest first,
/// shared by the connection's reader and its writer task.
#[derive(Default)]
struct Pipeline {
    queue: RefCell<std::collections::VecDeque<(i16, Instant, handlers::Pending)>>,
    /// Requests started and not yet answered (queued or being written).
    outstanding: Cell<usize>,
    /// The reader is done: the writer exits once the queue is empty.
    closed: Cell<bool>,
    /// A response could not be written: the connection is closing.
    failed: Cell<bool>,
    writer_waker: RefCell<Option<std::task::Waker>>,
    reader_waker: RefCell<Option<std::task::Waker>>,
}

impl Pipeline {
    fn wake(slot: &RefCell<Option<std::task::Waker>>) {
        if let Some(w) = slot.borrow_mut().take() {
            w.wake();
        }
    }

    fn push(&self, api_key: i16, arrived: Instant, pending: handlers::Pending) {
        self.outstanding.set(self.outstanding.get() + 1);
        self.queue
            .borrow_mut()
            .push_back((api_key, arrived, pending));
        Pipeline::wake(&self.writer_waker);
    }

    /// Waits until at most `n` requests are outstanding (or the writer failed).
    async fn at_most(&self, n: usize) {
        std::future::poll_fn(|cx| {
            if self.outstanding.get() <= n || self.failed.get() {
                std::task::Poll::Ready(())
            } else {
                *self.reader_waker.borrow_mut() = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await
    }

    async fn next(&self) -> Option<(i16, Instant, handlers::Pending)> {
        std::future::poll_fn(|cx| {
            if let Some(item) = self.queue.borrow_mut().pop_front() {
                std::task::Poll::Ready(Some(item))
            } else if self.closed.get() {
                std::task::Poll::Ready(None)
            } else {
                *self.writer_waker.borrow_mut() = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await
    }
}

/// Sends the connection's responses in request order. After a failed write it still waits for
/// every started request (their appends are queued) but sends nothing more, and shuts the socket
/// down so that the reader stops too.
async fn write_responses(
    broker: Arc<Broker>,
    sock: Rc<OwnedFd>,
    transport: Rc<Transport>,
    p: Rc<Pipeline>,
) {
    let fd = sock.as_raw_fd();
    let mut pipe = None;
    let act = activity(fd);
    while let Some((api_key, arrived, pending)) = p.next().await {
        let out = pending.await;
        broker.finish_request();
        if !p.failed.get() {
            let fail = |reason: String, peer_gone: bool| {
                if peer_gone {
                    // The client went away with requests in flight: routine, not a warning.
                    tracing::debug!(peer = %peer(&sock), %reason, "closing connection");
                } else {
                    tracing::warn!(peer = %peer(&sock), %reason, "closing connection");
                }
                p.failed.set(true);
                let _ = SockRef::from(&*sock).shutdown(std::net::Shutdown::Both);
            };
            match out {
                Ok(Some(response)) => match transport
                    .write_parts(response, &mut pipe, broker.config.fetch_send_zc)
                    .await
                {
                    Ok(()) => metrics::record_request(api_key, arrived.elapsed()),
                    Err(e) => fail(format!("response write failed: {e}"), true),
                },
                Ok(None) => metrics::record_request(api_key, arrived.elapsed()),
                Err(reason) => fail(reason, false),
            }
        }
        p.outstanding.set(p.outstanding.get() - 1);
        if p.outstanding.get() == 0 {
            if let Some(a) = &act {
                a.busy.set(false);
                a.since.set(Instant::now());
            }
        }
        Pipeline::wake(&p.reader_waker);
    }
}

async fn serve_connection(broker: &Arc<Broker>, sock: &Rc<OwnedFd>, listener: usize) {
    let session = Session::new(listener, peer(sock));
    let spec = &broker.config.listeners[listener];
    let transport = match &broker.tls[listener] {
        None => Transport::plain(sock.as_raw_fd()),
        Some(config) => match Transport::tls(sock.as_raw_fd(), config.clone()) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(peer = %session.peer, error = %e, "cannot start TLS; closing connection");
                return;
            }
        },
    };
    match transport.handshake().await {
        Ok(Some(subject)) => {
            let rules = spec
                .ssl
                .as_ref()
                .map_or(&[][..], |s| &s.principal_rules[..]);
            match crate::config::map_principal(rules, &subject) {
                Some(name) => *session.principal.borrow_mut() = format!("User:{name}"),
                None => {
                    tracing::warn!(peer = %session.peer, listener = %spec.name, %subject, "no ssl.principal.mapping.rules rule matches the client certificate; closing connection");
                    return;
                }
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(peer = %session.peer, listener = %spec.name, error = %e, "TLS handshake failed; closing connection (a plaintext client on a TLS listener, an untrusted certificate or a TLS version it does not allow)");
            return;
        }
    }
    let transport = Rc::new(transport);
    let p = Rc::new(Pipeline::default());
    let writer = {
        let (broker, sock, t, p) = (broker.clone(), sock.clone(), transport.clone(), p.clone());
        runtime::spawn(async move { write_responses(broker, sock, t, p).await })
    };
    read_requests(broker, sock, &transport, &session, &p).await;
    p.closed.set(true);
    Pipeline::wake(&p.writer_waker);
    writer.await;
}

/// Reads request frames and starts them: a produce request as soon as it arrives (up to
/// [`PIPELINED_PRODUCE_MAX`] outstanding), any other once every earlier response was sent.
async fn read_requests(
    broker: &Arc<Broker>,
    sock: &OwnedFd,
    transport: &Transport,
    session: &Session,
    p: &Rc<Pipeline>,
) {
    let fd = sock.as_raw_fd();
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUFFER_BYTES);
    let act = activity(fd);
    let sasl = broker.config.listeners[session.listener].protocol.sasl();
    let mut auth = crate::sasl::Authenticator::default();
    loop {
        if p.failed.get() {
            return;
        }
        // What the earlier requests cost (request_percentage), then: a client over its quota
        // has nothing more read until its throttle time is over.
        session.charge_request_time(&broker.quotas);
        if let Some(until) = session.muted_until.take() {
            let now = Instant::now();
            if until > now {
                io::sleep(until - now).await;
            }
        }
        if !transport.fill(&mut buf, 4).await {
            return;
        }
        let len = i32::from_be_bytes(buf[0..4].try_into().expect("4 bytes"));
        if len < 0 || len as usize > broker.config.socket_request_max_bytes {
            tracing::warn!(peer = %peer(sock), size = len, max = broker.config.socket_request_max_bytes, "request frame is larger than socket.request.max.bytes (or negative); closing connection");
            return;
        }
        let len = len as usize;
        let arrived = Instant::now();
        let frame: Bytes = if buf.len() >= 4 + len {
            let f = Bytes::copy_from_slice(&buf[4..4 + len]);
            buf.drain(..4 + len);
            f
        } else {
            // Large frame: receive the rest straight into a buffer of its exact size.
            let mut f = Vec::with_capacity(len);
            f.extend_from_slice(&buf[4..]);
            buf.clear();
            if !transport.fill(&mut f, len).await {
                return;
            }
            // TLS decrypts whole records, which may run past this frame into the next request:
            // that belongs to the read buffer, not to this frame.
            if f.len() > len {
                buf.extend_from_slice(&f[len..]);
                f.truncate(len);
            }
            Bytes::from(f)
        };
        if let Some(a) = &act {
            a.busy.set(true);
        }
        // queued.max.requests: stop reading while the broker is at its limit.
        let max = broker.config.queued_max_requests;
        // Take a slot only below the limit (never over it, even for a moment).
        while broker
            .requests_in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            broker
                .request_finished
                .wait_until(|| broker.requests_in_flight.load(Ordering::Acquire) < max)
                .await;
        }
        capture(&frame);
        let api_key = if frame.len() >= 2 {
            i16::from_be_bytes([frame[0], frame[1]])
        } else {
            -1
        };
        // Only produce requests overtake unanswered ones; anything else waits for the pipeline
        // to drain, so it sees every earlier request's effect (and a fetch's splice is alone).
        let limit = if api_key == 0 {
            PIPELINED_PRODUCE_MAX - 1
        } else {
            0
        };
        p.at_most(limit).await;
        if p.failed.get() {
            broker.finish_request();
            return;
        }
        if let Some(a) = &act {
            // The writer may have marked the connection idle while this request waited.
            a.busy.set(true);
        }
        if sasl {
            match handlers::sasl::gate(broker, session, &mut auth, frame.clone()) {
                handlers::sasl::Gate::Pass => {}
                handlers::sasl::Gate::Respond { pending, close } => {
                    p.push(api_key, arrived, pending);
                    if close {
                        return;
                    }
                    continue;
                }
                handlers::sasl::Gate::Close(reason) => {
                    broker.finish_request();
                    tracing::warn!(peer = %session.peer, %reason, "closing connection");
                    return;
                }
            }
        }
        match timed_start(broker, frame, session).await {
            Ok(pending) => p.push(api_key, arrived, pending),
            Err(reason) => {
                broker.finish_request();
                tracing::warn!(peer = %peer(sock), %reason, "closing connection");
                return;
            }
        }
    }
}

/// [`handlers::start`], its time (and that of the rest of the handling) counted in
/// `session.request_time` while any client quota is set.
async fn timed_start(
    broker: &Arc<Broker>,
    frame: Bytes,
    session: &Session,
) -> Result<handlers::Pending, String> {
    if broker.quotas.is_empty() {
        return handlers::start(broker, frame, session).await;
    }
    let spent = session.request_time.clone();
    let started = crate::quota::Timed {
        inner: std::pin::pin!(handlers::start(broker, frame, session)),
        spent: spent.clone(),
    }
    .await?;
    Ok(Box::pin(crate::quota::Timed {
        inner: started,
        spent,
    }))
}

/// `RINGLET_CAPTURE_DIR`: write every request frame there, for the fuzzers' corpus (see
/// fuzz/README.md). Read once; unset in production, where this is one branch per request.
fn capture(frame: &Bytes) {
    static DIR: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let Some(dir) = DIR.get_or_init(|| std::env::var_os("RINGLET_CAPTURE_DIR").map(Into::into))
    else {
        return;
    };
    if frame.len() < 4 {
        return;
    }
    let api = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let _ = std::fs::write(
        dir.join(format!("{api:02}-v{version:02}-{n:06}.bin")),
        frame,
    );
}

/// The shard's housekeeping (flushes, retention) and, beside it, its log cleaner.
async fn maintenance_loop(broker: Arc<Broker>) {
    let cleaner = ringlet_engine::cleaner::CleanerConfig {
        decompress_limit: broker.config.socket_request_max_bytes,
        ..broker.config.cleaner.clone()
    };
    let _cleaner = runtime::spawn(ringlet_engine::cleaner::run(cleaner));
    ringlet_engine::log_manager::housekeeping(ringlet_engine::log_manager::Housekeeping {
        flush_every: Duration::from_millis(broker.config.log_flush_scheduler_interval_ms),
        retention_every: Duration::from_millis(broker.config.log_retention_check_interval_ms),
    })
    .await
}
