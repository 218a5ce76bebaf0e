//! KIP-848 consumer-group APIs: ConsumerGroupHeartbeat (join, heartbeat, leave; the server
//! computes assignments) and ConsumerGroupDescribe. The state machine is
//! `coordinator::consumer`; this file decodes, routes to the group's shard and encodes.

use super::groups::{on_owner, s};
use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::coordinator::{self, assignor::Parts, consumer};
use crate::error_code as ec;
use crate::security::{code as op, Session};
use bytes::Bytes;
use kafka_protocol::messages::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The cluster as the assignors see it: each topic's partition count and the racks of each
/// partition's replicas (`broker.rack`; a single broker's partitions all sit in its rack).
pub(super) fn topic_layout(broker: &Broker) -> consumer::Topics {
    let partitions = broker.topic_partition_counts();
    let racks = match &broker.cluster {
        Some(c) => {
            let view = c.view();
            view.topics
                .iter()
                .map(|(name, t)| {
                    let per_partition = t
                        .replicas
                        .iter()
                        .map(|ids| {
                            ids.iter()
                                .filter_map(|id| view.brokers.get(id)?.rack.clone())
                                .collect()
                        })
                        .collect();
                    (name.clone(), per_partition)
                })
                .collect()
        }
        None => match &broker.config.cluster.broker_rack {
            Some(rack) => partitions
                .iter()
                .map(|(t, n)| (t.clone(), vec![[rack.clone()].into(); *n as usize]))
                .collect(),
            None => BTreeMap::new(),
        },
    };
    consumer::Topics { partitions, racks }
}

fn to_ids(broker: &Broker, parts: &Parts) -> Vec<(Uuid, Vec<i32>)> {
    parts
        .iter()
        .filter_map(|(t, ps)| {
            let id = broker.topic_id(t)?;
            Some((Uuid::from_bytes(id), ps.iter().copied().collect()))
        })
        .collect()
}

/// Kafka's request checks, in its order (INVALID_REQUEST with its messages).
fn invalid(req: &ConsumerGroupHeartbeatRequest, version: i16) -> Option<&'static str> {
    let blank = |v: &Option<kafka_protocol::protocol::StrBytes>| {
        v.as_ref().is_some_and(|s| s.trim().is_empty())
    };
    // v0: the coordinator names new members; v1+: the member names itself.
    if (version >= 1 || req.member_epoch > 0 || req.member_epoch == -1)
        && req.member_id.trim().is_empty()
    {
        return Some("MemberId can't be empty.");
    }
    if req.group_id.trim().is_empty() {
        return Some("GroupId can't be empty.");
    }
    if blank(&req.instance_id) {
        return Some("InstanceId can't be empty.");
    }
    if blank(&req.rack_id) {
        return Some("RackId can't be empty.");
    }
    match req.member_epoch {
        0 if req.rebalance_timeout_ms == -1 => {
            Some("RebalanceTimeoutMs must be provided in first request.")
        }
        0 if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) => {
            Some("TopicPartitions must be empty when (re-)joining.")
        }
        0 if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() => Some(
            "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
        ),
        -2 if req.instance_id.is_none() => Some("InstanceId can't be null."),
        e if e < -2 => Some("MemberEpoch is invalid."),
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
    let req: ConsumerGroupHeartbeatRequest = decode(body, version, "ConsumerGroupHeartbeat")?;
    let group = req.group_id.0.to_string();
    let answer = |a: consumer::HeartbeatAnswer| {
        let mut resp = ConsumerGroupHeartbeatResponse::default()
            .with_error_code(a.error)
            .with_error_message(a.message.map(s))
            .with_member_epoch(a.epoch)
            .with_heartbeat_interval_ms(broker.config.consumer_groups.heartbeat_interval_ms);
        if a.error == ec::NONE {
            resp.member_id = Some(s(a.member_id));
            resp.assignment = a.assignment.map(|p| {
                consumer_group_heartbeat_response::Assignment::default().with_topic_partitions(
                    to_ids(broker, &p)
                        .into_iter()
                        .map(|(id, ps)| {
                            consumer_group_heartbeat_response::TopicPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(ps)
                        })
                        .collect(),
                )
            });
        }
        encode(&resp, version).map(Some)
    };
    let refuse = |code: i16, msg: &str| {
        answer(consumer::HeartbeatAnswer {
            error: code,
            message: Some(msg.to_string()),
            ..Default::default()
        })
    };
    if !broker.config.consumer_groups.consumer_protocol_enabled {
        return refuse(
            ec::UNSUPPORTED_VERSION,
            "the consumer group protocol is disabled (group.coordinator.rebalance.protocols)",
        );
    }
    if !super::group_allowed(broker, sess, op::READ, &group) {
        return refuse(
            ec::GROUP_AUTHORIZATION_FAILED,
            "not authorized to the group",
        );
    }
    // Subscribed topics the principal may not describe are refused as Kafka refuses them.
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
    let owned = req.topic_partitions.as_ref().map(|tps| {
        let mut p = Parts::new();
        for tp in tps {
            if let Some(name) = broker.topic_name(*tp.topic_id.as_bytes()) {
                p.entry(name)
                    .or_default()
                    .extend(tp.partitions.iter().copied());
            }
        }
        p
    });
    let hb = consumer::Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topics: req
            .subscribed_topic_names
            .as_ref()
            .map(|t| t.iter().map(|n| n.0.to_string()).collect()),
        regex: req.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        client_id: client_id.to_string(),
        client_host: sess.peer.split(':').next().unwrap_or_default().to_string(),
    };
    if let Some(msg) = invalid(&req, version) {
        return refuse(ec::INVALID_REQUEST, msg);
    }
    let settings = settings(broker);
    let topics = topic_layout(broker);
    let g = group.clone();
    let b = broker.clone();
    let result = on_owner(broker, &group, move |_| async move {
        let answer = consumer::heartbeat(&g, hb, &topics, &settings);
        // The change is durable before the member hears of it (Kafka's order).
        match coordinator::persist_group(&b, &g).await {
            ec::NONE => answer,
            code => consumer::HeartbeatAnswer {
                error: code,
                message: Some("the group's state could not be written".into()),
                ..Default::default()
            },
        }
    })
    .await;
    match result {
        Ok(a) => {
            if a.error != ec::NONE {
                tracing::debug!(group = %group, error = ec::name(a.error), msg = ?a.message, "ConsumerGroupHeartbeat refused");
            }
            answer(a)
        }
        Err(code) => refuse(code, ec::name(code)),
    }
}

/// The coordinator's `group.consumer.*` settings.
pub(super) fn settings(broker: &Broker) -> consumer::Settings {
    let cfg = &broker.config.consumer_groups;
    consumer::Settings {
        session_timeout: Duration::from_millis(cfg.session_timeout_ms as u64),
        heartbeat_interval_ms: cfg.heartbeat_interval_ms,
        assignors: cfg.assignors.clone(),
        max_size: cfg.max_size as usize,
        migration_policy: cfg.migration_policy.clone(),
    }
}

/// One member as ConsumerGroupDescribe shows it (plain data, sent back from the group's shard).
struct MemberView {
    id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    epoch: i32,
    client_id: String,
    client_host: String,
    topics: Vec<String>,
    regex: Option<String>,
    assigned: Parts,
    target: Parts,
}

struct GroupView {
    state: &'static str,
    epoch: i32,
    assignment_epoch: i32,
    assignor: String,
    members: Vec<MemberView>,
}

pub async fn describe(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    use consumer_group_describe_response::*;
    let req: ConsumerGroupDescribeRequest = decode(body, version, "ConsumerGroupDescribe")?;
    let mut groups = Vec::new();
    for id in &req.group_ids {
        let group = id.0.to_string();
        let mut out = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(i32::MIN);
        if !super::group_allowed(broker, sess, op::DESCRIBE, &group) {
            groups.push(out.with_error_code(ec::GROUP_AUTHORIZATION_FAILED));
            continue;
        }
        let g = group.clone();
        let view = on_owner(broker, &group, move |_| async move {
            coordinator::describe_consumer(&g, |cg| GroupView {
                state: cg.state(),
                epoch: cg.epoch,
                assignment_epoch: cg.assignment_epoch,
                assignor: cg.assignor.clone(),
                members: cg
                    .members
                    .iter()
                    .map(|(id, m)| MemberView {
                        id: id.clone(),
                        instance_id: m.instance_id.clone(),
                        rack_id: m.rack_id.clone(),
                        epoch: m.epoch,
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        topics: m.topics.clone(),
                        regex: m.regex.clone(),
                        assigned: m.assigned.clone(),
                        target: cg.target.get(id).cloned().unwrap_or_default(),
                    })
                    .collect(),
            })
        })
        .await
        .and_then(|r| r);
        let view = match view {
            Ok(v) => v,
            Err(code) => {
                let msg = (code == ec::GROUP_ID_NOT_FOUND)
                    .then(|| s(format!("Group {group} is not a consumer group.")));
                groups.push(out.with_error_code(code).with_error_message(msg));
                continue;
            }
        };
        let assignment = |p: &Parts| {
            Assignment::default().with_topic_partitions(
                p.iter()
                    .filter_map(|(t, ps)| {
                        let id = broker.topic_id(t)?;
                        Some(
                            TopicPartitions::default()
                                .with_topic_id(Uuid::from_bytes(id))
                                .with_topic_name(TopicName(s(t.clone())))
                                .with_partitions(ps.iter().copied().collect()),
                        )
                    })
                    .collect(),
            )
        };
        out = out
            .with_group_state(s(view.state))
            .with_group_epoch(view.epoch)
            .with_assignment_epoch(view.assignment_epoch)
            .with_assignor_name(s(view.assignor))
            .with_members(
                view.members
                    .iter()
                    .map(|m| {
                        Member::default()
                            .with_member_id(s(m.id.clone()))
                            .with_instance_id(m.instance_id.clone().map(s))
                            .with_rack_id(m.rack_id.clone().map(s))
                            .with_member_epoch(m.epoch)
                            .with_client_id(s(m.client_id.clone()))
                            .with_client_host(s(m.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.topics.iter().map(|t| TopicName(s(t.clone()))).collect(),
                            )
                            .with_subscribed_topic_regex(m.regex.clone().map(s))
                            .with_assignment(assignment(&m.assigned))
                            .with_target_assignment(assignment(&m.target))
                            .with_member_type(if version >= 1 { 1 } else { -1 })
                    })
                    .collect(),
            );
        groups.push(out);
    }
    encode(
        &ConsumerGroupDescribeResponse::default().with_groups(groups),
        version,
    )
    .map(Some)
}
