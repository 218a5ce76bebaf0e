//! CreateTopics, with per-topic configs and validate-only.

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::error_code as ec;
use bytes::Bytes;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: CreateTopicsRequest = decode(body, version, "CreateTopics")?;
    let mut results = Vec::new();
    let mut quota = super::quotas::MutationQuota::new(broker, session, version >= 6);
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let configs: BTreeMap<String, String> = t
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let mut assigned: Option<(i32, i16)> = None;
        let outcome = if !super::may_create_topic(broker, session, &name) {
            Err((
                ec::TOPIC_AUTHORIZATION_FAILED,
                format!("{} may not create topic {name}", session.principal()),
            ))
        } else if let Err(e) = quota.check() {
            Err(e)
        } else if !t.assignments.is_empty() {
            // Kafka's controller: with an assignment, both counts must be left at -1.
            if t.replication_factor != -1 {
                Err((
                    ec::INVALID_REPLICATION_FACTOR,
                    "A manual partition assignment was specified, but replication factor was not set to -1.".to_string(),
                ))
            } else if t.num_partitions != -1 {
                Err((
                    ec::INVALID_PARTITIONS,
                    "A manual partition assignment was specified, but numPartitions was not set to -1.".to_string(),
                ))
            } else {
                let a: Vec<(i32, Vec<i32>)> = t
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| b.0).collect(),
                        )
                    })
                    .collect();
                match broker
                    .create_topic_assigned(&name, &a, configs, req.validate_only)
                    .await
                {
                    Ok(shape) => {
                        assigned = Some(shape);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        } else {
            broker
                .create_topic(
                    &name,
                    t.num_partitions,
                    t.replication_factor,
                    configs,
                    req.validate_only,
                )
                .await
        };
        match outcome {
            Ok(()) => {
                (r.num_partitions, r.replication_factor) = match assigned {
                    Some(shape) => shape,
                    None if t.num_partitions == -1 => (broker.config.num_partitions, 1),
                    None => (t.num_partitions, 1),
                };
                if !req.validate_only {
                    quota.record(r.num_partitions);
                }
                if let Some(meta) = broker
                    .metadata
                    .read()
                    .expect("metadata lock")
                    .topics
                    .get(&name)
                {
                    r.topic_id = super::metadata::uuid_from(meta.id);
                }
            }
            Err((code, msg)) => {
                r.error_code = code;
                r.error_message = super::refused("create topic", &name, code, msg);
            }
        }
        results.push(r);
    }
    let mut resp = CreateTopicsResponse::default().with_topics(results);
    if version >= 2 {
        resp.throttle_time_ms = quota.throttle_ms;
    }
    encode(&resp, version).map(Some)
}
