//! KIP-848's online migration between the classic protocol and the consumer protocol, as Kafka's
//! group coordinator does it (`group.consumer.migration.policy`, `bidirectional` by default):
//!
//! * **Upgrade**: the first ConsumerGroupHeartbeat for a classic group with members (protocol type
//!   `consumer`) turns it into a consumer group. Each classic member becomes a member at the
//!   group's generation, owning what its last SyncGroup gave it (read from the consumer protocol's
//!   encoding), which is also its target; then the new member's join moves the epoch on.
//! * **Classic members in a consumer group**: JoinGroup, SyncGroup, Heartbeat and LeaveGroup of a
//!   classic member are served by the consumer group's state machine. JoinGroup reads the
//!   member's subscription (topics, owned partitions, rack) from its protocol metadata and
//!   answers at once with the member's epoch as the generation (no leader, no member list); the
//!   partitions it owns but must give up are left out of its SyncGroup assignment (the classic
//!   client revokes them and rejoins, which is the acknowledgement); Heartbeat answers
//!   REBALANCE_IN_PROGRESS whenever the member has something to reconcile.
//! * **Downgrade**: when the last consumer-protocol member leaves (or is fenced) and classic
//!   members remain, the group becomes a classic group again at the group epoch, each member
//!   keeping its assignment, and a rebalance begins.

use super::assignor::Parts;
use super::consumer::{self, ConsumerGroup, ConsumerMember, Heartbeat, Settings, Topics};
use super::group::{Group, GroupState, JoinResult, Member, SyncResult};
use super::membership::JoinRequest;
use crate::error_code as ec;
use bytes::Bytes;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTp;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::time::{Duration, Instant};

/// What a classic member told the coordinator in its JoinGroup.
#[derive(Clone, Debug)]
pub struct ClassicMeta {
    pub session_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
}

impl ClassicMeta {
    fn protocol_name(&self) -> Option<String> {
        self.protocols.first().map(|(n, _)| n.clone())
    }

    /// The consumer protocol version the member speaks (its subscription's), for its assignment.
    fn version(&self) -> i16 {
        self.protocols
            .first()
            .map_or(0, |(_, m)| version_of(m))
            .clamp(0, 3)
    }
}

pub fn upgrade_allowed(policy: &str) -> bool {
    matches!(policy, "bidirectional" | "upgrade")
}

pub fn downgrade_allowed(policy: &str) -> bool {
    matches!(policy, "bidirectional" | "downgrade")
}

struct Subscription {
    topics: Vec<String>,
    owned: Parts,
    rack: Option<String>,
}

fn version_of(b: &Bytes) -> i16 {
    if b.len() < 2 {
        return 0;
    }
    i16::from_be_bytes([b[0], b[1]])
}

/// A consumer-protocol subscription (a version, then the message); newer versions than the
/// codec knows keep the fields it reads (KIP-429's rule).
fn decode_subscription(meta: &Bytes) -> Option<Subscription> {
    if meta.len() < 2 {
        return None;
    }
    let mut buf = meta.slice(2..);
    let s = ConsumerProtocolSubscription::decode(&mut buf, version_of(meta).clamp(0, 3)).ok()?;
    let mut owned = Parts::new();
    for tp in &s.owned_partitions {
        owned
            .entry(tp.topic.0.to_string())
            .or_default()
            .extend(tp.partitions.iter().copied());
    }
    let mut topics: Vec<String> = s.topics.iter().map(|t| t.to_string()).collect();
    topics.sort();
    topics.dedup();
    Some(Subscription {
        topics,
        owned,
        rack: s.rack_id.map(|r| r.to_string()).filter(|r| !r.is_empty()),
    })
}

fn decode_assignment(b: &Bytes) -> Parts {
    let mut out = Parts::new();
    if b.len() < 2 {
        return out;
    }
    let mut buf = b.slice(2..);
    if let Ok(a) = ConsumerProtocolAssignment::decode(&mut buf, version_of(b).clamp(0, 3)) {
        for tp in a.assigned_partitions {
            out.entry(tp.topic.0.to_string())
                .or_default()
                .extend(tp.partitions);
        }
    }
    out
}

pub(super) fn encode_assignment(parts: &Parts, version: i16) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        parts
            .iter()
            .filter(|(_, ps)| !ps.is_empty())
            .map(|(t, ps)| {
                AssignedTp::default()
                    .with_topic(kafka_protocol::messages::TopicName(StrBytes::from_string(
                        t.clone(),
                    )))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    );
    let mut b = bytes::BytesMut::new();
    b.extend_from_slice(&version.to_be_bytes());
    if a.encode(&mut b, version).is_err() {
        return Bytes::new();
    }
    b.freeze()
}

fn classic_member(
    rebalance_timeout: Duration,
    ids: (Option<String>, String, String),
    classic: ClassicMeta,
    now: Instant,
) -> ConsumerMember {
    let mut m = ConsumerMember::new(rebalance_timeout, ids, now);
    m.classic = Some(classic);
    m
}

/// Turns a classic group with members into a consumer group (a ConsumerGroupHeartbeat joins
/// it); `Err` with Kafka's reason when it cannot be.
pub(super) fn upgrade(group: &mut Group, max_size: usize) -> Result<(), String> {
    if group.protocol_type.as_deref() != Some("consumer") {
        return Err("the group does not use the consumer embedded protocol".into());
    }
    if group.members.len() > max_size {
        return Err("the group size exceeds the consumer group maximum size".into());
    }
    let now = Instant::now();
    let generation = group.generation;
    let mut cg = ConsumerGroup {
        epoch: generation,
        assignment_epoch: generation,
        ..ConsumerGroup::default()
    };
    for (id, m) in &group.members {
        let meta = match &group.protocol_name {
            Some(p) => m.metadata_for(p),
            None => m.protocols.first().map(|p| p.1.clone()).unwrap_or_default(),
        };
        let sub = decode_subscription(&meta)
            .ok_or_else(|| format!("member {id}'s embedded consumer protocol is malformed"))?;
        let assigned = decode_assignment(&m.assignment);
        let classic = ClassicMeta {
            session_timeout: m.session_timeout,
            protocols: m.protocols.clone(),
        };
        let ids = (
            m.instance_id.clone(),
            m.client_id.clone(),
            m.client_host.clone(),
        );
        let mut member = classic_member(m.rebalance_timeout, ids, classic, now);
        member.epoch = generation;
        member.previous_epoch = generation;
        member.topics = sub.topics;
        member.rack_id = sub.rack;
        member.assigned = assigned.clone();
        member.sent = Some(assigned.clone());
        cg.target.insert(id.clone(), assigned);
        cg.members.insert(id.clone(), member);
    }
    // Members waiting in a join or a sync of the classic group rejoin the consumer group.
    for m in group.members.values_mut() {
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinResult {
                error_code: ec::REBALANCE_IN_PROGRESS,
                ..JoinResult::default()
            });
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncResult {
                error_code: ec::REBALANCE_IN_PROGRESS,
                ..SyncResult::default()
            });
        }
    }
    group.members.clear();
    group.pending.clear();
    group.state = GroupState::Empty;
    group.leader = None;
    group.protocol_name = None;
    group.rebalance_deadline = None;
    group.initial_delay_until = None;
    group.consumer = Some(cg);
    Ok(())
}

/// JoinGroup of a classic member to a consumer group that has members.
pub(super) fn join(
    cg: &mut ConsumerGroup,
    req: &JoinRequest,
    topics: &Topics,
    settings: &Settings,
) -> JoinResult {
    let fail = |code| JoinResult {
        error_code: code,
        ..JoinResult::default()
    };
    if req.protocol_type != "consumer" || req.protocols.is_empty() {
        return fail(ec::INCONSISTENT_GROUP_PROTOCOL);
    }
    let Some(sub) = decode_subscription(&req.protocols[0].1) else {
        return fail(ec::INCONSISTENT_GROUP_PROTOCOL);
    };
    let now = Instant::now();
    let mut member_id = req.member_id.clone();
    if member_id.is_empty() {
        member_id = uuid::Uuid::new_v4().simple().to_string();
        if req.require_known_member_id && req.instance_id.is_none() {
            return JoinResult {
                error_code: ec::MEMBER_ID_REQUIRED,
                member_id,
                ..JoinResult::default()
            };
        }
    }
    if cg
        .members
        .get(&member_id)
        .is_some_and(|m| m.classic.is_none())
    {
        // A member of the consumer protocol cannot also speak the classic one.
        return fail(ec::UNKNOWN_MEMBER_ID);
    }
    let classic = ClassicMeta {
        session_timeout: req.session_timeout,
        protocols: req.protocols.clone(),
    };
    if !cg.members.contains_key(&member_id) {
        // A static member's new incarnation takes its instance's place (and partitions).
        let previous = req.instance_id.as_ref().and_then(|inst| {
            cg.members
                .iter()
                .find(|(_, m)| m.instance_id.as_ref() == Some(inst))
                .map(|(id, _)| id.clone())
        });
        let ids = (
            req.instance_id.clone(),
            req.client_id.clone(),
            req.client_host.clone(),
        );
        let mut member = classic_member(req.rebalance_timeout, ids, classic.clone(), now);
        match previous.and_then(|old| Some((cg.members.remove(&old)?, cg.target.remove(&old)))) {
            Some((old, target)) => {
                member.epoch = old.epoch;
                member.previous_epoch = old.previous_epoch;
                member.assigned = old.assigned;
                member.revoking = old.revoking;
                member.topics = old.topics;
                if let Some(t) = target {
                    cg.target.insert(member_id.clone(), t);
                }
            }
            None if cg.members.len() >= settings.max_size => {
                return fail(ec::GROUP_MAX_SIZE_REACHED);
            }
            None => cg.epoch += 1,
        }
        cg.members.insert(member_id.clone(), member);
    }
    let hb = Heartbeat {
        member_id: member_id.clone(),
        member_epoch: 0,
        instance_id: req.instance_id.clone(),
        rack_id: sub.rack.clone(),
        rebalance_timeout_ms: req.rebalance_timeout.as_millis() as i32,
        topics: Some(sub.topics),
        regex: None,
        assignor: None,
        owned: Some(sub.owned.clone()),
        client_id: req.client_id.clone(),
        client_host: req.client_host.clone(),
    };
    consumer::update_member(cg, &member_id, &hb, now);
    cg.members.get_mut(&member_id).expect("member").classic = Some(classic);
    consumer::refresh_target(cg, topics, settings);
    consumer::reconcile(cg, &member_id, Some(&sub.owned), now);
    let m = &cg.members[&member_id];
    tracing::debug!(member = %member_id, epoch = m.epoch, assigned = ?m.assigned, revoking = ?m.revoking, "classic member joined a consumer group");
    JoinResult {
        error_code: ec::NONE,
        generation_id: m.epoch,
        protocol_type: Some("consumer".into()),
        protocol_name: Some(req.protocols[0].0.clone()),
        leader: String::new(),
        member_id,
        members: Vec::new(),
    }
}

fn classic_of<'a>(
    cg: &'a mut ConsumerGroup,
    member_id: &str,
) -> Result<&'a mut ConsumerMember, i16> {
    match cg.members.get_mut(member_id) {
        Some(m) if m.classic.is_some() => Ok(m),
        _ => Err(ec::UNKNOWN_MEMBER_ID),
    }
}

/// Whether a classic member must rejoin: the group moved on, it has partitions to give up, or
/// partitions of its target that it waited for are free now.
fn must_rejoin(cg: &ConsumerGroup, member_id: &str) -> bool {
    let m = &cg.members[member_id];
    if m.epoch < cg.epoch || !m.revoking.is_empty() {
        return true;
    }
    let Some(target) = cg.target.get(member_id) else {
        return false;
    };
    target.iter().any(|(t, ps)| {
        ps.iter().any(|p| {
            !m.assigned.get(t).is_some_and(|a| a.contains(p))
                && !cg.members.iter().any(|(id, o)| {
                    id != member_id
                        && (o.assigned.get(t).is_some_and(|a| a.contains(p))
                            || o.revoking.get(t).is_some_and(|a| a.contains(p)))
                })
        })
    })
}

/// SyncGroup of a classic member of a consumer group: its current assignment.
pub(super) fn sync(cg: &mut ConsumerGroup, member_id: &str, generation: i32) -> SyncResult {
    let fail = |code| SyncResult {
        error_code: code,
        ..SyncResult::default()
    };
    let group_epoch = cg.epoch;
    let m = match classic_of(cg, member_id) {
        Ok(m) => m,
        Err(code) => return fail(code),
    };
    if generation != m.epoch {
        return fail(ec::ILLEGAL_GENERATION);
    }
    if group_epoch > m.epoch && m.revoking.is_empty() {
        return fail(ec::REBALANCE_IN_PROGRESS);
    }
    m.last_heartbeat = Instant::now();
    m.sent = Some(m.assigned.clone());
    let classic = m.classic.as_ref().expect("classic member");
    SyncResult {
        error_code: ec::NONE,
        protocol_type: Some("consumer".into()),
        protocol_name: classic.protocol_name(),
        assignment: encode_assignment(&m.assigned, classic.version()),
    }
}

/// Heartbeat of a classic member of a consumer group.
pub(super) fn heartbeat(cg: &mut ConsumerGroup, member_id: &str, generation: i32) -> i16 {
    let m = match classic_of(cg, member_id) {
        Ok(m) => m,
        Err(code) => return code,
    };
    if generation != m.epoch {
        return ec::ILLEGAL_GENERATION;
    }
    m.last_heartbeat = Instant::now();
    if must_rejoin(cg, member_id) {
        ec::REBALANCE_IN_PROGRESS
    } else {
        ec::NONE
    }
}

/// LeaveGroup of classic members of a consumer group (by member id or instance id).
pub(super) fn leave(cg: &mut ConsumerGroup, members: &[(String, Option<String>)]) -> Vec<i16> {
    members
        .iter()
        .map(|(id, iid)| {
            let found = match iid {
                Some(i) => cg
                    .members
                    .iter()
                    .find(|(_, m)| m.instance_id.as_ref() == Some(i))
                    .map(|(k, _)| k.clone())
                    .filter(|k| id.is_empty() || k == id),
                None => Some(id.clone()),
            };
            match found {
                Some(k) if cg.members.get(&k).is_some_and(|m| m.classic.is_some()) => {
                    cg.members.remove(&k);
                    cg.target.remove(&k);
                    cg.epoch += 1;
                    ec::NONE
                }
                Some(_) if iid.is_some() => ec::FENCED_INSTANCE_ID,
                _ => ec::UNKNOWN_MEMBER_ID,
            }
        })
        .collect()
}

/// Turns a consumer group whose members all speak the classic protocol back into a classic
/// group (after its last consumer-protocol member left or was fenced), and starts a rebalance.
pub(super) fn maybe_downgrade(name: &str, group: &mut Group, policy: &str) {
    let Some(cg) = &group.consumer else {
        return;
    };
    if cg.members.is_empty()
        || cg.members.values().any(|m| m.classic.is_none())
        || !downgrade_allowed(policy)
    {
        return;
    }
    let cg = group.consumer.take().expect("consumer group");
    // The protocol every member supports, in the first member's order of preference.
    let first = cg.members.values().next().and_then(|m| m.classic.as_ref());
    let protocol = first.and_then(|c| {
        c.protocols.iter().map(|(n, _)| n.clone()).find(|n| {
            cg.members.values().all(|m| {
                m.classic
                    .as_ref()
                    .is_some_and(|c| c.protocols.iter().any(|(p, _)| p == n))
            })
        })
    });
    group.members = cg
        .members
        .into_iter()
        .map(|(id, m)| {
            let classic = m.classic.expect("classic member");
            let member = Member {
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout: classic.session_timeout,
                rebalance_timeout: m.rebalance_timeout,
                assignment: encode_assignment(&m.assigned, classic.version()),
                protocols: classic.protocols,
                last_heartbeat: m.last_heartbeat,
                join_waiter: None,
                sync_waiter: None,
            };
            (id, member)
        })
        .collect();
    group.generation = cg.epoch;
    group.protocol_type = Some("consumer".into());
    group.protocol_name = protocol;
    group.leader = group.members.keys().next().cloned();
    group.state = GroupState::Stable;
    tracing::info!(
        group = name,
        generation = group.generation,
        members = group.members.len(),
        "consumer group downgraded to a classic group (its last consumer-protocol member left)"
    );
    group.prepare_rebalance(Duration::ZERO);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_round_trip_through_the_consumer_protocol() {
        let mut p = Parts::new();
        p.entry("t".into()).or_default().extend([0, 2]);
        p.entry("u".into()).or_default().insert(1);
        for v in 0..=3 {
            assert_eq!(
                decode_assignment(&encode_assignment(&p, v)),
                p,
                "version {v}"
            );
        }
        assert!(decode_assignment(&Bytes::new()).is_empty());
    }

    #[test]
    fn subscriptions_give_topics_owned_partitions_and_rack() {
        use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition;
        let s = ConsumerProtocolSubscription::default()
            .with_topics(vec![
                StrBytes::from_static_str("b"),
                StrBytes::from_static_str("a"),
            ])
            .with_owned_partitions(vec![TopicPartition::default()
                .with_topic(kafka_protocol::messages::TopicName(
                    StrBytes::from_static_str("a"),
                ))
                .with_partitions(vec![3])])
            .with_rack_id(Some(StrBytes::from_static_str("r1")));
        let mut b = bytes::BytesMut::new();
        b.extend_from_slice(&3i16.to_be_bytes());
        s.encode(&mut b, 3).unwrap();
        let sub = decode_subscription(&b.freeze()).unwrap();
        assert_eq!(sub.topics, ["a", "b"]);
        assert_eq!(sub.owned["a"], [3].into());
        assert_eq!(sub.rack.as_deref(), Some("r1"));
        assert!(decode_subscription(&Bytes::from_static(b"\x00")).is_none());
    }
}
