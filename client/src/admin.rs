//! Admin requests: metadata, offsets, topics and consumer groups. A refusal comes back as a
//! [`BrokerError`] inside the `anyhow::Error`, so callers can match on Kafka's code.

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

/// A request the broker refused: Kafka's error code, its name and the broker's message.
#[derive(Debug, Clone)]
pub struct BrokerError {
    pub code: i16,
    pub message: Option<String>,
}

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", error_name(self.code), self.code)?;
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BrokerError {}

/// `Ok` for code 0, else the broker's error (downcastable from the `anyhow::Error`).
pub fn check(code: i16, message: Option<&StrBytes>) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    Err(BrokerError {
        code,
        message: message.map(|m| m.to_string()),
    }
    .into())
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Metadata for `topics` (every topic when `None`), never creating any.
pub fn metadata(conn: &mut Conn, topics: Option<&[String]>) -> anyhow::Result<MetadataResponse> {
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
                .collect()
        }));
    Ok(conn.call(ApiKey::Metadata, 12, &req)?)
}

/// CreateTopics for one topic (`-1` partitions or replication factor: the broker's default).
pub fn create_topic(
    conn: &mut Conn,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
) -> anyhow::Result<()> {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )]);
    let resp: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 5, &req)?;
    for r in resp.topics {
        check(r.error_code, r.error_message.as_ref())?;
    }
    Ok(())
}

pub fn delete_topic(conn: &mut Conn, topic: &str) -> anyhow::Result<()> {
    let resp: DeleteTopicsResponse = conn.call(
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topic_names(vec![name(topic)]),
    )?;
    for r in resp.responses {
        check(r.error_code, r.error_message.as_ref())?;
    }
    Ok(())
}

/// CreatePartitions: grow `topic` to `count` partitions.
pub fn create_partitions(conn: &mut Conn, topic: &str, count: i32) -> anyhow::Result<()> {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name(topic))
                .with_count(count)
                .with_assignments(None),
        ]);
    let resp: CreatePartitionsResponse = conn.call(ApiKey::CreatePartitions, 1, &req)?;
    for r in resp.results {
        check(r.error_code, r.error_message.as_ref())?;
    }
    Ok(())
}

/// IncrementalAlterConfigs SET of topic configs.
pub fn alter_topic_configs(
    conn: &mut Conn,
    topic: &str,
    configs: &[(String, String)],
) -> anyhow::Result<()> {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(0)
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            ),
    ]);
    let resp: IncrementalAlterConfigsResponse =
        conn.call(ApiKey::IncrementalAlterConfigs, 0, &req)?;
    for r in resp.responses {
        check(r.error_code, r.error_message.as_ref())?;
    }
    Ok(())
}

/// The configs set on `topic` itself (DescribeConfigs entries whose source is the topic).
pub fn topic_config_overrides(
    conn: &mut Conn,
    topic: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configuration_keys(None)]);
    let resp: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 1, &req)?;
    let mut out = Vec::new();
    for r in resp.results {
        check(r.error_code, r.error_message.as_ref())?;
        out.extend(
            r.configs
                .into_iter()
                .filter(|c| c.config_source == 1)
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.value.map(|v| v.to_string()).unwrap_or_default(),
                    )
                }),
        );
    }
    Ok(out)
}

/// ListGroups: (group id, protocol type, state).
pub fn list_groups(conn: &mut Conn) -> anyhow::Result<Vec<(String, String, String)>> {
    let resp: ListGroupsResponse =
        conn.call(ApiKey::ListGroups, 3, &ListGroupsRequest::default())?;
    check(resp.error_code, None)?;
    Ok(resp
        .groups
        .into_iter()
        .map(|g| {
            (
                g.group_id.0.to_string(),
                g.protocol_type.to_string(),
                g.group_state.to_string(),
            )
        })
        .collect())
}

/// DescribeGroups for one group.
pub fn describe_group(
    conn: &mut Conn,
    group: &str,
) -> anyhow::Result<describe_groups_response::DescribedGroup> {
    let resp: DescribeGroupsResponse = conn.call(
        ApiKey::DescribeGroups,
        3,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
    )?;
    let g = resp
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no description for {group}"))?;
    check(g.error_code, None)?;
    Ok(g)
}

/// Every offset `group` has committed: (topic, partition) -> offset.
pub fn group_offsets(conn: &mut Conn, group: &str) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let resp: OffsetFetchResponse = conn.call(
        ApiKey::OffsetFetch,
        5,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(None),
    )?;
    check(resp.error_code, None)?;
    Ok(resp
        .topics
        .into_iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions
                .into_iter()
                .map(move |p| ((name.clone(), p.partition_index), p.committed_offset))
        })
        .filter(|(_, o)| *o >= 0)
        .collect())
}

/// Commits offsets for a group that has no members (an admin reset: generation -1).
pub fn commit_group_offsets(
    conn: &mut Conn,
    group: &str,
    offsets: &BTreeMap<(String, i32), i64>,
) -> anyhow::Result<()> {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        topics.entry(t.as_str()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_leader_epoch(-1),
        );
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(name(t))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 7, &req)?;
    for t in resp.topics {
        for p in t.partitions {
            check(p.error_code, None)
                .map_err(|e| anyhow::anyhow!("{}/{}: {e}", t.name.0, p.partition_index))?;
        }
    }
    Ok(())
}

pub fn delete_group(conn: &mut Conn, group: &str) -> anyhow::Result<()> {
    let resp: DeleteGroupsResponse = conn.call(
        ApiKey::DeleteGroups,
        1,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]),
    )?;
    for r in resp.results {
        check(r.error_code, None)?;
    }
    Ok(())
}
