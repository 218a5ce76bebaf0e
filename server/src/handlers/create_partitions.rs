//! CreatePartitions: raise a topic's partition count.

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::error_code as ec;
use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use std::sync::Arc;

pub async fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: CreatePartitionsRequest = decode(body, version, "CreatePartitions")?;
    let mut results = Vec::new();
    let mut quota = super::quotas::MutationQuota::new(broker, session, version >= 3);
    for t in req.topics {
        let name = t.name.0.to_string();
        let before = broker.topic_partition_counts().get(&name).copied();
        let res = if !super::topic_allowed(broker, session, crate::security::code::ALTER, &name) {
            Err((
                ec::TOPIC_AUTHORIZATION_FAILED,
                format!("{} may not alter topic {name}", session.principal()),
            ))
        } else if let Err(e) = quota.check() {
            Err(e)
        } else if let Some(c) = &broker.cluster {
            in_cluster(
                c,
                &name,
                t.count,
                t.assignments.as_deref(),
                req.validate_only,
            )
            .await
        } else if let Err(e) = check_assignments(broker, &name, t.count, t.assignments.as_deref()) {
            Err(e)
        } else {
            broker
                .create_partitions(&name, t.count, req.validate_only)
                .await
        };
        let mut r = CreatePartitionsTopicResult::default().with_name(t.name);
        if res.is_ok() && !req.validate_only {
            quota.record(t.count - before.unwrap_or(t.count));
        }
        if let Err((code, msg)) = res {
            r.error_code = code;
            r.error_message = super::refused("create partitions", &name, code, msg);
        }
        results.push(r);
    }
    let resp = CreatePartitionsResponse::default()
        .with_results(results)
        .with_throttle_time_ms(quota.throttle_ms);
    encode(&resp, version).map(Some)
}

/// CreatePartitions in a cluster: a manual assignment must name registered, distinct brokers
/// (Kafka's checks; its size is checked against the topic's by `add_partitions`).
async fn in_cluster(
    cluster: &Arc<crate::cluster::Cluster>,
    name: &str,
    count: i32,
    assignments: Option<&[CreatePartitionsAssignment]>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let manual = match assignments.filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => {
            let listed: Vec<(i32, Vec<i32>)> = a
                .iter()
                .enumerate()
                .map(|(i, a)| (i as i32, a.broker_ids.iter().map(|b| b.0).collect()))
                .collect();
            let registered: Vec<i32> = cluster.view().brokers.keys().copied().collect();
            Some(crate::broker::validate_assignment(&listed, &registered)?)
        }
    };
    crate::cluster::topics::add_partitions(cluster, name, count, manual, validate_only).await
}

/// Validates a manual assignment of the new partitions as Kafka's controller does: one replica
/// list per new partition, each of registered, distinct brokers, as many as the topic's existing
/// partitions have. A single broker places every partition on itself, so a valid assignment names
/// only it. The partition count itself is checked by `create_partitions`.
fn check_assignments(
    broker: &Broker,
    name: &str,
    count: i32,
    assignments: Option<&[CreatePartitionsAssignment]>,
) -> Result<(), (i16, String)> {
    let Some(assignments) = assignments.filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    let existing = match broker
        .metadata
        .read()
        .expect("metadata lock")
        .topics
        .get(name)
    {
        Some(t) => t.partitions.len() as i32,
        None => return Ok(()),
    };
    if count <= existing {
        return Ok(());
    }
    let additional = count - existing;
    if assignments.len() as i32 != additional {
        return Err((
            ec::INVALID_REPLICA_ASSIGNMENT,
            format!(
                "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
                assignments.len()
            ),
        ));
    }
    let listed: Vec<(i32, Vec<i32>)> = assignments
        .iter()
        .enumerate()
        .map(|(i, a)| (i as i32, a.broker_ids.iter().map(|b| b.0).collect()))
        .collect();
    let lists = crate::broker::validate_assignment(&listed, &[broker.config.broker_id])?;
    if let Some(l) = lists.iter().find(|l| l.len() != 1) {
        return Err((
            ec::INVALID_REPLICA_ASSIGNMENT,
            format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have 1 replica(s).",
                l.len()
            ),
        ));
    }
    Ok(())
}
