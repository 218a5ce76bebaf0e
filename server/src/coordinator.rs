//! The group coordinator (Kafka's classic consumer-group protocol) and durable committed offsets.
//!
//! Each group belongs to one partition of the internal `__consumer_offsets` topic (Java's
//! `abs(groupId.hashCode) % offsets.topic.num.partitions`, as Kafka places it), and so to the
//! shard that owns that partition: all of a group's state lives on that shard, and every group
//! request is forwarded there. Committed offsets are appended to that partition through the same
//! engine as any topic (acknowledged after the flush policy is satisfied) and replayed from it
//! when the shard starts. Group membership is not persisted: after a restart a group is Empty and
//! its members rejoin (they get UNKNOWN_MEMBER_ID and start over), keeping their committed offsets.
//!
//! The broker is agnostic of assignment strategies: it picks the protocol every member supports
//! (the leader's most preferred one) and hands out the leader's assignment.

use crate::broker::{self, Broker};
use crate::error_code as ec;
use bytes::Bytes;
use futures_channel::oneshot;
use ringlet_engine::batch;
use ringlet_engine::runtime::{self, io};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// What a JoinGroup gets back.
#[derive(Clone, Debug, Default)]
pub struct JoinResult {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// For the leader: every member's id, instance id and metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

#[derive(Clone, Debug, Default)]
pub struct SyncResult {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

struct Member {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_heartbeat: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    /// This member's subscription metadata for `protocol` (empty if it does not speak it).
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(p, _)| p == protocol)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    }
}

/// A committed offset.
#[derive(Clone, Debug)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_ms: i64,
}

pub struct Group {
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    /// (handed out at, the session timeout the member asked for): it must rejoin within it.
    pending: HashMap<String, (Instant, Duration)>,
    rebalance_deadline: Option<Instant>,
    /// The first rebalance of an empty group waits this long for more members.
    initial_delay_until: Option<Instant>,
    pub offsets: BTreeMap<(String, i32), Committed>,
}

impl Group {
    fn new() -> Group {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            offsets: BTreeMap::new(),
        }
    }

    fn prepare_rebalance(&mut self, initial_delay: Duration) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        // Anyone parked in SyncGroup learns that the generation is over.
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult {
                    error_code: ec::REBALANCE_IN_PROGRESS,
                    ..SyncResult::default()
                });
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60));
        let now = Instant::now();
        self.rebalance_deadline = Some(now + timeout);
        self.initial_delay_until = (self.state == GroupState::Empty && !initial_delay.is_zero())
            .then(|| now + initial_delay);
        self.state = GroupState::PreparingRebalance;
    }

    /// Completes the join phase when every member has rejoined (or the deadline passed).
    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = !self.members.is_empty()
            && self.members.values().all(|m| m.join_waiter.is_some())
            && self.pending.is_empty();
        let deadline_passed = self.rebalance_deadline.is_some_and(|d| now >= d);
        let delaying = self.initial_delay_until.is_some_and(|d| now < d);
        if !(deadline_passed || (all_joined && !delaying)) {
            return;
        }
        // Members that did not rejoin in time are out.
        self.members.retain(|_, m| m.join_waiter.is_some());
        self.pending.clear();
        self.generation += 1;
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.leader = None;
            self.protocol_name = None;
            return;
        }
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        let leader = self.leader.clone().expect("a member leads");
        // The leader's most preferred protocol that every member supports.
        let chosen = self.members[&leader]
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == name))
            });
        self.protocol_name = chosen.clone();
        let Some(chosen) = chosen else {
            for (_, m) in self.members.iter_mut() {
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.send(JoinResult {
                        error_code: ec::INCONSISTENT_GROUP_PROTOCOL,
                        ..JoinResult::default()
                    });
                }
            }
            self.members.clear();
            self.state = GroupState::Empty;
            return;
        };
        let roster: Vec<(String, Option<String>, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| {
                let meta = m.metadata_for(&chosen);
                (id.clone(), m.instance_id.clone(), meta)
            })
            .collect();
        self.state = GroupState::CompletingRebalance;
        for (id, m) in self.members.iter_mut() {
            m.assignment = Bytes::new();
            m.last_heartbeat = now;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult {
                    error_code: ec::NONE,
                    generation_id: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: Some(chosen.clone()),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader {
                        roster.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    fn remove_member(&mut self, id: &str, initial_delay: Duration) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult {
                    error_code: ec::UNKNOWN_MEMBER_ID,
                    ..JoinResult::default()
                });
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult {
                    error_code: ec::UNKNOWN_MEMBER_ID,
                    ..SyncResult::default()
                });
            }
        }
        match self.state {
            GroupState::Empty => {}
            _ if self.members.is_empty() && self.state != GroupState::PreparingRebalance => {
                self.state = GroupState::Empty;
                self.generation += 1;
                self.leader = None;
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(Instant::now()),
            _ => self.prepare_rebalance(initial_delay),
        }
    }
}

thread_local! {
    static GROUPS: RefCell<HashMap<String, Group>> = RefCell::new(HashMap::new());
    /// Offsets partitions (in a cluster) whose groups this shard serves: led here and loaded.
    /// `false` while loading.
    static SERVING: RefCell<HashMap<i32, bool>> = RefCell::new(HashMap::new());
}

/// In a cluster: whether this shard coordinates the groups of offsets partition `partition`
/// now; the error code otherwise (NOT_COORDINATOR, or COORDINATOR_LOAD_IN_PROGRESS).
pub fn serving(partition: i32) -> Result<(), i16> {
    SERVING.with(|s| match s.borrow().get(&partition) {
        Some(true) => Ok(()),
        Some(false) => Err(ec::COORDINATOR_LOAD_IN_PROGRESS),
        None => Err(ec::NOT_COORDINATOR),
    })
}

/// This broker became the leader of offsets partition `partition` (on its shard): replay its
/// log (to the log end: everything acknowledged is there) into group state, then serve.
pub fn take_over(partition: i32, offsets_partitions: i32) {
    SERVING.with(|s| s.borrow_mut().insert(partition, false));
    runtime::spawn(async move {
        drop_groups_of(partition, offsets_partitions);
        let n = match broker::local_partition(OFFSETS_TOPIC, partition) {
            Some(part) => load_partition(&part, true).await,
            None => 0,
        };
        GROUPS.with(|g| {
            g.borrow_mut()
                .retain(|_, grp| !grp.offsets.is_empty() || !grp.members.is_empty())
        });
        SERVING.with(|s| {
            if let Some(v) = s.borrow_mut().get_mut(&partition) {
                *v = true;
            }
        });
        tracing::info!(
            partition,
            committed_offsets_loaded = n,
            "now coordinating the groups of this offsets partition"
        );
    })
    .detach();
}

/// Leadership of offsets partition `partition` moved away: forget its groups.
pub fn resign(partition: i32, offsets_partitions: i32) {
    if SERVING
        .with(|s| s.borrow_mut().remove(&partition))
        .is_some()
    {
        drop_groups_of(partition, offsets_partitions);
        tracing::info!(
            partition,
            "no longer coordinating the groups of this offsets partition"
        );
    }
}

fn drop_groups_of(partition: i32, offsets_partitions: i32) {
    GROUPS.with(|g| {
        g.borrow_mut()
            .retain(|name, _| partition_for(name, offsets_partitions) != partition)
    });
}

/// Configs of the offsets topic. Without compaction (future work) its segments must never be
/// deleted by time, or a group that committed once long ago would lose its offsets; so
/// `retention.ms=-1`, and segments of `offsets.topic.segment.bytes` (Kafka's 100 MiB default).
pub fn offsets_topic_configs() -> std::collections::BTreeMap<String, String> {
    [("retention.ms", "-1"), ("segment.bytes", "104857600")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Kafka's placement: `abs(groupId.hashCode) % partitions`, with Java's String.hashCode.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for c in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(c));
    }
    // Kafka's Utils.abs maps i32::MIN to 0.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// The shard owning a group's offsets partition.
pub fn owner(broker: &Broker, group: &str) -> Option<(runtime::ShardId, i32)> {
    let p = partition_for(group, broker.config.offsets_topic_num_partitions);
    broker.owner(OFFSETS_TOPIC, p).map(|s| (s, p))
}

fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + group.len() + topic.len());
    k.push(1u8);
    k.extend_from_slice(&(group.len() as u16).to_be_bytes());
    k.extend_from_slice(group.as_bytes());
    k.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    k.extend_from_slice(topic.as_bytes());
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

fn parse_key(k: &[u8]) -> Option<(String, String, i32)> {
    if k.first() != Some(&1) {
        return None;
    }
    let gl = u16::from_be_bytes(k.get(1..3)?.try_into().ok()?) as usize;
    let group = std::str::from_utf8(k.get(3..3 + gl)?).ok()?.to_string();
    let at = 3 + gl;
    let tl = u16::from_be_bytes(k.get(at..at + 2)?.try_into().ok()?) as usize;
    let topic = std::str::from_utf8(k.get(at + 2..at + 2 + tl)?)
        .ok()?
        .to_string();
    let at = at + 2 + tl;
    let partition = i32::from_be_bytes(k.get(at..at + 4)?.try_into().ok()?);
    Some((group, topic, partition))
}

fn offset_value(c: &Committed) -> Vec<u8> {
    let mut v = Vec::with_capacity(24 + c.metadata.len());
    v.extend_from_slice(&c.offset.to_be_bytes());
    v.extend_from_slice(&c.leader_epoch.to_be_bytes());
    v.extend_from_slice(&c.commit_ms.to_be_bytes());
    v.extend_from_slice(&(c.metadata.len() as u32).to_be_bytes());
    v.extend_from_slice(c.metadata.as_bytes());
    v
}

fn parse_value(v: &[u8]) -> Option<Committed> {
    let offset = i64::from_be_bytes(v.get(0..8)?.try_into().ok()?);
    let leader_epoch = i32::from_be_bytes(v.get(8..12)?.try_into().ok()?);
    let commit_ms = i64::from_be_bytes(v.get(12..20)?.try_into().ok()?);
    let ml = u32::from_be_bytes(v.get(20..24)?.try_into().ok()?) as usize;
    let metadata = String::from_utf8_lossy(v.get(24..24 + ml)?).into_owned();
    Some(Committed {
        offset,
        leader_epoch,
        metadata,
        commit_ms,
    })
}

/// Replays this shard's offsets partitions into group state (start-up, before serving).
pub async fn load_local() -> usize {
    let mut loaded = 0;
    for ((topic, _), part) in broker::local_partitions() {
        if topic != OFFSETS_TOPIC {
            continue;
        }
        loaded += load_partition(&part, false).await;
    }
    // Groups with only tombstones left are gone.
    GROUPS.with(|g| g.borrow_mut().retain(|_, grp| !grp.offsets.is_empty()));
    loaded
}

/// Replays one offsets partition into group state; returns the records read.
async fn load_partition(part: &std::rc::Rc<ringlet_engine::Partition>, to_log_end: bool) -> usize {
    let mut loaded = 0;
    {
        let mut offset = part.log.borrow().log_start_offset();
        loop {
            let r = match part.read_upto(offset, 4 << 20, to_log_end).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "reading the offsets log failed");
                    break;
                }
            };
            let Some(region) = r.region else { break };
            let Ok(bytes) = io::read_at(region.file.as_raw_fd(), region.position, region.len).await
            else {
                break;
            };
            let mut rest = &bytes[..];
            let mut progressed = false;
            while let Ok(b) = batch::next_batch(rest) {
                let res = batch::for_each_record(b, |_, k, v| {
                    let Some((group, topic, partition)) = k.and_then(parse_key) else {
                        return;
                    };
                    GROUPS.with(|g| {
                        let mut g = g.borrow_mut();
                        let grp = g.entry(group).or_insert_with(Group::new);
                        match v.and_then(parse_value) {
                            Some(c) => {
                                grp.offsets.insert((topic, partition), c);
                            }
                            None => {
                                grp.offsets.remove(&(topic, partition));
                            }
                        }
                    });
                    loaded += 1;
                });
                if let Err(e) = res {
                    tracing::warn!(error = %e, "skipping an unreadable batch in the offsets log");
                }
                let h = batch::BatchHeader::parse(b).expect("validated batch");
                offset = h.last_offset() + 1;
                progressed = true;
                rest = &rest[b.len()..];
            }
            if !progressed {
                break;
            }
        }
    }
    loaded
}

fn new_member_id(client_id: &str) -> String {
    let n = ringlet_engine::config::now_ms();
    let r = crc32c::crc32c(format!("{client_id}{n}{:?}", Instant::now()).as_bytes());
    format!("{client_id}-{n:x}-{r:08x}")
}

pub struct JoinRequest {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED with its id.
    pub require_known_member_id: bool,
    pub initial_delay: Duration,
}

/// JoinGroup on the owning shard.
pub async fn join(req: JoinRequest) -> JoinResult {
    let fail = |code| JoinResult {
        error_code: code,
        ..JoinResult::default()
    };
    let rx = GROUPS.with(|g| {
        let mut g = g.borrow_mut();
        let group = g.entry(req.group.clone()).or_insert_with(Group::new);
        if group
            .protocol_type
            .as_ref()
            .is_some_and(|t| *t != req.protocol_type)
            && !group.members.is_empty()
        {
            return Err(Box::new(fail(ec::INCONSISTENT_GROUP_PROTOCOL)));
        }
        let mut member_id = req.member_id.clone();
        if member_id.is_empty() {
            // Static members keep their place: a new id replaces the old one.
            if let Some(iid) = &req.instance_id {
                if let Some(old) = group
                    .members
                    .iter()
                    .find(|(_, m)| m.instance_id.as_ref() == Some(iid))
                    .map(|(k, _)| k.clone())
                {
                    let m = group.members.remove(&old).expect("present");
                    member_id = new_member_id(&req.client_id);
                    if group.leader.as_deref() == Some(old.as_str()) {
                        group.leader = Some(member_id.clone());
                    }
                    group.members.insert(member_id.clone(), m);
                } else {
                    member_id = new_member_id(&req.client_id);
                }
            } else {
                member_id = new_member_id(&req.client_id);
                if req.require_known_member_id {
                    group
                        .pending
                        .insert(member_id.clone(), (Instant::now(), req.session_timeout));
                    return Err(Box::new(JoinResult {
                        error_code: ec::MEMBER_ID_REQUIRED,
                        member_id,
                        ..JoinResult::default()
                    }));
                }
            }
        } else if !group.members.contains_key(&member_id)
            && group.pending.remove(&member_id).is_none()
        {
            return Err(Box::new(fail(ec::UNKNOWN_MEMBER_ID)));
        }
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let m = group
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                instance_id: req.instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                last_heartbeat: now,
                join_waiter: None,
                sync_waiter: None,
            });
        m.protocols = req.protocols.clone();
        m.session_timeout = req.session_timeout;
        m.rebalance_timeout = req.rebalance_timeout;
        m.last_heartbeat = now;
        if let Some(old) = m.join_waiter.replace(tx) {
            let _ = old.send(fail(ec::UNKNOWN_MEMBER_ID));
        }
        group.protocol_type = Some(req.protocol_type.clone());
        group.prepare_rebalance(req.initial_delay);
        group.maybe_complete_join(now);
        Ok(rx)
    });
    match rx {
        Err(r) => *r,
        Ok(rx) => rx.await.unwrap_or_else(|_| fail(ec::UNKNOWN_MEMBER_ID)),
    }
}

/// SyncGroup on the owning shard.
pub async fn sync(
    group_id: String,
    generation: i32,
    member_id: String,
    assignments: Vec<(String, Bytes)>,
) -> SyncResult {
    let fail = |code| SyncResult {
        error_code: code,
        ..SyncResult::default()
    };
    let rx = GROUPS.with(|g| {
        let mut g = g.borrow_mut();
        let Some(group) = g.get_mut(&group_id) else {
            return Err(fail(ec::UNKNOWN_MEMBER_ID));
        };
        if !group.members.contains_key(&member_id) {
            return Err(fail(ec::UNKNOWN_MEMBER_ID));
        }
        if generation != group.generation {
            return Err(fail(ec::ILLEGAL_GENERATION));
        }
        let (ptype, pname) = (group.protocol_type.clone(), group.protocol_name.clone());
        match group.state {
            GroupState::PreparingRebalance => Err(fail(ec::REBALANCE_IN_PROGRESS)),
            GroupState::Empty => Err(fail(ec::UNKNOWN_MEMBER_ID)),
            GroupState::Stable => {
                let m = &group.members[&member_id];
                Err(SyncResult {
                    error_code: ec::NONE,
                    protocol_type: ptype,
                    protocol_name: pname,
                    assignment: m.assignment.clone(),
                })
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let m = group.members.get_mut(&member_id).expect("checked");
                m.last_heartbeat = Instant::now();
                m.sync_waiter = Some(tx);
                if group.leader.as_deref() == Some(member_id.as_str()) {
                    for (id, a) in assignments {
                        if let Some(m) = group.members.get_mut(&id) {
                            m.assignment = a;
                        }
                    }
                    group.state = GroupState::Stable;
                    for m in group.members.values_mut() {
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(SyncResult {
                                error_code: ec::NONE,
                                protocol_type: ptype.clone(),
                                protocol_name: pname.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                }
                Ok(rx)
            }
        }
    });
    match rx {
        Err(r) => r,
        Ok(rx) => rx.await.unwrap_or_else(|_| fail(ec::REBALANCE_IN_PROGRESS)),
    }
}

/// Heartbeat on the owning shard.
pub fn heartbeat(group_id: &str, generation: i32, member_id: &str) -> i16 {
    GROUPS.with(|g| {
        let mut g = g.borrow_mut();
        let Some(group) = g.get_mut(group_id) else {
            return ec::UNKNOWN_MEMBER_ID;
        };
        let state = group.state;
        let gen = group.generation;
        let Some(m) = group.members.get_mut(member_id) else {
            return ec::UNKNOWN_MEMBER_ID;
        };
        m.last_heartbeat = Instant::now();
        match state {
            GroupState::PreparingRebalance => ec::REBALANCE_IN_PROGRESS,
            _ if generation != gen => ec::ILLEGAL_GENERATION,
            _ => ec::NONE,
        }
    })
}

/// LeaveGroup on the owning shard: (member id or instance id) per member; returns a code each.
pub fn leave(
    group_id: &str,
    members: &[(String, Option<String>)],
    initial_delay: Duration,
) -> Vec<i16> {
    GROUPS.with(|g| {
        let mut g = g.borrow_mut();
        let Some(group) = g.get_mut(group_id) else {
            return vec![ec::UNKNOWN_MEMBER_ID; members.len()];
        };
        members
            .iter()
            .map(|(id, iid)| {
                let id = if id.is_empty() {
                    iid.as_ref()
                        .and_then(|i| {
                            group
                                .members
                                .iter()
                                .find(|(_, m)| m.instance_id.as_ref() == Some(i))
                                .map(|(k, _)| k.clone())
                        })
                        .unwrap_or_default()
                } else {
                    id.clone()
                };
                if group.members.contains_key(&id) {
                    group.remove_member(&id, initial_delay);
                    ec::NONE
                } else {
                    ec::UNKNOWN_MEMBER_ID
                }
            })
            .collect()
    })
}

/// Expires silent members and overdue rebalances on this shard (every 100 ms), and committed
/// offsets of empty groups past `offsets.retention.minutes`.
pub async fn tick_loop(broker: Arc<Broker>) {
    let initial_delay = Duration::from_millis(broker.config.group_initial_rebalance_delay_ms);
    let mut last_retention = Instant::now();
    loop {
        io::sleep(Duration::from_millis(100)).await;
        let now = Instant::now();
        GROUPS.with(|g| {
            for (name, group) in g.borrow_mut().iter_mut() {
                let expired: Vec<String> = group
                    .members
                    .iter()
                    .filter(|(_, m)| {
                        m.join_waiter.is_none()
                            && now.duration_since(m.last_heartbeat) > m.session_timeout
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for id in expired {
                    tracing::info!(group = %name, member = %id, "member session expired");
                    group.remove_member(&id, initial_delay);
                }
                // A member id handed out with MEMBER_ID_REQUIRED that never came back stops
                // holding up the join after its session timeout, as in Kafka.
                group
                    .pending
                    .retain(|_, (t, session)| now.duration_since(*t) < *session);
                group.maybe_complete_join(now);
            }
        });
        if last_retention.elapsed() >= Duration::from_secs(60) {
            last_retention = Instant::now();
            let cutoff =
                ringlet_engine::config::now_ms() - broker.config.offsets_retention_minutes * 60_000;
            let expired: Vec<(String, Vec<(String, i32)>)> = GROUPS.with(|g| {
                g.borrow()
                    .iter()
                    .filter(|(_, grp)| grp.state == GroupState::Empty)
                    .map(|(name, grp)| {
                        (
                            name.clone(),
                            grp.offsets
                                .iter()
                                .filter(|(_, c)| c.commit_ms < cutoff)
                                .map(|(k, _)| k.clone())
                                .collect::<Vec<_>>(),
                        )
                    })
                    .filter(|(_, v)| !v.is_empty())
                    .collect()
            });
            for (group, parts) in expired {
                tracing::info!(group = %group, partitions = parts.len(), "expiring committed offsets (offsets.retention.minutes)");
                let _ = delete_offsets(&broker, &group, &parts).await;
            }
        }
    }
}

/// Validates a commit's member and generation, as Kafka does for group members.
pub fn check_commit(group_id: &str, generation: i32, member_id: &str) -> i16 {
    GROUPS.with(|g| {
        let g = g.borrow();
        let Some(group) = g.get(group_id) else {
            return if generation < 0 {
                ec::NONE
            } else {
                ec::UNKNOWN_MEMBER_ID
            };
        };
        if generation < 0 && member_id.is_empty() {
            // A standalone consumer (assign, no group membership) may commit to an empty group.
            return if group.state == GroupState::Empty {
                ec::NONE
            } else {
                ec::UNKNOWN_MEMBER_ID
            };
        }
        if !group.members.contains_key(member_id) {
            return ec::UNKNOWN_MEMBER_ID;
        }
        if generation != group.generation {
            return ec::ILLEGAL_GENERATION;
        }
        // As in Kafka: a member of the current generation may still commit while the group
        // prepares a rebalance (so it can hand its partitions over cleanly); once the new
        // generation is handed out and awaits its assignment, commits wait for SyncGroup.
        if group.state == GroupState::CompletingRebalance {
            return ec::REBALANCE_IN_PROGRESS;
        }
        ec::NONE
    })
}

/// Appends to an offsets partition; in a cluster only as its leader, and acknowledged once every
/// in-sync replica has it (Kafka writes offsets with acks=all, within
/// `offsets.commit.timeout.ms`, 5 s).
async fn replicated_append(
    part: &std::rc::Rc<ringlet_engine::Partition>,
    partition: i32,
    records: Bytes,
) -> Result<(), i16> {
    let leading = crate::cluster::replica::local_role(OFFSETS_TOPIC, partition);
    let epoch = match leading {
        None => None,
        Some(_) => Some(
            crate::cluster::replica::check_produce(OFFSETS_TOPIC, partition, -1).map_err(
                |(code, _)| match code {
                    ec::NOT_LEADER_OR_FOLLOWER => ec::NOT_COORDINATOR,
                    _ => ec::COORDINATOR_NOT_AVAILABLE,
                },
            )?,
        ),
    };
    let info = part
        .append(records)
        .await
        .map_err(|e| ec::from_log_error(&e))?;
    if let Some(epoch) = epoch {
        crate::cluster::replica::complete_produce(
            part.clone(),
            OFFSETS_TOPIC,
            partition,
            epoch,
            info.last_offset,
            -1,
            Duration::from_secs(5),
        )
        .await
        .map_err(|(code, _)| match code {
            ec::NOT_LEADER_OR_FOLLOWER => ec::NOT_COORDINATOR,
            ec::NOT_ENOUGH_REPLICAS | ec::NOT_ENOUGH_REPLICAS_AFTER_APPEND => {
                ec::COORDINATOR_NOT_AVAILABLE
            }
            c => c,
        })?;
    }
    Ok(())
}

/// Appends commits to the group's offsets partition, then records them. Returns a code.
pub async fn commit(group_id: &str, partition: i32, commits: Vec<(String, i32, Committed)>) -> i16 {
    let Some(part) = broker::local_partition(OFFSETS_TOPIC, partition) else {
        return ec::NOT_COORDINATOR;
    };
    let keys: Vec<(Vec<u8>, Vec<u8>)> = commits
        .iter()
        .map(|(t, p, c)| (offset_key(group_id, t, *p), offset_value(c)))
        .collect();
    let recs: Vec<batch::KeyValue<'_>> = keys
        .iter()
        .map(|(k, v)| (Some(k.as_slice()), Some(v.as_slice())))
        .collect();
    let b = batch::build_keyed_batch(&recs, ringlet_engine::config::now_ms());
    if let Err(code) = replicated_append(&part, partition, Bytes::from(b)).await {
        tracing::warn!(
            group = group_id,
            error = ec::name(code),
            "writing committed offsets failed"
        );
        return code;
    }
    GROUPS.with(|g| {
        let mut g = g.borrow_mut();
        let grp = g.entry(group_id.to_string()).or_insert_with(Group::new);
        for (t, p, c) in commits {
            grp.offsets.insert((t, p), c);
        }
    });
    ec::NONE
}

/// Writes tombstones for a group's offsets (OffsetDelete, DeleteGroups, retention).
pub async fn delete_offsets(broker: &Arc<Broker>, group_id: &str, parts: &[(String, i32)]) -> i16 {
    let Some((_, partition)) = owner(broker, group_id) else {
        return ec::COORDINATOR_NOT_AVAILABLE;
    };
    let Some(part) = broker::local_partition(OFFSETS_TOPIC, partition) else {
        return ec::NOT_COORDINATOR;
    };
    if parts.is_empty() {
        return ec::NONE;
    }
    let keys: Vec<Vec<u8>> = parts
        .iter()
        .map(|(t, p)| offset_key(group_id, t, *p))
        .collect();
    let recs: Vec<batch::KeyValue<'_>> = keys.iter().map(|k| (Some(k.as_slice()), None)).collect();
    let b = batch::build_keyed_batch(&recs, ringlet_engine::config::now_ms());
    if let Err(code) = replicated_append(&part, partition, Bytes::from(b)).await {
        return code;
    }
    GROUPS.with(|g| {
        if let Some(grp) = g.borrow_mut().get_mut(group_id) {
            for k in parts {
                grp.offsets.remove(k);
            }
        }
    });
    ec::NONE
}

/// Committed offsets of a group (all, or the requested partitions).
pub fn fetch_offsets(group_id: &str) -> BTreeMap<(String, i32), Committed> {
    GROUPS.with(|g| {
        g.borrow()
            .get(group_id)
            .map(|grp| grp.offsets.clone())
            .unwrap_or_default()
    })
}

/// A group's description for DescribeGroups / ListGroups.
pub struct Described {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

pub fn describe(group_id: &str) -> Option<Described> {
    GROUPS.with(|g| {
        let g = g.borrow();
        let grp = g.get(group_id)?;
        let proto = grp.protocol_name.clone().unwrap_or_default();
        Some(Described {
            state: grp.state.name(),
            protocol_type: grp.protocol_type.clone().unwrap_or_default(),
            protocol: proto.clone(),
            members: grp
                .members
                .iter()
                .map(|(id, m)| {
                    let meta = m.metadata_for(&proto);
                    (
                        id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        meta,
                        m.assignment.clone(),
                    )
                })
                .collect(),
        })
    })
}

/// Every group on this shard: (id, protocol type, state).
pub fn list_local() -> Vec<(String, String, &'static str)> {
    GROUPS.with(|g| {
        g.borrow()
            .iter()
            .map(|(k, grp)| {
                (
                    k.clone(),
                    grp.protocol_type.clone().unwrap_or_default(),
                    grp.state.name(),
                )
            })
            .collect()
    })
}

/// DeleteGroups on the owning shard: only empty groups; their offsets get tombstones.
pub async fn delete_group(broker: &Arc<Broker>, group_id: &str) -> i16 {
    let state = GROUPS.with(|g| g.borrow().get(group_id).map(|grp| grp.state));
    match state {
        None => ec::GROUP_ID_NOT_FOUND,
        Some(GroupState::Empty) => {
            let parts: Vec<(String, i32)> = fetch_offsets(group_id).into_keys().collect();
            let code = delete_offsets(broker, group_id, &parts).await;
            if code == ec::NONE {
                GROUPS.with(|g| g.borrow_mut().remove(group_id));
            }
            code
        }
        Some(_) => ec::NON_EMPTY_GROUP,
    }
}

/// A group as metrics show it.
pub struct GroupMetrics {
    pub group: String,
    pub state: &'static str,
    pub members: usize,
    pub offsets: Vec<((String, i32), i64)>,
}

/// Every group on this shard, for the metrics endpoint.
pub fn metrics_local() -> Vec<GroupMetrics> {
    GROUPS.with(|g| {
        g.borrow()
            .iter()
            .map(|(id, grp)| GroupMetrics {
                group: id.clone(),
                state: grp.state.name(),
                members: grp.members.len(),
                offsets: grp
                    .offsets
                    .iter()
                    .map(|(k, c)| (k.clone(), c.offset))
                    .collect(),
            })
            .collect()
    })
}
