//! Commit and abort markers: written by the coordinator to every partition of a transaction,
//! on the shard that owns each (through the engine, acknowledged once the in-sync replicas have
//! them, as Kafka's WriteTxnMarkers writes them). A marker reaching a `__consumer_offsets`
//! partition also settles the transaction's pending offsets there.

use crate::broker::Broker;
use crate::coordinator::{self, OFFSETS_TOPIC};
use crate::error_code as ec;
use bytes::Bytes;
use futures_util::future::join_all;
use ringlet_format::control::{marker_batch, Marker};
use std::collections::BTreeSet;
use std::sync::Arc;

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
        Err(ec::UNKNOWN_TOPIC_OR_PARTITION) if !broker.partition_exists(topic, partition) => Ok(()),
        r => r,
    }
}

/// Writes the transaction's markers to all its partitions at once; the first failure.
pub async fn write_markers(
    broker: &Arc<Broker>,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    partitions: &BTreeSet<(String, i32)>,
) -> Result<(), i16> {
    let results = join_all(
        partitions
            .iter()
            .map(|(t, p)| write_marker(broker, t, *p, producer_id, epoch, commit)),
    )
    .await;
    results.into_iter().collect::<Result<Vec<()>, i16>>()?;
    Ok(())
}
