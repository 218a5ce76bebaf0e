//! The coordination thread: one per broker, owning the ZooKeeper session.
//!
//! It registers the broker (ephemeral `/brokers/ids/<id>`; the znode's czxid is the broker
//! epoch), competes for the controller (`multi(create /controller, set /controller_epoch)`),
//! re-reads the cluster after every watched change and publishes it as a [`ClusterView`], and, while
//! it is the controller, turns that view into state writes ([`decide`]), each one a `multi` that
//! first checks `/controller_epoch`'s version so a deposed controller can write nothing.
//!
//! The znode layout is Kafka's (see docs/adr/0007-replication.md), under the chroot of
//! `zookeeper.connect`.
//!
//! The JSON of the znodes is in [`json`], the controller's decisions in [`controller`].

mod configs;
mod controller;
mod json;
mod read;
pub mod reassign;
pub mod security;

use configs::set_config;
pub use controller::decide;
use futures_util::future::join_all;
pub use json::state_json;
use json::*;
use read::{Part, FULL_READ_EVERY};
use std::collections::BTreeSet;

use crate::cluster::store::{Event, MetadataStore, Op, StoreError, ZkStore};
use crate::cluster::{Cluster, ClusterView, ReassignRefused, Request};
use crate::config::BrokerConfig;
use crate::error_code as ec;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Starts the coordination thread and returns the broker's cluster handle.
fn inter_broker_listener(config: &BrokerConfig) -> Option<String> {
    if let Some(n) = &config.cluster.inter_broker_listener_name {
        return Some(n.clone());
    }
    // `security.inter.broker.protocol` (default PLAINTEXT): the first listener with it.
    let protocol = config
        .properties
        .get("security.inter.broker.protocol")
        .and_then(|p| crate::config::SecurityProtocol::parse(p.trim()))
        .unwrap_or(crate::config::SecurityProtocol::Plaintext);
    config
        .listeners
        .iter()
        .find(|l| l.protocol == protocol)
        .map(|l| l.name.clone())
}

pub fn start(config: &BrokerConfig) -> std::io::Result<Arc<Cluster>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    if config.cluster.inter_broker_listener_name.is_some()
        && config
            .properties
            .contains_key("security.inter.broker.protocol")
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "only one of inter.broker.listener.name and security.inter.broker.protocol may be set",
        ));
    }
    let listener = inter_broker_listener(config);
    let peer_security =
        crate::cluster::peer::PeerSecurity::from_config(config, listener.as_deref())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let cluster = Arc::new(Cluster {
        broker_id: config.broker_id,
        config: config.cluster.clone(),
        view: Default::default(),
        generation: Default::default(),
        changed: Default::default(),
        fenced: std::sync::atomic::AtomicBool::new(true),
        broker_epoch: std::sync::atomic::AtomicI64::new(-1),
        closed: std::sync::atomic::AtomicBool::new(false),
        stopping: std::sync::atomic::AtomicBool::new(false),
        inter_broker_listener: listener,
        peer_security,
        throttles: crate::cluster::throttle::Throttles::new(
            config.cluster.leader_replication_throttled_rate,
            config.cluster.follower_replication_throttled_rate,
        ),
        requests: tx,
    });
    let registration = registration_json(config);
    let c = cluster.clone();
    std::thread::Builder::new()
        .name("ringlet-zk".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("coordination runtime");
            rt.block_on(run(c, rx, registration));
        })?;
    Ok(cluster)
}

async fn run(
    cluster: Arc<Cluster>,
    mut rx: tokio::sync::mpsc::Receiver<Request>,
    registration: Vec<u8>,
) {
    loop {
        let e = session(&cluster, &mut rx, &registration).await;
        cluster.set_fenced(true);
        if cluster.closed.load(Ordering::Acquire) {
            tracing::info!("ZooKeeper session closed");
            return;
        }
        let mut view = (*cluster.view()).clone();
        view.loaded = false;
        cluster.publish(view);
        tracing::warn!(error = %e, "ZooKeeper session ended: this broker leads nothing until it has registered again");
        // Refuse what was asked meanwhile rather than let it wait.
        while let Ok(r) = rx.try_recv() {
            refuse(r, "no ZooKeeper session");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn refuse(r: Request, why: &str) {
    match r {
        Request::AlterIsr { reply, .. } => {
            let _ = reply.send(Err(why.into()));
        }
        Request::Reassign { reply, .. } => {
            let _ = reply.send(Err(ReassignRefused::Failed(why.to_string())));
        }
        Request::CreateTopic { reply, .. } | Request::AddPartitions { reply, .. } => {
            let _ = reply.send(Err((ec::NOT_CONTROLLER, why.into())));
        }
        Request::DeleteTopic { reply, .. }
        | Request::SetConfig { reply, .. }
        | Request::UpdateConfig { reply, .. }
        | Request::UpdateAcls { reply, .. }
        | Request::PreferredElection { reply, .. }
        | Request::ControlledShutdown { reply }
        | Request::Close { reply } => {
            let _ = reply.send(Err(why.into()));
        }
    }
}

/// The answer to a close request: sent once the session is closed.
type CloseReply = futures_channel::oneshot::Sender<Result<(), String>>;

/// The controller's fencing token: `/controller_epoch`'s value and znode version when this broker
/// won the election.
#[derive(Clone, Copy, Debug)]
struct ControllerToken {
    epoch: i32,
    version: i32,
}

/// One ZooKeeper session: register, then re-read the cluster after every change, request or
/// half second, publish it, and write the controller's decisions while this broker is it. Returns
/// why the session ended.
async fn session(
    cluster: &Arc<Cluster>,
    rx: &mut tokio::sync::mpsc::Receiver<Request>,
    registration: &[u8],
) -> StoreError {
    let mut store = match register(cluster, registration).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let id = cluster.broker_id;
    let mut token: Option<ControllerToken> = None;
    let mut last_rebalance = std::time::Instant::now();
    // The view as last read; the parts of it that watch events made stale.
    let mut view: Option<ClusterView> = None;
    let mut stale: BTreeSet<Part> = BTreeSet::new();
    let mut last_full = std::time::Instant::now();
    loop {
        let read_started = std::time::Instant::now();
        let changed = match &mut view {
            Some(v) if last_full.elapsed() < FULL_READ_EVERY => {
                let changed = !stale.is_empty();
                if let Err(e) = read::refresh(&store, v, &stale).await {
                    return e;
                }
                changed
            }
            _ => {
                view = match read::read_view(&store).await {
                    Ok(v) => Some(v),
                    Err(e) => return e,
                };
                last_full = std::time::Instant::now();
                true
            }
        };
        stale.clear();
        let view = view.as_ref().expect("read");
        let took = read_started.elapsed();
        if took > Duration::from_millis(500) {
            tracing::warn!(
                ms = took.as_millis() as u64,
                "reading the cluster from ZooKeeper was slow"
            );
        }
        if view.controller < 0 {
            stale.insert(Part::Controller);
            match elect(&store, id).await {
                Ok(Some(t)) => {
                    tracing::info!(
                        broker = id,
                        controller_epoch = t.epoch,
                        "elected controller"
                    );
                    token = Some(t);
                    continue;
                }
                Ok(None) => continue,
                Err(e @ StoreError::Session(_)) => return e,
                Err(e) => tracing::warn!(error = %e, "controller election failed"),
            }
        }
        if view.controller != id {
            token = None;
        }
        let writes = match token {
            Some(t) if view.controller == id => {
                let cfg = &cluster.config;
                let rebalance = (cfg.auto_leader_rebalance_enable
                    && last_rebalance.elapsed()
                        >= Duration::from_secs(cfg.leader_imbalance_check_interval_seconds))
                .then(|| {
                    last_rebalance = std::time::Instant::now();
                    cfg.leader_imbalance_per_broker_percentage
                });
                decide(view, t.epoch, rebalance, cfg.unclean_leader_election_enable)
            }
            _ => Vec::new(),
        };
        if changed || !cluster.view().loaded {
            cluster.publish(view.clone());
        }
        cluster.set_fenced(false);
        if let Some(t) = token {
            match write_decisions(&store, t, writes).await {
                Ok((still, all_written)) => {
                    token = still.then_some(t);
                    if !all_written {
                        // Written against a stale view: read everything again.
                        stale.insert(Part::Everything);
                    }
                }
                Err(e) => return e,
            }
        }
        let step = std::time::Instant::now();
        match wait_and_serve(&mut store, cluster, rx, &mut stale).await {
            Ok(None) => {}
            Ok(Some(reply)) => {
                drop(store);
                // Let the client send its close before answering.
                tokio::time::sleep(Duration::from_millis(200)).await;
                cluster.closed.store(true, Ordering::Release);
                let _ = reply.send(Ok(()));
                return StoreError::Other("closed".into());
            }
            Err(e) => return e,
        }
        let took = step.elapsed();
        if took > Duration::from_millis(500) {
            tracing::warn!(
                ms = took.as_millis() as u64,
                "a coordination step was slow (ZooKeeper slow to answer?)"
            );
        }
    }
}

/// Connects, creates the fixed znodes, and registers this broker (ephemeral
/// `/brokers/ids/<id>`, whose czxid becomes the broker epoch).
async fn register(cluster: &Arc<Cluster>, registration: &[u8]) -> Result<ZkStore, StoreError> {
    let cfg = &cluster.config;
    let connect = cfg.zookeeper_connect.clone().unwrap_or_default();
    let session_timeout = Duration::from_millis(cfg.zookeeper_session_timeout_ms);
    let connection_timeout = Duration::from_millis(
        cfg.zookeeper_connection_timeout_ms
            .unwrap_or(cfg.zookeeper_session_timeout_ms),
    );
    let store = ZkStore::connect(&connect, session_timeout, connection_timeout).await?;
    for p in [
        "/brokers/ids",
        "/brokers/topics",
        "/brokers/shutting_down",
        "/admin/delete_topics",
        "/config/groups",
        "/config/topics",
        "/config/brokers",
    ] {
        match store.create(p, b"").await {
            Ok(()) | Err(StoreError::NodeExists) => {}
            Err(e) => return Err(e),
        }
    }
    match store.create("/controller_epoch", b"0").await {
        Ok(()) | Err(StoreError::NodeExists) => {}
        Err(e) => return Err(e),
    }
    // A previous incarnation's ephemeral node lives until its session expires.
    let id = cluster.broker_id;
    let path = format!("/brokers/ids/{id}");
    let deadline = std::time::Instant::now() + session_timeout + Duration::from_secs(5);
    let czxid = loop {
        match store.create_ephemeral(&path, registration).await {
            Ok(z) => break z,
            Err(StoreError::NodeExists) if std::time::Instant::now() < deadline => {
                tracing::info!(
                    broker = id,
                    "broker id is still registered (a previous session?); waiting for it to expire"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(StoreError::NodeExists) => {
                return Err(StoreError::Other(format!(
                    "broker id {id} is registered by another live broker"
                )))
            }
            Err(e) => return Err(e),
        }
    };
    cluster.broker_epoch.store(czxid, Ordering::Release);
    tracing::info!(
        broker = id,
        broker_epoch = czxid,
        session = format!("{:#x}", store.session_id()),
        "registered in ZooKeeper"
    );
    Ok(store)
}

/// Applies the controller's writes, each behind a check of `/controller_epoch`'s version.
/// Returns whether this broker is still the controller and whether every write was applied;
/// stops at the first failed write.
async fn write_decisions(
    store: &ZkStore,
    t: ControllerToken,
    writes: Vec<(String, Vec<Op>)>,
) -> Result<(bool, bool), StoreError> {
    // Writes touch disjoint znodes, so they go out pipelined on the session, up to
    // PIPELINED_WRITES at a time; one that marks a request served (an `/admin/...` delete) goes
    // only after everything before it was written.
    let mut batch: Vec<(String, Vec<Op>)> = Vec::new();
    let mut writes = writes.into_iter().peekable();
    while writes.peek().is_some() || !batch.is_empty() {
        let next_serves = writes.peek().is_some_and(|(_, ops)| {
            ops.iter()
                .any(|op| matches!(op, Op::Delete { path } if path.starts_with("/admin/")))
        });
        let flush = writes.peek().is_none() || batch.len() >= PIPELINED_WRITES || next_serves;
        if !flush {
            batch.extend(writes.next());
            continue;
        }
        if batch.is_empty() {
            batch.extend(writes.next());
        }
        let done = futures_util::future::join_all(batch.drain(..).map(|(what, ops)| async move {
            let mut all = vec![Op::Check {
                path: "/controller_epoch".into(),
                version: t.version,
            }];
            all.extend(ops);
            (what, store.multi(&all).await)
        }))
        .await;
        let mut failed = false;
        for (what, r) in done {
            match r {
                Ok(_) => tracing::info!(controller_epoch = t.epoch, "{what}"),
                Err(e @ StoreError::Session(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "controller write failed ({what}); re-reading");
                    failed = true;
                }
            }
        }
        if failed {
            // A failed epoch check means another controller: stop writing.
            if let Ok(Some(n)) = store.get("/controller_epoch").await {
                if n.version != t.version {
                    tracing::warn!("no longer the controller (controller epoch moved)");
                    return Ok((false, false));
                }
            }
            return Ok((true, false));
        }
    }
    Ok((true, true))
}

/// How many controller writes or ISR changes are in flight on the session at once.
const PIPELINED_WRITES: usize = 256;

/// Waits for a watched change, a request (served with whatever else is queued), or the periodic
/// re-read. An error ends the session (lost, or the broker shutting down); a close request is
/// handed back (with its reply) for the caller to end the session.
async fn wait_and_serve(
    store: &mut ZkStore,
    cluster: &Arc<Cluster>,
    rx: &mut tokio::sync::mpsc::Receiver<Request>,
    stale: &mut BTreeSet<Part>,
) -> Result<Option<CloseReply>, StoreError> {
    enum Next {
        Event(Event),
        Request(Option<Request>),
        Tick,
    }
    let next = tokio::select! {
        ev = store.next_event() => Next::Event(ev),
        r = rx.recv() => Next::Request(r),
        _ = tokio::time::sleep(Duration::from_millis(500)) => Next::Tick,
    };
    match next {
        Next::Event(Event::SessionLost) => {
            Err(StoreError::Session("session expired or closed".into()))
        }
        Next::Event(Event::Changed(path)) => {
            // Let a burst of changes settle into one re-read of what they touched.
            stale.extend(read::part_of(&path));
            tokio::time::sleep(Duration::from_millis(5)).await;
            for _ in 0..1_000_000 {
                match tokio::time::timeout(Duration::ZERO, store.next_event()).await {
                    Ok(Event::Changed(path)) => stale.extend(read::part_of(&path)),
                    Ok(Event::SessionLost) => {
                        return Err(StoreError::Session("session expired or closed".into()))
                    }
                    Err(_) => break,
                }
            }
            Ok(None)
        }
        Next::Request(None) => Err(StoreError::Other("broker shutting down".into())),
        Next::Request(Some(r)) => {
            // Serve it and whatever else is queued before re-reading; a close ends the session
            // wherever it comes in the queue.
            // ISR changes are independent conditional writes: they go out pipelined (a broker
            // coming back to 10,000 ISRs asks for 10,000 of them at once).
            let mut next = Some(r);
            let mut isr = Vec::new();
            while let Some(r) = next.take().or_else(|| rx.try_recv().ok()) {
                match r {
                    Request::Close { reply } => return Ok(Some(reply)),
                    r @ Request::AlterIsr { .. } => {
                        isr.push(r);
                        if isr.len() < PIPELINED_WRITES {
                            continue;
                        }
                    }
                    r => {
                        if let Err(e @ StoreError::Session(_)) = handle(store, cluster, r).await {
                            return Err(e);
                        }
                        continue;
                    }
                }
                let store = &*store;
                for r in join_all(isr.drain(..).map(|r| handle(store, cluster, r))).await {
                    if let Err(e @ StoreError::Session(_)) = r {
                        return Err(e);
                    }
                }
            }
            let store = &*store;
            for r in join_all(isr.into_iter().map(|r| handle(store, cluster, r))).await {
                if let Err(e @ StoreError::Session(_)) = r {
                    return Err(e);
                }
            }
            Ok(None)
        }
        Next::Tick => Ok(None),
    }
}

async fn handle(store: &ZkStore, cluster: &Cluster, r: Request) -> Result<(), StoreError> {
    match r {
        Request::AlterIsr {
            topic,
            partition,
            state,
            reply,
        } => {
            let path = state_path(&topic, partition as usize);
            match store.set(&path, &state_json(&state), state.version).await {
                Ok(v) => {
                    tracing::info!(topic, partition, isr = ?state.isr, leader_epoch = state.leader_epoch, version = v, "ISR changed");
                    let _ = reply.send(Ok(v));
                }
                Err(e) => {
                    let _ = reply.send(Err(e.to_string()));
                    if let StoreError::Session(_) = e {
                        return Err(e);
                    }
                }
            }
        }
        Request::CreateTopic { topic, info, reply } => {
            let r = if cluster.view().deleting.contains(&topic) {
                Err((
                    ec::TOPIC_ALREADY_EXISTS,
                    format!("topic '{topic}' is being deleted"),
                ))
            } else {
                match store
                    .create(&format!("/brokers/topics/{topic}"), &topic_json(&info))
                    .await
                {
                    Ok(()) => Ok(()),
                    Err(StoreError::NodeExists) => Err((
                        ec::TOPIC_ALREADY_EXISTS,
                        format!("topic '{topic}' already exists"),
                    )),
                    Err(e) => {
                        let _ = reply.send(Err((ec::UNKNOWN_SERVER_ERROR, e.to_string())));
                        return match e {
                            StoreError::Session(_) => Err(e),
                            _ => Ok(()),
                        };
                    }
                }
            };
            let _ = reply.send(r);
        }
        Request::DeleteTopic { topic, reply } => {
            let r = match store
                .create(&format!("/admin/delete_topics/{topic}"), b"")
                .await
            {
                Ok(()) | Err(StoreError::NodeExists) => Ok(()),
                Err(e) => Err(e),
            };
            let _ = reply.send(r.clone().map_err(|e| e.to_string()));
            r?;
        }
        Request::PreferredElection {
            partitions,
            unclean,
            reply,
        } => {
            let r = write_election(store, &partitions, unclean).await;
            let answer = match &r {
                Ok(r) => r.clone(),
                Err(e) => Err(e.to_string()),
            };
            let _ = reply.send(answer);
            if let Err(e @ StoreError::Session(_)) = r {
                return Err(e);
            }
        }
        Request::AddPartitions {
            topic,
            replicas,
            reply,
        } => {
            let r = add_partitions(store, &topic, replicas).await;
            let out = match &r {
                Ok(()) => Ok(()),
                Err(StoreError::NoNode) => Err((
                    ec::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("topic '{topic}' does not exist"),
                )),
                Err(e) => Err((ec::UNKNOWN_SERVER_ERROR, e.to_string())),
            };
            let _ = reply.send(out);
            if let Err(e @ StoreError::Session(_)) = r {
                return Err(e);
            }
        }
        Request::Reassign { requests, reply } => {
            let r = reassign::hand_over(store, requests).await;
            let _ = reply.send(match &r {
                Ok(()) => Ok(()),
                Err(StoreError::NodeExists) => Err(ReassignRefused::Busy),
                Err(e) => Err(ReassignRefused::Failed(e.to_string())),
            });
            if let Err(e @ StoreError::Session(_)) = r {
                return Err(e);
            }
        }
        r @ (Request::UpdateConfig { .. } | Request::UpdateAcls { .. }) => {
            security::serve(store, r).await?
        }
        Request::SetConfig {
            entity,
            name,
            configs,
            reply,
        } => {
            let r = set_config(store, &format!("/config/{entity}/{name}"), &configs).await;
            if r.is_ok() {
                tracing::info!(entity, name, configs = ?configs, "dynamic configs written");
            }
            let _ = reply.send(r.clone().map_err(|e| e.to_string()));
            if let Err(e @ StoreError::Session(_)) = r {
                return Err(e);
            }
        }
        Request::Close { reply } => {
            let _ = reply.send(Err("close is handled by the session loop".into()));
        }
        Request::ControlledShutdown { reply } => {
            let path = format!("/brokers/shutting_down/{}", cluster.broker_id);
            let r = match store.create_ephemeral(&path, b"").await {
                Ok(_) | Err(StoreError::NodeExists) => Ok(()),
                Err(e) => Err(e),
            };
            let _ = reply.send(r.clone().map_err(|e| e.to_string()));
            r?;
        }
    }
    Ok(())
}

/// Writes the znode of an election for the controller: the inner error is the client's (one is
/// already pending), the outer the store's.
async fn write_election(
    store: &ZkStore,
    partitions: &[(String, i32)],
    unclean: bool,
) -> Result<Result<(), String>, StoreError> {
    let body = serde_json::to_vec(&ElectionJson {
        version: 1,
        partitions: partitions
            .iter()
            .map(|(topic, partition)| ElectionPartition {
                topic: topic.clone(),
                partition: *partition,
            })
            .collect(),
    })
    .expect("election json");
    let path = if unclean {
        UNCLEAN_ELECTION_PATH
    } else {
        ELECTION_PATH
    };
    match store.create(path, &body).await {
        Ok(()) => Ok(Ok(())),
        Err(StoreError::NodeExists) => Ok(Err(format!(
            "{} election is already in progress",
            if unclean {
                "an unclean"
            } else {
                "a preferred replica"
            }
        ))),
        Err(e) => Err(e),
    }
}

/// Kafka's znode of a pending preferred-replica election.
pub(crate) const ELECTION_PATH: &str = "/admin/preferred_replica_election";
/// Ringlet's znode of a pending unclean election (ElectLeaders UNCLEAN); Kafka's ZooKeeper-mode
/// controller took those in memory, which a controller change lost.
pub(crate) const UNCLEAN_ELECTION_PATH: &str = "/admin/unclean_leader_election";

/// Extends `/brokers/topics/<t>`'s assignment with new partitions (never shrinks it), conditional
/// on the node's version.
async fn add_partitions(
    store: &ZkStore,
    topic: &str,
    replicas: Vec<Vec<i32>>,
) -> Result<(), StoreError> {
    let path = format!("/brokers/topics/{topic}");
    loop {
        let node = store.get(&path).await?.ok_or(StoreError::NoNode)?;
        let mut tj: TopicJson = serde_json::from_slice(&node.data)
            .map_err(|e| StoreError::Other(format!("unreadable topic assignment: {e}")))?;
        if replicas.len() <= tj.partitions.len() {
            return Ok(());
        }
        for (p, r) in replicas.iter().enumerate().skip(tj.partitions.len()) {
            tj.partitions.insert(p.to_string(), r.clone());
        }
        let body = serde_json::to_vec(&tj).map_err(|e| StoreError::Other(e.to_string()))?;
        match store.set(&path, &body, node.version).await {
            Ok(_) => {
                tracing::info!(topic, partitions = replicas.len(), "partitions added");
                return Ok(());
            }
            Err(StoreError::BadVersion) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `multi(create /controller (ephemeral), set /controller_epoch +1 if unchanged)`.
async fn elect(store: &ZkStore, id: i32) -> Result<Option<ControllerToken>, StoreError> {
    let Some(cur) = store.get("/controller_epoch").await? else {
        return Ok(None);
    };
    let epoch = std::str::from_utf8(&cur.data)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0);
    let body = format!(
        "{{\"version\":1,\"brokerid\":{id},\"timestamp\":\"{}\"}}",
        ringlet_engine::config::now_ms()
    );
    let ops = [
        Op::CreateEphemeral {
            path: "/controller".into(),
            data: body.into_bytes(),
        },
        Op::Set {
            path: "/controller_epoch".into(),
            data: (epoch + 1).to_string().into_bytes(),
            version: cur.version,
        },
    ];
    match store.multi(&ops).await {
        Ok(v) => Ok(Some(ControllerToken {
            epoch: epoch + 1,
            version: v.first().copied().unwrap_or(cur.version + 1),
        })),
        Err(StoreError::NodeExists | StoreError::BadVersion) => Ok(None),
        Err(e) => Err(e),
    }
}
