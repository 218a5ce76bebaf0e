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

use super::store::{Event, MetadataStore, Op, StoreError, ZkStore};
use super::{BrokerInfo, Cluster, ClusterView, PartitionState, Request, TopicInfo};
use crate::config::BrokerConfig;
use crate::error_code as ec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[derive(Serialize, Deserialize)]
struct RegistrationJson {
    version: i32,
    host: String,
    port: i32,
    endpoints: Vec<String>,
    #[serde(default)]
    listener_security_protocol_map: BTreeMap<String, String>,
    #[serde(default)]
    rack: Option<String>,
    jmx_port: i32,
    timestamp: String,
}

#[derive(Serialize, Deserialize)]
struct TopicJson {
    version: i32,
    topic_id: String,
    partitions: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    adding_replicas: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    removing_replicas: BTreeMap<String, Vec<i32>>,
    /// Ringlet keeps topic configs here (Kafka keeps them in `/config/topics/<t>`).
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct StateJson {
    version: i32,
    leader: i32,
    leader_epoch: i32,
    isr: Vec<i32>,
    controller_epoch: i32,
}

#[derive(Deserialize)]
struct ControllerJson {
    brokerid: i32,
}

pub fn state_json(s: &PartitionState) -> Vec<u8> {
    serde_json::to_vec(&StateJson {
        version: 1,
        leader: s.leader,
        leader_epoch: s.leader_epoch,
        isr: s.isr.clone(),
        controller_epoch: s.controller_epoch,
    })
    .expect("state json")
}

fn topic_json(t: &TopicInfo) -> Vec<u8> {
    serde_json::to_vec(&TopicJson {
        version: 2,
        topic_id: t.id.iter().map(|b| format!("{b:02x}")).collect(),
        partitions: t
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| (i.to_string(), r.clone()))
            .collect(),
        adding_replicas: BTreeMap::new(),
        removing_replicas: BTreeMap::new(),
        configs: t.configs.clone(),
    })
    .expect("topic json")
}

fn registration_json(config: &BrokerConfig) -> Vec<u8> {
    let first = &config.listeners[0];
    serde_json::to_vec(&RegistrationJson {
        version: 5,
        host: first.advertised.host.clone(),
        port: i32::from(first.advertised.port),
        endpoints: config
            .listeners
            .iter()
            .map(|l| format!("{}://{}:{}", l.name, l.advertised.host, l.advertised.port))
            .collect(),
        listener_security_protocol_map: config
            .listeners
            .iter()
            .map(|l| (l.name.clone(), l.protocol.name().to_string()))
            .collect(),
        rack: config.cluster.broker_rack.clone(),
        jmx_port: -1,
        timestamp: ringlet_engine::config::now_ms().to_string(),
    })
    .expect("registration json")
}

fn parse_endpoint(e: &str) -> Option<(String, String, u16)> {
    let (name, rest) = e.split_once("://")?;
    let (host, port) = rest.rsplit_once(':')?;
    Some((name.to_string(), host.to_string(), port.parse().ok()?))
}

fn state_path(topic: &str, partition: usize) -> String {
    format!("/brokers/topics/{topic}/partitions/{partition}/state")
}

/// Starts the coordination thread and returns the broker's cluster handle.
pub fn start(config: &BrokerConfig) -> std::io::Result<Arc<Cluster>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let cluster = Arc::new(Cluster {
        broker_id: config.broker_id,
        config: config.cluster.clone(),
        view: Default::default(),
        generation: Default::default(),
        fenced: std::sync::atomic::AtomicBool::new(true),
        broker_epoch: std::sync::atomic::AtomicI64::new(-1),
        closed: std::sync::atomic::AtomicBool::new(false),
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
        cluster.fenced.store(true, Ordering::Release);
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
        Request::CreateTopic { reply, .. } => {
            let _ = reply.send(Err((ec::NOT_CONTROLLER, why.into())));
        }
        Request::DeleteTopic { reply, .. }
        | Request::ControlledShutdown { reply }
        | Request::Close { reply } => {
            let _ = reply.send(Err(why.into()));
        }
    }
}

/// The controller's fencing token: `/controller_epoch`'s value and znode version when this broker
/// won the election.
#[derive(Clone, Copy, Debug)]
struct ControllerToken {
    epoch: i32,
    version: i32,
}

async fn session(
    cluster: &Arc<Cluster>,
    rx: &mut tokio::sync::mpsc::Receiver<Request>,
    registration: &[u8],
) -> StoreError {
    let cfg = &cluster.config;
    let connect = cfg.zookeeper_connect.clone().unwrap_or_default();
    let session_timeout = Duration::from_millis(cfg.zookeeper_session_timeout_ms);
    let connection_timeout = Duration::from_millis(
        cfg.zookeeper_connection_timeout_ms
            .unwrap_or(cfg.zookeeper_session_timeout_ms),
    );
    let mut store = match ZkStore::connect(&connect, session_timeout, connection_timeout).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    for p in [
        "/brokers/ids",
        "/brokers/topics",
        "/brokers/shutting_down",
        "/admin/delete_topics",
    ] {
        match store.create(p, b"").await {
            Ok(()) | Err(StoreError::NodeExists) => {}
            Err(e) => return e,
        }
    }
    match store.create("/controller_epoch", b"0").await {
        Ok(()) | Err(StoreError::NodeExists) => {}
        Err(e) => return e,
    }
    // Register. A previous incarnation's ephemeral node lives until its session expires.
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
                return StoreError::Other(format!(
                    "broker id {id} is registered by another live broker"
                ))
            }
            Err(e) => return e,
        }
    };
    cluster.broker_epoch.store(czxid, Ordering::Release);
    tracing::info!(
        broker = id,
        broker_epoch = czxid,
        session = format!("{:#x}", store.session_id()),
        "registered in ZooKeeper"
    );
    let mut token: Option<ControllerToken> = None;
    loop {
        let read_started = std::time::Instant::now();
        let view = match read_view(&store).await {
            Ok(v) => v,
            Err(e) => return e,
        };
        let took = read_started.elapsed();
        if took > Duration::from_millis(500) {
            tracing::warn!(
                ms = took.as_millis() as u64,
                "reading the cluster from ZooKeeper was slow"
            );
        }
        if view.controller < 0 {
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
            Some(t) if view.controller == id => decide(&view, t.epoch),
            _ => Vec::new(),
        };
        cluster.publish(view);
        cluster.fenced.store(false, Ordering::Release);
        if let Some(t) = token {
            for (what, ops) in writes {
                let mut all = vec![Op::Check {
                    path: "/controller_epoch".into(),
                    version: t.version,
                }];
                all.extend(ops);
                match store.multi(&all).await {
                    Ok(_) => tracing::info!(controller_epoch = t.epoch, "{what}"),
                    Err(e @ StoreError::Session(_)) => return e,
                    Err(e) => {
                        tracing::warn!(error = %e, "controller write failed ({what}); re-reading");
                        // A failed epoch check means another controller: stop writing.
                        if let Ok(Some(n)) = store.get("/controller_epoch").await {
                            if n.version != t.version {
                                tracing::warn!("no longer the controller (controller epoch moved)");
                                token = None;
                            }
                        }
                        break;
                    }
                }
            }
        }
        // Wait for a change, a request, or the periodic re-read.
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
        let step = std::time::Instant::now();
        match next {
            Next::Event(Event::SessionLost) => {
                return StoreError::Session("session expired or closed".into())
            }
            Next::Event(Event::Changed(_)) => {
                // Let a burst of changes settle into one re-read.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Next::Request(None) => return StoreError::Other("broker shutting down".into()),
            Next::Request(Some(r)) => {
                // Serve it and whatever else is queued before re-reading; a close ends the
                // session wherever it comes in the queue.
                let mut next = Some(r);
                while let Some(r) = next.take().or_else(|| rx.try_recv().ok()) {
                    if let Request::Close { reply } = r {
                        drop(store);
                        // Let the client send its close before answering.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        cluster.closed.store(true, Ordering::Release);
                        let _ = reply.send(Ok(()));
                        return StoreError::Other("closed".into());
                    }
                    if let Err(e @ StoreError::Session(_)) = handle(&store, cluster, r).await {
                        return e;
                    }
                }
            }
            Next::Tick => {}
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

/// Reads the whole cluster (brokers, controller, topics, partition states).
async fn read_view(store: &ZkStore) -> Result<ClusterView, StoreError> {
    let mut v = ClusterView {
        loaded: true,
        controller: -1,
        ..Default::default()
    };
    for child in store.children("/brokers/ids").await? {
        let Ok(id) = child.parse::<i32>() else {
            continue;
        };
        let Some(node) = store.get(&format!("/brokers/ids/{child}")).await? else {
            continue;
        };
        let Ok(reg) = serde_json::from_slice::<RegistrationJson>(&node.data) else {
            tracing::warn!(broker = id, "unreadable broker registration");
            continue;
        };
        v.brokers.insert(
            id,
            BrokerInfo {
                id,
                endpoints: reg
                    .endpoints
                    .iter()
                    .filter_map(|e| parse_endpoint(e))
                    .collect(),
                rack: reg.rack,
                epoch: node.czxid,
            },
        );
    }
    if let Some(n) = store.get("/controller").await? {
        if let Ok(c) = serde_json::from_slice::<ControllerJson>(&n.data) {
            v.controller = c.brokerid;
        }
    }
    if let Some(n) = store.get("/controller_epoch").await? {
        v.controller_epoch = std::str::from_utf8(&n.data)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
    }
    for t in store.children("/brokers/topics").await? {
        let Some(node) = store.get(&format!("/brokers/topics/{t}")).await? else {
            continue;
        };
        let Ok(tj) = serde_json::from_slice::<TopicJson>(&node.data) else {
            tracing::warn!(topic = t, "unreadable topic assignment");
            continue;
        };
        let n = tj.partitions.len();
        let mut replicas = vec![Vec::new(); n];
        for (p, r) in tj.partitions {
            if let Some(slot) = p.parse::<usize>().ok().and_then(|i| replicas.get_mut(i)) {
                *slot = r;
            }
        }
        let mut states = Vec::with_capacity(n);
        for p in 0..n {
            let s = store.get(&state_path(&t, p)).await?.and_then(|node| {
                let s: StateJson = serde_json::from_slice(&node.data).ok()?;
                Some(PartitionState {
                    leader: s.leader,
                    leader_epoch: s.leader_epoch,
                    isr: s.isr,
                    controller_epoch: s.controller_epoch,
                    version: node.version,
                })
            });
            states.push(s);
        }
        let mut id = [0u8; 16];
        for (i, b) in id.iter_mut().enumerate() {
            *b = tj
                .topic_id
                .get(i * 2..i * 2 + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .unwrap_or(0);
        }
        v.topics.insert(
            t,
            TopicInfo {
                id,
                replicas,
                configs: tj.configs,
                states,
            },
        );
    }
    for c in store.children("/brokers/shutting_down").await? {
        if let Ok(id) = c.parse() {
            v.shutting_down.insert(id);
        }
    }
    v.deleting = store
        .children("/admin/delete_topics")
        .await?
        .into_iter()
        .collect();
    Ok(v)
}

/// The controller's decisions for a view: `(description, ops)` per write, each to be applied
/// behind a check of the controller epoch.
///
/// * A partition without state gets one: the first live replica leads, the live replicas are
///   the ISR, leader epoch 0.
/// * A partition whose leader is gone (or shutting down) gets the first live, not shutting down
///   replica of its ISR (assignment order) as leader, leader epoch + 1, and the ISR minus the
///   dead and shutting-down brokers. With no such replica it goes offline (leader -1) and keeps its
///   ISR, so that the last in-sync replica can lead again when it returns: never an out-of-sync
///   one (`unclean.leader.election.enable=false`).
/// * A live leader's ISR loses the brokers in controlled shutdown.
/// * Topics marked for deletion lose every znode.
pub fn decide(view: &ClusterView, controller_epoch: i32) -> Vec<(String, Vec<Op>)> {
    let live = |b: &i32| view.brokers.contains_key(b);
    let leaving = |b: &i32| view.shutting_down.contains(b);
    let mut out = Vec::new();
    for (name, t) in &view.topics {
        if view.deleting.contains(name) {
            let mut ops = Vec::new();
            for (p, s) in t.states.iter().enumerate() {
                if s.is_some() {
                    ops.push(Op::Delete {
                        path: state_path(name, p),
                    });
                }
            }
            // Partition directories exist when any state does (created together).
            if t.states.iter().any(Option::is_some) {
                for p in 0..t.states.len() {
                    ops.push(Op::Delete {
                        path: format!("/brokers/topics/{name}/partitions/{p}"),
                    });
                }
                ops.push(Op::Delete {
                    path: format!("/brokers/topics/{name}/partitions"),
                });
            }
            ops.push(Op::Delete {
                path: format!("/brokers/topics/{name}"),
            });
            ops.push(Op::Delete {
                path: format!("/admin/delete_topics/{name}"),
            });
            out.push((format!("deleted topic {name}"), ops));
            continue;
        }
        if t.states.iter().all(Option::is_none) {
            let mut ops = vec![Op::Create {
                path: format!("/brokers/topics/{name}/partitions"),
                data: Vec::new(),
            }];
            for (p, replicas) in t.replicas.iter().enumerate() {
                let isr: Vec<i32> = replicas.iter().copied().filter(live).collect();
                let leader = isr
                    .iter()
                    .copied()
                    .find(|b| !leaving(b))
                    .or(isr.first().copied())
                    .unwrap_or(-1);
                let s = PartitionState {
                    leader,
                    leader_epoch: 0,
                    isr: if isr.is_empty() {
                        replicas.clone()
                    } else {
                        isr
                    },
                    controller_epoch,
                    version: 0,
                };
                ops.push(Op::Create {
                    path: format!("/brokers/topics/{name}/partitions/{p}"),
                    data: Vec::new(),
                });
                ops.push(Op::Create {
                    path: state_path(name, p),
                    data: state_json(&s),
                });
            }
            out.push((format!("created partition states of {name}"), ops));
            continue;
        }
        for (p, (replicas, s)) in t.replicas.iter().zip(&t.states).enumerate() {
            let Some(s) = s else { continue };
            let leader_ok = s.leader >= 0 && live(&s.leader) && !leaving(&s.leader);
            if leader_ok {
                let isr: Vec<i32> = s
                    .isr
                    .iter()
                    .copied()
                    .filter(|b| *b == s.leader || !leaving(b))
                    .collect();
                if isr != s.isr {
                    let n = PartitionState {
                        isr,
                        controller_epoch,
                        ..s.clone()
                    };
                    out.push((
                        format!("{name}-{p}: ISR {:?} (controlled shutdown)", n.isr),
                        vec![Op::Set {
                            path: state_path(name, p),
                            data: state_json(&n),
                            version: s.version,
                        }],
                    ));
                }
                continue;
            }
            let candidate = replicas
                .iter()
                .copied()
                .find(|b| s.isr.contains(b) && live(b) && !leaving(b));
            let n = match candidate {
                Some(leader) => PartitionState {
                    leader,
                    leader_epoch: s.leader_epoch + 1,
                    isr: s
                        .isr
                        .iter()
                        .copied()
                        .filter(|b| live(b) && !leaving(b))
                        .collect(),
                    controller_epoch,
                    version: s.version,
                },
                // Only the leader itself is in sync and it is leaving: it stays.
                None if s.leader >= 0 && live(&s.leader) => continue,
                None if s.leader < 0 => continue,
                None => PartitionState {
                    leader: -1,
                    leader_epoch: s.leader_epoch + 1,
                    isr: s.isr.clone(),
                    controller_epoch,
                    version: s.version,
                },
            };
            out.push((
                format!(
                    "{name}-{p}: leader {} -> {}, leader epoch {}, ISR {:?}",
                    s.leader, n.leader, n.leader_epoch, n.isr
                ),
                vec![Op::Set {
                    path: state_path(name, p),
                    data: state_json(&n),
                    version: s.version,
                }],
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(brokers: &[i32], isr: &[i32], leader: i32) -> ClusterView {
        let mut v = ClusterView {
            loaded: true,
            ..Default::default()
        };
        for &b in brokers {
            v.brokers.insert(
                b,
                BrokerInfo {
                    id: b,
                    endpoints: vec![],
                    rack: None,
                    epoch: 1,
                },
            );
        }
        v.topics.insert(
            "t".into(),
            TopicInfo {
                id: [0; 16],
                replicas: vec![vec![1, 2, 3]],
                configs: Default::default(),
                states: vec![Some(PartitionState {
                    leader,
                    leader_epoch: 4,
                    isr: isr.to_vec(),
                    controller_epoch: 1,
                    version: 9,
                })],
            },
        );
        v
    }

    fn written(ops: &[(String, Vec<Op>)]) -> Vec<StateJson> {
        ops.iter()
            .flat_map(|(_, o)| o.iter())
            .filter_map(|o| match o {
                Op::Set { data, version, .. } => {
                    assert_eq!(*version, 9, "conditional on the read version");
                    serde_json::from_slice(data).ok()
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn new_leader_comes_from_the_isr_only() {
        // Leader 1 died; 3 is live but out of sync: 2 leads, epoch + 1.
        let w = written(&decide(&view(&[2, 3], &[1, 2], 1), 2));
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].leader, w[0].leader_epoch, w[0].isr.clone()),
            (2, 5, vec![2])
        );
        // Only out-of-sync replicas live: offline, ISR kept for the last in-sync one.
        let w = written(&decide(&view(&[2, 3], &[1], 1), 2));
        assert_eq!((w[0].leader, w[0].isr.clone()), (-1, vec![1]));
        // It returns: it leads again.
        let w = written(&decide(&view(&[1, 3], &[1], -1), 2));
        assert_eq!((w[0].leader, w[0].leader_epoch), (1, 5));
        // A live leader: nothing to do.
        assert!(decide(&view(&[1, 2, 3], &[1, 2], 1), 2).is_empty());
    }

    #[test]
    fn controlled_shutdown_moves_leadership_within_the_isr() {
        let mut v = view(&[1, 2, 3], &[1, 2, 3], 1);
        v.shutting_down.insert(1);
        let w = written(&decide(&v, 2));
        assert_eq!((w[0].leader, w[0].isr.clone()), (2, vec![2, 3]));
        // A leaving follower leaves the ISR; the leader and epoch stay.
        let mut v = view(&[1, 2, 3], &[1, 2, 3], 1);
        v.shutting_down.insert(3);
        let w = written(&decide(&v, 2));
        assert_eq!(
            (w[0].leader, w[0].leader_epoch, w[0].isr.clone()),
            (1, 4, vec![1, 2])
        );
    }
}
