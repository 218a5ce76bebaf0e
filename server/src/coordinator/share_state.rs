//! Durable share-partition state (KIP-932's share coordinator, folded into the group
//! coordinator): each share partition's start offset and in-flight record states, written as
//! records of the share group's own `__consumer_offsets` partition and replayed with it, so the
//! state moves with the group's coordinator and is replicated like committed offsets.
//!
//! Kafka keeps this in `__share_group_state` through a separate share coordinator; Ringlet keeps
//! it beside the group's other records (ADR 0015): one coordinator per group, no second
//! internal topic. A partition's leader reads the state when it first serves the share partition
//! and writes it after every acknowledgement ([`call`]: on this broker through the coordinator's
//! shard, in a cluster with Read/WriteShareGroupState to the coordinator's broker).
//!
//! Record: key `0x53 | group | topic | partition` (u16-length strings), value `seq i32 | start
//! i64 | runs u32 | (first i64, last i64, state i8, delivery count i16)*` with Kafka's record-state codes
//! (0 available, 2 acknowledged, 4 archived); a null value forgets the share partition.

use super::{owner, partition_for, OFFSETS_TOPIC};
use crate::broker::Broker;
use crate::error_code as ec;
use bytes::Bytes;
use ringlet_engine::{log_manager, runtime};
use ringlet_format::batch;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

const KEY_TYPE: u8 = 0x53;

/// One share partition's durable state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Grows with every write of the share partition: a write older than the state it would
    /// replace (a late duplicate, a former leader) is dropped, on write and on replay.
    pub seq: i32,
    pub start: i64,
    /// (first offset, last offset, record state, delivery count), in offset order.
    pub runs: Vec<(i64, i64, i8, i16)>,
}

type Key = (String, String, i32);

thread_local! {
    static STATES: RefCell<HashMap<Key, Snapshot>> = RefCell::new(HashMap::new());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn key_bytes(k: &Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + k.0.len() + k.1.len());
    out.push(KEY_TYPE);
    put_str(&mut out, &k.0);
    put_str(&mut out, &k.1);
    out.extend_from_slice(&k.2.to_be_bytes());
    out
}

fn take_str(b: &[u8], at: &mut usize) -> Option<String> {
    let n = u16::from_be_bytes(b.get(*at..*at + 2)?.try_into().ok()?) as usize;
    let s = std::str::from_utf8(b.get(*at + 2..*at + 2 + n)?)
        .ok()?
        .to_string();
    *at += 2 + n;
    Some(s)
}

fn parse_key(b: &[u8]) -> Option<Key> {
    if b.first() != Some(&KEY_TYPE) {
        return None;
    }
    let mut at = 1;
    let group = take_str(b, &mut at)?;
    let topic = take_str(b, &mut at)?;
    let partition = i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?);
    Some((group, topic, partition))
}

fn value_bytes(s: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 19 * s.runs.len());
    out.extend_from_slice(&s.seq.to_be_bytes());
    out.extend_from_slice(&s.start.to_be_bytes());
    out.extend_from_slice(&(s.runs.len() as u32).to_be_bytes());
    for &(first, last, state, count) in &s.runs {
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&last.to_be_bytes());
        out.push(state as u8);
        out.extend_from_slice(&count.to_be_bytes());
    }
    out
}

fn parse_value(b: &[u8]) -> Option<Snapshot> {
    let seq = i32::from_be_bytes(b.get(0..4)?.try_into().ok()?);
    let b = b.get(4..)?;
    let start = i64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
    let n = u32::from_be_bytes(b.get(8..12)?.try_into().ok()?) as usize;
    let mut runs = Vec::with_capacity(n.min(4096));
    let mut at = 12;
    for _ in 0..n {
        let first = i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?);
        let last = i64::from_be_bytes(b.get(at + 8..at + 16)?.try_into().ok()?);
        let state = *b.get(at + 16)? as i8;
        let count = i16::from_be_bytes(b.get(at + 17..at + 19)?.try_into().ok()?);
        runs.push((first, last, state, count));
        at += 19;
    }
    Some(Snapshot { seq, start, runs })
}

/// Replays one record of an offsets partition; whether it was a share-state record.
pub(super) fn replay(k: &[u8], v: Option<&[u8]>) -> bool {
    let Some(key) = parse_key(k) else {
        return false;
    };
    STATES.with(|s| store(&mut s.borrow_mut(), key, v.and_then(parse_value)));
    true
}

/// Keeps `snap` unless the state held is newer (a tombstone always applies).
fn store(states: &mut HashMap<Key, Snapshot>, key: Key, snap: Option<Snapshot>) {
    match snap {
        Some(snap) => {
            if states.get(&key).is_none_or(|old| old.seq <= snap.seq) {
                states.insert(key, snap);
            }
        }
        None => {
            states.remove(&key);
        }
    }
}

/// The share partitions of `group` with state here (on the coordinator's shard).
pub fn of_group(group: &str) -> Vec<(String, i32)> {
    STATES.with(|s| {
        s.borrow()
            .keys()
            .filter(|k| k.0 == group)
            .map(|k| (k.1.clone(), k.2))
            .collect()
    })
}

/// Forgets the states of the groups of offsets partition `partition` (leadership moved away).
pub(super) fn drop_partition(partition: i32, offsets_partitions: i32) {
    STATES.with(|s| {
        s.borrow_mut()
            .retain(|k, _| partition_for(&k.0, offsets_partitions) != partition)
    });
}

/// The state of a share partition, on the group's coordinator shard.
pub fn read(group: &str, topic: &str, partition: i32) -> Option<Snapshot> {
    STATES.with(|s| {
        s.borrow()
            .get(&(group.to_string(), topic.to_string(), partition))
            .cloned()
    })
}

/// Writes a share partition's state (`None`: forget it) to the group's offsets partition
/// `offsets_partition`, on its shard; acknowledged once replicated.
pub async fn write(
    group: &str,
    offsets_partition: i32,
    topic: &str,
    partition: i32,
    snap: Option<Snapshot>,
) -> i16 {
    let Some(part) = log_manager::get(OFFSETS_TOPIC, offsets_partition) else {
        return ec::NOT_COORDINATOR;
    };
    let key = (group.to_string(), topic.to_string(), partition);
    let stale = STATES.with(|s| {
        let s = s.borrow();
        matches!((&snap, s.get(&key)), (Some(new), Some(old)) if new.seq < old.seq)
    });
    if stale {
        tracing::debug!(
            group,
            topic,
            partition,
            "dropping a stale share state write"
        );
        return ec::NONE;
    }
    let k = key_bytes(&key);
    let v = snap.as_ref().map(value_bytes);
    let recs: [batch::KeyValue<'_>; 1] = [(Some(k.as_slice()), v.as_deref())];
    let b = batch::build_keyed_batch(&recs, ringlet_engine::config::now_ms());
    if let Err(code) =
        super::replicated_append(OFFSETS_TOPIC, &part, offsets_partition, Bytes::from(b)).await
    {
        tracing::warn!(
            group,
            topic,
            partition,
            error = ec::name(code),
            "writing share state failed"
        );
        return code;
    }
    STATES.with(|s| store(&mut s.borrow_mut(), key, snap));
    ec::NONE
}

/// A read or a write of share state, wherever the group's coordinator is.
pub enum Op {
    Read,
    Write(Option<Snapshot>),
}

/// Runs `op` on the group's coordinator: its shard on this broker, or (in a cluster, when
/// another broker leads the group's offsets partition) Read/WriteShareGroupState to that
/// broker. `Ok(None)` for a read of a share partition with no state yet.
pub async fn call(
    broker: &Arc<Broker>,
    group: &str,
    topic: &str,
    partition: i32,
    op: Op,
) -> Result<Option<Snapshot>, i16> {
    let offsets_partition = partition_for(group, broker.config.offsets_topic_num_partitions);
    if let Some(cluster) = &broker.cluster {
        let leader = cluster
            .view()
            .state(OFFSETS_TOPIC, offsets_partition)
            .map(|s| s.leader);
        match leader {
            Some(l) if l == broker.config.broker_id => {}
            Some(l) if l >= 0 => {
                return super::share_peer::call(broker, l, group, topic, partition, op).await
            }
            _ => return Err(ec::COORDINATOR_NOT_AVAILABLE),
        }
    }
    local(broker, group, topic, partition, op).await
}

/// [`call`] on this broker: on the shard of the group's offsets partition.
pub async fn local(
    broker: &Arc<Broker>,
    group: &str,
    topic: &str,
    partition: i32,
    op: Op,
) -> Result<Option<Snapshot>, i16> {
    let Some((shard, offsets_partition)) = owner(broker, group) else {
        return Err(ec::COORDINATOR_NOT_AVAILABLE);
    };
    let clustered = broker.cluster.is_some();
    let (g, t) = (group.to_string(), topic.to_string());
    runtime::call_on(shard, move || async move {
        if clustered {
            super::serving(offsets_partition)?;
        }
        match op {
            Op::Read => Ok(read(&g, &t, partition)),
            Op::Write(snap) => match write(&g, offsets_partition, &t, partition, snap).await {
                ec::NONE => Ok(None),
                code => Err(code),
            },
        }
    })
    .await
    .unwrap_or(Err(ec::COORDINATOR_NOT_AVAILABLE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let k = ("g".to_string(), "t".to_string(), 3);
        assert_eq!(parse_key(&key_bytes(&k)), Some(k));
        let s = Snapshot {
            seq: 3,
            start: 7,
            runs: vec![(7, 9, 0, 2), (10, 10, 4, 5)],
        };
        assert_eq!(parse_value(&value_bytes(&s)), Some(s));
        // An offsets key (type byte 1) is not share state.
        assert!(parse_key(&[1, 0, 1, b'g']).is_none());
    }
}
