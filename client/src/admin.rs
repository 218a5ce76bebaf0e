//! Metadata and offset lookups.

use crate::conn::Conn;
use crate::errors::error_name;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// ListOffsets timestamp for the earliest offset.
pub const EARLIEST: i64 = -2;
/// ListOffsets timestamp for the latest offset (the high watermark).
pub const LATEST: i64 = -1;

fn name(v: &str) -> TopicName {
    TopicName(StrBytes::from_string(v.to_string()))
}

/// The partition indexes of `topic`, asking the broker to create it when `auto_create` (as a
/// producer's metadata request does).
pub fn partitions(conn: &mut Conn, topic: &str, auto_create: bool) -> anyhow::Result<Vec<i32>> {
    let md: MetadataResponse = conn.call(
        ApiKey::Metadata,
        8,
        &MetadataRequest::default()
            .with_allow_auto_topic_creation(auto_create)
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name(topic)))
            ])),
    )?;
    let t = md
        .topics
        .first()
        .ok_or_else(|| anyhow::anyhow!("no metadata for topic {topic}"))?;
    if t.error_code != 0 {
        anyhow::bail!("topic {topic}: {}", error_name(t.error_code));
    }
    let mut parts: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    parts.sort_unstable();
    if parts.is_empty() {
        anyhow::bail!("topic {topic} has no partitions");
    }
    Ok(parts)
}

/// ListOffsets for `partitions` of `topic` at `timestamp` ([`EARLIEST`], [`LATEST`], or a time in
/// ms: the first offset whose timestamp is at or after it).
pub fn list_offsets(
    conn: &mut Conn,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let resp: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 4, &req)?;
    let mut out = BTreeMap::new();
    for p in resp.topics.into_iter().flat_map(|t| t.partitions) {
        if p.error_code != 0 {
            anyhow::bail!(
                "ListOffsets for {topic}/{}: {}",
                p.partition_index,
                error_name(p.error_code)
            );
        }
        out.insert(p.partition_index, p.offset);
    }
    Ok(out)
}
