//! The group APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, and the timer that expires
//! sessions and completes rebalances.

use super::group::Member;
use super::*;
use crate::broker::Broker;
use crate::error_code as ec;
use bytes::Bytes;
use futures_channel::oneshot;
use ringlet_engine::runtime::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// For a classic member joining a consumer group (KIP-848 mixed groups): the cluster as the
    /// assignors see it, and the consumer-group settings.
    pub topics: super::consumer::Topics,
    pub consumer_settings: super::consumer::Settings,
}

/// JoinGroup on the owning shard.
pub async fn join(req: JoinRequest) -> JoinResult {
    let fail = |code| JoinResult {
        error_code: code,
        ..JoinResult::default()
    };
    if super::share::has_members(&req.group) {
        return fail(ec::INCONSISTENT_GROUP_PROTOCOL);
    }
    let rx = GROUPS.with(|g| {
        let mut g = g.borrow_mut();
        let group = g.entry(req.group.clone()).or_insert_with(Group::new);
        // A consumer group (KIP-848) with members serves a classic member itself (a mixed
        // group); an empty one goes back to the classic protocol.
        if let Some(cg) = &mut group.consumer {
            if !cg.members.is_empty() {
                let r = super::migration::join(cg, &req, &req.topics, &req.consumer_settings);
                return Err(Box::new(r));
            }
            group.consumer = None;
        }
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
        if let Some(cg) = &mut group.consumer {
            return Err(super::migration::sync(cg, &member_id, generation));
        }
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
        if let Some(cg) = &mut group.consumer {
            return super::migration::heartbeat(cg, member_id, generation);
        }
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
        if let Some(cg) = &mut group.consumer {
            return super::migration::leave(cg, members);
        }
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
    let consumer_session =
        Duration::from_millis(broker.config.consumer_groups.session_timeout_ms as u64);
    let share_session = Duration::from_millis(broker.config.share_groups.session_timeout_ms as u64);
    let migration_policy = broker.config.consumer_groups.migration_policy.as_str();
    let mut last_retention = Instant::now();
    loop {
        io::sleep(Duration::from_millis(100)).await;
        let now = Instant::now();
        super::share::expire(share_session, now, || broker.topic_partition_counts());
        let mut changed = Vec::new();
        GROUPS.with(|g| {
            for (name, group) in g.borrow_mut().iter_mut() {
                if let Some(cg) = &mut group.consumer {
                    if super::consumer::expire(name, cg, consumer_session, now) {
                        super::migration::maybe_downgrade(name, group, migration_policy);
                        changed.push(name.clone());
                    }
                    continue;
                }
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
        for name in changed {
            persist_group(&broker, &name).await;
        }
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
        if let Some(cg) = &group.consumer {
            return super::consumer::check_commit(cg, generation, member_id);
        }
        if generation < 0 {
            // A standalone consumer (assign, no group membership) may commit to an empty group,
            // whatever member id it sends (librdkafka's KIP-848 consumers send their own id), as
            // Kafka allows.
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
