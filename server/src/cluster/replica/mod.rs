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
//! epoch and truncates to what the leader has (KIP-101/279), never to its high watermark. The
//! follower side is [`fetcher`].

mod fetcher;

use fetcher::ensure_fetcher;
pub use fetcher::truncation_target;
use ringlet_engine::log_manager;

use super::{Cluster, PartitionState};
use crate::error_code as ec;
use ringlet_engine::config::mono_ms;
use ringlet_engine::runtime::{self, io};
use ringlet_engine::Partition;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// A change of this broker's leadership of a partition, as the hooks registered with
/// [`on_leadership_change`] hear it. `Lost` may repeat (a partition that was not led here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leadership {
    Gained,
    Lost,
}

type LeadershipHook = Rc<dyn Fn(&str, i32, Leadership)>;

thread_local! {
    static LEADERSHIP_HOOKS: RefCell<Vec<LeadershipHook>> = const { RefCell::new(Vec::new()) };
}

/// Registers, on the current shard, a callback told of every leadership change of a partition
/// this shard owns (the group coordinator loads or drops the groups of an offsets partition).
/// Replication knows nothing of who listens.
pub fn on_leadership_change(hook: impl Fn(&str, i32, Leadership) + 'static) {
    LEADERSHIP_HOOKS.with(|h| h.borrow_mut().push(Rc::new(hook)));
}

fn leadership_changed(topic: &str, partition: i32, change: Leadership) {
    let hooks = LEADERSHIP_HOOKS.with(|h| h.borrow().clone());
    for hook in hooks {
        hook(topic, partition, change);
    }
}

#[derive(Debug, Clone)]
struct Peer {
    /// The follower's log end offset as its last fetch said (-1: not yet known).
    leo: i64,
    last_caught_up_ms: i64,
    last_fetch_leader_leo: i64,
    last_fetch_ms: i64,
    /// The follower's log start as its last fetch said (-1: not yet known).
    log_start: i64,
}

impl Peer {
    fn new(now: i64) -> Peer {
        Peer {
            leo: -1,
            last_caught_up_ms: now,
            last_fetch_leader_leo: -1,
            last_fetch_ms: 0,
            log_start: -1,
        }
    }
}

/// What a follower's fetch says about one partition.
pub struct FollowerFetch {
    pub follower: i32,
    pub fetch_offset: i64,
    pub log_start_offset: i64,
    pub current_leader_epoch: i32,
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
    /// After a local write failed (disk full, EIO): not fetched again before this instant
    /// (`replica.fetch.backoff.ms`, as Kafka delays a partition after an error).
    delayed_until: Option<std::time::Instant>,
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
    /// Set on a cluster member's shards: a partition with no role here is not led here (a single
    /// broker has no roles and leads everything).
    static CLUSTERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current shard as a cluster member's (see [`clustered`]).
pub fn set_clustered() {
    CLUSTERED.with(|c| c.set(true));
}

/// Whether the current shard belongs to a cluster member: then only a partition whose role here
/// is leader may be written, even before the broker's first view of the cluster (a broker
/// restarted within its old ZooKeeper session has its logs open but leads nothing yet).
pub fn clustered() -> bool {
    CLUSTERED.with(|c| c.get())
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

/// A replica deleted here (its topic deleted, or reassigned away from this broker): its role
/// goes, and the leadership hooks hear it lost (a coordinator unloads an offsets partition's
/// groups).
pub fn remove(topic: &str, partition: i32) {
    let was = ROLES.with(|r| r.borrow_mut().remove(&key(topic, partition)));
    if let Some(Role::Leader(_)) = was {
        leadership_changed(topic, partition, Leadership::Lost);
    }
    if let Some(p) = log_manager::get(topic, partition) {
        p.notify_watchers();
    }
}

/// Applies a partition's state from the cluster view, on its owning shard. A follower that is to
/// lead first stops following and waits for the batches it fetched to be written: otherwise a
/// fetched batch still being written would land after the new epoch's start, under the old
/// leader's epoch, beyond the log end the new epoch (and the coordinators' loads) began at.
pub async fn apply(
    cluster: &Arc<Cluster>,
    topic: &str,
    partition: i32,
    state: Option<PartitionState>,
    replicas: Vec<i32>,
    min_isr: usize,
    fenced: bool,
) {
    let me = cluster.broker_id;
    let Some(part) = log_manager::get(topic, partition) else {
        return;
    };
    let k = key(topic, partition);
    let mut start_fetcher = None;
    if fenced || state.as_ref().is_none_or(|s| s.leader != me) {
        leadership_changed(topic, partition, Leadership::Lost);
    } else {
        let following = ROLES.with(|r| {
            let mut r = r.borrow_mut();
            let following = matches!(r.get(&k), Some(Role::Follower(_)));
            if following {
                r.insert(k.clone(), Role::Offline);
            }
            following
        });
        if following {
            part.appends_idle().await;
        }
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
                if l.replicas != replicas {
                    // Reassignment: new replicas start unknown (not in sync), leaving ones go.
                    let now = mono_ms();
                    l.peers.retain(|b, _| replicas.contains(b));
                    for &b in replicas.iter().filter(|&&b| b != me) {
                        l.peers.entry(b).or_insert_with(|| Peer::new(now));
                    }
                    tracing::info!(topic, partition, replicas = ?replicas, "replicas changed");
                    l.replicas = replicas;
                }
                l.min_isr = min_isr;
                advance_hw(&part, l, me);
                part.notify_watchers();
            }
            _ if lead => {
                let leo = part.log_end_offset();
                if let Err(e) = part.begin_leader_epoch(state.leader_epoch) {
                    tracing::error!(topic, partition, error = %e, "cannot record the leader epoch; not leading");
                    roles.insert(k, Role::Offline);
                    return;
                }
                let now = mono_ms();
                let peers = replicas
                    .iter()
                    .filter(|&&b| b != me)
                    .map(|&b| (b, Peer::new(now)))
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
                tracing::info!(topic, partition, leader_epoch = l.epoch, isr = ?l.isr, log_end = leo, high_watermark = part.high_watermark(), "became leader");
                advance_hw(&part, &l, me);
                roles.insert(k, Role::Leader(l));
                part.notify_watchers();
                leadership_changed(topic, partition, Leadership::Gained);
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
                            delayed_until: None,
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
        ensure_fetcher(cluster, leader);
    }
}

/// Demotes every leader on this shard (the ZooKeeper session is gone).
pub fn fence_all() {
    ROLES.with(|roles| {
        for ((topic, partition), role) in roles.borrow_mut().iter_mut() {
            if matches!(role, Role::Leader(_)) {
                tracing::warn!(topic, partition, "fenced: no longer leading");
                leadership_changed(topic, *partition, Leadership::Lost);
                *role = Role::Offline;
                if let Some(p) = log_manager::get(topic, *partition) {
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
    let mut hw = part.log_end_offset();
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
                if self.part.high_watermark() > self.offset {
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

/// Whether `follower` is in the ISR of a partition led here.
pub fn in_sync(topic: &str, partition: i32, follower: i32) -> bool {
    ROLES.with(|r| match r.borrow().get(&key(topic, partition)) {
        Some(Role::Leader(l)) => l.isr.contains(&follower),
        _ => false,
    })
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
    cluster: &Arc<Cluster>,
    part: &Rc<Partition>,
    topic: &str,
    partition: i32,
    fetch: FollowerFetch,
) -> Result<(), i16> {
    let FollowerFetch {
        follower,
        fetch_offset,
        log_start_offset,
        current_leader_epoch,
    } = fetch;
    let me = cluster.broker_id;
    let k = key(topic, partition);
    let propose = ROLES.with(|r| {
        let mut r = r.borrow_mut();
        let Some(Role::Leader(l)) = r.get_mut(&k) else {
            return Err(ec::NOT_LEADER_OR_FOLLOWER);
        };
        check_epoch(l.epoch, current_leader_epoch)?;
        let o = part.offsets();
        let (leo, hw) = (o.log_end, o.high_watermark);
        if fetch_offset > leo {
            return Err(ec::OFFSET_OUT_OF_RANGE);
        }
        let Some(p) = l.peers.get_mut(&follower) else {
            return Err(ec::REPLICA_NOT_AVAILABLE);
        };
        let now = mono_ms();
        p.leo = fetch_offset;
        p.log_start = log_start_offset;
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
            && eligible(cluster, follower)
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
        write_isr(cluster, topic.to_string(), partition, state);
    }
    Ok(())
}

/// Kafka's low watermark of a partition led here: the smallest log start of the leader
/// (`leader_log_start`) and of every follower in the ISR (-1, unknown, counts as 0), which
/// DeleteRecords waits on. `None` when this broker does not lead the partition.
pub fn low_watermark(topic: &str, partition: i32, leader_log_start: i64) -> Option<i64> {
    ROLES.with(|r| match r.borrow().get(&key(topic, partition)) {
        Some(Role::Leader(l)) => Some(
            l.isr
                .iter()
                .filter(|&&b| b != l.me)
                .map(|b| l.peers.get(b).map_or(0, |p| p.log_start.max(0)))
                .fold(leader_log_start, i64::min),
        ),
        _ => None,
    })
}

/// A follower may rejoin the ISR only while registered and not in controlled shutdown.
fn eligible(cluster: &Cluster, follower: i32) -> bool {
    let v = cluster.view();
    v.brokers.contains_key(&follower) && !v.shutting_down.contains(&follower)
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
fn write_isr(cluster: &Arc<Cluster>, topic: String, partition: i32, state: PartitionState) {
    let cluster = cluster.clone();
    let me = cluster.broker_id;
    runtime::spawn(async move {
        let r = cluster.alter_isr(&topic, partition, state.clone()).await;
        let part = log_manager::get(&topic, partition);
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
pub async fn maintenance_loop(cluster: Arc<Cluster>) {
    let lag = cluster.config.replica_lag_time_max_ms as i64;
    let tick = Duration::from_millis((lag as u64 / 4).clamp(20, 2500));
    let checkpoint_every = cluster.config.replica_high_watermark_checkpoint_interval_ms as i64;
    let me = cluster.broker_id;
    let mut last_checkpoint = mono_ms();
    let mut checkpointed: HashMap<ringlet_engine::TopicPartition, i64> = HashMap::new();
    while !cluster.is_stopping() {
        io::sleep(tick).await;
        let now = mono_ms();
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
            write_isr(&cluster, topic, partition, state);
        }
        if now - last_checkpoint >= checkpoint_every {
            last_checkpoint = now;
            for (tp, part) in log_manager::all() {
                if !part.is_replicated() {
                    continue;
                }
                let hw = part.high_watermark();
                if checkpointed.get(&tp) != Some(&hw) {
                    if let Err(e) = part.checkpoint_high_watermark() {
                        tracing::warn!(error = %e, "high watermark checkpoint failed");
                    } else {
                        checkpointed.insert(tp, hw);
                    }
                }
            }
        }
    }
    // A last checkpoint on the way out.
    for (_, part) in log_manager::all() {
        let _ = part.checkpoint_high_watermark();
    }
}
