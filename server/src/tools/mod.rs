//! Operator tools that speak the Kafka protocol to any broker (like Kafka's `bin/*.sh` scripts).

use crate::error_code;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use ringlet_loadgen::client::Conn;
use std::collections::BTreeMap;

pub mod consume;
pub mod groups;
pub mod produce;
pub mod records;
pub mod topics;

/// ListOffsets for `partitions` of `topic` at `timestamp` (-2 earliest, -1 latest, or a time).
pub fn list_offsets(
    conn: &mut Conn,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
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
                error_code::name(p.error_code)
            );
        }
        out.insert(p.partition_index, p.offset);
    }
    Ok(out)
}
