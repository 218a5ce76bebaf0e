//! Consumer threads: fetch assigned partitions from given offsets, record end-to-end latency from
//! the producer's timestamp in each record, and (with --verify) every record's producer sequence.

use crate::batch_builder::{self, for_each_record};
use crate::stats::{now_us, Stats};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use ringlet_client::conn::{self as client, Conn};
use ringlet_client::group::GroupMember;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What consumers saw, per (partition, producer id): how often each sequence arrived, and how
/// many arrived below one already seen (reordered).
#[derive(Default)]
pub struct Seen {
    pub counts: HashMap<(i32, u32), Vec<u8>>,
    pub reordered: HashMap<(i32, u32), u64>,
    last: HashMap<(i32, u32), u32>,
}

impl Seen {
    fn record(&mut self, partition: i32, producer: u32, seq: u32) {
        let key = (partition, producer);
        let v = self.counts.entry(key).or_default();
        let i = seq as usize;
        if v.len() <= i {
            v.resize(i + 1, 0);
        }
        v[i] = v[i].saturating_add(1);
        if let Some(&last) = self.last.get(&key) {
            if seq < last && v[i] == 1 {
                *self.reordered.entry(key).or_default() += 1;
            }
        }
        let last = self.last.entry(key).or_insert(seq);
        *last = (*last).max(seq);
    }
}

/// A connection to one partition leader and the (partition, next offset) read through it.
type LeaderConn = (Conn, Vec<(i32, i64)>);

pub struct ConsumerPlan {
    pub topic: String,
    /// With a group: join it (bootstrap address, group id) and read the partitions it assigns;
    /// `partitions` then lists every partition of the topic.
    pub group: Option<(String, String)>,
    /// (partition, leader, start offset).
    pub partitions: Vec<(i32, String, i64)>,
    pub verify: bool,
    /// Count every record read, however old (a consume-only run), and no end-to-end latency.
    pub count_all: bool,
}

/// A fetch of `parts` (partition, offset) of `topic`.
fn fetch_request(topic: &TopicName, parts: &[(i32, i64)]) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_isolation_level(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic.clone())
            .with_partitions(
                parts
                    .iter()
                    .map(|&(p, off)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(off)
                            .with_partition_max_bytes(8 << 20)
                            .with_log_start_offset(-1)
                            .with_current_leader_epoch(-1)
                    })
                    .collect(),
            )])
}

/// Fetches until `stop` is set and every partition reached its target in `targets` (set by the
/// coordinator once producers finished), or `deadline` passes.
pub fn run(
    plan: ConsumerPlan,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    targets: Arc<Mutex<HashMap<i32, i64>>>,
    seen: Arc<Mutex<Seen>>,
    drain_timeout: Duration,
) -> Result<(), client::ClientError> {
    let leaders: HashMap<i32, String> = plan
        .partitions
        .iter()
        .map(|(p, l, _)| (*p, l.clone()))
        .collect();
    let starts: HashMap<i32, i64> = plan.partitions.iter().map(|(p, _, o)| (*p, *o)).collect();
    let connect = |positions: &[(i32, i64)]| -> Result<Vec<LeaderConn>, client::ClientError> {
        let mut by_leader: HashMap<String, Vec<(i32, i64)>> = HashMap::new();
        for &(p, off) in positions {
            by_leader
                .entry(leaders[&p].clone())
                .or_default()
                .push((p, off));
        }
        by_leader
            .into_iter()
            .map(|(leader, parts)| Ok((Conn::connect(&leader)?, parts)))
            .collect()
    };
    let mut member = match &plan.group {
        Some((bootstrap, group)) => Some(GroupMember::connect(bootstrap, group, &plan.topic)?),
        None => None,
    };
    let all: Vec<i32> = plan.partitions.iter().map(|p| p.0).collect();
    let positions_for = |member: &mut GroupMember,
                         assigned: &[i32]|
     -> Result<Vec<(i32, i64)>, client::ClientError> {
        let committed = member.committed(assigned)?;
        Ok(assigned
            .iter()
            .map(|p| (*p, committed.get(p).copied().unwrap_or(starts[p])))
            .collect())
    };
    let mut conns = match member.as_mut() {
        Some(m) => {
            let assigned = m.join(&all)?;
            let positions = positions_for(m, &assigned)?;
            connect(&positions)?
        }
        None => connect(
            &plan
                .partitions
                .iter()
                .map(|(p, _, o)| (*p, *o))
                .collect::<Vec<_>>(),
        )?,
    };
    let topic = TopicName(StrBytes::from_string(plan.topic.clone()));
    // The fetch in flight on each connection (its correlation id): like the Java consumer and
    // librdkafka, the next fetch is sent as soon as a response arrives (its offsets come from
    // batch headers), and the records are counted while the broker sends the next response.
    let mut pending: Vec<Option<i32>> = vec![None; conns.len()];
    let mut stop_seen_at: Option<Instant> = None;
    let mut local_seen = Seen::default();
    loop {
        if let Some(m) = member.as_mut() {
            if m.last_heartbeat.elapsed() >= ringlet_client::group::HEARTBEAT_INTERVAL
                && m.heartbeat()?
            {
                // Rebalance: hand our positions over, then take the new assignment.
                let positions: Vec<(i32, i64)> = conns
                    .iter()
                    .flat_map(|(_, ps)| ps.iter().copied())
                    .collect();
                m.commit(&positions)?;
                let assigned = m.join(&all)?;
                let positions = positions_for(m, &assigned)?;
                conns = connect(&positions)?;
                pending = vec![None; conns.len()];
            }
        }
        if stop.load(Ordering::Relaxed) {
            let t = *stop_seen_at.get_or_insert_with(Instant::now);
            let targets = targets.lock().expect("targets lock");
            let caught_up = !targets.is_empty()
                && conns.iter().all(|(_, parts)| {
                    parts
                        .iter()
                        .all(|(p, off)| targets.get(p).is_none_or(|t| off >= t))
                });
            if caught_up || t.elapsed() > drain_timeout {
                break;
            }
        }
        for ((conn, parts), pending) in conns.iter_mut().zip(pending.iter_mut()) {
            let corr = match pending.take() {
                Some(c) => c,
                None => conn.send(
                    ApiKey::Fetch,
                    client::FETCH_VERSION,
                    &fetch_request(&topic, parts),
                )?,
            };
            let (got, resp): (i32, FetchResponse) =
                conn.recv(ApiKey::Fetch, client::FETCH_VERSION)?;
            if got != corr {
                return Err(client::ClientError::Protocol(format!(
                    "fetch response {got}, expected {corr}"
                )));
            }
            {
                // A fetch still in flight when the run ends is dropped with its connection.
                let mut next: Vec<(i32, i64)> = parts.clone();
                for t in &resp.responses {
                    for pd in &t.partitions {
                        let n = pd.records.as_deref().and_then(batch_builder::next_offset);
                        if let (Some(n), Some(slot)) =
                            (n, next.iter_mut().find(|(p, _)| *p == pd.partition_index))
                        {
                            slot.1 = slot.1.max(n);
                        }
                    }
                }
                *pending = Some(conn.send(
                    ApiKey::Fetch,
                    client::FETCH_VERSION,
                    &fetch_request(&topic, &next),
                )?);
            }
            count_response(&resp, parts, &plan, &stats, &mut local_seen);
        }
    }
    if let Some(m) = member.as_mut() {
        let positions: Vec<(i32, i64)> = conns
            .iter()
            .flat_map(|(_, ps)| ps.iter().copied())
            .collect();
        let _ = m.commit(&positions);
        m.leave();
    }
    if plan.verify {
        merge_seen(&seen, local_seen);
    }
    Ok(())
}

/// Counts one fetch response's records (and their end-to-end latency while measuring) and moves
/// each partition's position past what it returned.
fn count_response(
    resp: &FetchResponse,
    parts: &mut [(i32, i64)],
    plan: &ConsumerPlan,
    stats: &Stats,
    local_seen: &mut Seen,
) {
    let now = now_us();
    let measuring = stats.measuring();
    let measure_start = stats.measure_start_us.load(Ordering::Relaxed);
    for t in &resp.responses {
        for pd in &t.partitions {
            if pd.error_code != 0 {
                stats.error(client::error_name(pd.error_code), 1);
                continue;
            }
            let Some(records) = &pd.records else { continue };
            let Some(slot) = parts.iter_mut().find(|(p, _)| *p == pd.partition_index) else {
                continue;
            };
            let mut next = slot.1;
            let mut count = 0u64;
            let mut bytes = 0u64;
            let mut e2e = Vec::new();
            for_each_record(records, |r| {
                if r.offset < slot.1 {
                    return; // before the fetch offset, inside the first batch
                }
                next = next.max(r.offset + 1);
                if plan.count_all {
                    count += 1;
                    bytes += r.value_len as u64;
                } else if r.timestamp_us >= measure_start && measuring {
                    count += 1;
                    bytes += r.value_len as u64;
                    e2e.push((now - r.timestamp_us).max(1) as u64);
                }
                if plan.verify {
                    local_seen.record(pd.partition_index, r.producer_id, r.sequence);
                }
            });
            slot.1 = next;
            if count > 0 {
                stats.consumed_records.fetch_add(count, Ordering::Relaxed);
                let mut h = stats.end_to_end.lock().expect("histogram lock");
                for v in e2e {
                    let _ = h.record(v);
                }
            }
            stats.consumed_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

/// Adds one consumer's verification counts to the run's.
fn merge_seen(seen: &Mutex<Seen>, local_seen: Seen) {
    let mut s = seen.lock().expect("seen lock");
    for (k, v) in local_seen.counts {
        let dst = s.counts.entry(k).or_default();
        if dst.len() < v.len() {
            dst.resize(v.len(), 0);
        }
        for (i, c) in v.into_iter().enumerate() {
            dst[i] = dst[i].saturating_add(c);
        }
    }
    for (k, v) in local_seen.reordered {
        *s.reordered.entry(k).or_default() += v;
    }
}
