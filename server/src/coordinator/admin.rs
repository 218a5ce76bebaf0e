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
