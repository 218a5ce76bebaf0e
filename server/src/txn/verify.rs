//! The partition leader's side of KIP-890. Before the first transactional batch of a producer
//! reaches a partition that has no transaction of that producer open, the leader asks the
//! coordinator: with transaction version 2 (Produce v12+) to add the partition to the transaction
//! (the client no longer sends AddPartitionsToTxn), with version 1 only to verify that it was
//! added, so that a batch arriving after its transaction ended cannot open one nobody will end
//! (a "hanging" transaction, which would hold the last stable offset back for good). The
//! coordinator is reached directly when it runs here, by AddPartitionsToTxn v5 otherwise.

use super::{markers::peer, on_coordinator, partition_for, TXN_TOPIC};
use crate::broker::Broker;
use crate::error_code as ec;
use futures_util::future::join_all;
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Adds `parts` to `txn_id`'s transaction (or, `verify_only`, checks they are in it) at its
/// coordinator, wherever that runs; the coordinator's code.
pub async fn add_or_verify(
    broker: &Arc<Broker>,
    txn_id: &str,
    producer_id: i64,
    epoch: i16,
    parts: Vec<(String, i32)>,
    verify_only: bool,
) -> i16 {
    let p = partition_for(txn_id, broker.config.transactions.state_log_num_partitions);
    let remote = broker
        .cluster
        .as_ref()
        .map(|c| c.view().state(TXN_TOPIC, p).map_or(-1, |s| s.leader));
    match remote {
        Some(l) if l != broker.config.broker_id => {
            if l < 0 {
                return ec::COORDINATOR_NOT_AVAILABLE;
            }
            add_remote(broker, l, txn_id, producer_id, epoch, parts, verify_only).await
        }
        _ => {
            let id = txn_id.to_string();
            on_coordinator(broker, txn_id, move |tp| async move {
                Ok(super::add_partitions(tp, &id, producer_id, epoch, parts, verify_only).await)
            })
            .await
            .unwrap_or_else(|c| c)
        }
    }
}

/// AddPartitionsToTxn v5 (the batched, broker-to-coordinator form) to broker `coordinator`.
async fn add_remote(
    broker: &Arc<Broker>,
    coordinator: i32,
    txn_id: &str,
    producer_id: i64,
    epoch: i16,
    parts: Vec<(String, i32)>,
    verify_only: bool,
) -> i16 {
    use kafka_protocol::messages::add_partitions_to_txn_request::*;
    use kafka_protocol::messages::*;
    let Some((cluster, timeout)) = peer(broker, coordinator) else {
        return ec::COORDINATOR_NOT_AVAILABLE;
    };
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(p);
    }
    let txn = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(txn_id.to_string())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_verify_only(verify_only)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let req = AddPartitionsToTxnRequest::default().with_transactions(vec![txn]);
    let client_id = format!("ringlet-txn-verify-{}", broker.config.broker_id);
    let resp: Result<AddPartitionsToTxnResponse, _> = async {
        let mut conn = cluster
            .connect_peer(coordinator, timeout, &client_id)
            .await?;
        conn.call(ApiKey::AddPartitionsToTxn, 5, &req, timeout)
            .await
    }
    .await;
    match resp {
        Err(e) => {
            tracing::debug!(coordinator, error = %e, "AddPartitionsToTxn to the coordinator failed");
            ec::COORDINATOR_NOT_AVAILABLE
        }
        Ok(r) if r.error_code != ec::NONE => r.error_code,
        Ok(r) => r
            .results_by_transaction
            .iter()
            .flat_map(|t| &t.topic_results)
            .flat_map(|t| &t.results_by_partition)
            .map(|p| p.partition_error_code)
            .find(|&c| c != ec::NONE)
            .unwrap_or(ec::NONE),
    }
}

const RETRY_MS: u64 = 20;
const RETRY_MAX_MS: u64 = 100;

/// One partition's transactional batches in a produce request: topic, partition, producer id,
/// epoch.
pub type TxnBatch = (Arc<str>, i32, i64, i16);

/// The produce request's partitions that may not be appended, with the code each gets: those
/// whose producer has no transaction open there, once the coordinator refused to add (version 2)
/// or to verify (version 1) them. Partitions with a transaction open are never asked about.
pub async fn gate_produce(
    broker: &Arc<Broker>,
    txn_id: &str,
    version: i16,
    batches: Vec<TxnBatch>,
) -> HashMap<(Arc<str>, i32), i16> {
    let add = version >= 12;
    if batches.is_empty() || !(add || broker.config.transactions.partition_verification_enable) {
        return HashMap::new();
    }
    let open = join_all(batches.iter().map(|(t, p, pid, epoch)| {
        let (pid, epoch) = (*pid, *epoch);
        broker.on_partition(t, *p, move |part| async move {
            Ok(part.in_transaction(pid, epoch))
        })
    }))
    .await;
    let needed: Vec<&TxnBatch> = batches
        .iter()
        .zip(open)
        // A partition not here is refused by the append itself.
        .filter(|(_, open)| matches!(open, Ok(false)))
        .map(|(b, _)| b)
        .collect();
    let Some(&&(_, _, pid, epoch)) = needed.first() else {
        return HashMap::new();
    };
    let parts: Vec<(String, i32)> = needed.iter().map(|b| (b.0.to_string(), b.1)).collect();
    // Two leaders adding partitions of one transaction at once find it busy: retried here a
    // few times (Kafka's `add.partitions.to.txn.retry.backoff.ms` 20 up to
    // `add.partitions.to.txn.retry.backoff.max.ms` 100) before the producer is told to retry.
    let mut waited = 0;
    let code = loop {
        let code = add_or_verify(broker, txn_id, pid, epoch, parts.clone(), !add).await;
        if code != ec::CONCURRENT_TRANSACTIONS || waited >= RETRY_MAX_MS {
            break code;
        }
        ringlet_engine::runtime::io::sleep(std::time::Duration::from_millis(RETRY_MS)).await;
        waited += RETRY_MS;
    };
    if code == ec::NONE {
        return HashMap::new();
    }
    let code = produce_code(code);
    tracing::info!(
        transactional_id = txn_id,
        producer_id = pid,
        epoch,
        error = ec::name(code),
        "transactional batch refused: the coordinator did not {} its partition",
        if add { "add" } else { "verify" }
    );
    needed
        .into_iter()
        .map(|b| ((b.0.clone(), b.1), code))
        .collect()
}

/// What a producer is told when its partition could not be added or verified (Kafka's mapping):
/// a coordinator that is busy, moving or unreachable is a retriable NOT_ENOUGH_REPLICAS.
fn produce_code(code: i16) -> i16 {
    match code {
        ec::COORDINATOR_NOT_AVAILABLE
        | ec::NOT_COORDINATOR
        | ec::COORDINATOR_LOAD_IN_PROGRESS
        | ec::CONCURRENT_TRANSACTIONS => ec::NOT_ENOUGH_REPLICAS,
        ec::PRODUCER_FENCED => ec::INVALID_PRODUCER_EPOCH,
        c => c,
    }
}
