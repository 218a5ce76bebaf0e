//! Produce: validate, route each partition's records to its owning shard, group-commit there.
//!
//! Handling is split in two so that a connection can pipeline produce requests: [`start`] decodes
//! the request and queues every partition's append on its owner (in request order), and the
//! future it returns waits for the outcomes and encodes the response. The connection reads its
//! next request as soon as `start` returns; see `server::serve_connection`.

use super::{decode, encode, HandlerResult};
use crate::broker::{self, Broker};
use crate::cluster::replica;
use crate::error_code as ec;
use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A refused append: Kafka's code, its message, and per-record errors (KIP-467: each bad
/// record's index in its batch and why), which clients use to fail exactly those records.
type Refusal = (i16, String, Vec<(i32, String)>);
type Outcome = Result<ringlet_engine::AppendInfo, Refusal>;

fn refusal(e: &ringlet_engine::LogError) -> Refusal {
    let records = match e {
        ringlet_engine::LogError::Batch(
            ringlet_format::BatchError::TimestampOutOfRange { records }
            | ringlet_format::BatchError::NullKeyOnCompactedTopic { records },
        ) => records.clone(),
        _ => Vec::new(),
    };
    (ec::from_log_error(e), e.to_string(), records)
}

/// The partition's records as a topic with `codec` stores them: `None` when every batch already
/// is (kept without a copy), else the batches rewritten one by one.
fn recompressed(
    records: &Bytes,
    codec: ringlet_format::codec::Target,
    limit: usize,
) -> Result<Option<Bytes>, Refusal> {
    let refuse = |e: ringlet_format::BatchError| refusal(&ringlet_engine::LogError::Batch(e));
    let mut rest = &records[..];
    let mut out: Option<Vec<u8>> = None;
    while !rest.is_empty() {
        let batch = ringlet_format::batch::next_batch(rest).map_err(refuse)?;
        let done = records.len() - rest.len();
        rest = &rest[batch.len()..];
        match ringlet_format::codec::recompress(batch, codec, limit).map_err(refuse)? {
            Some(new) => out
                .get_or_insert_with(|| records[..done].to_vec())
                .extend_from_slice(&new),
            None => {
                if let Some(out) = &mut out {
                    out.extend_from_slice(batch);
                }
            }
        }
    }
    Ok(out.map(Bytes::from))
}

/// One partition of the request: its response so far and, when its append was queued, the
/// future of the append's outcome.
struct Queued {
    topic: Arc<str>,
    response: PartitionProduceResponse,
    outcome: Option<broker::OnPartition<Outcome>>,
}

impl Queued {
    fn refused(topic: &Arc<str>, response: PartitionProduceResponse) -> Queued {
        Queued {
            topic: topic.clone(),
            response,
            outcome: None,
        }
    }
}

/// Decodes a produce request and queues its appends; the returned future completes them.
pub async fn start(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> Result<Pin<Box<dyn Future<Output = HandlerResult>>>, String> {
    let size = body.len() as f64;
    let req: ProduceRequest = decode(body, version, "Produce")?;
    // Client quotas: the request's bytes count against producer_byte_rate (Kafka's measure).
    let throttle = session.charge_quota(&broker.quotas, crate::quota::PRODUCER_BYTE_RATE, size);
    // KIP-890: a transaction's first batch to a partition is added to (or verified in) its
    // transaction at the coordinator before anything of the request is queued.
    let gated = txn_gate(broker, session, &req, version).await;
    let acks = req.acks;
    let timeout = std::time::Duration::from_millis(req.timeout_ms.clamp(0, 3_600_000) as u64);
    let clustered = broker.cluster.is_some();
    let bad_acks = !matches!(acks, -1..=1);
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        // From v13 (Kafka 4.1, KIP-516) topics are named by id; an id no topic has is answered
        // UNKNOWN_TOPIC_ID and never auto-creates anything.
        let known = if version >= 13 {
            broker.topic_name(*t.topic_id.as_bytes())
        } else {
            Some(t.name.0.to_string())
        };
        let name: Arc<str> = Arc::from(known.as_deref().unwrap_or(""));
        // Authorization is per topic, once per request (not per record or partition).
        let allowed = known.is_some()
            && super::topic_allowed(broker, session, crate::security::code::WRITE, &name);
        if allowed
            && broker.config.auto_create_topics_enable
            && !broker.topic_exists(&name)
            && super::may_create_topic(broker, session, &name)
        {
            let _ = broker
                .create_topic(&name, -1, -1, Default::default(), false)
                .await;
        }
        // The topic's compression.type, when it is not `producer`: batches in another codec are
        // recompressed here, on the connection's shard, before they are queued.
        let codec = if allowed {
            broker.topic_codec(&name)
        } else {
            None
        };
        let limit = broker.config.socket_request_max_bytes;
        // A name no topic can have is refused with the reason, not left to time out as an
        // unknown partition (Kafka 4.1.1 answers UNKNOWN_TOPIC_OR_PARTITION, which clients retry).
        let invalid_name = known
            .is_some()
            .then(|| crate::broker::validate_topic_name(&name).err())
            .flatten();
        let mut parts = Vec::with_capacity(t.partition_data.len());
        for p in t.partition_data {
            let mut response = PartitionProduceResponse::default()
                .with_index(p.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let mut outcome = None;
            if let Some(why) = &invalid_name {
                response.error_code = ec::INVALID_TOPIC_EXCEPTION;
                response.error_message = Some(StrBytes::from_string(format!(
                    "Topic name \"{name}\" is illegal: {why}"
                )));
                parts.push(Queued::refused(&name, response));
                continue;
            }
            if !allowed {
                response.error_code = if known.is_some() {
                    ec::TOPIC_AUTHORIZATION_FAILED
                } else {
                    ec::UNKNOWN_TOPIC_ID
                };
                parts.push(Queued::refused(&name, response));
                continue;
            }
            if let Some(&code) = gated.get(&(name.clone(), p.index)) {
                response.error_code = code;
                parts.push(Queued::refused(&name, response));
                continue;
            }
            match (bad_acks, p.records.filter(|r| !r.is_empty())) {
                (true, _) => response.error_code = ec::INVALID_REQUIRED_ACKS,
                (_, None) => response.error_code = ec::CORRUPT_MESSAGE,
                (false, Some(records)) => 'append: {
                    let records = match codec.map(|c| recompressed(&records, c, limit)) {
                        None | Some(Ok(None)) => records,
                        Some(Ok(Some(rewritten))) => rewritten,
                        Some(Err((code, msg, _))) => {
                            tracing::info!(topic = %name, partition = p.index, error = ec::name(code), %msg, "produce refused");
                            response.error_code = code;
                            response.error_message = Some(StrBytes::from_string(msg));
                            break 'append;
                        }
                    };
                    let (topic, index) = (name.clone(), p.index);
                    let started = broker
                        .start_on_partition(&name, p.index, move |part| {
                            // In a cluster only the leader appends (checked here, in queue order).
                            let leading =
                                clustered.then(|| replica::check_produce(&topic, index, acks));
                            let queued = match &leading {
                                None | Some(Ok(_)) => Some(part.enqueue(records)),
                                Some(Err(_)) => None,
                            };
                            async move {
                                let epoch = match leading {
                                    Some(Err((code, msg))) => return Err((code, msg, Vec::new())),
                                    Some(Ok(epoch)) => Some(epoch),
                                    None => None,
                                };
                                let info = queued
                                    .expect("queued when leading")
                                    .await
                                    .map_err(|e| refusal(&e))?;
                                if let Some(epoch) = epoch {
                                    replica::complete_produce(
                                        part,
                                        &topic,
                                        index,
                                        epoch,
                                        info.last_offset,
                                        acks,
                                        timeout,
                                    )
                                    .await
                                    .map_err(|(code, msg)| (code, msg, Vec::new()))?;
                                }
                                Ok(info)
                            }
                        })
                        .await;
                    outcome = Some(started);
                }
            }
            parts.push(Queued {
                topic: name.clone(),
                response,
                outcome,
            });
        }
        topics.push((t.name, t.topic_id, parts));
    }
    Ok(Box::pin(finish(topics, acks, version, throttle)))
}

/// The partitions whose transactional batches the coordinator refused (KIP-890), with codes.
async fn txn_gate(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    req: &ProduceRequest,
    version: i16,
) -> std::collections::HashMap<(Arc<str>, i32), i16> {
    match req.transactional_id.as_ref().filter(|t| !t.is_empty()) {
        Some(id) => {
            let batches = txn_batches(broker, session, req, version);
            crate::txn::gate_produce(broker, id, version, batches).await
        }
        None => Default::default(),
    }
}

/// The partitions of a request whose (first) batch is transactional, for the KIP-890 check;
/// topics the principal may not write to are left to the refusal that follows.
fn txn_batches(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    req: &ProduceRequest,
    version: i16,
) -> Vec<crate::txn::TxnBatch> {
    let mut out = Vec::new();
    for t in &req.topic_data {
        let name = if version >= 13 {
            broker.topic_name(*t.topic_id.as_bytes())
        } else {
            Some(t.name.0.to_string())
        };
        let Some(name) =
            name.filter(|n| super::topic_allowed(broker, session, crate::security::code::WRITE, n))
        else {
            continue;
        };
        let name: Arc<str> = Arc::from(name);
        for p in &t.partition_data {
            let header = p
                .records
                .as_ref()
                .and_then(|r| ringlet_format::batch::BatchHeader::parse(r).ok());
            if let Some(h) =
                header.filter(|h| h.is_transactional() && !h.is_control() && h.producer_id >= 0)
            {
                out.push((name.clone(), p.index, h.producer_id, h.producer_epoch));
            }
        }
    }
    out
}

/// Waits for every queued append and encodes the response (none for acks=0).
async fn finish(
    topics: Vec<(kafka_protocol::messages::TopicName, uuid::Uuid, Vec<Queued>)>,
    acks: i16,
    version: i16,
    throttle_time_ms: i32,
) -> HandlerResult {
    let mut responses = Vec::with_capacity(topics.len());
    for (name, topic_id, parts) in topics {
        let partitions = join_all(parts.into_iter().map(|q| async move {
            let mut r = q.response;
            let Some(outcome) = q.outcome else { return r };
            let res = outcome.await.unwrap_or_else(|code| {
                Err((
                    code,
                    "This server does not host this topic-partition.".into(),
                    Vec::new(),
                ))
            });
            match res {
                Ok(info) => {
                    r.base_offset = info.base_offset;
                    r.log_append_time_ms = info.log_append_time;
                    r.log_start_offset = info.log_start_offset;
                }
                Err((code, msg, records)) => {
                    tracing::info!(topic = %q.topic, partition = r.index, error = ec::name(code), %msg, bad_records = records.len(), "produce refused");
                    r.error_code = code;
                    r.error_message = Some(StrBytes::from_string(msg));
                    r.record_errors = records
                        .into_iter()
                        .map(|(index, why)| {
                            BatchIndexAndErrorMessage::default()
                                .with_batch_index(index)
                                .with_batch_index_error_message(Some(StrBytes::from_string(why)))
                        })
                        .collect();
                }
            }
            r
        }))
        .await;
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic_id)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        return Ok(None);
    }
    encode(
        &ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(throttle_time_ms),
        version,
    )
    .map(Some)
}
