//! The share-group offsets APIs of the Admin client (`kafka-share-groups.sh`):
//! DescribeShareGroupOffsets (each share partition's start offset), AlterShareGroupOffsets and
//! DeleteShareGroupOffsets (only while the group has no member, as in Kafka). A share
//! partition's state lives on its partition's owner shard on this broker (`crate::share`), so
//! these answer for the partitions this broker leads.

use super::groups::{on_owner, s};
use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::coordinator::share as group;
use crate::error_code as ec;
use crate::security::{code as op, Session};
use crate::share;
use bytes::Bytes;
use kafka_protocol::messages::*;
use ringlet_engine::runtime;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

use crate::metrics::{error_codes, ErrorCodes};
error_codes!(ShareGroupHeartbeatResponse, ShareGroupHeartbeat, top error_code);
error_codes!(ShareGroupDescribeResponse, ShareGroupDescribe, list groups);
error_codes!(ShareFetchResponse, ShareFetch, top error_code, list responses.partitions);
error_codes!(ShareAcknowledgeResponse, ShareAcknowledge, top error_code, list responses.partitions);
error_codes!(DescribeShareGroupOffsetsResponse, DescribeShareGroupOffsets, list groups);
error_codes!(AlterShareGroupOffsetsResponse, AlterShareGroupOffsets, top error_code, list responses.partitions);
error_codes!(DeleteShareGroupOffsetsResponse, DeleteShareGroupOffsets, top error_code, list responses);
error_codes!(ReadShareGroupStateResponse, ReadShareGroupState, list results.partitions);
error_codes!(WriteShareGroupStateResponse, WriteShareGroupState, list results.partitions);

/// Whether the share group has members (`Ok(None)`: no such share group).
async fn members(broker: &Arc<Broker>, group_id: &str) -> Result<Option<usize>, i16> {
    let g = group_id.to_string();
    on_owner(broker, group_id, move |_| async move {
        group::describe(&g, |sg| sg.members.len()).ok()
    })
    .await
}

/// The start offset of each share partition of `group_id` this broker has.
async fn all_started(group_id: &str) -> BTreeMap<String, Vec<(i32, i64)>> {
    let mut out: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for shard in 0..runtime::shard_count() {
        let g = group_id.to_string();
        if let Ok(list) =
            runtime::call_on(shard, move || async move { share::describe_local(&g) }).await
        {
            for (topic, p, start, _) in list {
                out.entry(topic).or_default().push((p, start));
            }
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

pub async fn describe(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    use describe_share_group_offsets_response::*;
    let req: DescribeShareGroupOffsetsRequest = decode(body, version, "DescribeShareGroupOffsets")?;
    let mut groups = Vec::new();
    for g in &req.groups {
        let name = g.group_id.0.to_string();
        let mut out =
            DescribeShareGroupOffsetsResponseGroup::default().with_group_id(g.group_id.clone());
        if !super::group_allowed(broker, sess, op::DESCRIBE, &name) {
            groups.push(out.with_error_code(ec::GROUP_AUTHORIZATION_FAILED));
            continue;
        }
        let wanted: BTreeMap<String, Vec<(i32, i64)>> = match &g.topics {
            None => all_started(&name).await,
            Some(topics) => {
                let mut m = BTreeMap::new();
                for t in topics {
                    let topic = t.topic_name.0.to_string();
                    let mut ps = Vec::new();
                    for &p in &t.partitions {
                        let (g2, t2) = (name.clone(), topic.clone());
                        let start = broker
                            .on_partition(&topic, p, move |_| async move {
                                Ok(share::start_offset(&g2, &t2, p).unwrap_or(-1))
                            })
                            .await
                            .unwrap_or(-1);
                        ps.push((p, start));
                    }
                    m.insert(topic, ps);
                }
                m
            }
        };
        out.topics = wanted
            .into_iter()
            .filter(|(t, _)| super::topic_allowed(broker, sess, op::DESCRIBE, t))
            .map(|(t, ps)| {
                let id = broker
                    .topic_id(&t)
                    .map(Uuid::from_bytes)
                    .unwrap_or_default();
                DescribeShareGroupOffsetsResponseTopic::default()
                    .with_topic_name(TopicName(s(t)))
                    .with_topic_id(id)
                    .with_partitions(
                        ps.into_iter()
                            .map(|(p, start)| {
                                DescribeShareGroupOffsetsResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_start_offset(start)
                                    .with_leader_epoch(-1)
                            })
                            .collect(),
                    )
            })
            .collect();
        groups.push(out);
    }
    encode(
        &DescribeShareGroupOffsetsResponse::default().with_groups(groups),
        version,
    )
    .map(Some)
}

/// The group-level refusal of Alter/DeleteShareGroupOffsets, if any; `create` (Alter) makes a
/// new group id an empty share group first, as Kafka 4.2 does.
async fn refuse_change(
    broker: &Arc<Broker>,
    sess: &Session,
    name: &str,
    create: bool,
) -> Option<(i16, String)> {
    if !super::group_allowed(broker, sess, op::DELETE, name) {
        return Some((
            ec::GROUP_AUTHORIZATION_FAILED,
            "not authorized to the group".into(),
        ));
    }
    if create {
        let g = name.to_string();
        if let Err(code) = on_owner(
            broker,
            name,
            move |_| async move { group::create_empty(&g) },
        )
        .await
        {
            return Some((code, ec::name(code).into()));
        }
    }
    match members(broker, name).await {
        Err(code) => Some((code, ec::name(code).into())),
        Ok(None) => Some((
            ec::GROUP_ID_NOT_FOUND,
            format!("Group {name} is not a share group."),
        )),
        Ok(Some(n)) if n > 0 => Some((
            ec::NON_EMPTY_GROUP,
            format!("share group {name} has {n} members: offsets change only while it is empty"),
        )),
        Ok(Some(_)) => None,
    }
}

pub async fn alter(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    use alter_share_group_offsets_response::*;
    let req: AlterShareGroupOffsetsRequest = decode(body, version, "AlterShareGroupOffsets")?;
    let name = req.group_id.0.to_string();
    if let Some((code, msg)) = refuse_change(broker, sess, &name, true).await {
        let resp = AlterShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(s(msg)));
        return encode(&resp, version).map(Some);
    }
    let mut topics = Vec::new();
    for t in &req.topics {
        let topic = t.topic_name.0.to_string();
        let id = broker
            .topic_id(&topic)
            .map(Uuid::from_bytes)
            .unwrap_or_default();
        let mut parts = Vec::new();
        for p in &t.partitions {
            let code = if !super::topic_allowed(broker, sess, op::READ, &topic) {
                ec::TOPIC_AUTHORIZATION_FAILED
            } else {
                let (g, tn, idx, start) = (
                    name.clone(),
                    topic.clone(),
                    p.partition_index,
                    p.start_offset,
                );
                let b = broker.clone();
                broker
                    .on_partition(&topic, idx, move |part| async move {
                        share::reset(&b, &g, &tn, idx, start, &part).await?;
                        Ok(ec::NONE)
                    })
                    .await
                    .unwrap_or_else(|c| c)
            };
            parts.push(
                AlterShareGroupOffsetsResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        topics.push(
            AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_name(TopicName(s(topic)))
                .with_topic_id(id)
                .with_partitions(parts),
        );
    }
    encode(
        &AlterShareGroupOffsetsResponse::default().with_responses(topics),
        version,
    )
    .map(Some)
}

pub async fn delete(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    use delete_share_group_offsets_response::*;
    let req: DeleteShareGroupOffsetsRequest = decode(body, version, "DeleteShareGroupOffsets")?;
    let name = req.group_id.0.to_string();
    if let Some((code, msg)) = refuse_change(broker, sess, &name, false).await {
        let resp = DeleteShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(s(msg)));
        return encode(&resp, version).map(Some);
    }
    let mut topics = Vec::new();
    for t in &req.topics {
        let topic = t.topic_name.0.to_string();
        let id = broker.topic_id(&topic).map(Uuid::from_bytes);
        let code = match id {
            None => ec::UNKNOWN_TOPIC_OR_PARTITION,
            Some(_) if !super::topic_allowed(broker, sess, op::READ, &topic) => {
                ec::TOPIC_AUTHORIZATION_FAILED
            }
            Some(_) => {
                for shard in 0..runtime::shard_count() {
                    let (g, tn) = (name.clone(), topic.clone());
                    let _ = runtime::call_on(shard, move || async move { share::forget(&g, &tn) })
                        .await;
                }
                // The durable state, at the group's coordinator.
                let (g, tn) = (name.clone(), topic.clone());
                on_owner(broker, &name, move |offsets_partition| async move {
                    for (t, p) in crate::coordinator::share_state::of_group(&g) {
                        if t == tn {
                            let code = crate::coordinator::share_state::write(
                                &g,
                                offsets_partition,
                                &t,
                                p,
                                None,
                            )
                            .await;
                            if code != ec::NONE {
                                return code;
                            }
                        }
                    }
                    ec::NONE
                })
                .await
                .unwrap_or_else(|c| c)
            }
        };
        topics.push(
            DeleteShareGroupOffsetsResponseTopic::default()
                .with_topic_name(TopicName(s(topic)))
                .with_topic_id(id.unwrap_or_default())
                .with_error_code(code),
        );
    }
    encode(
        &DeleteShareGroupOffsetsResponse::default().with_responses(topics),
        version,
    )
    .map(Some)
}

/// ReadShareGroupState from a partition leader (inter-broker, ClusterAction): the share
/// partition's state at this coordinator (start offset -1: none yet).
pub async fn read_state(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    use read_share_group_state_response::*;
    let req: ReadShareGroupStateRequest = decode(body, version, "ReadShareGroupState")?;
    if !super::cluster_allowed(broker, sess, op::CLUSTER_ACTION) {
        return Err("ReadShareGroupState refused: principal lacks ClusterAction".into());
    }
    let group = req.group_id.to_string();
    let mut results = Vec::new();
    for t in &req.topics {
        let name = broker.topic_name(*t.topic_id.as_bytes());
        let mut parts = Vec::new();
        for p in &t.partitions {
            let mut out = PartitionResult::default()
                .with_partition(p.partition)
                .with_start_offset(-1);
            let got = match &name {
                None => Err(ec::UNKNOWN_TOPIC_OR_PARTITION),
                Some(n) => {
                    crate::coordinator::share_state::local(
                        broker,
                        &group,
                        n,
                        p.partition,
                        crate::coordinator::share_state::Op::Read,
                    )
                    .await
                }
            };
            match got {
                Ok(Some(snap)) => {
                    out.start_offset = snap.start;
                    out.state_epoch = snap.seq;
                    out.state_batches = snap
                        .runs
                        .iter()
                        .map(|&(f, l, st, c)| {
                            StateBatch::default()
                                .with_first_offset(f)
                                .with_last_offset(l)
                                .with_delivery_state(st)
                                .with_delivery_count(c)
                        })
                        .collect();
                }
                Ok(None) => {}
                Err(code) => out.error_code = code,
            }
            parts.push(out);
        }
        results.push(
            ReadStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(parts),
        );
    }
    encode(
        &ReadShareGroupStateResponse::default().with_results(results),
        version,
    )
    .map(Some)
}

/// WriteShareGroupState from a partition leader (inter-broker, ClusterAction): replaces the share
/// partition's state (start offset -1: forgets it).
pub async fn write_state(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    use crate::coordinator::share_state::{local, Op, Snapshot};
    use write_share_group_state_response::*;
    let req: WriteShareGroupStateRequest = decode(body, version, "WriteShareGroupState")?;
    if !super::cluster_allowed(broker, sess, op::CLUSTER_ACTION) {
        return Err("WriteShareGroupState refused: principal lacks ClusterAction".into());
    }
    let group = req.group_id.to_string();
    let mut results = Vec::new();
    for t in &req.topics {
        let name = broker.topic_name(*t.topic_id.as_bytes());
        let mut parts = Vec::new();
        for p in &t.partitions {
            let snap = (p.start_offset >= 0).then(|| Snapshot {
                seq: p.state_epoch,
                start: p.start_offset,
                runs: p
                    .state_batches
                    .iter()
                    .map(|b| {
                        (
                            b.first_offset,
                            b.last_offset,
                            b.delivery_state,
                            b.delivery_count,
                        )
                    })
                    .collect(),
            });
            let code = match &name {
                None => ec::UNKNOWN_TOPIC_OR_PARTITION,
                Some(n) => match local(broker, &group, n, p.partition, Op::Write(snap)).await {
                    Ok(_) => ec::NONE,
                    Err(c) => c,
                },
            };
            parts.push(
                PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code),
            );
        }
        results.push(
            WriteStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(parts),
        );
    }
    encode(
        &WriteShareGroupStateResponse::default().with_results(results),
        version,
    )
    .map(Some)
}
