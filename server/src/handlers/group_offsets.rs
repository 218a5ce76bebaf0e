//! OffsetFetch: a group's committed offsets, one group per request before v8, a batch from v8 on.
//! Runs on the shard that owns each group (see `coordinator.rs`).

use super::groups::{on_owner, s};
use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::coordinator;
use crate::error_code as ec;
use crate::security::{code as op, Session};
use bytes::Bytes;
use kafka_protocol::messages::*;
use std::sync::Arc;

/// One group's committed offsets as OffsetFetch answers them: per topic, per partition
/// (partition, error code, offset, leader epoch, metadata); `Err(code)` for the whole group.
type FetchedOffsets = Vec<(TopicName, Vec<(i32, i16, i64, i32, String)>)>;

async fn fetch_group_offsets(
    broker: &Arc<Broker>,
    sess: &Session,
    group: String,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
    require_stable: bool,
) -> Result<FetchedOffsets, i16> {
    if !super::group_allowed(broker, sess, op::DESCRIBE, &group) {
        return Err(ec::GROUP_AUTHORIZATION_FAILED);
    }
    let g = group.clone();
    // require_stable (v7+, KIP-447): a partition with offsets pending in an open transaction
    // answers UNSTABLE_OFFSET_COMMIT (retriable) instead of an offset that may change.
    let (offsets, unstable) = on_owner(broker, &group, move |_| async move {
        let unstable = if require_stable {
            coordinator::pending_txn_partitions(&g)
        } else {
            Default::default()
        };
        (coordinator::fetch_offsets(&g), unstable)
    })
    .await?;
    tracing::debug!(group = %group, require_stable, unstable = ?unstable, committed = offsets.len(), "OffsetFetch");
    let wanted = wanted.unwrap_or_else(|| {
        let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
        for (t, p) in offsets.keys() {
            by_topic.entry(t.clone()).or_default().push(*p);
        }
        // Asked for everything: only the topics the principal may describe.
        by_topic
            .into_iter()
            .filter(|(t, _)| {
                broker
                    .authorizer
                    .authorize(sess, op::DESCRIBE, op::TOPIC, t)
            })
            .map(|(t, ps)| (TopicName(s(t)), ps))
            .collect()
    });
    Ok(wanted
        .into_iter()
        .map(|(name, parts)| {
            let t = name.0.to_string();
            let allowed = broker
                .authorizer
                .authorize(sess, op::DESCRIBE, op::TOPIC, &t);
            let parts = parts
                .into_iter()
                .map(|p| {
                    let pending = unstable.contains(&(t.clone(), p));
                    let c = offsets.get(&(t.clone(), p)).filter(|_| allowed && !pending);
                    let code = if !allowed {
                        ec::TOPIC_AUTHORIZATION_FAILED
                    } else if pending {
                        ec::UNSTABLE_OFFSET_COMMIT
                    } else {
                        ec::NONE
                    };
                    (
                        p,
                        code,
                        c.map_or(-1, |c| c.offset),
                        c.map_or(-1, |c| c.leader_epoch),
                        c.map(|c| c.metadata.clone()).unwrap_or_default(),
                    )
                })
                .collect();
            (name, parts)
        })
        .collect())
}

/// OffsetFetch: one group per request before v8, a batch of groups from v8 on. A classic group's
/// offsets are fetched whatever member id and epoch v9 carries, as Kafka does for classic groups.
pub async fn offset_fetch(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: OffsetFetchRequest = decode(body, version, "OffsetFetch")?;
    let mut resp = OffsetFetchResponse::default();
    if version < 8 {
        let wanted = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                .collect()
        });
        match fetch_group_offsets(
            broker,
            sess,
            req.group_id.0.to_string(),
            wanted,
            version >= 7 && req.require_stable,
        )
        .await
        {
            Err(code) => resp.error_code = code,
            Ok(topics) => {
                resp.topics = topics
                    .into_iter()
                    .map(|(name, parts)| {
                        offset_fetch_response::OffsetFetchResponseTopic::default()
                            .with_name(name)
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, code, offset, epoch, meta)| {
                                        offset_fetch_response::OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_error_code(code)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(s(meta)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
            }
        }
        return encode(&resp, version).map(Some);
    }
    for g in req.groups {
        let wanted = g.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                .collect()
        });
        let mut out = offset_fetch_response::OffsetFetchResponseGroup::default()
            .with_group_id(g.group_id.clone());
        match fetch_group_offsets(
            broker,
            sess,
            g.group_id.0.to_string(),
            wanted,
            req.require_stable,
        )
        .await
        {
            Err(code) => out.error_code = code,
            Ok(topics) => {
                out.topics = topics
                    .into_iter()
                    .map(|(name, parts)| {
                        offset_fetch_response::OffsetFetchResponseTopics::default()
                            .with_name(name)
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, code, offset, epoch, meta)| {
                                        offset_fetch_response::OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_error_code(code)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(s(meta)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
            }
        }
        resp.groups.push(out);
    }
    encode(&resp, version).map(Some)
}
