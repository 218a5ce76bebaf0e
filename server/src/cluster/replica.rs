//! Replication on the shards: each partition's role (leader, follower, offline) lives on the shard
//! that owns its log, next to it, in a thread-local map.
//!
//! Leader (Kafka's `Partition.scala` rules):
//! * the high watermark is the smallest log end offset over the *maximal* ISR (the committed ISR
//!   plus one in flight), and stands still while the ISR is smaller than `min.insync.replicas`;
//! * a follower is caught up when its fetch reaches the leader's log end; one not caught up for
//!   `replica.lag.time.max.ms` leaves the ISR; one whose log end reaches the high watermark and
//!   this epoch's start rejoins it. ISR changes are written by the leader alone, conditional on
//!   the state znode's version, and count only once written;
//! * `acks=all` is answered when the high watermark passes the batch: NOT_ENOUGH_REPLICAS before
//!   the append when the ISR is too small, NOT_ENOUGH_REPLICAS_AFTER_APPEND when it shrank while
//!   waiting, REQUEST_TIMED_OUT past the request's timeout, NOT_LEADER_OR_FOLLOWER when leadership
//!   moved.
//!
//! Follower: one fetcher task per shard and leader broker fetches every partition this shard
//! follows from that leader (Fetch v12 with the replica id and the current leader epoch). After
//! every leader or epoch change it first asks OffsetForLeaderEpoch for the end of its own latest
//! epoch and truncates to what the leader has (KIP-101/279), never to its high watermark.

use super::peer::PeerConn;
use super::{Cluster, PartitionState};
use crate::broker::{self, Broker};
use crate::error_code as ec;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use ringlet_engine::config::now_ms;
use ringlet_engine::runtime::{self, io};
use ringlet_engine::Partition;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
struct Peer {
    /// The follower's log end offset as its last fetch said (-1: not yet known).
    leo: i64,
    last_caught_up_ms: i64,
    last_fetch_leader_leo: i64,
    last_fetch_ms: i64,
}

#[derive(Debug)]
pub struct LeaderState {
    pub epoch: i32,
    pub isr: Vec<i32>,
    /// An ISR change being written: until it is, the high watermark counts both.
    pending: Option<Vec<i32>>,
    version: i32,
    controller_epoch: i32,
    replicas: Vec<i32>,
    peers: HashMap<i32, Peer>,
    /// The log end when this epoch began: a follower must reach it to rejoin the ISR.
    epoch_start: i64,
    min_isr: usize,
    /// This broker's id.
    me: i32,
}

#[derive(Debug)]
pub struct FollowerState {
    pub leader: i32,
    pub epoch: i32,
    needs_truncation: bool,
}

#[derive(Debug)]
pub enum Role {
    Leader(LeaderState),
    Follower(FollowerState),
    Offline,
}

type Key = (String, i32);

thread_local! {
    static ROLES: RefCell<HashMap<Key, Role>> = RefCell::new(HashMap::new());
    static FETCHERS: RefCell<HashSet<i32>> = RefCell::new(HashSet::new());
}

fn key(topic: &str, partition: i32) -> Key {
    (topic.to_string(), partition)
}

/// This shard's view of a partition's role, for Metadata-independent checks: `(is leader,
/// leader epoch)`.
pub fn local_role(topic: &str, partition: i32) -> Option<(bool, i32)> {
    ROLES.with(|r| match r.borrow().get(&key(topic, partition))? {
        Role::Leader(l) => Some((true, l.epoch)),
        Role::Follower(f) => Some((false, f.epoch)),
        Role::Offline => Some((false, -1)),
    })
}

/// Forgets a partition's role (topic deleted here).
pub fn forget(topic: &str, partition: i32) {
    ROLES.with(|r| r.borrow_mut().remove(&key(topic, partition)));
}

/// Applies a partition's state from the cluster view, on its owning shard.
pub fn apply(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    state: Option<PartitionState>,
    replicas: Vec<i32>,
    min_isr: usize,
    fenced: bool,
) {
    let me = broker.config.broker_id;
    let Some(part) = broker::local_partition(topic, partition) else {
        return;
    };
    let k = key(topic, partition);
    let mut start_fetcher = None;
    if topic == crate::coordinator::OFFSETS_TOPIC
        && (fenced || state.as_ref().is_none_or(|s| s.leader != me))
    {
        crate::coordinator::resign(partition, broker.config.offsets_topic_num_partitions);
    }
    ROLES.with(|roles| {
        let mut roles = roles.borrow_mut();
        let current = roles.get_mut(&k);
        let Some(state) = state else {
            roles.insert(k, Role::Offline);
            part.notify_watchers();
            return;
        };
        let lead = !fenced && state.leader == me;
        match current {
            Some(Role::Leader(l)) if lead && l.epoch == state.leader_epoch => {
                if state.version > l.version {
                    l.isr = state.isr.clone();
                    l.version = state.version;
                    l.controller_epoch = state.controller_epoch;
                    l.pending = None;
                }
                l.replicas = replicas;
                l.min_isr = min_isr;
                advance_hw(&part, l, me);
                part.notify_watchers();
            }
            _ if lead => {
                let leo = part.log.borrow().log_end_offset();
                if let Err(e) = part.log.borrow_mut().begin_leader_epoch(state.leader_epoch) {
                    tracing::error!(topic, partition, error = %e, "cannot record the leader epoch; not leading");
                    roles.insert(k, Role::Offline);
                    return;
                }
                let now = now_ms();
                let peers = replicas
                    .iter()
                    .filter(|&&b| b != me)
                    .map(|&b| {
                        (
                            b,
                            Peer {
                                leo: -1,
                                last_caught_up_ms: now,
                                last_fetch_leader_leo: -1,
                                last_fetch_ms: 0,
                            },
                        )
                    })
                    .collect();
                let l = LeaderState {
                    epoch: state.leader_epoch,
                    isr: state.isr.clone(),
                    pending: None,
                    version: state.version,
                    controller_epoch: state.controller_epoch,
                    replicas,
                    peers,
                    epoch_start: leo,
                    min_isr,
                    me,
                };
                tracing::info!(topic, partition, leader_epoch = l.epoch, isr = ?l.isr, log_end = leo, high_watermark = part.log.borrow().high_watermark(), "became leader");
                advance_hw(&part, &l, me);
                roles.insert(k, Role::Leader(l));
                part.notify_watchers();
                if topic == crate::coordinator::OFFSETS_TOPIC {
                    crate::coordinator::take_over(
                        partition,
                        broker.config.offsets_topic_num_partitions,
                    );
                }
            }
            Some(Role::Follower(f))
                if state.leader >= 0
                    && f.leader == state.leader
                    && f.epoch == state.leader_epoch => {}
            _ => {
                if state.leader >= 0 && state.leader != me {
                    tracing::info!(topic, partition, leader = state.leader, leader_epoch = state.leader_epoch, "became follower");
                    roles.insert(
                        k,
                        Role::Follower(FollowerState {
                            leader: state.leader,
                            epoch: state.leader_epoch,
                            needs_truncation: true,
                        }),
                    );
                    start_fetcher = Some(state.leader);
                } else {
                    if !matches!(current, Some(Role::Offline)) {
                        tracing::info!(topic, partition, leader = state.leader, fenced, "not leading (no leader, or this broker is fenced)");
                    }
                    roles.insert(k, Role::Offline);
                }
                part.notify_watchers();
            }
        }
    });
    if let Some(leader) = start_fetcher {
        ensure_fetcher(broker, leader);
    }
}

/// Demotes every leader on this shard (the ZooKeeper session is gone).
pub fn fence_all(offsets_partitions: i32) {
    ROLES.with(|roles| {
        for ((topic, partition), role) in roles.borrow_mut().iter_mut() {
            if matches!(role, Role::Leader(_)) {
                tracing::warn!(topic, partition, "fenced: no longer leading");
                if topic == crate::coordinator::OFFSETS_TOPIC {
                    crate::coordinator::resign(*partition, offsets_partitions);
                }
                *role = Role::Offline;
                if let Some(p) = broker::local_partition(topic, *partition) {
                    p.notify_watchers();
                }
            }
        }
    });
}

fn advance_hw(part: &Partition, l: &LeaderState, me: i32) {
    if l.isr.len() < l.min_isr {
        return;
    }
    let mut hw = part.log.borrow().log_end_offset();
    for b in l.isr.iter().chain(l.pending.iter().flatten()) {
        if *b == me {
            continue;
        }
        match l.peers.get(b) {
            Some(p) if p.leo >= 0 => hw = hw.min(p.leo),
            _ => return,
        }
    }
    part.set_high_watermark(hw);
}

/// Before a produce is queued (on the owning shard): the leader epoch if this broker leads.
pub fn check_produce(topic: &str, partition: i32, acks: i16) -> Result<i32, (i16, String)> {
    ROLES.with(|r| match r.borrow().get(&key(topic, partition)) {
        Some(Role::Leader(l)) => {
            if acks == -1 && l.isr.len() < l.min_isr {
                Err((
                    ec::NOT_ENOUGH_REPLICAS,
                    format!(
                        "ISR {:?} is smaller than min.insync.replicas {}",
                        l.isr, l.min_isr
                    ),
                ))
            } else {
                Ok(l.epoch)
            }
        }
        _ => Err((
            ec::NOT_LEADER_OR_FOLLOWER,
            "this broker is not the partition's leader".into(),
        )),
    })
}

/// After a produce's local append: moves the high watermark and, for `acks=all`, waits for it to
/// pass `last_offset`.
pub async fn complete_produce(
    part: Rc<Partition>,
    topic: &str,
    partition: i32,
    epoch: i32,
    last_offset: i64,
    acks: i16,
    timeout: Duration,
) -> Result<(), (i16, String)> {
    let k = key(topic, partition);
    ROLES.with(|r| {
        if let Some(Role::Leader(l)) = r.borrow().get(&k) {
            advance_hw(&part, l, l.me);
        }
    });
    if acks != -1 {
        return Ok(());
    }
    let waiter = std::pin::pin!(Acked {
        part,
        key: k,
        epoch,
        offset: last_offset,
    });
    let timer = std::pin::pin!(io::sleep(timeout));
    match futures_util::future::select(waiter, timer).await {
        futures_util::future::Either::Left((r, _)) => r,
        futures_util::future::Either::Right(_) => Err((
            ec::REQUEST_TIMED_OUT,
            format!("the in-sync replicas did not reach offset {last_offset} in time"),
        )),
    }
}

struct Acked {
    part: Rc<Partition>,
    key: Key,
    epoch: i32,
    offset: i64,
}

impl std::future::Future for Acked {
    type Output = Result<(), (i16, String)>;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        ROLES.with(|r| match r.borrow().get(&self.key) {
            Some(Role::Leader(l)) if l.epoch == self.epoch => {
                if self.part.log.borrow().high_watermark() > self.offset {
                    return Poll::Ready(Ok(()));
                }
                if l.isr.len() < l.min_isr {
                    return Poll::Ready(Err((
                        ec::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                        format!(
                            "ISR {:?} shrank below min.insync.replicas {} after the append",
                            l.isr, l.min_isr
                        ),
                    )));
                }
                self.part.watch(cx.waker());
                Poll::Pending
            }
            _ => Poll::Ready(Err((
                ec::NOT_LEADER_OR_FOLLOWER,
                "leadership moved before the in-sync replicas had the batch".into(),
            ))),
        })
    }
}

/// A consumer's (or admin client's) read: only the leader serves it, in its current epoch.
pub fn check_read(topic: &str, partition: i32, current_leader_epoch: i32) -> Result<(), i16> {
    ROLES.with(|r| match r.borrow().get(&key(topic, partition)) {
        Some(Role::Leader(l)) => check_epoch(l.epoch, current_leader_epoch),
        _ => Err(ec::NOT_LEADER_OR_FOLLOWER),
    })
}

/// KIP-207: a new leader answers ListOffsets(latest) with OFFSET_NOT_AVAILABLE until its high
/// watermark reaches the start of its epoch, so the end offset clients see never goes back.
pub fn check_latest_offset(topic: &str, partition: i32, hw: i64) -> Result<(), i16> {
    ROLES.with(|r| match r.borrow().get(&key(topic, partition)) {
        Some(Role::Leader(l)) if hw < l.epoch_start => Err(ec::OFFSET_NOT_AVAILABLE),
        _ => Ok(()),
    })
}

fn check_epoch(mine: i32, theirs: i32) -> Result<(), i16> {
    if theirs < 0 || theirs == mine {
        Ok(())
    } else if theirs < mine {
        Err(ec::FENCED_LEADER_EPOCH)
    } else {
        Err(ec::UNKNOWN_LEADER_EPOCH)
    }
}

/// A follower's fetch reached the leader (on the owning shard): record its log end, maybe
/// expand the ISR, move the high watermark.
pub fn on_follower_fetch(
    broker: &Arc<Broker>,
    part: &Rc<Partition>,
    topic: &str,
    partition: i32,
    follower: i32,
    fetch_offset: i64,
    current_leader_epoch: i32,
) -> Result<(), i16> {
    let me = broker.config.broker_id;
    let k = key(topic, partition);
    let propose = ROLES.with(|r| {
        let mut r = r.borrow_mut();
        let Some(Role::Leader(l)) = r.get_mut(&k) else {
            return Err(ec::NOT_LEADER_OR_FOLLOWER);
        };
        check_epoch(l.epoch, current_leader_epoch)?;
        let (leo, hw) = {
            let log = part.log.borrow();
            (log.log_end_offset(), log.high_watermark())
        };
        if fetch_offset > leo {
            return Err(ec::OFFSET_OUT_OF_RANGE);
        }
        let Some(p) = l.peers.get_mut(&follower) else {
            return Err(ec::REPLICA_NOT_AVAILABLE);
        };
        let now = now_ms();
        p.leo = fetch_offset;
        if fetch_offset >= leo {
            p.last_caught_up_ms = now;
        } else if fetch_offset >= p.last_fetch_leader_leo && p.last_fetch_leader_leo >= 0 {
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.last_fetch_leader_leo = leo;
        p.last_fetch_ms = now;
        let mut propose = None;
        if !l.isr.contains(&follower)
            && l.pending.is_none()
            && fetch_offset >= hw
            && fetch_offset >= l.epoch_start
            && eligible(broker, follower)
        {
            let mut isr = l.isr.clone();
            isr.push(follower);
            isr.sort_by_key(|b| l.replicas.iter().position(|x| x == b));
            tracing::info!(
                topic,
                partition,
                follower,
                log_end = fetch_offset,
                "follower caught up: expanding the ISR"
            );
            l.pending = Some(isr.clone());
            propose = Some(proposal(l, isr, me));
        }
        advance_hw(part, l, me);
        Ok(propose)
    })?;
    if let Some(state) = propose {
        write_isr(broker, topic.to_string(), partition, state);
    }
    Ok(())
}

/// A follower may rejoin the ISR only while registered and not in controlled shutdown.
fn eligible(broker: &Broker, follower: i32) -> bool {
    broker.cluster.as_ref().is_some_and(|c| {
        let v = c.view();
        v.brokers.contains_key(&follower) && !v.shutting_down.contains(&follower)
    })
}

fn proposal(l: &LeaderState, isr: Vec<i32>, me: i32) -> PartitionState {
    PartitionState {
        leader: me,
        leader_epoch: l.epoch,
        isr,
        controller_epoch: l.controller_epoch,
        version: l.version,
    }
}

/// Writes an ISR change through the coordination thread; applies it once written.
fn write_isr(broker: &Arc<Broker>, topic: String, partition: i32, state: PartitionState) {
    let Some(cluster) = broker.cluster.clone() else {
        return;
    };
    let me = broker.config.broker_id;
    runtime::spawn(async move {
        let r = cluster.alter_isr(&topic, partition, state.clone()).await;
        let part = broker::local_partition(&topic, partition);
        ROLES.with(|roles| {
            let mut roles = roles.borrow_mut();
            let Some(Role::Leader(l)) = roles.get_mut(&key(&topic, partition)) else {
                return;
            };
            if l.epoch != state.leader_epoch {
                return;
            }
            match r {
                Ok(v) if v > l.version => {
                    l.isr = state.isr.clone();
                    l.version = v;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(topic, partition, error = %e, "ISR change not written (the state moved on; waiting for the new state)");
                }
            }
            l.pending = None;
            if let Some(p) = &part {
                advance_hw(p, l, me);
                p.notify_watchers();
            }
        });
    })
    .detach();
}

/// Periodic work on each shard: ISR shrink, high-watermark checkpoints.
pub async fn maintenance_loop(broker: Arc<Broker>) {
    let Some(cluster) = broker.cluster.clone() else {
        return;
    };
    let lag = cluster.config.replica_lag_time_max_ms as i64;
    let tick = Duration::from_millis((lag as u64 / 4).clamp(20, 2500));
    let checkpoint_every = cluster.config.replica_high_watermark_checkpoint_interval_ms as i64;
    let me = broker.config.broker_id;
    let mut last_checkpoint = now_ms();
    let mut checkpointed: HashMap<Key, i64> = HashMap::new();
    while !broker
        .shutting_down
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        io::sleep(tick).await;
        let now = now_ms();
        let mut writes = Vec::new();
        ROLES.with(|roles| {
            for ((topic, partition), role) in roles.borrow_mut().iter_mut() {
                let Role::Leader(l) = role else { continue };
                if l.pending.is_some() {
                    continue;
                }
                let out: Vec<i32> = l
                    .isr
                    .iter()
                    .copied()
                    .filter(|b| {
                        *b != me
                            && l
                                .peers
                                .get(b)
                                .is_none_or(|p| now - p.last_caught_up_ms > lag)
                    })
                    .collect();
                if out.is_empty() {
                    continue;
                }
                let isr: Vec<i32> = l.isr.iter().copied().filter(|b| !out.contains(b)).collect();
                tracing::info!(topic, partition, out_of_sync = ?out, new_isr = ?isr, "followers lagged past replica.lag.time.max.ms: shrinking the ISR");
                l.pending = Some(isr.clone());
                writes.push((topic.clone(), *partition, proposal(l, isr, me)));
            }
        });
        for (topic, partition, state) in writes {
            write_isr(&broker, topic, partition, state);
        }
        if now - last_checkpoint >= checkpoint_every {
            last_checkpoint = now;
            for (k, part) in broker::local_partitions() {
                let log = part.log.borrow();
                if !log.is_replicated() {
                    continue;
                }
                let hw = log.high_watermark();
                if checkpointed.get(&k) != Some(&hw) {
                    if let Err(e) = log.checkpoint_high_watermark() {
                        tracing::warn!(error = %e, "high watermark checkpoint failed");
                    } else {
                        checkpointed.insert(k, hw);
                    }
                }
            }
        }
    }
    // A last checkpoint on the way out.
    for (_, part) in broker::local_partitions() {
        let log = part.log.borrow();
        if log.is_replicated() {
            let _ = log.checkpoint_high_watermark();
        }
    }
}

fn ensure_fetcher(broker: &Arc<Broker>, leader: i32) {
    let fresh = FETCHERS.with(|f| f.borrow_mut().insert(leader));
    if fresh {
        let b = broker.clone();
        runtime::spawn(async move {
            fetcher(b, leader).await;
            FETCHERS.with(|f| f.borrow_mut().remove(&leader));
        })
        .detach();
    }
}

struct Followed {
    topic: String,
    partition: i32,
    epoch: i32,
    truncate: bool,
}

fn followed_from(leader: i32) -> Vec<Followed> {
    ROLES.with(|r| {
        r.borrow()
            .iter()
            .filter_map(|((t, p), role)| match role {
                Role::Follower(f) if f.leader == leader => Some(Followed {
                    topic: t.clone(),
                    partition: *p,
                    epoch: f.epoch,
                    truncate: f.needs_truncation,
                }),
                _ => None,
            })
            .collect()
    })
}

fn still_following(topic: &str, partition: i32, leader: i32, epoch: i32) -> bool {
    ROLES.with(|r| {
        matches!(r.borrow().get(&key(topic, partition)),
            Some(Role::Follower(f)) if f.leader == leader && f.epoch == epoch)
    })
}

fn set_needs_truncation(topic: &str, partition: i32, epoch: i32, v: bool) {
    ROLES.with(|r| {
        if let Some(Role::Follower(f)) = r.borrow_mut().get_mut(&key(topic, partition)) {
            if f.epoch == epoch {
                f.needs_truncation = v;
            }
        }
    });
}

/// The follower side: fetches every partition this shard follows from `leader`, until none is
/// left.
async fn fetcher(broker: Arc<Broker>, leader: i32) {
    let Some(cluster) = broker.cluster.clone() else {
        return;
    };
    let cfg = cluster.config.clone();
    let me = broker.config.broker_id;
    let backoff = Duration::from_millis(cfg.replica_fetch_backoff_ms.max(10));
    let socket_timeout = Duration::from_millis(
        cfg.replica_socket_timeout_ms
            .max(cfg.replica_fetch_wait_max_ms + 1000),
    );
    let client_id = format!("ringlet-replica-{me}-shard-{}", runtime::shard_id());
    let mut conn: Option<PeerConn> = None;
    tracing::info!(leader, "replica fetcher started");
    loop {
        if broker
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let parts = followed_from(leader);
        if parts.is_empty() {
            tracing::info!(leader, "replica fetcher stopped (nothing left to follow)");
            return;
        }
        let addr = cluster.view().brokers.get(&leader).and_then(|b| {
            let (h, p) = b.endpoint(inter_broker_listener(&broker).as_deref())?;
            use std::net::ToSocketAddrs;
            (h.as_str(), p).to_socket_addrs().ok()?.next()
        });
        let Some(addr) = addr else {
            io::sleep(backoff).await;
            continue;
        };
        if conn.as_ref().is_some_and(|c| c.addr != addr) {
            conn = None;
        }
        if conn.is_none() {
            match PeerConn::connect(addr, socket_timeout, &client_id).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(leader, %addr, error = %e, "cannot reach the leader");
                    io::sleep(backoff).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected");
        let outcome = fetch_round(&cluster, c, leader, me, parts, socket_timeout).await;
        match outcome {
            Ok(true) => {}
            Ok(false) => io::sleep(Duration::from_millis(50).min(backoff)).await,
            Err(e) => {
                tracing::debug!(leader, error = %e, "replica fetch failed");
                conn = None;
                io::sleep(backoff).await;
            }
        }
    }
}

/// Where a follower truncates after asking its leader for the end of its latest epoch (KIP-101,
/// KIP-279): `leader` is the leader's answer `(epoch, end offset)` (the largest epoch it has at
/// or below ours, and where that epoch ends in its log), `mine` where that same epoch ends in our
/// log (-1: it is our latest). The follower keeps everything up to the smaller of the two; never
/// truncating to its high watermark, which may lag what was committed. Only when the leader knows
/// none of our epochs does it fall back to the high watermark.
pub fn truncation_target(leader: (i32, i64), mine: i64, leo: i64, hw: i64) -> i64 {
    let (epoch, end) = leader;
    if epoch < 0 || end < 0 {
        return hw.min(leo);
    }
    let mine = if mine < 0 { leo } else { mine };
    end.min(mine).min(leo)
}

fn inter_broker_listener(broker: &Broker) -> Option<String> {
    if let Some(n) = broker
        .cluster
        .as_ref()
        .and_then(|c| c.config.inter_broker_listener_name.clone())
    {
        return Some(n);
    }
    broker
        .config
        .listeners
        .iter()
        .find(|l| l.protocol == crate::config::SecurityProtocol::Plaintext)
        .map(|l| l.name.clone())
}

/// One round: truncation where needed, then one fetch. `Ok(false)` asks for a short pause (the
/// leader refused every partition, e.g. it does not know its new epoch yet).
async fn fetch_round(
    cluster: &Cluster,
    conn: &mut PeerConn,
    leader: i32,
    me: i32,
    parts: Vec<Followed>,
    timeout: Duration,
) -> std::io::Result<bool> {
    let cfg = &cluster.config;
    // Truncation by leader epoch first.
    let to_truncate: Vec<&Followed> = parts.iter().filter(|p| p.truncate).collect();
    if !to_truncate.is_empty() {
        let mut topics: HashMap<&str, Vec<OffsetForLeaderPartition>> = HashMap::new();
        for p in &to_truncate {
            let Some(part) = broker::local_partition(&p.topic, p.partition) else {
                continue;
            };
            let latest = part.log.borrow().latest_epoch();
            topics.entry(&p.topic).or_default().push(
                OffsetForLeaderPartition::default()
                    .with_partition(p.partition)
                    .with_current_leader_epoch(p.epoch)
                    .with_leader_epoch(latest),
            );
        }
        let req = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(me))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetForLeaderTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let resp: OffsetForLeaderEpochResponse = conn
            .call(ApiKey::OffsetForLeaderEpoch, 3, &req, timeout)
            .await?;
        let mut refused = 0;
        for t in resp.topics {
            for r in t.partitions {
                let Some(p) = to_truncate
                    .iter()
                    .find(|p| p.topic == t.topic.0.as_str() && p.partition == r.partition)
                else {
                    continue;
                };
                if r.error_code != ec::NONE {
                    refused += 1;
                    tracing::debug!(
                        topic = p.topic,
                        partition = p.partition,
                        error = ec::name(r.error_code),
                        "OffsetForLeaderEpoch refused"
                    );
                    continue;
                }
                if !still_following(&p.topic, p.partition, leader, p.epoch) {
                    continue;
                }
                let Some(part) = broker::local_partition(&p.topic, p.partition) else {
                    continue;
                };
                let target = {
                    let log = part.log.borrow();
                    let mine = log.end_offset_for_epoch(r.leader_epoch).1;
                    truncation_target(
                        (r.leader_epoch, r.end_offset),
                        mine,
                        log.log_end_offset(),
                        log.high_watermark(),
                    )
                };
                let before = part.log.borrow().log_end_offset();
                if target < before {
                    tracing::warn!(
                        topic = p.topic,
                        partition = p.partition,
                        from = before,
                        to = target,
                        leader,
                        leader_epoch = r.leader_epoch,
                        "truncating to the leader's log (divergent or uncommitted suffix)"
                    );
                    if let Err(e) = part.truncate_to(target).await {
                        tracing::error!(topic = p.topic, partition = p.partition, error = %e, "truncation failed");
                        continue;
                    }
                }
                set_needs_truncation(&p.topic, p.partition, p.epoch, false);
            }
        }
        if refused == to_truncate.len() {
            return Ok(false);
        }
    }
    let parts: Vec<Followed> = followed_from(leader)
        .into_iter()
        .filter(|p| !p.truncate)
        .collect();
    if parts.is_empty() {
        return Ok(false);
    }
    let mut topics: HashMap<&str, Vec<FetchPartition>> = HashMap::new();
    for p in &parts {
        let Some(part) = broker::local_partition(&p.topic, p.partition) else {
            continue;
        };
        let log = part.log.borrow();
        topics.entry(&p.topic).or_default().push(
            FetchPartition::default()
                .with_partition(p.partition)
                .with_current_leader_epoch(p.epoch)
                .with_fetch_offset(log.log_end_offset())
                .with_last_fetched_epoch(log.latest_epoch())
                .with_log_start_offset(log.log_start_offset())
                .with_partition_max_bytes(cfg.replica_fetch_max_bytes),
        );
    }
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(cfg.replica_fetch_wait_max_ms as i32)
        .with_min_bytes(cfg.replica_fetch_min_bytes)
        .with_max_bytes(i32::MAX)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp: FetchResponse = conn.call(ApiKey::Fetch, 12, &req, timeout).await?;
    let mut progressed = false;
    for t in resp.responses {
        for r in t.partitions {
            let Some(p) = parts
                .iter()
                .find(|p| p.topic == t.topic.0.as_str() && p.partition == r.partition_index)
            else {
                continue;
            };
            if !still_following(&p.topic, p.partition, leader, p.epoch) {
                continue;
            }
            let Some(part) = broker::local_partition(&p.topic, p.partition) else {
                continue;
            };
            match r.error_code {
                ec::NONE => {
                    progressed = true;
                    if let Some(records) = r.records.filter(|b| !b.is_empty()) {
                        if let Err(e) = part.append_replica(records).await {
                            tracing::warn!(topic = p.topic, partition = p.partition, error = %e, "replicated append failed; truncating by epoch again");
                            set_needs_truncation(&p.topic, p.partition, p.epoch, true);
                            continue;
                        }
                    }
                    let leo = part.log.borrow().log_end_offset();
                    part.set_high_watermark(r.high_watermark.min(leo));
                }
                ec::OFFSET_OUT_OF_RANGE => {
                    tracing::warn!(
                        topic = p.topic,
                        partition = p.partition,
                        "fetch offset out of range at the leader; truncating by epoch again"
                    );
                    set_needs_truncation(&p.topic, p.partition, p.epoch, true);
                }
                code => {
                    tracing::debug!(
                        topic = p.topic,
                        partition = p.partition,
                        error = ec::name(code),
                        "leader refused the fetch"
                    );
                }
            }
        }
    }
    Ok(progressed)
}

#[cfg(test)]
mod tests {
    use super::truncation_target;

    #[test]
    fn a_follower_keeps_committed_data_its_high_watermark_had_not_caught_up_with() {
        // KIP-101's lost write: the follower has offsets 0..2 (epoch 0) but its high watermark is
        // still 1 when the leader dies; the new leader (epoch 1) has both too and answers (0, 2).
        // Truncating to the high watermark would drop the acknowledged offset 1.
        assert_eq!(truncation_target((0, 2), -1, 2, 1), 2);
    }

    #[test]
    fn a_divergent_suffix_goes_and_nothing_more() {
        // Our epoch 0 runs to 5; the leader's epoch 0 ended at 3 (its epoch 1 began there).
        assert_eq!(truncation_target((0, 3), -1, 5, 2), 3);
        // KIP-279: the leader answers an older epoch (1) than ours (2); ours ends epoch 1 at 4,
        // its at 6: keep up to 4 (our epoch 2 data from 4 on is not the leader's).
        assert_eq!(truncation_target((1, 6), 4, 7, 3), 4);
        // Nothing to cut when the leader has more.
        assert_eq!(truncation_target((3, 100), -1, 50, 40), 50);
        // The leader knows none of our epochs: only what is committed stays.
        assert_eq!(truncation_target((-1, -1), -1, 9, 6), 6);
    }
}
