//! DeleteRecords (API 21: move partitions' log start up, deleting what is below it) and
//! DescribeLogDirs (API 35: the log directories, their partitions' sizes and the disk's space).

use super::{decode, encode, HandlerResult};
use crate::broker::Broker;
use crate::error_code as ec;
use crate::security::code;
use bytes::Bytes;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use ringlet_engine::runtime::io;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// DeleteRecords: each partition's leader moves its log start to the offset asked (-1: the high
/// watermark) and checkpoints it; segments wholly below go at once. In a cluster the answer waits
/// (up to `timeout_ms`, then REQUEST_TIMED_OUT) until every in-sync follower's log start has
/// followed (they take it from their fetches), as Kafka's `DelayedDeleteRecords` does, so a
/// follower that takes over leadership never serves the deleted records again.
pub async fn delete_records(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: DeleteRecordsRequest = decode(body, version, "DeleteRecords")?;
    let mut topics = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let allowed = super::topic_allowed(broker, session, code::DELETE, &name);
        let mut parts = Vec::new();
        for p in t.partitions {
            let mut r = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            let outcome = if !allowed {
                Err(ec::TOPIC_AUTHORIZATION_FAILED)
            } else {
                match delete_one(broker, &name, p.partition_index, p.offset).await {
                    Ok(low) if broker.cluster.is_some() => {
                        let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
                        followers_reach(broker, &name, p.partition_index, low, timeout).await
                    }
                    other => other,
                }
            };
            match outcome {
                Ok(low) => r.low_watermark = low,
                Err(code) => r.error_code = code,
            }
            parts.push(r);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(parts),
        );
    }
    encode(
        &DeleteRecordsResponse::default().with_topics(topics),
        version,
    )
    .map(Some)
}

async fn delete_one(
    broker: &Arc<Broker>,
    topic: &str,
    index: i32,
    offset: i64,
) -> Result<i64, i16> {
    if offset < -1 {
        return Err(ec::OFFSET_OUT_OF_RANGE);
    }
    let clustered = broker.cluster.is_some();
    let name = topic.to_string();
    broker
        .on_partition(topic, index, move |part| async move {
            if clustered {
                crate::cluster::replica::check_read(&name, index, -1)?;
            }
            part.delete_records(offset).map_err(|e| {
                tracing::info!(topic = name, partition = index, offset, error = %e, "DeleteRecords refused");
                ec::from_log_error(&e)
            })
        })
        .await
}

/// Waits until the partition's low watermark (the smallest log start among the leader and its
/// in-sync followers) reaches `low`; REQUEST_TIMED_OUT after `timeout`.
async fn followers_reach(
    broker: &Arc<Broker>,
    topic: &str,
    index: i32,
    low: i64,
    timeout: Duration,
) -> Result<i64, i16> {
    let deadline = Instant::now() + timeout;
    loop {
        let name = topic.to_string();
        let now = broker
            .on_partition(topic, index, move |part| async move {
                crate::cluster::replica::low_watermark(&name, index, part.log_start_offset())
                    .ok_or(ec::NOT_LEADER_OR_FOLLOWER)
            })
            .await?;
        if now >= low {
            return Ok(low);
        }
        if Instant::now() >= deadline {
            tracing::info!(
                topic,
                partition = index,
                low_watermark = now,
                target = low,
                "DeleteRecords timed out waiting for the followers' log start"
            );
            return Err(ec::REQUEST_TIMED_OUT);
        }
        io::sleep(Duration::from_millis(20)).await;
    }
}

/// DescribeLogDirs: every log directory with the partitions of this broker in it (all, or those
/// asked), their sizes, and (v4) the file system's total and usable bytes.
pub async fn describe_log_dirs(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> HandlerResult {
    let req: DescribeLogDirsRequest = decode(body, version, "DescribeLogDirs")?;
    let mut resp = DescribeLogDirsResponse::default();
    if !super::cluster_allowed(broker, session, code::DESCRIBE) {
        // Before v3 the response has no error code: an empty answer, as Kafka gives.
        resp.error_code = ec::CLUSTER_AUTHORIZATION_FAILED;
        return encode(&resp, version).map(Some);
    }
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    // (log dir, topic, partition) of every partition placed here that was asked for.
    let placed: Vec<(usize, String, i32)> = {
        let md = broker.metadata.read().expect("metadata lock");
        md.topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.local)
                    .map(move |(i, p)| (p.log_dir, name.clone(), i as i32))
            })
            .filter(|(_, name, i)| {
                wanted
                    .as_ref()
                    .is_none_or(|w| w.get(name).is_some_and(|ps| ps.contains(i)))
            })
            .collect()
    };
    let mut dirs: Vec<BTreeMap<String, Vec<DescribeLogDirsPartition>>> =
        vec![BTreeMap::new(); broker.config.log_dirs.len()];
    for (dir, name, index) in placed {
        let size = broker
            .on_partition(&name, index, |part| async move {
                let o = part.offsets();
                Ok((part.storage().0, o.log_end - o.high_watermark))
            })
            .await;
        let Ok((size, lag)) = size else { continue };
        if let Some(d) = dirs.get_mut(dir) {
            d.entry(name).or_default().push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(index)
                    .with_partition_size(size as i64)
                    .with_offset_lag(lag.max(0)),
            );
        }
    }
    for (path, topics) in broker.config.log_dirs.iter().zip(dirs) {
        let (total, usable) = space(path);
        resp.results.push(
            DescribeLogDirsResult::default()
                .with_log_dir(StrBytes::from_string(absolute(path)))
                .with_total_bytes(total)
                .with_usable_bytes(usable)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(name)))
                                .with_partitions(partitions)
                        })
                        .collect(),
                ),
        );
    }
    encode(&resp, version).map(Some)
}

fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// `(total, usable)` bytes of the file system holding `path`; -1 each when unknown (Kafka's
/// UNKNOWN_VOLUME_BYTES).
fn space(path: &std::path::Path) -> (i64, i64) {
    match rustix::fs::statvfs(path) {
        Ok(s) => (
            (s.f_blocks.saturating_mul(s.f_frsize)) as i64,
            (s.f_bavail.saturating_mul(s.f_frsize)) as i64,
        ),
        Err(_) => (-1, -1),
    }
}
