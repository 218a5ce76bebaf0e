//! Fetch: read file regions on the owning shards (copying path: pread into a buffer, then send),
//! with long-poll until `min_bytes` are available or `max_wait_ms` passes.

use super::{decode, encode, HandlerResult};
use crate::broker::{self, Broker};
use crate::error_code as ec;
use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use ringlet_engine::runtime::{self, io};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct PartitionRead {
    error_code: i16,
    high_watermark: i64,
    log_start_offset: i64,
    records: Option<Bytes>,
}

async fn read_partition(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: usize,
) -> PartitionRead {
    let fail = |code| PartitionRead {
        error_code: code,
        high_watermark: -1,
        log_start_offset: -1,
        records: None,
    };
    let Some(owner) = broker.owner(topic, partition) else {
        return fail(ec::UNKNOWN_TOPIC_OR_PARTITION);
    };
    let topic = topic.to_string();
    runtime::call_on(owner, move || async move {
        let Some(part) = broker::local_partition(&topic, partition) else {
            return fail(ec::UNKNOWN_TOPIC_OR_PARTITION);
        };
        match part.read(offset, max_bytes).await {
            Ok(r) => {
                let records = match r.region {
                    Some(region) => match io::read_at(region.file.as_raw_fd(), region.position, region.len).await {
                        Ok(v) => Some(Bytes::from(v)),
                        Err(e) => {
                            tracing::error!(topic, partition, error = %e, "segment read failed");
                            return fail(ec::KAFKA_STORAGE_ERROR);
                        }
                    },
                    None => None,
                };
                PartitionRead {
                    error_code: ec::NONE,
                    high_watermark: r.high_watermark,
                    log_start_offset: r.log_start_offset,
                    records,
                }
            }
            Err(e) => {
                let code = ec::from_log_error(&e);
                let log = part.log.borrow();
                PartitionRead {
                    error_code: code,
                    high_watermark: log.high_watermark(),
                    log_start_offset: log.log_start_offset(),
                    records: None,
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| fail(ec::UNKNOWN_SERVER_ERROR))
}

pub async fn handle(broker: &Arc<Broker>, body: &mut Bytes, version: i16) -> HandlerResult {
    let req: FetchRequest = decode(body, version, "Fetch")?;
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.clamp(0, 60_000) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_total = if req.max_bytes <= 0 {
        usize::MAX
    } else {
        req.max_bytes as usize
    };
    loop {
        let mut total = 0usize;
        let mut topics = Vec::with_capacity(req.topics.len());
        for t in &req.topics {
            let name = t.topic.0.to_string();
            let reads = join_all(t.partitions.iter().map(|p| {
                let max = (p.partition_max_bytes.max(0) as usize).min(max_total);
                read_partition(broker, &name, p.partition, p.fetch_offset, max)
            }))
            .await;
            let mut parts = Vec::with_capacity(reads.len());
            for (p, r) in t.partitions.iter().zip(reads) {
                // The response's max_bytes bounds the sum; the first partition with data is always
                // returned whole, as Kafka does.
                let mut records = r.records;
                if let Some(b) = &records {
                    if total > 0 && total + b.len() > max_total {
                        records = None;
                    } else {
                        total += b.len();
                    }
                }
                parts.push(
                    PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_error_code(r.error_code)
                        .with_high_watermark(r.high_watermark)
                        .with_last_stable_offset(r.high_watermark)
                        .with_log_start_offset(r.log_start_offset)
                        .with_records(Some(records.unwrap_or_default())),
                );
            }
            topics.push(
                FetchableTopicResponse::default()
                    .with_topic(t.topic.clone())
                    .with_topic_id(t.topic_id)
                    .with_partitions(parts),
            );
        }
        if total >= min_bytes.max(1)
            || Instant::now() >= deadline
            || broker
                .shutting_down
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            let resp = FetchResponse::default().with_responses(topics);
            return encode(&resp, version).map(Some);
        }
        // Long poll: wait a little for data. Bounded by max_wait_ms.
        io::sleep(Duration::from_millis(2).min(deadline.saturating_duration_since(Instant::now())))
            .await;
    }
}
