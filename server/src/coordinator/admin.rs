//! What the admin APIs and the metrics see of the groups this shard coordinates.

use super::*;
use crate::broker::Broker;
use crate::error_code as ec;
use bytes::Bytes;
use std::sync::Arc;

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
        if let Some(cg) = &grp.consumer {
            return Some(describe_consumer_as_classic(cg));
        }
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

/// A consumer group as DescribeGroups shows it (Kafka's rendering): protocol type `consumer`,
/// the assignor as the protocol, each member's subscription and assignment in the classic
/// consumer protocol's encoding.
fn describe_consumer_as_classic(cg: &consumer::ConsumerGroup) -> Described {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    fn versioned(version: i16, m: &impl Encodable) -> Bytes {
        let mut b = bytes::BytesMut::new();
        b.extend_from_slice(&version.to_be_bytes());
        if m.encode(&mut b, version).is_err() {
            return Bytes::new();
        }
        b.freeze()
    }
    let members = cg
        .members
        .iter()
        .map(|(id, m)| {
            let sub = ConsumerProtocolSubscription::default().with_topics(
                m.topics
                    .iter()
                    .map(|t| StrBytes::from_string(t.clone()))
                    .collect(),
            );
            (
                id.clone(),
                m.instance_id.clone(),
                m.client_id.clone(),
                m.client_host.clone(),
                versioned(1, &sub),
                super::migration::encode_assignment(&m.assigned, 1),
            )
        })
        .collect();
    Described {
        state: cg.state(),
        protocol_type: "consumer".into(),
        protocol: cg.assignor.clone(),
        members,
    }
}

/// Every group on this shard: (id, protocol type, state, group type).
pub fn list_local() -> Vec<(String, String, &'static str, &'static str)> {
    GROUPS.with(|g| {
        g.borrow()
            .iter()
            .map(|(k, grp)| match &grp.consumer {
                Some(cg) => (k.clone(), "consumer".to_string(), cg.state(), "consumer"),
                None => (
                    k.clone(),
                    grp.protocol_type.clone().unwrap_or_default(),
                    grp.state.name(),
                    "classic",
                ),
            })
            .chain(
                super::share::list_local()
                    .into_iter()
                    .map(|(k, state)| (k, "share".to_string(), state, "share")),
            )
            .collect()
    })
}

/// ConsumerGroupDescribe: a consumer group's members with their assignment and target;
/// `Err(GROUP_ID_NOT_FOUND)` for a classic or unknown group.
pub fn describe_consumer<T>(
    group_id: &str,
    f: impl FnOnce(&consumer::ConsumerGroup) -> T,
) -> Result<T, i16> {
    GROUPS.with(|g| {
        let g = g.borrow();
        match g.get(group_id).and_then(|grp| grp.consumer.as_ref()) {
            Some(cg) => Ok(f(cg)),
            None => Err(ec::GROUP_ID_NOT_FOUND),
        }
    })
}

/// DeleteGroups on the owning shard: only empty groups; their offsets get tombstones.
pub async fn delete_group(broker: &Arc<Broker>, group_id: &str) -> i16 {
    let state = GROUPS.with(|g| {
        g.borrow().get(group_id).map(|grp| match &grp.consumer {
            Some(cg) if !cg.members.is_empty() => GroupState::Stable,
            _ => grp.state,
        })
    });
    match state {
        // A share group: its durable share state goes with it (tombstones); the handler drops
        // what partition owners hold in memory.
        None => match super::share::delete(group_id) {
            Some(ec::NONE) => {
                let Some((_, offsets_partition)) = super::owner(broker, group_id) else {
                    return ec::COORDINATOR_NOT_AVAILABLE;
                };
                for (topic, p) in super::share_state::of_group(group_id) {
                    let code =
                        super::share_state::write(group_id, offsets_partition, &topic, p, None)
                            .await;
                    if code != ec::NONE {
                        return code;
                    }
                }
                ec::NONE
            }
            other => other.unwrap_or(ec::GROUP_ID_NOT_FOUND),
        },
        Some(GroupState::Empty) => {
            let parts: Vec<(String, i32)> = fetch_offsets(group_id).into_keys().collect();
            let mut code = delete_offsets(broker, group_id, &parts).await;
            if code == ec::NONE {
                // An empty consumer group's records go too (tombstones).
                GROUPS.with(|g| {
                    if let Some(grp) = g.borrow_mut().get_mut(group_id) {
                        grp.consumer = None;
                    }
                });
                code = super::persist_group(broker, group_id).await;
            }
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
                state: grp
                    .consumer
                    .as_ref()
                    .map_or(grp.state.name(), |c| c.state()),
                members: grp
                    .consumer
                    .as_ref()
                    .map_or(grp.members.len(), |c| c.members.len()),
                offsets: grp
                    .offsets
                    .iter()
                    .map(|(k, c)| (k.clone(), c.offset))
                    .collect(),
            })
            .collect()
    })
}

/// What a group is subscribed to, for OffsetDelete: `Err(NON_EMPTY_GROUP)` when the group has
/// members that do not use the consumer protocol (Kafka refuses the deletion so); else the
/// topics its members' consumer-protocol subscriptions name (none for an empty group). A
/// subscription that cannot be read counts as no topic, as in Kafka's classic groups.
pub fn subscribed_topics(desc: &Described) -> Result<std::collections::HashSet<String>, i16> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    if desc.members.is_empty() {
        return Ok(Default::default());
    }
    if desc.protocol_type != "consumer" {
        return Err(ec::NON_EMPTY_GROUP);
    }
    let mut topics = std::collections::HashSet::new();
    for (_, _, _, _, meta, _) in &desc.members {
        let mut buf = meta.clone();
        if buf.len() < 2 {
            continue;
        }
        let version = i16::from_be_bytes([buf[0], buf[1]]);
        bytes::Buf::advance(&mut buf, 2);
        // Newer versions than this codec knows keep the fields it reads (KIP-429's rule).
        let version = version.clamp(0, 3);
        if let Ok(s) = ConsumerProtocolSubscription::decode(&mut buf, version) {
            topics.extend(s.topics.iter().map(|t| t.to_string()));
        }
    }
    Ok(topics)
}
