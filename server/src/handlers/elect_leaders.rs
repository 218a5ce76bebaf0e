//! ElectLeaders (`kafka-leader-election`): preferred-replica elections through the controller
//! (`/admin/preferred_replica_election`, as Kafka's ZooKeeper mode) and unclean ones
//! (`/admin/unclean_leader_election`): a partition without a live leader gets one from any live
//! replica, in sync or not, whatever its topic's `unclean.leader.election.enable` (Kafka's rule:
//! the operator asked).

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::cluster::ClusterView;
use crate::error_code as ec;
use crate::security::{code as op, Session};
use bytes::Bytes;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PREFERRED: i8 = 0;

/// One partition's answer before any election: `Ok(Some(preferred))` when it is to be elected
/// preferred, `Ok(None)` when it is to get any live leader (unclean).
fn precheck(
    view: &ClusterView,
    topic: &str,
    p: i32,
    kind: i8,
) -> Result<Option<i32>, (i16, String)> {
    let unknown = || {
        (
            ec::UNKNOWN_TOPIC_OR_PARTITION,
            format!("{topic}-{p} does not exist"),
        )
    };
    let t = view.topics.get(topic).ok_or_else(unknown)?;
    let idx = usize::try_from(p).map_err(|_| unknown())?;
    let replicas = t.replicas.get(idx).ok_or_else(unknown)?;
    let state = t.states.get(idx).cloned().flatten();
    let live = |b: &i32| view.brokers.contains_key(b) && !view.shutting_down.contains(b);
    let leader_live = state
        .as_ref()
        .is_some_and(|s| s.leader >= 0 && live(&s.leader));
    if kind != PREFERRED {
        return if leader_live {
            Err((
                ec::ELECTION_NOT_NEEDED,
                "the partition has a live leader".into(),
            ))
        } else if replicas.iter().any(live) {
            Ok(None)
        } else {
            Err((
                ec::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                format!("no replica of {topic}-{p} is alive"),
            ))
        };
    }
    let pref = *replicas.first().ok_or_else(unknown)?;
    match state {
        Some(s) if s.leader == pref => Err((
            ec::ELECTION_NOT_NEEDED,
            "the preferred replica is the leader".into(),
        )),
        Some(s) if live(&pref) && s.isr.contains(&pref) => Ok(Some(pref)),
        _ => Err((
            ec::PREFERRED_LEADER_NOT_AVAILABLE,
            format!("preferred replica {pref} is not alive and in sync"),
        )),
    }
}

pub async fn handle(
    broker: &Arc<Broker>,
    session: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: ElectLeadersRequest = decode(body, version, "ElectLeaders")?;
    let kind = if version >= 1 {
        req.election_type
    } else {
        PREFERRED
    };
    let mut resp = ElectLeadersResponse::default();
    let allowed = super::cluster_allowed(broker, session, op::ALTER);
    // The partitions asked about (all of every topic when the list is null).
    let asked: Vec<(String, Vec<i32>)> = match &req.topic_partitions {
        Some(tps) => tps
            .iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect(),
        None => broker
            .topic_partition_counts()
            .into_iter()
            .map(|(t, n)| (t, (0..n).collect()))
            .collect(),
    };
    let mut results: BTreeMap<(String, i32), (i16, Option<String>)> = BTreeMap::new();
    let mut to_elect: Vec<(String, i32, Option<i32>)> = Vec::new();
    let view = broker.cluster.as_ref().map(|c| c.view());
    for (topic, parts) in &asked {
        for &p in parts {
            let r = if !allowed {
                Err((
                    ec::CLUSTER_AUTHORIZATION_FAILED,
                    "ElectLeaders needs Alter on the cluster".into(),
                ))
            } else {
                match &view {
                    Some(v) => precheck(v, topic, p, kind),
                    // A single broker leads every partition it has: its only replica.
                    None if broker.topic_id(topic).is_some()
                        && (0..broker
                            .topic_partition_counts()
                            .get(topic)
                            .copied()
                            .unwrap_or(0))
                            .contains(&p) =>
                    {
                        Err((
                            ec::ELECTION_NOT_NEEDED,
                            "the only replica is the leader".into(),
                        ))
                    }
                    None => Err((
                        ec::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("{topic}-{p} does not exist"),
                    )),
                }
            };
            match r {
                Ok(pref) => to_elect.push((topic.clone(), p, pref)),
                Err((code, msg)) => {
                    results.insert((topic.clone(), p), (code, Some(msg)));
                }
            }
        }
    }
    if let (Some(c), false) = (&broker.cluster, to_elect.is_empty()) {
        let (tx, rx) = futures_channel::oneshot::channel();
        let partitions = to_elect.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        let asked = c
            .request(crate::cluster::Request::PreferredElection {
                partitions,
                unclean: kind != PREFERRED,
                reply: tx,
            })
            .map_err(|m| m.to_string());
        let written = match asked {
            Ok(()) => rx
                .await
                .unwrap_or_else(|_| Err("coordination thread gone".into())),
            Err(m) => Err(m),
        };
        let timeout = Duration::from_millis(req.timeout_ms.clamp(1, 60_000) as u64);
        // Elected: led by the preferred replica, or (unclean) by any live broker.
        let elected = |v: &ClusterView, t: &str, p: i32, pref: Option<i32>| {
            v.state(t, p).is_some_and(|s| match pref {
                Some(pref) => s.leader == pref,
                None => s.leader >= 0 && v.brokers.contains_key(&s.leader),
            })
        };
        let done = |v: &ClusterView| to_elect.iter().all(|(t, p, pref)| elected(v, t, *p, *pref));
        let led = written.is_ok() && c.wait_for_view(Instant::now() + timeout, done).await;
        let view = c.view();
        for (t, p, pref) in &to_elect {
            let now = view.state(t, *p).map_or(-1, |s| s.leader);
            let r = match &written {
                Err(m) => (ec::UNKNOWN_SERVER_ERROR, Some(m.clone())),
                Ok(()) if elected(&view, t, *p, *pref) => (ec::NONE, None),
                Ok(()) => (
                    ec::REQUEST_TIMED_OUT,
                    Some(format!(
                        "the election did not complete in time (leader {now}, wanted {})",
                        pref.map_or("any live replica".into(), |b| b.to_string())
                    )),
                ),
            };
            results.insert((t.clone(), *p), r);
        }
        tracing::info!(
            partitions = to_elect.len(),
            complete = led,
            unclean = kind != PREFERRED,
            "leader election"
        );
    }
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((t, p), (code, msg)) in results {
        by_topic.entry(t).or_default().push(
            PartitionResult::default()
                .with_partition_id(p)
                .with_error_code(code)
                .with_error_message(msg.map(StrBytes::from_string)),
        );
    }
    resp.replica_election_results = by_topic
        .into_iter()
        .map(|(t, parts)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(t)))
                .with_partition_result(parts)
        })
        .collect();
    if !allowed && version >= 1 {
        resp.error_code = ec::CLUSTER_AUTHORIZATION_FAILED;
        resp.replica_election_results.clear();
    }
    encode(&resp, version).map(Some)
}
