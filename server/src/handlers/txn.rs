//! Transaction APIs (KIP-98): InitProducerId with a transactional id, AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn and TxnOffsetCommit; DescribeTransactions and ListTransactions
//! (KIP-664). Each runs on the shard that coordinates the transactional id (see `txn/mod.rs`);
//! TxnOffsetCommit on the group's (it is a group write).

use super::groups::{on_owner, s};
use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::coordinator::{self, Committed};
use crate::error_code as ec;
use crate::security::{code as op, Session};
use crate::txn::{self, TXN_TOPIC};
use bytes::Bytes;
use kafka_protocol::messages::*;
use std::sync::Arc;

/// Starts creating `__transaction_state` when it does not exist yet (in the background; the
/// coordinator lookup answers COORDINATOR_NOT_AVAILABLE until it is up), as Kafka does on first
/// use.
pub(super) fn ensure_topic(broker: &Arc<Broker>, view: Option<&crate::cluster::ClusterView>) {
    let (missing, replicas) = match view {
        Some(v) => (
            v.loaded && !v.topics.contains_key(TXN_TOPIC),
            broker
                .config
                .transactions
                .state_log_replication_factor
                .min(v.brokers.len().max(1) as i16),
        ),
        None => (broker.owner(TXN_TOPIC, 0).is_none(), 1),
    };
    if !missing {
        return;
    }
    let b = broker.clone();
    ringlet_engine::runtime::spawn(async move {
        let n = b.config.transactions.state_log_num_partitions;
        let configs = txn::topic_configs(&b, replicas);
        match b.create_topic(TXN_TOPIC, n, replicas, configs, false).await {
            Ok(()) | Err((ec::TOPIC_ALREADY_EXISTS, _)) => {}
            Err((code, msg)) => tracing::warn!(
                error = ec::name(code),
                msg,
                "cannot create the transaction state topic"
            ),
        }
    })
    .detach();
}

fn txn_denied(broker: &Broker, sess: &Session, op: i8, id: &str) -> bool {
    broker.authorizer.denied(sess, op, op::TRANSACTIONAL_ID, id)
}

/// InitProducerId for a transactional producer; `Err` carries the code.
pub async fn init_producer_id(
    broker: &Arc<Broker>,
    sess: &Session,
    req: &InitProducerIdRequest,
    version: i16,
) -> Result<(i64, i16), i16> {
    let id = req
        .transactional_id
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    if txn_denied(broker, sess, op::WRITE, &id) {
        return Err(ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    let max = broker.config.transactions.max_timeout_ms;
    if req.transaction_timeout_ms <= 0 || req.transaction_timeout_ms > max {
        tracing::info!(transactional_id = %id, timeout_ms = req.transaction_timeout_ms, max, "transaction.timeout.ms out of range");
        return Err(ec::INVALID_TRANSACTION_TIMEOUT);
    }
    ensure_topic(broker, broker.cluster.as_ref().map(|c| c.view()).as_deref());
    let expected =
        (version >= 3 && req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    let timeout = req.transaction_timeout_ms;
    let b = broker.clone();
    let id2 = id.clone();
    let r = txn::on_coordinator(broker, &id, move |p| async move {
        txn::init_producer_id(&b, p, &id2, timeout, expected).await
    })
    .await;
    // Before v4 a fenced producer learns it as INVALID_PRODUCER_EPOCH (KIP-588).
    r.map_err(|c| {
        if c == ec::PRODUCER_FENCED && version < 4 {
            ec::INVALID_PRODUCER_EPOCH
        } else {
            c
        }
    })
}

/// The code a fenced producer gets from an API whose versions below `since` predate
/// PRODUCER_FENCED.
fn fenced(code: i16, version: i16, since: i16) -> i16 {
    if code == ec::PRODUCER_FENCED && version < since {
        ec::INVALID_PRODUCER_EPOCH
    } else {
        code
    }
}

/// One transaction's AddPartitionsToTxn: per-partition codes.
async fn add_one(
    broker: &Arc<Broker>,
    sess: &Session,
    id: &str,
    producer_id: i64,
    epoch: i16,
    topics: &[add_partitions_to_txn_request::AddPartitionsToTxnTopic],
    verify_only: bool,
) -> Vec<(TopicName, Vec<(i32, i16)>)> {
    let all: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    // Per partition: refused on its own (unknown, not authorized), or the transaction's code.
    let own = |t: &str, p: i32| {
        if !super::topic_allowed(broker, sess, op::WRITE, t) {
            Some(ec::TOPIC_AUTHORIZATION_FAILED)
        } else if !broker.partition_exists(t, p) {
            Some(ec::UNKNOWN_TOPIC_OR_PARTITION)
        } else {
            None
        }
    };
    let id_denied = txn_denied(broker, sess, op::WRITE, id);
    let any_refused = all.iter().any(|(t, p)| own(t, *p).is_some());
    let code = if id_denied {
        ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    } else if any_refused {
        ec::OPERATION_NOT_ATTEMPTED
    } else {
        let (id2, parts) = (id.to_string(), all.clone());
        txn::on_coordinator(broker, id, move |p| async move {
            Ok(txn::add_partitions(p, &id2, producer_id, epoch, parts, verify_only).await)
        })
        .await
        .unwrap_or_else(|c| c)
    };
    topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let c = if id_denied {
                        code
                    } else {
                        own(t.name.0.as_str(), *p).unwrap_or(code)
                    };
                    (*p, c)
                })
                .collect();
            (t.name.clone(), parts)
        })
        .collect()
}

fn topic_results(
    r: Vec<(TopicName, Vec<(i32, i16)>)>,
) -> Vec<add_partitions_to_txn_response::AddPartitionsToTxnTopicResult> {
    use add_partitions_to_txn_response::*;
    r.into_iter()
        .map(|(name, parts)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(name)
                .with_results_by_partition(
                    parts
                        .into_iter()
                        .map(|(p, c)| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(c)
                        })
                        .collect(),
                )
        })
        .collect()
}

pub async fn add_partitions_to_txn(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: AddPartitionsToTxnRequest = decode(body, version, "AddPartitionsToTxn")?;
    let mut resp = AddPartitionsToTxnResponse::default();
    if version <= 3 {
        let r = add_one(
            broker,
            sess,
            req.v3_and_below_transactional_id.0.as_str(),
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            &req.v3_and_below_topics,
            false,
        )
        .await;
        let r = r
            .into_iter()
            .map(|(n, ps)| {
                (
                    n,
                    ps.into_iter()
                        .map(|(p, c)| (p, fenced(c, version, 2)))
                        .collect(),
                )
            })
            .collect();
        resp.results_by_topic_v3_and_below = topic_results(r);
    } else {
        // v4+: batched, from brokers verifying a producer's partitions (KIP-890).
        if !super::cluster_allowed(broker, sess, op::CLUSTER_ACTION) {
            resp.error_code = ec::CLUSTER_AUTHORIZATION_FAILED;
            return encode(&resp, version).map(Some);
        }
        for t in &req.transactions {
            let r = add_one(
                broker,
                sess,
                t.transactional_id.0.as_str(),
                t.producer_id.0,
                t.producer_epoch,
                &t.topics,
                t.verify_only,
            )
            .await;
            resp.results_by_transaction.push(
                add_partitions_to_txn_response::AddPartitionsToTxnResult::default()
                    .with_transactional_id(t.transactional_id.clone())
                    .with_topic_results(topic_results(r)),
            );
        }
    }
    encode(&resp, version).map(Some)
}

pub async fn add_offsets_to_txn(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: AddOffsetsToTxnRequest = decode(body, version, "AddOffsetsToTxn")?;
    let id = req.transactional_id.0.to_string();
    let group = req.group_id.0.to_string();
    let code = if txn_denied(broker, sess, op::WRITE, &id) {
        ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    } else if !super::group_allowed(broker, sess, op::READ, &group) {
        ec::GROUP_AUTHORIZATION_FAILED
    } else {
        let p = coordinator::partition_for(&group, broker.config.offsets_topic_num_partitions);
        let parts = vec![(coordinator::OFFSETS_TOPIC.to_string(), p)];
        let (pid, epoch, id2) = (req.producer_id.0, req.producer_epoch, id.clone());
        let c = txn::on_coordinator(broker, &id, move |tp| async move {
            Ok(txn::add_partitions(tp, &id2, pid, epoch, parts, false).await)
        })
        .await
        .unwrap_or_else(|c| c);
        fenced(c, version, 2)
    };
    if code != ec::NONE {
        tracing::debug!(transactional_id = %id, group = %group, error = ec::name(code), "AddOffsetsToTxn refused");
    }
    let resp = AddOffsetsToTxnResponse::default().with_error_code(code);
    encode(&resp, version).map(Some)
}

pub async fn end_txn(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: EndTxnRequest = decode(body, version, "EndTxn")?;
    let id = req.transactional_id.0.to_string();
    let mut resp = EndTxnResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if txn_denied(broker, sess, op::WRITE, &id) {
        resp.error_code = ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        return encode(&resp, version).map(Some);
    }
    let (pid, epoch, commit, b, id2) = (
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
        broker.clone(),
        id.clone(),
    );
    match txn::on_coordinator(broker, &id, move |p| async move {
        txn::end_txn(&b, p, &id2, pid, epoch, commit, version >= 5).await
    })
    .await
    {
        Ok((pid, epoch)) => {
            resp.producer_id = ProducerId(pid);
            resp.producer_epoch = epoch;
        }
        Err(code) => resp.error_code = fenced(code, version, 2),
    }
    encode(&resp, version).map(Some)
}

pub async fn txn_offset_commit(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: TxnOffsetCommitRequest = decode(body, version, "TxnOffsetCommit")?;
    let group = req.group_id.0.to_string();
    let id = req.transactional_id.0.to_string();
    let now = ringlet_engine::config::now_ms();
    let max_meta = broker.config.offset_metadata_max_bytes;
    let top = if txn_denied(broker, sess, op::WRITE, &id) {
        Some(ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    } else if !super::group_allowed(broker, sess, op::READ, &group) {
        Some(ec::GROUP_AUTHORIZATION_FAILED)
    } else {
        None
    };
    let refusal = |t: &str, p: &txn_offset_commit_request::TxnOffsetCommitRequestPartition| {
        if !super::topic_allowed(broker, sess, op::READ, t) {
            Some(ec::TOPIC_AUTHORIZATION_FAILED)
        } else if p
            .committed_metadata
            .as_ref()
            .is_some_and(|m| m.len() > max_meta)
        {
            Some(ec::OFFSET_METADATA_TOO_LARGE)
        } else if !broker.partition_exists(t, p.partition_index) {
            Some(ec::UNKNOWN_TOPIC_OR_PARTITION)
        } else {
            None
        }
    };
    let commits: Vec<(String, i32, Committed)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| refusal(t.name.0.as_str(), p).is_none())
                .map(move |p| {
                    let c = Committed {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p
                            .committed_metadata
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                        commit_ms: now,
                    };
                    (t.name.0.to_string(), p.partition_index, c)
                })
        })
        .collect();
    // v5 (transaction version 2): no AddOffsetsToTxn came first; the group's offsets partition
    // joins the transaction here, as Kafka's group coordinator does it.
    let added = match top {
        Some(c) => Some(c),
        None if version >= 5 => {
            let p = coordinator::partition_for(&group, broker.config.offsets_topic_num_partitions);
            let parts = vec![(coordinator::OFFSETS_TOPIC.to_string(), p)];
            let c = txn::add_or_verify(
                broker,
                &id,
                req.producer_id.0,
                req.producer_epoch,
                parts,
                false,
            )
            .await;
            (c != ec::NONE).then_some(c)
        }
        None => None,
    };
    let code = match added {
        Some(c) => c,
        None => {
            let (g, pid, epoch) = (group.clone(), req.producer_id.0, req.producer_epoch);
            // v3+ carries the member's generation (KIP-447): a zombie of an old generation
            // is fenced as an OffsetCommit would be.
            let gen = (version >= 3 && !req.member_id.is_empty())
                .then(|| (req.generation_id, req.member_id.to_string()));
            on_owner(broker, &group, move |partition| async move {
                if let Some((gen, member)) = gen {
                    let code = coordinator::check_commit(&g, gen, &member);
                    if code != ec::NONE {
                        // A consumer group's stale member epoch is ILLEGAL_GENERATION here,
                        // as Kafka answers TxnOffsetCommit.
                        return if code == ec::STALE_MEMBER_EPOCH {
                            ec::ILLEGAL_GENERATION
                        } else {
                            code
                        };
                    }
                }
                if commits.is_empty() {
                    return ec::NONE;
                }
                coordinator::txn_commit(&g, partition, pid, epoch, commits).await
            })
            .await
            .unwrap_or_else(|c| c)
        }
    };
    if code != ec::NONE {
        tracing::debug!(transactional_id = %id, group = %group, error = ec::name(code), "TxnOffsetCommit refused");
    }
    let topics = req
        .topics
        .iter()
        .map(|t| {
            txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let c = if top.is_some() {
                                code
                            } else {
                                refusal(t.name.0.as_str(), p).unwrap_or(code)
                            };
                            txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(c)
                        })
                        .collect(),
                )
        })
        .collect();
    let resp = TxnOffsetCommitResponse::default().with_topics(topics);
    encode(&resp, version).map(Some)
}

/// Every shard's view of the transactions it coordinates.
async fn all_transactions(
    broker: &Arc<Broker>,
    filter: impl Fn(&str, &txn::TxnMeta) -> bool + Clone + Send + Sync + 'static,
) -> Vec<(String, txn::TxnMeta)> {
    let _ = broker;
    let mut out = Vec::new();
    for shard in 0..ringlet_engine::runtime::shard_count() {
        let f = filter.clone();
        if let Ok(v) = ringlet_engine::runtime::call_on(shard, move || async move {
            txn::snapshot(|id, m| f(id, m))
        })
        .await
        {
            out.extend(v);
        }
    }
    out
}

pub async fn describe_transactions(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    use describe_transactions_response::*;
    let req: DescribeTransactionsRequest = decode(body, version, "DescribeTransactions")?;
    let mut resp = DescribeTransactionsResponse::default();
    for id in &req.transactional_ids {
        let name = id.0.to_string();
        let mut st = TransactionState::default()
            .with_transactional_id(id.clone())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        if txn_denied(broker, sess, op::DESCRIBE, &name) {
            st.error_code = ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
            resp.transaction_states.push(st);
            continue;
        }
        let n2 = name.clone();
        let found = txn::on_coordinator(broker, &name, move |_| async move {
            Ok(txn::snapshot(|i, _| i == n2).into_iter().next())
        })
        .await;
        match found {
            Err(code) => st.error_code = code,
            Ok(None) => st.error_code = ec::TRANSACTIONAL_ID_NOT_FOUND,
            Ok(Some((_, m))) => {
                let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
                for (t, p) in &m.partitions {
                    by_topic.entry(t.clone()).or_default().push(*p);
                }
                st = st
                    .with_transaction_state(s(m.state.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(m.start_ms)
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_producer_epoch(m.epoch)
                    .with_topics(
                        by_topic
                            .into_iter()
                            .filter(|(t, _)| super::topic_allowed(broker, sess, op::DESCRIBE, t))
                            .map(|(t, ps)| {
                                TopicData::default()
                                    .with_topic(TopicName(s(t)))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    );
            }
        }
        resp.transaction_states.push(st);
    }
    encode(&resp, version).map(Some)
}

pub async fn list_transactions(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    use list_transactions_response::*;
    let req: ListTransactionsRequest = decode(body, version, "ListTransactions")?;
    let states: Vec<String> = req.state_filters.iter().map(|s| s.to_string()).collect();
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    // v1 (KIP-994): only transactions open longer than this; v2 (KIP-1152): a name pattern.
    let min_ms = if version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    let pattern = if version >= 2 {
        match req
            .transactional_id_pattern
            .as_ref()
            .filter(|p| !p.is_empty())
        {
            Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
                Ok(r) => Some(r),
                Err(e) => {
                    let resp =
                        ListTransactionsResponse::default().with_error_code(ec::INVALID_REQUEST);
                    tracing::info!(pattern = %p, error = %e, "ListTransactions: bad pattern");
                    return encode(&resp, version).map(Some);
                }
            },
            None => None,
        }
    } else {
        None
    };
    let now = ringlet_engine::config::now_ms();
    let found = all_transactions(broker, move |id, m| {
        (states.is_empty() || states.iter().any(|s| s == m.state.name()))
            && (pids.is_empty() || pids.contains(&m.producer_id))
            && (min_ms < 0 || (m.state == txn::State::Ongoing && now - m.start_ms >= min_ms))
            && pattern.as_ref().is_none_or(|r| r.is_match(id))
    })
    .await;
    let mut resp = ListTransactionsResponse::default();
    let mut found = found;
    found.sort_by(|a, b| a.0.cmp(&b.0));
    resp.transaction_states = found
        .into_iter()
        .filter(|(id, _)| {
            broker
                .authorizer
                .authorize(sess, op::DESCRIBE, op::TRANSACTIONAL_ID, id)
        })
        .map(|(id, m)| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(s(id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(s(m.state.name()))
        })
        .collect();
    encode(&resp, version).map(Some)
}

/// WriteTxnMarkers (broker to broker): a coordinator elsewhere has this broker, the partitions'
/// leader, write its markers.
pub async fn write_txn_markers(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    use write_txn_markers_response::*;
    let req: WriteTxnMarkersRequest = decode(body, version, "WriteTxnMarkers")?;
    let allowed = super::cluster_allowed(broker, sess, op::CLUSTER_ACTION);
    let mut resp = WriteTxnMarkersResponse::default();
    for m in &req.markers {
        let mut topics = Vec::new();
        for t in &m.topics {
            let mut parts = Vec::new();
            for &p in &t.partition_indexes {
                let code = if !allowed {
                    ec::CLUSTER_AUTHORIZATION_FAILED
                } else {
                    let r = txn::write_marker(
                        broker,
                        t.name.0.as_str(),
                        p,
                        m.producer_id.0,
                        m.producer_epoch,
                        m.transaction_result,
                    );
                    r.await.err().unwrap_or(ec::NONE)
                };
                parts.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(p)
                        .with_error_code(code),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(parts),
            );
        }
        resp.markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    encode(&resp, version).map(Some)
}

/// DescribeProducers (KIP-664): the producers each partition's leader knows, with the start of
/// any transaction they have open there (what `kafka-transactions describe-producers` and
/// `find-hanging` read).
pub async fn describe_producers(
    broker: &Arc<Broker>,
    sess: &Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    use describe_producers_response::*;
    let req: DescribeProducersRequest = decode(body, version, "DescribeProducers")?;
    let mut resp = DescribeProducersResponse::default();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let allowed = super::topic_allowed(broker, sess, op::READ, &name);
        let mut parts = Vec::new();
        for &p in &t.partition_indexes {
            let mut out = PartitionResponse::default().with_partition_index(p);
            if !allowed {
                out.error_code = ec::TOPIC_AUTHORIZATION_FAILED;
                parts.push(out);
                continue;
            }
            let (topic, clustered) = (name.clone(), broker.cluster.is_some());
            let found = broker
                .on_partition(&name, p, move |part| async move {
                    if clustered {
                        crate::cluster::replica::check_read(&topic, p, -1)?;
                    }
                    Ok(part.producers())
                })
                .await;
            match found {
                Err(code) => out.error_code = code,
                Ok(producers) => {
                    out.active_producers = producers
                        .into_iter()
                        .map(|x| {
                            describe_producers_response::ProducerState::default()
                                .with_producer_id(ProducerId(x.producer_id))
                                .with_producer_epoch(i32::from(x.epoch))
                                .with_last_sequence(x.last_sequence)
                                .with_last_timestamp(x.last_timestamp)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(x.txn_start_offset)
                        })
                        .collect();
                }
            }
            parts.push(out);
        }
        resp.topics.push(
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(parts),
        );
    }
    encode(&resp, version).map(Some)
}

/// Error codes for metrics: three levels down.
impl crate::metrics::ErrorCodes for WriteTxnMarkersResponse {
    const API: ApiKey = ApiKey::WriteTxnMarkers;
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        let parts = self.markers.iter().flat_map(|m| &m.topics);
        parts
            .flat_map(|t| &t.partitions)
            .for_each(|p| f(p.error_code));
    }
}
