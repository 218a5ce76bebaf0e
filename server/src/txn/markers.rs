//! Commit and abort markers: written by the coordinator to every partition of a transaction,
//! on the shard that owns each (through the engine, acknowledged once the in-sync replicas have
//! them, as Kafka's WriteTxnMarkers writes them). A marker reaching a `__consumer_offsets`
//! partition also settles the transaction's pending offsets there.

use crate::broker::Broker;
use crate::coordinator::{self, OFFSETS_TOPIC};
use crate::error_code as ec;
use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::protocol::StrBytes;
use ringlet_format::control::{marker_batch, Marker};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Writes one marker to one partition led here; `Ok` also when the partition is gone (a
/// deleted topic's marker is dropped, as Kafka drops it).
pub async fn write_marker(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    producer_id: i64,
    epoch: i16,
    commit: bool,
) -> Result<(), i16> {
    let marker = if commit {
        Marker::Commit
    } else {
        Marker::Abort
    };
    let bytes = Bytes::from(marker_batch(
        producer_id,
        epoch,
        marker,
        0,
        ringlet_engine::config::now_ms(),
    ));
    let offsets_partitions = broker.config.offsets_topic_num_partitions;
    let name = topic.to_string();
    let r = broker
        .on_partition(topic, partition, move |part| async move {
            coordinator::append_acked(&name, &part, partition, bytes, true).await?;
            if name == OFFSETS_TOPIC {
                coordinator::complete_txn(partition, offsets_partitions, producer_id, commit);
            }
            Ok(())
        })
        .await;
    match r {
        // Only a broker that has seen the cluster can tell a deleted topic from one it does not
        // know yet (restarted, its first view still to come).
        Err(ec::UNKNOWN_TOPIC_OR_PARTITION)
            if broker.view_loaded() && !broker.partition_exists(topic, partition) =>
        {
            Ok(())
        }
        r => r,
    }
}

/// Writes the transaction's markers to all its partitions at once: here for the partitions this
/// broker leads (or every partition, on a single broker), by WriteTxnMarkers to the leader for
/// the others (a cluster). Returns the first failure; the coordinator retries the whole set, and
/// a marker written twice is harmless (the second completes nothing).
pub async fn write_markers(
    broker: &Arc<Broker>,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    partitions: &BTreeSet<(String, i32)>,
) -> Result<(), i16> {
    let mut local: Vec<(String, i32)> = Vec::new();
    let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    match &broker.cluster {
        None => local.extend(partitions.iter().cloned()),
        Some(cluster) => {
            let view = cluster.view();
            let me = broker.config.broker_id;
            for (t, p) in partitions {
                match view.state(t, *p).map(|s| s.leader) {
                    // Gone (topic deleted): its marker is dropped, as Kafka drops it.
                    None if !view.topics.contains_key(t) => {}
                    Some(l) if l == me => local.push((t.clone(), *p)),
                    Some(l) if l >= 0 => remote.entry(l).or_default().push((t.clone(), *p)),
                    _ => return Err(ec::NOT_LEADER_OR_FOLLOWER),
                }
            }
        }
    }
    let here = join_all(
        local
            .iter()
            .map(|(t, p)| write_marker(broker, t, *p, producer_id, epoch, commit)),
    );
    let there =
        join_all(remote.into_iter().map(|(leader, parts)| {
            send_markers(broker, leader, producer_id, epoch, commit, parts)
        }));
    tracing::debug!(producer_id, commit, ?local, "writing transaction markers");
    let (here, there) = futures_util::future::join(here, there).await;
    tracing::debug!(
        producer_id,
        commit,
        ?here,
        ?there,
        "transaction markers written"
    );
    here.into_iter()
        .chain(there)
        .collect::<Result<Vec<()>, i16>>()?;
    Ok(())
}

/// The cluster, when broker `id` takes inter-broker requests, and how long one may take.
pub(super) fn peer(broker: &Broker, id: i32) -> Option<(&crate::cluster::Cluster, Duration)> {
    let cluster = broker.cluster.as_deref()?;
    let timeout = Duration::from_millis(cluster.config.replica_socket_timeout_ms.max(1000));
    cluster.peer_endpoint(id)?;
    Some((cluster, timeout))
}

/// WriteTxnMarkers (v1) to broker `leader` for `parts`.
async fn send_markers(
    broker: &Arc<Broker>,
    leader: i32,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    parts: Vec<(String, i32)>,
) -> Result<(), i16> {
    use kafka_protocol::messages::write_txn_markers_request::*;
    use kafka_protocol::messages::*;
    let Some((cluster, timeout)) = peer(broker, leader) else {
        return Err(ec::COORDINATOR_NOT_AVAILABLE);
    };
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(p);
    }
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_transaction_result(commit)
        .with_coordinator_epoch(0)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t)))
                        .with_partition_indexes(ps)
                })
                .collect(),
        )]);
    let client_id = format!("ringlet-txn-markers-{}", broker.config.broker_id);
    tracing::debug!(leader, producer_id, "sending WriteTxnMarkers");
    let resp: Result<WriteTxnMarkersResponse, _> = async {
        let mut conn = cluster.connect_peer(leader, timeout, &client_id).await?;
        conn.call(ApiKey::WriteTxnMarkers, 1, &req, timeout).await
    }
    .await;
    let resp = resp.map_err(|e| {
        tracing::debug!(leader, error = %e, "WriteTxnMarkers failed");
        ec::COORDINATOR_NOT_AVAILABLE
    })?;
    let failed = resp
        .markers
        .iter()
        .flat_map(|m| &m.topics)
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .find(|&c| c != ec::NONE && c != ec::UNKNOWN_TOPIC_OR_PARTITION);
    match failed {
        Some(code) => Err(code),
        None => Ok(()),
    }
}
