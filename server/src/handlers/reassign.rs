//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455): what
//! `kafka-reassign-partitions` and Cruise-Control-style tools call. The broker that takes the
//! request checks each partition with Kafka's rules and messages, hands the valid ones to the
//! controller (`/admin/reassign_partitions`) and answers once the controller has started them;
//! the controller's side is `cluster::coordination::reassign`.

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::cluster::coordination::reassign::original;
use crate::cluster::{ClusterView, ReassignRefused, ReassignRequest, Request};
use crate::error_code as ec;
use crate::metrics::{error_codes, ErrorCodes};
use crate::security::{code as op, Session};
use bytes::Bytes;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

error_codes!(AlterPartitionReassignmentsResponse, AlterPartitionReassignments, top error_code, list responses.partitions);
error_codes!(ListPartitionReassignmentsResponse, ListPartitionReassignments, top error_code);

type Outcome = Result<(), (i16, String)>;

/// Kafka's checks of one partition's request against the cluster (its controller's messages).
fn check(view: &ClusterView, r: &ReassignRequest, allow_rf_change: bool) -> Outcome {
    let unknown = || {
        (
            ec::UNKNOWN_TOPIC_OR_PARTITION,
            format!("Unable to find partition {}-{}", r.topic, r.partition),
        )
    };
    let t = view
        .topics
        .get(&r.topic)
        .filter(|_| !view.deleting.contains(&r.topic))
        .ok_or_else(unknown)?;
    let p = usize::try_from(r.partition).map_err(|_| unknown())?;
    let replicas = t.replicas.get(p).ok_or_else(unknown)?;
    let ongoing = t.reassigning.get(&p);
    let Some(goal) = &r.target else {
        return match ongoing {
            Some(_) => Ok(()),
            None => Err((
                ec::NO_REASSIGNMENT_IN_PROGRESS,
                format!(
                    "Unable to cancel reassignment of {}-{}: no reassignment is in progress",
                    r.topic, r.partition
                ),
            )),
        };
    };
    let bad = |m: String| Err((ec::INVALID_REPLICA_ASSIGNMENT, m));
    if goal.is_empty() {
        return bad("The manual partition assignment includes an empty replica list.".into());
    }
    let mut seen = BTreeSet::new();
    for b in goal {
        if !seen.insert(*b) {
            return bad(format!(
                "The manual partition assignment includes the broker {b} more than once."
            ));
        }
        if !view.brokers.contains_key(b) {
            return bad(format!(
                "The manual partition assignment includes broker {b}, but no such broker is registered."
            ));
        }
    }
    let before = original(replicas, ongoing).len();
    if !allow_rf_change && goal.len() != before {
        return Err((
            ec::INVALID_REPLICATION_FACTOR,
            format!(
                "The replication factor is changed from {before} to {} but allowReplicationFactorChange is false",
                goal.len()
            ),
        ));
    }
    Ok(())
}

/// A single broker: its own id is the only replica a partition can have.
fn check_single(broker: &Broker, r: &ReassignRequest) -> Outcome {
    let count = broker
        .topic_partition_counts()
        .get(&r.topic)
        .copied()
        .unwrap_or(0);
    if !(0..count).contains(&r.partition) {
        return Err((
            ec::UNKNOWN_TOPIC_OR_PARTITION,
            format!("Unable to find partition {}-{}", r.topic, r.partition),
        ));
    }
    let me = broker.config.broker_id;
    match &r.target {
        None => Err((
            ec::NO_REASSIGNMENT_IN_PROGRESS,
            format!(
                "Unable to cancel reassignment of {}-{}: no reassignment is in progress",
                r.topic, r.partition
            ),
        )),
        Some(g) if *g == [me] => Ok(()),
        Some(g) => Err((
            ec::INVALID_REPLICA_ASSIGNMENT,
            format!("The manual partition assignment {g:?} names brokers that are not registered (only {me} is)."),
        )),
    }
}

/// Hands `requests` to the controller (waiting while an earlier batch is still there) and waits
/// until it has started them.
async fn start(
    cluster: &crate::cluster::Cluster,
    requests: Vec<ReassignRequest>,
    until: Instant,
) -> Outcome {
    loop {
        let (tx, rx) = futures_channel::oneshot::channel();
        cluster
            .request(Request::Reassign {
                requests: requests.clone(),
                reply: tx,
            })
            .map_err(|m| (ec::UNKNOWN_SERVER_ERROR, m))?;
        match rx.await {
            Ok(Ok(())) => break,
            Ok(Err(ReassignRefused::Busy)) if Instant::now() < until => {
                ringlet_engine::runtime::io::sleep(Duration::from_millis(50)).await;
            }
            Ok(Err(ReassignRefused::Busy)) => {
                return Err((
                    ec::REQUEST_TIMED_OUT,
                    "an earlier reassignment request is still waiting for the controller".into(),
                ))
            }
            Ok(Err(ReassignRefused::Failed(m))) => return Err((ec::UNKNOWN_SERVER_ERROR, m)),
            Err(_) => return Err((ec::UNKNOWN_SERVER_ERROR, "coordination thread gone".into())),
        }
    }
    let taken = |v: &ClusterView| {
        !v.reassign_requests
            .iter()
            .any(|r| requests.iter().any(|q| q == r))
    };
    if cluster.wait_for_view(until, taken).await {
        Ok(())
    } else {
        Err((
            ec::REQUEST_TIMED_OUT,
            "the controller has not started the reassignment yet".into(),
        ))
    }
}

pub async fn alter(
    broker: &Arc<Broker>,
    session: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: AlterPartitionReassignmentsRequest =
        decode(body, version, "AlterPartitionReassignments")?;
    let mut resp = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change);
    if !super::cluster_allowed(broker, session, op::ALTER) {
        resp.error_code = ec::CLUSTER_AUTHORIZATION_FAILED;
        resp.error_message = Some(StrBytes::from_static_str(
            "AlterPartitionReassignments needs Alter on the cluster",
        ));
        return encode(&resp, version).map(Some);
    }
    let allow_rf_change = version < 1 || req.allow_replication_factor_change;
    let view = broker.cluster.as_ref().map(|c| c.view());
    let mut results: BTreeMap<(String, i32), Outcome> = BTreeMap::new();
    let mut valid = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let r = ReassignRequest {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                target: p.replicas.as_ref().map(|l| l.iter().map(|b| b.0).collect()),
            };
            let outcome = match &view {
                Some(v) => check(v, &r, allow_rf_change),
                None => check_single(broker, &r),
            };
            if outcome.is_ok() && view.is_some() {
                valid.push(r.clone());
            }
            results.insert((r.topic, r.partition), outcome);
        }
    }
    if let (Some(c), false) = (&broker.cluster, valid.is_empty()) {
        let until = Instant::now() + Duration::from_millis(req.timeout_ms.clamp(1, 300_000) as u64);
        let outcome = start(c, valid.clone(), until).await;
        tracing::info!(
            partitions = valid.len(),
            requests = ?valid,
            error = outcome.as_ref().err().map(|e| ec::name(e.0)),
            "partition reassignment"
        );
        for r in valid {
            results.insert((r.topic, r.partition), outcome.clone());
        }
    }
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for ((t, p), outcome) in results {
        let (code, msg) = match outcome {
            Ok(()) => (ec::NONE, None),
            Err((c, m)) => (c, Some(StrBytes::from_string(m))),
        };
        by_topic.entry(t).or_default().push(
            ReassignablePartitionResponse::default()
                .with_partition_index(p)
                .with_error_code(code)
                .with_error_message(msg),
        );
    }
    resp.responses = by_topic
        .into_iter()
        .map(|(t, parts)| {
            ReassignableTopicResponse::default()
                .with_name(TopicName(StrBytes::from_string(t)))
                .with_partitions(parts)
        })
        .collect();
    encode(&resp, version).map(Some)
}

pub async fn list(
    broker: &Arc<Broker>,
    session: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: ListPartitionReassignmentsRequest =
        decode(body, version, "ListPartitionReassignments")?;
    let mut resp = ListPartitionReassignmentsResponse::default();
    if !super::cluster_allowed(broker, session, op::DESCRIBE) {
        resp.error_code = ec::CLUSTER_AUTHORIZATION_FAILED;
        return encode(&resp, version).map(Some);
    }
    let Some(view) = broker.cluster.as_ref().map(|c| c.view()) else {
        return encode(&resp, version).map(Some);
    };
    // Named partitions only (null: every ongoing reassignment).
    let wanted: Option<BTreeSet<(String, i32)>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|p| (t.name.0.to_string(), *p))
            })
            .collect()
    });
    let ids = |l: &[i32]| l.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    for (name, t) in &view.topics {
        let parts: Vec<OngoingPartitionReassignment> = t
            .reassigning
            .iter()
            .filter(|(p, _)| {
                wanted
                    .as_ref()
                    .is_none_or(|w| w.contains(&(name.clone(), **p as i32)))
            })
            .map(|(p, r)| {
                OngoingPartitionReassignment::default()
                    .with_partition_index(*p as i32)
                    .with_replicas(ids(&t.replicas[*p]))
                    .with_adding_replicas(ids(&r.adding))
                    .with_removing_replicas(ids(&r.removing))
            })
            .collect();
        if !parts.is_empty() {
            resp.topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(name.clone())))
                    .with_partitions(parts),
            );
        }
    }
    encode(&resp, version).map(Some)
}
