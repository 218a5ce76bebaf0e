//! KIP-932 share groups: ShareGroupHeartbeat and ShareGroupDescribe (membership, on the group's
//! coordinator shard: `coordinator::share`), ShareFetch and ShareAcknowledge (records, on each
//! partition's owner shard: `crate::share`), with share sessions on the connection's shard.

use super::groups::{on_owner, s};
use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::coordinator::share as group;
use crate::error_code as ec;
use crate::security::{code as op, Session};
use crate::share::{self, session, AckBatch, Outcome};
use bytes::Bytes;
use futures_util::future::{select, select_all};
use kafka_protocol::messages::*;
use ringlet_engine::runtime::io;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Kafka's ShareGroupHeartbeat checks (INVALID_REQUEST with its messages).
fn invalid(req: &ShareGroupHeartbeatRequest) -> Option<&'static str> {
    if req.member_id.trim().is_empty() {
        return Some("MemberId can't be empty.");
    }
    if req.group_id.trim().is_empty() {
        return Some("GroupId can't be empty.");
    }
    if req.rack_id.as_ref().is_some_and(|r| r.trim().is_empty()) {
        return Some("RackId can't be empty.");
    }
    match req.member_epoch {
        0 if req
            .subscribed_topic_names
            .as_ref()
            .is_none_or(|t| t.is_empty()) =>
        {
            Some("SubscribedTopicNames must be set in first request.")
        }
        e if e < -1 => Some("MemberEpoch is invalid."),
        _ => None,
    }
}

pub async fn heartbeat(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
    client_id: &str,
) -> HandlerResult {
    use share_group_heartbeat_response::{Assignment, TopicPartitions};
    let req: ShareGroupHeartbeatRequest = decode(body, version, "ShareGroupHeartbeat")?;
    let group_id = req.group_id.0.to_string();
    let cfg = &broker.config.share_groups;
    let answer = |a: group::Answer| {
        let mut resp = ShareGroupHeartbeatResponse::default()
            .with_error_code(a.error)
            .with_error_message(a.message.map(s))
            .with_member_epoch(a.epoch)
            .with_heartbeat_interval_ms(cfg.heartbeat_interval_ms);
        if a.error == ec::NONE {
            resp.member_id = Some(s(a.member_id));
            resp.assignment = a.assignment.map(|parts| {
                Assignment::default().with_topic_partitions(
                    parts
                        .iter()
                        .filter_map(|(t, ps)| {
                            Some(
                                TopicPartitions::default()
                                    .with_topic_id(Uuid::from_bytes(broker.topic_id(t)?))
                                    .with_partitions(ps.iter().copied().collect()),
                            )
                        })
                        .collect(),
                )
            });
        }
        encode(&resp, version).map(Some)
    };
    let refuse = |code: i16, msg: &str| {
        answer(group::Answer {
            error: code,
            message: Some(msg.to_string()),
            ..Default::default()
        })
    };
    if cfg.version < 1 {
        return refuse(
            ec::UNSUPPORTED_VERSION,
            "share groups are not enabled (share.version=0)",
        );
    }
    if let Some(msg) = invalid(&req) {
        return refuse(ec::INVALID_REQUEST, msg);
    }
    if !super::group_allowed(broker, sess, op::READ, &group_id) {
        return refuse(
            ec::GROUP_AUTHORIZATION_FAILED,
            "not authorized to the group",
        );
    }
    if let Some(t) = req
        .subscribed_topic_names
        .iter()
        .flatten()
        .find(|t| !super::topic_allowed(broker, sess, op::DESCRIBE, t))
    {
        return refuse(
            ec::TOPIC_AUTHORIZATION_FAILED,
            &format!("not authorized to topic {}", t.0),
        );
    }
    let hb = group::Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        topics: req
            .subscribed_topic_names
            .as_ref()
            .map(|t| t.iter().map(|n| n.0.to_string()).collect()),
        client_id: client_id.to_string(),
        client_host: sess.peer.split(':').next().unwrap_or_default().to_string(),
    };
    let settings = group::Settings {
        session_timeout: Duration::from_millis(cfg.session_timeout_ms as u64),
        max_size: cfg.max_size as usize,
    };
    let partitions = broker.topic_partition_counts();
    let g = group_id.clone();
    match on_owner(broker, &group_id, move |_| async move {
        group::heartbeat(&g, hb, &partitions, &settings)
    })
    .await
    {
        Ok(a) => {
            if a.error != ec::NONE {
                tracing::debug!(group = %group_id, error = ec::name(a.error), msg = ?a.message, "ShareGroupHeartbeat refused");
            }
            answer(a)
        }
        Err(code) => refuse(code, ec::name(code)),
    }
}

struct MemberView {
    id: String,
    rack_id: Option<String>,
    epoch: i32,
    client_id: String,
    client_host: String,
    topics: Vec<String>,
    assigned: group::Parts,
}

pub async fn describe(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    use share_group_describe_response::*;
    let req: ShareGroupDescribeRequest = decode(body, version, "ShareGroupDescribe")?;
    let mut groups = Vec::new();
    for id in &req.group_ids {
        let name = id.0.to_string();
        let out = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(i32::MIN);
        if !super::group_allowed(broker, sess, op::DESCRIBE, &name) {
            groups.push(out.with_error_code(ec::GROUP_AUTHORIZATION_FAILED));
            continue;
        }
        let g = name.clone();
        let view = on_owner(broker, &name, move |_| async move {
            group::describe(&g, |sg| {
                let members: Vec<MemberView> = sg
                    .members
                    .iter()
                    .map(|(id, m)| MemberView {
                        id: id.clone(),
                        rack_id: m.rack_id.clone(),
                        epoch: m.epoch,
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        topics: m.topics.clone(),
                        assigned: m.assigned.clone(),
                    })
                    .collect();
                (sg.state(), sg.epoch, members)
            })
        })
        .await
        .and_then(|r| r);
        let (state, epoch, members) = match view {
            Ok(v) => v,
            Err(code) => {
                let msg = (code == ec::GROUP_ID_NOT_FOUND)
                    .then(|| s(format!("Group {name} is not a share group.")));
                groups.push(out.with_error_code(code).with_error_message(msg));
                continue;
            }
        };
        let assignment = |p: &group::Parts| {
            Assignment::default().with_topic_partitions(
                p.iter()
                    .filter_map(|(t, ps)| {
                        Some(
                            TopicPartitions::default()
                                .with_topic_id(Uuid::from_bytes(broker.topic_id(t)?))
                                .with_topic_name(TopicName(s(t.clone())))
                                .with_partitions(ps.iter().copied().collect()),
                        )
                    })
                    .collect(),
            )
        };
        groups.push(
            out.with_group_state(s(state))
                .with_group_epoch(epoch)
                .with_assignment_epoch(epoch)
                .with_assignor_name(s("simple"))
                .with_members(
                    members
                        .iter()
                        .map(|m| {
                            Member::default()
                                .with_member_id(s(m.id.clone()))
                                .with_rack_id(m.rack_id.clone().map(s))
                                .with_member_epoch(m.epoch)
                                .with_client_id(s(m.client_id.clone()))
                                .with_client_host(s(m.client_host.clone()))
                                .with_subscribed_topic_names(
                                    m.topics.iter().map(|t| TopicName(s(t.clone()))).collect(),
                                )
                                .with_assignment(assignment(&m.assigned))
                        })
                        .collect(),
                ),
        );
    }
    encode(
        &ShareGroupDescribeResponse::default().with_groups(groups),
        version,
    )
    .map(Some)
}

/// One partition's part of a ShareFetch or ShareAcknowledge as the handler tracks it.
struct PartOut {
    topic_id: Uuid,
    partition: i32,
    out: Outcome,
}

/// Runs `f` on the partition's owner, after the replica check a consumer read gets.
async fn on_share_partition<F, Fut>(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    f: F,
) -> Outcome
where
    F: FnOnce(Rc<ringlet_engine::Partition>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Outcome> + 'static,
{
    let clustered = broker.cluster.is_some();
    let t = topic.to_string();
    broker
        .on_partition(topic, partition, move |part| async move {
            if clustered {
                crate::cluster::replica::check_read(&t, partition, -1)?;
            }
            Ok(f(part).await)
        })
        .await
        .unwrap_or_else(|code| Outcome {
            error: code,
            ..Default::default()
        })
}

/// A request's acknowledgement batches; RENEW is allowed from v2 (KIP-1222).
fn ack_batches<'a>(
    version: i16,
    it: impl Iterator<Item = (i64, i64, &'a Vec<i8>)>,
) -> Vec<AckBatch> {
    it.map(|(first, last, types)| AckBatch {
        first,
        last,
        types: types.clone(),
        renew_allowed: version >= 2,
    })
    .collect()
}

/// A ShareFetch's partitions, resolved: topic ids by name, the session's additions and
/// removals, acknowledgements by partition, and answers for ids no topic has.
#[derive(Default)]
struct Named {
    ids: BTreeMap<String, Uuid>,
    unknown: Vec<PartOut>,
    add: Vec<(String, i32)>,
    forget: Vec<(String, i32)>,
    acks: BTreeMap<(String, i32), Vec<AckBatch>>,
}

fn resolve(broker: &Broker, req: &ShareFetchRequest, version: i16) -> Named {
    let mut n = Named::default();
    for t in &req.topics {
        let Some(name) = broker.topic_name(*t.topic_id.as_bytes()) else {
            for p in &t.partitions {
                n.unknown.push(PartOut {
                    topic_id: t.topic_id,
                    partition: p.partition_index,
                    out: Outcome {
                        error: ec::UNKNOWN_TOPIC_ID,
                        ..Default::default()
                    },
                });
            }
            continue;
        };
        n.ids.insert(name.clone(), t.topic_id);
        for p in &t.partitions {
            n.add.push((name.clone(), p.partition_index));
            if !p.acknowledgement_batches.is_empty() {
                let batches = p
                    .acknowledgement_batches
                    .iter()
                    .map(|b| (b.first_offset, b.last_offset, &b.acknowledge_types));
                n.acks.insert(
                    (name.clone(), p.partition_index),
                    ack_batches(version, batches),
                );
            }
        }
    }
    n.forget = req
        .forgotten_topics_data
        .iter()
        .filter_map(|f| Some((broker.topic_name(*f.topic_id.as_bytes())?, f)))
        .flat_map(|(name, f)| f.partitions.iter().map(move |p| (name.clone(), *p)))
        .collect();
    n
}

/// A partition a fetch may wait on: (topic, partition, end offset to wait past, the earliest
/// lock deadline, whether the in-flight window is full).
type Wait = (String, i32, i64, Option<Instant>, bool);

/// A fetch blocked by a full in-flight window answers within this (empty), so that the members
/// holding the window can send the acknowledgements that free it: librdkafka sends them only
/// with its next ShareFetch, after the one in flight returns.
const WINDOW_FULL_WAIT: Duration = Duration::from_millis(5);

/// What one round over the session's partitions needs.
struct Round<'a> {
    group_id: &'a str,
    member: &'a str,
    settings: share::Settings,
    closing: bool,
    max_records: usize,
    max_bytes: usize,
}

/// One pass over the session's partitions: acknowledge (`acks`, the first pass only), acquire
/// and read. Returns what to wait on when nothing was acquired: (topic, partition, end, lock).
async fn fetch_round(
    broker: &Arc<Broker>,
    r: &Round<'_>,
    readable: &[(String, i32, Uuid)],
    acks: &mut BTreeMap<(String, i32), Vec<AckBatch>>,
    outs: &mut Vec<PartOut>,
) -> Vec<Wait> {
    let mut budget = r.max_records;
    let mut bytes_left = r.max_bytes;
    let mut waits = Vec::new();
    for (topic, p, topic_id) in readable {
        let key = (r.group_id.to_string(), topic.clone(), *p);
        let my_acks = acks.remove(&(topic.clone(), *p)).unwrap_or_default();
        let acked = !my_acks.is_empty();
        let (m, st) = (r.member.to_string(), r.settings);
        let take = if bytes_left == 0 { 0 } else { budget };
        let want_bytes = bytes_left.max(1);
        let b = broker.clone();
        let mut out = on_share_partition(broker, topic, *p, move |part| async move {
            let member: Rc<str> = Rc::from(m.as_str());
            share::fetch(b, key, part, member, my_acks, take, want_bytes, st).await
        })
        .await;
        if r.closing {
            // The session closed: what the member still holds goes back to the group.
            let key = (r.group_id.to_string(), topic.clone(), *p);
            let (m, limits) = (r.member.to_string(), r.settings.limits);
            let released = on_share_partition(broker, topic, *p, move |_| async move {
                share::release(&key, &m, limits);
                Outcome::default()
            })
            .await;
            if out.error == ec::NONE {
                out.error = released.error;
            }
        }
        let n: i64 = out.acquired.iter().map(|a| a.last - a.first + 1).sum();
        budget = budget.saturating_sub(n as usize);
        if let Some(rec) = &out.records {
            bytes_left = bytes_left.saturating_sub(rec.len());
        }
        if out.acquired.is_empty() && out.error == ec::NONE {
            waits.push((
                topic.clone(),
                *p,
                out.wait_past,
                out.next_deadline,
                out.window_full,
            ));
        }
        if acked || !out.acquired.is_empty() || out.error != ec::NONE {
            // One entry per partition: a later round's records join the first round's
            // acknowledgement result (librdkafka drops a response naming a partition twice).
            match outs
                .iter_mut()
                .find(|o| o.topic_id == *topic_id && o.partition == *p)
            {
                Some(prev) => {
                    prev.out.error = out.error;
                    prev.out.records = out.records;
                    prev.out.acquired = out.acquired;
                }
                None => outs.push(PartOut {
                    topic_id: *topic_id,
                    partition: *p,
                    out,
                }),
            }
        }
    }
    waits
}

/// Waits for new records past any partition's end, for records acknowledged or released by
/// other members, for a lock to expire, or for the deadline (re-checked at least every 250 ms).
async fn wait_for_records(
    broker: &Arc<Broker>,
    group_id: &str,
    waits: Vec<Wait>,
    deadline: Instant,
) {
    let now = Instant::now();
    let lock = waits.iter().filter_map(|w| w.3).min();
    let until = lock.map_or(deadline, |l| l.min(deadline));
    let wait = until
        .saturating_duration_since(now)
        .clamp(Duration::from_millis(1), Duration::from_millis(250));
    let parks: Vec<_> = waits
        .into_iter()
        .map(|(topic, p, past, ..)| {
            let b = broker.clone();
            let key = (group_id.to_string(), topic.clone(), p);
            Box::pin(async move {
                let _ = b
                    .park_on_partition(&topic, p, move |part| async move {
                        let data = super::fetch::data_after(part, past);
                        let freed = share::change_of(key);
                        let either = select(Box::pin(data), Box::pin(freed));
                        let _ = select(either, Box::pin(io::sleep(wait))).await;
                        Ok(())
                    })
                    .await;
            })
        })
        .collect();
    let _ = select(select_all(parks), Box::pin(io::sleep(wait))).await;
}

pub async fn fetch(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: ShareFetchRequest = decode(body, version, "ShareFetch")?;
    let top = |code: i16, msg: &str| {
        encode(
            &ShareFetchResponse::default()
                .with_error_code(code)
                .with_error_message(Some(s(msg.to_string()))),
            version,
        )
        .map(Some)
    };
    let (Some(group_id), Some(member)) = (req.group_id.as_ref(), req.member_id.as_ref()) else {
        return top(ec::INVALID_REQUEST, "GroupId and MemberId must be set");
    };
    let (group_id, member) = (group_id.0.to_string(), member.to_string());
    if member.trim().is_empty() || broker.config.share_groups.version < 1 {
        return top(ec::INVALID_REQUEST, "MemberId can't be empty.");
    }
    if !super::group_allowed(broker, sess, op::READ, &group_id) {
        return top(
            ec::GROUP_AUTHORIZATION_FAILED,
            "not authorized to the group",
        );
    }
    let Named {
        mut ids,
        unknown,
        add,
        forget,
        mut acks,
    } = resolve(broker, &req, version);
    let max_sessions = broker.config.share_groups.max_share_sessions as usize;
    let epoch = req.share_session_epoch;
    let partitions = match session::fetch(&group_id, &member, epoch, &add, &forget, max_sessions) {
        Ok(p) => p,
        Err(code) => return top(code, ec::name(code)),
    };
    let mut outs: Vec<PartOut> = unknown;
    let mut readable = Vec::new();
    for (topic, p) in &partitions {
        if !ids.contains_key(topic) {
            match broker.topic_id(topic) {
                Some(id) => ids.insert(topic.clone(), Uuid::from_bytes(id)),
                None => continue,
            };
        }
        let topic_id = ids[topic];
        if super::topic_allowed(broker, sess, op::READ, topic) {
            readable.push((topic.clone(), *p, topic_id));
            continue;
        }
        outs.push(PartOut {
            topic_id,
            partition: *p,
            out: Outcome {
                error: ec::TOPIC_AUTHORIZATION_FAILED,
                ..Default::default()
            },
        });
    }
    let closing = epoch == -1;
    // A v2 fetch carrying RENEW acknowledgements only renews: nothing new is acquired, and it
    // answers at once (KIP-1222).
    let renewing = version >= 2 && req.is_renew_ack;
    let round = Round {
        group_id: &group_id,
        member: &member,
        settings: share::settings_for(broker, &group_id),
        closing,
        max_records: if closing || renewing {
            0
        } else {
            req.max_records.max(1) as usize
        },
        max_bytes: match req.max_bytes {
            m if m <= 0 => broker.config.fetch_max_bytes,
            m => (m as usize).min(broker.config.fetch_max_bytes),
        },
    };
    let started = Instant::now();
    let mut deadline = started + Duration::from_millis(req.max_wait_ms.clamp(0, 300_000) as u64);
    loop {
        let waits = fetch_round(broker, &round, &readable, &mut acks, &mut outs).await;
        if waits.iter().any(|w| w.4) {
            deadline = deadline.min(started + WINDOW_FULL_WAIT);
        }
        let got = outs.iter().any(|o| !o.out.acquired.is_empty());
        if got || closing || renewing || Instant::now() >= deadline || waits.is_empty() {
            break;
        }
        wait_for_records(broker, &group_id, waits, deadline).await;
    }
    tracing::debug!(
        member = %member,
        epoch,
        max_records = req.max_records,
        max_wait = req.max_wait_ms,
        acks = ?req.topics.iter().flat_map(|t| &t.partitions).flat_map(|p| &p.acknowledgement_batches).map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone())).collect::<Vec<_>>(),
        acquired = ?outs.iter().flat_map(|o| &o.out.acquired).map(|a| (a.first, a.last)).collect::<Vec<_>>(),
        ack_errors = ?outs.iter().map(|o| o.out.ack_error).filter(|c| *c != 0).collect::<Vec<_>>(),
        "ShareFetch"
    );
    respond_fetch(outs, &round.settings, version)
}

fn respond_fetch(outs: Vec<PartOut>, settings: &share::Settings, version: i16) -> HandlerResult {
    use share_fetch_response::*;
    let mut topics: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    for o in outs {
        let data = PartitionData::default()
            .with_partition_index(o.partition)
            .with_error_code(o.out.error)
            .with_acknowledge_error_code(o.out.ack_error)
            .with_acknowledge_error_message(o.out.ack_message.map(s))
            .with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(-1)
                    .with_leader_epoch(-1),
            )
            // Empty rather than null: librdkafka refuses a null record set.
            .with_records(Some(o.out.records.unwrap_or_default()))
            .with_acquired_records(
                o.out
                    .acquired
                    .iter()
                    .map(|a| {
                        AcquiredRecords::default()
                            .with_first_offset(a.first)
                            .with_last_offset(a.last)
                            .with_delivery_count(a.delivery_count)
                    })
                    .collect(),
            );
        topics.entry(o.topic_id).or_default().push(data);
    }
    let resp = ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(settings.lock_duration.as_millis() as i32)
        .with_responses(
            topics
                .into_iter()
                .map(|(id, ps)| {
                    ShareFetchableTopicResponse::default()
                        .with_topic_id(id)
                        .with_partitions(ps)
                })
                .collect(),
        );
    encode(&resp, version).map(Some)
}

pub async fn acknowledge(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    use share_acknowledge_response::*;
    let req: ShareAcknowledgeRequest = decode(body, version, "ShareAcknowledge")?;
    let top = |code: i16, msg: &str| {
        encode(
            &ShareAcknowledgeResponse::default()
                .with_error_code(code)
                .with_error_message(Some(s(msg.to_string()))),
            version,
        )
        .map(Some)
    };
    let (Some(group_id), Some(member)) = (req.group_id.as_ref(), req.member_id.as_ref()) else {
        return top(ec::INVALID_REQUEST, "GroupId and MemberId must be set");
    };
    let (group_id, member) = (group_id.0.to_string(), member.to_string());
    if !super::group_allowed(broker, sess, op::READ, &group_id) {
        return top(
            ec::GROUP_AUTHORIZATION_FAILED,
            "not authorized to the group",
        );
    }
    tracing::debug!(
        member = %member,
        epoch = req.share_session_epoch,
        acks = ?req.topics.iter().flat_map(|t| &t.partitions).flat_map(|p| &p.acknowledgement_batches).map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone())).collect::<Vec<_>>(),
        "ShareAcknowledge"
    );
    let session_parts = match session::acknowledge(&group_id, &member, req.share_session_epoch) {
        Ok(p) => p,
        Err(code) => return top(code, ec::name(code)),
    };
    let settings = share::settings_for(broker, &group_id);
    let mut topics = Vec::new();
    for t in &req.topics {
        let name = broker.topic_name(*t.topic_id.as_bytes());
        let mut parts = Vec::new();
        for p in &t.partitions {
            let out = match &name {
                None => Outcome {
                    error: ec::UNKNOWN_TOPIC_ID,
                    ..Default::default()
                },
                Some(n) if !super::topic_allowed(broker, sess, op::READ, n) => Outcome {
                    error: ec::TOPIC_AUTHORIZATION_FAILED,
                    ..Default::default()
                },
                Some(n) => {
                    let key = (group_id.clone(), n.clone(), p.partition_index);
                    let batches = ack_batches(
                        version,
                        p.acknowledgement_batches
                            .iter()
                            .map(|b| (b.first_offset, b.last_offset, &b.acknowledge_types)),
                    );
                    let (m, st, b) = (member.clone(), settings, broker.clone());
                    on_share_partition(broker, n, p.partition_index, move |part| async move {
                        share::acknowledge(&b, &key, &part, &m, &batches, &st).await
                    })
                    .await
                }
            };
            let code = if out.error != ec::NONE {
                out.error
            } else {
                out.ack_error
            };
            parts.push(
                PartitionData::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
                    .with_error_message(out.ack_message.map(s))
                    .with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(-1)
                            .with_leader_epoch(-1),
                    ),
            );
        }
        topics.push(
            ShareAcknowledgeTopicResponse::default()
                .with_topic_id(t.topic_id)
                .with_partitions(parts),
        );
    }
    if req.share_session_epoch == -1 {
        // The session closed: what the member still holds goes back to the group.
        for (topic, p) in session_parts {
            let key = (group_id.clone(), topic.clone(), p);
            let (m, limits) = (member.clone(), settings.limits);
            on_share_partition(broker, &topic, p, move |_| async move {
                share::release(&key, &m, limits);
                Outcome::default()
            })
            .await;
        }
    }
    let mut resp = ShareAcknowledgeResponse::default().with_responses(topics);
    resp.acquisition_lock_timeout_ms = settings.lock_duration.as_millis() as i32;
    encode(&resp, version).map(Some)
}
