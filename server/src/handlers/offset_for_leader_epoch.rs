//! OffsetForLeaderEpoch: the end offset of a leader epoch in this leader's log (KIP-101/279).
//! Followers use it to truncate a divergent suffix; consumers to detect truncation after a
//! leader change (KIP-320).

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::cluster::replica;
use crate::error_code as ec;
use bytes::Bytes;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use std::sync::Arc;

pub async fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: OffsetForLeaderEpochRequest = decode(body, version, "OffsetForLeaderEpoch")?;
    let clustered = broker.cluster.is_some();
    // Kafka's rule: a follower (replica id set, v3+) needs ClusterAction on the cluster; a
    // client, Describe on each topic.
    let replica = version >= 3 && req.replica_id.0 >= 0;
    let cluster_ok =
        !replica || super::cluster_allowed(broker, session, crate::security::code::CLUSTER_ACTION);
    if !cluster_ok {
        tracing::warn!(replica = req.replica_id.0, principal = %session.principal(), "OffsetForLeaderEpoch as a replica refused: principal lacks ClusterAction");
    }
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.topic.0.to_string();
        let allowed = replica
            || super::topic_allowed(broker, session, crate::security::code::DESCRIBE, &name);
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let mut r = EpochEndOffset::default()
                .with_partition(p.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            if !cluster_ok {
                r.error_code = ec::CLUSTER_AUTHORIZATION_FAILED;
                parts.push(r);
                continue;
            }
            if !allowed {
                r.error_code = ec::TOPIC_AUTHORIZATION_FAILED;
                parts.push(r);
                continue;
            }
            let topic = name.clone();
            let (index, current, asked) = (p.partition, p.current_leader_epoch, p.leader_epoch);
            let res = broker
                .on_partition(&name, index, move |part| async move {
                    if clustered {
                        replica::check_read(&topic, index, current)?;
                    }
                    Ok(part.end_offset_for_epoch(asked))
                })
                .await;
            match res {
                Ok((epoch, end)) => {
                    r.leader_epoch = epoch;
                    r.end_offset = end;
                }
                Err(code) => r.error_code = code,
            }
            parts.push(r);
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(parts),
        );
    }
    encode(
        &OffsetForLeaderEpochResponse::default().with_topics(topics),
        version,
    )
    .map(Some)
}
