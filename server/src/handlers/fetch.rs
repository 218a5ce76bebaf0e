//! Fetch: resolve each partition's file region on its owning shard, then send the records either
//! by splice from the segment file to the socket (`ringlet.fetch.zero.copy=true`, the default: a
//! sixth of the broker CPU of the copying path, see docs/benchmarks.md) or by one read into a
//! buffer and a send.

//! Long poll: when fewer than `min_bytes` are available, the request parks on the partitions'
//! high-watermark watchers until data arrives or `max_wait_ms` passes.

use super::decode;
use super::fetch_response::{self, PartitionOut, TopicOut};
use crate::broker::Broker;
use crate::cluster::replica;
use crate::error_code as ec;
use crate::response::Part;
use bytes::Bytes;
use futures_util::future::{join_all, select, select_all, Either};
use kafka_protocol::messages::FetchRequest;
use ringlet_engine::runtime::io;
use ringlet_engine::Partition;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

struct PartitionRead {
    error_code: i16,
    high_watermark: i64,
    log_start_offset: i64,
    records: Option<Part>,
}

fn failed(code: i16) -> PartitionRead {
    PartitionRead {
        error_code: code,
        high_watermark: -1,
        log_start_offset: -1,
        records: None,
    }
}

/// Who is fetching: a consumer (replica id -1) or a follower broker, and the leader epoch it
/// believes current (-1: unknown).
#[derive(Clone, Copy)]
struct Fetcher {
    replica_id: i32,
    current_leader_epoch: i32,
}

async fn read_partition(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    who: Fetcher,
) -> PartitionRead {
    let b = broker.clone();
    let name = topic.to_string();
    broker
        .on_partition(topic, partition, move |part| async move {
            Ok(read_local(&b, part, &name, partition, offset, max_bytes, who).await)
        })
        .await
        .unwrap_or_else(failed)
}

/// [`read_partition`] on the owner shard.
async fn read_local(
    b: &Arc<Broker>,
    part: Rc<Partition>,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    who: Fetcher,
) -> PartitionRead {
    let clustered = b.cluster.is_some();
    let zero_copy = b.config.fetch_zero_copy;
    {
        let follower = who.replica_id >= 0;
        if clustered {
            let checked = if follower {
                replica::on_follower_fetch(
                    b.cluster.as_ref().expect("clustered"),
                    &part,
                    topic,
                    partition,
                    who.replica_id,
                    offset,
                    who.current_leader_epoch,
                )
            } else {
                replica::check_read(topic, partition, who.current_leader_epoch)
            };
            if let Err(code) = checked {
                let o = part.offsets();
                return PartitionRead {
                    error_code: code,
                    high_watermark: o.high_watermark,
                    log_start_offset: o.log_start,
                    records: None,
                };
            }
        } else if follower {
            return failed(ec::NOT_LEADER_OR_FOLLOWER);
        }
        match part.read_upto(offset, max_bytes, follower).await {
            Ok(r) => {
                let records = match r.region {
                    None => None,
                    Some(region) if zero_copy => match region.file.try_clone() {
                        Ok(file) => Some(Part::File {
                            file,
                            position: region.position,
                            len: region.len,
                        }),
                        Err(e) => {
                            tracing::error!(topic, partition, error = %e, "cannot duplicate segment descriptor");
                            return failed(ec::KAFKA_STORAGE_ERROR);
                        }
                    },
                    Some(region) => {
                        match io::read_at(region.file.as_raw_fd(), region.position, region.len)
                            .await
                        {
                            Ok(v) => Some(Part::Bytes(Bytes::from(v))),
                            Err(e) => {
                                tracing::error!(topic, partition, error = %e, "segment read failed");
                                return failed(ec::KAFKA_STORAGE_ERROR);
                            }
                        }
                    }
                };
                PartitionRead {
                    error_code: ec::NONE,
                    high_watermark: r.high_watermark,
                    log_start_offset: r.log_start_offset,
                    records,
                }
            }
            Err(e) => {
                let o = part.offsets();
                PartitionRead {
                    error_code: ec::from_log_error(&e),
                    high_watermark: o.high_watermark,
                    log_start_offset: o.log_start,
                    records: None,
                }
            }
        }
    }
}

/// Resolves when the partition's high watermark (a follower: log end) passes `offset`, or its
/// role changes.
struct DataAfter {
    part: Rc<Partition>,
    offset: i64,
    to_log_end: bool,
    polled: bool,
}

impl Future for DataAfter {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let end = if self.to_log_end {
            self.part.log_end_offset()
        } else {
            self.part.high_watermark()
        };
        // Woken (data, high watermark or role change) after the first poll: re-read.
        if end > self.offset || self.polled {
            return Poll::Ready(());
        }
        self.polled = true;
        self.part.watch(cx.waker());
        Poll::Pending
    }
}

/// Parks on the owning shard until `topic/partition` has data past `offset` or `wait` passes;
/// dropped (another partition answered first), it leaves nothing parked there.
async fn wait_for_data(
    broker: &Arc<Broker>,
    topic: String,
    partition: i32,
    offset: i64,
    wait: Duration,
    to_log_end: bool,
) {
    if broker.owner(&topic, partition).is_none() {
        io::sleep(wait).await;
        return;
    }
    broker
        .park_on_partition(&topic, partition, move |part| async move {
            let data = Box::pin(DataAfter {
                part,
                offset,
                to_log_end,
                polled: false,
            });
            let timer = Box::pin(io::sleep(wait));
            match select(data, timer).await {
                Either::Left(_) | Either::Right(_) => {}
            }
        })
        .await;
}

pub async fn handle(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    body: &mut Bytes,
    version: i16,
) -> Result<Option<Vec<Part>>, String> {
    let req: FetchRequest = decode(body, version, "Fetch")?;
    // A follower names itself in replica_id (replica_state from v15).
    let replica_id = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    if replica_id >= 0
        && !super::cluster_allowed(broker, session, crate::security::code::CLUSTER_ACTION)
    {
        return Err(format!(
            "fetch as replica {replica_id} refused: principal lacks ClusterAction"
        ));
    }
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.clamp(0, 300_000) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    // fetch.max.bytes caps what one response may carry, whatever the client asks (a request for
    // 2 GiB would otherwise pin that much file, or memory on the copying path).
    let cap = broker.config.fetch_max_bytes;
    let max_total = if req.max_bytes <= 0 {
        cap
    } else {
        (req.max_bytes as usize).min(cap)
    };
    // Topics this principal may read: the others are answered TOPIC_AUTHORIZATION_FAILED and
    // neither read nor waited on.
    // One flag per requested topic, in request order.
    let readable: Vec<bool> = req
        .topics
        .iter()
        .map(|t| super::topic_allowed(broker, session, crate::security::code::READ, &t.topic.0))
        .collect();
    loop {
        let mut total = 0usize;
        let mut topics = Vec::with_capacity(req.topics.len());
        for (t, &may_read) in req.topics.iter().zip(&readable) {
            let name = t.topic.0.to_string();
            let reads = if may_read {
                join_all(t.partitions.iter().map(|p| {
                    let max = (p.partition_max_bytes.max(0) as usize).min(max_total);
                    let who = Fetcher {
                        replica_id,
                        current_leader_epoch: p.current_leader_epoch,
                    };
                    read_partition(broker, &name, p.partition, p.fetch_offset, max, who)
                }))
                .await
            } else {
                t.partitions
                    .iter()
                    .map(|_| failed(ec::TOPIC_AUTHORIZATION_FAILED))
                    .collect()
            };
            let mut parts = Vec::with_capacity(reads.len());
            for (p, r) in t.partitions.iter().zip(reads) {
                // The request's max_bytes bounds the sum, except that the first partition with
                // data always goes out whole (KIP-74).
                let mut records = r.records;
                if let Some(b) = &records {
                    if total > 0 && total + b.len() > max_total {
                        records = None;
                    } else {
                        total += b.len();
                    }
                }
                parts.push(PartitionOut {
                    partition_index: p.partition,
                    error_code: r.error_code,
                    high_watermark: r.high_watermark,
                    last_stable_offset: r.high_watermark,
                    log_start_offset: r.log_start_offset,
                    records,
                });
            }
            topics.push(TopicOut {
                topic: name,
                partitions: parts,
            });
        }
        let now = Instant::now();
        let errors = topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .any(|p| p.error_code != ec::NONE);
        let shutting_down = broker
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed);
        if total >= min_bytes.max(1)
            || errors
            || now >= deadline
            || shutting_down
            || !readable.contains(&true)
            || topics.iter().all(|t| t.partitions.is_empty())
        {
            return Ok(Some(fetch_response::encode(version, ec::NONE, 0, topics)));
        }
        // Long poll: park until any requested partition gets data past its fetch offset.
        drop(topics);
        let wait = deadline - now;
        let waits: Vec<_> = req
            .topics
            .iter()
            .zip(&readable)
            .filter(|(_, &may_read)| may_read)
            .flat_map(|(t, _)| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic.0.to_string(), p.partition, p.fetch_offset))
            })
            .map(|(topic, partition, offset)| {
                Box::pin(wait_for_data(
                    broker,
                    topic,
                    partition,
                    offset,
                    wait,
                    replica_id >= 0,
                ))
            })
            .collect();
        if waits.is_empty() {
            io::sleep(wait).await;
            continue;
        }
        select_all(waits).await;
    }
}
