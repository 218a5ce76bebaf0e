//! Fetch: resolve each partition's file region on its owning shard, then send the records either
//! by splice from the segment file to the socket (`ringlet.fetch.zero.copy=true`, the default: a
//! sixth of the broker CPU of the copying path, see docs/benchmarks.md) or by one read into a
//! buffer and a send.

//! Long poll: when fewer than `min_bytes` are available, each partition gets one read-or-park
//! call on its owner (parked on the high-watermark watchers until data arrives or `max_wait_ms`
//! passes, then read there); the first to answer wins and the others are cancelled.

use super::decode;
use super::fetch_response::{self, PartitionOut, TopicOut};
use crate::broker::Broker;
use crate::cluster::replica;
use crate::error_code as ec;
use crate::response::Part;
use bytes::Bytes;
use futures_util::future::{join_all, select, select_all, Either};
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::FetchRequest;
use ringlet_engine::runtime::io;
use ringlet_engine::{Partition, Region};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

struct PartitionRead {
    error_code: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    aborted: Vec<(i64, i64)>,
    records: Option<Part>,
    /// Left empty by the leader's replication throttle: answered after the fetch's wait.
    throttled: bool,
}

fn failed(code: i16) -> PartitionRead {
    PartitionRead {
        error_code: code,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        aborted: Vec::new(),
        records: None,
        throttled: false,
    }
}

/// A read that failed with `code` on a partition whose offsets are known.
fn failed_at(code: i16, o: ringlet_engine::Offsets) -> PartitionRead {
    PartitionRead {
        error_code: code,
        high_watermark: o.high_watermark,
        last_stable_offset: o.high_watermark,
        log_start_offset: o.log_start,
        aborted: Vec::new(),
        records: None,
        throttled: false,
    }
}

/// Who is fetching: a consumer (replica id -1) or a follower broker, and the leader epoch it
/// believes current (-1: unknown).
#[derive(Clone, Copy)]
struct Fetcher {
    replica_id: i32,
    current_leader_epoch: i32,
    /// A follower's log start, as its fetch reports it (DeleteRecords waits for followers').
    log_start_offset: i64,
    /// A `read_committed` consumer (isolation_level 1): up to the last stable offset.
    committed: bool,
}

/// Reads one partition on its owner. With `park`, a read that finds nothing past `offset` waits
/// there (up to `park`) for data and reads again, all in one call: dropping the future cancels
/// it on the owner, leaving nothing parked (a long poll over several partitions, one of which
/// answered).
async fn read_partition(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    who: Fetcher,
    park: Option<Duration>,
) -> PartitionRead {
    let b = broker.clone();
    let name = topic.to_string();
    let read = move |part: Rc<Partition>| async move {
        let r = read_local(&b, part.clone(), &name, partition, offset, max_bytes, who).await;
        let Some(wait) = park.filter(|_| r.records.is_none() && r.error_code == ec::NONE) else {
            return Ok(r);
        };
        if r.throttled {
            // Data is there but the throttle holds it back: no busy loop with the follower.
            io::sleep(wait).await;
            return Ok(r);
        }
        let data = Box::pin(DataAfter {
            part: part.clone(),
            offset,
            to_log_end: who.replica_id >= 0,
            committed: who.committed,
            polled: false,
        });
        match select(data, Box::pin(io::sleep(wait))).await {
            Either::Left(_) => {
                Ok(read_local(&b, part, &name, partition, offset, max_bytes, who).await)
            }
            Either::Right(_) => Ok(r),
        }
    };
    match park {
        None => broker.on_partition(topic, partition, read).await,
        Some(_) => broker.park_on_partition(topic, partition, read).await,
    }
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
                    replica::FollowerFetch {
                        follower: who.replica_id,
                        fetch_offset: offset,
                        log_start_offset: who.log_start_offset,
                        current_leader_epoch: who.current_leader_epoch,
                    },
                )
            } else {
                replica::check_read(topic, partition, who.current_leader_epoch)
            };
            if let Err(code) = checked {
                return failed_at(code, part.offsets());
            }
        } else if follower {
            return failed(ec::NOT_LEADER_OR_FOLLOWER);
        }
        let throttle = follower && clustered && leader_throttles(b, topic, partition, who);
        if throttle
            && b.cluster
                .as_ref()
                .is_some_and(|c| c.throttles.leader.exceeded())
        {
            return PartitionRead {
                throttled: true,
                ..failed_at(ec::NONE, part.offsets())
            };
        }
        let committed = who.committed && !follower;
        match part
            .read_isolated(offset, max_bytes, follower, committed)
            .await
        {
            Ok(r) => {
                let records = match r.region {
                    None => None,
                    Some(Region::Memory { parts, .. }) => Some(Part::Many(parts)),
                    Some(Region::File(region)) if zero_copy => match region.file.try_clone() {
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
                    Some(region) => match region.read_all().await {
                        Ok(v) => Some(Part::Bytes(v)),
                        Err(e) => {
                            tracing::error!(topic, partition, error = %e, "segment read failed");
                            return failed(ec::KAFKA_STORAGE_ERROR);
                        }
                    },
                };
                if let (true, Some(c), Some(rec)) = (throttle, &b.cluster, &records) {
                    c.throttles.leader.record(rec.len());
                }
                PartitionRead {
                    throttled: false,
                    error_code: ec::NONE,
                    high_watermark: r.high_watermark,
                    last_stable_offset: r.last_stable_offset,
                    log_start_offset: r.log_start_offset,
                    aborted: r
                        .aborted
                        .iter()
                        .map(|a| (a.producer_id, a.first_offset))
                        .collect(),
                    records,
                }
            }
            Err(e) => failed_at(ec::from_log_error(&e), part.offsets()),
        }
    }
}

/// Whether the leader's replication throttle covers this follower's fetch of the partition: a
/// rate is set, the topic's `leader.replication.throttled.replicas` names the partition on this
/// broker, and the follower is out of sync.
fn leader_throttles(b: &Broker, topic: &str, partition: i32, who: Fetcher) -> bool {
    let Some(c) = b.cluster.as_ref().filter(|c| c.throttles.leader.limited()) else {
        return false;
    };
    !replica::in_sync(topic, partition, who.replica_id)
        && c.view().topics.get(topic).is_some_and(|t| {
            crate::cluster::throttle::names(
                &t.configs,
                crate::cluster::throttle::LEADER_REPLICAS,
                partition,
                c.broker_id,
            )
        })
}

/// Resolves when the partition's high watermark passes `offset` (or its role changes): a share
/// fetch's wait for new records.
pub(crate) fn data_after(part: Rc<Partition>, offset: i64) -> impl Future<Output = ()> {
    DataAfter {
        part,
        offset,
        to_log_end: false,
        committed: false,
        polled: false,
    }
}

/// Resolves when the partition's high watermark (a follower: log end; a read_committed
/// consumer: last stable offset) passes `offset`, or its role changes.
struct DataAfter {
    part: Rc<Partition>,
    offset: i64,
    to_log_end: bool,
    committed: bool,
    polled: bool,
}

impl Future for DataAfter {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let end = if self.to_log_end {
            self.part.log_end_offset()
        } else if self.committed {
            self.part.last_stable_offset()
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
    let mut max_total = if req.max_bytes <= 0 {
        cap
    } else {
        (req.max_bytes as usize).min(cap)
    };
    // A consumer under consumer_byte_rate gets at most what its quota window allows at once.
    if replica_id < 0 && !broker.quotas.is_empty() {
        let (user, client) = (session.quota_user(), session.client_id.borrow().clone());
        let key = crate::quota::CONSUMER_BYTE_RATE;
        if let Some(m) = broker.quotas.window_max(key, &user, &client) {
            max_total = max_total.min(m);
        }
    }
    // Topics this principal may read: the others are answered TOPIC_AUTHORIZATION_FAILED and
    // neither read nor waited on.
    // One flag per requested topic, in request order.
    // From v13 topics are named by id; an id no topic has is answered UNKNOWN_TOPIC_ID.
    let names: Vec<Option<String>> = req
        .topics
        .iter()
        .map(|t| {
            if version >= 13 {
                broker.topic_name(*t.topic_id.as_bytes())
            } else {
                Some(t.topic.0.to_string())
            }
        })
        .collect();
    // A follower (ClusterAction, checked above) reads every topic, as Kafka: no Read ACL.
    let readable: Vec<bool> = names
        .iter()
        .map(|n| {
            n.as_ref().is_some_and(|n| {
                replica_id >= 0
                    || super::topic_allowed(broker, session, crate::security::code::READ, n)
            })
        })
        .collect();
    let asked: Vec<Asked<'_>> = req
        .topics
        .iter()
        .zip(&names)
        .enumerate()
        .flat_map(|(i, (t, n))| {
            let name = n.clone().unwrap_or_default();
            t.partitions.iter().map(move |p| (i, name.clone(), p))
        })
        .collect();
    let read = |a: &Asked<'_>, park: Option<Duration>| {
        let (i, p) = (a.0, a.2);
        let max = (p.partition_max_bytes.max(0) as usize).min(max_total);
        let who = Fetcher {
            replica_id,
            current_leader_epoch: p.current_leader_epoch,
            log_start_offset: p.log_start_offset,
            committed: req.isolation_level == 1,
        };
        let (known, may_read, name, partition, offset) = (
            names[i].is_some(),
            readable[i],
            a.1.clone(),
            p.partition,
            p.fetch_offset,
        );
        async move {
            if !known {
                return failed(ec::UNKNOWN_TOPIC_ID);
            }
            if !may_read {
                return failed(ec::TOPIC_AUTHORIZATION_FAILED);
            }
            read_partition(broker, &name, partition, offset, max, who, park).await
        }
    };
    let read = &read;
    loop {
        let mut reads = join_all(asked.iter().map(|a| read(a, None))).await;
        let now = Instant::now();
        if !enough(&reads, min_bytes, max_total)
            && now < deadline
            && !broker
                .shutting_down
                .load(std::sync::atomic::Ordering::Relaxed)
            && readable.contains(&true)
        {
            // Long poll: one read-or-park call per readable partition; the first to answer (data,
            // or the wait over) wins and the others are dropped on their shards.
            let wait = deadline - now;
            let parked: Vec<_> = asked
                .iter()
                .enumerate()
                .filter(|(_, a)| readable[a.0])
                .collect::<Vec<_>>()
                .into_iter()
                .map(|(k, a)| Box::pin(async move { (k, read(a, Some(wait)).await) }))
                .collect();
            let ((k, r), _, _) = select_all(parked).await;
            reads[k] = r;
            if !enough(&reads, min_bytes, max_total) && Instant::now() < deadline {
                continue;
            }
        }
        let mut topics = assemble(&req, &asked, reads, max_total);
        let throttle = if replica_id < 0 {
            consumer_quota(broker, session, &mut topics)
        } else {
            0
        };
        return Ok(Some(fetch_response::encode(
            version,
            ec::NONE,
            0,
            throttle,
            topics,
        )));
    }
}

/// Client quotas (Kafka's rules): a consumer's response bytes count against its
/// consumer_byte_rate; over it, the response goes without records (taken back from the meter),
/// with the throttle time, and the connection is muted for that long (KIP-219).
fn consumer_quota(
    broker: &Broker,
    session: &crate::security::Session,
    topics: &mut [TopicOut],
) -> i32 {
    if broker.quotas.is_empty() {
        return 0;
    }
    let key = crate::quota::CONSUMER_BYTE_RATE;
    let bytes: usize = topics
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_ref().map(Part::len))
        .sum();
    let throttle = session.charge_quota(&broker.quotas, key, bytes as f64);
    if throttle > 0 {
        let (user, client) = (session.quota_user(), session.client_id.borrow().clone());
        broker.quotas.unrecord(key, &user, &client, bytes as f64);
        for p in topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            p.records = None;
        }
    }
    throttle
}

/// A partition asked for: its topic's index in the request, the topic name, the request part.
type Asked<'a> = (usize, String, &'a FetchPartition);

/// Whether the reads answer the request now: `min_bytes` (at least one) reached within
/// `max_total`, or any partition failed (errors go back at once).
fn enough(reads: &[PartitionRead], min_bytes: usize, max_total: usize) -> bool {
    let mut total = 0usize;
    for r in reads {
        if r.error_code != ec::NONE {
            return true;
        }
        if let Some(b) = &r.records {
            if total == 0 || total + b.len() <= max_total {
                total += b.len();
            }
        }
    }
    total >= min_bytes.max(1) || reads.is_empty()
}

/// The response's topics: the request's max_bytes bounds the sum of records, except that the
/// first partition with data always goes out whole (KIP-74).
fn assemble(
    req: &FetchRequest,
    asked: &[Asked<'_>],
    reads: Vec<PartitionRead>,
    max_total: usize,
) -> Vec<TopicOut> {
    let mut topics: Vec<TopicOut> = req
        .topics
        .iter()
        .map(|t| TopicOut {
            topic: t.topic.0.to_string(),
            topic_id: *t.topic_id.as_bytes(),
            partitions: Vec::with_capacity(t.partitions.len()),
        })
        .collect();
    let mut total = 0usize;
    for ((i, _, p), r) in asked.iter().zip(reads) {
        let mut records = r.records;
        if let Some(b) = &records {
            if total > 0 && total + b.len() > max_total {
                records = None;
            } else {
                total += b.len();
            }
        }
        topics[*i].partitions.push(PartitionOut {
            partition_index: p.partition,
            error_code: r.error_code,
            high_watermark: r.high_watermark,
            last_stable_offset: r.last_stable_offset,
            log_start_offset: r.log_start_offset,
            aborted: r.aborted,
            records,
        });
    }
    topics
}
