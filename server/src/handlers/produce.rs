//! Produce: validate, route each partition's records to its owning shard, group-commit there.

use super::{decode, encode, HandlerResult};
use crate::broker::{self, Broker};
use crate::error_code as ec;
use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use ringlet_engine::runtime;
use std::sync::Arc;

pub async fn handle(broker: &Arc<Broker>, body: &mut Bytes, version: i16) -> HandlerResult {
    let req: ProduceRequest = decode(body, version, "Produce")?;
    let acks = req.acks;
    let bad_acks = !matches!(acks, -1..=1);
    if req.transactional_id.is_some() {
        tracing::warn!("transactional produce is not supported");
    }
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let name = t.name.0.to_string();
        if broker.config.auto_create_topics_enable && broker.owner(&name, 0).is_none() {
            let _ = broker
                .create_topic(&name, -1, -1, Default::default(), false)
                .await;
        }
        let futures = t.partition_data.into_iter().map(|p| {
            let broker = broker.clone();
            let name = name.clone();
            async move {
                let mut r = PartitionProduceResponse::default().with_index(p.index).with_base_offset(-1).with_log_append_time_ms(-1).with_log_start_offset(-1);
                if bad_acks {
                    r.error_code = ec::INVALID_REQUIRED_ACKS;
                    return r;
                }
                let Some(records) = p.records.filter(|r| !r.is_empty()) else {
                    r.error_code = ec::CORRUPT_MESSAGE;
                    return r;
                };
                let Some(owner) = broker.owner(&name, p.index) else {
                    r.error_code = ec::UNKNOWN_TOPIC_OR_PARTITION;
                    return r;
                };
                let index = p.index;
                let topic = name.clone();
                let res = runtime::call_on(owner, move || async move {
                    match broker::local_partition(&topic, index) {
                        Some(part) => part.append(records).await.map_err(|e| (ec::from_log_error(&e), e.to_string())),
                        None => Err((ec::UNKNOWN_TOPIC_OR_PARTITION, "partition not on its owner shard".to_string())),
                    }
                })
                .await
                .unwrap_or_else(|_| Err((ec::UNKNOWN_SERVER_ERROR, "shard unavailable".into())));
                match res {
                    Ok(info) => {
                        r.base_offset = info.base_offset;
                        r.log_append_time_ms = info.log_append_time;
                        r.log_start_offset = info.log_start_offset;
                    }
                    Err((code, msg)) => {
                        tracing::info!(topic = %name, partition = p.index, error = ec::name(code), %msg, "produce refused");
                        r.error_code = code;
                        r.error_message = Some(StrBytes::from_string(msg));
                    }
                }
                r
            }
        });
        let partitions = join_all(futures).await;
        topics.push(
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        return Ok(None);
    }
    encode(&ProduceResponse::default().with_responses(topics), version).map(Some)
}
