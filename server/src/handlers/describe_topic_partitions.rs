//! DescribeTopicPartitions (API 75, KIP-966): what Kafka 4's admin client uses to describe
//! topics, paged by a partition budget and a cursor, as Kafka's handler pages it.

use super::metadata::{uuid_from, Source};
use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::error_code as ec;
use crate::security::code;
use bytes::Bytes;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;

/// A request Kafka refuses with InvalidRequestException, answered as its error response is: every
/// requested topic carries the error (the response has no top-level error field).
fn refused(req: &DescribeTopicPartitionsRequest, why: String, version: i16) -> HandlerResult {
    tracing::info!(reason = %why, "DescribeTopicPartitions refused");
    let topics = req
        .topics
        .iter()
        .map(|t| {
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(ec::INVALID_REQUEST)
                .with_name(Some(t.name.clone()))
        })
        .collect();
    encode(
        &DescribeTopicPartitionsResponse::default().with_topics(topics),
        version,
    )
    .map(Some)
}

pub fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: DescribeTopicPartitionsRequest = decode(body, version, "DescribeTopicPartitions")?;
    let source = Source::current(broker);
    let all = req.topics.is_empty();
    let (cursor_topic, cursor_partition) = req.cursor.as_ref().map_or((String::new(), 0), |c| {
        (c.topic_name.0.to_string(), c.partition_index)
    });
    let mut names: Vec<String> = if all {
        source.topic_names().cloned().collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.retain(|n| *n >= cursor_topic);
    names.sort();
    names.dedup();
    if req.cursor.is_some() && !all && !names.contains(&cursor_topic) {
        let why = format!(
            "DescribeTopicPartitionsRequest topic list should contain the cursor topic: {cursor_topic}"
        );
        return refused(&req, why, version);
    }
    if cursor_partition < 0 {
        let why = format!(
            "DescribeTopicPartitionsRequest cursor partition must be valid: {cursor_partition}"
        );
        return refused(&req, why, version);
    }
    // Topics the principal may not describe: left out of a listing of all topics, refused
    // (without their id) when asked for by name.
    let mut unauthorized = Vec::new();
    names.retain(|n| {
        let ok = broker
            .authorizer
            .authorize(session, code::DESCRIBE, code::TOPIC, n);
        if !ok && !all {
            unauthorized.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ec::TOPIC_AUTHORIZATION_FAILED)
                    .with_name(Some(TopicName(StrBytes::from_string(n.clone())))),
            );
        }
        ok
    });
    let mut budget = req
        .response_partition_limit
        .min(broker.config.max_request_partition_size_limit)
        .max(1) as usize;
    let me = broker.config.broker_id;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    let mut rest = names.into_iter().peekable();
    while budget > 0 {
        let Some(name) = rest.next() else { break };
        let tname = TopicName(StrBytes::from_string(name.clone()));
        let Some((id, partitions)) = source.partitions(&name, me) else {
            if !all {
                topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(ec::UNKNOWN_TOPIC_OR_PARTITION)
                        .with_name(Some(tname)),
                );
            }
            continue;
        };
        let start = if name == cursor_topic {
            cursor_partition as usize
        } else {
            0
        };
        let total = partitions.len();
        let take = total.saturating_sub(start).min(budget);
        let described = partitions
            .into_iter()
            .skip(start)
            .take(take)
            .map(|p| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(p.error_code)
                    .with_partition_index(p.partition_index)
                    .with_leader_id(p.leader_id)
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(p.replica_nodes)
                    .with_isr_nodes(p.isr_nodes)
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
                    .with_offline_replicas(p.offline_replicas)
            })
            .collect();
        budget -= take;
        if start + take < total {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(tname.clone())
                    .with_partition_index((start + take) as i32),
            );
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(tname))
                .with_topic_id(uuid_from(id))
                .with_is_internal(
                    name == crate::coordinator::OFFSETS_TOPIC || name == crate::txn::TXN_TOPIC,
                )
                .with_partitions(described)
                .with_topic_authorized_operations(super::authorized_operations(
                    broker,
                    session,
                    code::TOPIC,
                    &name,
                )),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    if next_cursor.is_none() {
        if let Some(next) = rest.peek() {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(StrBytes::from_string(next.clone())))
                    .with_partition_index(0),
            );
        }
    }
    topics.extend(unauthorized);
    encode(
        &DescribeTopicPartitionsResponse::default()
            .with_topics(topics)
            .with_next_cursor(next_cursor),
        version,
    )
    .map(Some)
}
